//! The document resources (State, Activity Profile, Agent Profile): the rules of
//! xAPI Communication 2.2–2.7 and 3.1 as data (`tests/fixtures/documents/*.json`,
//! run by [`check`]), and in Rust what data cannot say well: erasure, tenant
//! isolation, concurrent merges, and a real xAPI client library end to end.
//!
//! # Fixture format
//!
//! ```json
//! {"rule": "what is tested, and the spec section",
//!  "versions": ["1.0.3", "2.0.0"],
//!  "steps": [
//!    {"method": "PUT", "resource": "activities/state",
//!     "params": {"activityId": "https://courses.example.nl/$ns", "agent": {"mbox": "mailto:anna@$ns.example.nl"}, "stateId": "s"},
//!     "headers": {"If-Match": "$etag:0"},
//!     "body": {"any": "json"},
//!     "expect": {"status": 204, "headers_present": ["etag"]}},
//!    {"mark": "t1"},
//!    {"method": "GET", "resource": "activities/state", "params": {"...": "...", "since": "$time:t1"},
//!     "expect": {"status": 200, "ids": ["s"]}}]}
//! ```
//!
//! - `$ns` (anywhere in a string) is a namespace fresh for each fixture and
//!   version, so every run has its own activities and agents.
//! - `$etag:N` (a whole string) is the ETag header step N answered.
//! - `{"mark": "t1"}` records a timestamp between the steps around it;
//!   `$time:t1` (a whole string) is that timestamp.
//! - `params` values that are objects are sent as JSON text (`agent`).
//! - `body`: a JSON value is sent as `application/json`;
//!   `{"$text": "...", "contentType": "..."}` and
//!   `{"$base64": "...", "contentType": "..."}` send raw content. A
//!   `Content-Type` in `headers` wins.
//! - `expect`: `status` (a number, or `{"1.0.3": 400, "2.0.0": 204}`),
//!   `body` (JSON, equal), `ids` (a JSON array of strings, in any order),
//!   `text` / `base64` (the exact content), `headers` (exact values, with
//!   substitutions), `headers_present`, `headers_absent`, `error` (a subset
//!   of the `error` object of the JSON error body), `error_mentions` (strings
//!   the error message contains).
//!
//! A step may carry `"known_bug": "what, and the spec section"`: it states
//! the rule, the server breaks it today; the run stops there and the bug is
//! reported without failing the test, and the mark must go once the step
//! passes (a marked step that passes fails the test).
//!
//! Checked on every response without being asked: a 4xx has a JSON body with
//! an `error` object; a 204 has no body; an ETag is a quoted lowercase hex
//! SHA-1; a Last-Modified is an HTTP date; a 200 to a single-document GET has
//! an ETag equal to the SHA-1 of the content it returns (3.1) and a
//! Last-Modified (2.2).

use crate::common::*;
use base64::Engine;
use lrs_blackbox_tests::{StatusCode, TestServer, Xapi};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const STEP_KEYS: &[&str] = &[
    "method",
    "resource",
    "params",
    "headers",
    "body",
    "expect",
    "mark",
    "note",
    "known_bug",
];
const EXPECT_KEYS: &[&str] = &[
    "status",
    "body",
    "ids",
    "text",
    "base64",
    "headers",
    "headers_present",
    "headers_absent",
    "error",
    "error_mentions",
];
const RESOURCES: &[&str] = &["activities/state", "activities/profile", "agents/profile"];

/// One fixture file.
struct Fixture {
    name: String,
    versions: Vec<String>,
    steps: Vec<Value>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/documents")
}

/// Reads every fixture; a malformed one is an error naming the file and what.
fn load_fixtures(dir: &Path) -> (Vec<Fixture>, Vec<String>) {
    let mut fixtures = Vec::new();
    let mut errors = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        match parse_fixture(&name, &std::fs::read_to_string(&path).unwrap()) {
            Ok(fixture) => fixtures.push(fixture),
            Err(e) => errors.push(format!("{name}.json: malformed fixture: {e}")),
        }
    }
    (fixtures, errors)
}

fn unknown_keys(object: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), String> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(format!("{what}: unknown key {key:?} (known: {known:?})")),
        None => Ok(()),
    }
}

