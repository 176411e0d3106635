//! The `learners` scenario: a soak with simulated cmi5 learners and library
//! staff (issue 8, requirement 2.29). See docs/load-learners.md.
//!
//! Every learner is a tokio task that plays one learner after another from the
//! pool (a "visit" of 1–3 AU sessions each), acting every few seconds:
//!
//! ```text
//! LMS:  PUT state LMS.LaunchData            (put-state)
//!       POST launched                        (post-statement)
//! AU:   GET state LMS.LaunchData  -> 200     (get-state)
//!       POST initialized
//!       GET state bookmark        -> 404 the first time (expected 404)
//!       k × (POST progressed, PUT state bookmark with If-Match / If-None-Match)
//!       POST completed and/or passed/failed with a score
//!       POST terminated with the session's duration
//! LMS:  POST satisfied (course) when the course's last AU is satisfied
//! ```
//!
//! Staff clients query the course of their library
//! (`activity=<course>&related_activities=true&since=…&limit=50`), sometimes
//! follow `more`, and look at one of their library's learners
//! (`agent=…&limit=20`).
//!
//! Every request is timed per kind into shared HDR histograms: the whole run,
//! the steady phase (requests started after the ramp-up), and the current
//! report interval, which is printed to stderr every `--report-every` seconds.

use super::{
    cpu_seconds, iso, latency_json, micros, mix, new_histogram, round, status_kib, text, verb_iri,
    Ctx, Meter, Model, CMI5_CATEGORY, HOME_PAGE, ISIL_EXTENSION, MOVEON_CATEGORY,
    PROGRESS_EXTENSION, SESSION_EXTENSION,
};
use hdrhistogram::Histogram;
use lrs_blackbox_tests::{Reply, Xapi};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The learner simulation's own options (`lrs-load learners --help`).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct LearnersArgs {
    /// Concurrent learners: tokio tasks, each acting every few seconds. Each
    /// plays a disjoint slice of the learner pool (`--learners`, raised to
    /// this number if smaller).
    #[arg(long, default_value_t = 5000)]
    learners_active: usize,
    /// Concurrent staff clients reading their library's progress.
    #[arg(long, default_value_t = 20)]
    staff: usize,
    /// Seconds at full load, after the ramp-up (the run lasts ramp-up + duration).
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// Seconds over which the learners start, evenly spread.
    #[arg(long, default_value_t = 30.0)]
    ramp_up: f64,
    /// Shortest think time of a learner between two requests, in seconds.
    #[arg(long, default_value_t = 2.0)]
    think_min: f64,
    /// Longest think time of a learner between two requests, in seconds.
    #[arg(long, default_value_t = 6.0)]
    think_max: f64,
    /// Shortest think time of a staff client between two requests, in seconds.
    #[arg(long, default_value_t = 2.0)]
    staff_think_min: f64,
    /// Longest think time of a staff client between two requests, in seconds.
    #[arg(long, default_value_t = 6.0)]
    staff_think_max: f64,
    /// Staff course queries ask for statements stored in the last this many seconds.
    #[arg(long, default_value_t = 900)]
    staff_since: u64,
    /// Chance that staff follow the `more` link of a course page (once).
    #[arg(long, default_value_t = 0.3)]
    staff_more: f64,
    /// Seconds between interim reports (one line per request kind, on stderr).
    #[arg(long, default_value_t = 60.0)]
    report_every: f64,
    /// Most AU sessions a learner does in one visit (at least 1).
    #[arg(long, default_value_t = 3)]
    sessions_per_visit: u32,
    /// Seconds after which a request counts as failed (timeout).
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,
}

// ---------------------------------------------------------------------------
// The cmi5 vocabulary and the course catalogue.

pub(crate) const APPID_EXTENSION: &str = "https://w3id.org/xapi/kb-nl/extensions/appid";
const LAUNCHMODE_EXTENSION: &str = "https://w3id.org/xapi/cmi5/context/extensions/launchmode";
const LAUNCHURL_EXTENSION: &str = "https://w3id.org/xapi/cmi5/context/extensions/launchurl";
const MOVEON_EXTENSION: &str = "https://w3id.org/xapi/cmi5/context/extensions/moveon";
const MASTERYSCORE_EXTENSION: &str = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore";
const SATISFIED_VERB: &str = "https://w3id.org/xapi/adl/verbs/satisfied";
const ABANDONED_VERB: &str = "https://w3id.org/xapi/adl/verbs/abandoned";
const COURSE_TYPE: &str = "https://w3id.org/xapi/cmi5/activitytype/course";
const MODULE_TYPE: &str = "http://adlnet.gov/expapi/activities/module";
/// The state document the LMS writes before every launch (cmi5 §10).
const LAUNCH_DATA: &str = "LMS.LaunchData";
/// The AU's own state document: where the learner was.
const BOOKMARK: &str = "https://leren.bibliotheek.example.nl/xapi/state/bookmark";
const MASTERY: f64 = 0.7;

/// The apps the courses are taken in (the appid context extension).
const APPS: &[&str] = &[
    "leerplatform-web",
    "leerplatform-ios",
    "leerplatform-android",
    "digisterker-web",
    "klik-en-tik-web",
    "taalhuis-app",
];

struct Au {
    id: String,
    title: String,
    /// The course's final test: moveOn CompletedAndPassed with a mastery score.
    assessment: bool,
}

struct CourseDef {
    id: String,
    title: String,
    aus: Vec<Au>,
}

/// The courses of the model (same ids and titles), each with 3–8 AUs; the
/// last AU of every course is its test.
fn catalogue(model: &Model) -> Vec<CourseDef> {
    let mut rng = StdRng::seed_from_u64(mix(model.seed, 0xA0_A0));
    model
        .courses
        .iter()
        .map(|course| {
            let n = rng.gen_range(3..=8);
            let aus = (0..n)
                .map(|m| Au {
                    id: format!("{}/modules/m{m:02}", course.id),
                    title: if m + 1 == n {
                        format!("{}, eindtoets", course.title)
                    } else {
                        format!("{}, module {}", course.title, m + 1)
                    },
                    assessment: m + 1 == n,
                })
                .collect();
            CourseDef {
                id: course.id.clone(),
                title: course.title.clone(),
                aus,
            }
        })
        .collect()
}

