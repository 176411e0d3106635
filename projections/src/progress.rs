//! Learner progress, the library staff views and the monthly figures
//! (docs/progress-and-figures.md), as one fold over statements, course
//! models and assignments.
//!
//! Every statement leaves a [`StatementRecord`]: where the course model put
//! it and what it meant. Progress is aggregated from a learner's records at
//! read time (a few hundred at most); the figures are counters kept per
//! month and scope, with a count per distinct member so that voiding a
//! statement takes back exactly what it added. All of it order-independent:
//! statements that arrive late, or with old timestamps, add the same.
//!
//! Two figures depend on more than one statement: the enrolment a cmi5
//! registration makes (its first statement, by time) and the completion of
//! a course whose structure the model declares (every module satisfied by
//! its moveOn). The fold keeps them as flags on the one record that carries
//! them (`first_of_registration`, `completes_course`) and moves a flag, with
//! its figure memberships, when an earlier statement arrives or one is
//! voided. Closed months (`FiguresClosedV1`) are recorded with their
//! version, and every later statement that changes a closed month's
//! counters is counted as arriving late.

use crate::course_model::{meaning, CourseModel, ModelCache, MoveOn};
use crate::statement_index::{by_id_key, decode_by_id, tenant_hash, BY_ID};
use crate::{Op, Projection, ReadModel, TreeName};
use lrs_core::events::{ActivityNameV1, ObjectFactV1, StatementStoredV1};
use lrs_core::token::Token;
use lrs_core::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;
use uuid::Uuid;

/// Tenant → the JSON of its course model.
pub const MODELS: TreeName = "progress.models";
/// A statement's position ([`statement_record_key`]) → where its
/// [`StatementRecord`] is (what voiding takes back, found through the
/// statement index's id → position): a pointer into [`LEARNERS`], or the
/// record itself for a statement without a learner. Packed: 32 positions
/// share one stored value, and the keys arrive in order.
pub const STATEMENTS: TreeName = "progress.statements";
/// Learner token ‖ course ‖ 0 ‖ module ‖ 0 ‖ position → [`StatementRecord`]
/// (course and module empty for statements outside any course). Packed
/// ([`Projection::packed`]): stored as one value per learner and course.
pub const LEARNERS: TreeName = "progress.learners";
/// ISIL ‖ 0 ‖ learner token → [`LibraryMember`].
pub const LIBRARY: TreeName = "progress.library";
/// ISIL ‖ 0 ‖ course ‖ 0 ‖ learner token → [`CourseSummary`] of the
/// learner's records of that course naming that library. A library's
/// learners of one course, with what its learner list filters and sorts
/// on, without reading each learner's records. A new record folds into the
/// summary (rewritten only when it changes); taking a record back, or
/// moving a course completion, sums up the remaining records again.
pub const LIBRARY_COURSES: TreeName = "progress.library_courses";
/// Scope ‖ 0 ‖ course ‖ 0 ‖ module → (): modules seen in a scope.
pub const MODULES: TreeName = "progress.modules";
/// Month ‖ scope ‖ 0 ‖ figure ‖ member → (): a learner (or learner–course
/// pair) counted in that figure. Only ever read whole: resident, kept by the
/// store as key digests in memory ([`Projection::resident`]).
pub const MEMBERS: TreeName = "progress.members";
/// Month ‖ scope ‖ 0 ‖ figure [‖ course] → count (u64 BE). Resident, with
/// whole keys: a few per month, scope and course, read by prefix.
pub const COUNTERS: TreeName = "progress.counters";
/// Learner token ‖ course ‖ 0 ‖ module → [`Assignment`].
pub const ASSIGNED: TreeName = "progress.assigned";
/// Statement id ‖ tenant hash → (): voided before it arrived.
pub const VOIDED: TreeName = "progress.voided";
/// Learner token ‖ course ‖ 0 ‖ registration (16 bytes) → the
/// `progress.learners` key of the registration's first record (by time).
pub const FIRSTS: TreeName = "progress.first_of_registration";
/// Learner token ‖ course → the `progress.learners` key of the record that
/// completed the course by its declared structure.
pub const COMPLETIONS: TreeName = "progress.completions";
/// Activity id (a course or module) → [`ActivityName`]: the names of its
/// latest definition.
pub const NAMES: TreeName = "progress.names";
/// Month (`YYYYMM`) → [`ClosedMonth`] of its latest closing; month ‖
/// version (u32 BE) → [`ClosedMonth`] of each.
pub const CLOSED: TreeName = "progress.closed";
/// Month ‖ scope ‖ 0 ‖ version (u32 BE) → count (u64 BE): statements that
/// changed the month's counters after that closing.
pub const LATE: TreeName = "progress.late";

const VOIDED_VERB: &str = "http://adlnet.gov/expapi/verbs/voided";

/// The figures, as the byte that names each in [`COUNTERS`] keys.
pub mod figure {
    pub const HITS: u8 = b'h';
    pub const ACTIVE_USERS: u8 = b'a';
    pub const ENROLLED: u8 = b'e';
    pub const PARTICIPANTS_STARTED: u8 = b's';
    pub const COURSES_STARTED: u8 = b'c';
    pub const COURSES_COMPLETED: u8 = b'd';
    /// Per course (the key goes on with the course id): learner–course pairs started.
    pub const STARTED_BY_COURSE: u8 = b'C';
    /// Per course: learner–course pairs completed.
    pub const COMPLETED_BY_COURSE: u8 = b'D';
    /// Statements that mean launched (a count of statements, like hits).
    pub const LAUNCHES: u8 = b'l';
}

/// What one statement means for progress and figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementRecord {
    pub statement_id: Uuid,
    pub position: u64,
    pub tenant: String,
    pub app: Option<String>,
    pub library: Option<String>,
    pub learner: Option<Token>,
    /// [`meaning`] bits.
    pub meaning: u8,
    /// `timestamp`, else `stored`.
    pub time_micros: i64,
    pub course: Option<String>,
    pub module: Option<String>,
    /// The object is the course itself.
    pub about_course: bool,
    pub score_scaled: Option<f64>,
    pub duration_ms: Option<u64>,
    /// `context.registration` (a cmi5 registration: the learner's
    /// enrolment in the course).
    pub registration: Option<Uuid>,
    /// The first record (by time, then statement id) of its learner's
    /// registration in its course: counts as enrolling.
    pub first_of_registration: bool,
    /// The record whose statement made the last declared module of its
    /// course satisfied (by moveOn): counts as completing the course.
    pub completes_course: bool,
}

/// The names an activity's latest definition gave, and the statement
/// that first gave them (a later one with the same names changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityName {
    pub stored_micros: i64,
    pub position: u64,
    /// (language tag, name).
    pub names: Vec<(String, String)>,
}

