//! Backup, restore and verification, through the real `lrs` command line
//! against a real server: an online backup under write load restores every
//! acknowledged statement, projections rebuild identically, and `lrs verify`
//! finds a single flipped byte.

use crate::common::*;
use lrs_blackbox_tests::{statement, StatusCode, TestServer, Xapi};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `lrs ARGS` and returns (exit code, stdout, stderr).
fn lrs(server: &TestServer, args: &[&str]) -> (i32, String, String) {
    let output = server.lrs_outcome(args).expect("lrs runs");
    (
        output.status.code().unwrap_or(-1),
        text(&output.stdout),
        text(&output.stderr),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `lrs backup --to TO --data-dir DATA_DIR`.
fn backup(server: &TestServer, to: &Path, data_dir: &Path) -> (i32, String, String) {
    lrs(
        server,
        &["backup", "--to", path(to), "--data-dir", path(data_dir)],
    )
}

/// `lrs restore --from FROM --data-dir DATA_DIR`.
fn restore(server: &TestServer, from: &Path, data_dir: &Path) -> (i32, String, String) {
    lrs(
        server,
        &[
            "restore",
            "--from",
            path(from),
            "--data-dir",
            path(data_dir),
        ],
    )
}

async fn writer(client: Xapi, task: usize, acked: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = new_id();
        let body = with_id(
            statement(
                &format!("backup-w{task}-n{n}"),
                "attended",
                &format!("backup/{task}/{n}"),
            ),
            &id,
        );
        let reply = client.post_statements(&body).await.expect("POST");
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        acked.lock().unwrap().push(id);
    }
}

/// The projections digest `lrs verify` prints for a stopped data directory.
fn verified_digest(server: &TestServer, data_dir: &Path) -> String {
    let (code, stdout, stderr) = lrs(server, &["verify", "--data-dir", path(data_dir)]);
    assert_eq!(code, 0, "verify {}: {stdout}{stderr}", data_dir.display());
    assert!(stdout.contains("hash chain intact"), "{stdout}");
    stdout
        .split("projections digest ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no digest in {stdout}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_online_backup_under_write_load_restores_everything_acknowledged_before_it() {
    let mut server = start();
    let scratch = tempfile::tempdir().unwrap();
    let backup_dir = scratch.path().join("backup");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|task| tokio::spawn(writer(server.client(), task, acked.clone(), stop.clone())))
        .collect();

    // Two runs while the writers go on: a full one, then an increment.
    let mut acknowledged_before = Vec::new();
    for run in 0..2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let before: Vec<String> = acked.lock().unwrap().clone();
        assert!(!before.is_empty(), "the writers are writing");
        let (code, stdout, stderr) = backup(&server, &backup_dir, &server.data_dir);
        assert_eq!(code, 0, "backup run {run}: {stdout}{stderr}");
        assert!(
            stderr.contains("online backup through the running server"),
            "run {run} went through the control socket: {stderr}"
        );
        assert!(stdout.contains("verified"), "{stdout}");
        acknowledged_before = before;
    }
    stop.store(true, Ordering::SeqCst);
    for task in writers {
        task.await.unwrap();
    }
    let acknowledged_total = acked.lock().unwrap().len();
    assert!(
        acknowledged_total > acknowledged_before.len(),
        "writes went on during and after the backups"
    );
    server.stop().unwrap();

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).unwrap()).unwrap();
    let runs = manifest["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{manifest}");
    assert_eq!(
        runs[1]["from"].as_u64().unwrap(),
        runs[0]["to"].as_u64().unwrap() + 1,
        "the second run copied only what came after the first: {manifest}"
    );
    let (code, stdout, stderr) = lrs(&server, &["verify", "--backup", path(&backup_dir)]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Restore into a new directory; everything acknowledged before the last
    // run began is there and readable (the vault copy opens it).
    let restored = scratch.path().join("restored");
    let (code, stdout, stderr) = restore(&server, &backup_dir, &restored);
    assert_eq!(code, 0, "restore: {stdout}{stderr}");
    verified_digest(&server, &restored);
    let copy = server.sibling(&restored).unwrap();
    let client = copy.client();
    for chunk in acknowledged_before.chunks(64) {
        let replies =
            futures_util::future::join_all(chunk.iter().map(|id| get_by_id(&client, id))).await;
        for (id, reply) in chunk.iter().zip(replies) {
            assert_eq!(reply.status, StatusCode::OK, "{id}: {}", reply.text);
            assert_eq!(reply.body["id"], id.as_str());
            assert!(
                reply.body["actor"]["mbox"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("mailto:backup-w")),
                "the person is readable after restore: {}",
                reply.body
            );
        }
    }
    drop(copy);

    // The stopped original, backed up once more (offline, incremental) and
    // restored: the projections rebuilt from the restored log are
    // byte-identical to the original's.
    let (code, stdout, stderr) = backup(&server, &backup_dir, &server.data_dir);
    assert_eq!(code, 0, "offline backup: {stdout}{stderr}");
    assert!(stderr.contains("offline backup"), "{stderr}");
    let restored_full = scratch.path().join("restored-full");
    let (code, stdout, stderr) = restore(&server, &backup_dir, &restored_full);
    assert_eq!(code, 0, "restore: {stdout}{stderr}");
    assert_eq!(
        verified_digest(&server, &server.data_dir),
        verified_digest(&server, &restored_full),
        "the restored store's projections equal the original's"
    );
}

