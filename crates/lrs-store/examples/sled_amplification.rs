//! How much disk sled 0.34 takes per record, by key order and value size:
//! the measurement behind docs/adr/0004-log-compression-and-sled-space.md.
//!
//! ```sh
//! cargo run --release -p lrs-store --example sled_amplification -- ordered 100000 300
//! ```
//!
//! Arguments: key order (`ordered`: 8-byte big-endian counters, as the log;
//! `clustered`: one of 5,000 random 16-byte prefixes then a counter, as a
//! learner's records; `random`: 16 random bytes, as statement ids), the
//! number of records, the value size in bytes, and the records per flush
//! (default 100, a commit group). Prints raw bytes per record, bytes on disk
//! per record, and their ratio.

use rand::{Rng, SeedableRng};

fn disk_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(path)
        .expect("directory")
        .map(|entry| {
            let entry = entry.expect("entry");
            let metadata = entry.metadata().expect("metadata");
            if metadata.is_dir() {
                disk_bytes(&entry.path())
            } else {
                metadata.blocks() * 512
            }
        })
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: sled_amplification ordered|clustered|random RECORDS VALUE_BYTES [PER_FLUSH]";
    let order = args.get(1).expect(usage).clone();
    let records: u64 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let value_len: usize = args.get(3).and_then(|a| a.parse().ok()).expect(usage);
    let per_flush: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(100);
    let dir = std::env::temp_dir().join(format!("sled-amplification-{}", std::process::id()));
    let db = sled::Config::new()
        .path(&dir)
        .flush_every_ms(None)
        .open()
        .expect("sled opens");
    let tree = db.open_tree("t").expect("tree");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let prefixes: Vec<[u8; 16]> = (0..5000).map(|_| rng.gen()).collect();
    let mut raw = 0u64;
    for i in 0..records {
        let mut key = Vec::with_capacity(24);
        match order.as_str() {
            "ordered" => key.extend_from_slice(&i.to_be_bytes()),
            "clustered" => {
                key.extend_from_slice(&prefixes[rng.gen_range(0..prefixes.len())]);
                key.extend_from_slice(&i.to_be_bytes());
            }
            "random" => key.extend_from_slice(&rng.gen::<[u8; 16]>()),
            _ => panic!("{usage}"),
        }
        // compressible like a record, but the same for every order
        let value: Vec<u8> = (0..value_len).map(|j| (j % 7) as u8).collect();
        raw += (key.len() + value.len()) as u64;
        tree.insert(key, value).expect("insert");
        if i % per_flush == per_flush - 1 {
            db.flush().expect("flush");
        }
    }
    db.flush().expect("flush");
    drop(tree);
    drop(db);
    let disk = disk_bytes(&dir);
    std::fs::remove_dir_all(&dir).expect("remove the directory");
    println!(
        "{order} records={records} value={value_len} per_flush={per_flush}: raw {} B/record, \
         disk {} B/record, disk/raw {:.2}",
        raw / records,
        disk / records,
        disk as f64 / raw as f64
    );
}
