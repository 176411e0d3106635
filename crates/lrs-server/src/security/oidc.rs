//! Bearer tokens of external OpenID Connect providers (the KB's login,
//! Microsoft Entra ID): validated against each provider's published keys
//! (JWKS), with claims mapped to tenant, xAPI scopes and permissions by a
//! providers file (`--oidc-providers`, docs/security-oauth.md).
//!
//! A provider's key set is fetched on first use (its `jwks_uri`, configured
//! or discovered from `<issuer>/.well-known/openid-configuration`), cached
//! for the response's `Cache-Control: max-age` (else an hour), and fetched
//! again early when a token names a key the cache lacks, but at most once
//! per `jwks_refetch_min_secs` per provider, so tokens with made-up key ids
//! cannot make us hammer the provider. A key missing from a fetched set is
//! no longer accepted.
//!
//! It never issues tokens (`oauth.rs`) and never reads the store.

use crate::error::ApiError;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lrs_app::principal::{AuthMethod, Credential, SCOPES};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Signing algorithms a provider may be allowed: asymmetric only. `none` and
/// the HMAC family are never accepted (a shared secret would let anyone who
/// holds it, or who passes a public key off as one, mint tokens).
const ACCEPTABLE: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A key set is kept this long when the response says nothing.
const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(3600);
/// Bounds on a provider's `max-age`.
const MIN_JWKS_TTL: Duration = Duration::from_secs(60);
const MAX_JWKS_TTL: Duration = Duration::from_secs(86_400);
/// While the provider cannot be reached, its last key set is used for at
/// most this long past its expiry; then its tokens are refused.
const STALE_GRACE: Duration = Duration::from_secs(86_400);
/// Largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// One entry of the providers file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Exactly the provider's `iss`, e.g.
    /// `https://login.microsoftonline.com/<directory id>/v2.0`.
    pub issuer: String,
    /// Where its keys are; absent: from its OpenID discovery document.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Accepted `aud` values (at least one): this API's identifier at the
    /// provider.
    pub audiences: Vec<String>,
    /// Allowed signing algorithms.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Every token of this provider belongs to this tenant ...
    #[serde(default)]
    pub tenant: Option<String>,
    /// ... or the tenant is looked up from this claim's value in `tenant_map`.
    #[serde(default)]
    pub tenant_claim: Option<String>,
    #[serde(default)]
    pub tenant_map: BTreeMap<String, String>,
    /// The claim (or claims: `["roles", "scp"]`) whose values map to
    /// scopes: an array (`roles`) or a space-separated string (`scp`, `scope`).
    #[serde(default = "default_scope_claim")]
    pub scope_claim: OneOrMany,
    /// Claim value → the xAPI scopes and permissions it grants.
    #[serde(default)]
    pub scopes: BTreeMap<String, Grant>,
    /// The claim shown as the principal's name (else `sub`).
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// A token naming an unknown key fetches the key set again at most
    /// this often, seconds.
    #[serde(default = "default_refetch_min_secs")]
    pub jwks_refetch_min_secs: u64,
}

/// What one claim value grants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn default_leeway() -> u64 {
    60
}
fn default_scope_claim() -> OneOrMany {
    OneOrMany::One("scope".into())
}

/// A claim name, or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> &[String] {
        match self {
            OneOrMany::One(name) => std::slice::from_ref(name),
            OneOrMany::Many(names) => names,
        }
    }
}

impl std::fmt::Display for OneOrMany {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names().join("/"))
    }
}
fn default_name_claim() -> String {
    "name".into()
}
fn default_refetch_min_secs() -> u64 {
    30
}

/// Reads and checks a providers file: a JSON array of [`ProviderConfig`].
pub fn load_providers(path: &Path) -> Result<Vec<ProviderConfig>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--oidc-providers {}: {e}", path.display()))?;
    parse_providers(&text).map_err(|e| format!("--oidc-providers {}: {e}", path.display()))
}

pub fn parse_providers(text: &str) -> Result<Vec<ProviderConfig>, String> {
    let providers: Vec<ProviderConfig> =
        serde_json::from_str(text).map_err(|e| format!("not a list of providers: {e}"))?;
    let mut issuers = BTreeSet::new();
    for provider in &providers {
        provider
            .check()
            .map_err(|e| format!("provider {:?}: {e}", provider.issuer))?;
        if !issuers.insert(provider.issuer.as_str()) {
            return Err(format!("provider {:?} is listed twice", provider.issuer));
        }
    }
    Ok(providers)
}

