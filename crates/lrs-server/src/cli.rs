//! The command line of the `lrs` binary: serve, issue credentials, erase a
//! person, verify the log. `main.rs` only calls [`main`].

use crate::{auth, keys, AppState, ServeConfig};
use anyhow::Context;
use clap::{Parser, Subcommand};
use lrs_core::Event;
use lrs_store::{Store, StoreConfig};
use std::net::SocketAddr;
use std::path::PathBuf;

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
struct DataArgs {
    /// Data directory (log, vault).
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./lrs-data")]
    data_dir: PathBuf,
    /// File holding the 32-byte master key as hex (else LRS_MASTER_KEY, else a generated one in the data dir).
    #[arg(long, env = "LRS_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// Address to listen on.
        #[arg(long, env = "LRS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Manage API credentials (the server must be stopped; the data directory is locked while it runs).
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// Check the hash chain of the whole log.
    Verify {
        #[command(flatten)]
        data: DataArgs,
    },
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
enum CredentialsCommand {
    /// Create a Basic credential; prints `KEY SECRET` once. Only a hash of the secret is kept.
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// A name for the credential (shown as the statements' authority).
        #[arg(long)]
        name: String,
        /// xAPI scopes; repeat for several. Default: all.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The tenant the credential belongs to.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Days until the credential expires (default: 365).
        #[arg(long, default_value_t = 365)]
        expires_in_days: u32,
    },
}

fn open_store(data: &DataArgs) -> anyhow::Result<std::sync::Arc<Store>> {
    let master_key = keys::resolve(&data.data_dir, data.master_key_file.as_ref())?;
    Store::open(StoreConfig::new(&data.data_dir, master_key)).with_context(|| {
        format!(
            "opening data directory {} (is a server running on it?)",
            data.data_dir.display()
        )
    })
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LRS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var("LRS_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
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
    init_tracing();
    match Cli::parse().command {
        Command::Serve { data, listen } => {
            let shutdown = shutdown_signal()?;
            let store = open_store(&data)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let local = listener.local_addr()?;
            tracing::info!(address = %local, data_dir = %data.data_dir.display(), head = store.head(), "serving xAPI at /xapi");
            let state = AppState::new(store, ServeConfig::new(data.data_dir.clone(), local));
            crate::run(listener, state, shutdown).await
        }
        Command::Credentials {
            command:
                CredentialsCommand::Add {
                    data,
                    name,
                    scopes,
                    tenant,
                    expires_in_days,
                },
        } => {
            let scopes = if scopes.is_empty() {
                vec!["all".to_owned()]
            } else {
                scopes
            };
            if let Some(unknown) = scopes.iter().find(|s| !auth::SCOPES.contains(&s.as_str())) {
                anyhow::bail!(
                    "unknown scope {unknown:?}; known: {}",
                    auth::SCOPES.join(", ")
                );
            }
            let store = open_store(&data)?;
            let expires = auth::now_micros() + i64::from(expires_in_days) * 86_400 * 1_000_000;
            let (key, secret, event) = auth::issue(&name, &tenant, scopes, Some(expires));
            store
                .append_event(Event::CredentialIssuedV1(event))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            store.close().await?;
            println!("{key} {secret}");
            Ok(())
        }
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
            match outcome {
                Some(token) => {
                    println!("erased person {token}: their data in the log is now unreadable")
                }
                None => println!("no such person in the vault (never seen, or already erased)"),
            }
            Ok(())
        }
        Command::Verify { data } => {
            let store = open_store(&data)?;
            let head = store.head();
            eprintln!("verifying {head} log entries");
            let outcome = store.verify_chain(|position| eprintln!("  ... {position} / {head}"))?;
            store.close().await?;
            match outcome {
                Ok(count) => {
                    println!("ok: {count} entries, hash chain intact");
                    Ok(())
                }
                Err(chain_break) => {
                    println!(
                        "BROKEN at position {}: {}",
                        chain_break.position, chain_break.reason
                    );
                    std::process::exit(2)
                }
            }
        }
    }
}
