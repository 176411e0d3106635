//! The events of the log (frozen, versioned shapes), the privacy envelope that
//! keeps personal data out of the log in clear, and the facts extracted from a
//! statement for the projections.
//!
//! This crate knows nothing about sled, files, HTTP or async: keys come in
//! through the [`envelope::KeyRing`] trait, the clock and ids as arguments.

pub mod clock;
pub mod compress;
pub mod envelope;
pub mod events;
pub mod facts;
pub mod statement;
pub mod token;

pub use events::{Event, Position};
pub use token::{DataKey, Token};
