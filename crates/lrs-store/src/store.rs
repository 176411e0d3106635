//! The store: opens the data directory (sled database with the log and the
//! read-model trees, and the vault file), brings every projection up to the
//! log's head, and hands out the writer and the read side.

use crate::error::StoreError;
use crate::log::{Head, Log, LogEntry};
use crate::projector::{
    all_projections, apply_projection, catch_up, entry_hash_at, load_resident, read_witness,
    save_postings_snapshot, save_resident, LogStatements, Pending, Shared, Trees,
    REPLAY_FLUSH_KEYS,
};
use crate::vault::{MasterKey, Vault};
use crate::writer::{self, AppendError, DocumentExpectation, PreparedStatement, Request};
use lrs_core::events::StatementStoredV2;
use lrs_core::{Event, Position};
use lrs_projections::credentials::{CredentialRecord, RoleRecord, TenantRecord};
use lrs_projections::statement_index::Postings;
use lrs_projections::{credentials, documents};
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

/// sled's page cache unless a [`StoreConfig`] says otherwise, bytes.
pub const DEFAULT_CACHE_CAPACITY: u64 = 512 * 1024 * 1024;

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>, master_key: MasterKey) -> Self {
        Self {
            data_dir: data_dir.into(),
            master_key,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }
}

/// One tree's raw size ([`Store::tree_sizes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSize {
    pub name: String,
    pub entries: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
    /// A resident tree: in memory (and its snapshot file), not in sled.
    pub in_memory: bool,
}

impl TreeSize {
    fn empty(name: String) -> Self {
        Self {
            name,
            entries: 0,
            key_bytes: 0,
            value_bytes: 0,
            in_memory: false,
        }
    }

    /// Reads `tree` front to back, counting its entries and bytes; false
    /// if `stop` was set before the end.
    fn read(&mut self, tree: &sled::Tree, stop: &AtomicBool) -> Result<bool, StoreError> {
        for item in tree.iter() {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let (key, value) = item?;
            self.entries += 1;
            self.key_bytes += key.len() as u64;
            self.value_bytes += value.len() as u64;
        }
        Ok(true)
    }
}

/// What [`Store::warm_read_models`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmReport {
    /// Trees read to the end.
    pub trees: u64,
    pub entries: u64,
    /// Raw bytes of their keys and values.
    pub bytes: u64,
}

/// The sled trees the writer looks up at every statement (the learner's
/// records, the registration's first record, the library's course summary,
/// State documents): warmed first.
const WARM_FIRST: [&str; 4] = [
    lrs_projections::progress::LEARNERS,
    lrs_projections::progress::FIRSTS,
    lrs_projections::progress::LIBRARY_COURSES,
    lrs_projections::documents::BY_KEY,
];

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
    /// Projections whose in-memory trees had no snapshot at their
    /// checkpoint when the store opened, and were folded again from the log.
    refolded: Vec<&'static str>,
}

