//! The store's one error type: sled, the file system, corrupt data, a full
//! disk, or a store that is shutting down.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    /// A write found no space left on the data directory's file system
    /// (ENOSPC): nothing of it was acknowledged; writes succeed again once
    /// space is freed.
    #[error("no space left on the data directory's disk: {0}")]
    StorageFull(String),
}

impl StoreError {
    /// Whether this is the file system's "no space left on device".
    pub fn is_storage_full(&self) -> bool {
        let full = |e: &std::io::Error| e.kind() == std::io::ErrorKind::StorageFull;
        match self {
            StoreError::StorageFull(_) => true,
            StoreError::Io(e) => full(e),
            StoreError::Sled(sled::Error::Io(e)) => full(e),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_from_other_errors() {
        let enospc = || std::io::Error::from_raw_os_error(28);
        assert!(StoreError::Io(enospc()).is_storage_full());
        assert!(StoreError::Sled(sled::Error::Io(enospc())).is_storage_full());
        assert!(StoreError::StorageFull("x".into()).is_storage_full());
        let eio = std::io::Error::from_raw_os_error(5);
        assert!(!StoreError::Io(eio).is_storage_full());
        assert!(!StoreError::Corrupt("x".into()).is_storage_full());
        assert!(!StoreError::Closed.is_storage_full());
    }
}
