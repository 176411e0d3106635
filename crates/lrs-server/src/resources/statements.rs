//! The Statements resource: PUT, POST, GET (single, voided, queries with
//! `more` pagination) and HEAD (axum answers HEAD with the GET handler minus
//! the body).

use crate::error::ApiError;
use crate::request::http_date::http_date;
use crate::request::params::Params;
use crate::resources::attachments;
use crate::resources::state::XapiState;
use crate::security::extract::Caller;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lrs_app::ingest::{authority_of, prepare};
use lrs_core::envelope::{open_attachments, AttachmentContent};
use lrs_core::statement::{format_micros, reassemble};
use lrs_projections::statement_index::{string_term, TermKind};
use lrs_store::{AppendError, Scope, StatementQuery, Store};
use serde_json::{json, Value};
use uuid::Uuid;
use xapi::format::{accept_languages, Format};
use xapi::validate::validate_statement_batch;

const CONSISTENT_THROUGH: &str = "x-experience-api-consistent-through";

const GET_PARAMS: &[&str] = &[
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

async fn store_statements(
    state: &XapiState,
    caller: &Caller,
    statements: Vec<Value>,
    paths: Vec<String>,
    contents: Vec<Vec<AttachmentContent>>,
) -> Result<Vec<Uuid>, ApiError> {
    let authority = authority_of(&caller.credential, &state.config.authority_home_page);
    let mut prepared = Vec::with_capacity(statements.len());
    let kind = lrs_app::tenancy::tenant_kind(&state.store, &caller.credential.tenant)?;
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
            caller.version,
            &path,
            &contents,
            origin,
        )?);
    }
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
    body: Bytes,
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
    let request = attachments::read(&headers, body).await?;
    let mut statement = request.body;
    if !statement.is_object() {
        return Err(ApiError::bad_request(
            "$",
            "statement.type",
            "PUT takes a single statement object",
        ));
    }
    validate_statement_batch(&statement, caller.version)?;
    let contents = attachments::match_parts(&statement, &request.parts, caller.version)?;
    match statement.get("id").and_then(Value::as_str) {
        Some(body_id) if Uuid::parse_str(body_id).ok() != Some(id) => {
            return Err(ApiError::bad_request(
                "$.id",
                "statement.id-mismatch",
                format!("statement id {body_id} differs from statementId {id}"),
            ))
        }
        _ => {}
    }
    statement["id"] = Value::String(id.hyphenated().to_string());
    store_statements(&state, &caller, vec![statement], vec!["$".into()], contents).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn post_statements(
    State(state): State<XapiState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.credential.require(&["statements/write"])?;
    Params::parse(query.as_deref(), &[])?;
    let request = attachments::read(&headers, body).await?;
    let body = request.body;
    validate_statement_batch(&body, caller.version)?;
    let contents = attachments::match_parts(&body, &request.parts, caller.version)?;
    let (statements, paths): (Vec<Value>, Vec<String>) = match body {
        Value::Array(items) => {
            let paths = (0..items.len()).map(|i| format!("$[{i}]")).collect();
            (items, paths)
        }
        single => (vec![single], vec!["$".into()]),
    };
    let ids = store_statements(&state, &caller, statements, paths, contents).await?;
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
        let Some(mut statement) =
            reassemble(&stored, vault.as_ref()).map_err(ApiError::internal)?
        else {
            return Err(ApiError::NotFound("statement"));
        };
        xapi::format::apply(&mut statement, format, &languages);
        let mut response = if with_attachments {
            let contents =
                open_attachments(&stored.sealed, vault.as_ref()).map_err(ApiError::internal)?;
            attachments::multipart_response(&statement, contents.unwrap_or_default())
        } else {
            axum::Json(statement).into_response()
        };
        set_header(&mut response, CONSISTENT_THROUGH, &consistent_through);
        set_header(
            &mut response,
            "last-modified",
            &http_date(stored.stored_micros),
        );
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

    let mut statements = Vec::new();
    let mut contents = Vec::new();
    let mut more = String::new();
    if !nobody {
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
        let page = tokio::task::spawn_blocking(move || {
            let page = store.query_statements(&query)?;
            let (statements, contents) = open_positions(&store, &page.positions, with_attachments)?;
            Ok::<_, ApiError>((statements, page.more, contents))
        })
        .await
        .map_err(ApiError::internal)??;
        statements = page.0;
        contents = page.2;
        for statement in &mut statements {
            xapi::format::apply(statement, format, &languages);
        }
        if let Some(next) = page.1 {
            let mut serializer = form_urlencoded::Serializer::new(String::new());
            for (key, value) in params.iter().filter(|(k, _)| k.as_str() != "cursor") {
                serializer.append_pair(key, value);
            }
            serializer.append_pair("cursor", &next.to_string());
            more = format!("/xapi/statements?{}", serializer.finish());
        }
    }
    let result = json!({ "statements": statements, "more": more });
    let mut response = if with_attachments {
        attachments::multipart_response(&result, contents)
    } else {
        axum::Json(result).into_response()
    };
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
    for position in positions {
        let Some(stored) = store.statement_at(*position)?.map(|v2| v2.statement) else {
            continue;
        };
        let Some(statement) =
            reassemble(&stored, store.vault().as_ref()).map_err(ApiError::internal)?
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
