//! Packed trees ([`lrs_projections::Projection::packed`]): the keys of a
//! tree with the same bucket (their first bytes, as many as the tree's
//! [`BucketOf`] says) share one stored value under the bucket's key.
//!
//! Why: sled 0.34 costs about 150–450 bytes of disk per key beyond the
//! key and value themselves, most for small values at keys that arrive out
//! of order (`examples/sled_amplification.rs`, docs/adr/0004). A learner's
//! records of one course are a few dozen small values that always arrive
//! out of order; as one compressed value they cost one key.
//!
//! A bucket's entries are held in *frames* of at most [`FRAME_ENTRIES`]:
//! a new key joins the last frame while it has room, else starts a new
//! one, so a group that adds a record to a long bucket compresses that
//! frame again and copies the others' stored bytes (docs/performance.md,
//! "Lever 24"); before, every write compressed the whole bucket, which
//! made a statement's cost grow with its learner's history.
//!
//! Frame: the postcard encoding of its sorted (rest of the key, value)
//! pairs, compressed in `lrs_core::compress`'s tagged form
//! (`[dictionary id][zstd frame]`). Bucket value: one frame as it is (the
//! only form before lever 24, which still reads), or [`FRAMED`] followed
//! by each frame as `[varint length][frame]`.
//! Not canonical: the same entries can be framed differently, depending
//! on the order they were written in (and buckets written at another zstd
//! level, before lever 21, differ too), so a tree's digest for `lrs
//! verify` is over the entries, never over the stored bytes.

use crate::error::StoreError;
use lrs_projections::BucketOf;
use std::collections::BTreeMap;

/// The largest bucket a frame may claim (a corrupt one claiming more is refused).
const MAX_BUCKET_BYTES: usize = 256 << 20;
/// The most entries a new key's frame holds (a frame stored before lever 24 may hold more).
const FRAME_ENTRIES: usize = 16;
/// The first byte of a bucket of several frames: never a dictionary id.
const FRAMED: u8 = 0xF7;

/// Keys and values, in key order.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One bucket, decoded: its entries (the rest of each key after the
/// bucket → the frame that holds it and the value) and its frames with
/// their stored bytes, kept until one of their entries changes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bucket {
    entries: BTreeMap<Vec<u8>, (usize, Vec<u8>)>,
    frames: Vec<Frame>,
}

#[derive(Clone, Debug, Default)]
struct Frame {
    /// How many entries it holds.
    len: usize,
    /// Its bytes as stored, `None` once changed.
    stored: Option<Vec<u8>>,
}

impl Bucket {
    pub(crate) fn get(&self, rest: &[u8]) -> Option<&Vec<u8>> {
        self.entries.get(rest).map(|(_, value)| value)
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.entries.iter().map(|(rest, (_, value))| (rest, value))
    }

    /// Sets `rest` to `value`: in its frame when it has one, else in the
    /// last frame while that has room, else in a new one.
    pub(crate) fn insert(&mut self, rest: Vec<u8>, value: Vec<u8>) {
        if let Some((frame, old)) = self.entries.get_mut(&rest) {
            *old = value;
            self.frames[*frame].stored = None;
            return;
        }
        let frame = match self.frames.last() {
            Some(last) if last.len < FRAME_ENTRIES => self.frames.len() - 1,
            _ => {
                self.frames.push(Frame::default());
                self.frames.len() - 1
            }
        };
        self.frames[frame].len += 1;
        self.frames[frame].stored = None;
        self.entries.insert(rest, (frame, value));
    }

    pub(crate) fn remove(&mut self, rest: &[u8]) -> Option<Vec<u8>> {
        let (frame, value) = self.entries.remove(rest)?;
        self.frames[frame].len -= 1;
        self.frames[frame].stored = None;
        Some(value)
    }

