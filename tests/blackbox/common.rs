//! Shared helpers of the black-box tests: starting a server, building
//! statements with ids, and reading ids and timestamps out of replies.

use lrs_blackbox_tests::{Reply, StatusCode, TestServer, Xapi};
use serde_json::{json, Value};
use std::path::Path;

/// A fresh server on a fresh data directory with the default credential.
pub fn start() -> TestServer {
    TestServer::start(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).expect("the server starts")
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// `statement` with an `id`.
pub fn with_id(mut statement: Value, id: &str) -> Value {
    statement["id"] = json!(id);
    statement
}

/// An agent object as the `agent` query parameter wants it.
pub fn mbox_agent(learner: &str) -> String {
    json!({"mbox": format!("mailto:{learner}@example.nl")}).to_string()
}

pub fn verb_iri(verb: &str) -> String {
    format!("http://adlnet.gov/expapi/verbs/{verb}")
}

pub fn activity_iri(activity: &str) -> String {
    format!("https://courses.example.nl/{activity}")
}

/// The ids of a statement result, in order.
pub fn ids_of(reply: &Reply) -> Vec<String> {
    reply.body["statements"]
        .as_array()
        .unwrap_or_else(|| panic!("not a StatementResult: {} {}", reply.status, reply.text))
        .iter()
        .map(|s| s["id"].as_str().expect("statement id").to_owned())
        .collect()
}

/// GET /statements?statementId=...
pub async fn get_by_id(client: &Xapi, id: &str) -> Reply {
    client
        .get_statements(&[("statementId", id)])
        .await
        .expect("GET by statementId")
}

/// A query that must answer 200; its ids in order (first page only).
pub async fn query_ids(client: &Xapi, query: &[(&str, &str)]) -> Vec<String> {
    let reply = client.get_statements(query).await.expect("GET /statements");
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "query {query:?}: {}",
        reply.text
    );
    ids_of(&reply)
}

/// POST that must answer 200; the ids the LRS answered.
pub async fn post_ok(client: &Xapi, body: &Value) -> Vec<String> {
    let reply = client
        .post_statements(body)
        .await
        .expect("POST /statements");
    assert_eq!(reply.status, StatusCode::OK, "POST {body}: {}", reply.text);
    reply
        .body
        .as_array()
        .expect("POST answers an array of ids")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// POST one statement that must be accepted; its id.
pub async fn post_one(client: &Xapi, statement: &Value) -> String {
    let ids = post_ok(client, statement).await;
    assert_eq!(ids.len(), 1, "one statement, one id");
    ids.into_iter().next().unwrap()
}

/// An ISO 8601 / RFC 3339 timestamp as microseconds since the epoch.
pub fn micros(timestamp: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(timestamp)
        .unwrap_or_else(|e| panic!("{timestamp:?} is not an RFC 3339 timestamp: {e}"))
        .timestamp_micros()
}

/// The `stored` of a statement, fetched by id.
pub async fn stored_of(client: &Xapi, id: &str) -> String {
    let reply = get_by_id(client, id).await;
    assert_eq!(reply.status, StatusCode::OK, "GET {id}: {}", reply.text);
    reply.body["stored"].as_str().expect("stored").to_owned()
}

/// Now as microseconds since the epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Waits for one authenticated request to succeed: the server is past its
/// start-up (see `durability::sigterm_right_after_start_is_graceful` for why
/// tests that stop the server at once do this first).
pub async fn wait_until_serving(server: &TestServer) {
    let reply = server
        .client()
        .get_statements(&[("limit", "1")])
        .await
        .expect("GET /statements");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// A started server with a second credential (of `tenant`, with `scopes`),
/// issued while the server is briefly stopped; and a client for it.
pub async fn start_with_credential(
    name: &str,
    tenant: &str,
    scopes: &[&str],
) -> (TestServer, Xapi) {
    let mut server = start();
    wait_until_serving(&server).await;
    server.stop().unwrap();
    let (key, secret) = server.add_credential(name, tenant, scopes).unwrap();
    server.launch().unwrap();
    let client = server.client().with_credential(&key, &secret);
    (server, client)
}

/// A caller of the JSON API (`/api`, `/admin`) with Basic credentials.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
    pub secret: String,
}

impl Api {
    /// Any request; the answer's status, JSON body (`null` if none) and text.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .query(query)
            .basic_auth(&self.key, Some(&self.secret));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} {query:?}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, body, text)
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value, String) {
        self.send(reqwest::Method::GET, path, query, None).await
    }

    /// A GET that must answer 200 with JSON.
    pub async fn ok(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let (status, body, text) = self.get(path, query).await;
        assert_eq!(status, StatusCode::OK, "GET {path} {query:?}: {text}");
        body
    }
}

/// Every file under `dir`, recursively, into `out`.
pub fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
    {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

impl Api {
    /// A caller with this credential on this (launched) server.
    pub fn of(server: &TestServer, (key, secret): &(String, String)) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: server.base_url.clone(),
            key: key.clone(),
            secret: secret.clone(),
        }
    }
}

/// The KB (tenant `kb`) and one library (`bieb`, "Bibliotheek Groot", with
/// this ISIL) defined on a prepared server.
pub fn define_kb_and_library(server: &TestServer, isil: &str) {
    server
        .lrs(&[
            "tenants", "define", "--id", "kb", "--name", "KB", "--kind", "kb",
        ])
        .unwrap();
    server
        .lrs(&[
            "tenants",
            "define",
            "--id",
            "bieb",
            "--name",
            "Bibliotheek Groot",
            "--kind",
            "library",
            "--isil",
            isil,
        ])
        .unwrap();
}

/// A role with these permissions, defined on a prepared server.
pub fn define_role(server: &TestServer, name: &str, permissions: &[&str]) {
    let mut command = vec!["roles", "define", "--name", name];
    for permission in permissions {
        command.extend(["--permission", permission]);
    }
    server.lrs(&command).unwrap();
}

/// A generated month's statements, posted in batches of 500 one after the
/// other; every batch must be accepted.
pub async fn post_generated(writer: &Xapi, month: &lrs_blackbox_tests::activity::Month) {
    for chunk in month.sent.chunks(500) {
        let batch = Value::Array(chunk.iter().map(|s| s.statement.clone()).collect());
        let reply = writer.post_statements(&batch).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

/// PUTs a new document with `If-None-Match: *` (xAPI 1.0.3 requires one of
/// the two preconditions on a profile PUT); it must be stored (204).
pub async fn put_new_document(xapi: &Xapi, path: &str, query: &[(&str, &str)], body: Value) {
    let reply = Xapi::send(
        xapi.request(reqwest::Method::PUT, path)
            .header("If-None-Match", "*")
            .query(query)
            .json(&body),
    )
    .await
    .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "PUT {path}: {}",
        reply.text
    );
}

/// Sets a tenant's course model on a prepared server.
pub fn set_course_model(server: &TestServer, tenant: &str, model: &Value) {
    let file = server.data_dir.join("cursusmodel.json");
    std::fs::write(&file, model.to_string()).unwrap();
    server
        .lrs(&[
            "course-model",
            "set",
            "--tenant",
            tenant,
            file.to_str().unwrap(),
        ])
        .unwrap();
}