impl ProviderConfig {
    fn check(&self) -> Result<(), String> {
        check_fetch_url(&self.issuer).map_err(|e| format!("issuer: {e}"))?;
        if let Some(uri) = &self.jwks_uri {
            check_fetch_url(uri).map_err(|e| format!("jwks_uri: {e}"))?;
        }
        if self.audiences.iter().all(|a| a.trim().is_empty()) {
            return Err("audiences: name at least one accepted aud".into());
        }
        if self.algorithms.is_empty() {
            return Err("algorithms: allow at least one".into());
        }
        for name in &self.algorithms {
            parse_algorithm(name)?;
        }
        match (&self.tenant, &self.tenant_claim) {
            (Some(_), None) if self.tenant_map.is_empty() => {}
            (None, Some(_)) if !self.tenant_map.is_empty() => {}
            _ => {
                return Err(
                    "give either tenant (a fixed tenant id) or tenant_claim with tenant_map".into(),
                )
            }
        }
        if self.scope_claim.names().is_empty() {
            return Err("scope_claim: name at least one claim".into());
        }
        if self.scopes.is_empty() {
            return Err(format!(
                "scopes: map at least one value of the {} claim",
                self.scope_claim
            ));
        }
        for (value, grant) in &self.scopes {
            if let Some(unknown) = grant.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                return Err(format!(
                    "scopes.{value}: unknown xAPI scope {unknown:?}; known: {}",
                    SCOPES.join(" ")
                ));
            }
        }
        if self.jwks_refetch_min_secs == 0 {
            return Err("jwks_refetch_min_secs: at least 1".into());
        }
        Ok(())
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let algorithm: Algorithm = name
        .parse()
        .map_err(|_| format!("algorithms: {name:?} is not a signing algorithm"))?;
    if !ACCEPTABLE.contains(&algorithm) {
        return Err(format!(
            "algorithms: {name:?} is not accepted (only asymmetric: RS*, PS*, ES256, ES384, EdDSA)"
        ));
    }
    Ok(algorithm)
}

/// Keys are fetched over https; plain http only from this machine (a
/// development or test provider).
fn check_fetch_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("{url:?}: must be https (http only on localhost)")),
    }
}

/// The configured providers, by issuer.
pub struct Providers {
    by_issuer: HashMap<String, Provider>,
}

impl Providers {
    pub fn new(configs: &[ProviderConfig]) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("lrs/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client for OpenID providers builds");
        Self {
            by_issuer: configs
                .iter()
                .map(|config| {
                    (
                        config.issuer.clone(),
                        Provider::new(config.clone(), http.clone()),
                    )
                })
                .collect(),
        }
    }

    pub fn provider(&self, issuer: &str) -> Option<&Provider> {
        self.by_issuer.get(issuer)
    }

    pub fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }
}

/// One usable public key of a provider.
#[derive(Clone)]
struct ProviderKey {
    /// The JWK's own `alg`, if it names one: then only that algorithm.
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn fits(self, algorithm: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(algorithm, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => algorithm == ES256,
            KeyKind::P384 => algorithm == ES384,
            KeyKind::Ed25519 => algorithm == EdDSA,
        }
    }
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, ProviderKey>,
    /// When the set was fetched and how long it is good for; `None`: never.
    fetched: Option<(Instant, Duration)>,
}

impl KeyCache {
    fn fresh(&self) -> bool {
        self.fetched.is_some_and(|(at, ttl)| at.elapsed() < ttl)
    }

    fn usable(&self) -> bool {
        self.fetched
            .is_some_and(|(at, ttl)| at.elapsed() < ttl + STALE_GRACE)
    }
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// Configured, or discovered once.
    jwks_uri: Option<String>,
}

pub struct Provider {
    config: ProviderConfig,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: RwLock<KeyCache>,
    /// Held while fetching: one fetch at a time per provider, and the
    /// instant of the last attempt that paces them.
    fetch: tokio::sync::Mutex<FetchState>,
}

