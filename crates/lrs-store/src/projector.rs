//! The projection engine: the read-model trees every projection declares,
//! the fold of one event into all of them (`apply_projections`, read through
//! a `Pending` set of changes), their commit together with the checkpoints
//! in one sled transaction, catch-up and rebuild from the log, and the
//! in-memory posting lists with their snapshot. The writer (`writer.rs`) and
//! the store (`store.rs`) both drive it; it imports neither.

use crate::error::StoreError;
use crate::log::{Head, Log};
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

/// The read-model trees every projection declares, in one sled database:
/// the store's own, or a temporary one that `verify` folds the log into.
pub(crate) struct Trees {
    trees: HashMap<TreeName, sled::Tree>,
    /// The trees stored packed (`crate::packed`), with their buckets.
    packed: HashMap<TreeName, lrs_projections::BucketOf>,
    /// What was written to each tree since it was opened ([`Trees::written`]).
    written: HashMap<TreeName, crate::written::Written>,
}

impl Trees {
    pub(crate) fn open(
        db: &sled::Db,
        projections: &[Box<dyn Projection>],
    ) -> Result<Self, StoreError> {
        let mut trees = HashMap::new();
        let mut packed = HashMap::new();
        let mut written = HashMap::new();
        for projection in projections {
            for name in projection.trees() {
                trees.insert(*name, db.open_tree(name)?);
                written.insert(*name, Default::default());
            }
            packed.extend(projection.packed().iter().copied());
        }
        Ok(Self {
            trees,
            packed,
            written,
        })
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
    /// entries through [`ReadModel`] instead.
    pub(crate) fn tree(&self, name: TreeName) -> sled::Tree {
        self.trees
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("tree {name} is not declared by a projection"))
    }

    /// Every entry of a tree whose key starts with `prefix`, in key order,
    /// packed or not: what the stores' reads use (the fold's reads go
    /// through [`ReadModel`], which has no errors to return).
    pub(crate) fn entries(
        &self,
        name: TreeName,
        prefix: &[u8],
    ) -> Result<crate::packed::Entries, StoreError> {
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
        for item in self.tree(name).iter() {
            let (key, value) = item?;
            hasher.update((key.len() as u64).to_be_bytes());
            hasher.update(&key);
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(&value);
        }
        Ok(hasher.finalize().into())
    }
}

impl ReadModel for Trees {
    fn get(&self, tree: TreeName, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(bucket_of) = self.packed(tree) {
            return crate::packed::get(&self.tree(tree), bucket_of, key)
                .ok()
                .flatten();
        }
        self.tree(tree).get(key).ok().flatten().map(|v| v.to_vec())
    }

    fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
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
        let batches = pending.take_batches();
        let mut trees: Vec<sled::Tree> = batches.iter().map(|(name, _)| self.tree(name)).collect();
        trees.push(self.meta.clone());
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        trees
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
            })
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
}

impl<'a> Pending<'a> {
    pub(crate) fn new(trees: &'a Trees) -> Self {
        Self {
            trees,
            changes: std::collections::BTreeMap::new(),
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
        for (tree, batch) in self.take_batches() {
            self.trees.tree(tree).apply_batch(batch)?;
        }
        Ok(())
    }

    /// Empties the pending changes into one batch per tree, in tree order.
    /// A packed tree's changes go into its buckets: each bucket with a
    /// change is read once, changed, and written (or removed when empty).
    pub(crate) fn take_batches(&mut self) -> Vec<(TreeName, sled::Batch)> {
        let mut batches: Vec<(TreeName, sled::Batch)> = Vec::new();
        let mut buckets: std::collections::BTreeMap<(TreeName, Vec<u8>), crate::packed::Bucket> =
            std::collections::BTreeMap::new();
        for ((tree, key), change) in std::mem::take(&mut self.changes) {
            if batches.last().is_none_or(|(name, _)| *name != tree) {
                batches.push((tree, sled::Batch::default()));
            }
            if let Some(bucket_of) = self.trees.packed(tree) {
                let (bucket_key, rest) = crate::packed::split(&key, bucket_of)
                    .unwrap_or_else(|| panic!("a malformed key for packed tree {tree}"));
                let bucket = buckets
                    .entry((tree, bucket_key.to_vec()))
                    .or_insert_with(|| {
                        self.trees
                            .tree(tree)
                            .get(bucket_key)
                            .ok()
                            .flatten()
                            .and_then(|value| crate::packed::decode(&value).ok())
                            .unwrap_or_default()
                    });
                match change {
                    Some(value) => bucket.insert(rest.to_vec(), value),
                    None => bucket.remove(rest),
                };
                continue;
            }
            self.trees.count(tree, &key, change.as_deref());
            let batch = &mut batches.last_mut().expect("just pushed").1;
            match change {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        for ((tree, bucket_key), bucket) in buckets {
            let batch = &mut batches
                .iter_mut()
                .find(|(name, _)| *name == tree)
                .expect("a batch for every tree with changes")
                .1;
            if bucket.is_empty() {
                self.trees.count(tree, &bucket_key, None);
                batch.remove(bucket_key);
            } else {
                let value = crate::packed::encode(&bucket);
                self.trees.count(tree, &bucket_key, Some(&value));
                batch.insert(bucket_key, value);
            }
        }
        batches
    }
}

impl ReadModel for Pending<'_> {
    fn get(&self, tree: TreeName, key: &[u8]) -> Option<Vec<u8>> {
        match self.changes.get(&(tree, key.to_vec())) {
            Some(change) => change.clone(),
            None => self.trees.get(tree, key),
        }
    }

    fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            self.trees.scan_prefix(tree, prefix).into_iter().collect();
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
    let path = shared.snapshot_dir.join(SNAPSHOT_FILE);
    let temporary = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&[POSTINGS_FORMAT])?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
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
                for name in projection.trees() {
                    shared.tree(name).clear()?;
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
    build_postings(shared, log, head, !from_scratch)
}
