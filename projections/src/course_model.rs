//! The course model: which activities are courses and modules, and what the
//! verbs mean (docs/progress-and-figures.md). Every tenant has the defaults
//! until it sets its own (`CourseModelDefinedV1`, JSON of
//! `schemas/course-model.json`).

use lrs_core::events::{ActivityFactV1, ObjectFactV1, StatementStoredV1};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// What a statement means for progress, as bits.
pub mod meaning {
    pub const ENROLLED: u8 = 1;
    pub const STARTED: u8 = 1 << 1;
    pub const PROGRESSED: u8 = 1 << 2;
    pub const ENDED: u8 = 1 << 3;
    pub const COMPLETED: u8 = 1 << 4;
    pub const PASSED: u8 = 1 << 5;
    pub const FAILED: u8 = 1 << 6;
    /// A launch of a piece of e-content (cmi5 `launched`): what the
    /// *launches* figure counts. Its verbs usually mean started too.
    pub const LAUNCHED: u8 = 1 << 7;
}

/// A course model as a tenant sets it (JSON). A key left out keeps the
/// default; `courses` declares courses with their modules and names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CourseModelDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_types: Option<Vec<String>>,
    /// Meaning (`enrolled`, `started`, `progressed`, `ended`, `completed`,
    /// `passed`, `failed`) → verb IRIs. A meaning left out keeps its defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verbs: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub courses: Vec<DeclaredCourse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredCourse {
    pub id: String,
    /// Language tag → name (`nl`, `en`).
    #[serde(default)]
    pub name: BTreeMap<String, String>,
    #[serde(default)]
    pub modules: Vec<DeclaredModule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredModule {
    pub id: String,
    #[serde(default)]
    pub name: BTreeMap<String, String>,
    /// What satisfies this module for the course's completion (cmi5
    /// `moveOn`); left out: `CompletedOrPassed`.
    #[serde(default, rename = "moveOn", skip_serializing_if = "Option::is_none")]
    pub move_on: Option<MoveOn>,
}

/// The cmi5 moveOn criterion of a module (an AU): when it counts as
/// satisfied towards the course (docs/progress-and-figures.md, "When a
/// course is completed").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoveOn {
    /// A statement that means completed.
    Completed,
    /// A statement that means passed.
    Passed,
    /// Both (in one statement or two).
    CompletedAndPassed,
    /// Either.
    CompletedOrPassed,
    /// Satisfied without any statement.
    NotApplicable,
}

impl MoveOn {
    /// The time this module became satisfied, from the earliest completed
    /// and the earliest passed statement (each `(time, id)` for a total
    /// order); `None`: not satisfied (or needs nothing).
    pub fn satisfied_at<T: Ord + Copy>(self, completed: Option<T>, passed: Option<T>) -> Option<T> {
        match self {
            MoveOn::Completed => completed,
            MoveOn::Passed => passed,
            MoveOn::CompletedAndPassed => Some(completed?.max(passed?)),
            MoveOn::CompletedOrPassed => match (completed, passed) {
                (Some(c), Some(p)) => Some(c.min(p)),
                (c, p) => c.or(p),
            },
            MoveOn::NotApplicable => None,
        }
    }
}

pub const MEANINGS: [(&str, u8); 8] = [
    ("enrolled", meaning::ENROLLED),
    ("started", meaning::STARTED),
    ("progressed", meaning::PROGRESSED),
    ("ended", meaning::ENDED),
    ("completed", meaning::COMPLETED),
    ("passed", meaning::PASSED),
    ("failed", meaning::FAILED),
    ("launched", meaning::LAUNCHED),
];

const ADL: &str = "http://adlnet.gov/expapi/verbs/";

fn default_verbs(name: &str) -> Vec<String> {
    let adl = |verbs: &[&str]| {
        verbs
            .iter()
            .map(|v| format!("{ADL}{v}"))
            .collect::<Vec<_>>()
    };
    match name {
        "enrolled" => {
            let mut v = adl(&["registered"]);
            v.push("https://w3id.org/xapi/tla/verbs/registered".into());
            v
        }
        "started" => adl(&["launched", "initialized", "attempted", "resumed"]),
        "progressed" => adl(&["progressed", "experienced", "answered", "interacted"]),
        "ended" => adl(&["terminated", "exited", "suspended"]),
        "completed" => {
            let mut v = adl(&["completed"]);
            v.push("https://w3id.org/xapi/adl/verbs/satisfied".into());
            v
        }
        "passed" => adl(&["passed", "mastered"]),
        "failed" => adl(&["failed"]),
        "launched" => adl(&["launched"]),
        _ => vec![],
    }
}

