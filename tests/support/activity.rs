//! A realistic month of learning activity, generated from a seed (issue 5):
//! learners of many libraries (ISIL) taking cmi5-style courses in several
//! apps (appid), with the verbs, results and durations those apps send,
//! timestamps over the month (and some in the month before, some near the
//! Dutch month boundaries, some without a timestamp), statements that arrive
//! out of order, and a few voided ones.
//!
//! Five ways of speaking cmi5 (and an e-book reader): the course typed in
//! `grouping` or in `parent` with a `registered` statement; the LMS of a
//! pure cmi5 course that the course model declares, with no enrolment verb
//! and AU statements that never name the course (some of its courses get a
//! course-level `satisfied` from the LMS, others never do); and an app that
//! names the course, typed, only in context (its course `completed` has the
//! bare course id as object). Course names come in their activity
//! definitions (Dutch and English), or from the course model.
//!
//! Every statement comes with a [`Fact`]: what the generator meant by it, as
//! plain data (learner number, course and module number, verb, result,
//! time). [`expected`] computes the monthly figures and learner progress from
//! those facts alone, a different way from the server (which reads the JSON),
//! so a black-box test can compare the two number for number.
//!
//! The calendar arithmetic (Europe/Amsterdam months) is done here by hand
//! from the EU summer-time rule, not with a time-zone database, so it is
//! independent of the server's too.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::fmt;

pub mod expected;

pub const ISIL_EXTENSION: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
pub const APPID_EXTENSION: &str = "https://w3id.org/xapi/kb-nl/extensions/appid";
pub const SESSION_EXTENSION: &str = "https://w3id.org/xapi/cmi5/context/extensions/sessionid";
pub const COURSE_TYPE: &str = "https://w3id.org/xapi/cmi5/activitytype/course";
pub const MODULE_TYPE: &str = "http://adlnet.gov/expapi/activities/module";
pub const BOOK_TYPE: &str = "http://id.tincanapi.com/activitytype/book";
pub const CMI5_CATEGORY: &str = "https://w3id.org/xapi/cmi5/context/categories/cmi5";
pub const MOVEON_CATEGORY: &str = "https://w3id.org/xapi/cmi5/context/categories/moveon";
pub const LEARNER_HOME_PAGE: &str = "https://mijn.bibliotheek.example.nl";

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

// ---------------------------------------------------------------------------
// Dutch calendar months, by hand.

/// A calendar month in Dutch time, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CalMonth {
    pub year: i32,
    pub month: u32,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let next = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    (next - days_from_civil(year, month, 1)) as u32
}

/// The day of the month of the last Sunday (1970-01-01 was a Thursday).
pub fn last_sunday(year: i64, month: u32) -> u32 {
    let last = days_in_month(year, month);
    let weekday = (days_from_civil(year, month, last) + 4).rem_euclid(7); // 0 = Sunday
    last - weekday as u32
}

/// Whether Dutch summer time (CEST, UTC+2) applies at this instant: from the
/// last Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC
/// (EU directive 2000/84/EC).
pub fn summer_time_at(utc_micros: i64) -> bool {
    let (year, _, _) = civil_from_days(utc_micros.div_euclid(DAY));
    let start = days_from_civil(year, 3, last_sunday(year, 3)) * DAY + HOUR;
    let end = days_from_civil(year, 10, last_sunday(year, 10)) * DAY + HOUR;
    (start..end).contains(&utc_micros)
}

/// Dutch time's offset from UTC at this instant, in hours.
pub fn amsterdam_offset_hours(utc_micros: i64) -> i64 {
    if summer_time_at(utc_micros) {
        2
    } else {
        1
    }
}

impl CalMonth {
    pub fn new(year: i32, month: u32) -> Self {
        assert!((1..=12).contains(&month), "month {month}");
        Self { year, month }
    }

    /// The month this instant falls in, in Dutch time.
    pub fn of_micros(utc_micros: i64) -> Self {
        let local = utc_micros + amsterdam_offset_hours(utc_micros) * HOUR;
        let (year, month, _) = civil_from_days(local.div_euclid(DAY));
        Self::new(year as i32, month)
    }

    /// The first instant of the month: local midnight of the 1st, which is
    /// summer time for the 1st of April to the 1st of October.
    pub fn start_micros(self) -> i64 {
        let offset = if (4..=10).contains(&self.month) { 2 } else { 1 };
        days_from_civil(i64::from(self.year), self.month, 1) * DAY - offset * HOUR
    }

    /// The first instant after the month.
    pub fn end_micros(self) -> i64 {
        self.next().start_micros()
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self::new(self.year + 1, 1)
        } else {
            Self::new(self.year, self.month + 1)
        }
    }

    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self::new(self.year - 1, 12)
        } else {
            Self::new(self.year, self.month - 1)
        }
    }

    /// The month `n` months after this one (before, if negative).
    pub fn plus(self, n: i32) -> Self {
        let index = self.year * 12 + self.month as i32 - 1 + n;
        Self::new(index.div_euclid(12), (index.rem_euclid(12) + 1) as u32)
    }

    /// The month of now, by the system clock.
    pub fn current() -> Self {
        Self::of_micros(now_micros())
    }
}

impl fmt::Display for CalMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

/// An RFC 3339 timestamp with milliseconds: in UTC (`Z`), or in Dutch local
/// time with its offset (`+02:00`), as some apps send it.
pub fn format_timestamp(utc_micros: i64, local: bool) -> String {
    let offset = if local {
        amsterdam_offset_hours(utc_micros)
    } else {
        0
    };
    let t = utc_micros + offset * HOUR;
    let (y, mo, d) = civil_from_days(t.div_euclid(DAY));
    let in_day = t.rem_euclid(DAY);
    let (h, mi, s, ms) = (
        in_day / HOUR,
        in_day % HOUR / MINUTE,
        in_day % MINUTE / SECOND,
        in_day % SECOND / 1000,
    );
    let zone = if local {
        format!("+{offset:02}:00")
    } else {
        "Z".to_owned()
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}{zone}")
}

// ---------------------------------------------------------------------------
// The world: courses, libraries, apps, learners.

