//! The statement rules a JSON Schema cannot express (formats of IRIs, UUIDs,
//! timestamps, durations and language tags; score ranges; interaction
//! component lists; context properties that depend on the object; voiding;
//! the `version` property), walked once over a statement the schema already
//! accepted. No I/O, no HTTP, and it never copies the statement.

use std::collections::HashSet;

use serde_json::Value;

use super::actor::{check_actor, Role};
use super::datatypes::{
    is_duration, is_iri, is_language_tag, is_media_type, is_sha2_hex, is_uuid, is_version_of,
    parse_timestamp,
};
use super::object::{fields, Object};
use super::path::Path;
use crate::{ValidationError, XapiVersion};

type Checked = Result<(), ValidationError>;

/// The verb whose statements void another statement.
pub const VOIDED_VERB: &str = "http://adlnet.gov/expapi/verbs/voided";

fn as_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

fn as_obj(v: Option<&Value>) -> Option<&Object> {
    v.and_then(Value::as_object)
}

fn as_array(v: Option<&Value>) -> Option<&Vec<Value>> {
    v.and_then(Value::as_array)
}

fn fail(p: &Path<'_>, rule: &str, message: String) -> Checked {
    Err(ValidationError::new(p.render(), rule, message))
}

/// A top-level statement: everything a SubStatement has, plus `id`,
/// `stored`, `authority`, `version` and the voiding rule.
pub(crate) fn check_statement(s: &Object, p: &Path<'_>, version: XapiVersion) -> Checked {
    let [id, stored, authority, statement_version] =
        fields(s, ["id", "stored", "authority", "version"]);
    if let Some(id) = as_str(id) {
        uuid(id, &p.key("id"))?;
    }
    let core = check_core(s, p)?;
    if let Some(stored) = as_str(stored) {
        timestamp(stored, &p.key("stored"))?;
    }
    if let Some(authority) = as_obj(authority) {
        check_actor(authority, &p.key("authority"), Role::Authority)?;
    }
    if let Some(v) = as_str(statement_version) {
        let ok = match version {
            XapiVersion::V1_0_3 => is_version_of(v, "1.0"),
            XapiVersion::V2_0_0 => is_version_of(v, "1.0") || is_version_of(v, "2.0"),
        };
        if !ok {
            let allowed = match version {
                XapiVersion::V1_0_3 => "1.0 or 1.0.x",
                XapiVersion::V2_0_0 => "1.0, 1.0.x, 2.0 or 2.0.x",
            };
            return fail(
                &p.key("version"),
                "statement.version",
                format!("version {v:?} is not {allowed}"),
            );
        }
    }
    if core.verb_id == Some(VOIDED_VERB) && core.object_type != Some("StatementRef") {
        let object = p.key("object");
        return fail(
            &object.key("objectType"),
            "voiding.object-must-be-statementref",
            "a voiding statement's object must be a StatementRef".to_string(),
        );
    }
    Ok(())
}

/// What the statement-level rules need to know after the shared part.
struct Core<'a> {
    verb_id: Option<&'a str>,
    object_type: Option<&'a str>,
}

/// What a Statement and a SubStatement share.
fn check_core<'a>(s: &'a Object, p: &Path<'_>) -> Result<Core<'a>, ValidationError> {
    let [actor, verb, object, result, context, ts, attachments] = fields(
        s,
        [
            "actor",
            "verb",
            "object",
            "result",
            "context",
            "timestamp",
            "attachments",
        ],
    );
    if let Some(actor) = as_obj(actor) {
        check_actor(actor, &p.key("actor"), Role::Any)?;
    }
    let mut verb_id = None;
    if let Some(verb) = as_obj(verb) {
        let vp = p.key("verb");
        let [id, display] = fields(verb, ["id", "display"]);
        verb_id = as_str(id);
        if let Some(id) = verb_id {
            iri(id, &vp.key("id"))?;
        }
        if let Some(display) = as_obj(display) {
            language_map(display, &vp.key("display"))?;
        }
    }
    let mut object_type = None;
    if let Some(object) = as_obj(object) {
        let op = p.key("object");
        object_type = as_str(object.get("objectType"));
        match object_type {
            None | Some("Activity") => check_activity(object, &op)?,
            Some("Agent" | "Group") => check_actor(object, &op, Role::Any)?,
            Some("StatementRef") => {
                if let Some(id) = as_str(object.get("id")) {
                    uuid(id, &op.key("id"))?;
                }
            }
            // SubStatement (the schema admits nothing else)
            Some(_) => {
                check_core(object, &op)?;
            }
        }
    }
    if let Some(result) = as_obj(result) {
        check_result(result, &p.key("result"))?;
    }
    if let Some(context) = as_obj(context) {
        let object_is_activity = matches!(object_type, None | Some("Activity"));
        check_context(context, &p.key("context"), object_is_activity)?;
    }
    if let Some(ts) = as_str(ts) {
        timestamp(ts, &p.key("timestamp"))?;
    }
    if let Some(attachments) = as_array(attachments) {
        let ap = p.key("attachments");
        for (i, attachment) in attachments.iter().enumerate() {
            if let Some(a) = attachment.as_object() {
                check_attachment(a, &ap.index(i))?;
            }
        }
    }
    Ok(Core {
        verb_id,
        object_type,
    })
}

