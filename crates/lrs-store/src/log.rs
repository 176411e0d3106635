//! The append-only event log: one sled tree keyed by big-endian position,
//! each entry versioned and chained with SHA-256 to the one before.
//!
//! Entry value layout (every format frozen):
//! `[format: u8][prev_hash: 32][hash: 32][payload]`, where
//! `hash = SHA-256(prev_hash || position (u64 BE) || format || payload)` and
//! the first entry's `prev_hash` is 32 zero bytes. The key is the position
//! of the entry's (first) event.
//! - Format 1: one event, the payload its postcard bytes.
//! - Format 2: one event, the payload `[dictionary: u8][zstd frame of the
//!   postcard bytes]` (`lrs_core::compress`).
//! - Format 3, a *chunk*: several events at consecutive positions (at most
//!   [`CHUNK_EVENTS`], from one commit group), the payload `[count: u16
//!   BE][dictionary: u8][zstd frame]` whose content is each event's postcard
//!   bytes after their length (u32 BE). Compressed together, the clear facts
//!   that statements share (course and module IRIs, verbs, the tenant) are
//!   stored about once per chunk, and sled pays its per-key cost once
//!   (docs/adr/0005). Every event of a chunk has the chunk's hashes.
//!
//! [`Log::prepare`] writes a group's events as chunks, a lone event as
//! format 2 (or 1 when compression does not pay), and every reader reads
//! all three, so a log written before chunks reads as it always did. The
//! hash covers the stored bytes, so checking the chain needs no
//! decompression. No code path removes or overwrites an entry:
//! [`Log::prepare`] only ever inserts after the head.

use crate::error::StoreError;
use lrs_core::{Event, Position};
use sha2::{Digest, Sha256};
use std::ops::Range;

pub const ENTRY_FORMAT_V1: u8 = 1;
/// A zstd-compressed event (see the module documentation).
pub const ENTRY_FORMAT_ZSTD: u8 = 2;
/// Several events compressed together (see the module documentation).
pub const ENTRY_FORMAT_CHUNK: u8 = 3;
/// The most events one chunk holds. Reading one event decompresses its
/// whole chunk: 32 realistic statements are ~54 KB of postcard, ~8 µs of
/// zstd; larger chunks saved little more, and chunks of 8 made sled's files
/// 20 % larger (docs/adr/0005).
pub const CHUNK_EVENTS: usize = 32;
const HEADER: usize = 1 + 32 + 32;
/// The largest event a compressed entry may hold (a frame claiming more is corrupt).
const MAX_EVENT_BYTES: usize = 1 << 30;

/// One decoded entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub position: Position,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub event: Event,
}

/// Where the chain is broken, for `lrs verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub position: Position,
    pub reason: String,
}

pub fn entry_hash(
    prev_hash: &[u8; 32],
    position: Position,
    format: u8,
    event_bytes: &[u8],
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(position.to_be_bytes());
    hasher.update([format]);
    hasher.update(event_bytes);
    hasher.finalize().into()
}

pub struct Log {
    tree: sled::Tree,
    /// Entries written since the log was opened, and their bytes.
    pub(crate) written: crate::written::Written,
}

/// The tip of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub position: Position,
    pub hash: [u8; 32],
}

impl Log {
    pub fn open(db: &sled::Db) -> Result<(Self, Head), StoreError> {
        let tree = db.open_tree("log")?;
        let head = match tree.last()? {
            None => Head {
                position: 0,
                hash: [0; 32],
            },
            Some((key, value)) => {
                let first = position_of(&key)?;
                let (_, hash, _) = split(first, &value)?;
                Head {
                    position: first + span(first, &value)? - 1,
                    hash,
                }
            }
        };
        Ok((
            Log {
                tree,
                written: Default::default(),
            },
            head,
        ))
    }

    /// Encodes `events` as the entries after `head`, into `batch`: chunks
    /// of at most [`CHUNK_EVENTS`]. Returns the new head.
    pub fn prepare(&self, head: Head, events: &[Event], batch: &mut sled::Batch) -> Head {
        let mut head = head;
        for chunk in events.chunks(CHUNK_EVENTS) {
            let position = head.position + 1;
            let (format, payload) = payload_of(chunk);
            let hash = entry_hash(&head.hash, position, format, &payload);
            let mut value = Vec::with_capacity(HEADER + payload.len());
            value.push(format);
            value.extend_from_slice(&head.hash);
            value.extend_from_slice(&hash);
            value.extend_from_slice(&payload);
            self.written.add(8 + value.len());
            batch.insert(&position.to_be_bytes(), value);
            head = Head {
                position: position + chunk.len() as u64 - 1,
                hash,
            };
        }
        head
    }

