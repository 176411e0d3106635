//! Analytics glue (docs/analytics.md): the Parquet projection as a
//! background task of `lrs serve` that follows the log, the settings of it
//! and of SQL queries, and the commands `lrs analytics export|rebuild` and
//! `lrs sql`. The work itself is in `lrs-analytics`.

use crate::cli::DataArgs;
use anyhow::Context;
use lrs_analytics::{Exporter, Format, QueryLimits, Reach, RunProgress, Target};
use lrs_store::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
    /// written out (they are batched meanwhile).
    #[arg(long, env = "LRS_ANALYTICS_INTERVAL", default_value_t = 10.0)]
    pub analytics_interval: f64,
    /// Do not write Parquet files while serving (`lrs analytics export`
    /// can still write them with the server stopped).
    #[arg(long, env = "LRS_NO_ANALYTICS")]
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

    /// Starts following the log (unless switched off) and makes the files
    /// available to `POST /api/sql`. The returned guard stops the task.
    pub fn start(&self, store: Arc<Store>) -> anyhow::Result<Running> {
        let target = self.target(store.data_dir())?;
        let _ = SETTINGS.set(Settings {
            target: target.clone(),
            limits: self.limits(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        if self.no_analytics {
            return Ok(Running { stop, task: None });
        }
        let interval = Duration::from_secs_f64(self.analytics_interval.max(0.0));
        let exporter = Arc::new(Exporter::new(target, tokio::runtime::Handle::current()));
        exporter.set_stop(stop.clone());
        let task = tokio::spawn(follow(store, exporter, interval, stop.clone()));
        Ok(Running {
            stop,
            task: Some(task),
        })
    }
}

/// The background export; dropping it stops the task after its current
/// batch (the files and checkpoint stay consistent at any point).
pub struct Running {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The settings `POST /api/sql` reads (set once by `lrs serve`).
#[derive(Clone)]
pub struct Settings {
    pub target: Target,
    pub limits: QueryLimits,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The running server's analytics settings; `None` before `lrs serve` set
/// them (then the files are in the data directory's default place).
pub fn settings(data_dir: &Path) -> anyhow::Result<Settings> {
    if let Some(settings) = SETTINGS.get() {
        return Ok(settings.clone());
    }
    let target = Target::open(&data_dir.join("analytics").display().to_string())?;
    let settings = Settings {
        target,
        limits: QueryLimits::default(),
    };
    let _ = SETTINGS.set(settings.clone());
    Ok(settings)
}

async fn follow(
    store: Arc<Store>,
    exporter: Arc<Exporter>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) {
    let mut head = store.follow();
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let run = {
            let store = store.clone();
            let exporter = exporter.clone();
            tokio::task::spawn_blocking(move || exporter.run(&store, &mut |_| {}))
        };
        match run.await {
            Ok(Ok(report)) if report.statements > 0 || report.rewritten > 0 => {
                tracing::info!(
                    from = report.from,
                    to = report.to,
                    statements = report.statements,
                    files = report.files,
                    rewritten = report.rewritten,
                    "analytics: Parquet files written"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "analytics: export failed; retrying later"),
            Err(error) => tracing::warn!(%error, "analytics: export task failed"),
        }
        // Wait for the log to grow, then a little longer so that a burst of
        // statements goes into one set of files.
        if head.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(interval).await;
        head.borrow_and_update();
    }
}

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
}

fn print_run_progress(progress: RunProgress) {
    let percent = if progress.head == 0 {
        100.0
    } else {
        progress.position as f64 * 100.0 / progress.head as f64
    };
    eprintln!(
        "  analytics: position {} / {} ({percent:.0} %), {} statements",
        progress.position, progress.head, progress.statements
    );
}

/// `lrs analytics export|rebuild`.
pub async fn command(command: AnalyticsCommand) -> anyhow::Result<()> {
    let (data, analytics, rebuild) = match command {
        AnalyticsCommand::Export { data, analytics } => (data, analytics, false),
        AnalyticsCommand::Rebuild { data, analytics } => (data, analytics, true),
    };
    let store = crate::cli::open_store(&data)?;
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

/// `lrs sql "SELECT ..."`: reads only the Parquet files, so it works while
/// the server runs.
pub async fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let target = args.analytics.target(&args.data_dir)?;
    let limits = args.analytics.limits();
    let ctx = lrs_analytics::sql::session(&target, &Reach::All, limits).await?;
    if args.repeat > 0 {
        let mut times = Vec::with_capacity(args.repeat);
        let mut rows = 0;
        for _ in 0..args.repeat {
            let started = std::time::Instant::now();
            let (_, batches) = lrs_analytics::sql::query(&ctx, &args.query, limits)
                .await
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
    let (schema, batches) = lrs_analytics::sql::query(&ctx, &args.query, limits)
        .await
        .context("the query")?;
    match args.format {
        SqlOutput::Table => println!("{}", lrs_analytics::sql::pretty(&batches)?),
        SqlOutput::Json | SqlOutput::Csv => {
            let format = match args.format {
                SqlOutput::Json => Format::Json,
                _ => Format::Csv,
            };
            let bytes = lrs_analytics::sql::encode(&schema, &batches, format)?;
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
