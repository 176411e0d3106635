//! The analytics crate's one error type: configuration, storage, Arrow and
//! Parquet, the store, and what a query did wrong.

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