/// How an app sends its statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppStyle {
    /// cmi5 through an LMS: the course as a `grouping` activity (after the
    /// AU's publisher id), the cmi5 category, UTC timestamps, the course
    /// `satisfied` (or `passed` with a score) when its modules are done.
    Cmi5,
    /// A simpler app: the course as the `parent`, module completion as
    /// `experienced` with `result.completion: true`, Dutch local
    /// timestamps with their offset, the course `completed` at the end.
    Parent,
    /// An e-book reader: `experienced` on books, no course at all.
    Reader,
    /// A pure cmi5 LMS whose courses the tenant declares in its course
    /// model (modules with their moveOn, [`move_on`]): no enrolment verb
    /// (the registration enrols), AU statements name only the AU (their
    /// `grouping` holds the AU's publisher id); for every other course
    /// ([`World::lms_sends_satisfied`]) the LMS sends `satisfied` with the
    /// bare course id as object once every module's moveOn is met, for the
    /// others never.
    Cmi5Lms,
    /// cmi5 with the course typed in `grouping` and no enrolment verb; the
    /// course's `completed` has the course id without a type as object
    /// (the course typed in its `grouping`).
    Cmi5Untyped,
}

/// The cmi5 moveOn of a module of a declared (`Cmi5Lms`) course, by its
/// number: odd modules are always tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOn {
    Completed,
    Passed,
    CompletedOrPassed,
    CompletedAndPassed,
}

pub fn move_on(module: usize) -> MoveOn {
    match module % 4 {
        0 => MoveOn::Completed,
        1 => MoveOn::Passed,
        2 => MoveOn::CompletedOrPassed,
        _ => MoveOn::CompletedAndPassed,
    }
}

impl MoveOn {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveOn::Completed => "Completed",
            MoveOn::Passed => "Passed",
            MoveOn::CompletedOrPassed => "CompletedOrPassed",
            MoveOn::CompletedAndPassed => "CompletedAndPassed",
        }
    }

    /// Whether a module with this moveOn is satisfied by having been
    /// completed and/or passed.
    pub fn met(self, completed: bool, passed: bool) -> bool {
        match self {
            MoveOn::Completed => completed,
            MoveOn::Passed => passed,
            MoveOn::CompletedOrPassed => completed || passed,
            MoveOn::CompletedAndPassed => completed && passed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    pub name: String,
    pub style: AppStyle,
    /// Indexes of the courses this app offers.
    pub courses: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Course {
    pub id: String,
    pub name: String,
    pub app: usize,
    pub modules: Vec<String>,
    /// Relative popularity (for choosing courses).
    pub weight: f64,
}

/// What a generated world looks like.
#[derive(Debug, Clone)]
pub struct Spec {
    pub seed: u64,
    /// The month the activity is in (some of it is in the month before).
    pub month: CalMonth,
    pub learners: usize,
    pub courses: usize,
    pub libraries: usize,
    /// Apps that offer courses (one e-book reader app comes on top).
    pub course_apps: usize,
    /// Share of statements voided later.
    pub void_share: f64,
    /// Share of statements sent late (moved to a later place in the order).
    pub late_share: f64,
    /// Share of e-book statements sent without a timestamp (they fall in
    /// the month they are stored in).
    pub untimed_share: f64,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            seed: 5,
            month: CalMonth::new(2026, 10),
            learners: 1000,
            courses: 24,
            libraries: 120,
            course_apps: 4,
            void_share: 0.006,
            late_share: 0.04,
            untimed_share: 0.02,
        }
    }
}

const COURSE_TITLES: &[&str] = &[
    "Digisterker",
    "Klik en Tik",
    "Werken met DigiD",
    "Veilig online",
    "Nederlands oefenen",
    "Omgaan met je smartphone",
    "Mediawijsheid voor ouders",
    "Zoeken op internet",
    "Digitaal solliciteren",
    "Online bankieren",
    "Videobellen met familie",
    "Foto's ordenen",
    "Rekenen in het dagelijks leven",
    "Lezen met plezier",
    "Schrijven voor beginners",
    "De Belastingdienst online",
    "Gezondheid online",
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

const APP_NAMES: &[(&str, &str, AppStyle)] = &[
    (
        "nl.bibliotheek.leerplatform",
        "Leerplatform Bibliotheek",
        AppStyle::Cmi5,
    ),
    ("nl.kb.digisterker", "Digisterker", AppStyle::Cmi5),
    ("nl.taalhuis.oefenen", "Oefenen.nl", AppStyle::Parent),
    ("nl.klikentik.app", "Klik en Tik", AppStyle::Cmi5),
    (
        "nl.bibliotheek.cursusplein",
        "Cursusplein",
        AppStyle::Cmi5Lms,
    ),
    (
        "nl.digitaalvaardig.app",
        "Digitaal Vaardig",
        AppStyle::Cmi5Untyped,
    ),
];
const READER_APP: (&str, &str) = ("nl.bibliotheek.luisterenlezen", "Online Bibliotheek");

/// A module's name as its activity definition gives it.
pub fn module_name(course_name: &str, module: usize) -> String {
    format!("{course_name}, module {}", module + 1)
}

/// splitmix64 of a combination: cheap, deterministic per (a, b).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn uuid_from(rng: &mut impl Rng) -> String {
    uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Picks an index with probability proportional to its weight.
fn weighted(rng: &mut impl Rng, cumulative: &[f64]) -> usize {
    let total = *cumulative.last().expect("weights");
    let x = rng.gen::<f64>() * total;
    cumulative
        .partition_point(|&c| c <= x)
        .min(cumulative.len() - 1)
}

fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut sum = 0.0;
    weights
        .into_iter()
        .map(|w| {
            sum += w;
            sum
        })
        .collect()
}

/// The courses, libraries and apps, and how learners are spread over them.
#[derive(Debug, Clone)]
pub struct World {
    pub spec: Spec,
    pub courses: Vec<Course>,
    /// ISIL codes.
    pub libraries: Vec<String>,
    /// The course apps, then the reader app (last).
    pub apps: Vec<App>,
    library_weights: Vec<f64>,
    app_weights: Vec<f64>,
}

/// One learner: who they are and where they learn.
#[derive(Debug, Clone)]
pub struct Learner {
    pub index: usize,
    /// The xAPI actor, with a name.
    pub actor: Value,
    /// The agent as a query parameter wants it (identifier only).
    pub agent: Value,
    /// Library indexes: one, or two for some.
    pub libraries: Vec<usize>,
    /// Course app indexes: one, or two for some.
    pub course_apps: Vec<usize>,
    /// Also reads e-books in the reader app.
    pub reader: bool,
}