/// A stopped server with some statements and a backup of it.
async fn store_with_backup(scratch: &Path) -> (TestServer, PathBuf) {
    let mut server = start();
    let client = server.client();
    let batch: Vec<Value> = (0..200)
        .map(|n| statement(&format!("flip-{n}"), "attended", &format!("flip/{n}")))
        .collect();
    post_ok(&client, &serde_json::json!(batch)).await;
    server.stop().unwrap();
    let backup_dir = scratch.join("backup");
    let (code, stdout, stderr) = backup(&server, &backup_dir, &server.data_dir);
    assert_eq!(code, 0, "{stdout}{stderr}");
    (server, backup_dir)
}

/// Walks a segment file: (position of the entry's first event, byte offset
/// of the entry's record, record length). A group's statements share an
/// entry (a chunk of up to 32).
fn segment_records(bytes: &[u8]) -> Vec<(u64, usize, usize)> {
    let mut records = Vec::new();
    let mut offset = 8;
    while offset < bytes.len() {
        let position = u64::from_be_bytes(bytes[offset..offset + 8].try_into().unwrap());
        let length =
            u32::from_be_bytes(bytes[offset + 8..offset + 12].try_into().unwrap()) as usize;
        records.push((position, offset, 12 + length));
        offset += 12 + length;
    }
    records
}

