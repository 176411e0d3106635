//! What the log writer's fold read from the read-model trees, kept decoded
//! as committed for its next groups (docs/performance.md, levers 22 and
//! 23): a learner sends a course's statements one after another, and each
//! statement's fold reads the same few values and packed buckets again.
//!
//! Only [`crate::projector::Pending`] reads these caches, on the writer's
//! thread (or a catch-up's), and only what a committed transaction wrote
//! (or what sled held when it was read) goes in: a failed commit leaves
//! nothing stale behind, and the stores' readers never see them.
//!
//! Bounded by two generations of at most `capacity` entries each: when the
//! newer one is full it becomes the older and the older is dropped, so
//! what was used within the last generation stays. Simpler than an LRU,
//! with no bookkeeping per read; a cache whose entries are taken out and
//! put back needs no more.

use lrs_projections::TreeName;
use std::collections::HashMap;

/// A tree and one of its keys (a plain key, or a packed tree's bucket).
pub(crate) type TreeKey = (TreeName, Vec<u8>);

pub(crate) struct Generations<V> {
    newer: HashMap<TreeKey, V>,
    older: HashMap<TreeKey, V>,
    capacity: usize,
    /// Lookups ([`Generations::take`], [`Generations::get`]) answered, and not.
    hits: u64,
    misses: u64,
}

/// How often the fold's caches answered its lookups since the store
/// opened ([`crate::Store::fold_cache`], for `/metrics`): whether their
/// generations are large enough for the learners being written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldCache {
    /// Packed buckets found decoded, and read from sled and decoded.
    pub bucket_hits: u64,
    pub bucket_misses: u64,
    /// Plain trees' values found, and read from sled.
    pub value_hits: u64,
    pub value_misses: u64,
}

impl<V> Generations<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            newer: HashMap::new(),
            older: HashMap::new(),
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    /// Lookups answered and not, since the cache was made.
    pub(crate) fn lookups(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    fn count(&mut self, found: bool) {
        match found {
            true => self.hits += 1,
            false => self.misses += 1,
        }
    }

    /// Takes an entry out (the taker puts it back once it is committed).
    pub(crate) fn take(&mut self, tree: TreeName, key: &[u8]) -> Option<V> {
        let id = (tree, key.to_vec());
        let found = self.newer.remove(&id).or_else(|| self.older.remove(&id));
        self.count(found.is_some());
        found
    }

    /// An entry, left in place (and kept into the next generation).
    pub(crate) fn get(&mut self, tree: TreeName, key: &[u8]) -> Option<&V> {
        let id = (tree, key.to_vec());
        if !self.newer.contains_key(&id) {
            let Some(value) = self.older.remove(&id) else {
                self.count(false);
                return None;
            };
            self.count(true);
            return Some(self.insert_newer(id, value));
        }
        self.count(true);
        self.newer.get(&id)
    }

    pub(crate) fn put(&mut self, tree: TreeName, key: Vec<u8>, value: V) {
        let id = (tree, key);
        self.older.remove(&id);
        self.insert_newer(id, value);
    }

    /// Puts every entry (committed ones, given back).
    pub(crate) fn put_all(&mut self, entries: impl IntoIterator<Item = (TreeKey, V)>) {
        for ((tree, key), value) in entries {
            self.put(tree, key, value);
        }
    }

    /// Whether `key` of `tree` is cached (so a write to it must update it).
    pub(crate) fn contains(&self, tree: TreeName, key: &[u8]) -> bool {
        let id = (tree, key.to_vec());
        self.newer.contains_key(&id) || self.older.contains_key(&id)
    }

    fn insert_newer(&mut self, id: TreeKey, value: V) -> &V {
        if self.newer.len() >= self.capacity && !self.newer.contains_key(&id) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.entry(id).insert_entry(value).into_mut()
    }

    /// Drops every entry of `tree` (it is being cleared).
    pub(crate) fn forget_tree(&mut self, tree: TreeName) {
        self.newer.retain(|(t, _), _| *t != tree);
        self.older.retain(|(t, _), _| *t != tree);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_generations_keep_what_was_used_lately_and_no_more() {
        let mut cache = Generations::new(3);
        for n in 0..3u8 {
            cache.put("t", vec![n], n);
        }
        assert_eq!(cache.get("t", &[0]), Some(&0), "read: kept in the newer");
        cache.put("t", vec![3], 3); // the newer was full: it becomes the older
        assert_eq!(cache.len(), 4);
        assert_eq!(
            cache.get("t", &[1]),
            Some(&1),
            "from the older, into the newer"
        );
        cache.put("t", vec![4], 4);
        cache.put("t", vec![5], 5); // full again: 0, 2 (older, unread) are dropped
        assert_eq!(cache.get("t", &[0]), None);
        assert_eq!(cache.get("t", &[2]), None);
        assert_eq!(cache.take("t", &[1]), Some(1));
        assert_eq!(cache.take("t", &[1]), None, "taken out");
        assert!(cache.len() <= 6);
        cache.put("u", vec![1], 9);
        cache.forget_tree("t");
        assert_eq!(cache.len(), 1);
        assert!(cache.contains("u", &[1]));
        // get: [0] hit; [1] hit; [0], [2] missed; take: [1] hit, then missed
        assert_eq!(cache.lookups(), (3, 3));
    }
}
