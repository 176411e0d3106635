//! Compression of what the log stores: zstd frames made with a dictionary
//! named by one byte, so that a log entry or a sealed body says how to read
//! it back. Dictionary 1 is the xAPI and cmi5 vocabulary (JSON keys, ADL
//! verbs and activity types, cmi5 categories and extensions) as raw content
//! (`compress/xapi-v1.txt`): short statements share little with each other
//! inside one frame, so most of what zstd finds is there. It holds no data
//! of any store, so nothing personal. A dictionary is frozen once written:
//! a new one gets a new id, and [`decompress`] keeps reading every old one.
//!
//! What the store keeps is the *tagged* form ([`compress_tagged`]):
//! `[dictionary id][zstd frame]`, so the bytes say how to read them back.

use std::cell::RefCell;

/// The xAPI vocabulary, as raw content (frozen: see the test below).
pub const XAPI_V1: u8 = 1;
const XAPI_V1_BYTES: &[u8] = include_bytes!("compress/xapi-v1.txt");

/// The level a sealed statement body is written at ([`compress`]): zstd's
/// default, a statement in a few microseconds on the request's thread.
const LEVEL: i32 = 3;

/// The level of what the log writer compresses on its one thread
/// ([`compress_tagged_fast`]): log chunks, whose events are mostly sealed
/// bodies compressed already, and read-model buckets rewritten at every
/// group. Readers do not care: a frame reads back the same at any level.
const FAST_LEVEL: i32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompressError {
    #[error("unknown compression dictionary {0}")]
    UnknownDictionary(u8),
    #[error("compressed frame does not decode: {0}")]
    Corrupt(String),
    #[error("compressed frame would be {size} bytes, more than the {limit} allowed")]
    TooLarge { size: u64, limit: usize },
}

thread_local! {
    // One context per thread with the dictionary loaded once: loading it
    // per frame would cost more than compressing a statement.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static FAST_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `bytes` as one zstd frame made with dictionary [`XAPI_V1`] (the frame
/// records its content size, which [`decompress`] checks against a limit).
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    compress_with(&COMPRESSOR, LEVEL, bytes)
}

type Context = std::thread::LocalKey<RefCell<Option<zstd::bulk::Compressor<'static>>>>;

fn compress_with(context: &'static Context, level: i32, bytes: &[u8]) -> Vec<u8> {
    context.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = cell.get_or_insert_with(|| {
            zstd::bulk::Compressor::with_dictionary(level, XAPI_V1_BYTES)
                .expect("zstd accepts the built-in dictionary")
        });
        compressor
            .compress(bytes)
            .expect("compressing into a large enough buffer does not fail")
    })
}

/// `[XAPI_V1][compress(bytes)]`: a frame that names its dictionary. A
/// caller that may also keep `bytes` as they are compares the lengths.
pub fn compress_tagged(bytes: &[u8]) -> Vec<u8> {
    tagged(compress(bytes))
}

/// [`compress_tagged`] at zstd's level 1: for the log writer's thread,
/// where the time spent is every write's wait (docs/performance.md,
/// "Lever 21").
pub fn compress_tagged_fast(bytes: &[u8]) -> Vec<u8> {
    tagged(compress_with(&FAST_COMPRESSOR, FAST_LEVEL, bytes))
}

fn tagged(frame: Vec<u8>) -> Vec<u8> {
    let mut tagged = Vec::with_capacity(1 + frame.len());
    tagged.push(XAPI_V1);
    tagged.extend_from_slice(&frame);
    tagged
}

/// The content of a frame made by [`compress_tagged`], if it is at most
/// `limit` bytes.
pub fn decompress_tagged(tagged: &[u8], limit: usize) -> Result<Vec<u8>, CompressError> {
    match tagged.split_first() {
        Some((&id, frame)) => decompress(id, frame, limit),
        None => Err(CompressError::Corrupt("empty compressed value".into())),
    }
}

