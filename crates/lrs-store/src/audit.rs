//! The audit trail: who did what, when, from where and with what outcome,
//! one record per API request and per administrative action. Append-only and
//! hash-chained, in segment files under `<data dir>/audit/`, apart from the
//! event log (one record per request would swamp the log, and the log's
//! group commit must not wait on audit writes).
//!
//! It knows nothing about HTTP, credentials or metrics: records arrive as
//! [`AuditEntry`] values, through a bounded queue that never blocks the
//! caller, and a background thread batches them into the current segment,
//! `fdatasync`ing at least every [`AuditConfig::flush_interval`].
//!
//! Segment files are named after their first record's sequence number
//! (`00000000000000000001.audit`) and hold frames (format 1, frozen):
//!
//! ```text
//! [len: u32 BE = bytes that follow]
//! [format: u8 = 1][seq: u64 BE][time_micros: i64 BE][prev_hash: 32][payload: JSON][hash: 32]
//! hash = SHA-256(format ‖ seq ‖ time_micros ‖ prev_hash ‖ payload)
//! ```
//!
//! Each record's `prev_hash` is the `hash` of the record before it, the
//! first record's is 32 zero bytes; the chain runs on across segments, so a
//! segment's first record carries the previous segment's final hash and
//! whole old segments can be removed by time (retention) without breaking
//! verification of what remains.
//!
//! Payloads never hold personal data in clear: callers record identifiers
//! (statement ids, activity ids, document ids), never agents, and only
//! *that* an agent filter was used.

use crate::error::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The audit trail's directory inside the data directory.
pub const AUDIT_DIR: &str = "audit";
/// The frame format this code writes and reads.
pub const RECORD_FORMAT_V1: u8 = 1;
const SEGMENT_SUFFIX: &str = ".audit";
/// Held (exclusive) by the writing process: tells a reader that the newest
/// segment may end in a record still being written.
const LOCK_FILE: &str = "writer.lock";
/// format + seq + time + prev_hash, before the payload.
const HEAD: usize = 1 + 8 + 8 + 32;
/// Everything in a frame after the length field except the payload.
const FRAME_OVERHEAD: usize = HEAD + 32;
/// A length field above this is damage, not a record.
const MAX_FRAME: usize = 1 << 20;
/// Records of one segment are in time order only to within this (times are
/// taken by the request tasks, sequence numbers by the writer).
const TIME_SLACK_MICROS: i64 = 60_000_000;
const DAY_MICROS: i64 = 86_400_000_000;
/// At most this many encoded bytes wait in memory while the disk refuses
/// writes; beyond it records are dropped (and counted, and noted).
const PENDING_CAP: usize = 64 * 1024 * 1024;

/// Actions the trail writes itself.
pub mod actions {
    /// The writer started; the note says how the previous run ended.
    pub const STARTED: &str = "audit.started";
    /// The writer stopped cleanly; nothing after it was lost.
    pub const STOPPED: &str = "audit.stopped";
    /// Records were dropped (queue full or disk refusing writes); the note says how many.
    pub const RECORDS_DROPPED: &str = "audit.records_dropped";
}

/// What a request touched, as identifiers only. Never agents, names,
/// mailboxes or document contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResources {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statement_ids: Vec<String>,
    /// How many statements the request carried, when `statement_ids` lists fewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voided_statement_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// An agent was given (as filter or document key); which one is never recorded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub agent_filter: bool,
    /// What an administrative action acted on (a credential key, a tenant, a filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl AuditResources {
    pub fn is_empty(&self) -> bool {
        *self == AuditResources::default()
    }
}

/// One audit record as a caller submits it; the trail adds the sequence
/// number and the chain hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it happened (for a request: when its outcome was known), µs since the epoch.
    /// Stored in the frame header, not in the payload.
    #[serde(skip)]
    pub time_micros: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The principal's key; for a failed authentication the key that was tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// The client's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `METHOD /route/template`, or an administrative action's name.
    pub action: String,
    #[serde(default, skip_serializing_if = "AuditResources::is_empty")]
    pub resources: AuditResources,
    /// The HTTP status answered (or the administrative action's equivalent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Only in the trail's own records: what happened to the trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: u64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub entry: AuditEntry,
}

impl AuditRecord {
    /// The record as JSON for readers and exports: `seq`, `time` (RFC 3339,
    /// µs), `time_micros`, the entry's fields, `prev_hash` and `hash` (hex),
    /// so an exported copy can be checked against the chain.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert("seq".into(), self.seq.into());
        object.insert(
            "time".into(),
            lrs_core::statement::format_micros(self.entry.time_micros).into(),
        );
        object.insert("time_micros".into(), self.entry.time_micros.into());
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&self.entry) {
            object.extend(fields);
        }
        object.insert("prev_hash".into(), hex::encode(self.prev_hash).into());
        object.insert("hash".into(), hex::encode(self.hash).into());
        serde_json::Value::Object(object)
    }
}

/// The encoded frame of a record and its hash.
fn encode_frame(seq: u64, prev_hash: &[u8; 32], entry: &AuditEntry) -> (Vec<u8>, [u8; 32]) {
    let payload = serde_json::to_vec(entry).expect("an audit entry is plain data");
    let mut frame = Vec::with_capacity(4 + FRAME_OVERHEAD + payload.len());
    frame.extend_from_slice(&((FRAME_OVERHEAD + payload.len()) as u32).to_be_bytes());
    frame.push(RECORD_FORMAT_V1);
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&entry.time_micros.to_be_bytes());
    frame.extend_from_slice(prev_hash);
    frame.extend_from_slice(&payload);
    let hash: [u8; 32] = Sha256::digest(&frame[4..]).into();
    frame.extend_from_slice(&hash);
    (frame, hash)
}

/// A frame as read: everything after the length field.
struct RawFrame {
    offset: u64,
    body: Vec<u8>,
}

impl RawFrame {
    fn seq(&self) -> u64 {
        u64::from_be_bytes(self.body[1..9].try_into().expect("8 bytes"))
    }
    fn time_micros(&self) -> i64 {
        i64::from_be_bytes(self.body[9..17].try_into().expect("8 bytes"))
    }
    fn prev_hash(&self) -> [u8; 32] {
        self.body[17..49].try_into().expect("32 bytes")
    }
    fn payload(&self) -> &[u8] {
        &self.body[HEAD..self.body.len() - 32]
    }
    fn hash(&self) -> [u8; 32] {
        self.body[self.body.len() - 32..]
            .try_into()
            .expect("32 bytes")
    }
    fn hash_matches(&self) -> bool {
        let computed: [u8; 32] = Sha256::digest(&self.body[..self.body.len() - 32]).into();
        computed == self.hash()
    }
    fn decode(&self) -> Result<AuditRecord, String> {
        let mut entry: AuditEntry = serde_json::from_slice(self.payload())
            .map_err(|e| format!("payload does not decode: {e}"))?;
        entry.time_micros = self.time_micros();
        Ok(AuditRecord {
            seq: self.seq(),
            prev_hash: self.prev_hash(),
            hash: self.hash(),
            entry,
        })
    }
}

