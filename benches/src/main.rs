//! `lrs-load`: a load generator for a running LRS.
//!
//! Scenarios (see `--help`):
//! - `post-single`: N clients, each POSTing one statement at a time;
//! - `post-batch`: N clients, each POSTing batches of statements;
//! - `fill`: grow the store fast to a given number of statements, with progress;
//! - `query`: N clients doing filtered GETs (learner, staff) and `more` follows;
//! - `learners`: thousands of simulated cmi5 learners and library staff with
//!   think times, for soak runs (`learners.rs`, docs/load-learners.md);
//! - `fill-activity`, `dashboard`, `progress`, `world`: realistic course
//!   activity, and the figures and progress API under load (`dashboard.rs`).
//!
//! The statements are cmi5-like: a pool of learners (accounts), courses with
//! modules, registrations per (learner, course), the learner's library as an
//! ISIL code in a context extension, results with score and duration. Every
//! generator is seeded (`--seed`; only statement and session ids are random,
//! so that runs never collide), so two runs send the same shapes and the
//! query scenario asks for learners, courses and registrations that the post
//! scenarios wrote.
//!
//! Output: a human table on stdout, or with `--json` one JSON object on
//! stdout (the table then goes to stderr). Progress goes to stderr.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use lrs_blackbox_tests::Xapi;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod dashboard;
mod learners;

/// Per request kind: latencies, requests, a count (statements or bytes) and errors.
type KindStats = BTreeMap<&'static str, (Histogram<u64>, u64, u64, u64)>;

/// Waits for the clients and adds up their figures: per kind, all kinds
/// together, and the first error any client saw.
async fn merge_client_stats(
    kinds: impl IntoIterator<Item = &'static str>,
    tasks: Vec<tokio::task::JoinHandle<(KindStats, Option<String>)>>,
) -> anyhow::Result<(KindStats, Histogram<u64>, Option<String>)> {
    let mut all: KindStats = kinds
        .into_iter()
        .map(|k| (k, (new_histogram(), 0, 0, 0)))
        .collect();
    let mut overall = new_histogram();
    let mut first_error = None;
    for task in tasks {
        let (stats, error) = task.await?;
        for (kind, (h, requests, count, errors)) in stats {
            let entry = all.get_mut(kind).expect("kind");
            entry.0.add(&h).ok();
            overall.add(&h).ok();
            entry.1 += requests;
            entry.2 += count;
            entry.3 += errors;
        }
        first_error = first_error.or(error);
    }
    Ok((all, overall, first_error))
}

#[derive(Parser)]
#[command(
    name = "lrs-load",
    about = "Load generator for the xAPI LRS (talks HTTP to a running server)"
)]
struct Cli {
    /// Base URL of the server (the xAPI endpoint is <url>/xapi).
    #[arg(
        long,
        env = "LRS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Basic auth key.
    #[arg(long, env = "LRS_KEY", default_value = "", global = true)]
    key: String,
    /// Basic auth secret.
    #[arg(long, env = "LRS_SECRET", default_value = "", global = true)]
    secret: String,
    /// Seed of every generator.
    #[arg(long, default_value_t = 42, global = true)]
    seed: u64,
    /// Size of the learner pool.
    #[arg(long, default_value_t = 50_000, global = true)]
    learners: u32,
    /// Number of courses.
    #[arg(long, default_value_t = 24, global = true)]
    courses: u32,
    /// Print one JSON object with the results on stdout (the table goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// PID of the server process: report its CPU time and RSS, and its disk writes.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// A label carried into the output (e.g. "at 100k").
    #[arg(long, default_value = "", global = true)]
    label: String,
    /// Seconds at the start of a timed scenario whose requests are not measured.
    #[arg(long, default_value_t = 2.0, global = true)]
    warmup: f64,
    /// X-Experience-API-Version header.
    #[arg(long, default_value = "1.0.3", global = true)]
    xapi_version: String,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 2, global = true)]
    threads: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// N concurrent clients, each POSTing single statements back to back.
    PostSingle {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Seconds to run (after the warm-up).
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
    },
    /// N concurrent clients, each POSTing batches back to back.
    PostBatch {
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
    },
    /// The server's HTTP floor: N clients, each GETting /xapi/about with the
    /// same authentication back to back (the ceiling any POST rate is
    /// compared with).
    About {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
    },
    /// Grow the store by this many statements as fast as it takes them.
    Fill {
        /// Statements to add.
        #[arg(long)]
        statements: u64,
        #[arg(long, default_value_t = 500)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Seconds between progress lines.
        #[arg(long, default_value_t = 5.0)]
        progress_every: f64,
        /// Stop after this many seconds even if not done.
        #[arg(long, default_value_t = 1800.0)]
        max_duration: f64,
    },
    /// N concurrent clients doing filtered GETs.
    Query {
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// `since` for the verb query: this many seconds before now.
        #[arg(long, default_value_t = 3600)]
        since_seconds: u64,
    },
    /// Simulated cmi5 learners (sessions with state reads and writes, think
    /// times, ramp-up) and library staff reading progress: a soak.
    Learners(learners::LearnersArgs),
    /// Grow the store with realistic course activity (learner-months from
    /// the seeded generator the figures test checks).
    FillActivity(dashboard::FillArgs),
    /// KB and library readers of /api/figures (monthly, trend, breakdown).
    Dashboard(dashboard::ReadArgs),
    /// /api/progress/learner for learners with activity, and a library's
    /// /api/progress/learners pages.
    Progress(dashboard::ReadArgs),
    /// Filtered GET /xapi/statements about what `fill-activity` sent (agent,
    /// agent and course, verb and since, course with related activities,
    /// registration).
    ActivityQuery(dashboard::ReadArgs),
    /// Print the generated world (ISIL codes, appids, courses, months) as JSON.
    World(dashboard::WorldArgs),
}

