//! Backups of the log and the vault, incremental because the log is
//! append-only, verified when made, and restores from them.
//!
//! A backup directory holds:
//! - `manifest.json`: the chain's head in the backup, every segment with its
//!   first/last position, size and SHA-256, the vault copy, and one record
//!   per backup run;
//! - `segments/<first>-<last>.lrslog`: the log entries byte for byte as the
//!   log stores them (`LRSLOG01`, then per entry `position: u64 BE`,
//!   `length: u32 BE`, the entry), so the hash chain runs through them;
//! - `vault`: the latest copy of the identity vault (replaced by each run, so
//!   a person erased since the last run is erased from the backup by the next
//!   one; see `docs/operations.md`).
//!
//! The master key is never in a backup: a backup is ciphertext and wrapped
//! keys, and restoring needs the key from where the operator keeps it.
//!
//! Consistency while the server takes writes: a run fixes the head at its
//! start and copies entries up to it (entries never change once written);
//! the vault copy is taken after that, so it holds every person of those
//! entries, except the ones erased meanwhile, which is what erasure wants.

use crate::error::StoreError;
use crate::log::ChainBreak;
use crate::log::{ChainChecker, Head, Log};
use lrs_core::Position;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const SEGMENT_MAGIC: &[u8; 8] = b"LRSLOG01";
const MANIFEST: &str = "manifest.json";
const MANIFEST_FORMAT: &str = "lrs-backup/1";
/// Entries per segment file: a full backup of ten million statements is ten
/// files, and an incremental run writes one more.
const SEGMENT_ENTRIES: u64 = 1_000_000;
/// Restore inserts this many entries per sled batch.
const RESTORE_BATCH: usize = 10_000;

/// Where a backup reads from: the running store, or a stopped data directory.
pub trait BackupSource {
    /// The log to copy.
    fn log(&self) -> &Log;
    /// The head of the log now; a run copies up to it.
    fn head(&self) -> Result<Head, StoreError>;
    /// A copy of the vault file as it is now.
    fn vault_bytes(&self) -> Result<Vec<u8>, StoreError>;

    /// The hash of the entry at `position`, if there is one.
    fn entry_hash(&self, position: Position) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self.log().get(position)?.map(|entry| entry.hash))
    }
}

/// A stopped data directory, read without its master key (a backup copies
/// ciphertext; it never needs to open anything).
pub struct OfflineSource {
    _db: sled::Db,
    log: Log,
    head: Head,
    vault_path: PathBuf,
}

impl OfflineSource {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let log_dir = data_dir.join("log");
        if !log_dir.exists() {
            return Err(StoreError::Corrupt(format!(
                "{} has no log (is it a data directory?)",
                data_dir.display()
            )));
        }
        let db = sled::Config::new().path(log_dir).open()?;
        let (log, head) = Log::open(&db)?;
        Ok(Self {
            _db: db,
            log,
            head,
            vault_path: data_dir.join("vault"),
        })
    }
}

impl BackupSource for OfflineSource {
    fn log(&self) -> &Log {
        &self.log
    }

    fn head(&self) -> Result<Head, StoreError> {
        Ok(self.head)
    }

