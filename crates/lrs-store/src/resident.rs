//! Read-model trees kept in memory instead of sled ([`Projection::resident`],
//! docs/adr/0008): fixed-width keys and values, back to back in 65,536
//! sorted shards by the key's first two bytes. A tree whose keys vary in
//! length, and are only ever read whole, keeps a 16-byte digest of each key
//! instead (the first 16 bytes of its SHA-256: spread evenly over the
//! shards; two of ten million keys share one with a chance of ~10⁻²⁵).
//! sled spends ~150–450 bytes of disk on every small key written at random
//! (docs/adr/0004); a resident record costs its own bytes of memory, and on
//! disk its share of a snapshot and a journal.
//!
//! Such a tree is saved in `resident.snapshot` beside the posting lists
//! when the store closes, with the log position and entry hash it reaches;
//! every commit since appends its changes to `resident.journal` (the
//! [`Journal`]). Opening loads the snapshot and the journal up to the
//! owning projection's checkpoint (`projector::load_resident`). When they
//! do not reach it (a power loss took the journal's tail, no snapshot,
//! another log), the checkpoint is dropped and opening folds that
//! projection again from the log's start, as after a version change. The
//! log stays the only durable truth; a resident tree is a projection like
//! any other, rebuilt the same.
//!
//! [`Projection::resident`]: lrs_projections::Projection::resident

use crate::error::StoreError;
use crate::log::Head;
use lrs_projections::{Resident, ResidentKeys, TreeName};
use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const SHARDS: usize = 1 << 16;

/// The width of a stored key digest.
const DIGEST_LEN: usize = 16;

/// One resident tree: sorted fixed-width records (stored key, then value)
/// in shards, or, for whole keys of any length, an ordered map.
pub(crate) struct ResidentTree {
    layout: Resident,
    /// The stored keys' width (a digest's for keys of any length; 0 for
    /// whole keys, which live in `whole`).
    key_len: usize,
    record_len: usize,
    shards: Vec<Vec<u8>>,
    /// The records of a tree of [`ResidentKeys::Whole`] keys.
    whole: BTreeMap<Vec<u8>, Vec<u8>>,
    records: u64,
}

impl ResidentTree {
    pub(crate) fn new(layout: Resident) -> Self {
        let (key_len, shards) = match layout.keys {
            ResidentKeys::Fixed(key_len) => (key_len, SHARDS),
            ResidentKeys::Digests => (DIGEST_LEN, SHARDS),
            ResidentKeys::Whole => (0, 0),
        };
        assert!(
            key_len >= 2 || layout.keys == ResidentKeys::Whole,
            "a resident tree's keys have at least 2 bytes"
        );
        Self {
            layout,
            key_len,
            record_len: key_len + layout.value_len,
            shards: vec![Vec::new(); shards],
            whole: BTreeMap::new(),
            records: 0,
        }
    }

    fn is_whole(&self) -> bool {
        self.layout.keys == ResidentKeys::Whole
    }

    pub(crate) fn layout(&self) -> Resident {
        self.layout
    }

    /// The width of the keys as stored (the fixed width, or a digest's);
    /// `None`: whole keys of any length.
    pub(crate) fn stored_key_len(&self) -> Option<usize> {
        (!self.is_whole()).then_some(self.key_len)
    }

    /// Bytes held by the keys (for `/metrics`).
    pub(crate) fn key_bytes(&self) -> u64 {
        if self.is_whole() {
            return self.whole.keys().map(|key| key.len() as u64).sum();
        }
        self.records * self.key_len as u64
    }