fn check_activity(a: &Object, p: &Path<'_>) -> Checked {
    let [id, definition] = fields(a, ["id", "definition"]);
    if let Some(id) = as_str(id) {
        iri(id, &p.key("id"))?;
    }
    let Some(d) = as_obj(definition) else {
        return Ok(());
    };
    let dp = p.key("definition");
    let [name, description, kind, more_info, ext, interaction_type, crp, choices, scale, source, target, steps] =
        fields(
            d,
            [
                "name",
                "description",
                "type",
                "moreInfo",
                "extensions",
                "interactionType",
                "correctResponsesPattern",
                "choices",
                "scale",
                "source",
                "target",
                "steps",
            ],
        );
    if let Some(map) = as_obj(name) {
        language_map(map, &dp.key("name"))?;
    }
    if let Some(map) = as_obj(description) {
        language_map(map, &dp.key("description"))?;
    }
    if let Some(value) = as_str(kind) {
        iri(value, &dp.key("type"))?;
    }
    if let Some(value) = as_str(more_info) {
        iri(value, &dp.key("moreInfo"))?;
    }
    if let Some(ext) = as_obj(ext) {
        extensions(ext, &dp.key("extensions"))?;
    }
    let lists = [
        ("choices", choices),
        ("scale", scale),
        ("source", source),
        ("target", target),
        ("steps", steps),
    ];
    let Some(interaction_type) = as_str(interaction_type) else {
        let used = if crp.is_some() {
            Some("correctResponsesPattern")
        } else {
            lists.iter().find(|(_, v)| v.is_some()).map(|(k, _)| *k)
        };
        return match used {
            Some(key) => fail(
                &dp.key("interactionType"),
                "interaction.type-required",
                format!("an activity definition with {key:?} needs an interactionType"),
            ),
            None => Ok(()),
        };
    };
    let allowed: &[&str] = match interaction_type {
        "choice" | "sequencing" => &["choices"],
        "likert" => &["scale"],
        "matching" => &["source", "target"],
        "performance" => &["steps"],
        _ => &[],
    };
    for (list, components) in lists {
        let Some(components) = as_array(components) else {
            continue;
        };
        let lp = dp.key(list);
        if !allowed.contains(&list) {
            return fail(
                &lp,
                "interaction.component-list-not-allowed",
                format!("interactionType {interaction_type:?} does not use {list:?}"),
            );
        }
        // Linear in the list: each id is looked up once in a set of the
        // earlier ones (a pairwise comparison took 19 s for 60,000 ids).
        let mut seen: HashSet<&str> = HashSet::with_capacity(components.len());
        for (i, component) in components.iter().enumerate() {
            let Some(c) = component.as_object() else {
                continue;
            };
            let cp = lp.index(i);
            let [id, description] = fields(c, ["id", "description"]);
            if let Some(id) = as_str(id).filter(|id| !seen.insert(id)) {
                return fail(
                    &cp.key("id"),
                    "interaction.component-id-unique",
                    format!("interaction component id {id:?} is used twice in {list:?}"),
                );
            }
            if let Some(description) = as_obj(description) {
                language_map(description, &cp.key("description"))?;
            }
        }
    }
    Ok(())
}

