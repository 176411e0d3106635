//! Analytics isolation (issue 16, docs/analytics.md "Isolation"): two
//! libraries and two apps try to read each other's rows through
//! `POST /api/sql` (failing casts and functions over every column, division
//! by zero, UNION, CTEs, joins, information_schema, internal table names,
//! table functions and file paths, DDL, EXPLAIN in every form) in every
//! answer format. Distinctive values are planted in every tenant's rows;
//! none of another tenant's ever appears in any status, header or body,
//! nor does the server's data directory. Oracle queries that fail if and
//! only if a row outside the caller's share is evaluated answer 200 for the
//! caller and 400 for the KB (which holds that row). The KB still sees
//! everything; each library and app sees all of its own rows, voiding
//! included.

use crate::common::new_id;
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISIL_EXT: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
const APPID_EXT: &str = "https://w3id.org/xapi/kb-nl/extensions/appid";
const FORMATS: [&str; 4] = ["json", "csv", "arrow", "parquet"];
/// Statements each writer sends (besides its voiding statements).
const PER_GROUP: usize = 4;

fn random_hex(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap())
        .collect()
}

fn random_digits(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from_digit(rng.gen_range(0..10), 10).unwrap())
        .collect()
}

/// The tenants of the test, with ids and codes generated for this run so
/// that each is a distinctive string.
struct World {
    kb: String,
    lib_a: String,
    lib_b: String,
    app_a: String,
    app_b: String,
    isil_a: String,
    isil_b: String,
    /// A library that reads nothing here: the KB writes for it.
    isil_c: String,
    appid_a: String,
    appid_b: String,
}

impl World {
    fn new() -> Self {
        let suffix = random_hex(6);
        Self {
            kb: format!("kb-{suffix}"),
            lib_a: format!("bieb-a-{suffix}"),
            lib_b: format!("bieb-b-{suffix}"),
            app_a: format!("app-a-{suffix}"),
            app_b: format!("app-b-{suffix}"),
            isil_a: format!("NL-7{}", random_digits(9)),
            isil_b: format!("NL-8{}", random_digits(9)),
            isil_c: format!("NL-9{}", random_digits(9)),
            appid_a: format!("appid-a-{}", random_hex(8)),
            appid_b: format!("appid-b-{}", random_hex(8)),
        }
    }
}

/// One group of rows: one writer, one library (or none), with its own
/// distinctive values.
struct Group {
    name: &'static str,
    writer: String,
    library: Option<String>,
    app: Option<String>,
    month: &'static str,
    tag: String,
    ids: Vec<String>,
    registrations: Vec<String>,
    /// A statement of another group (of the same writer) this group voids.
    voids: Option<String>,
    tokens: BTreeSet<String>,
}

impl Group {
    fn new(
        name: &'static str,
        writer: &str,
        library: Option<&str>,
        app: Option<&str>,
        month: &'static str,
    ) -> Self {
        Self {
            name,
            writer: writer.to_owned(),
            library: library.map(str::to_owned),
            app: app.map(str::to_owned),
            month,
            tag: format!("zq{}", random_hex(12)),
            ids: Vec::new(),
            registrations: Vec::new(),
            voids: None,
            tokens: BTreeSet::new(),
        }
    }

