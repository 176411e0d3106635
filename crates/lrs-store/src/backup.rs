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
//!   one; see `docs/operations.md`), sealed under a backup key of the current
//!   epoch.
//!
//! The backup window (docs/adr/0003-backup-window.md): backup keys live only
//! in the data directory (`privacy/backup-keys`), a new one every half
//! window, and each is destroyed once it is older than the window. So an
//! erased person is unreadable in every backup at most one window after the
//! erasure, whoever kept a copy of it; and within the window a restore zeroes
//! every person the erasure register (`privacy/erased`, tokens only) or the
//! restored log names as erased.
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

    /// The data directory's `privacy/` directory, where the backup keys and
    /// the erasure register live. `None`: the vault copy is written unsealed
    /// (only sources without a data directory, in tests).
    fn privacy_dir(&self) -> Option<PathBuf> {
        None
    }

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
        let db = crate::segments::log_config(&log_dir).open()?;
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

    fn privacy_dir(&self) -> Option<PathBuf> {
        self.vault_path.parent().map(|dir| dir.join(PRIVACY_DIR))
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
    /// The backup-key epoch the vault copy is sealed under (`None`: unsealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_epoch: Option<u64>,
    /// Where the backup keys were (the source's `privacy/`): where a restore
    /// looks for them unless `LRS_PRIVACY_DIR` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_dir: Option<PathBuf>,
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

/// Writes `bytes` to `dir/name` atomically ([`crate::files::replace`]).
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
    let path = dir.join(name);
    crate::files::replace(&path, |file| file.write_all(bytes)).map_err(io(&path))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    crate::files::sync_dir(dir).map_err(io(dir))
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
            vault_epoch: None,
            privacy_dir: None,
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

    // The log, in segments of about SEGMENT_ENTRIES positions (a segment
    // ends after the entry that reaches them: a chunk is never split).
    let mut bytes_copied = 0u64;
    let mut checker = ChainChecker::after(previous);
    let mut entries = source.log().raw_from(previous.position + 1);
    let total = target.position - previous.position;
    while checker.head().position < target.position {
        let first = checker.head().position + 1;
        let until = (first + SEGMENT_ENTRIES - 1).min(target.position);
        let temporary = dir.join(format!("segments/{first:020}.lrslog.tmp"));
        let file = File::create(&temporary).map_err(io(&temporary))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let mut hasher = Sha256::new();
        let mut write = |bytes: &[u8]| -> Result<(), BackupError> {
            hasher.update(bytes);
            writer.write_all(bytes).map_err(io(&temporary))
        };
        write(SEGMENT_MAGIC)?;
        let mut segment_bytes = SEGMENT_MAGIC.len() as u64;
        while checker.head().position < until {
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
            if crate::log::crossed(position - 1, checker.head().position, 100_000) {
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
        let last = checker.head().position;
        let name = format!("segments/{first:020}-{last:020}.lrslog");
        let path = dir.join(&name);
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

    // The vault, after the head was fixed, sealed under the current
    // backup key (expired keys destroyed first).
    let vault = source.vault_bytes()?;
    let (copy, epoch, privacy_dir) = match source.privacy_dir() {
        Some(privacy_dir) => {
            let mut keys = BackupKeys::open(&privacy_dir)?;
            keys.expire(now_unix())?;
            let (epoch, key) = keys.current(now_unix())?;
            (
                seal_vault(&vault, epoch, &key),
                Some(epoch),
                std::path::absolute(&privacy_dir).ok(),
            )
        }
        None => (vault.clone(), None, None),
    };
    write_atomically(dir, "vault", &copy)?;
    manifest.vault = Some(FileRecord {
        file: "vault".into(),
        bytes: copy.len() as u64,
        sha256: hex::encode(Sha256::digest(&copy)),
        copied_at_unix: now_unix(),
    });
    manifest.vault_epoch = epoch;
    manifest.privacy_dir = privacy_dir;
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
            if crate::log::crossed(position - 1, checker.head().position, 100_000) {
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
    /// People in the backup's vault copy who had been erased since, zeroed.
    pub erased_again: usize,
}

/// Restores the log and the vault of the backup in `from` into `data_dir`,
/// which must not exist or be empty. Every entry is checked against the
/// chain before it is written. The read models are not restored: opening the
/// store afterwards folds them from the log.
///
/// The vault copy is opened with the backup key of its epoch, from the
/// privacy directory `LRS_PRIVACY_DIR` names, else the one the backup was
/// made from; a backup whose key was destroyed (older than the backup
/// window) is refused. Every person the erasure register there or the
/// restored log names as erased is zeroed in the restored vault.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    progress: impl FnMut(Progress),
) -> Result<RestoreReport, BackupError> {
    let privacy_dir = std::env::var_os(PRIVACY_DIR_ENV).map(PathBuf::from);
    restore_with(from, data_dir, privacy_dir.as_deref(), progress)
}

/// [`restore`] with the privacy directory given (`None`: the manifest's).
pub fn restore_with(
    from: &Path,
    data_dir: &Path,
    privacy_dir: Option<&Path>,
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
    let copy = check_vault_copy(from, &manifest)?;
    let privacy_dir = privacy_dir
        .map(Path::to_path_buf)
        .or_else(|| manifest.privacy_dir.clone());
    let (vault, register) = match (manifest.vault_epoch, &privacy_dir) {
        (None, _) => (
            copy,
            privacy_dir
                .as_deref()
                .map(erased_register)
                .transpose()?
                .unwrap_or_default(),
        ),
        (Some(epoch), None) => {
            return Err(BackupError::Refused(format!(
                "the vault copy is sealed under backup key {epoch}: set {PRIVACY_DIR_ENV} to the \
                 privacy directory holding the backup keys"
            )))
        }
        (Some(epoch), Some(privacy_dir)) => {
            let keys = BackupKeys::open_existing(privacy_dir)?.ok_or_else(|| {
                BackupError::Refused(format!(
                    "no backup keys in {} (set {PRIVACY_DIR_ENV} to the privacy directory of the \
                     data directory the backup was made from)",
                    privacy_dir.display()
                ))
            })?;
            let key = keys.key(epoch).ok_or_else(|| {
                BackupError::Refused(format!(
                    "the vault copy of this backup is sealed under backup key {epoch}, which no \
                     longer exists: the backup is older than the backup window ({} days) and \
                     its personal data is unreadable by design; restore a newer backup",
                    keys.window_days()
                ))
            })?;
            (
                open_vault(&copy, epoch, &key)?,
                erased_register(privacy_dir)?,
            )
        }
    };
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let restored = restore_into(from, data_dir, &manifest, vault, register, &mut progress);
    if restored.is_err() {
        // Nothing half-restored is left to be mistaken for a store.
        let _ = std::fs::remove_dir_all(data_dir);
    }
    let (head, vault_bytes, erased) = restored?;
    Ok(RestoreReport {
        head: head.position,
        vault_bytes,
        seconds: started.elapsed().as_secs_f64(),
        erased_again: erased,
    })
}

/// Restores the log, then the vault with every erased person zeroed: those
/// of the register and those the restored log records (`PersonErasedV1`).
/// The register goes along into the new data directory.
fn restore_into(
    from: &Path,
    data_dir: &Path,
    manifest: &Manifest,
    mut vault: Vec<u8>,
    mut erased: std::collections::HashSet<lrs_core::Token>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Head, u64, usize), BackupError> {
    let db = crate::segments::log_config(&data_dir.join("log"))
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
            for (position, value) in entries {
                erased.extend(erased_in_entry(*position, value));
            }
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
    let zeroed = crate::vault::erase_in_copy(&mut vault, &erased);
    write_atomically(data_dir, "vault", &vault)?;
    let privacy_dir = data_dir.join(PRIVACY_DIR);
    let mut tokens: Vec<lrs_core::Token> = erased.into_iter().collect();
    tokens.sort();
    register_erased(&privacy_dir, &tokens)?;
    Ok((head, vault.len() as u64, zeroed))
}

/// The people a raw log entry erases: its `PersonErasedV1` events, in any
/// entry format (the chain checker has decoded the entry before).
fn erased_in_entry(position: Position, value: &[u8]) -> Vec<lrs_core::Token> {
    crate::log::events_in(position, value)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|event| match event {
            lrs_core::Event::PersonErasedV1(erased) => Some(erased.token),
            _ => None,
        })
        .collect()
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

// ---- the backup window: backup keys and the erasure register ----

/// The data directory's directory of privacy files.
pub const PRIVACY_DIR: &str = "privacy";
/// Names the privacy directory a restore takes its backup keys and erasure
/// register from (default: the one the backup was made from).
pub const PRIVACY_DIR_ENV: &str = "LRS_PRIVACY_DIR";
/// How long a backup's vault copy stays readable, by default.
pub const DEFAULT_WINDOW_DAYS: u32 = 30;
const KEYS_FILE: &str = "backup-keys";
const REGISTER_FILE: &str = "erased";
const KEYS_MAGIC: &[u8; 12] = b"LRS-BKEYS-v1";
const KEYS_HEADER: usize = 16;
const KEY_SLOT: usize = 64;
const VAULT_MAGIC: &[u8; 16] = b"LRS-BVAULT-v1\0\0\0";
const DAY_SECONDS: i64 = 86_400;

/// One backup key, as listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochInfo {
    pub epoch: u64,
    pub created_unix: i64,
}

struct KeySlot {
    index: usize,
    epoch: u64,
    created_unix: i64,
    key: [u8; 32],
}

/// The backup keys of a data directory: `privacy/backup-keys`, a header
/// (magic, window in days) and fixed 64-byte slots (live flag, epoch,
/// creation time, key) overwritten with zeros in place when a key is
/// destroyed, like the vault's (docs/adr/0002). Held under an exclusive
/// file lock while open, so a backup and a retention run never race.
pub struct BackupKeys {
    file: File,
    window_days: u32,
    slots: Vec<KeySlot>,
    slot_count: usize,
}

impl BackupKeys {
    /// Opens (creating, with the default window) the key file.
    pub fn open(privacy_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(privacy_dir)?;
        Self::open_file(privacy_dir, true).map(|keys| keys.expect("created"))
    }

    /// Opens the key file if there is one.
    pub fn open_existing(privacy_dir: &Path) -> Result<Option<Self>, StoreError> {
        Self::open_file(privacy_dir, false)
    }

    fn open_file(privacy_dir: &Path, create: bool) -> Result<Option<Self>, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = privacy_dir.join(KEYS_FILE);
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        fs2::FileExt::lock_exclusive(&file)?;
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes)?;
        if bytes.is_empty() {
            let mut header = [0u8; KEYS_HEADER];
            header[..12].copy_from_slice(KEYS_MAGIC);
            header[12..].copy_from_slice(&DEFAULT_WINDOW_DAYS.to_be_bytes());
            std::os::unix::fs::FileExt::write_all_at(&file, &header, 0)?;
            file.sync_all()?;
            bytes = header.to_vec();
        }
        if bytes.len() < KEYS_HEADER || &bytes[..12] != KEYS_MAGIC {
            return Err(StoreError::Corrupt(format!(
                "{} is not a backup key file",
                path.display()
            )));
        }
        let window_days = u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes"));
        let mut slots = Vec::new();
        let body = &bytes[KEYS_HEADER..];
        let slot_count = body.len() / KEY_SLOT;
        for (index, slot) in body.chunks_exact(KEY_SLOT).enumerate() {
            if slot[0] != 1 {
                continue;
            }
            slots.push(KeySlot {
                index,
                epoch: u64::from_be_bytes(slot[1..9].try_into().expect("8 bytes")),
                created_unix: i64::from_be_bytes(slot[9..17].try_into().expect("8 bytes")),
                key: slot[17..49].try_into().expect("32 bytes"),
            });
        }
        Ok(Some(Self {
            file,
            window_days,
            slots,
            slot_count,
        }))
    }

    /// How long a backup's vault copy stays readable, days.
    pub fn window_days(&self) -> u32 {
        self.window_days
    }

    /// Sets the window (at least 2 days: keys rotate every half window).
    pub fn set_window_days(&mut self, days: u32) -> Result<(), StoreError> {
        let days = days.max(2);
        std::os::unix::fs::FileExt::write_all_at(&self.file, &days.to_be_bytes(), 12)?;
        self.file.sync_data()?;
        self.window_days = days;
        Ok(())
    }

    /// The live keys, oldest first.
    pub fn epochs(&self) -> Vec<EpochInfo> {
        let mut epochs: Vec<EpochInfo> = self
            .slots
            .iter()
            .map(|s| EpochInfo {
                epoch: s.epoch,
                created_unix: s.created_unix,
            })
            .collect();
        epochs.sort_by_key(|e| e.epoch);
        epochs
    }

    pub fn key(&self, epoch: u64) -> Option<[u8; 32]> {
        self.slots.iter().find(|s| s.epoch == epoch).map(|s| s.key)
    }

    /// Destroys (zeroes in place, synced) every key created more than the
    /// window before `now_unix`. Returns the epochs destroyed.
    pub fn expire(&mut self, now_unix: i64) -> Result<Vec<EpochInfo>, StoreError> {
        let cutoff = now_unix - i64::from(self.window_days) * DAY_SECONDS;
        let mut destroyed = Vec::new();
        let mut kept = Vec::new();
        for slot in std::mem::take(&mut self.slots) {
            if slot.created_unix <= cutoff {
                std::os::unix::fs::FileExt::write_all_at(
                    &self.file,
                    &[0u8; KEY_SLOT],
                    (KEYS_HEADER + slot.index * KEY_SLOT) as u64,
                )?;
                destroyed.push(EpochInfo {
                    epoch: slot.epoch,
                    created_unix: slot.created_unix,
                });
            } else {
                kept.push(slot);
            }
        }
        self.slots = kept;
        if !destroyed.is_empty() {
            self.file.sync_data()?;
        }
        Ok(destroyed)
    }

    /// The key a backup made now seals its vault copy with: the newest, if
    /// younger than half the window, else a new one (so every backup stays
    /// restorable for at least half the window).
    pub fn current(&mut self, now_unix: i64) -> Result<(u64, [u8; 32]), StoreError> {
        let half = i64::from(self.window_days) * DAY_SECONDS / 2;
        if let Some(newest) = self.slots.iter().max_by_key(|s| s.epoch) {
            if newest.created_unix > now_unix - half && newest.created_unix <= now_unix {
                return Ok((newest.epoch, newest.key));
            }
        }
        let epoch = self.slots.iter().map(|s| s.epoch).max().unwrap_or(0).max(
            // Epochs never repeat, also after every key was destroyed:
            // the file's slot count bounds every epoch ever written.
            self.slot_count as u64,
        ) + 1;
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
        let mut slot = [0u8; KEY_SLOT];
        slot[0] = 1;
        slot[1..9].copy_from_slice(&epoch.to_be_bytes());
        slot[9..17].copy_from_slice(&now_unix.to_be_bytes());
        slot[17..49].copy_from_slice(&key);
        let index = self.slot_count;
        std::os::unix::fs::FileExt::write_all_at(
            &self.file,
            &slot,
            (KEYS_HEADER + index * KEY_SLOT) as u64,
        )?;
        self.file.sync_data()?;
        self.slot_count += 1;
        self.slots.push(KeySlot {
            index,
            epoch,
            created_unix: now_unix,
            key,
        });
        Ok((epoch, key))
    }
}

