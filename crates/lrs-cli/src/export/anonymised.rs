//! The anonymised copy for test and demo (requirement 6.8): every statement
//! the store can still open, with every person replaced by a random
//! pseudonym (the same person keeps one pseudonym within one export, so
//! counts of people still hold), free text removed, statement ids and
//! registrations re-randomised consistently, attachments dropped and times
//! coarsened on request. Written as a directory of JSON lines, or straight
//! into a fresh data directory under a new master key.
//!
//! The fields of a statement are copied by an allow-list: what this module
//! does not name is not copied, so a field a later xAPI version adds cannot
//! leak through. It knows nothing about HTTP; the admin route and the
//! command line both call [`anonymise_store`].

use chrono::{Datelike, TimeZone};
use lrs_core::events::OriginV1;
use lrs_core::statement::{format_micros, reassemble};
use lrs_core::{Event, Token};
use lrs_store::Store;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// The home page of every pseudonymous account.
pub const PSEUDONYM_HOME_PAGE: &str = "https://anonymous.invalid";

/// How far times are coarsened, in Dutch time (Europe/Amsterdam), so that a
/// statement stays in the calendar month the figures count it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Coarsen {
    /// The start of the day.
    Day,
    /// The start of the month.
    Month,
}

/// Replaces people, ids and registrations consistently within one export.
pub struct Anonymiser {
    coarsen: Option<Coarsen>,
    /// Context extensions whose string values are kept: the origin (ISIL,
    /// appid) names an organisation, not a person, and the figures need it.
    keep_extensions: HashSet<String>,
    people: HashMap<Vec<u8>, String>,
    statement_ids: HashMap<String, String>,
    registrations: HashMap<String, String>,
}

/// One line of `statements.jsonl`: the anonymised statement with where it
/// belongs (tenant, app, library: organisations, no people).
#[derive(Serialize)]
pub struct AnonymisedLine {
    pub tenant: String,
    pub app: Option<String>,
    pub library: Option<String>,
    pub statement: Value,
}

impl Anonymiser {
    pub fn new(coarsen: Option<Coarsen>, keep_extensions: &[String]) -> Self {
        Self {
            coarsen,
            keep_extensions: keep_extensions.iter().cloned().collect(),
            people: HashMap::new(),
            statement_ids: HashMap::new(),
            registrations: HashMap::new(),
        }
    }

    /// How many different people were given a pseudonym.
    pub fn people(&self) -> usize {
        self.people.len()
    }

    fn random() -> String {
        Uuid::new_v4().hyphenated().to_string()
    }

    fn mapped_id(map: &mut HashMap<String, String>, id: &str) -> String {
        map.entry(id.to_ascii_lowercase())
            .or_insert_with(Self::random)
            .clone()
    }

    /// The anonymised form of a whole statement.
    pub fn statement(&mut self, statement: &Value) -> Value {
        let mut out = Map::new();
        if let Some(id) = statement.get("id").and_then(Value::as_str) {
            out.insert(
                "id".into(),
                json!(Self::mapped_id(&mut self.statement_ids, id)),
            );
        }
        self.statement_body(statement, &mut out);
        for key in ["timestamp", "stored"] {
            if let Some(time) = statement.get(key).and_then(Value::as_str) {
                out.insert(key.into(), json!(self.time(time)));
            }
        }
        if let Some(authority) = statement.get("authority") {
            out.insert("authority".into(), self.agent(authority));
        }
        if let Some(version) = statement.get("version").and_then(Value::as_str) {
            out.insert("version".into(), json!(version));
        }
        Value::Object(out)
    }