    fn statements(&mut self) -> Vec<Value> {
        let tag = &self.tag;
        let mut extensions = serde_json::Map::new();
        if let Some(isil) = &self.library {
            extensions.insert(ISIL_EXT.into(), json!(isil));
        }
        if let Some(app) = &self.app {
            extensions.insert(APPID_EXT.into(), json!(app));
        }
        let mut all = Vec::new();
        for n in 0..PER_GROUP {
            let id = new_id();
            let registration = new_id();
            all.push(json!({
                "id": id,
                "actor": {"mbox": format!("mailto:{tag}-{n}@example.nl")},
                "verb": {"id": format!("https://secret.example/verbs/{tag}")},
                "object": {
                    "id": format!("https://secret.example/act/{tag}/{n}"),
                    "definition": {"type": format!("https://secret.example/type/{tag}")}
                },
                "timestamp": format!("{}-{:02}T12:00:00Z", self.month, 10 + n),
                "result": {"success": true, "score": {"raw": 40 + n}, "duration": format!("PT{}S", 100 + n)},
                "context": {
                    "registration": registration,
                    "platform": format!("platform-{tag}"),
                    "contextActivities": {
                        "parent": [{"id": format!("https://secret.example/parent/{tag}")}],
                        "grouping": [{"id": format!("https://secret.example/grouping/{tag}")}]
                    },
                    "extensions": extensions.clone()
                }
            }));
            self.ids.push(id);
            self.registrations.push(registration);
        }
        if let Some(target) = &self.voids {
            let id = new_id();
            all.push(json!({
                "id": id,
                "actor": {"mbox": format!("mailto:{tag}-beheer@example.nl")},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                "object": {"objectType": "StatementRef", "id": target},
                "timestamp": format!("{}-20T12:00:00Z", self.month)
            }));
            self.ids.push(id);
        }
        all
    }

    /// Every distinctive value in this group's rows.
    fn values(&self) -> BTreeSet<String> {
        let mut values: BTreeSet<String> = [self.tag.clone(), self.writer.clone()]
            .into_iter()
            .chain(self.library.clone())
            .chain(self.app.clone())
            .chain(self.ids.iter().cloned())
            .chain(self.registrations.iter().cloned())
            .chain(self.tokens.iter().cloned())
            .collect();
        if let Some(voided) = &self.voids {
            values.insert(voided.clone());
        }
        values
    }
}

/// A caller of `/api/sql`.
#[derive(Clone)]
struct Reader {
    name: &'static str,
    key: String,
    secret: String,
    /// The groups whose rows are this caller's share.
    share: BTreeSet<&'static str>,
    is_kb: bool,
}

/// One answer, whole: status, headers and body as text (lossy for the
/// binary formats: a planted string is stored as its bytes in Arrow IPC and
/// uncompressed Parquet, which the positive checks below confirm).
struct Answer {
    status: StatusCode,
    text: String,
    body: Vec<u8>,
}