    pub fn apply(&self, batch: sled::Batch) -> Result<(), StoreError> {
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    pub fn get(&self, position: Position) -> Result<Option<LogEntry>, StoreError> {
        match self.entry_at_or_before(position) {
            None => Ok(None),
            Some(item) => {
                let (first, value) = item?;
                decode_at(first, &value, position)
            }
        }
    }

    /// The entries at `positions`, in their order (`None` where there is
    /// none). Consecutive positions of one chunk read and decompress it once:
    /// a page of one agent's statements lies mostly in a few chunks, since a
    /// learner's statements arrive together.
    pub fn get_many(&self, positions: &[Position]) -> Result<Vec<Option<LogEntry>>, StoreError> {
        let mut found = Vec::with_capacity(positions.len());
        let mut held: Option<HeldChunk> = None;
        for &position in positions {
            if let Some(chunk) = held.as_ref().filter(|chunk| chunk.holds(position)) {
                found.push(Some(chunk.entry(position)?));
                continue;
            }
            let Some(item) = self.entry_at_or_before(position) else {
                found.push(None);
                continue;
            };
            let (first, value) = item?;
            if value.first() == Some(&ENTRY_FORMAT_CHUNK) {
                let chunk = HeldChunk::read(first, &value)?;
                found.push(if chunk.holds(position) {
                    Some(chunk.entry(position)?)
                } else {
                    None
                });
                held = Some(chunk);
            } else {
                found.push(decode_at(first, &value, position)?);
            }
        }
        Ok(found)
    }

    /// The last entry whose key is at most `position` (the one that holds
    /// it, if any does): its key's position and its value.
    fn entry_at_or_before(
        &self,
        position: Position,
    ) -> Option<Result<(Position, sled::IVec), StoreError>> {
        self.tree
            .range(..=position.to_be_bytes())
            .next_back()
            .map(|item| {
                let (key, value) = item?;
                Ok((position_of(&key)?, value))
            })
    }

    /// The key of the entry that holds `position` (the first position of its
    /// chunk), or `position` itself when no entry holds it.
    fn key_holding(&self, position: Position) -> Position {
        // A storage error here surfaces again on the range read that follows.
        match self.entry_at_or_before(position) {
            Some(Ok((first, value)))
                if span(first, &value).is_ok_and(|span| first + span > position) =>
            {
                first
            }
            _ => position,
        }
    }

    /// Entries from `from` (inclusive) on, in order.
    pub fn read_from(
        &self,
        from: Position,
    ) -> impl Iterator<Item = Result<LogEntry, StoreError>> + '_ {
        let start = self.key_holding(from);
        self.tree
            .range(start.to_be_bytes()..)
            .flat_map(move |item| {
                let entries = item
                    .map_err(StoreError::from)
                    .and_then(|(key, value)| decode_all(position_of(&key)?, &value));
                match entries {
                    Ok(entries) => entries.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(error) => vec![Err(error)],
                }
            })
            .filter(move |entry| entry.as_ref().map_or(true, |e| e.position >= from))
    }

