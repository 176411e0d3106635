//! The store: opens the data directory (sled database with the log and the
//! read-model trees, and the vault file), brings every projection up to the
//! log's head, and hands out the writer and the read side.

use crate::log::{Head, Log, LogEntry};
use crate::vault::{MasterKey, Vault};
use crate::writer::{self, AppendError, DocumentExpectation, PreparedStatement, Request};
use crate::StoreError;
use lrs_core::events::StatementStoredV2;
use lrs_core::{Event, Position};
use lrs_projections::credentials::{CredentialRecord, RoleRecord, TenantRecord};
use lrs_projections::statement_index::{Postings, StatementSource};
use lrs_projections::{
    credentials, documents, statement_index, Op, Projection, ReadModel, TreeName,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub master_key: MasterKey,
    /// sled's page cache, bytes.
    pub cache_capacity: u64,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>, master_key: MasterKey) -> Self {
        Self {
            data_dir: data_dir.into(),
            master_key,
            cache_capacity: 512 * 1024 * 1024,
        }
    }
}

/// State shared by the writer thread and the readers.
pub(crate) struct Shared {
    pub(crate) db: sled::Db,
    /// The in-memory posting lists of the statement index.
    pub(crate) postings: std::sync::RwLock<Postings>,
    /// Where the posting lists are saved on close.
    snapshot_dir: PathBuf,
    /// sled's data file, for `fdatasync` after each flush (see [`Shared::make_durable`]).
    db_file: std::fs::File,
    pub(crate) vault: Arc<Vault>,
    trees: Trees,
    meta: sled::Tree,
    projections: Vec<Box<dyn Projection>>,
    pub(crate) head: watch::Sender<Position>,
    pub(crate) last_stored_micros: AtomicI64,
    pub(crate) writing: AtomicBool,
    /// Statements appended since this process opened the store.
    pub(crate) statements_appended: AtomicU64,
}

pub struct Store {
    pub(crate) shared: Arc<Shared>,
    log: Arc<Log>,
    requests: mpsc::Sender<Request>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    digest_key: [u8; 32],
    data_dir: PathBuf,
    /// The head recorded at the last clean shutdown (with the posting-list
    /// snapshot), read before anything else: `verify` checks the log still
    /// reaches it with the same hash, which catches a log that lost its tail.
    witness: Option<Head>,
}

fn all_projections() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(statement_index::StatementIndex),
        Box::new(credentials::Credentials),
        Box::new(documents::Documents),
        Box::new(lrs_projections::staff_accounts::StaffAccounts),
        Box::new(lrs_projections::progress::Progress::default()),
    ]
}

/// The read-model trees every projection declares, in one sled database:
/// the store's own, or a temporary one that `verify` folds the log into.
pub(crate) struct Trees(HashMap<TreeName, sled::Tree>);

impl Trees {
    fn open(db: &sled::Db, projections: &[Box<dyn Projection>]) -> Result<Self, StoreError> {
        let mut trees = HashMap::new();
        for projection in projections {
            for name in projection.trees() {
                trees.insert(*name, db.open_tree(name)?);
            }
        }
        Ok(Self(trees))
    }

