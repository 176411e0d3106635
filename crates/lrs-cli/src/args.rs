//! The flags of `lrs serve`, a group per room of the server, each turned
//! into that room's own configuration. Every flag has an `LRS_*`
//! environment variable too.

use clap::builder::BoolishValueParser;
use ipnet::IpNet;
use lrs_analytics::{QueryLimits, Target};
use lrs_app::tenancy::{OriginExtensions, DEFAULT_APPID_EXTENSION, DEFAULT_ISIL_EXTENSION};
use lrs_server::ops::analytics::AnalyticsConfig;
use lrs_server::ops::monitor::OpsConfig;
use lrs_server::request::client::parse_cidr;
use lrs_server::security::audit::AuditSettings;
use lrs_server::security::oidc::load_providers;
use lrs_server::security::ratelimit::{AuthLimits, LimitsConfig, Rate};
use lrs_server::security::security_txt;
use lrs_server::security::tokens::OAuthConfig;
use lrs_server::security::transport::{parse_origin, TlsFiles, TransportConfig};
use lrs_server::tasks::TasksConfig;
use lrs_server::web::oidc_client::StaffOidcConfig;
use lrs_server::web::session::SessionLimits;
use lrs_server::web::WebConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `/metrics` access and readiness ([`OpsConfig`]).
#[derive(clap::Args, Debug, Clone)]
pub struct MonitoringArgs {
    /// Networks besides loopback whose clients may read /metrics: CIDRs or
    /// addresses, comma-separated (e.g. 172.16.0.0/12,10.1.2.3).
    #[arg(long = "metrics-allow", env = "LRS_METRICS_ALLOW", value_delimiter = ',', value_parser = parse_cidr)]
    pub metrics_allow: Vec<IpNet>,
    /// /health/ready fails when the data directory's filesystem has less free space than this, MiB.
    #[arg(long, env = "LRS_READY_MIN_FREE_MB", default_value_t = 512)]
    pub ready_min_free_mb: u64,
}

impl MonitoringArgs {
    pub fn into_config(self) -> OpsConfig {
        OpsConfig {
            metrics_allow: self.metrics_allow,
            ready_min_free_bytes: self.ready_min_free_mb.saturating_mul(1024 * 1024),
        }
    }
}

/// The context extensions that name a statement's library and app.
#[derive(clap::Args, Clone, Debug)]
pub struct TenancyArgs {
    /// Context extension IRI whose value is the learner's library (ISIL).
    #[arg(long, env = "LRS_ISIL_EXTENSION", default_value = DEFAULT_ISIL_EXTENSION)]
    pub isil_extension: String,
    /// Context extension IRI whose value is the content provider app (appid).
    #[arg(long, env = "LRS_APPID_EXTENSION", default_value = DEFAULT_APPID_EXTENSION)]
    pub appid_extension: String,
}

impl TenancyArgs {
    pub fn into_extensions(self) -> OriginExtensions {
        OriginExtensions {
            isil: self.isil_extension,
            appid: self.appid_extension,
        }
    }
}

/// TLS, HSTS, CORS and security.txt ([`TransportConfig`]).
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
    #[arg(long, env = "LRS_HSTS", value_parser = BoolishValueParser::new())]
    pub hsts: bool,
    /// Origin allowed to read xAPI responses in a browser (e.g.
    /// https://lms.example.nl); repeat, or a comma list in the environment.
    /// Default: any origin (never with credentials mode).
    #[arg(long = "cors-origin", env = "LRS_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// Contact for vulnerability reports in /.well-known/security.txt: an
    /// https:// URL, mailto: or tel: URI; repeat for several. Unset: no
    /// security.txt (404).
    #[arg(long = "security-contact", env = "LRS_SECURITY_CONTACT", value_delimiter = ',', value_parser = security_txt::parse_contact)]
    pub security_contacts: Vec<String>,
    /// security.txt's Expires, RFC 3339 (default: 180 days after today).
    #[arg(long, env = "LRS_SECURITY_TXT_EXPIRES", value_parser = security_txt::parse_expires)]
    pub security_txt_expires: Option<chrono::DateTime<chrono::Utc>>,
    /// The https:// address clients reach this server at (the proxy's when
    /// behind one); security.txt names it as Canonical.
    #[arg(long, env = "LRS_PUBLIC_URL", value_parser = security_txt::parse_public_url)]
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

    pub fn into_config(self) -> anyhow::Result<TransportConfig> {
        Ok(TransportConfig {
            tls: self.tls_files()?,
            hsts: self.hsts,
            cors_origins: self.cors_origins,
            security_contacts: self.security_contacts,
            security_txt_expires: self.security_txt_expires,
            public_url: self.public_url,
        })
    }
}

