//! Privacy: no personal data in clear in the log files, and `lrs erase` makes
//! a person's statements unreadable while the clear analytic facts remain.

use crate::common::*;
use lrs_blackbox_tests::{statement, StatusCode};
use lrs_core::events::ObjectFactV1;
use serde_json::{json, Value};
use std::path::Path;

const NAME: &str = "Anneke Privacyvriend";
const EMAIL: &str = "anneke.privacyvriend@example.nl";
const RESPONSE: &str = "Mijn huisarts is dokter Jansen in Zwolle";
const INSTRUCTED_RESPONSE: &str = "Bert antwoordde over zijn rugklachten";

fn anneke(activity: &str, verb: &str) -> Value {
    json!({
        "actor": {"objectType": "Agent", "name": NAME, "mbox": format!("mailto:{EMAIL}")},
        "verb": {"id": verb_iri(verb), "display": {"nl-NL": verb}},
        "object": {"objectType": "Activity", "id": activity_iri(activity)},
        "result": {"response": RESPONSE, "success": true, "score": {"scaled": 0.75}}
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts no needle occurs in the raw bytes of any file under `data_dir/log`.
fn scan(data_dir: &Path, needles: &[&str], when: &str) {
    let mut files = Vec::new();
    files_under(&data_dir.join("log"), &mut files);
    assert!(!files.is_empty(), "the log directory has files");
    let mut bytes_seen = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        bytes_seen += bytes.len();
        for needle in needles {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{when}: {needle:?} in clear in {}",
                file.display()
            );
        }
        assert!(
            !contains(&bytes, b"bert@example.nl"),
            "{when}: bert's mbox in clear in {}",
            file.display()
        );
    }
    assert!(bytes_seen > 0, "the log files are not empty");
}

/// The log's entries as the events they hold, uncompressed (log entries and
/// statement bodies are zstd-compressed, so the file scan above cannot see
/// clear text inside them): none of `needles` may be there either, and the
/// clear facts must be, else this scan proves nothing.
fn scan_log_entries(data_dir: &Path, master_key_hex: &str, needles: &[&str], when: &str) {
    let master = lrs_store::MasterKey(hex_key(master_key_hex));
    let store = lrs_store::Store::open(lrs_store::StoreConfig::new(data_dir, master))
        .expect("open the data dir");
    let verb = verb_iri("completed");
    let mut verb_seen = false;
    for entry in store.read_from(1) {
        let bytes = entry.expect("log entry").event.encode();
        for needle in needles.iter().chain(&["bert@example.nl"]) {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{when}: {needle:?} in clear in a log entry"
            );
        }
        verb_seen |= contains(&bytes, verb.as_bytes());
    }
    assert!(
        verb_seen,
        "{when}: the clear verb fact {verb} is in the log entries (else this scan proves nothing)"
    );
    drop(store);
}

fn hex_key(hex: &str) -> [u8; 32] {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    bytes.try_into().expect("32 bytes")
}