    /// The key as stored: itself, or its digest.
    pub(crate) fn stored<'k>(&self, key: &'k [u8]) -> std::borrow::Cow<'k, [u8]> {
        match self.layout.keys {
            ResidentKeys::Fixed(_) | ResidentKeys::Whole => std::borrow::Cow::Borrowed(key),
            ResidentKeys::Digests => {
                use sha2::{Digest, Sha256};
                std::borrow::Cow::Owned(Sha256::digest(key)[..DIGEST_LEN].to_vec())
            }
        }
    }

    /// Records held.
    pub(crate) fn len(&self) -> u64 {
        self.records
    }

    fn shard_of(key: &[u8]) -> usize {
        usize::from(u16::from_be_bytes([key[0], key[1]]))
    }

    /// Panics on a key or value the layout does not allow (a projection's bug).
    pub(crate) fn check(&self, key: &[u8], value: Option<&[u8]>) {
        if let ResidentKeys::Fixed(key_len) = self.layout.keys {
            assert_eq!(
                key.len(),
                key_len,
                "a resident tree's key has the wrong length"
            );
        }
        if self.is_whole() {
            assert!(
                key.len() <= usize::from(u16::MAX),
                "a resident tree's whole key is longer than 65,535 bytes"
            );
        }
        if let Some(value) = value {
            assert_eq!(
                value.len(),
                self.layout.value_len,
                "a resident tree's value has the wrong length"
            );
        }
    }

    /// The index of the first record of `shard` whose key is not less than
    /// `key` (which may be a prefix), and whether it equals `key`.
    fn seek(&self, shard: &[u8], key: &[u8]) -> (usize, bool) {
        let (mut low, mut high) = (0, shard.len() / self.record_len);
        while low < high {
            let middle = (low + high) / 2;
            let at = middle * self.record_len;
            if &shard[at..at + self.key_len] < key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let at = low * self.record_len;
        let equal = at < shard.len() && &shard[at..at + self.key_len] == key;
        (low, equal)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.layout.keys {
            ResidentKeys::Fixed(key_len) if key.len() != key_len => return None,
            ResidentKeys::Whole => return self.whole.get(key).cloned(),
            _ => {}
        }
        let key = &*self.stored(key);
        let shard = &self.shards[Self::shard_of(key)];
        match self.seek(shard, key) {
            (index, true) => {
                let at = index * self.record_len;
                Some(shard[at + self.key_len..at + self.record_len].to_vec())
            }
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.check(key, Some(value));
        let key = self.stored(key).into_owned();
        self.insert_stored(&key, value);
    }

    /// Sets a record by its stored key ([`ResidentTree::stored`]).
    pub(crate) fn insert_stored(&mut self, key: &[u8], value: &[u8]) {
        assert_eq!(
            value.len(),
            self.layout.value_len,
            "a resident value has the wrong length"
        );
        if self.is_whole() {
            if self.whole.insert(key.to_vec(), value.to_vec()).is_none() {
                self.records += 1;
            }
            return;
        }
        assert_eq!(key.len(), self.key_len, "a stored key has the wrong length");
        let record_len = self.record_len;
        let shard_index = Self::shard_of(key);
        let (index, equal) = self.seek(&self.shards[shard_index], key);
        let shard = &mut self.shards[shard_index];
        let at = index * record_len;
        if equal {
            shard[at + self.key_len..at + record_len].copy_from_slice(value);
            return;
        }
        if shard.len() == shard.capacity() {
            // Grow by an eighth (at least 8 records), not double: the spare
            // room of 65,536 shards would be a quarter of the tree.
            shard.reserve_exact(record_len * (shard.len() / record_len / 8).max(8));
        }
        shard.splice(at..at, key.iter().chain(value).copied());
        self.records += 1;
    }

    #[cfg(test)]
    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.check(key, None);
        let key = self.stored(key).into_owned();
        self.remove_stored(&key);
    }

    /// Removes a record by its stored key, if it is there.
    pub(crate) fn remove_stored(&mut self, key: &[u8]) {
        if self.is_whole() {
            if self.whole.remove(key).is_some() {
                self.records -= 1;
            }
            return;
        }
        let record_len = self.record_len;
        let shard_index = Self::shard_of(key);
        if let (index, true) = self.seek(&self.shards[shard_index], key) {
            let at = index * record_len;
            self.shards[shard_index].drain(at..at + record_len);
            self.records -= 1;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.shards = vec![Vec::new(); self.shards.len()];
        self.whole.clear();
        self.records = 0;
    }

    /// Every record whose key starts with `prefix`, in key order. Not for a
    /// tree of key digests (only whole keys can be read there).
    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        assert!(
            self.layout.keys != ResidentKeys::Digests,
            "a resident tree of key digests has no prefix scans"
        );
        if self.is_whole() {
            return self
                .whole
                .range(prefix.to_vec()..)
                .take_while(|(key, _)| key.starts_with(prefix))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
        }
        let shards = if prefix.len() >= 2 {
            let shard = Self::shard_of(prefix);
            shard..shard + 1
        } else {
            0..SHARDS
        };
        let mut found = Vec::new();
        for shard in &self.shards[shards] {
            let (start, _) = self.seek(shard, prefix);
            for record in shard[start * self.record_len..].chunks_exact(self.record_len) {
                let (key, value) = record.split_at(self.key_len);
                if !key.starts_with(prefix) {
                    break;
                }
                found.push((key.to_vec(), value.to_vec()));
            }
        }
        found
    }

    /// The first stored key not less than `from`, if any.
    pub(crate) fn key_from(&self, from: &[u8]) -> Option<Vec<u8>> {
        if self.is_whole() {
            return self
                .whole
                .range(from.to_vec()..)
                .next()
                .map(|(k, _)| k.clone());
        }
        let first = if from.len() >= 2 {
            Self::shard_of(from)
        } else {
            usize::from(from.first().copied().unwrap_or(0)) << 8
        };
        self.shards[first..].iter().find_map(|shard| {
            let (index, _) = self.seek(shard, from);
            let at = index * self.record_len;
            (at < shard.len()).then(|| shard[at..at + self.key_len].to_vec())
        })
    }

    /// Every record in stored-key order, as `(stored key, value)`.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        if self.is_whole() {
            return Box::new(
                self.whole
                    .iter()
                    .map(|(key, value)| (key.as_slice(), value.as_slice())),
            );
        }
        Box::new(self.shards.iter().flat_map(move |shard| {
            shard
                .chunks_exact(self.record_len)
                .map(move |record| record.split_at(self.key_len))
        }))
    }
}