    /// actor, verb, object, result, context: shared by a statement and a sub-statement.
    fn statement_body(&mut self, statement: &Value, out: &mut Map<String, Value>) {
        if let Some(actor) = statement.get("actor") {
            out.insert("actor".into(), self.agent(actor));
        }
        if let Some(verb) = statement.get("verb").and_then(|v| v.get("id")) {
            out.insert("verb".into(), json!({ "id": verb }));
        }
        if let Some(object) = statement.get("object") {
            out.insert("object".into(), self.object(object));
        }
        if let Some(result) = statement.get("result").and_then(Value::as_object) {
            let mut kept = Map::new();
            for key in ["success", "completion", "score", "duration"] {
                if let Some(value) = result.get(key) {
                    kept.insert(key.into(), value.clone());
                }
            }
            if let Some(extensions) = result.get("extensions") {
                kept.insert("extensions".into(), self.extensions(extensions, false));
            }
            out.insert("result".into(), Value::Object(kept));
        }
        if let Some(context) = statement.get("context").and_then(Value::as_object) {
            out.insert("context".into(), self.context(context));
        }
    }

    fn object(&mut self, object: &Value) -> Value {
        match object.get("objectType").and_then(Value::as_str) {
            Some("Agent") | Some("Group") => self.agent(object),
            Some("StatementRef") => json!({
                "objectType": "StatementRef",
                "id": Self::mapped_id(
                    &mut self.statement_ids,
                    object.get("id").and_then(Value::as_str).unwrap_or_default(),
                ),
            }),
            Some("SubStatement") => {
                let mut out = Map::new();
                out.insert("objectType".into(), json!("SubStatement"));
                self.statement_body(object, &mut out);
                if let Some(time) = object.get("timestamp").and_then(Value::as_str) {
                    out.insert("timestamp".into(), json!(self.time(time)));
                }
                Value::Object(out)
            }
            _ => self.activity(object),
        }
    }

    /// An activity: its id and the kind of thing it is, never its words.
    fn activity(&mut self, activity: &Value) -> Value {
        let mut out = Map::new();
        if activity.get("objectType").is_some() {
            out.insert("objectType".into(), json!("Activity"));
        }
        if let Some(id) = activity.get("id") {
            out.insert("id".into(), id.clone());
        }
        if let Some(definition) = activity.get("definition").and_then(Value::as_object) {
            let mut kept = Map::new();
            for key in ["type", "interactionType"] {
                if let Some(value) = definition.get(key).and_then(Value::as_str) {
                    kept.insert(key.into(), json!(value));
                }
            }
            if let Some(extensions) = definition.get("extensions") {
                kept.insert("extensions".into(), self.extensions(extensions, false));
            }
            if !kept.is_empty() {
                out.insert("definition".into(), Value::Object(kept));
            }
        }
        Value::Object(out)
    }

    fn context(&mut self, context: &Map<String, Value>) -> Value {
        let mut out = Map::new();
        if let Some(registration) = context.get("registration").and_then(Value::as_str) {
            out.insert(
                "registration".into(),
                json!(Self::mapped_id(&mut self.registrations, registration)),
            );
        }
        for role in ["instructor", "team"] {
            if let Some(agent) = context.get(role) {
                out.insert(role.into(), self.agent(agent));
            }
        }
        if let Some(activities) = context.get("contextActivities").and_then(Value::as_object) {
            let mut kept = Map::new();
            for (kind, list) in activities {
                if !matches!(kind.as_str(), "parent" | "grouping" | "category" | "other") {
                    continue;
                }
                let list = match list {
                    Value::Array(items) => items.iter().map(|a| self.activity(a)).collect(),
                    single => vec![self.activity(single)],
                };
                kept.insert(kind.clone(), Value::Array(list));
            }
            out.insert("contextActivities".into(), Value::Object(kept));
        }
        for (list, field) in [("contextAgents", "agent"), ("contextGroups", "group")] {
            if let Some(Value::Array(entries)) = context.get(list) {
                let entries = entries
                    .iter()
                    .map(|entry| {
                        let mut kept = Map::new();
                        kept.insert(
                            "objectType".into(),
                            entry.get("objectType").cloned().unwrap_or(json!(
                                if field == "agent" {
                                    "contextAgent"
                                } else {
                                    "contextGroup"
                                }
                            )),
                        );
                        if let Some(agent) = entry.get(field) {
                            kept.insert(field.into(), self.agent(agent));
                        }
                        if let Some(types) = entry.get("relevantTypes") {
                            kept.insert("relevantTypes".into(), types.clone());
                        }
                        Value::Object(kept)
                    })
                    .collect();
                out.insert(list.into(), Value::Array(entries));
            }
        }
        if let Some(language) = context.get("language").and_then(Value::as_str) {
            out.insert("language".into(), json!(language));
        }
        if let Some(reference) = context.get("statement") {
            out.insert("statement".into(), self.object(reference));
        }
        if let Some(extensions) = context.get("extensions") {
            out.insert("extensions".into(), self.extensions(extensions, true));
        }
        Value::Object(out)
    }

