//! Rate limits and authentication lockouts (docs/security-limits.md): each
//! test starts a server with low limits and a short lockout, and checks the
//! 429s, their `Retry-After` and JSON body, that requests pass again
//! afterwards, the metrics and the alert lines in the server's log.
//! Addresses other than loopback are simulated with `X-Forwarded-For`
//! through loopback declared a trusted proxy.

use lrs_blackbox_tests::{Reply, StatusCode, TestServer, Xapi};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// A server with these extra `serve` arguments, its log captured, and
/// `extra` more credentials (key, secret) issued before it starts.
fn start_limited(args: &[&str], extra: usize) -> (TestServer, Vec<(String, String)>) {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test")))
        .expect("the server is prepared");
    let credentials = (0..extra)
        .map(|n| {
            server
                .add_credential(&format!("extra-{n}"), "default", &[])
                .expect("credentials add")
        })
        .collect();
    server.serve_args = args.iter().map(|a| a.to_string()).collect();
    // The alert lines are warnings, which the test server logs.
    server.capture_stderr = true;
    server.launch().expect("the server starts");
    (server, credentials)
}

/// GET /xapi/statements?limit=1, optionally as if from `from` (through the
/// trusted proxy on loopback).
async fn get_statements(client: &Xapi, from: Option<&str>) -> Reply {
    let mut request = client
        .request(reqwest::Method::GET, "/statements")
        .query(&[("limit", "1")]);
    if let Some(address) = from {
        request = request.header("X-Forwarded-For", address);
    }
    Xapi::send(request).await.expect("GET /statements")
}

async fn get_about(server: &TestServer) -> Reply {
    let request = reqwest::Client::new()
        .get(format!("{}/xapi/about", server.base_url))
        .header("X-Experience-API-Version", "1.0.3");
    Xapi::send(request).await.expect("GET /about")
}

/// Asserts a 429 in the shape of every error body, with a `Retry-After` of
/// 1..=`at_most` seconds; returns it.
fn assert_too_many(reply: &Reply, at_most: u64) -> u64 {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert_eq!(reply.body["error"]["status"], 429, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], "too_many_requests");
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        reply.headers
    );
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(
        (1..=at_most).contains(&retry_after),
        "Retry-After {retry_after} not in 1..={at_most}"
    );
    retry_after
}