/// One closing of a month's figures: where its `FiguresClosedV1` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedMonth {
    pub version: u32,
    pub position: u64,
    pub closed_micros: i64,
}

/// A learner of a library: how many of their statements name it, and the
/// latest (for showing their name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryMember {
    pub statements: u32,
    pub last_position: u64,
    pub last_micros: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub tenant: String,
    pub library: Option<String>,
    pub by: String,
    pub assigned_micros: i64,
}

#[derive(Default)]
pub struct Progress {
    models: ModelCache,
}

impl Projection for Progress {
    fn name(&self) -> &'static str {
        "progress"
    }

    fn version(&self) -> u32 {
        // 6: `progress.learners` packed (one stored value per learner and
        // course); `progress.statements` by position, packed
        // 7: `progress.library_courses`
        // 8: `progress.library_courses` holds a [`CourseSummary`]
        // 9: `progress.names` keeps the statement that first gave the
        // current names (a repeat of the same names writes nothing)
        // 10: `progress.members` resident (in memory, docs/adr/0008)
        // 11: `progress.counters` resident too, with whole keys (docs/adr/0011)
        11
    }

    fn resident(&self) -> &'static [(TreeName, crate::Resident)] {
        &[
            (
                MEMBERS,
                crate::Resident {
                    keys: crate::ResidentKeys::Digests,
                    value_len: 0,
                },
            ),
            (
                COUNTERS,
                crate::Resident {
                    keys: crate::ResidentKeys::Whole,
                    value_len: 8,
                },
            ),
        ]
    }

    fn packed(&self) -> &'static [(TreeName, crate::BucketOf)] {
        &[
            (LEARNERS, learner_course_bucket),
            (STATEMENTS, position_bucket),
        ]
    }

    fn trees(&self) -> &'static [TreeName] {
        &[
            MODELS,
            STATEMENTS,
            LEARNERS,
            LIBRARY,
            LIBRARY_COURSES,
            MODULES,
            MEMBERS,
            COUNTERS,
            ASSIGNED,
            VOIDED,
            FIRSTS,
            COMPLETIONS,
            NAMES,
            CLOSED,
            LATE,
        ]
    }

    fn apply(&self, position: u64, event: &Event, state: &dyn ReadModel, out: &mut Vec<Op>) {
        let mut edits = Edits::new(state);
        match event {
            Event::CourseModelDefinedV1(defined) => {
                edits.put(
                    MODELS,
                    defined.tenant.as_bytes().to_vec(),
                    defined.model.clone().into_bytes(),
                );
            }
            Event::ModulesAssignedV1(assigned) => {
                for learner in &assigned.learners {
                    for module in &assigned.modules {
                        let key = assigned_key(learner, &assigned.course, module);
                        if assigned.ready {
                            let value = Assignment {
                                tenant: assigned.tenant.clone(),
                                library: assigned.library.clone(),
                                by: assigned.by.clone(),
                                assigned_micros: assigned.assigned_micros,
                            };
                            edits.put(ASSIGNED, key, postcard::to_stdvec(&value).expect("encodes"));
                        } else {
                            edits.delete(ASSIGNED, key);
                        }
                    }
                }
            }
            Event::PersonErasedV1(erased) => forget_learner(&erased.token, &mut edits),
            Event::FiguresClosedV1(closed) => {
                if let Some(month) = month_key_of_text(&closed.month) {
                    let record = ClosedMonth {
                        version: closed.version,
                        position,
                        closed_micros: closed.closed_micros,
                    };
                    let value = postcard::to_stdvec(&record).expect("encodes");
                    let newer = edits
                        .get(CLOSED, &month)
                        .and_then(|v| postcard::from_bytes::<ClosedMonth>(&v).ok())
                        .is_none_or(|latest| latest.version <= closed.version);
                    if newer {
                        edits.put(CLOSED, month.to_vec(), value.clone());
                    }
                    edits.put(
                        CLOSED,
                        [month.as_slice(), &closed.version.to_be_bytes()].concat(),
                        value,
                    );
                }
            }
            _ => {
                if let (Some(stored), Some(origin)) =
                    (event.stored_statement(), event.statement_origin())
                {
                    self.apply_statement(
                        position,
                        stored,
                        origin,
                        event.statement_context(),
                        event.statement_names(),
                        &mut edits,
                    );
                    count_late(&mut edits);
                }
            }
        }
        edits.finish(out);
    }
}

impl Progress {
    fn model_of(&self, tenant: &str, edits: &Edits) -> std::sync::Arc<CourseModel> {
        let model_json = edits
            .get(MODELS, tenant.as_bytes())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        self.models.get(model_json.as_deref())
    }

    fn apply_statement(
        &self,
        position: u64,
        stored: &StatementStoredV1,
        origin: &lrs_core::events::OriginV1,
        context: Option<&lrs_core::events::ContextFactsV1>,
        names: &[ActivityNameV1],
        edits: &mut Edits,
    ) {
        let tenant = tenant_hash(&stored.tenant);
        if stored.facts.verb_id == VOIDED_VERB {
            if let ObjectFactV1::StatementRef { id } = &stored.facts.object {
                // The target's position from the statement index (folded
                // before this projection); its record, if it was folded.
                let target = edits
                    .get(BY_ID, &by_id_key(id, &tenant))
                    .and_then(|value| decode_by_id(&value))
                    .map(|(position, _)| statement_record_key(position));
                match target.and_then(|key| Some((edits.get(STATEMENTS, &key)?, key))) {
                    Some((bytes, key)) => {
                        if let Some(record) = stored_record(&bytes, edits) {
                            let model = self.model_of(&record.tenant, edits);
                            remove_statement(&record, &model, edits);
                        }
                        edits.delete(STATEMENTS, key);
                    }
                    None => edits.put(VOIDED, statement_key(id, &tenant), vec![]),
                }
                return;
            }
        }
        let key = statement_key(&stored.statement_id, &tenant);
        let model = self.model_of(&stored.tenant, edits);
        let record = record_of(position, stored, origin, context, &model);
        // The names count whether or not the statement is voided (a
        // definition was received either way, in whatever order).
        remember_names(&record, stored.stored_micros, names, edits);
        // Voided before it arrived; or folded already (a replay after a
        // crash between these writes and the checkpoint: ids are unique per
        // tenant, so a record means this very event): nothing to add.
        let record_key = statement_record_key(position);
        if edits.get(VOIDED, &key).is_some() || edits.get(STATEMENTS, &record_key).is_some() {
            return;
        }
        // A learner's statement points at its record in `progress.learners`
        // (one copy of the record); one without a learner keeps it here.
        let value = match learner_record_key(&record) {
            Some(key) => [&[POINTER][..], &key].concat(),
            None => [
                &[RECORD][..],
                &postcard::to_stdvec(&record).expect("encodes"),
            ]
            .concat(),
        };
        edits.put(STATEMENTS, record_key, value);
        add_statement(record, &model, edits);
    }
}