#[tokio::test]
async fn verify_names_the_entry_holding_a_single_flipped_byte_in_a_backup() {
    let scratch = tempfile::tempdir().unwrap();
    let (server, backup_dir) = store_with_backup(scratch.path()).await;
    let segment = std::fs::read_dir(backup_dir.join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let original = std::fs::read(&segment).unwrap();
    let records = segment_records(&original);
    // The batch of 200 is in chunks (entry format 3) of up to 32 statements.
    let chunks: Vec<_> = records
        .iter()
        .filter(|(_, offset, _)| original[offset + 12] == 3)
        .collect();
    assert!(chunks.len() >= 6, "{records:?}");
    // Inside the entry (past the 12-byte record header and the 65-byte
    // entry header) of four different entries, one at a time: a lone
    // event's and three chunks'.
    for &(position, offset, length) in [
        &records[1],
        chunks[0],
        chunks[chunks.len() / 2],
        chunks[chunks.len() - 1],
    ] {
        let mut damaged = original.clone();
        let at = offset + 12 + 65 + (length - 12 - 65) / 2;
        damaged[at] ^= 0x20;
        std::fs::write(&segment, &damaged).unwrap();
        let (code, stdout, _) = lrs(&server, &["verify", "--backup", path(&backup_dir)]);
        assert_eq!(code, 2, "{stdout}");
        assert!(
            stdout.contains(&format!("damaged at log position {position}:")),
            "byte {at} lies in entry {position}: {stdout}"
        );
        // A restore from it refuses, naming the same entry.
        let target = scratch.path().join(format!("restore-{position}"));
        let (code, _, stderr) = restore(&server, &backup_dir, &target);
        assert_ne!(code, 0);
        assert!(stderr.contains(&format!("position {position}")), "{stderr}");
    }
    std::fs::write(&segment, &original).unwrap();
    let (code, stdout, _) = lrs(&server, &["verify", "--backup", path(&backup_dir)]);
    assert_eq!(code, 0, "{stdout}");
}

#[tokio::test]
async fn verify_finds_a_single_flipped_byte_in_the_live_log() {
    let scratch = tempfile::tempdir().unwrap();
    let (server, backup_dir) = store_with_backup(scratch.path()).await;
    let (code, stdout, _) = lrs(&server, &["verify", "--data-dir", path(&server.data_dir)]);
    assert_eq!(code, 0, "{stdout}");
    let head = stdout
        .split("ok: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .to_owned();

    // Where the bytes of the entry (a chunk) holding position 120 lie in sled's file. sled writes pages
    // append-only, so older versions of a page may sit there too; each
    // occurrence is flipped on its own copy of the data directory.
    let segment = std::fs::read_dir(backup_dir.join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&segment).unwrap();
    let (_, offset, length) = segment_records(&bytes)
        .into_iter()
        .take_while(|(first, _, _)| *first <= 120)
        .last()
        .unwrap();
    let entry_body = &bytes[offset + 12 + 65..offset + length];
    let needle = &entry_body[..entry_body.len().min(48)];
    let db = std::fs::read(server.data_dir.join("log").join("db")).unwrap();
    let occurrences: Vec<usize> = db
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert!(
        !occurrences.is_empty(),
        "the entry holding position 120 is in sled's file"
    );

    let mut detected = 0;
    for (n, at) in occurrences.iter().enumerate() {
        let copy = scratch.path().join(format!("copy-{n}"));
        copy_dir(&server.data_dir, &copy);
        let file = copy.join("log").join("db");
        let mut damaged = std::fs::read(&file).unwrap();
        damaged[at + needle.len() / 2] ^= 0x20;
        std::fs::write(&file, &damaged).unwrap();
        let (code, stdout, stderr) = lrs(&server, &["verify", "--data-dir", path(&copy)]);
        match code {
            // A superseded copy of the page: the log read is whole and
            // every entry is there.
            0 => assert!(
                stdout.contains(&format!("ok: {head} entries")),
                "verify passed but the log is not whole: {stdout}"
            ),
            2 => {
                assert!(stdout.contains("BROKEN at position "), "{stdout}");
                detected += 1;
            }
            // sled refuses to open a directory it finds corrupt: also found.
            _ => {
                assert!(stderr.contains("corrupt"), "{stdout}{stderr}");
                detected += 1;
            }
        }
    }
    eprintln!(
        "flipped the entry holding position 120 in {} copies of its page: {detected} found, the rest superseded",
        occurrences.len()
    );
    assert!(
        detected > 0,
        "flipping the live copy of the entry holding position 120 is found ({} copies tried)",
        occurrences.len()
    );
}

#[tokio::test]
async fn a_backup_directory_of_another_log_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let (_first, backup_dir) = store_with_backup(scratch.path()).await;
    let mut other = start();
    post_ok(
        &other.client(),
        &statement("someone-else", "attended", "elsewhere"),
    )
    .await;
    other.stop().unwrap();
    let (code, stdout, stderr) = backup(&other, &backup_dir, &other.data_dir);
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("another log"), "{stderr}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
