//! The HTTP protocol around the resources (Communication 3 and 4): the version
//! header, authentication and scopes, the About resource, error bodies,
//! unknown parameters, the body size limit and tenant isolation.

use crate::common::*;
use lrs_blackbox_tests::{statement, StatusCode, Xapi};
use serde_json::{json, Value};

fn error_names(reply: &lrs_blackbox_tests::Reply, what: &str) -> (String, String, String) {
    let error = &reply.body["error"];
    let field = |name: &str| -> String {
        error[name]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("{what}: error.{name} missing in {}", reply.text))
            .to_owned()
    };
    (field("path"), field("rule"), field("message"))
}

#[tokio::test]
async fn the_version_header_is_required_and_echoed() {
    let server = start();
    let client = server.client();
    let body = statement("anna", "experienced", "protocol/version");

    let reply = client
        .with_version("")
        .post_statements(&body)
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "no version header: {}",
        reply.text
    );
    assert!(
        reply.text.contains("X-Experience-API-Version"),
        "the error names the header: {}",
        reply.text
    );
    assert!(
        reply.body["error"].is_object(),
        "json error body: {}",
        reply.text
    );
    let reply = client.with_version("").get_statements(&[]).await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "GET without version header: {}",
        reply.text
    );

    for unsupported in ["0.9", "0.95", "3.0.0", "1.1.0", "banana"] {
        let reply = client
            .with_version(unsupported)
            .get_statements(&[])
            .await
            .unwrap();
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "version {unsupported:?}: {}",
            reply.text
        );
        let reply = client
            .with_version(unsupported)
            .post_statements(&body)
            .await
            .unwrap();
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "POST with version {unsupported:?}: {}",
            reply.text
        );
    }
    assert!(
        query_ids(&client, &[]).await.is_empty(),
        "rejected requests stored nothing"
    );

    for (asked, echoed) in [
        ("1.0.3", "1.0.3"),
        ("2.0.0", "2.0.0"),
        ("1.0.0", "1.0.3"),
        ("1.0.1", "1.0.3"),
    ] {
        let versioned = client.with_version(asked);
        let reply = versioned.post_statements(&body).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "POST with {asked}: {}",
            reply.text
        );
        let reply = versioned.get_statements(&[]).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "GET with {asked}: {}",
            reply.text
        );
        assert_eq!(
            reply
                .headers
                .get("X-Experience-API-Version")
                .and_then(|v| v.to_str().ok()),
            Some(echoed),
            "asked {asked}"
        );
    }

    // About: no auth, no version header; lists the versions.
    let reply = Xapi::send(reqwest::Client::new().get(format!("{}/xapi/about", server.base_url)))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "/xapi/about without auth: {}",
        reply.text
    );
    let versions: Vec<&str> = reply.body["version"]
        .as_array()
        .expect("version list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        versions.contains(&"1.0.3") && versions.contains(&"2.0.0"),
        "about lists 1.0.3 and 2.0.0: {versions:?}"
    );
    assert!(
        reply.headers.contains_key("X-Experience-API-Version"),
        "about says its version too"
    );
}

#[tokio::test]
async fn authentication_is_required() {
    let server = start();
    let client = server.client();
    let body = statement("anna", "experienced", "protocol/auth");
    let url = format!("{}/xapi/statements", server.base_url);
    let http = reqwest::Client::new();

    let no_auth = http.get(&url).header("X-Experience-API-Version", "1.0.3");
    let reply = Xapi::send(no_auth).await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "no credentials: {}",
        reply.text
    );
    let challenge = reply
        .headers
        .get("WWW-Authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.to_ascii_lowercase().starts_with("basic"),
        "401 challenges for Basic: {challenge:?}"
    );

    let no_auth_post = http
        .post(&url)
        .header("X-Experience-API-Version", "1.0.3")
        .json(&body);
    let reply = Xapi::send(no_auth_post).await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "POST without credentials: {}",
        reply.text
    );
    assert!(reply.headers.contains_key("WWW-Authenticate"));

    for (what, wrong) in [
        (
            "wrong secret",
            client.with_credential(&server.key, "not-the-secret"),
        ),
        ("empty secret", client.with_credential(&server.key, "")),
        (
            "unknown key",
            client.with_credential("lrs_000000000000000000000000", &server.secret),
        ),
        (
            "secret as key",
            client.with_credential(&server.secret, &server.key),
        ),
    ] {
        let reply = wrong.get_statements(&[]).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.text
        );
        let reply = wrong.post_statements(&body).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what} POST: {}",
            reply.text
        );
    }
    for header in ["Bearer abc", "Basic !!!not-base64", "Basic Zm9v"] {
        let reply = Xapi::send(
            http.get(&url)
                .header("X-Experience-API-Version", "1.0.3")
                .header("Authorization", header),
        )
        .await
        .unwrap();
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "Authorization {header:?}: {}",
            reply.text
        );
    }
    assert!(
        query_ids(&client, &[]).await.is_empty(),
        "nothing was stored by unauthenticated requests"
    );
    // The right credential still works after wrong ones.
    post_one(&client, &body).await;
}