fn app_of(model: &Model, learner: u32) -> &'static str {
    APPS[(mix(model.seed ^ 0xA99, u64::from(learner)) % APPS.len() as u64) as usize]
}

/// `PT12.34S`
fn iso_duration(d: Duration) -> String {
    format!("PT{:.2}S", d.as_secs_f64())
}

/// One AU session of one learner: everything its statements share.
struct Session<'a> {
    course: &'a CourseDef,
    au: &'a Au,
    agent: Value,
    registration: String,
    session_id: String,
    library: String,
    app: &'static str,
}

impl<'a> Session<'a> {
    fn new(
        model: &Model,
        catalogue: &'a [CourseDef],
        learner: u32,
        course: usize,
        au: usize,
    ) -> Self {
        let course_def = &catalogue[course];
        Session {
            course: course_def,
            au: &course_def.aus[au],
            agent: model.agent(learner),
            registration: model.registration(learner, course).hyphenated().to_string(),
            session_id: uuid::Uuid::new_v4().hyphenated().to_string(),
            library: model.library(learner),
            app: app_of(model, learner),
        }
    }

    fn moveon(&self) -> &'static str {
        if self.au.assessment {
            "CompletedAndPassed"
        } else {
            "Completed"
        }
    }

    /// A statement about this session's AU, with the cmi5 category (except
    /// `progressed`, a cmi5 "allowed" statement) and, with `moveon`, the
    /// moveOn category.
    fn statement(&self, verb_id: &str, verb: &str, result: Option<Value>, moveon: bool) -> Value {
        let mut category = Vec::new();
        if verb != "progressed" {
            category.push(json!({"id": CMI5_CATEGORY}));
        }
        if moveon {
            category.push(json!({"id": MOVEON_CATEGORY}));
        }
        let mut extensions = json!({
            SESSION_EXTENSION: self.session_id,
            ISIL_EXTENSION: self.library,
            APPID_EXTENSION: self.app,
        });
        if verb == "launched" {
            extensions[LAUNCHMODE_EXTENSION] = json!("Normal");
            extensions[LAUNCHURL_EXTENSION] = json!(format!("{}/launch", self.au.id));
            extensions[MOVEON_EXTENSION] = json!(self.moveon());
        }
        if self.au.assessment && matches!(verb, "launched" | "passed" | "failed") {
            extensions[MASTERYSCORE_EXTENSION] = json!(MASTERY);
        }
        let mut context = json!({
            "registration": self.registration,
            "contextActivities": {
                "grouping": [{
                    "objectType": "Activity",
                    "id": self.course.id,
                    "definition": {"type": COURSE_TYPE, "name": {"nl-NL": self.course.title}}
                }]
            },
            "language": "nl-NL",
            "extensions": extensions
        });
        if !category.is_empty() {
            context["contextActivities"]["category"] = json!(category);
        }
        let mut statement = json!({
            "id": uuid::Uuid::new_v4().hyphenated().to_string(),
            "actor": self.agent,
            "verb": {"id": verb_id, "display": {"en-US": verb}},
            "object": {
                "objectType": "Activity",
                "id": self.au.id,
                "definition": {"type": MODULE_TYPE, "name": {"nl-NL": self.au.title}}
            },
            "context": context,
            "timestamp": iso(SystemTime::now())
        });
        if let Some(result) = result {
            statement["result"] = result;
        }
        statement
    }

    /// The LMS's `satisfied` statement for the whole course.
    fn course_satisfied(&self) -> Value {
        json!({
            "id": uuid::Uuid::new_v4().hyphenated().to_string(),
            "actor": self.agent,
            "verb": {"id": SATISFIED_VERB, "display": {"en-US": "satisfied"}},
            "object": {
                "objectType": "Activity",
                "id": self.course.id,
                "definition": {"type": COURSE_TYPE, "name": {"nl-NL": self.course.title}}
            },
            "context": {
                "registration": self.registration,
                "contextActivities": {"category": [{"id": CMI5_CATEGORY}]},
                "extensions": {
                    SESSION_EXTENSION: self.session_id,
                    ISIL_EXTENSION: self.library,
                    APPID_EXTENSION: self.app
                }
            },
            "timestamp": iso(SystemTime::now())
        })
    }

    /// The LMS's `abandoned` statement for an earlier session of this AU
    /// that ended without `terminated`.
    fn abandoned(&self, session_id: &str, lasted: Duration) -> Value {
        let mut statement = self.statement(
            ABANDONED_VERB,
            "abandoned",
            Some(json!({"duration": iso_duration(lasted)})),
            false,
        );
        statement["context"]["extensions"][SESSION_EXTENSION] = json!(session_id);
        statement
    }

    fn launch_data(&self) -> Value {
        let mut data = json!({
            "contextTemplate": {
                "contextActivities": {"grouping": [{"id": self.course.id}]},
                "extensions": {SESSION_EXTENSION: self.session_id}
            },
            "launchMode": "Normal",
            "launchMethod": "AnyWindow",
            "moveOn": self.moveon(),
            "returnURL": format!("{HOME_PAGE}/mijn-cursussen"),
            "launchParameters": format!("{{\"app\":\"{}\"}}", self.app)
        });
        if self.au.assessment {
            data["masteryScore"] = json!(MASTERY);
        }
        data
    }
}

// ---------------------------------------------------------------------------
// Measurement.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    PostStatement = 0,
    GetState = 1,
    PutState = 2,
    QueryCourse = 3,
    QueryLearner = 4,
    More = 5,
}

const KINDS: [&str; 6] = [
    "post-statement",
    "get-state",
    "put-state",
    "query-course",
    "query-learner",
    "more",
];

enum Outcome {
    Ok,
    Expected404,
    Error(String),
}

