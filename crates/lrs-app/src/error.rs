//! The application's one error type. Its variants say what went wrong in
//! the domain (a bad input naming its path and rule, a missing permission,
//! something unknown, a conflict); the server maps them to HTTP statuses in
//! its `error.rs`, the command line prints them.

use xapi::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input breaks a rule: names the JSON path (or parameter) and the rule.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// The principal lacks a permission or scope; says which.
    #[error("the credential lacks the scope for this: needs {0}")]
    Forbidden(String),
    /// Unknown (or another tenant's, which looks the same).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The request contradicts what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The store is shutting down.
    #[error("the store is shutting down")]
    Unavailable,
    /// The data directory's disk is full: nothing of the write was stored.
    #[error("{0}")]
    StorageFull(String),
    /// A bug or a broken store; the detail goes to the log, not the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn bad_request(
        path: impl Into<String>,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        AppError::Invalid(ValidationError::new(path, rule, message))
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        AppError::Internal(error.to_string())
    }
}

/// What the application's operations answer.
pub type AppResult<T> = Result<T, AppError>;

impl From<lrs_store::backup::BackupError> for AppError {
    fn from(error: lrs_store::backup::BackupError) -> Self {
        AppError::Internal(error.to_string())
    }
}

impl From<std::io::Error> for AppError {
    fn from(error: std::io::Error) -> Self {
        AppError::Internal(error.to_string())
    }
}

impl From<lrs_store::StoreError> for AppError {
    fn from(error: lrs_store::StoreError) -> Self {
        match error {
            lrs_store::StoreError::Closed => AppError::Unavailable,
            full if full.is_storage_full() => AppError::StorageFull(full.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}
