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

/// What the log writer's group commits took since the store opened
/// ([`crate::Store::commits`]): how large its groups are, and how much of
/// its time it is busy (its one thread is what every write waits on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Commits {
    /// Groups committed, each made durable with one flush.
    pub groups: u64,
    /// Log positions they appended (events: statements, documents, ...).
    pub entries: u64,
    /// The writer's time on them, µs: from the group's checks until it is
    /// durable, before the answers go out.
    pub busy_micros: u64,
    /// Of that, waiting for the disk (the vault's and sled's syncs), µs.
    pub sync_micros: u64,
}

/// The running counts behind [`Commits`].
#[derive(Debug, Default)]
pub(crate) struct CommitCounts {
    groups: AtomicU64,
    entries: AtomicU64,
    busy_micros: AtomicU64,
    sync_micros: AtomicU64,
}

impl CommitCounts {
    pub(crate) fn add(&self, entries: u64, busy: std::time::Duration, sync: std::time::Duration) {
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.busy_micros
            .fetch_add(busy.as_micros() as u64, Ordering::Relaxed);
        self.sync_micros
            .fetch_add(sync.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn report(&self) -> Commits {
        Commits {
            groups: self.groups.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            busy_micros: self.busy_micros.load(Ordering::Relaxed),
            sync_micros: self.sync_micros.load(Ordering::Relaxed),
        }
    }
}
