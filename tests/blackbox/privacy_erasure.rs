//! Erasure on request (GDPR art. 17), access on request (art. 15), the
//! anonymisation report (6.6) and the backup window, end to end against a
//! real server: a person's statements, documents and progress are there and
//! the access request shows them; after the erasure through the admin API
//! nothing of them is in any API response, the monthly figures are the same
//! number for number, the report is in the log and fetched as JSON and as
//! the Dutch/English document; a restore of a backup taken before the
//! erasure shows nothing of them either, and once the backup window has
//! passed the old backup's vault copy no longer opens at all.

use crate::common::{files_under, new_id, put_new_document, Api};
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::path::Path;

const ISIL: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
const APPID: &str = "https://w3id.org/xapi/kb-nl/extensions/appid";
const LIB: &str = "NL-0200000009";
const COURSE: &str = "https://kb.example/cursus/privacy";
const COURSE_TYPE: &str = "https://w3id.org/xapi/cmi5/activitytype/course";
const EMAIL: &str = "wilhelmina.wisdata@example.nl";
const NAME: &str = "Wilhelmina Wisdata";
const SECRET_TEXT: &str = "Mijn antwoord noemt mijn buurvrouw Truus";

fn person(email: &str, name: &str) -> Value {
    json!({"objectType": "Agent", "name": name, "mbox": format!("mailto:{email}")})
}

fn statement(actor: &Value, verb: &str, object: &str, response: Option<&str>) -> Value {
    let mut s = json!({
        "id": new_id(),
        "actor": actor,
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
        "object": {"id": object, "definition": {"type": COURSE_TYPE}},
        "context": {
            "contextActivities": {"grouping": [{"id": COURSE, "definition": {"type": COURSE_TYPE}}]},
            "extensions": {ISIL: LIB, APPID: "app-privacy"}
        }
    });
    if let Some(response) = response {
        s["result"] = json!({"response": response, "completion": true});
    }
    s
}

/// A server with a KB tenant, a library, and a KB credential holding every
/// privacy permission plus the figures and progress reads; its Api.
pub(crate) fn privacy_server() -> (TestServer, (String, String)) {
    let server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    server
        .lrs(&[
            "tenants", "define", "--id", "kb", "--name", "KB", "--kind", "kb",
        ])
        .unwrap();
    server
        .lrs(&[
            "tenants", "define", "--id", "bieb", "--name", "Bieb", "--kind", "library", "--isil",
            LIB,
        ])
        .unwrap();
    let mut role = vec!["roles", "define", "--name", "privacy-officer"];
    for permission in [
        "privacy.erase",
        "privacy.access",
        "privacy.retention",
        "privacy.reports",
        "figures.read",
        "progress.read",
    ] {
        role.extend(["--permission", permission]);
    }
    server.lrs(&role).unwrap();
    let line = server
        .lrs(&[
            "credentials",
            "add",
            "--name",
            "fg",
            "--tenant",
            "kb",
            "--scope",
            "all",
            "--role",
            "privacy-officer",
        ])
        .unwrap();
    let (key, secret) = line.trim().split_once(' ').unwrap();
    (server, (key.to_owned(), secret.to_owned()))
}

pub(crate) fn api(server: &TestServer, credential: &(String, String)) -> Api {
    Api {
        http: reqwest::Client::new(),
        base: server.base_url.clone(),
        key: credential.0.clone(),
        secret: credential.1.clone(),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every byte of every file under `dir`: none of the needles.
fn assert_absent(dir: &Path, needles: &[&str], what: &str) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(
        !files.is_empty(),
        "{what}: no files under {}",
        dir.display()
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{what}: {needle:?} in {}",
                file.display()
            );
        }
    }
}

