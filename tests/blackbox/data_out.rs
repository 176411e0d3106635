//! Data out (issue 18): a person's own data (GDPR art. 15/20) through the
//! command line and the admin API while the server runs.
//!
//! The person's export holds exactly the statements a KB query for that
//! agent returns (ids, and the statement itself as the API gives it), plus
//! the one voided statement the query no longer shows, flagged; their State
//! and Agent Profile documents with content; their progress; the audit
//! records of their statements; a Dutch summary. A byte scan of the file
//! finds nothing of the other learners. Both requests are in the audit
//! trail; an unknown agent gets a clear error and no file.

use crate::common::new_id;
use crate::privacy_erasure::{api, privacy_server};
use lrs_blackbox_tests::{StatusCode, Xapi};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const ISIL: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
const LIB: &str = "NL-0200000009";
const COURSE: &str = "https://kb.example/cursus/export";
const COURSE_TYPE: &str = "https://w3id.org/xapi/cmi5/activitytype/course";

fn statement(actor: &Value, verb: &str, response: &str) -> Value {
    json!({
        "id": new_id(),
        "actor": actor,
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
        "object": {"id": COURSE, "definition": {"type": COURSE_TYPE}},
        "result": {"response": response},
        "context": {"extensions": {ISIL: LIB}}
    })
}

