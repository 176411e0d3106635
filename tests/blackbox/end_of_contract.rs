//! End of contract (2.38): a dry run destroys nothing and names the word to
//! confirm with; the confirmed run leaves nothing of the data directory and
//! the backups, and its certificate's numbers match what was there.

use crate::common::{post_one, wait_until_serving};
use lrs_blackbox_tests::{statement, TestServer};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))
}

/// (files, bytes) under a directory.
fn measure(path: &Path) -> (u64, u64) {
    let metadata = std::fs::symlink_metadata(path).unwrap();
    if !metadata.is_dir() {
        return (1, metadata.len());
    }
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| measure(&e.unwrap().path()))
        .fold((0, 0), |(f, b), (f2, b2)| (f + f2, b + b2))
}

#[tokio::test]
async fn end_of_contract_destroys_everything_and_certifies_what_was_there() {
    // A data directory with the embedded default master key: made by the
    // first command without LRS_MASTER_KEY.
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let output = Command::new(binary())
        .args([
            "credentials",
            "add",
            "--name",
            "t",
            "--tenant",
            "default",
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("LRS_MASTER_KEY")
        .env("LRS_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).unwrap();
    let (key, secret) = line.trim().split_once(' ').unwrap();
    let mut server = TestServer::prepare(binary()).unwrap();
    server.data_dir = data.clone();
    server.master_key_hex = std::fs::read_to_string(data.join("master.key"))
        .unwrap()
        .trim()
        .to_owned();
    server.key = key.to_owned();
    server.secret = secret.to_owned();
    server.launch().unwrap();
    wait_until_serving(&server).await;
    let client = server.client();
    let learners = ["anna", "bram", "cor"];
    for (i, learner) in learners.iter().enumerate() {
        for lesson in 0..=i {
            post_one(
                &client,
                &statement(learner, "experienced", &format!("les-{lesson}")),
            )
            .await;
        }
    }
    let statements = 6;
    server.stop().unwrap();
    let backup = temp.path().join("backup");
    server
        .lrs(&["backup", "--to", backup.to_str().unwrap()])
        .unwrap();
    let (data_files, data_bytes) = measure(&data);
    let (backup_files, backup_bytes) = measure(&backup);

    // The dry run: nothing changes; it names the word.
    let dry = server
        .lrs(&["end-of-contract", "--backup", backup.to_str().unwrap()])
        .unwrap();
    let word = dry
        .split_whitespace()
        .find(|w| w.starts_with("vernietig-"))
        .unwrap_or_else(|| panic!("no confirmation word in {dry}"))
        .to_owned();
    assert_eq!(
        measure(&data),
        (data_files, data_bytes),
        "a dry run destroys nothing"
    );
    assert!(backup.exists());

    // A wrong word is refused and destroys nothing.
    assert!(server
        .lrs(&[
            "end-of-contract",
            "--backup",
            backup.to_str().unwrap(),
            "--confirm",
            "vernietig-00000000"
        ])
        .is_err());
    assert_eq!(measure(&data), (data_files, data_bytes));

    let certificates = temp.path().join("certificate");
    let printed = server
        .lrs(&[
            "end-of-contract",
            "--backup",
            backup.to_str().unwrap(),
            "--confirm",
            &word,
            "--certificate-dir",
            certificates.to_str().unwrap(),
        ])
        .unwrap();
    assert!(!data.exists(), "the data directory is gone");
    assert!(!backup.exists(), "the backup is gone");
    let dutch = printed
        .find("VERKLARING VAN VERNIETIGING")
        .expect("Dutch text");
    let english = printed
        .find("CERTIFICATE OF DESTRUCTION")
        .expect("English text");
    assert!(dutch < english, "Dutch first");

    let mut certificate: Value =
        serde_json::from_slice(&std::fs::read(certificates.join("certificate.json")).unwrap())
            .unwrap();
    assert_eq!(certificate["statements"], statements);
    // The learners and the authority (the credential's agent) are people in the vault.
    assert_eq!(certificate["people"], learners.len() as u64 + 1);
    assert!(certificate["log_head_position"].as_u64().unwrap() >= statements);
    assert_eq!(certificate["total_files"], data_files + backup_files);
    assert_eq!(certificate["total_bytes"], data_bytes + backup_bytes);
    assert_eq!(certificate["master_key"]["embedded"], true);
    assert_eq!(certificate["master_key"]["destroyed"], true);
    assert_eq!(certificate["remaining"], serde_json::json!([]));
    let paths: Vec<&str> = certificate["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "master key (embedded default)",
        "identity vault",
        "event log and every projection",
        "backup",
    ] {
        assert!(paths.contains(&kind), "{kind} in {paths:?}");
    }
    // The certificate's own hash: SHA-256 of the JSON without that field.
    let claimed = certificate
        .as_object_mut()
        .unwrap()
        .remove("sha256")
        .unwrap();
    let recomputed: String = {
        use sha2::Digest;
        sha2::Sha256::digest(serde_json::to_vec(&certificate).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(claimed, Value::String(recomputed.clone()));
    assert!(printed.contains(&recomputed), "the text shows the hash");
}

#[tokio::test]
async fn with_the_customers_own_key_the_certificate_says_they_must_destroy_it() {
    let mut server = crate::common::start();
    wait_until_serving(&server).await;
    server.stop().unwrap();
    let dry = server.lrs(&["end-of-contract"]).unwrap();
    assert!(dry.contains("customer must destroy"), "{dry}");
    let word = dry
        .split_whitespace()
        .find(|w| w.starts_with("vernietig-"))
        .unwrap()
        .to_owned();
    let printed = server
        .lrs(&["end-of-contract", "--confirm", &word])
        .unwrap();
    assert!(printed.contains("\"embedded\": false"), "{printed}");
    assert!(
        printed.contains("de klant moet die zelf vernietigen"),
        "{printed}"
    );
    assert!(!server.data_dir.join("log").exists());
    assert!(!server.data_dir.join("vault").exists());
}