// ---------------------------------------------------------------------------
// The workload model.

const HOME_PAGE: &str = "https://leren.bibliotheek.example.nl";
const ISIL_EXTENSION: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
const SESSION_EXTENSION: &str = "https://w3id.org/xapi/cmi5/context/extensions/sessionid";
const PROGRESS_EXTENSION: &str = "https://w3id.org/xapi/cmi5/result/extensions/progress";
const CMI5_CATEGORY: &str = "https://w3id.org/xapi/cmi5/context/categories/cmi5";
const MOVEON_CATEGORY: &str = "https://w3id.org/xapi/cmi5/context/categories/moveon";
const COURSES_PER_LEARNER: usize = 3;
const LIBRARIES: u32 = 150;

const COURSE_TITLES: &[&str] = &[
    "Digisterker",
    "Klik en Tik",
    "Werken met DigiD",
    "Veilig online",
    "Taalhuis: Nederlands oefenen",
    "Omgaan met je smartphone",
    "Mediawijsheid voor ouders",
    "Zoeken op internet",
    "Digitaal solliciteren",
    "Online bankieren",
    "Videobellen met familie",
    "Fotos ordenen",
    "Rekenen in het dagelijks leven",
    "Lezen met plezier",
    "Schrijven voor beginners",
    "De Belastingdienst online",
    "Gezondheid online: MijnGezondheid",
    "Programmeren met Scratch",
    "Informatievaardigheden",
    "E-books lenen",
    "Nepnieuws herkennen",
    "Privacy en sociale media",
    "Samen leren: taalcafe",
    "Van papier naar digitaal",
    "Klimaat en duurzaamheid",
    "Geldzaken op orde",
];

/// (verb name, weight out of 100)
const VERBS: &[(&str, u32)] = &[
    ("launched", 14),
    ("initialized", 14),
    ("progressed", 36),
    ("completed", 12),
    ("passed", 9),
    ("terminated", 15),
];

fn verb_iri(name: &str) -> String {
    format!("http://adlnet.gov/expapi/verbs/{name}")
}

struct Course {
    id: String,
    title: String,
    modules: Vec<(String, String)>,
}

struct Model {
    seed: u64,
    learners: u32,
    courses: Vec<Course>,
}

