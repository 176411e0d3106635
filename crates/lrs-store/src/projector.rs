//! The projection engine: the read-model trees every projection declares,
//! the fold of one event into all of them (`apply_projections`, read through
//! a `Pending` set of changes), their commit together with the checkpoints
//! in one sled transaction, catch-up and rebuild from the log, and the
//! in-memory posting lists with their snapshot. The writer (`writer.rs`) and
//! the store (`store.rs`) both drive it; it imports neither.

use crate::cache::{Generations, TreeKey};
use crate::error::StoreError;
use crate::log::{Head, Log};
use crate::resident::ResidentTree;
use crate::vault::Vault;
use lrs_core::events::StatementStoredV2;
use lrs_core::{Event, Position};
use lrs_projections::statement_index::{Postings, StatementSource};
use lrs_projections::{
    credentials, documents, statement_index, Op, Projection, ReadModel, TreeName,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::watch;

/// State shared by the writer thread and the readers.
pub(crate) struct Shared {
    pub(crate) db: sled::Db,
    /// The in-memory posting lists of the statement index.
    pub(crate) postings: std::sync::RwLock<Postings>,
    /// Where the posting lists are saved on close.
    pub(crate) snapshot_dir: PathBuf,
    /// sled's data file, for `fdatasync` after each flush (see [`Shared::make_durable`]).
    pub(crate) db_file: std::fs::File,
    pub(crate) vault: Arc<Vault>,
    pub(crate) trees: Trees,
    pub(crate) meta: sled::Tree,
    pub(crate) projections: Vec<Box<dyn Projection>>,
    pub(crate) head: watch::Sender<Position>,
    pub(crate) last_stored_micros: AtomicI64,
    pub(crate) writing: AtomicBool,
    /// Statements appended since this process opened the store.
    pub(crate) statements_appended: AtomicU64,
    /// The writer's group commits since this process opened the store.
    pub(crate) commits: crate::written::CommitCounts,
    /// The resident trees' journal since their snapshot (`crate::resident`);
    /// `None` while it does not describe them (then the next catch-up ends
    /// by saving a snapshot and starting a new one).
    pub(crate) journal: std::sync::Mutex<Option<crate::resident::Journal>>,
}

pub(crate) fn all_projections() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(statement_index::StatementIndex),
        Box::new(credentials::Credentials),
        Box::new(documents::Documents),
        Box::new(lrs_projections::staff_accounts::StaffAccounts),
        Box::new(lrs_projections::progress::Progress::default()),
        Box::new(lrs_projections::privacy::Privacy),
    ]
}

/// Decoded packed buckets kept per generation (`crate::cache`): a few
/// thousand learners' courses, a bucket of a few dozen records a few KB.
const BUCKETS_CACHED: usize = 4096;
/// Plain trees' values kept per generation: the few small values each
/// learner's statements read (memberships, library rows, firsts).
const VALUES_CACHED: usize = 32_768;

/// The read-model trees every projection declares, in one sled database
/// (the store's own, or a temporary one that `verify` folds the log into),
/// except the resident ones, which live in memory (`crate::resident`).
pub(crate) struct Trees {
    trees: HashMap<TreeName, sled::Tree>,
    resident: HashMap<TreeName, RwLock<ResidentTree>>,
    /// The trees stored packed (`crate::packed`), with their buckets.
    packed: HashMap<TreeName, lrs_projections::BucketOf>,
    /// What was written to each tree since it was opened ([`Trees::written`]).
    written: HashMap<TreeName, crate::written::Written>,
    /// Packed buckets as committed, decoded, and plain trees' values as
    /// committed (`None`: no such key), for the next folds
    /// (`crate::cache`): only [`Pending`] reads them.
    buckets: Mutex<Generations<crate::packed::Bucket>>,
    values: Mutex<Generations<Option<Vec<u8>>>>,
}

impl Trees {
    pub(crate) fn open(
        db: &sled::Db,
        projections: &[Box<dyn Projection>],
    ) -> Result<Self, StoreError> {
        let mut trees = HashMap::new();
        let mut resident = HashMap::new();
        let mut packed = HashMap::new();
        let mut written = HashMap::new();
        let existing = db.tree_names();
        for projection in projections {
            for name in projection.trees() {
                match projection.resident().iter().find(|(r, _)| r == name) {
                    Some((_, layout)) => {
                        resident.insert(*name, RwLock::new(ResidentTree::new(*layout)));
                        // A store from before the tree became resident: its
                        // sled copy goes (the projection's version changed
                        // with it, so it is folded again into memory).
                        if existing.iter().any(|e| e.as_ref() == name.as_bytes()) {
                            db.drop_tree(name)?;
                        }
                    }
                    None => {
                        trees.insert(*name, db.open_tree(name)?);
                        written.insert(*name, Default::default());
                    }
                }
            }
            packed.extend(projection.packed().iter().copied());
        }
        Ok(Self {
            trees,
            resident,
            packed,
            written,
            buckets: Mutex::new(Generations::new(BUCKETS_CACHED)),
            values: Mutex::new(Generations::new(VALUES_CACHED)),
        })
    }

    /// A resident tree (`None`: the tree is in sled).
    pub(crate) fn resident(&self, name: &str) -> Option<&RwLock<ResidentTree>> {
        self.resident.get(name)
    }

    /// The resident trees, by name.
    pub(crate) fn resident_trees(&self) -> Vec<(TreeName, &RwLock<ResidentTree>)> {
        let mut trees: Vec<_> = self.resident.iter().map(|(n, t)| (*n, t)).collect();
        trees.sort_by_key(|(name, _)| *name);
        trees
    }

    /// Replaces a resident tree's records (a snapshot loaded on open).
    pub(crate) fn replace_resident(&self, name: TreeName, tree: ResidentTree) {
        if let Some(current) = self.resident(name) {
            *current.write().expect("resident lock") = tree;
        }
    }