enum FrameRead {
    Frame(RawFrame),
    End,
    /// The file ends inside a frame: `bytes` from `offset` to the end.
    Incomplete {
        offset: u64,
        bytes: u64,
    },
    Malformed {
        offset: u64,
        reason: String,
    },
}

/// Reads frames one after the other from a segment file.
struct FrameReader {
    reader: BufReader<File>,
    offset: u64,
}

impl FrameReader {
    fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            reader: BufReader::with_capacity(256 * 1024, File::open(path)?),
            offset: 0,
        })
    }

    /// Reads up to `buf.len()` bytes; fewer only at the end of the file.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    fn next_frame(&mut self) -> Result<FrameRead, StoreError> {
        let offset = self.offset;
        let mut len = [0u8; 4];
        match self.fill(&mut len)? {
            0 => return Ok(FrameRead::End),
            4 => {}
            n => {
                return Ok(FrameRead::Incomplete {
                    offset,
                    bytes: n as u64,
                })
            }
        }
        let len = u32::from_be_bytes(len) as usize;
        if !(FRAME_OVERHEAD..=MAX_FRAME).contains(&len) {
            return Ok(FrameRead::Malformed {
                offset,
                reason: format!("length field {len} is impossible for a record"),
            });
        }
        let mut body = vec![0u8; len];
        let got = self.fill(&mut body)?;
        if got < len {
            return Ok(FrameRead::Incomplete {
                offset,
                bytes: 4 + got as u64,
            });
        }
        if body[0] != RECORD_FORMAT_V1 {
            return Ok(FrameRead::Malformed {
                offset,
                reason: format!("unknown record format {}", body[0]),
            });
        }
        self.offset += 4 + len as u64;
        Ok(FrameRead::Frame(RawFrame { offset, body }))
    }
}

/// The segment files, by first sequence number.
/// The file naming where a trimmed trail starts: written when retention
/// removes whole segments (`AuditTrailTrimmedV1` records the same in the
/// log), read by [`verify`].
pub const ANCHOR_FILE: &str = "anchor.json";

#[derive(Serialize, Deserialize)]
struct AnchorFile {
    /// The first record kept.
    first_kept_seq: u64,
    /// The hash of the last record removed: the first kept record's
    /// previous hash (hex).
    anchor_hash: String,
}

/// Records that the trail now starts at `first_kept_seq`, whose previous
/// hash must be `anchor_hash` (written atomically, synced). Written before
/// the segments are removed: a trail that still starts at record 1 verifies
/// from the beginning, so a stop in between breaks nothing.
pub fn write_anchor(
    dir: &Path,
    first_kept_seq: u64,
    anchor_hash: [u8; 32],
) -> Result<(), StoreError> {
    let text = serde_json::to_vec(&AnchorFile {
        first_kept_seq,
        anchor_hash: hex::encode(anchor_hash),
    })
    .map_err(|e| StoreError::Corrupt(format!("encoding the audit anchor: {e}")))?;
    crate::files::replace(&dir.join(ANCHOR_FILE), |file| file.write_all(&text))?;
    Ok(())
}

/// Where the trail starts if it was trimmed: (first kept record, the
/// previous hash it must carry).
pub fn read_anchor(dir: &Path) -> Result<Option<(u64, [u8; 32])>, StoreError> {
    let bytes = match std::fs::read(dir.join(ANCHOR_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let anchor: AnchorFile = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Corrupt(format!("the audit anchor file: {e}")))?;
    let hash: [u8; 32] = hex::decode(&anchor.anchor_hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| {
            StoreError::Corrupt("the audit anchor's hash is not 32 bytes of hex".into())
        })?;
    Ok(Some((anchor.first_kept_seq, hash)))
}

fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(seq) = stem.parse() {
                found.push((seq, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY_MICROS)
}

use lrs_core::clock::now_micros;

/// The writer's settings.
#[derive(Clone)]
pub struct AuditConfig {
    /// The audit directory (`<data dir>/audit`).
    pub dir: PathBuf,
    /// Records are `fdatasync`ed at least this often (they reach the file,
    /// and so survive a crash of the process, as soon as the writer has them).
    pub flush_interval: Duration,
    /// Records waiting for the writer; beyond it [`AuditTrail::submit`] drops.
    pub queue_capacity: usize,
    /// A segment is closed at this size, or when the UTC day changes.
    pub segment_max_bytes: u64,
    /// Called after every `fdatasync` (on the writer thread).
    pub on_flush: Option<Arc<dyn Fn(FlushReport) + Send + Sync>>,
}

impl AuditConfig {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(AUDIT_DIR),
            flush_interval: Duration::from_millis(200),
            queue_capacity: 16 * 1024,
            segment_max_bytes: 64 * 1024 * 1024,
            on_flush: None,
        }
    }
}

/// One `fdatasync` of the trail.
#[derive(Debug, Clone, Copy)]
pub struct FlushReport {
    /// Records made durable by it.
    pub records: u64,
    /// How long the sync took.
    pub duration: Duration,
}

/// Why a record was not queued. Either way it is counted, and the next
/// record the writer writes is an [`actions::RECORDS_DROPPED`] note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the audit queue is full")]
    Full,
    #[error("the audit trail is closed")]
    Closed,
}

/// The chain's tip: the last record written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditTip {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// How the previous run ended, as found on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviousStop {
    /// No record yet: a new trail.
    First,
    /// The last record is an [`actions::STOPPED`].
    Clean,
    /// The process ended without stopping the trail; an incomplete or
    /// unreadable final record of `torn_bytes` bytes was cut off.
    Unclean { torn_bytes: u64 },
}

#[derive(Default)]
struct Dropped {
    total: AtomicU64,
    /// Dropped since the writer last noted it in the chain.
    unnoted: AtomicU64,
    first_unnoted_micros: AtomicI64,
}

impl Dropped {
    fn count(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if self.unnoted.fetch_add(1, Ordering::AcqRel) == 0 {
            self.first_unnoted_micros
                .store(now_micros(), Ordering::Release);
        }
    }
}

enum Message {
    Entry(Box<AuditEntry>),
    /// Answered once everything queued before it is in the file.
    Barrier(SyncSender<()>),
    /// Write [`actions::STOPPED`], sync, answer, end.
    Close(SyncSender<Result<AuditTip, String>>),
}

/// The running audit trail: a bounded queue and the thread that writes it.
pub struct AuditTrail {
    sender: SyncSender<Message>,
    dropped: Arc<Dropped>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    dir: PathBuf,
    previous_stop: PreviousStop,
}