/// The content of a frame made by [`compress`] with dictionary `id`, if it
/// is at most `limit` bytes.
pub fn decompress(id: u8, frame: &[u8], limit: usize) -> Result<Vec<u8>, CompressError> {
    if id != XAPI_V1 {
        return Err(CompressError::UnknownDictionary(id));
    }
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size,
        Ok(None) => {
            return Err(CompressError::Corrupt(
                "frame without a content size".into(),
            ))
        }
        Err(_) => return Err(CompressError::Corrupt("not a zstd frame".into())),
    };
    if size > limit as u64 {
        return Err(CompressError::TooLarge { size, limit });
    }
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = cell.get_or_insert_with(|| {
            zstd::bulk::Decompressor::with_dictionary(XAPI_V1_BYTES)
                .expect("zstd accepts the built-in dictionary")
        });
        let bytes = decompressor
            .decompress(frame, size as usize)
            .map_err(|e| CompressError::Corrupt(e.to_string()))?;
        if bytes.len() as u64 != size {
            return Err(CompressError::Corrupt(
                "content size differs from the frame's".into(),
            ));
        }
        Ok(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_dictionary_is_frozen() {
        use sha2::{Digest, Sha256};
        // Frames in existing logs need exactly these bytes: never edit the
        // file; add a dictionary with a new id instead.
        assert_eq!(XAPI_V1_BYTES.len(), 4493);
        assert_eq!(
            hex(&Sha256::digest(XAPI_V1_BYTES)),
            include_str!("compress/xapi-v1.sha256").trim()
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn round_trip_and_smaller_than_the_statement() {
        let statement = br#"{"actor":{"$p":0},"verb":{"id":"http://adlnet.gov/expapi/verbs/completed","display":{"en-US":"completed"}},"object":{"id":"https://courses.example/nl/veilig-online/module-3","objectType":"Activity","definition":{"name":{"nl-NL":"Module 3"},"type":"http://adlnet.gov/expapi/activities/module"}},"result":{"completion":true,"duration":"PT12M4S"},"context":{"registration":"6f1c9a52-3f7e-4b43-9a9b-2d0c4f1f8e21","contextActivities":{"grouping":[{"id":"https://courses.example/nl/veilig-online","objectType":"Activity"}],"category":[{"id":"https://w3id.org/xapi/cmi5/context/categories/cmi5"},{"id":"https://w3id.org/xapi/cmi5/context/categories/moveon"}]},"extensions":{"https://w3id.org/xapi/cmi5/context/extensions/sessionid":"d1f0a3e2-55c1-4c52-8d0e-0b7f7e5d9c11"}},"timestamp":"2026-11-03T10:15:02.123Z","version":"1.0.0"}"#;
        let frame = compress(statement);
        assert!(
            frame.len() * 2 < statement.len(),
            "{} of {} bytes",
            frame.len(),
            statement.len()
        );
        assert_eq!(decompress(XAPI_V1, &frame, 1 << 20).unwrap(), statement);
        let tagged = compress_tagged(statement);
        assert_eq!(tagged, [&[XAPI_V1][..], &frame].concat());
        assert_eq!(decompress_tagged(&tagged, 1 << 20).unwrap(), statement);
        // The writer's faster level reads back the same way, and still
        // finds the dictionary's words.
        let fast = compress_tagged_fast(statement);
        assert_eq!(decompress_tagged(&fast, 1 << 20).unwrap(), statement);
        assert!(fast.len() * 2 < statement.len(), "{} bytes", fast.len());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let frame = compress(&[7u8; 5000]);
        assert_eq!(
            decompress(XAPI_V1, &frame, 100),
            Err(CompressError::TooLarge {
                size: 5000,
                limit: 100
            })
        );
        assert_eq!(
            decompress(9, &frame, 1 << 20),
            Err(CompressError::UnknownDictionary(9))
        );
        assert!(matches!(
            decompress(XAPI_V1, b"{\"not\":\"zstd\"}", 1 << 20),
            Err(CompressError::Corrupt(_))
        ));
        assert!(matches!(
            decompress_tagged(&[], 1 << 20),
            Err(CompressError::Corrupt(_))
        ));
    }
}