    /// Empties a tree, resident or in sled.
    pub(crate) fn clear(&self, name: TreeName) -> Result<(), StoreError> {
        match self.resident(name) {
            Some(tree) => tree.write().expect("resident lock").clear(),
            None => {
                self.bucket_cache().forget_tree(name);
                self.value_cache().forget_tree(name);
                self.tree(name).clear()?
            }
        }
        Ok(())
    }

    fn bucket_cache(&self) -> MutexGuard<'_, Generations<crate::packed::Bucket>> {
        self.buckets.lock().expect("bucket cache lock")
    }

    fn value_cache(&self) -> MutexGuard<'_, Generations<Option<Vec<u8>>>> {
        self.values.lock().expect("value cache lock")
    }

    /// How often the fold's caches answered it.
    pub(crate) fn fold_cache(&self) -> crate::cache::FoldCache {
        let (bucket_hits, bucket_misses) = self.bucket_cache().lookups();
        let (value_hits, value_misses) = self.value_cache().lookups();
        crate::cache::FoldCache {
            bucket_hits,
            bucket_misses,
            value_hits,
            value_misses,
        }
    }

    /// One value of a plain sled tree as committed, through the cache of
    /// values: what the fold reads (`None` on an error, as ever).
    fn committed_value(&self, tree: TreeName, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(value) = self.value_cache().get(tree, key) {
            return value.clone();
        }
        let value = self.tree(tree).get(key).ok()?.map(|value| value.to_vec());
        self.value_cache().put(tree, key.to_vec(), value.clone());
        value
    }

    /// One bucket of a packed tree as committed, decoded: taken out of the
    /// cache of decoded buckets, or read from sled (empty when absent, or
    /// when it does not decode, as the commit has always treated it).
    fn committed_bucket(&self, tree: TreeName, bucket_key: &[u8]) -> crate::packed::Bucket {
        if let Some(bucket) = self.bucket_cache().take(tree, bucket_key) {
            return bucket;
        }
        crate::packed::read_bucket(&self.tree(tree), bucket_key)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// One value of a tree, resident, packed or in sled.
    pub(crate) fn value(&self, name: TreeName, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(tree) = self.resident(name) {
            return Ok(tree.read().expect("resident lock").get(key));
        }
        if let Some(bucket_of) = self.packed(name) {
            return crate::packed::get(&self.tree(name), bucket_of, key);
        }
        Ok(self.tree(name).get(key)?.map(|value| value.to_vec()))
    }

    /// The first key of a tree (not packed) not less than `from`.
    pub(crate) fn key_from(
        &self,
        name: TreeName,
        from: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(tree) = self.resident(name) {
            return Ok(tree.read().expect("resident lock").key_from(from));
        }
        match self.tree(name).range(from..).next() {
            Some(item) => Ok(Some(item?.0.to_vec())),
            None => Ok(None),
        }
    }

    /// The trees' stored key and value widths, by name (for the journal).
    pub(crate) fn resident_widths(&self, name: &str) -> Option<crate::resident::Widths> {
        let tree = self.resident(name)?.read().expect("resident lock");
        Some((tree.stored_key_len(), tree.layout().value_len))
    }

    /// A commit's resident changes with their keys as stored (digests for
    /// trees of keys of any length), in tree order.
    fn stored_changes(&self, changes: ResidentChanges) -> ResidentChanges {
        changes
            .into_iter()
            .map(|(name, key, value)| {
                let tree = self
                    .resident(name)
                    .expect("resident changes are for resident trees")
                    .read()
                    .expect("resident lock");
                tree.check(&key, value.as_deref());
                let key = tree.stored(&key).into_owned();
                (name, key, value)
            })
            .collect()
    }

    /// Applies resident changes (keys as stored), after the commit's sled part.
    pub(crate) fn apply_stored<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        name: &str,
        changes: impl IntoIterator<Item = (K, Option<V>)>,
    ) {
        let Some(tree) = self.resident(name) else {
            return;
        };
        let mut tree = tree.write().expect("resident lock");
        for (key, value) in changes {
            match value {
                Some(value) => tree.insert_stored(key.as_ref(), value.as_ref()),
                None => tree.remove_stored(key.as_ref()),
            }
        }
    }

    fn apply_resident(&self, changes: ResidentChanges) {
        let mut changes = changes.into_iter().peekable();
        while let Some((name, _, _)) = changes.peek() {
            let name = *name;
            let mut these = Vec::new();
            while let Some((_, key, value)) = changes.next_if(|(n, _, _)| *n == name) {
                these.push((key, value));
            }
            self.apply_stored(name, these);
        }
    }

    /// Keys written (set or removed) to each tree since it was opened and
    /// their bytes: sled's files grow by a cost per written key more than
    /// per byte (docs/adr/0004), so this tells which read model costs disk.
    pub(crate) fn written(&self) -> Vec<crate::written::TreeWrites> {
        self.written
            .iter()
            .map(|(name, written)| written.report(name))
            .collect()
    }

    fn count(&self, tree: TreeName, key: &[u8], value: Option<&[u8]>) {
        if let Some(written) = self.written.get(tree) {
            written.add(key.len() + value.map_or(0, <[u8]>::len));
        }
    }

    /// The sled tree itself. For a packed tree its keys are buckets: read
    /// entries through [`ReadModel`] instead. A resident tree has none.
    pub(crate) fn tree(&self, name: TreeName) -> sled::Tree {
        self.trees
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("tree {name} is not a sled tree of a projection"))
    }

    /// Every entry of a tree whose key starts with `prefix`, in key order,
    /// packed or not: what the stores' reads use (the fold's reads go
    /// through [`ReadModel`], which has no errors to return).
    pub(crate) fn entries(
        &self,
        name: TreeName,
        prefix: &[u8],
    ) -> Result<crate::packed::Entries, StoreError> {
        if let Some(tree) = self.resident(name) {
            return Ok(tree.read().expect("resident lock").scan_prefix(prefix));
        }
        let tree = self.tree(name);
        if self.packed(name).is_some() {
            return crate::packed::scan_prefix(&tree, prefix);
        }
        tree.scan_prefix(prefix)
            .map(|item| {
                let (key, value) = item?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    /// How a packed tree's keys are bucketed; `None` for a plain tree.
    pub(crate) fn packed(&self, name: TreeName) -> Option<lrs_projections::BucketOf> {
        self.packed.get(name).copied()
    }

    /// SHA-256 over one tree's keys and values, in order.
    pub(crate) fn digest(&self, name: TreeName) -> Result<[u8; 32], StoreError> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(name.as_bytes());
        let mut add = |key: &[u8], value: &[u8]| {
            hasher.update((key.len() as u64).to_be_bytes());
            hasher.update(key);
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value);
        };
        if let Some(tree) = self.resident(name) {
            for (key, value) in tree.read().expect("resident lock").iter() {
                add(key, value);
            }
            return Ok(hasher.finalize().into());
        }
        if self.packed(name).is_some() {
            // The entries, not their compressed buckets (`crate::packed`).
            for (key, value) in self.entries(name, &[])? {
                add(&key, &value);
            }
            return Ok(hasher.finalize().into());
        }
        for item in self.tree(name).iter() {
            let (key, value) = item?;
            add(&key, &value);
        }
        Ok(hasher.finalize().into())
    }
}

