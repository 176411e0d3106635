//! Analytics: the log's statements as Parquet files (a projection, like the
//! read models, but columnar and outside the data directory's database),
//! on a local directory or object storage, and SQL over them with
//! DataFusion (docs/analytics.md). The only crate that knows Arrow,
//! Parquet, DataFusion and `object_store`.

pub mod erasure;
pub mod export;
pub mod schema;
pub mod sql;
pub mod storage;

pub use export::{Checkpoint, Exporter, RunProgress, RunReport};
pub use sql::{Format, QueryLimits, Reach};
pub use storage::Target;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("{0}")]
    Config(String),
    #[error("object storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("store: {0}")]
    Store(#[from] lrs_store::StoreError),
    #[error("corrupt analytics files: {0}")]
    Corrupt(String),
    /// The query is wrong: bad SQL, an unknown column or table, a type error.
    #[error("{0}")]
    Sql(String),
    /// The query ran past its time limit.
    #[error("the query ran longer than its limit of {0:?}")]
    Timeout(std::time::Duration),
    /// The query needed more memory than its limit.
    #[error("the query needed more memory than its limit: {0}")]
    Memory(String),
    #[error("query failed: {0}")]
    Query(String),
}
