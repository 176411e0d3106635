//! Progress and dashboard scenarios (issue 5, docs/performance.md "Progress
//! and dashboard"):
//!
//! - `fill-activity`: grows the store with realistic course activity from
//!   the seeded generator in `lrs_blackbox_tests::activity` (the one the
//!   figures test checks): cmi5-style courses as `grouping` (or `parent`)
//!   activities with the course type, modules as objects, enrolments,
//!   sessions, completions, scores, durations, e-book reading, a few voided
//!   statements; ISIL and appid in the context extensions. The unit of work
//!   is one learner's month: unit `u` is learner `mix(seed, u) % pool` in
//!   month `u % months` of the last `--months` months, so the months
//!   interleave as a backfill would, and `--start-unit` continues a fill.
//! - `dashboard`: KB and library readers of `/api/figures/*`.
//! - `progress`: `/api/progress/learner` for learners with activity, and the
//!   library's `/api/progress/learners` pages.
//! - `world`: prints the generated world (ISIL codes, appids, months) as
//!   JSON, for scripts that define tenants before the server starts.

use super::{latency_json, micros, mix, new_histogram, round, Ctx, Meter};
use hdrhistogram::Histogram;
use lrs_blackbox_tests::activity::{CalMonth, Spec, World};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the generated activity looks like (the same for every scenario of
/// a run: pass the same values, with the same global `--seed`,
/// `--learners` and `--courses`).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ActivityArgs {
    /// Months of activity, ending with last month (Dutch time).
    #[arg(long, default_value_t = 12)]
    months: u32,
    /// Number of libraries (ISIL codes).
    #[arg(long, default_value_t = 150)]
    libraries: usize,
}

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct FillArgs {
    #[command(flatten)]
    activity: ActivityArgs,
    /// Statements to add (at least; the last learner-month is sent whole).
    #[arg(long)]
    statements: u64,
    /// The first unit (learner-month) to send: the `next_unit` of the fill before.
    #[arg(long, default_value_t = 0)]
    start_unit: u64,
    /// Statements per POST; 1 sends each statement on its own (a single object).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 10.0)]
    progress_every: f64,
    /// Stop after this many seconds even if not done.
    #[arg(long, default_value_t = 7200.0)]
    max_duration: f64,
}

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ReadArgs {
    #[command(flatten)]
    activity: ActivityArgs,
    /// Concurrent clients, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// A library tenant's credential (figures.read, progress.read): its kinds
    /// are skipped without one.
    #[arg(long, env = "LRS_LIBRARY_KEY", default_value = "")]
    library_key: String,
    #[arg(long, env = "LRS_LIBRARY_SECRET", default_value = "")]
    library_secret: String,
    /// Index of that library in the generated world (0 is the largest).
    #[arg(long, default_value_t = 0)]
    library_index: usize,
    /// Units (learner-months) filled so far: learners are picked from them,
    /// so that every learner asked about has activity.
    #[arg(long, default_value_t = 0)]
    units: u64,
}

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct WorldArgs {
    #[command(flatten)]
    activity: ActivityArgs,
}

fn world(ctx: &Ctx, activity: &ActivityArgs) -> World {
    World::new(Spec {
        seed: ctx.cli.seed,
        month: CalMonth::current().previous(),
        learners: ctx.cli.learners as usize,
        courses: ctx.cli.courses as usize,
        libraries: activity.libraries.max(1),
        ..Spec::default()
    })
}

fn months(activity: &ActivityArgs) -> Vec<CalMonth> {
    let last = CalMonth::current().previous();
    let n = activity.months.max(1) as i32;
    (0..n).map(|i| last.plus(i - n + 1)).collect()
}

/// Learner and month of a unit of work.
fn unit(seed: u64, pool: u32, months: &[CalMonth], u: u64) -> (usize, CalMonth) {
    let learner = (mix(seed ^ 0xD45, u) % u64::from(pool.max(1))) as usize;
    (learner, months[(u % months.len() as u64) as usize])
}