#[tokio::test]
async fn personal_data_is_sealed_and_erasure_leaves_only_facts() {
    let mut server = start();
    let client = server.client();

    let mine = vec![
        post_one(&client, &anneke("privacy/course", "completed")).await,
        post_one(&client, &anneke("privacy/quiz", "answered")).await,
    ];
    // Bert's statement in which Anneke is only the instructor.
    let mut instructed = statement("bert", "answered", "privacy/quiz");
    instructed["context"] = json!({"instructor": {"objectType": "Agent", "name": NAME, "mbox": format!("mailto:{EMAIL}")}});
    instructed["result"] = json!({"response": INSTRUCTED_RESPONSE});
    let instructed_id = post_one(&client, &instructed).await;
    let berts = post_one(&client, &statement("bert", "completed", "privacy/course")).await;
    for id in mine.iter().chain([&instructed_id, &berts]) {
        assert_eq!(get_by_id(&client, id).await.status, StatusCode::OK);
    }
    let reply = get_by_id(&client, &mine[0]).await;
    assert_eq!(
        reply.body["result"]["response"],
        json!(RESPONSE),
        "readable before erasure"
    );
    assert_eq!(reply.body["actor"]["name"], json!(NAME));

    // No identifier, name or free text in clear anywhere in the log's files
    // (checked after a graceful stop too, when everything is flushed).
    let needles: [&str; 6] = [
        EMAIL,
        &format!("mailto:{EMAIL}"),
        NAME,
        "Privacyvriend",
        RESPONSE,
        INSTRUCTED_RESPONSE,
    ];
    scan(&server.data_dir, &needles, "while running");
    server.stop().unwrap();
    scan(&server.data_dir, &needles, "after stop");
    scan_log_entries(
        &server.data_dir,
        &server.master_key_hex,
        &needles,
        "after stop",
    );

    // Erase Anneke.
    let agent = json!({"mbox": format!("mailto:{EMAIL}")}).to_string();
    let out = server
        .lrs(&["erase", "--agent", &agent])
        .expect("lrs erase");
    assert!(
        out.contains("erased"),
        "lrs erase reports the erasure: {out:?}"
    );
    let again = server
        .lrs_here(&["erase", "--agent", &agent])
        .expect("lrs erase again");
    assert!(!again.status.success(), "erasing twice finds nobody");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("privacy.unknown-agent"),
        "{again:?}"
    );
    scan(&server.data_dir, &needles, "after erase");
    scan_log_entries(
        &server.data_dir,
        &server.master_key_hex,
        &needles,
        "after erase",
    );

    server.launch().unwrap();
    let client = server.client();
    for id in &mine {
        let reply = get_by_id(&client, id).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "erased person's statement {id}: {}",
            reply.text
        );
    }
    for query in [
        vec![("agent", agent.clone())],
        vec![("agent", agent.clone()), ("related_agents", "true".into())],
        vec![("activity", activity_iri("privacy/course"))],
        vec![("verb", verb_iri("answered"))],
        vec![],
    ] {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = client.get_statements(&query).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{query:?}: {}", reply.text);
        let ids = ids_of(&reply);
        assert!(
            !ids.iter().any(|id| mine.contains(id)),
            "{query:?}: erased statements returned: {ids:?}"
        );
        for needle in &needles[..4] {
            assert!(
                !reply.text.contains(needle),
                "{query:?}: {needle:?} still served"
            );
        }
    }
    let all = query_ids(&client, &[]).await;
    assert_eq!(
        all,
        vec![berts.clone(), instructed_id.clone()],
        "Bert's statements remain"
    );
    let reply = get_by_id(&client, &berts).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "another learner's statement is still there: {}",
        reply.text
    );
    assert_eq!(reply.body["actor"]["mbox"], json!("mailto:bert@example.nl"));
    let reply = get_by_id(&client, &instructed_id).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "Bert's statement with Anneke as instructor remains: {}",
        reply.text
    );
    assert_eq!(
        reply.body["result"]["response"],
        json!(INSTRUCTED_RESPONSE),
        "Bert's own data stays readable"
    );
    assert!(
        !reply.text.contains(EMAIL) && !reply.text.contains(NAME),
        "but Anneke is gone from it: {}",
        reply.text
    );
    server.stop().unwrap();

    // The clear facts remain in the log: verb and activity of every erased
    // statement, while its content no longer opens.
    let master = lrs_store::MasterKey(hex_key(&server.master_key_hex));
    let store = lrs_store::Store::open(lrs_store::StoreConfig::new(&server.data_dir, master))
        .expect("open the data dir");
    let expected = [
        (&mine[0], "completed", "privacy/course"),
        (&mine[1], "answered", "privacy/quiz"),
    ];
    let mut seen = 0;
    for entry in store.read_from(1) {
        let entry = entry.expect("log entry");
        let Some(stored) = entry.event.into_statement().map(|v2| v2.statement) else {
            continue;
        };
        let id = stored.statement_id.hyphenated().to_string();
        let opened =
            lrs_core::statement::reassemble(&stored, store.vault().as_ref()).expect("reassemble");
        if let Some((_, verb, activity)) = expected.iter().find(|(erased, _, _)| **erased == id) {
            seen += 1;
            assert_eq!(
                stored.facts.verb_id,
                verb_iri(verb),
                "the verb fact of {id} at {}",
                entry.position
            );
            match &stored.facts.object {
                ObjectFactV1::Activity { id: object, .. } => {
                    assert_eq!(object, &activity_iri(activity))
                }
                other => panic!("object fact of {id}: {other:?}"),
            }
            let result = stored.facts.result.as_ref().expect("result facts");
            assert_eq!(
                (result.success, result.score_scaled),
                (Some(true), Some(0.75)),
                "result facts of {id}"
            );
            assert!(
                opened.is_none(),
                "erased statement {id} at {} still opens: {opened:?}",
                entry.position
            );
        } else if id == berts || id == instructed_id {
            assert!(opened.is_some(), "Bert's statement {id} opens");
        }
    }
    assert_eq!(seen, 2, "both erased statements are still in the log");
    store.close().await.unwrap();
}
