//! Access control: every xAPI scope on every route; credential expiry,
//! rotation with a grace period, revocation on the next request, role grants
//! that end, IP allow-lists; and the admin API's permissions (RBAC, least
//! privilege, no escalation).

use crate::common::new_id;
use lrs_blackbox_tests::{Reply, StatusCode, TestServer, Xapi};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn prepare() -> TestServer {
    TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap()
}

/// A request to an admin route with Basic credentials.
async fn admin(
    server: &TestServer,
    (key, secret): (&str, &str),
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut builder = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base_url))
        .basic_auth(key, Some(secret));
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    Xapi::send(builder).await.unwrap()
}

fn rfc3339_in(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

struct Route {
    method: Method,
    path: &'static str,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    /// Scopes that open it (besides `all`).
    opened_by: &'static [&'static str],
}

fn routes() -> Vec<Route> {
    let agent = json!({"mbox": "mailto:scopes@example.nl"}).to_string();
    let activity = "https://courses.example.nl/scopes".to_owned();
    let statement = json!({"actor": {"mbox": "mailto:scopes@example.nl"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
        "object": {"id": activity}});
    let read = &["statements/read", "statements/read/mine", "all/read"];
    let state = vec![
        ("activityId", activity.clone()),
        ("agent", agent.clone()),
        ("stateId", "s".to_owned()),
    ];
    let activity_profile = vec![
        ("activityId", activity.clone()),
        ("profileId", "p".to_owned()),
    ];
    let agent_profile = vec![("agent", agent.clone()), ("profileId", "p".to_owned())];
    let doc = json!({"stap": 1});
    vec![
        Route {
            method: Method::POST,
            path: "/statements",
            query: vec![],
            body: Some(statement.clone()),
            opened_by: &["statements/write"],
        },
        Route {
            method: Method::PUT,
            path: "/statements",
            query: vec![("statementId", new_id())],
            body: Some(statement),
            opened_by: &["statements/write"],
        },
        Route {
            method: Method::GET,
            path: "/statements",
            query: vec![],
            body: None,
            opened_by: read,
        },
        Route {
            method: Method::GET,
            path: "/activities",
            query: vec![("activityId", activity.clone())],
            body: None,
            opened_by: &[
                "statements/read",
                "statements/read/mine",
                "all/read",
                "define",
            ],
        },
        Route {
            method: Method::GET,
            path: "/agents",
            query: vec![("agent", agent.clone())],
            body: None,
            opened_by: read,
        },
        Route {
            method: Method::PUT,
            path: "/activities/state",
            query: state.clone(),
            body: Some(doc.clone()),
            opened_by: &["state"],
        },
        Route {
            method: Method::POST,
            path: "/activities/state",
            query: state.clone(),
            body: Some(doc.clone()),
            opened_by: &["state"],
        },
        Route {
            method: Method::GET,
            path: "/activities/state",
            query: state.clone(),
            body: None,
            opened_by: &["state", "all/read"],
        },
        Route {
            method: Method::DELETE,
            path: "/activities/state",
            query: state,
            body: None,
            opened_by: &["state"],
        },
        Route {
            method: Method::POST,
            path: "/activities/profile",
            query: activity_profile.clone(),
            body: Some(doc.clone()),
            opened_by: &["profile"],
        },
        Route {
            method: Method::GET,
            path: "/activities/profile",
            query: activity_profile.clone(),
            body: None,
            opened_by: &["profile", "all/read"],
        },
        Route {
            method: Method::DELETE,
            path: "/activities/profile",
            query: activity_profile,
            body: None,
            opened_by: &["profile"],
        },
        Route {
            method: Method::POST,
            path: "/agents/profile",
            query: agent_profile.clone(),
            body: Some(doc.clone()),
            opened_by: &["profile"],
        },
        Route {
            method: Method::GET,
            path: "/agents/profile",
            query: agent_profile.clone(),
            body: None,
            opened_by: &["profile", "all/read"],
        },
        Route {
            method: Method::DELETE,
            path: "/agents/profile",
            query: agent_profile,
            body: None,
            opened_by: &["profile"],
        },
    ]
}

#[tokio::test]
async fn every_scope_on_every_route() {
    let mut server = prepare();
    let scopes = [
        "statements/write",
        "statements/read",
        "statements/read/mine",
        "all/read",
        "all",
        "state",
        "define",
        "profile",
    ];
    let mut clients = Vec::new();
    for scope in scopes {
        let (key, secret) = server.add_credential(scope, "default", &[scope]).unwrap();
        clients.push((scope, key, secret));
    }
    server.launch().unwrap();
    let base = server.client();
    let mut checked = 0;
    for (scope, key, secret) in &clients {
        let client = base.with_credential(key, secret);
        for route in routes() {
            let mut request = client
                .request(route.method.clone(), route.path)
                .query(&route.query);
            if let Some(body) = &route.body {
                request = request.json(body);
            }
            let reply = Xapi::send(request).await.unwrap();
            let opened = *scope == "all" || route.opened_by.contains(scope);
            if opened {
                assert!(
                    reply.status.is_success() || reply.status == StatusCode::NOT_FOUND,
                    "{scope} on {} {}: {} {}",
                    route.method,
                    route.path,
                    reply.status,
                    reply.text
                );
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{scope} on {} {}: {}",
                    route.method,
                    route.path,
                    reply.text
                );
                assert_eq!(reply.body["error"]["code"], "forbidden");
            }
            checked += 1;
        }
        // /about needs no credential at all.
        let about = Xapi::send(client.request(Method::GET, "/about"))
            .await
            .unwrap();
        assert_eq!(about.status, StatusCode::OK);
    }
    assert_eq!(checked, scopes.len() * routes().len());
}

