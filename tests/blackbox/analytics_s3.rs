//! The analytics files on S3-compatible object storage: a real S3 server
//! (`s3s-fs`, serving a temporary directory on a local socket, with
//! signature checks) started by the test; the `lrs` process writes its
//! Parquet files there while serving, the test lists the stored objects and
//! `lrs sql` reads them back over S3.

use crate::common::new_id;
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BUCKET: &str = "lrs-analytics";

/// Starts an S3 server on its own thread and runtime (the test's blocking
/// commands must not stall it); answers its port.
fn start_s3(root: PathBuf, key: String, secret: String) -> u16 {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            use hyper_util::rt::{TokioExecutor, TokioIo};
            let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs root");
            let mut builder = s3s::service::S3ServiceBuilder::new(fs);
            builder.set_auth(s3s::auth::SimpleAuth::from_single(key, secret));
            let service = builder.build();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
    });
    port_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the S3 server starts")
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn objects(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn parquet_files_go_to_s3_compatible_storage() {
    let s3_root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(s3_root.path().join(BUCKET)).unwrap();
    let (key_id, secret) = (format!("AK{}", random_hex(8)), random_hex(20));
    let port = start_s3(s3_root.path().to_path_buf(), key_id.clone(), secret.clone());
    let location = format!("s3://{BUCKET}/lrs/analytics");
    let s3_env = vec![
        (
            "AWS_ENDPOINT".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ),
        ("AWS_ALLOW_HTTP".to_owned(), "true".to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), key_id),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), secret),
    ];

    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    server.env = s3_env.clone();
    server.serve_args = vec![
        "--analytics-dir".into(),
        location.clone(),
        "--analytics-interval".into(),
        "0.2".into(),
    ];
    server.launch().unwrap();
    let client = server.client();
    let statements: Vec<Value> = (0..40)
        .map(|i| {
            json!({
                "id": new_id(),
                "actor": {"mbox": format!("mailto:s3-{}@example.nl", i % 7)},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"id": format!("https://kb.example/les/{}", i % 5)},
                "timestamp": format!("2026-0{}-15T12:00:00Z", 3 + i % 2)
            })
        })
        .collect();
    let reply = client.post_statements(&json!(statements)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // The server writes the files and then the checkpoint, over S3.
    let stored = s3_root.path().join(BUCKET).join("lrs/analytics");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let checkpoint: Option<Value> = std::fs::read(stored.join("checkpoint.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if checkpoint.as_ref().is_some_and(|c| c["statements"] == 40) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of 40 statements in {}: {checkpoint:?}",
            stored.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The objects the S3 server stored: one file per tenant and month.
    let parts: Vec<String> = objects(&stored.join("statements"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| p.strip_prefix(&stored).unwrap().display().to_string())
        .collect();
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(
        parts[0].starts_with("statements/tenant=default/month=2026-03/part-"),
        "{parts:?}"
    );
    assert!(
        parts[1].starts_with("statements/tenant=default/month=2026-04/part-"),
        "{parts:?}"
    );
    for part in &parts {
        let bytes = std::fs::read(stored.join(part)).unwrap();
        assert!(
            bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
            "{part} is Parquet"
        );
    }

    // Read back over S3 by `lrs sql` (the server may run; stopped here so
    // that the command's audit record goes in).
    server.stop().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_lrs-under-test"))
        .args(["sql", "SELECT month, count(*) AS n, count(DISTINCT actor_token) AS people FROM statements GROUP BY month ORDER BY month", "--format", "json", "--analytics-dir", &location, "--data-dir"])
        .arg(&server.data_dir)
        .envs(s3_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("LRS_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "lrs sql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        body["rows"],
        json!([
            {"month": "2026-03", "n": 20, "people": 7},
            {"month": "2026-04", "n": 20, "people": 7}
        ]),
        "{body}"
    );
}
