//! The Statements resource: PUT, POST, GET (single, voided, queries with
//! `more` pagination) and HEAD (axum answers HEAD with the GET handler minus
//! the body).

use crate::error::ApiError;
use crate::request::body::RawBody;
use crate::request::http_date::http_date;
use crate::request::params::Params;
use crate::resources::attachments;
use crate::resources::state::XapiState;
use crate::security::extract::Caller;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lrs_app::ingest::{authority_of, prepare};
use lrs_app::principal::Credential;
use lrs_core::envelope::{open_attachments, AttachmentContent, OpenedPeople};
use lrs_core::statement::{format_micros, reassemble, reassemble_remembering};
use lrs_projections::statement_index::{string_term, TermKind};
use lrs_store::{AppendError, PreparedStatement, Scope, StatementQuery, Store};
use serde_json::{json, Value};
use uuid::Uuid;
use xapi::format::{accept_languages, Format};
use xapi::validate::validate_statement_batch;
use xapi::XapiVersion;

const CONSISTENT_THROUGH: &str = "x-experience-api-consistent-through";

pub const GET_PARAMS: &[&str] = &[
    "statementId",
    "voidedStatementId",
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
    "since",
    "until",
    "limit",
    "format",
    "attachments",
    "ascending",
    "cursor",
];

/// Everything a statement write does before the append, all of it CPU
/// work on bytes already received: undo the content coding, read the JSON
/// or multipart body, validate, match attachments and check signatures,
/// seal each statement. `put_id` is the `statementId` of a PUT. Runs under
/// the CPU budget (off the async workers for a big body).
fn prepare_write(
    state: &XapiState,
    credential: &Credential,
    version: XapiVersion,
    headers: &HeaderMap,
    body: RawBody,
    put_id: Option<Uuid>,
) -> Result<Vec<PreparedStatement>, ApiError> {
    let request = attachments::read(headers, body.decode()?)?;
    let mut body = request.body;
    if put_id.is_some() && !body.is_object() {
        return Err(ApiError::bad_request(
            "$",
            "statement.type",
            "PUT takes a single statement object",
        ));
    }
    validate_statement_batch(&body, version)?;
    let contents = attachments::match_parts(&body, &request.parts, version)?;
    if let Some(id) = put_id {
        match body.get("id").and_then(Value::as_str) {
            Some(body_id) if Uuid::parse_str(body_id).ok() != Some(id) => {
                return Err(ApiError::bad_request(
                    "$.id",
                    "statement.id-mismatch",
                    format!("statement id {body_id} differs from statementId {id}"),
                ))
            }
            _ => {}
        }
        body["id"] = Value::String(id.hyphenated().to_string());
    }
    let (statements, paths): (Vec<Value>, Vec<String>) = match body {
        Value::Array(items) => {
            let paths = (0..items.len()).map(|i| format!("$[{i}]")).collect();
            (items, paths)
        }
        single => (vec![single], vec!["$".into()]),
    };
    let authority = authority_of(credential, &state.config.authority_home_page);
    let mut prepared = Vec::with_capacity(statements.len());
    let kind = lrs_app::tenancy::tenant_kind(&state.store, &credential.tenant)?;
    for ((statement, path), contents) in statements.into_iter().zip(paths).zip(contents) {
        let origin = lrs_app::tenancy::origin_of(
            kind.as_ref(),
            &statement,
            &state.config.origin_extensions,
            &path,
        )?;
        prepared.push(prepare(
            &state.store,
            statement,
            &authority,
            version,
            &path,
            &contents,
            origin,
        )?);
    }
    Ok(prepared)
}

/// How much CPU a statement write costs, for the budget: a multipart body
/// (SHA-256 of every part, signatures) always counts as big.
fn write_weight(headers: &HeaderMap, body: &RawBody) -> usize {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        });
    if multipart {
        usize::MAX
    } else {
        body.weight()
    }
}

/// Prepares a write under the CPU budget, then appends it.
async fn write_statements(
    state: &XapiState,
    caller: &Caller,
    headers: HeaderMap,
    body: RawBody,
    put_id: Option<Uuid>,
) -> Result<Vec<Uuid>, ApiError> {
    let weight = write_weight(&headers, &body);
    let prepared = {
        let state = state.clone();
        let credential = caller.credential.clone();
        let version = caller.version;
        state
            .cpu
            .clone()
            .run(weight, move || {
                prepare_write(&state, &credential, version, &headers, body, put_id)
            })
            .await?
    };
    let ids: Vec<Uuid> = prepared.iter().map(|p| p.statement_id).collect();
    match state
        .store
        .append_statements(
            caller.credential.tenant.clone(),
            caller.credential.key.clone(),
            prepared,
        )
        .await
    {
        Ok(_) => Ok(ids),
        Err(AppendError::Conflict(id)) => Err(ApiError::Conflict(format!(
            "statement {id} already exists with different content; statements are immutable"
        ))),
        Err(AppendError::DuplicateInRequest(id)) => Err(ApiError::bad_request(
            "$",
            "statement.duplicate-id",
            format!("statement id {id} appears twice in the request with different content"),
        )),
        Err(AppendError::Store(e)) => Err(e.into()),
        Err(AppendError::Precondition { .. }) => {
            Err(ApiError::internal("statements carry no preconditions"))
        }
    }
}

