//! The monthly figures and learner progress of a generated month, computed
//! from the generator's facts (plain data: learner numbers, course and module
//! numbers, verbs, results, times) with sets and maps, following the
//! definitions in docs/progress-and-figures.md word by word. Nothing here
//! reads the statements' JSON or shares code with the server: a figure the
//! server gets wrong, or this gets wrong, shows as a difference.
//!
//! The rules, as the docs give them: a learner enrols in a course in the
//! month of an enrolment statement or of the first statement (by time) of
//! their registration for it; a learner–course pair is completed in the
//! month of a statement about the course itself that means completed or
//! passed, or, for a course whose modules the model declares, in the month
//! the last of its modules was satisfied by its moveOn; launches are the
//! `launched` statements.

use super::{move_on, CalMonth, Fact, Month, Verb};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Whose figures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Total,
    /// ISIL.
    Library(String),
    /// appid.
    App(String),
}

/// One month's figures of one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub hits: u64,
    pub launches: u64,
    pub active_users: u64,
    pub enrolled_participants: u64,
    pub participants_started: u64,
    pub courses_started: u64,
    pub courses_completed: u64,
    /// (course id, learner–course pairs), most first, ties by course id; ten at most.
    pub top_started: Vec<(String, u64)>,
    pub top_completed: Vec<(String, u64)>,
}

#[derive(Default)]
struct Sets {
    hits: u64,
    launches: u64,
    active: HashSet<usize>,
    enrolled: HashSet<usize>,
    started: HashSet<usize>,
    started_pairs: HashSet<(usize, usize)>,
    completed_pairs: HashSet<(usize, usize)>,
}

/// The verb means enrolled (default model: `registered`).
fn enrols(fact: &Fact) -> bool {
    fact.verb == Verb::Registered
}

/// The statement means completed or passed (by verb or result).
fn completes(fact: &Fact) -> bool {
    matches!(fact.verb, Verb::Completed | Verb::Satisfied) || fact.completion == Some(true)
}

fn passes(fact: &Fact) -> bool {
    fact.verb == Verb::Passed || fact.success == Some(true)
}

fn fails(fact: &Fact) -> bool {
    fact.verb == Verb::Failed || fact.success == Some(false)
}

/// Positions (in `sent`) of the statements that count: not voided and not
/// voiding.
pub fn counted(month: &Month) -> Vec<usize> {
    let voided: HashSet<usize> = month.sent.iter().filter_map(|s| s.fact.voids).collect();
    (0..month.sent.len())
        .filter(|i| !voided.contains(i) && month.sent[*i].fact.voids.is_none())
        .collect()
}

/// The position (in `sent`) of the first counted statement, by time, of
/// each learner's registration for each course: (learner, course) → those
/// positions (one per registration).
fn registration_firsts(month: &Month, counted: &[usize]) -> HashSet<usize> {
    let mut first: HashMap<(usize, usize, u64), (i64, usize)> = HashMap::new();
    for &i in counted {
        let fact = &month.sent[i].fact;
        let (Some(learner), Some(course), Some(registration), Some(time)) =
            (fact.learner, fact.course, fact.registration, fact.time)
        else {
            continue;
        };
        let entry = first
            .entry((learner, course, registration))
            .or_insert((time, i));
        if time < entry.0 {
            *entry = (time, i);
        }
    }
    first.into_values().map(|(_, i)| i).collect()
}