    /// Raw entries (the position of their first event, stored bytes), in
    /// order, from the one that holds `from`: what a backup copies, byte
    /// for byte.
    pub fn raw_from(
        &self,
        from: Position,
    ) -> impl Iterator<Item = Result<(Position, sled::IVec), StoreError>> + '_ {
        let start = self.key_holding(from);
        self.tree.range(start.to_be_bytes()..).map(|item| {
            let (key, value) = item?;
            Ok((position_of(&key)?, value))
        })
    }

    /// Inserts entries checked elsewhere (a restore: [`ChainChecker`] has
    /// seen every one of them), in one batch. Only for a log being rebuilt
    /// from a backup; the writer never calls it.
    pub fn insert_checked(&self, entries: &[(Position, Vec<u8>)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (position, value) in entries {
            batch.insert(&position.to_be_bytes(), value.as_slice());
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Walks the whole chain, calling `progress(position)` every 100,000
    /// positions. Returns the number of entries, or the first break. An entry
    /// sled cannot read (its page fails sled's checksum) is a break at the
    /// first position not read.
    pub fn verify(
        &self,
        mut progress: impl FnMut(Position),
    ) -> Result<Result<Position, ChainBreak>, StoreError> {
        let mut checker = ChainChecker::new();
        for item in self.tree.iter() {
            let (key, value) = match item {
                Ok(pair) => pair,
                Err(error) => {
                    return Ok(Err(ChainBreak {
                        position: checker.next_position(),
                        reason: format!("storage cannot read the entry: {error}"),
                    }))
                }
            };
            let position = match position_of(&key) {
                Ok(p) => p,
                Err(_) => {
                    return Ok(Err(ChainBreak {
                        position: checker.next_position(),
                        reason: "malformed key".into(),
                    }))
                }
            };
            if let Err(chain_break) = checker.check(position, &value) {
                return Ok(Err(chain_break));
            }
            let head = checker.head().position;
            if crossed(position - 1, head, 100_000) {
                progress(head);
            }
        }
        Ok(Ok(checker.head().position))
    }
}

/// Checks entries one after the other against the chain: positions without
/// gaps, each `prev_hash` the hash before, each hash over its content, each
/// event decodable. Used by `verify`, by backups and by restores.
#[derive(Debug, Clone)]
pub struct ChainChecker {
    head: Head,
}

impl Default for ChainChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainChecker {
    /// A checker for a chain from its first entry.
    pub fn new() -> Self {
        Self::after(Head {
            position: 0,
            hash: [0; 32],
        })
    }

    /// A checker for the entries that follow `head`.
    pub fn after(head: Head) -> Self {
        Self { head }
    }

    pub fn head(&self) -> Head {
        self.head
    }

    pub fn next_position(&self) -> Position {
        self.head.position + 1
    }

    pub fn check(&mut self, position: Position, value: &[u8]) -> Result<(), ChainBreak> {
        let expected = self.next_position();
        if position != expected {
            return Err(ChainBreak {
                position: expected,
                reason: format!("entry missing: next entry is at {position}"),
            });
        }
        let (prev, hash, body) = split(position, value).map_err(|e| ChainBreak {
            position,
            reason: e.to_string(),
        })?;
        let broken = |reason: &str| ChainBreak {
            position,
            reason: reason.into(),
        };
        if prev != self.head.hash {
            return Err(broken("previous-hash does not match the entry before"));
        }
        if entry_hash(&prev, position, value[0], body) != hash {
            return Err(broken("entry hash does not match its content"));
        }
        let events =
            decode_events(position, value[0], body).map_err(|_| broken("event does not decode"))?;
        self.head = Head {
            position: position + events.len() as u64 - 1,
            hash,
        };
        Ok(())
    }
}

/// Whether counting from `before` to `after` passed a multiple of `step`
/// (for progress reports when an entry may hold many positions).
pub fn crossed(before: Position, after: Position, step: u64) -> bool {
    after / step > before / step
}

/// The events a raw entry holds (one, or a chunk's), for a reader of raw
/// entries such as a restore.
pub fn events_in(position: Position, value: &[u8]) -> Result<Vec<Event>, StoreError> {
    let (_, _, body) = split(position, value)?;
    decode_events(position, value[0], body)
}

fn position_of(key: &[u8]) -> Result<Position, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("log key is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// `(prev_hash, hash, event bytes)` of an entry value.
type EntryParts<'a> = ([u8; 32], [u8; 32], &'a [u8]);

/// The format and payload of an entry holding `events` (at least one): a
/// chunk for several; for one, compressed when that is smaller.
fn payload_of(events: &[Event]) -> (u8, Vec<u8>) {
    if let [event] = events {
        let bytes = event.encode();
        let tagged = lrs_core::compress::compress_tagged_fast(&bytes);
        return if tagged.len() < bytes.len() {
            (ENTRY_FORMAT_ZSTD, tagged)
        } else {
            (ENTRY_FORMAT_V1, bytes)
        };
    }
    let mut content = Vec::new();
    for event in events {
        let bytes = event.encode();
        content.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        content.extend_from_slice(&bytes);
    }
    let count = u16::try_from(events.len()).expect("a chunk holds at most CHUNK_EVENTS");
    let mut payload = count.to_be_bytes().to_vec();
    payload.extend_from_slice(&lrs_core::compress::compress_tagged_fast(&content));
    (ENTRY_FORMAT_CHUNK, payload)
}

/// How many positions an entry value holds, from its header alone.
fn span(position: Position, value: &[u8]) -> Result<u64, StoreError> {
    let (_, _, body) = split(position, value)?;
    if value[0] != ENTRY_FORMAT_CHUNK {
        return Ok(1);
    }
    Ok(chunk_count(position, body)? as u64)
}

fn corrupt_entry(position: Position, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("log entry {position}: {what}"))
}

/// A chunk's number of events (at least one), from its payload's first bytes.
fn chunk_count(position: Position, payload: &[u8]) -> Result<usize, StoreError> {
    match payload.get(..2) {
        Some(&[high, low]) if u16::from_be_bytes([high, low]) > 0 => {
            Ok(usize::from(u16::from_be_bytes([high, low])))
        }
        _ => Err(corrupt_entry(position, "a chunk without events")),
    }
}

/// A chunk's decompressed content and where each event's postcard bytes
/// lie in it.
fn chunk_events(
    position: Position,
    payload: &[u8],
) -> Result<(Vec<u8>, Vec<Range<usize>>), StoreError> {
    let count = chunk_count(position, payload)?;
    let content = lrs_core::compress::decompress_tagged(&payload[2..], MAX_EVENT_BYTES)
        .map_err(|e| corrupt_entry(position, e))?;
    let mut events = Vec::with_capacity(count);
    let mut at = 0;
    while let Some(length) = content.get(at..at + 4) {
        let start = at + 4;
        let end = start + u32::from_be_bytes(length.try_into().expect("4 bytes")) as usize;
        if end > content.len() {
            return Err(corrupt_entry(position, "a chunk's event is cut short"));
        }
        events.push(start..end);
        at = end;
    }
    if at != content.len() || events.len() != count {
        return Err(corrupt_entry(
            position,
            format!("a chunk says {count} events but holds {}", events.len()),
        ));
    }
    Ok((content, events))
}

/// The events of an entry's payload, in order.
fn decode_events(position: Position, format: u8, payload: &[u8]) -> Result<Vec<Event>, StoreError> {
    let decode = |bytes: &[u8]| Event::decode(bytes).map_err(|e| corrupt_entry(position, e));
    match format {
        ENTRY_FORMAT_CHUNK => {
            let (content, events) = chunk_events(position, payload)?;
            events.into_iter().map(|at| decode(&content[at])).collect()
        }
        ENTRY_FORMAT_ZSTD => {
            let bytes = lrs_core::compress::decompress_tagged(payload, MAX_EVENT_BYTES)
                .map_err(|e| corrupt_entry(position, e))?;
            Ok(vec![decode(&bytes)?])
        }
        _ => Ok(vec![decode(payload)?]),
    }
}

fn split(position: Position, value: &[u8]) -> Result<EntryParts<'_>, StoreError> {
    if value.len() < HEADER
        || !matches!(
            value[0],
            ENTRY_FORMAT_V1 | ENTRY_FORMAT_ZSTD | ENTRY_FORMAT_CHUNK
        )
    {
        return Err(StoreError::Corrupt(format!(
            "log entry {position} has an unknown format"
        )));
    }
    let prev = value[1..33].try_into().expect("fixed slice");
    let hash = value[33..65].try_into().expect("fixed slice");
    Ok((prev, hash, &value[HEADER..]))
}