pub fn default_course_types() -> Vec<String> {
    vec![
        "https://w3id.org/xapi/cmi5/activitytype/course".into(),
        "http://adlnet.gov/expapi/activities/course".into(),
    ]
}

pub fn default_module_types() -> Vec<String> {
    vec![
        "http://adlnet.gov/expapi/activities/module".into(),
        "https://w3id.org/xapi/cmi5/activitytype/block".into(),
        "http://adlnet.gov/expapi/activities/lesson".into(),
    ]
}

/// A course model ready to classify statements.
#[derive(Debug, Clone, PartialEq)]
pub struct CourseModel {
    pub course_types: Vec<String>,
    pub module_types: Vec<String>,
    verbs: HashMap<String, u8>,
    /// The meanings with their verbs, as in effect (for showing the model).
    pub verbs_by_meaning: BTreeMap<String, Vec<String>>,
    pub courses: Vec<DeclaredCourse>,
    /// Declared module → its course.
    module_course: HashMap<String, String>,
    /// Declared course → its modules with their moveOn, in declared order.
    structure: HashMap<String, Vec<(String, MoveOn)>>,
    declared: HashMap<String, usize>,
}

impl Default for CourseModel {
    fn default() -> Self {
        Self::from_doc(&CourseModelDoc {
            course_types: None,
            module_types: None,
            verbs: BTreeMap::new(),
            courses: vec![],
        })
    }
}

/// Where a statement sits in the course model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub course: String,
    /// `None`: about the course itself (or an activity below it that is no module).
    pub module: Option<String>,
    /// The statement's object is the course itself.
    pub about_course: bool,
}

impl CourseModel {
    pub fn from_doc(doc: &CourseModelDoc) -> Self {
        let mut verbs = HashMap::new();
        let mut verbs_by_meaning = BTreeMap::new();
        for (name, bit) in MEANINGS {
            let list = doc
                .verbs
                .get(name)
                .cloned()
                .unwrap_or_else(|| default_verbs(name));
            for verb in &list {
                *verbs.entry(verb.clone()).or_insert(0) |= bit;
            }
            verbs_by_meaning.insert(name.to_owned(), list);
        }
        let mut module_course = HashMap::new();
        let mut declared = HashMap::new();
        let mut structure = HashMap::new();
        for (index, course) in doc.courses.iter().enumerate() {
            declared.insert(course.id.clone(), index);
            for module in &course.modules {
                module_course
                    .entry(module.id.clone())
                    .or_insert_with(|| course.id.clone());
            }
            if !course.modules.is_empty() {
                structure.entry(course.id.clone()).or_insert_with(|| {
                    course
                        .modules
                        .iter()
                        .map(|m| (m.id.clone(), m.move_on.unwrap_or(MoveOn::CompletedOrPassed)))
                        .collect()
                });
            }
        }
        Self {
            course_types: doc
                .course_types
                .clone()
                .unwrap_or_else(default_course_types),
            module_types: doc
                .module_types
                .clone()
                .unwrap_or_else(default_module_types),
            verbs,
            verbs_by_meaning,
            courses: doc.courses.clone(),
            module_course,
            structure,
            declared,
        }
    }

    /// The declared modules of a course with their moveOn, when the model
    /// declares its structure (`None`: unknown, no completion by structure).
    pub fn structure(&self, course: &str) -> Option<&[(String, MoveOn)]> {
        self.structure.get(course).map(Vec::as_slice)
    }

    /// Parses a model as stored in `CourseModelDefinedV1` (already validated
    /// when it was set; a model that no longer parses counts as the default).
    pub fn parse(json: &str) -> Self {
        serde_json::from_str::<CourseModelDoc>(json)
            .map(|doc| Self::from_doc(&doc))
            .unwrap_or_default()
    }

    pub fn declared_course(&self, id: &str) -> Option<&DeclaredCourse> {
        self.declared.get(id).map(|&i| &self.courses[i])
    }