/// The limit options of `lrs serve`; flatten into its arguments and
/// [`LimitArgs::apply`] them. Defaults: one content provider's app server
/// sends about 1,500 requests/s for 5,000 learners (docs/load-learners.md)
/// with one credential from one address; the limits leave it 3x (credential)
/// and 6x (address: several credentials, or several servers behind one NAT)
/// headroom, and bursts of two seconds' worth.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Requests per second from one client address (IPv6: per /64) to the xAPI and OAuth routes; 0: no limit.
    #[arg(long, env = "LRS_RATE_PER_ADDRESS", default_value_t = 10_000)]
    pub rate_per_address: u32,
    /// Burst allowed above --rate-per-address.
    #[arg(long, env = "LRS_BURST_PER_ADDRESS", default_value_t = 20_000)]
    pub burst_per_address: u32,
    /// Requests per second of one credential (principal), from all addresses together; 0: no limit.
    #[arg(long, env = "LRS_RATE_PER_CREDENTIAL", default_value_t = 5_000)]
    pub rate_per_credential: u32,
    /// Burst allowed above --rate-per-credential.
    #[arg(long, env = "LRS_BURST_PER_CREDENTIAL", default_value_t = 10_000)]
    pub burst_per_credential: u32,
    /// Requests per second from one client address to /health/* and /metrics; 0: no limit.
    #[arg(long, env = "LRS_RATE_OPS_PER_ADDRESS", default_value_t = 20)]
    pub rate_ops_per_address: u32,
    /// Burst allowed above --rate-ops-per-address.
    #[arg(long, env = "LRS_BURST_OPS_PER_ADDRESS", default_value_t = 100)]
    pub burst_ops_per_address: u32,
    /// Reverse proxies (CIDRs or addresses, comma-separated) whose X-Forwarded-For names the client:
    /// behind them the right-most address not in this list is the client.
    #[arg(long = "trusted-proxy", env = "LRS_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<IpNet>,
    /// Failed authentications from one address with one key id before that pair is locked out.
    #[arg(long, env = "LRS_AUTH_FAILURES_PER_KEY", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failures_per_key: u32,
    /// Failed authentications from one address (any keys) before the address is locked out.
    #[arg(long, env = "LRS_AUTH_FAILURES_PER_ADDRESS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failures_per_address: u32,
    /// Failures of one existing key from all addresses together that raise an auth.bruteforce alert.
    #[arg(long, env = "LRS_AUTH_ALERT_FAILURES_PER_KEY", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_alert_failures_per_key: u32,
    /// The window in which failures are counted, seconds.
    #[arg(long, env = "LRS_AUTH_FAILURE_WINDOW_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub auth_failure_window_secs: u64,
    /// How long a lockout lasts, seconds.
    #[arg(long, env = "LRS_AUTH_LOCKOUT_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub auth_lockout_secs: u64,
}

impl LimitArgs {
    pub fn into_config(self) -> LimitsConfig {
        LimitsConfig {
            per_address: Rate {
                per_second: self.rate_per_address,
                burst: self.burst_per_address,
            },
            per_credential: Rate {
                per_second: self.rate_per_credential,
                burst: self.burst_per_credential,
            },
            ops_per_address: Rate {
                per_second: self.rate_ops_per_address,
                burst: self.burst_ops_per_address,
            },
            trusted_proxies: self.trusted_proxies,
            auth: AuthLimits {
                failures_per_address_key: self.auth_failures_per_key,
                failures_per_address: self.auth_failures_per_address,
                key_alert_failures: self.auth_alert_failures_per_key,
                window: Duration::from_secs(self.auth_failure_window_secs),
                lockout: Duration::from_secs(self.auth_lockout_secs),
            },
        }
    }
}