/// Every place the API could show the person: statements by id and by
/// query, their state and agent profile documents, their progress, the
/// access request. Asserts none shows anything of them.
async fn assert_nothing_of_them(
    xapi: &lrs_blackbox_tests::Xapi,
    officer: &Api,
    ids: &[String],
    agent: &Value,
) {
    let agent_text = agent.to_string();
    for id in ids {
        let reply = xapi.get_statements(&[("statementId", id)]).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "statement {id}: {}",
            reply.text
        );
    }
    for query in [
        vec![("agent", agent_text.as_str())],
        vec![("agent", agent_text.as_str()), ("related_agents", "true")],
        vec![("activity", COURSE), ("related_activities", "true")],
        vec![],
    ] {
        let reply = xapi.get_statements(&query).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{query:?}: {}", reply.text);
        for needle in [EMAIL, NAME, SECRET_TEXT] {
            assert!(
                !reply.text.contains(needle),
                "{query:?} still shows {needle:?}: {}",
                reply.text
            );
        }
        for id in ids {
            assert!(
                !reply.text.contains(id.as_str()),
                "{query:?} still lists {id}"
            );
        }
    }
    let state = send_get(
        xapi,
        "/activities/state",
        &[
            ("activityId", COURSE),
            ("agent", &agent_text),
            ("stateId", "bookmark"),
        ],
    )
    .await;
    assert_eq!(
        state.0,
        StatusCode::NOT_FOUND,
        "their state document: {}",
        state.1
    );
    let states = send_get(
        xapi,
        "/activities/state",
        &[("activityId", COURSE), ("agent", &agent_text)],
    )
    .await;
    assert!(
        !states.1.contains("bookmark"),
        "state ids still listed: {}",
        states.1
    );
    let profile = send_get(
        xapi,
        "/agents/profile",
        &[("agent", &agent_text), ("profileId", "voorkeuren")],
    )
    .await;
    assert_eq!(
        profile.0,
        StatusCode::NOT_FOUND,
        "their agent profile: {}",
        profile.1
    );
    let person = send_get(xapi, "/agents", &[("agent", &agent_text)]).await;
    assert!(
        !person.1.contains(NAME),
        "the Person object still names them: {}",
        person.1
    );
    let (status, _, text) = officer
        .get("/api/progress/learner", &[("agent", &agent_text)])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "their progress: {text}");
    let (status, _, text) = officer
        .send(
            reqwest::Method::POST,
            "/admin/privacy/access",
            &[],
            Some(json!({"agent": agent})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "access request after erasure: {text}"
    );
}

async fn send_get(
    xapi: &lrs_blackbox_tests::Xapi,
    path: &str,
    query: &[(&str, &str)],
) -> (StatusCode, String) {
    let reply =
        lrs_blackbox_tests::Xapi::send(xapi.request(reqwest::Method::GET, path).query(query))
            .await
            .unwrap();
    (reply.status, reply.text)
}