#[tokio::test]
async fn scopes_limit_what_a_credential_may_do() {
    let mut server = start();
    wait_until_serving(&server).await;
    server.stop().unwrap();
    let (reader_key, reader_secret) = server
        .add_credential("reader", "default", &["statements/read"])
        .unwrap();
    let (writer_key, writer_secret) = server
        .add_credential("writer", "default", &["statements/write"])
        .unwrap();
    server.launch().unwrap();
    let client = server.client();
    let reader = client.with_credential(&reader_key, &reader_secret);
    let writer = client.with_credential(&writer_key, &writer_secret);
    let existing = post_one(&client, &statement("anna", "experienced", "scope/1")).await;

    let reply = reader
        .post_statements(&statement("anna", "experienced", "scope/reader"))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "statements/read cannot POST: {}",
        reply.text
    );
    let reply = reader
        .put_statement(&new_id(), &statement("anna", "experienced", "scope/reader"))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "statements/read cannot PUT: {}",
        reply.text
    );
    assert_eq!(
        query_ids(&reader, &[]).await,
        vec![existing.clone()],
        "statements/read can query"
    );
    assert_eq!(
        get_by_id(&reader, &existing).await.status,
        StatusCode::OK,
        "statements/read can GET by id"
    );

    let reply = writer.get_statements(&[]).await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "statements/write cannot query: {}",
        reply.text
    );
    let reply = get_by_id(&writer, &existing).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "statements/write cannot GET by id: {}",
        reply.text
    );
    let written = post_one(&writer, &statement("anna", "experienced", "scope/writer")).await;
    let put = new_id();
    let reply = writer
        .put_statement(&put, &statement("anna", "experienced", "scope/writer-put"))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "statements/write can PUT: {}",
        reply.text
    );

    let ids = query_ids(&client, &[]).await;
    assert_eq!(
        ids,
        vec![put.clone(), written.clone(), existing.clone()],
        "only the allowed writes were stored"
    );
    let by_writer = get_by_id(&client, &written).await;
    assert_eq!(
        by_writer.body["authority"]["account"]["name"],
        json!(writer_key),
        "authority is the writing credential"
    );
    assert_eq!(by_writer.body["authority"]["name"], json!("writer"));
}

