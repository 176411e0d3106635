//! The staff OpenID provider as a client sees it: the configuration file
//! (`--staff-oidc`, docs/dashboard.md: issuer, client id, the environment
//! variable holding the client secret, the redirect URL, and how claims map
//! to a tenant and to roles), discovery and the code exchange with PKCE,
//! state and nonce. The login pages that use it are `oidc_login.rs`.

use crate::web::session;
use lrs_app::insight::LearnerAccount;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, Client, ClientId, ClientSecret, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, RedirectUrl, StandardErrorResponse,
    StandardTokenResponse,
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
    /// Present: the provider also signs learners in, who see their own
    /// progress (`/my-progress`); a login that maps to no staff tenant or
    /// role is then a learner's, not refused.
    #[serde(default)]
    learners: Option<LearnerMapping>,
}

/// How a learner's login maps to the xAPI account the course apps send:
/// `{"homePage": home_page, "name": <the claim name_claim>}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerMapping {
    /// The account's `homePage`; absent: the issuer, as `/api/progress/me`
    /// maps a learner's bearer token.
    #[serde(default)]
    pub home_page: Option<String>,
    /// The claim whose value is the account's `name`: `sub` (the default),
    /// `preferred_username`, `email`, or any other string claim.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
}

fn default_name_claim() -> String {
    "sub".into()
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
    pub learners: Option<LearnerMapping>,
}

impl StaffOidcConfig {
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading --staff-oidc {}: {e}", path.display()))?;
        Self::parse(&text, |name| std::env::var(name).ok())
            .map_err(|e| format!("--staff-oidc {}: {e}", path.display()))
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
        if let Some(learners) = &file.learners {
            if let Some(home_page) = &learners.home_page {
                let parsed = openidconnect::url::Url::parse(home_page)
                    .map_err(|e| format!("learners.home_page {home_page:?}: {e}"))?;
                if !matches!(parsed.scheme(), "https" | "http") {
                    return Err(format!(
                        "learners.home_page must be an http(s) URL: {home_page}"
                    ));
                }
            }
            if learners.name_claim.trim().is_empty() {
                return Err("learners.name_claim must name a claim".into());
            }
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
            learners: file.learners,
        })
    }

    /// The xAPI account of a login, if this provider signs learners in:
    /// `{homePage: learners.home_page or the issuer, name: <name_claim>}`.
    /// `None` when learners are not configured or the claim is missing.
    pub fn learner_account(&self, issuer: &str, claims: &LoginClaims) -> Option<LearnerAccount> {
        let learners = self.learners.as_ref()?;
        let name = match learners.name_claim.as_str() {
            "sub" => Some(claims.subject.clone()),
            "preferred_username" => claims.preferred_username.clone(),
            "email" => claims.email.clone(),
            other => claims
                .other
                .get(other)
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
        .filter(|name| !name.is_empty())?;
        Some(LearnerAccount {
            home_page: learners
                .home_page
                .clone()
                .unwrap_or_else(|| issuer.to_owned()),
            name,
        })
    }
}

/// The claims of a verified ID token that a login maps.
#[derive(Debug, Clone, Default)]
pub struct LoginClaims {
    pub subject: String,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    /// Every claim besides the standard ones.
    pub other: BTreeMap<String, Value>,
}

impl StaffOidcConfig {
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

pub type StaffTokenResponse = StandardTokenResponse<
    IdTokenFields<
        ExtraClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

pub type StaffClient = Client<
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
    pub config: StaffOidcConfig,
    pub http: openidconnect::reqwest::Client,
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

    /// The client for the provider, discovering its metadata the first time.
    pub async fn client(&self) -> Result<StaffClient, String> {
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

    /// Forgets the metadata, so the next login discovers it again.
    pub async fn forget_metadata(&self) {
        *self.metadata.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openidconnect::core::CoreResponseType;
    use openidconnect::{AuthenticationFlow, CsrfToken, Nonce, PkceCodeChallenge};
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
    fn a_learner_login_maps_to_the_account_the_course_apps_send() {
        let claims = LoginClaims {
            subject: "00u-anna".into(),
            preferred_username: Some("anna@example.nl".into()),
            email: None,
            other: [("kb_id".to_owned(), json!("KB-42"))].into(),
        };
        let issuer = "https://login.microsoftonline.com/abc/v2.0";
        assert_eq!(
            config(json!({})).unwrap().learner_account(issuer, &claims),
            None,
            "no learners section: staff only"
        );
        assert_eq!(
            config(json!({"learners": {}}))
                .unwrap()
                .learner_account(issuer, &claims),
            Some(LearnerAccount {
                home_page: issuer.into(),
                name: "00u-anna".into()
            }),
            "by default the issuer and the subject, as /api/progress/me"
        );
        let custom =
            config(json!({"learners": {"home_page": "https://www.kb.nl", "name_claim": "kb_id"}}))
                .unwrap();
        assert_eq!(
            custom.learner_account(issuer, &claims),
            Some(LearnerAccount {
                home_page: "https://www.kb.nl".into(),
                name: "KB-42".into()
            })
        );
        let by_email = config(json!({"learners": {"name_claim": "email"}})).unwrap();
        assert_eq!(
            by_email.learner_account(issuer, &claims),
            None,
            "a missing claim maps to no learner"
        );
        for (bad, why) in [
            (json!({"learners": {"home_page": "kb.nl"}}), "home_page"),
            (json!({"learners": {"name_claim": " "}}), "name_claim"),
            (json!({"learners": {"homepage": "x"}}), "unknown field"),
        ] {
            let error = config(bad.clone()).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
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
