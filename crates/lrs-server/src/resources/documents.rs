//! The document resources: State, Activity Profile and Agent Profile.
//! Every write is an event in the log (`DocumentWrittenV1` with the whole
//! new content, `DocumentsDeletedV1`); the current documents are a
//! projection. Documents keyed by an agent are sealed under that person's key.
//! Concurrency: ETag with If-Match / If-None-Match, checked by the writer at
//! the moment of appending, so two writers cannot both win. Opening,
//! hashing, merging and sealing a big document is CPU work and runs under
//! the CPU budget (`request::cpu`), off the async workers.

use crate::error::ApiError;
use crate::request::body::RawBody;
use crate::request::params::Params;
use crate::resources::state::XapiState;
use crate::security::extract::Caller;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use lrs_core::clock::now_micros;
use lrs_core::envelope::{open_sealed_bytes, seal_bytes};
use lrs_core::events::{
    DocumentContentV1, DocumentContextV1, DocumentResourceV1, DocumentWrittenV1, DocumentsDeletedV1,
};
use lrs_core::{DataKey, Event};
use lrs_store::{context_prefix, document_key, AppendError, DocumentExpectation, DocumentRef};
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use xapi::XapiVersion;

/// What distinguishes the three resources.
#[derive(Clone, Copy)]
struct Spec {
    resource: DocumentResourceV1,
    id_param: &'static str,
    activity: bool,
    agent: bool,
    registration: bool,
    scope: &'static str,
}

const STATE: Spec = Spec {
    resource: DocumentResourceV1::State,
    id_param: "stateId",
    activity: true,
    agent: true,
    registration: true,
    scope: "state",
};
const ACTIVITY_PROFILE: Spec = Spec {
    resource: DocumentResourceV1::ActivityProfile,
    id_param: "profileId",
    activity: true,
    agent: false,
    registration: false,
    scope: "profile",
};
const AGENT_PROFILE: Spec = Spec {
    resource: DocumentResourceV1::AgentProfile,
    id_param: "profileId",
    activity: false,
    agent: true,
    registration: false,
    scope: "profile",
};

/// A parsed document request: where, which document, since.
#[derive(Clone)]
struct Target {
    context: DocumentContextV1,
    /// The person's key when the document is keyed by a known agent.
    agent_key: Option<DataKey>,
    /// The agent's identifier when the vault does not know them yet.
    unknown_agent: Option<xapi::Ifi>,
    document_id: Option<String>,
    since_micros: Option<i64>,
}

/// Parses and checks every parameter of a document request. An agent the
/// vault does not know is kept as `unknown_agent`: reads find nothing for
/// them, writes create them just before appending.
fn target(
    state: &XapiState,
    caller: &Caller,
    spec: Spec,
    raw: Option<&str>,
) -> Result<Target, ApiError> {
    let mut allowed = vec![spec.id_param, "since"];
    if spec.activity {
        allowed.push("activityId");
    }
    if spec.agent {
        allowed.push("agent");
    }
    if spec.registration {
        allowed.push("registration");
    }
    let params = Params::parse(raw, &allowed)?;
    let activity_id = if spec.activity {
        params.required("activityId")?;
        params.iri("activityId")?.map(str::to_owned)
    } else {
        None
    };
    let registration = params.uuid("registration")?;
    let since_micros = params.timestamp("since")?;
    // The agent last: every other parameter is checked before the vault is asked.
    let (agent, agent_key, unknown_agent) = if spec.agent {
        params.required("agent")?;
        let (agent, ifi) = params.agent("agent", caller.version)?.expect("required");
        if xapi::agent::is_group(&agent) {
            return Err(ApiError::bad_request(
                "?agent",
                "agent.not-a-group",
                "the agent parameter of a document resource is an Agent, not a Group",
            ));
        }
        let vault = state.store.vault();
        match vault.token_of(&ifi) {
            Some(token) => (Some(token), vault.key(&token), None),
            None => (None, None, Some(ifi)),
        }
    } else {
        (None, None, None)
    };
    Ok(Target {
        context: DocumentContextV1 {
            tenant: caller.credential.tenant.clone(),
            resource: spec.resource,
            activity_id,
            agent,
            registration,
        },
        agent_key,
        unknown_agent,
        document_id: params.get(spec.id_param).map(str::to_owned),
        since_micros,
    })
}