impl ReadModel for Trees {
    fn get(&self, tree: TreeName, key: &[u8]) -> Option<Vec<u8>> {
        self.value(tree, key).ok().flatten()
    }

    fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        if let Some(resident) = self.resident(tree) {
            return resident.read().expect("resident lock").scan_prefix(prefix);
        }
        if self.packed(tree).is_some() {
            return crate::packed::scan_prefix(&self.tree(tree), prefix).unwrap_or_default();
        }
        self.tree(tree)
            .scan_prefix(prefix)
            .filter_map(Result::ok)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }
}

impl Shared {
    pub(crate) fn tree(&self, name: TreeName) -> sled::Tree {
        self.trees.tree(name)
    }

    pub(crate) fn trees(&self) -> &Trees {
        &self.trees
    }

    fn checkpoint_key(projection: &dyn Projection) -> Vec<u8> {
        format!("checkpoint/{}", projection.name()).into_bytes()
    }

    pub(crate) fn checkpoint(
        &self,
        projection: &dyn Projection,
    ) -> Result<Option<(u32, Position)>, StoreError> {
        Ok(self.meta.get(Self::checkpoint_key(projection))?.map(|v| {
            let version = u32::from_be_bytes(v[..4].try_into().expect("4 bytes"));
            let position = u64::from_be_bytes(v[4..12].try_into().expect("8 bytes"));
            (version, position)
        }))
    }

    /// Makes everything written so far durable. sled 0.34's `flush` ends in
    /// `sync_file_range`, which survives a process crash but neither a power
    /// loss (it does not flush the disk's write cache) nor file metadata, so
    /// an `fdatasync` of the data file follows it.
    pub(crate) fn make_durable(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.db_file.sync_data()?;
        Ok(())
    }

    pub(crate) fn save_checkpoints(&self, position: Position) -> Result<(), StoreError> {
        for (key, value) in self.checkpoints_at(position, None) {
            self.meta.insert(key, value)?;
        }
        Ok(())
    }

    /// The checkpoint records of every projection (or of `only`) at `position`.
    fn checkpoints_at(
        &self,
        position: Position,
        only: Option<&dyn Projection>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let record = |projection: &dyn Projection| {
            let mut value = projection.version().to_be_bytes().to_vec();
            value.extend_from_slice(&position.to_be_bytes());
            (Self::checkpoint_key(projection), value)
        };
        match only {
            Some(projection) => vec![record(projection)],
            None => self
                .projections
                .iter()
                .map(|p| record(p.as_ref()))
                .collect(),
        }
    }