/// Every event of the entry whose key is `first`.
fn decode_all(first: Position, value: &[u8]) -> Result<Vec<LogEntry>, StoreError> {
    let (prev_hash, hash, body) = split(first, value)?;
    Ok(decode_events(first, value[0], body)?
        .into_iter()
        .zip(first..)
        .map(|(event, position)| LogEntry {
            position,
            prev_hash,
            hash,
            event,
        })
        .collect())
}

/// The event at `position` of the entry whose key is `first`, if it holds it.
fn decode_at(
    first: Position,
    value: &[u8],
    position: Position,
) -> Result<Option<LogEntry>, StoreError> {
    let (prev_hash, hash, body) = split(first, value)?;
    if value[0] == ENTRY_FORMAT_CHUNK {
        if position - first >= chunk_count(first, body)? as u64 {
            return Ok(None);
        }
        return HeldChunk::read(first, value)?.entry(position).map(Some);
    }
    if position != first {
        return Ok(None);
    }
    let event = decode_events(first, value[0], body)?.remove(0);
    Ok(Some(LogEntry {
        position,
        prev_hash,
        hash,
        event,
    }))
}

/// A chunk read and decompressed, to take several of its events.
struct HeldChunk {
    first: Position,
    prev_hash: [u8; 32],
    hash: [u8; 32],
    content: Vec<u8>,
    events: Vec<Range<usize>>,
}

