//! Counts of what the store writes to each sled tree (the log's entries,
//! every read model's keys): sled's files grow per written key more than
//! per byte (docs/adr/0004), so `/metrics` shows where the disk goes.

use std::sync::atomic::{AtomicU64, Ordering};

/// Keys written to one tree since the store opened ([`crate::Store::tree_writes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeWrites {
    pub name: String,
    /// Keys set or removed (a packed tree: buckets).
    pub writes: u64,
    /// Their keys' and values' bytes.
    pub bytes: u64,
}

/// A running count of written keys and bytes.
#[derive(Debug, Default)]
pub(crate) struct Written {
    writes: AtomicU64,
    bytes: AtomicU64,
}

impl Written {
    pub(crate) fn add(&self, bytes: usize) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn report(&self, name: &str) -> TreeWrites {
        TreeWrites {
            name: name.to_owned(),
            writes: self.writes.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}