/// For every learner and declared course whose modules are all satisfied
/// by their moveOn: the position of the statement that satisfied the last
/// of them (each module satisfied at its earliest completion, pass, or
/// both, as its moveOn asks).
fn structure_completions(month: &Month, counted: &[usize]) -> HashSet<usize> {
    let world = &month.world;
    // (learner, course, module) → earliest completed, earliest passed: (time, position).
    type Earliest = (Option<(i64, usize)>, Option<(i64, usize)>);
    let mut by_module: HashMap<(usize, usize, usize), Earliest> = HashMap::new();
    for &i in counted {
        let fact = &month.sent[i].fact;
        let (Some(learner), Some(course), Some(module), Some(time)) =
            (fact.learner, fact.course, fact.module, fact.time)
        else {
            continue;
        };
        if !world.declared(course) {
            continue;
        }
        let entry = by_module.entry((learner, course, module)).or_default();
        let earlier = |slot: &mut Option<(i64, usize)>| {
            if slot.is_none_or(|(t, _)| time < t) {
                *slot = Some((time, i));
            }
        };
        if completes(fact) {
            earlier(&mut entry.0);
        }
        if passes(fact) {
            earlier(&mut entry.1);
        }
    }
    let pairs: HashSet<(usize, usize)> = by_module.keys().map(|(l, c, _)| (*l, *c)).collect();
    let mut found = HashSet::new();
    for (learner, course) in pairs {
        let mut last: Option<(i64, usize)> = None;
        let mut all = true;
        for module in 0..world.courses[course].modules.len() {
            let (completed, passed) = by_module
                .get(&(learner, course, module))
                .copied()
                .unwrap_or_default();
            let satisfied = match move_on(module) {
                super::MoveOn::Completed => completed,
                super::MoveOn::Passed => passed,
                super::MoveOn::CompletedOrPassed => match (completed, passed) {
                    (Some(c), Some(p)) => Some(c.min(p)),
                    (c, p) => c.or(p),
                },
                super::MoveOn::CompletedAndPassed => match (completed, passed) {
                    (Some(c), Some(p)) => Some(c.max(p)),
                    _ => None,
                },
            };
            match satisfied {
                Some(at) => last = last.max(Some(at)),
                None => all = false,
            }
        }
        if let (true, Some((_, i))) = (all, last) {
            found.insert(i);
        }
    }
    found
}

/// Every month's figures for every scope that has any. `untimed`: the
/// month statements without a timestamp were stored in.
pub fn monthly(month: &Month, untimed: CalMonth) -> BTreeMap<(CalMonth, Scope), Figures> {
    let world = &month.world;
    let counted = counted(month);
    let firsts = registration_firsts(month, &counted);
    let completions = structure_completions(month, &counted);
    let mut sets: HashMap<(CalMonth, Scope), Sets> = HashMap::new();
    for &i in &counted {
        let fact = &month.sent[i].fact;
        let learner = fact.learner.expect("counted statements are learners'");
        let when = fact.time.map_or(untimed, CalMonth::of_micros);
        let mut scopes = vec![Scope::Total, Scope::App(world.apps[fact.app].id.clone())];
        if let Some(library) = fact.library {
            scopes.push(Scope::Library(world.libraries[library].clone()));
        }
        for scope in scopes {
            let s = sets.entry((when, scope)).or_default();
            s.hits += 1;
            if fact.verb == Verb::Launched {
                s.launches += 1;
            }
            s.active.insert(learner);
            let Some(course) = fact.course else { continue };
            if enrols(fact) || firsts.contains(&i) {
                s.enrolled.insert(learner);
            }
            if !enrols(fact) {
                s.started.insert(learner);
                s.started_pairs.insert((learner, course));
            }
            if fact.module.is_none() && (completes(fact) || passes(fact))
                || completions.contains(&i)
            {
                s.completed_pairs.insert((learner, course));
            }
        }
    }
    let top = |pairs: &HashSet<(usize, usize)>| {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (_, course) in pairs {
            *counts.entry(world.courses[*course].id.clone()).or_default() += 1;
        }
        let mut list: Vec<(String, u64)> = counts.into_iter().collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list.truncate(10);
        list
    };
    sets.into_iter()
        .map(|(key, s)| {
            let figures = Figures {
                hits: s.hits,
                launches: s.launches,
                active_users: s.active.len() as u64,
                enrolled_participants: s.enrolled.len() as u64,
                participants_started: s.started.len() as u64,
                courses_started: s.started_pairs.len() as u64,
                courses_completed: s.completed_pairs.len() as u64,
                top_started: top(&s.started_pairs),
                top_completed: top(&s.completed_pairs),
            };
            (key, figures)
        })
        .collect()
}

/// The name a course is shown with: the course model's, if it names it,
/// else its activity definition's Dutch name.
pub fn course_name(month: &Month, course: usize) -> String {
    let world = &month.world;
    if world.renamed_course() == Some(course) {
        world.model_name(course)
    } else {
        world.courses[course].name.clone()
    }
}

/// The name of a course by its id (see [`course_name`]).
pub fn course_name_of(month: &Month, id: &str) -> Option<String> {
    let course = month.world.courses.iter().position(|c| c.id == id)?;
    Some(course_name(month, course))
}