struct Tally {
    histogram: Histogram<u64>,
    ok: u64,
    expected_404: u64,
    errors: u64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            histogram: new_histogram(),
            ok: 0,
            expected_404: 0,
            errors: 0,
        }
    }

    fn record(&mut self, latency: u64, outcome: &Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Expected404 => self.expected_404 += 1,
            Outcome::Error(_) => {
                self.errors += 1;
                return;
            }
        }
        self.histogram.record(latency).ok();
    }

    fn requests(&self) -> u64 {
        self.ok + self.expected_404 + self.errors
    }

    fn json(&self, kind: &str, seconds: f64) -> Value {
        json!({
            "kind": kind,
            "requests": self.requests(),
            "ok": self.ok,
            "expected_404": self.expected_404,
            "errors": self.errors,
            "requests_per_s": round(self.requests() as f64 / seconds.max(1e-9), 1),
            "latency": latency_json(&self.histogram),
        })
    }
}

/// All tallies; one mutex (a few µs per request at ~1,500 requests/s).
struct Tallies {
    whole: Vec<Tally>,
    steady: Vec<Tally>,
    interval: Vec<Tally>,
    /// How late the think-time sleeps woke up: the generator's own lag.
    lag_whole: Histogram<u64>,
    lag_interval: Histogram<u64>,
    /// Distinct error messages (kind, status, text) and their counts.
    errors: BTreeMap<String, u64>,
}

struct Recorder {
    tallies: Mutex<Tallies>,
    steady_from: Instant,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    statements: AtomicU64,
    statements_steady: AtomicU64,
    learners_started: AtomicU64,
}

const MAX_ERROR_KINDS: usize = 40;

impl Recorder {
    fn new(steady_from: Instant) -> Self {
        let six = || (0..KINDS.len()).map(|_| Tally::new()).collect::<Vec<_>>();
        Recorder {
            tallies: Mutex::new(Tallies {
                whole: six(),
                steady: six(),
                interval: six(),
                lag_whole: new_histogram(),
                lag_interval: new_histogram(),
                errors: BTreeMap::new(),
            }),
            steady_from,
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            statements: AtomicU64::new(0),
            statements_steady: AtomicU64::new(0),
            learners_started: AtomicU64::new(0),
        }
    }

    fn record(&self, kind: Kind, start: Instant, latency: Duration, outcome: Outcome) {
        let us = micros(latency);
        let steady = start >= self.steady_from;
        let mut t = self.tallies.lock().expect("tallies");
        let k = kind as usize;
        t.whole[k].record(us, &outcome);
        t.interval[k].record(us, &outcome);
        if steady {
            t.steady[k].record(us, &outcome);
        }
        if let Outcome::Error(message) = outcome {
            let key = format!("{}: {message}", KINDS[k]);
            if t.errors.len() < MAX_ERROR_KINDS || t.errors.contains_key(&key) {
                *t.errors.entry(key).or_default() += 1;
            } else {
                *t.errors
                    .entry(format!("{}: (other errors)", KINDS[k]))
                    .or_default() += 1;
            }
        }
    }

    fn record_lag(&self, lag: Duration) {
        let us = micros(lag);
        let mut t = self.tallies.lock().expect("tallies");
        t.lag_whole.record(us).ok();
        t.lag_interval.record(us).ok();
    }
}

/// An error as a short, URL-free message (so that equal errors count together).
fn describe(error: &anyhow::Error) -> String {
    if let Some(e) = error.downcast_ref::<reqwest::Error>() {
        let what = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else if e.is_body() || e.is_decode() {
            "body"
        } else {
            "request"
        };
        let mut source = std::error::Error::source(e);
        let mut detail = String::new();
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        return format!("{what} error: {detail}");
    }
    format!("{error:#}").chars().take(160).collect()
}

// ---------------------------------------------------------------------------
// The simulation.

struct Env {
    ctx: Arc<Ctx>,
    xapi: Xapi,
    args: LearnersArgs,
    catalogue: Vec<CourseDef>,
    recorder: Recorder,
    deadline: Instant,
    /// Learners per task slice: task `slot` plays `slot + i * active`, `i < rounds`.
    rounds: u32,
}

impl Env {
    /// Sends a request and records it. `Some(reply)` for a 2xx (and for a
    /// 404 when `allow_404`), `None` on an error.
    async fn call(
        &self,
        kind: Kind,
        builder: reqwest::RequestBuilder,
        allow_404: bool,
    ) -> Option<Reply> {
        let n = self.recorder.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.recorder.max_in_flight.fetch_max(n, Ordering::Relaxed);
        let start = Instant::now();
        let outcome = Xapi::send(builder).await;
        let latency = start.elapsed();
        self.recorder.in_flight.fetch_sub(1, Ordering::Relaxed);
        let (outcome, reply) = match outcome {
            Ok(reply) if reply.status.is_success() => (Outcome::Ok, Some(reply)),
            Ok(reply) if allow_404 && reply.status == reqwest::StatusCode::NOT_FOUND => {
                (Outcome::Expected404, Some(reply))
            }
            Ok(reply) => (
                Outcome::Error(format!(
                    "{} {}",
                    reply.status.as_u16(),
                    reply.text.chars().take(160).collect::<String>()
                )),
                None,
            ),
            Err(error) => (Outcome::Error(describe(&error)), None),
        };
        self.recorder.record(kind, start, latency, outcome);
        reply
    }

