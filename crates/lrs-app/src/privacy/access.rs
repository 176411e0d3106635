//! A person's own data on request (GDPR art. 15 access, art. 20
//! portability): everything held about one person, as one JSON document in
//! open formats: their statements (xAPI JSON as the Statement API returns
//! them, with where each came from), their State and Agent Profile
//! documents (content included), their progress records and course
//! tallies, assignments, what retention knows of them, the audit records
//! about them, and a short summary, Dutch first, of what is in it and what
//! is not (and why).
//!
//! `lrs privacy export` and `POST /admin/privacy/access` both answer this
//! document (docs/privacy.md, "Inzage en export").

use crate::error::{AppError, AppResult};
use lrs_core::events::{DocumentContentV1, DocumentResourceV1};
use lrs_core::Event;
use lrs_store::audit::{AuditQuery, AuditRecord, AUDIT_DIR};
use lrs_store::query::Scope;
use lrs_store::Store;
use serde_json::{json, Value};
use std::collections::HashSet;

/// The document's format name and version (`"format"`).
pub const FORMAT: &str = "lrs-privacy-export";
pub const VERSION: u32 = 1;

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

/// How the statements in the document are shaped, for whoever reads it
/// without this LRS at hand.
fn formats() -> Value {
    json!({
        "statements": {
            "nl": "Elke leerregistratie staat onder \"statement\" precies zoals GET /xapi/statements hem teruggeeft (JSON volgens de xAPI-specificatie), met \"id\", \"stored\", \"timestamp\" en \"authority\" zoals deze leeromgeving ze vastlegde. Het veld \"version\" zegt welke xAPI-versie de vorm bepaalt: 1.0.x (xAPI 1.0.3) of 2.0.x (IEEE 9274.1.1-2023, xAPI 2.0). Een 2.0-statement kan daarnaast \"context.contextAgents\" en \"context.contextGroups\" bevatten; verder is de vorm gelijk. \"voided\": true betekent dat het statement later is ingetrokken: de Statement API toont het dan alleen nog op zijn id (voidedStatementId).",
            "en": "Each statement is under \"statement\" exactly as GET /xapi/statements returns it (JSON as the xAPI specification defines it), with \"id\", \"stored\", \"timestamp\" and \"authority\" as this LRS recorded them. The \"version\" field says which xAPI version shapes it: 1.0.x (xAPI 1.0.3) or 2.0.x (IEEE 9274.1.1-2023, xAPI 2.0). A 2.0 statement may also hold \"context.contextAgents\" and \"context.contextGroups\"; otherwise the shape is the same. \"voided\": true means the statement was voided later: the Statement API then shows it only by its id (voidedStatementId)."
        },
        "documents": {
            "nl": "State- en Agent Profile-documenten met hun inhoud: \"json\" (JSON-inhoud), \"text\" (tekst) of \"base64\" (andere bytes).",
            "en": "State and Agent Profile documents with their content: \"json\" (JSON content), \"text\" (text) or \"base64\" (other bytes)."
        },
        "audit_records": {
            "nl": "Regels uit de audittrail (docs/audit.md): tijd, sleutel van wie het verzoek deed, IP-adres, actie, uitkomst. Alleen de statement-id's van deze persoon staan erin; die van anderen in hetzelfde verzoek zijn weggelaten en geteld.",
            "en": "Records of the audit trail (docs/audit.md): time, the key of whoever made the request, IP address, action, outcome. Only this person's statement ids are shown; those of others in the same request are left out and counted."
        }
    })
}