/// A learner's or module's status, as the contract names them.
pub fn status_name(rank: u8) -> &'static str {
    [
        "not_started",
        "enrolled",
        "in_progress",
        "failed",
        "completed",
        "passed",
    ][rank as usize]
}

/// The status of a set of statements: passed if any passed; else completed
/// if any completed; else failed if any failed; else in progress if any
/// statement other than enrolling; else enrolled.
fn status_of<'a>(facts: impl IntoIterator<Item = &'a Fact>) -> &'static str {
    let facts: Vec<&Fact> = facts.into_iter().collect();
    if facts.iter().any(|f| passes(f)) {
        "passed"
    } else if facts.iter().any(|f| completes(f)) {
        "completed"
    } else if facts.iter().any(|f| fails(f)) {
        "failed"
    } else if facts.iter().any(|f| !enrols(f)) {
        "in_progress"
    } else if facts.is_empty() {
        "not_started"
    } else {
        "enrolled"
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModuleExpect {
    pub status: &'static str,
    pub score: Option<f64>,
    pub time_spent_seconds: u64,
    pub last_activity_micros: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CourseExpect {
    pub status: &'static str,
    pub modules_done: u32,
    pub modules_total: u32,
    pub score: Option<f64>,
    pub time_spent_seconds: u64,
    pub last_activity_micros: Option<i64>,
    /// By module id.
    pub modules: BTreeMap<String, ModuleExpect>,
}

/// How a course's own status is read from its statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CourseStatusRule {
    /// passed / completed / failed only from statements about the course
    /// itself; in progress from any statement in the course.
    CourseItself,
    /// passed / completed / failed from any statement in the course,
    /// modules' included.
    AnyInCourse,
}

/// The KB's view of one learner's progress, by course id.
pub fn progress(
    month: &Month,
    learner: usize,
    rule: CourseStatusRule,
) -> BTreeMap<String, CourseExpect> {
    let world = &month.world;
    let counted = counted(month);
    // The number of modules of a course: none are declared, so the distinct
    // modules anyone has a (counted) statement for.
    let mut modules_seen: HashMap<usize, HashSet<usize>> = HashMap::new();
    for &i in &counted {
        let fact = &month.sent[i].fact;
        if let (Some(course), Some(module)) = (fact.course, fact.module) {
            modules_seen.entry(course).or_default().insert(module);
        }
    }
    let completions = structure_completions(month, &counted);
    let completed_by_structure: HashSet<usize> = completions
        .iter()
        .filter(|&&i| month.sent[i].fact.learner == Some(learner))
        .filter_map(|&i| month.sent[i].fact.course)
        .collect();
    let mine: Vec<&Fact> = counted
        .iter()
        .map(|&i| &month.sent[i].fact)
        .filter(|f| f.learner == Some(learner) && f.course.is_some())
        .collect();
    let courses: HashSet<usize> = mine.iter().filter_map(|f| f.course).collect();
    let best = |facts: &[&Fact]| {
        facts
            .iter()
            .filter_map(|f| f.score)
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))))
    };
    let ended_sum = |facts: &[&Fact]| -> u64 {
        facts
            .iter()
            .filter(|f| f.verb == Verb::Terminated)
            .filter_map(|f| f.duration_s)
            .sum()
    };
    let mut out = BTreeMap::new();
    for course in courses {
        let in_course: Vec<&Fact> = mine
            .iter()
            .copied()
            .filter(|f| f.course == Some(course))
            .collect();
        let itself: Vec<&Fact> = in_course
            .iter()
            .copied()
            .filter(|f| f.module.is_none())
            .collect();
        let mut modules = BTreeMap::new();
        let mut done = 0;
        let mut time = ended_sum(&itself);
        let module_numbers: HashSet<usize> = in_course.iter().filter_map(|f| f.module).collect();
        for module in module_numbers {
            let facts: Vec<&Fact> = in_course
                .iter()
                .copied()
                .filter(|f| f.module == Some(module))
                .collect();
            let status = status_of(facts.iter().copied());
            if matches!(status, "completed" | "passed") {
                done += 1;
            }
            let ended = facts.iter().any(|f| f.verb == Verb::Terminated);
            let spent = if ended {
                ended_sum(&facts)
            } else {
                facts.iter().filter_map(|f| f.duration_s).max().unwrap_or(0)
            };
            time += spent;
            modules.insert(
                world.courses[course].modules[module].clone(),
                ModuleExpect {
                    status,
                    score: best(&facts),
                    time_spent_seconds: spent,
                    last_activity_micros: facts.iter().filter_map(|f| f.time).max(),
                },
            );
        }
        let status = match rule {
            CourseStatusRule::AnyInCourse => status_of(in_course.iter().copied()),
            CourseStatusRule::CourseItself => match status_of(itself.iter().copied()) {
                "passed" => "passed",
                // Every declared module satisfied: completed, whatever else.
                _ if completed_by_structure.contains(&course) => "completed",
                own @ ("completed" | "failed") => own,
                // Work in a module is progress in the course, whatever its outcome.
                _ if in_course.iter().any(|f| !enrols(f)) => "in_progress",
                _ => "enrolled",
            },
        };
        // A declared course has its declared modules; else those anyone has
        // a statement for.
        let modules_total = if world.declared(course) {
            world.courses[course].modules.len() as u32
        } else {
            modules_seen.get(&course).map_or(0, |m| m.len()) as u32
        };
        out.insert(
            world.courses[course].id.clone(),
            CourseExpect {
                status,
                modules_done: done,
                modules_total,
                score: best(&itself),
                time_spent_seconds: time,
                last_activity_micros: in_course.iter().filter_map(|f| f.time).max(),
                modules,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{generate, Learner, Sent, Spec, World};
    use super::*;
    use serde_json::Value;

    /// A hand-made month: two learners, two courses, checked by hand.
    fn hand_made() -> Month {
        let world = World::new(Spec {
            learners: 2,
            ..Spec::default()
        });
        let october = CalMonth::new(2026, 10);
        let t = |day: i64| october.start_micros() + day * 86_400_000_000 + 3_600_000_000;
        let learners: Vec<Learner> = (0..2).map(|i| world.learner(i)).collect();
        let fact = |learner: usize,
                    time: i64,
                    library: usize,
                    app: usize,
                    course: Option<usize>,
                    module: Option<usize>,
                    verb: Verb| Fact {
            learner: Some(learner),
            time: Some(time),
            library: Some(library),
            app,
            course,
            module,
            book: None,
            verb,
            completion: None,
            success: None,
            score: None,
            duration_s: None,
            voids: None,
            registration: None,
        };
        let mut facts = vec![
            // Learner 0, library 0, app 0: enrols in course 0 in September,
            // works in October, completes the course; module 0 passed with 0.8.
            fact(0, t(-3), 0, 0, Some(0), None, Verb::Registered),
            fact(0, t(1), 0, 0, Some(0), Some(0), Verb::Launched),
            {
                let mut f = fact(0, t(1) + 1000, 0, 0, Some(0), Some(0), Verb::Passed);
                f.score = Some(0.8);
                f.success = Some(true);
                f
            },
            {
                let mut f = fact(0, t(1) + 2000, 0, 0, Some(0), Some(0), Verb::Terminated);
                f.duration_s = Some(600);
                f
            },
            fact(0, t(2), 0, 0, Some(0), None, Verb::Satisfied),
            // Learner 1, library 1, app 1: enrols in course 1 and course 0 in
            // October, launches course 1 in library 0 on the last day.
            fact(1, t(4), 1, 1, Some(1), None, Verb::Registered),
            fact(1, t(5), 1, 0, Some(0), None, Verb::Registered),
            fact(1, t(30), 0, 1, Some(1), Some(2), Verb::Launched),
            // Learner 1 reads a book (no course), without a timestamp.
            {
                let mut f = fact(1, 0, 1, 4, None, None, Verb::Experienced);
                f.time = None;
                f.book = Some(3);
                f
            },
            // Learner 1 completes course 1: voided below.
            fact(1, t(30) + 5000, 0, 1, Some(1), None, Verb::Completed),
        ];
        let mut voiding = fact(1, t(31), 0, 1, None, None, Verb::Voided);
        voiding.learner = None;
        voiding.voids = Some(9);
        facts.push(voiding);
        let sent = facts
            .into_iter()
            .enumerate()
            .map(|(i, fact)| Sent {
                id: format!("{i}"),
                statement: Value::Null,
                fact,
            })
            .collect();
        Month {
            world,
            learners,
            sent,
        }
    }

    #[test]
    fn figures_of_a_hand_made_month() {
        let month = hand_made();
        let november = CalMonth::new(2026, 11);
        let figures = monthly(&month, november);
        let october = CalMonth::new(2026, 10);
        let course = |c: usize| month.world.courses[c].id.clone();
        let total = &figures[&(october, Scope::Total)];
        assert_eq!(
            (
                total.hits,
                total.active_users,
                total.enrolled_participants,
                total.participants_started,
                total.courses_started,
                total.courses_completed
            ),
            (7, 2, 1, 2, 2, 1)
        );
        let mut started = vec![(course(0), 1), (course(1), 1)];
        started.sort();
        assert_eq!(total.top_started, started);
        assert_eq!(total.top_completed, vec![(course(0), 1)]);
        let september = &figures[&(october.previous(), Scope::Total)];
        assert_eq!(
            (
                september.hits,
                september.enrolled_participants,
                september.participants_started
            ),
            (1, 1, 0)
        );
        let untimed = &figures[&(november, Scope::Total)];
        assert_eq!(
            (untimed.hits, untimed.active_users, untimed.courses_started),
            (1, 1, 0)
        );
        // Library 0 has learner 1's launch and learner 0's work.
        let lib0 = &figures[&(october, Scope::Library(month.world.libraries[0].clone()))];
        assert_eq!(
            (
                lib0.hits,
                lib0.active_users,
                lib0.participants_started,
                lib0.courses_started
            ),
            (5, 2, 2, 2)
        );
        let lib1 = &figures[&(october, Scope::Library(month.world.libraries[1].clone()))];
        assert_eq!(
            (
                lib1.hits,
                lib1.active_users,
                lib1.enrolled_participants,
                lib1.participants_started
            ),
            (2, 1, 1, 0)
        );
        let app1 = &figures[&(october, Scope::App(month.world.apps[1].id.clone()))];
        assert_eq!(
            (
                app1.hits,
                app1.enrolled_participants,
                app1.courses_started,
                app1.courses_completed
            ),
            (2, 1, 1, 0)
        );
    }

    #[test]
    fn progress_of_a_hand_made_month() {
        let month = hand_made();
        let p = progress(&month, 0, CourseStatusRule::CourseItself);
        let c0 = &p[&month.world.courses[0].id];
        assert_eq!(
            (
                c0.status,
                c0.modules_done,
                c0.modules_total,
                c0.score,
                c0.time_spent_seconds
            ),
            ("completed", 1, 1, None, 600)
        );
        let m0 = &c0.modules[&month.world.courses[0].modules[0]];
        assert_eq!(
            (m0.status, m0.score, m0.time_spent_seconds),
            ("passed", Some(0.8), 600)
        );
        let p = progress(&month, 1, CourseStatusRule::CourseItself);
        let c1 = &p[&month.world.courses[1].id];
        // The completion was voided: in progress, one module seen.
        assert_eq!(
            (c1.status, c1.modules_done, c1.modules_total),
            ("in_progress", 0, 1)
        );
        assert_eq!(p[&month.world.courses[0].id].status, "enrolled");
    }

    #[test]
    fn figures_of_a_generated_month_add_up() {
        let spec = Spec {
            learners: 800,
            ..Spec::default()
        };
        let month = generate(spec.clone());
        let figures = monthly(&month, CalMonth::new(2026, 11));
        let total = &figures[&(spec.month, Scope::Total)];
        assert!(total.active_users > 700, "{total:?}");
        assert!(total.courses_completed > 50, "{total:?}");
        assert_eq!(total.top_started.len(), 10);
        // A learner in two libraries counts in both: the libraries' active
        // users add up to more than the total.
        let by_library: u64 = figures
            .iter()
            .filter(|((m, s), _)| *m == spec.month && matches!(s, Scope::Library(_)))
            .map(|(_, f)| f.active_users)
            .sum();
        assert!(by_library > total.active_users);
        let libraries = figures
            .keys()
            .filter(|(m, s)| *m == spec.month && matches!(s, Scope::Library(_)))
            .count();
        assert!(libraries >= 100, "{libraries}");
    }
}