    /// Writes the pending projection changes and the checkpoints saying
    /// which position they reach, in one sled transaction: after a crash the
    /// read models are exactly at their checkpoint, and replaying from there
    /// never folds an event twice (a counter would count it twice).
    pub(crate) fn commit(
        &self,
        pending: &mut Pending<'_>,
        position: Position,
        only: Option<&dyn Projection>,
    ) -> Result<(), StoreError> {
        let checkpoints = self.checkpoints_at(position, only);
        let Batches {
            batches,
            resident,
            buckets,
            values,
        } = pending.take_batches();
        let resident = self.trees.stored_changes(resident);
        // The journal first: a crash after it and before the transaction
        // leaves a record past the checkpoint, which opening drops.
        let covers: Option<Vec<&str>> = match only {
            None => Some(Vec::new()),
            Some(projection) if !projection.resident().is_empty() => Some(vec![projection.name()]),
            Some(_) => None,
        };
        let mut journal = self.journal.lock().expect("journal lock");
        let undo = match (journal.as_mut(), &covers) {
            (Some(journal), Some(covers)) => {
                let start = journal.len();
                journal.append(position, covers, &resident, |tree| {
                    self.trees.resident_widths(tree)
                })?;
                Some(start)
            }
            _ => None,
        };
        let mut trees: Vec<sled::Tree> = batches.iter().map(|(name, _)| self.tree(name)).collect();
        trees.push(self.meta.clone());
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        let committed = trees
            .as_slice()
            .transaction(|views| {
                for (view, (_, batch)) in views.iter().zip(&batches) {
                    view.apply_batch(batch)?;
                }
                let meta = views.last().expect("meta is last");
                for (key, value) in &checkpoints {
                    meta.insert(key.as_slice(), value.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                TransactionError::Abort(()) => {
                    StoreError::Corrupt("projection commit aborted".into())
                }
            });
        if let Err(error) = committed {
            if let (Some(journal), Some(start)) = (journal.as_mut(), undo) {
                journal.undo(start)?;
            }
            return Err(error);
        }
        self.trees.apply_resident(resident);
        self.trees.bucket_cache().put_all(buckets);
        self.trees.value_cache().put_all(values);
        Ok(())
    }
}

/// Folds one event into every projection. The ops go into `pending`, which
/// the next event of the same group reads through; the group's writer
/// flushes it once (one `sled::Batch` per tree), so a counter that every
/// statement of a group touches is written once per group, not per statement.
pub(crate) fn apply_projections(
    shared: &Shared,
    log: &Log,
    position: Position,
    event: &Event,
    pending: &mut Pending<'_>,
) -> Result<(), StoreError> {
    for projection in &shared.projections {
        apply_projection(pending, projection.as_ref(), position, event);
    }
    shared.postings.write().expect("postings lock").apply(
        position,
        event,
        &*pending,
        &LogStatements(log),
    );
    Ok(())
}

/// Projection writes not yet in sled, read through by the fold.
pub(crate) struct Pending<'a> {
    pub(crate) trees: &'a Trees,
    changes: std::collections::BTreeMap<(TreeName, Vec<u8>), Option<Vec<u8>>>,
    /// The packed buckets this fold has read, as committed (without
    /// `changes`): each decoded once however often the fold reads it, and
    /// given back to the trees' cache when the changes are committed.
    buckets: std::cell::RefCell<HashMap<TreeKey, crate::packed::Bucket>>,
}

impl<'a> Pending<'a> {
    pub(crate) fn new(trees: &'a Trees) -> Self {
        Self {
            trees,
            changes: std::collections::BTreeMap::new(),
            buckets: Default::default(),
        }
    }

    pub(crate) fn apply(&mut self, ops: Vec<Op>) {
        for op in ops {
            match op {
                Op::Put { tree, key, value } => {
                    self.changes.insert((tree, key), Some(value));
                }
                Op::Delete { tree, key } => {
                    self.changes.insert((tree, key), None);
                }
            }
        }
    }

    /// How many keys wait to be written.
    pub(crate) fn len(&self) -> usize {
        self.changes.len()
    }

    /// Writes everything pending, one batch per tree, without checkpoints
    /// (for scratch trees; the store's own go through [`Shared::commit`]).
    pub(crate) fn flush(&mut self) -> Result<(), StoreError> {
        let Batches {
            batches,
            resident,
            buckets,
            values,
        } = self.take_batches();
        for (tree, batch) in batches {
            self.trees.tree(tree).apply_batch(batch)?;
        }
        self.trees
            .apply_resident(self.trees.stored_changes(resident));
        self.trees.bucket_cache().put_all(buckets);
        self.trees.value_cache().put_all(values);
        Ok(())
    }

    /// Reads one committed bucket of a packed tree, decoding it at most
    /// once per fold.
    fn with_bucket<R>(
        &self,
        tree: TreeName,
        bucket_key: &[u8],
        read: impl FnOnce(&crate::packed::Bucket) -> R,
    ) -> R {
        let mut buckets = self.buckets.borrow_mut();
        let id = (tree, bucket_key.to_vec());
        if let Some(bucket) = buckets.get(&id) {
            return read(bucket);
        }
        let bucket = self.trees.committed_bucket(tree, bucket_key);
        read(buckets.entry(id).or_insert(bucket))
    }

    /// The committed entries of a tree under `prefix`, in key order.
    fn committed_scan(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        match self.trees.packed(tree) {
            // A prefix that is one whole bucket (a learner's course, say).
            Some(bucket_of)
                if self.trees.resident(tree).is_none()
                    && bucket_of(prefix) == Some(prefix.len()) =>
            {
                self.with_bucket(tree, prefix, |bucket| {
                    bucket
                        .iter()
                        .map(|(rest, value)| ([prefix, rest.as_slice()].concat(), value.clone()))
                        .collect()
                })
            }
            _ => self.trees.scan_prefix(tree, prefix),
        }
    }

