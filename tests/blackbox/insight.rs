//! The progress and figures API by who asks (docs/progress-and-figures.md):
//! the KB sees every library and app, a library only its own learners and
//! figures, an app only its own; staff set modules ready and the learner's
//! progress shows it; a tenant's course model is checked against
//! schemas/course-model.json and its names show up; voiding through the
//! xAPI takes a completion back out of progress and figures. Afterwards
//! `lrs verify` folds the log again and finds the same read models.

use crate::common::{new_id, Api};
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::path::Path;

const ISIL: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
const APPID: &str = "https://w3id.org/xapi/kb-nl/extensions/appid";
const LIB_A: &str = "NL-0200000001";
const LIB_B: &str = "NL-0200000002";
const COURSE: &str = "https://kb.example/cursus/digitaal-zelfstandig";
const COURSE_TYPE: &str = "https://w3id.org/xapi/cmi5/activitytype/course";
const MODULE_TYPE: &str = "http://adlnet.gov/expapi/activities/module";

fn statement(learner: &str, verb: &str, object: Value, library: &str, app: &str) -> Value {
    json!({
        "id": new_id(),
        "actor": {"name": format!("Naam {learner}"), "mbox": format!("mailto:{learner}@example.nl")},
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
        "object": object,
        "context": {
            "contextActivities": {"grouping": [{"id": COURSE, "definition": {"type": COURSE_TYPE}}]},
            "extensions": {ISIL: library, APPID: app}
        }
    })
}

fn module(n: u32) -> Value {
    json!({"id": format!("{COURSE}/module{n}"), "definition": {"type": MODULE_TYPE}})
}

fn course() -> Value {
    json!({"id": COURSE, "definition": {"type": COURSE_TYPE}})
}

fn agent(learner: &str) -> String {
    json!({"mbox": format!("mailto:{learner}@example.nl")}).to_string()
}