/// The snapshot file, in the sled directory beside the posting lists.
pub(crate) const SNAPSHOT_FILE: &str = "resident.snapshot";
/// Format: `[1]`, the head (position u64 BE, entry hash), the tree count
/// (u32 BE), then per tree its name (u16 BE length, UTF-8), its
/// projection's version (u32 BE), key and value
/// widths (u16 BE each; a key width of 0: 16-byte key digests; of
/// [`WHOLE_KEYS`]: whole keys, each record's key after its length, u16 BE),
/// record count (u64 BE) and the records in stored-key order; last a
/// SHA-256 of everything before it.
const FORMAT: u8 = 1;

/// The key width that says a tree's keys are whole, each after its length.
const WHOLE_KEYS: u16 = u16::MAX;

/// The key width a snapshot writes for a layout.
fn key_width(layout: Resident) -> u16 {
    match layout.keys {
        ResidentKeys::Fixed(key_len) => key_len as u16,
        ResidentKeys::Digests => 0,
        ResidentKeys::Whole => WHOLE_KEYS,
    }
}

/// Saves every resident tree at `head`, atomically (a temporary file,
/// synced, then renamed).
pub(crate) fn save(
    dir: &Path,
    head: Head,
    trees: &[(TreeName, u32, &ResidentTree)],
) -> Result<(), StoreError> {
    use sha2::{Digest, Sha256};
    struct Hashing<W: Write> {
        inner: W,
        hasher: Sha256,
    }
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let written = self.inner.write(bytes)?;
            self.hasher.update(&bytes[..written]);
            Ok(written)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    crate::files::replace(&dir.join(SNAPSHOT_FILE), |file| {
        let mut out = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
        };
        out.write_all(&[FORMAT])?;
        out.write_all(&head.position.to_be_bytes())?;
        out.write_all(&head.hash)?;
        out.write_all(&(trees.len() as u32).to_be_bytes())?;
        for (name, version, tree) in trees {
            out.write_all(&(name.len() as u16).to_be_bytes())?;
            out.write_all(name.as_bytes())?;
            out.write_all(&version.to_be_bytes())?;
            let layout = tree.layout();
            out.write_all(&key_width(layout).to_be_bytes())?;
            out.write_all(&(layout.value_len as u16).to_be_bytes())?;
            out.write_all(&tree.len().to_be_bytes())?;
            if tree.is_whole() {
                for (key, value) in &tree.whole {
                    out.write_all(&(key.len() as u16).to_be_bytes())?;
                    out.write_all(key)?;
                    out.write_all(value)?;
                }
            }
            for shard in &tree.shards {
                out.write_all(shard)?;
            }
        }
        let digest = out.hasher.finalize();
        out.inner.write_all(&digest)?;
        out.inner.flush()
    })?;
    tracing::info!(position = head.position, "resident read models saved");
    Ok(())
}

/// The head a snapshot was saved at and its trees, if the file is whole and
/// every tree has the layout `layouts` gives it; `None` otherwise (no file,
/// another format, a damaged file: the caller rebuilds).
pub(crate) fn load(dir: &Path, layouts: &[(TreeName, Resident)]) -> Option<(Head, Vec<Saved>)> {
    match read(dir, layouts) {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "resident read models snapshot unreadable; rebuilding");
            None
        }
    }
}

