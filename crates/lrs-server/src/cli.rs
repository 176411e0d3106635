//! The command line of the `lrs` binary: serve, issue credentials, erase a
//! person, verify the log. `main.rs` only calls [`main`].

use crate::{keys, AppState, ServeConfig};
use anyhow::Context;
use clap::{Parser, Subcommand};
use lrs_store::backup::Progress;
use lrs_store::{Store, StoreConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "lrs",
    version,
    about = "Event-sourced xAPI Learning Record Store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// Data directory (log, vault).
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./lrs-data")]
    pub(crate) data_dir: PathBuf,
    /// File holding the 32-byte master key as hex (else LRS_MASTER_KEY, else a generated one in the data dir).
    #[arg(long, env = "LRS_MASTER_KEY_FILE")]
    pub(crate) master_key_file: Option<PathBuf>,
}

// `Serve` carries every server flag; the command is parsed once.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// Address to listen on.
        #[arg(long, env = "LRS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        monitoring: crate::metrics::MonitoringArgs,
        #[command(flatten)]
        tenancy: crate::tenancy::TenancyArgs,
        #[command(flatten)]
        transport: crate::config::TransportArgs,
        #[command(flatten)]
        limits: crate::ratelimit::LimitArgs,
        #[command(flatten)]
        oauth: crate::oauth::OAuthArgs,
        #[command(flatten)]
        audit: crate::audit::AuditArgs,
        #[command(flatten)]
        web: crate::web::WebArgs,
        #[command(flatten)]
        analytics: crate::analytics::AnalyticsArgs,
    },
    /// Manage API credentials (the server must be stopped; the data directory is locked while it runs).
    Credentials {
        #[command(subcommand)]
        command: crate::admin_cli::CredentialsCommand,
    },
    /// Manage tenants: the KB, library organisations (ISIL), apps (appid).
    /// The server must be stopped (or use the admin API).
    Tenants {
        #[command(subcommand)]
        command: crate::admin_cli::TenantsCommand,
    },
    /// Manage roles: named sets of administrative permissions.
    Roles {
        #[command(subcommand)]
        command: crate::admin_cli::RolesCommand,
    },
    /// A tenant's course model: which activities are courses and modules,
    /// what verbs mean (docs/progress-and-figures.md).
    CourseModel {
        #[command(subcommand)]
        command: crate::admin_cli::CourseModelCommand,
    },
    /// Check a stopped store: the hash chain of the whole log, that the log
    /// still reaches the head of its last clean shutdown, and that every
    /// projection rebuilt from the log equals the stored one. With
    /// `--backup DIR`, check a backup instead (any time, also while serving).
    Verify {
        #[command(flatten)]
        data: DataArgs,
        /// Check this backup directory instead of the data directory.
        #[arg(long)]
        backup: Option<PathBuf>,
        /// Skip the projection rebuild (only the chain).
        #[arg(long)]
        chain_only: bool,
    },
    /// Back up the log and the vault into DIR, incrementally (only entries
    /// newer than the backup's head are copied), verified before it is
    /// recorded. Online through the running server's control socket, else
    /// straight from the stopped data directory.
    Backup {
        #[command(flatten)]
        data: DataArgs,
        /// The backup directory (created if missing; reuse it for increments).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into a new, empty data directory and rebuild every
    /// projection from the restored log. Needs the master key
    /// (`--master-key-file` or LRS_MASTER_KEY): backups never contain it.
    Restore {
        #[command(flatten)]
        data: DataArgs,
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// Manage staff accounts of the web pages (password and TOTP); the
    /// server must be stopped.
    Staff {
        #[command(subcommand)]
        command: crate::staff_cli::StaffCommand,
    },
    /// Check or export the audit trail (`<data dir>/audit/`).
    Audit {
        #[command(subcommand)]
        command: crate::audit::AuditCommand,
    },
    /// Reports from the operations journal (`<data dir>/ops/`).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// The Parquet files of analytics: write what is new, or rebuild them
    /// (docs/analytics.md).
    Analytics {
        #[command(subcommand)]
        command: crate::analytics::AnalyticsCommand,
    },
    /// SQL over the analytics Parquet files (works while the server runs).
    Sql(crate::analytics::SqlArgs),
    /// Erase a person: destroy their vault entry, so everything of theirs in
    /// the log (and in every copy of it) becomes unreadable.
    Erase {
        #[command(flatten)]
        data: DataArgs,
        /// The person as an xAPI agent, e.g. '{"mbox":"mailto:anna@example.nl"}'.
        #[arg(long)]
        agent: String,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The monthly service report: availability, latency percentiles,
    /// errors and incidents (UTC). Reads only the journal: the server may run.
    Service {
        #[command(flatten)]
        data: DataArgs,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Dutch text with English labels, or JSON.
        #[arg(long, value_enum, default_value = "text")]
        format: crate::service_report::ReportFormat,
    },
}

pub fn open_store(data: &DataArgs) -> anyhow::Result<std::sync::Arc<Store>> {
    let master_key = keys::resolve(&data.data_dir, data.master_key_file.as_ref())?;
    Store::open(StoreConfig::new(&data.data_dir, master_key)).with_context(|| {
        format!(
            "opening data directory {} (is a server running on it?)",
            data.data_dir.display()
        )
    })
}

/// Installs the SIGTERM/SIGINT handlers now (before the port opens, so an
/// early signal is never the default "die at once") and resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutdown requested: draining requests");
    })
}

