//! The whole server's configuration: one struct per room, gathered here for
//! the composition root (`server.rs`). `lrs-cli` fills it from the command
//! line and the environment; tests fill it by hand. No room imports this
//! file: each gets its own part.

use crate::ops::analytics::AnalyticsConfig;
use crate::ops::monitor::OpsConfig;
use crate::resources::XapiConfig;
use crate::security::audit::AuditSettings;
use crate::security::ratelimit::LimitsConfig;
use crate::security::tokens::OAuthConfig;
use crate::security::transport::TransportConfig;
use crate::tasks::TasksConfig;
use crate::web::WebConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The xAPI resources: body and page limits, the authority, the origin
    /// extensions (`resources/`).
    pub xapi: XapiConfig,
    /// `/metrics` access and readiness (`ops/`).
    pub ops: OpsConfig,
    /// Transport: TLS, HSTS, CORS origins and security.txt (`security/`).
    pub transport: TransportConfig,
    /// Rate limits and authentication lockouts (`security/ratelimit.rs`).
    pub limits: LimitsConfig,
    /// The token endpoint and bearer tokens (`security/oauth.rs`, `oidc.rs`).
    pub oauth: OAuthConfig,
    /// Who may read the audit trail by configuration (`security/audit.rs`).
    pub audit: AuditSettings,
    /// The staff web pages: sessions and staff OpenID login (`web/`).
    pub web: WebConfig,
    /// The Parquet files and SQL limits; `None`: `<data dir>/analytics`
    /// with the default limits, and no follower.
    pub analytics: Option<AnalyticsConfig>,
    /// What the server does by itself (`tasks.rs`): retention runs.
    pub tasks: TasksConfig,
}

impl ServeConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            xapi: XapiConfig::new(listen),
            listen,
            ops: OpsConfig::default(),
            transport: TransportConfig::default(),
            limits: LimitsConfig::default(),
            oauth: OAuthConfig::default(),
            audit: AuditSettings::default(),
            web: WebConfig::default(),
            analytics: None,
            tasks: TasksConfig::default(),
        }
    }
}