impl World {
    pub fn new(spec: Spec) -> Self {
        let mut rng = StdRng::seed_from_u64(mix(spec.seed, 0x77));
        let course_apps = spec.course_apps.max(1);
        let mut apps: Vec<App> = (0..course_apps)
            .map(|a| {
                let (id, name, style) = APP_NAMES[a % APP_NAMES.len()];
                let suffix = if a < APP_NAMES.len() {
                    String::new()
                } else {
                    format!(".{a}")
                };
                App {
                    id: format!("{id}{suffix}"),
                    name: name.to_owned(),
                    style,
                    courses: Vec::new(),
                }
            })
            .collect();
        apps.push(App {
            id: READER_APP.0.to_owned(),
            name: READER_APP.1.to_owned(),
            style: AppStyle::Reader,
            courses: Vec::new(),
        });
        // Popularity falls off with rank, and the ranks are shuffled over the
        // course ids, so the top 10 is not simply the first ten ids.
        let mut ranks: Vec<usize> = (0..spec.courses).collect();
        for i in (1..ranks.len()).rev() {
            ranks.swap(i, rng.gen_range(0..=i));
        }
        let courses: Vec<Course> = (0..spec.courses)
            .map(|c| {
                let base = COURSE_TITLES[c % COURSE_TITLES.len()];
                let name = if c < COURSE_TITLES.len() {
                    base.to_owned()
                } else {
                    format!("{base} {}", c / COURSE_TITLES.len() + 1)
                };
                let id = format!("https://leren.bibliotheek.example.nl/cursussen/c{c:03}");
                let modules = (0..rng.gen_range(3..=8))
                    .map(|m| format!("{id}/modules/m{}", m + 1))
                    .collect();
                let app = c % course_apps;
                apps[app].courses.push(c);
                Course {
                    id,
                    name,
                    app,
                    modules,
                    weight: 1.0 / ((ranks[c] + 1) as f64).powf(0.6),
                }
            })
            .collect();
        let libraries = (0..spec.libraries)
            .map(|l| format!("NL-{:010}", 100_030_000 + l * 10_000 + (l * 7919) % 97))
            .collect();
        let library_weights =
            cumulative((0..spec.libraries).map(|l| 1.0 / ((l + 1) as f64).powf(0.5)));
        let app_weights = cumulative(
            (0..course_apps).map(|a| [0.40, 0.25, 0.20, 0.15].get(a).copied().unwrap_or(0.1)),
        );
        Self {
            spec,
            courses,
            libraries,
            apps,
            library_weights,
            app_weights,
        }
    }

    pub fn reader_app(&self) -> usize {
        self.apps.len() - 1
    }

    /// Whether the tenant's course model declares this course with its
    /// modules (the pure cmi5 LMS's courses).
    pub fn declared(&self, course: usize) -> bool {
        self.apps[self.courses[course].app].style == AppStyle::Cmi5Lms
    }

    /// Whether the pure cmi5 LMS sends a course-level `satisfied` for this
    /// (declared) course: for every other course it offers.
    pub fn lms_sends_satisfied(&self, course: usize) -> bool {
        self.declared(course)
            && self.apps[self.courses[course].app]
                .courses
                .iter()
                .position(|&c| c == course)
                .is_some_and(|p| p % 2 == 0)
    }

    /// The course whose name the course model overrides (the first course
    /// of the first app), if there is one.
    pub fn renamed_course(&self) -> Option<usize> {
        self.apps[0].courses.first().copied()
    }

    /// The name the course model gives [`World::renamed_course`].
    pub fn model_name(&self, course: usize) -> String {
        format!("{} (cursusmodel)", self.courses[course].name)
    }

