//! The append-only event log: one sled tree keyed by big-endian position,
//! each entry versioned and chained with SHA-256 to the one before.
//!
//! Entry value layout (format 1, frozen):
//! `[format: u8 = 1][prev_hash: 32][hash: 32][event: postcard bytes]`, where
//! `hash = SHA-256(prev_hash || position (u64 BE) || format || event)` and the
//! first entry's `prev_hash` is 32 zero bytes. No code path removes or
//! overwrites an entry: [`Log::prepare`] only ever inserts at `head + 1`.

use crate::StoreError;
use lrs_core::{Event, Position};
use sha2::{Digest, Sha256};

pub const ENTRY_FORMAT_V1: u8 = 1;
const HEADER: usize = 1 + 32 + 32;

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
            let bytes = event.encode();
            let hash = entry_hash(&head.hash, position, ENTRY_FORMAT_V1, &bytes);
            let mut value = Vec::with_capacity(HEADER + bytes.len());
            value.push(ENTRY_FORMAT_V1);
            value.extend_from_slice(&head.hash);
            value.extend_from_slice(&hash);
            value.extend_from_slice(&bytes);
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

    /// Walks the whole chain, calling `progress(position)` every 100,000
    /// entries. Returns the number of entries, or the first break.
    pub fn verify(
        &self,
        mut progress: impl FnMut(Position),
    ) -> Result<Result<Position, ChainBreak>, StoreError> {
        let mut expected_prev = [0u8; 32];
        let mut expected_position = 1;
        for item in self.tree.iter() {
            let (key, value) = item?;
            let position = match position_of(&key) {
                Ok(p) => p,
                Err(_) => {
                    return Ok(Err(ChainBreak {
                        position: expected_position,
                        reason: "malformed key".into(),
                    }))
                }
            };
            if position != expected_position {
                return Ok(Err(ChainBreak {
                    position: expected_position,
                    reason: format!("entry missing: next entry is at {position}"),
                }));
            }
            let (prev, hash, body) = match split(position, &value) {
                Ok(parts) => parts,
                Err(e) => {
                    return Ok(Err(ChainBreak {
                        position,
                        reason: e.to_string(),
                    }))
                }
            };
            if prev != expected_prev {
                return Ok(Err(ChainBreak {
                    position,
                    reason: "previous-hash does not match the entry before".into(),
                }));
            }
            if entry_hash(&prev, position, value[0], body) != hash {
                return Ok(Err(ChainBreak {
                    position,
                    reason: "entry hash does not match its content".into(),
                }));
            }
            if Event::decode(body).is_err() {
                return Ok(Err(ChainBreak {
                    position,
                    reason: "event does not decode".into(),
                }));
            }
            expected_prev = hash;
            expected_position += 1;
            if position % 100_000 == 0 {
                progress(position);
            }
        }
        Ok(Ok(expected_position - 1))
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

fn split(position: Position, value: &[u8]) -> Result<EntryParts<'_>, StoreError> {
    if value.len() < HEADER || value[0] != ENTRY_FORMAT_V1 {
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
    let event = Event::decode(body)
        .map_err(|e| StoreError::Corrupt(format!("log entry {position}: {e}")))?;
    Ok(LogEntry {
        position,
        prev_hash,
        hash,
        event,
    })
}