    fn vault_bytes(&self) -> Result<Vec<u8>, StoreError> {
        match std::fs::read(&self.vault_path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub head: HeadRecord,
    pub segments: Vec<SegmentRecord>,
    pub vault: Option<FileRecord>,
    pub runs: Vec<RunRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeadRecord {
    pub position: Position,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentRecord {
    pub file: String,
    pub first: Position,
    pub last: Position,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileRecord {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub copied_at_unix: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub started_at_unix: i64,
    pub seconds: f64,
    /// Entries copied by this run: `from..=to` (none when `from > to`).
    pub from: Position,
    pub to: Position,
}

/// What one backup run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    pub directory: PathBuf,
    pub from: Position,
    pub to: Position,
    pub entries_copied: u64,
    pub bytes_copied: u64,
    pub vault_bytes: u64,
    pub seconds: f64,
    /// The backup's head after the entries this run wrote were read back
    /// from disk and checked against the chain.
    pub verified_entries: Position,
    pub finished_at_unix: i64,
}

/// Progress of a long operation, for the command line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("i/o on {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("the backup is damaged at log position {}: {}", .0.position, .0.reason)]
    Broken(ChainBreak),
    #[error("the backup is damaged: {0}")]
    Damaged(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |error| BackupError::Io {
        path: path.to_owned(),
        error,
    }
}

use lrs_core::clock::now_unix_secs as now_unix;

fn parse_hash(text: &str) -> Result<[u8; 32], BackupError> {
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| BackupError::Damaged(format!("{text:?} is not a SHA-256 in hex")))
}

pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, BackupError> {
    let path = dir.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| BackupError::Damaged(format!("{}: {e}", path.display())))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(BackupError::Damaged(format!(
            "{} has format {:?}, this version reads {MANIFEST_FORMAT:?}",
            path.display(),
            manifest.format
        )));
    }
    Ok(Some(manifest))
}

/// Writes `bytes` to `dir/name` atomically: a synced temporary, renamed,
/// then the directory synced.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    {
        let mut file = File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(bytes).map_err(io(&temporary))?;
        file.sync_all().map_err(io(&temporary))?;
    }
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Runs one backup into `dir` (created if missing): the entries after the
/// backup's head up to the source's head now, a fresh vault copy, and the
/// manifest; then reads every segment back from disk and checks the chain.
/// A directory holding a backup of another log is refused.
pub fn backup(
    source: &dyn BackupSource,
    dir: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<BackupReport, BackupError> {
    let started = std::time::Instant::now();
    let started_at_unix = now_unix();
    std::fs::create_dir_all(dir.join("segments")).map_err(io(dir))?;
    let lock_path = dir.join(".lock");
    let lock = File::create(&lock_path).map_err(io(&lock_path))?;
    fs2::FileExt::try_lock_exclusive(&lock).map_err(|_| {
        BackupError::Refused(format!("another backup into {} is running", dir.display()))
    })?;

    let mut manifest = match read_manifest(dir)? {
        Some(manifest) => manifest,
        None => Manifest {
            format: MANIFEST_FORMAT.into(),
            head: HeadRecord {
                position: 0,
                hash: hex::encode([0u8; 32]),
            },
            segments: Vec::new(),
            vault: None,
            runs: Vec::new(),
        },
    };
    let previous = Head {
        position: manifest.head.position,
        hash: parse_hash(&manifest.head.hash)?,
    };
    let target = source.head()?;
    if previous.position > 0 {
        match source.entry_hash(previous.position)? {
            Some(hash) if hash == previous.hash => {}
            _ => {
                return Err(BackupError::Refused(format!(
                    "{} holds a backup of another log (its entry {} is not this log's); \
                     use a new directory",
                    dir.display(),
                    previous.position
                )))
            }
        }
    }
    if target.position < previous.position {
        return Err(BackupError::Refused(format!(
            "the backup in {} is ahead of this log ({} > {})",
            dir.display(),
            previous.position,
            target.position
        )));
    }

    // Files a run that failed (a full disk, a crash) left behind and no
    // manifest names: removed, so they neither fill the disk nor confuse.
    remove_unlisted_segments(dir, &manifest)?;

    // The log, in segments of at most SEGMENT_ENTRIES.
    let mut bytes_copied = 0u64;
    let mut checker = ChainChecker::after(previous);
    let mut entries = source.log().raw_from(previous.position + 1);
    let total = target.position - previous.position;
    while checker.head().position < target.position {
        let first = checker.head().position + 1;
        let last = (first + SEGMENT_ENTRIES - 1).min(target.position);
        let name = format!("segments/{first:020}-{last:020}.lrslog");
        let path = dir.join(&name);
        let temporary = dir.join(format!("{name}.tmp"));
        let file = File::create(&temporary).map_err(io(&temporary))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let mut hasher = Sha256::new();
        let mut write = |bytes: &[u8]| -> Result<(), BackupError> {
            hasher.update(bytes);
            writer.write_all(bytes).map_err(io(&temporary))
        };
        write(SEGMENT_MAGIC)?;
        let mut segment_bytes = SEGMENT_MAGIC.len() as u64;
        while checker.head().position < last {
            let (position, value) = entries.next().ok_or_else(|| {
                BackupError::Store(StoreError::Corrupt(format!(
                    "the log ends before its head {}",
                    target.position
                )))
            })??;
            checker.check(position, &value).map_err(|chain_break| {
                BackupError::Refused(format!(
                    "the log itself is damaged at position {}: {} (run `lrs verify`)",
                    chain_break.position, chain_break.reason
                ))
            })?;
            write(&position.to_be_bytes())?;
            write(&(value.len() as u32).to_be_bytes())?;
            write(&value)?;
            segment_bytes += 12 + value.len() as u64;
            if position % 100_000 == 0 {
                progress(Progress {
                    phase: "copying log",
                    done: position - previous.position,
                    total,
                });
            }
        }
        let file = writer
            .into_inner()
            .map_err(|e| io(&temporary)(e.into_error()))?;
        file.sync_all().map_err(io(&temporary))?;
        drop(file);
        std::fs::rename(&temporary, &path).map_err(io(&path))?;
        sync_dir(&dir.join("segments"))?;
        bytes_copied += segment_bytes;
        manifest.segments.push(SegmentRecord {
            file: name,
            first,
            last,
            bytes: segment_bytes,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    drop(entries);

    // The vault, after the head was fixed.
    let vault = source.vault_bytes()?;
    write_atomically(dir, "vault", &vault)?;
    manifest.vault = Some(FileRecord {
        file: "vault".into(),
        bytes: vault.len() as u64,
        sha256: hex::encode(Sha256::digest(&vault)),
        copied_at_unix: now_unix(),
    });
    manifest.head = HeadRecord {
        position: target.position,
        hash: hex::encode(target.hash),
    };
    manifest.runs.push(RunRecord {
        started_at_unix,
        seconds: started.elapsed().as_secs_f64(),
        from: previous.position + 1,
        to: target.position,
    });

    // Verified when made: what this run wrote is read back from disk and
    // checked against the chain from the previous head before the manifest
    // that names it is written (`verify_backup` checks all of it).
    let verified = verify_segments(dir, &manifest, previous, &mut progress, |_| Ok(()))?;
    check_vault_copy(dir, &manifest)?;
    let encoded = serde_json::to_vec_pretty(&manifest).expect("manifest encodes");
    write_atomically(dir, MANIFEST, &encoded)?;
    drop(lock);
    Ok(BackupReport {
        directory: dir.to_owned(),
        from: previous.position + 1,
        to: target.position,
        entries_copied: total,
        bytes_copied,
        vault_bytes: vault.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        verified_entries: verified.position,
        finished_at_unix: now_unix(),
    })
}

fn remove_unlisted_segments(dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let segments = dir.join("segments");
    for entry in std::fs::read_dir(&segments).map_err(io(&segments))? {
        let entry = entry.map_err(io(&segments))?;
        let name = format!("segments/{}", entry.file_name().to_string_lossy());
        if !manifest.segments.iter().any(|s| s.file == name) {
            tracing::warn!(file = %name, "removing a segment an interrupted backup left behind");
            std::fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    Ok(())
}

fn check_vault_copy(dir: &Path, manifest: &Manifest) -> Result<Vec<u8>, BackupError> {
    let Some(record) = &manifest.vault else {
        return Err(BackupError::Damaged(
            "the manifest names no vault copy".into(),
        ));
    };
    let path = dir.join(&record.file);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    if hex::encode(Sha256::digest(&bytes)) != record.sha256 {
        return Err(BackupError::Damaged(format!(
            "{} does not match its checksum in the manifest",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Reads the segments of `manifest` after `start` from disk in order,
/// checking each file's checksum and the hash chain through all of them from
/// `start` on, and hands the entries to `entry` in batches. Returns the head
/// reached, which must be the manifest's.
fn verify_segments(
    dir: &Path,
    manifest: &Manifest,
    start: Head,
    progress: &mut dyn FnMut(Progress),
    mut entry: impl FnMut(&[(Position, Vec<u8>)]) -> Result<(), BackupError>,
) -> Result<Head, BackupError> {
    let mut checker = ChainChecker::after(start);
    let total = manifest.head.position;
    let mut pending: Vec<(Position, Vec<u8>)> = Vec::with_capacity(RESTORE_BATCH);
    for segment in manifest.segments.iter().filter(|s| s.last > start.position) {
        if segment.first != checker.next_position() {
            return Err(BackupError::Broken(ChainBreak {
                position: checker.next_position(),
                reason: format!("no segment holds it (next is {})", segment.file),
            }));
        }
        let path = dir.join(&segment.file);
        let file = File::open(&path).map_err(io(&path))?;
        let mut reader = HashingReader {
            inner: BufReader::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            offset: 0,
        };
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic).map_err(io(&path))?;
        if &magic != SEGMENT_MAGIC {
            return Err(BackupError::Damaged(format!(
                "{} is not a log segment",
                path.display()
            )));
        }
        while checker.head().position < segment.last {
            let at = reader.offset;
            let mut header = [0u8; 12];
            reader.read_exact(&mut header).map_err(|_| {
                BackupError::Broken(ChainBreak {
                    position: checker.next_position(),
                    reason: format!("{} ends at byte {at}", segment.file),
                })
            })?;
            let position = u64::from_be_bytes(header[..8].try_into().expect("8 bytes"));
            let length = u32::from_be_bytes(header[8..].try_into().expect("4 bytes")) as usize;
            if position != checker.next_position() || length > 64 * 1024 * 1024 {
                return Err(BackupError::Broken(ChainBreak {
                    position: checker.next_position(),
                    reason: format!("{} is malformed at byte {at}", segment.file),
                }));
            }
            let mut value = vec![0u8; length];
            reader.read_exact(&mut value).map_err(|_| {
                BackupError::Broken(ChainBreak {
                    position,
                    reason: format!("{} ends inside the entry at byte {at}", segment.file),
                })
            })?;
            checker
                .check(position, &value)
                .map_err(BackupError::Broken)?;
            pending.push((position, value));
            if pending.len() == RESTORE_BATCH {
                entry(&pending)?;
                pending.clear();
            }
            if position % 100_000 == 0 {
                progress(Progress {
                    phase: "verifying",
                    done: position,
                    total,
                });
            }
        }
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).map_err(io(&path))?;
        if !rest.is_empty() {
            return Err(BackupError::Damaged(format!(
                "{} has {} bytes after its last entry",
                segment.file,
                rest.len()
            )));
        }
        if hex::encode(reader.hasher.finalize()) != segment.sha256 || reader.offset != segment.bytes
        {
            return Err(BackupError::Damaged(format!(
                "{} does not match its checksum in the manifest",
                segment.file
            )));
        }
    }
    if !pending.is_empty() {
        entry(&pending)?;
    }
    let head = checker.head();
    if head.position != manifest.head.position || hex::encode(head.hash) != manifest.head.hash {
        return Err(BackupError::Broken(ChainBreak {
            position: head.position,
            reason: "the segments end elsewhere than the manifest's head".into(),
        }));
    }
    Ok(head)
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    offset: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}

/// Checks a whole backup from disk: the manifest, every segment's checksum,
/// the hash chain through all entries, and the vault copy. Returns the head.
pub fn verify_backup(dir: &Path, mut progress: impl FnMut(Progress)) -> Result<Head, BackupError> {
    let manifest = read_manifest(dir)?
        .ok_or_else(|| BackupError::Refused(format!("{} holds no backup", dir.display())))?;
    let head = verify_segments(
        dir,
        &manifest,
        ChainChecker::new().head(),
        &mut progress,
        |_| Ok(()),
    )?;
    check_vault_copy(dir, &manifest)?;
    Ok(head)
}

/// What a restore wrote.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub head: Position,
    pub vault_bytes: u64,
    pub seconds: f64,
}

/// Restores the log and the vault of the backup in `from` into `data_dir`,
/// which must not exist or be empty. Every entry is checked against the
/// chain before it is written. The read models are not restored: opening the
/// store afterwards folds them from the log.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<RestoreReport, BackupError> {
    let started = std::time::Instant::now();
    if data_dir.exists()
        && std::fs::read_dir(data_dir)
            .map_err(io(data_dir))?
            .next()
            .is_some()
    {
        return Err(BackupError::Refused(format!(
            "{} is not empty; restore only into a new data directory",
            data_dir.display()
        )));
    }
    let manifest = read_manifest(from)?
        .ok_or_else(|| BackupError::Refused(format!("{} holds no backup", from.display())))?;
    let vault = check_vault_copy(from, &manifest)?;
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let restored = restore_into(from, data_dir, &manifest, &vault, &mut progress);
    if restored.is_err() {
        // Nothing half-restored is left to be mistaken for a store.
        let _ = std::fs::remove_dir_all(data_dir);
    }
    let head = restored?;
    Ok(RestoreReport {
        head: head.position,
        vault_bytes: vault.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn restore_into(
    from: &Path,
    data_dir: &Path,
    manifest: &Manifest,
    vault: &[u8],
    progress: &mut dyn FnMut(Progress),
) -> Result<Head, BackupError> {
    let db = sled::Config::new()
        .path(data_dir.join("log"))
        .flush_every_ms(None)
        .open()
        .map_err(StoreError::from)?;
    let (log, _) = Log::open(&db)?;
    let head = verify_segments(
        from,
        manifest,
        ChainChecker::new().head(),
        progress,
        |entries| {
            log.insert_checked(entries)?;
            Ok(())
        },
    )?;
    db.flush().map_err(StoreError::from)?;
    drop(log);
    drop(db);
    let db_file = data_dir.join("log").join("db");
    File::open(&db_file)
        .and_then(|f| f.sync_all())
        .map_err(io(data_dir))?;
    wait_for_release(&db_file)?;
    write_atomically(data_dir, "vault", vault)?;
    Ok(head)
}

/// Waits until nothing in this process holds sled's lock on `db_file` any
/// more. sled 0.34 releases it when the last of its background I/O jobs
/// drops the file, which can be a moment after the `Db` itself is dropped:
/// opening the restored store at once then failed with "could not acquire
/// lock" (seen once in the backup black-box test). Gives up after 10 s.
fn wait_for_release(db_file: &Path) -> Result<(), BackupError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let file = File::open(db_file).map_err(io(db_file))?;
        if fs2::FileExt::try_lock_exclusive(&file).is_ok() {
            let _ = fs2::FileExt::unlock(&file);
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(BackupError::Refused(format!(
                "{} is still locked 10 s after the restore closed it",
                db_file.display()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Where the last successful backup is recorded in a data directory, for
/// the metrics (`lrs_backup_age_seconds`).
pub const LAST_BACKUP_FILE: &str = "ops/last-backup.json";

/// Records a finished backup in `data_dir/ops/last-backup.json`.
pub fn record_last_backup(data_dir: &Path, report: &BackupReport) -> Result<(), BackupError> {
    let dir = data_dir.join("ops");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let record = serde_json::json!({
        "finished_at_unix": report.finished_at_unix,
        "head": report.to,
        "to": report.directory,
    });
    write_atomically(&dir, "last-backup.json", record.to_string().as_bytes())
}
