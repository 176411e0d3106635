//! `lrs analytics export|rebuild` and `lrs sql`: the Parquet files written
//! with the server stopped (while it runs it follows the log itself), and
//! SQL over them, which only reads files and so works while it runs.

use crate::args::AnalyticsArgs;
use crate::data::{open_existing_store, progress_line, DataArgs};
use anyhow::Context;
use lrs_analytics::{AnalyticsError, Exporter, Format, Reach, RunProgress};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum AnalyticsCommand {
    /// Write the statements not yet in the Parquet files (the server must be
    /// stopped; while it runs it does this itself).
    Export {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        analytics: AnalyticsArgs,
    },
    /// Remove the Parquet files and write them again from the whole log.
    Rebuild {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        analytics: AnalyticsArgs,
    },
}

/// Output of `lrs sql`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SqlOutput {
    Table,
    Json,
    Csv,
}

/// `lrs sql`: its arguments.
#[derive(clap::Args)]
pub struct SqlArgs {
    /// The query (one SELECT; the views are listed in docs/analytics.md).
    pub query: String,
    /// The data directory (for the default analytics location).
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./lrs-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub analytics: AnalyticsArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: SqlOutput,
    /// Run the query this many times in one session and print only the
    /// timings as JSON (`min_ms`, `median_ms`, `rows`): benches/run-analytics.sh.
    #[arg(long, default_value_t = 0)]
    pub repeat: usize,
    /// Run it in the session a library gets over HTTP: only the rows of
    /// this ISIL (its own copy of them), not everything.
    #[arg(long, value_name = "ISIL", conflicts_with = "tenant")]
    pub library: Option<String>,
    /// Run it in the session an app gets over HTTP: only this tenant's rows.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
}

fn print_run_progress(progress: RunProgress) {
    progress_line(
        "analytics: position",
        progress.position,
        progress.head,
        &format!(", {} statements", progress.statements),
    );
}

/// `lrs analytics export|rebuild`.
pub async fn command(command: AnalyticsCommand) -> anyhow::Result<()> {
    let (data, analytics, rebuild) = match command {
        AnalyticsCommand::Export { data, analytics } => (data, analytics, false),
        AnalyticsCommand::Rebuild { data, analytics } => (data, analytics, true),
    };
    let store = open_existing_store(&data)?;
    let target = analytics.target(&data.data_dir)?;
    eprintln!(
        "analytics: {} the Parquet files in {}",
        if rebuild { "rebuilding" } else { "updating" },
        target.url
    );
    let exporter = Exporter::new(target, tokio::runtime::Handle::current());
    let worker = store.clone();
    let started = std::time::Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        if rebuild {
            let removed = exporter.clear()?;
            eprintln!("  analytics: removed {removed} files");
        }
        let mut last = std::time::Instant::now();
        exporter.run(&worker, &mut |progress| {
            if last.elapsed() >= Duration::from_secs(1) || progress.position == progress.head {
                last = std::time::Instant::now();
                print_run_progress(progress);
            }
        })
    })
    .await??;
    let seconds = started.elapsed().as_secs_f64();
    store.close().await?;
    crate::audit::record_cli(
        &data.data_dir,
        None,
        if rebuild {
            "analytics.rebuild"
        } else {
            "analytics.export"
        },
        &format!("{}-{}", report.from, report.to),
    )?;
    println!(
        "{} statements of positions {}..{} written in {} files in {seconds:.1} s ({:.0} statements/s){}",
        report.statements,
        report.from,
        report.to,
        report.files,
        report.statements as f64 / seconds.max(0.001),
        if report.rewritten > 0 {
            format!(" ({} files rewritten for erasures)", report.rewritten)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The operator on the machine gets the engine's whole message (an HTTP
/// caller only the rule and where): the rule, then the engine's text.
fn with_detail(error: AnalyticsError) -> anyhow::Error {
    match error {
        AnalyticsError::Sql(error) => anyhow::anyhow!("{}: {}", error.rule, error.detail),
        other => other.into(),
    }
}

/// `lrs sql "SELECT ..."`: reads only the Parquet files, so it works while
/// the server runs.
pub async fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let target = args.analytics.target(&args.data_dir)?;
    let limits = args.analytics.limits();
    let reach = match (args.library.clone(), args.tenant.clone()) {
        (Some(isil), _) => Reach::Library(isil),
        (None, Some(tenant)) => Reach::Tenant(tenant),
        (None, None) => Reach::All,
    };
    let session = lrs_analytics::sql::session(&target, &reach, limits)
        .await
        .map_err(with_detail)?;
    if args.repeat > 0 {
        let mut times = Vec::with_capacity(args.repeat);
        let mut rows = 0;
        for _ in 0..args.repeat {
            let started = std::time::Instant::now();
            let (_, batches) = lrs_analytics::sql::query(&session, &args.query, limits)
                .await
                .map_err(with_detail)
                .context("the query")?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
        }
        times.sort_by(f64::total_cmp);
        let round = |ms: f64| (ms * 10.0).round() / 10.0;
        println!(
            "{}",
            serde_json::json!({
                "rows": rows,
                "min_ms": round(times[0]),
                "median_ms": round(times[times.len() / 2]),
            })
        );
        return Ok(());
    }
    let (schema, batches) = lrs_analytics::sql::query(&session, &args.query, limits)
        .await
        .map_err(with_detail)
        .context("the query")?;
    match args.format {
        SqlOutput::Table => println!("{}", lrs_analytics::sql::pretty(&batches)?),
        SqlOutput::Json | SqlOutput::Csv => {
            let format = match args.format {
                SqlOutput::Json => Format::Json,
                _ => Format::Csv,
            };
            let bytes =
                lrs_analytics::sql::encode(&schema, &batches, format).map_err(with_detail)?;
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
            if format == Format::Json {
                println!();
            }
        }
    }
    // The audit trail is the server's while it runs; a query then goes
    // unrecorded here (it reads files only), and says so.
    if let Err(error) = crate::audit::record_cli(&args.data_dir, None, "analytics.sql", &args.query)
    {
        eprintln!("note: not recorded in the audit trail ({error:#})");
    }
    Ok(())
}