fn mix(a: u64, b: u64) -> u64 {
    // splitmix64 of a combination: cheap, deterministic per (a, b).
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_uuid(rng: &mut impl Rng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

impl Model {
    fn new(seed: u64, learners: u32, courses: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(mix(seed, 1));
        let courses = (0..courses)
            .map(|c| {
                let base = COURSE_TITLES[c as usize % COURSE_TITLES.len()];
                let title = if (c as usize) < COURSE_TITLES.len() {
                    base.to_owned()
                } else {
                    format!("{base} {c}")
                };
                let id = format!("{HOME_PAGE}/courses/c{c:03}");
                let modules = (0..rng.gen_range(4..=10))
                    .map(|m| {
                        (
                            format!("{id}/modules/m{m:02}"),
                            format!("{title}, module {}", m + 1),
                        )
                    })
                    .collect();
                Course { id, title, modules }
            })
            .collect();
        Model {
            seed,
            learners,
            courses,
        }
    }

    fn agent(&self, learner: u32) -> Value {
        json!({
            "objectType": "Agent",
            "name": format!("Deelnemer {learner}"),
            "account": {"homePage": HOME_PAGE, "name": format!("learner-{learner:06}")}
        })
    }

    /// The agent as a query parameter (identifier only).
    fn agent_param(&self, learner: u32) -> String {
        json!({"account": {"homePage": HOME_PAGE, "name": format!("learner-{learner:06}")}})
            .to_string()
    }

    fn learner_courses(&self, learner: u32) -> [usize; COURSES_PER_LEARNER] {
        let mut rng = StdRng::seed_from_u64(mix(self.seed ^ 0xC0, u64::from(learner)));
        let n = self.courses.len();
        let mut picked = [usize::MAX; COURSES_PER_LEARNER];
        for i in 0..COURSES_PER_LEARNER.min(n) {
            loop {
                let c = rng.gen_range(0..n);
                if !picked[..i].contains(&c) {
                    picked[i] = c;
                    break;
                }
            }
        }
        for slot in picked.iter_mut().skip(n) {
            *slot = 0;
        }
        picked
    }

    fn registration(&self, learner: u32, course: usize) -> uuid::Uuid {
        let mut rng = StdRng::seed_from_u64(mix(
            self.seed ^ 0x5E6,
            (u64::from(learner) << 16) | course as u64,
        ));
        random_uuid(&mut rng)
    }

    fn library(&self, learner: u32) -> String {
        // e.g. NL-0100030000
        format!(
            "NL-{:010}",
            100_030_000 + (mix(self.seed, u64::from(learner)) % u64::from(LIBRARIES)) * 10_000
        )
    }

    fn pick_learner(&self, rng: &mut impl Rng) -> u32 {
        rng.gen_range(0..self.learners)
    }

    fn pick_learner_course(&self, rng: &mut impl Rng) -> (u32, usize) {
        let learner = self.pick_learner(rng);
        let course = self.learner_courses(learner)[rng.gen_range(0..COURSES_PER_LEARNER)];
        (learner, course)
    }

    /// One realistic cmi5-like statement, with its own id.
    fn statement(&self, rng: &mut impl Rng, now: &str) -> Value {
        let (learner, course_index) = self.pick_learner_course(rng);
        let course = &self.courses[course_index];
        let (module_id, module_title) = &course.modules[rng.gen_range(0..course.modules.len())];
        let mut roll = rng.gen_range(0..100);
        let verb = VERBS
            .iter()
            .find(|(_, weight)| {
                if roll < *weight {
                    true
                } else {
                    roll -= weight;
                    false
                }
            })
            .map(|(name, _)| *name)
            .unwrap_or("progressed");
        let minutes = rng.gen_range(1..90);
        let seconds = rng.gen_range(0..60);
        let duration = format!("PT{minutes}M{seconds}S");
        let result = match verb {
            "progressed" => Some(json!({
                "duration": duration,
                "extensions": {PROGRESS_EXTENSION: rng.gen_range(1..100)}
            })),
            "completed" => Some(json!({"completion": true, "duration": duration})),
            "passed" => {
                let raw: u32 = rng.gen_range(55..=100);
                Some(json!({
                    "success": true,
                    "score": {"scaled": f64::from(raw) / 100.0, "raw": raw, "min": 0, "max": 100},
                    "duration": duration
                }))
            }
            "terminated" => Some(json!({"duration": duration})),
            _ => None,
        };
        let mut category = vec![json!({"id": CMI5_CATEGORY})];
        if matches!(verb, "completed" | "passed") {
            category.push(json!({"id": MOVEON_CATEGORY}));
        }
        let mut statement = json!({
            // Ids (and session ids) are not seeded: a second run against the
            // same store must not collide with the statements of the first.
            "id": uuid::Uuid::new_v4().hyphenated().to_string(),
            "actor": self.agent(learner),
            "verb": {"id": verb_iri(verb), "display": {"en-US": verb}},
            "object": {
                "objectType": "Activity",
                "id": module_id,
                "definition": {
                    "type": "https://w3id.org/xapi/cmi5/activitytype/block",
                    "name": {"nl-NL": module_title}
                }
            },
            "context": {
                "registration": self.registration(learner, course_index).hyphenated().to_string(),
                "contextActivities": {
                    "parent": [{"id": course.id, "objectType": "Activity", "definition": {"name": {"nl-NL": course.title}}}],
                    "grouping": [{"id": course.id}],
                    "category": category
                },
                "platform": "Leerplatform Bibliotheek",
                "language": "nl-NL",
                "extensions": {
                    SESSION_EXTENSION: uuid::Uuid::new_v4().hyphenated().to_string(),
                    ISIL_EXTENSION: self.library(learner)
                }
            },
            "timestamp": now
        });
        if let Some(result) = result {
            statement["result"] = result;
        }
        statement
    }
}

// ---------------------------------------------------------------------------
// Time and process helpers.

/// An xAPI timestamp (UTC, microseconds), as the store writes `stored`.
fn iso(time: SystemTime) -> String {
    let micros = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64;
    lrs_core::statement::format_micros(micros)
}

/// CPU seconds (user + system) of a process, from /proc (USER_HZ = 100).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' : state(0) ppid(1) ... utime is field 14 overall => index 11 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn io_write_bytes(pid: &str) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find(|l| l.starts_with("write_bytes:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU and I/O of the server and of this process over a scenario.
struct Meter {
    server: Option<String>,
    start: Instant,
    self_cpu: f64,
    server_cpu: Option<f64>,
    server_written: Option<u64>,
}

impl Meter {
    fn start(server_pid: Option<u32>) -> Self {
        let server = server_pid.map(|p| p.to_string());
        Meter {
            start: Instant::now(),
            self_cpu: cpu_seconds("self").unwrap_or(0.0),
            server_cpu: server.as_deref().and_then(cpu_seconds),
            server_written: server.as_deref().and_then(io_write_bytes),
            server,
        }
    }

    fn finish(&self, statements: u64) -> Value {
        let wall = self.start.elapsed().as_secs_f64();
        let self_cpu = cpu_seconds("self").unwrap_or(0.0) - self.self_cpu;
        let mut out = json!({
            "wall_s": round(wall, 2),
            "loadgen_cpu_s": round(self_cpu, 2),
            "loadgen_cpu_pct": round(100.0 * self_cpu / wall, 1),
        });
        if let Some(pid) = &self.server {
            if let (Some(before), Some(after)) = (self.server_cpu, cpu_seconds(pid)) {
                out["server_cpu_s"] = json!(round(after - before, 2));
                out["server_cpu_pct"] = json!(round(100.0 * (after - before) / wall, 1));
            }
            out["server_rss_mib"] =
                json!(status_kib(pid, "VmRSS:").map(|k| round(k as f64 / 1024.0, 1)));
            out["server_hwm_mib"] =
                json!(status_kib(pid, "VmHWM:").map(|k| round(k as f64 / 1024.0, 1)));
            if let (Some(before), Some(after)) = (self.server_written, io_write_bytes(pid)) {
                let written = after.saturating_sub(before);
                out["server_disk_written_mib"] = json!(round(written as f64 / 1048576.0, 1));
                if let Some(per_statement) = written.checked_div(statements) {
                    out["server_disk_written_bytes_per_statement"] = json!(per_statement);
                }
            }
        }
        out
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

fn latency_json(h: &Histogram<u64>) -> Value {
    let ms = |v: u64| round(v as f64 / 1000.0, 2);
    json!({
        "count": h.len(),
        "mean_ms": round(h.mean() / 1000.0, 2),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p95_ms": ms(h.value_at_quantile(0.95)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
    })
}

// ---------------------------------------------------------------------------
// Scenarios.

struct Ctx {
    cli: Cli,
    model: Arc<Model>,
    xapi: Xapi,
}

impl Ctx {
    fn client_rng(&self, scenario: u64, client: usize) -> StdRng {
        StdRng::seed_from_u64(mix(
            self.cli.seed ^ scenario.wrapping_mul(0x1000_0001),
            client as u64 + 1,
        ))
    }
}

/// POSTs a body; returns the number of statements acknowledged.
/// `run_posts`' batch size that means GET /xapi/about instead of a POST.
const ABOUT: usize = usize::MAX;

async fn about(xapi: &Xapi) -> anyhow::Result<()> {
    let response = xapi.request(reqwest::Method::GET, "/about").send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() || !text.contains("version") {
        bail!(
            "GET /xapi/about: {status}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    Ok(())
}

async fn post(xapi: &Xapi, body: Vec<u8>, expected: usize) -> anyhow::Result<usize> {
    let response = xapi
        .request(reqwest::Method::POST, "/statements")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!(
            "POST /statements: {status}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    // The reply is an array of ids; count commas rather than parse it.
    let ids = if text.trim() == "[]" {
        0
    } else {
        text.matches(',').count() + 1
    };
    if ids != expected {
        bail!("POST /statements: expected {expected} ids back, got {ids}");
    }
    Ok(ids)
}

struct ClientResult {
    histogram: Histogram<u64>,
    statements: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Timed POST scenario: every client POSTs `batch` statements (as a single
/// object when `batch == 0`) back to back until the deadline.
async fn run_posts(
    ctx: Arc<Ctx>,
    clients: usize,
    batch: usize,
    duration: f64,
) -> anyhow::Result<Value> {
    let warmup = Duration::from_secs_f64(ctx.cli.warmup);
    let begin = Instant::now();
    let measure_from = begin + warmup;
    let deadline = measure_from + Duration::from_secs_f64(duration);
    let meter_holder = Arc::new(std::sync::Mutex::new(None::<Meter>));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let ctx = ctx.clone();
        let meter_holder = meter_holder.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = ctx.client_rng(if batch == 0 { 1 } else { 2 }, client);
            let mut result = ClientResult {
                histogram: new_histogram(),
                statements: 0,
                requests: 0,
                errors: 0,
                first_error: None,
            };
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if now >= measure_from && client == 0 {
                    let mut meter = meter_holder.lock().expect("meter");
                    if meter.is_none() {
                        *meter = Some(Meter::start(ctx.cli.server_pid));
                    }
                }
                let stamp = iso(SystemTime::now());
                if batch == ABOUT {
                    let start = Instant::now();
                    let outcome = about(&ctx.xapi).await;
                    if start >= measure_from {
                        match outcome {
                            Ok(()) => {
                                result.histogram.record(micros(start.elapsed())).ok();
                                result.requests += 1;
                            }
                            Err(error) => {
                                result.errors += 1;
                                result.first_error.get_or_insert(format!("{error:#}"));
                            }
                        }
                    }
                    continue;
                }
                let (body, expected) = if batch == 0 {
                    (
                        serde_json::to_vec(&ctx.model.statement(&mut rng, &stamp)).expect("json"),
                        1,
                    )
                } else {
                    let list: Vec<Value> = (0..batch)
                        .map(|_| ctx.model.statement(&mut rng, &stamp))
                        .collect();
                    (serde_json::to_vec(&list).expect("json"), batch)
                };
                let start = Instant::now();
                let outcome = post(&ctx.xapi, body, expected).await;
                let measured = start >= measure_from;
                match outcome {
                    Ok(n) => {
                        if measured {
                            result.histogram.record(micros(start.elapsed())).ok();
                            result.statements += n as u64;
                            result.requests += 1;
                        }
                    }
                    Err(error) => {
                        result.errors += 1;
                        if result.first_error.is_none() {
                            result.first_error = Some(format!("{error:#}"));
                        }
                        if result.errors > 1000 && result.statements == 0 {
                            break;
                        }
                    }
                }
            }
            result
        }));
    }
    let mut histogram = new_histogram();
    let (mut statements, mut requests, mut errors, mut first_error) = (0u64, 0u64, 0u64, None);
    for task in tasks {
        let r = task.await?;
        histogram.add(&r.histogram).ok();
        statements += r.statements;
        requests += r.requests;
        errors += r.errors;
        first_error = first_error.or(r.first_error);
    }
    let end = Instant::now();
    let elapsed = end
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-9);
    let meter = meter_holder
        .lock()
        .expect("meter")
        .take()
        .unwrap_or_else(|| Meter::start(ctx.cli.server_pid));
    let resources = meter.finish(statements);
    if let Some(e) = &first_error {
        eprintln!("lrs-load: {errors} errors; first: {e}");
    }
    Ok(json!({
        "clients": clients,
        "batch": if batch == 0 { 1 } else { batch },
        "measured_s": round(elapsed, 2),
        "statements": statements,
        "requests": requests,
        "errors": errors,
        "first_error": first_error,
        "statements_per_s": round(statements as f64 / elapsed, 1),
        "requests_per_s": round(requests as f64 / elapsed, 1),
        "latency": latency_json(&histogram),
        "resources": resources,
    }))
}

async fn run_fill(
    ctx: Arc<Ctx>,
    target: u64,
    batch: usize,
    clients: usize,
    progress_every: f64,
    max_duration: f64,
) -> anyhow::Result<Value> {
    let meter = Meter::start(ctx.cli.server_pid);
    let claimed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let begin = Instant::now();
    let deadline = begin + Duration::from_secs_f64(max_duration);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (ctx, claimed, done, errors, stop) = (
            ctx.clone(),
            claimed.clone(),
            done.clone(),
            errors.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = ctx.client_rng(3, client);
            let mut histogram = new_histogram();
            let mut consecutive_errors = 0;
            let mut first_error: Option<String> = None;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let from = claimed.fetch_add(batch as u64, Ordering::SeqCst);
                if from >= target {
                    break;
                }
                let n = (target - from).min(batch as u64) as usize;
                let stamp = iso(SystemTime::now());
                let list: Vec<Value> = (0..n)
                    .map(|_| ctx.model.statement(&mut rng, &stamp))
                    .collect();
                let body = serde_json::to_vec(&list).expect("json");
                let start = Instant::now();
                // A failed batch is retried (same ids: the server answers
                // idempotently for statements it already took).
                loop {
                    match post(&ctx.xapi, body.clone(), n).await {
                        Ok(acked) => {
                            histogram.record(micros(start.elapsed())).ok();
                            done.fetch_add(acked as u64, Ordering::SeqCst);
                            consecutive_errors = 0;
                            break;
                        }
                        Err(error) => {
                            errors.fetch_add(1, Ordering::SeqCst);
                            consecutive_errors += 1;
                            if first_error.is_none() {
                                eprintln!("lrs-load fill: error (retrying): {error:#}");
                                first_error = Some(format!("{error:#}"));
                            }
                            if consecutive_errors >= 20 {
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

    // Progress: a line every few seconds.
    let progress = {
        let (done, stop, server) = (
            done.clone(),
            stop.clone(),
            ctx.cli.server_pid.map(|p| p.to_string()),
        );
        let label = ctx.cli.label.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs_f64(progress_every.max(0.5));
            let mut last = (Instant::now(), 0u64);
            let mut lines = Vec::new();
            loop {
                tokio::time::sleep(every).await;
                let now = Instant::now();
                let count = done.load(Ordering::SeqCst);
                let rate = (count - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                let overall = count as f64 / now.duration_since(begin).as_secs_f64();
                let rss = server
                    .as_deref()
                    .and_then(|p| status_kib(p, "VmRSS:"))
                    .map(|k| format!(", server RSS {} MiB", k / 1024))
                    .unwrap_or_default();
                let eta = if overall > 0.0 {
                    (target.saturating_sub(count)) as f64 / overall
                } else {
                    f64::NAN
                };
                eprintln!(
                    "fill{}: {count:>9} / {target} statements, {rate:>8.0}/s now, {overall:>8.0}/s overall, {:.0} s elapsed, ETA {eta:.0} s{rss}",
                    if label.is_empty() { String::new() } else { format!(" [{label}]") },
                    now.duration_since(begin).as_secs_f64()
                );
                lines.push(json!({"t_s": round(now.duration_since(begin).as_secs_f64(), 1), "statements": count, "rate_per_s": round(rate, 0)}));
                last = (now, count);
                if stop.load(Ordering::Relaxed) || count >= target {
                    break;
                }
            }
            lines
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
    let elapsed = begin.elapsed().as_secs_f64();
    let progress = progress.await.unwrap_or_default();
    let count = done.load(Ordering::SeqCst);
    eprintln!(
        "fill: done, {count} statements in {elapsed:.1} s ({:.0}/s)",
        count as f64 / elapsed
    );
    Ok(json!({
        "target": target,
        "statements": count,
        "batch": batch,
        "clients": clients,
        "elapsed_s": round(elapsed, 1),
        "statements_per_s": round(count as f64 / elapsed, 1),
        "errors": errors.load(Ordering::SeqCst),
        "first_error": first_error,
        "complete": count >= target,
        "batch_latency": latency_json(&histogram),
        "progress": progress,
        "resources": meter.finish(count),
    }))
}

const QUERY_KINDS: &[&str] = &[
    "agent",
    "agent+activity",
    "verb+since",
    "activity-related",
    "registration",
    "more",
];

/// Query scenario: each client cycles through the kinds with random learners,
/// courses and registrations from the model; every activity-related page with
/// a `more` link is followed once (timed as kind "more").
async fn run_queries(
    ctx: Arc<Ctx>,
    clients: usize,
    duration: f64,
    since_seconds: u64,
) -> anyhow::Result<Value> {
    let warmup = Duration::from_secs_f64(ctx.cli.warmup);
    let begin = Instant::now();
    let measure_from = begin + warmup;
    let deadline = measure_from + Duration::from_secs_f64(duration);
    let since = iso(SystemTime::now() - Duration::from_secs(since_seconds));
    let meter_holder = Arc::new(std::sync::Mutex::new(None::<Meter>));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (ctx, since, meter_holder) = (ctx.clone(), since.clone(), meter_holder.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = ctx.client_rng(4, client);
            let mut stats: BTreeMap<&'static str, (Histogram<u64>, u64, u64, u64)> = QUERY_KINDS
                .iter()
                .map(|k| (*k, (new_histogram(), 0u64, 0u64, 0u64)))
                .collect();
            let mut first_error: Option<String> = None;
            let mut turn = client;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if now >= measure_from && client == 0 {
                    let mut meter = meter_holder.lock().expect("meter");
                    if meter.is_none() {
                        *meter = Some(Meter::start(ctx.cli.server_pid));
                    }
                }
                let kind = QUERY_KINDS[turn % (QUERY_KINDS.len() - 1)];
                turn += 1;
                let (learner, course) = ctx.model.pick_learner_course(&mut rng);
                let course_id = ctx.model.courses[course].id.clone();
                let params: Vec<(&str, String)> = match kind {
                    "agent" => vec![("agent", ctx.model.agent_param(learner))],
                    "agent+activity" => vec![
                        ("agent", ctx.model.agent_param(learner)),
                        ("activity", course_id),
                        ("related_activities", "true".into()),
                    ],
                    "verb+since" => vec![
                        ("verb", verb_iri("completed")),
                        ("since", since.clone()),
                        ("limit", "100".into()),
                    ],
                    "activity-related" => vec![
                        ("activity", course_id),
                        ("related_activities", "true".into()),
                        ("limit", "50".into()),
                    ],
                    _ => vec![(
                        "registration",
                        ctx.model
                            .registration(learner, course)
                            .hyphenated()
                            .to_string(),
                    )],
                };
                let query: Vec<(&str, &str)> =
                    params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let start = Instant::now();
                let outcome = Xapi::send(
                    ctx.xapi
                        .request(reqwest::Method::GET, "/statements")
                        .query(&query),
                )
                .await;
                let mut follow = None;
                match outcome {
                    Ok(reply) if reply.status.is_success() => {
                        let n = reply.body["statements"].as_array().map_or(0, Vec::len) as u64;
                        if start >= measure_from {
                            let entry = stats.get_mut(kind).expect("kind");
                            entry.0.record(micros(start.elapsed())).ok();
                            entry.1 += 1;
                            entry.2 += n;
                        }
                        if kind == "activity-related" {
                            follow = reply.body["more"]
                                .as_str()
                                .filter(|m| !m.is_empty())
                                .map(str::to_owned);
                        }
                    }
                    Ok(reply) => {
                        stats.get_mut(kind).expect("kind").3 += 1;
                        first_error
                            .get_or_insert(format!("GET {kind}: {} {}", reply.status, reply.text));
                    }
                    Err(error) => {
                        stats.get_mut(kind).expect("kind").3 += 1;
                        first_error.get_or_insert(format!("GET {kind}: {error:#}"));
                    }
                }
                if let Some(more) = follow {
                    let start = Instant::now();
                    match ctx.xapi.get_more(&more).await {
                        Ok(reply) if reply.status.is_success() => {
                            let n = reply.body["statements"].as_array().map_or(0, Vec::len) as u64;
                            if start >= measure_from {
                                let entry = stats.get_mut("more").expect("kind");
                                entry.0.record(micros(start.elapsed())).ok();
                                entry.1 += 1;
                                entry.2 += n;
                            }
                        }
                        Ok(reply) => {
                            stats.get_mut("more").expect("kind").3 += 1;
                            first_error.get_or_insert(format!(
                                "GET more: {} {}",
                                reply.status, reply.text
                            ));
                        }
                        Err(error) => {
                            stats.get_mut("more").expect("kind").3 += 1;
                            first_error.get_or_insert(format!("GET more: {error:#}"));
                        }
                    }
                }
            }
            (stats, first_error)
        }));
    }
    let (all, overall, first_error) =
        merge_client_stats(QUERY_KINDS.iter().copied(), tasks).await?;
    let elapsed = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-9);
    let meter = meter_holder
        .lock()
        .expect("meter")
        .take()
        .unwrap_or_else(|| Meter::start(ctx.cli.server_pid));
    if let Some(e) = &first_error {
        eprintln!("lrs-load: first query error: {e}");
    }
    let kinds: Vec<Value> = QUERY_KINDS
        .iter()
        .map(|kind| {
            let (h, requests, statements, errors) = &all[kind];
            json!({
                "kind": kind,
                "requests": requests,
                "errors": errors,
                "requests_per_s": round(*requests as f64 / elapsed, 1),
                "statements_per_response": round(if *requests > 0 { *statements as f64 / *requests as f64 } else { 0.0 }, 1),
                "latency": latency_json(h),
            })
        })
        .collect();
    let total: u64 = all.values().map(|v| v.1).sum();
    Ok(json!({
        "clients": clients,
        "measured_s": round(elapsed, 2),
        "since": since,
        "requests": total,
        "requests_per_s": round(total as f64 / elapsed, 1),
        "first_error": first_error,
        "kinds": kinds,
        "latency": latency_json(&overall),
        "resources": meter.finish(0),
    }))
}

// ---------------------------------------------------------------------------
// Output.

/// A JSON value as plain text (so that width and alignment apply).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(result: &Value) -> String {
    let mut out = String::new();
    let scenario = result["scenario"].as_str().unwrap_or("");
    let label = result["label"]
        .as_str()
        .filter(|l| !l.is_empty())
        .map(|l| format!(" [{l}]"))
        .unwrap_or_default();
    let lat = |l: &Value| {
        format!(
            "{:>9} {:>9} {:>9} {:>9} {:>9}",
            text(&l["p50_ms"]),
            text(&l["p95_ms"]),
            text(&l["p99_ms"]),
            text(&l["max_ms"]),
            text(&l["mean_ms"])
        )
    };
    match scenario {
        "post-single" | "post-batch" => {
            out += &format!(
                "{scenario}{label}: {} clients, batch {}, {} s measured\n",
                text(&result["clients"]),
                text(&result["batch"]),
                text(&result["measured_s"])
            );
            out += &format!(
                "{:>14} {:>12} {:>8} | {:>9} {:>9} {:>9} {:>9} {:>9}  (ms per request)\n",
                "statements/s", "requests/s", "errors", "p50", "p95", "p99", "max", "mean"
            );
            out += &format!(
                "{:>14} {:>12} {:>8} | {}\n",
                text(&result["statements_per_s"]),
                text(&result["requests_per_s"]),
                text(&result["errors"]),
                lat(&result["latency"])
            );
        }
        "fill" => {
            out += &format!(
                "fill{label}: {} statements in {} s = {} statements/s (batch {}, {} clients, {} errors)\n",
                text(&result["statements"]), text(&result["elapsed_s"]), text(&result["statements_per_s"]), text(&result["batch"]), text(&result["clients"]), text(&result["errors"])
            );
            out += &format!(
                "batch latency ms: p50 {} p95 {} p99 {} max {}\n",
                text(&result["batch_latency"]["p50_ms"]),
                text(&result["batch_latency"]["p95_ms"]),
                text(&result["batch_latency"]["p99_ms"]),
                text(&result["batch_latency"]["max_ms"])
            );
        }
        "query" => {
            out += &format!(
                "query{label}: {} clients, {} s measured, {} requests/s\n",
                text(&result["clients"]),
                text(&result["measured_s"]),
                text(&result["requests_per_s"])
            );
            out += &format!(
                "{:<18} {:>9} {:>8} {:>8} {:>7} | {:>9} {:>9} {:>9} {:>9} {:>9}  (ms)\n",
                "kind",
                "requests",
                "req/s",
                "stmts/r",
                "errors",
                "p50",
                "p95",
                "p99",
                "max",
                "mean"
            );
            for kind in result["kinds"].as_array().into_iter().flatten() {
                out += &format!(
                    "{:<18} {:>9} {:>8} {:>8} {:>7} | {}\n",
                    text(&kind["kind"]),
                    text(&kind["requests"]),
                    text(&kind["requests_per_s"]),
                    text(&kind["statements_per_response"]),
                    text(&kind["errors"]),
                    lat(&kind["latency"])
                );
            }
        }
        "learners" => out += &learners::table(result, &label),
        "dashboard" | "progress" | "activity-query" => {
            out += &dashboard::table(result, scenario, &label)
        }
        "fill-activity" => {
            out += &format!(
                "fill-activity{label}: {} statements in {} s = {} statements/s, {} requests/s (batch {}, {} clients, {} errors), next unit {}\n",
                text(&result["statements"]), text(&result["elapsed_s"]), text(&result["statements_per_s"]), text(&result["requests_per_s"]),
                text(&result["batch"]), text(&result["clients"]), text(&result["errors"]), text(&result["next_unit"])
            );
            out += &format!(
                "request latency ms: p50 {} p95 {} p99 {} max {}\n",
                text(&result["latency"]["p50_ms"]),
                text(&result["latency"]["p95_ms"]),
                text(&result["latency"]["p99_ms"]),
                text(&result["latency"]["max_ms"])
            );
        }
        _ => {}
    }
    let r = &result["resources"];
    out += &format!("loadgen CPU {}% of one core", text(&r["loadgen_cpu_pct"]));
    if !r["server_cpu_pct"].is_null() {
        out += &format!(
            "; server CPU {}% of one core, server RSS {} MiB, server disk writes {} MiB",
            text(&r["server_cpu_pct"]),
            text(&r["server_rss_mib"]),
            text(&r["server_disk_written_mib"])
        );
    }
    out += "\n";
    out
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.key.is_empty() && !matches!(cli.scenario, Scenario::World(_)) {
        bail!("--key and --secret (or LRS_KEY, LRS_SECRET) are needed");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async move {
        let model = Arc::new(Model::new(
            cli.seed,
            cli.learners.max(1),
            cli.courses.max(1),
        ));
        let mut xapi = Xapi::new(&cli.url, &cli.key, &cli.secret, &cli.xapi_version);
        xapi.http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()?;
        let scenario = cli.scenario.clone();
        let ctx = Arc::new(Ctx { cli, model, xapi });
        let (name, mut result) = match scenario {
            Scenario::PostSingle { clients, duration } => (
                "post-single",
                run_posts(ctx.clone(), clients.max(1), 0, duration).await?,
            ),
            Scenario::About { clients, duration } => (
                "about",
                run_posts(ctx.clone(), clients.max(1), ABOUT, duration).await?,
            ),
            Scenario::PostBatch {
                clients,
                batch,
                duration,
            } => (
                "post-batch",
                run_posts(ctx.clone(), clients.max(1), batch.max(1), duration).await?,
            ),
            Scenario::Fill {
                statements,
                batch,
                clients,
                progress_every,
                max_duration,
            } => (
                "fill",
                run_fill(
                    ctx.clone(),
                    statements,
                    batch.max(1),
                    clients.max(1),
                    progress_every,
                    max_duration,
                )
                .await?,
            ),
            Scenario::Query {
                clients,
                duration,
                since_seconds,
            } => (
                "query",
                run_queries(ctx.clone(), clients.max(1), duration, since_seconds).await?,
            ),
            Scenario::Learners(args) => ("learners", learners::run(ctx.clone(), args).await?),
            Scenario::FillActivity(args) => (
                "fill-activity",
                dashboard::run_fill(ctx.clone(), args).await?,
            ),
            Scenario::Dashboard(args) => (
                "dashboard",
                dashboard::run_dashboard(ctx.clone(), args).await?,
            ),
            Scenario::Progress(args) => (
                "progress",
                dashboard::run_progress(ctx.clone(), args).await?,
            ),
            Scenario::ActivityQuery(args) => (
                "activity-query",
                dashboard::run_statement_reads(ctx.clone(), args).await?,
            ),
            Scenario::World(args) => {
                println!("{}", dashboard::run_world(ctx.clone(), args));
                return Ok(());
            }
        };
        result["scenario"] = json!(name);
        result["label"] = json!(ctx.cli.label);
        result["seed"] = json!(ctx.cli.seed);
        result["learners"] = json!(ctx.cli.learners);
        result["courses"] = json!(ctx.cli.courses);
        let text = table(&result);
        if ctx.cli.json {
            eprint!("{text}");
            println!("{}", serde_json::to_string(&result)?);
        } else {
            print!("{text}");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_formats_utc() {
        assert_eq!(iso(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            iso(UNIX_EPOCH + Duration::from_millis(1_709_251_200_123)),
            "2024-03-01T00:00:00.123000Z"
        );
    }

    #[test]
    fn statements_are_valid_and_deterministic() {
        let model = Model::new(7, 1000, 24);
        let strip = |mut s: Value| {
            s.as_object_mut().unwrap().remove("id");
            s["context"]["extensions"]
                .as_object_mut()
                .unwrap()
                .remove(SESSION_EXTENSION);
            s
        };
        let a = model.statement(&mut StdRng::seed_from_u64(1), "2024-03-01T00:00:00.000Z");
        let b = model.statement(&mut StdRng::seed_from_u64(1), "2024-03-01T00:00:00.000Z");
        assert_ne!(a["id"], b["id"]);
        assert_eq!(strip(a), strip(b));
        for seed in 0..200 {
            let s = model.statement(&mut StdRng::seed_from_u64(seed), "2024-03-01T00:00:00.000Z");
            xapi::validate::validate_statement(&s, xapi::XapiVersion::V1_0_3)
                .expect("valid statement");
        }
        assert_eq!(model.library(0).len(), "NL-0100030000".len());
    }
}