impl Target {
    /// Whether the request names an agent the vault has never seen (so no
    /// document of theirs can exist).
    fn agent_unknown(&self) -> bool {
        self.unknown_agent.is_some()
    }

    /// Gives a new agent their vault entry; called only once a write is
    /// about to be appended, so refused requests create nobody.
    fn create_agent(&mut self, state: &XapiState) {
        if let Some(ifi) = self.unknown_agent.take() {
            let (token, key) = state.store.vault().person(&ifi);
            self.context.agent = Some(token);
            self.agent_key = Some(key);
        }
    }
}

fn etag_of(state: &XapiState, content: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(state.store.digest_key()).expect("any key length");
    mac.update(content);
    hex::encode(&mac.finalize().into_bytes()[..20])
}

/// The ETag clients see: the SHA-1 hex digest of the content, as xAPI 1.0.3
/// requires (Communication 3.1). The log keeps a keyed digest instead, so no
/// fingerprint of personal content is stored in clear.
fn client_etag(content: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(content))
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// The ETags an If-Match / If-None-Match header lists (`*` kept as is).
fn header_etags(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<String>> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| {
        v.split(',')
            .map(|t| {
                t.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_owned()
            })
            .collect()
    })
}

#[derive(Clone)]
struct Preconditions {
    if_match: Option<Vec<String>>,
    if_none_match: Option<Vec<String>>,
}

impl Preconditions {
    fn of(headers: &HeaderMap) -> Self {
        Self {
            if_match: header_etags(headers, header::IF_MATCH),
            if_none_match: header_etags(headers, header::IF_NONE_MATCH),
        }
    }

    fn any(&self) -> bool {
        self.if_match.is_some() || self.if_none_match.is_some()
    }

    /// Checks against the current ETag; 412 when they fail.
    fn check(&self, current: Option<&str>) -> Result<(), ApiError> {
        if let Some(tags) = &self.if_match {
            let ok = match current {
                Some(etag) => tags.iter().any(|t| t == "*" || t == etag),
                None => false,
            };
            if !ok {
                return Err(ApiError::PreconditionFailed(
                    "If-Match does not match the document's ETag".into(),
                ));
            }
        }
        if let Some(tags) = &self.if_none_match {
            let hit = match current {
                Some(etag) => tags.iter().any(|t| t == "*" || t == etag),
                None => false,
            };
            if hit {
                return Err(ApiError::PreconditionFailed(
                    "If-None-Match: the document exists".into(),
                ));
            }
        }
        Ok(())
    }
}

fn content_type_of(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned()
}

fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
}

fn seal_content(target: &Target, bytes: Vec<u8>) -> DocumentContentV1 {
    match (&target.context.agent, &target.agent_key) {
        (Some(token), Some(key)) => DocumentContentV1::Sealed(seal_bytes(*token, key, &bytes)),
        _ => DocumentContentV1::Clear(bytes),
    }
}

/// The content of a written document; `None` if its person was erased.
fn open_content(
    state: &XapiState,
    content: &DocumentContentV1,
) -> Result<Option<Vec<u8>>, ApiError> {
    match content {
        DocumentContentV1::Clear(bytes) => Ok(Some(bytes.clone())),
        DocumentContentV1::Sealed(sealed) => {
            open_sealed_bytes(sealed, state.store.vault().as_ref()).map_err(ApiError::internal)
        }
    }
}

/// The current document's record and its content as written (sealed or
/// clear): two reads of the store, no decryption yet.
fn stored(
    state: &XapiState,
    key: &[u8],
) -> Result<Option<(DocumentRef, DocumentContentV1)>, ApiError> {
    let Some(record) = state.store.document(key)? else {
        return Ok(None);
    };
    let Some(entry) = state.store.entry(record.position)? else {
        return Ok(None);
    };
    let Event::DocumentWrittenV1(written) = entry.event else {
        return Err(ApiError::internal(
            "document record points at another event",
        ));
    };
    Ok(Some((record, written.content)))
}

/// The bytes opening a document's content reads.
fn content_len(content: &DocumentContentV1) -> usize {
    match content {
        DocumentContentV1::Clear(bytes) => bytes.len(),
        DocumentContentV1::Sealed(sealed) => sealed.ciphertext.len(),
    }
}