/// Keeps the names the statement gives its course and module, when its
/// definition is the latest (by `stored`, then position) and names them
/// differently from the last one: most statements repeat their course's
/// names, and a key rewritten with the same names would cost sled a write
/// each time (docs/performance.md, "Lever 10").
fn remember_names(
    record: &StatementRecord,
    stored_micros: i64,
    names: &[ActivityNameV1],
    edits: &mut Edits,
) {
    for id in [record.course.as_deref(), record.module.as_deref()]
        .into_iter()
        .flatten()
    {
        let Some(named) = names.iter().find(|n| n.id == id) else {
            continue;
        };
        let changed = edits
            .get(NAMES, id.as_bytes())
            .and_then(|v| postcard::from_bytes::<ActivityName>(&v).ok())
            .is_none_or(|known| {
                (known.stored_micros, known.position) <= (stored_micros, record.position)
                    && known.names != named.names
            });
        if changed {
            let value = ActivityName {
                stored_micros,
                position: record.position,
                names: named.names.clone(),
            };
            edits.put(
                NAMES,
                id.as_bytes().to_vec(),
                postcard::to_stdvec(&value).expect("encodes"),
            );
        }
    }
}

/// The order in which "first" and "earliest" are meant: time, then
/// statement id (so that arrival order never matters).
fn order_of(record: &StatementRecord) -> (i64, Uuid) {
    (record.time_micros, record.statement_id)
}

/// Folds in a new statement's record: its own share, then what it changes
/// of its registration's enrolment and its course's completion.
fn add_statement(mut record: StatementRecord, model: &CourseModel, edits: &mut Edits) {
    let key = learner_record_key(&record);
    let mut dethroned = None;
    if let (Some(key), Some(first)) = (&key, first_key(&record)) {
        match edits.get(FIRSTS, &first) {
            None => {
                record.first_of_registration = true;
                edits.put(FIRSTS, first, key.clone());
            }
            Some(current_key) => {
                let current = edits
                    .get(LEARNERS, &current_key)
                    .and_then(|v| postcard::from_bytes::<StatementRecord>(&v).ok());
                if current.is_none_or(|current| order_of(&record) < order_of(&current)) {
                    record.first_of_registration = true;
                    edits.put(FIRSTS, first, key.clone());
                    dethroned = Some(current_key);
                }
            }
        }
    }
    contribute(&record, 1, edits);
    if let Some(old) = dethroned {
        set_flags(&old, edits, |r| r.first_of_registration = false);
    }
    if changes_structure(&record, model) {
        complete_by_structure(&record, model, edits);
    }
}

/// Takes back a voided statement's record, and hands its registration's
/// enrolment or its course's completion to the record that carries it now.
fn remove_statement(record: &StatementRecord, model: &CourseModel, edits: &mut Edits) {
    contribute(record, -1, edits);
    if record.first_of_registration {
        if let (Some(first), Some(learner), Some(course)) =
            (first_key(record), record.learner, record.course.as_deref())
        {
            let next = edits
                .scan_prefix(LEARNERS, &learner_prefix(&learner, Some(course)))
                .into_iter()
                .filter_map(|(key, value)| {
                    let other = postcard::from_bytes::<StatementRecord>(&value).ok()?;
                    (other.registration == record.registration).then(|| (order_of(&other), key))
                })
                .min();
            match next {
                Some((_, key)) => {
                    edits.put(FIRSTS, first, key.clone());
                    set_flags(&key, edits, |r| r.first_of_registration = true);
                }
                None => edits.delete(FIRSTS, first),
            }
        }
    }
    if record.completes_course || changes_structure(record, model) {
        complete_by_structure(record, model, edits);
    }
}

/// The `progress.first_of_registration` key of a record's registration.
fn first_key(record: &StatementRecord) -> Option<Vec<u8>> {
    let learner = record.learner?;
    let course = record.course.as_deref()?;
    let registration = record.registration?;
    Some(
        [
            learner_prefix(&learner, Some(course)).as_slice(),
            registration.as_bytes(),
        ]
        .concat(),
    )
}

/// Whether a record can change its course's completion by structure: a
/// completion or pass of a module of a course whose modules are declared.
fn changes_structure(record: &StatementRecord, model: &CourseModel) -> bool {
    record.learner.is_some()
        && record.module.is_some()
        && record.meaning & (meaning::COMPLETED | meaning::PASSED) != 0
        && record
            .course
            .as_deref()
            .is_some_and(|course| model.structure(course).is_some())
}

/// Finds which record (if any) completes the learner's course by its
/// declared structure, every module satisfied by its moveOn, the course
/// completed when the last of them was, and moves the flag there.
fn complete_by_structure(record: &StatementRecord, model: &CourseModel, edits: &mut Edits) {
    let (Some(learner), Some(course)) = (record.learner, record.course.as_deref()) else {
        return;
    };
    let completing = model.structure(course).and_then(|modules| {
        let records: Vec<(Vec<u8>, StatementRecord)> = edits
            .scan_prefix(LEARNERS, &learner_prefix(&learner, Some(course)))
            .into_iter()
            .filter_map(|(key, value)| Some((key, postcard::from_bytes(&value).ok()?)))
            .collect();
        let earliest = |module: &str, bit: u8| {
            records
                .iter()
                .filter(|(_, r)| r.module.as_deref() == Some(module) && r.meaning & bit != 0)
                .map(|(key, r)| (order_of(r), key))
                .min()
        };
        let mut last: Option<((i64, Uuid), &Vec<u8>)> = None;
        for (module, move_on) in modules {
            if *move_on == MoveOn::NotApplicable {
                continue;
            }
            let satisfied = move_on.satisfied_at(
                earliest(module, meaning::COMPLETED),
                earliest(module, meaning::PASSED),
            )?;
            last = last.max(Some(satisfied));
        }
        last.map(|(_, key)| key.clone())
    });
    let completion = [learner.0.as_slice(), course.as_bytes()].concat();
    let current = edits.get(COMPLETIONS, &completion);
    if current == completing {
        return;
    }
    if let Some(old) = &current {
        set_flags(old, edits, |r| r.completes_course = false);
    }
    match completing {
        Some(key) => {
            set_flags(&key, edits, |r| r.completes_course = true);
            edits.put(COMPLETIONS, completion, key);
        }
        None => edits.delete(COMPLETIONS, completion),
    }
}