fn parse_fixture(name: &str, text: &str) -> Result<Fixture, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let object = value.as_object().ok_or("not a JSON object")?;
    unknown_keys(object, &["rule", "versions", "steps"], "fixture")?;
    if !object.get("rule").is_some_and(Value::is_string) {
        return Err("\"rule\" (a string naming the rule and its section) is required".into());
    }
    let versions: Vec<String> = object
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("\"versions\" must be an array")?
        .iter()
        .map(|v| match v.as_str() {
            Some(v @ ("1.0.3" | "2.0.0")) => Ok(v.to_owned()),
            _ => Err(format!("unknown version {v}")),
        })
        .collect::<Result<_, _>>()?;
    if versions.is_empty() {
        return Err("\"versions\" is empty".into());
    }
    let steps = object
        .get("steps")
        .and_then(Value::as_array)
        .ok_or("\"steps\" must be an array")?
        .clone();
    let mut marks = Vec::new();
    let mut statuses = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let step = step
            .as_object()
            .ok_or(format!("step {i} is not an object"))?;
        unknown_keys(step, STEP_KEYS, &format!("step {i}"))?;
        if let Some(mark) = step.get("mark") {
            marks.push(mark.as_str().ok_or(format!("step {i}: mark is a name"))?);
            if step.len() != 1 {
                return Err(format!("step {i}: a mark step has only \"mark\""));
            }
            continue;
        }
        let method = step.get("method").and_then(Value::as_str).unwrap_or("");
        if !["GET", "PUT", "POST", "DELETE"].contains(&method) {
            return Err(format!("step {i}: method {method:?}"));
        }
        let resource = step.get("resource").and_then(Value::as_str).unwrap_or("");
        if !RESOURCES.contains(&resource) {
            return Err(format!("step {i}: resource {resource:?}"));
        }
        let expect = step
            .get("expect")
            .and_then(Value::as_object)
            .ok_or(format!("step {i}: \"expect\" is required"))?;
        unknown_keys(expect, EXPECT_KEYS, &format!("step {i} expect"))?;
        match expect.get("status") {
            Some(Value::Number(n)) => statuses.push(n.as_u64().unwrap_or(0)),
            Some(Value::Object(per_version)) => {
                for version in &versions {
                    let status = per_version
                        .get(version)
                        .and_then(Value::as_u64)
                        .ok_or(format!("step {i}: no status for {version}"))?;
                    statuses.push(status);
                }
            }
            _ => return Err(format!("step {i}: expect.status is required")),
        }
        for reference in references(&Value::Object(step.clone())) {
            if let Some(n) = reference.strip_prefix("$etag:") {
                let n: usize = n.parse().map_err(|_| format!("step {i}: {reference}"))?;
                if n >= i {
                    return Err(format!("step {i}: {reference} is not an earlier step"));
                }
            }
            if let Some(mark) = reference.strip_prefix("$time:") {
                if !marks.contains(&mark) {
                    return Err(format!("step {i}: {reference} names no earlier mark"));
                }
            }
        }
    }
    // A name ending in `--409` promises a step that answers 409.
    if let Some((_, status)) = name.rsplit_once("--") {
        let status: u64 = status
            .parse()
            .map_err(|_| format!("name ends in --{status}, not a status"))?;
        if !statuses.contains(&status) {
            return Err(format!("named --{status} but no step expects {status}"));
        }
    }
    Ok(Fixture {
        name: name.to_owned(),
        versions,
        steps,
    })
}

/// Every `$etag:`/`$time:` string in a value.
fn references(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) if s.starts_with("$etag:") || s.starts_with("$time:") => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(references).collect(),
        Value::Object(map) => map.values().flat_map(references).collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Running fixtures
// ---------------------------------------------------------------------------

/// A response read whole, as bytes.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.bytes).ok()
    }

    fn shown(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        let text: String = text.chars().take(300).collect();
        format!("{} {text}", self.status.as_u16())
    }
}

async fn send(builder: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
    let response = builder.send().await?;
    Ok(Answer {
        status: response.status(),
        headers: response.headers().clone(),
        bytes: response.bytes().await?.to_vec(),
    })
}

/// What one run of a fixture has seen so far.
struct Run {
    ns: String,
    version: String,
    etags: BTreeMap<usize, String>,
    marks: BTreeMap<String, String>,
}