/// The server with an administrator (every permission, tenant `kb`).
async fn with_administrator() -> (TestServer, (String, String)) {
    let mut server = prepare();
    server
        .lrs(&[
            "tenants", "define", "--id", "kb", "--name", "KB", "--kind", "kb",
        ])
        .unwrap();
    let mut args = vec!["roles", "define", "--name", "beheerder"];
    for permission in [
        "admin.tenants",
        "admin.roles",
        "admin.credentials",
        "admin.credentials.all",
        "audit.read.all",
    ] {
        args.extend(["--permission", permission]);
    }
    server.lrs(&args).unwrap();
    let line = server
        .lrs(&[
            "credentials",
            "add",
            "--name",
            "Beheer",
            "--tenant",
            "kb",
            "--role",
            "beheerder",
        ])
        .unwrap();
    let (key, secret) = line.trim().split_once(' ').unwrap();
    let administrator = (key.to_owned(), secret.to_owned());
    server.launch().unwrap();
    (server, administrator)
}

async fn issue(server: &TestServer, by: (&str, &str), body: Value) -> (String, String) {
    let reply = admin(server, by, Method::POST, "/admin/credentials", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
    (
        reply.body["key"].as_str().unwrap().to_owned(),
        reply.body["secret"].as_str().unwrap().to_owned(),
    )
}

async fn status_with(server: &TestServer, key: &str, secret: &str) -> Reply {
    server
        .client()
        .with_credential(key, secret)
        .get_statements(&[("limit", "1")])
        .await
        .unwrap()
}

#[tokio::test]
async fn expiry_rotation_revocation_role_ends_and_allow_lists() {
    let (server, administrator) = with_administrator().await;
    let by = (administrator.0.as_str(), administrator.1.as_str());

    // Expiry: works until the moment, then 401 saying so.
    let (key, secret) = issue(
        &server,
        by,
        json!({"name": "kort", "tenant": "default",
        "scopes": ["all"], "expires_at": rfc3339_in(3)}),
    )
    .await;
    assert_eq!(
        status_with(&server, &key, &secret).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let expired = status_with(&server, &key, &secret).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{}", expired.text);
    assert!(expired.text.contains("expired"), "{}", expired.text);

    // Rotation: old and new secret both work during the grace period, then only the new.
    let (key, old) = issue(
        &server,
        by,
        json!({"name": "roteer", "tenant": "default", "scopes": ["all"]}),
    )
    .await;
    let rotated = admin(
        &server,
        by,
        Method::POST,
        &format!("/admin/credentials/{key}/rotate"),
        Some(json!({"grace_seconds": 3})),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated.body["previous_secret_valid_until"].is_string());
    assert_eq!(
        status_with(&server, &key, &old).await.status,
        StatusCode::OK
    );
    assert_eq!(
        status_with(&server, &key, &new).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    // After the grace period the old secret is just a wrong secret.
    let superseded = status_with(&server, &key, &old).await;
    assert_eq!(superseded.status, StatusCode::UNAUTHORIZED);
    assert!(
        superseded.text.contains("wrong secret"),
        "{}",
        superseded.text
    );
    assert_eq!(
        status_with(&server, &key, &new).await.status,
        StatusCode::OK
    );

    // A bearer token issued to the credential before its revocation.
    let token = Xapi::send(
        reqwest::Client::new()
            .post(format!("{}/oauth/token", server.base_url))
            .basic_auth(&key, Some(&new))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await
    .unwrap();
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    let token = token.body["access_token"].as_str().unwrap().to_owned();
    let with_token = || {
        Xapi::send(
            reqwest::Client::new()
                .get(format!("{}/xapi/statements?limit=1", server.base_url))
                .bearer_auth(&token)
                .header("X-Experience-API-Version", "1.0.3"),
        )
    };
    assert_eq!(with_token().await.unwrap().status, StatusCode::OK);

    // Revocation takes effect on the very next request (the secret is cached as verified).
    let revoked = admin(
        &server,
        by,
        Method::POST,
        &format!("/admin/credentials/{key}/revoke"),
        Some(json!({"reason": "laptop kwijt"})),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.body["status"], "revoked");
    let refused = status_with(&server, &key, &new).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.text.contains("revoked"), "{}", refused.text);
    // ... and for the token issued to it, though the token has not expired.
    let token_refused = with_token().await.unwrap();
    assert_eq!(
        token_refused.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        token_refused.text
    );
    // A revoked credential cannot be rotated back to life.
    let again = admin(
        &server,
        by,
        Method::POST,
        &format!("/admin/credentials/{key}/rotate"),
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);

    // A role granted until a moment stops giving its permissions then.
    let role = admin(
        &server,
        by,
        Method::PUT,
        "/admin/roles/lezer",
        Some(json!({"permissions": ["admin.credentials"]})),
    )
    .await;
    assert_eq!(role.status, StatusCode::OK, "{}", role.text);
    let (temp_key, temp_secret) = issue(
        &server,
        by,
        json!({"name": "tijdelijk", "tenant": "kb",
        "roles": [{"role": "lezer", "until": rfc3339_in(3)}]}),
    )
    .await;
    let listed = admin(
        &server,
        (&temp_key, &temp_secret),
        Method::GET,
        "/admin/credentials",
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let ended = admin(
        &server,
        (&temp_key, &temp_secret),
        Method::GET,
        "/admin/credentials",
        None,
    )
    .await;
    assert_eq!(ended.status, StatusCode::FORBIDDEN, "{}", ended.text);
    // Without scopes (a role only) the credential reads no learning data.
    let no_data = status_with(&server, &temp_key, &temp_secret).await;
    assert_eq!(no_data.status, StatusCode::FORBIDDEN);

    // IP allow-lists: from 127.0.0.1 only a list holding it opens the credential.
    let (far_key, far_secret) = issue(
        &server,
        by,
        json!({"name": "elders", "tenant": "default",
        "scopes": ["all"], "allowed_networks": ["192.0.2.0/24"]}),
    )
    .await;
    let elsewhere = status_with(&server, &far_key, &far_secret).await;
    assert_eq!(
        elsewhere.status,
        StatusCode::FORBIDDEN,
        "{}",
        elsewhere.text
    );
    let (near_key, near_secret) = issue(
        &server,
        by,
        json!({"name": "hier", "tenant": "default",
        "scopes": ["all"], "allowed_networks": ["127.0.0.1", "::1/128"]}),
    )
    .await;
    assert_eq!(
        status_with(&server, &near_key, &near_secret).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_admin_api_keeps_least_privilege() {
    let (server, administrator) = with_administrator().await;
    let by = (administrator.0.as_str(), administrator.1.as_str());
    for (id, isil) in [("lib-a", "NL-0000000001"), ("lib-b", "NL-0000000002")] {
        let reply = admin(
            &server,
            by,
            Method::PUT,
            &format!("/admin/tenants/{id}"),
            Some(json!({"name": id, "kind": "library", "isil": isil})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    // A tenant's kind never changes; an ISIL belongs to one tenant.
    let changed = admin(
        &server,
        by,
        Method::PUT,
        "/admin/tenants/lib-a",
        Some(json!({"name": "A", "kind": "app", "appid": "a"})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::CONFLICT, "{}", changed.text);
    let taken = admin(
        &server,
        by,
        Method::PUT,
        "/admin/tenants/lib-c",
        Some(json!({"name": "C", "kind": "library", "isil": "NL-0000000001"})),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);

    // A library's credential administrator.
    let role = admin(
        &server,
        by,
        Method::PUT,
        "/admin/roles/sleutelbeheer",
        Some(json!({"permissions": ["admin.credentials"]})),
    )
    .await;
    assert_eq!(role.status, StatusCode::OK);
    let (a_key, a_secret) = issue(
        &server,
        by,
        json!({"name": "beheer A", "tenant": "lib-a",
        "roles": [{"role": "sleutelbeheer"}]}),
    )
    .await;
    let lib_admin = (a_key.as_str(), a_secret.as_str());
    let (b_key, _) = issue(
        &server,
        by,
        json!({"name": "app B", "tenant": "lib-b", "scopes": ["all"]}),
    )
    .await;

    // Issues for its own tenant, not for another.
    issue(
        &server,
        lib_admin,
        json!({"name": "app A", "tenant": "lib-a", "scopes": ["statements/read"]}),
    )
    .await;
    let other = admin(
        &server,
        lib_admin,
        Method::POST,
        "/admin/credentials",
        Some(json!({"name": "x", "tenant": "lib-b", "scopes": ["all"]})),
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.text);
    // Another tenant's credential looks exactly like no credential.
    let foreign = admin(
        &server,
        lib_admin,
        Method::GET,
        &format!("/admin/credentials/{b_key}"),
        None,
    )
    .await;
    let missing = admin(
        &server,
        lib_admin,
        Method::GET,
        "/admin/credentials/lrs_000000000000000000000000",
        None,
    )
    .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(foreign.text, missing.text);
    let revoke_foreign = admin(
        &server,
        lib_admin,
        Method::POST,
        &format!("/admin/credentials/{b_key}/revoke"),
        None,
    )
    .await;
    assert_eq!(revoke_foreign.status, StatusCode::NOT_FOUND);
    let list = admin(&server, lib_admin, Method::GET, "/admin/credentials", None).await;
    assert_eq!(list.status, StatusCode::OK);
    let tenants: Vec<&str> = list.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tenant"].as_str().unwrap())
        .collect();
    assert!(
        !tenants.is_empty() && tenants.iter().all(|t| *t == "lib-a"),
        "{tenants:?}"
    );
    // Never a secret or its hash in a listing.
    let everything = admin(&server, by, Method::GET, "/admin/credentials", None).await;
    assert!(!everything.text.contains("argon2") && !everything.text.contains(&a_secret));

    // No escalation: no granting a role with permissions it lacks, no defining roles, no tenants.
    let escalate = admin(
        &server,
        lib_admin,
        Method::POST,
        "/admin/credentials",
        Some(json!({"name": "x", "tenant": "lib-a", "roles": [{"role": "beheerder"}]})),
    )
    .await;
    assert_eq!(escalate.status, StatusCode::FORBIDDEN, "{}", escalate.text);
    let define = admin(
        &server,
        lib_admin,
        Method::PUT,
        "/admin/roles/alles",
        Some(json!({"permissions": ["admin.tenants"]})),
    )
    .await;
    assert_eq!(define.status, StatusCode::FORBIDDEN);
    let tenant = admin(
        &server,
        lib_admin,
        Method::PUT,
        "/admin/tenants/lib-z",
        Some(json!({"name": "Z", "kind": "kb"})),
    )
    .await;
    assert_eq!(tenant.status, StatusCode::FORBIDDEN);
    // A learning-data credential has no admin powers.
    let (plain_key, plain_secret) = issue(
        &server,
        by,
        json!({"name": "app", "tenant": "lib-a", "scopes": ["all"]}),
    )
    .await;
    let plain = admin(
        &server,
        (&plain_key, &plain_secret),
        Method::GET,
        "/admin/credentials",
        None,
    )
    .await;
    assert_eq!(plain.status, StatusCode::FORBIDDEN);
    let anonymous =
        Xapi::send(reqwest::Client::new().get(format!("{}/admin/credentials", server.base_url)))
            .await
            .unwrap();
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // Bad input: a 400 that says what and where.
    for (body, path) in [
        (
            json!({"name": "x", "tenant": "lib-a", "scopes": ["all", "everything"]}),
            "$.scopes[1]",
        ),
        (
            json!({"name": "x", "tenant": "lib-a", "allowed_networks": ["10.0.0.0/33"]}),
            "$.allowed_networks[0]",
        ),
        (
            json!({"name": "x", "tenant": "lib-a", "expires_in_days": 1000}),
            "$.expires_in_days",
        ),
        (
            json!({"name": "x", "tenant": "lib-a", "roles": [{"role": "bestaat-niet"}]}),
            "$.roles[0].role",
        ),
        (
            json!({"name": "x", "tenant": "lib-a", "wachtwoord": "x"}),
            "$ (line 1",
        ),
    ] {
        let reply = admin(
            &server,
            by,
            Method::POST,
            "/admin/credentials",
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert!(
            reply.body["error"]["path"]
                .as_str()
                .unwrap()
                .starts_with(path),
            "{body}: {}",
            reply.text
        );
    }
    let bad_kind = admin(
        &server,
        by,
        Method::PUT,
        "/admin/tenants/x",
        Some(json!({"name": "x", "kind": "library", "isil": "geen isil"})),
    )
    .await;
    assert_eq!(bad_kind.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_kind.body["error"]["path"], "$.isil");
}