/// Changes the flags of a stored learner record, and its figure
/// memberships with them: those it now supports are added, those it no
/// longer supports are taken back unless another record supports them.
fn set_flags(key: &[u8], edits: &mut Edits, change: impl FnOnce(&mut StatementRecord)) {
    let Some(old) = edits
        .get(LEARNERS, key)
        .and_then(|v| postcard::from_bytes::<StatementRecord>(&v).ok())
    else {
        return;
    };
    let mut new = old.clone();
    change(&mut new);
    if new == old {
        return;
    }
    edits.put(
        LEARNERS,
        key.to_vec(),
        postcard::to_stdvec(&new).expect("encodes"),
    );
    if new.completes_course != old.completes_course {
        if let (Some(learner), Some(course), Some(library)) =
            (new.learner, &new.course, &new.library)
        {
            sum_up_again(&learner, course, library, edits);
        }
    }
    let after = memberships_of(&new);
    add_memberships(&after, edits);
    let lost: Vec<(Vec<u8>, Vec<Vec<u8>>)> = memberships_of(&old)
        .into_iter()
        .filter(|(member, _)| after.iter().all(|(m, _)| m != member))
        .collect();
    if let Some(learner) = new.learner {
        drop_unsupported(&learner, lost, edits);
    }
}

/// Adds the figure memberships not yet counted.
fn add_memberships(memberships: &[(Vec<u8>, Vec<Vec<u8>>)], edits: &mut Edits) {
    for (member, counters) in memberships {
        if edits.get(MEMBERS, member).is_none() {
            edits.put(MEMBERS, member.clone(), vec![]);
            for counter in counters {
                edits.add_counter(counter.clone(), 1);
            }
        }
    }
}

/// Takes back the memberships no record of the learner supports any more.
/// Voiding and moved flags are rare, a statement is not: only then are the
/// learner's records read.
fn drop_unsupported(learner: &Token, candidates: Vec<(Vec<u8>, Vec<Vec<u8>>)>, edits: &mut Edits) {
    if candidates.is_empty() {
        return;
    }
    let mut still: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    for (_, value) in edits.scan_prefix(LEARNERS, &learner.0) {
        if let Ok(other) = postcard::from_bytes::<StatementRecord>(&value) {
            still.extend(memberships_of(&other).into_iter().map(|(m, _)| m));
        }
    }
    for (member, counters) in candidates {
        if !still.contains(&member) && edits.get(MEMBERS, &member).is_some() {
            edits.delete(MEMBERS, member);
            for counter in counters {
                edits.add_counter(counter, -1);
            }
        }
    }
}

/// Counts the statement just folded as late in every closed month whose
/// counters it changed (per scope, under the month's latest closing).
fn count_late(edits: &mut Edits) {
    let mut touched: std::collections::BTreeSet<([u8; 6], Vec<u8>)> = Default::default();
    for ((tree, key), value) in &edits.changes {
        if *tree != COUNTERS || key.len() < 8 {
            continue;
        }
        if edits.state.get(COUNTERS, key) == *value {
            continue;
        }
        let month: [u8; 6] = key[..6].try_into().expect("6 bytes");
        let rest = &key[6..];
        let Some(split) = rest.iter().position(|&b| b == 0) else {
            continue;
        };
        touched.insert((month, rest[..split].to_vec()));
    }
    for (month, scope) in touched {
        let Some(closed) = edits
            .get(CLOSED, &month)
            .and_then(|v| postcard::from_bytes::<ClosedMonth>(&v).ok())
        else {
            continue;
        };
        let key = late_key(&month, &scope, closed.version);
        let count = edits.get(LATE, &key).map(|v| decode_u64(&v)).unwrap_or(0) + 1;
        edits.put(LATE, key, count.to_be_bytes().to_vec());
    }
}

/// The `progress.late` key of a month, scope and closing version.
pub fn late_key(month: &[u8; 6], scope: &[u8], version: u32) -> Vec<u8> {
    [month.as_slice(), scope, &[0], &version.to_be_bytes()].concat()
}

/// `YYYYMM` of a `YYYY-MM` text.
pub fn month_key_of_text(text: &str) -> Option<[u8; 6]> {
    let (year, month) = text.split_once('-')?;
    let year: i32 = year.parse().ok()?;
    let month: u32 = month.parse().ok()?;
    ((1..=12).contains(&month) && (0..=9999).contains(&year)).then(|| month_key_of(year, month))
}

/// Tags of a `progress.statements` value.
const RECORD: u8 = 0;
const POINTER: u8 = 1;

/// The record a `progress.statements` value holds or points at.
fn stored_record(value: &[u8], edits: &Edits) -> Option<StatementRecord> {
    let (tag, rest) = value.split_first()?;
    let bytes = match *tag {
        POINTER => edits.get(LEARNERS, rest)?,
        RECORD => rest.to_vec(),
        _ => return None,
    };
    postcard::from_bytes(&bytes).ok()
}

/// Where a learner's statement record lives in `progress.learners`.
fn learner_record_key(record: &StatementRecord) -> Option<Vec<u8>> {
    let learner = record.learner?;
    Some(learner_key(
        &learner,
        record.course.as_deref().unwrap_or(""),
        record.module.as_deref(),
        record.position,
    ))
}

/// Classifies one statement with a course model.
pub fn record_of(
    position: u64,
    stored: &StatementStoredV1,
    origin: &lrs_core::events::OriginV1,
    context: Option<&lrs_core::events::ContextFactsV1>,
    model: &CourseModel,
) -> StatementRecord {
    let bits = model.meaning(stored);
    let placement = model.place(stored, context, bits);
    let result = stored.facts.result.as_ref();
    StatementRecord {
        statement_id: stored.statement_id,
        position,
        tenant: stored.tenant.clone(),
        app: origin.app.clone(),
        library: origin.library.clone(),
        learner: stored.facts.actor,
        meaning: bits,
        time_micros: stored
            .facts
            .timestamp_micros
            .unwrap_or(stored.stored_micros),
        course: placement.as_ref().map(|p| p.course.clone()),
        module: placement.as_ref().and_then(|p| p.module.clone()),
        about_course: placement.as_ref().is_some_and(|p| p.about_course),
        score_scaled: result.and_then(|r| r.score_scaled),
        duration_ms: result
            .and_then(|r| r.duration.as_deref())
            .and_then(duration_ms),
        registration: stored.facts.registration,
        first_of_registration: false,
        completes_course: false,
    }
}