pub(crate) fn run_world(ctx: Arc<Ctx>, args: WorldArgs) -> Value {
    let world = world(&ctx, &args.activity);
    json!({
        "libraries": world.libraries,
        "apps": world.apps.iter().map(|a| &a.id).collect::<Vec<_>>(),
        "courses": world.courses.iter().map(|c| &c.id).collect::<Vec<_>>(),
        "months": months(&args.activity).iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------
// fill-activity

pub(crate) async fn run_fill(ctx: Arc<Ctx>, args: FillArgs) -> anyhow::Result<Value> {
    let world = Arc::new(world(&ctx, &args.activity));
    let months = Arc::new(months(&args.activity));
    let meter = Meter::start(ctx.cli.server_pid);
    let next_unit = Arc::new(AtomicU64::new(args.start_unit));
    let claimed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let begin = Instant::now();
    let deadline = begin + Duration::from_secs_f64(args.max_duration);
    let target = args.statements;
    let batch = args.batch.max(1);
    let mut tasks = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (ctx, world, months, next_unit, claimed, done, requests, errors, stop) = (
            ctx.clone(),
            world.clone(),
            months.clone(),
            next_unit.clone(),
            claimed.clone(),
            done.clone(),
            requests.clone(),
            errors.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let mut first_error: Option<String> = None;
            let mut pending: Vec<Value> = Vec::new();
            loop {
                let out_of_work = stop.load(Ordering::Relaxed)
                    || Instant::now() >= deadline
                    || claimed.load(Ordering::SeqCst) >= target;
                if !out_of_work && pending.len() < batch {
                    let u = next_unit.fetch_add(1, Ordering::SeqCst);
                    let (learner, month) = unit(ctx.cli.seed, ctx.cli.learners, &months, u);
                    let mut rng = StdRng::seed_from_u64(mix(ctx.cli.seed ^ 0xF11, u));
                    let statements = world.learner_month_statements(learner, month, &mut rng);
                    claimed.fetch_add(statements.len() as u64, Ordering::SeqCst);
                    pending.extend(statements);
                    continue;
                }
                if pending.is_empty() {
                    break;
                }
                let take = pending.len().min(batch);
                let chunk: Vec<Value> = pending.drain(..take).collect();
                let body = if batch == 1 {
                    serde_json::to_vec(&chunk[0])
                } else {
                    serde_json::to_vec(&chunk)
                }
                .expect("json");
                let start = Instant::now();
                let mut consecutive = 0;
                // A failed POST is retried with the same ids (idempotent).
                loop {
                    match super::post(&ctx.xapi, body.clone(), take).await {
                        Ok(n) => {
                            histogram.record(micros(start.elapsed())).ok();
                            done.fetch_add(n as u64, Ordering::SeqCst);
                            requests.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Err(error) => {
                            errors.fetch_add(1, Ordering::SeqCst);
                            consecutive += 1;
                            if first_error.is_none() {
                                eprintln!("lrs-load fill-activity: error (retrying): {error:#}");
                                first_error = Some(format!("{error:#}"));
                            }
                            if consecutive >= 20 {
                                stop.store(true, Ordering::SeqCst);
                                return (histogram, first_error);
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
            (histogram, first_error)
        }));
    }
    let progress = {
        let (done, stop, label) = (done.clone(), stop.clone(), ctx.cli.label.clone());
        let every = Duration::from_secs_f64(args.progress_every.max(0.5));
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(every).await;
                let now = Instant::now();
                let count = done.load(Ordering::SeqCst);
                let rate = (count - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                let overall = count as f64 / now.duration_since(begin).as_secs_f64();
                eprintln!(
                    "fill-activity{}: {count:>9} / {target} statements, {rate:>7.0}/s now, {overall:>7.0}/s overall, {:.0} s, ETA {:.0} s",
                    if label.is_empty() { String::new() } else { format!(" [{label}]") },
                    now.duration_since(begin).as_secs_f64(),
                    target.saturating_sub(count) as f64 / overall.max(1.0)
                );
                last = (now, count);
                if stop.load(Ordering::Relaxed) || count >= target {
                    break;
                }
            }
        })
    };
    let mut histogram = new_histogram();
    let mut first_error = None;
    for task in tasks {
        let (h, e) = task.await?;
        histogram.add(&h).ok();
        first_error = first_error.or(e);
    }
    stop.store(true, Ordering::SeqCst);
    progress.abort();
    let elapsed = begin.elapsed().as_secs_f64();
    let count = done.load(Ordering::SeqCst);
    let requests = requests.load(Ordering::SeqCst);
    Ok(json!({
        "target": target,
        "statements": count,
        "requests": requests,
        "start_unit": args.start_unit,
        "next_unit": next_unit.load(Ordering::SeqCst),
        "batch": batch,
        "clients": args.clients,
        "elapsed_s": round(elapsed, 1),
        "statements_per_s": round(count as f64 / elapsed, 1),
        "requests_per_s": round(requests as f64 / elapsed, 1),
        "errors": errors.load(Ordering::SeqCst),
        "first_error": first_error,
        "complete": count >= target,
        "latency": latency_json(&histogram),
        "resources": meter.finish(count),
    }))
}

// ---------------------------------------------------------------------------
// dashboard and progress: timed GETs of /api, per kind.

/// One kind of request and how to make it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Monthly,
    MonthlyLibrary,
    MonthlyApp,
    Trend,
    BreakdownLibrary,
    BreakdownApp,
    LibMonthly,
    LibTrend,
    Learner,
    LibLearner,
    LibLearnersPage,
    LibLearnersCourse,
    /// GET /xapi/statements?agent= (the KB's credential)
    StmtAgent,
    /// ?agent=&activity=<course>&related_activities=true
    StmtAgentCourse,
    /// ?verb=<completed>&since=<an hour before the newest statement>&limit=100
    StmtVerbSince,
    /// ?activity=<course>&related_activities=true&limit=50
    StmtActivityRelated,
    /// ?registration=
    StmtRegistration,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Monthly => "monthly",
            Kind::MonthlyLibrary => "monthly?library",
            Kind::MonthlyApp => "monthly?app",
            Kind::Trend => "trend",
            Kind::BreakdownLibrary => "breakdown library",
            Kind::BreakdownApp => "breakdown app",
            Kind::LibMonthly => "lib: monthly",
            Kind::LibTrend => "lib: trend",
            Kind::Learner => "learner",
            Kind::LibLearner => "lib: learner",
            Kind::LibLearnersPage => "lib: learners",
            Kind::LibLearnersCourse => "lib: learners?course",
            Kind::StmtAgent => "statements?agent",
            Kind::StmtAgentCourse => "statements?agent&activity",
            Kind::StmtVerbSince => "statements?verb&since",
            Kind::StmtActivityRelated => "statements?activity&related",
            Kind::StmtRegistration => "statements?registration",
        }
    }

    fn by_library(self) -> bool {
        matches!(
            self,
            Kind::LibMonthly
                | Kind::LibTrend
                | Kind::LibLearner
                | Kind::LibLearnersPage
                | Kind::LibLearnersCourse
        )
    }
}

struct Plan {
    world: World,
    months: Vec<CalMonth>,
    library: String,
    library_index: usize,
    units: u64,
    /// Pages of the library's learners list (learned from the answers).
    pages: AtomicUsize,
    /// What `?verb&since` counts back an hour from: the newest statement's
    /// `stored` when the run began, so that a store filled hours before
    /// (kept, then queried again) is asked about its last hour of writes
    /// and not about an hour in which nothing was written.
    newest_stored: SystemTime,
}

impl Plan {
    fn learner_with_activity(&self, ctx: &Ctx, rng: &mut StdRng, of_library: bool) -> usize {
        for _ in 0..10_000 {
            let u = rng.gen_range(0..self.units.max(1));
            let (learner, _) = unit(ctx.cli.seed, ctx.cli.learners, &self.months, u);
            // Learners who only read e-books have no progress (404): skip them.
            let profile = self.world.learner(learner);
            if !profile.course_apps.is_empty()
                && (!of_library || profile.libraries[0] == self.library_index)
            {
                return learner;
            }
        }
        0
    }

    /// A statement the fill sent (a unit's statements are seeded, all but
    /// their ids): one with a course and a registration when there is one.
    fn sent_statement(&self, ctx: &Ctx, rng: &mut StdRng) -> Value {
        let mut fallback = Value::Null;
        for _ in 0..100 {
            let u = rng.gen_range(0..self.units.max(1));
            let (learner, month) = unit(ctx.cli.seed, ctx.cli.learners, &self.months, u);
            let mut unit_rng = StdRng::seed_from_u64(mix(ctx.cli.seed ^ 0xF11, u));
            let statements = self
                .world
                .learner_month_statements(learner, month, &mut unit_rng);
            let with_course: Vec<&Value> = statements
                .iter()
                .filter(|s| {
                    s["context"]["registration"].is_string()
                        && s["context"]["contextActivities"]["grouping"][0]["id"].is_string()
                })
                .collect();
            if let Some(statement) = with_course.get(rng.gen_range(0..with_course.len().max(1))) {
                return (*statement).clone();
            }
            if let Some(statement) = statements.first() {
                fallback = statement.clone();
            }
        }
        fallback
    }

    fn query(
        &self,
        ctx: &Ctx,
        kind: Kind,
        rng: &mut StdRng,
    ) -> (&'static str, Vec<(&'static str, String)>) {
        let months = &self.months;
        let month = |rng: &mut StdRng| months[rng.gen_range(0..months.len())].to_string();
        let from = self.months[0].to_string();
        let to = self.months[self.months.len() - 1].to_string();
        match kind {
            Kind::Monthly | Kind::LibMonthly => {
                ("/api/figures/monthly", vec![("month", month(rng))])
            }
            Kind::MonthlyLibrary => {
                let isil =
                    self.world.libraries[rng.gen_range(0..self.world.libraries.len())].clone();
                (
                    "/api/figures/monthly",
                    vec![("month", month(rng)), ("library", isil)],
                )
            }
            Kind::MonthlyApp => {
                let app = self.world.apps[rng.gen_range(0..self.world.apps.len())]
                    .id
                    .clone();
                (
                    "/api/figures/monthly",
                    vec![("month", month(rng)), ("app", app)],
                )
            }
            Kind::Trend | Kind::LibTrend => {
                ("/api/figures/trend", vec![("from", from), ("to", to)])
            }
            Kind::BreakdownLibrary => (
                "/api/figures/breakdown",
                vec![("month", month(rng)), ("by", "library".into())],
            ),
            Kind::BreakdownApp => (
                "/api/figures/breakdown",
                vec![("month", month(rng)), ("by", "app".into())],
            ),
            Kind::Learner | Kind::LibLearner => {
                let learner = self.learner_with_activity(ctx, rng, kind == Kind::LibLearner);
                (
                    "/api/progress/learner",
                    vec![("agent", self.world.learner(learner).agent.to_string())],
                )
            }
            Kind::LibLearnersPage => {
                let pages = self.pages.load(Ordering::Relaxed).max(1);
                let page = rng.gen_range(1..=pages);
                (
                    "/api/progress/learners",
                    vec![
                        ("library", self.library.clone()),
                        ("page", page.to_string()),
                    ],
                )
            }
            Kind::StmtAgent
            | Kind::StmtAgentCourse
            | Kind::StmtActivityRelated
            | Kind::StmtRegistration => {
                let sent = self.sent_statement(ctx, rng);
                let agent = ("agent", sent["actor"].to_string());
                let course = sent["context"]["contextActivities"]["grouping"][0]["id"]
                    .as_str()
                    .or(sent["object"]["id"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                let query = match kind {
                    Kind::StmtAgent => vec![agent],
                    Kind::StmtAgentCourse => vec![
                        agent,
                        ("activity", course),
                        ("related_activities", "true".into()),
                    ],
                    Kind::StmtActivityRelated => vec![
                        ("activity", course),
                        ("related_activities", "true".into()),
                        ("limit", "50".into()),
                    ],
                    _ => match sent["context"]["registration"].as_str() {
                        Some(registration) => vec![("registration", registration.to_owned())],
                        None => vec![agent],
                    },
                };
                ("/xapi/statements", query)
            }
            Kind::StmtVerbSince => {
                let since = self.newest_stored - Duration::from_secs(3600);
                (
                    "/xapi/statements",
                    vec![
                        ("verb", "http://adlnet.gov/expapi/verbs/completed".into()),
                        ("since", super::iso(since)),
                        ("limit", "100".into()),
                    ],
                )
            }
            Kind::LibLearnersCourse => {
                let course = self.world.courses[rng.gen_range(0..self.world.courses.len())]
                    .id
                    .clone();
                (
                    "/api/progress/learners",
                    vec![
                        ("library", self.library.clone()),
                        ("course", course),
                        ("sort", "progress".into()),
                    ],
                )
            }
        }
    }
}

type Stats = super::KindStats;

/// The `stored` of the newest statement the KB's credential can read (now
/// for an empty store).
async fn newest_stored(ctx: &Ctx) -> anyhow::Result<SystemTime> {
    let reply = ctx.xapi.get_statements(&[("limit", "1")]).await?;
    if !reply.status.is_success() {
        anyhow::bail!(
            "GET /xapi/statements?limit=1: {} {}",
            reply.status,
            reply.text
        );
    }
    let Some(stored) = reply.body["statements"][0]["stored"].as_str() else {
        return Ok(SystemTime::now());
    };
    let stored = xapi::validate::parse_timestamp(stored).ok_or_else(|| {
        anyhow::anyhow!("the newest statement's stored {stored:?} is no timestamp")
    })?;
    Ok(UNIX_EPOCH + Duration::from_micros(stored.timestamp_micros().max(0) as u64))
}

async fn run_reads(ctx: Arc<Ctx>, args: ReadArgs, kinds: &[Kind]) -> anyhow::Result<Value> {
    let world = world(&ctx, &args.activity);
    let library_index = args.library_index.min(world.libraries.len() - 1);
    let plan = Arc::new(Plan {
        library: world.libraries[library_index].clone(),
        world,
        months: months(&args.activity),
        library_index,
        units: args.units,
        pages: AtomicUsize::new(1),
        newest_stored: if kinds.contains(&Kind::StmtVerbSince) {
            newest_stored(&ctx).await?
        } else {
            SystemTime::now()
        },
    });
    let with_library = !args.library_key.is_empty();
    let kinds: Vec<Kind> = kinds
        .iter()
        .copied()
        .filter(|k| with_library || !k.by_library())
        .collect();
    let warmup = Duration::from_secs_f64(ctx.cli.warmup);
    let begin = Instant::now();
    let measure_from = begin + warmup;
    let deadline = measure_from + Duration::from_secs_f64(args.duration);
    let meter_holder = Arc::new(Mutex::new(None::<Meter>));
    let mut tasks = Vec::new();
    for client in 0..args.clients.max(1) {
        let (ctx, plan, kinds, meter_holder, args) = (
            ctx.clone(),
            plan.clone(),
            kinds.clone(),
            meter_holder.clone(),
            args.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = ctx.client_rng(7, client);
            let mut stats: Stats = kinds
                .iter()
                .map(|k| (k.name(), (new_histogram(), 0, 0, 0)))
                .collect();
            let mut first_error: Option<String> = None;
            let mut turn = client;
            while Instant::now() < deadline {
                if Instant::now() >= measure_from && client == 0 {
                    let mut meter = meter_holder.lock().expect("meter");
                    if meter.is_none() {
                        *meter = Some(Meter::start(ctx.cli.server_pid));
                    }
                }
                let kind = kinds[turn % kinds.len()];
                turn += 1;
                let (path, query) = plan.query(&ctx, kind, &mut rng);
                let (key, secret) = if kind.by_library() {
                    (&args.library_key, &args.library_secret)
                } else {
                    (&ctx.cli.key, &ctx.cli.secret)
                };
                let start = Instant::now();
                let outcome = ctx
                    .xapi
                    .http
                    .get(format!("{}{path}", ctx.cli.url))
                    .query(&query)
                    .header("X-Experience-API-Version", &ctx.cli.xapi_version)
                    .basic_auth(key, Some(secret))
                    .send()
                    .await;
                let outcome = match outcome {
                    Ok(response) => {
                        let status = response.status();
                        response
                            .bytes()
                            .await
                            .map(|body| (status, body))
                            .map_err(anyhow::Error::from)
                    }
                    Err(error) => Err(error.into()),
                };
                let elapsed = start.elapsed();
                let entry = stats.get_mut(kind.name()).expect("kind");
                match outcome {
                    Ok((status, body)) if status.is_success() => {
                        if start >= measure_from {
                            entry.0.record(micros(elapsed)).ok();
                            entry.1 += 1;
                            entry.2 += body.len() as u64;
                        }
                        if kind == Kind::LibLearnersPage {
                            if let Ok(page) = serde_json::from_slice::<Value>(&body) {
                                let total = page["total"].as_u64().unwrap_or(0) as usize;
                                let per_page = page["filter"]["per_page"]
                                    .as_u64()
                                    .or_else(|| page["rows"].as_array().map(|r| r.len() as u64))
                                    .unwrap_or(1)
                                    .max(1) as usize;
                                plan.pages
                                    .store(total.div_ceil(per_page).max(1), Ordering::Relaxed);
                            }
                        }
                    }
                    Ok((status, body)) => {
                        entry.3 += 1;
                        first_error.get_or_insert_with(|| {
                            format!(
                                "GET {path} {query:?}: {status} {}",
                                String::from_utf8_lossy(&body)
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            )
                        });
                    }
                    Err(error) => {
                        entry.3 += 1;
                        first_error.get_or_insert_with(|| format!("GET {path}: {error:#}"));
                    }
                }
            }
            (stats, first_error)
        }));
    }
    let (all, overall, first_error) =
        super::merge_client_stats(kinds.iter().map(|k| k.name()), tasks).await?;
    let elapsed = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-9);
    let meter = meter_holder
        .lock()
        .expect("meter")
        .take()
        .unwrap_or_else(|| Meter::start(ctx.cli.server_pid));
    if let Some(error) = &first_error {
        eprintln!("lrs-load: first error: {error}");
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let kinds_json: Vec<Value> = kinds
        .iter()
        .map(|k| {
            let (h, n, bytes, errors) = &all[k.name()];
            json!({
                "kind": k.name(),
                "requests": n,
                "errors": errors,
                "requests_per_s": round(*n as f64 / elapsed, 1),
                "bytes_per_response": if *n > 0 { bytes / n } else { 0 },
                "latency": latency_json(h),
            })
        })
        .collect();
    let total: u64 = all.values().map(|v| v.1).sum();
    let errors: u64 = all.values().map(|v| v.3).sum();
    let worst_p95 = all
        .values()
        .filter(|v| v.1 > 0)
        .map(|v| ms(&v.0, 0.95))
        .fold(0.0, f64::max);
    let worst_p99 = all
        .values()
        .filter(|v| v.1 > 0)
        .map(|v| ms(&v.0, 0.99))
        .fold(0.0, f64::max);
    Ok(json!({
        "clients": args.clients,
        "measured_s": round(elapsed, 2),
        "units": args.units,
        "library": plan.library,
        "requests": total,
        "requests_per_s": round(total as f64 / elapsed, 1),
        "errors": errors,
        "first_error": first_error,
        "kinds": kinds_json,
        "latency": latency_json(&overall),
        "goals": {
            "no_errors": errors == 0,
            "p95_le_500ms": worst_p95 <= 500.0,
            "p99_le_1s": worst_p99 <= 1000.0,
            "p99_lt_50ms_aim": worst_p99 < 50.0,
        },
        "resources": meter.finish(0),
    }))
}