    async fn post_statement(&self, statement: &Value) -> bool {
        let body = serde_json::to_vec(statement).expect("json");
        let builder = self
            .xapi
            .request(reqwest::Method::POST, "/statements")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let start = Instant::now();
        let ok = self
            .call(Kind::PostStatement, builder, false)
            .await
            .is_some();
        if ok {
            self.recorder.statements.fetch_add(1, Ordering::Relaxed);
            if start >= self.recorder.steady_from {
                self.recorder
                    .statements_steady
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        ok
    }

    fn state_request(
        &self,
        method: reqwest::Method,
        session: &Session<'_>,
        state_id: &str,
    ) -> reqwest::RequestBuilder {
        let agent = session.agent["account"].clone();
        self.xapi.request(method, "/activities/state").query(&[
            ("activityId", session.au.id.as_str()),
            ("agent", &json!({ "account": agent }).to_string()),
            ("registration", &session.registration),
            ("stateId", state_id),
        ])
    }

    /// GET a state document: `Some(Some(etag))` when found, `Some(None)` on
    /// an allowed 404, `None` on an error.
    async fn get_state(
        &self,
        session: &Session<'_>,
        state_id: &str,
        allow_404: bool,
    ) -> Option<Option<String>> {
        let reply = self
            .call(
                Kind::GetState,
                self.state_request(reqwest::Method::GET, session, state_id),
                allow_404,
            )
            .await?;
        if reply.status == reqwest::StatusCode::NOT_FOUND {
            return Some(None);
        }
        Some(etag_of(&reply))
    }

    /// PUT a state document. `expect`: `None` = no condition (the LMS
    /// overwrites), `Some(None)` = If-None-Match: *, `Some(Some(etag))` =
    /// If-Match. Returns the new ETag.
    async fn put_state(
        &self,
        session: &Session<'_>,
        state_id: &str,
        content: &Value,
        expect: Option<Option<&str>>,
    ) -> Option<String> {
        let mut builder = self
            .state_request(reqwest::Method::PUT, session, state_id)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(content).expect("json"));
        match expect {
            None => {}
            Some(None) => builder = builder.header(reqwest::header::IF_NONE_MATCH, "*"),
            Some(Some(etag)) => {
                builder = builder.header(reqwest::header::IF_MATCH, format!("\"{etag}\""))
            }
        }
        let reply = self.call(Kind::PutState, builder, false).await?;
        etag_of(&reply)
    }

    /// Sleeps a think time; `None` when the run ends first.
    async fn think(&self, rng: &mut StdRng, min: f64, max: f64) -> Option<()> {
        let seconds = if max > min {
            rng.gen_range(min..max)
        } else {
            min
        };
        let wanted = Duration::from_secs_f64(seconds.max(0.0));
        let before = Instant::now();
        if before + wanted >= self.deadline {
            return None;
        }
        tokio::time::sleep(wanted).await;
        self.recorder
            .record_lag(before.elapsed().saturating_sub(wanted));
        Some(())
    }

    async fn learner_think(&self, rng: &mut StdRng) -> Option<()> {
        self.think(rng, self.args.think_min, self.args.think_max)
            .await
    }
}

fn etag_of(reply: &Reply) -> Option<String> {
    reply
        .headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_owned())
}

#[derive(Clone, Default)]
struct AuProgress {
    progress: u32,
    completed: bool,
    passed: bool,
}

/// What a learner has done so far (kept by the task, across visits).
struct LearnerState {
    courses: Vec<usize>,
    progress: Vec<Vec<AuProgress>>,
    course_satisfied: Vec<bool>,
    /// A session that ended without `terminated`: (course slot, AU, session id, duration).
    abandoned: Option<(usize, usize, String, Duration)>,
}

impl LearnerState {
    fn new(env: &Env, learner: u32) -> Self {
        let courses: Vec<usize> = env.ctx.model.learner_courses(learner).to_vec();
        let progress = courses
            .iter()
            .map(|&c| vec![AuProgress::default(); env.catalogue[c].aus.len()])
            .collect();
        LearnerState {
            course_satisfied: vec![false; courses.len()],
            courses,
            progress,
            abandoned: None,
        }
    }

    fn satisfied(&self, env: &Env, slot: usize, au: usize) -> bool {
        let p = &self.progress[slot][au];
        p.completed && (p.passed || !env.catalogue[self.courses[slot]].aus[au].assessment)
    }

    /// The next AU: the first unsatisfied one of the first unsatisfied
    /// course; when everything is done, a random one (revisiting).
    fn next_au(&self, env: &Env, rng: &mut StdRng) -> (usize, usize) {
        for slot in 0..self.courses.len() {
            if self.course_satisfied[slot] {
                continue;
            }
            if let Some(au) =
                (0..self.progress[slot].len()).find(|&au| !self.satisfied(env, slot, au))
            {
                return (slot, au);
            }
        }
        let slot = rng.gen_range(0..self.courses.len());
        (slot, rng.gen_range(0..self.progress[slot].len()))
    }
}

