//! Projection tests as data: each file in `tests/progress/` gives events
//! (a course model, statements, voidings, assignments) and the read model
//! they must fold into: every learner's progress per course and module,
//! every figure counter, every library's learners (and its learners per
//! course), the names of courses and modules, the closed months. Each case is folded twice, in the given order
//! and with its statements in reverse arrival order, and both must give the
//! expected snapshot; the fold must also give identical trees when repeated
//! from scratch. A case may close a month after its first `close_after`
//! statements: which statements then arrive late depends on arrival order
//! by definition, so the late counts are expected for each order
//! (`expect.late` and `expect_late_reversed`).
//!
//! `UPDATE_SNAPSHOTS=1 cargo test -p lrs-projections --test progress_cases`
//! writes what the fold gives into the files; review the diff by hand.

use lrs_core::events::{
    ActivityFactV1, ActivityNameV1, ContextFactsV1, CourseModelDefinedV1, FiguresClosedV1,
    ModulesAssignedV1, ObjectFactV1, OriginV1, ResultFactsV1, SealedStatementV1, StatementFactsV1,
    StatementStoredV1, StatementStoredV4,
};
use lrs_core::token::Token;
use lrs_core::Event;
use lrs_projections::progress::{self, course_tallies, Progress, StatementRecord};
use lrs_projections::{Op, Projection, ReadModel, TreeName};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Default, Clone, PartialEq)]
struct Memory(BTreeMap<(TreeName, Vec<u8>), Vec<u8>>);

impl ReadModel for Memory {
    fn get(&self, tree: TreeName, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(&(tree, key.to_vec())).cloned()
    }
    fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.0
            .range((tree, prefix.to_vec())..)
            .take_while(|((t, k), _)| *t == tree && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Memory {
    /// Folds the statement index first, as the store does: progress finds
    /// a voided statement's position through it.
    fn fold(&mut self, projection: &Progress, position: u64, event: &Event) {
        let mut ops = Vec::new();
        lrs_projections::statement_index::StatementIndex.apply(position, event, self, &mut ops);
        self.apply(ops);
        let mut ops = Vec::new();
        projection.apply(position, event, self, &mut ops);
        self.apply(ops);
    }

    fn apply(&mut self, ops: Vec<Op>) {
        for op in ops {
            match op {
                Op::Put { tree, key, value } => {
                    self.0.insert((tree, key), value);
                }
                Op::Delete { tree, key } => {
                    self.0.remove(&(tree, key));
                }
            }
        }
    }

    fn tree(&self, tree: TreeName) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.scan_prefix(tree, b"")
    }
}

fn token(name: &str) -> Token {
    Token(Sha256::digest(name.as_bytes())[..16].try_into().unwrap())
}

fn uuid(n: u64) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | n as u128)
}

/// A registration (cmi5) by its name in the case.
fn registration(name: &str) -> Uuid {
    Uuid::from_bytes(
        Sha256::digest(format!("registration {name}").as_bytes())[..16]
            .try_into()
            .unwrap(),
    )
}

fn type_iri(short: &str) -> String {
    match short {
        "course" => "https://w3id.org/xapi/cmi5/activitytype/course".into(),
        "module" => "http://adlnet.gov/expapi/activities/module".into(),
        "lesson" => "http://adlnet.gov/expapi/activities/lesson".into(),
        other => other.into(),
    }
}

fn verb_iri(short: &str) -> String {
    if short.contains(':') {
        short.into()
    } else {
        format!("http://adlnet.gov/expapi/verbs/{short}")
    }
}

fn micros(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .unwrap_or_else(|e| panic!("time {time}: {e}"))
        .timestamp_micros()
}

