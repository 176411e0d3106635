//! The shapes of progress and monthly figures, as the JSON API answers them
//! and the web pages render them (docs/progress-and-figures.md).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A calendar month (Europe/Amsterdam), written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1..=12
    pub month: u32,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1..=12).contains(&month) && (1970..=9999).contains(&year)).then_some(Self { year, month })
    }

    /// The month after this one.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The month before this one.
    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The month `micros` (since the epoch) falls in, in Dutch time.
    pub fn of_micros(micros: i64) -> Self {
        let (year, month) = lrs_projections::progress::month_of_micros(micros);
        Self { year, month }
    }

    /// This month, in Dutch time.
    pub fn current() -> Self {
        Self::of_micros(chrono::Utc::now().timestamp_micros())
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || format!("'{text}' is not a month: expected YYYY-MM, e.g. 2026-10");
        let (year, month) = text.split_once('-').ok_or_else(wrong)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(wrong());
        }
        let year: i32 = year.parse().map_err(|_| wrong())?;
        let month: u32 = month.parse().map_err(|_| wrong())?;
        Month::new(year, month).ok_or_else(wrong)
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whose figures: everything, one library organisation, or one app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum FigureScope {
    Total,
    Library(String),
    App(String),
}

/// The figures of one month and scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Statements about learning (not voided, not voiding).
    pub hits: u64,
    /// Statements that mean launched (cmi5 `launched`): hits as e-content
    /// statistics often count them.
    pub launches: u64,
    pub active_users: u64,
    pub enrolled_participants: u64,
    pub participants_started: u64,
    pub courses_started: u64,
    pub courses_completed: u64,
}

/// One course in a top-10 list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseCount {
    pub course: String,
    /// The course's name: the course model's, else its latest activity
    /// definition's (Dutch first, then English).
    pub name: Option<String>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyFigures {
    pub month: Month,
    pub scope: FigureScope,
    pub figures: Figures,
    pub top_started: Vec<CourseCount>,
    pub top_completed: Vec<CourseCount>,
    /// Whether the month is closed, which version these figures are, and
    /// what arrived since; `None`: never closed (these are the live figures).
    pub closing: Option<Closing>,
}

/// Which figures of a month: as closed (the latest closing, else live), the
/// live ones, or one closed version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FiguresVersion {
    #[default]
    Delivered,
    Live,
    Closed(u32),
}

impl FromStr for FiguresVersion {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "delivered" | "closed" => Ok(FiguresVersion::Delivered),
            "live" => Ok(FiguresVersion::Live),
            number => number
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .map(FiguresVersion::Closed)
                .ok_or_else(|| {
                    format!("'{text}' is not a version: live, closed, or a closed version number (1, 2, ...)")
                }),
        }
    }
}

/// Which figures an answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Served {
    /// A closed version, as delivered.
    Closed,
    /// The figures as they are now.
    Live,
}

/// A month's closing as an answer shows it (docs/progress-and-figures.md,
/// "Closing a month").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closing {
    /// The closed version this answer is about: the one served, or (when
    /// live figures are served) the latest.
    pub version: u32,
    pub latest_version: u32,
    pub served: Served,
    /// RFC 3339, UTC.
    pub closed_at: String,
    /// A credential key, `staff:…`, `cli:…` or `auto`.
    pub closed_by: String,
    pub note: String,
    /// Statements that changed this scope's figures of the month after
    /// `version` was closed.
    pub late_statements: u64,
    /// What they changed: the live figure minus the closed one, for every
    /// figure that differs (empty: nothing changed).
    pub changes: std::collections::BTreeMap<String, i64>,
}

/// Which hits a presentation shows (the Datatheek workbook, the pages):
/// every statement (what the Datatheek has always had), launches, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HitsChoice {
    #[default]
    Statements,
    Launches,
    Both,
}

impl FromStr for HitsChoice {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "statements" => Ok(HitsChoice::Statements),
            "launches" => Ok(HitsChoice::Launches),
            "both" => Ok(HitsChoice::Both),
            _ => Err(format!(
                "'{text}' is not a hits definition: statements, launches or both"
            )),
        }
    }
}

impl HitsChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            HitsChoice::Statements => "statements",
            HitsChoice::Launches => "launches",
            HitsChoice::Both => "both",
        }
    }
}

/// Per library (or app) figures of one month: the KB's drill-down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    pub month: Month,
    /// `library` or `app`.
    pub by: String,
    pub rows: Vec<BreakdownRow>,
    /// As for [`MonthlyFigures::closing`], of the total.
    pub closing: Option<Closing>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakdownRow {
    /// The ISIL or appid.
    pub id: String,
    /// The tenant's name, if a tenant with this ISIL or appid is defined.
    pub name: Option<String>,
    pub figures: Figures,
}

pub use lrs_projections::progress::Status;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleProgress {
    pub module: String,
    pub name: Option<String>,
    pub status: Status,
    pub score: Option<f64>,
    pub time_spent_seconds: u64,
    /// RFC 3339, UTC; `None` for a module without statements (declared, or ready).
    pub last_activity: Option<String>,
    /// Set ready (assigned) by library staff.
    pub ready: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CourseProgress {
    pub course: String,
    pub name: Option<String>,
    pub status: Status,
    pub modules_done: u32,
    pub modules_total: u32,
    pub score: Option<f64>,
    pub time_spent_seconds: u64,
    pub last_activity: Option<String>,
    pub modules: Vec<ModuleProgress>,
}

/// One learner's progress in every course the reader may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerProgress {
    /// The learner's opaque id (their vault token, hex): what staff use to
    /// assign modules. Not personal data by itself.
    pub learner: String,
    /// The learner's name (or account name, or mailbox) as their latest
    /// statement gave it; `None` if erased.
    pub name: Option<String>,
    pub last_activity: Option<String>,
    pub courses: Vec<CourseProgress>,
}

/// Sort order of the library learners list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnerSort {
    #[default]
    LastActivity,
    Name,
    Progress,
    Status,
}

impl FromStr for LearnerSort {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "last_activity" => LearnerSort::LastActivity,
            "name" => LearnerSort::Name,
            "progress" => LearnerSort::Progress,
            "status" => LearnerSort::Status,
            _ => {
                return Err(format!(
                    "'{text}' is not a sort order: one of last_activity, name, progress, status"
                ))
            }
        })
    }
}

/// Which learners of a library, in what order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnersFilter {
    /// Only learners with activity in this course (and their progress in it).
    pub course: Option<String>,
    /// Only learners whose status (in `course`, or in any course) is this.
    pub status: Option<Status>,
    pub sort: LearnerSort,
    pub descending: bool,
    /// From 1.
    pub page: usize,
    pub per_page: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnersPage {
    pub library: String,
    pub filter: LearnersFilter,
    /// Learners matching the filter, over all pages.
    pub total: usize,
    pub rows: Vec<LearnerProgress>,
    /// Every course any learner of the library has activity in (for the
    /// filter's choices): id and name.
    pub courses: Vec<(String, Option<String>)>,
}

/// Set modules ready for learners, or take that back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRequest {
    /// Learner ids (as in [`LearnerProgress::learner`]).
    pub learners: Vec<String>,
    pub course: String,
    pub modules: Vec<String>,
    /// `true` (default): set ready; `false`: take back.
    #[serde(default = "yes")]
    pub ready: bool,
}

fn yes() -> bool {
    true
}