impl Store {
    /// Opens (or creates) the data directory and starts the writer.
    pub fn open(config: StoreConfig) -> Result<Arc<Store>, StoreError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let db = crate::segments::log_config(&config.data_dir.join("log"))
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(Some(crate::segments::CLEAN_EVERY_MS))
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
        let db_path = config.data_dir.join("log").join("db");
        let db_file = std::fs::File::open(&db_path)?;
        let advised = crate::segments::advise_random_reads(&db_path);
        tracing::debug!(advised, "log/db: reads advised random");
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
            commits: Default::default(),
            journal: std::sync::Mutex::new(None),
        });
        let log = Arc::new(log);
        let refolded = load_resident(&shared, &log)?;
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
            refolded,
        }))
    }

    /// The data directory the store lives in.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Projections that opening folded again from the log's start because
    /// their in-memory trees had no snapshot at their checkpoint (the store
    /// was not closed cleanly since they last changed: docs/adr/0008).
    pub fn refolded_on_open(&self) -> &[&'static str] {
        &self.refolded
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
                    let stored = self.shared.trees.entries(name, &[])?;
                    let rebuilt = trees.entries(name, &[])?;
                    differences.push(format!(
                        "projection {}, tree {name}: {}",
                        projection.name(),
                        first_difference(stored.into_iter(), rebuilt.into_iter())
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

    /// Raw bytes of every sled tree (the log, each read model, `meta`), in
    /// name order: what the data is before sled's own page overhead, so that
    /// `lrs verify` can tell raw bytes from amplification; then the resident
    /// trees (in memory).
    pub fn tree_sizes(&self) -> Result<Vec<TreeSize>, StoreError> {
        let mut names: Vec<String> = self
            .shared
            .db
            .tree_names()
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .filter(|name| name != "__sled__default")
            .collect();
        names.sort();
        let mut sizes = Vec::with_capacity(names.len());
        for name in names {
            let tree = self.shared.db.open_tree(&name)?;
            let mut size = TreeSize::empty(name);
            size.read(&tree, &AtomicBool::new(false))?;
            sizes.push(size);
        }
        sizes.extend(self.resident_sizes());
        Ok(sizes)
    }

    /// The trees kept in memory (docs/adr/0008), by name: their records and
    /// bytes (what they cost in memory, beyond the shards' spare room).
    /// Cheap: no tree is read.
    pub fn resident_sizes(&self) -> Vec<TreeSize> {
        self.shared
            .trees
            .resident_trees()
            .into_iter()
            .map(|(name, tree)| {
                let tree = tree.read().expect("resident lock");
                TreeSize {
                    name: name.to_owned(),
                    entries: tree.len(),
                    key_bytes: tree.key_bytes(),
                    value_bytes: tree.len() * tree.layout().value_len as u64,
                    in_memory: true,
                }
            })
            .collect()
    }

    pub fn head(&self) -> Position {
        *self.shared.head.borrow()
    }

    /// Keys written to each tree (the log's entries and every read model's)
    /// since the store opened, by name: with `/metrics`, which read model
    /// costs sled its bytes (sled's files grow per written key).
    pub fn tree_writes(&self) -> Vec<crate::written::TreeWrites> {
        let mut writes = self.shared.trees.written();
        writes.push(self.log.written.report("log"));
        writes.sort_by(|a, b| a.name.cmp(&b.name));
        writes
    }

    /// Reads every read-model tree once, front to back, so that the pages
    /// the writer's lookups need come from memory rather than the disk: on
    /// a store larger than the page cache, a cold start otherwise makes
    /// every lookup of the first minute a disk read (docs/performance.md,
    /// "Lever 9"). The trees the writer reads at every statement come first.
    /// Stops early when `stop` is set. Changes nothing.
    pub fn warm_read_models(&self, stop: &AtomicBool) -> Result<WarmReport, StoreError> {
        let mut names: Vec<&'static str> = self
            .shared
            .projections
            .iter()
            .flat_map(|projection| projection.trees().iter().copied())
            .filter(|name| self.shared.trees.resident(name).is_none())
            .collect();
        names.sort_by_key(|name| {
            WARM_FIRST
                .iter()
                .position(|first| first == name)
                .unwrap_or(WARM_FIRST.len())
        });
        let mut report = WarmReport::default();
        for name in names {
            let mut size = TreeSize::empty(name.to_owned());
            let complete = size.read(&self.shared.tree(name), stop)?;
            report.entries += size.entries;
            report.bytes += size.key_bytes + size.value_bytes;
            if !complete {
                return Ok(report);
            }
            report.trees += 1;
        }
        Ok(report)
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

    /// The log writer's group commits since this process opened the store:
    /// their number, entries and the writer's time (for `/metrics`).
    pub fn commits(&self) -> crate::written::Commits {
        self.shared.commits.report()
    }

    /// How often the writer's fold found what it read in its caches
    /// (`cache.rs`) since this process opened the store (for `/metrics`).
    pub fn fold_cache(&self) -> crate::cache::FoldCache {
        self.shared.trees().fold_cache()
    }

    /// Stored time up to which every acknowledged statement is visible to
    /// queries: now while no group is being written, else the last committed one.
    pub fn consistent_through_micros(&self) -> i64 {
        if self.shared.writing.load(Ordering::SeqCst) {
            self.shared.last_stored_micros.load(Ordering::SeqCst)
        } else {
            lrs_core::clock::now_micros().max(self.shared.last_stored_micros.load(Ordering::SeqCst))
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

    /// Appends an event that `derive` makes on the writer thread from the
    /// read models exactly at the log's head (nothing else is being written
    /// meanwhile, and the event goes at head + 1): a closing of a month's
    /// figures reads the counters this way. `derive` may read the store
    /// (never append: that would wait for itself); `None` appends nothing.
    pub async fn append_derived(
        &self,
        derive: impl FnOnce() -> Option<Event> + Send + 'static,
    ) -> Result<Option<Position>, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Derived {
                derive: Box::new(derive),
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

    /// The statement events at `positions`, in their order (`None` where
    /// a position holds no statement); a chunk holding several of them is
    /// read once ([`Log::get_many`]).
    pub fn statements_at(
        &self,
        positions: &[Position],
    ) -> Result<Vec<Option<StatementStoredV2>>, StoreError> {
        Ok(self
            .log
            .get_many(positions)?
            .into_iter()
            .map(|entry| entry.and_then(|entry| entry.event.into_statement()))
            .collect())
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
        save_postings_snapshot(&self.shared, &self.log)?;
        save_resident(&self.shared, &self.log)
    }
}

/// Where two trees' entries first differ, for a report (keys in hex, shortened).
fn first_difference(
    mut left: impl Iterator<Item = (Vec<u8>, Vec<u8>)>,
    mut right: impl Iterator<Item = (Vec<u8>, Vec<u8>)>,
) -> String {
    let show = |key: &[u8]| {
        let text = hex::encode(key);
        if text.len() > 48 {
            format!("{}…", &text[..48])
        } else {
            text
        }
    };
    loop {
        match (left.next(), right.next()) {
            (None, None) => return "same keys and values, different order".into(),
            (Some((key, _)), None) => return format!("stored has extra key {}", show(&key)),
            (None, Some((key, _))) => return format!("stored lacks key {}", show(&key)),
            (Some((a, va)), Some((b, vb))) => {
                if a != b {
                    return format!(
                        "stored has key {} where the rebuild has {}",
                        show(&a),
                        show(&b)
                    );
                }
                if va != vb {
                    return format!("the value of key {} differs", show(&a));
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

    fn privacy_dir(&self) -> Option<PathBuf> {
        Some(self.data_dir.join(crate::backup::PRIVACY_DIR))
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