/// Everything held about the person `ifi`; `None` if the vault does not
/// know them (never seen, or erased).
pub fn access(store: &Store, ifi: &xapi::Ifi, agent: &Value) -> AppResult<Option<Value>> {
    let Some(token) = store.vault().token_of(ifi) else {
        return Ok(None);
    };
    let generated = lrs_core::clock::now_micros();
    let vault = store.vault().as_ref();
    let mut statements = Vec::new();
    let mut their_ids: HashSet<String> = HashSet::new();
    let (mut voided_count, mut unreadable) = (0u64, 0u64);
    // Their statements as the index finds them, and the voided ones, which
    // have left the index.
    for position in super::erase::statement_positions(store, &token)? {
        let Some(v2) = store.statement_at(position)? else {
            continue;
        };
        let stored = &v2.statement;
        let id = stored.statement_id.hyphenated().to_string();
        their_ids.insert(id.clone());
        let statement = lrs_core::statement::reassemble(stored, vault)
            .map_err(|e| AppError::internal(format!("statement at {position}: {e}")))?;
        let voided = store
            .find_statement(&Scope::Tenant(stored.tenant.clone()), &stored.statement_id)?
            .is_some_and(|found| found.voided);
        voided_count += u64::from(voided);
        unreadable += u64::from(statement.is_none());
        let role = if stored.facts.actor == Some(token) {
            "actor"
        } else if stored.facts.group_members.contains(&token) {
            "group member"
        } else {
            "named in it (object, context, authority or team)"
        };
        statements.push(json!({
            "statement": statement.unwrap_or_else(|| json!({
                "id": id,
                "unreadable": "its subject was erased; only the clear facts remain"
            })),
            "voided": voided,
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
    let audit = audit_records(store, ifi, &their_ids)?;
    let counts = Counts {
        statements: statements.len() as u64,
        voided: voided_count,
        unreadable,
        documents: documents.len() as u64,
        courses: courses.len() as u64,
        libraries: libraries.len() as u64,
        assignments: assignments.len() as u64,
        audit_records: audit.len() as u64,
    };
    Ok(Some(json!({
        "format": FORMAT,
        "version": VERSION,
        "person": agent,
        "pseudonym": token.to_hex(),
        "generated": time(generated),
        "summary": counts.summary(&time(generated)),
        "not_included": not_included(unreadable),
        "formats": formats(),
        "statements": statements,
        "documents": documents,
        "progress": {
            "libraries": libraries,
            "courses": courses,
            "records": records,
        },
        "assignments": assignments,
        "retention": holdings,
        "audit_records": audit,
    })))
}

/// The audit records about the person: those that name one of their
/// statements (a write, a read by id, a voiding) and, for an account agent,
/// the requests they made themselves with an OpenID Connect login (the
/// principal `oidc:<issuer>#<subject>`). Statement ids of other people in
/// the same record are left out and counted.
fn audit_records(
    store: &Store,
    ifi: &xapi::Ifi,
    their_ids: &HashSet<String>,
) -> AppResult<Vec<Value>> {
    let own_principal = match ifi.kind {
        xapi::agent::IfiKind::Account => ifi
            .value
            .split_once('\0')
            .map(|(home_page, name)| format!("oidc:{home_page}#{name}")),
        _ => None,
    };
    let dir = store.data_dir().join(AUDIT_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    lrs_store::audit::scan(&dir, &AuditQuery::default(), |record: AuditRecord| {
        let resources = &record.entry.resources;
        let names_theirs = resources
            .statement_ids
            .iter()
            .any(|id| their_ids.contains(id))
            || resources
                .voided_statement_id
                .as_ref()
                .is_some_and(|id| their_ids.contains(id));
        let by_them = own_principal.is_some() && record.entry.principal == own_principal;
        if names_theirs || by_them {
            let others = resources
                .statement_ids
                .iter()
                .filter(|id| !their_ids.contains(*id))
                .count();
            let mut value = record.to_json();
            if let Some(ids) = value.pointer_mut("/resources/statement_ids") {
                *ids = Value::Array(
                    resources
                        .statement_ids
                        .iter()
                        .filter(|id| their_ids.contains(*id))
                        .map(|id| Value::String(id.clone()))
                        .collect(),
                );
            }
            if others > 0 {
                value["statement_ids_of_others_left_out"] = json!(others);
            }
            found.push(value);
        }
        true
    })
    .map_err(|e| AppError::internal(format!("reading the audit trail: {e}")))?;
    Ok(found)
}

struct Counts {
    statements: u64,
    voided: u64,
    unreadable: u64,
    documents: u64,
    courses: u64,
    libraries: u64,
    assignments: u64,
    audit_records: u64,
}

impl Counts {
    /// What is in the file, Dutch first.
    fn summary(&self, generated: &str) -> Value {
        let c = self;
        json!({
            "nl": format!(
                "Dit bestand bevat alle gegevens die deze leeromgeving (LRS) op {generated} over deze persoon bewaart: \
                 {} leerregistraties (xAPI-statements) waarin de persoon voorkomt (waarvan {} ingetrokken en {} onleesbaar), \
                 {} documenten (State en Agent Profile), voortgang in {} cursussen bij {} bibliotheken, \
                 {} toewijzingen van modules en {} regels uit de audittrail over deze persoon. \
                 Alles staat in open formaten (JSON, xAPI); \"not_included\" zegt wat er niet in staat en waarom.",
                c.statements, c.voided, c.unreadable, c.documents, c.courses, c.libraries, c.assignments, c.audit_records
            ),
            "en": format!(
                "This file holds everything this learning record store (LRS) keeps about this person at {generated}: \
                 {} statements naming them ({} voided, {} unreadable), {} documents (State and Agent Profile), \
                 progress in {} courses at {} libraries, {} module assignments and {} audit trail records about them. \
                 Everything is in open formats (JSON, xAPI); \"not_included\" says what is not in it and why.",
                c.statements, c.voided, c.unreadable, c.documents, c.courses, c.libraries, c.assignments, c.audit_records
            ),
            "counts": {
                "statements": c.statements,
                "voided": c.voided,
                "unreadable": c.unreadable,
                "documents": c.documents,
                "courses": c.courses,
                "libraries": c.libraries,
                "assignments": c.assignments,
                "audit_records": c.audit_records,
            },
        })
    }
}

/// What the file leaves out, and why (Dutch first).
fn not_included(unreadable: u64) -> Value {
    let mut items = vec![
        json!({
            "what": "monthly_figures",
            "nl": "De maandcijfers (dashboard, Datatheek): dat zijn alleen tellingen, zonder persoon; niets daarin is tot deze persoon te herleiden.",
            "en": "The monthly figures (dashboard, Datatheek): counts only, without any person; nothing in them leads back to this person."
        }),
        json!({
            "what": "analytics",
            "nl": "De Parquet-bestanden voor analisten: dezelfde feiten als de leerregistraties hierboven, onder een pseudoniem en zonder naam of adres; er staat niets extra in.",
            "en": "The Parquet files for analysts: the same facts as the statements above, under a pseudonym and without name or address; they hold nothing more."
        }),
        json!({
            "what": "audit_records_of_document_requests",
            "nl": "Regels in de audittrail over verzoeken om State- of Agent Profile-documenten: de audittrail legt bewust niet vast over welke persoon zo'n verzoek ging, dus ze zijn niet aan deze persoon toe te wijzen.",
            "en": "Audit trail records of State or Agent Profile requests: by design the trail does not record which person such a request was about, so they cannot be attributed to this person."
        }),
        json!({
            "what": "operations_journal",
            "nl": "Het bedrijfsjournaal: alleen aantallen verzoeken per minuut, geen personen.",
            "en": "The operations journal: only numbers of requests per minute, no people."
        }),
        json!({
            "what": "backups",
            "nl": "Back-ups: kopieën van dezelfde gegevens, versleuteld; ze worden na de back-uptermijn onleesbaar (docs/privacy.md).",
            "en": "Backups: encrypted copies of the same data; they become unreadable after the backup window (docs/privacy.md)."
        }),
        json!({
            "what": "activity_profiles",
            "nl": "Activity Profile-documenten: die gaan over een activiteit, niet over een persoon.",
            "en": "Activity Profile documents: they are about an activity, not a person."
        }),
    ];
    if unreadable > 0 {
        items.push(json!({
            "what": "unreadable_statements",
            "count": unreadable,
            "nl": format!("{unreadable} leerregistraties noemen deze persoon, maar hun inhoud is onleesbaar omdat een andere betrokkene is gewist; alleen hun id staat erin."),
            "en": format!("{unreadable} statements name this person, but their content is unreadable because another subject was erased; only their id is shown.")
        }));
    }
    Value::Array(items)
}