/// The figure memberships a statement supports: (member key, the counters
/// that count that member).
fn memberships_of(record: &StatementRecord) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    let Some(learner) = record.learner else {
        return vec![];
    };
    let month = month_key(record.time_micros);
    let in_course = record.course.is_some();
    let enrolled =
        in_course && (record.meaning & meaning::ENROLLED != 0 || record.first_of_registration);
    let started = in_course && (record.meaning & !meaning::ENROLLED != 0 || record.meaning == 0);
    let completed = in_course
        && (record.about_course && record.meaning & (meaning::COMPLETED | meaning::PASSED) != 0
            || record.completes_course);
    let mut pair = learner.0.to_vec();
    if let Some(course) = &record.course {
        pair.extend_from_slice(course.as_bytes());
    }
    let mut found = Vec::new();
    for scope in scopes_of(record) {
        let mut member = |figure: u8, member: &[u8], per_course: Option<u8>| {
            let mut counters = vec![counter_key(&month, &scope, figure, None)];
            if let (Some(per_course), Some(course)) = (per_course, &record.course) {
                counters.push(counter_key(&month, &scope, per_course, Some(course)));
            }
            found.push((member_key(&month, &scope, figure, member), counters));
        };
        member(figure::ACTIVE_USERS, &learner.0, None);
        if enrolled {
            member(figure::ENROLLED, &learner.0, None);
        }
        if started {
            member(figure::PARTICIPANTS_STARTED, &learner.0, None);
            member(
                figure::COURSES_STARTED,
                &pair,
                Some(figure::STARTED_BY_COURSE),
            );
        }
        if completed {
            member(
                figure::COURSES_COMPLETED,
                &pair,
                Some(figure::COMPLETED_BY_COURSE),
            );
        }
    }
    found
}

/// Adds (`sign` 1) or takes back (`sign` -1) one statement's share of every
/// read model.
///
/// A figure member (a learner, a learner–course pair) is written once, when
/// its first statement arrives; later statements only read it. Taking a
/// statement back asks the learner's remaining records whether any still
/// supports the member: voiding is rare, a statement is not.
fn contribute(record: &StatementRecord, sign: i64, edits: &mut Edits) {
    let month = month_key(record.time_micros);
    let scopes = scopes_of(record);
    for scope in &scopes {
        edits.add_counter(counter_key(&month, scope, figure::HITS, None), sign);
        if record.meaning & meaning::LAUNCHED != 0 {
            edits.add_counter(counter_key(&month, scope, figure::LAUNCHES, None), sign);
        }
    }
    let (Some(learner), Some(key)) = (record.learner, learner_record_key(record)) else {
        return;
    };
    if sign > 0 {
        edits.put(LEARNERS, key, postcard::to_stdvec(record).expect("encodes"));
        add_memberships(&memberships_of(record), edits);
        if let (Some(course), Some(module)) = (&record.course, &record.module) {
            for scope in &scopes {
                let key = module_key(scope, course, module);
                if edits.get(MODULES, &key).is_none() {
                    edits.put(MODULES, key, vec![]);
                }
            }
        }
    } else {
        edits.delete(LEARNERS, key);
        drop_unsupported(&learner, memberships_of(record), edits);
    }
    if let Some(library) = &record.library {
        let key = library_key(library, &learner);
        let current = edits
            .get(LIBRARY, &key)
            .and_then(|bytes| postcard::from_bytes::<LibraryMember>(&bytes).ok());
        let next = match (current, sign > 0) {
            (None, true) => Some(LibraryMember {
                statements: 1,
                last_position: record.position,
                last_micros: record.time_micros,
            }),
            (Some(mut member), true) => {
                member.statements += 1;
                member.last_position = member.last_position.max(record.position);
                member.last_micros = member.last_micros.max(record.time_micros);
                Some(member)
            }
            (Some(mut member), false) if member.statements > 1 => {
                member.statements -= 1;
                Some(member)
            }
            _ => None,
        };
        match next {
            Some(member) => edits.put(LIBRARY, key, postcard::to_stdvec(&member).expect("encodes")),
            None => edits.delete(LIBRARY, key),
        }
        if let Some(course) = &record.course {
            if sign > 0 {
                let key = library_course_key(library, course, &learner);
                let before = edits.get(LIBRARY_COURSES, &key);
                let mut summary = before
                    .as_deref()
                    .and_then(|bytes| postcard::from_bytes::<CourseSummary>(bytes).ok())
                    .unwrap_or_else(|| CourseSummary::first(record));
                summary.add(record);
                let after = postcard::to_stdvec(&summary).expect("encodes");
                if before.as_ref() != Some(&after) {
                    edits.put(LIBRARY_COURSES, key, after);
                }
            } else {
                sum_up_again(&learner, course, library, edits);
            }
        }
    }
}

/// Sums up a learner's records of a course that name a library afresh
/// (after one was taken back or changed its flags): writes the
/// [`CourseSummary`], or deletes it when none is left.
fn sum_up_again(learner: &Token, course: &str, library: &str, edits: &mut Edits) {
    let key = library_course_key(library, course, learner);
    let records: Vec<StatementRecord> = edits
        .scan_prefix(LEARNERS, &learner_prefix(learner, Some(course)))
        .into_iter()
        .filter_map(|(_, v)| postcard::from_bytes::<StatementRecord>(&v).ok())
        .filter(|r| r.library.as_deref() == Some(library))
        .collect();
    match CourseSummary::of(&records) {
        Some(summary) => {
            let after = postcard::to_stdvec(&summary).expect("encodes");
            if edits.get(LIBRARY_COURSES, &key).as_ref() != Some(&after) {
                edits.put(LIBRARY_COURSES, key, after);
            }
        }
        None => edits.delete(LIBRARY_COURSES, key),
    }
}

/// Drops what progress held about an erased person: their records, figure
/// memberships, library membership and assignments. The counters stay (the
/// figures do not change), and each of their statements keeps an anonymous
/// record in `progress.statements`, so voiding one later still takes back
/// its hit (their memberships it cannot: nobody knows any more whose it was).
/// No later statement carries their token: a returning person is a new one.
fn forget_learner(token: &Token, edits: &mut Edits) {
    for (key, value) in edits.state.scan_prefix(LEARNERS, &token.0) {
        edits.delete(LEARNERS, key);
        let Ok(record) = postcard::from_bytes::<StatementRecord>(&value) else {
            continue;
        };
        for (member, _) in memberships_of(&record) {
            edits.delete(MEMBERS, member);
        }
        if let Some(library) = &record.library {
            edits.delete(LIBRARY, library_key(library, token));
            if let Some(course) = &record.course {
                edits.delete(LIBRARY_COURSES, library_course_key(library, course, token));
            }
        }
        let key = statement_record_key(record.position);
        let anonymous = StatementRecord {
            learner: None,
            first_of_registration: false,
            completes_course: false,
            ..record
        };
        edits.put(
            STATEMENTS,
            key,
            [
                &[RECORD][..],
                &postcard::to_stdvec(&anonymous).expect("encodes"),
            ]
            .concat(),
        );
    }
    for tree in [ASSIGNED, FIRSTS, COMPLETIONS] {
        for (key, _) in edits.scan_prefix(tree, &token.0) {
            edits.delete(tree, key);
        }
    }
}

