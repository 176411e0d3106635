//! Who may do what, and how the server meets the network: authentication
//! (Basic with argon2 checks, our bearer tokens and external OpenID
//! providers'), the extractors handlers start with, rate limits and
//! lockouts, the token endpoint, the audit trail's middleware, TLS, serving
//! connections (the HTTP library's own limits), the security headers and
//! security.txt.
//!
//! Never imports a surface (`resources/`, `api/`, `web/`) or the
//! composition root; it may count in `ops::counters`.

pub mod audit;
pub mod authn;
pub mod connections;
pub mod extract;
pub mod headers;
pub mod jwt;
pub mod oauth;
pub mod oidc;
pub mod ratelimit;
pub mod secret_verifier;
pub mod security_txt;
pub mod tls;
pub mod tokens;
pub mod transport;
