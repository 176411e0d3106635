//! Hostile input against a real server (issue 22, docs/security.md
//! "Hostile input"): statements far past the limits and the largest bodies
//! the limits allow are answered in bounded time while `GET /xapi/about`
//! keeps answering within milliseconds; every refusal the application can
//! reach is the JSON error body with a path and a rule (body read errors,
//! content codings, a missing Content-Type, each limit, the request head);
//! what the HTTP library refuses before the application is pinned down
//! here as documented.

use crate::common::*;
use base64::Engine;
use lrs_blackbox_tests::{Reply, StatusCode, TestServer, Xapi};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The xAPI body limit (`XapiConfig::max_body_bytes`).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Asserts the JSON error body: status, code, and that it names `path` and `rule`.
fn assert_refusal(reply: &Reply, status: u16, path: &str, rule: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        reply.headers
    );
    let error = &reply.body["error"];
    assert_eq!(error["status"], status, "{}", reply.text);
    assert_eq!(error["rule"], rule, "{}", reply.text);
    assert_eq!(error["path"], path, "{}", reply.text);
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{}", reply.text);
}

/// A statement whose activity is an interaction with `n` distinct
/// components in `list` (and the interaction type that uses that list).
fn interaction(list: &str, n: usize) -> Value {
    let kind = match list {
        "choices" => "choice",
        "scale" => "likert",
        "source" | "target" => "matching",
        _ => "performance",
    };
    let components: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("component-{i}"), "description": {"en-US": "c"}}))
        .collect();
    json!({
        "actor": {"mbox": "mailto:hostile@example.nl"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "https://courses.example.nl/hostile/q", "definition": {
            "interactionType": kind,
            list: components
        }}
    })
}

/// The largest single statement the limits allow: as many context
/// activities as a list may hold, each with an extensions object, just
/// under the body limit.
fn largest_statement() -> Vec<u8> {
    let pad = (BODY_LIMIT - 200_000) / 1_000 - 200;
    let parents: Vec<Value> = (0..1_000)
        .map(|i| {
            json!({"id": format!("https://courses.example.nl/big/parent-{i}"), "definition": {
                "name": {"en-US": "parent"},
                "extensions": {"https://courses.example.nl/ext/pad": "p".repeat(pad)}
            }})
        })
        .collect();
    let statement = json!({
        "actor": {"mbox": "mailto:largest@example.nl"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
        "object": {"id": "https://courses.example.nl/big"},
        "context": {"contextActivities": {"parent": parents}}
    });
    let bytes = serde_json::to_vec(&statement).unwrap();
    assert!(bytes.len() < BODY_LIMIT && bytes.len() > BODY_LIMIT - 400_000);
    bytes
}

/// The largest batch the limits allow: as many statements as one request
/// may carry, just under the body limit.
fn largest_batch() -> Vec<u8> {
    let count = xapi::validate::limits::MAX_BATCH_STATEMENTS;
    let pad = BODY_LIMIT / count - 400;
    let batch: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "actor": {"mbox": format!("mailto:batch-{i}@example.nl")},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"id": format!("https://courses.example.nl/batch/{}", i % 50)},
                "result": {"extensions": {"https://courses.example.nl/ext/pad": "b".repeat(pad)}}
            })
        })
        .collect();
    let bytes = serde_json::to_vec(&batch).unwrap();
    assert!(bytes.len() < BODY_LIMIT, "{}", bytes.len());
    bytes
}

async fn post_bytes(client: &Xapi, body: Vec<u8>) -> Reply {
    Xapi::send(
        client
            .request(reqwest::Method::POST, "/statements")
            .header("Content-Type", "application/json")
            .body(body),
    )
    .await
    .expect("POST /statements")
}