impl Run {
    fn substitute(&self, value: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => Value::String(self.substitute_str(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.substitute(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.substitute(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    fn substitute_str(&self, s: &str) -> Result<String, String> {
        if let Some(n) = s.strip_prefix("$etag:") {
            let n: usize = n.parse().map_err(|_| format!("bad reference {s}"))?;
            return self
                .etags
                .get(&n)
                .cloned()
                .ok_or(format!("{s}: step {n} answered no ETag"));
        }
        if let Some(mark) = s.strip_prefix("$time:") {
            return self.marks.get(mark).cloned().ok_or(format!("{s}: no mark"));
        }
        Ok(s.replace("$ns", &self.ns))
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn param_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Builds the request of a step.
fn request(
    client: &Xapi,
    run: &Run,
    step: &Map<String, Value>,
) -> Result<reqwest::RequestBuilder, String> {
    let method = Method::from_bytes(step["method"].as_str().unwrap().as_bytes()).unwrap();
    let path = format!("/{}", step["resource"].as_str().unwrap());
    let mut builder = client.request(method, &path);
    if let Some(params) = step.get("params") {
        let params = run.substitute(params)?;
        let pairs: Vec<(String, String)> = params
            .as_object()
            .ok_or("params must be an object")?
            .iter()
            .map(|(k, v)| (k.clone(), param_text(v)))
            .collect();
        builder = builder.query(&pairs);
    }
    let headers = match step.get("headers") {
        Some(headers) => run.substitute(headers)?,
        None => json!({}),
    };
    let headers = headers.as_object().ok_or("headers must be an object")?;
    let explicit_type = headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"));
    if let Some(body) = step.get("body") {
        let (bytes, content_type) = match body {
            Value::Object(raw) if raw.contains_key("$text") => (
                run.substitute_str(raw["$text"].as_str().ok_or("$text is a string")?)?
                    .into_bytes(),
                raw.get("contentType")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ),
            Value::Object(raw) if raw.contains_key("$base64") => (
                base64::engine::general_purpose::STANDARD
                    .decode(raw["$base64"].as_str().ok_or("$base64 is a string")?)
                    .map_err(|e| format!("$base64: {e}"))?,
                raw.get("contentType")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ),
            json => (
                serde_json::to_vec(&run.substitute(json)?).unwrap(),
                Some("application/json".to_owned()),
            ),
        };
        if let (Some(content_type), false) = (content_type, explicit_type) {
            builder = builder.header("Content-Type", content_type);
        }
        builder = builder.body(bytes);
    }
    for (name, value) in headers {
        builder = builder.header(name.as_str(), param_text(value));
    }
    Ok(builder)
}

/// Is `expected` (an object) contained in `actual`?
fn is_subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|actual| is_subset(v, actual))),
        _ => expected == actual,
    }
}

/// Everything wrong with one answer (empty when it is as expected).
fn verify(run: &Run, step: &Map<String, Value>, answer: &Answer) -> Result<Vec<String>, String> {
    let expect = run.substitute(&step["expect"])?;
    let mut wrong = Vec::new();
    let status = match &expect["status"] {
        Value::Object(per_version) => per_version[&run.version].as_u64().unwrap(),
        other => other.as_u64().unwrap(),
    };
    if u64::from(answer.status.as_u16()) != status {
        wrong.push(format!("status: expected {status}, got {}", answer.shown()));
    }
    if let Some(body) = expect.get("body") {
        match answer.json() {
            Some(actual) if actual == *body => {}
            _ => wrong.push(format!("body: expected {body}, got {}", answer.shown())),
        }
    }
    if let Some(ids) = expect.get("ids") {
        let sorted = |v: &Value| -> Option<Vec<String>> {
            let mut ids: Vec<String> = v
                .as_array()?
                .iter()
                .map(|id| id.as_str().map(str::to_owned))
                .collect::<Option<_>>()?;
            ids.sort();
            Some(ids)
        };
        let actual = answer.json().as_ref().and_then(sorted);
        if actual != sorted(ids) {
            wrong.push(format!(
                "ids: expected {ids} (any order), got {}",
                answer.shown()
            ));
        }
    }
    if let Some(text) = expect.get("text").and_then(Value::as_str) {
        if answer.bytes != text.as_bytes() {
            wrong.push(format!(
                "content: expected {text:?}, got {}",
                answer.shown()
            ));
        }
    }
    if let Some(encoded) = expect.get("base64").and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("expect.base64: {e}"))?;
        if answer.bytes != bytes {
            wrong.push(format!(
                "content: expected {} bytes {encoded}, got {} bytes {}",
                bytes.len(),
                answer.bytes.len(),
                base64::engine::general_purpose::STANDARD.encode(&answer.bytes)
            ));
        }
    }
    if let Some(headers) = expect.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            let expected = param_text(value);
            match answer.header(name) {
                Some(actual) if actual == expected => {}
                actual => wrong.push(format!(
                    "header {name}: expected {expected:?}, got {actual:?}"
                )),
            }
        }
    }
    for name in expect["headers_present"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or("");
        if answer.header(name).is_none() {
            wrong.push(format!("header {name}: missing"));
        }
    }
    for name in expect["headers_absent"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or("");
        if let Some(value) = answer.header(name) {
            wrong.push(format!("header {name}: expected none, got {value:?}"));
        }
    }
    if let Some(error) = expect.get("error") {
        let actual = answer
            .json()
            .map(|b| b["error"].clone())
            .unwrap_or(Value::Null);
        if !is_subset(error, &actual) {
            wrong.push(format!(
                "error: expected {error} within, got {}",
                answer.shown()
            ));
        }
    }
    for needle in expect["error_mentions"].as_array().into_iter().flatten() {
        let needle = needle.as_str().unwrap_or("");
        let message = answer.json().map(|b| b["error"]["message"].clone());
        if !message
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains(needle))
        {
            wrong.push(format!(
                "error message: expected it to mention {needle:?}, got {}",
                answer.shown()
            ));
        }
    }
    wrong.extend(general_rules(step, answer));
    Ok(wrong)
}