pub async fn put_statement(
    State(state): State<XapiState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: RawBody,
) -> Result<StatusCode, ApiError> {
    caller.credential.require(&["statements/write"])?;
    let params = Params::parse(query.as_deref(), &["statementId"])?;
    let id = params.uuid("statementId")?.ok_or_else(|| {
        ApiError::bad_request(
            "?statementId",
            "parameter.required",
            "PUT /statements needs the statementId parameter",
        )
    })?;
    write_statements(&state, &caller, headers, body, Some(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn post_statements(
    State(state): State<XapiState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    caller.credential.require(&["statements/write"])?;
    Params::parse(query.as_deref(), &[])?;
    let ids = write_statements(&state, &caller, headers, body, None).await?;
    let ids: Vec<String> = ids.iter().map(|id| id.hyphenated().to_string()).collect();
    Ok(axum::Json(ids).into_response())
}

fn scope_of(state: &XapiState, caller: &Caller) -> Result<Scope, ApiError> {
    Ok(lrs_app::tenancy::read_scope(
        &state.store,
        &caller.credential,
    )?)
}

pub async fn get_statements(
    State(state): State<XapiState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller
        .credential
        .require(&["statements/read", "statements/read/mine"])?;
    let params = Params::parse(query.as_deref(), GET_PARAMS)?;
    let format = match params.get("format") {
        None => Format::Exact,
        Some(value) => Format::parse(value).ok_or_else(|| {
            ApiError::bad_request(
                "?format",
                "parameter.format",
                format!("format must be exact, ids or canonical, not {value:?}"),
            )
        })?,
    };
    let languages = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(accept_languages)
        .unwrap_or_default();
    let with_attachments = params.bool("attachments")?;
    let consistent_through = format_micros(state.store.consistent_through_micros());
    let scope = scope_of(&state, &caller)?;
    let vault = state.store.vault().clone();

    let single = match (params.get("statementId"), params.get("voidedStatementId")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "?statementId",
                "parameter.exclusive",
                "statementId and voidedStatementId cannot be used together",
            ))
        }
        (Some(_), None) => Some(("statementId", false)),
        (None, Some(_)) => Some(("voidedStatementId", true)),
        (None, None) => None,
    };
    if let Some((key, want_voided)) = single {
        if let Some((other, _)) = params
            .iter()
            .find(|(k, _)| !matches!(k.as_str(), "attachments" | "format") && *k != key)
        {
            return Err(ApiError::bad_request(
                format!("?{other}"),
                "parameter.exclusive",
                format!("{key} can only be combined with format and attachments"),
            ));
        }
        let id = params.uuid(key)?.expect("present");
        let found = state
            .store
            .find_statement(&scope, &id)?
            .filter(|f| f.voided == want_voided);
        let Some(found) = found else {
            return Err(ApiError::NotFound("statement"));
        };
        let stored = state
            .store
            .statement_at(found.position)?
            .ok_or(ApiError::NotFound("statement"))?
            .statement;
        // Opening, formatting and serializing a big statement is CPU work.
        let weight = stored.sealed.body.len()
            + if with_attachments {
                stored
                    .sealed
                    .attachments
                    .iter()
                    .map(|a| a.ciphertext.len())
                    .sum()
            } else {
                0
            };
        let mut response = state
            .cpu
            .run(weight, move || {
                let Some(mut statement) =
                    reassemble(&stored, vault.as_ref()).map_err(ApiError::internal)?
                else {
                    return Err(ApiError::NotFound("statement"));
                };
                xapi::format::apply(&mut statement, format, &languages);
                let mut response = if with_attachments {
                    let contents = open_attachments(&stored.sealed, vault.as_ref())
                        .map_err(ApiError::internal)?;
                    attachments::multipart_response(&statement, contents.unwrap_or_default())
                } else {
                    axum::Json(statement).into_response()
                };
                set_header(
                    &mut response,
                    "last-modified",
                    &http_date(stored.stored_micros),
                );
                Ok(response)
            })
            .await?;
        set_header(&mut response, CONSISTENT_THROUGH, &consistent_through);
        return Ok(response);
    }

    let related_agents = params.bool("related_agents")?;
    let related_activities = params.bool("related_activities")?;
    let ascending = params.bool("ascending")?;
    let mut terms = Vec::new();
    let mut nobody = false;
    if let Some((_, ifi)) = params.agent("agent", caller.version)? {
        match vault.token_of(&ifi) {
            Some(token) => terms.push((
                if related_agents {
                    TermKind::RelatedAgent
                } else {
                    TermKind::Agent
                },
                token.0,
            )),
            None => nobody = true,
        }
    }
    if let Some(verb) = params.iri("verb")? {
        terms.push((TermKind::Verb, string_term(verb)));
    }
    if let Some(activity) = params.iri("activity")? {
        let kind = if related_activities {
            TermKind::RelatedActivity
        } else {
            TermKind::Activity
        };
        terms.push((kind, string_term(activity)));
    }
    if let Some(registration) = params.uuid("registration")? {
        terms.push((TermKind::Registration, *registration.as_bytes()));
    }
    let since_micros = params.timestamp("since")?;
    let until_micros = params.timestamp("until")?;
    let limit = match params.get("limit") {
        None => 0,
        Some(text) => text.parse::<usize>().map_err(|_| {
            ApiError::bad_request(
                "?limit",
                "parameter.limit",
                format!("limit must be a non-negative integer, not {text:?}"),
            )
        })?,
    };
    let max = state.config.max_statements_per_page;
    let limit = if limit == 0 { max } else { limit.min(max) };
    let after = match params.get("cursor") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "?cursor",
                "parameter.cursor",
                "cursor is not one this server gave out",
            )
        })?),
    };

    if nobody {
        let result = json!({ "statements": [], "more": "" });
        let mut response = if with_attachments {
            attachments::multipart_response(&result, Vec::new())
        } else {
            axum::Json(result).into_response()
        };
        set_header(&mut response, CONSISTENT_THROUGH, &consistent_through);
        return Ok(response);
    }
    // Everything past the parameters (the query, opening the statements,
    // formatting and serializing the page) runs on the blocking pool.
    let more_query = {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (key, value) in params.iter().filter(|(k, _)| k.as_str() != "cursor") {
            serializer.append_pair(key, value);
        }
        serializer.finish()
    };
    let store = state.store.clone();
    let query = StatementQuery {
        scope,
        terms,
        since_micros,
        until_micros,
        ascending,
        limit,
        after,
        ceiling: store.head(),
    };
    let mut response = tokio::task::spawn_blocking(move || {
        let page = store.query_statements(&query)?;
        let (mut statements, contents) = open_positions(&store, &page.positions, with_attachments)?;
        for statement in &mut statements {
            xapi::format::apply(statement, format, &languages);
        }
        let more = match page.more {
            Some(next) if more_query.is_empty() => format!("/xapi/statements?cursor={next}"),
            Some(next) => format!("/xapi/statements?{more_query}&cursor={next}"),
            None => String::new(),
        };
        // Moved in, not copied: `json!` would clone every statement.
        let mut result = serde_json::Map::new();
        result.insert("statements".into(), Value::Array(statements));
        result.insert("more".into(), Value::String(more));
        let result = Value::Object(result);
        Ok::<_, ApiError>(if with_attachments {
            attachments::multipart_response(&result, contents)
        } else {
            axum::Json(result).into_response()
        })
    })
    .await
    .map_err(ApiError::internal)??;
    set_header(&mut response, CONSISTENT_THROUGH, &consistent_through);
    Ok(response)
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// The readable statements at these positions, in order (statements of an
/// erased subject are left out), and with `with_attachments` their
/// attachments' contents. Blocking: run it off the async workers.
pub(crate) fn open_positions(
    store: &Store,
    positions: &[u64],
    with_attachments: bool,
) -> Result<(Vec<Value>, Vec<AttachmentContent>), ApiError> {
    let mut statements = Vec::with_capacity(positions.len());
    let mut contents = Vec::new();
    let mut opened = OpenedPeople::default();
    for stored in store.statements_at(positions)? {
        let Some(stored) = stored.map(|v2| v2.statement) else {
            continue;
        };
        let Some(statement) = reassemble_remembering(&stored, store.vault().as_ref(), &mut opened)
            .map_err(ApiError::internal)?
        else {
            continue;
        };
        statements.push(statement);
        if with_attachments {
            let opened = open_attachments(&stored.sealed, store.vault().as_ref())
                .map_err(ApiError::internal)?;
            contents.extend(opened.unwrap_or_default());
        }
    }
    Ok((statements, contents))
}

/// The newest readable statements in a scope that match one filter term,
/// at most `limit` (what the Activities and Agents resources read).
pub(crate) fn newest_statements(
    store: &Store,
    scope: Scope,
    term: (TermKind, [u8; 16]),
    limit: usize,
) -> Result<Vec<Value>, ApiError> {
    let page = store.query_statements(&StatementQuery {
        scope,
        terms: vec![term],
        since_micros: None,
        until_micros: None,
        ascending: false,
        limit,
        after: None,
        ceiling: store.head(),
    })?;
    Ok(open_positions(store, &page.positions, false)?.0)
}
