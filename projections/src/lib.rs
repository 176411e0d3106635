//! Read models as pure folds over the log's events.
//!
//! A projection never writes anything itself: given the position, the event
//! and read access to its own current state, it answers with [`Op`]s. The
//! store applies them in log order. Dropping a projection's trees and
//! replaying the log from position 1 gives the same bytes.
//!
//! This crate knows nothing about sled, files, HTTP or async.

pub mod course_model;
pub mod credentials;
pub mod documents;
pub mod privacy;
pub mod progress;
pub mod staff_accounts;
pub mod statement_index;
#[cfg(test)]
pub(crate) mod testing;

/// The name of one key-value tree that a projection owns.
pub type TreeName = &'static str;

/// How many leading bytes of a packed tree's key name its bucket
/// ([`Projection::packed`]); `None`: the key is malformed.
pub type BucketOf = fn(&[u8]) -> Option<usize>;

/// How a resident tree's records are shaped ([`Projection::resident`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    pub keys: ResidentKeys,
    /// The values' fixed width.
    pub value_len: usize,
}

/// The keys of a resident tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidentKeys {
    /// Every key has this width.
    Fixed(usize),
    /// Keys of any length that the projection only ever reads whole (`get`,
    /// never `scan_prefix`): the store keeps 16-byte digests of them.
    Digests,
    /// Keys of any length, kept whole and in order (prefix scans allowed):
    /// for a tree of few keys, such as counters.
    Whole,
}

/// One change to a read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        tree: TreeName,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        tree: TreeName,
        key: Vec<u8>,
    },
}

/// Read access to a projection's current state (its own trees).
pub trait ReadModel {
    fn get(&self, tree: TreeName, key: &[u8]) -> Option<Vec<u8>>;
    /// Every key and value whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
}

/// A read model maintained as a fold over the log.
pub trait Projection: Send + Sync {
    /// Stable name; the store keeps the checkpoint under it.
    fn name(&self) -> &'static str;
    /// Bump when the read model's layout changes: the store then rebuilds it.
    fn version(&self) -> u32;
    fn trees(&self) -> &'static [TreeName];
    /// Trees (of [`Projection::trees`]) that the store keeps packed: the
    /// keys with the same *bucket* (the first bytes of the key, as many as
    /// the tree's [`BucketOf`] says) share one stored value (a learner's
    /// records of one course, say). A storage matter only: the fold reads
    /// and writes single keys as ever. A prefix scan of such a tree must
    /// stop at or before the end of the bucket.
    fn packed(&self) -> &'static [(TreeName, BucketOf)] {
        &[]
    }
    /// Trees (of [`Projection::trees`]) that the store keeps in memory
    /// rather than in sled, with their records' shape: saved when the store
    /// closes, with a journal of every commit since; the projection is
    /// folded again from the log when those do not reach its checkpoint (a
    /// power loss). A storage matter only, as [`Projection::packed`].
    fn resident(&self) -> &'static [(TreeName, Resident)] {
        &[]
    }
    fn apply(
        &self,
        position: u64,
        event: &lrs_core::Event,
        state: &dyn ReadModel,
        out: &mut Vec<Op>,
    );
}
