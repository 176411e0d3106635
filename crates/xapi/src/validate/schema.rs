//! The JSON Schemas in `schemas/` (embedded at compile time, compiled once)
//! and the translation of their first error into a [`ValidationError`] with a
//! JSONPath and a stable rule id. No I/O, no HTTP: the schemas reference each
//! other through a registry built in memory, never fetched.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{Registry, Validator};
use serde_json::Value;

use super::path::push_key;
use crate::{ValidationError, XapiVersion};

const BASE: &str = "https://xapi.invalid/schemas/";
const COMMON: &str = include_str!("../../../../schemas/xapi-common.json");
const STATEMENT_1_0_3: &str = include_str!("../../../../schemas/statement-1.0.3.json");
const STATEMENT_2_0_0: &str = include_str!("../../../../schemas/statement-2.0.0.json");
const AGENT_PARAM: &str = include_str!("../../../../schemas/agent-param.json");
const COURSE_MODEL: &str = include_str!("../../../../schemas/course-model.json");

static STATEMENT_1_0_3_VALIDATOR: LazyLock<Validator> = LazyLock::new(|| compile(STATEMENT_1_0_3));
static STATEMENT_2_0_0_VALIDATOR: LazyLock<Validator> = LazyLock::new(|| compile(STATEMENT_2_0_0));
static AGENT_PARAM_VALIDATOR: LazyLock<Validator> = LazyLock::new(|| compile(AGENT_PARAM));
static COURSE_MODEL_VALIDATOR: LazyLock<Validator> = LazyLock::new(|| compile(COURSE_MODEL));

/// Compiles one of the embedded schemas with `xapi-common.json` available
/// by reference. The schemas are part of the program: failing here is a bug.
fn compile(source: &str) -> Validator {
    let common: Value = serde_json::from_str(COMMON).expect("schemas/xapi-common.json is JSON");
    let schema: Value = serde_json::from_str(source).expect("schema is JSON");
    let registry = Registry::new()
        .add(format!("{BASE}xapi-common.json"), common)
        .and_then(|builder| builder.prepare())
        .expect("schemas/xapi-common.json is a valid schema resource");
    jsonschema::options()
        .offline()
        .with_registry(&registry)
        .build(&schema)
        .expect("embedded schema compiles")
}

pub(crate) fn statement_validator(version: XapiVersion) -> &'static Validator {
    match version {
        XapiVersion::V1_0_3 => &STATEMENT_1_0_3_VALIDATOR,
        XapiVersion::V2_0_0 => &STATEMENT_2_0_0_VALIDATOR,
    }
}

pub(crate) fn course_model_validator() -> &'static Validator {
    &COURSE_MODEL_VALIDATOR
}

pub(crate) fn agent_param_validator() -> &'static Validator {
    &AGENT_PARAM_VALIDATOR
}

/// Checks `instance` against `validator`; on failure answers with the first
/// error, located and named.
pub(crate) fn check(validator: &Validator, instance: &Value) -> Result<(), ValidationError> {
    if validator.is_valid(instance) {
        return Ok(());
    }
    match validator.validate(instance) {
        Ok(()) => Ok(()),
        Err(error) => Err(translate(instance, &error)),
    }
}

/// The instance path as JSON-pointer segments, resolved against the document
/// so that an object key that looks like a number stays a key.
fn segments(root: &Value, error: &jsonschema::ValidationError<'_>) -> Vec<Seg> {
    let mut current = Some(root);
    let mut out = Vec::new();
    for segment in error.instance_path().segments() {
        let key: String = match &segment {
            LocationSegment::Property(p) => p.to_string(),
            LocationSegment::Index(i) => i.to_string(),
        };
        match current {
            Some(Value::Array(items)) => {
                let index = key.parse::<usize>().unwrap_or(usize::MAX);
                current = items.get(index);
                out.push(Seg::Index(index));
            }
            Some(Value::Object(map)) => {
                current = map.get(&key);
                out.push(Seg::Key(key));
            }
            _ => {
                current = None;
                out.push(Seg::Key(key));
            }
        }
    }
    out
}

enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn as_key(&self) -> Option<&str> {
        match self {
            Seg::Key(k) => Some(k),
            Seg::Index(_) => None,
        }
    }
}

fn render(segs: &[Seg], extra: Option<&str>) -> String {
    let mut out = String::from("$");
    for seg in segs {
        match seg {
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
            Seg::Key(key) => push_key(&mut out, key),
        }
    }
    if let Some(extra) = extra {
        push_key(&mut out, extra);
    }
    out
}

/// Whether the segments end with the given keys (`None` matches an index).
fn ends_with(segs: &[Seg], tail: &[Option<&str>]) -> bool {
    segs.len() >= tail.len()
        && segs[segs.len() - tail.len()..]
            .iter()
            .zip(tail)
            .all(|(seg, want)| match want {
                Some(key) => seg.as_key() == Some(key),
                None => matches!(seg, Seg::Index(_)),
            })
}

