//! OAuth 2.0 against a real server: the client-credentials token endpoint
//! and its tokens on the xAPI routes (RFC 6749 errors, scope narrowing,
//! expiry, key rotation, forged tokens); and bearer tokens of an external
//! OpenID provider that the test itself runs on a loopback port (RSA keys
//! generated at test time), rotating its keys mid-test.

use crate::common::{ids_of, new_id, with_id};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lrs_blackbox_tests::{statement, Reply, StatusCode, TestServer, Xapi};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn prepare() -> TestServer {
    TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).expect("prepare")
}

/// `POST /oauth/token` with a form and, if given, HTTP Basic.
async fn token_request(
    server: &TestServer,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Reply {
    let mut builder = reqwest::Client::new()
        .post(format!("{}/oauth/token", server.base_url))
        .form(form);
    if let Some((key, secret)) = basic {
        builder = builder.basic_auth(key, Some(secret));
    }
    Xapi::send(builder).await.expect("POST /oauth/token")
}

/// A token for `key`/`secret` (Basic), asserting success.
async fn token_for(server: &TestServer, key: &str, secret: &str, scope: Option<&str>) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let reply = token_request(server, Some((key, secret)), &form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// `/xapi/statements` with `Authorization: Bearer`.
async fn bearer(
    server: &TestServer,
    token: &str,
    method: reqwest::Method,
    body: Option<&Value>,
) -> Reply {
    let mut builder = reqwest::Client::new()
        .request(method, format!("{}/xapi/statements", server.base_url))
        .bearer_auth(token)
        .header("X-Experience-API-Version", "1.0.3");
    if let Some(body) = body {
        builder = builder.json(body);
    }
    Xapi::send(builder).await.expect("xAPI request")
}

async fn bearer_get(server: &TestServer, token: &str) -> Reply {
    bearer(server, token, reqwest::Method::GET, None).await
}

async fn bearer_post(server: &TestServer, token: &str, body: &Value) -> Reply {
    bearer(server, token, reqwest::Method::POST, Some(body)).await
}

/// The decoded (unverified) header and claims of a JWT.
fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || {
        let part = parts.next().expect("three parts");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    };
    (decode(), decode())
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn assert_oauth_error(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status, "{error}: {}", reply.text);
    assert_eq!(reply.body["error"], error, "{}", reply.text);
    assert!(
        reply.body["error_description"].is_string(),
        "RFC 6749 error shape: {}",
        reply.text
    );
    assert_eq!(
        reply.headers.get("cache-control").unwrap(),
        "no-store",
        "{error}"
    );
}

fn assert_invalid_token(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.text
    );
    assert_eq!(
        reply.body["error"]["code"], "invalid_token",
        "{what}: {}",
        reply.text
    );
    let challenge = reply
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{what}: RFC 6750 challenge, got {challenge:?}"
    );
}

