//! A library's learner list (`/api/progress/learners`, the staff page):
//! its learners with their progress, filtered, sorted, one page.
//!
//! Filtered by a course, the list filters and sorts on the summaries the
//! progress read model keeps per library, course and learner
//! (`progress.library_courses`, [`CourseSummary`]): each learner's records
//! are read for the rows of the page only, so a popular course of a large
//! library costs one scan of its summaries instead of one read per learner.
//! What a summary cannot say (records from more than one tenant) is folded
//! from the records, as without a course filter.

use super::{
    learner_name, learner_progress_with, LearnerProgress, LearnerSort, LearnersFilter,
    LearnersPage, Names, Reach, Status, TenantModels,
};
use crate::error::AppError;
use lrs_core::token::Token;
use lrs_projections::progress::{module_hash, scope_library, CourseSummary, LibraryMember};
use lrs_store::Store;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The most learners on one page of the library list.
pub const MAX_PER_PAGE: usize = 200;

/// One learner of the list, with what it is filtered and sorted on.
struct Row<'m> {
    token: Token,
    member: &'m LibraryMember,
    /// Read when filtering or sorting needed it, else for the page's rows.
    progress: Option<LearnerProgress>,
    /// The best status over the shown courses.
    status: Status,
    /// Modules done out of modules known, over the shown courses.
    fraction: f64,
    name: Option<String>,
}

/// A library's learners with their progress, filtered, sorted, one page.
pub fn library_learners(
    store: &Store,
    isil: &str,
    filter: &LearnersFilter,
) -> Result<LearnersPage, AppError> {
    let names = Names::load(store)?;
    let models = TenantModels::default();
    let reach = Reach::Library(isil.to_owned());
    let per_page = filter.per_page.clamp(1, MAX_PER_PAGE);
    let page = filter.page.max(1);
    let course = filter.course.as_deref();
    let mut members = store.library_learners(isil)?;
    let mut standings = match course {
        Some(course) => {
            let standings = CourseStandings::load(store, isil, course)?;
            // Only who can show the course: activity in it at this
            // library, or modules of it set ready.
            members.retain(|(token, _)| standings.may_show(token));
            Some(standings)
        }
        None => None,
    };
    let courses: BTreeSet<String> = store
        .figure_courses_of_library(isil)?
        .into_iter()
        .map(|(course, _)| course)
        .collect();
    let progress_of =
        |token: &Token| learner_progress_with(store, &reach, token, course, &names, &models, false);
    // The cheap case: newest first without filters needs progress of one page only.
    let needs_all =
        course.is_some() || filter.status.is_some() || filter.sort != LearnerSort::LastActivity;
    let mut rows: Vec<Row> = Vec::new();
    for (token, member) in &members {
        // (Standings exist only with a course filter, so only when needs_all.)
        let summed_up = match &mut standings {
            Some(standings) => standings.of(store, &models, token)?,
            None => None,
        };
        let row = match summed_up {
            Some((status, fraction)) => {
                if filter.status.is_some_and(|wanted| wanted != status) {
                    continue;
                }
                Row::new(*token, member, None, status, fraction)
            }
            None if needs_all => {
                let progress = progress_of(token)?;
                if let Some(course) = course {
                    if progress.courses.iter().all(|c| c.course != course) {
                        continue;
                    }
                }
                if let Some(status) = filter.status {
                    if progress.courses.iter().all(|c| c.status != status) {
                        continue;
                    }
                }
                let (status, fraction) = (best_status(&progress), progress_fraction(&progress));
                Row::new(*token, member, Some(progress), status, fraction)
            }
            None => Row::new(*token, member, None, Status::NotStarted, 0.0),
        };
        rows.push(row);
    }
    // Names are decrypted for the page's rows only, unless sorting by name.
    let by_name = filter.sort == LearnerSort::Name;
    if by_name {
        for row in rows.iter_mut() {
            row.name = learner_name(store, &row.token, row.member.last_position);
        }
    }
    match filter.sort {
        LearnerSort::LastActivity => rows.sort_by_key(|r| (r.member.last_micros, r.token.0)),
        LearnerSort::Name => rows.sort_by(|a, b| {
            a.name
                .as_deref()
                .map(str::to_lowercase)
                .cmp(&b.name.as_deref().map(str::to_lowercase))
                .then_with(|| a.token.cmp(&b.token))
        }),
        LearnerSort::Progress => rows.sort_by(|a, b| {
            a.fraction
                .total_cmp(&b.fraction)
                .then_with(|| a.token.cmp(&b.token))
        }),
        LearnerSort::Status => {
            rows.sort_by(|a, b| a.status.cmp(&b.status).then_with(|| a.token.cmp(&b.token)))
        }
    }
    if filter.descending {
        rows.reverse();
    }
    let total = rows.len();
    let mut shown = Vec::new();
    for row in rows.into_iter().skip((page - 1) * per_page).take(per_page) {
        let mut progress = match row.progress {
            Some(progress) => progress,
            None => progress_of(&row.token)?,
        };
        progress.name = if by_name {
            row.name
        } else {
            learner_name(store, &row.token, row.member.last_position)
        };
        shown.push(progress);
    }
    Ok(LearnersPage {
        library: isil.to_owned(),
        filter: LearnersFilter {
            page,
            per_page,
            ..filter.clone()
        },
        total,
        rows: shown,
        courses: courses
            .into_iter()
            .map(|c| {
                let name = names.of(&c);
                (c, name)
            })
            .collect(),
    })
}

