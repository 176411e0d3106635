//! `lrs erase` and `lrs privacy ...` (docs/privacy.md): erasure on request,
//! access requests, retention periods and runs, the anonymisation reports.
//!
//! While a server runs on the data directory (it holds sled's lock), each
//! command asks it through the control socket, like `lrs backup`, and the
//! server records it in its audit trail; with the server stopped the command
//! opens the data directory itself and records it with `record_cli`. Both
//! run the same `lrs_app::privacy::ops`.

use crate::audit::{cli_user, record_cli};
use crate::data::{open_existing_store, print_progress, progress_line, DataArgs};
use anyhow::Context;
use lrs_app::privacy::{self, ops::PrivacyOp};
use serde_json::Value;
use std::path::PathBuf;

fn who() -> String {
    format!("cli:{}", cli_user())
}

fn agent_json(agent: &str) -> anyhow::Result<Value> {
    serde_json::from_str(agent).context("--agent is not JSON (an xAPI agent)")
}

/// Runs `op` through the running server's control socket, else on the
/// stopped data directory (recording it with `record_cli`).
async fn run(data: &DataArgs, op: PrivacyOp) -> anyhow::Result<Value> {
    let who = who();
    if let Some(stream) = crate::control::connect(&data.data_dir).await {
        eprintln!("through the running server");
        let request = serde_json::json!({"command": "privacy", "who": who, "op": op});
        return crate::control::call(stream, &request, |p| {
            progress_line(
                p["phase"].as_str().unwrap_or(""),
                p["done"].as_u64().unwrap_or_default(),
                p["total"].as_u64().unwrap_or_default(),
                "",
            )
        })
        .await;
    }
    let store = open_existing_store(data)?;
    let (progress, mut watched) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(p) = watched.recv().await {
            print_progress(p);
        }
    });
    let done = privacy::ops::run(&store, op, &who, Some(progress)).await;
    let _ = printer.await;
    store.close().await?;
    let done = done.map_err(|e| match &e {
        lrs_app::AppError::Invalid(v) => anyhow::anyhow!("{}: {} ({})", v.path, v.message, v.rule),
        _ => anyhow::anyhow!("{e}"),
    })?;
    if let Some((action, target)) = &done.audit {
        record_cli(&data.data_dir, None, action, target)?;
    }
    Ok(done.answer)
}