async fn ask(
    http: &reqwest::Client,
    base: &str,
    reader: &Reader,
    sql: &str,
    format: &str,
) -> Answer {
    let response = http
        .post(format!("{base}/api/sql"))
        .basic_auth(&reader.key, Some(&reader.secret))
        .json(&json!({"sql": sql, "format": format}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {sql}: {e}", reader.name));
    let status = response.status();
    let mut text = format!("{status}\n");
    for (name, value) in response.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let body = response.bytes().await.expect("body").to_vec();
    text.push_str(&String::from_utf8_lossy(&body));
    Answer { status, text, body }
}

/// Many queries of one reader, four at a time; the answers in any order.
async fn ask_all(
    http: &reqwest::Client,
    base: &str,
    reader: &Reader,
    queries: Vec<(String, &'static str)>,
) -> Vec<(String, &'static str, Answer)> {
    let reader = Arc::new(reader.clone());
    let mut pending = queries;
    pending.reverse();
    let mut tasks = tokio::task::JoinSet::new();
    let mut answers = Vec::new();
    loop {
        while tasks.len() < 4 {
            let Some((sql, format)) = pending.pop() else {
                break;
            };
            let (http, base, reader) = (http.clone(), base.to_owned(), reader.clone());
            tasks.spawn(async move {
                let answer = ask(&http, &base, &reader, &sql, format).await;
                (sql, format, answer)
            });
        }
        match tasks.join_next().await {
            Some(done) => answers.push(done.expect("a request task")),
            None => return answers,
        }
    }
}

fn json_rows(answer: &Answer) -> Vec<Value> {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    body["rows"].as_array().cloned().unwrap_or_default()
}

/// What an attempt must answer, besides holding nothing of another tenant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// 200: an ordinary query over the caller's share.
    Ok,
    /// 4xx: no such table or function, not allowed.
    Refused,
    /// 200 or 4xx (it fails on the caller's own rows, or not).
    Either,
    /// EXPLAIN: refused (`sql.explain`) but for the KB.
    Explain,
}

/// The attempts a caller makes at rows outside its share, over every column
/// of the `statements` view and with every other way in we could think of.
fn attacks(columns: &[String], analytics_dir: &Path) -> Vec<(String, Expect)> {
    let dir = analytics_dir.display();
    let mut all: Vec<(String, Expect)> = Vec::new();
    for column in columns {
        for sql in [
            format!("SELECT CAST(\"{column}\" AS INT) AS x FROM statements"),
            format!("SELECT count(*) AS n FROM statements WHERE CAST(\"{column}\" AS INT) = 1"),
            format!("SELECT arrow_cast(\"{column}\", 'Int64') AS x FROM statements"),
            format!(
                "SELECT 1000 / (length(CAST(\"{column}\" AS VARCHAR)) - length(CAST(\"{column}\" AS VARCHAR))) AS x FROM statements"
            ),
        ] {
            all.push((sql, Expect::Either));
        }
    }
    let either = [
        // Functions that fail on a value.
        "SELECT regexp_match(statement_id, '(') AS x FROM statements".to_owned(),
        "SELECT regexp_replace(activity_id, '[', 'x') AS x FROM statements".to_owned(),
        "SELECT to_timestamp(registration) AS x FROM statements".to_owned(),
        "SELECT to_date(actor_token) AS x FROM statements".to_owned(),
        "SELECT CAST(tenant AS DATE) AS x FROM statements".to_owned(),
        "SELECT CAST(library AS DOUBLE) AS x FROM statements".to_owned(),
        "SELECT CAST(context_parent_ids AS INT[]) AS x FROM statements".to_owned(),
        "SELECT CAST(unnest(context_grouping_ids) AS INT) AS x FROM statements".to_owned(),
        "SELECT make_date(CAST(position AS INT), 99, 99) AS x FROM statements".to_owned(),
        "SELECT arrow_cast(month, 'Date32') AS x FROM statements".to_owned(),
        // UNION, CTEs, joins, subqueries, the views.
        "SELECT CAST(statement_id AS INT) AS x FROM statements UNION SELECT 1".to_owned(),
        "WITH x AS (SELECT * FROM statements) SELECT CAST(actor_token AS BIGINT) AS y FROM x".to_owned(),
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT s.statement_id FROM statements s, r".to_owned(),
        "SELECT a.statement_id FROM statements a JOIN statements b ON a.tenant = b.tenant WHERE CAST(b.registration AS INT) > 0".to_owned(),
        "SELECT * FROM statements WHERE statement_id IN (SELECT CAST(CAST(verb AS INT) AS VARCHAR) FROM statements)".to_owned(),
        "SELECT * FROM statements WHERE voided OR CAST(statement_id AS INT) = 0".to_owned(),
        "SELECT count(*) AS n FROM figure_facts WHERE CAST(library AS INT) = 1".to_owned(),
        "DESCRIBE statements".to_owned(),
    ];
    all.extend(either.into_iter().map(|sql| (sql, Expect::Either)));
    let ok = [
        "SELECT * FROM statements",
        "SELECT * FROM statements ORDER BY position DESC LIMIT 3",
        "SELECT statement_id FROM statements UNION ALL SELECT registration FROM statements",
        "SELECT * FROM figure_facts",
        "SELECT * FROM monthly_figures",
        "SELECT * FROM top_courses",
        "SELECT * FROM completion_funnel",
        "SELECT * FROM time_spent",
        "SELECT tenant, library, app, count(*) AS n FROM statements GROUP BY ALL",
        "SELECT * FROM generate_series(1, 3)",
        "SELECT * FROM datafusion.public.statements",
    ];
    all.extend(ok.into_iter().map(|sql| (sql.to_owned(), Expect::Ok)));
    let refused = [
        // The catalog and the internal tables.
        "SELECT * FROM information_schema.tables".to_owned(),
        "SELECT * FROM information_schema.columns".to_owned(),
        "SHOW TABLES".to_owned(),
        "SHOW COLUMNS FROM statements".to_owned(),
        "SHOW ALL".to_owned(),
        "SELECT * FROM __facts".to_owned(),
        "SELECT * FROM __voids".to_owned(),
        "SELECT * FROM __voided".to_owned(),
        "SELECT * FROM __voids_all".to_owned(),
        "SELECT * FROM datafusion.public.__facts".to_owned(),
        // Table functions, file paths, DDL.
        format!("SELECT * FROM read_parquet('{dir}/statements/*/*/*.parquet')"),
        format!("SELECT * FROM parquet_scan('{dir}/statements/')"),
        format!("SELECT * FROM '{dir}/statements/'"),
        format!("SELECT * FROM 'file://{dir}/voids/'"),
        format!("SELECT * FROM \"{dir}/statements/\""),
        format!("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{dir}/statements/'"),
        "COPY statements TO '/tmp/lrs-isolation.parquet'".to_owned(),
        "SET datafusion.execution.target_partitions = 1".to_owned(),
    ];
    all.extend(refused.into_iter().map(|sql| (sql, Expect::Refused)));
    for explain in [
        "EXPLAIN",
        "EXPLAIN VERBOSE",
        "EXPLAIN ANALYZE",
        "EXPLAIN ANALYZE VERBOSE",
        "EXPLAIN FORMAT TREE",
        "EXPLAIN FORMAT INDENT",
        "EXPLAIN FORMAT PGJSON",
        "explain   verbose",
    ] {
        all.push((
            format!("{explain} SELECT * FROM statements"),
            Expect::Explain,
        ));
        all.push((
            format!(
                "{explain} SELECT count(*) FROM statements WHERE library IS NOT NULL AND registration > ''"
            ),
            Expect::Explain,
        ));
    }
    all
}

/// The secrets an answer to `sql` must not hold: those not in the query's
/// own text (an error may quote the query back).
fn leaked<'a>(answer: &Answer, sql: &str, secrets: &'a BTreeSet<String>) -> Vec<&'a String> {
    secrets
        .iter()
        .filter(|secret| !sql.contains(secret.as_str()))
        .filter(|secret| answer.text.contains(secret.as_str()))
        .collect()
}

