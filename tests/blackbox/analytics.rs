//! Analytics (docs/analytics.md): a real server writes its statements as
//! Parquet files while it runs; SQL over them (`POST /api/sql`, `lrs sql`)
//! gives the same counts as the statement API and the monthly figures, each
//! tenant sees only its own share, limits and bad SQL get their 4xx/503,
//! and a re-run or rebuild writes no row twice. DuckDB and pyarrow (from
//! PyPI) read the same files and count the same.

use crate::common::{new_id, Api};
use lrs_blackbox_tests::analytics_support::{python_reader, LRS_FIGURES};
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ISIL: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
const APPID: &str = "https://w3id.org/xapi/kb-nl/extensions/appid";
const LIB_A: &str = "NL-0200000001";
const LIB_B: &str = "NL-0200000002";
const COURSE_TYPE: &str = "https://w3id.org/xapi/cmi5/activitytype/course";
const MODULE_TYPE: &str = "http://adlnet.gov/expapi/activities/module";
const MONTHS: [&str; 2] = ["2026-01", "2026-02"];

fn course(n: usize) -> String {
    format!("https://kb.example/cursus/{n}")
}

/// One learner's statement in a course, in a month (Dutch mid-month: the
/// month is the same in UTC and Amsterdam time).
fn statement(
    app: &str,
    learner: usize,
    verb: &str,
    object: Value,
    course_n: usize,
    month: &str,
    minute: usize,
) -> Value {
    let library = if learner.is_multiple_of(2) {
        LIB_A
    } else {
        LIB_B
    };
    let mut statement = json!({
        "id": new_id(),
        "actor": {"name": format!("Leerling {learner}"), "mbox": format!("mailto:leerling{learner}@example.nl")},
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
        "object": object,
        "timestamp": format!("{month}-{:02}T{:02}:{:02}:00Z", 10 + learner % 10, 8 + minute / 60 % 10, minute % 60),
        "context": {
            "contextActivities": {"grouping": [{"id": course(course_n), "definition": {"type": COURSE_TYPE}}]},
            "extensions": {ISIL: library, APPID: app}
        }
    });
    if verb == "terminated" {
        statement["result"] = json!({"duration": format!("PT{}M", 5 + learner % 7)});
    }
    statement
}

/// A few hundred statements over two months: 24 learners, 3 courses; each
/// enrols, starts a module, progresses, ends it, and some complete.
fn generated(writer: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut minute = 0;
    let app = if writer == 0 { "app-y" } else { "app-x" };
    for month in MONTHS {
        for learner in (writer..24).step_by(2) {
            let c = (learner + month.len()) % 3;
            let object_course = json!({"id": course(c), "definition": {"type": COURSE_TYPE}});
            let module = json!({"id": format!("{}/module{}", course(c), learner % 4), "definition": {"type": MODULE_TYPE}});
            let mut push = |verb: &str, object: &Value| {
                minute += 1;
                all.push(statement(
                    app,
                    learner,
                    verb,
                    object.clone(),
                    c,
                    month,
                    minute,
                ));
            };
            push("registered", &object_course);
            push("launched", &module);
            push("progressed", &module);
            push("terminated", &module);
            if learner % 3 != 0 {
                push("completed", &object_course);
            }
            if learner % 5 == 0 {
                push("experienced", &module);
            }
        }
    }
    all
}

fn voiding(target: &str) -> Value {
    json!({
        "id": new_id(),
        "actor": {"mbox": "mailto:beheer@example.nl"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": target}
    })
}

struct Sql<'a>(&'a Api);

impl Sql<'_> {
    async fn post(&self, body: Value) -> (StatusCode, Value, String) {
        self.0
            .send(reqwest::Method::POST, "/api/sql", &[], Some(body))
            .await
    }

    /// The rows of a query that must succeed.
    async fn rows(&self, sql: &str) -> Vec<Value> {
        let (status, body, text) = self.post(json!({"sql": sql})).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {text}");
        body["rows"].as_array().expect("rows").clone()
    }

    async fn count(&self, sql: &str) -> u64 {
        let rows = self.rows(sql).await;
        rows[0]
            .as_object()
            .and_then(|row| row.values().next())
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{sql}: {rows:?}"))
    }
}

/// Every statement the statement API returns to `client` (following `more`).
async fn api_statement_count(server: &TestServer, key: &str, secret: &str) -> u64 {
    let client = server.client().with_credential(key, secret);
    let mut reply = client.get_statements(&[("limit", "200")]).await.unwrap();
    let mut count = 0;
    loop {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        count += reply.body["statements"].as_array().unwrap().len() as u64;
        match reply.body["more"].as_str().filter(|m| !m.is_empty()) {
            Some(more) => reply = client.get_more(more).await.unwrap(),
            None => return count,
        }
    }
}