/// A stored document opened: its record, content and client ETag; `None`
/// if its person was erased. CPU work for a big document.
type Opened = Option<(DocumentRef, Vec<u8>, String)>;

fn open_stored(
    state: &XapiState,
    found: Option<(DocumentRef, DocumentContentV1)>,
) -> Result<Opened, ApiError> {
    let Some((record, content)) = found else {
        return Ok(None);
    };
    Ok(open_content(state, &content)?.map(|content| {
        let etag = client_etag(&content);
        (record, content, etag)
    }))
}

/// The current document, opened, with its client ETag: the store read here,
/// the opening and hashing under the CPU budget.
async fn current(state: &XapiState, key: &[u8]) -> Result<Opened, ApiError> {
    let found = stored(state, key)?;
    let weight = found
        .as_ref()
        .map_or(0, |(_, content)| content_len(content));
    let opener = state.clone();
    state
        .cpu
        .run(weight, move || open_stored(&opener, found))
        .await
}

fn refused(error: AppendError) -> ApiError {
    match error {
        AppendError::Precondition { .. } => ApiError::PreconditionFailed(
            "the document changed; read it again and retry with its new ETag".into(),
        ),
        AppendError::Store(e) => e.into(),
        other => ApiError::internal(other),
    }
}

async fn write(
    state: XapiState,
    caller: Caller,
    spec: Spec,
    raw: Option<String>,
    headers: HeaderMap,
    body: RawBody,
    merge: bool,
) -> Result<Response, ApiError> {
    caller.credential.require(&[spec.scope])?;
    let mut target = target(&state, &caller, spec, raw.as_deref())?;
    let id = target.document_id.clone().ok_or_else(|| {
        ApiError::bad_request(
            format!("?{}", spec.id_param),
            "parameter.required",
            format!("{} is required", spec.id_param),
        )
    })?;
    let preconditions = Preconditions::of(&headers);
    let content_type = content_type_of(&headers);
    // Undo the content coding and parse what a POST merges in, under the
    // CPU budget.
    let (body, incoming) = {
        let content_type = content_type.clone();
        state
            .cpu
            .run(body.weight(), move || {
                let bytes = body.decode()?;
                let incoming = if merge {
                    Some(Arc::new(merge_input(&content_type, &bytes)?))
                } else {
                    None
                };
                Ok((bytes, incoming))
            })
            .await?
    };
    // A request without If-Match / If-None-Match asked for no condition: when
    // another write wins the race, read again and redo it rather than answer
    // 412 for a condition the client never set. With a condition, one try.
    let attempts = if preconditions.any() { 1 } else { MAX_ATTEMPTS };
    for attempt in 1..=attempts {
        let existing = if target.agent_unknown() {
            None
        } else {
            current(&state, &document_key(&target.context, &id)).await?
        };
        let existing_etag = existing.as_ref().map(|(_, _, etag)| etag.as_str());
        preconditions.check(existing_etag)?;
        if spec.resource != DocumentResourceV1::State
            && !merge
            && existing.is_none()
            && !preconditions.any()
            && caller.version == XapiVersion::V1_0_3
        {
            return Err(ApiError::bad_request(
                "header If-None-Match",
                "document.precondition-required",
                "a PUT to a profile must send If-Match or If-None-Match (Communication 3.1)",
            ));
        }
        // Profiles (and 2.0.0 state) must not be overwritten blindly: 409 when
        // a PUT without If-Match / If-None-Match finds a document there.
        let blind_put_refused =
            spec.resource != DocumentResourceV1::State || caller.version == XapiVersion::V2_0_0;
        if !merge && existing.is_some() && !preconditions.any() && blind_put_refused {
            return Err(ApiError::Conflict(
                "the document exists: send If-Match with its ETag (or If-None-Match: *) to say what you expect"
                    .into(),
            ));
        }
        target.create_agent(&state);
        let expect = DocumentExpectation::Unchanged(
            existing.as_ref().map(|(record, _, _)| record.etag.clone()),
        );
        // Merge, digest and seal the new content under the CPU budget.
        let weight = body.len() + existing.as_ref().map_or(0, |(_, content, _)| content.len());
        let (event, answer_etag) = {
            let (sealer, target, id) = (state.clone(), target.clone(), id.clone());
            let (body, incoming) = (body.clone(), incoming.clone());
            let content_type = content_type.clone();
            state
                .cpu
                .run(weight, move || {
                    let (content, stored_type) = match &incoming {
                        Some(incoming) => (
                            merged(existing.as_ref(), incoming)?,
                            "application/json".to_owned(),
                        ),
                        None => (body.to_vec(), content_type),
                    };
                    let answer_etag = client_etag(&content);
                    let event = Event::DocumentWrittenV1(DocumentWrittenV1 {
                        context: target.context.clone(),
                        document_id: id,
                        content_type: stored_type,
                        etag: etag_of(&sealer, &content),
                        written_micros: now_micros(),
                        content: seal_content(&target, content),
                    });
                    Ok((event, answer_etag))
                })
                .await?
        };
        match state.store.append_document(event, expect).await {
            Ok(_) => {
                let mut response = StatusCode::NO_CONTENT.into_response();
                if let Ok(value) = HeaderValue::from_str(&quoted(&answer_etag)) {
                    response.headers_mut().insert(header::ETAG, value);
                }
                return Ok(response);
            }
            Err(AppendError::Precondition { .. }) if attempt < attempts => continue,
            Err(error) => return Err(refused(error)),
        }
    }
    unreachable!("the last attempt returns")
}