impl AuditTrail {
    /// Opens (or creates) the trail, continues its chain, writes and syncs
    /// an [`actions::STARTED`] record that says how the previous run ended,
    /// and starts the writer thread. Fails if another process writes the
    /// trail, or if the newest segment is damaged before its end (that is
    /// tampering or disk damage, not a crash: `lrs audit verify` names it).
    pub fn open(config: AuditConfig) -> Result<Self, StoreError> {
        use fs2::FileExt;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        // Only the server's own user reads the trail (the HTTP side decides who else may).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.dir)?;
        let lock = OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .write(true)
            .open(config.dir.join(LOCK_FILE))?;
        lock.try_lock_exclusive().map_err(|_| {
            StoreError::Corrupt(format!(
                "the audit trail in {} is in use by another process",
                config.dir.display()
            ))
        })?;
        let (mut writer, previous_stop) = Writer::recover(&config, lock)?;
        let note = match &previous_stop {
            PreviousStop::First => "a new audit trail".to_owned(),
            PreviousStop::Clean => format!(
                "the previous run stopped cleanly at record {}",
                writer.next_seq - 1
            ),
            PreviousStop::Unclean { torn_bytes } => {
                let mut note = format!(
                    "the previous run did not stop cleanly: records it had not yet flushed after record {} are lost",
                    writer.next_seq - 1
                );
                if *torn_bytes > 0 {
                    note.push_str(&format!(
                        "; an incomplete final record of {torn_bytes} bytes was cut off"
                    ));
                }
                note
            }
        };
        if let PreviousStop::Unclean { torn_bytes } = previous_stop {
            tracing::warn!(
                last_seq = writer.next_seq - 1,
                torn_bytes,
                "audit trail: the previous run did not stop cleanly"
            );
        }
        writer.append(&system_entry(actions::STARTED, note));
        writer.write_pending()?;
        writer.sync()?;
        tracing::info!(
            seq = writer.next_seq - 1,
            hash = %hex::encode(writer.prev_hash),
            "audit chain head"
        );
        let (sender, receiver) = sync_channel(config.queue_capacity.max(1));
        let dropped = Arc::new(Dropped::default());
        let handle = {
            let dropped = dropped.clone();
            std::thread::Builder::new()
                .name("lrs-audit-writer".into())
                .spawn(move || writer.run(receiver, &dropped))?
        };
        Ok(Self {
            sender,
            dropped,
            writer: Mutex::new(Some(handle)),
            dir: config.dir,
            previous_stop,
        })
    }

    /// Queues a record; never blocks. A full queue (the writer is stuck,
    /// i.e. the disk is) drops the record, counts it, and the writer notes
    /// the gap in the chain when it can write again.
    pub fn submit(&self, entry: AuditEntry) -> Result<(), SubmitError> {
        match self.sender.try_send(Message::Entry(Box::new(entry))) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                self.dropped.count();
                Err(SubmitError::Full)
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                self.dropped.count();
                Err(SubmitError::Closed)
            }
        }
    }

    /// Blocks until everything queued before is in the segment file (not
    /// necessarily synced), so a reader sees it. `false` if the queue is full
    /// or the trail closed (then it does not wait).
    pub fn barrier(&self) -> bool {
        let (reply, done) = sync_channel(1);
        if self.sender.try_send(Message::Barrier(reply)).is_err() {
            return false;
        }
        done.recv().is_ok()
    }

    /// Writes an [`actions::STOPPED`] record after everything queued, syncs
    /// and stops the writer (blocking). The tip it returns is also logged.
    pub fn close(&self) -> Result<AuditTip, StoreError> {
        let (reply, done) = sync_channel(1);
        let answer = match self.sender.send(Message::Close(reply)) {
            Ok(()) => done.recv().map_err(|_| StoreError::Closed)?,
            Err(_) => Err("the audit writer has already stopped".to_owned()),
        };
        if let Some(handle) = self.writer.lock().expect("audit writer handle").take() {
            let _ = handle.join();
        }
        answer.map_err(StoreError::Corrupt)
    }

    /// Records dropped since open.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.total.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn previous_stop(&self) -> &PreviousStop {
        &self.previous_stop
    }
}

fn system_entry(action: &str, note: String) -> AuditEntry {
    AuditEntry {
        time_micros: now_micros(),
        action: action.to_owned(),
        note: Some(note),
        ..AuditEntry::default()
    }
}

/// The writer thread's state.
struct Writer {
    config: AuditConfig,
    /// Holds the directory's lock while the writer lives.
    _lock: File,
    file: File,
    /// Bytes of the current segment that are in the file.
    committed_len: u64,
    /// UTC day of the current segment's first record; `None` while empty.
    segment_day: Option<i64>,
    next_seq: u64,
    prev_hash: [u8; 32],
    /// Encoded records not yet in the file.
    pending: Vec<u8>,
    pending_records: u64,
    /// Records in the file, not yet synced.
    unsynced_records: u64,
    dirty_since: Option<Instant>,
    last_error_logged: Option<Instant>,
}

impl Writer {
    /// Finds the chain's tip in the newest segment, cuts off a torn final
    /// record, and opens the segment for appending.
    fn recover(config: &AuditConfig, lock: File) -> Result<(Self, PreviousStop), StoreError> {
        let all = segments(&config.dir)?;
        let mut tip: Option<(AuditTip, String)> = None;
        let mut torn_bytes = 0;
        let mut current: Option<(u64, PathBuf, u64, Option<i64>)> = None;
        // Newest segment first; an empty one (a crash right after it was
        // created) takes the tip from the one before.
        for (index, (first_seq, path)) in all.iter().enumerate().rev() {
            let scan = scan_tail(path)?;
            if index == all.len() - 1 {
                torn_bytes = scan.torn_bytes;
                if scan.torn_bytes > 0 {
                    let file = OpenOptions::new().write(true).open(path)?;
                    file.set_len(scan.good_len)?;
                    file.sync_all()?;
                }
                current = Some((*first_seq, path.clone(), scan.good_len, scan.first_day));
            }
            if let Some(last) = scan.last {
                tip = Some(last);
                break;
            }
        }
        let (next_seq, prev_hash, previous_stop) = match &tip {
            None => (1, [0; 32], PreviousStop::First),
            Some((tip, action)) => (
                tip.seq + 1,
                tip.hash,
                if action == actions::STOPPED && torn_bytes == 0 {
                    PreviousStop::Clean
                } else {
                    PreviousStop::Unclean { torn_bytes }
                },
            ),
        };
        let (path, committed_len, segment_day) = match current {
            Some((first_seq, path, len, day)) if len > 0 || first_seq == next_seq => {
                (path, len, day)
            }
            Some((first_seq, path, _, _)) => {
                return Err(StoreError::Corrupt(format!(
                    "audit segment {} is empty but named for record {first_seq}, and the chain's next record is {next_seq}",
                    path.display()
                )))
            }
            None => (config.dir.join(segment_name(next_seq)), 0, None),
        };
        let file = open_segment(&config.dir, &path)?;
        Ok((
            Writer {
                config: config.clone(),
                _lock: lock,
                file,
                committed_len,
                segment_day,
                next_seq,
                prev_hash,
                pending: Vec::new(),
                pending_records: 0,
                unsynced_records: 0,
                dirty_since: None,
                last_error_logged: None,
            },
            previous_stop,
        ))
    }