    /// An agent or group: a pseudonymous account per identified person, no
    /// name; an anonymous group keeps only its (pseudonymous) members.
    pub fn agent(&mut self, agent: &Value) -> Value {
        let mut out = Map::new();
        if let Some(kind) = agent.get("objectType").and_then(Value::as_str) {
            out.insert("objectType".into(), json!(kind));
        }
        if let Some(ifi) = xapi::agent::ifi_of(agent) {
            let pseudonym = self
                .people
                .entry(ifi.canonical_bytes())
                .or_insert_with(Self::random)
                .clone();
            out.insert(
                "account".into(),
                json!({"homePage": PSEUDONYM_HOME_PAGE, "name": pseudonym}),
            );
        }
        if let Some(Value::Array(members)) = agent.get("member") {
            let members = members.iter().map(|m| self.agent(m)).collect();
            out.insert("member".into(), Value::Array(members));
        }
        Value::Object(out)
    }

    /// Extensions without free text: numbers, booleans and the structure
    /// around them stay; strings go, except the configured origin
    /// extensions of a context (an ISIL or appid names an organisation).
    fn extensions(&mut self, extensions: &Value, context: bool) -> Value {
        let Some(extensions) = extensions.as_object() else {
            return json!({});
        };
        let mut out = Map::new();
        for (key, value) in extensions {
            let kept = if context && self.keep_extensions.contains(key) && value.is_string() {
                Some(value.clone())
            } else {
                without_strings(value)
            };
            if let Some(kept) = kept {
                out.insert(key.clone(), kept);
            }
        }
        Value::Object(out)
    }

    /// A timestamp, coarsened to the start of its Dutch day or month.
    fn time(&self, text: &str) -> String {
        let Some(parsed) = xapi::validate::parse_timestamp(text) else {
            // Validation accepted it once; if it does not parse now, say nothing of it.
            return "1970-01-01T00:00:00.000000Z".into();
        };
        let micros = parsed.timestamp_micros();
        match self.coarsen {
            None => format_micros(micros),
            Some(coarsen) => format_micros(coarsened(micros, coarsen)),
        }
    }
}

