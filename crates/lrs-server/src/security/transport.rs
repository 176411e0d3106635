//! How the server meets browsers and the network: TLS files, HSTS, CORS
//! origins and security.txt's settings (`tls.rs`, `headers.rs`,
//! `security_txt.rs`, the xAPI resources' CORS layer).

use std::path::PathBuf;

/// How the server meets browsers and the network. The defaults keep a fresh
/// `lrs serve` working: plain HTTP on loopback, any CORS origin without
/// credentials, no security.txt until a contact is configured.
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    /// Certificate chain and private key (PEM); `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Send HSTS on plain HTTP too (`--hsts`): for a TLS-terminating proxy
    /// in front. With `tls` set HSTS is always sent.
    pub hsts: bool,
    /// Origins allowed to read responses in a browser; empty: any origin.
    pub cors_origins: Vec<String>,
    /// RFC 9116 `Contact` URIs; empty: `/.well-known/security.txt` is 404.
    pub security_contacts: Vec<String>,
    /// RFC 9116 `Expires`; `None`: 180 days after the server started.
    pub security_txt_expires: Option<chrono::DateTime<chrono::Utc>>,
    /// The https:// address clients reach the server at (the proxy's when
    /// behind one), for security.txt's `Canonical`.
    pub public_url: Option<String>,
}

impl TransportConfig {
    /// Whether responses carry `Strict-Transport-Security`.
    pub fn sends_hsts(&self) -> bool {
        self.tls.is_some() || self.hsts
    }
}

/// The PEM files of the server certificate; re-read when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A browser origin: `scheme://host[:port]`, exactly as the browser sends it
/// in `Origin` (no path, no trailing slash), compared byte for byte.
pub fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err("an origin is scheme://host[:port], e.g. https://lms.example.nl".into());
    };
    if !matches!(scheme, "https" | "http") || rest.is_empty() {
        return Err("an origin starts with https:// or http://".into());
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Err("an origin has no path, query or user (and no trailing slash)".into());
    }
    if !rest.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("an origin is ASCII without spaces (IDN hosts in punycode)".into());
    }
    Ok(value.to_ascii_lowercase())
}