fn vault_cipher(key: &[u8; 32]) -> chacha20poly1305::XChaCha20Poly1305 {
    use chacha20poly1305::KeyInit;
    chacha20poly1305::XChaCha20Poly1305::new(&(*key).into())
}

/// A backup's vault copy: magic, epoch, nonce, then the vault file sealed
/// under the epoch's backup key (magic and epoch authenticated).
pub fn seal_vault(vault: &[u8], epoch: u64, key: &[u8; 32]) -> Vec<u8> {
    use chacha20poly1305::aead::{Aead, Payload};
    let mut nonce = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    let mut header = VAULT_MAGIC.to_vec();
    header.extend_from_slice(&epoch.to_be_bytes());
    let ciphertext = vault_cipher(key)
        .encrypt(
            chacha20poly1305::XNonce::from_slice(&nonce),
            Payload {
                msg: vault,
                aad: &header,
            },
        )
        .expect("encryption never fails");
    let mut out = header;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens a vault copy sealed with [`seal_vault`].
pub fn open_vault(copy: &[u8], epoch: u64, key: &[u8; 32]) -> Result<Vec<u8>, BackupError> {
    use chacha20poly1305::aead::{Aead, Payload};
    let header_len = VAULT_MAGIC.len() + 8;
    if copy.len() < header_len + 24 || &copy[..VAULT_MAGIC.len()] != VAULT_MAGIC {
        return Err(BackupError::Damaged("the vault copy is not sealed".into()));
    }
    let sealed_epoch = u64::from_be_bytes(
        copy[VAULT_MAGIC.len()..header_len]
            .try_into()
            .expect("8 bytes"),
    );
    if sealed_epoch != epoch {
        return Err(BackupError::Damaged(format!(
            "the vault copy is sealed under backup key {sealed_epoch}, the manifest says {epoch}"
        )));
    }
    vault_cipher(key)
        .decrypt(
            chacha20poly1305::XNonce::from_slice(&copy[header_len..header_len + 24]),
            Payload {
                msg: &copy[header_len + 24..],
                aad: &copy[..header_len],
            },
        )
        .map_err(|_| {
            BackupError::Damaged("the vault copy does not open under its backup key".into())
        })
}

/// Adds people to the erasure register (`privacy/erased`: 16-byte tokens,
/// appended and synced; no personal data). A restore zeroes them again.
pub fn register_erased(privacy_dir: &Path, tokens: &[lrs_core::Token]) -> Result<(), StoreError> {
    std::fs::create_dir_all(privacy_dir)?;
    let known = erased_register(privacy_dir)?;
    let fresh: Vec<u8> = tokens
        .iter()
        .filter(|t| !known.contains(t))
        .flat_map(|t| t.0)
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(privacy_dir.join(REGISTER_FILE))?;
    file.write_all(&fresh)?;
    file.sync_all()?;
    Ok(())
}

/// The tokens of the erasure register (empty if there is none).
pub fn erased_register(
    privacy_dir: &Path,
) -> Result<std::collections::HashSet<lrs_core::Token>, StoreError> {
    let bytes = match std::fs::read(privacy_dir.join(REGISTER_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(bytes
        .chunks_exact(16)
        .map(|chunk| lrs_core::Token(chunk.try_into().expect("16 bytes")))
        .collect())
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn a_restore_finds_an_erasure_in_every_entry_format() {
        let erased = |n: u8| {
            lrs_core::Event::PersonErasedV1(lrs_core::events::PersonErasedV1 {
                token: lrs_core::Token([n; 16]),
                time_micros: 0,
                reason: lrs_core::events::ErasureReasonV1::Request {
                    request_id: "r".into(),
                },
                who: "t".into(),
            })
        };
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (log, mut head) = Log::open(&db).unwrap();
        // a lone event (format 1 or 2), then a group of two (a chunk)
        for group in [vec![erased(1)], vec![erased(2), erased(3)]] {
            let mut batch = sled::Batch::default();
            head = log.prepare(head, &group, &mut batch);
            log.apply(batch).unwrap();
        }
        let found: Vec<lrs_core::Token> = log
            .raw_from(1)
            .flat_map(|raw| {
                let (position, value) = raw.unwrap();
                erased_in_entry(position, &value)
            })
            .collect();
        assert_eq!(found, [1, 2, 3].map(|n| lrs_core::Token([n; 16])));
    }

    #[test]
    fn keys_rotate_every_half_window_and_die_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let day = DAY_SECONDS;
        let mut keys = BackupKeys::open(dir.path()).unwrap();
        keys.set_window_days(10).unwrap();
        let (first, key) = keys.current(100 * day).unwrap();
        assert_eq!(
            keys.current(104 * day).unwrap().0,
            first,
            "same key within half the window"
        );
        let (second, _) = keys.current(106 * day).unwrap();
        assert!(second > first, "a new key after half the window");
        let sealed = seal_vault(b"LRS-VAULT-v1 bytes", first, &key);
        assert_eq!(
            open_vault(&sealed, first, &key).unwrap(),
            b"LRS-VAULT-v1 bytes"
        );
        assert!(keys.expire(109 * day).unwrap().is_empty());
        drop(keys);
        let mut keys = BackupKeys::open(dir.path()).unwrap();
        assert_eq!(keys.window_days(), 10);
        assert_eq!(keys.key(first), Some(key), "keys survive reopening");
        let destroyed = keys.expire(110 * day).unwrap();
        assert_eq!(
            destroyed.iter().map(|e| e.epoch).collect::<Vec<_>>(),
            vec![first]
        );
        assert_eq!(keys.key(first), None);
        drop(keys);
        let raw = std::fs::read(dir.path().join(KEYS_FILE)).unwrap();
        assert!(
            !raw.windows(32).any(|w| w == key),
            "the destroyed key is gone from the file"
        );
        let keys = BackupKeys::open(dir.path()).unwrap();
        assert_eq!(keys.key(first), None);
        assert!(keys.key(second).is_some());
    }

    #[test]
    fn the_register_keeps_each_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = lrs_core::Token([1; 16]);
        let b = lrs_core::Token([2; 16]);
        register_erased(dir.path(), &[a]).unwrap();
        register_erased(dir.path(), &[a, b]).unwrap();
        assert_eq!(erased_register(dir.path()).unwrap().len(), 2);
        assert_eq!(
            std::fs::read(dir.path().join(REGISTER_FILE)).unwrap().len(),
            32
        );
    }
}
