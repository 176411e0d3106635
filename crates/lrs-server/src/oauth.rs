//! Our own OAuth 2.0 authorization server, for one grant: client credentials
//! (RFC 6749 §4.4). A Basic credential trades its key and secret at
//! `POST /oauth/token` for a short-lived signed JWT access token (RFC 9068
//! shape, ES256), which every xAPI route accepts as `Authorization: Bearer`.
//! `GET /.well-known/jwks.json` publishes the public keys and
//! `GET /.well-known/oauth-authorization-server` the RFC 8414 metadata.
//!
//! The signing keys are generated in this process and never leave its
//! memory: a restart invalidates every outstanding token (clients fetch a new
//! one, as they must at expiry anyway). The key is replaced on a schedule; the
//! previous public key stays published and accepted until the last token it
//! signed has expired.
//!
//! The token endpoint answers errors in RFC 6749 §5.2's shape
//! (`{"error": "invalid_client", "error_description": "..."}`), not the API's
//! usual `{"error": {...}}`, because OAuth client libraries parse that shape.
//! Rate limits (429) and server failures keep the API's shape.
//!
//! It never reads the store itself (credentials are checked through
//! `auth.rs`) and knows nothing about external providers (`oidc.rs`).

use crate::app::AppState;
use crate::auth::{Credential, SCOPES};
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The only signing algorithm of our tokens: ECDSA P-256, small and fast to
/// verify, in every JWT library.
const ALGORITHM: Algorithm = Algorithm::ES256;

/// The `typ` of our access tokens (RFC 9068 §2.1), so an ID token or any
/// other JWT signed elsewhere can never pass as one.
const TOKEN_TYPE: &str = "at+jwt";

/// The largest token request body read: a client credentials request is a
/// few hundred bytes.
const TOKEN_BODY_LIMIT: usize = 8 * 1024;

/// Longer tokens are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A retired key stays published this long past the expiry of the last token
/// it can have signed: room for wall-clock steps against our monotonic timer.
const RETIRED_MARGIN: Duration = Duration::from_secs(60);

/// The OAuth settings of [`crate::ServeConfig`].
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The server's public base URL, the issuer of its tokens; `None`:
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    pub token_ttl_secs: u64,
    pub key_rotation_secs: u64,
    /// External OpenID Connect providers whose tokens are accepted.
    pub oidc_providers: Vec<crate::oidc::ProviderConfig>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            token_ttl_secs: 600,
            key_rotation_secs: 86_400,
            oidc_providers: Vec::new(),
        }
    }
}

/// Command-line flags of the token endpoint and of bearer acceptance; make
/// them [`OAuthArgs::into_config`] for [`crate::ServeConfig::oauth`].
#[derive(clap::Args, Debug, Clone)]
pub struct OAuthArgs {
    /// Lifetime of the access tokens the token endpoint issues, seconds.
    #[arg(long, env = "LRS_TOKEN_TTL_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub token_ttl_secs: u64,
    /// How often the token signing key is replaced, seconds. The previous
    /// public key stays published until the tokens it signed have expired.
    #[arg(long, env = "LRS_TOKEN_KEY_ROTATION_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub token_key_rotation_secs: u64,
    /// JSON file listing the external OpenID Connect providers whose bearer
    /// tokens are accepted, and how their claims map to tenant and scopes
    /// (docs/security-oauth.md).
    #[arg(long, env = "LRS_OIDC_PROVIDERS")]
    pub oidc_providers: Option<PathBuf>,
}

impl OAuthArgs {
    /// Checks the public URL and reads and checks the providers file.
    pub fn into_config(self) -> Result<OAuthConfig, String> {
        let oidc_providers = match &self.oidc_providers {
            Some(path) => crate::oidc::load_providers(path)?,
            None => Vec::new(),
        };
        Ok(OAuthConfig {
            // `--public-url` (config::TransportArgs) fills it in.
            public_url: None,
            token_ttl_secs: self.token_ttl_secs,
            key_rotation_secs: self.token_key_rotation_secs,
            oidc_providers,
        })
    }
}

/// Everything bearer tokens need: our own issuer and the external providers.
pub struct Tokens {
    pub local: LocalIssuer,
    pub oidc: crate::oidc::Providers,
}