/// `GET /xapi/about` every 10 ms until `stop`, each at its time whether
/// or not the ones before have been answered (so a stalled server shows as
/// many slow answers, not as one): when each probe was due and how long its
/// answer took from then.
async fn probe_about(base_url: String, stop: Arc<AtomicBool>) -> Vec<(Instant, Duration)> {
    let http = reqwest::Client::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    let mut probes = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let due = ticks.tick().await.into_std();
        let (http, base_url) = (http.clone(), base_url.clone());
        probes.push(tokio::spawn(async move {
            let response = http
                .get(format!("{base_url}/xapi/about"))
                .header("X-Experience-API-Version", "1.0.3")
                .send()
                .await
                .expect("GET /xapi/about");
            assert_eq!(response.status(), StatusCode::OK);
            response.bytes().await.unwrap();
            (due, due.elapsed())
        }));
    }
    let mut answered = Vec::with_capacity(probes.len());
    for probe in probes {
        answered.push(probe.await.unwrap());
    }
    answered
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// Runs `request`, recording the window it was under way in.
async fn heavy<T>(
    windows: &mut Vec<(Instant, Instant)>,
    request: impl std::future::Future<Output = T>,
) -> (T, Duration) {
    let began = Instant::now();
    let answer = request.await;
    windows.push((began, Instant::now()));
    (answer, began.elapsed())
}

/// `GET /xapi/about` answers in under 50 ms p99 while the hostile and
/// the heavy requests below are under way. The black-box tests run two at
/// a time on a 2-core machine, so another test's server and client can
/// take both cores for a moment: a first attempt over the bound is printed
/// and the whole measurement is made once more on a fresh server, and the
/// second attempt must hold. (Alone, every run measured p99 10-24 ms.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_component_lists_and_the_largest_bodies_never_slow_down_about() {
    let bound = Duration::from_millis(50);
    let first = stall_attempt().await;
    if first.p99 < bound {
        return;
    }
    eprintln!("first attempt over the bound ({first:?}); measuring once more");
    let second = stall_attempt().await;
    assert!(
        second.p99 < bound,
        "GET /xapi/about p99 {:?} (p50 {:?}, max {:?}); the first attempt: {first:?}",
        second.p99,
        second.p50,
        second.max
    );
}

/// What one attempt measured of the probes due during the heavy requests.
#[derive(Debug)]
struct Probed {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn stall_attempt() -> Probed {
    let server = start();
    let client = server.client();
    // Every body is made before the probing starts: the test's own CPU
    // work must not delay its probes.
    let huge: Vec<(&str, Vec<u8>)> = ["choices", "scale", "source", "target", "steps"]
        .into_iter()
        .map(|list| {
            (
                list,
                serde_json::to_vec(&interaction(list, 100_000)).unwrap(),
            )
        })
        .collect();
    let largest_list = serde_json::to_vec(&interaction("choices", 1_000)).unwrap();
    let largest_statement = largest_statement();
    let largest_batch = largest_batch();
    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(probe_about(server.base_url.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut windows = Vec::new();

    // 100,000 distinct ids in each component list: refused at once.
    let mut refusals = Vec::new();
    for (list, body) in &huge {
        let (reply, took) = heavy(&mut windows, post_bytes(&client, body.clone())).await;
        assert_refusal(
            &reply,
            413,
            &format!("$.object.definition.{list}"),
            "limit.list-items",
        );
        assert!(took < Duration::from_secs(10), "{list}: {took:?}");
        refusals.push((*list, took));
    }
    // Two at once (the fuzz run's 11-40 s for /about).
    let ((a, b), _) = heavy(&mut windows, async {
        tokio::join!(
            post_bytes(&client, huge[0].1.clone()),
            post_bytes(&client, huge[4].1.clone()),
        )
    })
    .await;
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (413, 413));
    // The largest list the limits allow is stored.
    let (reply, _) = heavy(&mut windows, post_bytes(&client, largest_list)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // The largest single statement and the largest batch the limits allow,
    // at once.
    let ((reply, batch), largest_took) = heavy(&mut windows, async {
        tokio::join!(
            post_bytes(&client, largest_statement),
            post_bytes(&client, largest_batch)
        )
    })
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.body[0].as_str().unwrap().to_owned();
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.text);
    assert_eq!(
        batch.body.as_array().unwrap().len(),
        xapi::validate::limits::MAX_BATCH_STATEMENTS
    );
    let read = get_by_id(&client, &id).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.body["context"]["contextActivities"]["parent"]
            .as_array()
            .unwrap()
            .len(),
        1_000
    );