#[tokio::test]
async fn erasure_leaves_nothing_of_the_person_and_the_figures_unchanged() {
    let (mut server, officer_credential) = privacy_server();
    server.launch().unwrap();
    let xapi = server
        .client()
        .with_credential(&officer_credential.0, &officer_credential.1);
    let officer = api(&server, &officer_credential);
    let wilhelmina = person(EMAIL, NAME);
    let agent = json!({"mbox": format!("mailto:{EMAIL}")});
    let agent_text = agent.to_string();
    let bert = person("bert.blijft@example.nl", "Bert Blijft");

    // Her statements, Bert's (one naming her as instructor), her documents.
    let mut mine = Vec::new();
    let mut all = Vec::new();
    for (verb, response) in [("launched", None), ("completed", Some(SECRET_TEXT))] {
        let s = statement(&wilhelmina, verb, COURSE, response);
        mine.push(s["id"].as_str().unwrap().to_owned());
        all.push(s);
    }
    let mut instructed = statement(&bert, "completed", COURSE, Some("Bert zijn eigen antwoord"));
    instructed["context"]["instructor"] = wilhelmina.clone();
    let instructed_id = instructed["id"].as_str().unwrap().to_owned();
    all.push(instructed);
    all.push(statement(&bert, "launched", COURSE, None));
    let reply = xapi.post_statements(&json!(all)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    for (path, query, body) in [
        (
            "/activities/state",
            vec![
                ("activityId", COURSE),
                ("agent", agent_text.as_str()),
                ("stateId", "bookmark"),
            ],
            json!({"pagina": 12, "notitie": SECRET_TEXT}),
        ),
        (
            "/agents/profile",
            vec![("agent", agent_text.as_str()), ("profileId", "voorkeuren")],
            json!({"taal": "nl", "naam": NAME}),
        ),
    ] {
        put_new_document(&xapi, path, &query, body).await;
    }

    // Access on request: everything is there, readable.
    let (status, access, text) = officer
        .send(
            reqwest::Method::POST,
            "/admin/privacy/access",
            &[],
            Some(json!({"agent": agent})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let listed: Vec<&str> = access["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["statement"]["id"].as_str().unwrap())
        .collect();
    for id in mine.iter().chain([&instructed_id]) {
        assert!(
            listed.contains(&id.as_str()),
            "access lists {id}: {listed:?}"
        );
    }
    assert_eq!(listed.len(), 3, "her two statements and the one naming her");
    assert!(
        text.contains(SECRET_TEXT),
        "the statements are readable in the access answer"
    );
    assert_eq!(access["documents"].as_array().unwrap().len(), 2, "{text}");
    assert_eq!(access["statements"][0]["source"]["library"], LIB);
    assert!(
        !access["progress"]["records"].as_array().unwrap().is_empty(),
        "her progress records: {text}"
    );
    // The CLI gives the same (server stopped below for the backup check).

    let figures_before = officer.ok("/api/figures/monthly", &[]).await;
    let library_before = officer
        .ok("/api/figures/monthly", &[("library", LIB)])
        .await;
    assert!(
        figures_before["figures"]["hits"].as_u64().unwrap() >= 4,
        "{figures_before}"
    );

    // A backup now: the older backup, taken before the erasure.
    let scratch = tempfile::tempdir().unwrap();
    let old_backup = scratch.path().join("backup-before");
    let out = server
        .lrs_here(&["backup", "--to", path(&old_backup)])
        .unwrap();
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_absent(&old_backup, &[EMAIL, NAME, SECRET_TEXT], "the backup");

    // Erasure through the admin API, with a case number.
    let (status, report, text) = officer
        .send(
            reqwest::Method::POST,
            "/admin/privacy/erasures",
            &[],
            Some(json!({"agent": agent, "request_id": "AVG-2026-0042"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(report["people"], 1, "{text}");
    assert_eq!(report["trigger"]["request_id"], "AVG-2026-0042");
    assert_eq!(report["records"]["statements"], 3, "{text}");
    assert_eq!(report["records"]["documents"], 2, "{text}");
    let tried = report["check"]["sealed_entries_tried"].as_u64().unwrap();
    assert!(
        tried >= 5,
        "her agent in 3 statements, 2 content shares, 2 documents: {text}"
    );
    assert_eq!(
        report["check"]["unreadable"].as_u64().unwrap(),
        tried,
        "{text}"
    );
    for needle in [EMAIL, NAME, SECRET_TEXT] {
        assert!(
            !text.contains(needle),
            "the report holds no personal data: {text}"
        );
    }
    let report_id = report["id"].as_str().unwrap().to_owned();

    assert_nothing_of_them(&xapi, &officer, &mine, &agent).await;
    // Bert's statement with her as instructor remains, without her.
    let reply = xapi
        .get_statements(&[("statementId", &instructed_id)])
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.text.contains("Bert zijn eigen antwoord") && !reply.text.contains(NAME));

    // The figures are the same, number for number.
    assert_eq!(
        officer.ok("/api/figures/monthly", &[]).await,
        figures_before
    );
    assert_eq!(
        officer
            .ok("/api/figures/monthly", &[("library", LIB)])
            .await,
        library_before
    );

    // Bad input: 400 naming the field, and nothing written. Erasing her
    // again: the vault no longer knows her (as for someone never seen).
    let reports_before = officer.ok("/admin/privacy/reports", &[]).await;
    for (body, path) in [
        (json!({"agent": agent}), "$.agent"),
        (
            json!({"agent": {"name": "zonder identificatie"}}),
            "$.agent",
        ),
        (
            json!({"agent": bert, "request_id": "naam@example.nl"}),
            "$.request_id",
        ),
        (json!({"agent": bert, "onbekend": 1}), "$"),
    ] {
        let (status, body, text) = officer
            .send(
                reqwest::Method::POST,
                "/admin/privacy/erasures",
                &[],
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(body["error"]["message"].is_string(), "{text}");
        assert!(
            body["error"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(path)),
            "{text}"
        );
    }
    assert_eq!(
        officer.ok("/admin/privacy/reports", &[]).await,
        reports_before,
        "bad input writes no report"
    );

    // The reports: listed, as JSON, and as the readable document.
    let list = officer.ok("/admin/privacy/reports", &[]).await;
    let ids: Vec<&str> = list["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&report_id.as_str()), "{list}");
    let fetched = officer
        .ok(&format!("/admin/privacy/reports/{report_id}"), &[])
        .await;
    assert_eq!(fetched["people"], 1);
    assert!(
        fetched["log"]["position"].as_u64().unwrap() > 0,
        "the report is a log entry"
    );
    let (status, _, markdown) = officer
        .get(
            &format!("/admin/privacy/reports/{report_id}"),
            &[("format", "markdown")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let nl = markdown.find("Anonimiseringsrapport").expect("Dutch first");
    let en = markdown
        .find("Anonymisation report")
        .expect("English second");
    assert!(nl < en, "{markdown}");
    assert!(markdown.contains("AVG-2026-0042") && markdown.contains("Alles is onleesbaar"));
    let (status, body, _) = officer.get("/admin/privacy/reports/not-a-uuid", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The audit trail has the erasure.
    server.stop().unwrap();
    let audit = server.lrs(&["audit", "export"]).unwrap();
    assert!(audit.contains("privacy.erase"), "the erasure is audited");
    assert!(
        !audit.contains(EMAIL),
        "the audit trail holds no identifier"
    );

    // The handover export has nothing of her.
    let handover = scratch.path().join("handover");
    server
        .lrs(&["export", "handover", "--out", path(&handover)])
        .unwrap();
    assert_absent(
        &handover,
        &[EMAIL, NAME, SECRET_TEXT],
        "the handover export",
    );

    // The log verifies, and folds to the same read models.
    let verified = server.lrs(&["verify"]).unwrap();
    assert!(verified.contains("equals the stored one"), "{verified}");

    // Restore the backup taken BEFORE the erasure: nothing of her.
    let restored = scratch.path().join("restored");
    let out = server
        .lrs_outcome(&[
            "restore",
            "--from",
            path(&old_backup),
            "--data-dir",
            path(&restored),
        ])
        .unwrap();
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut old = server.sibling(&restored).unwrap();
    let old_xapi = old
        .client()
        .with_credential(&officer_credential.0, &officer_credential.1);
    let old_officer = api(&old, &officer_credential);
    assert_nothing_of_them(&old_xapi, &old_officer, &mine, &agent).await;
    let reply = old_xapi
        .get_statements(&[("statementId", &instructed_id)])
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "Bert is still in the old backup"
    );
    old.stop().unwrap();

    // The backup window: once it has passed (a retention run as of later
    // than the window), the old backup's vault copy no longer opens at all.
    let window = server
        .lrs(&[
            "privacy", "policy", "set", "--tenant", "*", "--class", "backups", "--days", "7",
        ])
        .unwrap();
    assert!(window.contains("\"backups\""), "{window}");
    let later = chrono::Utc::now() + chrono::Duration::days(8);
    server
        .lrs(&[
            "privacy",
            "retention",
            "run",
            "--as-of",
            &later.to_rfc3339(),
        ])
        .unwrap();
    let too_old = scratch.path().join("too-old");
    let out = server
        .lrs_outcome(&[
            "restore",
            "--from",
            path(&old_backup),
            "--data-dir",
            path(&too_old),
        ])
        .unwrap();
    assert!(
        !out.status.success(),
        "a backup older than the window does not restore"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("backup window"), "says why: {stderr}");
    assert!(!too_old.join("vault").exists());
}

#[tokio::test]
async fn the_cli_erases_and_answers_access_requests_also_while_the_server_runs() {
    let (mut server, credential) = privacy_server();
    let agent = json!({"mbox": "mailto:cli.persoon@example.nl"});
    let agent_text = agent.to_string();
    // Nobody yet (server stopped): access and erasure refuse, naming the
    // agent, and write nothing.
    let out = server
        .lrs_here(&["privacy", "access", "--agent", &agent_text])
        .unwrap();
    assert!(!out.status.success());
    let out = server
        .lrs_here(&["erase", "--agent", &agent_text, "--request-id", "CLI-0"])
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("$.agent") && stderr.contains("privacy.unknown-agent"),
        "{stderr}"
    );
    let out = server
        .lrs_here(&[
            "erase",
            "--agent",
            &agent_text,
            "--request-id",
            "Jan Jansen@x",
        ])
        .unwrap();
    assert!(!out.status.success(), "a request id is not personal data");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("request"),
        "{out:?}"
    );
    // A mistyped data directory is refused, not made and answered about.
    let nowhere = tempfile::tempdir().unwrap();
    let missing = nowhere.path().join("lrs-data");
    let out = server
        .lrs_outcome(&[
            "erase",
            "--agent",
            &agent_text,
            "--data-dir",
            missing.to_str().unwrap(),
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no data directory"),
        "{out:?}"
    );
    assert!(!missing.exists(), "nothing was made there");
    let reports: Value = serde_json::from_str(
        &server
            .lrs(&["privacy", "report", "--format", "json"])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reports["reports"], json!([]), "nothing was written");

    // The person writes while the server runs; the CLI goes through the
    // control socket (the server holds the data directory's lock).
    server.launch().unwrap();
    let xapi = server
        .client()
        .with_credential(&credential.0, &credential.1);
    let mut s = statement(&agent, "completed", COURSE, Some(SECRET_TEXT));
    s["actor"]["name"] = json!("Cli Persoon");
    let reply = xapi.post_statements(&json!([s])).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let access = server
        .lrs(&["privacy", "access", "--agent", &agent_text])
        .unwrap();
    assert!(access.contains(SECRET_TEXT), "{access}");
    let erased = server
        .lrs(&["erase", "--agent", &agent_text, "--request-id", "CLI-1"])
        .unwrap();
    assert!(erased.contains("erased 1 person"), "{erased}");
    let reports: Value = serde_json::from_str(
        &server
            .lrs(&["privacy", "report", "--format", "json"])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reports["reports"][0]["trigger"]["request_id"], "CLI-1");
    assert_eq!(reports["reports"][0]["people"], 1);
    let id = reports["reports"][0]["id"].as_str().unwrap().to_owned();
    let position = reports["reports"][0]["log"]["position"].as_u64().unwrap();
    let text = server
        .lrs(&["privacy", "report", "--id", &id, "--format", "text"])
        .unwrap();
    assert!(text.starts_with("# Anonimiseringsrapport"), "{text}");
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let csv = server
        .lrs(&["privacy", "report", "--month", &month, "--format", "csv"])
        .unwrap();
    assert!(
        csv.lines().nth(1).is_some_and(|row| row.starts_with(&id)),
        "{csv}"
    );
    assert!(!csv.contains("cli.persoon") && !csv.contains("Cli Persoon"));
    let out = server
        .lrs_here(&["privacy", "report", "--month", "2026-13"])
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("$.month"));
    // The server recorded the erasure in its audit trail.
    server.stop().unwrap();
    let audit = server.lrs(&["audit", "export"]).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("privacy.erase") && l.contains("control_socket")),
        "{audit}"
    );
    // `lrs verify` checks the report sits where it says.
    let verified = server.lrs(&["verify"]).unwrap();
    assert!(
        verified.contains("1 anonymisation reports are the log entries at the positions they name"),
        "{verified}"
    );
    assert!(position > 0);
}

/// A voided statement has left the index (no query finds it) but still
/// holds the person sealed in the log: the erasure report counts it, the
/// unreadability check tries it, and afterwards it no longer opens.
#[tokio::test]
async fn erasure_counts_and_checks_the_persons_voided_statements() {
    let (mut server, credential) = privacy_server();
    server.launch().unwrap();
    let xapi = server
        .client()
        .with_credential(&credential.0, &credential.1);
    let officer = api(&server, &credential);
    let (email, name) = ("vera.vervallen@example.nl", "Vera Vervallen");
    let vera = person(email, name);
    let agent = json!({"mbox": format!("mailto:{email}")});
    let kept = statement(&vera, "launched", COURSE, None);
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    let voided = statement(&vera, "completed", COURSE, Some(SECRET_TEXT));
    let voided_id = voided["id"].as_str().unwrap().to_owned();
    let reply = xapi.post_statements(&json!([kept, voided])).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Voided by her teacher: the voiding statement does not name her.
    let voiding = json!({
        "actor": person("docent.de.vries@example.nl", "Docent de Vries"),
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": voided_id}
    });
    let reply = xapi.post_statements(&json!([voiding])).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let agent_text = agent.to_string();
    let found = xapi
        .get_statements(&[("agent", &agent_text), ("related_agents", "true")])
        .await
        .unwrap();
    // A query finds her statement not voided and the voiding statement
    // (which refers to hers), never the voided statement itself.
    let ids: Vec<&str> = found.body["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&kept_id.as_str()) && !ids.contains(&voided_id.as_str()),
        "{}",
        found.text
    );
    let before = xapi
        .get_statements(&[("voidedStatementId", &voided_id)])
        .await
        .unwrap();
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    assert!(before.text.contains(SECRET_TEXT), "{}", before.text);

    let (status, report, text) = officer
        .send(
            reqwest::Method::POST,
            "/admin/privacy/erasures",
            &[],
            Some(json!({"agent": agent, "request_id": "AVG-2026-0043"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        report["records"]["statements"], 2,
        "her two statements, the voided one too; not the teacher's voiding: {text}"
    );
    let tried = report["check"]["sealed_entries_tried"].as_u64().unwrap();
    assert_eq!(
        tried, 4,
        "her agent and content share in both statements, the voided one too: {text}"
    );
    assert_eq!(
        report["check"]["unreadable"].as_u64().unwrap(),
        tried,
        "{text}"
    );
    let after = xapi
        .get_statements(&[("voidedStatementId", &voided_id)])
        .await
        .unwrap();
    for needle in [email, name, SECRET_TEXT] {
        assert!(
            !after.text.contains(needle),
            "the voided statement still shows {needle}: {}",
            after.text
        );
    }
    server.stop().unwrap();
    assert_absent(
        &server.data_dir,
        &[email, name, SECRET_TEXT],
        "the data directory",
    );
}