impl Tokens {
    pub fn new(config: &crate::ServeConfig) -> Self {
        let issuer = config
            .oauth
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        Self {
            local: LocalIssuer::new(
                issuer,
                Duration::from_secs(config.oauth.token_ttl_secs),
                Duration::from_secs(config.oauth.key_rotation_secs),
            ),
            oidc: crate::oidc::Providers::new(&config.oauth.oidc_providers),
        }
    }
}

/// The claims of our access tokens (RFC 9068 §2.2, plus `tenant`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The credential key the token was issued to.
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    /// Space-separated xAPI scopes: a subset of the credential's.
    pub scope: String,
    pub tenant: String,
    pub client_id: String,
}

impl AccessClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key as a JWK, as published.
    jwk: Value,
    since: Instant,
}

impl SigningKey {
    fn generate() -> Self {
        use p256::pkcs8::EncodePrivateKey;
        let secret = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let der = secret
            .to_pkcs8_der()
            .expect("a P-256 key encodes as PKCS#8");
        let point = secret.verifying_key().to_encoded_point(false);
        let x = URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point"));
        let y = URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point"));
        // The kid is the key's RFC 7638 thumbprint: derived, not stored.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let decoding = DecodingKey::from_ec_components(&x, &y).expect("our own coordinates decode");
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "use": "sig", "alg": "ES256",
        });
        Self {
            kid,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            decoding,
            jwk,
            since: Instant::now(),
        }
    }
}

struct KeyRing {
    current: Arc<SigningKey>,
    /// Replaced keys, each with the instant after which no token it signed
    /// can still be valid.
    retired: Vec<(Arc<SigningKey>, Instant)>,
}

/// Issues and verifies our access tokens.
pub struct LocalIssuer {
    issuer: String,
    audience: String,
    ttl: Duration,
    rotation: Duration,
    keys: RwLock<KeyRing>,
}

impl LocalIssuer {
    pub fn new(issuer: String, ttl: Duration, rotation: Duration) -> Self {
        Self {
            audience: format!("{issuer}/xapi"),
            issuer,
            ttl,
            rotation,
            keys: RwLock::new(KeyRing {
                current: Arc::new(SigningKey::generate()),
                retired: Vec::new(),
            }),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of our tokens: this server's xAPI endpoint.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The signing key, replaced first if it is due (rotation happens when a
    /// token is issued or the key set is read: no timer task needed).
    fn current_key(&self) -> Arc<SigningKey> {
        {
            let ring = self.keys.read().expect("signing keys");
            if ring.current.since.elapsed() < self.rotation {
                return ring.current.clone();
            }
        }
        let mut ring = self.keys.write().expect("signing keys");
        if ring.current.since.elapsed() >= self.rotation {
            let now = Instant::now();
            let fresh = Arc::new(SigningKey::generate());
            let old = std::mem::replace(&mut ring.current, fresh);
            tracing::info!(retired = %old.kid, current = %ring.current.kid, "token signing key rotated");
            ring.retired.push((old, now + self.ttl + RETIRED_MARGIN));
            ring.retired.retain(|(_, until)| *until > now);
        }
        ring.current.clone()
    }

    fn decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        let ring = self.keys.read().expect("signing keys");
        if ring.current.kid == kid {
            return Some(ring.current.decoding.clone());
        }
        let now = Instant::now();
        ring.retired
            .iter()
            .find(|(key, until)| key.kid == kid && *until > now)
            .map(|(key, _)| key.decoding.clone())
    }

    /// The published key set: the current key and every retired key whose
    /// tokens may still be valid.
    pub fn jwks(&self) -> Value {
        self.current_key();
        let ring = self.keys.read().expect("signing keys");
        let now = Instant::now();
        let keys: Vec<&Value> = std::iter::once(&ring.current.jwk)
            .chain(
                ring.retired
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(key, _)| &key.jwk),
            )
            .collect();
        json!({ "keys": keys })
    }