/// A tree as a snapshot holds it: its name, its projection's version then,
/// and its records.
pub(crate) type Saved = (TreeName, u32, ResidentTree);

fn read(
    dir: &Path,
    layouts: &[(TreeName, Resident)],
) -> std::io::Result<Option<(Head, Vec<Saved>)>> {
    use sha2::{Digest, Sha256};
    let file = match std::fs::File::open(dir.join(SNAPSHOT_FILE)) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut take = |buffer: &mut [u8]| -> std::io::Result<()> {
        input.read_exact(buffer)?;
        hasher.update(&*buffer);
        Ok(())
    };
    let mut format = [0u8; 1];
    take(&mut format)?;
    if format[0] != FORMAT {
        return Ok(None);
    }
    let mut u64_bytes = [0u8; 8];
    let mut u32_bytes = [0u8; 4];
    let mut u16_bytes = [0u8; 2];
    take(&mut u64_bytes)?;
    let mut hash = [0u8; 32];
    take(&mut hash)?;
    let head = Head {
        position: u64::from_be_bytes(u64_bytes),
        hash,
    };
    take(&mut u32_bytes)?;
    let mut trees = Vec::new();
    for _ in 0..u32::from_be_bytes(u32_bytes) {
        take(&mut u16_bytes)?;
        let mut name = vec![0u8; usize::from(u16::from_be_bytes(u16_bytes))];
        take(&mut name)?;
        let Some((name, layout)) = layouts
            .iter()
            .find(|(known, _)| known.as_bytes() == name.as_slice())
        else {
            return Ok(None);
        };
        take(&mut u32_bytes)?;
        let version = u32::from_be_bytes(u32_bytes);
        take(&mut u16_bytes)?;
        let width = u16::from_be_bytes(u16_bytes);
        take(&mut u16_bytes)?;
        let value_len = usize::from(u16::from_be_bytes(u16_bytes));
        if width != key_width(*layout) || value_len != layout.value_len {
            return Ok(None);
        }
        take(&mut u64_bytes)?;
        let mut tree = ResidentTree::new(*layout);
        let Some(key_len) = tree.stored_key_len() else {
            let mut value = vec![0u8; value_len];
            for _ in 0..u64::from_be_bytes(u64_bytes) {
                take(&mut u16_bytes)?;
                let mut key = vec![0u8; usize::from(u16::from_be_bytes(u16_bytes))];
                take(&mut key)?;
                take(&mut value)?;
                if tree
                    .whole
                    .last_key_value()
                    .is_some_and(|(last, _)| *last >= key)
                {
                    return Err(std::io::Error::other("records out of order"));
                }
                tree.whole.insert(key, value.clone());
                tree.records += 1;
            }
            trees.push((*name, version, tree));
            continue;
        };
        let mut record = vec![0u8; key_len + value_len];
        let mut previous: Option<Vec<u8>> = None;
        for _ in 0..u64::from_be_bytes(u64_bytes) {
            take(&mut record)?;
            let key = &record[..key_len];
            if previous.as_deref().is_some_and(|previous| previous >= key) {
                return Err(std::io::Error::other("records out of order"));
            }
            // In key order: each record goes at its shard's end.
            tree.shards[ResidentTree::shard_of(key)].extend_from_slice(&record);
            tree.records += 1;
            previous = Some(key.to_vec());
        }
        trees.push((*name, version, tree));
    }
    let digest = hasher.finalize();
    let mut stored = [0u8; 32];
    input.read_exact(&mut stored)?;
    if stored[..] != digest[..] {
        return Err(std::io::Error::other("digest mismatch"));
    }
    Ok(Some((head, trees)))
}

/// A change to a resident tree: tree, key, value (`None`: removed).
pub(crate) type TreeChange = (TreeName, Vec<u8>, Option<Vec<u8>>);

/// One change read back from a journal: stored key, value (`None`: removed).
pub(crate) type Change = (Vec<u8>, Option<Vec<u8>>);

/// The journal of the resident trees' changes since the snapshot, in the
/// sled directory beside it.
pub(crate) const JOURNAL_FILE: &str = "resident.journal";
const JOURNAL_MAGIC: &[u8; 8] = b"LRSRJ\0\0\x01";
/// The header's length: magic, position, entry hash.
pub(crate) const JOURNAL_HEADER_LEN: u64 = 8 + 8 + 32;

