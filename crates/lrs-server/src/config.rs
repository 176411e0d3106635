//! Server configuration, from the command line and environment.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Largest request body accepted, bytes (413 above).
    pub max_body_bytes: usize,
    /// Most statements one GET returns (`limit=0` or absent means this).
    pub max_statements_per_page: usize,
    /// `homePage` of the authority account the store writes into statements.
    pub authority_home_page: String,
    /// Networks besides loopback whose clients may read `/metrics`
    /// (`--metrics-allow`, `LRS_METRICS_ALLOW`); empty: loopback only.
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// `/health/ready` fails below this much free space on the data
    /// directory's filesystem, bytes: sled needs room to write and compact,
    /// and a full disk fails every write.
    pub ready_min_free_bytes: u64,
    /// The context extensions naming a statement's library and app.
    pub origin_extensions: crate::tenancy::OriginExtensions,
    /// Transport: TLS, HSTS, CORS origins and security.txt (`tls.rs`,
    /// `security_headers.rs`, `security_txt.rs`).
    pub transport: TransportConfig,
    /// Rate limits and authentication lockouts (`ratelimit.rs`).
    pub limits: crate::ratelimit::LimitsConfig,
    /// The token endpoint and bearer tokens (`oauth.rs`, `oidc.rs`).
    pub oauth: crate::oauth::OAuthConfig,
    /// Credential keys granted `audit.read.all` by configuration
    /// (`--audit-reader`, `LRS_AUDIT_READERS`): the bootstrap reader.
    pub audit_readers: Vec<String>,
    /// The staff web pages: sessions and staff OpenID login (`web/`).
    pub web: crate::web::WebConfig,
}

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

impl ServeConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            max_body_bytes: 16 * 1024 * 1024,
            max_statements_per_page: 200,
            authority_home_page: format!("http://{listen}"),
            metrics_allow: Vec::new(),
            ready_min_free_bytes: 512 * 1024 * 1024,
            origin_extensions: Default::default(),
            transport: TransportConfig::default(),
            limits: crate::ratelimit::LimitsConfig::default(),
            oauth: crate::oauth::OAuthConfig::default(),
            audit_readers: Vec::new(),
            web: crate::web::WebConfig::default(),
        }
    }
}

/// The `lrs serve` flags of [`TransportConfig`]; [`TransportArgs::apply`]
/// them to the [`ServeConfig`].
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TransportArgs {
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs
    /// --tls-key. Re-read on SIGHUP and when the file changes.
    #[arg(long, env = "LRS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "LRS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Send Strict-Transport-Security over plain HTTP too: set it behind a
    /// TLS-terminating proxy (with --tls-cert it is always sent).
    #[arg(long, env = "LRS_HSTS")]
    pub hsts: bool,
    /// Origin allowed to read xAPI responses in a browser (e.g.
    /// https://lms.example.nl); repeat, or a comma list in the environment.
    /// Default: any origin (never with credentials mode).
    #[arg(long = "cors-origin", env = "LRS_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// Contact for vulnerability reports in /.well-known/security.txt: an
    /// https:// URL, mailto: or tel: URI; repeat for several. Unset: no
    /// security.txt (404).
    #[arg(long = "security-contact", env = "LRS_SECURITY_CONTACT", value_delimiter = ',', value_parser = crate::security_txt::parse_contact)]
    pub security_contacts: Vec<String>,
    /// security.txt's Expires, RFC 3339 (default: 180 days after today).
    #[arg(long, env = "LRS_SECURITY_TXT_EXPIRES", value_parser = crate::security_txt::parse_expires)]
    pub security_txt_expires: Option<chrono::DateTime<chrono::Utc>>,
    /// The https:// address clients reach this server at (the proxy's when
    /// behind one); security.txt names it as Canonical.
    #[arg(long, env = "LRS_PUBLIC_URL", value_parser = crate::security_txt::parse_public_url)]
    pub public_url: Option<String>,
}

impl TransportArgs {
    /// The certificate and key, or `None` for plain HTTP; one without the
    /// other is an error.
    pub fn tls_files(&self) -> anyhow::Result<Option<TlsFiles>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            _ => anyhow::bail!("--tls-cert and --tls-key (LRS_TLS_CERT, LRS_TLS_KEY) go together"),
        }
    }

    pub fn apply(self, mut config: ServeConfig) -> anyhow::Result<ServeConfig> {
        config.transport = TransportConfig {
            tls: self.tls_files()?,
            hsts: self.hsts,
            cors_origins: self.cors_origins,
            security_contacts: self.security_contacts,
            security_txt_expires: self.security_txt_expires,
            public_url: self.public_url,
        };
        Ok(config)
    }
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