/// The rules every answer of a document resource keeps.
fn general_rules(step: &Map<String, Value>, answer: &Answer) -> Vec<String> {
    let mut wrong = Vec::new();
    if answer.status.is_client_error() && !answer.json().is_some_and(|b| b["error"].is_object()) {
        wrong.push(format!(
            "a 4xx answers a JSON body with an error object, got {}",
            answer.shown()
        ));
    }
    if answer.status == StatusCode::NO_CONTENT && !answer.bytes.is_empty() {
        wrong.push(format!("204 with a body: {}", answer.shown()));
    }
    if let Some(etag) = answer.header("etag") {
        let hex = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"'));
        let ok = hex.is_some_and(|h| {
            h.len() == 40
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if !ok {
            wrong.push(format!(
                "ETag {etag:?} is not a quoted lowercase hex SHA-1 (3.1)"
            ));
        }
    }
    if let Some(modified) = answer.header("last-modified") {
        if chrono::DateTime::parse_from_rfc2822(&modified).is_err() {
            wrong.push(format!("Last-Modified {modified:?} is not an HTTP date"));
        }
    }
    let params = step.get("params").and_then(Value::as_object);
    let single = params.is_some_and(|p| p.contains_key("stateId") || p.contains_key("profileId"));
    if step["method"] == "GET" && single && answer.status == StatusCode::OK {
        let expected = format!("\"{}\"", sha1_hex(&answer.bytes));
        match answer.header("etag") {
            Some(etag) if etag == expected => {}
            etag => wrong.push(format!(
                "GET of a document: ETag must be the quoted SHA-1 of the content {expected} (3.1), got {etag:?}"
            )),
        }
        if answer.header("last-modified").is_none() {
            wrong.push("GET of a document: no Last-Modified (2.2)".into());
        }
    }
    wrong
}

/// Runs one fixture at one version; its failures.
async fn run_fixture(client: Xapi, fixture: &Fixture, version: &str) -> Vec<Finding> {
    let client = client.with_version(version);
    let mut run = Run {
        ns: format!("{}.v{}", fixture.name, version.replace('.', "")),
        version: version.to_owned(),
        etags: BTreeMap::new(),
        marks: BTreeMap::new(),
    };
    let at = |i: usize, step: &Map<String, Value>| {
        format!(
            "{}.json [{version}] step {i} ({} {})",
            fixture.name,
            step.get("method").and_then(Value::as_str).unwrap_or("mark"),
            step.get("resource").and_then(Value::as_str).unwrap_or("")
        )
    };
    for (i, step) in fixture.steps.iter().enumerate() {
        let step = step.as_object().unwrap();
        if let Some(mark) = step.get("mark").and_then(Value::as_str) {
            // Clear of the writes before and after, in the server's clock too.
            tokio::time::sleep(Duration::from_millis(15)).await;
            run.marks.insert(mark.to_owned(), now_rfc3339());
            tokio::time::sleep(Duration::from_millis(15)).await;
            continue;
        }
        let builder = match request(&client, &run, step) {
            Ok(builder) => builder,
            Err(e) => return vec![Finding::Failure(format!("{}: {e}", at(i, step)))],
        };
        let answer = match send(builder).await {
            Ok(answer) => answer,
            Err(e) => {
                return vec![Finding::Failure(format!(
                    "{}: request failed: {e}",
                    at(i, step)
                ))]
            }
        };
        if let Some(etag) = answer.header("etag") {
            run.etags.insert(i, etag);
        }
        let known_bug = step.get("known_bug").and_then(Value::as_str);
        match (verify(&run, step, &answer), known_bug) {
            (Ok(wrong), None) if wrong.is_empty() => {}
            (Ok(wrong), Some(bug)) if wrong.is_empty() => {
                return vec![Finding::Failure(format!(
                "{}: marked known_bug ({bug}) but now answers as the rule says: remove the mark",
                at(i, step)
            ))]
            }
            (Ok(wrong), known_bug) => {
                let skipped = fixture.steps.len() - i - 1;
                let mut shown = format!("{}:\n      {}", at(i, step), wrong.join("\n      "));
                if skipped > 0 {
                    shown.push_str(&format!("\n      ({skipped} later steps not run)"));
                }
                return vec![match known_bug {
                    Some(bug) => Finding::KnownBug(format!("{shown}\n      known bug: {bug}")),
                    None => Finding::Failure(shown),
                }];
            }
            (Err(e), _) => return vec![Finding::Failure(format!("{}: {e}", at(i, step)))],
        }
    }
    Vec::new()
}

/// What a fixture run found: a failure, or a step marked `known_bug` that
/// still fails (reported, not failed; a marked step that passes is a failure).
enum Finding {
    Failure(String),
    KnownBug(String),
}

/// Runs every fixture at each of its versions against one server, each run in
/// its own namespace and concurrently; every failure, in fixture order, and
/// the known bugs seen.
async fn check(server: &TestServer, fixtures: &[Fixture]) -> (Vec<String>, Vec<String>) {
    let mut tasks = Vec::new();
    for fixture in fixtures {
        for version in &fixture.versions {
            let fixture = Fixture {
                name: fixture.name.clone(),
                versions: fixture.versions.clone(),
                steps: fixture.steps.clone(),
            };
            let client = server.client();
            let version = version.clone();
            tasks.push(tokio::spawn(async move {
                run_fixture(client, &fixture, &version).await
            }));
        }
    }
    let (mut failures, mut known) = (Vec::new(), Vec::new());
    for task in tasks {
        for finding in task.await.expect("fixture task") {
            match finding {
                Finding::Failure(f) => failures.push(f),
                Finding::KnownBug(k) => known.push(k),
            }
        }
    }
    (failures, known)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn document_rules_as_data() {
    let (fixtures, mut failures) = load_fixtures(&fixtures_dir());
    assert!(
        fixtures.len() + failures.len() >= 25,
        "expected at least 25 fixtures in {}, found {}",
        fixtures_dir().display(),
        fixtures.len() + failures.len()
    );
    let server = start();
    wait_until_serving(&server).await;
    let (found, known) = check(&server, &fixtures).await;
    failures.extend(found);
    if !known.is_empty() {
        eprintln!(
            "{} fixture runs stop at a step marked known_bug (not failed; see the fixtures):\n  - {}",
            known.len(),
            known.join("\n  - ")
        );
    }
    let runs: usize = fixtures.iter().map(|f| f.versions.len()).sum();
    assert!(
        failures.is_empty(),
        "{} of {} fixture runs failed:\n  - {}",
        failures.len(),
        runs,
        failures.join("\n  - ")
    );
}

/// The checker itself: a fixture that must fail does, and names the step.
#[tokio::test]
async fn check_reports_failures() {
    let bad = parse_fixture(
        "self-test",
        r#"{"rule": "a wrong expectation", "versions": ["1.0.3"], "steps": [
            {"method": "GET", "resource": "activities/state",
             "params": {"activityId": "https://courses.example.nl/$ns", "agent": {"mbox": "mailto:x@$ns.example.nl"}, "stateId": "none"},
             "expect": {"status": 200}}]}"#,
    )
    .unwrap();
    let misnamed = parse_fixture(
        "x--409",
        r#"{"rule": "r", "versions": ["2.0.0"], "steps": [
            {"method": "GET", "resource": "activities/profile", "params": {}, "expect": {"status": 400}}]}"#,
    );
    assert!(misnamed.is_err(), "a --409 fixture must expect a 409");
    let dangling = parse_fixture(
        "y",
        r#"{"rule": "r", "versions": ["2.0.0"], "steps": [
            {"method": "GET", "resource": "activities/profile", "headers": {"If-Match": "$etag:0"}, "expect": {"status": 400}}]}"#,
    );
    assert!(dangling.is_err(), "$etag:N must name an earlier step");
    let server = start();
    let (failures, known) = check(&server, &[bad]).await;
    assert!(known.is_empty(), "{known:?}");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("self-test.json [1.0.3] step 0")
            && failures[0].contains("expected 200"),
        "{}",
        failures[0]
    );
}