#[tokio::test]
async fn client_credentials_tokens_work_on_the_xapi_routes() {
    let mut server = prepare();
    server.launch().unwrap();
    let (key, secret) = (server.key.clone(), server.secret.clone());

    // HTTP Basic client authentication (client_secret_basic).
    let reply = token_request(
        &server,
        Some((&key, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.headers.get("cache-control").unwrap(), "no-store");
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 600);
    assert_eq!(
        reply.body["scope"], "all",
        "default: the credential's scopes"
    );
    let by_basic = reply.body["access_token"].as_str().unwrap().to_owned();

    let (header, claims) = jwt_parts(&by_basic);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], server.base_url.as_str());
    assert_eq!(claims["sub"], key.as_str());
    assert_eq!(claims["aud"], format!("{}/xapi", server.base_url));
    assert_eq!(claims["tenant"], "default");
    assert_eq!(claims["scope"], "all");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    assert!(claims["jti"].is_string() && claims["nbf"].is_u64());

    // Form fields (client_secret_post).
    let reply = token_request(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &key),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let by_form = reply.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(
        jwt_parts(&by_form).1["jti"],
        claims["jti"],
        "every token has its own id"
    );

    // Both write and read statements; the authority is the credential.
    for token in [&by_basic, &by_form] {
        let id = new_id();
        let reply = bearer_post(
            &server,
            token,
            &with_id(statement("anna", "completed", "c1"), &id),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "POST with a token: {}",
            reply.text
        );
        let reply = bearer_get(&server, token).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "GET with a token: {}",
            reply.text
        );
        assert!(ids_of(&reply).contains(&id));
        let stored = server
            .client()
            .get_statements(&[("statementId", &id)])
            .await
            .unwrap();
        assert_eq!(stored.body["authority"]["account"]["name"], key.as_str());
    }

    // The key set publishes the kid that signed; the metadata points at it.
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", server.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&header["kid"].as_str().unwrap()), "{jwks}");
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("d").is_none()),
        "never the private part: {jwks}"
    );
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.base_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["issuer"], server.base_url.as_str());
    assert_eq!(
        metadata["token_endpoint"],
        format!("{}/oauth/token", server.base_url)
    );
    assert_eq!(
        metadata["jwks_uri"],
        format!("{}/.well-known/jwks.json", server.base_url)
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["client_credentials"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert!(metadata["scopes_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("statements/read")));
}

#[tokio::test]
async fn a_token_narrowed_to_read_cannot_write() {
    let mut server = prepare();
    server.launch().unwrap();
    let (key, secret) = (server.key.clone(), server.secret.clone());
    let reader = token_for(&server, &key, &secret, Some("statements/read")).await;
    assert_eq!(jwt_parts(&reader).1["scope"], "statements/read");
    let reply = bearer_get(&server, &reader).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = bearer_post(&server, &reader, &statement("anna", "completed", "c1")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    // The same credential's Basic and full tokens still write.
    let full = token_for(&server, &key, &secret, None).await;
    let reply = bearer_post(&server, &full, &statement("anna", "completed", "c1")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let mut server = prepare();
    let (reader_key, reader_secret) = server
        .add_credential("reader", "default", &["statements/read"])
        .unwrap();
    server.launch().unwrap();
    let (key, secret) = (server.key.clone(), server.secret.clone());
    let grant = ("grant_type", "client_credentials");

    let wrong_secret = token_request(&server, Some((&key, "not-the-secret")), &[grant]).await;
    assert_oauth_error(&wrong_secret, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(
        wrong_secret.headers.contains_key("www-authenticate"),
        "401 invalid_client challenges"
    );
    let unknown = token_request(
        &server,
        Some(("lrs_000000000000000000000000", "x")),
        &[grant],
    )
    .await;
    assert_oauth_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_client");
    let wrong_form_secret = token_request(
        &server,
        None,
        &[grant, ("client_id", &key), ("client_secret", "nope")],
    )
    .await;
    assert_oauth_error(
        &wrong_form_secret,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    let anonymous = token_request(&server, None, &[grant]).await;
    assert_oauth_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_client");

    let password = token_request(
        &server,
        Some((&key, &secret)),
        &[
            ("grant_type", "password"),
            ("username", "u"),
            ("password", "p"),
        ],
    )
    .await;
    assert_oauth_error(&password, StatusCode::BAD_REQUEST, "unsupported_grant_type");

    let not_held = token_request(
        &server,
        Some((&reader_key, &reader_secret)),
        &[grant, ("scope", "statements/read statements/write")],
    )
    .await;
    assert_oauth_error(&not_held, StatusCode::BAD_REQUEST, "invalid_scope");
    let unknown_scope =
        token_request(&server, Some((&key, &secret)), &[grant, ("scope", "root")]).await;
    assert_oauth_error(&unknown_scope, StatusCode::BAD_REQUEST, "invalid_scope");
    let held = token_request(
        &server,
        Some((&reader_key, &reader_secret)),
        &[grant, ("scope", "statements/read")],
    )
    .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.text);

    let no_grant = token_request(&server, Some((&key, &secret)), &[("scope", "all")]).await;
    assert_oauth_error(&no_grant, StatusCode::BAD_REQUEST, "invalid_request");
    let both_methods = token_request(
        &server,
        Some((&key, &secret)),
        &[grant, ("client_secret", &secret)],
    )
    .await;
    assert_oauth_error(&both_methods, StatusCode::BAD_REQUEST, "invalid_request");
    let repeated = token_request(&server, Some((&key, &secret)), &[grant, grant]).await;
    assert_oauth_error(&repeated, StatusCode::BAD_REQUEST, "invalid_request");
    let json_body = Xapi::send(
        reqwest::Client::new()
            .post(format!("{}/oauth/token", server.base_url))
            .basic_auth(&key, Some(&secret))
            .json(&json!({"grant_type": "client_credentials"})),
    )
    .await
    .unwrap();
    assert_oauth_error(&json_body, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn a_token_stops_working_when_it_expires() {
    let mut server = prepare();
    server.serve_args = vec!["--token-ttl-secs".into(), "2".into()];
    server.launch().unwrap();
    let reply = token_request(
        &server,
        Some((&server.key, &server.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(reply.body["expires_in"], 2, "{}", reply.text);
    let token = reply.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer_get(&server, &token).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let reply = bearer_get(&server, &token).await;
    assert_invalid_token(&reply, "expired token");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused() {
    let mut server = prepare();
    // A fixed public URL: the issuer stays the same across the restart
    // below, although the test server comes back on another port.
    server.serve_args = vec!["--public-url".into(), "https://lrs.test.example/".into()];
    server.launch().unwrap();
    let (key, secret) = (server.key.clone(), server.secret.clone());
    let token = token_for(&server, &key, &secret, Some("statements/read")).await;
    let (header, claims) = jwt_parts(&token);
    assert_eq!(claims["iss"], "https://lrs.test.example");
    assert_eq!(claims["aud"], "https://lrs.test.example/xapi");
    let parts: Vec<&str> = token.split('.').collect();

    // One flipped bit in the signature.
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[10] ^= 0x01;
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(&signature)
    );
    assert_invalid_token(
        &bearer_get(&server, &flipped).await,
        "flipped signature byte",
    );

    // The scope widened after signing.
    let mut widened = claims.clone();
    widened["scope"] = json!("all");
    let widened = format!("{}.{}.{}", parts[0], b64_json(&widened), parts[2]);
    assert_invalid_token(
        &bearer_post(&server, &widened, &statement("a", "b", "c")).await,
        "widened scope",
    );

    // alg none, with and without the original signature.
    let mut none = header.clone();
    none["alg"] = json!("none");
    for forged in [
        format!("{}.{}.", b64_json(&none), parts[1]),
        format!("{}.{}.{}", b64_json(&none), parts[1], parts[2]),
    ] {
        assert_invalid_token(&bearer_get(&server, &forged).await, "alg none");
    }

    // HS256 with the published public key as the HMAC secret (the classic
    // algorithm confusion): as JWK text, and as the raw EC point.
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", server.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the signing key is published")
        .clone();
    let mut point = vec![0x04];
    point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
    for secret in [jwk.to_string().into_bytes(), point] {
        let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        hs.kid = header["kid"].as_str().map(str::to_owned);
        hs.typ = Some("at+jwt".into());
        let forged = jsonwebtoken::encode(
            &hs,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_invalid_token(
            &bearer_get(&server, &forged).await,
            "HS256 with the public key",
        );
    }

    // A token of another LRS: same shape, but its issuer is not trusted here.
    let mut other = prepare();
    other.launch().unwrap();
    let foreign = token_for(&other, &other.key.clone(), &other.secret.clone(), None).await;
    let foreign_claims = jwt_parts(&foreign).1;
    assert_ne!(foreign_claims["iss"], claims["iss"]);
    assert_invalid_token(
        &bearer_get(&server, &foreign).await,
        "another server's token",
    );

    // Garbage.
    assert_invalid_token(&bearer_get(&server, "not.a.jwt").await, "garbage");
    assert_invalid_token(&bearer_get(&server, "").await, "empty");

    // A restart makes every outstanding token unknown.
    assert_eq!(bearer_get(&server, &token).await.status, StatusCode::OK);
    server.stop().unwrap();
    server.launch().unwrap();
    let reply = bearer_get(&server, &token).await;
    assert_invalid_token(&reply, "token from before a restart");
    assert!(reply.text.contains("restart"), "{}", reply.text);
}

#[tokio::test]
async fn the_signing_key_rotates_and_the_previous_one_stays_valid() {
    let mut server = prepare();
    server.env = vec![("LRS_TOKEN_KEY_ROTATION_SECS".into(), "1".into())];
    server.launch().unwrap();
    let (key, secret) = (server.key.clone(), server.secret.clone());
    let first = token_for(&server, &key, &secret, None).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let second = token_for(&server, &key, &secret, None).await;
    let kid = |token: &str| jwt_parts(token).0["kid"].as_str().unwrap().to_owned();
    assert_ne!(
        kid(&first),
        kid(&second),
        "a new key after the rotation period"
    );
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", server.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(published.contains(&kid(&first)), "{jwks}");
    assert!(published.contains(&kid(&second)), "{jwks}");
    for token in [&first, &second] {
        let reply = bearer_get(&server, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

// ---------------------------------------------------------------------------
// An external OpenID provider, run by the test.

const AUDIENCE: &str = "api://lrs-test";

/// An RSA signing key of the test provider.
#[derive(Clone)]
struct IdpKey {
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
    jwk: Value,
}

fn rsa_key(kid: &str) -> IdpKey {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key");
    let der = private.to_pkcs1_der().expect("PKCS#1");
    let public = private.to_public_key();
    IdpKey {
        kid: kid.to_owned(),
        encoding: jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
        // As Entra ID publishes them: no alg, use sig.
        jwk: json!({
            "kty": "RSA", "use": "sig", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }),
    }
}

#[derive(Default)]
struct IdpShared {
    published: Vec<Value>,
    jwks_fetches: usize,
}

/// A minimal OpenID provider on a loopback port: discovery document and
/// JWKS; tokens are signed in the test with [`TestIdp::token`].
struct TestIdp {
    issuer: String,
    shared: Arc<Mutex<IdpShared>>,
}

impl TestIdp {
    async fn start() -> Self {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(IdpShared::default()));
        let discovery = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/discovery/keys"),
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let keys_state = shared.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/discovery/keys",
                get(move || async move {
                    let mut shared = keys_state.lock().unwrap();
                    shared.jwks_fetches += 1;
                    (
                        [("cache-control", "public, max-age=3600")],
                        axum::Json(json!({"keys": shared.published})),
                    )
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { issuer, shared }
    }

    fn publish(&self, keys: &[&IdpKey]) {
        self.shared.lock().unwrap().published = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn jwks_fetches(&self) -> usize {
        self.shared.lock().unwrap().jwks_fetches
    }

    /// Claims of a good token; change them before signing.
    fn claims(&self) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({
            "iss": self.issuer, "sub": "00u-anna", "aud": AUDIENCE,
            "iat": now, "nbf": now, "exp": now + 300,
            "org": "KB", "roles": ["Lrs.Writer"], "name": "Anna de Vries",
        })
    }

    fn sign(key: &IdpKey, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }

    /// The providers file for this provider (discovery, no jwks_uri).
    fn providers_file(&self, dir: &Path, refetch_min_secs: u64) -> std::path::PathBuf {
        let providers = json!([{
            "issuer": self.issuer,
            "audiences": [AUDIENCE],
            "algorithms": ["RS256"],
            "leeway_secs": 5,
            "tenant_claim": "org",
            "tenant_map": {"KB": "kb", "NL-0100030000": "library-0100030000"},
            "scope_claim": "roles",
            "scopes": {
                "Lrs.Writer": {"scopes": ["statements/write", "statements/read"]},
                "Lrs.Reader": {"scopes": ["statements/read"]},
                "Lrs.Learner": {"permissions": ["progress.read.own"]}
            },
            "name_claim": "name",
            "jwks_refetch_min_secs": refetch_min_secs
        }]);
        let path = dir.join("oidc-providers.json");
        std::fs::write(&path, providers.to_string()).unwrap();
        path
    }
}

/// Keys generated off the runtime's threads (RSA key generation is slow).
async fn rsa_keys(kids: &[&'static str]) -> Vec<IdpKey> {
    let kids = kids.to_vec();
    tokio::task::spawn_blocking(move || kids.iter().map(|kid| rsa_key(kid)).collect())
        .await
        .unwrap()
}

/// A server trusting `idp`, with a Basic credential of tenant `kb` to look
/// at what a provider's token wrote. Returns the server, the kb client and
/// the providers file's directory (kept alive).
fn start_trusting(idp: &TestIdp, refetch_min_secs: u64) -> (TestServer, Xapi, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = prepare();
    let file = idp.providers_file(dir.path(), refetch_min_secs);
    server.serve_args = vec!["--oidc-providers".into(), file.display().to_string()];
    let (kb_key, kb_secret) = server.add_credential("kb", "kb", &["all"]).unwrap();
    server.launch().unwrap();
    let kb = server.client().with_credential(&kb_key, &kb_secret);
    (server, kb, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_are_accepted_and_follow_its_key_rotation() {
    let idp = TestIdp::start().await;
    let keys = rsa_keys(&["key-a", "key-b", "key-c"]).await;
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    idp.publish(&[a]);
    let (server, kb, _dir) = start_trusting(&idp, 1);

    // Accepted, mapped to tenant kb with the writer role's scopes.
    let token_a = TestIdp::sign(a, &idp.claims());
    let id = new_id();
    let reply = bearer_post(
        &server,
        &token_a,
        &with_id(statement("anna", "completed", "c1"), &id),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let stored = kb.get_statements(&[("statementId", &id)]).await.unwrap();
    assert_eq!(
        stored.status,
        StatusCode::OK,
        "tenant kb sees it: {}",
        stored.text
    );
    assert_eq!(
        stored.body["authority"]["account"]["name"],
        format!("oidc:{}#00u-anna", idp.issuer)
    );
    assert_eq!(stored.body["authority"]["name"], "Anna de Vries");
    let other_tenant = server
        .client()
        .get_statements(&[("statementId", &id)])
        .await
        .unwrap();
    assert_eq!(
        other_tenant.status,
        StatusCode::NOT_FOUND,
        "tenant default does not: {}",
        other_tenant.text
    );
    // The reader role reads but does not write.
    let mut reader = idp.claims();
    reader["roles"] = json!(["Lrs.Reader"]);
    let reader = TestIdp::sign(a, &reader);
    assert_eq!(bearer_get(&server, &reader).await.status, StatusCode::OK);
    let reply = bearer_post(&server, &reader, &statement("anna", "completed", "c1")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(idp.jwks_fetches(), 1, "the key set is cached");

    // The provider rotates: publishes key B beside A and signs with B.
    idp.publish(&[a, b]);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let token_b = TestIdp::sign(b, &idp.claims());
    let reply = bearer_get(&server, &token_b).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "new kid fetched: {}",
        reply.text
    );
    assert_eq!(idp.jwks_fetches(), 2);
    assert_eq!(
        bearer_get(&server, &token_a).await.status,
        StatusCode::OK,
        "A still published"
    );

    // A is withdrawn (C added); once the LRS has fetched the new set,
    // tokens signed with A are refused.
    idp.publish(&[b, c]);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let token_c = TestIdp::sign(c, &idp.claims());
    let reply = bearer_get(&server, &token_c).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(idp.jwks_fetches(), 3);
    let late_a = TestIdp::sign(a, &idp.claims());
    let reply = bearer_get(&server, &late_a).await;
    assert_invalid_token(&reply, "a key gone from the provider's set");
    assert!(reply.text.contains("unknown key"), "{}", reply.text);
    assert_eq!(bearer_get(&server, &token_b).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_that_do_not_fit_are_refused_with_the_reason() {
    let idp = TestIdp::start().await;
    let keys = rsa_keys(&["key-a", "key-stranger"]).await;
    let (a, stranger) = (&keys[0], &keys[1]);
    idp.publish(&[a]);
    let (server, _kb, _dir) = start_trusting(&idp, 30);
    let good = TestIdp::sign(a, &idp.claims());
    assert_eq!(bearer_get(&server, &good).await.status, StatusCode::OK);

    let mut wrong_audience = idp.claims();
    wrong_audience["aud"] = json!("api://someone-else");
    let reply = bearer_get(&server, &TestIdp::sign(a, &wrong_audience)).await;
    assert_invalid_token(&reply, "wrong audience");
    assert!(reply.text.contains("audience"), "{}", reply.text);

    let mut wrong_issuer = idp.claims();
    wrong_issuer["iss"] = json!("https://login.example.org/other");
    let reply = bearer_get(&server, &TestIdp::sign(a, &wrong_issuer)).await;
    assert_invalid_token(&reply, "untrusted issuer");
    assert!(reply.text.contains("issuer"), "{}", reply.text);

    let mut expired = idp.claims();
    expired["exp"] = json!(expired["iat"].as_u64().unwrap() - 120);
    let reply = bearer_get(&server, &TestIdp::sign(a, &expired)).await;
    assert_invalid_token(&reply, "expired");
    assert!(reply.text.contains("expired"), "{}", reply.text);

    let mut early = idp.claims();
    early["nbf"] = json!(early["iat"].as_u64().unwrap() + 120);
    assert_invalid_token(
        &bearer_get(&server, &TestIdp::sign(a, &early)).await,
        "not yet valid",
    );

    let mut no_sub = idp.claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_invalid_token(
        &bearer_get(&server, &TestIdp::sign(a, &no_sub)).await,
        "no sub",
    );

    // Signed by a key the provider never published: refused.
    assert_invalid_token(
        &bearer_get(&server, &TestIdp::sign(stranger, &idp.claims())).await,
        "unpublished key",
    );
    // The provider's kid on an HS256 token, keyed with its public modulus.
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(a.kid.clone());
    let modulus = URL_SAFE_NO_PAD
        .decode(a.jwk["n"].as_str().unwrap())
        .unwrap();
    let forged = jsonwebtoken::encode(
        &hs,
        &idp.claims(),
        &jsonwebtoken::EncodingKey::from_secret(&modulus),
    )
    .unwrap();
    assert_invalid_token(&bearer_get(&server, &forged).await, "HS256 forgery");

    // Verified, but no rule maps it: 403 with the reason.
    let mut unmapped_tenant = idp.claims();
    unmapped_tenant["org"] = json!("NL-9999999999");
    let reply = bearer_get(&server, &TestIdp::sign(a, &unmapped_tenant)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no tenant is mapped"),
        "{}",
        reply.text
    );
    let mut unmapped_role = idp.claims();
    unmapped_role["roles"] = json!(["Lrs.Admin"]);
    let reply = bearer_get(&server, &TestIdp::sign(a, &unmapped_role)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert!(reply.text.contains("roles"), "{}", reply.text);

    // Tokens naming made-up kids do not make the LRS hammer the provider:
    // with a 30 s pace, none of these fetches the key set again.
    let fetches = idp.jwks_fetches();
    let started = Instant::now();
    for n in 0..25 {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(format!("bogus-{n}"));
        let bogus = jsonwebtoken::encode(&header, &idp.claims(), &a.encoding).unwrap();
        assert_invalid_token(&bearer_get(&server, &bogus).await, "bogus kid");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(idp.jwks_fetches(), fetches, "no refetch within the pace");
    assert_eq!(bearer_get(&server, &good).await.status, StatusCode::OK);
}

#[test]
fn a_broken_providers_file_stops_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = prepare();
    let file = dir.path().join("providers.json");
    std::fs::write(
        &file,
        json!([{
            "issuer": "https://idp.example.nl", "audiences": ["x"], "algorithms": ["HS256"],
            "tenant": "kb", "scopes": {"r": {"scopes": ["statements/read"]}}
        }])
        .to_string(),
    )
    .unwrap();
    let output = server
        .lrs_outcome(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            server.data_dir.to_str().unwrap(),
            "--oidc-providers",
            file.to_str().unwrap(),
        ])
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HS256"), "{stderr}");
}

/// A learner signed in with the provider reads their own progress, and
/// nothing else: not another learner's, not statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_reads_only_their_own_progress() {
    let idp = TestIdp::start().await;
    let keys = rsa_keys(&["key-a"]).await;
    idp.publish(&[&keys[0]]);
    let (server, kb, _dir) = start_trusting(&idp, 1);
    let course = json!({"id": "https://kb.example/cursus/mijn", "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/course"}});
    let launched = |actor: Value, module: &str| {
        json!({
            "actor": actor,
            "verb": {"id": "http://adlnet.gov/expapi/verbs/launched"},
            "object": {"id": format!("https://kb.example/cursus/mijn/{module}"),
                       "definition": {"type": "http://adlnet.gov/expapi/activities/module"}},
            "context": {"contextActivities": {"grouping": [course]}}
        })
    };
    let anna = json!({"account": {"homePage": idp.issuer, "name": "00u-anna"}});
    let bert = json!({"mbox": "mailto:bert@example.nl"});
    let batch = json!([launched(anna, "m1"), launched(bert.clone(), "m2")]);
    let reply = kb.post_statements(&batch).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let mut claims = idp.claims();
    claims["roles"] = json!(["Lrs.Learner"]);
    let token = TestIdp::sign(&keys[0], &claims);
    let http = reqwest::Client::new();
    let get = |path: String, token: String| {
        let http = http.clone();
        async move {
            let response = http.get(path).bearer_auth(token).send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, mine) = get(
        format!("{}/api/progress/me", server.base_url),
        token.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let courses = mine["courses"].as_array().unwrap();
    assert_eq!(courses.len(), 1, "{mine}");
    let modules: Vec<&str> = courses[0]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] != "not_started")
        .map(|m| m["module"].as_str().unwrap())
        .collect();
    assert_eq!(
        modules,
        ["https://kb.example/cursus/mijn/m1"],
        "only Anna's own"
    );
    let (status, _) = get(
        format!(
            "{}/api/progress/learner?agent={}",
            server.base_url,
            urlencoding(&bert.to_string())
        ),
        token.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another learner's progress");
    assert_eq!(
        bearer_get(&server, &token).await.status,
        StatusCode::FORBIDDEN,
        "no statements"
    );
    // Basic credentials have no progress of their own.
    let basic = kb
        .http
        .get(format!("{}/api/progress/me", server.base_url))
        .basic_auth(&kb.key, Some(&kb.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::FORBIDDEN);
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
