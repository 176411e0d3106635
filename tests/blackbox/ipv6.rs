//! IPv6 (issue 21; IPv4 and IPv6 are on the Dutch government's list of open
//! standards): `lrs serve --listen [::1]:PORT` serves xAPI over IPv6, and
//! `--listen [::]:PORT` serves both families on one socket, where an IPv4
//! client is still seen as its IPv4 address (credential allow-lists,
//! `/metrics`' loopback rule).
//!
//! Skipped, saying so, only on a machine without an IPv6 loopback address,
//! unless `LRS_REQUIRE_IPV6=1` (CI) makes that a failure.

use lrs_blackbox_tests::{StatusCode, TestServer, Xapi};
use serde_json::json;
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;

/// A free port on `[::1]`, or `None` (with the reason) without IPv6.
fn ipv6_port(test: &str) -> Option<u16> {
    match TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(listener) => Some(listener.local_addr().expect("an address").port()),
        Err(error) => {
            let reason = format!("this machine has no IPv6 loopback address [::1] ({error})");
            if std::env::var("LRS_REQUIRE_IPV6").is_ok_and(|v| v == "1") {
                panic!("LRS_REQUIRE_IPV6=1 but {reason}");
            }
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

fn credential(server: &TestServer, name: &str, network: &str) -> (String, String) {
    let line = server
        .lrs(&[
            "credentials",
            "add",
            "--name",
            name,
            "--allow-network",
            network,
        ])
        .expect("credentials add");
    let (key, secret) = line.trim().split_once(' ').expect("KEY SECRET");
    (key.to_owned(), secret.to_owned())
}

fn statement(n: u32) -> serde_json::Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "actor": {"mbox": format!("mailto:ipv6-{n}@example.nl")},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
        "object": {"id": "https://courses.example.nl/ipv6"},
    })
}

/// Posts a statement and reads it back by id.
async fn round_trip(client: &Xapi, n: u32) -> StatusCode {
    let sent = statement(n);
    let id = sent["id"].as_str().unwrap().to_owned();
    let reply = client.post_statements(&sent).await.expect("POST");
    if reply.status != StatusCode::OK {
        return reply.status;
    }
    let reply = client
        .get_statements(&[("statementId", &id)])
        .await
        .expect("GET");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["id"], id.as_str(), "{}", reply.text);
    assert_eq!(reply.body["actor"]["mbox"], sent["actor"]["mbox"]);
    reply.status
}

#[tokio::test]
async fn the_server_serves_xapi_over_ipv6_and_both_families_on_one_socket() {
    let test = "the_server_serves_xapi_over_ipv6_and_both_families_on_one_socket";
    let Some(port) = ipv6_port(test) else {
        return;
    };
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    let from_v6 = credential(&server, "alleen ::1", "::1/128");
    let from_v4 = credential(&server, "alleen 127.0.0.1", "127.0.0.1/32");

    // --listen [::1]:PORT: IPv6 only.
    server
        .launch_at(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
        .unwrap();
    assert_eq!(server.base_url, format!("http://[::1]:{port}"));
    let v6 = server.client();
    assert_eq!(round_trip(&v6, 1).await, StatusCode::OK);
    // The client's address is ::1: a credential for ::1 works, one for
    // 127.0.0.1 does not.
    assert_eq!(
        round_trip(&v6.with_credential(&from_v6.0, &from_v6.1), 2).await,
        StatusCode::OK
    );
    assert_eq!(
        round_trip(&v6.with_credential(&from_v4.0, &from_v4.1), 3).await,
        StatusCode::FORBIDDEN
    );
    // Nothing listens on IPv4.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "--listen [::1] must not answer on 127.0.0.1"
    );
    server.stop().unwrap();

    // --listen [::]:PORT: both families. An IPv4 client is 127.0.0.1, not
    // ::ffff:127.0.0.1, to its credential's allow-list and to /metrics.
    let port = ipv6_port(test).expect("still IPv6");
    server
        .launch_at(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
        .unwrap();
    let v6 = server.client();
    let v4 = Xapi::new(
        &format!("http://127.0.0.1:{port}"),
        &server.key,
        &server.secret,
        "1.0.3",
    );
    assert_eq!(round_trip(&v6, 4).await, StatusCode::OK);
    assert_eq!(round_trip(&v4, 5).await, StatusCode::OK);
    assert_eq!(
        round_trip(&v4.with_credential(&from_v4.0, &from_v4.1), 6).await,
        StatusCode::OK,
        "an IPv4 client on a dual-stack socket is its IPv4 address"
    );
    assert_eq!(
        round_trip(&v6.with_credential(&from_v6.0, &from_v6.1), 7).await,
        StatusCode::OK
    );
    assert_eq!(
        round_trip(&v4.with_credential(&from_v6.0, &from_v6.1), 8).await,
        StatusCode::FORBIDDEN
    );
    let http = reqwest::Client::new();
    for base in [format!("http://127.0.0.1:{port}"), server.base_url.clone()] {
        let response = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "/metrics from loopback ({base})"
        );
    }
    // The statements written over either family are one store's.
    let reply = v4.get_statements(&[("limit", "100")]).await.unwrap();
    assert_eq!(
        reply.body["statements"].as_array().map(Vec::len),
        Some(6),
        "{}",
        reply.text
    );
    server.stop().unwrap();
}