impl HeldChunk {
    /// The chunk whose key is `first` (a format-3 value).
    fn read(first: Position, value: &[u8]) -> Result<Self, StoreError> {
        let (prev_hash, hash, body) = split(first, value)?;
        let (content, events) = chunk_events(first, body)?;
        Ok(Self {
            first,
            prev_hash,
            hash,
            content,
            events,
        })
    }

    fn holds(&self, position: Position) -> bool {
        position >= self.first && position - self.first < self.events.len() as u64
    }

    /// The event at `position`, which the chunk holds.
    fn entry(&self, position: Position) -> Result<LogEntry, StoreError> {
        let at = self.events[(position - self.first) as usize].clone();
        Ok(LogEntry {
            position,
            prev_hash: self.prev_hash,
            hash: self.hash,
            event: Event::decode(&self.content[at]).map_err(|e| corrupt_entry(position, e))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrs_core::events::{TenantDefinedV1, TenantKindV1};

    fn event(n: u64) -> Event {
        Event::TenantDefinedV1(TenantDefinedV1 {
            id: format!("tenant-{n}"),
            name: "Bibliotheek ".repeat(20),
            kind: TenantKindV1::Kb,
            defined_micros: n as i64,
        })
    }

    /// An entry as the log wrote every entry before compression (format 1).
    fn format_1_entry(head: Head, event: &Event) -> (Head, Vec<u8>) {
        let position = head.position + 1;
        let bytes = event.encode();
        let hash = entry_hash(&head.hash, position, ENTRY_FORMAT_V1, &bytes);
        let mut value = vec![ENTRY_FORMAT_V1];
        value.extend_from_slice(&head.hash);
        value.extend_from_slice(&hash);
        value.extend_from_slice(&bytes);
        (Head { position, hash }, value)
    }

    #[test]
    fn a_log_written_before_compression_reads_and_grows_compressed() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (log, mut head) = Log::open(&db).unwrap();
        let mut old = Vec::new();
        for n in 1..=3 {
            let (next, value) = format_1_entry(head, &event(n));
            old.push((next.position, value));
            head = next;
        }
        log.insert_checked(&old).unwrap();
        // a group of one (format 2), then a group of three (a chunk)
        for group in [vec![event(4)], (5..=7).map(event).collect()] {
            let mut batch = sled::Batch::default();
            head = log.prepare(head, &group, &mut batch);
            log.apply(batch).unwrap();
        }

        let formats: Vec<u8> = log.raw_from(1).map(|raw| raw.unwrap().1[0]).collect();
        assert_eq!(formats, [1, 1, 1, 2, 3]);
        let read: Vec<Event> = log.read_from(1).map(|e| e.unwrap().event).collect();
        assert_eq!(read, (1..=7).map(event).collect::<Vec<_>>());
        let wanted = [7, 5, 4, 2, 1, 6, 8];
        assert_eq!(
            parts(log.get_many(&wanted).unwrap()),
            parts(wanted.iter().map(|&p| log.get(p).unwrap()).collect())
        );
        assert_eq!(log.verify(|_| {}).unwrap(), Ok(7));
        let (_, reopened) = Log::open(&db).unwrap();
        assert_eq!(reopened, head);
        // compressed entries are smaller than the events they hold
        let (_, compressed) = log.raw_from(4).next().unwrap().unwrap();
        assert!(compressed.len() < HEADER + event(4).encode().len());
    }

    #[test]
    fn a_group_is_stored_in_chunks_and_every_position_reads() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (log, head) = Log::open(&db).unwrap();
        let events: Vec<Event> = (1..=70).map(event).collect();
        let mut batch = sled::Batch::default();
        let head = log.prepare(head, &events, &mut batch);
        log.apply(batch).unwrap();
        assert_eq!(head.position, 70);

        let raw: Vec<(Position, u8)> = log
            .raw_from(1)
            .map(|raw| raw.map(|(p, v)| (p, v[0])).unwrap())
            .collect();
        assert_eq!(raw, [(1, 3), (33, 3), (65, 3)], "chunks of 32, 32 and 6");
        for position in 1..=70 {
            let entry = log.get(position).unwrap().unwrap();
            assert_eq!(entry.position, position);
            assert_eq!(entry.event, event(position));
        }
        assert!(log.get(71).unwrap().is_none());
        // reading from inside a chunk starts at that position
        let from_40: Vec<Position> = log.read_from(40).map(|e| e.unwrap().position).collect();
        assert_eq!(from_40, (40..=70).collect::<Vec<_>>());
        assert_eq!(log.raw_from(40).next().unwrap().unwrap().0, 33);
        // the chain: verified, the head after reopening, a chunk's hash for each of its events
        let mut reported = Vec::new();
        assert_eq!(log.verify(|p| reported.push(p)).unwrap(), Ok(70));
        assert_eq!(Log::open(&db).unwrap().1, head);
        assert_eq!(log.get(70).unwrap().unwrap().hash, head.hash);
        assert_eq!(log.get(66).unwrap().unwrap().hash, head.hash);
        // the shared facts are stored about once: a chunk is smaller than its events apart
        let chunked: usize = log.raw_from(1).map(|raw| raw.unwrap().1.len()).sum();
        let apart: usize = events
            .iter()
            .map(|e| HEADER + payload_of(std::slice::from_ref(e)).1.len())
            .sum();
        assert!(
            chunked * 3 < apart,
            "{chunked} bytes chunked, {apart} apart"
        );
        // events_in gives a raw chunk's events
        let (first, value) = log.raw_from(33).next().unwrap().unwrap();
        assert_eq!(events_in(first, &value).unwrap(), events[32..64].to_vec());
        // get_many answers as get does, in any order, across and within chunks
        let wanted = [70, 69, 66, 65, 64, 40, 33, 32, 1, 71, 500, 2, 65];
        let many = parts(log.get_many(&wanted).unwrap());
        let one_by_one = parts(wanted.iter().map(|&p| log.get(p).unwrap()).collect());
        assert_eq!(many, one_by_one);
        assert_eq!(many.iter().filter(|e| e.is_none()).count(), 2);
    }

    type Parts = Option<(Position, [u8; 32], [u8; 32], Event)>;

    fn parts(entries: Vec<Option<LogEntry>>) -> Vec<Parts> {
        entries
            .into_iter()
            .map(|e| e.map(|e| (e.position, e.prev_hash, e.hash, e.event)))
            .collect()
    }

    #[test]
    fn a_changed_byte_in_a_chunk_breaks_the_chain_at_the_chunk() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (log, head) = Log::open(&db).unwrap();
        let mut batch = sled::Batch::default();
        let events: Vec<Event> = (1..=40).map(event).collect();
        log.prepare(head, &events, &mut batch);
        log.apply(batch).unwrap();
        let (first, value) = log.raw_from(33).next().unwrap().unwrap();
        assert_eq!(first, 33);
        let mut changed = value.to_vec();
        let middle = changed.len() / 2;
        changed[middle] ^= 1;
        log.tree.insert(33u64.to_be_bytes(), changed).unwrap();
        let broken = log.verify(|_| {}).unwrap().unwrap_err();
        assert_eq!(broken.position, 33);
        // a chunk that claims more events than it holds is refused too
        let mut lying = value.to_vec();
        lying[HEADER + 1] += 1;
        assert!(decode_all(33, &lying).is_err());
    }

    #[test]
    fn a_changed_byte_in_a_compressed_entry_breaks_the_chain() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (log, head) = Log::open(&db).unwrap();
        let mut head = head;
        for n in 1..=2 {
            let mut batch = sled::Batch::default();
            head = log.prepare(head, &[event(n)], &mut batch);
            log.apply(batch).unwrap();
        }
        let (_, value) = log.raw_from(2).next().unwrap().unwrap();
        let mut value = value.to_vec();
        let last = value.len() - 1;
        value[last] ^= 1;
        log.tree.insert(2u64.to_be_bytes(), value).unwrap();
        let broken = log.verify(|_| {}).unwrap().unwrap_err();
        assert_eq!(broken.position, 2);
    }
}