impl<'m> Row<'m> {
    fn new(
        token: Token,
        member: &'m LibraryMember,
        progress: Option<LearnerProgress>,
        status: Status,
        fraction: f64,
    ) -> Self {
        Self {
            token,
            member,
            progress,
            status,
            fraction,
            name: None,
        }
    }
}

/// A course's declared modules ([`module_hash`]es): in order, and as a set.
type Declared = (Vec<[u8; 8]>, BTreeSet<[u8; 8]>);

/// A library's learners of one course as the read model sums them up:
/// status and modules done out of modules known, as the learner's progress
/// in that course would show them, without reading their records.
struct CourseStandings {
    course: String,
    isil: String,
    summaries: HashMap<Token, CourseSummary>,
    /// Learners with modules of the course set ready, and those modules.
    assigned: BTreeMap<Token, BTreeSet<String>>,
    /// The modules learners of the library were seen in (hashes), read
    /// when first needed.
    seen: Option<BTreeSet<[u8; 8]>>,
    /// Each tenant's declared modules of the course: hashes in order, and
    /// as a set.
    declared: HashMap<String, Declared>,
}

impl CourseStandings {
    fn load(store: &Store, isil: &str, course: &str) -> Result<Self, AppError> {
        Ok(Self {
            course: course.to_owned(),
            isil: isil.to_owned(),
            summaries: store
                .library_course_summaries(isil, course)?
                .into_iter()
                .collect(),
            assigned: store.assigned_to(course)?,
            seen: None,
            declared: HashMap::new(),
        })
    }

    fn may_show(&self, token: &Token) -> bool {
        self.summaries.contains_key(token) || self.assigned.contains_key(token)
    }