const IFI_KEYS: [&str; 5] = ["mbox", "mbox_sha1sum", "openid", "account", "member"];

/// An object in the statement-object position that looks like an Agent or
/// Group but does not say so: the spec requires `objectType` there.
fn is_unmarked_agent_as_object(segs: &[Seg], instance: &Value) -> bool {
    ends_with(segs, &[Some("object")])
        && instance.as_object().is_some_and(|o| {
            !o.contains_key("objectType") && IFI_KEYS.iter().any(|k| o.contains_key(*k))
        })
}

fn translate(root: &Value, error: &jsonschema::ValidationError<'_>) -> ValidationError {
    let segs = segments(root, error);
    let instance: &Value = error.instance();
    let last = segs.last().and_then(Seg::as_key);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let key = unexpected.first().map(String::as_str).unwrap_or_default();
            if is_unmarked_agent_as_object(&segs, instance) {
                return unmarked_agent(&segs);
            }
            let is_substatement =
                instance.get("objectType").and_then(Value::as_str) == Some("SubStatement");
            let (rule, message) = if is_substatement
                && matches!(key, "id" | "stored" | "version" | "authority")
            {
                (
                    "substatement.forbidden-property",
                    format!("a substatement cannot have {key:?}"),
                )
            } else if last == Some("context") && matches!(key, "contextAgents" | "contextGroups") {
                (
                    "context.requires-2.0",
                    format!("{key:?} is only defined in xapi 2.0"),
                )
            } else if last == Some("contextActivities") {
                (
                    "context-activities.key",
                    format!("{key:?} is not one of parent, grouping, category, other"),
                )
            } else {
                (
                    "statement.unknown-property",
                    format!("property {key:?} is not allowed here"),
                )
            };
            ValidationError::new(render(&segs, Some(key)), rule, message)
        }
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            if is_unmarked_agent_as_object(&segs, instance) {
                return unmarked_agent(&segs);
            }
            ValidationError::new(
                render(&segs, Some(property)),
                "statement.missing-property",
                format!("required property {property:?} is missing"),
            )
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            if instance.is_null() {
                ValidationError::new(
                    render(&segs, None),
                    "statement.null-value",
                    format!("null is not allowed here (expected {expected}); only extension values may be null"),
                )
            } else {
                ValidationError::new(
                    render(&segs, None),
                    "statement.wrong-type",
                    format!("expected {expected}, found {}", json_type(instance)),
                )
            }
        }
        ValidationErrorKind::Constant { .. } | ValidationErrorKind::Enum { .. } => {
            let allowed = match error.kind() {
                ValidationErrorKind::Constant { expected_value } => expected_value.to_string(),
                ValidationErrorKind::Enum { options } => options.to_string(),
                _ => String::new(),
            };
            let (rule, message) =
                if ends_with(&segs, &[Some("object"), Some("object"), Some("objectType")])
                    && instance.as_str() == Some("SubStatement")
                {
                    (
                        "substatement.nested",
                        "a substatement cannot contain a substatement".to_string(),
                    )
                } else if ends_with(&segs, &[Some("member"), None, Some("objectType")]) {
                    (
                        "group.member-not-agent",
                        format!("group members must be agents, found objectType {instance}"),
                    )
                } else if last == Some("interactionType") {
                    (
                        "activity.interaction-type",
                        format!("interactionType {instance} is not one of {allowed}"),
                    )
                } else if last == Some("objectType") {
                    (
                        "statement.object-type",
                        format!("objectType {instance} is not allowed here (expected {allowed})"),
                    )
                } else {
                    (
                        "statement.invalid-value",
                        format!("{instance} is not allowed here (expected {allowed})"),
                    )
                };
            ValidationError::new(render(&segs, None), rule, message)
        }
        ValidationErrorKind::MinItems { limit } => ValidationError::new(
            render(&segs, None),
            "statement.empty-array",
            format!("at least {limit} item(s) required"),
        ),
        ValidationErrorKind::Minimum { .. } => ValidationError::new(
            render(&segs, None),
            "statement.invalid-value",
            format!(
                "{instance} is too small: {}",
                lowercase_first(&error.to_string())
            ),
        ),
        _ => ValidationError::new(
            render(&segs, None),
            "schema",
            lowercase_first(&error.to_string()),
        ),
    }
}

fn unmarked_agent(segs: &[Seg]) -> ValidationError {
    ValidationError::new(
        render(segs, Some("objectType")),
        "object.agent-requires-object-type",
        "an agent or group used as the object must say so with objectType",
    )
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c
            .to_lowercase()
            .chain(chars)
            .collect::<String>()
            .trim_end_matches('.')
            .to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_compile() {
        let _ = statement_validator(XapiVersion::V1_0_3);
        let _ = statement_validator(XapiVersion::V2_0_0);
        let _ = agent_param_validator();
    }
}