    pub(crate) fn tree(&self, name: TreeName) -> sled::Tree {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("tree {name} is not declared by a projection"))
    }

    /// SHA-256 over one tree's keys and values, in order.
    fn digest(&self, name: TreeName) -> Result<[u8; 32], StoreError> {
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
        self.tree(tree).get(key).ok().flatten().map(|v| v.to_vec())
    }

    fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
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

    fn checkpoint(
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
    trees: &'a Trees,
    changes: std::collections::BTreeMap<(TreeName, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> Pending<'a> {
    pub(crate) fn new(trees: &'a Trees) -> Self {
        Self {
            trees,
            changes: std::collections::BTreeMap::new(),
        }
    }

    fn apply(&mut self, ops: Vec<Op>) {
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
    fn take_batches(&mut self) -> Vec<(TreeName, sled::Batch)> {
        let mut batches: Vec<(TreeName, sled::Batch)> = Vec::new();
        for ((tree, key), change) in std::mem::take(&mut self.changes) {
            if batches.last().is_none_or(|(name, _)| *name != tree) {
                batches.push((tree, sled::Batch::default()));
            }
            let batch = &mut batches.last_mut().expect("just pushed").1;
            match change {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
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
struct LogStatements<'a>(&'a Log);

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

const SNAPSHOT_FILE: &str = "postings.snapshot";
/// Format of the snapshot: bump when the lists change meaning (2: library
/// and credential scope lists), so an older snapshot is rebuilt from the log.
const POSTINGS_FORMAT: u8 = 2;

fn entry_hash_at(log: &Log, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
    if position == 0 {
        return Ok(Some([0; 32]));
    }
    Ok(log.get(position)?.map(|entry| entry.hash))
}

/// The head saved with the posting-list snapshot, without decoding the lists.
fn read_witness(snapshot_dir: &std::path::Path) -> Option<Head> {
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
fn save_postings_snapshot(shared: &Shared, log: &Log) -> Result<(), StoreError> {
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
fn load_postings_snapshot(shared: &Shared, log: &Log, head: Head) -> Option<(Position, Postings)> {
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
fn build_postings(
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

fn apply_projection(
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
const REPLAY_FLUSH_KEYS: usize = 200_000;

impl Store {
    /// Opens (or creates) the data directory and starts the writer.
    pub fn open(config: StoreConfig) -> Result<Arc<Store>, StoreError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let db = sled::Config::new()
            .path(config.data_dir.join("log"))
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(None)
            .open()?;
        let vault = Arc::new(Vault::open(
            &config.data_dir.join("vault"),
            &config.master_key,
        )?);
        let (log, head) = Log::open(&db)?;
        let witness = read_witness(&config.data_dir.join("log"));
        let projections = all_projections();
        let trees = Trees::open(&db, &projections)?;
        let meta = db.open_tree("meta")?;
        let (head_tx, _) = watch::channel(head.position);
        let db_file = std::fs::File::open(config.data_dir.join("log").join("db"))?;
        let shared = Arc::new(Shared {
            db,
            postings: Default::default(),
            snapshot_dir: config.data_dir.join("log"),
            db_file,
            vault,
            trees,
            meta,
            projections,
            head: head_tx,
            last_stored_micros: AtomicI64::new(0),
            writing: AtomicBool::new(false),
            statements_appended: AtomicU64::new(0),
        });
        let log = Arc::new(log);
        catch_up(&shared, &log, head)?;
        if let Some(entry) = last_statement(&log, head)? {
            shared.last_stored_micros.store(entry, Ordering::SeqCst);
        }
        let (requests, receiver) = mpsc::channel(1024);
        let writer = {
            let (shared, log) = (shared.clone(), log.clone());
            std::thread::Builder::new()
                .name("lrs-log-writer".into())
                .spawn(move || writer::run(shared, log, head, receiver))?
        };
        let digest_key = config.master_key.digest_key();
        Ok(Arc::new(Store {
            shared,
            log,
            requests,
            writer: std::sync::Mutex::new(Some(writer)),
            digest_key,
            data_dir: config.data_dir,
            witness,
        }))
    }

    /// The data directory the store lives in.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The head recorded at the last clean shutdown, if there was one.
    pub fn clean_shutdown_witness(&self) -> Option<Head> {
        self.witness
    }

    /// The entry hash at `position` (zeros for position 0).
    pub fn entry_hash(&self, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
        entry_hash_at(&self.log, position)
    }

    /// Folds the log up to the current head into fresh, temporary read
    /// models and compares them with the stored ones, tree by tree and the
    /// in-memory posting lists. Returns what differs (empty: identical).
    /// Exact only while no writes arrive (`lrs verify` runs on a stopped store).
    pub fn check_projections(
        &self,
        mut progress: impl FnMut(Position),
    ) -> Result<Vec<String>, StoreError> {
        let head = self.head();
        let scratch = self.data_dir.join(".verify-rebuild");
        let _ = std::fs::remove_dir_all(&scratch);
        let db = sled::Config::new()
            .path(&scratch)
            .temporary(true)
            .flush_every_ms(None)
            .cache_capacity(256 * 1024 * 1024)
            .open()?;
        let projections = all_projections();
        let trees = Trees::open(&db, &projections)?;
        let mut postings = Postings::default();
        let mut pending = Pending::new(&trees);
        for entry in self.log.read_from(1) {
            let entry = entry?;
            if entry.position > head {
                break;
            }
            for projection in &projections {
                apply_projection(
                    &mut pending,
                    projection.as_ref(),
                    entry.position,
                    &entry.event,
                );
            }
            postings.apply(
                entry.position,
                &entry.event,
                &pending,
                &LogStatements(&self.log),
            );
            if pending.len() >= REPLAY_FLUSH_KEYS {
                pending.flush()?;
            }
            if entry.position % 100_000 == 0 {
                progress(entry.position);
            }
        }
        pending.flush()?;
        drop(pending);
        let mut differences = Vec::new();
        for projection in &projections {
            for name in projection.trees() {
                if trees.digest(name)? != self.shared.trees.digest(name)? {
                    differences.push(format!(
                        "projection {}, tree {name}: {}",
                        projection.name(),
                        first_difference(&self.shared.tree(name), &trees.tree(name))?
                    ));
                }
            }
        }
        if postings.digest() != self.shared.postings.read().expect("postings lock").digest() {
            differences.push("the in-memory posting lists of the statement index".into());
        }
        drop(trees);
        drop(db);
        let _ = std::fs::remove_dir_all(&scratch);
        Ok(differences)
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.shared.vault
    }

    /// Key for the keyed comparison digest of statements.
    pub fn digest_key(&self) -> &[u8; 32] {
        &self.digest_key
    }

    pub fn head(&self) -> Position {
        *self.shared.head.borrow()
    }

    /// A receiver that changes whenever the log's head moves: how followers
    /// (projections outside the writer, exports) follow the tail.
    pub fn follow(&self) -> watch::Receiver<Position> {
        self.shared.head.subscribe()
    }

    /// Statements newly appended to the log since this process opened the
    /// store (an idempotent repeat appends nothing). Counted by the writer
    /// before the head moves, so before any of them is acknowledged.
    pub fn statements_appended(&self) -> u64 {
        self.shared.statements_appended.load(Ordering::SeqCst)
    }

    /// Stored time up to which every acknowledged statement is visible to
    /// queries: now while no group is being written, else the last committed one.
    pub fn consistent_through_micros(&self) -> i64 {
        if self.shared.writing.load(Ordering::SeqCst) {
            self.shared.last_stored_micros.load(Ordering::SeqCst)
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or_default()
                .max(self.shared.last_stored_micros.load(Ordering::SeqCst))
        }
    }

    /// Appends statements for a tenant; answers once they are durable, with
    /// each statement's position (an existing identical statement keeps its own).
    pub async fn append_statements(
        &self,
        tenant: String,
        credential_key: String,
        statements: Vec<PreparedStatement>,
    ) -> Result<Vec<Position>, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Statements {
                tenant,
                credential_key,
                statements,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Appends one non-statement event (credentials, administration).
    pub async fn append_event(&self, event: Event) -> Result<Position, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Event {
                event: Box::new(event),
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Appends a document event if, at the moment it is appended, the
    /// document's current ETag is what `expect` asks for.
    pub async fn append_document(
        &self,
        event: Event,
        expect: DocumentExpectation,
    ) -> Result<Position, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Document {
                event: Box::new(event),
                expect,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The current record of a document, if it exists.
    pub fn document(&self, key: &[u8]) -> Result<Option<documents::DocumentRef>, StoreError> {
        match self.shared.tree(documents::BY_KEY).get(key)? {
            Some(bytes) => {
                Ok(Some(postcard::from_bytes(&bytes).map_err(|e| {
                    StoreError::Corrupt(format!("document record: {e}"))
                })?))
            }
            None => Ok(None),
        }
    }

    /// Every document of a context: (document id, record), in id order.
    pub fn documents_in(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(String, documents::DocumentRef)>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(documents::BY_KEY).scan_prefix(prefix) {
            let (key, value) = item?;
            let record = postcard::from_bytes(&value)
                .map_err(|e| StoreError::Corrupt(format!("document record: {e}")))?;
            found.push((documents::document_id_of(&key), record));
        }
        Ok(found)
    }

    pub fn entry(&self, position: Position) -> Result<Option<LogEntry>, StoreError> {
        self.log.get(position)
    }

    pub fn read_from(
        &self,
        position: Position,
    ) -> impl Iterator<Item = Result<LogEntry, StoreError>> + '_ {
        self.log.read_from(position)
    }

    /// The statement event at a position.
    pub fn statement_at(
        &self,
        position: Position,
    ) -> Result<Option<StatementStoredV2>, StoreError> {
        Ok(self
            .log
            .get(position)?
            .and_then(|entry| entry.event.into_statement()))
    }

    /// A credential's current record.
    pub fn credential(&self, key: &str) -> Result<Option<CredentialRecord>, StoreError> {
        self.record(credentials::CREDENTIALS, key)
    }

    /// A tenant's definition, if it was defined.
    pub fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.record(credentials::TENANTS, id)
    }

    /// A role's current permissions, if it exists.
    pub fn role(&self, name: &str) -> Result<Option<RoleRecord>, StoreError> {
        self.record(credentials::ROLES, name)
    }

    pub fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        self.records(credentials::CREDENTIALS)
    }

    pub fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.records(credentials::TENANTS)
    }

    pub fn roles(&self) -> Result<Vec<RoleRecord>, StoreError> {
        self.records(credentials::ROLES)
    }

    fn record<T: for<'de> serde::Deserialize<'de>>(
        &self,
        tree: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.shared.tree(tree).get(key.as_bytes())? {
            Some(bytes) => credentials::decode(&bytes)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("{tree} record {key:?}"))),
            None => Ok(None),
        }
    }

    fn records<T: for<'de> serde::Deserialize<'de>>(
        &self,
        tree: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        self.shared
            .tree(tree)
            .iter()
            .map(|item| {
                let (key, bytes) = item?;
                credentials::decode(&bytes).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "{tree} record {:?}",
                        String::from_utf8_lossy(&key)
                    ))
                })
            })
            .collect()
    }

    /// Checks the whole hash chain; see [`Log::verify`].
    pub fn verify_chain(
        &self,
        progress: impl FnMut(Position),
    ) -> Result<Result<Position, crate::ChainBreak>, StoreError> {
        self.log.verify(progress)
    }

    /// SHA-256 over every projection tree (name, keys and values in order):
    /// equal digests mean byte-identical read models.
    pub fn projections_digest(&self) -> Result<[u8; 32], StoreError> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.shared.postings.read().expect("postings lock").digest());
        for projection in &self.shared.projections {
            for name in projection.trees() {
                hasher.update(self.shared.trees.digest(name)?);
            }
        }
        Ok(hasher.finalize().into())
    }

    /// Drops every projection and folds the whole log again, on the writer
    /// thread (appends wait meanwhile).
    pub async fn rebuild_projections(&self) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.requests
            .send(Request::Rebuild(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Stops the writer after it has answered everything queued before, and flushes.
    pub async fn close(&self) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
        let handle = self.writer.lock().expect("writer handle").take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        self.shared.make_durable()?;
        save_postings_snapshot(&self.shared, &self.log)
    }
}

/// Where two trees first differ, for a report (keys in hex, shortened).
fn first_difference(stored: &sled::Tree, rebuilt: &sled::Tree) -> Result<String, StoreError> {
    let show = |key: &[u8]| {
        let text = hex::encode(key);
        if text.len() > 48 {
            format!("{}…", &text[..48])
        } else {
            text
        }
    };
    let mut left = stored.iter();
    let mut right = rebuilt.iter();
    loop {
        match (left.next().transpose()?, right.next().transpose()?) {
            (None, None) => return Ok("same keys and values, different order".into()),
            (Some((key, _)), None) => return Ok(format!("stored has extra key {}", show(&key))),
            (None, Some((key, _))) => return Ok(format!("stored lacks key {}", show(&key))),
            (Some((a, va)), Some((b, vb))) => {
                if a != b {
                    return Ok(format!(
                        "stored has key {} where the rebuild has {}",
                        show(&a),
                        show(&b)
                    ));
                }
                if va != vb {
                    return Ok(format!("the value of key {} differs", show(&a)));
                }
            }
        }
    }
}

impl crate::backup::BackupSource for Store {
    fn log(&self) -> &Log {
        &self.log
    }

    fn head(&self) -> Result<Head, StoreError> {
        let position = Store::head(self);
        let hash = entry_hash_at(&self.log, position)?
            .ok_or_else(|| StoreError::Corrupt(format!("the head entry {position} is missing")))?;
        Ok(Head { position, hash })
    }

    fn vault_bytes(&self) -> Result<Vec<u8>, StoreError> {
        self.shared.vault.file_bytes()
    }
}

fn last_statement(log: &Log, head: Head) -> Result<Option<i64>, StoreError> {
    let mut position = head.position;
    while position > 0 {
        if let Some(stored) = log
            .get(position)?
            .and_then(|entry| entry.event.stored_statement().map(|s| s.stored_micros))
        {
            return Ok(Some(stored));
        }
        position -= 1;
    }
    Ok(None)
}

/// Brings every projection from its checkpoint to the log's head. A
/// projection whose version changed, or whose checkpoint is ahead of the log
/// (which a crash can't produce, but a restored copy could), is rebuilt.
fn catch_up(shared: &Shared, log: &Log, head: Head) -> Result<(), StoreError> {
    catch_up_from(shared, log, head, false)
}

/// Drops every projection and folds the whole log again.
pub(crate) fn rebuild_all(shared: &Shared, log: &Log, head: Head) -> Result<(), StoreError> {
    catch_up_from(shared, log, head, true)
}

fn catch_up_from(
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