    /// A token for `credential` with `scopes`; it never outlives the
    /// credential. Returns the token and its lifetime in seconds.
    pub fn issue(&self, credential: &Credential, scopes: &[String]) -> (String, u64) {
        let now = unix_now();
        let mut exp = now + self.ttl.as_secs();
        if let Some(expires) = credential.expires_micros {
            exp = exp.min(u64::try_from(expires / 1_000_000).unwrap_or(0));
        }
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: credential.key.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scopes.join(" "),
            tenant: credential.tenant.clone(),
            client_id: credential.key.clone(),
        };
        let key = self.current_key();
        let mut header = Header::new(ALGORITHM);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .expect("signing with our own key");
        tracing::info!(credential = %credential.key, jti = %claims.jti, scope = %claims.scope, "access token issued");
        (token, exp.saturating_sub(now))
    }

    /// Verifies one of our tokens: algorithm, type, key, signature, issuer,
    /// audience, not-before and expiry (no leeway: we are our own clock).
    /// The error says why, for the 401.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        if header.alg != ALGORITHM {
            return Err("token algorithm is not accepted");
        }
        if header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err("not an access token (typ is not at+jwt)");
        }
        let kid = header.kid.ok_or("token names no key (kid)")?;
        let key = self.decoding_key(&kid).ok_or(
            "token signed with an unknown key (tokens do not survive a server restart: fetch a new one)",
        )?;
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| describe_jwt_error(&e))
    }

    /// RFC 8414 authorization server metadata.
    pub fn metadata(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "token_endpoint": format!("{}/oauth/token", self.issuer),
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": SCOPES,
            "response_types_supported": [],
        })
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a JWT failed validation, for a 401 body (never echoes the token).
pub fn describe_jwt_error(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "token has expired",
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)",
        ErrorKind::InvalidAudience => "token audience (aud) is not accepted",
        ErrorKind::InvalidIssuer => "token issuer (iss) does not match",
        ErrorKind::InvalidSignature => "token signature does not verify",
        ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token",
        _ => "token does not verify",
    }
}

/// The `iss` of a token, read before verification to pick the verifier. It
/// decides nothing else: each verifier checks `iss` again with the signature.
pub fn unverified_issuer(token: &str) -> Result<String, &'static str> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("token is too long");
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed token");
    };
    #[derive(Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "malformed token")?;
    let claims: Issuer = serde_json::from_slice(&bytes).map_err(|_| "malformed token")?;
    claims.iss.ok_or("token names no issuer (iss)")
}

/// Whether a principal with `credential`'s scopes may hold `wanted`:
/// `all` covers everything, `all/read` every read, `statements/read` also
/// `statements/read/mine`.
pub fn covers(credential: &Credential, wanted: &str) -> bool {
    credential.has_scope(wanted)
        || (wanted == "statements/read/mine" && credential.has_scope("statements/read"))
}

/// The token endpoint, the key set and the metadata (outside `/xapi`: no
/// version header, no CORS).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(token_endpoint))
        .route("/.well-known/jwks.json", get(jwks_endpoint))
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata_endpoint),
        )
}

async fn jwks_endpoint(State(state): State<AppState>) -> Response {
    match state.auth.tokens() {
        Some(tokens) => (
            [(header::CACHE_CONTROL, "public, max-age=300")],
            axum::Json(tokens.local.jwks()),
        )
            .into_response(),
        None => ApiError::NotFound("resource").into_response(),
    }
}

async fn metadata_endpoint(State(state): State<AppState>) -> Response {
    match state.auth.tokens() {
        Some(tokens) => (
            [(header::CACHE_CONTROL, "public, max-age=3600")],
            axum::Json(tokens.local.metadata()),
        )
            .into_response(),
        None => ApiError::NotFound("resource").into_response(),
    }
}

/// An RFC 6749 §5.2 error answer.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn invalid_request(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
        }
    }

    fn invalid_scope(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_scope",
            description: description.into(),
        }
    }
}

/// Token responses, successful or not, must not be cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth\""),
            );
        }
        no_store(response)
    }
}

enum TokenError {
    OAuth(OAuthError),
    /// Not an OAuth protocol error (rate limit, server failure): the API's shape.
    Api(ApiError),
}

impl From<OAuthError> for TokenError {
    fn from(error: OAuthError) -> Self {
        TokenError::OAuth(error)
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        match self {
            TokenError::OAuth(error) => error.into_response(),
            TokenError::Api(error) => no_store(error.into_response()),
        }
    }
}