    /// The KB tenant's course model for this world: every `Cmi5Lms` course
    /// with its name and its modules' moveOn, and one other course renamed.
    pub fn course_model(&self) -> Value {
        let mut courses: Vec<Value> = (0..self.courses.len())
            .filter(|&c| self.declared(c))
            .map(|c| {
                let course = &self.courses[c];
                json!({
                    "id": course.id,
                    "name": {"nl": course.name},
                    "modules": course.modules.iter().enumerate().map(|(m, id)| json!({
                        "id": id,
                        "moveOn": move_on(m).as_str(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        if let Some(c) = self.renamed_course() {
            courses.push(json!({
                "id": self.courses[c].id,
                "name": {"nl": self.model_name(c), "en": "Renamed by the model"},
            }));
        }
        json!({ "courses": courses })
    }

    /// Learner `index` of the pool; the same every time.
    pub fn learner(&self, index: usize) -> Learner {
        let mut rng = StdRng::seed_from_u64(mix(self.spec.seed ^ 0x1EA, index as u64));
        let (actor, agent) = if index.is_multiple_of(3) {
            let mbox = format!("mailto:deelnemer{index}@example.nl");
            (
                json!({"objectType": "Agent", "name": format!("Deelnemer {index}"), "mbox": mbox}),
                json!({"mbox": mbox}),
            )
        } else {
            let account = json!({"homePage": LEARNER_HOME_PAGE, "name": format!("d{index:07}")});
            (
                json!({"objectType": "Agent", "name": format!("Deelnemer {index}"), "account": account}),
                json!({"account": account}),
            )
        };
        let mut libraries = vec![weighted(&mut rng, &self.library_weights)];
        if rng.gen_bool(0.08) && self.libraries.len() > 1 {
            let second = loop {
                let l = weighted(&mut rng, &self.library_weights);
                if l != libraries[0] {
                    break l;
                }
            };
            libraries.push(second);
        }
        let course_app_count = self.apps.len() - 1;
        let mut course_apps = vec![weighted(&mut rng, &self.app_weights)];
        if rng.gen_bool(0.12) && course_app_count > 1 {
            let second = loop {
                let a = rng.gen_range(0..course_app_count);
                if a != course_apps[0] {
                    break a;
                }
            };
            course_apps.push(second);
        }
        let roll = rng.gen::<f64>();
        let (course_apps, reader) = if roll < 0.03 {
            (Vec::new(), true) // e-books only
        } else {
            (course_apps, roll < 0.15)
        };
        Learner {
            index,
            actor,
            agent,
            libraries,
            course_apps,
            reader,
        }
    }
}

// ---------------------------------------------------------------------------
// Facts: what each statement means, as plain data.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Registered,
    Launched,
    Initialized,
    Experienced,
    Progressed,
    Completed,
    Satisfied,
    Passed,
    Failed,
    Terminated,
    Voided,
}

impl Verb {
    pub fn iri(self) -> &'static str {
        match self {
            Verb::Registered => "http://adlnet.gov/expapi/verbs/registered",
            Verb::Launched => "http://adlnet.gov/expapi/verbs/launched",
            Verb::Initialized => "http://adlnet.gov/expapi/verbs/initialized",
            Verb::Experienced => "http://adlnet.gov/expapi/verbs/experienced",
            Verb::Progressed => "http://adlnet.gov/expapi/verbs/progressed",
            Verb::Completed => "http://adlnet.gov/expapi/verbs/completed",
            Verb::Satisfied => "https://w3id.org/xapi/adl/verbs/satisfied",
            Verb::Passed => "http://adlnet.gov/expapi/verbs/passed",
            Verb::Failed => "http://adlnet.gov/expapi/verbs/failed",
            Verb::Terminated => "http://adlnet.gov/expapi/verbs/terminated",
            Verb::Voided => "http://adlnet.gov/expapi/verbs/voided",
        }
    }

    fn display(self) -> (&'static str, &'static str) {
        match self {
            Verb::Registered => ("ingeschreven", "registered"),
            Verb::Launched => ("gestart", "launched"),
            Verb::Initialized => ("begonnen", "initialized"),
            Verb::Experienced => ("bekeken", "experienced"),
            Verb::Progressed => ("gevorderd", "progressed"),
            Verb::Completed => ("afgerond", "completed"),
            Verb::Satisfied => ("voldaan", "satisfied"),
            Verb::Passed => ("geslaagd", "passed"),
            Verb::Failed => ("gezakt", "failed"),
            Verb::Terminated => ("beeindigd", "terminated"),
            Verb::Voided => ("ongeldig verklaard", "voided"),
        }
    }
}

/// What one statement says, as the generator meant it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Learner number; `None` for a voiding statement (sent by the app's
    /// system account).
    pub learner: Option<usize>,
    /// `timestamp`, microseconds (whole milliseconds); `None`: sent without.
    pub time: Option<i64>,
    pub library: Option<usize>,
    pub app: usize,
    /// The course the statement belongs to, if any.
    pub course: Option<usize>,
    /// The module (index within the course); `None` with a course: the
    /// object is the course itself.
    pub module: Option<usize>,
    /// E-book number, for reader statements (object is the book).
    pub book: Option<usize>,
    pub verb: Verb,
    pub completion: Option<bool>,
    pub success: Option<bool>,
    pub score: Option<f64>,
    /// `result.duration`, whole seconds.
    pub duration_s: Option<u64>,
    /// For a voiding statement: the position (in [`Month::sent`]) of the
    /// statement it voids.
    pub voids: Option<usize>,
    /// Registration of the learner's course enrolment (cmi5 registration).
    pub registration: Option<u64>,
}

impl Fact {
    fn new(learner: usize, time: i64, library: usize, app: usize, verb: Verb) -> Self {
        Self {
            learner: Some(learner),
            time: Some(time),
            library: Some(library),
            app,
            course: None,
            module: None,
            book: None,
            verb,
            completion: None,
            success: None,
            score: None,
            duration_s: None,
            voids: None,
            registration: None,
        }
    }
}

/// A statement as sent, with what it means.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    pub statement: Value,
    pub fact: Fact,
}

/// A generated month: the world, its learners and the statements in the
/// order they are to be sent.
#[derive(Debug, Clone)]
pub struct Month {
    pub world: World,
    pub learners: Vec<Learner>,
    pub sent: Vec<Sent>,
}

fn round_millis(micros: i64) -> i64 {
    micros.div_euclid(1000) * 1000
}

impl World {
    /// The learner's activity in `month`: enrolments, cmi5 sessions per
    /// module, course completions and e-book reading, in time order. A
    /// share of enrolments (and their first sessions) lie in the month
    /// before; sessions near a month boundary may cross it.
    pub fn learner_facts(
        &self,
        learner: &Learner,
        month: CalMonth,
        rng: &mut impl Rng,
    ) -> Vec<Fact> {
        let start = month.start_micros();
        let end = month.end_micros();
        let before = month.previous().start_micros();
        let mut facts = Vec::new();
        let library_of = |rng: &mut dyn rand::RngCore| -> usize {
            if learner.libraries.len() > 1 && rng.gen_bool(0.35) {
                learner.libraries[1]
            } else {
                learner.libraries[0]
            }
        };

        // Which courses: the first from the first app, then from any of theirs.
        let mut picked: Vec<usize> = Vec::new();
        if !learner.course_apps.is_empty() {
            let wanted = match rng.gen_range(0..100) {
                0..=54 => 1,
                55..=84 => 2,
                85..=96 => 3,
                _ => 4,
            };
            let mut catalogue: Vec<usize> = Vec::new();
            for (i, &app) in learner.course_apps.iter().enumerate() {
                let offered = &self.apps[app].courses;
                if offered.is_empty() {
                    continue;
                }
                // A learner of two apps takes at least one course in each.
                if i == 0 || wanted > 1 {
                    let weights = cumulative(offered.iter().map(|&c| self.courses[c].weight));
                    let first = offered[weighted(rng, &weights)];
                    if !picked.contains(&first) {
                        picked.push(first);
                    }
                }
                catalogue.extend(offered);
            }
            let weights = cumulative(catalogue.iter().map(|&c| self.courses[c].weight));
            let mut tries = 0;
            while picked.len() < wanted.min(catalogue.len()) && tries < 50 {
                let c = catalogue[weighted(rng, &weights)];
                if !picked.contains(&c) {
                    picked.push(c);
                }
                tries += 1;
            }
        }

        for &course in &picked {
            let app = self.courses[course].app;
            let style = self.apps[app].style;
            let registration: u64 = rng.gen();
            let continuing = rng.gen_bool(0.15);
            let mut t = if continuing {
                rng.gen_range(before..start - HOUR)
            } else {
                rng.gen_range(start..end - 2 * DAY)
            };
            t = round_millis(t);
            let library = library_of(rng);
            // Pure cmi5 has no enrolment verb: the LMS's registration
            // enrols, and its first statement is the first launch.
            let registers = !matches!(style, AppStyle::Cmi5Lms | AppStyle::Cmi5Untyped);
            let mut enrol = Fact::new(learner.index, t, library, app, Verb::Registered);
            enrol.course = Some(course);
            enrol.registration = Some(registration);
            if !registers {
                enrol.verb = Verb::Launched;
                enrol.module = Some(0);
            }
            let only_enrols = rng.gen_bool(0.08);
            if registers || only_enrols {
                facts.push(enrol);
            }
            if only_enrols {
                continue; // enrolled only (launched once, for pure cmi5)
            }
            let modules = self.courses[course].modules.len();
            let mut all_done = true;
            // Per module: completed, passed (for the LMS's moveOn).
            let mut outcome = vec![(false, false); modules];
            #[allow(clippy::needless_range_loop)] // `module` is a number of the fact too
            'modules: for module in 0..modules {
                let tested = module % 2 == 1 || rng.gen_bool(0.3);
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    // The next session: minutes to days later, or (now and
                    // then) right at a month boundary.
                    t += rng.gen_range(10 * MINUTE..4 * DAY);
                    if rng.gen_bool(0.03) {
                        let boundary = if rng.gen_bool(0.5) { start } else { end };
                        let near = boundary + rng.gen_range(-3 * HOUR..3 * HOUR);
                        if near > t {
                            t = near;
                        }
                    }
                    if t >= end {
                        all_done = false;
                        break 'modules;
                    }
                    t = round_millis(t);
                    let library = library_of(rng);
                    let session_start = t;
                    let step = |facts: &mut Vec<Fact>,
                                t: &mut i64,
                                verb: Verb,
                                rng: &mut dyn rand::RngCore| {
                        *t += round_millis(rng.gen_range(5 * SECOND..6 * MINUTE));
                        let mut fact = Fact::new(learner.index, *t, library, app, verb);
                        fact.course = Some(course);
                        fact.module = Some(module);
                        fact.registration = Some(registration);
                        facts.push(fact);
                        facts.len() - 1
                    };
                    step(&mut facts, &mut t, Verb::Launched, rng);
                    step(&mut facts, &mut t, Verb::Initialized, rng);
                    for _ in 0..rng.gen_range(0..=2) {
                        let verb = if style == AppStyle::Cmi5 {
                            Verb::Progressed
                        } else {
                            Verb::Experienced
                        };
                        step(&mut facts, &mut t, verb, rng);
                    }
                    let roll = rng.gen::<f64>();
                    let mut done = false;
                    let mut retry = false;
                    if roll < 0.75 {
                        if style == AppStyle::Parent {
                            // Module completion as `experienced` + completion.
                            let i = step(&mut facts, &mut t, Verb::Experienced, rng);
                            facts[i].completion = Some(true);
                        } else {
                            let i = step(&mut facts, &mut t, Verb::Completed, rng);
                            facts[i].completion = Some(true);
                        }
                        outcome[module].0 = true;
                        done = true;
                        if tested {
                            let pass = rng.gen_bool(0.85);
                            let i = step(
                                &mut facts,
                                &mut t,
                                if pass { Verb::Passed } else { Verb::Failed },
                                rng,
                            );
                            let raw: u32 = if pass {
                                rng.gen_range(55..=100)
                            } else {
                                rng.gen_range(10..55)
                            };
                            facts[i].success = Some(pass);
                            facts[i].score = Some(f64::from(raw) / 100.0);
                            outcome[module].1 |= pass;
                            if !pass {
                                done = false;
                                retry = attempts < 3;
                            }
                        }
                    } else {
                        retry = attempts < 2 && rng.gen_bool(0.6);
                    }
                    let i = step(&mut facts, &mut t, Verb::Terminated, rng);
                    facts[i].duration_s = Some(((t - session_start) / SECOND) as u64);
                    if done {
                        break;
                    }
                    if !retry {
                        all_done = false;
                        break 'modules;
                    }
                }
            }
            let lms_satisfied = self.lms_sends_satisfied(course)
                && outcome
                    .iter()
                    .enumerate()
                    .all(|(m, (completed, passed))| move_on(m).met(*completed, *passed));
            if (all_done && style != AppStyle::Cmi5Lms) || lms_satisfied {
                t = round_millis(t + rng.gen_range(SECOND..2 * MINUTE));
                let library = library_of(rng);
                let mut fact = Fact::new(learner.index, t, library, app, Verb::Completed);
                fact.course = Some(course);
                fact.registration = Some(registration);
                match style {
                    AppStyle::Cmi5Lms => fact.verb = Verb::Satisfied,
                    AppStyle::Cmi5Untyped => fact.completion = Some(true),
                    AppStyle::Cmi5 if rng.gen_bool(0.3) => {
                        let raw: u32 = rng.gen_range(60..=100);
                        fact.verb = Verb::Passed;
                        fact.success = Some(true);
                        fact.score = Some(f64::from(raw) / 100.0);
                    }
                    AppStyle::Cmi5 => fact.verb = Verb::Satisfied,
                    _ => fact.completion = Some(true),
                }
                facts.push(fact);
            }
        }

        if learner.reader {
            let reader = self.reader_app();
            for _ in 0..rng.gen_range(1..=10) {
                let t = round_millis(rng.gen_range(start..end));
                let mut fact = Fact::new(
                    learner.index,
                    t,
                    learner.libraries[0],
                    reader,
                    Verb::Experienced,
                );
                fact.book = Some(rng.gen_range(0..400));
                if rng.gen_bool(self.spec.untimed_share) {
                    fact.time = None;
                }
                facts.push(fact);
            }
        }
        facts
    }

    /// The xAPI statement of a fact. `voided_id`: the id a voiding
    /// statement refers to.
    pub fn statement(
        &self,
        fact: &Fact,
        id: &str,
        learner: Option<&Learner>,
        voided_id: Option<&str>,
        rng: &mut impl Rng,
    ) -> Value {
        let app = &self.apps[fact.app];
        let (nl, en) = fact.verb.display();
        let mut extensions = Map::new();
        if let Some(library) = fact.library {
            extensions.insert(ISIL_EXTENSION.into(), json!(self.libraries[library]));
        }
        extensions.insert(APPID_EXTENSION.into(), json!(app.id));
        let mut statement = json!({
            "id": id,
            "verb": {"id": fact.verb.iri(), "display": {"nl-NL": nl, "en-US": en}},
        });
        if let Some(target) = voided_id {
            statement["actor"] = json!({
                "objectType": "Agent",
                "name": format!("{} (systeem)", app.name),
                "account": {"homePage": format!("https://{}.example.nl", app.id), "name": "systeem"}
            });
            statement["object"] = json!({"objectType": "StatementRef", "id": target});
            statement["context"] = json!({"extensions": extensions});
        } else {
            statement["actor"] = learner.expect("a learner's statement").actor.clone();
            let mut context = json!({"language": "nl-NL", "platform": app.name});
            if let Some(registration) = fact.registration {
                let mut seeded = StdRng::seed_from_u64(registration);
                context["registration"] = json!(uuid_from(&mut seeded));
            }
            if let Some(course_index) = fact.course {
                let course = &self.courses[course_index];
                let course_activity = json!({
                    "objectType": "Activity",
                    "id": course.id,
                    "definition": {"type": COURSE_TYPE, "name": {
                        "en-US": format!("{} (English)", course.name),
                        "nl-NL": course.name
                    }}
                });
                let publisher_au = |module: usize| json!({"objectType": "Activity", "id": format!("https://{}.example.nl/au/{course_index}-{module}", app.id)});
                let mut activities = Map::new();
                if let Some(module) = fact.module {
                    statement["object"] = json!({
                        "objectType": "Activity",
                        "id": course.modules[module],
                        "definition": {
                            "type": MODULE_TYPE,
                            "name": {"nl-NL": module_name(&course.name, module)}
                        }
                    });
                    match app.style {
                        AppStyle::Parent => {
                            activities.insert("parent".into(), json!([course_activity]));
                        }
                        AppStyle::Cmi5Lms => {
                            // Pure cmi5: the AU names itself, never its course.
                            statement["object"] = json!({
                                "objectType": "Activity",
                                "id": course.modules[module],
                                "definition": {"name": {"nl-NL": module_name(&course.name, module)}}
                            });
                            activities.insert("grouping".into(), json!([publisher_au(module)]));
                        }
                        _ => {
                            // cmi5: the AU's publisher id first, then the course.
                            activities.insert(
                                "grouping".into(),
                                json!([
                                    {"objectType": "Activity", "id": format!("https://{}.example.nl/au/{course_index}-{module}", app.id)},
                                    course_activity
                                ]),
                            );
                        }
                    }
                } else {
                    match app.style {
                        // The LMS's course-level statement: the bare course id.
                        AppStyle::Cmi5Lms => {
                            statement["object"] =
                                json!({"objectType": "Activity", "id": course.id});
                        }
                        // The course named without a type, typed in context.
                        AppStyle::Cmi5Untyped if fact.verb != Verb::Registered => {
                            statement["object"] =
                                json!({"objectType": "Activity", "id": course.id});
                            activities.insert(
                                "grouping".into(),
                                json!([publisher_au(0), course_activity]),
                            );
                        }
                        _ => statement["object"] = course_activity,
                    }
                }
                if matches!(
                    app.style,
                    AppStyle::Cmi5 | AppStyle::Cmi5Lms | AppStyle::Cmi5Untyped
                ) {
                    let mut category = vec![json!({"id": CMI5_CATEGORY})];
                    if matches!(
                        fact.verb,
                        Verb::Completed | Verb::Passed | Verb::Failed | Verb::Satisfied
                    ) {
                        category.push(json!({"id": MOVEON_CATEGORY}));
                    }
                    activities.insert("category".into(), Value::Array(category));
                }
                if !activities.is_empty() {
                    context["contextActivities"] = Value::Object(activities);
                }
                extensions.insert(SESSION_EXTENSION.into(), json!(uuid_from(rng)));
            } else if let Some(book) = fact.book {
                statement["object"] = json!({
                    "objectType": "Activity",
                    "id": format!("https://{}.example.nl/boeken/{book}", app.id),
                    "definition": {"type": BOOK_TYPE, "name": {"nl-NL": format!("Boek {book}")}}
                });
            }
            context["extensions"] = Value::Object(extensions);
            statement["context"] = context;
            let mut result = Map::new();
            if let Some(completion) = fact.completion {
                result.insert("completion".into(), json!(completion));
            }
            if let Some(success) = fact.success {
                result.insert("success".into(), json!(success));
            }
            if let Some(score) = fact.score {
                let raw = (score * 100.0).round() as i64;
                result.insert(
                    "score".into(),
                    json!({"scaled": score, "raw": raw, "min": 0, "max": 100}),
                );
            }
            if let Some(seconds) = fact.duration_s {
                result.insert(
                    "duration".into(),
                    json!(format!("PT{}M{}S", seconds / 60, seconds % 60)),
                );
            }
            if !result.is_empty() {
                statement["result"] = Value::Object(result);
            }
        }
        if let Some(time) = fact.time {
            statement["timestamp"] = json!(format_timestamp(time, app.style == AppStyle::Parent));
        }
        statement
    }

    /// A voiding statement for `target` (sent by the target's app), some
    /// time after it.
    fn voiding_fact(target: &Fact, rng: &mut impl Rng, position: usize) -> Fact {
        Fact {
            learner: None,
            time: target
                .time
                .map(|t| round_millis(t + rng.gen_range(HOUR..3 * DAY))),
            library: target.library,
            app: target.app,
            course: None,
            module: None,
            book: None,
            verb: Verb::Voided,
            completion: None,
            success: None,
            score: None,
            duration_s: None,
            voids: Some(position),
            registration: None,
        }
    }

    /// Statements of one learner in one month, ready to POST (random ids,
    /// a few voided at the end): the load generator's unit of work.
    pub fn learner_month_statements(
        &self,
        learner: usize,
        month: CalMonth,
        rng: &mut impl Rng,
    ) -> Vec<Value> {
        let learner = self.learner(learner);
        let facts = self.learner_facts(&learner, month, rng);
        let ids: Vec<String> = facts
            .iter()
            .map(|_| uuid::Uuid::new_v4().hyphenated().to_string())
            .collect();
        let mut out: Vec<Value> = facts
            .iter()
            .zip(&ids)
            .map(|(fact, id)| self.statement(fact, id, Some(&learner), None, rng))
            .collect();
        for (position, fact) in facts.iter().enumerate() {
            if rng.gen_bool(self.spec.void_share) {
                let voiding = Self::voiding_fact(fact, rng, position);
                let id = uuid::Uuid::new_v4().hyphenated().to_string();
                out.push(self.statement(&voiding, &id, None, Some(&ids[position]), rng));
            }
        }
        out
    }
}

/// Generates the month of `spec`: every learner's facts, a few voided, all
/// in time order with a share sent late, and their statements.
pub fn generate(spec: Spec) -> Month {
    let world = World::new(spec);
    let spec = &world.spec;
    let mut rng = StdRng::seed_from_u64(mix(spec.seed, 0xFAC7));
    let learners: Vec<Learner> = (0..spec.learners).map(|i| world.learner(i)).collect();
    let mut facts: Vec<Fact> = Vec::new();
    for learner in &learners {
        let mut learner_rng = StdRng::seed_from_u64(mix(spec.seed ^ 0xAC7, learner.index as u64));
        facts.extend(world.learner_facts(learner, spec.month, &mut learner_rng));
    }
    // Arrival order: by time (statements without a timestamp arrive now, at
    // the end), then a share of them sent late, as an app that was offline
    // does.
    facts.sort_by_key(|f| (f.time.unwrap_or(i64::MAX), f.learner));
    let n = facts.len();
    let mut order: Vec<(f64, usize)> = (0..n).map(|i| (i as f64, i)).collect();
    for slot in order.iter_mut() {
        if rng.gen_bool(spec.late_share) {
            slot.0 += rng.gen_range(200.0..(n as f64 / 4.0).max(201.0));
        }
    }
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut facts: Vec<Fact> = order.into_iter().map(|(_, i)| facts[i].clone()).collect();
    // Voiding: a voiding statement for a share of them, a little later in
    // the order (or the target arrives after it: that is allowed too).
    let mut voidings: Vec<(usize, Fact)> = Vec::new();
    for (position, fact) in facts.iter().enumerate() {
        if rng.gen_bool(spec.void_share) {
            let at = (position + rng.gen_range(1..2000)).min(n);
            voidings.push((at, World::voiding_fact(fact, &mut rng, position)));
        }
    }
    // Insert from the back so earlier positions stay valid; targets keep
    // their positions by being re-indexed after insertion.
    voidings.sort_by_key(|(at, _)| *at);
    let mut merged: Vec<Fact> = Vec::with_capacity(n + voidings.len());
    let mut new_position = vec![0usize; n];
    let mut pending = voidings.into_iter().peekable();
    for (position, fact) in facts.drain(..).enumerate() {
        while pending.peek().is_some_and(|(at, _)| *at == position) {
            merged.push(pending.next().expect("peeked").1);
        }
        new_position[position] = merged.len();
        merged.push(fact);
    }
    merged.extend(pending.map(|(_, f)| f));
    for fact in merged.iter_mut() {
        if let Some(target) = fact.voids.as_mut() {
            *target = new_position[*target];
        }
    }
    let ids: Vec<String> = merged.iter().map(|_| uuid_from(&mut rng)).collect();
    let sent = merged
        .into_iter()
        .enumerate()
        .map(|(i, fact)| {
            let learner = fact.learner.map(|l| &learners[l]);
            let voided = fact.voids.map(|t| ids[t].as_str());
            let statement = world.statement(&fact, &ids[i], learner, voided, &mut rng);
            Sent {
                id: ids[i].clone(),
                statement,
                fact,
            }
        })
        .collect();
    Month {
        world,
        learners,
        sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap, HashSet};

    #[test]
    fn calendar_by_hand() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            civil_from_days(days_from_civil(2026, 2, 28) + 1),
            (2026, 3, 1)
        );
        assert_eq!(
            civil_from_days(days_from_civil(2024, 2, 28) + 1),
            (2024, 2, 29)
        );
        assert_eq!(last_sunday(2026, 3), 29);
        assert_eq!(last_sunday(2026, 10), 25);
        assert_eq!(last_sunday(2025, 10), 26);
        // 2026-10-01 00:00 CEST = 2026-09-30T22:00Z; 2026-11-01 00:00 CET = 2026-10-31T23:00Z.
        let oct = CalMonth::new(2026, 10);
        assert_eq!(
            format_timestamp(oct.start_micros(), false),
            "2026-09-30T22:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(oct.end_micros(), false),
            "2026-10-31T23:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(oct.start_micros(), true),
            "2026-10-01T00:00:00.000+02:00"
        );
        assert_eq!(
            format_timestamp(oct.end_micros(), true),
            "2026-11-01T00:00:00.000+01:00"
        );
        // Every month boundary over some years, both ways.
        let mut month = CalMonth::new(2023, 1);
        for _ in 0..60 {
            assert_eq!(CalMonth::of_micros(month.start_micros()), month);
            assert_eq!(
                CalMonth::of_micros(month.start_micros() - 1),
                month.previous()
            );
            assert_eq!(CalMonth::of_micros(month.end_micros() - 1), month);
            assert_eq!(month.plus(1), month.next());
            assert_eq!(month.plus(-1), month.previous());
            month = month.next();
        }
        // The DST switches: 01:00 UTC on the last Sundays.
        let switch = days_from_civil(2026, 10, 25) * DAY + HOUR;
        assert!(summer_time_at(switch - 1));
        assert!(!summer_time_at(switch));
        let switch = days_from_civil(2026, 3, 29) * DAY + HOUR;
        assert!(!summer_time_at(switch - 1));
        assert!(summer_time_at(switch));
    }