/// The token endpoint and bearer acceptance ([`OAuthConfig`]).
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
            Some(path) => load_providers(path)?,
            None => Vec::new(),
        };
        Ok(OAuthConfig {
            // `--public-url` (TransportArgs) fills it in.
            public_url: None,
            token_ttl_secs: self.token_ttl_secs,
            key_rotation_secs: self.token_key_rotation_secs,
            oidc_providers,
        })
    }
}

/// The staff pages' sessions and OpenID login ([`WebConfig`]).
#[derive(clap::Args, Debug, Clone)]
pub struct WebArgs {
    /// Minutes without a request after which a staff session ends (req.
    /// 7.26); fractions allowed (0.5 = 30 s).
    #[arg(long, env = "LRS_SESSION_IDLE_MINUTES", default_value_t = 15.0)]
    pub session_idle_minutes: f64,
    /// Hours after login after which a session ends whatever its activity.
    #[arg(long, env = "LRS_SESSION_MAX_HOURS", default_value_t = 8.0)]
    pub session_max_hours: f64,
    /// JSON file configuring staff login through an OpenID provider
    /// (docs/dashboard.md); unset: local accounts only.
    #[arg(long = "staff-oidc", env = "LRS_STAFF_OIDC")]
    pub staff_oidc: Option<std::path::PathBuf>,
}

impl WebArgs {
    pub fn into_config(self) -> anyhow::Result<WebConfig> {
        let duration = |value: f64, unit: f64, name: &str| {
            if !(value.is_finite() && value > 0.0 && value * unit <= 31.0 * 86_400.0) {
                anyhow::bail!("{name} must be a positive number (at most 31 days)");
            }
            Ok(Duration::from_secs_f64(value * unit))
        };
        let idle = duration(self.session_idle_minutes, 60.0, "--session-idle-minutes")?;
        let absolute = duration(self.session_max_hours, 3600.0, "--session-max-hours")?;
        let oidc = self
            .staff_oidc
            .as_deref()
            .map(StaffOidcConfig::load)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        Ok(WebConfig {
            sessions: SessionLimits {
                idle,
                absolute: absolute.max(idle),
            },
            oidc,
        })
    }
}

/// What the server does by itself ([`TasksConfig`]).
#[derive(clap::Args, Clone, Debug)]
pub struct TasksArgs {
    /// Apply the retention periods every this many hours (0: never by
    /// itself; `lrs retention run` and the admin API still do).
    #[arg(long, env = "LRS_RETENTION_EVERY_HOURS", default_value_t = 24)]
    pub retention_every_hours: u64,
    /// Close a month's figures (a versioned snapshot the Datatheek workbook
    /// and the API then serve) this many days after the month ended, Dutch
    /// time (0: never by itself; `lrs figures close` and the API still do).
    #[arg(
        long,
        env = "LRS_FIGURES_CLOSE_AFTER_DAYS",
        default_value_t = lrs_server::tasks::DEFAULT_CLOSE_AFTER_DAYS
    )]
    pub figures_close_after_days: u32,
    /// Deliver each closed month's Datatheek workbooks (the KB's and one per
    /// library) here, once per month: a directory, `s3://bucket/prefix` or
    /// `az://container/prefix` (credentials as for --analytics-dir). Not set:
    /// no delivery by itself (`lrs export datatheek` and the API still
    /// give the workbooks).
    #[arg(long, env = "LRS_DATATHEEK_TO")]
    pub datatheek_to: Option<String>,
    /// Seconds between looks for a closed month not yet delivered.
    #[arg(long, env = "LRS_DATATHEEK_EVERY_SECS", default_value_t = 3600.0)]
    pub datatheek_every_secs: f64,
}