/// The changes every commit makes to the resident trees since the last
/// snapshot, appended before the commit's sled transaction (and cut off
/// again if that fails). Not synced: a process that dies leaves it whole in
/// the page cache; a machine that loses power may lose its tail, which
/// opening detects (the journal then ends before the checkpoint) and
/// answers by folding the projection again.
///
/// Header: magic, the snapshot's head (position u64 BE, entry hash) it
/// follows. Records: length (u32 BE), payload, the first 8 bytes of the
/// payload's SHA-256. Payload: the commit's position (u64 BE), the
/// projections it covers (u8 count, then u8 length and name each; none:
/// all), then per tree with changes its name (u8 length, name) and change
/// count (u32 BE), and per change `1 ‖ stored key ‖ value` or `0 ‖ stored key`
/// (a whole key of any length after its length, u16 BE).
pub(crate) struct Journal {
    file: std::fs::File,
    len: u64,
}

impl Journal {
    /// Starts a new, empty journal after the snapshot at `base` (a temporary
    /// file, synced, then renamed over the old one).
    pub(crate) fn create(dir: &Path, base: Head) -> std::io::Result<Self> {
        let path = dir.join(JOURNAL_FILE);
        crate::files::replace(&path, |file| {
            file.write_all(JOURNAL_MAGIC)?;
            file.write_all(&base.position.to_be_bytes())?;
            file.write_all(&base.hash)
        })?;
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(Self {
            file,
            len: JOURNAL_HEADER_LEN,
        })
    }

    /// Appends one commit's changes. `widths` as for [`read_journal`].
    pub(crate) fn append(
        &mut self,
        position: u64,
        covers: &[&str],
        changes: &[TreeChange],
        widths: impl Fn(&str) -> Option<Widths>,
    ) -> std::io::Result<()> {
        let mut payload = Vec::with_capacity(64 + changes.len() * 40);
        payload.extend_from_slice(&position.to_be_bytes());
        payload.push(covers.len() as u8);
        for name in covers {
            payload.push(name.len() as u8);
            payload.extend_from_slice(name.as_bytes());
        }
        let mut rest = changes;
        while let Some((tree, _, _)) = rest.first() {
            let count = rest.iter().take_while(|(t, _, _)| t == tree).count();
            payload.push(tree.len() as u8);
            payload.extend_from_slice(tree.as_bytes());
            payload.extend_from_slice(&(count as u32).to_be_bytes());
            let whole = widths(tree).is_some_and(|(key_len, _)| key_len.is_none());
            for (_, key, value) in &rest[..count] {
                payload.push(u8::from(value.is_some()));
                if whole {
                    payload.extend_from_slice(&(key.len() as u16).to_be_bytes());
                }
                payload.extend_from_slice(key);
                if let Some(value) = value {
                    payload.extend_from_slice(value);
                }
            }
            rest = &rest[count..];
        }
        use sha2::{Digest, Sha256};
        let mut record = Vec::with_capacity(payload.len() + 12);
        record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        record.extend_from_slice(&payload);
        record.extend_from_slice(&Sha256::digest(&payload)[..8]);
        if let Err(error) = self.file.write_all(&record) {
            let _ = self.file.set_len(self.len);
            return Err(error);
        }
        self.len += record.len() as u64;
        Ok(())
    }

    /// Goes on appending to the journal in `dir` after its first `len`
    /// bytes (what opening read and applied; a record after them belonged
    /// to a commit that never happened).
    pub(crate) fn resume(dir: &Path, len: u64) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(JOURNAL_FILE))?;
        file.set_len(len)?;
        Ok(Self { file, len })
    }

    /// Takes back the record just appended (its commit failed).
    pub(crate) fn undo(&mut self, record_start: u64) -> std::io::Result<()> {
        self.file.set_len(record_start)?;
        self.len = record_start;
        Ok(())
    }

    /// Where the next record starts.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// One record read back from a journal.
pub(crate) struct JournalRecord {
    pub(crate) position: u64,
    /// The projections the commit covered; empty: all.
    pub(crate) covers: Vec<String>,
    /// Per tree: stored key, and the value (`None`: removed).
    pub(crate) changes: Vec<(String, Vec<Change>)>,
}