    stop.store(true, Ordering::SeqCst);
    let probes = prober.await.unwrap();
    // The probes that started while a hostile or heavy request was under way.
    let mut during: Vec<Duration> = probes
        .iter()
        .filter(|(began, _)| {
            windows
                .iter()
                .any(|(from, to)| began >= from && began <= to)
        })
        .map(|(_, took)| *took)
        .collect();
    during.sort();
    let p50 = percentile(&during, 0.50);
    let p99 = percentile(&during, 0.99);
    let max = *during.last().unwrap();
    eprintln!(
        "hostile: {} probes of /xapi/about during the heavy requests ({} in all): p50 {p50:?}, \
         p99 {p99:?}, max {max:?}; 100,000-id refusals {refusals:?}; the largest statement \
         and the largest batch at once {largest_took:?}",
        during.len(),
        probes.len()
    );
    assert!(during.len() >= 100, "{} probes", during.len());
    assert!(largest_took < Duration::from_secs(120), "{largest_took:?}");
    Probed { p50, p99, max }
}

/// What a raw exchange answered.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn assert_refusal(&self, status: u16, path: &str, rule: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{self:?}"
        );
        let body = self.json();
        assert_eq!(body["error"]["rule"], rule, "{self:?}");
        assert_eq!(body["error"]["path"], path, "{self:?}");
    }
}

fn basic(server: &TestServer) -> String {
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", server.key, server.secret));
    format!("Basic {token}")
}

/// Sends `request` as it is on a new connection (closing the sending half
/// after it when `half_close`) and reads one answer.
async fn raw(server: &TestServer, request: &[u8], half_close: bool) -> Raw {
    let address = server.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(request).await.expect("send");
    if half_close {
        stream.shutdown().await.expect("half close");
    }
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => panic!(
                "no complete answer within 20 s: {:?}",
                String::from_utf8_lossy(&received)
            ),
        };
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            if n == 0 || length.is_some_and(|length| body.len() >= length) {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .expect("a status line");
                return Raw {
                    status,
                    head: head.to_owned(),
                    body: body.to_owned(),
                };
            }
        }
        assert!(n > 0, "closed without an answer: {text:?}");
    }
}

/// The head of an authenticated xAPI request with extra header lines.
fn head(server: &TestServer, method: &str, target: &str, extra: &str) -> String {
    let address = server.base_url.trim_start_matches("http://");
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {}\r\n\
         X-Experience-API-Version: 1.0.3\r\n{extra}\r\n",
        basic(server)
    )
}

const STATE_TARGET: &str = "/xapi/activities/state?activityId=https%3A%2F%2Fcourses.example.nl%2Fh&agent=%7B%22mbox%22%3A%22mailto%3Ah%40example.nl%22%7D&stateId=s";