impl TasksArgs {
    pub fn into_config(self) -> anyhow::Result<TasksConfig> {
        let datatheek_to = match &self.datatheek_to {
            Some(location) => Some(
                Target::open(location)
                    .map_err(|e| anyhow::anyhow!("--datatheek-to {location}: {e}"))?,
            ),
            None => None,
        };
        let every = self.datatheek_every_secs;
        if !(every.is_finite() && (0.1..=1e9).contains(&every)) {
            anyhow::bail!("--datatheek-every-secs {every}: give seconds from 0.1");
        }
        Ok(TasksConfig {
            retention_every_hours: self.retention_every_hours,
            figures_close_after_days: self.figures_close_after_days,
            datatheek_to,
            datatheek_every: Duration::from_secs_f64(every),
        })
    }
}

/// Who may read the audit trail by configuration ([`AuditSettings`]).
#[derive(clap::Args, Debug, Clone)]
pub struct AuditArgs {
    /// Credential keys that may read every tenant's audit records
    /// (`audit.read.all`), comma-separated: the bootstrap until roles grant it.
    #[arg(
        long = "audit-reader",
        env = "LRS_AUDIT_READERS",
        value_delimiter = ','
    )]
    pub audit_readers: Vec<String>,
    /// Close an audit segment file at this many bytes (default 64 MiB; a
    /// segment is also closed when the UTC day changes). Retention removes
    /// whole closed segments only, so smaller segments follow the audit
    /// trail's retention period more closely.
    #[arg(
        long = "audit-segment-max-bytes",
        env = "LRS_AUDIT_SEGMENT_MAX_BYTES",
        value_parser = clap::value_parser!(u64).range(1024..)
    )]
    pub audit_segment_max_bytes: Option<u64>,
}

impl AuditArgs {
    pub fn into_settings(self) -> AuditSettings {
        AuditSettings {
            readers: self
                .audit_readers
                .into_iter()
                .map(|key| key.trim().to_owned())
                .filter(|key| !key.is_empty())
                .collect(),
            segment_max_bytes: self.audit_segment_max_bytes,
        }
    }
}

/// Where the Parquet files go and how queries are limited.
#[derive(clap::Args, Clone, Debug)]
pub struct AnalyticsArgs {
    /// Where the Parquet files go: a directory, `s3://bucket/prefix` (with
    /// AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ALLOW_HTTP) or `az://container/prefix` (AZURE_STORAGE_*).
    /// Default: `<data dir>/analytics`.
    #[arg(long, env = "LRS_ANALYTICS_DIR")]
    pub analytics_dir: Option<String>,
    /// Seconds to wait after the log grows before new statements are
    /// written out (they are batched meanwhile); while the log keeps
    /// growing by 1,000 positions a second, up to six such waits.
    #[arg(long, env = "LRS_ANALYTICS_INTERVAL", default_value_t = 10.0)]
    pub analytics_interval: f64,
    /// Do not write Parquet files while serving (`lrs analytics export`
    /// can still write them with the server stopped).
    #[arg(long, env = "LRS_NO_ANALYTICS", value_parser = BoolishValueParser::new())]
    pub no_analytics: bool,
    /// Longest a SQL query may run, seconds.
    #[arg(long, env = "LRS_SQL_TIMEOUT", default_value_t = 30.0)]
    pub sql_timeout: f64,
    /// Most memory a SQL query may use, MiB.
    #[arg(long, env = "LRS_SQL_MEMORY_MB", default_value_t = 512)]
    pub sql_memory_mb: usize,
}