/// `POST /oauth/token`: the client credentials grant.
async fn token_endpoint(State(state): State<AppState>, request: Request) -> Response {
    match issue_token(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn issue_token(state: &AppState, request: Request) -> Result<Response, TokenError> {
    let Some(tokens) = state.auth.tokens() else {
        return Err(TokenError::Api(ApiError::NotFound("resource")));
    };
    let (parts, body) = request.into_parts();
    let client_ip = crate::xapi_request::client_ip(&parts);
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        )
        .into());
    }
    let body: Bytes = axum::body::to_bytes(body, TOKEN_BODY_LIMIT)
        .await
        .map_err(|_| TokenError::Api(ApiError::PayloadTooLarge(TOKEN_BODY_LIMIT)))?;
    let form = parse_form(&body)?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    let (key, secret) = client_credentials(&parts.headers, &form)?;
    let credential = state
        .auth
        .verify_basic(&key, &secret, client_ip)
        .await
        .map_err(|error| match error {
            ApiError::Unauthorized(reason) => TokenError::OAuth(OAuthError::invalid_client(reason)),
            other => TokenError::Api(other),
        })?;
    if grant_type != "client_credentials" {
        return Err(OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: "only grant_type=client_credentials is supported".into(),
        }
        .into());
    }
    let scopes = granted_scopes(&credential, form.get("scope"))?;
    let (access_token, expires_in) = tokens.local.issue(&credential, &scopes);
    Ok(no_store(
        axum::Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": scopes.join(" "),
        }))
        .into_response(),
    ))
}

/// The form's parameters; each at most once (RFC 6749 §3.2).
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn parse_form(body: &[u8]) -> Result<Form, OAuthError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(body) {
        if pairs.iter().any(|(seen, _)| *seen == key) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {key} is repeated"
            )));
        }
        pairs.push((key.into_owned(), value.into_owned()));
    }
    Ok(Form(pairs))
}

