//! Monitoring: `/metrics` (Prometheus text), `/health/live` and
//! `/health/ready`, the request id, the JSON access log and the operations
//! journal, against a real server process.

use crate::common::*;
use lrs_blackbox_tests::{generated_master_key, statement, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The value of the first sample of `name` whose labels include all of
/// `labels` (each written `key="value"`); `None` if there is none.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

async fn scrape(base_url: &str) -> String {
    let response = reqwest::get(format!("{base_url}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_new_statements_and_failed_logins() {
    let server = start();
    let client = server.client();
    let before = scrape(&server.base_url).await;
    let ingested_before = sample(&before, "lrs_statements_ingested_total", &[]).unwrap();
    assert_eq!(ingested_before, 0.0, "a new store has ingested nothing");
    let bad_secret_before = sample(
        &before,
        "lrs_auth_failures_total",
        &[r#"reason="bad_secret""#],
    )
    .unwrap();

    // Three new statements: a batch of two and a PUT.
    let put_id = new_id();
    post_ok(
        &client,
        &json!([
            statement("anna", "attended", "monitoring/a"),
            statement("bob", "attended", "monitoring/b")
        ]),
    )
    .await;
    let reply = client
        .put_statement(&put_id, &statement("carl", "attended", "monitoring/c"))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    // An idempotent repeat of the PUT stores nothing new and must not count.
    let repeat = with_id(statement("carl", "attended", "monitoring/c"), &put_id);
    post_ok(&client, &json!([repeat])).await;

    // Failed logins: a wrong secret and an unknown key.
    let wrong = client.with_credential(&server.key, "not-the-secret");
    let reply = wrong.get_statements(&[]).await.unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let unknown = client.with_credential("lrs_nobody", "whatever");
    let reply = unknown.get_statements(&[]).await.unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let after = scrape(&server.base_url).await;
    assert_eq!(
        sample(&after, "lrs_statements_ingested_total", &[]),
        Some(ingested_before + 3.0),
        "three new statements, the repeat not counted:\n{after}"
    );
    let posted = [
        r#"route="/xapi/statements""#,
        r#"method="POST""#,
        r#"status="200""#,
    ];
    assert_eq!(
        sample(&after, "lrs_http_requests_total", &posted),
        Some(2.0)
    );
    let put = [
        r#"route="/xapi/statements""#,
        r#"method="PUT""#,
        r#"status="204""#,
    ];
    assert_eq!(sample(&after, "lrs_http_requests_total", &put), Some(1.0));
    let refused = [
        r#"route="/xapi/statements""#,
        r#"method="GET""#,
        r#"status="401""#,
    ];
    assert_eq!(
        sample(&after, "lrs_http_requests_total", &refused),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &after,
            "lrs_auth_failures_total",
            &[r#"reason="bad_secret""#]
        ),
        Some(bad_secret_before + 1.0)
    );
    assert_eq!(
        sample(
            &after,
            "lrs_auth_failures_total",
            &[r#"reason="unknown_key""#]
        ),
        Some(1.0)
    );
    let bucket = [
        r#"route="/xapi/statements""#,
        r#"method="PUT""#,
        r#"le="+Inf""#,
    ];
    assert_eq!(
        sample(&after, "lrs_http_request_duration_seconds_bucket", &bucket),
        Some(1.0)
    );
    // Head: the credential, then three statements.
    assert_eq!(sample(&after, "lrs_log_head_position", &[]), Some(4.0));
    assert!(sample(&after, "lrs_log_size_bytes", &[]).unwrap() > 0.0);
    // Every statement's id is a record of the resident id index (in memory,
    // 33 bytes each), not a sled write; the log wrote at least one entry per
    // group (the credential's and the statements').
    let by_id = [r#"tree="statements.by_id""#];
    assert_eq!(
        sample(&after, "lrs_store_resident_records", &by_id),
        Some(3.0)
    );
    assert_eq!(
        sample(&after, "lrs_store_resident_bytes", &by_id),
        Some(99.0)
    );
    assert_eq!(sample(&after, "lrs_store_tree_writes_total", &by_id), None);
    let log = [r#"tree="log""#];
    assert!(sample(&after, "lrs_store_tree_writes_total", &log).unwrap() >= 1.0);
    assert!(sample(&after, "lrs_store_tree_written_bytes_total", &log).unwrap() >= 3.0 * 100.0);
    // The batch and the PUT were a group commit each (the repeat appended
    // nothing); the writer was busy for them and waited for the disk for
    // part of that.
    let commits = |text: &str, name: &str| sample(text, name, &[]).unwrap();
    assert_eq!(
        commits(&after, "lrs_store_commit_groups_total")
            - commits(&before, "lrs_store_commit_groups_total"),
        2.0
    );
    assert_eq!(
        commits(&after, "lrs_store_commit_entries_total")
            - commits(&before, "lrs_store_commit_entries_total"),
        3.0
    );
    let busy = sample(&after, "lrs_store_commit_busy_microseconds_total", &[]).unwrap();
    let sync = sample(&after, "lrs_store_commit_sync_microseconds_total", &[]).unwrap();
    assert!(busy > 0.0 && sync > 0.0 && sync <= busy, "{busy} {sync}");
    // The fold read through its caches: each statement's at least once
    // (the posting lists' voiding check reads `statements.voided`).
    let lookups = |text: &str, cache: &str| {
        let label = format!(r#"cache="{cache}""#);
        let read = |name: &str| sample(text, name, &[label.as_str()]).unwrap_or(0.0);
        read("lrs_store_fold_cache_hits_total") + read("lrs_store_fold_cache_misses_total")
    };
    assert!(
        lookups(&after, "values") - lookups(&before, "values") >= 3.0,
        "{after}"
    );
    assert!(sample(
        &after,
        "lrs_store_fold_cache_misses_total",
        &[r#"cache="buckets""#]
    )
    .is_some());
    assert!(sample(&after, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(!after.contains("monitoring/"), "no activity ids in metrics");
}

#[tokio::test]
async fn health_endpoints_answer_without_credentials_and_ids_are_echoed() {
    let server = start();
    let http = reqwest::Client::new();

    let live = http
        .get(format!("{}/health/live", server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let generated = live.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    assert_eq!(live.json::<Value>().await.unwrap(), json!({"status": "ok"}));

    let ready = http
        .get(format!("{}/health/ready", server.base_url))
        .header("x-request-id", "kb-probe-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.headers()["x-request-id"], "kb-probe-0001");
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    let checks: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["writer", "disk_space"]);

    // xAPI responses carry the id too, errors included.
    let reply = server
        .client()
        .request(reqwest::Method::GET, "/statements")
        .header("x-request-id", "kb-xapi-0002")
        .query(&[("statementId", "not-a-uuid")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    assert_eq!(reply.headers()["x-request-id"], "kb-xapi-0002");
}

#[tokio::test]
async fn backup_gauges_appear_once_a_backup_is_recorded() {
    let mut server = start();
    let before = scrape(&server.base_url).await;
    assert!(sample(&before, "lrs_backup_age_seconds", &[]).is_none());
    server.stop().unwrap();
    let backup = tempfile::tempdir().unwrap();
    server
        .lrs(&["backup", "--to", backup.path().to_str().unwrap()])
        .unwrap();
    server.launch().unwrap();
    let after = scrape(&server.base_url).await;
    let finished = sample(&after, "lrs_backup_last_success_timestamp_seconds", &[])
        .expect("the last backup's time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - finished).abs() < 120.0, "{finished} vs {now}");
    let age = sample(&after, "lrs_backup_age_seconds", &[]).unwrap();
    assert!((0.0..120.0).contains(&age), "{age}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `TestServer` sets its own log variables, so this test starts the binary
/// itself with `LRS_LOG_FORMAT=json` and its stderr in a file.
#[tokio::test]
async fn json_logs_have_one_access_line_per_request_and_no_personal_data() {
    let binary = Path::new(env!("CARGO_BIN_EXE_lrs-under-test"));
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let master_key = generated_master_key();
    let issued = Command::new(binary)
        .args(["credentials", "add", "--name", "logs", "--data-dir"])
        .arg(&data_dir)
        .env("LRS_MASTER_KEY", &master_key)
        .env("LRS_LOG", "warn")
        .output()
        .unwrap();
    assert!(issued.status.success());
    let line = String::from_utf8(issued.stdout).unwrap();
    let (key, secret) = line.trim().split_once(' ').unwrap();

    let port = free_port();
    let log_path = dir.path().join("stderr.log");
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data_dir)
        .env("LRS_MASTER_KEY", &master_key)
        .env("LRS_LOG", "info")
        .env("LRS_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let base_url = format!("http://127.0.0.1:{port}");
    let client = lrs_blackbox_tests::Xapi::new(&base_url, key, secret, "1.0.3");
    post_ok(&client, &statement("anna", "attended", "logs/a")).await;
    let agent = mbox_agent("anna");
    let reply = client
        .request(reqwest::Method::GET, "/statements")
        .header("x-request-id", "kb-log-0003")
        .query(&[("agent", agent.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["target"] == "lrs_server::access" && l["fields"]["request_id"] == "kb-log-0003")
        .unwrap_or_else(|| panic!("no access line for kb-log-0003 in:\n{log}"));
    let fields = &access["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/xapi/statements");
    assert_eq!(fields["status"], 200);
    assert!(fields["latency_ms"].as_f64().unwrap() >= 0.0);
    let posted = lines
        .iter()
        .filter(|l| l["target"] == "lrs_server::access" && l["fields"]["method"] == "POST")
        .count();
    assert_eq!(posted, 1);
    for private in ["anna", "example.nl", secret, "Basic ", "logs/a"] {
        assert!(!log.contains(private), "{private:?} in the log:\n{log}");
    }

    // The shutdown wrote the minute in progress to the operations journal.
    let journal: Vec<Value> = std::fs::read_dir(data_dir.join("ops"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".jsonl"))
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect();
    let answered: u64 = journal
        .iter()
        .map(|line| line["status"]["2xx"].as_u64().unwrap())
        .sum();
    assert_eq!(answered, 2, "{journal:?}");
}

#[tokio::test]
async fn the_service_report_counts_what_the_server_answered_this_month() {
    let mut server = start();
    let client = server.client();
    for n in 0..5 {
        post_ok(
            &client,
            &statement(&format!("report-{n}"), "attended", "report"),
        )
        .await;
    }
    let unauthenticated = reqwest::get(format!("{}/xapi/statements", server.base_url))
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    // A clean stop writes the minute in progress to the journal.
    server.stop().unwrap();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let json: Value = serde_json::from_str(
        &server
            .lrs(&["report", "service", "--month", &month, "--format", "json"])
            .unwrap(),
    )
    .unwrap();
    assert!(json["requests"].as_u64().unwrap() >= 6, "{json}");
    assert!(
        json["requests_by_status"]["2xx"].as_u64().unwrap() >= 5,
        "{json}"
    );
    assert!(
        json["requests_by_status"]["4xx"].as_u64().unwrap() >= 1,
        "{json}"
    );
    assert_eq!(json["requests_by_status"]["5xx"], 0, "{json}");
    let text = server
        .lrs(&["report", "service", "--month", &month])
        .unwrap();
    assert!(text.contains("Beschikbaarheid"), "Dutch first: {text}");
    assert!(text.contains("Availability"), "English second: {text}");
    // A month that is not YYYY-MM is refused with a clear message.
    let bad = server.lrs(&["report", "service", "--month", "2026-13"]);
    assert!(bad.is_err());
}