/// One AU session, as in the module docs. `None` when the run ended.
async fn session(
    env: &Env,
    rng: &mut StdRng,
    learner: u32,
    state: &mut LearnerState,
) -> Option<()> {
    let (slot, au) = state.next_au(env, rng);
    let course = state.courses[slot];
    let s = Session::new(&env.ctx.model, &env.catalogue, learner, course, au);

    // LMS: an earlier session of this learner that never terminated.
    if let Some((a_slot, a_au, session_id, lasted)) = state.abandoned.take() {
        let earlier = Session::new(
            &env.ctx.model,
            &env.catalogue,
            learner,
            state.courses[a_slot],
            a_au,
        );
        env.post_statement(&earlier.abandoned(&session_id, lasted))
            .await;
        env.learner_think(rng).await?;
    }

    // LMS: launch data, then `launched`.
    env.put_state(&s, LAUNCH_DATA, &s.launch_data(), None).await;
    env.learner_think(rng).await?;
    env.post_statement(&s.statement(&verb_iri("launched"), "launched", None, false))
        .await;
    env.learner_think(rng).await?;

    // AU: reads its launch data (it was just written: a 404 is an error).
    env.get_state(&s, LAUNCH_DATA, false).await;
    env.learner_think(rng).await?;
    env.post_statement(&s.statement(&verb_iri("initialized"), "initialized", None, false))
        .await;
    let started = Instant::now();
    env.learner_think(rng).await?;
    // The bookmark: 404 in the first session of an AU.
    let mut etag: Option<Option<String>> = env.get_state(&s, BOOKMARK, true).await;
    let mut p = state.progress[slot][au].clone();
    if p.progress >= 100 {
        p.progress = 0; // a retake, or a revisit
    }
    let steps = rng.gen_range(2..=5);
    for step in 0..steps {
        env.learner_think(rng).await?;
        p.progress = (p.progress + rng.gen_range(10..=35)).min(100);
        let result = json!({
            "duration": iso_duration(started.elapsed()),
            "extensions": {PROGRESS_EXTENSION: p.progress}
        });
        env.post_statement(&s.statement(
            &verb_iri("progressed"),
            "progressed",
            Some(result),
            false,
        ))
        .await;
        env.learner_think(rng).await?;
        let bookmark = json!({
            "location": format!("pagina-{}", p.progress / 5 + 1),
            "progress": p.progress,
            "step": step,
            "suspendData": "x".repeat(rng.gen_range(100..1500)),
        });
        let condition = match &etag {
            Some(Some(tag)) => Some(Some(tag.as_str())),
            Some(None) => Some(None),
            None => None, // the GET failed: write without a condition
        };
        let new_tag = env.put_state(&s, BOOKMARK, &bookmark, condition).await;
        etag = new_tag.map(Some);
        state.progress[slot][au].progress = p.progress;
        if p.progress >= 100 {
            break;
        }
    }

    // The end of the session.
    if p.progress >= 100 {
        if !p.completed {
            env.learner_think(rng).await?;
            let result = json!({"completion": true, "duration": iso_duration(started.elapsed())});
            env.post_statement(&s.statement(
                &verb_iri("completed"),
                "completed",
                Some(result),
                true,
            ))
            .await;
            p.completed = true;
        }
        if s.au.assessment && !p.passed {
            env.learner_think(rng).await?;
            let raw: u32 = rng.gen_range(40..=100);
            let scaled = f64::from(raw) / 100.0;
            let passed = scaled >= MASTERY;
            let verb = if passed { "passed" } else { "failed" };
            let result = json!({
                "success": passed,
                "score": {"scaled": scaled, "raw": raw, "min": 0, "max": 100},
                "duration": iso_duration(started.elapsed())
            });
            env.post_statement(&s.statement(&verb_iri(verb), verb, Some(result), true))
                .await;
            p.passed = passed;
        }
        state.progress[slot][au] = p;
    }
    if rng.gen_bool(0.05) {
        // The learner closes the window: no `terminated`; the LMS writes
        // `abandoned` at the next launch.
        state.abandoned = Some((slot, au, s.session_id.clone(), started.elapsed()));
        return Some(());
    }
    env.learner_think(rng).await?;
    let result = json!({"duration": iso_duration(started.elapsed())});
    env.post_statement(&s.statement(&verb_iri("terminated"), "terminated", Some(result), false))
        .await;

    // LMS: the course is satisfied when its last AU is.
    if !state.course_satisfied[slot]
        && (0..state.progress[slot].len()).all(|au| state.satisfied(env, slot, au))
    {
        env.learner_think(rng).await?;
        env.post_statement(&s.course_satisfied()).await;
        state.course_satisfied[slot] = true;
    }
    Some(())
}

async fn learner_task(env: Arc<Env>, slot: usize, start_at: Instant) {
    tokio::time::sleep_until(start_at.into()).await;
    if Instant::now() >= env.deadline {
        return;
    }
    env.recorder
        .learners_started
        .fetch_add(1, Ordering::Relaxed);
    let mut rng = env.ctx.client_rng(8, slot);
    let active = env.args.learners_active as u64;
    let mut known: HashMap<u32, LearnerState> = HashMap::new();
    // Start somewhere in the slice so that slices do not move in lock step.
    let mut visit = rng.gen_range(0..env.rounds);
    loop {
        let learner = (slot as u64 + u64::from(visit % env.rounds) * active) as u32;
        visit = visit.wrapping_add(1);
        let state = known
            .entry(learner)
            .or_insert_with(|| LearnerState::new(&env, learner));
        let sessions = rng.gen_range(1..=env.args.sessions_per_visit.max(1));
        for _ in 0..sessions {
            if session(&env, &mut rng, learner, state).await.is_none() {
                return;
            }
            if env.learner_think(&mut rng).await.is_none() {
                return;
            }
        }
    }
}

/// Pool learners (of the first `range`) who belong to `library`.
fn learners_of(model: &Model, library: &str, range: u32) -> Vec<u32> {
    (0..range)
        .filter(|&l| model.library(l) == library)
        .collect()
}