fn error_path(body: &Value) -> String {
    body["error"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn each_reader_sees_its_own_progress_and_figures() {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    let define = |args: &[&str]| server.lrs(args).unwrap();
    define(&[
        "tenants", "define", "--id", "kb", "--name", "KB", "--kind", "kb",
    ]);
    for (id, isil) in [("bieb-a", LIB_A), ("bieb-b", LIB_B)] {
        define(&[
            "tenants", "define", "--id", id, "--name", id, "--kind", "library", "--isil", isil,
        ]);
    }
    define(&[
        "tenants", "define", "--id", "app-x", "--name", "App X", "--kind", "app", "--appid",
        "app-x",
    ]);
    define(&[
        "roles",
        "define",
        "--name",
        "staf",
        "--permission",
        "figures.read",
        "--permission",
        "progress.read",
        "--permission",
        "progress.assign",
        "--permission",
        "course_model.write",
    ]);
    let credential =
        |tenant: &str, role: Option<&str>| server.credential_with_role(tenant, tenant, role);
    let kb_credential = credential("kb", Some("staf"));
    let a_credential = credential("bieb-a", Some("staf"));
    let b_credential = credential("bieb-b", Some("staf"));
    let app_credential = credential("app-x", Some("staf"));
    let plain_credential = credential("bieb-a", None);
    server.launch().unwrap();
    let http = reqwest::Client::new();
    let api = |(key, secret): &(String, String)| Api {
        http: http.clone(),
        base: server.base_url.clone(),
        key: key.clone(),
        secret: secret.clone(),
    };
    let (kb, lib_a, lib_b, app, plain) = (
        api(&kb_credential),
        api(&a_credential),
        api(&b_credential),
        api(&app_credential),
        api(&plain_credential),
    );

    // Ana learns at library A through app-x, Bob at library B through app-y.
    let completion = statement("ana", "completed", course(), LIB_A, "app-x");
    let completion_id = completion["id"].as_str().unwrap().to_owned();
    let statements = json!([
        statement("ana", "registered", course(), LIB_A, "app-x"),
        statement("ana", "launched", module(1), LIB_A, "app-x"),
        statement("ana", "completed", module(1), LIB_A, "app-x"),
        statement("ana", "launched", module(2), LIB_A, "app-x"),
        completion,
        statement("bob", "launched", module(1), LIB_B, "app-y"),
        statement("bob", "launched", module(3), LIB_B, "app-y"),
    ]);
    let writer = server
        .client()
        .with_credential(&kb_credential.0, &kb_credential.1);
    let reply = writer.post_statements(&statements).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // Figures: the KB's total, each library its own, the app its own.
    let hits = |body: &Value| body["figures"]["hits"].as_u64().unwrap();
    let total = kb.ok("/api/figures/monthly", &[]).await;
    assert_eq!(hits(&total), 7);
    assert_eq!(total["figures"]["active_users"], 2);
    assert_eq!(total["figures"]["courses_completed"], 1);
    assert_eq!(total["top_started"][0]["course"], COURSE);
    assert_eq!(total["top_started"][0]["count"], 2);
    let own_a = lib_a.ok("/api/figures/monthly", &[]).await;
    assert_eq!(own_a["scope"], json!({"kind": "library", "id": LIB_A}));
    assert_eq!(hits(&own_a), 5);
    assert_eq!(hits(&lib_b.ok("/api/figures/monthly", &[]).await), 2);
    let own_app = app.ok("/api/figures/monthly", &[]).await;
    assert_eq!(own_app["scope"], json!({"kind": "app", "id": "app-x"}));
    assert_eq!(hits(&own_app), 5);
    let kb_of_b = kb.ok("/api/figures/monthly", &[("library", LIB_B)]).await;
    assert_eq!(hits(&kb_of_b), 2);
    for (reader, query) in [
        (&lib_a, ("library", LIB_B)),
        (&lib_a, ("app", "app-x")),
        (&app, ("app", "app-y")),
        (&app, ("library", LIB_A)),
    ] {
        let (status, body, _) = reader.get("/api/figures/monthly", &[query]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{query:?}: {body}");
    }
    let (status, _, _) = lib_a
        .get("/api/figures/breakdown", &[("by", "library")])
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only the KB sees every library"
    );
    let (status, _, _) = plain.get("/api/figures/monthly", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no figures.read permission");
    let breakdown = kb.ok("/api/figures/breakdown", &[("by", "library")]).await;
    let rows: Vec<(String, u64)> = breakdown["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["figures"]["hits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [(LIB_A.to_owned(), 5), (LIB_B.to_owned(), 2)]);
    assert_eq!(breakdown["rows"][0]["name"], "bieb-a");
    // Bad input: a 400 naming the parameter.
    for (query, path) in [
        (("month", "2026-13"), "?month"),
        (("month", "oktober"), "?month"),
        (("colour", "red"), "?colour"),
    ] {
        let (status, body, _) = kb.get("/api/figures/monthly", &[query]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {body}");
        assert_eq!(error_path(&body), path, "{body}");
    }
    let (status, body, _) = kb
        .get(
            "/api/figures/trend",
            &[("from", "2020-01"), ("to", "2026-01")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let trend = kb.ok("/api/figures/trend", &[]).await;
    assert_eq!(trend["months"].as_array().unwrap().len(), 12);

    // Progress: Ana is library A's learner, not B's.
    let ana = kb
        .ok("/api/progress/learner", &[("agent", &agent("ana"))])
        .await;
    assert_eq!(ana["name"], "Naam ana");
    let ana_course = &ana["courses"][0];
    assert_eq!(ana_course["course"], COURSE);
    assert_eq!(ana_course["status"], "completed");
    assert_eq!(ana_course["modules_done"], 1);
    // Modules: 1 and 2 (Ana's) and 3 (seen at library B): the KB's scope.
    assert_eq!(ana_course["modules_total"], 3);
    let ana_at_a = lib_a
        .ok("/api/progress/learner", &[("agent", &agent("ana"))])
        .await;
    assert_eq!(
        ana_at_a["courses"][0]["modules_total"], 2,
        "library A saw modules 1 and 2"
    );
    let (status, _, _) = lib_b
        .get("/api/progress/learner", &[("agent", &agent("ana"))])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not library B's learner");
    let (status, _, _) = lib_b
        .get("/api/progress/learner", &[("agent", &agent("nobody"))])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown looks the same");
    let learners = lib_a.ok("/api/progress/learners", &[]).await;
    assert_eq!(learners["total"], 1);
    assert_eq!(learners["rows"][0]["name"], "Naam ana");
    let ana_id = learners["rows"][0]["learner"].as_str().unwrap().to_owned();
    let (status, _, _) = lib_a
        .get("/api/progress/learners", &[("library", LIB_B)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let bob_id = lib_b.ok("/api/progress/learners", &[]).await["rows"][0]["learner"]
        .as_str()
        .unwrap()
        .to_owned();
    let filtered = kb
        .ok(
            "/api/progress/learners",
            &[("library", LIB_A), ("status", "in_progress")],
        )
        .await;
    assert_eq!(filtered["total"], 0, "Ana completed: {filtered}");

    // Assignments: library A sets module 3 ready for Ana; not for Bob.
    let module3 = format!("{COURSE}/module3");
    let (status, body, _) = lib_a
        .send(
            reqwest::Method::POST,
            "/api/progress/assignments",
            &[],
            Some(json!({"learners": [ana_id], "course": COURSE, "modules": [module3]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let ana = lib_a
        .ok("/api/progress/learner", &[("learner", &ana_id)])
        .await;
    let ready: Vec<&Value> = ana["courses"][0]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["ready"] == true)
        .collect();
    assert_eq!(ready.len(), 1, "{ana}");
    assert_eq!(ready[0]["module"], module3.as_str());
    assert_eq!(ready[0]["status"], "not_started");
    let (status, body, _) = lib_a
        .send(
            reqwest::Method::POST,
            "/api/progress/assignments",
            &[],
            Some(json!({"learners": [bob_id], "course": COURSE, "modules": [module3]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_path(&body), "$.learners[0]");
    let (status, body, _) = lib_a
        .send(
            reqwest::Method::POST,
            "/api/progress/assignments",
            &[],
            Some(json!({"learners": ["xyz"], "course": COURSE, "modules": [module3]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_path(&body), "$.learners[0]");

    // The course filter of the learner list: a course Ana has activity in
    // at library A, one she only has a module of set ready in, one she has
    // nothing in (library A's only learner is Ana).
    let ready_only = "https://kb.example/cursus/alleen-klaargezet";
    let (status, body, _) = lib_a
        .send(
            reqwest::Method::POST,
            "/api/progress/assignments",
            &[],
            Some(json!({"learners": [ana_id], "course": ready_only, "modules": [format!("{ready_only}/m1")]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for (course, total) in [
        (COURSE, 1),
        (ready_only, 1),
        ("https://kb.example/cursus/niets", 0),
    ] {
        let page = lib_a
            .ok("/api/progress/learners", &[("course", course)])
            .await;
        assert_eq!(page["total"], total, "{course}: {page}");
    }
    let page = kb
        .ok(
            "/api/progress/learners",
            &[("library", LIB_B), ("course", COURSE)],
        )
        .await;
    assert_eq!(page["total"], 1, "Bob's activity at library B: {page}");

    // A course model: checked against the schema, then in effect.
    let (status, body, _) = kb
        .send(
            reqwest::Method::PUT,
            "/api/course-model",
            &[],
            Some(json!({"verbs": {"finished": ["http://x.example/v"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_path(&body).starts_with("$.verbs"), "{body}");
    let (status, body, _) = kb
        .send(
            reqwest::Method::PUT,
            "/api/course-model",
            &[],
            Some(json!({"courses": [{"id": COURSE, "name": {"nl": "Digitaal zelfstandig", "en": "Digitally independent"}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let model = kb.ok("/api/course-model", &[]).await;
    assert_eq!(model["set"], true);
    let total = kb.ok("/api/figures/monthly", &[]).await;
    assert_eq!(total["top_started"][0]["name"], "Digitaal zelfstandig");

    // Voiding Ana's course completion takes it back out.
    let void = json!({
        "actor": {"mbox": "mailto:ana@example.nl"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": completion_id}
    });
    let reply = writer.post_statements(&void).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let total = kb.ok("/api/figures/monthly", &[]).await;
    assert_eq!(hits(&total), 6);
    assert_eq!(total["figures"]["courses_completed"], 0);
    // Ana's other statements still make her active and a starter.
    assert_eq!(total["figures"]["active_users"], 2);
    assert_eq!(total["figures"]["courses_started"], 2);
    let ana = kb
        .ok("/api/progress/learner", &[("agent", &agent("ana"))])
        .await;
    assert_eq!(ana["courses"][0]["status"], "in_progress");

    // The read models equal a fresh fold of the log.
    server.stop().unwrap();
    let report = server.lrs(&["verify"]).unwrap();
    assert!(
        report.contains("every projection rebuilt from the log equals the stored one"),
        "{report}"
    );

    // The command line sets a model too, with the same checks.
    let file = server.data_dir.join("model.json");
    std::fs::write(&file, r#"{"courseTypes": ["not an iri"]}"#).unwrap();
    let file_arg = file.to_str().unwrap();
    let refused = server
        .lrs(&["course-model", "set", "--tenant", "kb", file_arg])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("$.courseTypes[0]"), "{refused}");
    std::fs::write(
        &file,
        r#"{"moduleTypes": ["https://kb.example/type/hoofdstuk"]}"#,
    )
    .unwrap();
    server
        .lrs(&["course-model", "set", "--tenant", "kb", file_arg])
        .unwrap();
    let shown = server
        .lrs(&["course-model", "show", "--tenant", "kb"])
        .unwrap();
    assert!(
        shown.contains("https://kb.example/type/hoofdstuk"),
        "{shown}"
    );
}
