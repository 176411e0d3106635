//! Extracts a statement's clear facts (verb, activities, people as tokens,
//! result, registration, time) from its sealed skeleton.

use crate::events::{
    ActivityFactV1, ActivityNameV1, ContextFactsV1, ObjectFactV1, ResultFactsV1, StatementFactsV1,
};
use crate::token::Token;
use serde_json::Value;
use uuid::Uuid;

/// Facts of a skeleton (as produced by [`crate::envelope::seal`]); `tokens`
/// maps the skeleton's person markers to tokens. `timestamp_micros` is the
/// parsed `timestamp`, if the client sent one.
pub fn extract(
    skeleton: &Value,
    tokens: &[Token],
    timestamp_micros: Option<i64>,
) -> StatementFactsV1 {
    let token_of = |agent: &Value| {
        agent
            .get("$p")
            .and_then(Value::as_u64)
            .and_then(|i| tokens.get(i as usize))
            .copied()
    };
    let mut related_agents: Vec<Token> = tokens.to_vec();
    related_agents.sort();
    related_agents.dedup();

    let mut related_activities = Vec::new();
    collect_context_activities(skeleton, &mut related_activities);

    let object_value = &skeleton["object"];
    let object = match object_value.get("objectType").and_then(Value::as_str) {
        Some("Agent") | Some("Group") => ObjectFactV1::Agent {
            token: token_of(object_value),
        },
        Some("StatementRef") => ObjectFactV1::StatementRef {
            id: object_value
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| Uuid::parse_str(id).ok())
                .unwrap_or_default(),
        },
        Some("SubStatement") => {
            let inner = &object_value["object"];
            let activity_id = match inner.get("objectType").and_then(Value::as_str) {
                None | Some("Activity") => {
                    inner.get("id").and_then(Value::as_str).map(str::to_owned)
                }
                _ => None,
            };
            if let Some(id) = &activity_id {
                related_activities.push(id.clone());
            }
            collect_context_activities(object_value, &mut related_activities);
            ObjectFactV1::SubStatement {
                verb_id: object_value["verb"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                activity_id,
            }
        }
        _ => ObjectFactV1::Activity {
            id: object_value
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            activity_type: object_value
                .pointer("/definition/type")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
    };
    related_activities.sort();
    related_activities.dedup();

    let context = &skeleton["context"];
    let result = skeleton.get("result").map(|result| ResultFactsV1 {
        success: result.get("success").and_then(Value::as_bool),
        completion: result.get("completion").and_then(Value::as_bool),
        score_scaled: result.pointer("/score/scaled").and_then(Value::as_f64),
        score_raw: result.pointer("/score/raw").and_then(Value::as_f64),
        score_min: result.pointer("/score/min").and_then(Value::as_f64),
        score_max: result.pointer("/score/max").and_then(Value::as_f64),
        duration: result
            .get("duration")
            .and_then(Value::as_str)
            .map(str::to_owned),
    });

    let mut group_members: Vec<Token> = [&skeleton["actor"], object_value]
        .into_iter()
        .filter_map(|agent| agent.get("member").and_then(Value::as_array))
        .flatten()
        .filter_map(token_of)
        .collect();
    group_members.sort();
    group_members.dedup();

    StatementFactsV1 {
        verb_id: skeleton["verb"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        object,
        actor: token_of(&skeleton["actor"]),
        group_members,
        related_agents,
        related_activities,
        registration: context
            .get("registration")
            .and_then(Value::as_str)
            .and_then(|r| Uuid::parse_str(r).ok()),
        timestamp_micros,
        result,
        platform: context
            .get("platform")
            .and_then(Value::as_str)
            .map(str::to_owned),
        language: context
            .get("language")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// The statement's `context.contextActivities` by kind (parent, grouping,
/// category; `other` is not needed by any read model), with the activity
/// types the statement gave. Activity ids are not personal data.
pub fn extract_context(skeleton: &Value) -> ContextFactsV1 {
    let kind = |name: &str| -> Vec<ActivityFactV1> {
        let activities = match skeleton.pointer(&format!("/context/contextActivities/{name}")) {
            Some(Value::Array(activities)) => activities.iter().collect(),
            Some(activity @ Value::Object(_)) => vec![activity],
            _ => vec![],
        };
        activities
            .into_iter()
            .filter_map(|activity| {
                Some(ActivityFactV1 {
                    id: activity.get("id")?.as_str()?.to_owned(),
                    activity_type: activity
                        .pointer("/definition/type")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
            })
            .collect()
    };
    ContextFactsV1 {
        parent: kind("parent"),
        grouping: kind("grouping"),
        category: kind("category"),
    }
}

/// The names (`definition.name`) the statement gives its object activity
/// and its `parent` and `grouping` activities: only the name, never the
/// description or extensions of a definition (an extension could carry
/// anything). Dutch and English tags are kept, or the first other tag when
/// neither is there; each name trimmed and cut at
/// [`ActivityNameV1::MAX_CHARS`] characters. One entry per activity id (the
/// first place it is named).
pub fn extract_names(skeleton: &Value) -> Vec<ActivityNameV1> {
    let mut activities: Vec<&Value> = Vec::new();
    let object = &skeleton["object"];
    if matches!(
        object.get("objectType").and_then(Value::as_str),
        None | Some("Activity")
    ) {
        activities.push(object);
    }
    for kind in ["parent", "grouping"] {
        match skeleton.pointer(&format!("/context/contextActivities/{kind}")) {
            Some(Value::Array(list)) => activities.extend(list.iter()),
            Some(activity @ Value::Object(_)) => activities.push(activity),
            _ => {}
        }
    }
    let mut found: Vec<ActivityNameV1> = Vec::new();
    for activity in activities {
        let Some(id) = activity.get("id").and_then(Value::as_str) else {
            continue;
        };
        let Some(map) = activity
            .pointer("/definition/name")
            .and_then(Value::as_object)
        else {
            continue;
        };
        if found.iter().any(|n| n.id == id) {
            continue;
        }
        let mut tags: Vec<(&String, &str)> = map
            .iter()
            .filter_map(|(tag, name)| Some((tag, name.as_str()?.trim())))
            .filter(|(_, name)| !name.is_empty())
            .collect();
        tags.sort_by(|a, b| a.0.cmp(b.0));
        let preferred = |tag: &str| {
            let primary = tag.split('-').next().unwrap_or_default();
            primary.eq_ignore_ascii_case("nl") || primary.eq_ignore_ascii_case("en")
        };
        let kept: Vec<(String, String)> = if tags.iter().any(|(tag, _)| preferred(tag)) {
            tags.into_iter()
                .filter(|(tag, _)| preferred(tag))
                .collect::<Vec<_>>()
        } else {
            tags.into_iter().take(1).collect::<Vec<_>>()
        }
        .into_iter()
        .map(|(tag, name)| {
            (
                tag.chars().take(35).collect(),
                name.chars().take(ActivityNameV1::MAX_CHARS).collect(),
            )
        })
        .collect();
        if !kept.is_empty() {
            found.push(ActivityNameV1 {
                id: id.to_owned(),
                names: kept,
            });
        }
    }
    found
}

fn collect_context_activities(statement: &Value, out: &mut Vec<String>) {
    let Some(context_activities) = statement
        .pointer("/context/contextActivities")
        .and_then(Value::as_object)
    else {
        return;
    };
    for kind in ["parent", "grouping", "category", "other"] {
        match context_activities.get(kind) {
            Some(Value::Array(activities)) => out.extend(
                activities
                    .iter()
                    .filter_map(|a| a.get("id").and_then(Value::as_str))
                    .map(str::to_owned),
            ),
            Some(activity @ Value::Object(_)) => out.extend(
                activity
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn facts_name_people_only_by_token() {
        let skeleton = json!({
            "actor": {"$p": 0},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
            "object": {"id": "https://c.example/course", "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/course"}},
            "result": {"score": {"scaled": 0.8}, "success": true, "duration": "PT10M"},
            "context": {
                "registration": "6f1a8f0e-0000-4000-8000-000000000001",
                "instructor": {"$p": 1},
                "contextActivities": {"parent": {"id": "https://c.example/p"}, "grouping": [{"id": "https://c.example/g"}]}
            }
        });
        let tokens = [Token([9; 16]), Token([3; 16])];
        let facts = extract(&skeleton, &tokens, None);
        assert_eq!(facts.actor, Some(Token([9; 16])));
        assert_eq!(facts.related_agents, vec![Token([3; 16]), Token([9; 16])]);
        assert_eq!(
            facts.related_activities,
            vec!["https://c.example/g", "https://c.example/p"]
        );
        assert_eq!(facts.result.unwrap().score_scaled, Some(0.8));
        let context = extract_context(&skeleton);
        assert_eq!(context.parent.len(), 1);
        assert_eq!(context.parent[0].id, "https://c.example/p");
        assert_eq!(context.grouping[0].id, "https://c.example/g");
        assert!(context.category.is_empty());
        assert!(matches!(
            facts.object,
            ObjectFactV1::Activity {
                activity_type: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn names_are_the_definitions_names_only() {
        let long = "x".repeat(500);
        let skeleton = json!({
            "actor": {"$p": 0},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/launched"},
            "object": {"id": "https://c.example/m1", "definition": {
                "name": {"nl-NL": " Module 1 ", "en-US": "Module one", "de": "Modul eins"},
                "description": {"nl-NL": "van Jan Jansen"},
                "extensions": {"https://x.example/owner": "jan@example.nl"}
            }},
            "context": {"contextActivities": {
                "grouping": [
                    {"id": "https://c.example/au"},
                    {"id": "https://c.example/course", "definition": {"name": {"fr": long, "de": "Kurs"}}}
                ],
                "parent": {"id": "https://c.example/m1", "definition": {"name": {"nl": "anders"}}},
                "category": [{"id": "https://c.example/cat", "definition": {"name": {"nl": "categorie"}}}]
            }}
        });
        let names = extract_names(&skeleton);
        assert_eq!(
            names,
            vec![
                ActivityNameV1 {
                    id: "https://c.example/m1".into(),
                    names: vec![
                        ("en-US".into(), "Module one".into()),
                        ("nl-NL".into(), "Module 1".into())
                    ]
                },
                ActivityNameV1 {
                    id: "https://c.example/course".into(),
                    names: vec![("de".into(), "Kurs".into())]
                },
            ]
        );
        let text =
            serde_json::to_string(&names.iter().map(|n| &n.names).collect::<Vec<_>>()).unwrap();
        assert!(!text.contains("Jansen") && !text.contains("jan@"), "{text}");
        let only_long =
            json!({"object": {"id": "https://c.example/x", "definition": {"name": {"fr": long}}}});
        assert_eq!(extract_names(&only_long)[0].names[0].1.chars().count(), 200);
    }
}
