//! The shapes a statement is returned in (`format=exact|ids|canonical`) and
//! the comparison form used to decide whether two statements are "the same"
//! (spec Data 2.3.1: ignore what the LRS may assign or re-serialize).

use crate::agent::ifi_of;
use serde_json::{Map, Value};

/// The `format` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Exact,
    Ids,
    Canonical,
}

impl Format {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "exact" => Some(Self::Exact),
            "ids" => Some(Self::Ids),
            "canonical" => Some(Self::Canonical),
            _ => None,
        }
    }
}

/// Applies a format to a complete statement. `languages` is the caller's
/// Accept-Language preference list (most preferred first), used by canonical.
pub fn apply(statement: &mut Value, format: Format, languages: &[String]) {
    match format {
        Format::Exact => {}
        Format::Ids => ids_statement(statement),
        Format::Canonical => canonical_language_maps(statement, languages),
    }
}

fn ids_statement(statement: &mut Value) {
    let Some(object) = statement.as_object_mut() else {
        return;
    };
    for key in ["actor", "authority"] {
        if let Some(agent) = object.get_mut(key) {
            ids_agent(agent);
        }
    }
    if let Some(verb) = object.get_mut("verb").and_then(Value::as_object_mut) {
        verb.retain(|k, _| k == "id");
    }
    if let Some(target) = object.get_mut("object") {
        match target.get("objectType").and_then(Value::as_str) {
            Some("Agent") | Some("Group") => ids_agent(target),
            Some("SubStatement") => ids_statement(target),
            Some("StatementRef") => {}
            _ => ids_activity(target),
        }
    }
    if let Some(context) = object.get_mut("context").and_then(Value::as_object_mut) {
        for key in ["instructor", "team"] {
            if let Some(agent) = context.get_mut(key) {
                ids_agent(agent);
            }
        }
        if let Some(activities) = context
            .get_mut("contextActivities")
            .and_then(Value::as_object_mut)
        {
            for (_, list) in activities.iter_mut() {
                match list {
                    Value::Array(items) => items.iter_mut().for_each(ids_activity),
                    other => ids_activity(other),
                }
            }
        }
        for (list, field) in [("contextAgents", "agent"), ("contextGroups", "group")] {
            if let Some(Value::Array(entries)) = context.get_mut(list) {
                for entry in entries {
                    if let Some(agent) = entry.get_mut(field) {
                        ids_agent(agent);
                    }
                }
            }
        }
    }
}

fn ids_agent(agent: &mut Value) {
    let identified = ifi_of(agent).is_some();
    let Some(object) = agent.as_object_mut() else {
        return;
    };
    let members = object.remove("member");
    object.retain(|k, _| {
        matches!(
            k.as_str(),
            "objectType" | "mbox" | "mbox_sha1sum" | "openid" | "account"
        )
    });
    if let Some(Value::Array(mut members)) = members {
        // An anonymous group is identified by its members; an identified one by its IFI.
        if !identified {
            members.iter_mut().for_each(ids_agent);
            object.insert("member".into(), Value::Array(members));
        }
    }
}

fn ids_activity(activity: &mut Value) {
    if let Some(object) = activity.as_object_mut() {
        object.retain(|k, _| k == "id");
    }
}

/// Keeps, in every language map, only the entry that best matches the
/// caller's languages (or the first entry when none matches).
fn canonical_language_maps(value: &mut Value, languages: &[String]) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                if matches!(key.as_str(), "display" | "name" | "description") && child.is_object() {
                    if let Value::Object(map) = child {
                        if map.values().all(Value::is_string) {
                            reduce_language_map(map, languages);
                            continue;
                        }
                    }
                }
                if key == "extensions" {
                    continue;
                }
                canonical_language_maps(child, languages);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| canonical_language_maps(item, languages)),
        _ => {}
    }
}

fn reduce_language_map(map: &mut Map<String, Value>, languages: &[String]) {
    if map.len() <= 1 {
        return;
    }
    let chosen = languages
        .iter()
        .find_map(|wanted| {
            map.keys()
                .find(|tag| tag.eq_ignore_ascii_case(wanted))
                .or_else(|| {
                    map.keys().find(|tag| {
                        let primary = tag.split('-').next().unwrap_or("");
                        primary.eq_ignore_ascii_case(wanted.split('-').next().unwrap_or(""))
                    })
                })
                .cloned()
        })
        .or_else(|| map.keys().next().cloned());
    if let Some(chosen) = chosen {
        map.retain(|k, _| *k == chosen);
    }
}

/// Most languages of an Accept-Language header that `format=canonical`
/// considers (the most preferred ones); every language is compared with
/// every key of every language map, so the list is kept short.
pub const MAX_ACCEPT_LANGUAGES: usize = 16;

/// Parses an Accept-Language header into tags by descending preference, at
/// most [`MAX_ACCEPT_LANGUAGES`] of them.
pub fn accept_languages(header: &str) -> Vec<String> {
    let mut weighted: Vec<(f32, usize, String)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next()?.trim();
            if tag.is_empty() || tag == "*" {
                return None;
            }
            let q = pieces
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            Some((q, i, tag.to_owned()))
        })
        .collect();
    weighted.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    weighted
        .into_iter()
        .take(MAX_ACCEPT_LANGUAGES)
        .map(|(_, _, tag)| tag)
        .collect()
}

