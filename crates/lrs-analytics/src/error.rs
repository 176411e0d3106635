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
    /// The query is wrong, or failed on a value: bad SQL, an unknown column
    /// or table, a cast or division that failed, a refused EXPLAIN, an
    /// answer a format cannot hold. Shown as its `message`.
    #[error("{}", .0.message)]
    Sql(QueryError),
    /// The query ran past its time limit.
    #[error("the query ran longer than its limit of {0:?}")]
    Timeout(std::time::Duration),
    /// The query needed more memory than its limit.
    #[error("the query needed more memory than its limit of {} MiB", .limit_bytes / (1024 * 1024))]
    Memory { limit_bytes: usize },
    /// The engine or the files failed (not the query's fault): the text is
    /// for the server log.
    #[error("query failed: {0}")]
    Query(String),
}

/// What was wrong with a query, in two texts: `message` holds only what the
/// caller may see (the rule, the query's own words, where), `detail` the
/// engine's whole message (which may quote values of the rows it ran on:
/// for the server log and the operator's `lrs sql`, never an HTTP answer).
#[derive(Debug, Clone)]
pub struct QueryError {
    /// `sql.syntax`, `sql.invalid`, `sql.explain`, `sql.cast`,
    /// `sql.arithmetic`, `sql.failed`, `sql.unsupported`, `sql.format`.
    pub rule: &'static str,
    pub message: String,
    pub detail: String,
}