// ---------------------------------------------------------------------------
// SHA-1 (the ETag rule of 3.1), written out so the oracle is not the server's
// ---------------------------------------------------------------------------

fn sha1_hex(data: &[u8]) -> String {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (slot, word) in w.iter_mut().zip(block.chunks_exact(4)) {
            *slot = u32::from_be_bytes(word.try_into().unwrap());
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (total, part) in h.iter_mut().zip([a, b, c, d, e]) {
            *total = total.wrapping_add(part);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn sha1_known_answers() {
    assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(
        sha1_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
    );
    assert_eq!(
        sha1_hex(&vec![b'a'; 1_000_000]),
        "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
    );
}

// ---------------------------------------------------------------------------
// What data cannot say well
// ---------------------------------------------------------------------------

async fn state(
    client: &Xapi,
    method: Method,
    params: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let mut builder = client.request(method, "/activities/state").query(params);
    if let Some(body) = body {
        builder = builder.json(body);
    }
    send(builder).await.expect("state request")
}

async fn agent_profile(
    client: &Xapi,
    method: Method,
    params: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let mut builder = client.request(method, "/agents/profile").query(params);
    if let Some(body) = body {
        builder = builder.json(body).header("If-None-Match", "*");
    }
    send(builder).await.expect("agent profile request")
}

fn ids(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, StatusCode::OK, "ids: {}", answer.shown());
    let mut ids: Vec<String> = serde_json::from_slice(&answer.bytes).expect("an array of ids");
    ids.sort();
    ids
}

/// `lrs erase` of a learner: their state and agent profile are gone (404, no
/// ids), another learner's state in the same activity is untouched, and the
/// same agent writing again starts with nothing of the old.
#[tokio::test]
async fn erased_learner_documents_are_gone_others_untouched() {
    let mut server = start();
    let client = server.client();
    let activity = activity_iri("documents/erasure");
    let anna = json!({"objectType": "Agent", "name": "Anna Wissen", "mbox": "mailto:anna.wissen@example.nl"}).to_string();
    let bert = json!({"mbox": "mailto:bert.blijven@example.nl"}).to_string();
    let anna_state = [
        ("activityId", activity.as_str()),
        ("agent", anna.as_str()),
        ("stateId", "progress"),
    ];
    let bert_state = [
        ("activityId", activity.as_str()),
        ("agent", bert.as_str()),
        ("stateId", "progress"),
    ];
    let anna_ids = [("activityId", activity.as_str()), ("agent", anna.as_str())];
    let anna_profile = [("agent", anna.as_str()), ("profileId", "preferences")];

    for (params, body) in [
        (&anna_state, json!({"page": 7, "notes": "Anna's notes"})),
        (&bert_state, json!({"page": 2})),
    ] {
        let put = state(&client, Method::PUT, params, Some(&body)).await;
        assert_eq!(
            put.status,
            StatusCode::NO_CONTENT,
            "PUT state: {}",
            put.shown()
        );
    }
    let put = agent_profile(
        &client,
        Method::PUT,
        &anna_profile,
        Some(&json!({"lang": "nl"})),
    )
    .await;
    assert_eq!(
        put.status,
        StatusCode::NO_CONTENT,
        "PUT agent profile: {}",
        put.shown()
    );
    let bert_before = state(&client, Method::GET, &bert_state, None).await;
    assert_eq!(
        bert_before.status,
        StatusCode::OK,
        "{}",
        bert_before.shown()
    );
    assert_eq!(
        state(&client, Method::GET, &anna_state, None).await.status,
        StatusCode::OK
    );

    server.stop().unwrap();
    let out = server.lrs(&["erase", "--agent", &anna]).expect("lrs erase");
    assert!(
        out.contains("erased"),
        "lrs erase reports the erasure: {out:?}"
    );
    server.launch().unwrap();
    let client = server.client();

    let gone = state(&client, Method::GET, &anna_state, None).await;
    assert_eq!(
        gone.status,
        StatusCode::NOT_FOUND,
        "erased learner's state: {}",
        gone.shown()
    );
    assert_eq!(
        ids(&state(&client, Method::GET, &anna_ids, None).await),
        Vec::<String>::new(),
        "erased learner's state ids"
    );
    let gone = agent_profile(&client, Method::GET, &anna_profile, None).await;
    assert_eq!(
        gone.status,
        StatusCode::NOT_FOUND,
        "erased learner's agent profile: {}",
        gone.shown()
    );
    let gone = agent_profile(&client, Method::GET, &[("agent", anna.as_str())], None).await;
    assert_eq!(
        ids(&gone),
        Vec::<String>::new(),
        "erased learner's profile ids"
    );

    let bert_after = state(&client, Method::GET, &bert_state, None).await;
    assert_eq!(
        bert_after.status,
        StatusCode::OK,
        "the other learner's state: {}",
        bert_after.shown()
    );
    assert_eq!(
        bert_after.bytes, bert_before.bytes,
        "the other learner's state is unchanged"
    );
    assert_eq!(bert_after.header("etag"), bert_before.header("etag"));

    // The same address writing again is a new person: nothing old comes back.
    let again = [
        ("activityId", activity.as_str()),
        ("agent", anna.as_str()),
        ("stateId", "after-erase"),
    ];
    let put = state(&client, Method::PUT, &again, Some(&json!({"page": 1}))).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.shown());
    assert_eq!(
        ids(&state(&client, Method::GET, &anna_ids, None).await),
        vec!["after-erase".to_owned()]
    );
    let old = state(&client, Method::GET, &anna_state, None).await;
    assert_eq!(
        old.status,
        StatusCode::NOT_FOUND,
        "the erased state stays gone: {}",
        old.shown()
    );
}

/// A credential of another tenant sees no ids and gets 404 for the same
/// documents, its writes and deletes do not touch them, and its
/// If-None-Match: * does not reveal that they exist.
#[tokio::test]
async fn another_tenant_sees_no_documents() {
    let (server, b) = start_with_credential("b", "tenant-b", &[]).await;
    let a = server.client();

    let activity = activity_iri("documents/tenants");
    let agent = json!({"mbox": "mailto:tenant.learner@example.nl"}).to_string();
    let single = [
        ("activityId", activity.as_str()),
        ("agent", agent.as_str()),
        ("stateId", "s"),
    ];
    let context = [("activityId", activity.as_str()), ("agent", agent.as_str())];
    let profile = [("activityId", activity.as_str()), ("profileId", "p")];
    let agent_single = [("agent", agent.as_str()), ("profileId", "p")];

    let put = state(&a, Method::PUT, &single, Some(&json!({"owner": "a"}))).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.shown());
    let put = send(
        a.request(Method::PUT, "/activities/profile")
            .query(&profile)
            .header("If-None-Match", "*")
            .json(&json!({"owner": "a"})),
    )
    .await
    .unwrap();
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.shown());
    let put = agent_profile(&a, Method::PUT, &agent_single, Some(&json!({"owner": "a"}))).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.shown());
    let a_before = state(&a, Method::GET, &single, None).await;

    // Reads.
    assert_eq!(
        ids(&state(&b, Method::GET, &context, None).await),
        Vec::<String>::new(),
        "b: state ids"
    );
    let got = state(&b, Method::GET, &single, None).await;
    assert_eq!(
        got.status,
        StatusCode::NOT_FOUND,
        "b: state: {}",
        got.shown()
    );
    let got = send(
        b.request(Method::GET, "/activities/profile")
            .query(&[("activityId", activity.as_str())]),
    )
    .await
    .unwrap();
    assert_eq!(ids(&got), Vec::<String>::new(), "b: activity profile ids");
    let got = send(
        b.request(Method::GET, "/activities/profile")
            .query(&profile),
    )
    .await
    .unwrap();
    assert_eq!(
        got.status,
        StatusCode::NOT_FOUND,
        "b: activity profile: {}",
        got.shown()
    );
    assert_eq!(
        ids(&agent_profile(&b, Method::GET, &[("agent", agent.as_str())], None).await),
        Vec::<String>::new(),
        "b: agent profile ids"
    );
    let got = agent_profile(&b, Method::GET, &agent_single, None).await;
    assert_eq!(
        got.status,
        StatusCode::NOT_FOUND,
        "b: agent profile: {}",
        got.shown()
    );

    // Writes: If-None-Match: * succeeds for b (nothing there for b), and
    // neither b's writes nor b's delete-all touch a's documents.
    let put = send(
        b.request(Method::PUT, "/activities/profile")
            .query(&profile)
            .header("If-None-Match", "*")
            .json(&json!({"owner": "b"})),
    )
    .await
    .unwrap();
    assert_eq!(
        put.status,
        StatusCode::NO_CONTENT,
        "b: If-None-Match: * on a's profile id: {}",
        put.shown()
    );
    let put = state(&b, Method::PUT, &single, Some(&json!({"owner": "b"}))).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.shown());
    let deleted = state(&b, Method::DELETE, &context, None).await;
    assert_eq!(
        deleted.status,
        StatusCode::NO_CONTENT,
        "{}",
        deleted.shown()
    );

    let a_after = state(&a, Method::GET, &single, None).await;
    assert_eq!(
        a_after.status,
        StatusCode::OK,
        "a's state after b's writes: {}",
        a_after.shown()
    );
    assert_eq!(a_after.bytes, a_before.bytes);
    let a_profile = send(
        a.request(Method::GET, "/activities/profile")
            .query(&profile),
    )
    .await
    .unwrap();
    assert_eq!(a_profile.status, StatusCode::OK, "{}", a_profile.shown());
    assert_eq!(
        a_profile.json(),
        Some(json!({"owner": "a"})),
        "a's activity profile"
    );
    let b_profile = send(
        b.request(Method::GET, "/activities/profile")
            .query(&profile),
    )
    .await
    .unwrap();
    assert_eq!(
        b_profile.json(),
        Some(json!({"owner": "b"})),
        "b's activity profile"
    );
    assert_eq!(
        ids(&state(&b, Method::GET, &context, None).await),
        Vec::<String>::new(),
        "b deleted its own state"
    );
}