#[tokio::test]
async fn bodies_that_cannot_be_read_get_the_json_error_body() {
    let server = start();
    // A statement, a document, and a route of /api whose handler takes the
    // framework's own body extractor (its plain-text refusal made JSON by
    // `limit_body`).
    for target in ["/xapi/statements", STATE_TARGET, "/api/sql"] {
        let method = if target == STATE_TARGET {
            "PUT"
        } else {
            "POST"
        };
        // A chunk size that is not hexadecimal.
        let request = head(
            &server,
            method,
            target,
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        ) + "zz\r\n{}\r\n0\r\n\r\n";
        raw(&server, request.as_bytes(), false)
            .await
            .assert_refusal(400, "body", "body.read");
        // A body shorter than its Content-Length, the connection half closed.
        let request = head(
            &server,
            method,
            target,
            "Content-Type: application/json\r\nContent-Length: 100\r\n",
        ) + "{\"actor\": ";
        raw(&server, request.as_bytes(), true)
            .await
            .assert_refusal(400, "body", "body.read");
    }
    // The server is unharmed.
    post_ok(
        &server.client(),
        &lrs_blackbox_tests::statement("anna", "experienced", "hostile/after-read-errors"),
    )
    .await;
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn post_encoded(
    client: &Xapi,
    encoding: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut request = client
        .request(reqwest::Method::POST, "/statements")
        .header("Content-Encoding", encoding)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    Xapi::send(request).await.expect("POST /statements")
}

#[tokio::test]
async fn content_codings_are_undone_within_the_limit_or_refused() {
    let server = start();
    let client = server.client();
    let json = Some("application/json");
    // gzip and deflate bodies are stored as what they encode.
    for (encoding, encode) in [("gzip", gzip as fn(&[u8]) -> Vec<u8>), ("deflate", deflate)] {
        let id = new_id();
        let statement = with_id(
            lrs_blackbox_tests::statement("anna", "experienced", &format!("hostile/{encoding}")),
            &id,
        );
        let reply = post_encoded(
            &client,
            encoding,
            json,
            encode(&serde_json::to_vec(&statement).unwrap()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{encoding}: {}", reply.text);
        let read = get_by_id(&client, &id).await;
        assert_eq!(read.body["object"]["id"], statement["object"]["id"]);
    }
    // A plain body labelled gzip is not stored.
    let plain = serde_json::to_vec(&lrs_blackbox_tests::statement(
        "anna",
        "experienced",
        "hostile/label",
    ))
    .unwrap();
    let reply = post_encoded(&client, "gzip", json, plain.clone()).await;
    assert_refusal(&reply, 400, "body", "content-encoding.malformed");
    // A coding this server does not undo.
    let reply = post_encoded(&client, "br", json, plain.clone()).await;
    assert_refusal(
        &reply,
        415,
        "header Content-Encoding",
        "content-encoding.unsupported",
    );
    assert_eq!(reply.headers["accept-encoding"], "gzip, deflate, identity");
    let reply = post_encoded(&client, "gzip, gzip", json, gzip(&gzip(&plain))).await;
    assert_refusal(
        &reply,
        415,
        "header Content-Encoding",
        "content-encoding.unsupported",
    );
    // A small body that decodes past the body limit.
    let bomb = gzip(&vec![b' '; BODY_LIMIT + 1024]);
    assert!(bomb.len() < 100_000);
    let reply = post_encoded(&client, "gzip", json, bomb).await;
    assert_refusal(&reply, 413, "body", "limit.body-size");
    // No Content-Type at all (Communication 1.5.2: application/json or
    // multipart/mixed).
    let reply = post_encoded(&client, "identity", None, plain).await;
    assert_refusal(&reply, 400, "header Content-Type", "content-type");

    // A document is stored decoded too.
    let reply = Xapi::send(
        client
            .request(reqwest::Method::PUT, &STATE_TARGET["/xapi".len()..])
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .body(gzip(br#"{"progress": 0.5}"#)),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let reply = Xapi::send(client.request(reqwest::Method::GET, &STATE_TARGET["/xapi".len()..]))
        .await
        .unwrap();
    assert_eq!(reply.body, json!({"progress": 0.5}));
}

#[tokio::test]
async fn each_limit_is_refused_with_413_naming_it() {
    let server = start();
    let client = server.client();
    let base = || lrs_blackbox_tests::statement("anna", "experienced", "hostile/limits");

    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let mut statement = base();
    statement["result"] = json!({"extensions": {"https://courses.example.nl/ext/deep": deep}});
    let reply = client.post_statements(&statement).await.unwrap();
    // The statement is level 1, `result` 2, `extensions` 3, the outer array
    // 4: the array at level 33 is the first one too deep.
    assert_refusal(
        &reply,
        413,
        &format!(
            "$.result.extensions['https://courses.example.nl/ext/deep']{}",
            "[0]".repeat(29)
        ),
        "limit.depth",
    );

    let members: Vec<Value> = (0..1_001)
        .map(|i| json!({"mbox": format!("mailto:m{i}@example.nl")}))
        .collect();
    let mut statement = base();
    statement["actor"] = json!({"objectType": "Group", "member": members});
    let reply = client.post_statements(&statement).await.unwrap();
    assert_refusal(&reply, 413, "$.actor.member", "limit.list-items");

    // Two groups of 600 within the list limit, 1,202 agents together: the
    // actor group and its members are 601, the team group the 602nd, so its
    // member [398] is the 1,001st.
    let group = |prefix: &str| {
        let members: Vec<Value> = (0..600)
            .map(|i| json!({"mbox": format!("mailto:{prefix}{i}@example.nl")}))
            .collect();
        json!({"objectType": "Group", "member": members})
    };
    let mut statement = base();
    statement["actor"] = group("a");
    statement["context"] = json!({"team": group("t")});
    let reply = client.post_statements(&statement).await.unwrap();
    assert_refusal(&reply, 413, "$.context.team.member[398]", "limit.agents");

    let mut statement = base();
    statement["context"] =
        json!({"extensions": {"https://courses.example.nl/ext/big": "x".repeat(1024 * 1024)}});
    let reply = client.post_statements(&statement).await.unwrap();
    assert_refusal(&reply, 413, "$.context.extensions", "limit.extensions-size");

    let batch: Vec<Value> = (0..xapi::validate::limits::MAX_BATCH_STATEMENTS + 1)
        .map(|_| base())
        .collect();
    let reply = client.post_statements(&json!(batch)).await.unwrap();
    assert_refusal(&reply, 413, "$", "limit.batch-statements");

    let mut big = b"{\"actor\": {\"mbox\": \"mailto:big@example.nl\", \"name\": \"".to_vec();
    big.resize(BODY_LIMIT + 16, b'x');
    big.extend_from_slice(b"\"}}");
    let reply = post_bytes(&client, big).await;
    assert_refusal(&reply, 413, "body", "limit.body-size");
}

#[tokio::test]
async fn the_request_head_is_limited_in_json_below_the_library_limits() {
    let server = start();
    let client = server.client();
    // Over our own limits: JSON.
    let mut request = client.request(reqwest::Method::GET, "/about");
    for i in 0..150 {
        request = request.header(format!("x-extra-{i}"), "v");
    }
    let reply = Xapi::send(request).await.unwrap();
    assert_refusal(&reply, 431, "headers", "limit.header-count");
    let long = format!("/statements?verb={}", "v".repeat(20 * 1024));
    let reply = Xapi::send(client.request(reqwest::Method::GET, &long))
        .await
        .unwrap();
    assert_refusal(&reply, 414, "uri", "limit.uri-length");

    // Past the HTTP library's own limits, or not HTTP it can frame: its
    // bodiless answers (docs/security.md, "What the HTTP library refuses").
    let mut extra = String::new();
    for i in 0..300 {
        extra.push_str(&format!("X-Extra-{i}: v\r\n"));
    }
    let answer = raw(
        &server,
        head(&server, "GET", "/xapi/about", &extra).as_bytes(),
        false,
    )
    .await;
    assert_eq!((answer.status, answer.body.as_str()), (431, ""));
    let target = format!("/xapi/statements?verb={}", "v".repeat(70 * 1024));
    let answer = raw(&server, head(&server, "GET", &target, "").as_bytes(), false).await;
    assert_eq!((answer.status, answer.body.as_str()), (414, ""));
    let answer = raw(
        &server,
        (head(
            &server,
            "POST",
            "/xapi/statements",
            "Content-Type: application/json\r\nContent-Length: 1x\r\n",
        ) + "{}")
            .as_bytes(),
        false,
    )
    .await;
    assert_eq!((answer.status, answer.body.as_str()), (400, ""));
    let answer = raw(
        &server,
        (head(
            &server,
            "POST",
            "/xapi/statements",
            "Content-Type: application/json\r\nTransfer-Encoding: gzip\r\n",
        ) + "{}")
            .as_bytes(),
        false,
    )
    .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    // The server is unharmed.
    let reply = Xapi::send(client.request(reqwest::Method::GET, "/about"))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
}
