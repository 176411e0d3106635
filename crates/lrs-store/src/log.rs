//! The append-only event log: one sled tree keyed by big-endian position,
//! each entry versioned and chained with SHA-256 to the one before.
//!
//! Entry value layout (format 1, frozen):
//! `[format: u8 = 1][prev_hash: 32][hash: 32][event: postcard bytes]`, where
//! `hash = SHA-256(prev_hash || position (u64 BE) || format || event)` and the
//! first entry's `prev_hash` is 32 zero bytes. No code path removes or
//! overwrites an entry: [`Log::prepare`] only ever inserts at `head + 1`.

use crate::error::StoreError;
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
        if Event::decode(body).is_err() {
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