/// How often a write without conditions is redone when it loses a race.
const MAX_ATTEMPTS: usize = 64;

/// The JSON object a POST merges in.
fn merge_input(
    content_type: &str,
    body: &[u8],
) -> Result<serde_json::Map<String, Value>, ApiError> {
    if !is_json(content_type) {
        return Err(ApiError::bad_request(
            "header Content-Type",
            "document.merge-json",
            "POST merges JSON: send application/json",
        ));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(incoming)) => Ok(incoming),
        Ok(_) => Err(ApiError::bad_request(
            "$",
            "document.merge-object",
            "POST merges a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "$",
            "json.syntax",
            format!("body is not valid json: {e}"),
        )),
    }
}

/// The stored JSON object with the incoming properties merged over it.
fn merged(
    existing: Option<&(DocumentRef, Vec<u8>, String)>,
    incoming: &serde_json::Map<String, Value>,
) -> Result<Vec<u8>, ApiError> {
    let mut document = match existing {
        None => serde_json::Map::new(),
        Some((record, bytes, _)) => {
            let stored: Option<Value> = if is_json(&record.content_type) {
                serde_json::from_slice(bytes).ok()
            } else {
                None
            };
            match stored {
                Some(Value::Object(document)) => document,
                _ => {
                    return Err(ApiError::bad_request(
                        "$",
                        "document.merge-object",
                        "the stored document is not a JSON object, so it cannot be merged into",
                    ))
                }
            }
        }
    };
    for (key, value) in incoming {
        document.insert(key.clone(), value.clone());
    }
    Ok(serde_json::to_vec(&Value::Object(document)).expect("json encodes"))
}

async fn read(
    state: XapiState,
    caller: Caller,
    spec: Spec,
    raw: Option<String>,
) -> Result<Response, ApiError> {
    caller.credential.require(&[spec.scope, "all/read"])?;
    let target = target(&state, &caller, spec, raw.as_deref())?;
    let single = raw
        .as_deref()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == spec.id_param));
    if single {
        if target.since_micros.is_some() {
            return Err(ApiError::bad_request(
                "?since",
                "parameter.exclusive",
                "since lists ids; it cannot be used with a document id",
            ));
        }
        if target.agent_unknown() {
            return Err(ApiError::NotFound("document"));
        }
        let id = target.document_id.clone().expect("single");
        let (record, content, etag) = current(&state, &document_key(&target.context, &id))
            .await?
            .ok_or(ApiError::NotFound("document"))?;
        let mut response = Bytes::from(content).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&record.content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        if let Ok(value) = HeaderValue::from_str(&quoted(&etag)) {
            headers.insert(header::ETAG, value);
        }
        if let Ok(value) =
            HeaderValue::from_str(&crate::request::http_date::http_date(record.updated_micros))
        {
            headers.insert(header::LAST_MODIFIED, value);
        }
        return Ok(response);
    }
    let documents = if target.agent_unknown() {
        Vec::new()
    } else {
        state.store.documents_in(&context_prefix(&target.context))?
    };
    let listed: Vec<_> = documents
        .into_iter()
        .filter(|(_, record)| {
            target
                .since_micros
                .is_none_or(|since| record.updated_micros > since)
        })
        .collect();
    let last_modified = listed.iter().map(|(_, record)| record.updated_micros).max();
    let ids: Vec<String> = listed.into_iter().map(|(id, _)| id).collect();
    let mut response = axum::Json(ids).into_response();
    if let Some(micros) = last_modified {
        if let Ok(value) = HeaderValue::from_str(&crate::request::http_date::http_date(micros)) {
            response.headers_mut().insert(header::LAST_MODIFIED, value);
        }
    }
    Ok(response)
}

