//! Analytics: the log's statements as Parquet files (a projection, like the
//! read models, but columnar and outside the data directory's database),
//! on a local directory or object storage, and SQL over them with
//! DataFusion (docs/analytics.md). The only crate that knows Arrow,
//! Parquet, DataFusion and `object_store`.

pub mod erasure;
mod error;
pub mod export;
pub mod schema;
pub mod sql;
pub mod storage;

pub use error::{AnalyticsError, QueryError};
pub use export::{Checkpoint, Exporter, RunProgress, RunReport, FLUSH_ROWS};
pub use sql::{Format, QueryLimits, Reach, Session};
pub use storage::Target;
