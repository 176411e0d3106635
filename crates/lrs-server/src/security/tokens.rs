//! Bearer tokens: our own issuer's signing keys (ES256, generated in this
//! process and rotated on a schedule; the previous public key stays
//! published until the last token it signed has expired), the claims of our
//! access tokens (RFC 9068 shape), and the external OpenID providers whose
//! tokens are accepted too. No HTTP here: the token endpoint is `oauth.rs`,
//! the check of a presented token `authn.rs`.

use crate::security::jwt::describe_jwt_error;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lrs_app::principal::{Credential, SCOPES};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The only signing algorithm of our tokens: ECDSA P-256, small and fast to
/// verify, in every JWT library.
const ALGORITHM: Algorithm = Algorithm::ES256;

/// The `typ` of our access tokens (RFC 9068 §2.1), so an ID token or any
/// other JWT signed elsewhere can never pass as one.
const TOKEN_TYPE: &str = "at+jwt";

/// A retired key stays published this long past the expiry of the last token
/// it can have signed: room for wall-clock steps against our monotonic timer.
const RETIRED_MARGIN: Duration = Duration::from_secs(60);

/// The token endpoint's and bearer tokens' settings.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The server's public base URL, the issuer of its tokens; `None`:
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    pub token_ttl_secs: u64,
    pub key_rotation_secs: u64,
    /// External OpenID Connect providers whose tokens are accepted.
    pub oidc_providers: Vec<crate::security::oidc::ProviderConfig>,
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

/// Everything bearer tokens need: our own issuer and the external providers.
pub struct Tokens {
    pub local: LocalIssuer,
    pub oidc: crate::security::oidc::Providers,
}

impl Tokens {
    pub fn new(config: &OAuthConfig, listen: std::net::SocketAddr) -> Self {
        let issuer = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        Self {
            local: LocalIssuer::new(
                issuer,
                Duration::from_secs(config.token_ttl_secs),
                Duration::from_secs(config.key_rotation_secs),
            ),
            oidc: crate::security::oidc::Providers::new(&config.oidc_providers),
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
        let now = lrs_core::clock::now_unix_secs().max(0) as u64;
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

/// Whether a principal with `credential`'s scopes may hold `wanted`:
/// `all` covers everything, `all/read` every read, `statements/read` also
/// `statements/read/mine`.
pub fn covers(credential: &Credential, wanted: &str) -> bool {
    credential.has_scope(wanted)
        || (wanted == "statements/read/mine" && credential.has_scope("statements/read"))
}

/// A credential with `scopes`, for the tests of tokens and the token endpoint.
#[cfg(test)]
pub(crate) fn test_credential(scopes: &[&str]) -> Credential {
    Credential {
        key: "lrs_0123".into(),
        name: "test".into(),
        tenant: "t1".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        permissions: Vec::new(),
        expires_micros: None,
        method: lrs_app::principal::AuthMethod::Basic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::jwt::unverified_issuer;

    fn credential(scopes: &[&str]) -> Credential {
        test_credential(scopes)
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
        soon.expires_micros =
            Some((lrs_core::clock::now_unix_secs().max(0) as u64 as i64 + 30) * 1_000_000);
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
}