/// 8 tasks POST-merge distinct keys into one state document at the same time
/// (4 keys each, one POST per key), without If-Match / If-None-Match. The
/// writer checks that the document a merge read is still current when it
/// appends; a merge that lost the race is redone by the server, because the
/// client set no condition that could fail (Communication 3.1). So every POST
/// is answered 204 and afterwards every key is there: no update is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_post_merges_lose_no_key() {
    const TASKS: usize = 8;
    const KEYS_PER_TASK: usize = 4;
    let server = start();
    let client = server.client();
    wait_until_serving(&server).await;
    let activity = activity_iri("documents/concurrent-merge");
    let agent = json!({"mbox": "mailto:race@example.nl"}).to_string();
    let params = vec![
        ("activityId".to_owned(), activity),
        ("agent".to_owned(), agent),
        ("stateId".to_owned(), "shared".to_owned()),
    ];
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = client.clone();
        let params = params.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for k in 0..KEYS_PER_TASK {
                let body = json!({format!("task{task}-key{k}"): task * 100 + k});
                let answer = send(
                    client
                        .request(Method::POST, "/activities/state")
                        .query(&params)
                        .json(&body),
                )
                .await
                .expect("POST");
                if answer.status != StatusCode::NO_CONTENT {
                    panic!(
                        "task {task} key {k}: a POST without conditions was refused: {}",
                        answer.shown()
                    );
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("merge task");
    }
    let answer = send(
        client
            .request(Method::GET, "/activities/state")
            .query(&params),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.shown());
    let document = answer.json().expect("a JSON document");
    let keys = document.as_object().expect("a JSON object");
    let missing: Vec<String> = (0..TASKS)
        .flat_map(|t| (0..KEYS_PER_TASK).map(move |k| format!("task{t}-key{k}")))
        .filter(|key| !keys.contains_key(key))
        .collect();
    assert!(
        missing.is_empty(),
        "lost updates: {} of {} keys missing after concurrent merges (every POST answered 204): {missing:?}\n{document}",
        missing.len(),
        TASKS * KEYS_PER_TASK
    );
    assert_eq!(
        keys.len(),
        TASKS * KEYS_PER_TASK,
        "no other keys: {document}"
    );
    for t in 0..TASKS {
        for k in 0..KEYS_PER_TASK {
            assert_eq!(keys[&format!("task{t}-key{k}")], json!(t * 100 + k));
        }
    }
}