pub(crate) async fn run_dashboard(ctx: Arc<Ctx>, args: ReadArgs) -> anyhow::Result<Value> {
    run_reads(
        ctx,
        args,
        &[
            Kind::Monthly,
            Kind::MonthlyLibrary,
            Kind::MonthlyApp,
            Kind::Trend,
            Kind::BreakdownLibrary,
            Kind::BreakdownApp,
            Kind::LibMonthly,
            Kind::LibTrend,
        ],
    )
    .await
}

pub(crate) async fn run_progress(ctx: Arc<Ctx>, args: ReadArgs) -> anyhow::Result<Value> {
    run_reads(
        ctx,
        args,
        &[
            Kind::Learner,
            Kind::LibLearner,
            Kind::LibLearnersPage,
            Kind::LibLearnersCourse,
        ],
    )
    .await
}

/// Filtered statement GETs about what the fill sent, with the KB's credential.
pub(crate) async fn run_statement_reads(ctx: Arc<Ctx>, args: ReadArgs) -> anyhow::Result<Value> {
    run_reads(
        ctx,
        args,
        &[
            Kind::StmtAgent,
            Kind::StmtAgentCourse,
            Kind::StmtVerbSince,
            Kind::StmtActivityRelated,
            Kind::StmtRegistration,
        ],
    )
    .await
}