impl Provider {
    fn new(config: ProviderConfig, http: reqwest::Client) -> Self {
        let algorithms = config
            .algorithms
            .iter()
            .filter_map(|name| parse_algorithm(name).ok())
            .collect();
        Self {
            fetch: tokio::sync::Mutex::new(FetchState {
                last_attempt: None,
                jwks_uri: config.jwks_uri.clone(),
            }),
            algorithms,
            http,
            keys: RwLock::new(KeyCache::default()),
            config,
        }
    }

    /// Verifies a token of this provider and maps it to a principal: 401 when
    /// it does not verify, 403 when no rule maps it to a tenant or scopes.
    pub async fn authenticate(&self, token: &str) -> Result<Credential, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::InvalidToken("malformed token"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(ApiError::InvalidToken(
                "token algorithm is not accepted for its issuer",
            ));
        }
        let kid = header
            .kid
            .ok_or(ApiError::InvalidToken("token names no key (kid)"))?;
        let key = self.key(&kid).await?;
        if !key.kind.fits(header.alg) || key.alg.is_some_and(|alg| alg != header.alg) {
            return Err(ApiError::InvalidToken(
                "token algorithm does not fit its key",
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&self.config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|e| ApiError::InvalidToken(crate::security::jwt::describe_jwt_error(&e)))?
            .claims;
        self.principal(&claims)
    }

    /// The key `kid`, fetching the key set when it is stale or lacks `kid`
    /// (paced by `jwks_refetch_min_secs`).
    async fn key(&self, kid: &str) -> Result<ProviderKey, ApiError> {
        if let Some(key) = self.cached(kid, false) {
            return Ok(key);
        }
        let mut fetch = self.fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached(kid, false) {
            return Ok(key);
        }
        let pace = Duration::from_secs(self.config.jwks_refetch_min_secs);
        if fetch.last_attempt.is_none_or(|at| at.elapsed() >= pace) {
            fetch.last_attempt = Some(Instant::now());
            if let Err(error) = self.refresh(&mut fetch).await {
                tracing::warn!(issuer = %self.config.issuer, %error, "fetching the provider's keys failed");
            }
        }
        if let Some(key) = self.cached(kid, true) {
            return Ok(key);
        }
        if !self.keys.read().expect("provider keys").usable() {
            return Err(ApiError::InvalidToken(
                "the issuer's signing keys could not be fetched",
            ));
        }
        Err(ApiError::InvalidToken("token signed with an unknown key"))
    }

    fn cached(&self, kid: &str, stale_ok: bool) -> Option<ProviderKey> {
        let cache = self.keys.read().expect("provider keys");
        let good = if stale_ok {
            cache.usable()
        } else {
            cache.fresh()
        };
        good.then(|| cache.keys.get(kid).cloned()).flatten()
    }

    async fn refresh(&self, fetch: &mut FetchState) -> Result<(), String> {
        let jwks_uri = match &fetch.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                fetch.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let (set, max_age) = self.get_json(&jwks_uri).await?;
        let keys = parse_key_set(&set)?;
        let ttl = max_age
            .unwrap_or(DEFAULT_JWKS_TTL)
            .clamp(MIN_JWKS_TTL, MAX_JWKS_TTL);
        tracing::info!(issuer = %self.config.issuer, keys = keys.len(), ttl_secs = ttl.as_secs(), "provider keys fetched");
        *self.keys.write().expect("provider keys") = KeyCache {
            keys,
            fetched: Some((Instant::now(), ttl)),
        };
        Ok(())
    }

    /// The `jwks_uri` of the provider's OpenID discovery document, whose
    /// `issuer` must be the configured one (OpenID Connect Discovery §4.3).
    async fn discover(&self) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let (document, _) = self.get_json(&url).await?;
        if document["issuer"].as_str() != Some(self.config.issuer.as_str()) {
            return Err(format!(
                "{url}: its issuer is {}, not the configured one",
                document["issuer"]
            ));
        }
        let jwks_uri = document["jwks_uri"]
            .as_str()
            .ok_or_else(|| format!("{url}: no jwks_uri"))?;
        check_fetch_url(jwks_uri)?;
        Ok(jwks_uri.to_owned())
    }

