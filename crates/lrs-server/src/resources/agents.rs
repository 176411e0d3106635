//! The Agents resource: the Person object combining what is known of a person.
//!
//! This LRS links no identities, so a Person carries exactly the queried
//! inverse functional identifier; its `name` list holds the distinct names
//! the person used in the readable statements of the caller's scope (newest
//! statement first, a bounded number of them) and the name given in the
//! request. A person unknown to the caller's tenant answers the Person made
//! of the request alone (Communication 2.4), whether or not another tenant
//! knows them.

use crate::error::ApiError;
use crate::request::params::Params;
use crate::resources::state::XapiState;
use crate::resources::statements::newest_statements;
use crate::security::extract::Caller;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use lrs_projections::statement_index::TermKind;
use serde_json::{Map, Value};
use std::collections::HashSet;
use xapi::agent::{ifi_of, is_group, Ifi};

/// How many of the newest statements about a person are read for their names.
const STATEMENTS_READ: usize = 50;

pub async fn get_person(
    State(state): State<XapiState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    // The names come out of statements: reading them is reading statements
    // (`statements/read`, also granted by `all/read` and `all`).
    caller
        .credential
        .require(&["statements/read", "statements/read/mine"])?;
    let params = Params::parse(query.as_deref(), &["agent"])?;
    params.required("agent")?;
    let (agent, ifi) = params.agent("agent", caller.version)?.expect("required");
    if is_group(&agent) {
        return Err(ApiError::bad_request(
            "?agent.objectType",
            "agent.not-a-group",
            "the Agents resource takes an Agent, not a Group",
        ));
    }

    let mut names = Names::default();
    if let Some(token) = state.store.vault().token_of(&ifi) {
        let store = state.store.clone();
        let scope = lrs_app::tenancy::read_scope(&state.store, &caller.credential)?;
        let wanted = ifi.clone();
        names = tokio::task::spawn_blocking(move || {
            let statements = newest_statements(
                &store,
                scope,
                (TermKind::RelatedAgent, token.0),
                STATEMENTS_READ,
            )?;
            let mut names = Names::default();
            for statement in &statements {
                names_in(statement, &wanted, &mut names);
            }
            Ok::<_, ApiError>(names)
        })
        .await
        .map_err(ApiError::internal)??;
    }
    if let Some(Value::String(name)) = agent.get("name") {
        names.add(name);
    }
    Ok(axum::Json(person(&ifi, names.order)).into_response())
}

/// The Person object: every property an array, only the non-empty ones.
fn person(ifi: &Ifi, names: Vec<String>) -> Value {
    let mut person = Map::new();
    person.insert("objectType".into(), Value::String("Person".into()));
    if !names.is_empty() {
        person.insert(
            "name".into(),
            Value::Array(names.into_iter().map(Value::String).collect()),
        );
    }
    for (property, value) in ifi.to_agent_properties() {
        person.insert(property, Value::Array(vec![value]));
    }
    Value::Object(person)
}

/// A person's names in the order first seen, each once: a set beside the
/// list, so that 50 statements naming 1,000 agents each cost 50,000
/// look-ups, not a comparison of every name with every earlier one.
#[derive(Default)]
struct Names {
    order: Vec<String>,
    seen: HashSet<String>,
}

impl Names {
    fn add(&mut self, name: &str) {
        if self.seen.insert(name.to_owned()) {
            self.order.push(name.to_owned());
        }
    }
}

/// The names of every agent object in the statement with this IFI.
fn names_in(statement: &Value, ifi: &Ifi, names: &mut Names) {
    let mut agents = Vec::new();
    agents_in(statement, &mut agents);
    if let Some(authority) = statement.get("authority") {
        with_members(authority, &mut agents);
    }
    for agent in agents {
        if let Some(Value::String(name)) = agent.get("name") {
            if ifi_of(agent).as_ref() == Some(ifi) {
                names.add(name);
            }
        }
    }
}

/// The agent and group objects of a statement or sub-statement (actor,
/// object, context), and the members of its groups.
fn agents_in<'a>(statement: &'a Value, agents: &mut Vec<&'a Value>) {
    if let Some(actor) = statement.get("actor") {
        with_members(actor, agents);
    }
    let object = &statement["object"];
    match object.get("objectType").and_then(Value::as_str) {
        Some("Agent") | Some("Group") => with_members(object, agents),
        Some("SubStatement") => agents_in(object, agents),
        _ => {}
    }
    let context = &statement["context"];
    for key in ["instructor", "team"] {
        if let Some(agent) = context.get(key) {
            with_members(agent, agents);
        }
    }
    for (list, key) in [("contextAgents", "agent"), ("contextGroups", "group")] {
        if let Some(Value::Array(items)) = context.get(list) {
            for item in items {
                if let Some(agent) = item.get(key) {
                    with_members(agent, agents);
                }
            }
        }
    }
}

fn with_members<'a>(agent: &'a Value, agents: &mut Vec<&'a Value>) {
    agents.push(agent);
    if let Some(Value::Array(members)) = agent.get("member") {
        agents.extend(members.iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_come_from_every_place_an_agent_can_stand() {
        let ifi = ifi_of(&json!({"mbox": "mailto:a@example.org"})).unwrap();
        let statement = json!({
            "actor": {"objectType": "Group", "member": [{"mbox": "mailto:a@example.org", "name": "A1"}]},
            "object": {"objectType": "SubStatement",
                       "actor": {"mbox": "mailto:a@example.org", "name": "A2"},
                       "object": {"objectType": "Agent", "mbox": "mailto:a@example.org", "name": "A3"}},
            "context": {"instructor": {"mbox": "mailto:a@example.org", "name": "A1"},
                        "contextAgents": [{"objectType": "contextAgent",
                                           "agent": {"mbox": "mailto:a@example.org", "name": "A4"}}],
                        "team": {"mbox": "mailto:b@example.org", "name": "B"}}
        });
        let mut names = Names::default();
        names_in(&statement, &ifi, &mut names);
        assert_eq!(names.order, vec!["A1", "A2", "A3", "A4"]);
    }

    #[test]
    fn a_person_has_arrays_and_only_the_non_empty_ones() {
        let ifi =
            ifi_of(&json!({"account": {"homePage": "https://h.example", "name": "7"}})).unwrap();
        assert_eq!(
            person(&ifi, vec![]),
            json!({"objectType": "Person", "account": [{"homePage": "https://h.example", "name": "7"}]})
        );
        let ifi = ifi_of(&json!({"mbox": "mailto:a@example.org"})).unwrap();
        assert_eq!(
            person(&ifi, vec!["A".into()]),
            json!({"objectType": "Person", "name": ["A"], "mbox": ["mailto:a@example.org"]})
        );
    }
}
