//! Retention (6.7) with a simulated clock over two years of data: learners
//! whose last activity lies 1 to 23 months back, one who is active now and
//! one who only has a document; a statement retention of 365 days and a
//! document retention of 170 days; then retention runs as of month after
//! month, from a year back to a year ahead, through the admin API. After
//! every run exactly the people whose last data has expired are erased (the
//! access request answers 404 for them and 200 for the rest), documents go
//! when their period ends, each run's report counts what it did and finds
//! all of it unreadable, a dry run changes nothing, and the monthly figures
//! of all 26 months are the same at the end as at the start.

use crate::common::{new_id, put_new_document};
use crate::privacy_erasure::{api, privacy_server};
use lrs_blackbox_tests::StatusCode;
use serde_json::{json, Value};

const DAY: i64 = 86_400;
const MONTH: i64 = 30 * DAY;
const COURSE: &str = "https://kb.example/cursus/bewaren";

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn agent(name: &str) -> Value {
    json!({"mbox": format!("mailto:{name}@bewaar.example.nl")})
}

fn statement(name: &str, verb: &str, at_unix: i64) -> Value {
    json!({
        "id": new_id(),
        "actor": {"name": format!("Naam {name}"), "mbox": format!("mailto:{name}@bewaar.example.nl")},
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
        "object": {"id": COURSE},
        "timestamp": rfc3339(at_unix),
    })
}