    /// GETs a JSON document (at most [`MAX_DOCUMENT_BYTES`]) and its max-age.
    async fn get_json(&self, url: &str) -> Result<(Value, Option<Duration>), String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: answered {}", response.status()));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let value = serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))?;
        Ok((value, max_age))
    }

    /// The principal of a verified token's claims.
    fn principal(&self, claims: &Value) -> Result<Credential, ApiError> {
        let config = &self.config;
        let subject = claims["sub"].as_str().ok_or(ApiError::InvalidToken(
            "token subject (sub) is not a string",
        ))?;
        let tenant = match (&config.tenant, &config.tenant_claim) {
            (Some(tenant), _) => tenant.clone(),
            (None, Some(claim)) => {
                let value = match &claims[claim.as_str()] {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    _ => {
                        return Err(ApiError::Denied(format!(
                            "the token has no {claim} claim to map to a tenant"
                        )))
                    }
                };
                config.tenant_map.get(&value).cloned().ok_or_else(|| {
                    ApiError::Denied(format!("no tenant is mapped to the token's {claim} claim"))
                })?
            }
            (None, None) => unreachable!("checked when the providers file was read"),
        };
        let mut scopes = BTreeSet::new();
        let mut permissions = BTreeSet::new();
        let values = config
            .scope_claim
            .names()
            .iter()
            .flat_map(|claim| claim_values(&claims[claim.as_str()]));
        for value in values {
            if let Some(grant) = config.scopes.get(value) {
                scopes.extend(grant.scopes.iter().cloned());
                permissions.extend(grant.permissions.iter().cloned());
            }
        }
        if scopes.is_empty() && permissions.is_empty() {
            return Err(ApiError::Denied(format!(
                "none of the token's {} values maps to an xAPI scope or permission",
                config.scope_claim
            )));
        }
        let name = claims[config.name_claim.as_str()]
            .as_str()
            .unwrap_or(subject)
            .to_owned();
        Ok(Credential {
            key: format!("oidc:{}#{subject}", config.issuer),
            name,
            tenant,
            scopes: scopes.into_iter().collect(),
            permissions: permissions.into_iter().collect(),
            expires_micros: claims["exp"].as_i64().map(|exp| exp * 1_000_000),
            method: AuthMethod::ExternalToken,
        })
    }
}

/// A claim's values: an array of strings (`roles`) or a space-separated
/// string (`scp`, `scope`).
fn claim_values(claim: &Value) -> Vec<&str> {
    match claim {
        Value::String(text) => text.split(' ').filter(|s| !s.is_empty()).collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The usable signing keys of a JWKS, by kid. Keys without a kid, meant for
/// encryption, symmetric, or of a kind we cannot use are skipped, not fatal:
/// providers publish all sorts.
fn parse_key_set(set: &Value) -> Result<HashMap<String, ProviderKey>, String> {
    let entries = set["keys"]
        .as_array()
        .ok_or("the key set has no \"keys\" array")?;
    let mut keys = HashMap::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|usage| *usage != PublicKeyUse::Signature)
        {
            continue;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => KeyKind::P256,
                EllipticCurve::P384 => KeyKind::P384,
                _ => continue,
            },
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => KeyKind::Ed25519,
                _ => continue,
            },
            AlgorithmParameters::OctetKey(_) => continue,
        };
        let alg = match jwk.common.key_algorithm {
            Some(named) => match named.to_string().parse::<Algorithm>() {
                Ok(alg) => Some(alg),
                Err(_) => continue,
            },
            None => None,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(kid, ProviderKey { alg, kind, key });
    }
    Ok(keys)
}