/// Reads a journal: its base head and, if that is `follows` (the snapshot
/// it must continue), calls `each` with every whole record in order and the
/// offset where it ends (stopping at a torn or damaged one). Returns the
/// base, or `None` with no journal. `widths` gives a tree's stored key
/// width (`None`: whole keys, each after its length) and value width.
pub(crate) fn read_journal(
    dir: &Path,
    follows: Head,
    widths: impl Fn(&str) -> Option<Widths>,
    mut each: impl FnMut(JournalRecord, u64),
) -> std::io::Result<Option<Head>> {
    use sha2::{Digest, Sha256};
    let file = match std::fs::File::open(dir.join(JOURNAL_FILE)) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; JOURNAL_HEADER_LEN as usize];
    input.read_exact(&mut header)?;
    if &header[..8] != JOURNAL_MAGIC {
        return Err(std::io::Error::other("not a resident journal"));
    }
    let base = Head {
        position: u64::from_be_bytes(header[8..16].try_into().expect("8 bytes")),
        hash: header[16..48].try_into().expect("32 bytes"),
    };
    if base != follows {
        return Ok(Some(base));
    }
    let mut len = header.len() as u64;
    loop {
        let mut length = [0u8; 4];
        if input.read_exact(&mut length).is_err() {
            break;
        }
        let mut payload = vec![0u8; u32::from_be_bytes(length) as usize];
        let mut check = [0u8; 8];
        if input.read_exact(&mut payload).is_err() || input.read_exact(&mut check).is_err() {
            break;
        }
        if Sha256::digest(&payload)[..8] != check {
            break;
        }
        let Some(record) = parse_record(&payload, &widths) else {
            break;
        };
        len += 4 + payload.len() as u64 + 8;
        each(record, len);
    }
    Ok(Some(base))
}

/// A resident tree's stored key width (`None`: whole keys of any length)
/// and value width.
pub(crate) type Widths = (Option<usize>, usize);