async fn delete(
    state: XapiState,
    caller: Caller,
    spec: Spec,
    raw: Option<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.credential.require(&[spec.scope])?;
    let target = target(&state, &caller, spec, raw.as_deref())?;
    if target.since_micros.is_some() {
        return Err(ApiError::bad_request(
            "?since",
            "parameter.unknown",
            "since is not a DELETE parameter",
        ));
    }
    if target.document_id.is_none() && spec.resource != DocumentResourceV1::State {
        return Err(ApiError::bad_request(
            format!("?{}", spec.id_param),
            "parameter.required",
            format!("{} is required to delete a profile", spec.id_param),
        ));
    }
    if target.agent_unknown() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let preconditions = Preconditions::of(&headers);
    let (ids, expect) = match &target.document_id {
        Some(id) => {
            let existing = current(&state, &document_key(&target.context, id)).await?;
            preconditions.check(existing.as_ref().map(|(_, _, etag)| etag.as_str()))?;
            match existing {
                None => return Ok(StatusCode::NO_CONTENT.into_response()),
                Some((record, _, _)) => (vec![id.clone()], DocumentExpectation::Etag(record.etag)),
            }
        }
        None if spec.resource == DocumentResourceV1::State => {
            let ids: Vec<String> = state
                .store
                .documents_in(&context_prefix(&target.context))?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            (ids, DocumentExpectation::Any)
        }
        None => {
            return Err(ApiError::bad_request(
                format!("?{}", spec.id_param),
                "parameter.required",
                format!("{} is required to delete a profile", spec.id_param),
            ))
        }
    };
    if !ids.is_empty() {
        let event = Event::DocumentsDeletedV1(DocumentsDeletedV1 {
            context: target.context,
            document_ids: ids,
            deleted_micros: now_micros(),
        });
        state
            .store
            .append_document(event, expect)
            .await
            .map_err(refused)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

macro_rules! resource_handlers {
    ($spec:expr, $get:ident, $put:ident, $post:ident, $delete:ident) => {
        pub async fn $get(
            State(state): State<XapiState>,
            caller: Caller,
            RawQuery(raw): RawQuery,
        ) -> Result<Response, ApiError> {
            read(state, caller, $spec, raw).await
        }

        pub async fn $put(
            State(state): State<XapiState>,
            caller: Caller,
            RawQuery(raw): RawQuery,
            headers: HeaderMap,
            body: RawBody,
        ) -> Result<Response, ApiError> {
            write(state, caller, $spec, raw, headers, body, false).await
        }

        pub async fn $post(
            State(state): State<XapiState>,
            caller: Caller,
            RawQuery(raw): RawQuery,
            headers: HeaderMap,
            body: RawBody,
        ) -> Result<Response, ApiError> {
            write(state, caller, $spec, raw, headers, body, true).await
        }

        pub async fn $delete(
            State(state): State<XapiState>,
            caller: Caller,
            RawQuery(raw): RawQuery,
            headers: HeaderMap,
        ) -> Result<Response, ApiError> {
            delete(state, caller, $spec, raw, headers).await
        }
    };
}

resource_handlers!(STATE, get_state, put_state, post_state, delete_state);
resource_handlers!(
    ACTIVITY_PROFILE,
    get_activity_profile,
    put_activity_profile,
    post_activity_profile,
    delete_activity_profile
);
resource_handlers!(
    AGENT_PROFILE,
    get_agent_profile,
    put_agent_profile,
    post_agent_profile,
    delete_agent_profile
);