fn check_result(r: &Object, p: &Path<'_>) -> Checked {
    let [score, duration, ext] = fields(r, ["score", "duration", "extensions"]);
    if let Some(score) = as_obj(score) {
        let sp = p.key("score");
        let [scaled, raw, min, max] =
            fields(score, ["scaled", "raw", "min", "max"]).map(|v| v.and_then(Value::as_f64));
        if let Some(scaled) = scaled {
            if !(-1.0..=1.0).contains(&scaled) {
                return fail(
                    &sp.key("scaled"),
                    "score.scaled-range",
                    format!("scaled {scaled} is not between -1 and 1"),
                );
            }
        }
        if let (Some(min), Some(max)) = (min, max) {
            if min >= max {
                return fail(
                    &sp.key("max"),
                    "score.min-max",
                    format!("max {max} is not greater than min {min}"),
                );
            }
        }
        if let Some(raw) = raw {
            if let Some(min) = min.filter(|min| raw < *min) {
                return fail(
                    &sp.key("raw"),
                    "score.raw-range",
                    format!("raw {raw} is less than min {min}"),
                );
            }
            if let Some(max) = max.filter(|max| raw > *max) {
                return fail(
                    &sp.key("raw"),
                    "score.raw-range",
                    format!("raw {raw} is greater than max {max}"),
                );
            }
        }
    }
    if let Some(duration) = as_str(duration) {
        if !is_duration(duration) {
            return fail(
                &p.key("duration"),
                "duration.format",
                format!("{duration:?} is not an iso 8601 duration"),
            );
        }
    }
    if let Some(ext) = as_obj(ext) {
        extensions(ext, &p.key("extensions"))?;
    }
    Ok(())
}

