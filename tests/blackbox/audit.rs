//! The audit trail: one record per request on the xAPI and admin routes
//! (who, when, from where, what, outcome), never personal data, readable
//! only with an audit permission, itself audited, hash-chained and checked
//! by `lrs audit verify` on the stopped data directory.

use crate::common::*;
use lrs_blackbox_tests::{statement, StatusCode, TestServer, Xapi};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A server whose default credential may read every tenant's audit records
/// (the `LRS_AUDIT_READERS` bootstrap), with a second credential that may not.
fn start_with_reader() -> (TestServer, (String, String)) {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test")))
        .expect("the server is prepared");
    let other = server
        .add_credential("no audit", "default", &[])
        .expect("second credential");
    server
        .env
        .push(("LRS_AUDIT_READERS".into(), server.key.clone()));
    server.launch().expect("the server starts");
    (server, other)
}

async fn get_audit(client: &Xapi, query: &str) -> lrs_blackbox_tests::Reply {
    Xapi::send(
        client
            .http
            .get(format!("{}/admin/audit{query}", client.base_url))
            .basic_auth(&client.key, Some(&client.secret)),
    )
    .await
    .expect("GET /admin/audit")
}

/// Every record of the trail, through the API, following `more`.
async fn all_records(client: &Xapi) -> Vec<Value> {
    let mut records = Vec::new();
    let mut query = "?limit=1000".to_owned();
    loop {
        let reply = get_audit(client, &query).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        records.extend(reply.body["records"].as_array().unwrap().iter().cloned());
        match reply.body["more"].as_str() {
            Some(more) => query = more.trim_start_matches("/admin/audit").to_owned(),
            None => return records,
        }
    }
}

fn with_request_id<'a>(records: &'a [Value], request_id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no audit record with request id {request_id}: {records:#?}"))
}

fn segment_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir.join("audit"))
        .expect("an audit directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "audit"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no audit segments");
    files
}

