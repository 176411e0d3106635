//! The command line of the `lrs` binary: every command and where it goes.
//! `main.rs` only calls [`main`].

use crate::data::DataArgs;
use crate::serve::ServeArgs;
use clap::{Parser, Subcommand};
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

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Manage API credentials (the server must be stopped; the data directory is locked while it runs).
    Credentials {
        #[command(subcommand)]
        command: crate::admin::CredentialsCommand,
    },
    /// Manage tenants: the KB, library organisations (ISIL), apps (appid).
    /// The server must be stopped (or use the admin API).
    Tenants {
        #[command(subcommand)]
        command: crate::admin::TenantsCommand,
    },
    /// Manage roles: named sets of administrative permissions.
    Roles {
        #[command(subcommand)]
        command: crate::admin::RolesCommand,
    },
    /// A tenant's course model: which activities are courses and modules,
    /// what verbs mean (docs/progress-and-figures.md).
    CourseModel {
        #[command(subcommand)]
        command: crate::admin::CourseModelCommand,
    },
    /// The monthly figures: close a month (a versioned snapshot the
    /// Datatheek workbook and the API serve), list its closings. The server
    /// must be stopped (or use POST /api/figures/closings).
    Figures {
        #[command(subcommand)]
        command: crate::figures::FiguresCommand,
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
        command: crate::staff::StaffCommand,
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
    /// Erase a person on request (GDPR art. 17): PersonErasedV1 in the log,
    /// their vault entry destroyed (everything of theirs in the log, and in
    /// every copy of it, unreadable), a report; through the running server
    /// when there is one (docs/privacy.md).
    Erase {
        #[command(flatten)]
        data: DataArgs,
        /// The person as an xAPI agent, e.g. '{"mbox":"mailto:anna@example.nl"}'.
        #[arg(long)]
        agent: String,
        /// The request's reference (a case number, never personal data); default generated.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Whole-store exports: the anonymised copy, the handover (docs/exports.md).
    Export {
        #[command(subcommand)]
        command: crate::export::ExportCommand,
    },
    /// Import an export into another LRS through its xAPI API.
    Import {
        #[command(subcommand)]
        command: crate::export::ImportCommand,
    },
    /// Destroy the master key (if embedded), the vault, the log and every
    /// file of the data directory and named backups; prints a certificate.
    /// Without --confirm a dry run. The server must be stopped.
    EndOfContract(crate::end_of_contract::EndOfContractArgs),
    /// Access requests, anonymisation reports, retention periods and runs
    /// (docs/privacy.md); through the running server when there is one.
    Privacy {
        #[command(subcommand)]
        command: crate::privacy::PrivacyCommand,
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

/// Runs the command line given in the process arguments.
pub async fn main() -> anyhow::Result<()> {
    let _telemetry = crate::telemetry::init_tracing();
    match Cli::parse().command {
        Command::Serve(args) => crate::serve::serve(*args).await,
        Command::Credentials { command } => crate::admin::credentials(command).await,
        Command::Tenants { command } => crate::admin::tenants(command).await,
        Command::Roles { command } => crate::admin::roles(command).await,
        Command::CourseModel { command } => crate::admin::course_model(command).await,
        Command::Figures { command } => crate::figures::figures(command).await,
        Command::Staff { command } => crate::staff::staff(command).await,
        Command::Analytics { command } => crate::analytics::command(command).await,
        Command::Sql(args) => crate::analytics::sql(args).await,
        Command::Erase {
            data,
            agent,
            request_id,
        } => crate::privacy::erase(&data, &agent, request_id).await,
        Command::Privacy { command } => crate::privacy::privacy(command).await,
        Command::Verify {
            data,
            backup,
            chain_only,
        } => crate::store_ops::verify(&data, backup.as_deref(), chain_only).await,
        Command::Backup { data, to } => crate::store_ops::run_backup(&data, &to).await,
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
        Command::Restore { data, from } => crate::store_ops::restore(&data, &from).await,
        Command::Audit { command } => crate::audit::run_command(command),
        Command::Export { command } => crate::export::export(command).await,
        Command::Import { command } => crate::export::import(command).await,
        Command::EndOfContract(args) => crate::end_of_contract::run(args).await,
    }
}