fn parse_record(payload: &[u8], widths: &impl Fn(&str) -> Option<Widths>) -> Option<JournalRecord> {
    let mut rest = payload;
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        Some(bytes)
    };
    let position = u64::from_be_bytes(take(8)?.try_into().ok()?);
    let mut covers = Vec::new();
    for _ in 0..take(1)?[0] {
        let n = usize::from(take(1)?[0]);
        covers.push(String::from_utf8(take(n)?.to_vec()).ok()?);
    }
    let mut changes = Vec::new();
    while let Some(&[n]) = take(1) {
        let n = usize::from(n);
        let tree = String::from_utf8(take(n)?.to_vec()).ok()?;
        let (key_len, value_len) = widths(&tree)?;
        let count = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut these = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let put = take(1)?[0] == 1;
            let key_len = match key_len {
                Some(key_len) => key_len,
                None => usize::from(u16::from_be_bytes(take(2)?.try_into().ok()?)),
            };
            let key = take(key_len)?.to_vec();
            let value = if put {
                Some(take(value_len)?.to_vec())
            } else {
                None
            };
            these.push((key, value));
        }
        changes.push((tree, these));
    }
    Some(JournalRecord {
        position,
        covers,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: Resident = Resident {
        keys: ResidentKeys::Fixed(4),
        value_len: 2,
    };

    fn model(tree: &ResidentTree) -> Vec<(Vec<u8>, Vec<u8>)> {
        tree.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn behaves_as_a_sorted_map() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut tree = ResidentTree::new(LAYOUT);
        let mut expected = std::collections::BTreeMap::new();
        for _ in 0..20_000 {
            // few distinct first bytes, so shards hold many records
            let key = [
                rng.gen_range(0..3u8),
                rng.gen(),
                rng.gen(),
                rng.gen_range(0..4u8),
            ];
            let value: [u8; 2] = rng.gen();
            if rng.gen_bool(0.2) {
                tree.remove(&key);
                expected.remove(key.as_slice());
            } else {
                tree.insert(&key, &value);
                expected.insert(key.to_vec(), value.to_vec());
            }
        }
        let want: Vec<_> = expected.clone().into_iter().collect();
        assert_eq!(model(&tree), want);
        assert_eq!(tree.len(), expected.len() as u64);
        for (key, value) in expected.iter().take(500) {
            assert_eq!(tree.get(key).as_ref(), Some(value));
        }
        assert_eq!(tree.get(&[9, 9, 9, 9]), None);
        let prefix = [1u8, 7];
        let scanned = tree.scan_prefix(&prefix);
        let want: Vec<_> = expected
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(scanned, want);
        let all_of_two: Vec<_> = expected
            .iter()
            .filter(|(k, _)| k[0] == 2)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(tree.scan_prefix(&[2]), all_of_two);
        assert!(!all_of_two.is_empty());
    }

    #[test]
    fn keys_of_any_length_are_kept_as_digests() {
        let layout = Resident {
            keys: ResidentKeys::Digests,
            value_len: 0,
        };
        let mut tree = ResidentTree::new(layout);
        let keys: Vec<Vec<u8>> = (0..3_000u32)
            .map(|i| {
                format!("202611 NL-{i} 0 learners {}", "x".repeat(i as usize % 40)).into_bytes()
            })
            .collect();
        for key in &keys {
            tree.insert(key, &[]);
        }
        tree.insert(&keys[0], &[]);
        assert_eq!(tree.len(), 3_000);
        assert_eq!(tree.get(&keys[17]), Some(vec![]));
        assert_eq!(tree.get(b"202611 NL-17 0 learners"), None);
        tree.remove(&keys[17]);
        assert_eq!(tree.get(&keys[17]), None);
        assert_eq!(tree.len(), 2_999);
        assert!(tree.iter().all(|(key, _)| key.len() == DIGEST_LEN));
        // the digests spread over the shards (the keys share their start)
        let used = tree.shards.iter().filter(|shard| !shard.is_empty()).count();
        assert!(used > 2_500, "{used} shards used");
        let dir = tempfile::tempdir().unwrap();
        let head = Head {
            position: 1,
            hash: [0; 32],
        };
        save(dir.path(), head, &[("m", 4, &tree)]).unwrap();
        let (_, loaded) = load(dir.path(), &[("m", layout)]).unwrap();
        assert_eq!(model(&loaded[0].2), model(&tree));
        assert_eq!(loaded[0].2.get(&keys[18]), Some(vec![]));
    }

    #[test]
    fn the_journal_reads_back_its_whole_records_and_resumes_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let base = Head {
            position: 5,
            hash: [9; 32],
        };
        let mut journal = Journal::create(dir.path(), base).unwrap();
        let change = |k: u8, v: Option<u8>| ("t", vec![k; 4], v.map(|v| vec![v; 2]));
        journal
            .append(6, &[], &[change(1, Some(1)), change(2, None)], |_| None)
            .unwrap();
        journal.append(7, &["p"], &[], |_| None).unwrap();
        let after_two = journal.len();
        journal
            .append(9, &[], &[change(3, Some(3))], |_| None)
            .unwrap();
        drop(journal);
        let widths = |tree: &str| (tree == "t").then_some((Some(4), 2));
        let read = |dir: &Path| {
            let mut records = Vec::new();
            let found =
                read_journal(dir, base, widths, |record, end| records.push((record, end))).unwrap();
            (found, records)
        };
        let (found, records) = read(dir.path());
        assert_eq!(found.unwrap().position, 5);
        // Another snapshot's journal: its base is read, its records not.
        let other = Head {
            position: 5,
            hash: [8; 32],
        };
        let mut seen = 0;
        let found = read_journal(dir.path(), other, widths, |_, _| seen += 1).unwrap();
        assert_eq!(found.unwrap().hash, [9; 32]);
        assert_eq!(seen, 0);
        let positions: Vec<u64> = records.iter().map(|(r, _)| r.position).collect();
        assert_eq!(positions, [6, 7, 9]);
        assert_eq!(records[1].0.covers, ["p"]);
        assert_eq!(records[1].1, after_two);
        assert_eq!(
            records[0].0.changes,
            [(
                "t".to_owned(),
                vec![(vec![1; 4], Some(vec![1; 2])), (vec![2; 4], None)]
            )]
        );
        // A torn last record (a power loss): the two before it remain.
        let path = dir.path().join(JOURNAL_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (_, records) = read(dir.path());
        assert_eq!(records.len(), 2);
        // Resuming after the second record cuts off the rest and appends.
        let mut journal = Journal::resume(dir.path(), after_two).unwrap();
        journal
            .append(8, &[], &[change(4, Some(4))], |_| None)
            .unwrap();
        let (_, records) = read(dir.path());
        let positions: Vec<u64> = records.iter().map(|(r, _)| r.position).collect();
        assert_eq!(positions, [6, 7, 8]);
        // An undone record is gone.
        let start = journal.len();
        journal.append(10, &[], &[], |_| None).unwrap();
        journal.undo(start).unwrap();
        assert_eq!(read(dir.path()).1.len(), 3);
    }

    #[test]
    fn a_snapshot_loads_what_was_saved_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = ResidentTree::new(LAYOUT);
        for i in 0u32..5_000 {
            tree.insert(&i.wrapping_mul(2_654_435_761).to_be_bytes(), &[1, 2]);
        }
        let head = Head {
            position: 42,
            hash: [7; 32],
        };
        save(dir.path(), head, &[("t", 3, &tree)]).unwrap();
        let (loaded_head, loaded) = load(dir.path(), &[("t", LAYOUT)]).unwrap();
        assert_eq!(loaded_head.position, 42);
        assert_eq!(loaded_head.hash, [7; 32]);
        assert_eq!(loaded[0].1, 3, "the projection's version");
        assert_eq!(model(&loaded[0].2), model(&tree));
        assert_eq!(loaded[0].2.len(), 5_000);
        // another layout: not this snapshot
        let other = Resident {
            keys: ResidentKeys::Fixed(4),
            value_len: 3,
        };
        assert!(load(dir.path(), &[("t", other)]).is_none());
        // one flipped bit: refused
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(load(dir.path(), &[("t", LAYOUT)]).is_none());
    }

    #[test]
    fn whole_keys_scan_by_prefix_and_survive_a_snapshot_and_the_journal() {
        use rand::{Rng, SeedableRng};
        let layout = Resident {
            keys: ResidentKeys::Whole,
            value_len: 8,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut tree = ResidentTree::new(layout);
        let mut expected = std::collections::BTreeMap::new();
        for _ in 0..5_000 {
            // counters' shape: month, scope, figure, a course of any length
            let key = format!(
                "2026{:02}l:NL-{}\0{}{}",
                rng.gen_range(1..13),
                rng.gen_range(0..20),
                ['h', 'a', 'C'][rng.gen_range(0..3)],
                "https://example.org/course/".repeat(rng.gen_range(0..3))
            )
            .into_bytes();
            if rng.gen_bool(0.2) {
                tree.remove(&key);
                expected.remove(&key);
            } else {
                let value = rng.gen::<u64>().to_be_bytes();
                tree.insert(&key, &value);
                expected.insert(key, value.to_vec());
            }
        }
        assert_eq!(tree.len(), expected.len() as u64);
        assert_eq!(
            model(&tree),
            expected.clone().into_iter().collect::<Vec<_>>()
        );
        let prefix = b"202603l:NL-1";
        let want: Vec<_> = expected
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(tree.scan_prefix(prefix), want);
        assert_eq!(
            tree.key_from(b"202604"),
            expected
                .range(b"202604".to_vec()..)
                .next()
                .map(|(k, _)| k.clone())
        );
        assert_eq!(tree.key_from(b"2027"), None);
        let (key, value) = expected.iter().nth(17).unwrap();
        assert_eq!(tree.get(key).as_ref(), Some(value));
        // a snapshot, then a journal of two commits over it
        let dir = tempfile::tempdir().unwrap();
        let head = Head {
            position: 3,
            hash: [1; 32],
        };
        save(dir.path(), head, &[("c", 11, &tree)]).unwrap();
        let (_, mut loaded) = load(dir.path(), &[("c", layout)]).unwrap();
        assert_eq!(model(&loaded[0].2), model(&tree));
        let mut journal = Journal::create(dir.path(), head).unwrap();
        let long = vec![b'x'; 300];
        let changes = vec![
            ("c", long.clone(), Some(7u64.to_be_bytes().to_vec())),
            ("c", key.clone(), None),
        ];
        journal
            .append(4, &[], &changes, |tree| (tree == "c").then_some((None, 8)))
            .unwrap();
        let mut read = Vec::new();
        read_journal(
            dir.path(),
            head,
            |tree| (tree == "c").then_some((None, 8)),
            |record, _| read.push(record),
        )
        .unwrap();
        assert_eq!(read.len(), 1);
        let (_, these) = read.remove(0).changes.remove(0);
        assert_eq!(
            these,
            [
                (long.clone(), Some(7u64.to_be_bytes().to_vec())),
                (key.clone(), None)
            ]
        );
        let loaded = &mut loaded[0].2;
        for (key, value) in these {
            match value {
                Some(value) => loaded.insert_stored(&key, &value),
                None => loaded.remove_stored(&key),
            }
        }
        assert_eq!(loaded.get(&long), Some(7u64.to_be_bytes().to_vec()));
        assert_eq!(loaded.get(key), None);
        assert_eq!(loaded.len(), tree.len());
        // another layout of the same tree: not this snapshot
        let fixed = Resident {
            keys: ResidentKeys::Fixed(8),
            value_len: 8,
        };
        assert!(load(dir.path(), &[("c", fixed)]).is_none());
    }
}