async fn staff_task(env: Arc<Env>, index: usize, start_at: Instant) {
    tokio::time::sleep_until(start_at.into()).await;
    let mut rng = env.ctx.client_rng(9, index);
    let model = &env.ctx.model;
    let played = (env.args.learners_active as u64 * u64::from(env.rounds)) as u32;
    // Staff of the library of a learner spread over the pool.
    let anchor = ((index as u64 * u64::from(played)) / env.args.staff.max(1) as u64) as u32;
    let library = model.library(anchor);
    let mut ours = learners_of(model, &library, played);
    if ours.is_empty() {
        ours.push(anchor);
    }
    let (min, max) = (env.args.staff_think_min, env.args.staff_think_max);
    loop {
        // A course that learners of this library take.
        let learner = ours[rng.gen_range(0..ours.len())];
        let courses = model.learner_courses(learner);
        let course = &env.catalogue[courses[rng.gen_range(0..courses.len())]];
        let since = iso(SystemTime::now() - Duration::from_secs(env.args.staff_since));
        let builder = env
            .xapi
            .request(reqwest::Method::GET, "/statements")
            .query(&[
                ("activity", course.id.as_str()),
                ("related_activities", "true"),
                ("since", &since),
                ("limit", "50"),
            ]);
        let page = env.call(Kind::QueryCourse, builder, false).await;
        // One of our library's learners on the page, else any of ours.
        let mut candidates: Vec<Value> = Vec::new();
        let mut more = None;
        if let Some(page) = &page {
            for statement in page.body["statements"].as_array().into_iter().flatten() {
                if statement["context"]["extensions"][ISIL_EXTENSION].as_str()
                    == Some(library.as_str())
                    && statement["actor"]["account"].is_object()
                {
                    candidates.push(statement["actor"]["account"].clone());
                }
            }
            more = page.body["more"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(str::to_owned);
        }
        if let Some(more) = more {
            if rng.gen_bool(env.args.staff_more.clamp(0.0, 1.0)) {
                if env.think(&mut rng, min, max).await.is_none() {
                    return;
                }
                let builder = env
                    .xapi
                    .http
                    .get(format!("{}{}", env.xapi.base_url, more))
                    .basic_auth(&env.xapi.key, Some(&env.xapi.secret))
                    .header("X-Experience-API-Version", &env.xapi.version);
                env.call(Kind::More, builder, false).await;
            }
        }
        if env.think(&mut rng, min, max).await.is_none() {
            return;
        }
        let account = if candidates.is_empty() {
            model.agent(ours[rng.gen_range(0..ours.len())])["account"].clone()
        } else {
            candidates[rng.gen_range(0..candidates.len())].clone()
        };
        let agent = json!({ "account": account }).to_string();
        let builder = env
            .xapi
            .request(reqwest::Method::GET, "/statements")
            .query(&[("agent", agent.as_str()), ("limit", "20")]);
        env.call(Kind::QueryLearner, builder, false).await;
        if env.think(&mut rng, min, max).await.is_none() {
            return;
        }
    }
}

/// CPU seconds of this process and of the server, for interval rates.
struct CpuMark {
    at: Instant,
    own: f64,
    server: Option<f64>,
}

impl CpuMark {
    fn now(server: Option<&str>) -> Self {
        CpuMark {
            at: Instant::now(),
            own: cpu_seconds("self").unwrap_or(0.0),
            server: server.and_then(cpu_seconds),
        }
    }
}

/// Takes the interval tallies, prints them and returns them as JSON.
fn report_interval(env: &Env, begin: Instant, last: &mut CpuMark, server: Option<&str>) -> Value {
    let mark = CpuMark::now(server);
    let seconds = mark.at.duration_since(last.at).as_secs_f64().max(1e-9);
    let (kinds, lag) = {
        let mut t = env.recorder.tallies.lock().expect("tallies");
        let kinds: Vec<Tally> = std::mem::replace(
            &mut t.interval,
            (0..KINDS.len()).map(|_| Tally::new()).collect(),
        );
        let lag = std::mem::replace(&mut t.lag_interval, new_histogram());
        (kinds, lag)
    };
    let t_s = mark.at.duration_since(begin).as_secs_f64();
    // Within a second of the end of the ramp-up counts as on it.
    let slack = Duration::from_secs(1);
    let phase = if mark.at <= env.recorder.steady_from + slack {
        "ramp-up"
    } else if last.at + slack < env.recorder.steady_from {
        "ramp-up/steady"
    } else {
        "steady"
    };
    let own_pct = 100.0 * (mark.own - last.own) / seconds;
    let server_pct = match (last.server, mark.server) {
        (Some(a), Some(b)) => Some(round(100.0 * (b - a) / seconds, 1)),
        _ => None,
    };
    let rss = server
        .and_then(|p| status_kib(p, "VmRSS:"))
        .map(|k| round(k as f64 / 1024.0, 1));
    let total: u64 = kinds.iter().map(Tally::requests).sum();
    let errors: u64 = kinds.iter().map(|k| k.errors).sum();
    let active = env.recorder.learners_started.load(Ordering::Relaxed);
    let in_flight = env.recorder.in_flight.load(Ordering::Relaxed);
    let max_in_flight = env.recorder.max_in_flight.swap(0, Ordering::Relaxed);
    let lag_json = latency_json(&lag);
    eprintln!(
        "learners t={t_s:.0}s [{phase}] {active} learners started, {:.0} req/s, {errors} errors, in flight {in_flight} (max {max_in_flight}); loadgen CPU {own_pct:.0}%{}; think-time lag p99 {} ms",
        total as f64 / seconds,
        match (server_pct, rss) {
            (Some(cpu), Some(rss)) => format!(", server CPU {cpu}%, RSS {rss} MiB"),
            _ => String::new(),
        },
        text(&lag_json["p99_ms"]),
    );
    let mut rows = Vec::new();
    for (i, tally) in kinds.iter().enumerate() {
        if tally.requests() == 0 {
            continue;
        }
        let row = tally.json(KINDS[i], seconds);
        let l = &row["latency"];
        eprintln!(
            "    {:<15} {:>7} req {:>7.1}/s err {:<4} 404 {:<5} p50 {:>8} p95 {:>8} p99 {:>8} max {:>8} ms",
            KINDS[i],
            tally.requests(),
            tally.requests() as f64 / seconds,
            tally.errors,
            tally.expected_404,
            text(&l["p50_ms"]),
            text(&l["p95_ms"]),
            text(&l["p99_ms"]),
            text(&l["max_ms"]),
        );
        rows.push(row);
    }
    *last = mark;
    json!({
        "t_s": round(t_s, 1),
        "seconds": round(seconds, 1),
        "phase": phase,
        "learners_started": active,
        "requests": total,
        "requests_per_s": round(total as f64 / seconds, 1),
        "errors": errors,
        "in_flight": in_flight,
        "max_in_flight": max_in_flight,
        "loadgen_cpu_pct": round(own_pct, 1),
        "server_cpu_pct": server_pct,
        "server_rss_mib": rss,
        "think_lag": lag_json,
        "kinds": rows,
    })
}

/// Runs the simulation; returns the result object (see docs/load-learners.md).
pub(crate) async fn run(ctx: Arc<Ctx>, args: LearnersArgs) -> anyhow::Result<Value> {
    let active = args.learners_active.max(1);
    let args = LearnersArgs {
        learners_active: active,
        ..args
    };
    let pool = ctx.model.learners.max(active as u32);
    let rounds = (pool / active as u32).max(1);
    // One client for everything, its pool sized for the concurrency.
    let mut xapi = ctx.xapi.clone();
    xapi.http = reqwest::Client::builder()
        .pool_max_idle_per_host(active + args.staff + 16)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs_f64(args.request_timeout.max(0.1)))
        .build()?;
    let begin = Instant::now();
    let ramp = Duration::from_secs_f64(args.ramp_up.max(0.0));
    let steady_from = begin + ramp;
    let deadline = steady_from + Duration::from_secs_f64(args.duration.max(0.0));
    let server = ctx.cli.server_pid.map(|p| p.to_string());
    let env = Arc::new(Env {
        catalogue: catalogue(&ctx.model),
        ctx: ctx.clone(),
        xapi,
        args: args.clone(),
        recorder: Recorder::new(steady_from),
        deadline,
        rounds,
    });
    eprintln!(
        "learners: {active} learners (pool {pool}, {rounds} per task), {} staff, {} courses; ramp-up {:.0} s, then {:.0} s at full load; think {}–{} s",
        args.staff,
        env.catalogue.len(),
        args.ramp_up,
        args.duration,
        args.think_min,
        args.think_max
    );
    let whole_meter = Meter::start(ctx.cli.server_pid);
    let steady_meter = {
        let server_pid = ctx.cli.server_pid;
        tokio::spawn(async move {
            tokio::time::sleep_until(steady_from.into()).await;
            Meter::start(server_pid)
        })
    };

    let mut tasks = Vec::with_capacity(active + args.staff);
    for slot in 0..active {
        let start_at = begin + ramp.mul_f64(slot as f64 / active as f64);
        tasks.push(tokio::spawn(learner_task(env.clone(), slot, start_at)));
    }
    let mut rng = ctx.client_rng(10, 0);
    for index in 0..args.staff {
        let spread = ramp.as_secs_f64().min(args.staff_think_max.max(0.0));
        let start_at = begin + Duration::from_secs_f64(rng.gen_range(0.0..=spread));
        tasks.push(tokio::spawn(staff_task(env.clone(), index, start_at)));
    }

    // Interim reports until the deadline.
    let reporter = {
        let env = env.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs_f64(env.args.report_every.max(1.0));
            let mut last = CpuMark::now(server.as_deref());
            let mut intervals = Vec::new();
            let mut next = begin + every;
            while next < env.deadline {
                tokio::time::sleep_until(next.into()).await;
                intervals.push(report_interval(&env, begin, &mut last, server.as_deref()));
                next += every;
            }
            (intervals, last)
        })
    };

    for task in tasks {
        task.await?;
    }
    let end = Instant::now();
    let (mut intervals, mut last) = reporter.await?;
    if end.duration_since(last.at) > Duration::from_millis(500) {
        intervals.push(report_interval(&env, begin, &mut last, server.as_deref()));
    }
    let steady_meter = steady_meter.await?;
    let steady_s = end.saturating_duration_since(steady_from).as_secs_f64();
    let whole_s = end.duration_since(begin).as_secs_f64();
    let statements_steady = env.recorder.statements_steady.load(Ordering::Relaxed);
    let t = env.recorder.tallies.lock().expect("tallies");
    let steady: Vec<Value> = t
        .steady
        .iter()
        .enumerate()
        .map(|(i, tally)| tally.json(KINDS[i], steady_s))
        .collect();
    let whole: Vec<Value> = t
        .whole
        .iter()
        .enumerate()
        .map(|(i, tally)| tally.json(KINDS[i], whole_s))
        .collect();
    let requests: u64 = t.steady.iter().map(Tally::requests).sum();
    let errors_steady: u64 = t.steady.iter().map(|k| k.errors).sum();
    let errors_whole: u64 = t.whole.iter().map(|k| k.errors).sum();
    let expected_404: u64 = t.whole.iter().map(|k| k.expected_404).sum();
    let measured = t.steady.iter().filter(|k| !k.histogram.is_empty());
    let p95_ok = measured
        .clone()
        .all(|k| k.histogram.value_at_quantile(0.95) <= 500_000);
    let p99_ok = measured
        .clone()
        .all(|k| k.histogram.value_at_quantile(0.99) <= 1_000_000);
    let p99_aim = measured
        .clone()
        .all(|k| k.histogram.value_at_quantile(0.99) < 100_000);
    let errors: Vec<Value> = t
        .errors
        .iter()
        .map(|(message, count)| json!({"error": message, "count": count}))
        .collect();
    let lag = latency_json(&t.lag_whole);
    drop(t);
    if errors_whole > 0 {
        eprintln!("learners: {errors_whole} errors:");
        for (message, count) in &env.recorder.tallies.lock().expect("tallies").errors {
            eprintln!("    {count:>7}  {message}");
        }
    }
    Ok(json!({
        "learners_active": active,
        "learner_pool": pool,
        "staff": args.staff,
        "courses": env.catalogue.len(),
        "aus": env.catalogue.iter().map(|c| c.aus.len()).sum::<usize>(),
        "think_s": [args.think_min, args.think_max],
        "staff_think_s": [args.staff_think_min, args.staff_think_max],
        "ramp_up_s": args.ramp_up,
        "duration_s": args.duration,
        "measured_s": round(steady_s, 2),
        "whole_run_s": round(whole_s, 2),
        "requests": requests,
        "requests_per_s": round(requests as f64 / steady_s.max(1e-9), 1),
        "statements": statements_steady,
        "statements_whole_run": env.recorder.statements.load(Ordering::Relaxed),
        "errors": errors_steady,
        "errors_whole_run": errors_whole,
        "expected_404_whole_run": expected_404,
        "error_messages": errors,
        "kinds": steady,
        "kinds_whole_run": whole,
        "goals": {
            "no_errors": errors_whole == 0,
            "p95_le_500ms": p95_ok,
            "p99_le_1s": p99_ok,
            "p99_lt_100ms_aim": p99_aim,
        },
        "think_lag": lag,
        "intervals": intervals,
        "resources": steady_meter.finish(statements_steady),
        "resources_whole_run": whole_meter.finish(env.recorder.statements.load(Ordering::Relaxed)),
    }))
}