    /// The meaning bits of a statement: its verb's, plus `result.completion`
    /// and `result.success`.
    pub fn meaning(&self, statement: &StatementStoredV1) -> u8 {
        let mut bits = self
            .verbs
            .get(&statement.facts.verb_id)
            .copied()
            .unwrap_or(0);
        if let Some(result) = &statement.facts.result {
            if result.completion == Some(true) {
                bits |= meaning::COMPLETED;
            }
            match result.success {
                Some(true) => bits |= meaning::PASSED,
                Some(false) => bits |= meaning::FAILED,
                None => {}
            }
        }
        bits
    }

    fn is_course(&self, activity: &ActivityFactV1) -> bool {
        self.declared.contains_key(&activity.id)
            || activity
                .activity_type
                .as_ref()
                .is_some_and(|t| self.course_types.contains(t))
    }

    fn is_module_of(&self, activity: &ActivityFactV1, course: &str) -> bool {
        if let Some(declared_course) = self.module_course.get(&activity.id) {
            return declared_course == course;
        }
        activity
            .activity_type
            .as_ref()
            .is_some_and(|t| self.module_types.contains(t))
    }

    /// Places a statement in a course and module (docs/progress-and-figures.md,
    /// "Which activity is a course"). `context` is `None` for statements
    /// stored before context activities were kept by kind: then their merged
    /// related activities are searched for declared courses only.
    pub fn place(
        &self,
        statement: &StatementStoredV1,
        context: Option<&lrs_core::events::ContextFactsV1>,
        meaning_bits: u8,
    ) -> Option<Placement> {
        let object = match &statement.facts.object {
            ObjectFactV1::Activity { id, activity_type } => Some(ActivityFactV1 {
                id: id.clone(),
                activity_type: activity_type.clone(),
            }),
            _ => None,
        };
        let merged: Vec<ActivityFactV1>;
        let (grouping, parent): (&[ActivityFactV1], &[ActivityFactV1]) = match context {
            Some(context) => (&context.grouping, &context.parent),
            None => {
                merged = statement
                    .facts
                    .related_activities
                    .iter()
                    .map(|id| ActivityFactV1 {
                        id: id.clone(),
                        activity_type: None,
                    })
                    .collect();
                (&merged, &[])
            }
        };
        // 1. The object is the course.
        if let Some(object) = object.as_ref().filter(|o| self.is_course(o)) {
            return Some(Placement {
                course: object.id.clone(),
                module: None,
                about_course: true,
            });
        }
        // 2. A grouping, then a parent activity is the course.
        let course: String = grouping
            .iter()
            .chain(parent.iter())
            .find(|a| self.is_course(a))
            .map(|a| a.id.clone())
            // 3. The object is a declared module.
            .or_else(|| {
                object
                    .as_ref()
                    .and_then(|o| self.module_course.get(&o.id).cloned())
            })?;
        // The object is the course the context names (typed there, or
        // declared), though untyped itself: a statement about the course.
        if object.as_ref().is_some_and(|o| o.id == course) {
            return Some(Placement {
                course,
                module: None,
                about_course: true,
            });
        }
        let module = object
            .as_ref()
            .filter(|o| o.id != course && self.is_module_of(o, &course))
            .map(|o| o.id.clone())
            .or_else(|| {
                parent
                    .iter()
                    .find(|a| a.id != course && self.is_module_of(a, &course))
                    .map(|a| a.id.clone())
            })
            .or_else(|| {
                let names_itself =
                    meaning::STARTED | meaning::COMPLETED | meaning::PASSED | meaning::FAILED;
                object
                    .as_ref()
                    .filter(|o| o.id != course && meaning_bits & names_itself != 0)
                    .map(|o| o.id.clone())
            });
        Some(Placement {
            course,
            module,
            about_course: false,
        })
    }
}

/// Models parsed once per distinct JSON text: the fold asks for a tenant's
/// model on every statement.
#[derive(Default)]
pub struct ModelCache(std::sync::Mutex<HashMap<String, std::sync::Arc<CourseModel>>>);

impl ModelCache {
    pub fn get(&self, json: Option<&str>) -> std::sync::Arc<CourseModel> {
        let key = json.unwrap_or("");
        let mut cache = self.0.lock().expect("model cache lock");
        if let Some(model) = cache.get(key) {
            return model.clone();
        }
        let model = std::sync::Arc::new(match json {
            Some(json) => CourseModel::parse(json),
            None => CourseModel::default(),
        });
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(key.to_owned(), model.clone());
        model
    }
}