/// The client's key and secret: HTTP Basic (`client_secret_basic`, id and
/// secret form-urlencoded inside, RFC 6749 §2.3.1) or form fields
/// (`client_secret_post`), never both.
fn client_credentials(headers: &HeaderMap, form: &Form) -> Result<(String, String), OAuthError> {
    use crate::metrics::{auth_failure, AuthFailure};
    let in_form = (form.get("client_id"), form.get("client_secret"));
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return match in_form {
            (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
            _ => {
                auth_failure(AuthFailure::Missing);
                Err(OAuthError::invalid_client(
                    "authenticate with HTTP Basic or client_id and client_secret",
                ))
            }
        };
    };
    if in_form.1.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method: HTTP Basic or client_secret, not both",
        ));
    }
    let malformed = || {
        auth_failure(AuthFailure::Malformed);
        OAuthError::invalid_client("malformed HTTP Basic client authentication")
    };
    let value = authorization.to_str().map_err(|_| malformed())?;
    let encoded = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
        _ => return Err(malformed()),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |text: &str| -> String {
        form_urlencoded::parse(format!("x={text}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (unescape(id), unescape(secret));
    if in_form.0.is_some_and(|form_id| form_id != id) {
        return Err(OAuthError::invalid_request(
            "client_id differs from the HTTP Basic user",
        ));
    }
    Ok((id, secret))
}

/// The scopes a token gets: those asked for (space separated, each held by
/// the credential), else all of the credential's.
fn granted_scopes(credential: &Credential, asked: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(asked) = asked else {
        return Ok(credential.scopes.clone());
    };
    let mut scopes: Vec<String> = Vec::new();
    for scope in asked.split(' ').filter(|s| !s.is_empty()) {
        if !SCOPES.contains(&scope) {
            return Err(OAuthError::invalid_scope(format!(
                "unknown scope {scope:?}; known: {}",
                SCOPES.join(" ")
            )));
        }
        if !covers(credential, scope) {
            return Err(OAuthError::invalid_scope(format!(
                "the credential does not hold scope {scope:?}"
            )));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope(
            "scope is empty: omit it for all of the credential's scopes",
        ));
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;

    fn credential(scopes: &[&str]) -> Credential {
        Credential {
            key: "lrs_0123".into(),
            name: "test".into(),
            tenant: "t1".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            permissions: Vec::new(),
            expires_micros: None,
            method: AuthMethod::Basic,
        }
    }

    fn issuer(ttl: u64, rotation: Duration) -> LocalIssuer {
        LocalIssuer::new(
            "https://lrs.example.nl".into(),
            Duration::from_secs(ttl),
            rotation,
        )
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let issuer = issuer(600, Duration::from_secs(3600));
        let (token, expires_in) =
            issuer.issue(&credential(&["all"]), &["statements/read".to_owned()]);
        assert_eq!(expires_in, 600);
        let claims = issuer.verify(&token).unwrap();
        assert_eq!(claims.sub, "lrs_0123");
        assert_eq!(claims.tenant, "t1");
        assert_eq!(claims.aud, "https://lrs.example.nl/xapi");
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["statements/read"]);
        assert_eq!(unverified_issuer(&token).unwrap(), "https://lrs.example.nl");
    }

    #[test]
    fn a_token_never_outlives_its_credential() {
        let issuer = issuer(600, Duration::from_secs(3600));
        let mut soon = credential(&["all"]);
        soon.expires_micros = Some((unix_now() as i64 + 30) * 1_000_000);
        let (_, expires_in) = issuer.issue(&soon, &["all".to_owned()]);
        assert!((29..=30).contains(&expires_in), "{expires_in}");
    }

    #[test]
    fn another_servers_token_and_a_tampered_one_do_not_verify() {
        let ours = issuer(600, Duration::from_secs(3600));
        let theirs = issuer(600, Duration::from_secs(3600));
        let (token, _) = theirs.issue(&credential(&["all"]), &["all".to_owned()]);
        assert_eq!(
            ours.verify(&token).unwrap_err(),
            "token signed with an unknown key (tokens do not survive a server restart: fetch a new one)"
        );
        let (token, _) = ours.issue(&credential(&["all"]), &["all".to_owned()]);
        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[5] ^= 1;
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(
            ours.verify(&forged).unwrap_err(),
            "token signature does not verify"
        );
    }

    #[test]
    fn a_rotated_key_stays_published_and_accepted_for_its_tokens() {
        let issuer = issuer(600, Duration::from_millis(50));
        let (first, _) = issuer.issue(&credential(&["all"]), &["all".to_owned()]);
        std::thread::sleep(Duration::from_millis(80));
        let (second, _) = issuer.issue(&credential(&["all"]), &["all".to_owned()]);
        let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        assert_ne!(kid(&first), kid(&second));
        let published: Vec<String> = issuer.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert!(published.contains(&kid(&first)) && published.contains(&kid(&second)));
        assert!(issuer.verify(&first).is_ok());
        assert!(issuer.verify(&second).is_ok());
    }

    #[test]
    fn retired_keys_are_dropped_once_their_tokens_have_expired() {
        let issuer = issuer(1, Duration::from_millis(10));
        let (first, _) = issuer.issue(&credential(&["all"]), &["all".to_owned()]);
        // Pretend the retirement was long ago.
        std::thread::sleep(Duration::from_millis(20));
        issuer.jwks();
        {
            let mut ring = issuer.keys.write().unwrap();
            for (_, until) in ring.retired.iter_mut() {
                *until = Instant::now();
            }
        }
        assert_eq!(issuer.jwks()["keys"].as_array().unwrap().len(), 1);
        assert!(issuer.verify(&first).is_err());
    }

    #[test]
    fn scopes_asked_must_be_known_and_held() {
        let reader = credential(&["statements/read", "state"]);
        assert_eq!(
            granted_scopes(&reader, None).unwrap(),
            ["statements/read", "state"]
        );
        assert_eq!(
            granted_scopes(&reader, Some("statements/read/mine statements/read/mine")).unwrap(),
            ["statements/read/mine"]
        );
        assert_eq!(
            granted_scopes(&reader, Some("statements/write"))
                .unwrap_err()
                .error,
            "invalid_scope"
        );
        assert_eq!(
            granted_scopes(&reader, Some("everything"))
                .unwrap_err()
                .error,
            "invalid_scope"
        );
        assert_eq!(
            granted_scopes(&reader, Some(" ")).unwrap_err().error,
            "invalid_scope"
        );
        let all = credential(&["all"]);
        assert_eq!(
            granted_scopes(&all, Some("profile define")).unwrap(),
            ["profile", "define"]
        );
    }

    #[test]
    fn client_authentication_is_basic_or_form_never_both() {
        let form = |body: &str| parse_form(body.as_bytes()).unwrap();
        let mut basic = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("lrs_1:s%2Bx");
        basic.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(
            client_credentials(&basic, &form("grant_type=client_credentials")).unwrap(),
            ("lrs_1".to_owned(), "s+x".to_owned())
        );
        assert_eq!(
            client_credentials(&basic, &form("client_secret=x"))
                .unwrap_err()
                .error,
            "invalid_request"
        );
        assert_eq!(
            client_credentials(&HeaderMap::new(), &form("client_id=a&client_secret=b")).unwrap(),
            ("a".to_owned(), "b".to_owned())
        );
        let missing = client_credentials(&HeaderMap::new(), &form("client_id=a")).unwrap_err();
        assert_eq!(
            (missing.status, missing.error),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        assert!(parse_form(b"scope=a&scope=b").is_err());
    }
}
