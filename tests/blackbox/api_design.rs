//! The REST-API Design Rules on `/api` and `/admin` (docs/api-design-rules.md)
//! and the OpenAPI document, against a real server: the document is served
//! without a credential at `/api/v1/openapi.json` and a real OpenAPI
//! validator (PyPI `openapi-spec-validator`, in the Python of
//! `LRS_ANALYTICS_PYTHON`) accepts it; the versioned paths answer with
//! `API-Version` and their errors as problem details; the old paths answer
//! the same bodies, with `Deprecation`, `Sunset` and a `Link` to their
//! successor; a trailing slash is a 404.

use crate::common::Api;
use lrs_blackbox_tests::StatusCode;
use serde_json::Value;

fn api(server: &lrs_blackbox_tests::TestServer) -> Api {
    Api {
        http: reqwest::Client::new(),
        base: server.base_url.clone(),
        key: server.key.clone(),
        secret: server.secret.clone(),
    }
}

async fn head_and_body(
    api: &Api,
    path: &str,
    authenticated: bool,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = api.http.get(format!("{}{path}", api.base));
    if authenticated {
        request = request.basic_auth(&api.key, Some(&api.secret));
    }
    let response = request.send().await.expect(path);
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Runs `openapi-spec-validator` on the document; `None` (with the reason)
/// when no Python with it is configured, a panic instead when
/// `LRS_REQUIRE_OPENAPI_VALIDATOR=1` (CI).
fn validate_with_openapi_spec_validator(document: &str) -> Option<()> {
    let required = std::env::var("LRS_REQUIRE_OPENAPI_VALIDATOR").is_ok_and(|v| v == "1");
    let skip = |reason: String| {
        if required {
            panic!("LRS_REQUIRE_OPENAPI_VALIDATOR=1 but {reason}");
        }
        eprintln!(
            "skipping the OpenAPI validator: {reason} (V/bin/pip install openapi-spec-validator; LRS_ANALYTICS_PYTHON=V/bin/python)"
        );
        None
    };
    let Some(python) = std::env::var_os("LRS_ANALYTICS_PYTHON") else {
        return skip("LRS_ANALYTICS_PYTHON is not set".into());
    };
    let probe = std::process::Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output();
    if !probe.is_ok_and(|out| out.status.success()) {
        return skip(format!(
            "{} cannot import openapi_spec_validator",
            python.to_string_lossy()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document).unwrap();
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             from openapi_spec_validator.readers import read_from_filename\n\
             spec, _ = read_from_filename(sys.argv[1])\n\
             validate(spec)\n\
             print('valid', spec['openapi'], len(spec['paths']), 'paths')",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    Some(())
}

#[tokio::test]
async fn the_openapi_document_is_served_publicly_and_a_validator_accepts_it() {
    let server = crate::common::start();
    let api = api(&server);
    let response = api
        .http
        .get(format!("{}/api/v1/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["api-version"], "1.0.0");
    let text = response.text().await.unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["info"]["version"], "1.0.0");
    for path in [
        "/api/v1/figures/monthly",
        "/admin/v1/tenants",
        "/xapi/statements",
        "/oauth/token",
        "/health/live",
    ] {
        assert!(document["paths"][path].is_object(), "{path} missing");
    }
    validate_with_openapi_spec_validator(&text);
}

#[tokio::test]
async fn versioned_paths_carry_the_version_and_answer_problem_details() {
    let server = crate::common::start();
    let api = api(&server);

    // The same body on the versioned and the deprecated path.
    let (status, headers, current) = head_and_body(&api, "/admin/v1/tenants", true).await;
    assert_eq!(status, StatusCode::OK, "{current}");
    assert_eq!(headers["api-version"], "1.0.0");
    assert!(headers.get("deprecation").is_none());
    let (status, headers, old) = head_and_body(&api, "/admin/tenants", true).await;
    assert_eq!(status, StatusCode::OK, "{old}");
    assert_eq!(old, current);
    assert_eq!(headers["api-version"], "1.0.0");
    assert_eq!(headers["deprecation"], "@1796515200");
    assert_eq!(headers["sunset"], "Fri, 31 Dec 2027 23:59:59 GMT");
    assert_eq!(
        headers["link"],
        "</admin/v1/tenants>; rel=\"successor-version\""
    );

    // An error below /v1: problem details that keep the error object.
    let (status, headers, problem) =
        head_and_body(&api, "/api/v1/figures/monthly?colour=blue", true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["api-version"], "1.0.0");
    assert_eq!(problem["type"], "about:blank");
    assert_eq!(problem["title"], "Bad Request");
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["instance"], "/api/v1/figures/monthly");
    assert_eq!(problem["error"]["code"], "invalid");
    assert_eq!(problem["error"]["path"], "?colour");
    assert_eq!(problem["error"]["rule"], "parameter.unknown");
    assert_eq!(problem["detail"], problem["error"]["message"]);
    // The deprecated path answers the error as it always did.
    let (status, headers, old) =
        head_and_body(&api, "/api/figures/monthly?colour=blue", true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(old["error"], problem["error"]);
    assert!(old.get("type").is_none());
    assert_eq!(
        headers["link"],
        "</api/v1/figures/monthly?colour=blue>; rel=\"successor-version\""
    );

    // No credential: 401 as problem details, with the challenge.
    let (status, headers, problem) = head_and_body(&api, "/admin/v1/tenants", false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(problem["error"]["code"], "unauthorized");

    // No trailing slash: a 404, not a redirect.
    for path in ["/admin/v1/tenants/", "/api/v1/figures/monthly/"] {
        let (status, headers, _) = head_and_body(&api, path, true).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(headers.get("location").is_none());
    }
}