    /// The stored value: frames changed since they were read are encoded
    /// again (and kept), the others copied as they were stored. Empty
    /// frames are dropped. `None` for an empty bucket (nothing to store).
    pub(crate) fn encode(&mut self) -> Option<Vec<u8>> {
        if self.entries.is_empty() {
            self.frames.clear();
            return None;
        }
        if self.frames.iter().any(|frame| frame.len == 0) {
            self.drop_empty_frames();
        }
        let mut changed: Vec<Vec<(&Vec<u8>, &Vec<u8>)>> = self
            .frames
            .iter()
            .map(|frame| Vec::with_capacity(if frame.stored.is_none() { frame.len } else { 0 }))
            .collect();
        for (rest, (frame, value)) in &self.entries {
            if self.frames[*frame].stored.is_none() {
                changed[*frame].push((rest, value));
            }
        }
        for (frame, pairs) in self.frames.iter_mut().zip(changed) {
            if frame.stored.is_none() {
                frame.stored = Some(lrs_core::compress::compress_tagged_fast(&encode_pairs(
                    pairs,
                )));
            }
        }
        fn stored(frame: &Frame) -> &[u8] {
            frame.stored.as_deref().expect("every frame encoded")
        }
        if let [frame] = self.frames.as_slice() {
            return Some(stored(frame).to_vec());
        }
        let mut value = vec![FRAMED];
        for frame in &self.frames {
            let bytes = stored(frame);
            put_varint(&mut value, bytes.len());
            value.extend_from_slice(bytes);
        }
        Some(value)
    }

    fn drop_empty_frames(&mut self) {
        let mut renumbered = Vec::with_capacity(self.frames.len());
        let mut kept = 0;
        for frame in &self.frames {
            renumbered.push(kept);
            kept += usize::from(frame.len > 0);
        }
        self.frames.retain(|frame| frame.len > 0);
        for (frame, _) in self.entries.values_mut() {
            *frame = renumbered[*frame];
        }
    }

    pub(crate) fn decode(value: &[u8]) -> Result<Self, StoreError> {
        let mut bucket = Bucket::default();
        match value.split_first() {
            Some((&FRAMED, mut rest)) => {
                while !rest.is_empty() {
                    let (len, after) = take_varint(rest).ok_or_else(|| corrupt("frame length"))?;
                    let frame = after.get(..len).ok_or_else(|| corrupt("frame cut short"))?;
                    bucket.add_frame(frame)?;
                    rest = &after[len..];
                }
            }
            _ => bucket.add_frame(value)?,
        }
        Ok(bucket)
    }

    fn add_frame(&mut self, stored: &[u8]) -> Result<(), StoreError> {
        let bytes = lrs_core::compress::decompress_tagged(stored, MAX_BUCKET_BYTES)
            .map_err(|e| corrupt(&e.to_string()))?;
        let frame = self.frames.len();
        let mut len = 0;
        for (rest, value) in decode_pairs(&bytes)? {
            if self.entries.insert(rest, (frame, value)).is_some() {
                return Err(corrupt("a key in two frames"));
            }
            len += 1;
        }
        self.frames.push(Frame {
            len,
            stored: Some(stored.to_vec()),
        });
        Ok(())
    }
}

impl FromIterator<(Vec<u8>, Vec<u8>)> for Bucket {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>>(entries: I) -> Self {
        let mut bucket = Bucket::default();
        for (rest, value) in entries {
            bucket.insert(rest, value);
        }
        bucket
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("packed bucket: {what}"))
}

/// The pairs as postcard writes a `Vec<(Vec<u8>, Vec<u8>)>` (a varint count,
/// then each byte string as a varint length and its bytes), without
/// postcard's byte-by-byte serialisation of a `Vec<u8>`.
fn encode_pairs(pairs: Vec<(&Vec<u8>, &Vec<u8>)>) -> Vec<u8> {
    let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(size + 5);
    put_varint(&mut out, pairs.len());
    for (rest, value) in pairs {
        for bytes in [rest, value] {
            put_varint(&mut out, bytes.len());
            out.extend_from_slice(bytes);
        }
    }
    out
}

/// The pairs of [`encode_pairs`] (or of postcard's encoding of the same type).
fn decode_pairs(mut bytes: &[u8]) -> Result<Entries, StoreError> {
    let count = {
        let (count, rest) = take_varint(bytes).ok_or_else(|| corrupt("entry count"))?;
        bytes = rest;
        count
    };
    let mut take = |what: &str| -> Result<Vec<u8>, StoreError> {
        let (len, rest) = take_varint(bytes).ok_or_else(|| corrupt(what))?;
        let taken = rest.get(..len).ok_or_else(|| corrupt(what))?;
        bytes = &rest[len..];
        Ok(taken.to_vec())
    };
    let mut pairs = Vec::with_capacity(count.min(MAX_BUCKET_BYTES / 2));
    for _ in 0..count {
        pairs.push((take("key")?, take("value")?));
    }
    if !bytes.is_empty() {
        return Err(corrupt("bytes after the entries"));
    }
    Ok(pairs)
}