/// A JSON value with every string removed (`None` if nothing is left).
fn without_strings(value: &Value) -> Option<Value> {
    match value {
        Value::String(_) => None,
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(without_strings).collect(),
        )),
        Value::Object(map) => Some(Value::Object(
            map.iter()
                .filter_map(|(k, v)| without_strings(v).map(|v| (k.clone(), v)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// The start of the Dutch day or month holding `micros`.
pub fn coarsened(micros: i64, coarsen: Coarsen) -> i64 {
    let amsterdam = chrono_tz::Europe::Amsterdam;
    let utc = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let local = amsterdam.from_utc_datetime(&utc.naive_utc()).date_naive();
    let start = match coarsen {
        Coarsen::Day => local,
        Coarsen::Month => local.with_day(1).unwrap_or(local),
    };
    // Midnight exists in Amsterdam every day (the clocks change at 02:00 / 03:00).
    amsterdam
        .from_local_datetime(&start.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .map(|t| t.timestamp_micros())
        .unwrap_or(micros)
}

/// What an anonymised export held, for the manifest and the command line.
#[derive(Debug, Default, Serialize)]
pub struct AnonymisedSummary {
    pub statements: u64,
    /// Statements whose subject was erased: they cannot be opened, so they are absent.
    pub statements_of_erased_people: u64,
    pub people: usize,
    pub per_verb: BTreeMap<String, u64>,
    pub per_activity: BTreeMap<String, u64>,
    pub coarsen_times: Option<Coarsen>,
    /// Assignments of modules copied (with their learners' pseudonyms).
    pub assignments: u64,
    /// Learners of assignments left out: erased, or named by no statement
    /// (the vault keeps only a keyed hash of an identifier).
    pub assigned_learners_left_out: u64,
}

/// What the log holds besides statements that a demo copy needs: tenants,
/// roles and course models (no people; who set a course model is dropped),
/// and the assignments of modules to learners, each learner as their
/// pseudonymous agent (the copy gives them its own token).
pub enum Item {
    Statement(AnonymisedLine),
    Administrative(Box<Event>),
    Assignment {
        event: Box<lrs_core::events::ModulesAssignedV1>,
        learners: Vec<Value>,
    },
}

/// Walks the log up to its head in order and hands out every anonymised
/// statement (and, for a data directory, the administrative events),
/// calling `progress(done, total)` every 1,000 entries.
pub fn anonymise_store(
    store: &Store,
    anonymiser: &mut Anonymiser,
    mut sink: impl FnMut(Item) -> anyhow::Result<()>,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<AnonymisedSummary> {
    let head = store.head();
    let mut summary = AnonymisedSummary {
        coarsen_times: anonymiser.coarsen,
        ..Default::default()
    };
    // Each person's agent (identifier only), from their sealed agent
    // objects, for the assignments; those come last, when every learner
    // has a pseudonym.
    let mut agents: HashMap<Token, Value> = HashMap::new();
    let mut assignments = Vec::new();
    for entry in store.read_from(1) {
        let entry = entry?;
        if entry.position > head {
            break;
        }
        if entry.position % 1_000 == 0 {
            progress(entry.position, head);
        }
        let event = entry.event;
        match event {
            Event::ModulesAssignedV1(assigned) => assignments.push(assigned),
            Event::TenantDefinedV1(_) | Event::RoleDefinedV1(_) => {
                sink(Item::Administrative(Box::new(event)))?;
            }
            Event::CourseModelDefinedV1(mut model) => {
                model.by = "anonymised-copy".into();
                sink(Item::Administrative(Box::new(Event::CourseModelDefinedV1(
                    model,
                ))))?;
            }
            event => {
                let Some(stored) = event.into_statement() else {
                    continue;
                };
                for person in &stored.statement.sealed.persons {
                    if agents.contains_key(&person.token) {
                        continue;
                    }
                    if let Some(agent) =
                        lrs_core::envelope::open_person(person, store.vault().as_ref())?
                    {
                        if let Some(ifi) = xapi::agent::ifi_of(&agent) {
                            let mut only = ifi.to_agent_properties();
                            only.insert("objectType".into(), json!("Agent"));
                            agents.insert(person.token, Value::Object(only));
                        }
                    }
                }
                let Some(statement) = reassemble(&stored.statement, store.vault().as_ref())? else {
                    summary.statements_of_erased_people += 1;
                    continue;
                };
                let statement = anonymiser.statement(&statement);
                summary.statements += 1;
                *summary
                    .per_verb
                    .entry(stored.statement.facts.verb_id.clone())
                    .or_default() += 1;
                if let Some(id) = statement.pointer("/object/id").and_then(Value::as_str) {
                    if statement
                        .pointer("/object/objectType")
                        .and_then(Value::as_str)
                        != Some("StatementRef")
                    {
                        *summary.per_activity.entry(id.to_owned()).or_default() += 1;
                    }
                }
                let OriginV1 { app, library } = stored.origin;
                sink(Item::Statement(AnonymisedLine {
                    tenant: stored.statement.tenant,
                    app,
                    library,
                    statement,
                }))?;
            }
        }
    }
    for mut assigned in assignments {
        let mut learners = Vec::new();
        for token in std::mem::take(&mut assigned.learners) {
            match agents.get(&token) {
                Some(agent) => learners.push(anonymiser.agent(agent)),
                None => summary.assigned_learners_left_out += 1,
            }
        }
        if learners.is_empty() {
            continue;
        }
        assigned.by = "anonymised-copy".into();
        summary.assignments += 1;
        sink(Item::Assignment {
            event: Box::new(assigned),
            learners,
        })?;
    }
    progress(head, head);
    summary.people = anonymiser.people();
    Ok(summary)
}