/// `max-age` of a Cache-Control value; `no-cache`/`no-store` count as 0.
fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            found = seconds
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entra() -> Value {
        json!({
            "issuer": "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0",
            "audiences": ["api://lrs"],
            "algorithms": ["RS256"],
            "tenant_claim": "tid",
            "tenant_map": {"11111111-2222-3333-4444-555555555555": "kb"},
            "scope_claim": ["roles", "scp"],
            "scopes": {"Lrs.Read": {"scopes": ["statements/read"]}, "Lrs.Audit": {"permissions": ["audit.read"]},
                       "Statements.Write": {"scopes": ["statements/write"]}}
        })
    }

    fn parse(value: Value) -> Result<Vec<ProviderConfig>, String> {
        parse_providers(&json!([value]).to_string())
    }

    #[test]
    fn a_providers_file_is_checked_when_read() {
        let providers = parse(entra()).unwrap();
        assert_eq!(providers[0].leeway_secs, 60);
        assert_eq!(providers[0].jwks_refetch_min_secs, 30);
        let broken = |change: fn(&mut Value), why: &str| {
            let mut config = entra();
            change(&mut config);
            let error = parse(config).unwrap_err();
            assert!(error.contains(why), "{why}: {error}");
        };
        broken(
            |c| c["algorithms"] = json!(["none"]),
            "not a signing algorithm",
        );
        broken(|c| c["algorithms"] = json!(["HS256"]), "not accepted");
        broken(|c| c["algorithms"] = json!([]), "at least one");
        broken(|c| c["audiences"] = json!([]), "audiences");
        broken(|c| c["tenant"] = json!("kb"), "either tenant");
        broken(|c| c["tenant_map"] = json!({}), "either tenant");
        broken(
            |c| c["issuer"] = json!("http://idp.example.nl"),
            "must be https",
        );
        broken(
            |c| c["jwks_uri"] = json!("http://10.0.0.1/keys"),
            "must be https",
        );
        broken(
            |c| c["scopes"]["Lrs.Read"]["scopes"] = json!(["statements/everything"]),
            "unknown xAPI scope",
        );
        broken(|c| c["scopes"] = json!({}), "map at least one");
        broken(|c| c["audience"] = json!("typo"), "unknown field");
        let mut local = entra();
        local["issuer"] = json!("http://127.0.0.1:9000/idp");
        assert!(parse(local).is_ok(), "http on loopback is allowed");
        let twice = json!([entra(), entra()]).to_string();
        assert!(parse_providers(&twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn claims_map_to_tenant_scopes_and_permissions() {
        let provider = Provider::new(parse(entra()).unwrap().remove(0), reqwest::Client::new());
        let claims = json!({
            "sub": "abc", "name": "Anna", "exp": 2_000_000_000i64,
            "tid": "11111111-2222-3333-4444-555555555555", "roles": ["Lrs.Read", "Lrs.Audit", "Other"]
        });
        let principal = provider.principal(&claims).unwrap();
        let mut delegated = claims.clone();
        delegated["scp"] = json!("Statements.Write openid");
        assert_eq!(
            provider.principal(&delegated).unwrap().scopes,
            ["statements/read", "statements/write"],
            "values of every listed claim count"
        );
        assert_eq!(
            principal.key,
            "oidc:https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0#abc"
        );
        assert_eq!(principal.tenant, "kb");
        assert_eq!(principal.scopes, ["statements/read"]);
        assert_eq!(principal.permissions, ["audit.read"]);
        assert_eq!(principal.name, "Anna");
        assert_eq!(principal.method, AuthMethod::ExternalToken);

        let mut unmapped = claims.clone();
        unmapped["tid"] = json!("99999999-0000-0000-0000-000000000000");
        assert!(matches!(
            provider.principal(&unmapped),
            Err(ApiError::Denied(_))
        ));
        let mut no_roles = claims.clone();
        no_roles["roles"] = json!(["Other"]);
        assert!(matches!(
            provider.principal(&no_roles),
            Err(ApiError::Denied(_))
        ));
        let mut single = entra();
        single["scope_claim"] = json!("roles");
        assert_eq!(parse(single).unwrap()[0].scope_claim.names(), ["roles"]);
    }

    #[test]
    fn claim_values_are_arrays_or_space_separated() {
        assert_eq!(claim_values(&json!("a b  c")), ["a", "b", "c"]);
        assert_eq!(claim_values(&json!(["a", 1, "b"])), ["a", "b"]);
        assert!(claim_values(&json!(null)).is_empty());
    }

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn key_sets_keep_only_usable_signing_keys() {
        let set = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird", "kid": "weird"}
        ]});
        let keys = parse_key_set(&set).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["ec"]);
        assert!(keys["ec"].kind.fits(Algorithm::ES256));
        assert!(!keys["ec"].kind.fits(Algorithm::RS256));
        assert!(parse_key_set(&json!({})).is_err());
    }
}
