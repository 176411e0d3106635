//! The Activities resource: the canonical definition of an activity, built
//! from the statements that mention it.
//!
//! There is no separate activity store: the definition is merged from the
//! readable statements in the caller's scope that mention the activity (as
//! object, context activity, or sub-statement object), newest first, the
//! newest statement winning per property, per language tag of `name` and
//! `description`, and per key of `extensions`. An activity never seen
//! answers `{"objectType": "Activity", "id": ...}` (Communication 2.5: the LRS
//! still returns an Activity Object), the same as one only another tenant
//! knows.

use crate::error::ApiError;
use crate::request::params::Params;
use crate::resources::state::XapiState;
use crate::resources::statements::newest_statements;
use crate::security::extract::Caller;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use lrs_projections::statement_index::{string_term, TermKind};
use serde_json::{Map, Value};

/// How many of the newest statements mentioning an activity are read to
/// build its definition.
const STATEMENTS_READ: usize = 50;

/// Properties of a definition merged per key rather than replaced whole.
const MERGED_PER_KEY: &[&str] = &["name", "description", "extensions"];

pub async fn get_activity(
    State(state): State<XapiState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    // Reading a definition reveals what statements said about the activity:
    // `statements/read` (also granted by `all/read` and `all`), or `define`,
    // the scope for (re)defining activities.
    caller
        .credential
        .require(&["statements/read", "statements/read/mine", "define"])?;
    let activity_id = activity_id_param(query.as_deref())?;

    let store = state.store.clone();
    let scope = lrs_app::tenancy::read_scope(&state.store, &caller.credential)?;
    let id = activity_id.clone();
    let definition = tokio::task::spawn_blocking(move || {
        let statements = newest_statements(
            &store,
            scope,
            (TermKind::RelatedActivity, string_term(&id)),
            STATEMENTS_READ,
        )?;
        let mut definition = Map::new();
        for statement in &statements {
            let mut found = Vec::new();
            activities_in(statement, &id, &mut found);
            for activity in found {
                if let Some(Value::Object(older)) = activity.get("definition") {
                    merge_older(&mut definition, older);
                }
            }
        }
        Ok::<_, ApiError>(definition)
    })
    .await
    .map_err(ApiError::internal)??;

    let mut activity = Map::new();
    activity.insert("objectType".into(), Value::String("Activity".into()));
    activity.insert("id".into(), Value::String(activity_id));
    if !definition.is_empty() {
        activity.insert("definition".into(), Value::Object(definition));
    }
    Ok(axum::Json(Value::Object(activity)).into_response())
}

/// The one parameter, `activityId`: required, once, an IRI.
fn activity_id_param(raw: Option<&str>) -> Result<String, ApiError> {
    let params = Params::parse(raw, &["activityId"])?;
    params.required("activityId")?;
    Ok(params.iri("activityId")?.expect("required").to_owned())
}

/// Every activity object with this id in a statement, in the order a reader
/// meets them: object, context activities, then the sub-statement's.
fn activities_in<'a>(statement: &'a Value, id: &str, found: &mut Vec<&'a Value>) {
    let object = &statement["object"];
    let object_type = object.get("objectType").and_then(Value::as_str);
    if matches!(object_type, None | Some("Activity")) {
        push_if(object, id, found);
    }
    context_activities(&statement["context"], id, found);
    if object_type == Some("SubStatement") {
        let inner = &object["object"];
        if matches!(
            inner.get("objectType").and_then(Value::as_str),
            None | Some("Activity")
        ) {
            push_if(inner, id, found);
        }
        context_activities(&object["context"], id, found);
    }
}

fn context_activities<'a>(context: &'a Value, id: &str, found: &mut Vec<&'a Value>) {
    let Some(Value::Object(lists)) = context.get("contextActivities") else {
        return;
    };
    for key in ["parent", "grouping", "category", "other"] {
        match lists.get(key) {
            Some(Value::Array(items)) => items.iter().for_each(|a| push_if(a, id, found)),
            Some(single @ Value::Object(_)) => push_if(single, id, found),
            _ => {}
        }
    }
}

fn push_if<'a>(activity: &'a Value, id: &str, found: &mut Vec<&'a Value>) {
    if activity.get("id").and_then(Value::as_str) == Some(id) {
        found.push(activity);
    }
}

/// Adds what an older definition says and the newer ones so far do not:
/// whole properties, or single entries of the per-key ones (language maps,
/// extensions).
fn merge_older(merged: &mut Map<String, Value>, older: &Map<String, Value>) {
    for (property, value) in older {
        match (merged.get_mut(property), value) {
            (None, value) => {
                merged.insert(property.clone(), value.clone());
            }
            (Some(Value::Object(newer)), Value::Object(older))
                if MERGED_PER_KEY.contains(&property.as_str()) =>
            {
                for (key, value) in older {
                    newer.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            (Some(_), _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newer_definitions_win_per_property_and_per_language() {
        let mut merged = Map::new();
        let newer = json!({"type": "http://t/new", "name": {"fr-FR": "réunion"},
                           "extensions": {"http://x/a": 1}});
        let older = json!({"type": "http://t/old", "name": {"fr-FR": "vieux", "en-US": "meeting"},
                           "moreInfo": "http://m", "extensions": {"http://x/a": 0, "http://x/b": 2}});
        merge_older(&mut merged, newer.as_object().unwrap());
        merge_older(&mut merged, older.as_object().unwrap());
        assert_eq!(
            Value::Object(merged),
            json!({"type": "http://t/new", "name": {"fr-FR": "réunion", "en-US": "meeting"},
                   "moreInfo": "http://m", "extensions": {"http://x/a": 1, "http://x/b": 2}})
        );
    }

    #[test]
    fn activities_are_found_wherever_the_statement_mentions_them() {
        let id = "http://a/1";
        let statement = json!({
            "object": {"objectType": "SubStatement",
                       "object": {"id": id, "definition": {"type": "http://t/sub"}},
                       "context": {"contextActivities": {"other": {"id": id}}}},
            "context": {"contextActivities": {"parent": [{"id": "http://a/2"}, {"id": id}],
                                              "grouping": [{"id": id}]}}
        });
        let mut found = Vec::new();
        activities_in(&statement, id, &mut found);
        assert_eq!(found.len(), 4);
        let agent_object = json!({"object": {"objectType": "Agent", "id": id}});
        let mut found = Vec::new();
        activities_in(&agent_object, id, &mut found);
        assert!(found.is_empty());
    }

    #[test]
    fn activity_id_is_required_once_and_an_iri() {
        assert!(activity_id_param(None).is_err());
        assert!(activity_id_param(Some("activityId=not%20an%20iri")).is_err());
        assert!(activity_id_param(Some("activityId=http://a/1&activityId=http://a/1")).is_err());
        assert!(activity_id_param(Some("activityId=http://a/1&agent=x")).is_err());
        assert_eq!(
            activity_id_param(Some("activityId=http%3A%2F%2Fa%2F1")).unwrap(),
            "http://a/1"
        );
    }
}
