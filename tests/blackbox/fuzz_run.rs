//! A short, seeded black-box fuzz run (issue 22): mutated statements,
//! documents and query parameters, and malformed HTTP, sent to a real
//! server while a writer races in between. Nothing may answer 5xx, every
//! refusal of the application is the JSON error body with a path and a
//! rule, no request may take long, and every acknowledged statement and
//! document is still there after a restart.
//!
//! `LRS_FUZZ_SEED` and `LRS_FUZZ_REQUESTS` change the seed and the number
//! of requests (defaults: a fixed seed, 400 requests, about 10 s).

use crate::common::*;
use lrs_blackbox_tests::{Reply, StatusCode, TestServer, Xapi};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEFAULT_SEED: u64 = 0x22_f022;
const DEFAULT_REQUESTS: usize = 400;
/// The slowest any one request may be answered (debug build, 2 cores shared).
const REQUEST_BUDGET: Duration = Duration::from_secs(10);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The valid statement fixtures of the xapi crate: the corpus.
fn corpus() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/xapi/tests/fixtures/valid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the statement fixtures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .collect()
}

const SCALARS: &[&str] = &[
    "",
    "x",
    "http://example.com/a",
    "not an iri",
    "mailto:a@example.com",
    "6f1a8f0e-0000-4000-8000-000000000001",
    "2024-01-01T12:00:00Z",
    "PT1H",
    "en-US",
    "Agent",
    "Group",
    "SubStatement",
    "choice",
    "\u{0}",
];
const KEYS: &[&str] = &[
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "objectType",
    "mbox",
    "member",
    "definition",
    "interactionType",
    "choices",
    "extensions",
    "attachments",
    "score",
    "registration",
    "contextActivities",
    "parent",
    "unknown",
];

fn scalar(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..5) {
        0 => Value::Null,
        1 => json!(rng.gen::<i32>()),
        2 => json!(rng.gen_bool(0.5)),
        _ => json!(SCALARS.choose(rng).unwrap()),
    }
}

fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            pointers(
                v,
                format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                out,
            )
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
}

fn mutate(rng: &mut StdRng, doc: &mut Value) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let at = all.choose(rng).unwrap().clone();
    let node = doc.pointer_mut(&at).unwrap();
    match rng.gen_range(0..7) {
        0 => *node = scalar(rng),
        1 => {
            if let Value::Object(map) = node {
                map.insert(KEYS.choose(rng).unwrap().to_string(), scalar(rng));
            }
        }
        2 => {
            if let Value::Object(map) = node {
                if let Some(key) = map.keys().next().cloned() {
                    map.shift_remove(&key);
                }
            }
        }
        3 => {
            let n = *[2, 1_001, 20_000].choose(rng).unwrap();
            let item = node.clone();
            *node = Value::Array(vec![item; n.min(40_000 / (1 + item_size(node)))]);
        }
        4 => {
            for _ in 0..*[3, 40].choose(rng).unwrap() {
                *node = json!([node.take()]);
            }
        }
        5 => {
            let choices: Vec<Value> = (0..*[10, 1_000, 30_000].choose(rng).unwrap())
                .map(|i| json!({"id": format!("c{i}")}))
                .collect();
            *node = json!({"id": "http://x.example/q", "definition": {"interactionType": "choice", "choices": choices}});
        }
        _ => {
            *node =
                json!({"extensions": {"http://x.example/e": "e".repeat(rng.gen_range(0..200_000))}})
        }
    }
}

fn item_size(value: &Value) -> usize {
    value.to_string().len() / 20
}

/// Where the run stands: what was acknowledged, what answered what.
#[derive(Default)]
struct Ledger {
    statements: Vec<String>,
    documents: BTreeMap<String, Value>,
    statuses: BTreeMap<u16, usize>,
    rules: BTreeMap<String, usize>,
    slowest: Duration,
}