#[tokio::test]
async fn retention_over_two_years_with_a_simulated_clock() {
    let (mut server, credential) = privacy_server();
    server.launch().unwrap();
    let officer = api(&server, &credential);
    let xapi = server
        .client()
        .with_credential(&credential.0, &credential.1);
    let now = chrono::Utc::now().timestamp();

    // Twelve learners, learner i last active (2i + 1) months ago; Vera now.
    let mut last_active: Vec<(String, i64)> = Vec::new();
    let mut statements = Vec::new();
    for i in 0..12 {
        let name = format!("leerling{i:02}");
        let last = now - (2 * i + 1) * MONTH;
        statements.push(statement(&name, "launched", last - MONTH));
        statements.push(statement(&name, "completed", last));
        last_active.push((name, last));
    }
    statements.push(statement("vera", "launched", now - DAY));
    last_active.push(("vera".into(), now - DAY));
    let reply = xapi.post_statements(&json!(statements)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Documents, written now: leerling00's state, and Dora who has only a document.
    for (name, path, extra) in [
        (
            "leerling00",
            "/activities/state",
            vec![("activityId", COURSE), ("stateId", "plek")],
        ),
        ("dora", "/agents/profile", vec![("profileId", "voorkeuren")]),
    ] {
        let agent_text = agent(name).to_string();
        let mut query = extra.clone();
        query.push(("agent", agent_text.as_str()));
        put_new_document(&xapi, path, &query, json!({"van": name})).await;
    }
    let document_written = now;

    // The periods: statements of the KB 365 days, documents 170 by default.
    for (tenant, kind, days) in [("kb", "statements", 365), ("*", "documents", 170)] {
        let (status, _, text) = officer
            .send(
                reqwest::Method::PUT,
                "/admin/privacy/retention/policies",
                &[],
                Some(json!({"tenant": tenant, "kind": kind, "days": days})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    for (bad, path, rule) in [
        (
            json!({"tenant": "kb", "kind": "alles", "days": 1}),
            "$.kind",
            "retention.kind",
        ),
        (
            json!({"tenant": "kb", "kind": "statements", "days": 0}),
            "$.days",
            "retention.days",
        ),
        (
            json!({"tenant": "nergens", "kind": "statements", "days": 30}),
            "$.tenant",
            "retention.tenant",
        ),
        (
            json!({"tenant": "kb", "kind": "audit_trail", "days": 30}),
            "$.tenant",
            "retention.tenant",
        ),
        // Looser than the KB's default of 170 days for documents.
        (
            json!({"tenant": "kb", "kind": "documents", "days": 200}),
            "$.days",
            "retention.looser",
        ),
    ] {
        let (status, body, text) = officer
            .send(
                reqwest::Method::PUT,
                "/admin/privacy/retention/policies",
                &[],
                Some(bad),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(body["error"]["message"].is_string());
        assert_eq!(body["error"]["path"], path, "{text}");
        assert_eq!(body["error"]["rule"], rule, "{text}");
    }
    let policies = officer.ok("/admin/privacy/retention/policies", &[]).await;
    assert_eq!(
        policies["policies"].as_array().unwrap().len(),
        2,
        "{policies}"
    );

    let month_of = |unix: i64| {
        chrono::DateTime::from_timestamp(unix, 0)
            .unwrap()
            .format("%Y-%m")
            .to_string()
    };
    let trend_query = [("from", month_of(now - 26 * MONTH)), ("to", month_of(now))];
    let trend_query: Vec<(&str, &str)> =
        trend_query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let figures_before = officer.ok("/api/figures/trend", &trend_query).await;
    let hits: u64 = figures_before["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["figures"]["hits"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(hits, 25, "every statement counted: {figures_before}");

    let everyone: Vec<(String, i64)> = last_active
        .iter()
        .map(|(name, last)| {
            let expires = last + 365 * DAY;
            let expires = if name == "leerling00" {
                expires.max(document_written + 170 * DAY)
            } else {
                expires
            };
            (name.clone(), expires)
        })
        .chain([("dora".to_owned(), document_written + 170 * DAY)])
        .collect();
    let present = |name: &str| {
        let officer = &officer;
        let body = json!({"agent": agent(name)});
        async move {
            let (status, _, text) = officer
                .send(
                    reqwest::Method::POST,
                    "/admin/privacy/access",
                    &[],
                    Some(body),
                )
                .await;
            match status {
                StatusCode::OK => true,
                StatusCode::NOT_FOUND => false,
                other => panic!("access: {other} {text}"),
            }
        }
    };

    // A dry run a year ahead lists everyone and changes nothing.
    let (status, dry, text) = officer
        .send(
            reqwest::Method::POST,
            "/admin/privacy/retention/runs",
            &[],
            Some(json!({"as_of": rfc3339(now + 13 * MONTH), "dry_run": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        dry["people"].as_array().unwrap().len(),
        everyone.len(),
        "{text}"
    );
    assert_eq!(dry["documents"].as_array().unwrap().len(), 2, "{text}");
    assert!(dry["report"].is_null(), "a dry run writes no report");
    for (name, _) in &everyone {
        assert!(
            present(name).await,
            "{name} is still there after the dry run"
        );
    }

    // Month after month, from a year back to a year ahead.
    let mut erased_so_far = 0usize;
    let mut runs = 0;
    for month in -12..=13 {
        let as_of = now + month * MONTH;
        let (status, outcome, text) = officer
            .send(
                reqwest::Method::POST,
                "/admin/privacy/retention/runs",
                &[],
                Some(json!({"as_of": rfc3339(as_of)})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "as of {}: {text}", rfc3339(as_of));
        runs += 1;
        let due: Vec<&(String, i64)> = everyone.iter().filter(|(_, e)| *e <= as_of).collect();
        let newly = due.len() - erased_so_far;
        assert_eq!(
            outcome["people"].as_array().unwrap().len(),
            newly,
            "as of {}: erased {text}",
            rfc3339(as_of)
        );
        erased_so_far = due.len();
        let report = &outcome["report"];
        assert_eq!(
            report["people"].as_u64().unwrap() as usize,
            newly,
            "{report}"
        );
        assert_eq!(
            report["check"]["unreadable"], report["check"]["sealed_entries_tried"],
            "{report}"
        );
        if newly > 0 {
            assert!(report["check"]["sealed_entries_tried"].as_u64().unwrap() > 0);
        }
        for (name, expires) in &everyone {
            assert_eq!(
                present(name).await,
                *expires > as_of,
                "as of {}: {name} (expires {})",
                rfc3339(as_of),
                rfc3339(*expires)
            );
        }
        // The state document goes when its 170 days are over.
        let agent_text = agent("leerling00").to_string();
        let reply = lrs_blackbox_tests::Xapi::send(
            xapi.request(reqwest::Method::GET, "/activities/state")
                .query(&[
                    ("activityId", COURSE),
                    ("stateId", "plek"),
                    ("agent", agent_text.as_str()),
                ]),
        )
        .await
        .unwrap();
        let document_due = document_written + 170 * DAY <= as_of;
        assert_eq!(
            reply.status,
            if document_due {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            },
            "as of {}: the state document",
            rfc3339(as_of)
        );
    }
    assert_eq!(
        erased_so_far,
        everyone.len(),
        "two years on, everyone's data has expired"
    );

    // The figures of all 26 months are what they were.
    assert_eq!(
        officer.ok("/api/figures/trend", &trend_query).await,
        figures_before
    );

    // One report per run, retention ones with the periods applied.
    let reports = officer.ok("/admin/privacy/reports", &[]).await;
    let reports = reports["reports"].as_array().unwrap();
    assert_eq!(
        reports.len(),
        runs,
        "a report per run (none for the dry run)"
    );
    let people: u64 = reports.iter().map(|r| r["people"].as_u64().unwrap()).sum();
    assert_eq!(people as usize, everyone.len());
    assert!(reports.iter().all(|r| r["trigger"]["kind"] == "retention"
        && r["trigger"]["policies"].as_array().unwrap().len() == 2));

    // The statements themselves are gone from the API; the log verifies.
    let reply = xapi.get_statements(&[]).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body["statements"].as_array().unwrap().is_empty(),
        "{}",
        reply.text
    );
    server.stop().unwrap();
    let verified = server.lrs(&["verify"]).unwrap();
    assert!(verified.contains("equals the stored one"), "{verified}");
    let audit = server.lrs(&["audit", "export"]).unwrap();
    assert!(audit.contains("privacy.retention.run") && audit.contains("privacy.retention.dry_run"));
}

/// The audit trail's retention (6.7, the SLA's fixed audit-log period):
/// with small segments (`--audit-segment-max-bytes`), a run past the
/// period removes exactly the closed segments whose records are all older
/// than it, writes the anchor, and the trimmed trail still verifies with
/// `lrs audit verify`; a flipped byte in what remains is found.
#[tokio::test]
async fn a_trimmed_audit_trail_verifies_and_a_flipped_byte_in_it_is_found() {
    let (mut server, credential) = privacy_server();
    server
        .env
        .push(("LRS_AUDIT_SEGMENT_MAX_BYTES".into(), "2048".into()));
    server.launch().unwrap();
    let officer = api(&server, &credential);
    let xapi = server
        .client()
        .with_credential(&credential.0, &credential.1);
    let now = chrono::Utc::now().timestamp();
    // Forty audited writes, one statement each: many small segments.
    for i in 0..40 {
        let reply = xapi
            .post_statements(&json!(statement(&format!("log{i:02}"), "launched", now)))
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let (status, _, text) = officer
        .send(
            reqwest::Method::PUT,
            "/admin/privacy/retention/policies",
            &[],
            Some(json!({"tenant": "*", "kind": "audit_trail", "days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let audit_dir = server.data_dir.join("audit");
    let segments = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".audit"))
            .collect();
        names.sort();
        names
    };
    // Let the writer flush every record of the writes above.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let before = segments(&audit_dir);
    assert!(before.len() >= 4, "small segments: {before:?}");

    // Within the period nothing is due; 40 days on, every closed segment.
    let run = |days: i64| {
        let officer = &officer;
        async move {
            let (status, outcome, text) = officer
                .send(
                    reqwest::Method::POST,
                    "/admin/privacy/retention/runs",
                    &[],
                    Some(json!({"as_of": rfc3339(now + days * DAY)})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{text}");
            outcome
        }
    };
    let early = run(20).await;
    assert!(
        early["audit_segments"].as_array().unwrap().is_empty(),
        "{early}"
    );
    let within = segments(&audit_dir);
    assert!(
        before.iter().all(|name| within.contains(name)),
        "nothing removed within the period: {before:?} then {within:?}"
    );
    let late = run(40).await;
    let removed = late["audit_segments"].as_array().unwrap().len();
    assert!(removed >= before.len() - 1, "every closed segment: {late}");
    let count = |kind: &str| {
        late["report"]["records"][kind]
            .as_u64()
            .unwrap_or_else(|| panic!("no {kind} in {late}"))
    };
    assert_eq!(count("audit_segments") as usize, removed);
    assert!(count("audit_records") >= 40, "{late}");
    let after = segments(&audit_dir);
    for name in &before[..removed] {
        assert!(!after.contains(name), "{name} was removed");
    }
    assert!(audit_dir.join("anchor.json").exists());
    server.stop().unwrap();

    // The rest verifies, anchored; the log (with the trim event) too.
    let verified = server.lrs(&["audit", "verify"]).unwrap();
    assert!(verified.starts_with("ok: "), "{verified}");
    assert!(verified.contains("were removed (retention)"), "{verified}");
    let log = server.lrs(&["verify"]).unwrap();
    assert!(log.contains("equals the stored one"), "{log}");

    // One flipped byte in the first remaining segment: found, exit 2.
    let first = audit_dir.join(&after[0]);
    let mut bytes = std::fs::read(&first).unwrap();
    assert!(bytes.len() > 64, "{} bytes", bytes.len());
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    std::fs::write(&first, &bytes).unwrap();
    let output = server.lrs_here(&["audit", "verify"]).unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("BROKEN at"), "{stdout}");
}