    fn small() -> Spec {
        Spec {
            learners: 600,
            ..Spec::default()
        }
    }

    #[test]
    fn same_seed_same_month() {
        let a = generate(small());
        let b = generate(small());
        assert_eq!(a.sent.len(), b.sent.len());
        for (x, y) in a.sent.iter().zip(&b.sent) {
            assert_eq!(x.statement, y.statement);
        }
        let c = generate(Spec { seed: 6, ..small() });
        assert_ne!(a.sent[0].statement, c.sent[0].statement);
    }

    #[test]
    fn the_month_looks_real() {
        let spec = Spec::default();
        let begun = std::time::Instant::now();
        let month = generate(spec.clone());
        let sent = &month.sent;
        let n = sent.len();
        eprintln!("{n} statements generated in {:?}", begun.elapsed());
        assert!((15_000..120_000).contains(&n), "{n} statements");
        // Valid statements with the extensions the server reads.
        for s in sent.iter().step_by(97) {
            xapi::validate::validate_statement(&s.statement, xapi::XapiVersion::V1_0_3)
                .unwrap_or_else(|e| panic!("{e:?}: {}", s.statement));
            let isil = s.statement["context"]["extensions"][ISIL_EXTENSION]
                .as_str()
                .unwrap();
            assert!(lrs_app::tenancy::is_isil(isil), "{isil}");
        }
        let facts: Vec<&Fact> = sent.iter().map(|s| &s.fact).collect();
        let courses: BTreeSet<usize> = facts.iter().filter_map(|f| f.course).collect();
        assert!(courses.len() >= 20, "{} courses", courses.len());
        let libraries: BTreeSet<usize> = facts.iter().filter_map(|f| f.library).collect();
        assert!(libraries.len() >= 100, "{} libraries", libraries.len());
        let apps: BTreeSet<usize> = facts.iter().map(|f| f.app).collect();
        assert_eq!(apps.len(), spec.course_apps + 1);
        // Verbs in realistic shares.
        let mut verbs: HashMap<Verb, usize> = HashMap::new();
        for f in &facts {
            *verbs.entry(f.verb).or_default() += 1;
        }
        let share = |v: Verb| verbs.get(&v).copied().unwrap_or(0) as f64 / n as f64;
        for v in [
            Verb::Registered,
            Verb::Launched,
            Verb::Terminated,
            Verb::Completed,
            Verb::Passed,
        ] {
            assert!((0.03..0.35).contains(&share(v)), "{v:?}: {}", share(v));
        }
        for v in [
            Verb::Failed,
            Verb::Satisfied,
            Verb::Voided,
            Verb::Experienced,
            Verb::Progressed,
        ] {
            assert!((0.001..0.2).contains(&share(v)), "{v:?}: {}", share(v));
        }
        // Out of order: many statements arrive after a later-timestamped one.
        let mut latest = i64::MIN;
        let mut late = 0;
        for f in &facts {
            if let Some(t) = f.time {
                if t < latest {
                    late += 1;
                }
                latest = latest.max(t);
            }
        }
        assert!(late > n / 100, "{late} late");
        // The month before, the month after (sessions crossing the end),
        // statements close to the boundaries, and untimed ones.
        let months: HashMap<CalMonth, usize> =
            facts
                .iter()
                .filter_map(|f| f.time)
                .fold(HashMap::new(), |mut m, t| {
                    *m.entry(CalMonth::of_micros(t)).or_default() += 1;
                    m
                });
        assert!(months[&spec.month] > n * 3 / 4, "{months:?}");
        assert!(months[&spec.month.previous()] > n / 50, "{months:?}");
        let near = |b: i64| {
            facts
                .iter()
                .filter_map(|f| f.time)
                .filter(|t| (t - b).abs() < 2 * HOUR)
                .count()
        };
        assert!(near(spec.month.start_micros()) > 10);
        assert!(near(spec.month.end_micros()) > 10);
        assert!(facts
            .iter()
            .any(|f| f.time.is_none() && f.learner.is_some()));
        // Voiding statements point at statements of learners.
        for f in &facts {
            if let Some(target) = f.voids {
                assert!(facts[target].learner.is_some());
                assert_eq!(
                    sent[target].id,
                    sent.iter()
                        .find(|s| s.fact.voids == Some(target))
                        .unwrap()
                        .statement["object"]["id"]
                );
            }
        }
        // Learners in two apps and in two libraries, actually active in both;
        // mbox and account actors.
        let mut apps_of: HashMap<usize, HashSet<usize>> = HashMap::new();
        let mut libraries_of: HashMap<usize, HashSet<usize>> = HashMap::new();
        for f in &facts {
            if let Some(l) = f.learner {
                if f.app != month.world.reader_app() {
                    apps_of.entry(l).or_default().insert(f.app);
                }
                libraries_of.entry(l).or_default().extend(f.library);
            }
        }
        assert!(apps_of.values().filter(|a| a.len() > 1).count() > spec.learners / 50);
        assert!(libraries_of.values().filter(|a| a.len() > 1).count() > spec.learners / 100);
        assert!(sent
            .iter()
            .any(|s| s.statement["actor"]["mbox"].is_string()));
        assert!(sent
            .iter()
            .any(|s| s.statement["actor"]["account"].is_object()));
        // Both ways of naming the course, and local timestamps with an offset.
        assert!(sent.iter().any(|s| s
            .statement
            .pointer("/context/contextActivities/parent/0/definition/type")
            == Some(&json!(COURSE_TYPE))));
        assert!(sent.iter().any(|s| s
            .statement
            .pointer("/context/contextActivities/grouping/1/definition/type")
            == Some(&json!(COURSE_TYPE))));
        assert!(sent.iter().any(|s| s.statement["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with("+01:00"))));
    }

    /// Issue 20's shapes: a pure cmi5 LMS (no enrolment verb, AUs that
    /// never name their course, a course-level `satisfied` for some courses
    /// only) and an app that names the course, typed, only in context.
    #[test]
    fn every_way_of_speaking_cmi5_is_there() {
        let spec = Spec {
            learners: 600,
            course_apps: 6,
            ..Spec::default()
        };
        let month = generate(spec.clone());
        let style = |s: &Sent| month.world.apps[s.fact.app].style;
        let lms: Vec<&Sent> = month
            .sent
            .iter()
            .filter(|s| style(s) == AppStyle::Cmi5Lms && s.fact.course.is_some())
            .collect();
        assert!(lms.len() > 500, "{} pure cmi5 statements", lms.len());
        assert!(lms.iter().all(|s| s.fact.verb != Verb::Registered
            && s.statement.pointer("/context/registration").is_some()));
        for s in &lms {
            let text = s.statement.to_string();
            let course = &month.world.courses[s.fact.course.unwrap()];
            if s.fact.module.is_some() {
                assert!(
                    !text.contains(&format!("\"{}\"", course.id)),
                    "an AU statement names its course: {text}"
                );
            }
        }
        let satisfied: Vec<&&Sent> = lms.iter().filter(|s| s.fact.module.is_none()).collect();
        assert!(!satisfied.is_empty());
        assert!(satisfied
            .iter()
            .all(|s| month.world.lms_sends_satisfied(s.fact.course.unwrap())
                && s.statement["object"].get("definition").is_none()));
        let untyped: Vec<&Sent> = month
            .sent
            .iter()
            .filter(|s| {
                style(s) == AppStyle::Cmi5Untyped
                    && s.fact.course.is_some()
                    && s.fact.module.is_none()
            })
            .collect();
        assert!(!untyped.is_empty());
        for s in untyped {
            assert!(s.statement["object"].get("definition").is_none());
            assert_eq!(
                s.statement
                    .pointer("/context/contextActivities/grouping/1/definition/type"),
                Some(&json!(COURSE_TYPE))
            );
        }
        // The model declares the LMS's courses with their modules' moveOn.
        let model = month.world.course_model();
        let declared = model["courses"].as_array().unwrap();
        assert!(declared
            .iter()
            .any(|c| c["modules"][1]["moveOn"] == "Passed"));
        // The independent computation: the LMS's learners enrol (by their
        // registration) and some complete by moveOn without the LMS saying so.
        let figures = expected::monthly(&month, CalMonth::new(2026, 12));
        let lms_app = month
            .world
            .apps
            .iter()
            .find(|a| a.style == AppStyle::Cmi5Lms)
            .unwrap();
        let lms_figures = &figures[&(spec.month, expected::Scope::App(lms_app.id.clone()))];
        assert!(lms_figures.enrolled_participants > 10, "{lms_figures:?}");
        let odd_completed = lms_figures
            .top_completed
            .iter()
            .filter(|(id, _)| {
                month
                    .world
                    .courses
                    .iter()
                    .position(|c| &c.id == id)
                    .is_some_and(|c| !month.world.lms_sends_satisfied(c))
            })
            .count();
        assert!(
            odd_completed > 0,
            "completed by structure alone: {lms_figures:?}"
        );
    }

    #[test]
    fn a_learner_month_for_the_load_generator() {
        let world = World::new(Spec::default());
        let mut rng = StdRng::seed_from_u64(1);
        let mut total = 0;
        for learner in 0..200 {
            for s in world.learner_month_statements(learner, CalMonth::new(2026, 3), &mut rng) {
                xapi::validate::validate_statement(&s, xapi::XapiVersion::V1_0_3).unwrap();
                total += 1;
            }
        }
        assert!(total > 2000, "{total}");
    }
}