fn contains(haystack: &[u8], needle: &str) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn requests_are_recorded_with_who_where_what_and_outcome_but_never_the_agent() {
    let (mut server, (other_key, other_secret)) = start_with_reader();
    let client = server.client();
    let run = new_id();
    let learner = format!("audit-{}", &run[..8]);
    let email = format!("{learner}@example.nl");

    // A POST and a GET by id, each with a request id of our own.
    let post_rid = format!("audit-post-{run}");
    let reply = Xapi::send(
        client
            .request(reqwest::Method::POST, "/statements")
            .header("x-request-id", &post_rid)
            .json(&statement(&learner, "attended", "audit/course")),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.body[0].as_str().unwrap().to_owned();
    let get_rid = format!("audit-get-{run}");
    let reply = Xapi::send(
        client
            .request(reqwest::Method::GET, "/statements")
            .header("x-request-id", &get_rid)
            .query(&[("statementId", id.as_str())]),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // A query by agent: the person is personal data, only the fact is recorded.
    let agent_rid = format!("audit-agent-{run}");
    let reply = Xapi::send(
        client
            .request(reqwest::Method::GET, "/statements")
            .header("x-request-id", &agent_rid)
            .query(&[("agent", mbox_agent(&learner).as_str())]),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Failed logins: a real key with a wrong secret, and an e-mail address
    // typed as key (recorded only as a keyed hash).
    let wrong_rid = format!("audit-wrong-{run}");
    let reply = Xapi::send(
        client
            .with_credential(&server.key, "not-the-secret")
            .request(reqwest::Method::GET, "/statements")
            .header("x-request-id", &wrong_rid),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let typed_email = format!("typed-{learner}@example.nl");
    let unknown_rid = format!("audit-unknown-{run}");
    let reply = Xapi::send(
        client
            .with_credential(&typed_email, "whatever")
            .request(reqwest::Method::GET, "/statements")
            .header("x-request-id", &unknown_rid),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // A credential without an audit permission may not read the trail.
    let other = client.with_credential(&other_key, &other_secret);
    let reply = get_audit(&other, "").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.body["error"]["status"], 403);
    // Nor may anybody without credentials.
    let reply = Xapi::send(client.http.get(format!("{}/admin/audit", server.base_url)))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let records = all_records(&client).await;
    let post = with_request_id(&records, &post_rid);
    assert_eq!(post["action"], "POST /xapi/statements");
    assert_eq!(post["principal"], server.key.as_str());
    assert_eq!(post["tenant"], "default");
    assert_eq!(post["auth_method"], "basic");
    assert_eq!(post["client"], "127.0.0.1");
    assert_eq!(post["outcome"], 200);
    assert_eq!(post["resources"]["statement_ids"][0], id.as_str());
    let get = with_request_id(&records, &get_rid);
    assert_eq!(get["action"], "GET /xapi/statements");
    assert_eq!(get["resources"]["statement_ids"][0], id.as_str());
    assert_eq!(
        (get["outcome"].as_u64(), get["client"].as_str()),
        (Some(200), Some("127.0.0.1"))
    );
    let by_agent = with_request_id(&records, &agent_rid);
    assert_eq!(by_agent["resources"]["agent_filter"], true);
    let wrong = with_request_id(&records, &wrong_rid);
    assert_eq!(wrong["outcome"], 401);
    assert_eq!(
        wrong["principal"],
        server.key.as_str(),
        "the key that was tried"
    );
    assert_eq!(wrong["tenant"], "default", "the tried key's tenant");
    let unknown = with_request_id(&records, &unknown_rid);
    assert_eq!(unknown["outcome"], 401);
    let recorded = unknown["principal"].as_str().unwrap();
    assert!(recorded.starts_with("unknown:"), "{recorded}");
    assert!(!recorded.contains("example"), "{recorded}");
    // Issuing a credential on the command line is an administrative action.
    let issued = records
        .iter()
        .find(|r| {
            r["action"] == "credential.issue" && r["resources"]["target"] == other_key.as_str()
        })
        .expect("the credential's issue is recorded");
    assert_eq!(issued["tenant"], "default");
    assert!(
        issued["principal"].as_str().unwrap().starts_with("cli:"),
        "{issued}"
    );
    let refused = records
        .iter()
        .find(|r| r["action"] == "GET /admin/audit" && r["principal"] == other_key.as_str())
        .expect("the refused read is recorded");
    assert_eq!(refused["outcome"], 403);
    // Time is recorded, in order with the sequence.
    for pair in records.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_u64(),
            pair[0]["seq"].as_u64().map(|s| s + 1)
        );
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    assert!(post["time_micros"].as_i64().unwrap() > now_micros() - 60_000_000);

    // Reading the trail is itself recorded.
    let records = all_records(&client).await;
    let read = records
        .iter()
        .find(|r| r["action"] == "GET /admin/audit" && r["principal"] == server.key.as_str())
        .expect("the first read of the trail is in the trail");
    assert_eq!(read["outcome"], 200);
    assert_eq!(read["resources"]["target"], "audit records of every tenant");

    // Filters and paging.
    let reply = get_audit(
        &client,
        &format!("?principal={}&action=POST%20/xapi/statements", server.key),
    )
    .await;
    let posts = reply.body["records"].as_array().unwrap();
    assert_eq!(posts.len(), 1, "{}", reply.text);
    assert_eq!(posts[0]["request_id"], post_rid.as_str());
    let reply = get_audit(&client, "?limit=2").await;
    assert_eq!(reply.body["records"].as_array().unwrap().len(), 2);
    let more = reply.body["more"].as_str().expect("a next page").to_owned();
    let next = get_audit(&client, more.trim_start_matches("/admin/audit")).await;
    assert_eq!(
        next.body["records"][0]["seq"].as_u64(),
        reply.body["records"][1]["seq"].as_u64().map(|s| s + 1)
    );
    let reply = get_audit(&client, "?since=yesterday").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // The trail's metrics: records become durable within ~200 ms.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let metrics = reqwest::get(format!("{}/metrics", server.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert!(
        value("lrs_audit_records_written_total ") >= 10.0,
        "{metrics}"
    );
    assert_eq!(value("lrs_audit_records_dropped_total "), 0.0);
    assert!(value("lrs_audit_flush_duration_seconds_count ") >= 1.0);

    server.stop().unwrap();

    // No personal data in the files: not the mailbox, not the name, not the typed e-mail.
    let files = segment_files(&server.data_dir);
    let mut bytes = Vec::new();
    for file in &files {
        bytes.extend(std::fs::read(file).unwrap());
    }
    assert!(
        contains(&bytes, &id).is_some(),
        "positive control: the statement id is there"
    );
    for personal in [
        &email,
        &format!("Learner {learner}"),
        &typed_email,
        &learner,
    ] {
        assert!(
            contains(&bytes, personal).is_none(),
            "{personal:?} is in the audit files"
        );
    }

    // The chain verifies on the stopped data directory...
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let verified = server.lrs(&["audit", "verify"]).unwrap();
    assert!(verified.contains("hash chain intact"), "{verified}");
    assert!(verified.contains("clean stop"), "{verified}");
    // ...and the export holds the same records.
    let export = server
        .lrs(&["audit", "export", "--format", "jsonl"])
        .unwrap();
    let exported: Vec<Value> = export
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let target = with_request_id(&exported, &get_rid);
    let seq = target["seq"].as_u64().unwrap();
    let today = &lrs_core::statement::format_micros(now_micros())[..10];
    let since_today = server
        .lrs(&[
            "audit",
            "export",
            "--since",
            today,
            "--principal",
            &other_key,
        ])
        .unwrap();
    assert_eq!(since_today.lines().count(), 1, "{since_today}");

    // One flipped byte in the GET's record: verify names that record.
    let (file, at) = files
        .iter()
        .find_map(|file| {
            let bytes = std::fs::read(file).unwrap();
            contains(&bytes, &get_rid).map(|at| (file.clone(), at))
        })
        .expect("the GET's request id is in a segment");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[at + 6] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let outcome = server
        .lrs_outcome(&["audit", "verify", "--data-dir", &data_dir])
        .unwrap();
    let stdout = String::from_utf8_lossy(&outcome.stdout);
    assert_eq!(outcome.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(&format!("BROKEN at audit record {seq} ")),
        "expected record {seq} to be named: {stdout}"
    );
}

/// A killed server loses no record of an answered request that a reader
/// saw, and its successor writes into the chain that the stop was unclean.
#[tokio::test]
async fn an_unclean_stop_is_noted_in_the_chain_and_the_chain_continues() {
    let (mut server, _) = start_with_reader();
    let client = server.client();
    let id = post_one(&client, &statement("audit-kill", "attended", "audit/kill")).await;
    let before = all_records(&client).await;
    let post_seq = before
        .iter()
        .find(|r| r["resources"]["statement_ids"][0] == id.as_str())
        .expect("the POST is recorded")["seq"]
        .as_u64()
        .unwrap();
    server.kill();
    let mut server = server.sibling(&server.data_dir.clone()).unwrap();
    let records = all_records(&server.client()).await;
    assert!(records.iter().any(|r| r["seq"].as_u64() == Some(post_seq)
        && r["resources"]["statement_ids"][0] == id.as_str()));
    let started: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "audit.started")
        .collect();
    // `lrs credentials add` (audited too) and the first server stopped cleanly; the kill did not.
    assert!(started.len() >= 3, "{started:#?}");
    assert_eq!(started[0]["note"], "a new audit trail");
    let note = started.last().unwrap()["note"].as_str().unwrap();
    assert!(note.contains("did not stop cleanly"), "{note}");
    let note = started[started.len() - 2]["note"].as_str().unwrap();
    assert!(note.contains("stopped cleanly"), "{note}");
    let restart = records
        .iter()
        .rposition(|r| r["action"] == "audit.started")
        .unwrap();
    assert_ne!(
        records[restart - 1]["action"],
        "audit.stopped",
        "the killed server wrote no stop record"
    );
    server.stop().unwrap();
    let verified = server.lrs(&["audit", "verify"]).unwrap();
    assert!(verified.contains("hash chain intact"), "{verified}");
}