fn record(ledger: &Mutex<Ledger>, what: &str, reply: &Reply, took: Duration) {
    let mut ledger = ledger.lock().unwrap();
    *ledger.statuses.entry(reply.status.as_u16()).or_default() += 1;
    ledger.slowest = ledger.slowest.max(took);
    assert!(
        !reply.status.is_server_error(),
        "{what}: {} {}",
        reply.status,
        reply.text
    );
    assert!(took < REQUEST_BUDGET, "{what}: {took:?}");
    if reply.status.is_client_error() {
        let error = &reply.body["error"];
        assert!(
            error["message"].is_string() && error["code"].is_string(),
            "{what}: not the JSON error body: {} {}",
            reply.status,
            reply.text
        );
        // Refusals of input name where and which rule; 401/403/404/409/412
        // are about the caller or the resource, not a place in the input.
        if matches!(reply.status.as_u16(), 400 | 413 | 414 | 415 | 431) {
            assert!(
                error["path"].is_string() && error["rule"].is_string(),
                "{what}: no path and rule: {}",
                reply.text
            );
            *ledger
                .rules
                .entry(error["rule"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
}

/// A state document's query for `n`.
fn state_query(n: usize, agent: &str) -> Vec<(String, String)> {
    vec![
        (
            "activityId".into(),
            format!("https://courses.example.nl/fuzz/{n}"),
        ),
        ("agent".into(), agent.to_owned()),
        ("stateId".into(), format!("s{n}")),
    ]
}

async fn one_request(
    rng: &mut StdRng,
    client: &Xapi,
    corpus: &[Value],
    ledger: &Mutex<Ledger>,
    n: usize,
) {
    let began = Instant::now();
    match rng.gen_range(0..10) {
        // A mutated statement or batch.
        0..=4 => {
            let mut doc = corpus.choose(rng).unwrap().clone();
            for _ in 0..rng.gen_range(1..=3) {
                mutate(rng, &mut doc);
            }
            let reply = client.post_statements(&doc).await.expect("POST");
            record(
                ledger,
                &format!("POST statements #{n}"),
                &reply,
                began.elapsed(),
            );
            if reply.status == StatusCode::OK {
                let ids = reply
                    .body
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned());
                ledger.lock().unwrap().statements.extend(ids);
            }
        }
        // A document: a mutated JSON body, sometimes merged, with mutated parameters.
        5 | 6 => {
            let agent = if rng.gen_bool(0.8) {
                mbox_agent(&format!("fuzz{}", n % 7))
            } else {
                [
                    "{}",
                    "{\"mbox\":1}",
                    "not json",
                    "{\"objectType\":\"Group\"}",
                ]
                .choose(rng)
                .unwrap()
                .to_string()
            };
            let mut query = state_query(n, &agent);
            if rng.gen_bool(0.2) {
                query.push((KEYS.choose(rng).unwrap().to_string(), "x".into()));
            }
            let mut body = corpus.choose(rng).unwrap().clone();
            if rng.gen_bool(0.5) {
                mutate(rng, &mut body);
            }
            let method = if rng.gen_bool(0.5) {
                reqwest::Method::PUT
            } else {
                reqwest::Method::POST
            };
            let reply = Xapi::send(
                client
                    .request(method.clone(), "/activities/state")
                    .query(&query)
                    .header("Content-Type", "application/json")
                    .body(body.to_string()),
            )
            .await
            .expect("document write");
            record(
                ledger,
                &format!("{method} state #{n}"),
                &reply,
                began.elapsed(),
            );
            if reply.status == StatusCode::NO_CONTENT && method == reqwest::Method::PUT {
                ledger
                    .lock()
                    .unwrap()
                    .documents
                    .insert(serde_json::to_string(&query).unwrap(), body);
            } else if reply.status == StatusCode::NO_CONTENT {
                // A merge: what it became is read back at the end.
                ledger
                    .lock()
                    .unwrap()
                    .documents
                    .remove(&serde_json::to_string(&query).unwrap());
            }
        }
        // Statement queries with mutated parameters.
        _ => {
            let names = [
                "agent",
                "verb",
                "activity",
                "registration",
                "since",
                "until",
                "limit",
                "format",
                "attachments",
                "ascending",
                "cursor",
                "related_agents",
                "statementId",
                "bogus",
            ];
            let values = [
                "true",
                "false",
                "0",
                "-1",
                "99999999999999999999",
                "ids",
                "canonical",
                "exact",
                "http://adlnet.gov/expapi/verbs/experienced",
                "2024-01-01T00:00:00Z",
                "{}",
                "{\"mbox\":\"mailto:fuzz1@example.nl\"}",
                "6f1a8f0e-0000-4000-8000-000000000001",
                "%",
            ];
            let query: Vec<(&str, &str)> = (0..rng.gen_range(0..5))
                .map(|_| (*names.choose(rng).unwrap(), *values.choose(rng).unwrap()))
                .collect();
            let mut request = client
                .request(reqwest::Method::GET, "/statements")
                .query(&query);
            if rng.gen_bool(0.2) {
                request = request.header("Accept-Language", "nl;q=0.5, ".repeat(500));
            }
            let reply = Xapi::send(request).await.expect("GET statements");
            record(
                ledger,
                &format!("GET statements {query:?}"),
                &reply,
                began.elapsed(),
            );
        }
    }
}

/// Malformed HTTP, the connection half closed after it: the server
/// answers something that is not a 5xx, or closes the connection, and
/// keeps serving.
async fn malformed(server: &TestServer, rng: &mut StdRng) {
    let address = server.base_url.trim_start_matches("http://");
    let requests = [
        "GET /xapi/about HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_string(),
        "POST /xapi/statements HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n".into(),
        "GET /xapi/about HTTP/1.1\r\nHost: x\r\nX: \u{1}\r\n\r\n".into(),
        "BREW /xapi/about HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        "GET /xapi/about HTTP/9.9\r\n\r\n".into(),
        "GET /%%% HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        "\r\n\r\n\r\n".into(),
        format!("GET /xapi/about?{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(80_000)),
    ];
    let request = requests.choose(rng).unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(request.as_bytes()).await;
    // Nothing more comes: an incomplete request ends here.
    let _ = stream.shutdown().await;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer or a close within 10 s")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&answer[..n]);
    // 505 is the one 5xx that is right: an HTTP version hyper does not speak.
    assert!(
        !text.starts_with("HTTP/1.1 5") || text.starts_with("HTTP/1.1 505"),
        "{request:?}: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_fuzz_run_loses_nothing_and_answers_every_refusal_in_json() {
    let seed = env_or("LRS_FUZZ_SEED", DEFAULT_SEED);
    let requests = env_or("LRS_FUZZ_REQUESTS", DEFAULT_REQUESTS);
    let mut server = start();
    let client = server.client();
    let corpus = corpus();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let started = Instant::now();

    // A writer racing in between: valid statements, each acknowledged one kept.
    let writer = {
        let (client, ledger) = (client.clone(), ledger.clone());
        tokio::spawn(async move {
            for i in 0..requests / 4 {
                let statement = lrs_blackbox_tests::statement(
                    &format!("racer{}", i % 5),
                    "experienced",
                    &format!("fuzz/race/{i}"),
                );
                let reply = client
                    .post_statements(&statement)
                    .await
                    .expect("racer POST");
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                let id = reply.body[0].as_str().unwrap().to_owned();
                ledger.lock().unwrap().statements.push(id);
            }
        })
    };
    let mut rng = StdRng::seed_from_u64(seed);
    for n in 0..requests {
        if n % 50 == 0 {
            malformed(&server, &mut rng).await;
        }
        one_request(&mut rng, &client, &corpus, &ledger, n).await;
    }
    writer.await.unwrap();
    let (statements, documents) = {
        let ledger = ledger.lock().unwrap();
        eprintln!(
            "fuzz run: seed {seed}, {requests} requests in {:?}, statuses {:?}, slowest {:?}, rules {:?}",
            started.elapsed(),
            ledger.statuses,
            ledger.slowest,
            ledger.rules
        );
        assert!(
            ledger.rules.contains_key("limit.list-items"),
            "{:?}",
            ledger.rules
        );
        (ledger.statements.clone(), ledger.documents.clone())
    };

    // Everything acknowledged is still there after a restart.
    server.stop().expect("a clean stop");
    server.launch().expect("the server starts again");
    let client = server.client();
    for id in &statements {
        let reply = get_by_id(&client, id).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "statement {id} lost: {}",
            reply.text
        );
    }
    for (query, body) in &documents {
        let query: Vec<(String, String)> = serde_json::from_str(query).unwrap();
        let reply = Xapi::send(
            client
                .request(reqwest::Method::GET, "/activities/state")
                .query(&query),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "document {query:?} lost");
        assert_eq!(&reply.body, body, "document {query:?}");
    }
}