async fn scrape(server: &TestServer) -> String {
    let response = reqwest::get(format!("{}/metrics", server.base_url))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// The value of the sample of `name` with all of `labels`; 0 if absent.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The server's log lines that carry `alert` = `name`.
fn alert_lines(server: &TestServer, name: &str) -> Vec<String> {
    let wanted = format!("alert=\"{name}\"");
    server
        .stderr()
        .lines()
        .filter(|line| line.contains(&wanted))
        .map(str::to_owned)
        .collect()
}

async fn sleep_secs(secs: u64) {
    // A little more than asked: the server rounds up, the clocks differ.
    tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_burst_over_the_address_limit_gets_429_then_passes_after_the_wait() {
    let (server, _) = start_limited(&["--rate-per-address", "2", "--burst-per-address", "5"], 0);
    let mut statuses = Vec::new();
    let mut first_refusal = None;
    for _ in 0..12 {
        let reply = get_about(&server).await;
        statuses.push(reply.status.as_u16());
        if reply.status == StatusCode::TOO_MANY_REQUESTS && first_refusal.is_none() {
            first_refusal = Some(reply);
        }
    }
    assert!(
        statuses[..5].iter().all(|s| *s == 200),
        "the burst passes: {statuses:?}"
    );
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 5, "past the burst, refused: {statuses:?}");
    let refusal = first_refusal.expect("a 429");
    let retry_after = assert_too_many(&refusal, 1);
    assert!(
        refusal.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per client address"),
        "{}",
        refusal.text
    );
    // Authenticated requests from the same address are limited as well,
    // whatever the credential.
    let reply = get_statements(&server.client(), None).await;
    assert_too_many(&reply, 1);
    // The operations endpoints have their own limit.
    let live = reqwest::get(format!("{}/health/live", server.base_url))
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);

    sleep_secs(retry_after).await;
    assert_eq!(get_about(&server).await.status, StatusCode::OK);

    let metrics = scrape(&server).await;
    let counted = sample(&metrics, "lrs_rate_limited_total", &[r#"limit="address""#]);
    assert!(counted >= (refused + 1) as f64, "{counted} < {refused} + 1");
    let alerts = alert_lines(&server, "ratelimit.exceeded");
    assert_eq!(
        alerts.len(),
        1,
        "one line per client and minute, the rest counted: {alerts:?}"
    );
    assert!(alerts[0].contains("limit=\"address\""), "{}", alerts[0]);
    assert!(alerts[0].contains("127.0.0.1"), "{}", alerts[0]);
}

#[tokio::test]
async fn the_credential_limit_holds_across_addresses_and_spares_other_credentials() {
    let (server, extra) = start_limited(
        &[
            "--rate-per-credential",
            "1",
            "--burst-per-credential",
            "3",
            "--trusted-proxy",
            "127.0.0.1",
        ],
        1,
    );
    let client = server.client();
    let mut replies = Vec::new();
    for n in 0..6 {
        // A different address each time: the limit is the credential's.
        replies.push(get_statements(&client, Some(&format!("203.0.113.{n}"))).await);
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    let refusal = replies
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .unwrap_or_else(|| panic!("no 429 past the burst: {statuses:?}"));
    let retry_after = assert_too_many(refusal, 1);
    assert!(
        refusal.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per credential"),
        "{}",
        refusal.text
    );
    // Another credential, from the very same address, is not affected.
    let (key, secret) = &extra[0];
    let other = client.with_credential(key, secret);
    assert_eq!(
        get_statements(&other, Some("203.0.113.5")).await.status,
        StatusCode::OK
    );

    sleep_secs(retry_after).await;
    assert_eq!(
        get_statements(&client, Some("203.0.113.9")).await.status,
        StatusCode::OK
    );
    let metrics = scrape(&server).await;
    assert!(
        sample(
            &metrics,
            "lrs_rate_limited_total",
            &[r#"limit="credential""#]
        ) >= 1.0
    );
    let alerts = alert_lines(&server, "ratelimit.exceeded");
    assert!(
        alerts
            .iter()
            .any(|line| line.contains("limit=\"credential\"") && line.contains(&server.key)),
        "{alerts:?}"
    );
}

#[tokio::test]
async fn eleven_wrong_secrets_lock_out_even_the_right_secret_until_the_lockout_ends() {
    let (server, extra) = start_limited(&["--auth-lockout-secs", "3"], 1);
    let right = server.client();
    let wrong = right.with_credential(&server.key, "not-the-secret");
    let before = scrape(&server).await;
    for attempt in 1..=10 {
        let reply = get_statements(&wrong, None).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {}",
            reply.text
        );
    }
    let eleventh = get_statements(&wrong, None).await;
    assert_too_many(&eleventh, 3);
    let twelfth = get_statements(&right, None).await;
    let retry_after = assert_too_many(&twelfth, 3);
    assert!(
        twelfth.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked out"),
        "{}",
        twelfth.text
    );
    // The lockout is of this key from this address: another credential
    // from the same address still gets in (the address's own count, 30,
    // is not reached).
    let (key, secret) = &extra[0];
    assert_eq!(
        get_statements(&right.with_credential(key, secret), None)
            .await
            .status,
        StatusCode::OK
    );

    let metrics = scrape(&server).await;
    let lockouts =
        |text: &str| sample(text, "lrs_auth_lockouts_total", &[r#"scope="address_key""#]);
    assert_eq!(lockouts(&metrics) - lockouts(&before), 1.0);
    let refused = |text: &str| sample(text, "lrs_rate_limited_total", &[r#"limit="auth_lockout""#]);
    assert_eq!(refused(&metrics) - refused(&before), 2.0);
    let bad_secret =
        |text: &str| sample(text, "lrs_auth_failures_total", &[r#"reason="bad_secret""#]);
    assert_eq!(
        bad_secret(&metrics) - bad_secret(&before),
        10.0,
        "a refused attempt is not a checked one"
    );
    let alerts = alert_lines(&server, "auth.lockout");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains(&server.key), "{}", alerts[0]);
    assert!(alerts[0].contains("127.0.0.1"), "{}", alerts[0]);
    assert!(alerts[0].contains("failures=10"), "{}", alerts[0]);

    sleep_secs(retry_after).await;
    assert_eq!(get_statements(&right, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn another_key_from_a_locked_address_is_refused_but_other_addresses_are_not() {
    let (server, _) = start_limited(
        &[
            "--auth-failures-per-address",
            "15",
            "--auth-lockout-secs",
            "3",
            "--trusted-proxy",
            "127.0.0.1",
        ],
        0,
    );
    let attacker = Some("198.51.100.7");
    let right = server.client();
    let wrong = right.with_credential(&server.key, "guess");
    for _ in 0..10 {
        assert_eq!(
            get_statements(&wrong, attacker).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The pair is locked; made-up keys from there go on failing until the
    // address's own count (15) is reached.
    let made_up = right.with_credential("lrs_000000000000000000000000", "guess");
    for _ in 0..5 {
        assert_eq!(
            get_statements(&made_up, attacker).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let other_key = right.with_credential("lrs_111111111111111111111111", "guess");
    assert_too_many(&get_statements(&other_key, attacker).await, 3);
    // Even the real key with its right secret, from there.
    let retry_after = assert_too_many(&get_statements(&right, attacker).await, 3);
    // The owner, from their own address, is not affected.
    assert_eq!(
        get_statements(&right, Some("192.0.2.10")).await.status,
        StatusCode::OK
    );
    assert_eq!(get_statements(&right, None).await.status, StatusCode::OK);
    let metrics = scrape(&server).await;
    assert_eq!(
        sample(&metrics, "lrs_auth_lockouts_total", &[r#"scope="address""#]),
        1.0
    );
    let alerts = alert_lines(&server, "auth.lockout");
    assert!(
        alerts
            .iter()
            .any(|line| line.contains("scope=\"address\"") && line.contains("198.51.100.7")),
        "{alerts:?}"
    );

    sleep_secs(retry_after).await;
    assert_eq!(
        get_statements(&right, attacker).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_attacked_from_many_addresses_raises_an_alert_and_its_owner_still_gets_in() {
    let (server, _) = start_limited(
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--auth-alert-failures-per-key",
            "20",
        ],
        0,
    );
    let right = server.client();
    let wrong = right.with_credential(&server.key, "guess");
    for n in 0..12 {
        let from = format!("203.0.113.{n}");
        for _ in 0..2 {
            let reply = get_statements(&wrong, Some(&from)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
        }
    }
    assert_eq!(
        get_statements(&right, Some("192.0.2.10")).await.status,
        StatusCode::OK
    );
    let alerts = alert_lines(&server, "auth.bruteforce");
    assert_eq!(alerts.len(), 1, "once per window: {alerts:?}");
    assert!(alerts[0].contains(&server.key), "{}", alerts[0]);
    assert!(alerts[0].contains("failures=20"), "{}", alerts[0]);
    assert!(alerts[0].contains("addresses=10"), "{}", alerts[0]);
    let metrics = scrape(&server).await;
    assert_eq!(sample(&metrics, "lrs_auth_bruteforce_total", &[]), 1.0);
    assert_eq!(
        sample(
            &metrics,
            "lrs_auth_lockouts_total",
            &[r#"scope="address_key""#]
        ),
        0.0
    );
}

/// The median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn unknown_keys_wrong_secrets_and_expired_keys_look_alike() {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    // Expires two seconds from now: expired by the time it is tried.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let expired = server
        .lrs(&["credentials", "add", "--name", "old", "--expires-at", &soon])
        .unwrap();
    let (expired_key, expired_secret) = expired.trim().split_once(' ').unwrap();
    server.launch().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let right = server.client();
    let cases = [
        (
            "unknown key",
            right.with_credential("lrs_0123456789abcdef01234567", "guess"),
        ),
        ("wrong secret", right.with_credential(&server.key, "guess")),
        (
            "expired key, wrong secret",
            right.with_credential(expired_key, "guess"),
        ),
    ];
    let mut answers = Vec::new();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    // Interleaved, so that a busy moment of the machine hits all alike.
    for _ in 0..5 {
        for (n, (_, client)) in cases.iter().enumerate() {
            let started = Instant::now();
            let reply = get_statements(client, None).await;
            times[n].push(started.elapsed());
            answers.push((n, reply));
        }
    }
    let first = &answers[0].1;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    for (n, reply) in &answers {
        assert_eq!(reply.status, first.status, "{}", cases[*n].0);
        assert_eq!(reply.text, first.text, "{}: same bytes", cases[*n].0);
        assert_eq!(
            reply.headers.get("www-authenticate"),
            first.headers.get("www-authenticate"),
            "{}",
            cases[*n].0
        );
    }
    // Roughly the same time: an unknown key costs an argon2 run as well. A
    // missing one would make it some 30x faster; the margin is for a busy
    // machine.
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    assert!(
        medians[0] * 4 >= medians[1],
        "unknown key {:?} vs wrong secret {:?}",
        medians[0],
        medians[1]
    );
    // Only the right secret learns that the credential expired.
    let reply = get_statements(&right.with_credential(expired_key, expired_secret), None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let message: &Value = &reply.body["error"]["message"];
    assert!(
        message.as_str().unwrap().contains("expired"),
        "{}",
        reply.text
    );
}
