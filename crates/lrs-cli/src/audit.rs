//! The audit trail on the command line: `lrs audit verify|export`, and the
//! record every administrative command writes (`record_cli`: the principal
//! is `cli:<OS user>`). The trail itself is `lrs_store::audit`; what a
//! record may hold is cut as `lrs_server::security::audit::bounded` cuts it.

use lrs_server::security::audit::bounded;
use lrs_store::audit::{AuditConfig, AuditEntry, AuditQuery, AuditResources, AuditTrail};
use std::path::PathBuf;

/// Who runs the command line: the OS user name, else the process's uid.
/// Who runs the command line: the OS user name, else the process's uid.
pub fn cli_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            use std::os::unix::fs::MetadataExt;
            // No user name in the environment: the process's uid (Linux).
            std::fs::metadata("/proc/self")
                .map_or_else(|_| "unknown".to_owned(), |m| format!("uid {}", m.uid()))
        })
}

/// Records an administrative action done on the command line (the server
/// stopped, so the trail is free): opens the trail, writes the record,
/// closes it. The principal is `cli:<OS user>`; written after the action
/// succeeded.
pub fn record_cli(
    data_dir: &std::path::Path,
    tenant: Option<&str>,
    action: &str,
    target: &str,
) -> anyhow::Result<()> {
    let trail = AuditTrail::open(AuditConfig::new(data_dir))?;
    let user = cli_user();
    let submitted = trail.submit(AuditEntry {
        time_micros: lrs_core::clock::now_micros(),
        tenant: tenant.map(str::to_owned),
        principal: Some(format!("cli:{}", bounded(&user))),
        auth_method: Some("os_user".to_owned()),
        client: None,
        action: bounded(action),
        resources: AuditResources {
            target: Some(bounded(target)),
            ..Default::default()
        },
        outcome: None,
        request_id: None,
        note: None,
    });
    trail.close()?;
    submitted?;
    Ok(())
}

/// `lrs audit ...`: check and export the audit trail of a data directory.
/// Both only read files, so they work while a server runs (a record being
/// written at that moment is reported as in flight).
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain of every segment; exit 2 and name the first
    /// broken record if it is broken.
    Verify {
        /// Data directory.
        #[arg(long, env = "LRS_DATA_DIR", default_value = "./lrs-data")]
        data_dir: PathBuf,
    },
    /// Print records, one JSON object a line, in sequence order.
    Export {
        /// Data directory.
        #[arg(long, env = "LRS_DATA_DIR", default_value = "./lrs-data")]
        data_dir: PathBuf,
        /// Only records after this time (RFC 3339, or a date YYYY-MM-DD meaning its start, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only records up to this time (same forms).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// A credential key.
        #[arg(long)]
        principal: Option<String>,
        /// Exact, or a prefix ending in `*` (e.g. 'GET /xapi/*').
        #[arg(long)]
        action: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    /// One JSON object per line, with `hash` and `prev_hash` to check against the chain.
    Jsonl,
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Some(time) = xapi::validate::parse_timestamp(text) {
        return Ok(time.timestamp_micros());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("{text:?} is neither an RFC 3339 time nor a date YYYY-MM-DD")
    })?;
    Ok(date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_micros())
}

/// Runs an `lrs audit` command.
pub fn run_command(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { data_dir } => verify_command(&data_dir),
        AuditCommand::Export {
            data_dir,
            since,
            until,
            tenant,
            principal,
            action,
            format: ExportFormat::Jsonl,
        } => {
            use std::io::Write;
            let query = AuditQuery {
                since_micros: since.as_deref().map(parse_time).transpose()?,
                until_micros: until.as_deref().map(parse_time).transpose()?,
                tenant,
                principal,
                action,
                after: 0,
            };
            let dir = data_dir.join(lrs_store::audit::AUDIT_DIR);
            if !dir.is_dir() {
                anyhow::bail!("no audit trail in {}", data_dir.display());
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut failed = None;
            lrs_store::audit::scan(&dir, &query, |record| {
                match writeln!(out, "{}", record.to_json()) {
                    Ok(()) => true,
                    Err(error) => {
                        failed = Some(error);
                        false
                    }
                }
            })?;
            if let Some(error) = failed {
                return Err(error.into());
            }
            out.flush()?;
            Ok(())
        }
    }
}

fn verify_command(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let dir = data_dir.join(lrs_store::audit::AUDIT_DIR);
    if !dir.is_dir() {
        anyhow::bail!("no audit trail in {}", data_dir.display());
    }
    eprintln!("verifying the audit trail in {}", dir.display());
    let report = lrs_store::audit::verify(&dir, |records| {
        eprintln!("  {records} records");
    })?;
    if report.writer_active {
        eprintln!("  a server is writing this trail; its newest records may still be in flight");
    }
    if let Some(broken) = &report.broken {
        println!("BROKEN at {broken}");
        if report.records > 0 {
            println!(
                "  the {} records before it are intact (records {}..={})",
                report.records,
                report.first_seq.unwrap_or(0),
                report.tip.map_or(0, |t| t.seq)
            );
        }
        std::process::exit(2);
    }
    match (report.first_seq, report.tip) {
        (Some(first), Some(tip)) => {
            println!(
                "ok: {} audit records in {} segment{} (records {first}..={}), hash chain intact; head hash {}",
                report.records,
                report.segments,
                if report.segments == 1 { "" } else { "s" },
                tip.seq,
                hex::encode(tip.hash)
            );
            if first > 1 {
                println!(
                    "  records before {first} were removed (retention); record {first} anchors the chain"
                );
            }
            match report.last_action.as_deref() {
                Some(lrs_store::audit::actions::STOPPED) => {
                    println!("  the trail ends with a clean stop")
                }
                _ if report.writer_active => {}
                _ => println!(
                    "  the trail does not end with a clean stop: the server was killed, or is running"
                ),
            }
        }
        _ => println!("ok: the audit trail is empty"),
    }
    Ok(())
}