    /// Empties the pending changes into one batch per sled tree, in tree
    /// order, and the resident trees' changes. A packed tree's changes go
    /// into its buckets: each bucket with a change is read once (if the
    /// fold has not read it already), changed, and written (or removed
    /// when empty); the buckets as they will be once committed come back
    /// with the batches.
    fn take_batches(&mut self) -> Batches {
        let mut batches: Vec<(TreeName, sled::Batch)> = Vec::new();
        let mut resident = Vec::new();
        let mut read = std::mem::take(self.buckets.get_mut());
        // The new values of the cached keys written, for after the commit.
        let mut values = Vec::new();
        let cached = self.trees.value_cache();
        let mut buckets: std::collections::BTreeMap<TreeKey, crate::packed::Bucket> =
            std::collections::BTreeMap::new();
        for ((tree, key), change) in std::mem::take(&mut self.changes) {
            if self.trees.resident(tree).is_some() {
                resident.push((tree, key, change));
                continue;
            }
            if batches.last().is_none_or(|(name, _)| *name != tree) {
                batches.push((tree, sled::Batch::default()));
            }
            if let Some(bucket_of) = self.trees.packed(tree) {
                let (bucket_key, rest) = crate::packed::split(&key, bucket_of)
                    .unwrap_or_else(|| panic!("a malformed key for packed tree {tree}"));
                let id = (tree, bucket_key.to_vec());
                let bucket = match buckets.entry(id) {
                    std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::btree_map::Entry::Vacant(entry) => {
                        let bucket = read
                            .remove(entry.key())
                            .unwrap_or_else(|| self.trees.committed_bucket(tree, bucket_key));
                        entry.insert(bucket)
                    }
                };
                match change {
                    Some(value) => bucket.insert(rest.to_vec(), value),
                    None => {
                        bucket.remove(rest);
                    }
                }
                continue;
            }
            self.trees.count(tree, &key, change.as_deref());
            if cached.contains(tree, &key) {
                values.push(((tree, key.clone()), change.clone()));
            }
            let batch = &mut batches.last_mut().expect("just pushed").1;
            match change {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        drop(cached);
        // What was read and not changed is as committed already.
        self.trees.bucket_cache().put_all(read);
        for ((tree, bucket_key), bucket) in &mut buckets {
            let batch = &mut batches
                .iter_mut()
                .find(|(name, _)| name == tree)
                .expect("a batch for every tree with changes")
                .1;
            match bucket.encode() {
                None => {
                    self.trees.count(tree, bucket_key, None);
                    batch.remove(bucket_key.as_slice());
                }
                Some(value) => {
                    self.trees.count(tree, bucket_key, Some(&value));
                    batch.insert(bucket_key.as_slice(), value);
                }
            }
        }
        Batches {
            batches,
            resident,
            buckets,
            values,
        }
    }
}

/// A commit's writes: one batch per sled tree, and the resident trees'
/// changes (applied in memory once the sled part is committed).
struct Batches {
    batches: Vec<(TreeName, sled::Batch)>,
    resident: ResidentChanges,
    /// The packed buckets the batches write, decoded: the cache's once
    /// the batches are committed.
    buckets: std::collections::BTreeMap<TreeKey, crate::packed::Bucket>,
    /// The cached plain keys the batches write, with their new values.
    values: Vec<(TreeKey, Option<Vec<u8>>)>,
}

/// Changes to resident trees, in tree order.
type ResidentChanges = Vec<crate::resident::TreeChange>;

impl ReadModel for Pending<'_> {
    fn get(&self, tree: TreeName, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(change) = self.changes.get(&(tree, key.to_vec())) {
            return change.clone();
        }
        if self.trees.resident(tree).is_some() {
            return self.trees.get(tree, key);
        }
        match self.trees.packed(tree) {
            Some(bucket_of) => {
                let (bucket_key, rest) = crate::packed::split(key, bucket_of)?;
                self.with_bucket(tree, bucket_key, |bucket| bucket.get(rest).cloned())
            }
            None => self.trees.committed_value(tree, key),
        }
    }

    fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            self.committed_scan(tree, prefix).into_iter().collect();
        for ((_, key), change) in self
            .changes
            .range((tree, prefix.to_vec())..)
            .take_while(|((t, k), _)| *t == tree && k.starts_with(prefix))
        {
            match change {
                Some(value) => {
                    merged.insert(key.clone(), value.clone());
                }
                None => {
                    merged.remove(key);
                }
            }
        }
        merged.into_iter().collect()
    }
}

/// The log as the postings' source of earlier statements.
pub(crate) struct LogStatements<'a>(pub(crate) &'a Log);

impl StatementSource for LogStatements<'_> {
    fn statement(&self, position: u64) -> Option<StatementStoredV2> {
        self.0.get(position).ok().flatten()?.event.into_statement()
    }
}

/// The posting lists as saved at a position, so that opening the store
/// replays only the log after it. Valid only for the log whose entry at
/// `position` has hash `entry_hash` (a restored or different log discards it).
#[derive(serde::Deserialize)]
struct PostingsSnapshotV1 {
    position: Position,
    entry_hash: [u8; 32],
    postings: Postings,
}

pub(crate) const SNAPSHOT_FILE: &str = "postings.snapshot";
/// Format of the snapshot: bump when the lists change meaning (2: library
/// and credential scope lists; 3: an erased person's lists dropped), so an
/// older snapshot is rebuilt from the log.
pub(crate) const POSTINGS_FORMAT: u8 = 3;

pub(crate) fn entry_hash_at(log: &Log, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
    if position == 0 {
        return Ok(Some([0; 32]));
    }
    Ok(log.get(position)?.map(|entry| entry.hash))
}

/// The head saved with the posting-list snapshot, without decoding the lists.
pub(crate) fn read_witness(snapshot_dir: &std::path::Path) -> Option<Head> {
    use std::io::Read;
    let mut file = std::fs::File::open(snapshot_dir.join(SNAPSHOT_FILE)).ok()?;
    let mut prefix = [0u8; 1 + 10 + 32];
    let read = file.read(&mut prefix).ok()?;
    if read < 1 || !(1..=POSTINGS_FORMAT).contains(&prefix[0]) {
        return None;
    }
    let ((position, hash), _) =
        postcard::take_from_bytes::<(Position, [u8; 32])>(&prefix[1..read]).ok()?;
    Some(Head { position, hash })
}

/// Saves the posting lists at the log head (on close), atomically: a
/// temporary file, synced, then renamed.
pub(crate) fn save_postings_snapshot(shared: &Shared, log: &Log) -> Result<(), StoreError> {
    let postings = shared.postings.read().expect("postings lock");
    let position = postings.positions();
    let Some(entry_hash) = entry_hash_at(log, position)? else {
        return Ok(());
    };
    // Encoded as the fields of `PostingsSnapshotV1`, without cloning the lists.
    let bytes = postcard::to_stdvec(&(position, entry_hash, &*postings))
        .map_err(|e| StoreError::Corrupt(format!("encoding postings snapshot: {e}")))?;
    drop(postings);
    crate::files::replace(&shared.snapshot_dir.join(SNAPSHOT_FILE), |file| {
        use std::io::Write;
        file.write_all(&[POSTINGS_FORMAT])?;
        file.write_all(&bytes)
    })?;
    tracing::info!(position, bytes = bytes.len(), "posting lists saved");
    Ok(())
}