    fn run(mut self, receiver: Receiver<Message>, dropped: &Dropped) {
        loop {
            let wait = match self.dirty_since {
                Some(since) => self.config.flush_interval.saturating_sub(since.elapsed()),
                None => Duration::from_secs(1),
            };
            let first = match receiver.recv_timeout(wait) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle is gone without `close`: stop cleanly all the same.
                    let _ = self.stop();
                    return;
                }
            };
            let mut next = first;
            let mut taken = 0;
            while let Some(message) = next.take() {
                match message {
                    Message::Entry(entry) => {
                        if self.pending.len() > PENDING_CAP {
                            dropped.count();
                        } else {
                            self.append(&entry);
                        }
                    }
                    Message::Barrier(reply) => {
                        self.note_dropped(dropped);
                        let _ = self.write_pending();
                        let _ = reply.send(());
                    }
                    Message::Close(reply) => {
                        self.note_dropped(dropped);
                        let _ = reply.send(self.stop().map_err(|e| e.to_string()));
                        return;
                    }
                }
                taken += 1;
                if taken < 4096 {
                    next = receiver.try_recv().ok();
                }
            }
            self.note_dropped(dropped);
            if let Err(error) = self.write_pending() {
                self.log_error("cannot write", &error);
            }
            if self
                .dirty_since
                .is_some_and(|since| since.elapsed() >= self.config.flush_interval)
            {
                if let Err(error) = self.sync() {
                    self.log_error("cannot sync", &error);
                }
            }
        }
    }

    /// Writes the remaining records and an [`actions::STOPPED`], and syncs.
    fn stop(&mut self) -> Result<AuditTip, StoreError> {
        self.append(&system_entry(
            actions::STOPPED,
            "the audit trail stopped cleanly".to_owned(),
        ));
        self.write_pending()?;
        self.sync()?;
        let tip = AuditTip {
            seq: self.next_seq - 1,
            hash: self.prev_hash,
        };
        tracing::info!(seq = tip.seq, hash = %hex::encode(tip.hash), "audit chain head at stop");
        Ok(tip)
    }

    fn log_error(&mut self, what: &str, error: &StoreError) {
        if self
            .last_error_logged
            .is_none_or(|at| at.elapsed() > Duration::from_secs(10))
        {
            tracing::error!(%error, "audit trail: {what}; records wait in memory and are dropped (and counted) beyond 64 MiB");
            self.last_error_logged = Some(Instant::now());
        }
    }

    /// Notes records dropped since the last note, as a record of its own.
    fn note_dropped(&mut self, dropped: &Dropped) {
        let count = dropped.unnoted.swap(0, Ordering::AcqRel);
        if count == 0 {
            return;
        }
        let since = dropped.first_unnoted_micros.load(Ordering::Acquire);
        tracing::error!(
            count,
            "audit trail: records were dropped; the gap is noted in the chain"
        );
        self.append(&system_entry(
            actions::RECORDS_DROPPED,
            format!(
                "{count} audit records were dropped from {} on: the queue was full or the disk refused writes",
                lrs_core::statement::format_micros(since)
            ),
        ));
    }

    /// Encodes a record after the tip; starts a new segment first when the
    /// current one is full or from an earlier UTC day.
    fn append(&mut self, entry: &AuditEntry) {
        let segment_len = self.committed_len + self.pending.len() as u64;
        let rotate = segment_len > 0
            && (segment_len >= self.config.segment_max_bytes
                || self
                    .segment_day
                    .is_some_and(|day| day_of(entry.time_micros) > day));
        if rotate {
            if let Err(error) = self.rotate() {
                // Keep writing into the current segment; try again next record.
                self.log_error("cannot start a new segment", &error);
            }
        }
        let (frame, hash) = encode_frame(self.next_seq, &self.prev_hash, entry);
        self.pending.extend_from_slice(&frame);
        self.pending_records += 1;
        self.next_seq += 1;
        self.prev_hash = hash;
        if self.segment_day.is_none() {
            self.segment_day = Some(day_of(entry.time_micros));
        }
    }

    fn rotate(&mut self) -> Result<(), StoreError> {
        self.write_pending()?;
        self.sync()?;
        let path = self.config.dir.join(segment_name(self.next_seq));
        self.file = open_segment(&self.config.dir, &path)?;
        self.committed_len = 0;
        self.segment_day = None;
        tracing::info!(
            seq = self.next_seq - 1,
            hash = %hex::encode(self.prev_hash),
            segment = %path.display(),
            "audit chain head; new segment"
        );
        Ok(())
    }

    /// Hands the encoded records to the file. On failure the file is cut
    /// back to its last whole record and the records stay pending.
    fn write_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.file.write_all(&self.pending) {
            Ok(()) => {
                self.committed_len += self.pending.len() as u64;
                self.pending.clear();
                self.unsynced_records += self.pending_records;
                self.pending_records = 0;
                self.dirty_since.get_or_insert_with(Instant::now);
                Ok(())
            }
            Err(error) => {
                let _ = self.file.set_len(self.committed_len);
                Err(error.into())
            }
        }
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.dirty_since.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        self.file.sync_data()?;
        let report = FlushReport {
            records: self.unsynced_records,
            duration: started.elapsed(),
        };
        self.unsynced_records = 0;
        self.dirty_since = None;
        if let Some(on_flush) = &self.config.on_flush {
            on_flush(report);
        }
        Ok(())
    }
}

/// Opens a segment for appending (creating it, and syncing the directory so
/// the new name survives a power loss).
fn open_segment(dir: &Path, path: &Path) -> Result<File, StoreError> {
    let existed = path.exists();
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    if !existed {
        crate::files::sync_dir(dir)?;
    }
    Ok(file)
}

struct TailScan {
    /// The last readable record (with its action), if any.
    last: Option<(AuditTip, String)>,
    /// Bytes up to the end of the last whole, intact record.
    good_len: u64,
    torn_bytes: u64,
    first_day: Option<i64>,
}