/// The figure scopes a statement counts in: everything, its library, its app.
pub fn scopes_of(record: &StatementRecord) -> Vec<Vec<u8>> {
    let mut scopes = vec![b"*".to_vec()];
    if let Some(library) = &record.library {
        scopes.push(scope_library(library));
    }
    if let Some(app) = &record.app {
        scopes.push(scope_app(app));
    }
    scopes
}

pub fn scope_total() -> Vec<u8> {
    b"*".to_vec()
}

pub fn scope_library(isil: &str) -> Vec<u8> {
    [b"l:".as_slice(), isil.as_bytes()].concat()
}

pub fn scope_app(appid: &str) -> Vec<u8> {
    [b"a:".as_slice(), appid.as_bytes()].concat()
}

/// The [`STATEMENTS`] key of the statement at `position`: position / 32
/// (u64 BE) ‖ position % 32, so that 32 positions share a bucket.
pub fn statement_record_key(position: u64) -> Vec<u8> {
    let mut key = (position >> 5).to_be_bytes().to_vec();
    key.push((position & 31) as u8);
    key
}

/// The bucket of a [`STATEMENTS`] key: its first 8 bytes.
fn position_bucket(key: &[u8]) -> Option<usize> {
    (key.len() == 9).then_some(8)
}

pub fn statement_key(id: &Uuid, tenant: &[u8; 8]) -> Vec<u8> {
    [id.as_bytes().as_slice(), tenant].concat()
}

/// The prefix of one learner's records, or of one course of theirs.
pub fn learner_prefix(learner: &Token, course: Option<&str>) -> Vec<u8> {
    let mut key = learner.0.to_vec();
    if let Some(course) = course {
        key.extend_from_slice(course.as_bytes());
        key.push(0);
    }
    key
}

/// The bucket of a `progress.learners` key: learner token ‖ course ‖ 0.
fn learner_course_bucket(key: &[u8]) -> Option<usize> {
    let course_end = key.get(16..)?.iter().position(|&b| b == 0)?;
    Some(16 + course_end + 1)
}

fn learner_key(learner: &Token, course: &str, module: Option<&str>, position: u64) -> Vec<u8> {
    let mut key = learner_prefix(learner, Some(course));
    key.extend_from_slice(module.unwrap_or("").as_bytes());
    key.push(0);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

pub fn library_key(isil: &str, learner: &Token) -> Vec<u8> {
    [isil.as_bytes(), &[0], &learner.0].concat()
}

pub fn library_prefix(isil: &str) -> Vec<u8> {
    [isil.as_bytes(), &[0]].concat()
}

pub fn library_course_key(isil: &str, course: &str, learner: &Token) -> Vec<u8> {
    [&library_course_prefix(isil, course)[..], &learner.0].concat()
}

pub fn library_course_prefix(isil: &str, course: &str) -> Vec<u8> {
    [&library_prefix(isil)[..], course.as_bytes(), &[0]].concat()
}

pub fn module_key(scope: &[u8], course: &str, module: &str) -> Vec<u8> {
    [scope, &[0], course.as_bytes(), &[0], module.as_bytes()].concat()
}

pub fn module_prefix(scope: &[u8], course: &str) -> Vec<u8> {
    [scope, &[0], course.as_bytes(), &[0]].concat()
}

pub fn assigned_key(learner: &Token, course: &str, module: &str) -> Vec<u8> {
    [
        learner.0.as_slice(),
        course.as_bytes(),
        &[0],
        module.as_bytes(),
    ]
    .concat()
}

pub fn member_key(month: &[u8; 6], scope: &[u8], figure: u8, member: &[u8]) -> Vec<u8> {
    [month.as_slice(), scope, &[0, figure], member].concat()
}

pub fn counter_key(month: &[u8; 6], scope: &[u8], figure: u8, course: Option<&str>) -> Vec<u8> {
    [
        month.as_slice(),
        scope,
        &[0, figure],
        course.unwrap_or("").as_bytes(),
    ]
    .concat()
}

/// The Dutch calendar month (Europe/Amsterdam) of an instant.
pub fn month_of_micros(micros: i64) -> (i32, u32) {
    use chrono::{Datelike, TimeZone};
    let utc = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let local = chrono_tz::Europe::Amsterdam.from_utc_datetime(&utc.naive_utc());
    (local.year(), local.month())
}

/// `YYYYMM`, the month part of figure keys.
pub fn month_key(micros: i64) -> [u8; 6] {
    let (year, month) = month_of_micros(micros);
    month_key_of(year, month)
}

pub fn month_key_of(year: i32, month: u32) -> [u8; 6] {
    let text = format!("{:04}{:02}", year.clamp(0, 9999), month);
    text.as_bytes().try_into().expect("6 digits")
}

/// An ISO 8601 duration (`PT1H2M3.5S`, `P1DT2H`) in milliseconds. Years and
/// months have no fixed length: such a duration is not counted.
pub fn duration_ms(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, time),
        None => (rest, ""),
    };
    let mut total = 0f64;
    let mut number = String::new();
    for c in date.chars() {
        match c {
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            'W' => total += number.parse::<f64>().ok()? * 7.0 * 86_400_000.0,
            'D' => total += number.parse::<f64>().ok()? * 86_400_000.0,
            _ => return None,
        }
        if c.is_ascii_alphabetic() {
            number.clear();
        }
    }
    for c in time.chars() {
        match c {
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            'H' => total += number.parse::<f64>().ok()? * 3_600_000.0,
            'M' => total += number.parse::<f64>().ok()? * 60_000.0,
            'S' => total += number.parse::<f64>().ok()? * 1000.0,
            _ => return None,
        }
        if c.is_ascii_alphabetic() {
            number.clear();
        }
    }
    (number.is_empty() && total.is_finite() && total >= 0.0).then_some(total.round() as u64)
}