fn check_context(c: &Object, p: &Path<'_>, object_is_activity: bool) -> Checked {
    let [registration, instructor, team, context_activities, revision, platform, language, statement, ext, context_agents, context_groups] =
        fields(
            c,
            [
                "registration",
                "instructor",
                "team",
                "contextActivities",
                "revision",
                "platform",
                "language",
                "statement",
                "extensions",
                "contextAgents",
                "contextGroups",
            ],
        );
    if let Some(registration) = as_str(registration) {
        uuid(registration, &p.key("registration"))?;
    }
    if let Some(instructor) = as_obj(instructor) {
        check_actor(instructor, &p.key("instructor"), Role::Any)?;
    }
    if let Some(team) = as_obj(team) {
        check_actor(team, &p.key("team"), Role::Any)?;
    }
    if let Some(ca) = as_obj(context_activities) {
        let cap = p.key("contextActivities");
        for (key, value) in ca {
            let kp = cap.key(key);
            match value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(activity) = item.as_object() {
                            check_activity(activity, &kp.index(i))?;
                        }
                    }
                }
                Value::Object(activity) => check_activity(activity, &kp)?,
                _ => {}
            }
        }
    }
    if !object_is_activity {
        for (key, present, rule) in [
            (
                "revision",
                revision.is_some(),
                "context.revision-requires-activity",
            ),
            (
                "platform",
                platform.is_some(),
                "context.platform-requires-activity",
            ),
        ] {
            if present {
                return fail(
                    &p.key(key),
                    rule,
                    format!("context {key:?} may only be used when the object is an activity"),
                );
            }
        }
    }
    if let Some(language) = as_str(language) {
        if !is_language_tag(language) {
            return fail(
                &p.key("language"),
                "context.language-tag",
                format!("{language:?} is not an rfc 5646 language tag"),
            );
        }
    }
    if let Some(statement) = as_obj(statement) {
        if let Some(id) = as_str(statement.get("id")) {
            let sp = p.key("statement");
            uuid(id, &sp.key("id"))?;
        }
    }
    if let Some(ext) = as_obj(ext) {
        extensions(ext, &p.key("extensions"))?;
    }
    for (list, items, member) in [
        ("contextAgents", context_agents, "agent"),
        ("contextGroups", context_groups, "group"),
    ] {
        let Some(items) = as_array(items) else {
            continue;
        };
        let lp = p.key(list);
        for (i, item) in items.iter().enumerate() {
            let Some(item) = item.as_object() else {
                continue;
            };
            let ip = lp.index(i);
            let [agent, relevant_types] = fields(item, [member, "relevantTypes"]);
            if let Some(agent) = as_obj(agent) {
                check_actor(agent, &ip.key(member), Role::Any)?;
            }
            if let Some(types) = as_array(relevant_types) {
                let tp = ip.key("relevantTypes");
                for (j, t) in types.iter().enumerate() {
                    if let Some(t) = t.as_str() {
                        iri(t, &tp.index(j))?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_attachment(a: &Object, p: &Path<'_>) -> Checked {
    let [usage_type, display, description, content_type, sha2, file_url] = fields(
        a,
        [
            "usageType",
            "display",
            "description",
            "contentType",
            "sha2",
            "fileUrl",
        ],
    );
    if let Some(usage) = as_str(usage_type) {
        iri(usage, &p.key("usageType"))?;
    }
    if let Some(map) = as_obj(display) {
        language_map(map, &p.key("display"))?;
    }
    if let Some(map) = as_obj(description) {
        language_map(map, &p.key("description"))?;
    }
    if let Some(content_type) = as_str(content_type) {
        if !is_media_type(content_type) {
            return fail(
                &p.key("contentType"),
                "attachment.content-type",
                format!("{content_type:?} is not an internet media type"),
            );
        }
    }
    if let Some(sha2) = as_str(sha2) {
        if !is_sha2_hex(sha2) {
            return fail(
                &p.key("sha2"),
                "attachment.sha2-format",
                format!("{sha2:?} is not a hex sha-2 digest (56, 64, 96 or 128 hex digits)"),
            );
        }
    }
    if let Some(url) = as_str(file_url) {
        iri(url, &p.key("fileUrl"))?;
    }
    Ok(())
}

fn iri(value: &str, p: &Path<'_>) -> Checked {
    if is_iri(value) {
        Ok(())
    } else {
        fail(p, "iri.format", format!("{value:?} is not an absolute iri"))
    }
}

fn uuid(value: &str, p: &Path<'_>) -> Checked {
    if is_uuid(value) {
        Ok(())
    } else {
        fail(
            p,
            "uuid.format",
            format!("{value:?} is not a uuid in 8-4-4-4-12 hex form"),
        )
    }
}

fn timestamp(value: &str, p: &Path<'_>) -> Checked {
    if parse_timestamp(value).is_some() {
        Ok(())
    } else {
        fail(
            p,
            "timestamp.format",
            format!("{value:?} is not an iso 8601 timestamp"),
        )
    }
}

fn language_map(map: &Object, p: &Path<'_>) -> Checked {
    match map.keys().find(|k| !is_language_tag(k)) {
        Some(tag) => fail(
            &p.key(tag),
            "language-map.tag",
            format!("language map key {tag:?} is not an rfc 5646 language tag"),
        ),
        None => Ok(()),
    }
}

fn extensions(map: &Object, p: &Path<'_>) -> Checked {
    match map.keys().find(|k| !is_iri(k)) {
        Some(key) => fail(
            &p.key(key),
            "iri.format",
            format!("extension key {key:?} is not an absolute iri"),
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    /// The uniqueness check itself, below the list limit that refuses such a
    /// statement first: 100,000 ids (each list) take one set look-up each.
    /// Pairwise, 60,000 ids took 19 s of CPU in a release build.
    #[test]
    fn component_ids_are_checked_in_linear_time_whatever_the_limit() {
        // One list of 100,000 components, moved from statement to statement.
        let mut components = Value::Array(
            (0..100_000)
                .map(|i| json!({"id": format!("component-{i}"), "description": {"en-US": "c"}}))
                .collect(),
        );
        for (kind, list) in [
            ("choice", "choices"),
            ("likert", "scale"),
            ("matching", "source"),
            ("matching", "target"),
            ("performance", "steps"),
        ] {
            let mut statement = json!({
                "actor": {"mbox": "mailto:a@x.example"},
                "verb": {"id": "http://x.example/answered"},
                "object": {"id": "http://x.example/q", "definition": {"interactionType": kind}}
            });
            statement["object"]["definition"][list] = components.take();
            let check = |statement: &Value| {
                check_statement(
                    statement.as_object().unwrap(),
                    &Path::Root,
                    XapiVersion::V1_0_3,
                )
            };
            let began = Instant::now();
            let checked = check(&statement);
            let took = began.elapsed();
            assert_eq!(checked, Ok(()), "{list}");
            let last = &mut statement["object"]["definition"][list][99_999]["id"];
            let id = std::mem::replace(last, json!("component-0"));
            let e = check(&statement).unwrap_err();
            assert_eq!(
                (e.rule.as_str(), e.path.as_str()),
                (
                    "interaction.component-id-unique",
                    format!("$.object.definition.{list}[99999].id").as_str()
                )
            );
            statement["object"]["definition"][list][99_999]["id"] = id;
            components = statement["object"]["definition"][list].take();
            eprintln!("100,000 distinct {list} ids checked in {took:?}");
            // A debug build on a loaded 2-core machine; the pairwise check
            // needed minutes here.
            assert!(took < Duration::from_secs(2), "{list}: {took:?}");
        }
    }
}