fn activities(value: Option<&Value>) -> Vec<ActivityFactV1> {
    value
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|a| ActivityFactV1 {
                    id: a["id"].as_str().unwrap().into(),
                    activity_type: a.get("type").and_then(Value::as_str).map(type_iri),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One fixture statement as the event the writer would append.
fn statement_event(s: &Value, position: u64) -> Event {
    let id = uuid(s["s"].as_u64().expect("s: statement number"));
    let actor = token(s["actor"].as_str().expect("actor"));
    let (verb, object) = match s.get("void") {
        Some(target) => (
            "http://adlnet.gov/expapi/verbs/voided".to_string(),
            ObjectFactV1::StatementRef {
                id: uuid(target.as_u64().unwrap()),
            },
        ),
        None => (
            verb_iri(s["verb"].as_str().expect("verb")),
            ObjectFactV1::Activity {
                id: s["object"]["id"].as_str().expect("object.id").into(),
                activity_type: s["object"]
                    .get("type")
                    .and_then(Value::as_str)
                    .map(type_iri),
            },
        ),
    };
    let context = ContextFactsV1 {
        parent: activities(s.get("parent")),
        grouping: activities(s.get("grouping")),
        category: activities(s.get("category")),
    };
    let result = s.get("result").map(|r| ResultFactsV1 {
        success: r.get("success").and_then(Value::as_bool),
        completion: r.get("completion").and_then(Value::as_bool),
        score_scaled: r.get("score").and_then(Value::as_f64),
        score_raw: None,
        score_min: None,
        score_max: None,
        duration: r.get("duration").and_then(Value::as_str).map(str::to_owned),
    });
    let at = s.get("at").and_then(Value::as_str).map(micros);
    let stored = s
        .get("stored")
        .and_then(Value::as_str)
        .map(micros)
        .or(at)
        .unwrap_or(1_790_000_000_000_000 + position as i64);
    // "names": {activity id: {language: name}}, as definitions give them.
    let names = s
        .get("names")
        .and_then(Value::as_object)
        .map(|names| {
            names
                .iter()
                .map(|(id, map)| ActivityNameV1 {
                    id: id.clone(),
                    names: map
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(tag, name)| (tag.clone(), name.as_str().unwrap().to_owned()))
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    Event::StatementStoredV4(StatementStoredV4 {
        statement: StatementStoredV1 {
            statement_id: id,
            stored_micros: stored,
            tenant: s
                .get("tenant")
                .and_then(Value::as_str)
                .unwrap_or("kb")
                .into(),
            credential_key: "k".into(),
            comparison_digest: [0; 32],
            facts: StatementFactsV1 {
                verb_id: verb,
                object,
                actor: Some(actor),
                group_members: vec![],
                related_agents: vec![actor],
                related_activities: vec![],
                registration: s
                    .get("registration")
                    .and_then(Value::as_str)
                    .map(registration),
                timestamp_micros: at,
                result,
                platform: None,
                language: None,
            },
            sealed: SealedStatementV1 {
                persons: vec![],
                subject_shares: vec![],
                body_nonce: [0; 24],
                body: vec![],
                attachments: vec![],
            },
        },
        origin: OriginV1 {
            app: s.get("app").and_then(Value::as_str).map(str::to_owned),
            library: s.get("library").and_then(Value::as_str).map(str::to_owned),
        },
        context,
        names,
    })
}

fn time_text(micros: Option<i64>) -> Value {
    micros
        .map(|m| {
            json!(chrono::DateTime::from_timestamp_micros(m)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        })
        .unwrap_or(Value::Null)
}

/// The read model as a readable snapshot (positions left out: they depend
/// on arrival order, which must not matter).
fn snapshot(memory: &Memory, learners: &[String]) -> Value {
    let mut progress_view = Map::new();
    for name in learners {
        let records: Vec<StatementRecord> = memory
            .scan_prefix(progress::LEARNERS, &token(name).0)
            .into_iter()
            .map(|(_, v)| postcard::from_bytes(&v).unwrap())
            .collect();
        let courses: Vec<Value> = course_tallies(&records)
            .into_iter()
            .map(|c| {
                let modules: Map<String, Value> = c
                    .modules
                    .iter()
                    .map(|(id, m)| {
                        (
                            id.clone(),
                            json!({"status": m.status.as_str(), "score": m.score_scaled,
                                   "time_ms": m.time_ms, "last": time_text(m.last_micros)}),
                        )
                    })
                    .collect();
                let mut course = json!({"course": c.course, "status": c.status.as_str(), "score": c.own.score_scaled,
                       "time_ms": c.time_ms, "last": time_text(c.last_micros), "modules": modules});
                if c.completed_by_structure {
                    course["completed_by_structure"] = json!(true);
                }
                course
            })
            .collect();
        let assigned: Vec<Value> = memory
            .scan_prefix(progress::ASSIGNED, &token(name).0)
            .into_iter()
            .map(|(k, _)| json!(String::from_utf8_lossy(&k[16..]).replace('\0', " ")))
            .collect();
        progress_view.insert(name.clone(), json!({"courses": courses, "ready": assigned}));
    }
    let mut figures: BTreeMap<String, BTreeMap<String, Map<String, Value>>> = BTreeMap::new();
    for (key, value) in memory.tree(progress::COUNTERS) {
        let month = String::from_utf8_lossy(&key[..6]).into_owned();
        let rest = &key[6..];
        let split = rest.iter().position(|&b| b == 0).unwrap();
        let scope = String::from_utf8_lossy(&rest[..split]).into_owned();
        let figure = (rest[split + 1] as char).to_string();
        let course = String::from_utf8_lossy(&rest[split + 2..]).into_owned();
        let name = if course.is_empty() {
            figure
        } else {
            format!("{figure} {course}")
        };
        figures
            .entry(month)
            .or_default()
            .entry(scope)
            .or_default()
            .insert(name, json!(progress::decode_u64(&value)));
    }
    let mut libraries: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in memory.tree(progress::LIBRARY) {
        let split = key.iter().position(|&b| b == 0).unwrap();
        let isil = String::from_utf8_lossy(&key[..split]).into_owned();
        let who = learners
            .iter()
            .find(|n| token(n).0 == key[split + 1..])
            .cloned()
            .unwrap_or_else(|| "?".into());
        let member: progress::LibraryMember = postcard::from_bytes(&value).unwrap();
        libraries
            .entry(isil)
            .or_default()
            .push(format!("{who} ({} statements)", member.statements));
    }
    for list in libraries.values_mut() {
        list.sort();
    }
    // library → course → its learners there (progress.library_courses)
    let mut library_courses: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (key, _) in memory.tree(progress::LIBRARY_COURSES) {
        let isil_end = key.iter().position(|&b| b == 0).unwrap();
        let course_end = isil_end + 1 + key[isil_end + 1..].iter().position(|&b| b == 0).unwrap();
        let who = learners
            .iter()
            .find(|n| token(n).0 == key[course_end + 1..])
            .cloned()
            .unwrap_or_else(|| "?".into());
        library_courses
            .entry(String::from_utf8_lossy(&key[..isil_end]).into_owned())
            .or_default()
            .entry(String::from_utf8_lossy(&key[isil_end + 1..course_end]).into_owned())
            .or_default()
            .push(who);
    }
    for list in library_courses.values_mut().flat_map(|c| c.values_mut()) {
        list.sort();
    }
    let mut names = Map::new();
    for (key, value) in memory.tree(progress::NAMES) {
        let name: progress::ActivityName = postcard::from_bytes(&value).unwrap();
        let map: Map<String, Value> = name
            .names
            .into_iter()
            .map(|(tag, text)| (tag, json!(text)))
            .collect();
        names.insert(
            String::from_utf8_lossy(&key).into_owned(),
            Value::Object(map),
        );
    }
    let mut closed: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (key, value) in memory.tree(progress::CLOSED) {
        if key.len() == 10 {
            let record: progress::ClosedMonth = postcard::from_bytes(&value).unwrap();
            closed
                .entry(String::from_utf8_lossy(&key[..6]).into_owned())
                .or_default()
                .push(record.version);
        }
    }
    let mut snapshot = json!({
        "progress": progress_view,
        "figures": figures,
        "libraries": libraries,
        "library_courses": library_courses,
    });
    if !names.is_empty() {
        snapshot["names"] = Value::Object(names);
    }
    if !closed.is_empty() {
        snapshot["closed"] = json!(closed);
        snapshot["late"] = late_of(memory);
    }
    snapshot
}

/// Statements that changed a closed month after its closing: month →
/// scope → "v<version>" → count.
fn late_of(memory: &Memory) -> Value {
    let mut late: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>> = BTreeMap::new();
    for (key, value) in memory.tree(progress::LATE) {
        let month = String::from_utf8_lossy(&key[..6]).into_owned();
        let rest = &key[6..];
        let split = rest.iter().position(|&b| b == 0).unwrap();
        let scope = String::from_utf8_lossy(&rest[..split]).into_owned();
        let version = u32::from_be_bytes(rest[split + 1..].try_into().unwrap());
        late.entry(month)
            .or_default()
            .entry(scope)
            .or_default()
            .insert(format!("v{version}"), progress::decode_u64(&value));
    }
    json!(late)
}

/// A closing of a month, as `lrs_app` appends it (the snapshot itself is
/// not the fold's business: it records the version and counts what arrives
/// after).
fn closing(month: &str, version: u32) -> Event {
    Event::FiguresClosedV1(FiguresClosedV1 {
        month: month.into(),
        version,
        closed_micros: 0,
        by: "test".into(),
        note: String::new(),
        scopes: vec![],
    })
}

fn close_of(close: &Value) -> (String, usize) {
    (
        close["month"].as_str().expect("close.month").to_owned(),
        close["after"].as_u64().expect("close.after") as usize,
    )
}

fn fold_case(case: &Value, reverse: bool) -> Memory {
    let projection = Progress::default();
    let mut memory = Memory::default();
    let mut position = 0u64;
    let mut next = || {
        position += 1;
        position
    };
    if let Some(model) = case.get("model") {
        memory.fold(
            &projection,
            next(),
            &Event::CourseModelDefinedV1(CourseModelDefinedV1 {
                tenant: "kb".into(),
                model: model.to_string(),
                defined_micros: 0,
                by: "test".into(),
            }),
        );
    }
    let mut statements: Vec<&Value> = case["statements"].as_array().unwrap().iter().collect();
    if reverse {
        statements.reverse();
    }
    // "close": {"month": "2026-10", "after": N}, or a list of them: a
    // closing after the first N statements to arrive.
    let closings: Vec<(String, usize)> = match case.get("close") {
        None => vec![],
        Some(Value::Array(list)) => list.iter().map(close_of).collect(),
        Some(one) => vec![close_of(one)],
    };
    let mut versions: BTreeMap<String, u32> = BTreeMap::new();
    let count = statements.len();
    for i in 0..=count {
        for (month, _) in closings
            .iter()
            .filter(|(_, after)| *after == i || (i == count && *after > count))
        {
            let version = versions.entry(month.clone()).or_default();
            *version += 1;
            memory.fold(&projection, next(), &closing(month, *version));
        }
        if let Some(s) = statements.get(i) {
            let position = next();
            memory.fold(&projection, position, &statement_event(s, position));
        }
    }
    for a in case
        .get("assign")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let event = Event::ModulesAssignedV1(ModulesAssignedV1 {
            tenant: "kb".into(),
            library: a.get("library").and_then(Value::as_str).map(str::to_owned),
            learners: a["learners"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| token(n.as_str().unwrap()))
                .collect(),
            course: a["course"].as_str().unwrap().into(),
            modules: a["modules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_owned())
                .collect(),
            ready: a.get("ready").and_then(Value::as_bool).unwrap_or(true),
            assigned_micros: 0,
            by: "staff".into(),
        });
        memory.fold(&projection, next(), &event);
    }
    for name in case
        .get("erase")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let event = Event::PersonErasedV1(lrs_core::events::PersonErasedV1 {
            token: token(name.as_str().unwrap()),
            time_micros: 0,
            reason: lrs_core::events::ErasureReasonV1::Request {
                request_id: "case".into(),
            },
            who: "test".into(),
        });
        memory.fold(&projection, next(), &event);
    }
    memory
}

/// Erasing a learner (`PersonErasedV1`) leaves the figures exactly as they
/// were and nothing of the learner in any tree: no record, membership,
/// library entry or assignment holds their token any more.
#[test]
fn erasure_keeps_the_figures_and_forgets_the_learner() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/progress");
    for (file, erased) in [
        ("01-cmi5-course.json", "ana"),
        ("02-voiding.json", "carla"),
        // Their registration's first record and their completion by structure.
        ("07-cmi5-structure.json", "lies"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut case: Value = serde_json::from_str(&text).unwrap();
        let before = fold_case(&case, false);
        case["erase"] = json!([erased]);
        for reverse in [false, true] {
            let after = fold_case(&case, reverse);
            assert_eq!(
                after.tree(progress::COUNTERS),
                before.tree(progress::COUNTERS),
                "{file}: the figures changed"
            );
            let needle = token(erased).0;
            for ((tree, key), value) in &after.0 {
                let holds = |bytes: &[u8]| bytes.windows(16).any(|w| w == needle);
                assert!(
                    !holds(key) && !holds(value),
                    "{file}: {tree} still holds the erased learner"
                );
            }
            let snapshot = snapshot(&after, &[erased.to_owned()]);
            assert_eq!(
                snapshot["progress"][erased]["courses"],
                json!([]),
                "{file}: their progress"
            );
        }
        assert!(
            before
                .0
                .iter()
                .any(|((_, k), _)| k.windows(16).any(|w| w == token(erased).0)),
            "{file}: the learner was there before (else this proves nothing)"
        );
    }
}

/// Every `progress.library_courses` summary is what the learner's records
/// of that course naming that library sum up to, and gives the status the
/// learner's progress shows (however the summary was folded, record by
/// record or again after a voiding); and every learner with such records
/// has one.
fn summaries_agree(memory: &Memory, path: &std::path::Path) {
    let stored: BTreeMap<Vec<u8>, Vec<u8>> =
        memory.tree(progress::LIBRARY_COURSES).into_iter().collect();
    let mut expected: BTreeMap<Vec<u8>, Vec<StatementRecord>> = BTreeMap::new();
    for (_, value) in memory.tree(progress::LEARNERS) {
        let record: StatementRecord = postcard::from_bytes(&value).unwrap();
        if let (Some(learner), Some(course), Some(library)) =
            (record.learner, &record.course, &record.library)
        {
            let key = progress::library_course_key(library, course, &learner);
            expected.entry(key).or_default().push(record);
        }
    }
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{}: library courses",
        path.display()
    );
    for (key, records) in &expected {
        let summary: progress::CourseSummary = postcard::from_bytes(&stored[key]).unwrap();
        assert_eq!(
            Some(&summary),
            progress::CourseSummary::of(records).as_ref(),
            "{}: a summary folded record by record differs from the records summed up",
            path.display()
        );
        let tallies = course_tallies(records);
        assert_eq!(tallies.len(), 1);
        assert_eq!(summary.status(), tallies[0].status, "{}", path.display());
        for (module, tally) in &tallies[0].modules {
            assert_eq!(
                summary.module_done(&progress::module_hash(module)),
                tally.status.is_done(),
                "{}: module {module}",
                path.display()
            );
        }
    }
}

#[test]
fn every_case_folds_into_its_snapshot() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/progress");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "cases in {}", dir.display());
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut case: Value = serde_json::from_str(&text).unwrap();
        let mut learners: Vec<String> = case["statements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["actor"].as_str().unwrap().to_owned())
            .collect();
        learners.sort();
        learners.dedup();
        let in_order = fold_case(&case, false);
        let actual = snapshot(&in_order, &learners);
        let reversed_fold = fold_case(&case, true);
        summaries_agree(&in_order, &path);
        summaries_agree(&reversed_fold, &path);
        let mut reversed = snapshot(&reversed_fold, &learners);
        // What arrived after a closing depends on arrival order, by definition.
        let late_reversed = reversed.as_object_mut().unwrap().remove("late");
        let mut in_order_without_late = actual.clone();
        in_order_without_late
            .as_object_mut()
            .unwrap()
            .remove("late");
        assert_eq!(
            in_order_without_late,
            reversed,
            "{}: arrival order changed the read model",
            path.display()
        );
        assert!(
            fold_case(&case, false) == in_order,
            "{}: folding again gave other bytes",
            path.display()
        );
        if update {
            case["expect"] = actual;
            if let Some(late) = late_reversed {
                case["expect_late_reversed"] = late;
            }
            std::fs::write(&path, serde_json::to_string_pretty(&case).unwrap() + "\n").unwrap();
            continue;
        }
        assert_eq!(
            late_reversed.as_ref(),
            case.get("expect_late_reversed"),
            "{}: the late counts of the reversed fold",
            path.display()
        );
        assert_eq!(
            actual,
            case["expect"],
            "{}: the fold gave\n{}",
            path.display(),
            serde_json::to_string_pretty(&actual).unwrap()
        );
    }
}