/// Changes made while folding one event, read back by the rest of the fold
/// (the store applies ops only after `apply` returns).
struct Edits<'a> {
    state: &'a dyn ReadModel,
    changes: BTreeMap<(TreeName, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> Edits<'a> {
    fn new(state: &'a dyn ReadModel) -> Self {
        Self {
            state,
            changes: BTreeMap::new(),
        }
    }

    fn get(&self, tree: TreeName, key: &[u8]) -> Option<Vec<u8>> {
        match self.changes.get(&(tree, key.to_vec())) {
            Some(change) => change.clone(),
            None => self.state.get(tree, key),
        }
    }

    /// Every key and value under `prefix` as they are with the changes
    /// made so far (the state's, overlaid with this fold's).
    fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut found: BTreeMap<Vec<u8>, Vec<u8>> =
            self.state.scan_prefix(tree, prefix).into_iter().collect();
        for ((_, key), change) in self
            .changes
            .range((tree, prefix.to_vec())..)
            .take_while(|((t, k), _)| *t == tree && k.starts_with(prefix))
        {
            match change {
                Some(value) => found.insert(key.clone(), value.clone()),
                None => found.remove(key),
            };
        }
        found.into_iter().collect()
    }

    fn put(&mut self, tree: TreeName, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert((tree, key), Some(value));
    }

    fn delete(&mut self, tree: TreeName, key: Vec<u8>) {
        self.changes.insert((tree, key), None);
    }

    fn add_counter(&mut self, key: Vec<u8>, delta: i64) {
        let current = self
            .get(COUNTERS, &key)
            .map(|v| decode_u64(&v))
            .unwrap_or(0);
        let next = (current as i64 + delta).max(0) as u64;
        if next == 0 {
            self.delete(COUNTERS, key);
        } else {
            self.put(COUNTERS, key, next.to_be_bytes().to_vec());
        }
    }

    fn finish(self, out: &mut Vec<Op>) {
        for ((tree, key), change) in self.changes {
            out.push(match change {
                Some(value) => Op::Put { tree, key, value },
                None => Op::Delete { tree, key },
            });
        }
    }
}

/// A big-endian count of 4 or 8 bytes.
pub fn decode_u64(bytes: &[u8]) -> u64 {
    match bytes.len() {
        4 => u32::from_be_bytes(bytes.try_into().expect("4 bytes")) as u64,
        8 => u64::from_be_bytes(bytes.try_into().expect("8 bytes")),
        _ => 0,
    }
}

/// A status, in increasing order of progress (`Failed` below `Completed`:
/// completing after failing is progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    NotStarted,
    Enrolled,
    InProgress,
    Failed,
    Completed,
    Passed,
}

/// Progress in one module, or in a course itself, from its records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub status: Status,
    pub score_scaled: Option<f64>,
    pub time_ms: u64,
    pub last_micros: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CourseTally {
    pub course: String,
    /// The course's own records (the object is the course, or no module).
    pub own: Tally,
    /// Its status: passed / completed / failed from the course's own
    /// records, completed (at least) when its declared modules are all
    /// satisfied, else in progress if anything happened in it, else enrolled.
    pub status: Status,
    /// Completed by its declared structure (every module's moveOn met).
    pub completed_by_structure: bool,
    pub modules: BTreeMap<String, Tally>,
    /// Own `ended` durations plus every module's time.
    pub time_ms: u64,
    pub last_micros: Option<i64>,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotStarted => "not_started",
            Status::Enrolled => "enrolled",
            Status::InProgress => "in_progress",
            Status::Failed => "failed",
            Status::Completed => "completed",
            Status::Passed => "passed",
        }
    }

    /// Done: completed or passed.
    pub fn is_done(self) -> bool {
        matches!(self, Status::Completed | Status::Passed)
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "not_started" => Status::NotStarted,
            "enrolled" => Status::Enrolled,
            "in_progress" => Status::InProgress,
            "failed" => Status::Failed,
            "completed" => Status::Completed,
            "passed" => Status::Passed,
            _ => {
                return Err(format!(
                    "'{text}' is not a status: one of not_started, enrolled, in_progress, failed, completed, passed"
                ))
            }
        })
    }
}

fn status_of(bits: u8, anything: bool) -> Status {
    if bits & meaning::PASSED != 0 {
        Status::Passed
    } else if bits & meaning::COMPLETED != 0 {
        Status::Completed
    } else if bits & meaning::FAILED != 0 {
        Status::Failed
    } else if anything {
        Status::InProgress
    } else if bits & meaning::ENROLLED != 0 {
        Status::Enrolled
    } else {
        Status::NotStarted
    }
}

/// Whether a record's meaning counts as something happening (more than
/// enrolling; a statement the model gives no meaning counts too).
fn means_anything(bits: u8) -> bool {
    bits & !meaning::ENROLLED != 0 || bits == 0
}

/// A course's status from its own records' status, its modules' and
/// whether its declared structure is complete: passed / completed / failed
/// from its own records, completed (at least) by structure, else in
/// progress if anything happened in it, else enrolled.
fn course_status(
    own: Status,
    modules: impl Iterator<Item = Status> + Clone,
    structural: bool,
) -> Status {
    let anything = own >= Status::InProgress || modules.clone().any(|m| m >= Status::InProgress);
    let enrolled = own == Status::Enrolled || modules.clone().any(|m| m == Status::Enrolled);
    match own {
        _ if structural => own.max(Status::Completed),
        Status::Passed | Status::Completed | Status::Failed => own,
        _ if anything => Status::InProgress,
        _ if enrolled => Status::Enrolled,
        _ => Status::NotStarted,
    }
}

/// What a learner's records of one course say, folded without their
/// times, scores and durations: enough for a status and for modules done
/// out of modules known (a library's learner list filters and sorts on
/// these). Order-independent, like [`course_tallies`]: the status of
/// records together is the highest status of each ([`record_status`]), so
/// [`CourseSummary::add`] and [`CourseSummary::of`] agree, and a summary
/// changes (and is rewritten) only when a status rises or a module is new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseSummary {
    /// The tenant of every record, whose course model declares the
    /// course's modules; `None` when they came from more than one (a
    /// reader then folds the records themselves).
    pub tenant: Option<String>,
    /// The status of the course's own records (no module).
    pub own: Status,
    /// The highest status of any module.
    pub best_module: Status,
    /// A record completes the course by its declared structure.
    pub structural: bool,
    /// Each module with records: [`module_hash`] of its id and whether it
    /// is done, in hash order.
    pub modules: Vec<([u8; 8], bool)>,
}

/// The status one record gives its module (or its course's own): the
/// status of several records is the highest of theirs, as [`tally`] folds
/// their meanings.
pub fn record_status(bits: u8) -> Status {
    status_of(bits, means_anything(bits))
}

/// The 8 bytes that stand for a module id in a [`CourseSummary`].
pub fn module_hash(module: &str) -> [u8; 8] {
    tenant_hash(module)
}

impl CourseSummary {
    /// An empty summary of records from `record`'s tenant.
    pub fn first(record: &StatementRecord) -> Self {
        Self {
            tenant: Some(record.tenant.clone()),
            own: Status::NotStarted,
            best_module: Status::NotStarted,
            structural: false,
            modules: Vec::new(),
        }
    }

    /// Folds in one more record.
    pub fn add(&mut self, record: &StatementRecord) {
        if self.tenant.as_deref() != Some(record.tenant.as_str()) {
            self.tenant = None;
        }
        self.structural |= record.completes_course;
        let status = record_status(record.meaning);
        match record.module.as_deref() {
            None => self.own = self.own.max(status),
            Some(module) => {
                self.best_module = self.best_module.max(status);
                let hash = module_hash(module);
                match self.modules.binary_search_by(|(h, _)| h.cmp(&hash)) {
                    Ok(at) => self.modules[at].1 |= status.is_done(),
                    Err(at) => self.modules.insert(at, (hash, status.is_done())),
                }
            }
        }
    }