#[tokio::test]
async fn bad_requests_say_what_and_where() {
    let server = start();
    let client = server.client();
    let post_raw = |body: &'static str| {
        Xapi::send(
            client
                .request(reqwest::Method::POST, "/statements")
                .header("Content-Type", "application/json")
                .body(body),
        )
    };

    for bad in [
        "{not json",
        "",
        "[{\"actor\": ",
        "null",
        "42",
        "\"a string\"",
    ] {
        let reply = post_raw(bad).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "body {bad:?}: {}",
            reply.text
        );
        error_names(&reply, bad);
    }

    let valid = statement("anna", "experienced", "protocol/errors");
    let mut bad_mbox = valid.clone();
    bad_mbox["actor"]["mbox"] = json!("anna@example.nl");
    let mut bad_verb = valid.clone();
    bad_verb["verb"]["id"] = json!("not an iri");
    let mut no_actor = valid.clone();
    no_actor.as_object_mut().unwrap().remove("actor");
    let mut unknown_property = valid.clone();
    unknown_property["colour"] = json!("blue");
    let mut bad_timestamp = valid.clone();
    bad_timestamp["timestamp"] = json!("yesterday");
    let mut bad_score = valid.clone();
    bad_score["result"] = json!({"score": {"scaled": 1.5}});
    let mut two_ifis = valid.clone();
    two_ifis["actor"]["openid"] = json!("https://openid.example.nl/anna");
    let mut bad_id = valid.clone();
    bad_id["id"] = json!("not-a-uuid");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("mbox without mailto:", bad_mbox.clone(), "$.actor.mbox"),
        ("verb id not an IRI", bad_verb.clone(), "$.verb.id"),
        ("score.scaled above 1", bad_score, "$.result.score.scaled"),
        ("timestamp not ISO 8601", bad_timestamp, "$.timestamp"),
        ("statement id not a uuid", bad_id, "$.id"),
        (
            "batch item 1 verb id",
            json!([valid.clone(), bad_verb]),
            "$[1].verb.id",
        ),
        (
            "batch item 2 mbox",
            json!([valid.clone(), valid.clone(), bad_mbox]),
            "$[2].actor.mbox",
        ),
        ("no actor", no_actor, "$"),
        ("unknown property", unknown_property, "$"),
        ("two identifiers", two_ifis, "$.actor"),
    ];
    let mut failures = Vec::new();
    for (what, body, path) in &cases {
        let reply = client.post_statements(body).await.unwrap();
        if reply.status != StatusCode::BAD_REQUEST {
            failures.push(format!(
                "{what}: expected 400, got {} {}",
                reply.status, reply.text
            ));
            continue;
        }
        let (got_path, _, _) = error_names(&reply, what);
        if !got_path.starts_with(path) {
            failures.push(format!(
                "{what}: expected error.path {path}, got {got_path}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "invalid statements:\n  {}",
        failures.join("\n  ")
    );
    let reply = client.put_statement(&new_id(), &cases[0].1).await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "PUT invalid: {}",
        reply.text
    );
    assert_eq!(error_names(&reply, "PUT").0, "$.actor.mbox");

    // Unknown query parameters.
    for (what, reply) in [
        (
            "GET ?colour",
            client.get_statements(&[("colour", "blue")]).await.unwrap(),
        ),
        (
            "GET ?Verb",
            client
                .get_statements(&[("Verb", &verb_iri("experienced"))])
                .await
                .unwrap(),
        ),
        (
            "POST ?colour",
            Xapi::send(
                client
                    .request(reqwest::Method::POST, "/statements")
                    .query(&[("colour", "blue")])
                    .json(&valid),
            )
            .await
            .unwrap(),
        ),
        (
            "PUT ?colour",
            Xapi::send(
                client
                    .request(reqwest::Method::PUT, "/statements")
                    .query(&[("statementId", new_id())])
                    .query(&[("colour", "blue")])
                    .json(&valid),
            )
            .await
            .unwrap(),
        ),
    ] {
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text
        );
        error_names(&reply, what);
    }
    assert!(
        query_ids(&client, &[]).await.is_empty(),
        "nothing was stored by bad requests"
    );

    // A body over the limit (16 MiB): 413 with a json body, answered on the
    // headers alone (Content-Length), before any of the body is sent.
    let (status, body) =
        raw_request_headers_only(&server.base_url, &server.key, &server.secret, LIMIT + 1).await;
    assert_eq!(status, 413, "Content-Length over the limit: {body}");
    let body: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("413 body is not json ({e}): {body:?}"));
    assert!(
        body["error"].is_object(),
        "413 has a json error body: {body}"
    );
    // The server still works afterwards.
    post_one(&client, &valid).await;
}

