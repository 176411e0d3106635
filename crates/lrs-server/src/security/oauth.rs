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
//! `authn.rs`), keeps its keys in `tokens.rs` and knows nothing about
//! external providers (`oidc.rs`).

use crate::error::ApiError;
use crate::request::routes::{Operation, RouteTable};
use crate::security::extract::AuthState;
use crate::security::tokens::covers;
use axum::body::Bytes;
use axum::extract::{FromRef, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lrs_app::principal::{Credential, SCOPES};
use serde_json::json;

/// The largest token request body read: a client credentials request is a
/// few hundred bytes.
const TOKEN_BODY_LIMIT: usize = 8 * 1024;

/// The token endpoint, the key set and the metadata (outside `/xapi`: no
/// version header, no CORS).
pub fn routes<S>() -> RouteTable<S>
where
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    const TAG: &str = "oauth";
    RouteTable::new()
        .post(
            "/oauth/token",
            token_endpoint,
            Operation::new(TAG, "A bearer token for a credential (client credentials grant, RFC 6749 4.4)")
                .describe("The client authenticates with HTTP Basic (its key and secret). Errors in RFC 6749 5.2's shape.")
                .body(
                    "application/x-www-form-urlencoded",
                    "grant_type=client_credentials, optionally scope",
                )
                .answers(200, "`{\"access_token\", \"token_type\": \"Bearer\", \"expires_in\", \"scope\"}`")
                .answers(400, "RFC 6749 5.2 error: invalid_request, unsupported_grant_type, invalid_scope")
                .answers(401, "RFC 6749 5.2 error: invalid_client"),
        )
        .get(
            "/.well-known/jwks.json",
            jwks_endpoint,
            Operation::new(TAG, "The public keys that sign access tokens (RFC 7517)")
                .public()
                .answers(200, "A JWK set"),
        )
        .get(
            "/.well-known/oauth-authorization-server",
            metadata_endpoint,
            Operation::new(TAG, "Authorization server metadata (RFC 8414)")
                .public()
                .answers(200, "The metadata"),
        )
}

async fn jwks_endpoint(State(state): State<AuthState>) -> Response {
    match state.auth.tokens() {
        Some(tokens) => (
            [(header::CACHE_CONTROL, "public, max-age=300")],
            axum::Json(tokens.local.jwks()),
        )
            .into_response(),
        None => ApiError::NotFound("resource").into_response(),
    }
}

async fn metadata_endpoint(State(state): State<AuthState>) -> Response {
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
async fn token_endpoint(State(state): State<AuthState>, request: Request) -> Response {
    match issue_token(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn issue_token(state: &AuthState, request: Request) -> Result<Response, TokenError> {
    let Some(tokens) = state.auth.tokens() else {
        return Err(TokenError::Api(ApiError::NotFound("resource")));
    };
    let (parts, body) = request.into_parts();
    let client_ip = crate::request::client::client_ip(&parts);
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
    use crate::ops::counters::{auth_failure, AuthFailure};
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
    use crate::security::tokens::test_credential as credential;

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