/// LEB128, as postcard writes a length.
fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut n: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7F).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((usize::try_from(n).ok()?, &bytes[i + 1..]));
        }
    }
    None
}

/// `(bucket key, rest)` of a key; `None` for a malformed one.
pub(crate) fn split(key: &[u8], bucket_of: BucketOf) -> Option<(&[u8], &[u8])> {
    let at = bucket_of(key)?;
    (at <= key.len()).then(|| key.split_at(at))
}

/// Every entry of `tree` (packed) whose full key starts with `prefix`, in
/// key order. `prefix` must end at or before the end of a bucket.
pub(crate) fn scan_prefix(tree: &sled::Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
    let mut found = Vec::new();
    for item in tree.scan_prefix(prefix) {
        let (bucket_key, value) = item?;
        for (rest, value) in Bucket::decode(&value)?.entries {
            found.push(([bucket_key.as_ref(), rest.as_slice()].concat(), value.1));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// One entry of `tree` (packed).
pub(crate) fn get(
    tree: &sled::Tree,
    bucket_of: BucketOf,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some((bucket_key, rest)) = split(key, bucket_of) else {
        return Ok(None);
    };
    Ok(read_bucket(tree, bucket_key)?.and_then(|mut bucket| bucket.remove(rest)))
}

/// One bucket of `tree` (packed), decoded; `None` when it is absent.
pub(crate) fn read_bucket(
    tree: &sled::Tree,
    bucket_key: &[u8],
) -> Result<Option<Bucket>, StoreError> {
    tree.get(bucket_key)?
        .map(|value| Bucket::decode(&value))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As progress.learners: a 16-byte learner, a course, 0, then the rest.
    fn learner_course(key: &[u8]) -> Option<usize> {
        Some(16 + key.get(16..)?.iter().position(|&b| b == 0)? + 1)
    }

    #[test]
    fn a_packed_tree_reads_like_the_plain_one() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let mut plain: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut buckets: BTreeMap<Vec<u8>, Bucket> = BTreeMap::new();
        for (learner, course, module, position) in [
            (1u8, "c1", "m1", 5u64),
            (1, "c1", "m2", 3),
            (1, "c2", "", 9),
            (2, "c1", "m1", 4),
        ] {
            let key = [
                &[learner; 16][..],
                course.as_bytes(),
                &[0],
                module.as_bytes(),
                &[0],
                &position.to_be_bytes(),
            ]
            .concat();
            let value = format!("record {learner} {course} {position}").into_bytes();
            plain.insert(key.clone(), value.clone());
            let (bucket_key, rest) = split(&key, learner_course).unwrap();
            buckets
                .entry(bucket_key.to_vec())
                .or_default()
                .insert(rest.to_vec(), value);
        }
        for (bucket_key, bucket) in &mut buckets {
            tree.insert(bucket_key, bucket.encode().unwrap()).unwrap();
        }
        assert_eq!(tree.len(), 3, "one value per learner and course");
        let c1 = [&[1u8; 16][..], b"c1\0"].concat();
        for prefix in [&[1u8; 16][..], &c1, &[2u8; 16], &[3u8; 16]] {
            let expected: Vec<(Vec<u8>, Vec<u8>)> = plain
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(scan_prefix(&tree, prefix).unwrap(), expected);
        }
        for (key, value) in &plain {
            assert_eq!(
                get(&tree, learner_course, key).unwrap().as_ref(),
                Some(value)
            );
        }
        let missing = [&c1[..], b"m1\0", &7u64.to_be_bytes()].concat();
        assert_eq!(get(&tree, learner_course, &missing).unwrap(), None);
        // read back, an unchanged bucket is its stored bytes again
        let stored = tree.get(&c1).unwrap().unwrap();
        let mut again = Bucket::decode(&stored).unwrap();
        assert_eq!(again.encode().unwrap(), stored.to_vec());
    }

    /// Postcard's encoding of the same pairs, the form of every bucket
    /// written before lever 24.
    fn postcard_pairs(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        postcard::to_stdvec(&entries.iter().map(|(k, v)| (k, v)).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn pairs_are_postcards_bytes() {
        let long = vec![0xA5u8; 300];
        for entries in [
            vec![],
            vec![(vec![], vec![])],
            vec![(b"m\0\0\0\0\0\0\0\x07".to_vec(), long.clone())],
            (0..200u32)
                .map(|n| (n.to_be_bytes().to_vec(), long[..(n as usize)].to_vec()))
                .collect(),
        ] {
            let ours = encode_pairs(entries.iter().map(|(k, v)| (k, v)).collect());
            assert_eq!(ours, postcard_pairs(&entries));
            assert_eq!(decode_pairs(&ours).unwrap(), entries);
        }
        assert!(decode_pairs(&[2, 1, 7]).is_err(), "cut short");
        assert!(decode_pairs(&[0, 9]).is_err(), "bytes after the entries");
        assert!(decode_pairs(&[0xFF; 11]).is_err(), "an endless varint");
    }

    /// Random writes to buckets, each encoded and decoded again after
    /// every few, against a plain map; a bucket stored before lever 24
    /// (one frame of more entries than a frame holds now) reads and grows.
    #[test]
    fn frames_hold_what_was_written_and_keep_the_untouched_ones_bytes() {
        let mut next = crate::testing::random_below(0x9E37_79B9_7F4A_7C15_u64);
        let record = |n: u64| format!("record {n} of a module, with a score").into_bytes();
        // Before lever 24: one postcard frame of 40 entries.
        let old: Vec<(Vec<u8>, Vec<u8>)> = (0..40u64)
            .map(|n| ([&b"m"[..], &[0], &n.to_be_bytes()].concat(), record(n)))
            .collect();
        let old_value = lrs_core::compress::compress_tagged(&postcard_pairs(&old));
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = old.iter().cloned().collect();
        let mut stored = old_value.clone();
        assert_eq!(Bucket::decode(&stored).unwrap().frames.len(), 1);
        let mut position = 1_000u64;
        for round in 0..300 {
            let mut bucket = Bucket::decode(&stored).unwrap();
            let frames_before: Vec<Option<Vec<u8>>> =
                bucket.frames.iter().map(|f| f.stored.clone()).collect();
            let mut touched = std::collections::BTreeSet::new();
            for _ in 0..1 + next(3) {
                let rest = match next(10) {
                    // mostly a new record, as a statement adds
                    0..=6 => {
                        position += 1 + next(5);
                        [&b"m"[..], &[0], &position.to_be_bytes()].concat()
                    }
                    // now and then an existing one changes or goes
                    _ => match model.keys().nth(next(model.len().max(1) as u64) as usize) {
                        Some(key) => key.clone(),
                        None => continue,
                    },
                };
                if let Some((frame, _)) = bucket.entries.get(&rest) {
                    touched.insert(*frame);
                }
                if next(4) == 0 && model.contains_key(&rest) {
                    assert_eq!(bucket.remove(&rest), model.remove(&rest));
                } else {
                    bucket.insert(rest.clone(), record(round));
                    model.insert(rest, record(round));
                }
            }
            let expected: Vec<_> = model.iter().collect();
            assert_eq!(bucket.iter().collect::<Vec<_>>(), expected);
            let untouched: Vec<Vec<u8>> = frames_before
                .iter()
                .enumerate()
                // the last frame takes new keys; the others change only when theirs do
                .filter(|(i, _)| !touched.contains(i) && i + 1 < frames_before.len())
                .filter_map(|(_, bytes)| bytes.clone())
                .collect();
            let to_encode = bucket.frames.iter().filter(|f| f.stored.is_none()).count();
            assert!(
                to_encode <= touched.len() + 2,
                "round {round}: {to_encode} frames to encode for {} touched",
                touched.len()
            );
            let Some(value) = bucket.encode() else {
                assert!(model.is_empty());
                break;
            };
            for bytes in untouched {
                assert!(
                    value.windows(bytes.len()).any(|w| w == bytes.as_slice()),
                    "round {round}: an untouched frame is copied, not encoded again"
                );
            }
            let read = Bucket::decode(&value).unwrap();
            assert_eq!(read.iter().collect::<Vec<_>>(), expected);
            assert!(read.frames.iter().skip(1).all(|f| f.len <= FRAME_ENTRIES));
            stored = value;
        }
        assert!(
            Bucket::decode(&stored).unwrap().frames.len() > 5,
            "the bucket grew in frames"
        );
        assert!(
            Bucket::decode(&[FRAMED, 5, 1]).is_err(),
            "a frame cut short"
        );
        assert!(Bucket::decode(&[]).is_err());
    }
}
