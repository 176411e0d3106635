//! Erasure while the server keeps serving (issue 17): three people, known by
//! an mbox, an account and an mbox_sha1sum, are erased through the admin API
//! while eight writers keep posting. No write fails and none is lost; then
//! no route, no staff page and no file of the data directory (the Parquet
//! files read back through SQL, the rest byte by byte) holds their name,
//! mailbox, account name or sha1sum, their analytics rows have no learner
//! any more, and the monthly figures of the month they learned in are what
//! they were.

use crate::common::{files_under, new_id, Api};
use crate::web::{add_staff, Client};
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISIL_EXTENSION: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
const LIB: &str = "NL-0300000007";
const COURSE: &str = "https://kb.example/cursus/online-wissen";
const COURSE_TYPE: &str = "https://w3id.org/xapi/cmi5/activitytype/course";
const WRITERS: usize = 8;

/// The three people to erase and what must never be found of them.
struct Doomed {
    agents: Vec<Value>,
    needles: Vec<String>,
}

fn doomed() -> Doomed {
    let sha1sum = {
        use sha1::Digest;
        sha1::Sha1::digest(b"mailto:cor.verborgen@example.nl")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    Doomed {
        agents: vec![
            json!({"objectType": "Agent", "name": "Wilma Wegwezen", "mbox": "mailto:wilma.wegwezen@example.nl"}),
            json!({"objectType": "Agent", "name": "Bas Accountman",
                   "account": {"homePage": "https://bieb.example.nl/login", "name": "bas-account-4711"}}),
            json!({"objectType": "Agent", "name": "Cor Verborgen", "mbox_sha1sum": sha1sum}),
        ],
        needles: vec![
            "Wilma Wegwezen".into(),
            "wilma.wegwezen@example.nl".into(),
            "Bas Accountman".into(),
            "bas-account-4711".into(),
            "Cor Verborgen".into(),
            sha1sum,
        ],
    }
}

/// The identifying part of an agent (what the API and the vault key on).
fn ifi(agent: &Value) -> Value {
    let mut ifi = agent.clone();
    ifi.as_object_mut().unwrap().remove("name");
    ifi.as_object_mut().unwrap().remove("objectType");
    ifi
}

fn statement(actor: &Value, verb: &str, timestamp: &str) -> Value {
    json!({
        "id": new_id(),
        "actor": actor,
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
        "object": {"objectType": "Activity", "id": COURSE,
                   "definition": {"type": COURSE_TYPE, "name": {"nl": "Online wissen"}}},
        "result": {"response": "vrije tekst van de leerling", "completion": verb == "completed"},
        "context": {"extensions": {ISIL_EXTENSION: LIB}},
        "timestamp": timestamp,
    })
}

fn found_in(text: &str, needles: &[String]) -> Vec<String> {
    needles
        .iter()
        .filter(|n| text.contains(n.as_str()))
        .cloned()
        .collect()
}

#[tokio::test]
async fn erasure_online_while_eight_writers_post_leaves_nothing_and_keeps_the_figures() {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    for args in [
        vec![
            "tenants", "define", "--id", "kb", "--name", "KB", "--kind", "kb",
        ],
        vec![
            "tenants", "define", "--id", "bieb", "--name", "Bieb", "--kind", "library", "--isil",
            LIB,
        ],
        vec![
            "roles",
            "define",
            "--name",
            "fg",
            "--permission",
            "privacy.erase",
            "--permission",
            "privacy.access",
            "--permission",
            "figures.read",
            "--permission",
            "progress.read",
            "--permission",
            "analytics.sql",
        ],
        vec![
            "roles",
            "define",
            "--name",
            "fg-pagina",
            "--permission",
            "privacy.reports",
            "--permission",
            "figures.read",
        ],
        vec![
            "roles",
            "define",
            "--name",
            "inzicht",
            "--permission",
            "figures.read",
            "--permission",
            "progress.read",
        ],
    ] {
        server.lrs(&args).unwrap();
    }
    let officer_credential = server.credential_with_role("fg", "kb", Some("fg"));
    let writer_credential = server.credential_with_role("schrijver", "kb", None);
    let mut kb_staff = add_staff(&server, "kb", "kb.kijker", "Kees Kijker", "inzicht");
    let mut library_staff = add_staff(&server, "bieb", "bieb.kijker", "Bea Kijker", "inzicht");
    let mut officer_staff = add_staff(&server, "kb", "fg.pagina", "Fleur Gegevens", "fg-pagina");
    for (name, value) in [
        ("LRS_RATE_PER_ADDRESS", "0"),
        ("LRS_RATE_PER_CREDENTIAL", "0"),
        ("LRS_ANALYTICS_INTERVAL", "0.2"),
    ] {
        server.env.push((name.into(), value.into()));
    }
    server.launch().unwrap();
    let officer = Api {
        http: reqwest::Client::new(),
        base: server.base_url.clone(),
        key: officer_credential.0.clone(),
        secret: officer_credential.1.clone(),
    };
    let writer = server
        .client()
        .with_credential(&writer_credential.0, &writer_credential.1);

    // Last month: the three people and five who stay learn the course.
    // Noon: the same month in UTC and in Dutch time, whatever the hour now.
    let last_month = (chrono::Utc::now() - chrono::Duration::days(35))
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let month = last_month.format("%Y-%m").to_string();
    let at = last_month.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let doomed = doomed();
    let mut batch = Vec::new();
    for actor in &doomed.agents {
        batch.push(statement(actor, "launched", &at));
        batch.push(statement(actor, "completed", &at));
    }
    for i in 0..5 {
        let actor = json!({"name": format!("Blijver {i}"), "mbox": format!("mailto:blijver{i}@example.nl")});
        batch.push(statement(&actor, "launched", &at));
    }
    let reply = writer.post_statements(&json!(batch)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let wilma = ifi(&doomed.agents[0]);
    for (path, query) in [
        (
            "/activities/state",
            vec![
                ("activityId", COURSE.to_owned()),
                ("agent", wilma.to_string()),
                ("stateId", "bladwijzer".to_owned()),
            ],
        ),
        (
            "/agents/profile",
            vec![
                ("agent", wilma.to_string()),
                ("profileId", "voorkeuren".to_owned()),
            ],
        ),
    ] {
        let reply = lrs_blackbox_tests::Xapi::send(
            writer
                .request(reqwest::Method::PUT, path)
                .header("If-None-Match", "*")
                .query(&query)
                .json(&json!({"naam": "Wilma Wegwezen", "mail": "wilma.wegwezen@example.nl"})),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    }

    // Their pseudonyms (for the analytics rows), and the figures before.
    let mut tokens = Vec::new();
    for agent in &doomed.agents {
        let (status, access, text) = officer
            .send(
                reqwest::Method::POST,
                "/admin/privacy/access",
                &[],
                Some(json!({"agent": ifi(agent)})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        tokens.push(access["pseudonym"].as_str().unwrap().to_owned());
    }
    let figures_before = officer
        .ok("/api/figures/monthly", &[("month", &month)])
        .await;
    let library_before = officer
        .ok(
            "/api/figures/monthly",
            &[("month", &month), ("library", LIB)],
        )
        .await;
    assert!(
        figures_before["figures"]["hits"].as_u64().unwrap() >= 11,
        "{figures_before}"
    );
    // The analytics files hold their rows before the erasure.
    let in_parquet =
        |token: &str| format!("SELECT count(*) AS n FROM statements WHERE actor_token = '{token}'");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body, _) = officer
            .send(
                reqwest::Method::POST,
                "/api/sql",
                &[],
                Some(json!({"sql": in_parquet(&tokens[0])})),
            )
            .await;
        if status == StatusCode::OK && body["rows"][0]["n"].as_u64() == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the analytics files never got her rows: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Eight writers post (this month) while the three are erased.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, stop, failures) = (writer.clone(), stop.clone(), failures.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) || n < 5 {
                let actor = json!({"mbox": format!("mailto:schrijver{w}-{n}@example.nl")});
                let s = statement(&actor, "launched", &chrono::Utc::now().to_rfc3339());
                let id = s["id"].as_str().unwrap().to_owned();
                match client.post_statements(&json!([s])).await {
                    Ok(reply) if reply.status == StatusCode::OK => acknowledged.push(id),
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                n += 1;
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, agent) in doomed.agents.iter().enumerate() {
        let (status, report, text) = officer
            .send(
                reqwest::Method::POST,
                "/admin/privacy/erasures",
                &[],
                Some(json!({"agent": ifi(agent), "request_id": format!("AVG-ONLINE-{i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(report["people"], 1, "{text}");
        assert_eq!(report["check"]["all_unreadable"], true, "{text}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0, "no write failed");
    assert!(acknowledged.len() >= WRITERS * 5);
    for id in &acknowledged {
        let reply = writer.get_statements(&[("statementId", id)]).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{id} was acknowledged: {}",
            reply.text
        );
    }

    // The figures of their month are what they were.
    assert_eq!(
        officer
            .ok("/api/figures/monthly", &[("month", &month)])
            .await,
        figures_before
    );
    assert_eq!(
        officer
            .ok(
                "/api/figures/monthly",
                &[("month", &month), ("library", LIB)]
            )
            .await,
        library_before
    );

    // No route shows anything of them.
    let mut answers = Vec::new();
    for query in [
        vec![("limit", "0".to_owned())],
        vec![
            ("activity", COURSE.to_owned()),
            ("related_activities", "true".to_owned()),
        ],
        vec![
            ("agent", wilma.to_string()),
            ("related_agents", "true".to_owned()),
        ],
    ] {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = writer.get_statements(&query).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        answers.push(reply.text);
    }
    for agent in &doomed.agents {
        let reply = lrs_blackbox_tests::Xapi::send(
            writer
                .request(reqwest::Method::GET, "/agents")
                .query(&[("agent", ifi(agent).to_string())]),
        )
        .await
        .unwrap();
        // A Person object echoes the identifier asked about; the names the
        // statements gave are what must be gone.
        let names: Vec<String> = doomed
            .agents
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect();
        assert!(found_in(&reply.text, &names).is_empty(), "{}", reply.text);
        let (_, _, text) = officer
            .send(
                reqwest::Method::POST,
                "/admin/privacy/access",
                &[],
                Some(json!({"agent": ifi(agent)})),
            )
            .await;
        answers.push(text);
    }
    for path in ["/activities/state", "/agents/profile"] {
        let mut query = vec![("agent", wilma.to_string())];
        if path == "/activities/state" {
            query.push(("activityId", COURSE.to_owned()));
        }
        let reply = lrs_blackbox_tests::Xapi::send(
            writer.request(reqwest::Method::GET, path).query(&query),
        )
        .await
        .unwrap();
        answers.push(reply.text);
    }
    answers.push(
        officer
            .ok("/api/progress/learners", &[("library", LIB)])
            .await
            .to_string(),
    );
    answers.push(
        officer
            .ok("/api/figures/breakdown", &[("month", &month)])
            .await
            .to_string(),
    );
    // The staff pages, the KB's and the library's.
    for (who, pages) in [
        (
            &mut kb_staff,
            vec![
                format!("/dashboard?month={month}"),
                format!("/learners?library={LIB}"),
            ],
        ),
        (
            &mut library_staff,
            vec![format!("/dashboard?month={month}"), "/learners".to_owned()],
        ),
    ] {
        let mut browser = Client::new(&server.base_url);
        browser.login(who).await;
        for page in pages {
            let visit = browser.get(&page).await;
            assert_eq!(visit.status, StatusCode::OK, "{page}: {}", visit.body);
            answers.push(visit.body);
        }
    }
    // The privacy officer's page: the month's three reports, Dutch first,
    // every one all unreadable; the month as CSV; others may not see it.
    let this_month = chrono::Utc::now().format("%Y-%m").to_string();
    let mut browser = Client::new(&server.base_url);
    browser.login(&mut officer_staff).await;
    let page = browser.get(&format!("/privacy?month={this_month}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Anonimiseringsrapporten"),
        "{}",
        page.body
    );
    for i in 0..3 {
        assert!(
            page.body.contains(&format!("AVG-ONLINE-{i}")),
            "{}",
            page.body
        );
    }
    assert_eq!(
        page.body.matches("alles onleesbaar").count(),
        3,
        "{}",
        page.body
    );
    answers.push(page.body);
    let english = browser
        .get(&format!("/privacy?month={this_month}&lang=en"))
        .await;
    assert!(english.body.contains("Anonymisation reports"));
    answers.push(english.body);
    let csv = browser
        .get(&format!("/privacy/download?month={this_month}&format=csv"))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.body.lines().count(), 1 + 3, "{}", csv.body);
    answers.push(csv.body);
    let mut other = Client::new(&server.base_url);
    other.login(&mut kb_staff).await;
    assert_eq!(other.get("/privacy").await.status, StatusCode::FORBIDDEN);
    for answer in &answers {
        let found = found_in(answer, &doomed.needles);
        assert!(found.is_empty(), "{found:?} in an answer: {answer}");
    }

    // The analytics files: their rows are rewritten without them (read back
    // through SQL over the Parquet files), the other rows are still there.
    let deadline = Instant::now() + Duration::from_secs(60);
    for token in &tokens {
        loop {
            let (status, body, text) = officer
                .send(
                    reqwest::Method::POST,
                    "/api/sql",
                    &[],
                    Some(json!({"sql": in_parquet(token)})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{text}");
            if body["rows"][0]["n"].as_u64() == Some(0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the analytics files still hold {token}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (status, every_row, text) = officer
        .send(
            reqwest::Method::POST,
            "/api/sql",
            &[],
            Some(json!({"sql": "SELECT * FROM statements", "format": "json"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(every_row["rows"].as_array().unwrap().len() >= batch.len() + acknowledged.len());
    assert!(found_in(&text, &doomed.needles).is_empty());
    for token in &tokens {
        assert!(
            !text.contains(token.as_str()),
            "{token} is still in the analytics rows"
        );
    }

    // No file of the data directory holds anything of them (the Parquet
    // files were read back above; they hold no names by design, and are
    // scanned here too).
    server.stop().unwrap();
    let mut files = Vec::new();
    files_under(&server.data_dir, &mut files);
    assert!(files.len() > 5);
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for needle in &doomed.needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} in {}",
                file.display()
            );
        }
    }
    let verified = server.lrs(&["verify"]).unwrap();
    assert!(verified.contains("equals the stored one"), "{verified}");
    assert!(
        verified.contains("3 anonymisation reports are the log entries"),
        "{verified}"
    );
}
