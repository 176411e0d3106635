//! `lrs erase`, `lrs privacy ...` and `lrs retention ...`. Like the other
//! administrative commands they open the store, so the server must be
//! stopped (or use the admin API); every one is audited (`record_cli`).

use crate::audit::{cli_user, record_cli};
use crate::data::{open_store, DataArgs};
use anyhow::Context;
use lrs_app::privacy;
use std::path::PathBuf;

fn who() -> String {
    format!("cli:{}", cli_user())
}

fn agent_ifi(agent: &str) -> anyhow::Result<(serde_json::Value, xapi::Ifi)> {
    let agent: serde_json::Value = serde_json::from_str(agent).context("--agent is not json")?;
    let ifi = xapi::agent::ifi_of(&agent)
        .context("--agent needs exactly one identifier (mbox, mbox_sha1sum, openid or account)")?;
    Ok((agent, ifi))
}

/// `lrs erase`: erase a person on request, write the report.
pub async fn erase(data: &DataArgs, agent: &str, request_id: Option<String>) -> anyhow::Result<()> {
    let (_, ifi) = agent_ifi(agent)?;
    let request_id = match request_id {
        Some(id) => {
            privacy::erase::check_request_id(&id)
                .map_err(|e| anyhow::anyhow!("--request-id: {e}"))?;
            id
        }
        None => privacy::erase::generated_request_id(),
    };
    let store = open_store(data)?;
    privacy::reconcile(&store)?;
    let outcome = privacy::erase::erase_on_request(&store, &ifi, &request_id, &who()).await;
    store.close().await?;
    let report = outcome?;
    record_cli(
        &data.data_dir,
        None,
        "privacy.erase",
        &format!(
            "request {request_id}, report {}",
            report.report_id.hyphenated()
        ),
    )?;
    if report.people == 0 {
        println!("no such person in the vault (never seen, or already erased)");
    } else {
        println!(
            "erased 1 person: their data in the log is now unreadable ({} of {} sealed entries tried do not open)",
            report.check.unreadable, report.check.tried
        );
    }
    println!("report {}", report.report_id.hyphenated());
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum PrivacyCommand {
    /// Everything held about one person (GDPR art. 15), as JSON.
    Access {
        #[command(flatten)]
        data: DataArgs,
        /// The person as an xAPI agent, e.g. '{"mbox":"mailto:anna@example.nl"}'.
        #[arg(long)]
        agent: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The anonymisation reports: all (JSON), or one as JSON or Markdown.
    Reports {
        #[command(flatten)]
        data: DataArgs,
        /// One report by id.
        #[arg(long)]
        id: Option<String>,
        /// json or markdown (the readable document, Dutch then English).
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Show or set how long vault copies in backups stay readable (days).
    BackupWindow {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        days: Option<u32>,
    },
}

#[derive(clap::Subcommand)]
pub enum RetentionCommand {
    /// List the retention periods.
    Policies {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Set (or with --remove remove) a period: tenant (`*` for the
    /// default), kind (statements, documents, audit_trail, credential_use).
    Set {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        kind: String,
        #[arg(long, required_unless_present = "remove")]
        days: Option<u32>,
        #[arg(long)]
        remove: bool,
    },
    /// Apply the periods now (or as of --as-of); --dry-run lists what
    /// would be removed and changes nothing.
    Run {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        dry_run: bool,
        /// RFC 3339 time or date (YYYY-MM-DD); default now.
        #[arg(long)]
        as_of: Option<String>,
    },
}

pub async fn privacy(command: PrivacyCommand) -> anyhow::Result<()> {
    match command {
        PrivacyCommand::Access { data, agent, out } => {
            let (agent, ifi) = agent_ifi(&agent)?;
            let store = open_store(&data)?;
            privacy::reconcile(&store)?;
            let found = privacy::access::access(&store, &ifi, &agent);
            store.close().await?;
            let found = found?;
            record_cli(&data.data_dir, None, "privacy.access", "one person")?;
            let Some(found) = found else {
                anyhow::bail!("no such person in the vault (never seen, or erased)");
            };
            let text = serde_json::to_string_pretty(&found)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("written to {}", path.display());
                }
                None => println!("{text}"),
            }
            Ok(())
        }
        PrivacyCommand::Reports { data, id, format } => {
            let store = open_store(&data)?;
            let result = (|| -> anyhow::Result<String> {
                match id {
                    None => Ok(serde_json::to_string_pretty(
                        &serde_json::json!({"reports": privacy::report::list(&store)?}),
                    )?),
                    Some(id) => {
                        let id = uuid::Uuid::parse_str(&id).context("--id is not a report id")?;
                        let (report, value) = privacy::report::load(&store, &id)?
                            .ok_or_else(|| anyhow::anyhow!("no report {id}"))?;
                        match format.as_str() {
                            "json" => Ok(serde_json::to_string_pretty(&value)?),
                            "markdown" => Ok(privacy::report::markdown(
                                &report,
                                value["log"]["position"].as_u64().unwrap_or_default(),
                                value["log"]["hash"].as_str().unwrap_or_default(),
                            )),
                            other => anyhow::bail!("--format {other}: json or markdown"),
                        }
                    }
                }
            })();
            store.close().await?;
            let text = result?;
            record_cli(&data.data_dir, None, "privacy.reports", "read")?;
            println!("{text}");
            Ok(())
        }
        PrivacyCommand::BackupWindow { data, days } => {
            let dir = data.data_dir.join(lrs_store::backup::PRIVACY_DIR);
            let mut keys = lrs_store::backup::BackupKeys::open(&dir)?;
            if let Some(days) = days {
                anyhow::ensure!(
                    (2..=3650).contains(&days),
                    "--days: the backup window is 2 to 3650 days"
                );
                keys.set_window_days(days)?;
                record_cli(
                    &data.data_dir,
                    None,
                    "privacy.backup_window",
                    &days.to_string(),
                )?;
            }
            println!(
                "{}",
                serde_json::json!({"days": keys.window_days(), "keys": keys.epochs()})
            );
            Ok(())
        }
    }
}

pub async fn retention(command: RetentionCommand) -> anyhow::Result<()> {
    match command {
        RetentionCommand::Policies { data } => {
            let store = open_store(&data)?;
            let policies = privacy::retention::policies_json(&store);
            store.close().await?;
            println!("{}", serde_json::to_string_pretty(&policies?)?);
            Ok(())
        }
        RetentionCommand::Set {
            data,
            tenant,
            kind,
            days,
            remove,
        } => {
            let parsed = privacy::kinds::parse_kind(&kind).ok_or_else(|| {
                anyhow::anyhow!(
                    "--kind is one of statements, documents, audit_trail, credential_use"
                )
            })?;
            let days = if remove { None } else { days };
            let store = open_store(&data)?;
            let set = privacy::retention::set_policy(&store, &tenant, parsed, days, &who()).await;
            let policies = privacy::retention::policies_json(&store);
            store.close().await?;
            set.map_err(|e| anyhow::anyhow!("{e}"))?;
            record_cli(
                &data.data_dir,
                None,
                "privacy.retention.policy",
                &format!("{tenant} {kind} {days:?}"),
            )?;
            println!("{}", serde_json::to_string_pretty(&policies?)?);
            Ok(())
        }
        RetentionCommand::Run {
            data,
            dry_run,
            as_of,
        } => {
            let as_of = match as_of {
                Some(text) => privacy::retention::parse_as_of(&text)
                    .ok_or_else(|| anyhow::anyhow!("--as-of: an RFC 3339 time or YYYY-MM-DD"))?,
                None => lrs_core::clock::now_micros(),
            };
            let store = open_store(&data)?;
            privacy::reconcile(&store)?;
            eprintln!(
                "retention {} as of {}",
                if dry_run { "dry run" } else { "run" },
                lrs_core::statement::format_micros(as_of)
            );
            let outcome = privacy::retention::run(&store, as_of, dry_run, &who()).await;
            store.close().await?;
            let outcome = outcome?;
            record_cli(
                &data.data_dir,
                None,
                if dry_run {
                    "privacy.retention.dry_run"
                } else {
                    "privacy.retention.run"
                },
                &outcome.summary(),
            )?;
            eprintln!("{}", outcome.summary());
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(())
        }
    }
}