/// Runs the command line given in the process arguments.
pub async fn main() -> anyhow::Result<()> {
    let _telemetry = crate::telemetry::init_tracing();
    match Cli::parse().command {
        Command::Serve {
            data,
            listen,
            monitoring,
            tenancy,
            transport,
            limits,
            oauth,
            audit,
            web,
            analytics,
        } => {
            // Read the providers file before anything opens: a mistake in it
            // stops the start with the reason.
            let oauth = oauth.into_config().map_err(anyhow::Error::msg)?;
            let web = web.into_config()?;
            let shutdown = shutdown_signal()?;
            // The certificate first: a bad file fails before the store
            // opens or the port does.
            let tls = transport
                .tls_files()?
                .as_ref()
                .map(crate::tls::ServerTls::load)
                .transpose()?;
            let store = open_store(&data)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let local = listener.local_addr()?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(address = %local, scheme, data_dir = %data.data_dir.display(), head = store.head(), "serving xAPI at /xapi");
            let control = match crate::control::listen(store.clone()) {
                Ok(control) => Some(control),
                Err(error) => {
                    tracing::warn!(%error, "no control socket: `lrs backup` will need the server stopped");
                    None
                }
            };
            let mut config = transport.apply(
                limits.apply(monitoring.apply(ServeConfig::new(data.data_dir.clone(), local))),
            )?;
            config.origin_extensions = tenancy.extensions();
            warn_about_transport(&config, local);
            config.oauth = oauth;
            // One public address: the tokens' issuer and security.txt's Canonical.
            config.oauth.public_url = config
                .transport
                .public_url
                .as_ref()
                .map(|url| url.trim_end_matches('/').to_owned());
            let mut config = audit.apply(config);
            config.web = web;
            let _analytics = analytics.start(store.clone())?;
            let state = AppState::try_new(store, config).context("opening the audit trail")?;
            let served = match tls {
                Some(tls) => crate::run_tls(listener, tls, state, shutdown).await,
                None => crate::run(listener, state, shutdown).await,
            };
            drop(control);
            served
        }
        Command::Credentials { command } => crate::admin_cli::credentials(command).await,
        Command::Tenants { command } => crate::admin_cli::tenants(command).await,
        Command::Roles { command } => crate::admin_cli::roles(command).await,
        Command::CourseModel { command } => crate::admin_cli::course_model(command).await,
        Command::Staff { command } => crate::staff_cli::staff(command).await,
        Command::Analytics { command } => crate::analytics::command(command).await,
        Command::Sql(args) => crate::analytics::sql(args).await,
        Command::Erase { data, agent } => {
            let agent: serde_json::Value =
                serde_json::from_str(&agent).context("--agent is not json")?;
            let ifi = xapi::agent::ifi_of(&agent).context(
                "--agent needs exactly one identifier (mbox, mbox_sha1sum, openid or account)",
            )?;
            let store = open_store(&data)?;
            let outcome = match store.vault().token_of(&ifi) {
                Some(token) => store.vault().destroy(&token)?.map(|d| d.token),
                None => None,
            };
            store.close().await?;
            if let Some(token) = &outcome {
                crate::audit::record_cli(&data.data_dir, None, "person.erase", &token.to_string())?;
            }
            match outcome {
                Some(token) => {
                    println!("erased person {token}: their data in the log is now unreadable")
                }
                None => println!("no such person in the vault (never seen, or already erased)"),
            }
            Ok(())
        }
        Command::Verify {
            data,
            backup,
            chain_only,
        } => verify(&data, backup.as_deref(), chain_only).await,
        Command::Backup { data, to } => run_backup(&data, &to).await,
        Command::Report {
            command:
                ReportCommand::Service {
                    data,
                    month,
                    format,
                },
        } => {
            print!(
                "{}",
                crate::service_report::service_report(&data.data_dir, &month, format)?
            );
            Ok(())
        }
        Command::Restore { data, from } => restore(&data, &from).await,
        Command::Audit { command } => crate::audit::run_command(command),
    }
}