/// The saved posting lists, if there are any for this log.
pub(crate) fn load_postings_snapshot(
    shared: &Shared,
    log: &Log,
    head: Head,
) -> Option<(Position, Postings)> {
    let bytes = std::fs::read(shared.snapshot_dir.join(SNAPSHOT_FILE)).ok()?;
    if bytes.first() != Some(&POSTINGS_FORMAT) {
        return None;
    }
    let snapshot: PostingsSnapshotV1 = postcard::from_bytes(&bytes[1..]).ok()?;
    if snapshot.position > head.position
        || entry_hash_at(log, snapshot.position).ok()?? != snapshot.entry_hash
    {
        tracing::warn!(
            position = snapshot.position,
            "posting lists snapshot does not belong to this log; rebuilding"
        );
        return None;
    }
    Some((snapshot.position, snapshot.postings))
}

/// Brings the in-memory postings to the head: from the saved snapshot if it
/// belongs to this log, else from the start, with progress every 100,000.
/// The sled projections must already be at the head.
pub(crate) fn build_postings(
    shared: &Shared,
    log: &Log,
    head: Head,
    use_snapshot: bool,
) -> Result<(), StoreError> {
    let (from, mut postings) = match use_snapshot
        .then(|| load_postings_snapshot(shared, log, head))
        .flatten()
    {
        Some((position, postings)) => (position + 1, postings),
        None => (1, Postings::default()),
    };
    let started = std::time::Instant::now();
    for entry in log.read_from(from) {
        let entry = entry?;
        postings.apply(
            entry.position,
            &entry.event,
            &shared.trees,
            &LogStatements(log),
        );
        if entry.position % 100_000 == 0 {
            tracing::info!(
                position = entry.position,
                to = head.position,
                "building posting lists"
            );
        }
    }
    tracing::info!(
        from,
        to = head.position,
        postings = postings.len(),
        seconds = started.elapsed().as_secs_f64(),
        "posting lists ready"
    );
    *shared.postings.write().expect("postings lock") = postings;
    Ok(())
}

/// Brings the resident trees (`crate::resident`) to their projections'
/// checkpoints: the snapshot saved on close, then the journal of every
/// commit since. A projection whose trees do not reach its checkpoint that
/// way (no snapshot, another log, a journal that lost its tail to a power
/// loss, a different version) has its checkpoint dropped, so that
/// [`catch_up`] folds it again from the log's start. Runs before
/// [`catch_up`]; returns the projections it left to fold again.
pub(crate) fn load_resident(shared: &Shared, log: &Log) -> Result<Vec<&'static str>, StoreError> {
    let owners: Vec<&dyn Projection> = shared
        .projections
        .iter()
        .map(|projection| projection.as_ref())
        .filter(|projection| !projection.resident().is_empty())
        .collect();
    let layouts: Vec<(TreeName, lrs_projections::Resident)> = owners
        .iter()
        .flat_map(|owner| owner.resident().iter().copied())
        .collect();
    // Where each owner's trees are: empty (position 0) until the snapshot
    // says otherwise; `None`: unknown.
    let mut reached: HashMap<&str, Option<Position>> =
        owners.iter().map(|owner| (owner.name(), Some(0))).collect();
    let mut resume_at = None;
    let dir = &shared.snapshot_dir;
    let snapshot = crate::resident::load(dir, &layouts);
    if let Some((head, trees)) = snapshot {
        if entry_hash_at(log, head.position)? == Some(head.hash) {
            for owner in &owners {
                reached.insert(owner.name(), None);
            }
            let mut complete: HashMap<&str, usize> = HashMap::new();
            for (name, version, tree) in trees {
                let owner = owner_of(&owners, name).expect("load keeps known trees only");
                if version == owner.version() {
                    shared.trees.replace_resident(name, tree);
                    *complete.entry(owner.name()).or_default() += 1;
                }
            }
            for owner in &owners {
                if complete.get(owner.name()) == Some(&owner.resident().len()) {
                    reached.insert(owner.name(), Some(head.position));
                }
            }
            resume_at = replay_journal(shared, &owners, head, &mut reached)?;
        }
    }
    let mut refold = Vec::new();
    for owner in &owners {
        let Some((version, position)) = shared.checkpoint(*owner)? else {
            continue;
        };
        if version == owner.version() && reached[owner.name()] == Some(position) {
            continue;
        }
        // Without a checkpoint, catch-up empties its trees and folds it again.
        if position > 0 {
            tracing::info!(
                projection = owner.name(),
                position,
                "its in-memory trees do not reach its checkpoint: folding it again from the log"
            );
            refold.push(owner.name());
        }
        shared.meta.remove(Shared::checkpoint_key(*owner))?;
    }
    if let (Some(len), true) = (resume_at, refold.is_empty()) {
        *shared.journal.lock().expect("journal lock") =
            Some(crate::resident::Journal::resume(dir, len)?);
    }
    Ok(refold)
}

/// The projection of `owners` that declares the resident tree `tree`.
fn owner_of<'a>(owners: &[&'a dyn Projection], tree: &str) -> Option<&'a dyn Projection> {
    owners
        .iter()
        .copied()
        .find(|owner| owner.resident().iter().any(|(name, _)| *name == tree))
}