fn credential(server: &TestServer, tenant: &str, role: Option<&str>) -> (String, String) {
    server.credential_with_role(tenant, tenant, role)
}

/// Waits until the background export has written `expected` rows.
async fn wait_for_rows(sql: &Sql<'_>, expected: u64) {
    wait_for_count(sql, "SELECT count(*) FROM statements", expected).await;
}

/// Waits until `query` (a count) answers `expected`, never more: a
/// voiding's mark can reach the Parquet files in a later flush of the
/// export than the rows.
async fn wait_for_count(sql: &Sql<'_>, query: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body, _) = sql.post(json!({ "sql": query })).await;
        let n = body["rows"][0]
            .as_object()
            .and_then(|row| row.values().next())
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if status == StatusCode::OK && n == expected {
            return;
        }
        assert!(n <= expected, "{query}: {n} > {expected}");
        assert!(
            Instant::now() < deadline,
            "the export did not catch up: {query}: {n}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The figures of one scope and month from `/api/figures/monthly`.
async fn api_figures(api: &Api, month: &str, scope: Option<(&str, &str)>) -> BTreeMap<String, u64> {
    let mut query = vec![("month", month)];
    query.extend(scope);
    let body = api.ok("/api/figures/monthly", &query).await;
    LRS_FIGURES
        .iter()
        .map(|name| {
            (
                name.to_string(),
                body["figures"][name]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{name}: {body}")),
            )
        })
        .collect()
}

fn row_figures(row: &Value) -> BTreeMap<String, u64> {
    LRS_FIGURES
        .iter()
        .map(|name| {
            (
                name.to_string(),
                row[name]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{name}: {row}")),
            )
        })
        .collect()
}

#[tokio::test]
async fn parquet_files_answer_like_the_lrs() {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    let define = |args: &[&str]| server.lrs(args).unwrap();
    define(&[
        "tenants", "define", "--id", "kb", "--name", "KB", "--kind", "kb",
    ]);
    define(&[
        "tenants", "define", "--id", "bieb-a", "--name", "A", "--kind", "library", "--isil", LIB_A,
    ]);
    define(&[
        "tenants", "define", "--id", "app-x", "--name", "App X", "--kind", "app", "--appid",
        "app-x",
    ]);
    define(&[
        "roles",
        "define",
        "--name",
        "analist",
        "--permission",
        "analytics.sql",
        "--permission",
        "figures.read",
    ]);
    let kb_key = credential(&server, "kb", Some("analist"));
    let lib_key = credential(&server, "bieb-a", Some("analist"));
    let app_key = credential(&server, "app-x", Some("analist"));
    let no_sql_key = credential(&server, "kb", None);
    server.serve_args = [
        "--analytics-interval",
        "0.2",
        "--sql-timeout",
        "3",
        "--sql-memory-mb",
        "64",
    ]
    .map(String::from)
    .to_vec();
    server.launch().unwrap();
    let http = reqwest::Client::new();
    let api = |(key, secret): &(String, String)| Api {
        http: http.clone(),
        base: server.base_url.clone(),
        key: key.clone(),
        secret: secret.clone(),
    };
    let (kb, lib, app, no_sql) = (api(&kb_key), api(&lib_key), api(&app_key), api(&no_sql_key));

    // Two tenants write: the KB (for app-y) and app-x itself.
    let mut posted = 0u64;
    let mut ids: Vec<(usize, String)> = Vec::new();
    for (writer, key) in [(0, &kb_key), (1, &app_key)] {
        let client = server.client().with_credential(&key.0, &key.1);
        for chunk in generated(writer).chunks(50) {
            let reply = client.post_statements(&json!(chunk)).await.unwrap();
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            posted += chunk.len() as u64;
            ids.extend(
                reply
                    .body
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|id| (writer, id.as_str().unwrap().to_owned())),
            );
        }
    }
    // Each writer voids a few of its own.
    let mut voided = 0;
    for (writer, key) in [(0, &kb_key), (1, &app_key)] {
        let client = server.client().with_credential(&key.0, &key.1);
        for (_, id) in ids.iter().filter(|(w, _)| *w == writer).step_by(17) {
            let reply = client.post_statements(&json!([voiding(id)])).await.unwrap();
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            posted += 1;
            voided += 1;
        }
    }
    assert!(
        posted > 200 && voided >= 10,
        "{posted} statements, {voided} voided"
    );
    let kb_sql = Sql(&kb);
    wait_for_rows(&kb_sql, posted).await;
    wait_for_count(
        &kb_sql,
        "SELECT count(*) FROM statements WHERE voided",
        voided,
    )
    .await;

    // The same counts as the statement API: it leaves voided statements out.
    let api_count = api_statement_count(&server, &kb_key.0, &kb_key.1).await;
    assert_eq!(api_count, posted - voided);
    assert_eq!(
        kb_sql
            .count("SELECT count(*) FROM statements WHERE NOT voided")
            .await,
        api_count
    );
    assert_eq!(
        kb_sql
            .count("SELECT count(*) FROM statements WHERE voided")
            .await,
        voided
    );
    assert_eq!(
        kb_sql
            .count("SELECT count(DISTINCT tenant) FROM statements")
            .await,
        2
    );
    assert_eq!(
        kb_sql
            .count("SELECT count(DISTINCT month) FROM statements WHERE NOT is_voiding")
            .await,
        2
    );
    // No personal data: people are tokens only.
    let people = kb_sql
        .rows("SELECT DISTINCT actor_token FROM statements")
        .await;
    assert!(people.iter().all(|r| r["actor_token"]
        .as_str()
        .is_none_or(|t| t.len() == 32 && !t.contains('@'))));

    // The monthly figures of every scope equal /api/figures/monthly.
    let view = kb_sql
        .rows("SELECT * FROM monthly_figures ORDER BY month, scope, scope_id")
        .await;
    let mut compared = 0;
    for month in MONTHS {
        for scope in [
            None,
            Some(("library", LIB_A)),
            Some(("library", LIB_B)),
            Some(("app", "app-x")),
            Some(("app", "app-y")),
        ] {
            let expected = api_figures(&kb, month, scope).await;
            let (kind, id) = scope.map_or(("total", Value::Null), |(k, v)| (k, json!(v)));
            let row = view
                .iter()
                .find(|r| {
                    r["month"] == month
                        && r["scope"] == kind
                        && r.get("scope_id").cloned().unwrap_or(Value::Null) == id
                })
                .unwrap_or_else(|| {
                    panic!("no monthly_figures row for {month} {scope:?}: {view:?}")
                });
            assert_eq!(row_figures(row), expected, "{month} {scope:?}");
            assert!(expected["hits"] > 0);
            compared += 1;
        }
        // The top started courses too.
        let top = kb.ok("/api/figures/monthly", &[("month", month)]).await["top_started"].clone();
        let sql_top = kb_sql
            .rows(&format!("SELECT course, learners_started AS count FROM top_courses WHERE month = '{month}' AND learners_started > 0 ORDER BY learners_started DESC, course LIMIT 10"))
            .await;
        let pairs = |rows: &[Value]| {
            rows.iter()
                .map(|r| (r["course"].clone(), r["count"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&sql_top), pairs(top.as_array().unwrap()), "{month}");
    }
    assert_eq!(compared, 10);
    for view in ["completion_funnel", "time_spent"] {
        assert!(
            !kb_sql
                .rows(&format!("SELECT * FROM {view}"))
                .await
                .is_empty(),
            "{view}"
        );
    }

    // Each tenant's session sees only its own share.
    let lib_sql = Sql(&lib);
    let lib_rows = lib_sql.count("SELECT count(*) FROM statements").await;
    assert_eq!(
        lib_rows,
        kb_sql
            .count(&format!(
                "SELECT count(*) FROM statements WHERE library = '{LIB_A}'"
            ))
            .await
    );
    assert!(lib_rows > 0);
    assert_eq!(
        lib_sql
            .count(&format!(
                "SELECT count(*) FROM statements WHERE library IS DISTINCT FROM '{LIB_A}'"
            ))
            .await,
        0
    );
    let lib_figures = lib_sql
        .rows("SELECT * FROM monthly_figures WHERE scope = 'total' AND month = '2026-01'")
        .await;
    assert_eq!(
        row_figures(&lib_figures[0]),
        api_figures(&lib, "2026-01", None).await
    );
    let app_sql = Sql(&app);
    assert_eq!(
        app_sql.count("SELECT count(*) FROM statements").await,
        kb_sql
            .count("SELECT count(*) FROM statements WHERE tenant = 'app-x'")
            .await
    );
    assert_eq!(
        app_sql
            .count("SELECT count(*) FROM statements WHERE tenant <> 'app-x' OR app <> 'app-x'")
            .await,
        0
    );
    // The internal tables are not there, nor a way to read other files.
    for sql in [
        "SELECT count(*) FROM __facts",
        "SELECT count(*) FROM __voids",
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/'",
        "CREATE VIEW v AS SELECT 1",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT * FROM information_schema.tables",
        "SELEKT 1",
        "SELECT no_such_column FROM statements",
    ] {
        let (status, body, text) = app_sql.post(json!({"sql": sql})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}: {text}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{sql}: {text}"
        );
    }
    let (status, _, text) = Sql(&no_sql).post(json!({"sql": "SELECT 1"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no analytics.sql: {text}");

    // Formats: CSV, Arrow IPC, Parquet, by `format` or Accept.
    let formats = |accept: &'static str| {
        http.post(format!("{}/api/sql", server.base_url))
            .basic_auth(&kb_key.0, Some(&kb_key.1))
            .header("accept", accept)
            .header("content-type", "text/plain")
            .body("SELECT month, count(*) AS n FROM statements GROUP BY month ORDER BY month")
    };
    let csv = formats("text/csv").send().await.unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("month,n\n2026-01,"), "{csv}");
    for (accept, magic) in [
        (
            "application/vnd.apache.arrow.stream",
            &[0xff, 0xff, 0xff, 0xff][..],
        ),
        ("application/vnd.apache.parquet", b"PAR1"),
    ] {
        let reply = formats(accept).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{accept}");
        assert_eq!(reply.headers()["content-type"], accept);
        let bytes = reply.bytes().await.unwrap();
        assert!(bytes.starts_with(magic), "{accept}");
    }
    let (status, body, _) = kb_sql
        .post(json!({"sql": "SELECT 1 AS one", "format": "csv"}))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, Value::Null),
        "csv is not JSON"
    );
    let (status, body, text) = kb_sql
        .post(json!({"sql": "SELECT 1", "format": "xlsx"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(body["error"]["path"], "?format");

    // A query past its time limit (3 s here): 503 with a body saying so;
    // past its memory limit (64 MiB here): 422.
    let started = Instant::now();
    let (status, body, text) = kb_sql
        .post(json!({"sql": "SELECT sum(value) FROM generate_series(1, 100000000000) WHERE value % 7 = 3"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(body["error"]["code"], "query_timeout", "{text}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let (status, body, text) = kb_sql
        .post(json!({"sql": "SELECT value % 20000000 AS k, count(*) FROM generate_series(1, 40000000) GROUP BY k"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert_eq!(body["error"]["code"], "query_memory", "{text}");

    // DuckDB and pyarrow read the same files and count the same.
    let analytics_dir = server.data_dir.join("analytics");
    if let Some(python) = python_reader() {
        let counts = python.counts(&analytics_dir);
        assert_eq!(counts["pyarrow_rows"], posted, "{counts}");
        assert_eq!(counts["pyarrow_not_voided"], api_count, "{counts}");
        assert_eq!(counts["duckdb_not_voided"], api_count, "{counts}");
        for month in MONTHS {
            let duck = &counts["duckdb_figures"][month];
            let expected = api_figures(&kb, month, None).await;
            assert_eq!(row_figures(duck), expected, "DuckDB {month}: {counts}");
        }
    }

    // A re-run and a rebuild (server stopped) write no row twice and give
    // the same rows.
    let all_rows = "SELECT * FROM statements ORDER BY position";
    let before = kb_sql.rows(all_rows).await;
    server.stop().unwrap();
    let lrs_sql = |query: &str| -> Vec<Value> {
        let out = server.lrs(&["sql", query, "--format", "json"]).unwrap();
        let body: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        body["rows"].as_array().unwrap().clone()
    };
    assert_eq!(lrs_sql(all_rows), before, "lrs sql reads the same files");
    let out = server.lrs(&["analytics", "export"]).unwrap();
    assert!(out.starts_with("0 statements"), "{out}");
    let files_before = parquet_files(&analytics_dir);
    let out = server.lrs(&["analytics", "rebuild"]).unwrap();
    assert!(out.starts_with(&format!("{posted} statements")), "{out}");
    assert_eq!(lrs_sql(all_rows), before, "a rebuild gives the same rows");
    let duplicates = lrs_sql("SELECT count(*) - count(DISTINCT position) AS d FROM statements");
    assert_eq!(duplicates[0]["d"], 0);
    assert!(!parquet_files(&analytics_dir).is_empty());
    assert!(!files_before.is_empty());
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