/// Context activities are stored and returned as arrays even when a client
/// sent a single object (spec Data 2.4.6.2), in the statement and its
/// sub-statement.
pub fn normalize_context_activities(statement: &mut Value) {
    if let Some(context) = statement.get_mut("context") {
        arrays_of_context_activities(context);
    }
    if let Some(sub_context) = statement
        .get_mut("object")
        .and_then(|o| o.get_mut("context"))
    {
        arrays_of_context_activities(sub_context);
    }
}

fn arrays_of_context_activities(context: &mut Value) {
    if let Some(Value::Object(activities)) = context.get_mut("contextActivities") {
        for (_, value) in activities.iter_mut() {
            if value.is_object() {
                *value = Value::Array(vec![value.take()]);
            }
        }
    }
}

/// The form in which two statements are compared: without what the LRS may
/// assign (id, stored, authority, version), without verb display and
/// activity definitions, timestamps as instants, group members unordered,
/// and with object keys sorted. Serialize it to compare or digest.
pub fn comparison_form(statement: &Value) -> Value {
    let mut value = statement.clone();
    if let Some(object) = value.as_object_mut() {
        for key in ["id", "stored", "authority", "version"] {
            object.remove(key);
        }
        if let Some(timestamp) = object.get("timestamp").and_then(Value::as_str) {
            let instant = chrono::DateTime::parse_from_rfc3339(timestamp)
                .map(|t| t.timestamp_micros().to_string())
                .unwrap_or_else(|_| timestamp.to_owned());
            object.insert("timestamp".into(), Value::String(instant));
        }
    }
    normalize_for_comparison(&mut value, None);
    sorted(value)
}

fn normalize_for_comparison(value: &mut Value, parent_key: Option<&str>) {
    match value {
        Value::Object(object) => {
            if parent_key == Some("verb") {
                object.remove("display");
            }
            if object
                .get("objectType")
                .and_then(Value::as_str)
                .is_none_or(|t| t == "Activity")
                && object.contains_key("id")
                && matches!(parent_key, Some("object") | Some("activity"))
            {
                object.remove("definition");
            }
            if let Some(Value::Array(members)) = object.get_mut("member") {
                // Each member's key is made once (n of them), not once per
                // comparison (n log n copies and serializations).
                members.sort_by_cached_key(|m| sorted(m.clone()).to_string());
            }
            for (key, child) in object.iter_mut() {
                let key = if matches!(key.as_str(), "parent" | "grouping" | "category" | "other") {
                    "activity"
                } else {
                    key.as_str()
                };
                normalize_for_comparison(child, Some(key));
            }
        }
        Value::Array(items) => {
            for item in items {
                normalize_for_comparison(item, parent_key);
            }
        }
        _ => {}
    }
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(String, Value)> = object.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparison_ignores_what_the_lrs_may_change() {
        let sent = json!({
            "actor": {"objectType": "Group", "member": [{"mbox": "mailto:a@x.nl"}, {"mbox": "mailto:b@x.nl"}]},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attended", "display": {"en": "attended"}},
            "object": {"id": "https://x.example/a", "definition": {"name": {"en": "A"}}},
            "timestamp": "2024-01-01T12:00:00+01:00"
        });
        let returned = json!({
            "id": "6f1a8f0e-0000-4000-8000-000000000001",
            "timestamp": "2024-01-01T11:00:00Z",
            "object": {"id": "https://x.example/a"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
            "actor": {"objectType": "Group", "member": [{"mbox": "mailto:b@x.nl"}, {"mbox": "mailto:a@x.nl"}]},
            "stored": "2024-01-01T11:00:01Z",
            "authority": {"mbox": "mailto:lrs@x.nl"}
        });
        assert_eq!(comparison_form(&sent), comparison_form(&returned));
        let mut different = returned.clone();
        different["object"]["id"] = json!("https://x.example/b");
        assert_ne!(comparison_form(&sent), comparison_form(&different));
    }

    #[test]
    fn ids_keeps_only_identifiers() {
        let mut statement = json!({
            "actor": {"objectType": "Agent", "name": "Anna", "mbox": "mailto:a@x.nl"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"nl": "geslaagd"}},
            "object": {"id": "https://x.example/a", "definition": {"name": {"nl": "A"}}}
        });
        apply(&mut statement, Format::Ids, &[]);
        assert_eq!(
            statement["actor"],
            json!({"objectType": "Agent", "mbox": "mailto:a@x.nl"})
        );
        assert_eq!(
            statement["verb"],
            json!({"id": "http://adlnet.gov/expapi/verbs/passed"})
        );
        assert_eq!(statement["object"], json!({"id": "https://x.example/a"}));
    }

    #[test]
    fn single_context_activities_become_arrays() {
        let mut statement = json!({"context": {"contextActivities": {"parent": {"id": "https://x.example/p"}}},
            "object": {"objectType": "SubStatement", "context": {"contextActivities": {"other": {"id": "https://x.example/o"}}}}});
        normalize_context_activities(&mut statement);
        assert_eq!(
            statement["context"]["contextActivities"]["parent"],
            json!([{"id": "https://x.example/p"}])
        );
        assert_eq!(
            statement["object"]["context"]["contextActivities"]["other"],
            json!([{"id": "https://x.example/o"}])
        );
    }

    #[test]
    fn canonical_picks_the_preferred_language() {
        let mut statement =
            json!({"verb": {"id": "x:v", "display": {"en-US": "passed", "nl-NL": "geslaagd"}}});
        apply(
            &mut statement,
            Format::Canonical,
            &accept_languages("nl;q=0.9, fr;q=0.1"),
        );
        assert_eq!(statement["verb"]["display"], json!({"nl-NL": "geslaagd"}));
    }
}