/// Applies the journal after the snapshot at `base` to the resident trees
/// of the projections in `reached` that the snapshot brought to `base`,
/// moving each to the position of the last commit that covered it. A
/// record past a projection's checkpoint is a commit that never happened
/// (a crash between the two); it may only be the last. Returns the length
/// of the journal to go on appending after, if it can be.
fn replay_journal(
    shared: &Shared,
    owners: &[&dyn Projection],
    base: Head,
    reached: &mut HashMap<&str, Option<Position>>,
) -> Result<Option<u64>, StoreError> {
    let mut checkpoints: HashMap<&str, Position> = HashMap::new();
    for owner in owners {
        if let Some((_, position)) = shared.checkpoint(*owner)? {
            checkpoints.insert(owner.name(), position);
        }
    }
    let mut applied_len = None;
    let mut uncommitted = false;
    let mut consistent = true;
    let journal = crate::resident::read_journal(
        &shared.snapshot_dir,
        base,
        |tree| shared.trees.resident_widths(tree),
        |record, end| {
            if !consistent {
                return;
            }
            if uncommitted {
                consistent = false; // a record after one that never happened
                return;
            }
            let covered: Vec<&str> = owners
                .iter()
                .map(|owner| owner.name())
                .filter(|name| record.covers.is_empty() || record.covers.iter().any(|c| c == name))
                .collect();
            if covered
                .iter()
                .any(|name| checkpoints.get(name).is_none_or(|c| record.position > *c))
            {
                uncommitted = true;
                return;
            }
            for (tree, changes) in record.changes {
                if owner_of(owners, &tree).is_some_and(|owner| covered.contains(&owner.name())) {
                    shared.trees.apply_stored(&tree, changes);
                }
            }
            for name in covered {
                if let Some(at) = reached.get_mut(name) {
                    if at.is_some() {
                        *at = Some(record.position);
                    }
                }
            }
            applied_len = Some(end);
        },
    );
    let journal = match journal {
        Ok(journal) => journal,
        Err(error) => {
            tracing::warn!(%error, "resident journal unreadable");
            None
        }
    };
    match journal {
        Some(journal_base) if journal_base == base && consistent => {
            // Nothing applied: the journal is its header alone.
            Ok(Some(
                applied_len.unwrap_or(crate::resident::JOURNAL_HEADER_LEN),
            ))
        }
        Some(journal_base) if journal_base == base => {
            for at in reached.values_mut() {
                *at = None;
            }
            Ok(None)
        }
        // A journal from before the snapshot (a close that stopped between
        // saving the snapshot and starting the journal), or none: the
        // snapshot alone stands; a new journal starts after the catch-up.
        _ => Ok(None),
    }
}

/// Saves the resident trees at the checkpoint their projections share, and
/// starts a new, empty journal after it (on close, and after a catch-up
/// that folded one of them again). Saves nothing if the checkpoints differ
/// (a writer that stopped on an error): the next open folds them again.
pub(crate) fn save_resident(shared: &Shared, log: &Log) -> Result<(), StoreError> {
    let mut at = None;
    let mut versions: HashMap<TreeName, u32> = HashMap::new();
    for projection in &shared.projections {
        if projection.resident().is_empty() {
            continue;
        }
        let checkpoint = shared.checkpoint(projection.as_ref())?.map(|(_, p)| p);
        if checkpoint.is_none() || at.is_some_and(|at| Some(at) != checkpoint) {
            return Ok(());
        }
        at = checkpoint;
        for (name, _) in projection.resident() {
            versions.insert(name, projection.version());
        }
    }
    let Some(position) = at else {
        return Ok(());
    };
    let Some(hash) = entry_hash_at(log, position)? else {
        return Ok(());
    };
    let head = Head { position, hash };
    let mut journal = shared.journal.lock().expect("journal lock");
    let trees = shared.trees.resident_trees();
    let guards: Vec<_> = trees
        .iter()
        .map(|(name, tree)| (*name, tree.read().expect("resident lock")))
        .collect();
    let views: Vec<(TreeName, u32, &ResidentTree)> = guards
        .iter()
        .map(|(name, guard)| (*name, versions[name], &**guard))
        .collect();
    crate::resident::save(&shared.snapshot_dir, head, &views)?;
    *journal = Some(crate::resident::Journal::create(
        &shared.snapshot_dir,
        head,
    )?);
    Ok(())
}

pub(crate) fn apply_projection(
    pending: &mut Pending<'_>,
    projection: &dyn Projection,
    position: Position,
    event: &Event,
) {
    let mut ops = Vec::new();
    projection.apply(position, event, &*pending, &mut ops);
    pending.apply(ops);
}

/// Replays flush their pending writes at this many keys.
pub(crate) const REPLAY_FLUSH_KEYS: usize = 200_000;

/// Brings every projection from its checkpoint to the log's head. A
/// projection whose version changed, or whose checkpoint is ahead of the log
/// (which a crash can't produce, but a restored copy could), is rebuilt.
pub(crate) fn catch_up(shared: &Shared, log: &Log, head: Head) -> Result<(), StoreError> {
    catch_up_from(shared, log, head, false)
}

/// Drops every projection and folds the whole log again.
pub(crate) fn rebuild_all(shared: &Shared, log: &Log, head: Head) -> Result<(), StoreError> {
    catch_up_from(shared, log, head, true)
}

