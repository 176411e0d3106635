//! The limits this store sets where the xAPI specification sets none: how
//! deep a statement nests, how long its lists are, how many agents it names,
//! how large its extensions are and how many statements one request carries.
//! Checked in one linear pass before the schema, so that a hostile statement
//! is refused for its size before anything more expensive looks at it.
//! Every refusal's rule starts with `limit.` (the HTTP layer answers 413).
//! No I/O, no HTTP.

use std::io;

use serde_json::Value;

use super::path::Path;
use crate::ValidationError;

/// Deepest nesting of objects and arrays in one statement (the statement
/// object itself is level 1; a SubStatement's context activity's extension
/// value starts at level 9).
pub const MAX_DEPTH: usize = 32;

/// Most items in any list of a statement outside extension values:
/// interaction components (`choices`, `scale`, `source`, `target`, `steps`),
/// `correctResponsesPattern`, group `member`, context activities,
/// `contextAgents`, `contextGroups`, `relevantTypes`, `attachments`.
pub const MAX_LIST_ITEMS: usize = 1_000;

/// Most agents and groups one statement names (actor, object, authority,
/// instructor, team, context agents and groups, and every group member, in
/// the statement and its SubStatement): each one is a person the store
/// seals and indexes.
pub const MAX_AGENTS: usize = 1_000;

/// Largest `extensions` object, as compact JSON, bytes.
pub const MAX_EXTENSIONS_BYTES: usize = 1024 * 1024;

/// Most statements in one request (a batch).
pub const MAX_BATCH_STATEMENTS: usize = 5_000;

/// The keys that make an object an agent or a group.
const AGENT_KEYS: [&str; 5] = ["mbox", "mbox_sha1sum", "openid", "account", "member"];

/// Checks the number of statements in a batch.
pub(crate) fn check_batch(items: &[Value]) -> Result<(), ValidationError> {
    if items.len() > MAX_BATCH_STATEMENTS {
        return Err(ValidationError::new(
            "$",
            "limit.batch-statements",
            format!(
                "a request carries at most {MAX_BATCH_STATEMENTS} statements, this one {}",
                items.len()
            ),
        ));
    }
    Ok(())
}

/// Checks one statement (or an `agent` parameter) against every limit, in
/// one pass over its values.
pub(crate) fn check(value: &Value) -> Result<(), ValidationError> {
    let mut walk = Walk { agents: 0 };
    walk.value(value, &Path::Root, 1, false)
}

struct Walk {
    agents: usize,
}

impl Walk {
    /// `depth` is the level of `value` if it is an object or array;
    /// `opaque` is true inside extension values, whose shape is the
    /// client's own (only depth and size apply there).
    fn value(
        &mut self,
        value: &Value,
        p: &Path<'_>,
        depth: usize,
        opaque: bool,
    ) -> Result<(), ValidationError> {
        match value {
            Value::Object(object) => {
                too_deep(p, depth)?;
                if !opaque && AGENT_KEYS.iter().any(|key| object.contains_key(*key)) {
                    self.agents += 1;
                    if self.agents > MAX_AGENTS {
                        return Err(ValidationError::new(
                            p.render(),
                            "limit.agents",
                            format!("a statement names at most {MAX_AGENTS} agents and groups (members included)"),
                        ));
                    }
                }
                for (key, child) in object {
                    let cp = p.key(key);
                    let extensions = !opaque && key == "extensions" && child.is_object();
                    if extensions {
                        extensions_size(child, &cp)?;
                    }
                    self.value(child, &cp, depth + 1, opaque || extensions)?;
                }
                Ok(())
            }
            Value::Array(items) => {
                too_deep(p, depth)?;
                if !opaque && items.len() > MAX_LIST_ITEMS {
                    return Err(ValidationError::new(
                        p.render(),
                        "limit.list-items",
                        format!(
                            "a list in a statement holds at most {MAX_LIST_ITEMS} items, this one {}",
                            items.len()
                        ),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    self.value(item, &p.index(i), depth + 1, opaque)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn too_deep(p: &Path<'_>, depth: usize) -> Result<(), ValidationError> {
    if depth > MAX_DEPTH {
        return Err(ValidationError::new(
            p.render(),
            "limit.depth",
            format!("a statement nests objects and arrays at most {MAX_DEPTH} levels deep"),
        ));
    }
    Ok(())
}

/// The compact JSON size of an extensions object, counted while writing it
/// nowhere and stopped as soon as it passes the limit.
fn extensions_size(extensions: &Value, p: &Path<'_>) -> Result<(), ValidationError> {
    let mut counter = Counter { bytes: 0 };
    if serde_json::to_writer(&mut counter, extensions).is_err() {
        return Err(ValidationError::new(
            p.render(),
            "limit.extensions-size",
            format!(
                "an extensions object is at most {} KiB of json",
                MAX_EXTENSIONS_BYTES / 1024
            ),
        ));
    }
    Ok(())
}

struct Counter {
    bytes: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len();
        if self.bytes > MAX_EXTENSIONS_BYTES {
            return Err(io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut value = json!(1);
        for _ in 0..levels {
            value = json!([value]);
        }
        value
    }

    #[test]
    fn depth_counts_objects_and_arrays_from_the_statement() {
        // The statement object is level 1: 31 arrays inside it are allowed.
        assert!(check(&json!({"x": nested(MAX_DEPTH - 1)})).is_ok());
        let e = check(&json!({"x": nested(MAX_DEPTH)})).unwrap_err();
        assert_eq!(e.rule, "limit.depth");
        assert!(e.path.starts_with("$.x[0]"), "{}", e.path);
    }

    #[test]
    fn lists_and_agents_are_bounded_but_extension_values_only_by_size() {
        let choices: Vec<Value> = (0..=MAX_LIST_ITEMS)
            .map(|i| json!({"id": format!("c{i}")}))
            .collect();
        let e = check(&json!({"object": {"definition": {"choices": choices}}})).unwrap_err();
        assert_eq!(
            (e.rule.as_str(), e.path.as_str()),
            ("limit.list-items", "$.object.definition.choices")
        );
        let long: Vec<Value> = (0..=MAX_LIST_ITEMS).map(|i| json!(i)).collect();
        assert!(check(&json!({"result": {"extensions": {"http://x.example/e": long}}})).is_ok());

        let members = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({"mbox": format!("mailto:{i}@x.example")}))
                .collect()
        };
        let group = |n: usize| json!({"objectType": "Group", "member": members(n)});
        assert!(check(&json!({"actor": group(MAX_AGENTS - 1)})).is_ok());
        let e = check(&json!({"actor": group(MAX_AGENTS - 1), "object": group(1)})).unwrap_err();
        assert_eq!(e.rule, "limit.agents");
    }

    #[test]
    fn extensions_are_measured_as_compact_json() {
        let big = "x".repeat(MAX_EXTENSIONS_BYTES);
        let e =
            check(&json!({"context": {"extensions": {"http://x.example/e": big}}})).unwrap_err();
        assert_eq!(
            (e.rule.as_str(), e.path.as_str()),
            ("limit.extensions-size", "$.context.extensions")
        );
        let fits = "x".repeat(MAX_EXTENSIONS_BYTES - 100);
        assert!(check(&json!({"context": {"extensions": {"http://x.example/e": fits}}})).is_ok());
    }
}