/// The human table of a `learners` result (the resources line is added by
/// the caller).
pub(crate) fn table(result: &Value, label: &str) -> String {
    let mut out = format!(
        "learners{label}: {} learners, {} staff, {} s at full load after a {} s ramp-up; {} requests/s, {} statements, {} errors ({} in the whole run), {} expected 404s\n",
        text(&result["learners_active"]),
        text(&result["staff"]),
        text(&result["measured_s"]),
        text(&result["ramp_up_s"]),
        text(&result["requests_per_s"]),
        text(&result["statements"]),
        text(&result["errors"]),
        text(&result["errors_whole_run"]),
        text(&result["expected_404_whole_run"]),
    );
    out += &format!(
        "{:<15} {:>9} {:>8} {:>7} {:>7} | {:>9} {:>9} {:>9} {:>9} {:>9}  (ms, steady phase)\n",
        "kind", "requests", "req/s", "errors", "404", "p50", "p95", "p99", "max", "mean"
    );
    for kind in result["kinds"].as_array().into_iter().flatten() {
        let l = &kind["latency"];
        out += &format!(
            "{:<15} {:>9} {:>8} {:>7} {:>7} | {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            text(&kind["kind"]),
            text(&kind["requests"]),
            text(&kind["requests_per_s"]),
            text(&kind["errors"]),
            text(&kind["expected_404"]),
            text(&l["p50_ms"]),
            text(&l["p95_ms"]),
            text(&l["p99_ms"]),
            text(&l["max_ms"]),
            text(&l["mean_ms"]),
        );
    }
    let g = &result["goals"];
    out += &format!(
        "goals: no errors {}, p95 <= 500 ms {}, p99 <= 1 s {}, aim p99 < 100 ms {}; think-time lag p99 {} ms\n",
        text(&g["no_errors"]),
        text(&g["p95_le_500ms"]),
        text(&g["p99_le_1s"]),
        text(&g["p99_lt_100ms_aim"]),
        text(&result["think_lag"]["p99_ms"]),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(statement: &Value) {
        xapi::validate::validate_statement(statement, xapi::XapiVersion::V1_0_3)
            .unwrap_or_else(|e| panic!("{e:?}: {statement:#}"));
        xapi::validate::validate_statement(statement, xapi::XapiVersion::V2_0_0)
            .unwrap_or_else(|e| panic!("{e:?}: {statement:#}"));
    }

    #[test]
    fn catalogue_has_3_to_8_aus_per_course_and_a_test_last() {
        let model = Model::new(42, 1000, 24);
        let cat = catalogue(&model);
        assert_eq!(cat.len(), 24);
        for course in &cat {
            assert!((3..=8).contains(&course.aus.len()));
            assert!(course.aus.last().unwrap().assessment);
            assert_eq!(course.aus.iter().filter(|a| a.assessment).count(), 1);
        }
    }

    #[test]
    fn every_statement_is_valid_cmi5() {
        let model = Model::new(42, 1000, 24);
        let cat = catalogue(&model);
        let last = cat[3].aus.len() - 1;
        for au in [0, last] {
            let s = Session::new(&model, &cat, 17, 3, au);
            let d = iso_duration(Duration::from_millis(83_456));
            assert_eq!(d, "PT83.46S");
            let statements = [
                s.statement(&verb_iri("launched"), "launched", None, false),
                s.statement(&verb_iri("initialized"), "initialized", None, false),
                s.statement(
                    &verb_iri("progressed"),
                    "progressed",
                    Some(json!({"duration": d, "extensions": {PROGRESS_EXTENSION: 40}})),
                    false,
                ),
                s.statement(
                    &verb_iri("completed"),
                    "completed",
                    Some(json!({"completion": true, "duration": d})),
                    true,
                ),
                s.statement(
                    &verb_iri("failed"),
                    "failed",
                    Some(json!({"success": false, "score": {"scaled": 0.5, "raw": 50, "min": 0, "max": 100}, "duration": d})),
                    true,
                ),
                s.statement(
                    &verb_iri("terminated"),
                    "terminated",
                    Some(json!({"duration": d})),
                    false,
                ),
                s.abandoned("5f0c1a5e-0000-4000-8000-000000000000", Duration::from_secs(3)),
                s.course_satisfied(),
            ];
            for statement in &statements {
                valid(statement);
                assert_eq!(
                    statement["context"]["extensions"][ISIL_EXTENSION],
                    json!(model.library(17))
                );
                assert!(APPS.contains(
                    &statement["context"]["extensions"][APPID_EXTENSION]
                        .as_str()
                        .unwrap()
                ));
                assert_eq!(
                    statement["context"]["registration"],
                    json!(model.registration(17, 3).hyphenated().to_string())
                );
            }
            assert_eq!(
                statements[0]["context"]["contextActivities"]["grouping"][0]["id"],
                json!(cat[3].id)
            );
            assert_eq!(
                statements[0]["context"]["extensions"][MASTERYSCORE_EXTENSION].is_number(),
                au == last
            );
            // progressed is a cmi5 "allowed" statement: no cmi5 category.
            assert!(statements[2]["context"]["contextActivities"]["category"].is_null());
            assert_eq!(
                statements[3]["context"]["contextActivities"]["category"],
                json!([{"id": CMI5_CATEGORY}, {"id": MOVEON_CATEGORY}])
            );
            assert!(
                s.launch_data()["contextTemplate"]["extensions"][SESSION_EXTENSION].is_string()
            );
        }
    }

    #[test]
    fn learner_slices_are_disjoint() {
        let (pool, active) = (50_000u64, 3_000u64);
        let rounds = pool / active;
        let mut seen = std::collections::HashSet::new();
        for slot in 0..active {
            for visit in 0..rounds {
                let learner = slot + visit * active;
                assert!(learner < pool);
                assert!(seen.insert(learner));
            }
        }
    }
}