pub(crate) fn catch_up_from(
    shared: &Shared,
    log: &Log,
    head: Head,
    from_scratch: bool,
) -> Result<(), StoreError> {
    for projection in &shared.projections {
        let projection = projection.as_ref();
        let checkpoint = if from_scratch {
            None
        } else {
            shared.checkpoint(projection)?
        };
        let from = match checkpoint {
            Some((version, position))
                if version == projection.version() && position <= head.position =>
            {
                position + 1
            }
            _ => {
                if !projection.resident().is_empty() {
                    // The journal no longer describes the trees.
                    *shared.journal.lock().expect("journal lock") = None;
                }
                for name in projection.trees() {
                    shared.trees.clear(name)?;
                }
                1
            }
        };
        if from > head.position {
            continue;
        }
        tracing::info!(
            projection = projection.name(),
            from,
            to = head.position,
            "bringing projection up to the log head"
        );
        let mut pending = Pending::new(&shared.trees);
        for entry in log.read_from(from) {
            let entry = entry?;
            apply_projection(&mut pending, projection, entry.position, &entry.event);
            if pending.len() >= REPLAY_FLUSH_KEYS {
                shared.commit(&mut pending, entry.position, Some(projection))?;
            }
            if entry.position % 100_000 == 0 {
                tracing::info!(
                    projection = projection.name(),
                    position = entry.position,
                    to = head.position,
                    "replaying"
                );
            }
        }
        shared.commit(&mut pending, head.position, Some(projection))?;
    }
    shared.save_checkpoints(head.position)?;
    shared.make_durable()?;
    if shared.journal.lock().expect("journal lock").is_none() {
        save_resident(shared, log)?;
    }
    build_postings(shared, log, head, !from_scratch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrs_projections::progress::{Progress, LEARNERS, LIBRARY};

    /// The fold reads through [`Pending`] and the caches of decoded
    /// buckets and plain values; whatever it reads must be what sled holds
    /// plus the group's own changes, across groups committed and groups
    /// abandoned, for a packed tree and a plain one alike.
    #[test]
    fn the_fold_reads_what_sled_holds_through_the_caches() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let projections: Vec<Box<dyn Projection>> = vec![Box::new(Progress::default())];
        let trees = Trees::open(&db, &projections).unwrap();
        assert!(trees.packed(LEARNERS).is_some() && trees.packed(LIBRARY).is_none());
        assert!(trees.resident(LIBRARY).is_none(), "a plain sled tree");
        let bucket = |learner: u64, course: u64| {
            [
                &[learner as u8; 16][..],
                format!("https://c.example/{course}").as_bytes(),
                &[0],
            ]
            .concat()
        };
        let mut committed: std::collections::BTreeMap<(TreeName, Vec<u8>), Vec<u8>> =
            Default::default();
        let mut next = crate::testing::random_below(0x2545_f491_4f6c_dd1d_u64);
        for group in 0..80 {
            let mut working = committed.clone();
            let mut pending = Pending::new(&trees);
            for _ in 0..12 {
                let prefix = bucket(next(4), next(2));
                let (tree, key) = match next(2) {
                    0 => (
                        LEARNERS,
                        [&prefix[..], b"m", &[0], &next(6).to_be_bytes()].concat(),
                    ),
                    _ => (LIBRARY, [&prefix[..], &next(6).to_be_bytes()].concat()),
                };
                let id = (tree, key.clone());
                assert_eq!(pending.get(tree, &key), working.get(&id).cloned());
                if next(4) == 0 {
                    pending.apply(vec![Op::Delete { tree, key }]);
                    working.remove(&id);
                } else {
                    let value = format!("group {group}, {}", next(1000)).into_bytes();
                    pending.apply(vec![Op::Put {
                        tree,
                        key,
                        value: value.clone(),
                    }]);
                    working.insert(id, value);
                }
                let expected: Vec<_> = working
                    .iter()
                    .filter(|((t, k), _)| *t == tree && k.starts_with(&prefix))
                    .map(|((_, k), v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(pending.scan_prefix(tree, &prefix), expected);
            }
            if group % 5 == 3 {
                drop(pending); // abandoned: nothing of it may be read later
            } else {
                pending.flush().unwrap();
                committed = working;
            }
            // The same database through trees without caches.
            let fresh = Trees::open(&db, &projections).unwrap();
            for tree in [LEARNERS, LIBRARY] {
                let expected: Vec<_> = committed
                    .iter()
                    .filter(|((t, _), _)| *t == tree)
                    .map(|((_, k), v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(fresh.entries(tree, &[]).unwrap(), expected, "{tree}");
            }
        }
        assert!(trees.bucket_cache().len() > 0, "committed buckets are kept");
        assert!(trees.value_cache().len() > 0, "values read are kept");
        for tree in [LEARNERS, LIBRARY] {
            trees.clear(tree).unwrap();
            let ((_, key), _) = committed
                .iter()
                .find(|((t, _), _)| *t == tree)
                .expect("something was committed");
            assert_eq!(Pending::new(&trees).get(tree, key), None, "{tree} cleared");
        }
        assert_eq!(trees.bucket_cache().len(), 0);
    }

    /// A bucket written at zstd's default level (before lever 21) and the
    /// same entries written by today's encoder are different bytes with
    /// the same digest, so `lrs verify` finds an upgraded store equal to
    /// its rebuild.
    #[test]
    fn a_packed_trees_digest_is_over_its_entries_not_its_compressed_bytes() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let projections: Vec<Box<dyn Projection>> = vec![Box::new(Progress::default())];
        let trees = Trees::open(&db, &projections).unwrap();
        let bucket_key = [&[7u8; 16][..], b"https://c.example/course", &[0]].concat();
        let bucket: crate::packed::Bucket = (0..40u64)
            .map(|n| {
                let rest = [&b"https://c.example/module"[..], &[0], &n.to_be_bytes()].concat();
                let value = format!(
                    "a record of statement {n} with its module, time and score {}",
                    n * 37
                )
                .into_bytes();
                (rest, value)
            })
            .collect();
        let today = bucket.clone().encode().unwrap();
        let pairs: Vec<_> = bucket.iter().collect();
        let before = lrs_core::compress::compress_tagged(&postcard::to_stdvec(&pairs).unwrap());
        assert_ne!(today, before, "the two levels write different bytes");
        let tree = trees.tree(LEARNERS);
        tree.insert(&bucket_key, today).unwrap();
        let digest_today = trees.digest(LEARNERS).unwrap();
        tree.insert(&bucket_key, before).unwrap();
        assert_eq!(trees.digest(LEARNERS).unwrap(), digest_today);
        // A different entry is a different digest.
        let mut changed = bucket.clone();
        changed.insert(b"x".to_vec(), b"y".to_vec());
        tree.insert(&bucket_key, changed.encode().unwrap()).unwrap();
        assert_ne!(trees.digest(LEARNERS).unwrap(), digest_today);
    }
}