/// Walks a segment's frames to its end. An incomplete final frame, or a
/// final frame whose hash does not match (a write torn by a power loss), is
/// torn; damage with records after it is an error.
fn scan_tail(path: &Path) -> Result<TailScan, StoreError> {
    let file_len = std::fs::metadata(path)?.len();
    let mut reader = FrameReader::open(path)?;
    let mut last: Option<RawFrame> = None;
    let mut good_len = 0;
    let mut first_day = None;
    let torn_at = loop {
        match reader.next_frame()? {
            FrameRead::Frame(frame) => {
                let end = frame.offset + 4 + frame.body.len() as u64;
                if let Some(previous) = &last {
                    if frame.seq() != previous.seq() + 1 {
                        return Err(StoreError::Corrupt(format!(
                            "audit segment {} is damaged at byte {} (record {} follows {}); run `lrs audit verify`",
                            path.display(),
                            frame.offset,
                            frame.seq(),
                            previous.seq()
                        )));
                    }
                }
                if end == file_len && !frame.hash_matches() {
                    break Some(frame.offset);
                }
                first_day.get_or_insert(day_of(frame.time_micros()));
                good_len = end;
                last = Some(frame);
            }
            FrameRead::End => break None,
            FrameRead::Incomplete { offset, .. } => break Some(offset),
            FrameRead::Malformed { offset, reason } => {
                return Err(StoreError::Corrupt(format!(
                "audit segment {} is damaged at byte {offset}: {reason}; run `lrs audit verify`",
                path.display()
            )))
            }
        }
    };
    let last = match last {
        None => None,
        Some(frame) => {
            let action = frame
                .decode()
                .map(|record| record.entry.action)
                .unwrap_or_default();
            Some((
                AuditTip {
                    seq: frame.seq(),
                    hash: frame.hash(),
                },
                action,
            ))
        }
    };
    Ok(TailScan {
        last,
        good_len,
        torn_bytes: torn_at.map_or(0, |at| file_len - at),
        first_day,
    })
}

/// Whether a process holds the trail's writer lock (a server is running).
pub fn writer_active(dir: &Path) -> bool {
    use fs2::FileExt;
    let Ok(file) = OpenOptions::new().write(true).open(dir.join(LOCK_FILE)) else {
        return false;
    };
    match file.try_lock_exclusive() {
        Ok(()) => {
            let _ = fs2::FileExt::unlock(&file);
            false
        }
        Err(_) => true,
    }
}

/// Where the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The record that is broken (the sequence number its place in the chain has).
    pub seq: u64,
    pub segment: PathBuf,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audit record {} (segment {}, byte {}): {}",
            self.seq,
            self.segment
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            self.offset,
            self.reason
        )
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
pub struct AuditVerification {
    pub segments: usize,
    pub records: u64,
    /// The first record present (after retention removed older segments, not 1).
    pub first_seq: Option<u64>,
    pub tip: Option<AuditTip>,
    /// The last record's action (`audit.stopped` after a clean stop).
    pub last_action: Option<String>,
    pub broken: Option<AuditBreak>,
    /// A server holds the trail: an incomplete final record is being written, not torn.
    pub writer_active: bool,
    pub in_flight_bytes: u64,
}

/// Walks every segment: frames whole, sequence numbers without gaps (also
/// across segments), each `prev_hash` the hash before, each hash over its
/// record, each payload decodable. The first record present anchors the
/// chain (its `prev_hash` is zeros for record 1, else the hash of a record
/// retention removed). Stops at the first break and names it.
/// `progress(records)` is called every 100,000 records.
pub fn verify(dir: &Path, mut progress: impl FnMut(u64)) -> Result<AuditVerification, StoreError> {
    let all = segments(dir)?;
    let mut report = AuditVerification {
        segments: all.len(),
        writer_active: writer_active(dir),
        ..Default::default()
    };
    let mut expected: Option<u64> = None;
    let mut prev: Option<[u8; 32]> = None;
    let anchor = read_anchor(dir)?;
    let mut next_progress = 100_000;
    for (index, (first_seq, path)) in all.iter().enumerate() {
        let is_last = index == all.len() - 1;
        let broken = |seq: u64, offset: u64, reason: String| AuditBreak {
            seq,
            segment: path.clone(),
            offset,
            reason,
        };
        if let Some(expected) = expected {
            if *first_seq != expected {
                report.broken = Some(broken(
                    expected,
                    0,
                    format!(
                        "the segment after record {} starts at record {first_seq}: the segment holding record {expected} is missing or out of place",
                        expected - 1
                    ),
                ));
                return Ok(report);
            }
        }
        let mut reader = FrameReader::open(path)?;
        let mut first_in_segment = true;
        loop {
            let place = expected.unwrap_or(*first_seq);
            match reader.next_frame()? {
                FrameRead::End => break,
                FrameRead::Incomplete { offset, bytes } => {
                    if is_last && report.writer_active {
                        report.in_flight_bytes = bytes;
                    } else {
                        report.broken = Some(broken(
                            place,
                            offset,
                            format!(
                                "the segment ends inside this record ({bytes} bytes): torn by an unclean stop (the next start cuts it off and notes it), or its length was altered"
                            ),
                        ));
                        return Ok(report);
                    }
                    break;
                }
                FrameRead::Malformed { offset, reason } => {
                    report.broken = Some(broken(place, offset, reason));
                    return Ok(report);
                }
                FrameRead::Frame(frame) => {
                    let seq = frame.seq();
                    let reason = if seq != place {
                        Some(format!(
                            "sequence number {seq} where record {place} belongs"
                        ))
                    } else if first_in_segment && seq != *first_seq {
                        Some(format!(
                            "the segment is named for record {first_seq} but starts with record {seq}"
                        ))
                    } else if prev.is_none()
                        && seq != 1
                        && anchor.is_some_and(|(first, _)| first != seq)
                    {
                        Some(format!(
                            "the trail starts at record {seq}, but its trim anchor says record {} comes first",
                            anchor.map_or(0, |(first, _)| first)
                        ))
                    } else if prev.is_none()
                        && seq != 1
                        && anchor.is_some_and(|(_, hash)| hash != frame.prev_hash())
                    {
                        Some(
                            "the first record does not follow on from the trimmed trail: its previous hash is not the trim anchor"
                                .to_owned(),
                        )
                    } else if prev.is_none() && anchor.is_none() && seq != 1 {
                        Some(format!(
                            "the trail starts at record {seq}: records before it are missing and no trim anchor says retention removed them"
                        ))
                    } else if prev.is_some_and(|p| p != frame.prev_hash())
                        || (prev.is_none() && seq == 1 && frame.prev_hash() != [0; 32])
                    {
                        Some("previous-hash does not match the record before".to_owned())
                    } else if !frame.hash_matches() {
                        Some("record hash does not match its content".to_owned())
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        report.broken = Some(broken(place, frame.offset, reason));
                        return Ok(report);
                    }
                    match frame.decode() {
                        Ok(record) => report.last_action = Some(record.entry.action),
                        Err(reason) => {
                            report.broken = Some(broken(place, frame.offset, reason));
                            return Ok(report);
                        }
                    }
                    report.first_seq.get_or_insert(seq);
                    report.records += 1;
                    report.tip = Some(AuditTip {
                        seq,
                        hash: frame.hash(),
                    });
                    if report.records == next_progress {
                        progress(report.records);
                        next_progress += 100_000;
                    }
                    expected = Some(seq + 1);
                    prev = Some(frame.hash());
                    first_in_segment = false;
                }
            }
        }
        if expected.is_none() && !is_last {
            // An empty segment before others: the next one must start where it was named.
            expected = Some(*first_seq);
        }
    }
    Ok(report)
}

