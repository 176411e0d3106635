//! sled's segment size (docs/adr/0010). sled writes its pages into
//! fixed-size segments of one file (`log/db`), moves the live pages out of a
//! segment once half of it is garbage, and writes a page larger than a
//! quarter of a segment as a file of its own (`log/blobs/`). The read
//! models rewrite small pages at random places all the time, and the log's
//! chunks are 20–27 KB: at sled's default 512 KiB they go between the two
//! files, and the garbage in both is what a store pays most for. 16 MiB
//! segments (the most sled allows) keep every page in `log/db` and a store
//! of the learners' scenario of ten million statements at 0.92× the bytes
//! (docs/performance.md, "Levers 12 and 13"). Smaller segments saved more
//! bytes but not time: the first write after every start walks all the
//! segments once per segment (sled 0.34's `SegmentAccountant::stabilize`),
//! which at 64 KiB stalled that write for 25 s at ten million statements.
//!
//! sled records the size in `log/conf` when it creates the database and
//! refuses to open it with another, so a store keeps the size it was made
//! with: every open of an existing log reads it back from there. A store
//! made before takes the new size through `lrs backup` and `lrs restore`
//! (docs/operations.md, "Upgrading").

use std::path::Path;

/// Tells the kernel that sled's file `db` is read at random places
/// (`POSIX_FADV_RANDOM`), on every descriptor this process holds on it
/// (sled's own, which it reads pages with, and the store's, which it syncs);
/// returns how many it advised.
///
/// sled reads a page with one `pread` of the whole page: for the log tree a
/// leaf of up to 16 chunks (~230 KB). A store larger than the page cache
/// reads such leaves at random places, and the kernel's readahead, seeing a
/// large read, reads on past it: megabytes nobody asked for (`vda` here
/// reads ahead 8 MiB), which cost CPU to read and push out of the page cache
/// the pages that would have been read again. A sequential reader of the
/// store (the analytics follower catching up, `lrs analytics rebuild`)
/// loses the readahead but not the page: sled reads a page whole (a
/// rebuild at 10 M ran at 0.95× the session before's, one run each, not
/// apportioned). A backup of a stopped store opens sled on its own and is
/// not advised; one taken from a running server reads through this store.
/// RocksDB does the same to its table files by default
/// (`advise_random_on_open`). Measured in docs/performance.md ("Levers 14
/// and 15: statement pages at ten million with less memory").
#[cfg(target_os = "linux")]
pub(crate) fn advise_random_reads(db: &Path) -> usize {
    let Ok(db) = db.canonicalize() else {
        return 0;
    };
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut advised = 0;
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let Some(number) = fd.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if target != db {
            continue;
        }
        // SAFETY: `number` was open in this process a moment ago (listed,
        // its link read) and is borrowed for this one call. Had another
        // thread closed it since, and the number been reused, the advice
        // would fall on another file: a hint about reads, nothing else.
        let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(number) };
        if rustix::fs::fadvise(fd, 0, None, rustix::fs::Advice::Random).is_ok() {
            advised += 1;
        }
    }
    advised
}

/// Elsewhere there is no `/proc/self/fd` to find sled's descriptor by.
#[cfg(not(target_os = "linux"))]
pub(crate) fn advise_random_reads(_db: &Path) -> usize {
    0
}

/// How often sled's own flusher thread runs (milliseconds): it hands sled's
/// write buffer to the disk, then moves live pages out of segments that
/// are half garbage for up to half the period, then `fsync`s the file.
/// Durability does not wait for it (the writer flushes and syncs every
/// group itself); what it buys is the cleaning. Without it sled cleans only
/// at page replacements, one page each, so the fewer pages a store
/// rewrites the more garbage it keeps: with the figure counters in memory
/// (docs/adr/0011) sled's directory grew by 7 % at one million statements.
/// With the flusher every second it was 0.92× what main left, and single
/// POSTs 1.25× as fast (docs/performance.md, "Lever 19").
pub(crate) const CLEAN_EVERY_MS: u64 = 1_000;

/// The segment size of a log sled creates from now on.
pub(crate) const NEW_SEGMENT_SIZE: usize = 16 * 1024 * 1024;

/// sled's configuration for the log directory `log_dir`: its path and the
/// segment size it was created with (or [`NEW_SEGMENT_SIZE`] for a new one).
pub(crate) fn log_config(log_dir: &Path) -> sled::Config {
    sled::Config::new()
        .path(log_dir)
        .segment_size(recorded_segment_size(log_dir).unwrap_or(NEW_SEGMENT_SIZE))
}

/// The segment size sled recorded in `log_dir/conf` (a line
/// `segment_size: N` followed by a checksum); `None` for a new directory.
/// A `conf` without a readable size is left to sled to refuse.
pub(crate) fn recorded_segment_size(log_dir: &Path) -> Option<usize> {
    let bytes = std::fs::read(log_dir.join("conf")).ok()?;
    String::from_utf8_lossy(&bytes).lines().find_map(|line| {
        line.strip_prefix("segment_size:")
            .and_then(|size| size.trim().parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_sleds_file_are_advised_random() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let db = log_config(&log).open().unwrap();
        // sled's one descriptor on its file is found (and no other file's)
        assert_eq!(advise_random_reads(&log.join("db")), 1);
        assert_eq!(advise_random_reads(&log.join("conf")), 0);
        let ours = std::fs::File::open(log.join("db")).unwrap();
        assert_eq!(advise_random_reads(&log.join("db")), 2);
        drop((db, ours));
    }

    #[test]
    fn a_new_log_gets_the_new_size_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        drop(log_config(&new).open().unwrap());
        assert_eq!(recorded_segment_size(&new), Some(NEW_SEGMENT_SIZE));

        // a log made by sled's default (512 KiB), as every store before
        let old = dir.path().join("old");
        let db = sled::Config::new().path(&old).open().unwrap();
        db.insert(b"k", b"v".as_slice()).unwrap();
        db.flush().unwrap();
        drop(db);
        assert_eq!(recorded_segment_size(&old), Some(512 * 1024));
        let db = log_config(&old).open().unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(b"v".as_slice()));
        drop(db);
        assert_eq!(recorded_segment_size(&old), Some(512 * 1024));
        // what sled itself does when asked for another size
        assert!(sled::Config::new()
            .path(&old)
            .segment_size(NEW_SEGMENT_SIZE)
            .open()
            .is_err());
    }
}
