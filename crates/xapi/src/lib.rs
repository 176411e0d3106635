//! xAPI vocabulary, parsing and validation: the JSON Schemas in `schemas/`
//! plus the spec rules a schema cannot express.
//!
//! This crate knows nothing about storage, HTTP, async or encryption: it takes
//! `serde_json::Value`s and answers with values or a [`ValidationError`] that
//! names the JSON path and the rule that was broken.

pub mod agent;
pub mod error;
pub mod format;
pub mod signature;
pub mod validate;
pub mod version;

pub use agent::{Ifi, IfiKind};
pub use error::ValidationError;
pub use version::XapiVersion;