/// Which records to read. Times: `since` exclusive, `until` inclusive, µs.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since_micros: Option<i64>,
    pub until_micros: Option<i64>,
    pub tenant: Option<String>,
    pub principal: Option<String>,
    /// Exact, or a prefix when it ends in `*` (`GET /xapi/*`, `audit.*`).
    pub action: Option<String>,
    /// Only records after this sequence number (paging).
    pub after: u64,
}

impl AuditQuery {
    fn matches(&self, record: &AuditRecord) -> bool {
        let entry = &record.entry;
        self.tenant
            .as_ref()
            .is_none_or(|t| entry.tenant.as_ref() == Some(t))
            && self
                .principal
                .as_ref()
                .is_none_or(|p| entry.principal.as_ref() == Some(p))
            && self
                .action
                .as_ref()
                .is_none_or(|wanted| match wanted.strip_suffix('*') {
                    Some(prefix) => entry.action.starts_with(prefix),
                    None => entry.action == *wanted,
                })
    }

    fn in_time(&self, time: i64) -> bool {
        self.since_micros.is_none_or(|since| time > since)
            && self.until_micros.is_none_or(|until| time <= until)
    }
}

/// Calls `visit` with every record that matches, in sequence order, until
/// it answers `false`. Skips whole segments by their first record's
/// sequence number and time, and records by their frame header before
/// decoding. Stops quietly at an incomplete or damaged frame (`verify`
/// reports those).
pub fn scan(
    dir: &Path,
    query: &AuditQuery,
    mut visit: impl FnMut(AuditRecord) -> bool,
) -> Result<(), StoreError> {
    let all = segments(dir)?;
    let mut firsts = Vec::with_capacity(all.len());
    for (_, path) in &all {
        let mut reader = FrameReader::open(path)?;
        firsts.push(match reader.next_frame()? {
            FrameRead::Frame(frame) => Some((frame.seq(), frame.time_micros())),
            _ => None,
        });
    }
    let mut start = 0;
    for (index, first) in firsts.iter().enumerate() {
        let Some((seq, time)) = first else { continue };
        let past_after = *seq <= query.after.saturating_add(1);
        let past_since = query
            .since_micros
            .is_some_and(|since| *time <= since.saturating_sub(TIME_SLACK_MICROS));
        if past_after || past_since {
            start = index;
        }
    }
    for (index, (_, path)) in all.iter().enumerate().skip(start) {
        if let (Some((_, first_time)), Some(until)) = (firsts[index], query.until_micros) {
            if index > start && first_time > until.saturating_add(TIME_SLACK_MICROS) {
                break;
            }
        }
        let mut reader = FrameReader::open(path)?;
        loop {
            let frame = match reader.next_frame()? {
                FrameRead::Frame(frame) => frame,
                FrameRead::End | FrameRead::Incomplete { .. } => break,
                FrameRead::Malformed { offset, reason } => {
                    tracing::warn!(segment = %path.display(), offset, %reason, "audit segment damaged; run `lrs audit verify`");
                    break;
                }
            };
            if frame.seq() <= query.after || !query.in_time(frame.time_micros()) {
                continue;
            }
            let record = match frame.decode() {
                Ok(record) => record,
                Err(reason) => {
                    tracing::warn!(segment = %path.display(), offset = frame.offset, %reason, "audit record unreadable; run `lrs audit verify`");
                    continue;
                }
            };
            if query.matches(&record) && !visit(record) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A page of records.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// More records match after this page: pass this as `after`.
    pub next_after: Option<u64>,
}

/// Up to `limit` matching records after `query.after`.
pub fn read(dir: &Path, query: &AuditQuery, limit: usize) -> Result<AuditPage, StoreError> {
    let mut records = Vec::new();
    let mut more = false;
    scan(dir, query, |record| {
        if records.len() == limit {
            more = true;
            return false;
        }
        records.push(record);
        true
    })?;
    let next_after = more.then(|| records.last().map_or(query.after, |r| r.seq));
    Ok(AuditPage {
        records,
        next_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> AuditConfig {
        let mut config = AuditConfig::new(dir);
        config.flush_interval = Duration::from_millis(20);
        config
    }

    fn request(n: u64, tenant: &str, time_micros: i64) -> AuditEntry {
        AuditEntry {
            time_micros,
            tenant: Some(tenant.to_owned()),
            principal: Some(format!("lrs_key{}", n % 3)),
            auth_method: Some("basic".into()),
            client: Some("127.0.0.1".into()),
            action: if n & 1 == 0 {
                "GET /xapi/statements".into()
            } else {
                "POST /xapi/statements".into()
            },
            resources: AuditResources {
                statement_ids: vec![format!("00000000-0000-4000-8000-{n:012}")],
                ..Default::default()
            },
            outcome: Some(200),
            request_id: Some(format!("request-{n}")),
            note: None,
        }
    }

    fn all_records(dir: &Path) -> Vec<AuditRecord> {
        let mut records = Vec::new();
        scan(dir, &AuditQuery::default(), |r| {
            records.push(r);
            true
        })
        .unwrap();
        records
    }

    /// Writes `count` request records through a trail and closes it.
    fn write(config: AuditConfig, count: u64, tenant: &str) {
        let trail = AuditTrail::open(config).unwrap();
        let base = now_micros();
        for n in 0..count {
            trail
                .submit(request(n, tenant, base + n as i64))
                .expect("queue has room");
        }
        trail.close().unwrap();
    }

    #[test]
    fn the_chain_verifies_and_holds_what_was_submitted() {
        let data = tempfile::tempdir().unwrap();
        let config = config(data.path());
        write(config.clone(), 50, "t1");
        let report = verify(&config.dir, |_| {}).unwrap();
        assert!(report.broken.is_none(), "{:?}", report.broken);
        // started + 50 + stopped
        assert_eq!(report.records, 52);
        assert_eq!(report.first_seq, Some(1));
        assert_eq!(report.last_action.as_deref(), Some(actions::STOPPED));
        let records = all_records(&config.dir);
        assert_eq!(records[0].entry.action, actions::STARTED);
        assert_eq!(records[0].prev_hash, [0; 32]);
        assert_eq!(records[1].entry.request_id.as_deref(), Some("request-0"));
        for pair in records.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
        let json = records[1].to_json();
        assert_eq!(json["seq"], 2);
        assert_eq!(json["principal"], "lrs_key0");
        assert_eq!(
            json["resources"]["statement_ids"][0],
            "00000000-0000-4000-8000-000000000000"
        );
        assert_eq!(json["hash"], hex::encode(records[1].hash));
    }

    /// Every byte of one record, flipped in turn, is found at that record.
    #[test]
    fn a_flipped_byte_is_found_at_its_record() {
        let data = tempfile::tempdir().unwrap();
        let config = config(data.path());
        write(config.clone(), 10, "t1");
        let (_, path) = segments(&config.dir).unwrap().remove(0);
        let original = std::fs::read(&path).unwrap();
        // The frame of record 5.
        let mut offset = 0usize;
        for _ in 1..5 {
            offset +=
                4 + u32::from_be_bytes(original[offset..offset + 4].try_into().unwrap()) as usize;
        }
        let len = 4 + u32::from_be_bytes(original[offset..offset + 4].try_into().unwrap()) as usize;
        for at in offset..offset + len {
            let mut damaged = original.clone();
            damaged[at] ^= 0x20;
            std::fs::write(&path, &damaged).unwrap();
            let report = verify(&config.dir, |_| {}).unwrap();
            let broken = report.broken.unwrap_or_else(|| {
                panic!("flipping byte {} of record 5 went unnoticed", at - offset)
            });
            assert_eq!(broken.seq, 5, "byte {} of record 5: {broken}", at - offset);
            assert_eq!(report.records, 4);
        }
        std::fs::write(&path, &original).unwrap();
        assert!(verify(&config.dir, |_| {}).unwrap().broken.is_none());
    }

    #[test]
    fn a_restart_continues_the_chain_and_says_the_previous_stop_was_clean() {
        let data = tempfile::tempdir().unwrap();
        let config = config(data.path());
        write(config.clone(), 3, "t1");
        let before = verify(&config.dir, |_| {}).unwrap().tip.unwrap();
        let trail = AuditTrail::open(config.clone()).unwrap();
        assert_eq!(trail.previous_stop(), &PreviousStop::Clean);
        trail.submit(request(7, "t2", now_micros())).unwrap();
        let tip = trail.close().unwrap();
        let report = verify(&config.dir, |_| {}).unwrap();
        assert!(report.broken.is_none(), "{:?}", report.broken);
        assert_eq!(report.tip, Some(tip));
        let records = all_records(&config.dir);
        let started = &records[before.seq as usize];
        assert_eq!(started.seq, before.seq + 1);
        assert_eq!(started.prev_hash, before.hash);
        assert_eq!(started.entry.action, actions::STARTED);
        assert!(
            started
                .entry
                .note
                .as_deref()
                .unwrap()
                .contains("stopped cleanly"),
            "{:?}",
            started.entry.note
        );
    }

    /// A crash: the copy of a running trail has no stop record and ends in a
    /// torn record; opening it cuts the torn bytes off and says so in the chain.
    #[test]
    fn an_unclean_stop_is_noted_and_a_torn_record_cut_off() {
        let data = tempfile::tempdir().unwrap();
        let config = config(data.path());
        let trail = AuditTrail::open(config.clone()).unwrap();
        for n in 0..5 {
            trail.submit(request(n, "t1", now_micros())).unwrap();
        }
        assert!(trail.barrier());
        let crashed = tempfile::tempdir().unwrap();
        let crashed_dir = crashed.path().join(AUDIT_DIR);
        std::fs::create_dir_all(&crashed_dir).unwrap();
        for (_, path) in segments(&config.dir).unwrap() {
            std::fs::copy(&path, crashed_dir.join(path.file_name().unwrap())).unwrap();
        }
        trail.close().unwrap();
        // Half of a sixth record, as a power loss mid-write leaves it.
        let (frame, _) = encode_frame(7, &[9; 32], &request(6, "t1", now_micros()));
        let (_, segment) = segments(&crashed_dir).unwrap().remove(0);
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&frame[..frame.len() / 2]).unwrap();
        drop(file);
        let broken = verify(&crashed_dir, |_| {}).unwrap().broken.unwrap();
        assert_eq!(broken.seq, 7, "{broken}");

        let mut crashed_config = config.clone();
        crashed_config.dir = crashed_dir.clone();
        let reopened = AuditTrail::open(crashed_config).unwrap();
        assert_eq!(
            reopened.previous_stop(),
            &PreviousStop::Unclean {
                torn_bytes: (frame.len() / 2) as u64
            }
        );
        reopened.close().unwrap();
        let report = verify(&crashed_dir, |_| {}).unwrap();
        assert!(report.broken.is_none(), "{:?}", report.broken);
        let records = all_records(&crashed_dir);
        let started = &records[6];
        assert_eq!(
            (started.seq, started.entry.action.as_str()),
            (7, actions::STARTED)
        );
        let note = started.entry.note.as_deref().unwrap();
        assert!(
            note.contains("did not stop cleanly") && note.contains("cut off"),
            "{note}"
        );
    }

    #[test]
    fn old_segments_can_be_removed_and_the_rest_still_verifies() {
        let data = tempfile::tempdir().unwrap();
        let mut config = config(data.path());
        config.segment_max_bytes = 2_000;
        write(config.clone(), 60, "t1");
        let all = segments(&config.dir).unwrap();
        assert!(all.len() >= 5, "{} segments", all.len());
        // Each segment's first record carries the previous segment's final hash.
        let records = all_records(&config.dir);
        for (first_seq, _) in &all[1..] {
            let first = &records[*first_seq as usize - 1];
            assert_eq!(first.prev_hash, records[*first_seq as usize - 2].hash);
        }
        // Retention: the anchor first (the trail still verifies from record
        // 1), then drop the two oldest segments.
        let first_kept = all[2].0;
        let anchor = records[first_kept as usize - 2].hash;
        write_anchor(&config.dir, first_kept, anchor).unwrap();
        assert!(verify(&config.dir, |_| {}).unwrap().broken.is_none());
        std::fs::remove_file(&all[0].1).unwrap();
        std::fs::remove_file(&all[1].1).unwrap();
        let report = verify(&config.dir, |_| {}).unwrap();
        assert!(report.broken.is_none(), "{:?}", report.broken);
        assert_eq!(report.first_seq, Some(first_kept));
        // Without the anchor, the missing start is a break.
        std::fs::rename(config.dir.join(ANCHOR_FILE), data.path().join("anchor")).unwrap();
        let broken = verify(&config.dir, |_| {}).unwrap().broken.unwrap();
        assert!(broken.reason.contains("no trim anchor"), "{broken}");
        // An anchor that does not fit the first kept record is a break.
        write_anchor(&config.dir, first_kept, [7; 32]).unwrap();
        let broken = verify(&config.dir, |_| {}).unwrap().broken.unwrap();
        assert!(broken.reason.contains("trim anchor"), "{broken}");
        std::fs::rename(data.path().join("anchor"), config.dir.join(ANCHOR_FILE)).unwrap();
        assert!(verify(&config.dir, |_| {}).unwrap().broken.is_none());
        // A flipped byte in what remains is found.
        let path = &all[2].1;
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(path, &bytes).unwrap();
        let broken = verify(&config.dir, |_| {}).unwrap().broken.unwrap();
        assert!(broken.seq >= first_kept, "{broken}");
        bytes[middle] ^= 0x01;
        std::fs::write(path, &bytes).unwrap();
        assert!(verify(&config.dir, |_| {}).unwrap().broken.is_none());
        // A segment missing in the middle is a break at its first record.
        std::fs::remove_file(&all[3].1).unwrap();
        let broken = verify(&config.dir, |_| {}).unwrap().broken.unwrap();
        assert_eq!(broken.seq, all[3].0, "{broken}");
    }

    #[test]
    fn a_new_utc_day_starts_a_new_segment() {
        let data = tempfile::tempdir().unwrap();
        let config = config(data.path());
        let trail = AuditTrail::open(config.clone()).unwrap();
        let tomorrow = (day_of(now_micros()) + 1) * DAY_MICROS + 5;
        trail.submit(request(1, "t1", tomorrow)).unwrap();
        trail.close().unwrap();
        let all = segments(&config.dir).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[1].0, 2,
            "the record of the new day opens the second segment"
        );
        assert!(verify(&config.dir, |_| {}).unwrap().broken.is_none());
    }

    #[test]
    fn reading_filters_and_pages() {
        let data = tempfile::tempdir().unwrap();
        let mut config = config(data.path());
        config.segment_max_bytes = 3_000;
        let trail = AuditTrail::open(config.clone()).unwrap();
        let base = now_micros() - 1_000_000;
        for n in 0..40 {
            let tenant = if n % 4 == 0 { "t2" } else { "t1" };
            trail
                .submit(request(n, tenant, base + n as i64 * 1000))
                .unwrap();
        }
        trail.close().unwrap();
        let query = AuditQuery {
            tenant: Some("t2".into()),
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = read(
                &config.dir,
                &AuditQuery {
                    after,
                    ..query.clone()
                },
                3,
            )
            .unwrap();
            assert!(page.records.len() <= 3);
            seen.extend(
                page.records
                    .iter()
                    .map(|r| r.entry.request_id.clone().unwrap()),
            );
            match page.next_after {
                Some(next) => after = next,
                None => break,
            }
        }
        let expected: Vec<String> = (0..40).step_by(4).map(|n| format!("request-{n}")).collect();
        assert_eq!(seen, expected);
        let window = read(
            &config.dir,
            &AuditQuery {
                since_micros: Some(base + 9 * 1000),
                until_micros: Some(base + 12 * 1000),
                action: Some("GET /xapi/*".into()),
                ..Default::default()
            },
            100,
        )
        .unwrap();
        let ids: Vec<_> = window
            .records
            .iter()
            .map(|r| r.entry.request_id.clone().unwrap())
            .collect();
        assert_eq!(ids, vec!["request-10", "request-12"]);
        let by_principal = read(
            &config.dir,
            &AuditQuery {
                principal: Some("lrs_key1".into()),
                ..Default::default()
            },
            100,
        )
        .unwrap();
        assert_eq!(by_principal.records.len(), 13);
    }

    /// A full queue never blocks the caller; what it drops is counted and
    /// noted in the chain.
    #[test]
    fn a_full_queue_drops_counts_and_notes_the_gap() {
        let data = tempfile::tempdir().unwrap();
        let mut config = config(data.path());
        config.queue_capacity = 4;
        let trail = AuditTrail::open(config.clone()).unwrap();
        // Hold the writer: it blocks handing this barrier's answer over
        // until the test takes it.
        let (reply, held) = sync_channel(0);
        trail.sender.try_send(Message::Barrier(reply)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut dropped = 0;
        for n in 0..10 {
            match trail.submit(request(n, "t1", now_micros())) {
                Ok(()) => {}
                Err(SubmitError::Full) => dropped += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(dropped, 6, "4 fit in the queue");
        assert_eq!(trail.dropped_total(), 6);
        held.recv().unwrap();
        trail.close().unwrap();
        let records = all_records(&config.dir);
        let gap = records
            .iter()
            .find(|r| r.entry.action == actions::RECORDS_DROPPED)
            .expect("the gap is in the chain");
        assert!(gap
            .entry
            .note
            .as_deref()
            .unwrap()
            .starts_with("6 audit records were dropped"));
        assert_eq!(
            records
                .iter()
                .filter(|r| r.entry.request_id.is_some())
                .count(),
            4
        );
        assert!(verify(&config.dir, |_| {}).unwrap().broken.is_none());
    }

    #[test]
    fn a_second_writer_is_refused() {
        let data = tempfile::tempdir().unwrap();
        let config = config(data.path());
        let trail = AuditTrail::open(config.clone()).unwrap();
        assert!(writer_active(&config.dir));
        assert!(AuditTrail::open(config.clone()).is_err());
        trail.close().unwrap();
        drop(trail);
        assert!(!writer_active(&config.dir));
    }

    #[test]
    fn the_frame_encoding_is_frozen() {
        let entry = AuditEntry {
            time_micros: 1_700_000_000_000_000,
            tenant: Some("t".into()),
            principal: Some("lrs_k".into()),
            action: "GET /xapi/statements".into(),
            resources: AuditResources {
                agent_filter: true,
                ..Default::default()
            },
            outcome: Some(200),
            ..Default::default()
        };
        let (frame, hash) = encode_frame(3, &[1; 32], &entry);
        let payload = br#"{"tenant":"t","principal":"lrs_k","action":"GET /xapi/statements","resources":{"agent_filter":true},"outcome":200}"#;
        assert_eq!(&frame[HEAD + 4..frame.len() - 32], payload.as_slice());
        assert_eq!(frame[4], 1);
        assert_eq!(&frame[5..13], &3u64.to_be_bytes());
        assert_eq!(
            hex::encode(hash),
            hex::encode(Sha256::digest(&frame[4..frame.len() - 32]))
        );
        assert_eq!(
            hex::encode(hash),
            "fa7fcac2bce29556333c92543acaf23db4dd90ef750c463d682fca0159edc14a"
        );
    }
}