    /// (status, fraction) in the course, as `course_progress` computes
    /// them from the records; `None` when the summary cannot tell (records
    /// of more than one tenant).
    fn of(
        &mut self,
        store: &Store,
        models: &TenantModels,
        token: &Token,
    ) -> Result<Option<(Status, f64)>, AppError> {
        let summary = self.summaries.get(token);
        // The model of the records' tenant declares the modules; modules
        // set ready without records count with no model.
        let none: Declared = (Vec::new(), BTreeSet::new());
        let (declared, declared_set) = match summary.map(|s| s.tenant.as_deref()) {
            Some(None) => return Ok(None),
            Some(Some(tenant)) => {
                if !self.declared.contains_key(tenant) {
                    let model = models.get(store, tenant)?;
                    let declared: Vec<[u8; 8]> = model
                        .declared_course(&self.course)
                        .map(|c| c.modules.iter().map(|m| module_hash(&m.id)).collect())
                        .unwrap_or_default();
                    let set = declared.iter().copied().collect();
                    self.declared.insert(tenant.to_owned(), (declared, set));
                }
                &self.declared[tenant]
            }
            None => &none,
        };
        let mut others: BTreeSet<[u8; 8]> = BTreeSet::new();
        if declared.is_empty() {
            let seen = match &mut self.seen {
                Some(seen) => seen,
                unread => unread.insert(
                    store
                        .modules_seen(&scope_library(&self.isil), &self.course)?
                        .iter()
                        .map(|m| module_hash(m))
                        .collect(),
                ),
            };
            others.extend(seen.iter().copied());
        }
        if let Some(summary) = summary {
            others.extend(summary.modules.iter().map(|(hash, _)| *hash));
        }
        if let Some(assigned) = self.assigned.get(token) {
            others.extend(assigned.iter().map(|m| module_hash(m)));
        }
        others.retain(|hash| !declared_set.contains(hash));
        let done = |hash: &&[u8; 8]| summary.is_some_and(|s| s.module_done(hash));
        let modules_done =
            declared.iter().filter(done).count() + others.iter().filter(done).count();
        let modules_total = declared.len() + others.len();
        let fraction = if modules_total == 0 {
            0.0
        } else {
            modules_done as u32 as f64 / modules_total as u32 as f64
        };
        let status = summary.map_or(Status::NotStarted, CourseSummary::status);
        Ok(Some((status, fraction)))
    }
}

/// Modules done out of modules known, over the shown courses.
fn progress_fraction(progress: &LearnerProgress) -> f64 {
    let (done, total) = progress.courses.iter().fold((0u32, 0u32), |(d, t), c| {
        (d + c.modules_done, t + c.modules_total)
    });
    if total == 0 {
        0.0
    } else {
        done as f64 / total as f64
    }
}