// ---------------------------------------------------------------------------
// A real xAPI client library end to end
// ---------------------------------------------------------------------------

/// Runs `node tests/client/e2e.mjs` (the @xapi/xapi library, pinned in
/// tests/client/package.json) against a fresh server. Skipped, saying so, only
/// when `node` is not on PATH or `npm ci --prefix tests/client` has not run.
#[tokio::test]
async fn xapi_client_library_end_to_end() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("client");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        eprintln!("SKIPPED xapi_client_library_end_to_end: `node` is not on PATH");
        return;
    }
    if !dir.join("node_modules/@xapi/xapi/package.json").exists() {
        eprintln!(
            "SKIPPED xapi_client_library_end_to_end: {} is missing; run `npm ci --prefix tests/client`",
            dir.join("node_modules").display()
        );
        return;
    }
    let server = start();
    wait_until_serving(&server).await;
    let child = tokio::process::Command::new("node")
        .arg("e2e.mjs")
        .current_dir(&dir)
        .env("LRS_ENDPOINT", format!("{}/xapi/", server.base_url))
        .env("LRS_KEY", &server.key)
        .env("LRS_SECRET", &server.secret)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("e2e.mjs finishes within 60 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node tests/client/e2e.mjs failed ({}):\n{stdout}{stderr}",
        output.status
    );
    assert!(stdout.contains("checks passed"), "{stdout}{stderr}");
}