#[tokio::test]
async fn tenants_do_not_see_each_other() {
    let (server, b) = start_with_credential("b", "tenant-b", &[]).await;
    let a = server.client();

    let secret_activity = activity_iri("tenant/a-only");
    let a_id = post_one(&a, &statement("anna", "experienced", "tenant/a-only")).await;
    let a_voided = post_one(&a, &statement("anna", "experienced", "tenant/a-voided")).await;
    post_one(
        &a,
        &json!({"actor": {"mbox": "mailto:admin@example.nl"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                "object": {"objectType": "StatementRef", "id": a_voided}}),
    )
    .await;
    let b_id = post_one(&b, &statement("bob", "experienced", "tenant/b-only")).await;

    assert_eq!(
        query_ids(&b, &[]).await,
        vec![b_id.clone()],
        "B sees only its own statements"
    );
    assert!(
        !query_ids(&a, &[]).await.contains(&b_id),
        "A does not see B's"
    );
    for (what, query) in [
        ("agent", vec![("agent", mbox_agent("anna"))]),
        (
            "agent, related",
            vec![
                ("agent", mbox_agent("anna")),
                ("related_agents", "true".into()),
            ],
        ),
        ("activity", vec![("activity", secret_activity.clone())]),
        ("verb", vec![("verb", verb_iri("experienced"))]),
    ] {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let ids = query_ids(&b, &query).await;
        assert!(
            !ids.contains(&a_id) && !ids.contains(&a_voided),
            "B by {what}: {ids:?}"
        );
    }

    // By id: exactly what a random id gets.
    let random = get_by_id(&b, &new_id()).await;
    for (key, id) in [("statementId", &a_id), ("voidedStatementId", &a_voided)] {
        let reply = b.get_statements(&[(key, id.as_str())]).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "B {key} of A's statement: {}",
            reply.text
        );
        assert_eq!(
            reply.body, random.body,
            "B {key}: the same answer as for an unknown id"
        );
    }
    assert_eq!(
        get_by_id(&a, &a_id).await.status,
        StatusCode::OK,
        "A sees its own"
    );

    // B writing a different statement under A's id neither conflicts (which
    // would reveal A's statement) nor changes A's statement.
    let reply = b
        .put_statement(&a_id, &statement("bob", "completed", "tenant/b-clash"))
        .await
        .unwrap();
    assert_ne!(
        reply.status,
        StatusCode::CONFLICT,
        "B learns nothing about A's ids: {}",
        reply.text
    );
    let reply = get_by_id(&a, &a_id).await;
    assert_eq!(
        reply.body["object"]["id"],
        json!(secret_activity),
        "A's statement is unchanged"
    );
}

const LIMIT: usize = 16 * 1024 * 1024;

/// Sends only the head of a POST /xapi/statements announcing `length` body
/// bytes, and reads the answer: (status, body).
async fn raw_request_headers_only(
    base_url: &str,
    key: &str,
    secret: &str,
    length: usize,
) -> (u16, String) {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
    let head = format!(
        "POST /xapi/statements HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {auth}\r\n\
         X-Experience-API-Version: 1.0.3\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let deadline = std::time::Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout(deadline, stream.read(&mut buffer))
            .await
            .expect("the server answers before the body is sent")
            .expect("read");
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let declared = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            });
            if n == 0 || declared.is_some_and(|d| body.len() >= d) {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .expect("status line");
                return (status, body.to_owned());
            }
        }
        assert!(n > 0, "connection closed without an answer: {text:?}");
    }
}

/// An ordinary HTTP client sending a body over the limit must get to read
/// the 413 (RFC 9112 9.6: a server closing a connection after a response
/// must not reset it while the client is still sending).
#[tokio::test]
async fn an_ordinary_client_reads_the_413_for_an_oversized_body() {
    let server = start();
    let client = server.client();
    let mut big = Vec::with_capacity(LIMIT + 64);
    big.extend_from_slice(b"{\"actor\": {\"mbox\": \"mailto:big@example.nl\", \"name\": \"");
    big.resize(LIMIT + 16, b'x');
    big.extend_from_slice(b"\"}}");
    let reply = Xapi::send(
        client
            .request(reqwest::Method::POST, "/statements")
            .header("Content-Type", "application/json")
            .body(big),
    )
    .await
    .unwrap_or_else(|e| panic!("POST of {} bytes: no answer, {e:?}", LIMIT + 19));
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert!(
        reply.body["error"].is_object(),
        "413 has a json error body: {:?}",
        reply.text
    );
    post_one(
        &client,
        &statement("anna", "experienced", "protocol/after-big"),
    )
    .await;
}