/// Startup warnings about choices that are fine on a laptop and not in
/// production: plain HTTP off loopback, no security.txt contact, a
/// security.txt that has already expired.
fn warn_about_transport(config: &ServeConfig, listen: SocketAddr) {
    let transport = &config.transport;
    if transport.tls.is_none() && !listen.ip().is_loopback() {
        tracing::warn!(
            address = %listen,
            "serving plain HTTP on a non-loopback address: credentials and personal data cross \
             the network in clear unless a TLS-terminating proxy is in front; \
             set --tls-cert and --tls-key (LRS_TLS_CERT, LRS_TLS_KEY) for built-in TLS"
        );
    }
    if transport.security_contacts.is_empty() && !listen.ip().is_loopback() {
        tracing::warn!(
            "no --security-contact (LRS_SECURITY_CONTACT): /.well-known/security.txt answers 404"
        );
    }
    if let Some(expires) = transport.security_txt_expires {
        if expires <= chrono::Utc::now() {
            tracing::warn!(%expires, "--security-txt-expires lies in the past: security.txt is stale");
        }
    }
}

fn print_progress(progress: Progress) {
    let percent = if progress.total == 0 {
        100.0
    } else {
        progress.done as f64 * 100.0 / progress.total as f64
    };
    eprintln!(
        "  {}: {} / {} ({percent:.0} %)",
        progress.phase, progress.done, progress.total
    );
}

/// Chain, clean-shutdown witness and projections of a stopped store; or a
/// whole backup. Exit code 2 and the first bad position when broken.
async fn verify(data: &DataArgs, backup: Option<&Path>, chain_only: bool) -> anyhow::Result<()> {
    if let Some(dir) = backup {
        eprintln!("verifying the backup in {}", dir.display());
        return match lrs_store::backup::verify_backup(dir, print_progress) {
            Ok(head) => {
                println!(
                    "ok: backup of {} entries, checksums and hash chain intact, vault copy intact",
                    head.position
                );
                Ok(())
            }
            Err(error) => {
                println!("BROKEN: {error}");
                std::process::exit(2)
            }
        };
    }
    if crate::control::connect(&data.data_dir).await.is_some() {
        anyhow::bail!(
            "a server is running on {}: stop it first, or check a fresh backup: \
             lrs backup --to DIR && lrs verify --backup DIR",
            data.data_dir.display()
        );
    }
    let store = open_store(data)?;
    let head = store.head();
    eprintln!("verifying the hash chain of {head} log entries");
    let chain = store.verify_chain(|position| eprintln!("  chain: {position} / {head}"))?;
    let mut broken = Vec::new();
    match chain {
        Ok(count) => println!("ok: {count} entries, hash chain intact"),
        Err(chain_break) => broken.push(format!(
            "BROKEN at position {}: {}",
            chain_break.position, chain_break.reason
        )),
    }
    if let Some(witness) = store.clean_shutdown_witness() {
        match store.entry_hash(witness.position)? {
            Some(hash) if hash == witness.hash => println!(
                "ok: the log still holds entry {} as at its last clean shutdown",
                witness.position
            ),
            Some(_) => broken.push(format!(
                "BROKEN at position {}: the entry differs from the one at the last clean shutdown",
                witness.position
            )),
            None => broken.push(format!(
                "BROKEN at position {}: the log ends at {head} but held {} entries at its last clean shutdown",
                head + 1,
                witness.position
            )),
        }
    }
    if !chain_only && broken.is_empty() {
        eprintln!("rebuilding every projection from the log into a scratch copy");
        let differences =
            store.check_projections(|position| eprintln!("  projections: {position} / {head}"))?;
        if differences.is_empty() {
            println!(
                "ok: every projection rebuilt from the log equals the stored one (projections digest {})",
                hex::encode(store.projections_digest()?)
            );
        } else {
            for difference in differences {
                broken.push(format!("PROJECTION DIFFERS: {difference}"));
            }
        }
    }
    store.close().await?;
    if broken.is_empty() {
        return Ok(());
    }
    for line in &broken {
        println!("{line}");
    }
    std::process::exit(2)
}