impl AnalyticsArgs {
    fn location(&self, data_dir: &Path) -> String {
        self.analytics_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("analytics").display().to_string())
    }

    pub fn limits(&self) -> QueryLimits {
        QueryLimits {
            timeout: Duration::from_secs_f64(self.sql_timeout.max(0.001)),
            memory_bytes: self.sql_memory_mb.max(1) * 1024 * 1024,
        }
    }

    pub fn target(&self, data_dir: &Path) -> anyhow::Result<Target> {
        Ok(Target::open(&self.location(data_dir))?)
    }

    /// The follower's and `POST /api/sql`'s settings.
    pub fn into_config(self, data_dir: &Path) -> anyhow::Result<AnalyticsConfig> {
        Ok(AnalyticsConfig {
            target: self.target(data_dir)?,
            limits: self.limits(),
            interval: Duration::from_secs_f64(self.analytics_interval.max(0.0)),
            follow: !self.no_analytics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitoring_flags_and_environment_reach_the_config() {
        use clap::Parser;
        #[derive(Parser)]
        struct Serve {
            #[command(flatten)]
            monitoring: MonitoringArgs,
        }
        let args = Serve::try_parse_from([
            "serve",
            "--metrics-allow",
            "10.0.0.0/8,172.20.0.0/16",
            "--ready-min-free-mb",
            "2",
        ])
        .unwrap();
        let config = args.monitoring.into_config();
        assert_eq!(config.metrics_allow.len(), 2);
        assert_eq!(config.ready_min_free_bytes, 2 * 1024 * 1024);
        assert!(Serve::try_parse_from(["serve", "--metrics-allow", "everyone"]).is_err());
    }

    /// A switch set in the environment takes what operators write there:
    /// `1`, `yes`, `on` as well as `true` (clap's own parser takes only
    /// `true`/`false`, and refused `LRS_NO_ANALYTICS=1`). Each switch is
    /// read from a variable of this test's own, so that no other test sees it.
    #[test]
    fn switches_in_the_environment_take_1_yes_and_on() {
        use clap::{CommandFactory, FromArgMatches};
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            transport: TransportArgs,
            #[command(flatten)]
            analytics: AnalyticsArgs,
        }
        for id in ["hsts", "no_analytics"] {
            let variable: &'static str = match id {
                "hsts" => "LRS_TEST_SWITCH_HSTS",
                _ => "LRS_TEST_SWITCH_NO_ANALYTICS",
            };
            let parse = |value: &str| {
                // clap reads the variable when the argument is defined.
                std::env::set_var(variable, value);
                let parsed = Serve::command()
                    .mut_arg(id, |arg| arg.env(variable))
                    .try_get_matches_from(["serve"])
                    .and_then(|matches| Serve::from_arg_matches(&matches));
                std::env::remove_var(variable);
                parsed.map(|serve| match id {
                    "hsts" => serve.transport.hsts,
                    _ => serve.analytics.no_analytics,
                })
            };
            for value in ["true", "1", "yes", "on"] {
                assert!(parse(value).unwrap(), "{id}={value}");
            }
            for value in ["0", "false", "no", "off"] {
                assert!(!parse(value).unwrap(), "{id}={value}");
            }
            assert!(parse("maybe").is_err(), "{id}=maybe");
        }
    }

    #[test]
    fn limit_flags_and_environment_reach_the_config() {
        use clap::Parser;
        #[derive(Parser)]
        struct Serve {
            #[command(flatten)]
            limits: LimitArgs,
        }
        let defaults = Serve::try_parse_from(["serve"])
            .unwrap()
            .limits
            .into_config();
        assert_eq!(defaults, LimitsConfig::default());
        let args = Serve::try_parse_from([
            "serve",
            "--rate-per-address",
            "7",
            "--burst-per-address",
            "9",
            "--rate-per-credential",
            "0",
            "--trusted-proxy",
            "10.0.0.0/8,127.0.0.1",
            "--auth-failures-per-key",
            "2",
            "--auth-lockout-secs",
            "3",
        ])
        .unwrap();
        let config = args.limits.into_config();
        assert_eq!(
            config.per_address,
            Rate {
                per_second: 7,
                burst: 9
            }
        );
        assert_eq!(config.per_credential.quota(), None);
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.auth.failures_per_address_key, 2);
        assert_eq!(config.auth.lockout, Duration::from_secs(3));
        assert!(Serve::try_parse_from(["serve", "--auth-failures-per-key", "0"]).is_err());
        assert!(Serve::try_parse_from(["serve", "--trusted-proxy", "the-lb"]).is_err());
    }
}