/// `lrs erase`: erase a person on request, print the report.
pub async fn erase(data: &DataArgs, agent: &str, request_id: Option<String>) -> anyhow::Result<()> {
    let op = PrivacyOp::Erase {
        agent: agent_json(agent)?,
        request_id: request_id.unwrap_or_else(privacy::erase::generated_request_id),
    };
    let report = run(data, op).await?;
    println!(
        "erased {} person: their data in the log is now unreadable ({} of {} sealed entries tried do not open)",
        report["people"], report["check"]["unreadable"], report["check"]["sealed_entries_tried"]
    );
    println!(
        "report {} at log position {} (entry hash {})",
        report["id"].as_str().unwrap_or_default(),
        report["log"]["position"],
        report["log"]["hash"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// How `lrs privacy report` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ReportFormat {
    /// The readable document, Dutch first, then English.
    Text,
    Json,
    Csv,
}

#[derive(clap::Subcommand)]
pub enum PrivacyCommand {
    /// A person's own data (GDPR art. 15 and 20): everything held about
    /// them, decrypted, as one JSON file in open formats (their statements
    /// as xAPI JSON, documents, progress, assignments, the audit records
    /// about them) with a summary, Dutch first, of what is in it and what
    /// is not. Recorded in the audit trail.
    #[command(alias = "access")]
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// The person as an xAPI agent, e.g. '{"mbox":"mailto:anna@example.nl"}'.
        #[arg(long)]
        agent: String,
        /// Write to this new file (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// An anonymised copy for testing (6.8): a new data directory under a
    /// new master key (DIR/master.key) in which every person is a
    /// consistent pseudonym, free text is blanked and no original
    /// identifier survives; the figures and progress stay the same. Start
    /// it with `lrs serve --data-dir DIR --master-key-file DIR/master.key`.
    AnonymisedCopy {
        #[command(flatten)]
        data: DataArgs,
        /// The new data directory (must not exist, or be empty).
        #[arg(long)]
        to: PathBuf,
        /// Coarsen every time to the start of its (Dutch) day or month.
        #[arg(long, value_enum)]
        coarsen_times: Option<crate::export::anonymised::Coarsen>,
        #[command(flatten)]
        tenancy: crate::args::TenancyArgs,
    },
    /// The anonymisation reports (every erasure and retention run): one
    /// month's (Dutch time), one by id, or all.
    Report {
        #[command(flatten)]
        data: DataArgs,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: Option<String>,
        /// One report by id.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
    },
    /// The retention periods: show them, or set one.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Apply the retention periods now (the server does so daily).
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
}

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// The periods in force, per tenant (`*`: the KB's default) and class.
    Show {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Set (or with --remove remove) a period. Classes: people, documents
    /// (per tenant; a tenant's own only stricter than the default),
    /// audit_trail, credential_use, operations_journal, backups (tenant `*`).
    Set {
        #[command(flatten)]
        data: DataArgs,
        /// A tenant id, or `*` for the default of every tenant.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        class: String,
        #[arg(long, required_unless_present = "remove")]
        days: Option<u32>,
        #[arg(long)]
        remove: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum RetentionCommand {
    /// Apply the periods now (or as of --as-of); --dry-run lists what would
    /// be removed and changes nothing. Writes a report (not a dry run).
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

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn privacy(command: PrivacyCommand) -> anyhow::Result<()> {
    match command {
        PrivacyCommand::Export { data, agent, out } => {
            let agent = agent_json(&agent)?;
            if let Some(path) = &out {
                if path.exists() {
                    anyhow::bail!(
                        "--out {} exists already: give a new file (the export holds personal data and is never written over another file)",
                        path.display()
                    );
                }
            }
            let found = run(&data, PrivacyOp::Access { agent }).await?;
            let text = serde_json::to_string_pretty(&found)?;
            match out {
                Some(path) => {
                    crate::export::write_private(&path, text.as_bytes())?;
                    eprintln!(
                        "written to {} (mode 0600: it holds personal data)",
                        path.display()
                    );
                    if let Some(nl) = found["summary"]["nl"].as_str() {
                        eprintln!("{nl}");
                    }
                }
                None => println!("{text}"),
            }
            Ok(())
        }
        PrivacyCommand::AnonymisedCopy {
            data,
            to,
            coarsen_times,
            tenancy,
        } => {
            crate::export::ensure_empty_dir(&to)?;
            let extensions = tenancy.into_extensions();
            let keep = [extensions.isil, extensions.appid];
            if let Some(stream) = crate::control::connect(&data.data_dir).await {
                eprintln!("through the running server");
                let to = std::path::absolute(&to)
                    .with_context(|| format!("resolving {}", to.display()))?;
                let request = serde_json::json!({
                    "command": "anonymised-copy",
                    "who": who(),
                    "to": to,
                    "coarsen": coarsen_times,
                    "keep": keep,
                });
                let done = crate::control::call(stream, &request, |p| {
                    progress_line(
                        p["phase"].as_str().unwrap_or(""),
                        p["done"].as_u64().unwrap_or_default(),
                        p["total"].as_u64().unwrap_or_default(),
                        "",
                    )
                })
                .await?;
                let count = |key: &str| done[key].as_u64().unwrap_or_default();
                println!(
                    "ok: {} statements of {} people, anonymised, in the new data directory {} ({} statements of erased people left out, {} assignments copied)",
                    count("statements"),
                    count("people"),
                    to.display(),
                    count("statements_of_erased_people"),
                    count("assignments")
                );
                println!(
                    "start it with: lrs serve --data-dir {0} --master-key-file {0}/master.key",
                    to.display()
                );
                return Ok(());
            }
            let store = open_existing_store(&data)?;
            let result = crate::export::copy::export_anonymised(
                &store,
                None,
                Some(&to),
                coarsen_times,
                &keep,
                std::sync::Arc::new(|phase, done, total| progress_line(phase, done, total, "")),
            )
            .await;
            store.close().await?;
            let summary = result?;
            record_cli(
                &data.data_dir,
                None,
                "privacy.anonymised-copy",
                &to.display().to_string(),
            )?;
            println!(
                "ok: {} statements of {} people, anonymised, in the new data directory {} ({} statements of erased people left out, {} assignments copied)",
                summary.statements,
                summary.people,
                to.display(),
                summary.statements_of_erased_people,
                summary.assignments
            );
            println!(
                "start it with: lrs serve --data-dir {0} --master-key-file {0}/master.key",
                to.display()
            );
            Ok(())
        }
        PrivacyCommand::Report {
            data,
            month,
            id,
            format,
        } => {
            let document = matches!(format, ReportFormat::Text);
            let answer = run(
                &data,
                PrivacyOp::Reports {
                    month,
                    id,
                    document,
                },
            )
            .await?;
            let reports: Vec<Value> = answer["reports"].as_array().cloned().unwrap_or_default();
            match format {
                ReportFormat::Json => print_json(&answer),
                ReportFormat::Csv => {
                    print!("{}", privacy::report::csv(&reports));
                    Ok(())
                }
                ReportFormat::Text => {
                    if reports.is_empty() {
                        println!("Geen rapporten. / No reports.");
                    }
                    for report in &reports {
                        println!("{}", report["document"].as_str().unwrap_or_default());
                    }
                    Ok(())
                }
            }
        }
        PrivacyCommand::Policy {
            command: PolicyCommand::Show { data },
        } => print_json(&run(&data, PrivacyOp::PolicyShow).await?),
        PrivacyCommand::Policy {
            command:
                PolicyCommand::Set {
                    data,
                    tenant,
                    class,
                    days,
                    remove,
                },
        } => {
            let days = if remove { None } else { days };
            print_json(
                &run(
                    &data,
                    PrivacyOp::PolicySet {
                        tenant,
                        class,
                        days,
                    },
                )
                .await?,
            )
        }
        PrivacyCommand::Retention {
            command:
                RetentionCommand::Run {
                    data,
                    dry_run,
                    as_of,
                },
        } => {
            let as_of_micros = match as_of {
                Some(text) => privacy::retention::parse_as_of(&text)
                    .ok_or_else(|| anyhow::anyhow!("--as-of: an RFC 3339 time or YYYY-MM-DD"))?,
                None => lrs_core::clock::now_micros(),
            };
            eprintln!(
                "retention {} as of {}",
                if dry_run { "dry run" } else { "run" },
                lrs_core::statement::format_micros(as_of_micros)
            );
            let outcome = run(
                &data,
                PrivacyOp::RetentionRun {
                    as_of_micros,
                    dry_run,
                },
            )
            .await?;
            print_json(&outcome)
        }
    }
}