    /// The summary of some records (`None` if there are none).
    pub fn of<'r>(records: impl IntoIterator<Item = &'r StatementRecord>) -> Option<Self> {
        let mut records = records.into_iter();
        let first = records.next()?;
        let mut summary = Self::first(first);
        summary.add(first);
        for record in records {
            summary.add(record);
        }
        Some(summary)
    }

    /// The course's status, as [`course_tallies`] gives it: "any module in
    /// progress" is the best module's being in progress or beyond; "any
    /// module enrolled" counts only when none is beyond enrolled.
    pub fn status(&self) -> Status {
        course_status(self.own, std::iter::once(self.best_module), self.structural)
    }

    /// Whether the module with this hash has records and is done.
    pub fn module_done(&self, hash: &[u8; 8]) -> bool {
        self.modules
            .binary_search_by(|(h, _)| h.cmp(hash))
            .is_ok_and(|at| self.modules[at].1)
    }
}

/// Tallies records of one module (or of a course's own).
pub fn tally<'r>(records: impl IntoIterator<Item = &'r StatementRecord>) -> Tally {
    let mut bits = 0u8;
    let mut anything = false;
    let mut score: Option<f64> = None;
    let mut ended_ms = 0u64;
    let mut any_ended = false;
    let mut longest_ms = 0u64;
    let mut last: Option<i64> = None;
    for record in records {
        bits |= record.meaning;
        anything |= means_anything(record.meaning);
        if let Some(s) = record.score_scaled {
            score = Some(score.map_or(s, |best: f64| best.max(s)));
        }
        if let Some(ms) = record.duration_ms {
            if record.meaning & meaning::ENDED != 0 {
                ended_ms += ms;
                any_ended = true;
            }
            longest_ms = longest_ms.max(ms);
        }
        last = Some(last.map_or(record.time_micros, |l| l.max(record.time_micros)));
    }
    Tally {
        status: status_of(bits, anything),
        score_scaled: score,
        time_ms: if any_ended { ended_ms } else { longest_ms },
        last_micros: last,
    }
}

/// A course's own records, and its modules' records.
type CourseRecords<'r> = (
    Vec<&'r StatementRecord>,
    BTreeMap<&'r str, Vec<&'r StatementRecord>>,
);

/// Groups a learner's records by course and module and tallies each.
pub fn course_tallies(records: &[StatementRecord]) -> Vec<CourseTally> {
    let mut by_course: BTreeMap<&str, CourseRecords> = BTreeMap::new();
    let mut by_structure: std::collections::BTreeSet<&str> = Default::default();
    for record in records {
        let Some(course) = record.course.as_deref() else {
            continue;
        };
        if record.completes_course {
            by_structure.insert(course);
        }
        let entry = by_course.entry(course).or_default();
        match record.module.as_deref() {
            Some(module) => entry.1.entry(module).or_default().push(record),
            None => entry.0.push(record),
        }
    }
    by_course
        .into_iter()
        .map(|(course, (own_records, modules))| {
            let own = tally(own_records.iter().copied());
            let own_ended_ms: u64 = own_records
                .iter()
                .filter(|r| r.meaning & meaning::ENDED != 0)
                .filter_map(|r| r.duration_ms)
                .sum();
            let modules: BTreeMap<String, Tally> = modules
                .into_iter()
                .map(|(module, records)| (module.to_owned(), tally(records)))
                .collect();
            let structural = by_structure.contains(course);
            let status = course_status(own.status, modules.values().map(|m| m.status), structural);
            let last_micros = modules
                .values()
                .filter_map(|m| m.last_micros)
                .chain(own.last_micros)
                .max();
            CourseTally {
                course: course.to_owned(),
                time_ms: own_ended_ms + modules.values().map(|m| m.time_ms).sum::<u64>(),
                own,
                status,
                completed_by_structure: structural,
                modules,
                last_micros,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Memory;

    /// The names writes of one statement naming course `c` in `names`,
    /// applied to `state`.
    fn name_course(state: &mut Memory, position: u64, names: &[(&str, &str)]) -> usize {
        let record = StatementRecord {
            statement_id: Uuid::nil(),
            position,
            tenant: "t".into(),
            app: None,
            library: None,
            learner: None,
            meaning: 0,
            time_micros: 0,
            course: Some("c".into()),
            module: None,
            about_course: false,
            score_scaled: None,
            duration_ms: None,
            registration: None,
            first_of_registration: false,
            completes_course: false,
        };
        let given = [ActivityNameV1 {
            id: "c".into(),
            names: names
                .iter()
                .map(|(tag, text)| (tag.to_string(), text.to_string()))
                .collect(),
        }];
        let mut edits = Edits::new(&*state);
        remember_names(&record, position as i64, &given, &mut edits);
        let changes: Vec<_> = edits.changes.into_iter().collect();
        for ((tree, key), value) in &changes {
            state
                .0
                .insert((tree, key.clone()), value.clone().expect("a put"));
        }
        changes.len()
    }

    #[test]
    fn a_repeat_of_the_same_names_writes_nothing() {
        let mut state = Memory::default();
        assert_eq!(name_course(&mut state, 1, &[("nl", "Cursus")]), 1);
        assert_eq!(name_course(&mut state, 2, &[("nl", "Cursus")]), 0);
        let known: ActivityName = postcard::from_bytes(&state.get(NAMES, b"c").unwrap()).unwrap();
        assert_eq!(known.position, 1, "the statement that first gave them");
        // A new name is written, and the latest wins.
        assert_eq!(name_course(&mut state, 3, &[("nl", "Cursus 2")]), 1);
        assert_eq!(name_course(&mut state, 4, &[("nl", "Cursus 2")]), 0);
        let known: ActivityName = postcard::from_bytes(&state.get(NAMES, b"c").unwrap()).unwrap();
        assert_eq!((known.position, known.names[0].1.as_str()), (3, "Cursus 2"));
    }

    /// What lets a summary keep a status instead of meaning bits: for any
    /// two records' meanings, the status of both together (as `tally` folds
    /// them) is the higher of their statuses.
    #[test]
    fn the_status_of_records_together_is_the_highest_of_theirs() {
        for a in 0..=u8::MAX {
            for b in 0..=u8::MAX {
                let together = status_of(a | b, means_anything(a) || means_anything(b));
                assert_eq!(
                    together,
                    record_status(a).max(record_status(b)),
                    "{a:#010b} {b:#010b}"
                );
            }
        }
    }
}
