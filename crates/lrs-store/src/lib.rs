//! The only crate that knows sled and the data directory: the append-only,
//! hash-chained event log with its single group-commit writer, the identity
//! vault, and the read-model trees that projections fold into.
//!
//! It knows nothing about HTTP, auth or JSON error bodies; it speaks events,
//! positions and tokens.

pub mod audit;
pub mod backup;
mod cache;
mod error;
mod files;
pub mod log;
mod packed;
mod progress;
mod projector;
pub mod query;
mod resident;
pub mod retention;
mod segments;
mod staff;
pub mod store;
#[cfg(test)]
mod testing;
pub mod vault;
mod writer;
mod written;

pub use cache::FoldCache;
pub use error::StoreError;
pub use log::{ChainBreak, ChainChecker, Head, LogEntry};
pub use lrs_projections::documents::{context_prefix, document_key, DocumentRef};
/// The tree with one entry per stored statement (id and tenant → position).
pub use lrs_projections::statement_index::BY_ID as STATEMENT_IDS_TREE;
pub use query::{Page, Scope, StatementQuery};
pub use store::{Store, StoreConfig, TreeSize, WarmReport, DEFAULT_CACHE_CAPACITY};
pub use vault::{MasterKey, Vault};
pub use writer::{AppendError, DocumentExpectation, PreparedStatement};
pub use written::{Commits, TreeWrites};