/// The human table of a dashboard or progress run.
pub(crate) fn table(result: &Value, scenario: &str, label: &str) -> String {
    use super::text;
    let mut out = format!(
        "{scenario}{label}: {} clients, {} s measured, {} requests/s, {} errors (goals: {})\n",
        text(&result["clients"]),
        text(&result["measured_s"]),
        text(&result["requests_per_s"]),
        text(&result["errors"]),
        result["goals"]
    );
    out += &format!(
        "{:<22} {:>9} {:>8} {:>7} {:>9} | {:>9} {:>9} {:>9} {:>9} {:>9}  (ms)\n",
        "kind", "requests", "req/s", "errors", "bytes", "p50", "p95", "p99", "max", "mean"
    );
    for kind in result["kinds"].as_array().into_iter().flatten() {
        let l = &kind["latency"];
        out += &format!(
            "{:<22} {:>9} {:>8} {:>7} {:>9} | {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            text(&kind["kind"]),
            text(&kind["requests"]),
            text(&kind["requests_per_s"]),
            text(&kind["errors"]),
            text(&kind["bytes_per_response"]),
            text(&l["p50_ms"]),
            text(&l["p95_ms"]),
            text(&l["p99_ms"]),
            text(&l["max_ms"]),
            text(&l["mean_ms"]),
        );
    }
    out
}
