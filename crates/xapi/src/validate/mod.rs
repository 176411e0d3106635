//! Statement and agent validation for xAPI 1.0.3 and 2.0.0: first the JSON
//! Schemas in `schemas/` (structure), then the spec rules a schema cannot
//! express (formats, cross-field rules). Pure functions over
//! `serde_json::Value`: no I/O, no HTTP, no storage; they never know who sent
//! the statement or what the store already holds.
//!
//! Errors name the broken rule with a stable id and a JSONPath-like location.
//! Rule ids:
//!
//! * from the schema: `statement.missing-property`, `statement.unknown-property`,
//!   `statement.null-value`, `statement.wrong-type`, `statement.invalid-value`,
//!   `statement.object-type`, `statement.empty-array`, `activity.interaction-type`,
//!   `substatement.nested`, `substatement.forbidden-property`,
//!   `group.member-not-agent`, `context.requires-2.0`, `context-activities.key`,
//!   `object.agent-requires-object-type`, `schema` (anything else);
//! * agents: `agent.exactly-one-ifi`, `agent.mbox-format`, `agent.mbox-sha1sum-format`,
//!   `agent.openid-format`, `agent.account-homepage-format`,
//!   `group.anonymous-requires-member`, `authority.group-must-be-anonymous`,
//!   `authority.group-two-members`;
//! * data types: `iri.format`, `uuid.format`, `timestamp.format`, `duration.format`,
//!   `language-map.tag`, `context.language-tag`;
//! * statement rules: `score.scaled-range`, `score.raw-range`, `score.min-max`,
//!   `interaction.type-required`, `interaction.component-list-not-allowed`,
//!   `interaction.component-id-unique`, `context.revision-requires-activity`,
//!   `context.platform-requires-activity`, `voiding.object-must-be-statementref`,
//!   `statement.version`, `attachment.content-type`, `attachment.sha2-format`,
//!   `batch.duplicate-id`, `batch.not-a-statement`;
//! * limits this store sets where the spec sets none (`limits.rs`, checked
//!   first, in one linear pass): `limit.depth`, `limit.list-items`,
//!   `limit.agents`, `limit.extensions-size`, `limit.batch-statements`.

mod actor;
mod datatypes;
pub mod limits;
mod object;
mod path;
mod schema;
mod statement;

use std::collections::HashSet;

use serde_json::Value;

pub use datatypes::{is_duration, is_iri, is_language_tag, is_uuid, parse_timestamp};
pub use statement::VOIDED_VERB;

use crate::{ValidationError, XapiVersion};
use path::Path;

/// Validates one statement as received from a client (before the LRS adds
/// stored/authority/id).
pub fn validate_statement(statement: &Value, version: XapiVersion) -> Result<(), ValidationError> {
    limits::check(statement)?;
    schema::check(schema::statement_validator(version), statement)?;
    match statement.as_object() {
        Some(object) => statement::check_statement(object, &Path::Root, version),
        None => Err(ValidationError::new(
            "$",
            "statement.wrong-type",
            "a statement must be a json object",
        )),
    }
}

/// Body of a POST: a single statement object or an array of statements.
/// Paths for array items are `$[i]...`. Two statements of one batch may not
/// share an `id` (`batch.duplicate-id`).
pub fn validate_statement_batch(body: &Value, version: XapiVersion) -> Result<(), ValidationError> {
    let Value::Array(items) = body else {
        return validate_statement(body, version);
    };
    limits::check_batch(items)?;
    let mut ids: HashSet<u128> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(ValidationError::new(
                format!("$[{i}]"),
                "batch.not-a-statement",
                "each item of a statement batch must be a statement object",
            ));
        }
        validate_statement(item, version).map_err(|e| e.under(&format!("$[{i}]")))?;
        if let Some(id) = item.get("id").and_then(Value::as_str) {
            // The id is a valid UUID by now; compare by value, not by case.
            let value = uuid::Uuid::parse_str(id)
                .map(|u| u.as_u128())
                .unwrap_or_default();
            if ids.capacity() == 0 {
                ids.reserve(items.len());
            }
            if !ids.insert(value) {
                return Err(ValidationError::new(
                    format!("$[{i}].id"),
                    "batch.duplicate-id",
                    format!("statement id {id:?} is used more than once in this batch"),
                ));
            }
        }
    }
    Ok(())
}

/// Checks a course model (a KB profile document, not xAPI itself) against
/// `schemas/course-model.json`; the error names the path and the rule.
pub fn validate_course_model(model: &Value) -> Result<(), ValidationError> {
    schema::check(schema::course_model_validator(), model)
}

/// The `agent` query/document parameter: an Agent or an identified Group
/// JSON object. Paths start at `$` (use [`ValidationError::under`] to name
/// the parameter).
pub fn validate_agent_param(agent: &Value, version: XapiVersion) -> Result<(), ValidationError> {
    // Agents are the same in 1.0.3 and 2.0.0.
    let _ = version;
    limits::check(agent)?;
    schema::check(schema::agent_param_validator(), agent)?;
    match agent.as_object() {
        Some(object) => actor::check_actor(object, &Path::Root, actor::Role::Identified),
        None => Err(ValidationError::new(
            "$",
            "statement.wrong-type",
            "an agent must be a json object",
        )),
    }
}
