//! Reads of the `progress` read model (projections/src/progress.rs): a
//! learner's records, a library's learners, the figure counters.

use crate::error::StoreError;
use crate::store::Store;
use lrs_core::events::FiguresClosedV1;
use lrs_core::token::Token;
use lrs_core::Event;
use lrs_projections::progress::{
    self, decode_u64, ActivityName, Assignment, ClosedMonth, CourseSummary, LibraryMember,
    StatementRecord, ASSIGNED, CLOSED, COUNTERS, LATE, LEARNERS, LIBRARY, LIBRARY_COURSES, MODELS,
    MODULES, NAMES,
};
use std::collections::{BTreeMap, BTreeSet};

/// The learner token that ends a key after `prefix`.
fn token_after(key: &[u8], prefix: &[u8], what: &str) -> Result<Token, StoreError> {
    let token: [u8; 16] = key[prefix.len()..]
        .try_into()
        .map_err(|e| corrupt(what, e))?;
    Ok(Token(token))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl Store {
    /// Every record of one learner (optionally of one course), in course,
    /// module, position order.
    pub fn progress_records(
        &self,
        learner: &Token,
        course: Option<&str>,
    ) -> Result<Vec<StatementRecord>, StoreError> {
        let prefix = progress::learner_prefix(learner, course);
        let mut records = Vec::new();
        for (_, value) in self.shared.trees().entries(LEARNERS, &prefix)? {
            records.push(postcard::from_bytes(&value).map_err(|e| corrupt("progress record", e))?);
        }
        Ok(records)
    }

    /// The modules set ready for a learner: (course, module, assignment).
    pub fn assignments(
        &self,
        learner: &Token,
    ) -> Result<Vec<(String, String, Assignment)>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(ASSIGNED).scan_prefix(learner.0) {
            let (key, value) = item?;
            let rest = &key[16..];
            let Some(split) = rest.iter().position(|&b| b == 0) else {
                continue;
            };
            let course = String::from_utf8_lossy(&rest[..split]).into_owned();
            let module = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
            let assignment = postcard::from_bytes(&value).map_err(|e| corrupt("assignment", e))?;
            found.push((course, module, assignment));
        }
        Ok(found)
    }

    /// The learners of a library, with their latest statement.
    pub fn library_learners(&self, isil: &str) -> Result<Vec<(Token, LibraryMember)>, StoreError> {
        let prefix = progress::library_prefix(isil);
        let mut found = Vec::new();
        for item in self.shared.tree(LIBRARY).scan_prefix(&prefix) {
            let (key, value) = item?;
            let token = token_after(&key, &prefix, "library learner key")?;
            let member = postcard::from_bytes(&value).map_err(|e| corrupt("library learner", e))?;
            found.push((token, member));
        }
        Ok(found)
    }

    /// The learners with records of `course` naming this library (any
    /// status; the caller decides what to show), each with the summary of
    /// those records.
    pub fn library_course_summaries(
        &self,
        isil: &str,
        course: &str,
    ) -> Result<Vec<(Token, CourseSummary)>, StoreError> {
        let prefix = progress::library_course_prefix(isil, course);
        let mut found = Vec::new();
        for item in self.shared.tree(LIBRARY_COURSES).scan_prefix(&prefix) {
            let (key, value) = item?;
            let token = token_after(&key, &prefix, "library course key")?;
            let summary =
                postcard::from_bytes(&value).map_err(|e| corrupt("library course summary", e))?;
            found.push((token, summary));
        }
        Ok(found)
    }

    /// The learners with modules of `course` set ready, by anyone, and
    /// those modules. One pass over every assignment.
    pub fn assigned_to(
        &self,
        course: &str,
    ) -> Result<BTreeMap<Token, BTreeSet<String>>, StoreError> {
        let mut found: BTreeMap<Token, BTreeSet<String>> = BTreeMap::new();
        for item in self.shared.tree(ASSIGNED).iter() {
            let (key, _) = item?;
            let (Some(token), Some(rest)) = (key.get(..16), key.get(16..)) else {
                continue;
            };
            if rest.starts_with(course.as_bytes()) && rest.get(course.len()) == Some(&0) {
                let token: [u8; 16] = token.try_into().expect("16 bytes");
                let module = String::from_utf8_lossy(&rest[course.len() + 1..]).into_owned();
                found.entry(Token(token)).or_default().insert(module);
            }
        }
        Ok(found)
    }

    /// Whether a learner has any statement naming this library.
    pub fn is_library_learner(&self, isil: &str, learner: &Token) -> Result<bool, StoreError> {
        Ok(self
            .shared
            .tree(LIBRARY)
            .contains_key(progress::library_key(isil, learner))?)
    }

    /// The modules of a course that learners in a figure scope have
    /// statements for.
    pub fn modules_seen(&self, scope: &[u8], course: &str) -> Result<Vec<String>, StoreError> {
        let prefix = progress::module_prefix(scope, course);
        let mut found = Vec::new();
        for item in self.shared.tree(MODULES).scan_prefix(&prefix) {
            let (key, _) = item?;
            found.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(found)
    }

    /// One figure counter (0 if never counted).
    pub fn figure(
        &self,
        month: [u8; 6],
        scope: &[u8],
        figure: u8,
        course: Option<&str>,
    ) -> Result<u64, StoreError> {
        let key = progress::counter_key(&month, scope, figure, course);
        Ok(self
            .shared
            .trees()
            .value(COUNTERS, &key)?
            .map(|v| decode_u64(&v))
            .unwrap_or(0))
    }

    /// Every counter of a month whose scope starts with `scope_prefix`:
    /// (scope, figure, course, count). `b"l:"` gives every library's.
    #[allow(clippy::type_complexity)]
    pub fn figures_in(
        &self,
        month: [u8; 6],
        scope_prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, u8, String, u64)>, StoreError> {
        let prefix = [month.as_slice(), scope_prefix].concat();
        let mut found = Vec::new();
        for (key, value) in self.shared.trees().entries(COUNTERS, &prefix)? {
            let rest = &key[6..];
            let Some(split) = rest.iter().position(|&b| b == 0) else {
                continue;
            };
            let Some(&figure) = rest.get(split + 1) else {
                continue;
            };
            let course = String::from_utf8_lossy(&rest[split + 2..]).into_owned();
            found.push((rest[..split].to_vec(), figure, course, decode_u64(&value)));
        }
        Ok(found)
    }

    /// A tenant's course model as set (JSON), if it set one.
    pub fn course_model_json(&self, tenant: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .shared
            .tree(MODELS)
            .get(tenant.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Every tenant's course model as set: (tenant, JSON).
    pub fn course_models(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(MODELS).iter() {
            let (key, value) = item?;
            found.push((
                String::from_utf8_lossy(&key).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            ));
        }
        Ok(found)
    }

    /// The courses learners of a library have activity in (seen modules or
    /// course-level records), from the modules index: (course, modules seen).
    pub fn figure_courses_of_library(
        &self,
        isil: &str,
    ) -> Result<Vec<(String, usize)>, StoreError> {
        let prefix = [progress::scope_library(isil).as_slice(), &[0]].concat();
        let mut found: Vec<(String, usize)> = Vec::new();
        for item in self.shared.tree(MODULES).scan_prefix(&prefix) {
            let (key, _) = item?;
            let rest = &key[prefix.len()..];
            let course = match rest.iter().position(|&b| b == 0) {
                Some(split) => String::from_utf8_lossy(&rest[..split]).into_owned(),
                None => continue,
            };
            match found.last_mut() {
                Some((last, n)) if *last == course => *n += 1,
                _ => found.push((course, 1)),
            }
        }
        Ok(found)
    }

    /// The names of an activity's latest definition (a course or module).
    pub fn activity_name(&self, id: &str) -> Result<Option<ActivityName>, StoreError> {
        match self.shared.tree(NAMES).get(id.as_bytes())? {
            Some(bytes) => Ok(Some(
                postcard::from_bytes(&bytes).map_err(|e| corrupt("activity name", e))?,
            )),
            None => Ok(None),
        }
    }

    /// Every closing of a month (`YYYYMM`), oldest first.
    pub fn closings_of(&self, month: [u8; 6]) -> Result<Vec<ClosedMonth>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(CLOSED).scan_prefix(month) {
            let (key, value) = item?;
            if key.len() == 10 {
                found.push(postcard::from_bytes(&value).map_err(|e| corrupt("closing", e))?);
            }
        }
        Ok(found)
    }

    /// The latest closing of a month, if it was closed.
    pub fn latest_closing(&self, month: [u8; 6]) -> Result<Option<ClosedMonth>, StoreError> {
        match self.shared.tree(CLOSED).get(month)? {
            Some(bytes) => Ok(Some(
                postcard::from_bytes(&bytes).map_err(|e| corrupt("closing", e))?,
            )),
            None => Ok(None),
        }
    }

    /// The closed figures a closing recorded (its event in the log).
    pub fn closed_figures(&self, closing: &ClosedMonth) -> Result<FiguresClosedV1, StoreError> {
        match self.entry(closing.position)?.map(|entry| entry.event) {
            Some(Event::FiguresClosedV1(closed)) => Ok(closed),
            _ => Err(StoreError::Corrupt(format!(
                "progress.closed points at {}, which is no closing",
                closing.position
            ))),
        }
    }

    /// Statements that changed a month's figures in a scope after a
    /// closing (version) of it.
    pub fn late_statements(
        &self,
        month: [u8; 6],
        scope: &[u8],
        version: u32,
    ) -> Result<u64, StoreError> {
        Ok(self
            .shared
            .tree(LATE)
            .get(progress::late_key(&month, scope, version))?
            .map(|v| decode_u64(&v))
            .unwrap_or(0))
    }

    /// The months (`YYYYMM`) that have any figure, oldest first: one seek
    /// per month.
    pub fn figure_months(&self) -> Result<Vec<[u8; 6]>, StoreError> {
        let trees = self.shared.trees();
        let mut months = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some(key) = trees.key_from(COUNTERS, &from)? {
            let Ok(month) = <[u8; 6]>::try_from(&key[..6.min(key.len())]) else {
                break;
            };
            months.push(month);
            // The smallest key after every key of this month.
            from = [month.as_slice(), &[0xff; 8]].concat();
        }
        Ok(months)
    }
}
