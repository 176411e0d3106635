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

use crate::common::{
    define_kb_and_library, define_role, new_id, post_generated, put_new_document, Api,
};
use crate::privacy_erasure::{api, privacy_server};
use lrs_blackbox_tests::{StatusCode, TestServer, Xapi};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

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
    put_new_document(
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
    put_new_document(
        &xapi,
        "/agents/profile",
        &[("agent", &anna_text), ("profileId", "voorkeuren")],
        json!({"taal": "anna-voorkeur-nl"}),
    )
    .await;
    put_new_document(
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

// ---- the Datatheek command and the export of everything ----

fn binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))
}

/// Every sheet of a workbook as rows of cell texts, read with calamine.
pub(crate) fn sheets(bytes: &[u8]) -> BTreeMap<String, Vec<Vec<String>>> {
    use calamine::{Data, Reader, Xlsx};
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes.to_vec())).expect("an xlsx");
    let names = book.sheet_names().to_vec();
    names
        .into_iter()
        .map(|name| {
            let range = book.worksheet_range(&name).unwrap();
            let rows = range
                .rows()
                .map(|row| {
                    row.iter()
                        .map(|cell| match cell {
                            Data::Empty => String::new(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .collect();
            (name, rows)
        })
        .collect()
}

/// Two workbooks hold the same cells, but for when each was made (the
/// Totaal sheet's "Gemaakt op" row: a live month's workbook is made now).
pub(crate) fn assert_same_cells(ours: &[u8], api: &[u8], what: &str) {
    let (mut ours, mut api) = (sheets(ours), sheets(api));
    for book in [&mut ours, &mut api] {
        let total = book.get_mut("Totaal").expect("a Totaal sheet");
        for row in total.iter_mut() {
            if row.first().map(String::as_str) == Some("Gemaakt op (UTC)") {
                row[1].clear();
            }
        }
    }
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        api.keys().collect::<Vec<_>>()
    );
    assert!(
        api["Totaal"].len() > 1 && api["Bibliotheken"].len() > 1,
        "{what}: rows"
    );
    for (name, rows) in &api {
        assert_eq!(&ours[name], rows, "{what}: sheet {name}");
    }
}

pub(crate) async fn download(api: &Api, query: &[(&str, &str)]) -> Vec<u8> {
    let response = api
        .http
        .get(format!("{}/api/figures/datatheek", api.base))
        .query(query)
        .basic_auth(&api.key, Some(&api.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

fn failing(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "must fail: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_datatheek_command_equals_the_apis_workbook_and_export_all_resumes() {
    use lrs_blackbox_tests::activity::{self, Spec};
    let spec = Spec {
        learners: 120,
        libraries: 8,
        ..Spec::default()
    };
    let generated = activity::generate(spec.clone());
    let isil = generated.world.libraries[0].clone();
    let mut server = TestServer::prepare(binary()).unwrap();
    define_kb_and_library(&server, &isil);
    define_role(&server, "cijfers", &["figures.read"]);
    let kb_credential = server.credential_with_role("KB analist", "kb", Some("cijfers"));
    let library_credential = server.credential_with_role("Medewerker", "bieb", Some("cijfers"));
    server.env.push(("LRS_RATE_PER_ADDRESS".into(), "0".into()));
    server
        .env
        .push(("LRS_RATE_PER_CREDENTIAL".into(), "0".into()));
    server.launch().unwrap();
    let (kb, library) = (
        Api::of(&server, &kb_credential),
        Api::of(&server, &library_credential),
    );
    let writer = server
        .client()
        .with_credential(&kb_credential.0, &kb_credential.1);
    post_generated(&writer, &generated).await;
    let m = spec.month.to_string();
    let kb_book = download(&kb, &[("month", &m)]).await;
    let library_book = download(&library, &[("month", &m)]).await;
    // What the Statement API answers the KB: every statement not voided.
    let api_ids: BTreeSet<String> = query_all(&writer, &[("limit", "500")])
        .await
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    server.stop().unwrap();

    // The command's workbooks equal the API's, read back with calamine.
    let scratch = tempfile::tempdir().unwrap();
    let file = |name: &str| scratch.path().join(name).to_str().unwrap().to_owned();
    let out = server
        .lrs_here(&[
            "export",
            "datatheek",
            "--month",
            &m,
            "--out",
            &file("kb.xlsx"),
        ])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_same_cells(&std::fs::read(file("kb.xlsx")).unwrap(), &kb_book, "KB");
    let out = server
        .lrs_here(&[
            "export",
            "datatheek",
            "--month",
            &m,
            "--tenant",
            "bieb",
            "--out",
            &file("bieb.xlsx"),
        ])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_same_cells(
        &std::fs::read(file("bieb.xlsx")).unwrap(),
        &library_book,
        "library",
    );
    // As OpenDocument (issue 21): the extension chooses the format; the
    // cells are the API's xlsx's, read back by calamine's ods reader.
    let out = server
        .lrs_here(&[
            "export",
            "datatheek",
            "--month",
            &m,
            "--out",
            &file("kb.ods"),
        ])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(ods, "),
        "{out:?}"
    );
    crate::datatheek::assert_same_cells_across_formats(
        &kb_book,
        &std::fs::read(file("kb.ods")).unwrap(),
        &[("Totaal", 3, 1)],
        "lrs export datatheek --out kb.ods",
    );

    // Bad input: a clear error, no new file, an existing one unchanged.
    let before = std::fs::read(file("kb.xlsx")).unwrap();
    for (args, out, says) in [
        (
            vec!["--month", "2019-01"],
            "leeg.xlsx",
            "2019-01 has no figures",
        ),
        (
            vec!["--month", &m, "--tenant", "onbekend"],
            "onbekend.xlsx",
            "onbekend",
        ),
        (vec!["--month", "2026-13"], "x.xlsx", "not a month"),
        (vec!["--month", &m], "kb.xlsx", "exists"),
    ] {
        let target = file(out);
        let mut command = vec!["export", "datatheek"];
        command.extend(args);
        command.extend(["--out", &target]);
        let stderr = failing(&server.lrs_here(&command).unwrap());
        assert!(stderr.contains(says), "{command:?}: {stderr}");
        if out != "kb.xlsx" {
            assert!(!scratch.path().join(out).exists(), "{out}");
        }
    }
    assert_eq!(std::fs::read(file("kb.xlsx")).unwrap(), before, "unchanged");

    // A range of months in one workbook: one Totaal row per month, the
    // month's figures as in its own workbook.
    let previous = spec.month.previous().to_string();
    let out = server
        .lrs_here(&[
            "export",
            "datatheek",
            "--month",
            &previous,
            "--to-month",
            &m,
            "--out",
            &file("range.xlsx"),
        ])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let range = sheets(&std::fs::read(file("range.xlsx")).unwrap());
    let single = sheets(&kb_book);
    let totals = &range["Totaal"];
    assert_eq!(totals.len(), 3, "header and two months: {totals:?}");
    assert_eq!(totals[1][0], previous);
    assert_eq!(totals[2][0], m);
    let figures_of_single = &single["Totaal"][1][2..];
    assert_eq!(
        &totals[2][2..2 + figures_of_single.len()],
        figures_of_single
    );
    let library_rows_of_m: Vec<&Vec<String>> =
        range["Bibliotheken"].iter().filter(|r| r[0] == m).collect();
    assert_eq!(library_rows_of_m.len(), single["Bibliotheken"].len() - 1);
    for (ours, theirs) in library_rows_of_m.iter().zip(&single["Bibliotheken"][1..]) {
        assert_eq!(&ours[1..], &theirs[..]);
    }

    // A closed month: the command's workbook is the API's, byte for byte.
    server.lrs(&["figures", "close", "--month", &m]).unwrap();
    let out = server
        .lrs_here(&[
            "export",
            "datatheek",
            "--month",
            &m,
            "--out",
            &file("closed.xlsx"),
        ])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    server.launch().unwrap();
    let kb = Api::of(&server, &kb_credential);
    let closed_book = download(&kb, &[("month", &m)]).await;
    assert_eq!(
        std::fs::read(file("closed.xlsx")).unwrap(),
        closed_book,
        "a closed month's workbook from the command equals the API's"
    );
    server.stop().unwrap();

    export_all_of_a_seeded_store(&server, &api_ids, scratch.path());
}

/// `lrs export all` of the seeded store: interrupted, resumed, checked.
fn export_all_of_a_seeded_store(
    server: &TestServer,
    api_ids: &BTreeSet<String>,
    scratch: &std::path::Path,
) {
    let dir = scratch.join("exit");
    let data_dir = server.data_dir.to_str().unwrap();
    let run = |stop_after: Option<&str>| {
        let mut command = std::process::Command::new(binary());
        command
            .args(["export", "all", "--to", dir.to_str().unwrap()])
            .args(["--data-dir", data_dir])
            .env("LRS_MASTER_KEY", &server.master_key_hex)
            .env("LRS_LOG", "warn");
        if let Some(n) = stop_after {
            command.env("LRS_EXPORT_ALL_STOP_AFTER", n);
        }
        command.output().unwrap()
    };
    // A target that is not empty is refused, and left as it was.
    let busy = scratch.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let out = server
        .lrs_here(&["export", "all", "--to", busy.to_str().unwrap()])
        .unwrap();
    let stderr = failing(&out);
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    // Interrupted after 1,500 statements (1,000 marked, 500 more written).
    let out = run(Some("1500"));
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert!(dir.join("export-state.json").exists());
    assert!(!dir.join("manifest.json").exists());
    // Run again: it resumes and completes.
    let out = run(None);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("resumed"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    assert!(!dir.join("export-state.json").exists());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();

    // Every statement file parses as xAPI; no statement twice; the ids are
    // the API's plus the voided ones.
    let mut seen = BTreeSet::new();
    let mut lines = 0u64;
    let mut voided = 0u64;
    for entry in manifest["files"].as_array().unwrap() {
        let path = entry["path"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(entry["bytes"], bytes.len() as u64, "{path}");
        use sha2::Digest;
        assert_eq!(
            entry["sha256"].as_str().unwrap(),
            hex_of(&sha2::Sha256::digest(&bytes)),
            "{path}"
        );
        if !path.starts_with("statements/") {
            continue;
        }
        assert!(path.ends_with(".jsonl"), "{path}");
        for line in String::from_utf8(bytes).unwrap().lines() {
            let statement: Value = serde_json::from_str(line).unwrap();
            let version = if statement["version"]
                .as_str()
                .unwrap_or("1.0.3")
                .starts_with("2.")
            {
                xapi::XapiVersion::V2_0_0
            } else {
                xapi::XapiVersion::V1_0_3
            };
            if let Err(e) = xapi::validate::validate_statement(&statement, version) {
                panic!("{path}: not an xAPI statement: {e:?}\n{line}");
            }
            let id = statement["id"].as_str().unwrap().to_owned();
            if !api_ids.contains(&id) {
                voided += 1;
            }
            assert!(seen.insert(id.clone()), "{id} twice in the export");
            lines += 1;
        }
    }
    let counts = &manifest["counts"];
    assert_eq!(counts["statements"], lines);
    assert_eq!(counts["voided"], voided);
    assert_eq!(lines - voided, api_ids.len() as u64, "the API's count");
    assert!(api_ids.is_subset(&seen));
    assert!(voided > 0, "the generated month voids some statements");
    for name in [
        "tenants.json",
        "roles.json",
        "credentials.json",
        "figures/monthly.csv",
        "figures/top10.csv",
        "documents.jsonl",
    ] {
        assert!(dir.join(name).exists(), "{name}");
    }
    // No secret of any credential.
    let everything = files_text(&dir);
    assert!(
        !contains(&everything, &server.secret),
        "a secret in the export"
    );
    assert!(
        !contains(&everything, "$argon2"),
        "a secret's hash in the export"
    );
    // A third run finds the export complete and changes nothing.
    let out = run(None);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("already holds a complete export"));

    // DuckDB and pyarrow read the Parquet files (when the environment has them).
    if let Some(reader) = lrs_blackbox_tests::analytics_support::python_reader() {
        let read = reader.counts(&dir.join("parquet"));
        assert_eq!(read["duckdb_not_voided"], api_ids.len() as u64, "{read}");
        assert_eq!(read["pyarrow_not_voided"], api_ids.len() as u64, "{read}");
    }
}

pub(crate) fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir`, concatenated.
fn files_text(dir: &std::path::Path) -> Vec<u8> {
    let mut files = Vec::new();
    crate::common::files_under(dir, &mut files);
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

// ---- the anonymised copy ----

/// Every account name under any `account` in a statement.
fn account_names(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map.get("account").and_then(|a| a["name"].as_str()) {
                out.insert(name.to_owned());
            }
            map.values().for_each(|v| account_names(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| account_names(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_anonymised_copy_holds_no_original_identifier_and_the_same_figures() {
    use lrs_blackbox_tests::activity::{self, Spec};
    let spec = Spec {
        learners: 80,
        libraries: 6,
        ..Spec::default()
    };
    let generated = activity::generate(spec.clone());
    let mut server = TestServer::prepare(binary()).unwrap();
    server
        .lrs(&[
            "tenants", "define", "--id", "kb", "--name", "KB", "--kind", "kb",
        ])
        .unwrap();
    server
        .lrs(&[
            "roles",
            "define",
            "--name",
            "cijfers",
            "--permission",
            "figures.read",
            "--permission",
            "progress.read",
        ])
        .unwrap();
    let (key, secret) = server.credential_with_role("KB analist", "kb", Some("cijfers"));
    server.env.push(("LRS_RATE_PER_ADDRESS".into(), "0".into()));
    server
        .env
        .push(("LRS_RATE_PER_CREDENTIAL".into(), "0".into()));
    server.launch().unwrap();
    let writer = server.client().with_credential(&key, &secret);
    let sha1 = "0b7e3f8a9c1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f";
    let free_text = "vrije tekst over Sjaak Buurman";
    let mut batches: Vec<Value> = generated
        .sent
        .chunks(500)
        .map(|chunk| Value::Array(chunk.iter().map(|s| s.statement.clone()).collect()))
        .collect();
    batches.push(json!([{
        "actor": {"name": "Sjaak Buurman", "mbox_sha1sum": sha1},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "https://kb.example/vraag/1"},
        "result": {"response": free_text}
    }]));
    let mut accounts = BTreeSet::new();
    for batch in &batches {
        account_names(batch, &mut accounts);
        let reply = writer.post_statements(batch).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let kb = Api {
        http: reqwest::Client::new(),
        base: server.base_url.clone(),
        key: key.clone(),
        secret: secret.clone(),
    };
    let months = [spec.month.previous().to_string(), spec.month.to_string()];
    let mut original = Vec::new();
    for m in &months {
        original.push(kb.ok("/api/figures/monthly", &[("month", m)]).await);
        original.push(
            kb.ok("/api/figures/breakdown", &[("month", m), ("by", "library")])
                .await,
        );
    }
    let libraries = &generated.world.libraries;
    let original_progress = progress_tallies(&kb, libraries).await;
    server.stop().unwrap();
    // The original's Parquet files: their learner tokens must not be in
    // the copy's.
    server.lrs(&["analytics", "export"]).unwrap();
    let reader = lrs_blackbox_tests::analytics_support::python_reader();
    let original_tokens: BTreeSet<String> = match &reader {
        Some(reader) => {
            let (text, _, rows) = reader.decoded_values(&server.data_dir.join("analytics"));
            assert!(rows > 0, "the original has Parquet rows");
            text.lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .flat_map(|file| file["rows"].as_array().cloned().unwrap_or_default())
                .filter_map(|row| row["actor_token"].as_str().map(str::to_owned))
                .collect()
        }
        None => BTreeSet::new(),
    };

    // Bad input: a target that is not empty is refused and left alone.
    let scratch = tempfile::tempdir().unwrap();
    let busy = scratch.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), "x").unwrap();
    let stderr = failing(
        &server
            .lrs_here(&["privacy", "anonymised-copy", "--to", busy.to_str().unwrap()])
            .unwrap(),
    );
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    let copy = scratch.path().join("copy");
    let out = server
        .lrs_here(&["privacy", "anonymised-copy", "--to", copy.to_str().unwrap()])
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // The copy opens with lrs serve under its own key.
    let mut copied = TestServer::prepare(binary()).unwrap();
    copied.data_dir = copy.clone();
    copied.master_key_hex = std::fs::read_to_string(copy.join("master.key"))
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(
        copied.master_key_hex, server.master_key_hex,
        "a new master key"
    );
    let (copy_key, copy_secret) = copied.credential_with_role("Tester", "kb", Some("cijfers"));
    copied.launch().unwrap();
    let tester = Api {
        http: reqwest::Client::new(),
        base: copied.base_url.clone(),
        key: copy_key,
        secret: copy_secret,
    };
    let mut again = Vec::new();
    for m in &months {
        again.push(tester.ok("/api/figures/monthly", &[("month", m)]).await);
        again.push(
            tester
                .ok("/api/figures/breakdown", &[("month", m), ("by", "library")])
                .await,
        );
    }
    for (before, after) in original.iter().zip(&again) {
        assert_eq!(
            strip_names(before),
            strip_names(after),
            "the copy's figures equal the original's"
        );
    }
    // Progress tallies: every library's learners with their courses and
    // statuses, identities aside, as the progress API gives them.
    let copy_progress = progress_tallies(&tester, libraries).await;
    assert_eq!(
        copy_progress, original_progress,
        "the copy's progress equals the original's"
    );
    assert!(
        original_progress.values().map(Vec::len).sum::<usize>() >= spec.learners / 2,
        "learners with progress: {original_progress:?}"
    );
    copied.stop().unwrap();

    // A byte scan of every file of the copy (after the server ran on it,
    // so its analytics files too).
    let everything = files_text(&copy);
    let mut needles: Vec<String> = vec![
        "@example.nl".into(),
        "Deelnemer ".into(),
        "Sjaak".into(),
        sha1.into(),
        free_text.into(),
    ];
    needles.extend(accounts.iter().filter(|a| a.len() >= 6).cloned());
    assert!(
        needles.len() > 50,
        "the learners' account names: {}",
        needles.len()
    );
    for needle in &needles {
        assert!(!contains(&everything, needle), "{needle} in the copy");
    }

    // The copy's Parquet files read back with their reader (pyarrow): no
    // decoded value holds an original identifier (compression would hide
    // one from the byte scan), nor an original learner token.
    if let Some(reader) = reader {
        copied.lrs(&["analytics", "export"]).unwrap();
        let (decoded, files, rows) = reader.decoded_values(&copy.join("analytics"));
        assert!(
            files > 0 && rows >= generated.sent.len() as u64,
            "{files} files, {rows} rows"
        );
        for needle in &needles {
            assert!(
                !decoded.contains(needle.as_str()),
                "{needle} in the copy's Parquet"
            );
        }
        assert!(
            original_tokens.len() >= spec.learners / 2,
            "{}",
            original_tokens.len()
        );
        for token in &original_tokens {
            assert!(
                !decoded.contains(token.as_str()),
                "original token {token} in the copy's Parquet"
            );
        }
    }
}

/// Every library's learners and their progress as `GET
/// /api/progress/learners` gives them, without who they are (their id and
/// name, the course names): sorted, per library.
async fn progress_tallies(api: &Api, libraries: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut all = BTreeMap::new();
    for isil in libraries {
        let mut rows = Vec::new();
        for page in 1.. {
            let page = page.to_string();
            let answer = api
                .ok(
                    "/api/progress/learners",
                    &[("library", isil), ("per_page", "200"), ("page", &page)],
                )
                .await;
            let found = answer["rows"].as_array().cloned().unwrap_or_default();
            let total = answer["total"].as_u64().unwrap() as usize;
            for row in &found {
                let mut row = strip_names(row);
                row.as_object_mut().unwrap().remove("learner");
                rows.push(row.to_string());
            }
            if found.is_empty() || rows.len() >= total {
                break;
            }
        }
        rows.sort();
        all.insert(isil.clone(), rows);
    }
    all
}

/// Figures without names (the copy drops activity definitions, so a
/// course named only by its definition has no name there).
fn strip_names(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "name")
                .map(|(k, v)| (k.clone(), strip_names(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_names).collect()),
        other => other.clone(),
    }
}

/// `lrs privacy anonymised-copy` while the server runs: through its control
/// socket (the server holds the store's lock), the same copy: it opens with
/// `lrs serve`, the month's figures equal the original's, no name or
/// address is in it, and the server's audit trail records it.
#[tokio::test]
async fn the_anonymised_copy_is_made_through_the_running_server() {
    let (mut server, credential) = privacy_server();
    server.launch().unwrap();
    let xapi = server
        .client()
        .with_credential(&credential.0, &credential.1);
    let people = [
        ("Onno Online", "onno.online@example.nl"),
        ("Petra Pseudoniem", "petra.pseudoniem@example.nl"),
    ];
    let mut batch = Vec::new();
    for (name, email) in people {
        let actor = json!({"name": name, "mbox": format!("mailto:{email}")});
        batch.push(statement(&actor, "launched", "een antwoord"));
        batch.push(statement(
            &actor,
            "completed",
            &format!("{name} schreef dit"),
        ));
    }
    let reply = xapi.post_statements(&json!(batch)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let month = lrs_blackbox_tests::activity::CalMonth::current().to_string();
    let officer = api(&server, &credential);
    let original = officer
        .ok("/api/figures/monthly", &[("month", &month)])
        .await;
    assert_eq!(original["figures"]["active_users"], 2, "{original}");

    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("copy");
    let out = server
        .lrs_here(&["privacy", "anonymised-copy", "--to", copy.to_str().unwrap()])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("through the running server"), "{stderr}");
    // The original still serves.
    assert_eq!(
        officer
            .ok("/api/figures/monthly", &[("month", &month)])
            .await["figures"],
        original["figures"]
    );

    let mut copied = TestServer::prepare(binary()).unwrap();
    copied.data_dir = copy.clone();
    copied.master_key_hex = std::fs::read_to_string(copy.join("master.key"))
        .unwrap()
        .trim()
        .to_owned();
    let tester = copied.credential_with_role("Tester", "kb", Some("privacy-officer"));
    copied.launch().unwrap();
    let again = api(&copied, &tester)
        .ok("/api/figures/monthly", &[("month", &month)])
        .await;
    assert_eq!(again["figures"], original["figures"], "{again}");
    copied.stop().unwrap();
    let everything = files_text(&copy);
    for (name, email) in people {
        for needle in [name, email, "schreef dit"] {
            assert!(!contains(&everything, needle), "{needle} in the copy");
        }
    }
    server.stop().unwrap();
    let audit = server.lrs(&["audit", "export"]).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("privacy.anonymised-copy") && l.contains("control_socket")),
        "the server's audit trail records it"
    );
}