async fn run_backup(data: &DataArgs, to: &Path) -> anyhow::Result<()> {
    let to = std::path::absolute(to).with_context(|| format!("resolving {}", to.display()))?;
    let report: lrs_store::backup::BackupReport =
        match crate::control::connect(&data.data_dir).await {
            Some(stream) => {
                eprintln!(
                    "online backup through the running server into {}",
                    to.display()
                );
                let done = crate::control::call(
                    stream,
                    &serde_json::json!({"command": "backup", "to": to}),
                    |progress| {
                        print_progress(Progress {
                            phase: "copying",
                            done: progress["done"].as_u64().unwrap_or_default(),
                            total: progress["total"].as_u64().unwrap_or_default(),
                        })
                    },
                )
                .await?;
                serde_json::from_value(done).context("backup report")?
            }
            None => {
                eprintln!(
                    "offline backup of {} into {}",
                    data.data_dir.display(),
                    to.display()
                );
                let source =
                    lrs_store::backup::OfflineSource::open(&data.data_dir).with_context(|| {
                        format!(
                    "opening {} (a server is running but its control socket does not answer?)",
                    data.data_dir.display()
                )
                    })?;
                let report = lrs_store::backup::backup(&source, &to, print_progress)?;
                lrs_store::backup::record_last_backup(&data.data_dir, &report)?;
                report
            }
        };
    println!(
        "ok: backup in {} now holds entries 1..={} ({} new, {} bytes, vault {} bytes) in {:.1} s; verified",
        to.display(),
        report.to,
        report.entries_copied,
        report.bytes_copied,
        report.vault_bytes,
        report.seconds
    );
    Ok(())
}

async fn restore(data: &DataArgs, from: &Path) -> anyhow::Result<()> {
    if data.master_key_file.is_none() && std::env::var(keys::ENV_MASTER_KEY).is_err() {
        anyhow::bail!(
            "restore needs the master key the backup was made under: \
             --master-key-file FILE or {} (backups never contain it)",
            keys::ENV_MASTER_KEY
        );
    }
    let master_key = keys::resolve(&data.data_dir, data.master_key_file.as_ref())?;
    eprintln!(
        "restoring {} into {}: checking every entry against the hash chain",
        from.display(),
        data.data_dir.display()
    );
    let report = lrs_store::backup::restore(from, &data.data_dir, print_progress)?;
    eprintln!(
        "log restored ({} entries in {:.1} s); rebuilding the projections",
        report.head, report.seconds
    );
    let started = std::time::Instant::now();
    let store = match Store::open(StoreConfig::new(&data.data_dir, master_key)) {
        Ok(store) => store,
        Err(error) => {
            // Leave no restored directory that cannot be opened behind.
            let _ = std::fs::remove_dir_all(&data.data_dir);
            anyhow::bail!(
                "the restored store does not open ({error}); is the master key the one the backup was made under? \
                 {} was removed",
                data.data_dir.display()
            );
        }
    };
    let people = store.vault().len();
    store.close().await?;
    println!(
        "ok: restored {} entries and {people} people into {}; log {:.1} s, projections {:.1} s",
        report.head,
        data.data_dir.display(),
        report.seconds,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