#[tokio::test]
async fn no_reader_sees_another_tenants_rows() {
    let world = World::new();
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    let w = &world;
    for definition in [
        ["--id", &w.kb, "--name", "KB", "--kind", "kb", "", ""],
        [
            "--id", &w.lib_a, "--name", "A", "--kind", "library", "--isil", &w.isil_a,
        ],
        [
            "--id", &w.lib_b, "--name", "B", "--kind", "library", "--isil", &w.isil_b,
        ],
        [
            "--id", &w.app_a, "--name", "App A", "--kind", "app", "--appid", &w.appid_a,
        ],
        [
            "--id", &w.app_b, "--name", "App B", "--kind", "app", "--appid", &w.appid_b,
        ],
    ] {
        let mut args = vec!["tenants", "define"];
        args.extend(definition.iter().filter(|a| !a.is_empty()));
        server.lrs(&args).unwrap();
    }
    server
        .lrs(&[
            "roles",
            "define",
            "--name",
            "analist",
            "--permission",
            "analytics.sql",
        ])
        .unwrap();
    let credential = |tenant: &str| server.credential_with_role(tenant, tenant, Some("analist"));
    let keys: BTreeMap<&str, (String, String)> = [
        ("kb", credential(&world.kb)),
        ("lib_a", credential(&world.lib_a)),
        ("lib_b", credential(&world.lib_b)),
        ("app_a", credential(&world.app_a)),
        ("app_b", credential(&world.app_b)),
    ]
    .into_iter()
    .collect();
    server.serve_args = ["--analytics-interval", "0.2", "--sql-timeout", "20"]
        .map(String::from)
        .to_vec();
    server.env = vec![
        ("LRS_RATE_PER_ADDRESS".into(), "0".into()),
        ("LRS_RATE_PER_CREDENTIAL".into(), "0".into()),
    ];
    server.capture_stderr = true;
    server.launch().unwrap();

    // Every writer with every library it writes for: each group's rows
    // carry values of their own.
    let mut groups = vec![
        Group::new(
            "app_a/lib_a",
            &w.app_a,
            Some(&w.isil_a),
            Some(&w.appid_a),
            "2026-01",
        ),
        Group::new(
            "app_a/lib_b",
            &w.app_a,
            Some(&w.isil_b),
            Some(&w.appid_a),
            "2026-02",
        ),
        Group::new(
            "app_b/lib_a",
            &w.app_b,
            Some(&w.isil_a),
            Some(&w.appid_b),
            "2026-03",
        ),
        Group::new(
            "app_b/lib_b",
            &w.app_b,
            Some(&w.isil_b),
            Some(&w.appid_b),
            "2026-04",
        ),
        Group::new("lib_a/own", &w.lib_a, Some(&w.isil_a), None, "2026-05"),
        Group::new("lib_b/own", &w.lib_b, Some(&w.isil_b), None, "2026-06"),
        Group::new("kb/lib_c", &w.kb, Some(&w.isil_c), None, "2026-07"),
        Group::new("app_a/none", &w.app_a, None, Some(&w.appid_a), "2026-08"),
        Group::new("app_b/none", &w.app_b, None, Some(&w.appid_b), "2026-09"),
    ];
    let writer_key = |tenant: &str| -> (String, String) {
        let name = [
            (&w.kb, "kb"),
            (&w.lib_a, "lib_a"),
            (&w.lib_b, "lib_b"),
            (&w.app_a, "app_a"),
            (&w.app_b, "app_b"),
        ]
        .into_iter()
        .find(|(id, _)| id.as_str() == tenant)
        .expect("a writer")
        .1;
        keys[name].clone()
    };
    let mut posted = 0;
    for index in 0..groups.len() {
        // The groups without a library void a statement of their writer's
        // for a library: app A one of library B's, app B one of library A's.
        let voids = match groups[index].name {
            "app_a/none" => Some(groups[1].ids[0].clone()),
            "app_b/none" => Some(groups[2].ids[0].clone()),
            _ => None,
        };
        let group = &mut groups[index];
        group.voids = voids;
        let statements = group.statements();
        let (key, secret) = writer_key(&group.writer);
        let reply = server
            .client()
            .with_credential(&key, &secret)
            .post_statements(&json!(statements))
            .await
            .unwrap();
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: {}",
            group.name,
            reply.text
        );
        posted += statements.len();
    }

    let readers: Vec<Reader> = [
        (
            "kb",
            true,
            groups.iter().map(|g| g.name).collect::<Vec<_>>(),
        ),
        (
            "lib_a",
            false,
            vec!["app_a/lib_a", "app_b/lib_a", "lib_a/own"],
        ),
        (
            "lib_b",
            false,
            vec!["app_a/lib_b", "app_b/lib_b", "lib_b/own"],
        ),
        (
            "app_a",
            false,
            vec!["app_a/lib_a", "app_a/lib_b", "app_a/none"],
        ),
        (
            "app_b",
            false,
            vec!["app_b/lib_a", "app_b/lib_b", "app_b/none"],
        ),
    ]
    .into_iter()
    .map(|(name, is_kb, share)| Reader {
        name,
        key: keys[name].0.clone(),
        secret: keys[name].1.clone(),
        share: share.into_iter().collect(),
        is_kb,
    })
    .collect();
    let http = reqwest::Client::new();
    let base = server.base_url.clone();
    let kb = &readers[0];

    // The background export writes every row.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let answer = ask(
            &http,
            &base,
            kb,
            "SELECT count(*) AS n FROM statements",
            "json",
        )
        .await;
        let n = json_rows(&answer)
            .first()
            .and_then(|r| r["n"].as_u64())
            .unwrap_or(0);
        if answer.status == StatusCode::OK && n == posted as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "export did not catch up: {n} of {posted}: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The learners' tokens, as the KB sees them.
    let answer = ask(
        &http,
        &base,
        kb,
        "SELECT statement_id, actor_token FROM statements",
        "json",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    for row in json_rows(&answer) {
        let id = row["statement_id"].as_str().unwrap();
        let token = row["actor_token"].as_str().expect("a token").to_owned();
        assert_eq!(token.len(), 32, "{row}");
        let group = groups
            .iter_mut()
            .find(|g| g.ids.iter().any(|i| i == id))
            .unwrap_or_else(|| panic!("a row of no group: {row}"));
        group.tokens.insert(token);
    }
    let columns: Vec<String> = {
        let answer = ask(&http, &base, kb, "SELECT * FROM statements LIMIT 0", "json").await;
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(columns.len() >= 40, "{columns:?}");

    // What each reader must never see: the values of the groups outside
    // its share that no group inside it carries, and the data directory.
    let data_dir = server.data_dir.display().to_string();
    let secrets_of = |reader: &Reader| -> BTreeSet<String> {
        let own: BTreeSet<String> = groups
            .iter()
            .filter(|g| reader.share.contains(g.name))
            .flat_map(Group::values)
            .collect();
        let mut secrets: BTreeSet<String> = groups
            .iter()
            .filter(|g| !reader.share.contains(g.name))
            .flat_map(Group::values)
            .filter(|v| !own.contains(v))
            .collect();
        secrets.insert(data_dir.clone());
        secrets
    };
    for reader in &readers[1..] {
        let secrets = secrets_of(reader);
        // Another library's ISIL and tenant, another app's tenant: all
        // among them.
        assert!(secrets.len() > 40, "{}: {secrets:?}", reader.name);
    }

    // Each reader sees exactly its own rows, voiding included (a library
    // sees its statements that an app voided as voided).
    for reader in &readers {
        let answer = ask(
            &http,
            &base,
            reader,
            "SELECT statement_id, voided FROM statements",
            "json",
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}: {}",
            reader.name,
            answer.text
        );
        let seen: BTreeMap<String, bool> = json_rows(&answer)
            .iter()
            .map(|r| {
                (
                    r["statement_id"].as_str().unwrap().to_owned(),
                    r["voided"].as_bool().unwrap(),
                )
            })
            .collect();
        let expected: BTreeSet<String> = groups
            .iter()
            .filter(|g| reader.share.contains(g.name))
            .flat_map(|g| g.ids.iter().cloned())
            .collect();
        assert_eq!(
            seen.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "{} sees exactly its share",
            reader.name
        );
        let voided: BTreeSet<&String> =
            seen.iter().filter(|(_, v)| **v).map(|(id, _)| id).collect();
        let expected_voided: BTreeSet<&String> = [&groups[1].ids[0], &groups[2].ids[0]]
            .into_iter()
            .filter(|id| expected.contains(*id))
            .collect();
        assert_eq!(voided, expected_voided, "{}: voided", reader.name);
    }

    // The scan finds planted values where they are allowed: in every
    // format, a reader's own rows carry its own values (so an absence below
    // means something), and the KB's carry everyone's.
    for reader in &readers {
        let own_tag = &groups
            .iter()
            .find(|g| reader.share.contains(g.name))
            .unwrap()
            .tag;
        for format in FORMATS {
            let answer = ask(&http, &base, reader, "SELECT * FROM statements", format).await;
            assert_eq!(answer.status, StatusCode::OK, "{} {format}", reader.name);
            assert!(
                answer.text.contains(own_tag.as_str()),
                "{} {format}: own rows",
                reader.name
            );
            for group in groups.iter().filter(|g| reader.share.contains(g.name)) {
                for id in &group.ids {
                    assert!(
                        answer.text.contains(id.as_str()),
                        "{} {format}: {id}",
                        reader.name
                    );
                }
            }
        }
    }

    // Every attack, in every format, by every reader: nothing of another
    // tenant in any status, header or body. The KB runs them too: it may
    // see every row, but never the data directory.
    let attacks = attacks(&columns, &server.data_dir.join("analytics"));
    let mut failures: Vec<String> = Vec::new();
    let mut refused_explain = 0;
    let mut tried = 0;
    for reader in &readers {
        let secrets = if reader.is_kb {
            BTreeSet::from([data_dir.clone()])
        } else {
            secrets_of(reader)
        };
        let expected: BTreeMap<&String, Expect> =
            attacks.iter().map(|(sql, e)| (sql, *e)).collect();
        let queries = attacks
            .iter()
            .flat_map(|(sql, _)| FORMATS.map(|f| (sql.clone(), f)))
            .collect();
        for (sql, format, answer) in ask_all(&http, &base, reader, queries).await {
            tried += 1;
            let expect = expected[&sql];
            let found = leaked(&answer, &sql, &secrets);
            if !found.is_empty() {
                failures.push(format!(
                    "{} {format} {sql:?}: {} holds {found:?}",
                    reader.name, answer.status
                ));
            }
            let status = answer.status;
            let as_expected = match expect {
                Expect::Ok => status == StatusCode::OK,
                Expect::Refused => status.is_client_error(),
                Expect::Either => status == StatusCode::OK || status.is_client_error(),
                Expect::Explain if reader.is_kb => status == StatusCode::OK,
                Expect::Explain => {
                    refused_explain += 1;
                    status == StatusCode::BAD_REQUEST && answer.text.contains("\"sql.explain\"")
                }
            };
            if !as_expected {
                failures.push(format!(
                    "{} {format} {sql:?}: expected {expect:?}, got {}",
                    reader.name,
                    answer.text.chars().take(600).collect::<String>()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} answers:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(refused_explain >= 4 * 16 * 4, "{refused_explain}");

    // Oracles: a predicate that fails exactly on the rows a condition
    // picks out. Where the caller's share holds such a row (always for the
    // KB) the query fails, saying only which rule; where it holds none, the
    // rows outside it are never evaluated: 200, and the caller's own count.
    let mut oracles: Vec<(BTreeSet<&'static str>, String)> = Vec::new();
    for group in &groups {
        let only = BTreeSet::from([group.name]);
        let token = group.tokens.iter().next().unwrap();
        let mut conditions = vec![
            (only.clone(), format!("statement_id = '{}'", group.ids[0])),
            (
                only.clone(),
                format!("registration = '{}'", group.registrations[0]),
            ),
            (only.clone(), format!("actor_token = '{token}'")),
            (
                only.clone(),
                format!("verb = 'https://secret.example/verbs/{}'", group.tag),
            ),
            (only.clone(), format!("platform = 'platform-{}'", group.tag)),
            (
                groups
                    .iter()
                    .filter(|g| g.writer == group.writer)
                    .map(|g| g.name)
                    .collect(),
                format!("tenant = '{}'", group.writer),
            ),
        ];
        if let Some(isil) = &group.library {
            conditions.push((
                groups
                    .iter()
                    .filter(|g| g.library.as_ref() == Some(isil))
                    .map(|g| g.name)
                    .collect(),
                format!("library = '{isil}'"),
            ));
        }
        for (picked, condition) in conditions {
            for sql in [
                format!("SELECT count(*) AS n FROM statements WHERE 1 / (CASE WHEN {condition} THEN 0 ELSE 1 END) = 1"),
                format!("SELECT count(*) AS n FROM statements WHERE (CASE WHEN {condition} THEN CAST(statement_id AS INT) ELSE 1 END) = 1"),
                format!("SELECT count(*) AS n FROM statements WHERE (CASE WHEN {condition} THEN 1 / (position - position) ELSE 1 END) = 1"),
            ] {
                oracles.push((picked.clone(), sql));
            }
        }
    }
    let mut evaluated_elsewhere = Vec::new();
    for reader in &readers {
        let own_count = json_rows(
            &ask(
                &http,
                &base,
                reader,
                "SELECT count(*) AS n FROM statements",
                "json",
            )
            .await,
        )[0]["n"]
            .as_u64()
            .unwrap();
        let picked_by: BTreeMap<&String, &BTreeSet<&str>> =
            oracles.iter().map(|(picked, sql)| (sql, picked)).collect();
        let queries = oracles
            .iter()
            .map(|(_, sql)| (sql.clone(), "json"))
            .collect();
        for (sql, _, answer) in ask_all(&http, &base, reader, queries).await {
            if picked_by[&sql].iter().any(|g| reader.share.contains(g)) {
                assert_eq!(
                    answer.status,
                    StatusCode::BAD_REQUEST,
                    "{} {sql}: {}",
                    reader.name,
                    answer.text
                );
                let body: Value = serde_json::from_slice(&answer.body).unwrap();
                let rule = body["error"]["rule"].as_str().unwrap_or_default();
                assert!(
                    ["sql.cast", "sql.arithmetic"].contains(&rule),
                    "{sql}: {}",
                    answer.text
                );
            } else if answer.status != StatusCode::OK
                || json_rows(&answer)[0]["n"].as_u64() != Some(own_count)
            {
                evaluated_elsewhere.push(format!("{} {sql}: {}", reader.name, answer.text));
            }
        }
    }
    // The engine's whole message, values and all, is in the server log
    // only (of the KB's oracles, which ran on its rows).
    let log = server.stderr();
    assert!(
        log.contains("Cannot cast string"),
        "the server log holds the engine's messages"
    );
    assert!(
        evaluated_elsewhere.is_empty(),
        "rows outside the share were evaluated:\n{}",
        evaluated_elsewhere.join("\n")
    );

    // `lrs sql --library` and `--tenant` run in the sessions a library and
    // an app get over HTTP: the same rows.
    server.stop().unwrap();
    let ids_of = |extra: &[&str]| -> BTreeSet<String> {
        let mut args = vec![
            "sql",
            "SELECT statement_id FROM statements",
            "--format",
            "json",
        ];
        args.extend(extra);
        let out = server.lrs(&args).unwrap();
        serde_json::from_str::<Value>(&out).unwrap()["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["statement_id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (reader, extra) in [
        (&readers[1], ["--library", w.isil_a.as_str()]),
        (&readers[4], ["--tenant", w.app_b.as_str()]),
    ] {
        let expected: BTreeSet<String> = groups
            .iter()
            .filter(|g| reader.share.contains(g.name))
            .flat_map(|g| g.ids.iter().cloned())
            .collect();
        assert_eq!(ids_of(&extra), expected, "lrs sql {extra:?}");
    }

    // An erased learner of library A leaves no token in the files, nor in
    // library A's own copy of its rows.
    let group = &groups[0];
    let rows_of = |sql: &str, extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["sql", sql, "--format", "json"];
        args.extend(extra);
        let out = server.lrs(&args).unwrap();
        serde_json::from_str::<Value>(&out).unwrap()["rows"]
            .as_array()
            .unwrap()
            .clone()
    };
    let first = format!(
        "SELECT actor_token FROM statements WHERE statement_id = '{}'",
        group.ids[0]
    );
    let token = rows_of(&first, &[])[0]["actor_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let count = format!("SELECT count(*) AS n FROM statements WHERE actor_token = '{token}'");
    let sessions = [
        vec![],
        vec!["--library", w.isil_a.as_str()],
        vec!["--tenant", w.app_a.as_str()],
    ];
    for extra in &sessions {
        assert_eq!(
            rows_of(&count, extra)[0]["n"],
            1,
            "before the erasure: {extra:?}"
        );
    }
    let learner = json!({"mbox": format!("mailto:{}-0@example.nl", group.tag)});
    let erased = server
        .lrs(&["erase", "--agent", &learner.to_string()])
        .unwrap();
    assert!(erased.contains("erased"), "{erased}");
    let out = server.lrs(&["analytics", "export"]).unwrap();
    assert!(out.contains("files rewritten for erasures"), "{out}");
    for extra in &sessions {
        assert_eq!(
            rows_of(&count, extra)[0]["n"],
            0,
            "after the erasure: {extra:?}"
        );
        // The row stays, without its learner.
        assert_eq!(
            rows_of(&first, extra)[0].get("actor_token"),
            None,
            "{extra:?}"
        );
    }
}
