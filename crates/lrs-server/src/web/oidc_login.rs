//! Staff login through an OpenID provider (Microsoft Entra ID, the KB's
//! login): the authorization code flow with PKCE (S256), a random `state`
//! bound to the visitor's session and a `nonce` the ID token must carry,
//! with the `openidconnect` crate (which checks the ID token's signature
//! against the provider's keys, issuer, audience, expiry and nonce).
//!
//! Configured by a JSON file (`--staff-oidc`, docs/dashboard.md): the
//! issuer, client id, the name of the environment variable holding the
//! client secret, the redirect URL, and how claims map to a tenant and to
//! roles. A login whose claims map to no tenant, or to no role, is refused.
//!
//! The session cookie is `SameSite=Strict`, so the browser does not send it
//! on the provider's cross-site redirect back: `/login/oidc/callback`
//! answers with a page that moves on (meta refresh, no script) to
//! `/login/oidc/finish` on our own site, where the cookie comes along and
//! the state is checked against the session.

use crate::app::AppState;
use crate::web::html::{esc, page_response, see_other, Current, Frame};
use crate::web::session::{self, StaffLogin, Stage};
use crate::web::{audit, Visitor};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The provider's configuration file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// What the login button says: "Inloggen met <display_name>".
    display_name: String,
    issuer: String,
    client_id: String,
    /// The environment variable that holds the client secret (never the
    /// secret itself in a file); absent: a public client (PKCE only).
    #[serde(default)]
    client_secret_env: Option<String>,
    /// Our `/login/oidc/callback` as the provider knows it.
    redirect_url: String,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    tenant: TenantMapping,
    roles: RoleMapping,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

/// Which tenant a login belongs to: one for every login of this provider
/// (`fixed`), or a claim's value looked up in `map`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantMapping {
    #[serde(default)]
    pub fixed: Option<String>,
    #[serde(default)]
    pub claim: Option<String>,
    #[serde(default)]
    pub map: BTreeMap<String, String>,
}

/// Which roles a login holds: the values of a claim (a string or a list,
/// e.g. Entra ID's `roles` or `groups`) looked up in `map`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    pub claim: String,
    pub map: BTreeMap<String, Vec<String>>,
}

/// A checked staff OpenID configuration.
#[derive(Debug, Clone)]
pub struct StaffOidcConfig {
    pub display_name: String,
    pub issuer: String,
    pub client_id: String,
    client_secret: Option<String>,
    pub redirect_url: String,
    pub scopes: Vec<String>,
    pub tenant: TenantMapping,
    pub roles: RoleMapping,
}

impl StaffOidcConfig {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading --staff-oidc {}: {e}", path.display()))?;
        Self::parse(&text, |name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!("--staff-oidc {}: {e}", path.display()))
    }

    /// Parses and checks a configuration; `env` reads the secret's variable.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let file: ConfigFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let secure = |url: &str, what: &str| {
            let parsed =
                openidconnect::url::Url::parse(url).map_err(|e| format!("{what} {url:?}: {e}"))?;
            let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            if parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback) {
                Ok(())
            } else {
                Err(format!(
                    "{what} must be https:// (http:// only on loopback): {url}"
                ))
            }
        };
        secure(&file.issuer, "issuer")?;
        secure(&file.redirect_url, "redirect_url")?;
        if !file.redirect_url.ends_with("/login/oidc/callback") {
            return Err("redirect_url must end in /login/oidc/callback".into());
        }
        if file.display_name.trim().is_empty() || file.client_id.trim().is_empty() {
            return Err("display_name and client_id must not be empty".into());
        }
        if !file.scopes.iter().any(|s| s == "openid") {
            return Err("scopes must include openid".into());
        }
        match (&file.tenant.fixed, &file.tenant.claim) {
            (Some(_), None) if file.tenant.map.is_empty() => {}
            (None, Some(_)) if !file.tenant.map.is_empty() => {}
            _ => {
                return Err(
                    "tenant is either {\"fixed\": TENANT} or {\"claim\": NAME, \"map\": {VALUE: TENANT}}"
                        .into(),
                )
            }
        }
        if file.roles.map.is_empty() {
            return Err("roles.map must map at least one claim value to roles".into());
        }
        let client_secret = match &file.client_secret_env {
            Some(name) => Some(env(name).filter(|s| !s.is_empty()).ok_or_else(|| {
                format!("the environment variable {name} (client_secret_env) is not set")
            })?),
            None => None,
        };
        Ok(Self {
            display_name: file.display_name,
            issuer: file.issuer,
            client_id: file.client_id,
            client_secret,
            redirect_url: file.redirect_url,
            scopes: file.scopes,
            tenant: file.tenant,
            roles: file.roles,
        })
    }

    /// The tenant and roles a login's claims map to; `None` if they map to
    /// no tenant or no role (then the login is refused).
    pub fn map_claims(&self, claims: &BTreeMap<String, Value>) -> Option<(String, Vec<String>)> {
        let tenant = match (&self.tenant.fixed, &self.tenant.claim) {
            (Some(fixed), _) => fixed.clone(),
            (None, Some(claim)) => claim_values(claims.get(claim))
                .into_iter()
                .find_map(|value| self.tenant.map.get(&value).cloned())?,
            (None, None) => return None,
        };
        let mut roles: Vec<String> = claim_values(claims.get(&self.roles.claim))
            .into_iter()
            .filter_map(|value| self.roles.map.get(&value))
            .flatten()
            .cloned()
            .collect();
        roles.sort();
        roles.dedup();
        (!roles.is_empty()).then_some((tenant, roles))
    }
}