fn best_status(progress: &LearnerProgress) -> Status {
    progress
        .courses
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::NotStarted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insight::course_model::{parse_model, set_model};
    use crate::testing::{prepare, temp_store};
    use serde_json::json;

    const COURSES: [&str; 4] = [
        "https://kb.example/cursus/c0",
        "https://kb.example/cursus/c1",
        "https://kb.example/cursus/c2",
        "https://kb.example/cursus/leeg",
    ];
    const VERBS: [&str; 7] = [
        "launched",
        "initialized",
        "completed",
        "passed",
        "failed",
        "terminated",
        "experienced",
    ];

    /// xorshift64: the same statements every run.
    struct Dice(u64);
    impl Dice {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// For every learner of two libraries and every course: what the
    /// summaries say (may the learner show, status, modules done out of
    /// known) is what folding their records says, through statements of
    /// two tenants, a declared model with an undeclared module seen,
    /// voided statements and modules set ready without activity.
    #[tokio::test]
    async fn summaries_sort_and_filter_as_the_records_do() {
        let (_dir, store) = temp_store();
        let model = parse_model(
            json!({"courses": [{"id": COURSES[0], "modules": [
                {"id": format!("{}/m0", COURSES[0])},
                {"id": format!("{}/m1", COURSES[0]), "moveOn": "Passed"},
                {"id": format!("{}/m2", COURSES[0])}]}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        set_model(&store, "kb", &model, "test").await.unwrap();
        let mut dice = Dice(0x2545_f491_4f6c_dd1d);
        let mut ids = Vec::new();
        for n in 0..600u32 {
            let learner = dice.below(40);
            let course = COURSES[dice.below(3) as usize];
            let verb = VERBS[dice.below(VERBS.len() as u64) as usize];
            let library = ["NL-0001", "NL-0002"][dice.below(2) as usize];
            let tenant = if dice.below(10) == 0 { "app-x" } else { "kb" };
            let id = uuid::Uuid::from_u128(0x4000_8000_0000_0000_0000 + n as u128);
            let object = match dice.below(5) {
                0 => {
                    json!({"id": course, "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/course"}})
                }
                m => json!({"id": format!("{course}/m{}", m - 1)}),
            };
            let mut statement = json!({
                "id": id,
                "actor": {"mbox": format!("mailto:leerling{learner}@example.nl"), "name": format!("Leerling {learner}")},
                "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
                "object": object,
                "context": {"contextActivities": {"grouping": [{"id": course,
                    "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/course"}}]}},
                "timestamp": format!("2026-10-{:02}T10:00:00Z", 1 + n % 28),
            });
            if verb == "terminated" {
                statement["result"] = json!({"duration": "PT5M"});
            }
            let prepared = prepare(&store, statement, library);
            store
                .append_statements(tenant.into(), "k".into(), vec![prepared])
                .await
                .unwrap();
            ids.push((id, tenant));
        }
        // Void one statement in twelve (by its own tenant).
        for (i, (id, tenant)) in ids.iter().enumerate().filter(|(i, _)| i % 12 == 5) {
            let voiding = json!({
                "actor": {"mbox": "mailto:beheer@example.nl"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                "object": {"objectType": "StatementRef", "id": id},
                "timestamp": format!("2026-10-28T11:{:02}:00Z", i % 60),
            });
            let prepared = prepare(&store, voiding, "NL-0001");
            store
                .append_statements(tenant.to_string(), "k".into(), vec![prepared])
                .await
                .unwrap();
        }
        // Modules set ready: some of learners' courses, one never seen.
        let members = store.library_learners("NL-0001").unwrap();
        let learners: Vec<Token> = members.iter().step_by(3).map(|(t, _)| *t).collect();
        for course in &COURSES[1..] {
            crate::admin::append(
                &store,
                lrs_core::Event::ModulesAssignedV1(lrs_core::events::ModulesAssignedV1 {
                    tenant: "NL-0001".into(),
                    library: Some("NL-0001".into()),
                    learners: learners.clone(),
                    course: course.to_string(),
                    modules: vec![format!("{course}/m1"), format!("{course}/m9")],
                    ready: true,
                    assigned_micros: 1,
                    by: "test".into(),
                }),
            )
            .await
            .unwrap();
        }

        let names = Names::load(&store).unwrap();
        let models = TenantModels::default();
        let (mut summed_up, mut folded, mut assigned_only, mut done) = (0, 0, 0, 0);
        for isil in ["NL-0001", "NL-0002"] {
            let reach = Reach::Library(isil.into());
            for course in COURSES {
                let mut standings = CourseStandings::load(&store, isil, course).unwrap();
                for (token, _) in store.library_learners(isil).unwrap() {
                    let progress = learner_progress_with(
                        &store,
                        &reach,
                        &token,
                        Some(course),
                        &names,
                        &models,
                        false,
                    )
                    .unwrap();
                    let shows = progress.courses.iter().any(|c| c.course == course);
                    assert_eq!(standings.may_show(&token), shows, "{isil} {course}");
                    if !shows {
                        continue;
                    }
                    match standings.of(&store, &models, &token).unwrap() {
                        Some((status, fraction)) => {
                            assert_eq!(status, best_status(&progress), "{progress:?}");
                            assert_eq!(fraction, progress_fraction(&progress), "{progress:?}");
                            summed_up += 1;
                            if progress.courses[0].score.is_none() && status == Status::NotStarted {
                                assigned_only += 1;
                            }
                            if fraction > 0.0 {
                                done += 1;
                            }
                        }
                        None => folded += 1,
                    }
                }
            }
        }
        assert!(summed_up > 100, "{summed_up} learner-courses summed up");
        assert!(folded > 0, "records of two tenants are folded");
        assert!(assigned_only > 0 && done > 0, "{assigned_only} {done}");
        store.close().await.unwrap();
    }
}
