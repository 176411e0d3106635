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
//! Bucket value: the postcard encoding of the sorted (rest of the key,
//! value) pairs, compressed in `lrs_core::compress`'s tagged form
//! (`[dictionary id][zstd frame]`).
//! Deterministic: the same entries give the same bytes with the same
//! compressor, so a rebuilt tree equals the stored one byte for byte; a
//! tree's digest for `lrs verify` is over the entries, so that buckets
//! written at another zstd level (before lever 21) or by another zstd
//! still compare equal when they hold the same.

use crate::error::StoreError;
use lrs_projections::BucketOf;
use std::collections::BTreeMap;

/// The largest bucket a frame may claim (a corrupt one claiming more is refused).
const MAX_BUCKET_BYTES: usize = 256 << 20;

/// The rest of each key (after the bucket) → its value.
pub(crate) type Bucket = BTreeMap<Vec<u8>, Vec<u8>>;
/// Keys and values, in key order.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// `(bucket key, rest)` of a key; `None` for a malformed one.
pub(crate) fn split(key: &[u8], bucket_of: BucketOf) -> Option<(&[u8], &[u8])> {
    let at = bucket_of(key)?;
    (at <= key.len()).then(|| key.split_at(at))
}

pub(crate) fn encode(bucket: &Bucket) -> Vec<u8> {
    let pairs: Vec<(&Vec<u8>, &Vec<u8>)> = bucket.iter().collect();
    let bytes = postcard::to_stdvec(&pairs).expect("pairs encode");
    lrs_core::compress::compress_tagged_fast(&bytes)
}

pub(crate) fn decode(value: &[u8]) -> Result<Bucket, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("packed bucket: {what}"));
    let bytes = lrs_core::compress::decompress_tagged(value, MAX_BUCKET_BYTES)
        .map_err(|e| corrupt(e.to_string()))?;
    let pairs: Vec<(Vec<u8>, Vec<u8>)> =
        postcard::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?;
    Ok(pairs.into_iter().collect())
}

/// Every entry of `tree` (packed) whose full key starts with `prefix`, in
/// key order. `prefix` must end at or before the end of a bucket.
pub(crate) fn scan_prefix(tree: &sled::Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
    let mut found = Vec::new();
    for item in tree.scan_prefix(prefix) {
        let (bucket_key, value) = item?;
        for (rest, value) in decode(&value)? {
            found.push(([bucket_key.as_ref(), rest.as_slice()].concat(), value));
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
        .map(|value| decode(&value))
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
        for (bucket_key, bucket) in &buckets {
            tree.insert(bucket_key, encode(bucket)).unwrap();
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
        // the same entries, the same bytes
        let again = decode(&encode(&buckets[&c1])).unwrap();
        assert_eq!(encode(&again), encode(&buckets[&c1]));
    }
}