/// Every statement a KB query returns, following `more`.
async fn query_all(xapi: &Xapi, query: &[(&str, &str)]) -> Vec<Value> {
    let mut all = Vec::new();
    let mut reply = xapi.get_statements(query).await.unwrap();
    loop {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        all.extend(reply.body["statements"].as_array().unwrap().iter().cloned());
        let more = reply.body["more"].as_str().unwrap_or_default().to_owned();
        if more.is_empty() {
            return all;
        }
        reply = xapi.get_more(&more).await.unwrap();
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn xapi_put(xapi: &Xapi, path: &str, query: &[(&str, &str)], body: Value) {
    let reply = Xapi::send(
        xapi.request(reqwest::Method::PUT, path)
            .header("If-None-Match", "*")
            .query(query)
            .json(&body),
    )
    .await
    .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "PUT {path}: {}",
        reply.text
    );
}

#[tokio::test]
async fn a_persons_export_holds_exactly_their_data_and_nothing_of_anyone_else() {
    let (mut server, credential) = privacy_server();
    server.launch().unwrap();
    let officer = api(&server, &credential);
    let xapi = server
        .client()
        .with_credential(&credential.0, &credential.1);

    let anna = json!({"objectType": "Agent", "name": "Anna Exportiana", "mbox": "mailto:anna.exportiana@example.nl"});
    let bob = json!({"objectType": "Agent", "name": "Bob Anderpersoon",
                     "account": {"homePage": "https://login.example.nl", "name": "bob-ander-4711"}});
    let carla_sha1 = "4f0a6c5b2d4e8f1a3c5e7b9d0f2a4c6e8b1d3f5a";
    let carla =
        json!({"objectType": "Agent", "name": "Carla Derdepersoon", "mbox_sha1sum": carla_sha1});

    // Anna: five statements (one voided later); the others two each.
    let mut batch = Vec::new();
    for i in 0..5 {
        batch.push(statement(
            &anna,
            "experienced",
            &format!("anna-antwoord-{i}"),
        ));
    }
    for i in 0..2 {
        batch.push(statement(&bob, "completed", &format!("bob-geheim-{i}")));
        batch.push(statement(&carla, "attempted", &format!("carla-geheim-{i}")));
    }
    let reply = xapi.post_statements(&json!(batch)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let voided_id = batch[0]["id"].as_str().unwrap().to_owned();
    let mut voiding = json!({
        "id": new_id(),
        "actor": anna,
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": voided_id}
    });
    voiding["context"] = json!({"extensions": {ISIL: LIB}});
    let reply = xapi.post_statements(&json!([voiding])).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // Documents: Anna's state and agent profile, Bob's state.
    let anna_text = anna.to_string();
    let bob_text = bob.to_string();
    xapi_put(
        &xapi,
        "/activities/state",
        &[
            ("activityId", COURSE),
            ("agent", &anna_text),
            ("stateId", "bladwijzer"),
        ],
        json!({"pagina": "anna-pagina-12"}),
    )
    .await;
    xapi_put(
        &xapi,
        "/agents/profile",
        &[("agent", &anna_text), ("profileId", "voorkeuren")],
        json!({"taal": "anna-voorkeur-nl"}),
    )
    .await;
    xapi_put(
        &xapi,
        "/activities/state",
        &[
            ("activityId", COURSE),
            ("agent", &bob_text),
            ("stateId", "bladwijzer"),
        ],
        json!({"pagina": "bob-pagina-99"}),
    )
    .await;

    // What a KB query for her returns (the voided statement is not in it).
    let queried = query_all(&xapi, &[("agent", &anna_text), ("related_agents", "true")]).await;
    let queried_ids: BTreeSet<String> = queried
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queried_ids.len(), 5, "4 statements and the voiding one");
    assert!(!queried_ids.contains(&voided_id));

    // Unknown agent: a clear error and no file, also while the server runs.
    let scratch = tempfile::tempdir().unwrap();
    let nobody_file = scratch.path().join("niemand.json");
    let out = server
        .lrs_here(&[
            "privacy",
            "export",
            "--agent",
            r#"{"mbox":"mailto:niemand@example.nl"}"#,
            "--out",
            nobody_file.to_str().unwrap(),
        ])
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("$.agent") && stderr.contains("privacy.unknown-agent"),
        "{stderr}"
    );
    assert!(!nobody_file.exists(), "no file for nobody");

    // The command line, through the running server.
    let file = scratch.path().join("anna.json");
    let out = server
        .lrs_here(&[
            "privacy",
            "export",
            "--agent",
            &anna_text,
            "--out",
            file.to_str().unwrap(),
        ])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("through the running server"), "{stderr}");
    assert!(stderr.contains("Dit bestand bevat"), "{stderr}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A second export never writes over the first.
    let again = server
        .lrs_here(&[
            "privacy",
            "export",
            "--agent",
            &anna_text,
            "--out",
            file.to_str().unwrap(),
        ])
        .unwrap();
    assert!(!again.status.success());
    let bytes = std::fs::read(&file).unwrap();
    let export: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(export["format"], "lrs-privacy-export");
    assert_eq!(export["version"], 1);

    // Exactly her statements: the query's, plus the voided one, flagged.
    let statements = export["statements"].as_array().unwrap();
    let exported: BTreeSet<String> = statements
        .iter()
        .map(|s| s["statement"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = queried_ids.clone();
    expected.insert(voided_id.clone());
    assert_eq!(exported, expected, "voided {voided_id}");
    for entry in statements {
        let id = entry["statement"]["id"].as_str().unwrap();
        assert_eq!(entry["voided"], json!(id == voided_id), "{entry}");
        if let Some(same) = queried.iter().find(|s| s["id"] == id) {
            assert_eq!(&entry["statement"], same, "as the Statement API returns it");
        }
    }
    let counts = &export["summary"]["counts"];
    assert_eq!(counts["statements"], 6);
    assert_eq!(counts["voided"], 1);
    assert!(export["summary"]["nl"]
        .as_str()
        .unwrap()
        .contains("6 leerregistraties"));
    assert!(!export["not_included"].as_array().unwrap().is_empty());

    // Her documents, with content.
    let documents = export["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 2, "{documents:?}");
    let resources: BTreeSet<&str> = documents
        .iter()
        .map(|d| d["resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, BTreeSet::from(["agent_profile", "state"]));
    assert!(contains(&bytes, "anna-pagina-12") && contains(&bytes, "anna-voorkeur-nl"));
    // Her progress in the course, at the library.
    assert!(
        !export["progress"]["records"].as_array().unwrap().is_empty(),
        "{}",
        export["progress"]
    );
    // The audit records of her statements (the POSTs that carried them).
    let audit = export["audit_records"].as_array().unwrap();
    assert!(!audit.is_empty(), "the writes of her statements");
    assert!(audit
        .iter()
        .any(|r| r["statement_ids_of_others_left_out"] == 4));

    // Nothing of anyone else.
    for needle in [
        "Bob Anderpersoon",
        "bob-ander-4711",
        "bob-geheim",
        "bob-pagina-99",
        "Carla Derdepersoon",
        carla_sha1,
        "carla-geheim",
    ] {
        assert!(!contains(&bytes, needle), "{needle} in the export");
    }
    for other in statements_of(&batch[5..]) {
        assert!(!contains(&bytes, &other), "another's statement id {other}");
    }

    // The admin API answers the same statements and documents.
    let (status, body, text) = officer
        .send(
            reqwest::Method::POST,
            "/admin/privacy/access",
            &[],
            Some(json!({"agent": anna})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let api_ids: BTreeSet<String> = body["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["statement"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(api_ids, expected);
    assert_eq!(body["documents"], export["documents"]);
    let (status, body, text) = officer
        .send(
            reqwest::Method::POST,
            "/admin/privacy/access",
            &[],
            Some(json!({"agent": {"mbox": "mailto:niemand@example.nl"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(body["error"]["message"].is_string(), "{text}");

    // Both are in the audit trail.
    server.stop().unwrap();
    let trail = server
        .lrs(&["audit", "export", "--action", "privacy.access"])
        .unwrap();
    let records: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.iter().any(|r| r["auth_method"] == "control_socket"
            && r["principal"].as_str().unwrap().starts_with("cli:")),
        "the command line's export: {trail}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["principal"] == credential.0.as_str()),
        "the API's: {trail}"
    );
    assert!(!contains(trail.as_bytes(), "anna.exportiana"));
}

fn statements_of(statements: &[Value]) -> Vec<String> {
    statements
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}
