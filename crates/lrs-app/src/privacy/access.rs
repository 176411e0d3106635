//! Access on request (GDPR art. 15): everything held about one person, as
//! one readable JSON document: their statements (whole, with where each came
//! from), their documents (content included), their progress records and
//! course tallies, assignments, and what retention knows of them.

use crate::error::{AppError, AppResult};
use lrs_core::events::{DocumentContentV1, DocumentResourceV1};
use lrs_core::Event;
use lrs_store::Store;
use serde_json::{json, Value};

fn time(micros: i64) -> String {
    lrs_core::statement::format_micros(micros)
}

/// A document's content as readable JSON: the JSON itself, else text, else base64.
fn content_json(bytes: &[u8], content_type: &str) -> Value {
    if content_type.starts_with("application/json") {
        if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
            return json!({"json": value});
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({"text": text}),
        Err(_) => {
            use base64::Engine;
            json!({"base64": base64::engine::general_purpose::STANDARD.encode(bytes)})
        }
    }
}

/// Everything held about the person `ifi`; `None` if the vault does not
/// know them (never seen, or erased).
pub fn access(store: &Store, ifi: &xapi::Ifi, agent: &Value) -> AppResult<Option<Value>> {
    let Some(token) = store.vault().token_of(ifi) else {
        return Ok(None);
    };
    let vault = store.vault().as_ref();
    let mut statements = Vec::new();
    for position in super::erase::statement_positions(store, &token)? {
        let Some(v2) = store.statement_at(position)? else {
            continue;
        };
        let stored = &v2.statement;
        let statement = lrs_core::statement::reassemble(stored, vault)
            .map_err(|e| AppError::internal(format!("statement at {position}: {e}")))?;
        let role = if stored.facts.actor == Some(token) {
            "actor"
        } else if stored.facts.group_members.contains(&token) {
            "group member"
        } else {
            "named in it (object, context, authority or team)"
        };
        statements.push(json!({
            "statement": statement.unwrap_or_else(|| json!({
                "id": stored.statement_id.hyphenated().to_string(),
                "unreadable": "its subject was erased; only the clear facts remain"
            })),
            "role": role,
            "source": {
                "tenant": stored.tenant,
                "credential": stored.credential_key,
                "app": v2.origin.app,
                "library": v2.origin.library,
                "stored": time(stored.stored_micros),
                "log_position": position,
            },
        }));
    }
    let mut documents = Vec::new();
    for (_, record) in store.documents_of(&token)? {
        let Some(entry) = store.entry(record.position)? else {
            continue;
        };
        let Event::DocumentWrittenV1(written) = entry.event else {
            continue;
        };
        let content = match &written.content {
            DocumentContentV1::Clear(bytes) => Some(bytes.clone()),
            DocumentContentV1::Sealed(sealed) => {
                lrs_core::envelope::open_sealed_bytes(sealed, vault).map_err(|e| {
                    AppError::internal(format!("document at {}: {e}", record.position))
                })?
            }
        };
        documents.push(json!({
            "resource": match written.context.resource {
                DocumentResourceV1::State => "state",
                DocumentResourceV1::ActivityProfile => "activity_profile",
                DocumentResourceV1::AgentProfile => "agent_profile",
            },
            "tenant": written.context.tenant,
            "activity_id": written.context.activity_id,
            "registration": written.context.registration.map(|r| r.hyphenated().to_string()),
            "document_id": written.document_id,
            "content_type": written.content_type,
            "updated": time(record.updated_micros),
            "content": content.map(|c| content_json(&c, &written.content_type)),
            "log_position": record.position,
        }));
    }
    let records = store.progress_records(&token, None)?;
    let courses = lrs_projections::progress::course_tallies(&records);
    let mut libraries: Vec<&str> = records
        .iter()
        .filter_map(|r| r.library.as_deref())
        .collect();
    libraries.sort();
    libraries.dedup();
    let assignments: Vec<Value> = store
        .assignments(&token)?
        .into_iter()
        .map(|(course, module, a)| {
            json!({"course": course, "module": module, "tenant": a.tenant, "library": a.library,
                   "by": a.by, "assigned": time(a.assigned_micros)})
        })
        .collect();
    let holdings: Vec<Value> = store
        .holdings_of(&token)?
        .into_iter()
        .map(|h| {
            json!({
                "tenant": h.tenant,
                "kind": if h.kind == lrs_projections::privacy::KIND_DOCUMENTS { "documents" } else { "statements" },
                "count": h.data.count,
                "latest": time(h.data.latest_micros),
            })
        })
        .collect();
    Ok(Some(json!({
        "person": agent,
        "pseudonym": token.to_hex(),
        "generated": time(lrs_core::clock::now_micros()),
        "explanation": {
            "nl": "Alle gegevens die deze leeromgeving over deze persoon bewaart: statements (met herkomst), documenten, voortgang en toewijzingen.",
            "en": "Everything this learning record store holds about this person: statements (with where each came from), documents, progress and assignments."
        },
        "statements": statements,
        "documents": documents,
        "progress": {
            "libraries": libraries,
            "courses": courses,
            "records": records,
        },
        "assignments": assignments,
        "retention": holdings,
    })))
}