/// A claim's values: a string, or the strings of a list.
fn claim_values(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether the `state` that came back is the one sent (constant time).
pub fn state_matches(sent: &str, returned: &str) -> bool {
    !sent.is_empty() && session::same_secret(sent, returned)
}

/// Every claim of the ID token besides the standard ones, for the mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl AdditionalClaims for ExtraClaims {}

type StaffTokenResponse = StandardTokenResponse<
    IdTokenFields<
        ExtraClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type StaffClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    StaffTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The configured provider: its configuration and, once discovered, its
/// metadata (kept; discovered again if a login fails to use it).
pub struct StaffOidc {
    config: StaffOidcConfig,
    http: openidconnect::reqwest::Client,
    metadata: tokio::sync::Mutex<Option<Arc<CoreProviderMetadata>>>,
}

impl StaffOidc {
    pub fn new(config: StaffOidcConfig) -> Self {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // No redirects: the crate's advice against SSRF through them.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("an HTTP client builds");
        Self {
            config,
            http,
            metadata: tokio::sync::Mutex::new(None),
        }
    }

    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }

    async fn client(&self) -> Result<StaffClient, String> {
        let metadata = {
            let mut cached = self.metadata.lock().await;
            match cached.as_ref() {
                Some(metadata) => metadata.clone(),
                None => {
                    let issuer =
                        IssuerUrl::new(self.config.issuer.clone()).map_err(|e| e.to_string())?;
                    let discovered = CoreProviderMetadata::discover_async(issuer, &self.http)
                        .await
                        .map_err(|e| format!("discovering {}: {e}", self.config.issuer))?;
                    let discovered = Arc::new(discovered);
                    *cached = Some(discovered.clone());
                    discovered
                }
            }
        };
        let redirect =
            RedirectUrl::new(self.config.redirect_url.clone()).map_err(|e| e.to_string())?;
        Ok(StaffClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    async fn forget_metadata(&self) {
        *self.metadata.lock().await = None;
    }
}

fn failed(lang: crate::web::i18n::Lang) -> Response {
    see_other(
        &format!(
            "/login{}",
            crate::web::html::query(&[("oidc_failed", "1"), ("lang", lang.code())])
        ),
        None,
    )
}

/// GET /login/oidc: off to the provider.
pub async fn start(State(state): State<AppState>, visitor: Visitor) -> Response {
    let Some(oidc) = &state.web.oidc else {
        return see_other("/login", None);
    };
    let client = match oidc.client().await {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "staff OpenID login: provider unavailable");
            return failed(visitor.lang);
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(
        AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in oidc.config.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf_state, nonce) = request.set_pkce_challenge(challenge).url();
    let stage = Stage::Oidc {
        state: csrf_state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    };
    let id = match visitor.session_id.as_deref() {
        Some(id) => state.web.sessions.rotate(id, stage).0,
        None => {
            state
                .web
                .sessions
                .create(
                    stage,
                    visitor
                        .param("lang")
                        .and_then(crate::web::i18n::Lang::parse),
                )
                .0
        }
    };
    see_other(url.as_str(), Some(session::set_cookie(&id)))
}

/// GET /login/oidc/callback: the provider's redirect back (cross-site, so
/// without our cookie): a page that continues on our own site.
pub async fn callback(visitor: Visitor) -> Response {
    let lang = visitor.lang;
    if visitor.param("error").is_some() {
        return failed(lang);
    }
    let (Some(code), Some(returned)) = (visitor.param("code"), visitor.param("state")) else {
        return failed(lang);
    };
    let next = format!(
        "/login/oidc/finish{}",
        crate::web::html::query(&[("code", code), ("state", returned)])
    );
    let title = lang.pick("Inloggen", "Log in");
    let frame = Frame {
        lang,
        title,
        current: Current::Login,
        signed: None,
        path: "/login/oidc/callback",
        query: &[],
    };
    let main = format!(
        "<h1>{title}</h1>\n<p><a href=\"{href}\">{go}</a></p>",
        href = esc(&next),
        go = lang.pick("Doorgaan met inloggen", "Continue logging in")
    );
    let page = frame.render(&main).replacen(
        "<meta charset=\"utf-8\">",
        &format!(
            "<meta charset=\"utf-8\">\n<meta http-equiv=\"refresh\" content=\"0;url={}\">",
            esc(&next)
        ),
        1,
    );
    page_response(StatusCode::OK, page)
}

/// GET /login/oidc/finish: checks the state against the session, trades
/// the code (with the PKCE verifier) for tokens, checks the ID token and
/// its nonce, maps the claims, logs in.
pub async fn finish(State(state): State<AppState>, visitor: Visitor) -> Response {
    let lang = visitor.lang;
    let Some(oidc) = &state.web.oidc else {
        return see_other("/login", None);
    };
    let (Some(id), Some(session)) = (&visitor.session_id, &visitor.session) else {
        return failed(lang);
    };
    let Stage::Oidc {
        state: sent,
        nonce,
        pkce_verifier,
    } = session.stage.clone()
    else {
        return failed(lang);
    };
    // A state is good for one try, whatever comes of it.
    state
        .web
        .sessions
        .update(id, |s| s.stage = Stage::Anonymous);
    let returned = visitor.param("state").unwrap_or("");
    if !state_matches(&sent, returned) {
        audit(
            &state,
            "staff.login.oidc",
            None,
            None,
            "staff_oidc",
            visitor.client,
            StatusCode::FORBIDDEN,
        );
        return failed(lang);
    }
    let Some(code) = visitor.param("code") else {
        return failed(lang);
    };
    let outcome = async {
        let client = oidc.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| e.to_string())?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&oidc.http)
            .await
            .map_err(|e| format!("token request: {e}"))?;
        let id_token = response
            .extra_fields()
            .id_token()
            .ok_or("the provider sent no ID token")?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(nonce))
            .map_err(|e| format!("ID token: {e}"))?;
        let display_name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string())
            .or_else(|| claims.preferred_username().map(|u| u.to_string()))
            .or_else(|| claims.email().map(|e| e.to_string()))
            .unwrap_or_else(|| claims.subject().to_string());
        let key = format!(
            "oidc-staff:{}#{}",
            claims.issuer().as_str(),
            claims.subject().as_str()
        );
        Ok::<_, String>((key, display_name, claims.additional_claims().other.clone()))
    }
    .await;
    let (key, display_name, extra) = match outcome {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "staff OpenID login failed");
            oidc.forget_metadata().await;
            audit(
                &state,
                "staff.login.oidc",
                None,
                None,
                "staff_oidc",
                visitor.client,
                StatusCode::UNAUTHORIZED,
            );
            return failed(lang);
        }
    };
    let Some((tenant, roles)) = oidc.config.map_claims(&extra) else {
        audit(
            &state,
            "staff.login.oidc",
            Some(&key),
            None,
            "staff_oidc",
            visitor.client,
            StatusCode::FORBIDDEN,
        );
        return failed(lang);
    };
    match state.store.tenant(&tenant) {
        Ok(Some(_)) => {}
        _ => {
            tracing::warn!(%tenant, "staff OpenID login maps to a tenant that is not defined");
            return failed(lang);
        }
    }
    let (new_id, _) = state.web.sessions.rotate(
        id,
        Stage::Staff(StaffLogin::Oidc {
            key: key.clone(),
            display_name,
            tenant: tenant.clone(),
            roles,
        }),
    );
    audit(
        &state,
        "staff.login",
        Some(&key),
        Some(&tenant),
        "staff_oidc",
        visitor.client,
        StatusCode::OK,
    );
    see_other("/dashboard", Some(session::set_cookie(&new_id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: Value) -> Result<StaffOidcConfig, String> {
        let mut file = json!({
            "display_name": "KB-account",
            "issuer": "https://login.microsoftonline.com/abc/v2.0",
            "client_id": "lrs-dashboard",
            "client_secret_env": "LRS_TEST_OIDC_SECRET",
            "redirect_url": "https://lrs.example.nl/login/oidc/callback",
            "tenant": {"claim": "kb_tenant", "map": {"KB": "kb", "NL-0000000001": "bieb-a"}},
            "roles": {"claim": "roles", "map": {"LRS.Inzicht": ["kb-inzicht"], "LRS.Bieb": ["bieb-medewerker", "kb-inzicht"]}}
        });
        for (key, value) in extra.as_object().unwrap() {
            file[key] = value.clone();
        }
        StaffOidcConfig::parse(&file.to_string(), |name| {
            (name == "LRS_TEST_OIDC_SECRET").then(|| "s3cret".to_owned())
        })
    }

    #[test]
    fn a_good_configuration_parses_and_bad_ones_say_why() {
        let good = config(json!({})).unwrap();
        assert_eq!(good.client_secret.as_deref(), Some("s3cret"));
        assert_eq!(good.scopes, ["openid", "profile", "email"]);
        for (bad, why) in [
            (json!({"issuer": "http://idp.example.nl"}), "https://"),
            (
                json!({"redirect_url": "https://lrs.example.nl/elders"}),
                "/login/oidc/callback",
            ),
            (json!({"client_secret_env": "NOT_SET"}), "NOT_SET"),
            (json!({"scopes": ["profile"]}), "openid"),
            (json!({"tenant": {"fixed": "kb", "claim": "x"}}), "either"),
            (
                json!({"roles": {"claim": "roles", "map": {}}}),
                "at least one",
            ),
            (json!({"surprise": 1}), "unknown field"),
        ] {
            let error = config(bad.clone()).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(
            config(json!({"issuer": "http://127.0.0.1:9000/realm"})).is_ok(),
            "loopback http for tests"
        );
    }

    #[test]
    fn claims_map_to_a_tenant_and_roles_or_refuse() {
        let config = config(json!({})).unwrap();
        let claims =
            |value: Value| -> BTreeMap<String, Value> { serde_json::from_value(value).unwrap() };
        assert_eq!(
            config.map_claims(&claims(
                json!({"kb_tenant": "NL-0000000001", "roles": ["LRS.Bieb", "Other"]})
            )),
            Some((
                "bieb-a".into(),
                vec!["bieb-medewerker".into(), "kb-inzicht".into()]
            ))
        );
        assert_eq!(
            config.map_claims(&claims(
                json!({"kb_tenant": ["x", "KB"], "roles": "LRS.Inzicht"})
            )),
            Some(("kb".into(), vec!["kb-inzicht".into()]))
        );
        assert_eq!(
            config.map_claims(&claims(
                json!({"kb_tenant": "NL-9", "roles": ["LRS.Inzicht"]})
            )),
            None,
            "unknown tenant"
        );
        assert_eq!(
            config.map_claims(&claims(json!({"kb_tenant": "KB", "roles": ["Other"]}))),
            None,
            "no role"
        );
        assert_eq!(
            config.map_claims(&claims(json!({"roles": ["LRS.Inzicht"]}))),
            None,
            "no tenant claim"
        );
    }

    #[test]
    fn the_state_must_come_back_unchanged() {
        let sent = session::random_token();
        assert!(state_matches(&sent, &sent.clone()));
        assert!(!state_matches(&sent, "forged"));
        assert!(!state_matches(&sent, ""));
        assert!(!state_matches("", ""), "no state sent, nothing matches");
    }

    #[test]
    fn the_authorization_request_carries_pkce_state_and_nonce() {
        // A client from hand-made metadata: the URL the browser is sent to.
        let metadata: CoreProviderMetadata = serde_json::from_value(json!({
            "issuer": "https://idp.example.nl",
            "authorization_endpoint": "https://idp.example.nl/authorize",
            "token_endpoint": "https://idp.example.nl/token",
            "jwks_uri": "https://idp.example.nl/keys",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]
        }))
        .unwrap();
        let client =
            StaffClient::from_provider_metadata(metadata, ClientId::new("lrs".into()), None)
                .set_redirect_uri(
                    RedirectUrl::new("https://lrs.example.nl/login/oidc/callback".into()).unwrap(),
                );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge.clone())
            .url();
        let pairs: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["response_type"], "code");
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["code_challenge"], challenge.as_str());
        assert_eq!(&pairs["state"], state.secret());
        assert_eq!(&pairs["nonce"], nonce.secret());
        assert!(state.secret().len() >= 16 && nonce.secret().len() >= 16);
        // The challenge is the verifier's SHA-256 (RFC 7636 S256).
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(verifier.secret().as_bytes());
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
            challenge.as_str()
        );
    }
}
