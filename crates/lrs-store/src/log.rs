//! The append-only event log: one sled tree keyed by big-endian position,
//! each entry versioned and chained with SHA-256 to the one before.
//!
//! Entry value layout (both formats frozen):
//! `[format: u8][prev_hash: 32][hash: 32][payload]`, where
//! `hash = SHA-256(prev_hash || position (u64 BE) || format || payload)` and
//! the first entry's `prev_hash` is 32 zero bytes. The payload of format 1 is
//! the event's postcard bytes; of format 2, `[dictionary: u8][zstd frame of
//! the postcard bytes]` (`lrs_core::compress`). [`Log::prepare`] writes
//! format 2 when it is smaller, and every reader reads both, so a log
//! written before compression reads as it always did. The hash covers the
//! stored bytes, so checking the chain needs no decompression of a frame
//! it does not decode anyway. No code path removes or overwrites an entry:
//! [`Log::prepare`] only ever inserts at `head + 1`.

use crate::error::StoreError;
use lrs_core::{Event, Position};
use sha2::{Digest, Sha256};

pub const ENTRY_FORMAT_V1: u8 = 1;
/// A zstd-compressed event (see the module documentation).
pub const ENTRY_FORMAT_ZSTD: u8 = 2;
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
                let position = position_of(&key)?;
                let (_, hash, _) = split(position, &value)?;
                Head { position, hash }
            }
        };
        Ok((Log { tree }, head))
    }

    /// Encodes `events` as the entries after `head`, into `batch`. Returns the new head.
    pub fn prepare(&self, head: Head, events: &[Event], batch: &mut sled::Batch) -> Head {
        let mut head = head;
        for event in events {
            let position = head.position + 1;
            let (format, payload) = payload_of(event);
            let hash = entry_hash(&head.hash, position, format, &payload);
            let mut value = Vec::with_capacity(HEADER + payload.len());
            value.push(format);
            value.extend_from_slice(&head.hash);
            value.extend_from_slice(&hash);
            value.extend_from_slice(&payload);
            batch.insert(&position.to_be_bytes(), value);
            head = Head { position, hash };
        }
        head
    }

    pub fn apply(&self, batch: sled::Batch) -> Result<(), StoreError> {
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    pub fn get(&self, position: Position) -> Result<Option<LogEntry>, StoreError> {
        match self.tree.get(position.to_be_bytes())? {
            None => Ok(None),
            Some(value) => decode_entry(position, &value).map(Some),
        }
    }

    /// Entries from `from` (inclusive) on, in order.
    pub fn read_from(
        &self,
        from: Position,
    ) -> impl Iterator<Item = Result<LogEntry, StoreError>> + '_ {
        self.tree.range(from.to_be_bytes()..).map(|item| {
            let (key, value) = item?;
            decode_entry(position_of(&key)?, &value)
        })
    }

    /// Raw entries (`position`, stored bytes) from `from` on, in order: what
    /// a backup copies, byte for byte.
    pub fn raw_from(
        &self,
        from: Position,
    ) -> impl Iterator<Item = Result<(Position, sled::IVec), StoreError>> + '_ {
        self.tree.range(from.to_be_bytes()..).map(|item| {
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
    /// entries. Returns the number of entries, or the first break. An entry
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
            if position % 100_000 == 0 {
                progress(position);
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
        if decode_event(position, value[0], body).is_err() {
            return Err(broken("event does not decode"));
        }
        self.head = Head { position, hash };
        Ok(())
    }
}

fn position_of(key: &[u8]) -> Result<Position, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("log key is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// `(prev_hash, hash, event bytes)` of an entry value.
type EntryParts<'a> = ([u8; 32], [u8; 32], &'a [u8]);

/// The format and payload of an event's entry: compressed when that is smaller.
fn payload_of(event: &Event) -> (u8, Vec<u8>) {
    let bytes = event.encode();
    let tagged = lrs_core::compress::compress_tagged(&bytes);
    if tagged.len() < bytes.len() {
        (ENTRY_FORMAT_ZSTD, tagged)
    } else {
        (ENTRY_FORMAT_V1, bytes)
    }
}

fn decode_event(position: Position, format: u8, payload: &[u8]) -> Result<Event, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("log entry {position}: {e}"));
    match format {
        ENTRY_FORMAT_ZSTD => {
            let bytes = lrs_core::compress::decompress_tagged(payload, MAX_EVENT_BYTES)
                .map_err(|e| corrupt(e.to_string()))?;
            Event::decode(&bytes).map_err(|e| corrupt(e.to_string()))
        }
        _ => Event::decode(payload).map_err(|e| corrupt(e.to_string())),
    }
}

fn split(position: Position, value: &[u8]) -> Result<EntryParts<'_>, StoreError> {
    if value.len() < HEADER || !matches!(value[0], ENTRY_FORMAT_V1 | ENTRY_FORMAT_ZSTD) {
        return Err(StoreError::Corrupt(format!(
            "log entry {position} has an unknown format"
        )));
    }
    let prev = value[1..33].try_into().expect("fixed slice");
    let hash = value[33..65].try_into().expect("fixed slice");
    Ok((prev, hash, &value[HEADER..]))
}

fn decode_entry(position: Position, value: &[u8]) -> Result<LogEntry, StoreError> {
    let (prev_hash, hash, body) = split(position, value)?;
    let event = decode_event(position, value[0], body)?;
    Ok(LogEntry {
        position,
        prev_hash,
        hash,
        event,
    })
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
        let mut batch = sled::Batch::default();
        let events: Vec<Event> = (4..=6).map(event).collect();
        let head = log.prepare(head, &events, &mut batch);
        log.apply(batch).unwrap();

        let formats: Vec<u8> = log.raw_from(1).map(|raw| raw.unwrap().1[0]).collect();
        assert_eq!(formats, [1, 1, 1, 2, 2, 2]);
        let read: Vec<Event> = log.read_from(1).map(|e| e.unwrap().event).collect();
        assert_eq!(read, (1..=6).map(event).collect::<Vec<_>>());
        assert_eq!(log.verify(|_| {}).unwrap(), Ok(6));
        let (_, reopened) = Log::open(&db).unwrap();
        assert_eq!(reopened, head);
        // compressed entries are smaller than the events they hold
        let (_, compressed) = log.raw_from(4).next().unwrap().unwrap();
        assert!(compressed.len() < HEADER + event(4).encode().len());
    }

    #[test]
    fn a_changed_byte_in_a_compressed_entry_breaks_the_chain() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (log, head) = Log::open(&db).unwrap();
        let mut batch = sled::Batch::default();
        log.prepare(head, &[event(1), event(2)], &mut batch);
        log.apply(batch).unwrap();
        let (_, value) = log.raw_from(2).next().unwrap().unwrap();
        let mut value = value.to_vec();
        let last = value.len() - 1;
        value[last] ^= 1;
        log.tree.insert(2u64.to_be_bytes(), value).unwrap();
        let broken = log.verify(|_| {}).unwrap().unwrap_err();
        assert_eq!(broken.position, 2);
    }
}
