//! The JSON API of progress, monthly figures (as delivered: a closed
//! month's closed version unless asked for the live one, `lrs_app::closing`),
//! closing a month and course models (docs/progress-and-figures.md).
//! Authentication as for the xAPI resources (no version header); what a
//! caller sees follows from its tenant (`lrs_app::insight`).

use crate::api::state::ApiState;
use crate::error::ApiError;
use crate::request::body::download;
use crate::request::params::Params;
use crate::request::routes::{Operation, RouteTable};
use crate::security::extract::{Admin, AuthState, CourseModelWrite, Permitted, ProgressReadOwn};
use axum::body::Bytes;
use axum::extract::{FromRef, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lrs_app::closing::{self, Closed};
use lrs_app::datatheek;
use lrs_app::insight::course_model::{self, parse_model, set_model};
use lrs_app::insight::{
    self, FigureAccess, FigureScope, FiguresVersion, HitsChoice, LearnersFilter, Month, Reach,
    Served,
};
use lrs_app::sheets::SheetFormat;
use std::sync::Arc;

/// The `/api/v1` routes of progress, figures and course models.
pub fn routes<S>(table: RouteTable<S>) -> RouteTable<S>
where
    ApiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    const FIGURES: &str = "figures";
    const PROGRESS: &str = "progress";
    const MONTH: &str = "A month, YYYY-MM (Europe/Amsterdam); default the current one";
    const SCOPE_LIBRARY: &str = "A library's figures (ISIL); not with app";
    const SCOPE_APP: &str = "An app's figures (appid); not with library";
    const VERSION: &str = "live, closed (the default: the latest closed version, else live) or a closed version's number";
    table
        .get(
            "/api/v1/figures/monthly",
            monthly,
            Operation::new(FIGURES, "A month's figures as delivered, for the caller's scope")
                .query("month", MONTH)
                .query("library", SCOPE_LIBRARY)
                .query("app", SCOPE_APP)
                .query("version", VERSION)
                .answers(200, "The month's figures"),
        )
        .get(
            "/api/v1/figures/trend",
            trend,
            Operation::new(FIGURES, "Figures month by month")
                .query("from", "First month, YYYY-MM; default 11 months before to")
                .query("to", "Last month, YYYY-MM; default the current one")
                .query("library", SCOPE_LIBRARY)
                .query("app", SCOPE_APP)
                .query("version", "closed (as delivered, the default) or live")
                .answers(200, "One entry per month"),
        )
        .get(
            "/api/v1/figures/breakdown",
            breakdown,
            Operation::new(FIGURES, "A month's figures per library or app (the KB's)")
                .query("month", MONTH)
                .query("by", "library (the default) or app")
                .query("version", VERSION)
                .answers(200, "One row per library or app"),
        )
        .get(
            "/api/v1/figures/datatheek",
            datatheek,
            Operation::new(FIGURES, "The Datatheek workbook of a month")
                .describe("Headers Figures-Version and Figures-Late-Statements say which version it is and how many statements arrived after closing.")
                .query("month", "A month, YYYY-MM; default the last complete month")
                .query("version", VERSION)
                .query("hits", "statements (the default), launches or both")
                .answers_as(
                    200,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "The workbook",
                ),
        )
        .get(
            "/api/v1/figures/closings",
            list_closings,
            Operation::new(FIGURES, "Every closing of a month, oldest first")
                .query_required("month", "The month, YYYY-MM")
                .query("library", SCOPE_LIBRARY)
                .query("app", SCOPE_APP)
                .answers(200, "The closings, with what arrived after each"),
        )
        .post(
            "/api/v1/figures/closings",
            close,
            Operation::new(FIGURES, "Close a month's figures (the KB's, permission figures.close)")
                .json_body("`{\"month\": \"YYYY-MM\", \"note\"?}`")
                .answers(201, "A new closed version")
                .answers(200, "Unchanged: the figures equal the latest closed version"),
        )
        .get(
            "/api/v1/progress/learner",
            learner,
            Operation::new(PROGRESS, "One learner's progress")
                .query("learner", "The learner's id (not with agent)")
                .query("agent", "The learner as an xAPI agent, JSON (not with learner)")
                .query("course", "Only this course (IRI)")
                .answers(200, "Courses, modules, status, scores and time"),
        )
        .get(
            "/api/v1/progress/me",
            me,
            Operation::new(PROGRESS, "The signed-in learner's own progress")
                .describe("For a learner signed in with an OpenID Connect provider; nothing of any other learner.")
                .answers(200, "Courses, modules, status, scores and time"),
        )
        .get(
            "/api/v1/progress/learners",
            learners,
            Operation::new(PROGRESS, "A page of a library's learners")
                .query("library", "The library (ISIL); required for the KB")
                .query("course", "Only learners of this course (IRI)")
                .query("status", "Only learners with this status")
                .query("sort", "The column to sort by")
                .query("order", "asc or desc")
                .query("page", "Page number, from 1")
                .query("per_page", "Learners per page")
                .answers(200, "The page of learners and the total"),
        )
        .post(
            "/api/v1/progress/assignments",
            assign,
            Operation::new(PROGRESS, "Assign a course's modules to learners")
                .json_body("`{\"learners\": [ids], \"course\": IRI, \"modules\": [IRIs], \"ready\": bool}`")
                .answers_as(204, "", "Assigned"),
        )
        .get(
            "/api/v1/course-model",
            get_model,
            Operation::new("course-model", "The course model in effect for the caller's tenant")
                .answers(200, "The course model"),
        )
        .put(
            "/api/v1/course-model",
            put_model,
            Operation::new("course-model", "Replace the tenant's course model (permission course_model.write)")
                .json_body("The course model document")
                .answers_as(204, "", "Stored"),
        )
}

/// Runs a read on the blocking pool (sled reads, decryption).
async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    state: &ApiState,
    read: impl FnOnce(&lrs_store::Store) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    let store: Arc<lrs_store::Store> = state.store.clone();
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(ApiError::internal)?
        .map_err(Into::into)
}

fn month_param(params: &Params, key: &str) -> Result<Option<Month>, ApiError> {
    params
        .get(key)
        .map(|text| {
            text.parse::<Month>()
                .map_err(|e| ApiError::bad_request(format!("?{key}"), "month.format", e))
        })
        .transpose()
}

/// `?version=`: `live`, `closed` (the default: the latest closed version,
/// else live) or a closed version's number.
fn version_param(params: &Params) -> Result<FiguresVersion, ApiError> {
    params
        .get("version")
        .map(|text| {
            text.parse::<FiguresVersion>()
                .map_err(|e| ApiError::bad_request("?version", "figures.version", e))
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

/// `?hits=`: `statements` (the default), `launches` or `both`.
fn hits_param(params: &Params) -> Result<HitsChoice, ApiError> {
    params
        .get("hits")
        .map(|text| {
            text.parse::<HitsChoice>()
                .map_err(|e| ApiError::bad_request("?hits", "figures.hits", e))
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The scope a caller asks for (`library=` or `app=`), checked against
/// what it may see.
fn figure_scope(params: &Params, access: &FigureAccess) -> Result<FigureScope, ApiError> {
    let (scope, path) = match (params.get("library"), params.get("app")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "?app",
                "figures.scope",
                "ask for a library or an app, not both",
            ))
        }
        (Some(isil), None) => (FigureScope::Library(isil.to_owned()), "?library"),
        (None, Some(appid)) => (FigureScope::App(appid.to_owned()), "?app"),
        (None, None) => return Ok(access.default_scope()),
    };
    if access.allows(&scope) {
        Ok(scope)
    } else {
        Err(ApiError::Forbidden(format!(
            "figures of another {} ({path})",
            if path == "?library" { "library" } else { "app" }
        )))
    }
}

async fn monthly(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["month", "library", "app", "version"])?;
    let access = insight::access(&state.store, &caller, "figures.read")?;
    let scope = figure_scope(&params, &access)?;
    let month = month_param(&params, "month")?.unwrap_or_else(Month::current);
    let version = version_param(&params)?;
    let figures = blocking(&state, move |store| {
        closing::monthly(store, &scope, month, version)
    })
    .await?;
    Ok(Json(figures).into_response())
}

async fn trend(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(
        query.as_deref(),
        &["from", "to", "library", "app", "version"],
    )?;
    let access = insight::access(&state.store, &caller, "figures.read")?;
    let scope = figure_scope(&params, &access)?;
    let live =
        match version_param(&params)? {
            FiguresVersion::Delivered => false,
            FiguresVersion::Live => true,
            FiguresVersion::Closed(_) => return Err(ApiError::bad_request(
                "?version",
                "figures.version",
                "a trend shows each month as delivered (closed) or live: version is closed or live",
            )),
        };
    let to = month_param(&params, "to")?.unwrap_or_else(Month::current);
    let from = match month_param(&params, "from")? {
        Some(from) => from,
        None => (0..11).fold(to, |m, _| m.previous()),
    };
    let months = blocking(&state, move |store| {
        closing::trend(store, &scope, from, to, live)
    })
    .await?;
    Ok(Json(serde_json::json!({ "months": months })).into_response())
}

async fn breakdown(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["month", "by", "version"])?;
    let access = insight::access(&state.store, &caller, "figures.read")?;
    let version = version_param(&params)?;
    if access != FigureAccess::Kb {
        return Err(ApiError::Forbidden(
            "the breakdown over every library or app (the KB's)".into(),
        ));
    }
    let by_library = match params.get("by").unwrap_or("library") {
        "library" => true,
        "app" => false,
        other => {
            return Err(ApiError::bad_request(
                "?by",
                "breakdown.by",
                format!("'{other}': by is library or app"),
            ))
        }
    };
    let month = month_param(&params, "month")?.unwrap_or_else(Month::current);
    let breakdown = blocking(&state, move |store| {
        closing::breakdown(store, month, by_library, version)
    })
    .await?;
    Ok(Json(breakdown).into_response())
}

/// GET /api/figures/datatheek?month=YYYY-MM[&version=][&hits=][&format=xlsx|ods]:
/// the KB Datatheek workbook (requirement 2.26, `lrs_app::datatheek`) of a
/// month, as Excel (xlsx, the default) or OpenDocument (ods, the same cells),
/// default the last complete month: its closed version if it is closed
/// (the same bytes every time), unless `version=live`; the KB's has every
/// library and app, a library's or an app's only its own row. The headers
/// say which version it is and how many statements arrived after closing
/// (`Figures-Version`, `Figures-Late-Statements`): the file cannot.
async fn datatheek(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["month", "version", "hits", "format"])?;
    let access = insight::access(&state.store, &caller, "figures.read")?;
    let month = month_param(&params, "month")?.unwrap_or_else(|| Month::current().previous());
    let version = version_param(&params)?;
    let hits = hits_param(&params)?;
    let format = params
        .get("format")
        .map(|text| {
            text.parse::<SheetFormat>()
                .map_err(|e| ApiError::bad_request("?format", "figures.format", e))
        })
        .transpose()?
        .unwrap_or_default();
    let name = datatheek::file_name(&access, month, format);
    let (bytes, closing) = blocking(&state, move |store| {
        let data = datatheek::gather(store, &access, month, version, hits)?;
        Ok::<_, lrs_app::AppError>((datatheek::workbook(&data, format)?, data.closing().cloned()))
    })
    .await?;
    let mut response = download(bytes, format.content_type(), &name);
    let (served, late) = match &closing {
        Some(c) if c.served == Served::Closed => {
            (format!("closed {}", c.version), Some(c.late_statements))
        }
        Some(c) => ("live".to_owned(), Some(c.late_statements)),
        None => ("live".to_owned(), None),
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&served) {
        headers.insert("figures-version", value);
    }
    if let Some(late) = late {
        headers.insert("figures-late-statements", HeaderValue::from(late));
    }
    Ok(response)
}

/// GET /api/figures/closings?month=YYYY-MM[&library= or &app=]: every
/// closing of a month, oldest first, with the statements that arrived
/// after each and what the live figures differ from it (for the reader's
/// scope).
async fn list_closings(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["month", "library", "app"])?;
    let access = insight::access(&state.store, &caller, "figures.read")?;
    let scope = figure_scope(&params, &access)?;
    let month = month_param(&params, "month")?
        .ok_or_else(|| ApiError::bad_request("?month", "parameter.required", "name the month"))?;
    let closings = blocking(&state, move |store| closing::closings(store, month, &scope)).await?;
    Ok(Json(serde_json::json!({ "month": month, "closings": closings })).into_response())
}

/// What `POST /api/figures/closings` takes.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    month: String,
    #[serde(default)]
    note: String,
}

/// POST /api/figures/closings `{"month": "2026-10", "note": "..."}`: the
/// KB closes a month's figures (permission `figures.close`): 201 with the
/// new version, or 200 when the figures equal the latest closed version.
async fn close(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    body: Bytes,
) -> Result<Response, ApiError> {
    let access = insight::access(&state.store, &caller, "figures.close")?;
    if access != FigureAccess::Kb {
        return Err(ApiError::Forbidden(
            "figures.close (closing a month is the KB's)".into(),
        ));
    }
    let request: CloseRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "$",
            "json.body",
            format!("expected {{\"month\": \"YYYY-MM\", \"note\": text}}: {e}"),
        )
    })?;
    let month = request
        .month
        .parse::<Month>()
        .map_err(|e| ApiError::bad_request("$.month", "month.format", e))?;
    let outcome = closing::close(
        &state.store,
        month,
        lrs_core::clock::now_micros(),
        &caller.key,
        &request.note,
    )
    .await?;
    let (status, outcome, version) = match outcome {
        Closed::Closed { version, .. } => (StatusCode::CREATED, "closed", version),
        Closed::Unchanged { version, .. } => (StatusCode::OK, "unchanged", version),
    };
    Ok((
        status,
        Json(serde_json::json!({ "month": month, "version": version, "outcome": outcome })),
    )
        .into_response())
}

async fn learner(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["agent", "learner", "course"])?;
    let reach = insight::progress_reach(&state.store, &caller)?;
    let token = match (params.get("learner"), params.has("agent")) {
        (Some(id), false) => Some(insight::parse_learner(id, "?learner")?),
        (None, true) => {
            let (_, ifi) = params
                .agent("agent", xapi::XapiVersion::V1_0_3)?
                .expect("present");
            state.store.vault().token_of(&ifi)
        }
        _ => {
            return Err(ApiError::bad_request(
                "?agent",
                "progress.learner",
                "name the learner with agent (an xAPI Agent) or learner (an id), one of them",
            ))
        }
    };
    let course = params.get("course").map(str::to_owned);
    // Someone the store has never seen, or outside the reader's reach:
    // the same empty answer, so the reader learns nothing about others.
    let progress = match token {
        Some(token) => {
            blocking(&state, move |store| {
                insight::learner_progress(store, &reach, &token, course.as_deref())
            })
            .await?
        }
        None => insight::LearnerProgress {
            learner: String::new(),
            name: None,
            last_activity: None,
            courses: vec![],
        },
    };
    if progress.courses.is_empty() {
        return Err(ApiError::NotFound("learner with progress you may read"));
    }
    Ok(Json(progress).into_response())
}

/// A learner's own progress: the principal is a learner signed in with an
/// OpenID Connect provider (`oidc:<issuer>#<subject>`), who is the xAPI
/// agent `{"account": {"homePage": <issuer>, "name": <subject>}}`.
async fn me(
    State(state): State<ApiState>,
    Permitted(caller, _): Permitted<ProgressReadOwn>,
) -> Result<Response, ApiError> {
    let Some((issuer, subject)) = caller
        .key
        .strip_prefix("oidc:")
        .and_then(|rest| rest.split_once('#'))
    else {
        return Err(ApiError::Denied(
            "only a learner signed in with an OpenID Connect provider has progress of their own"
                .into(),
        ));
    };
    let ifi = xapi::agent::Ifi {
        kind: xapi::agent::IfiKind::Account,
        value: format!("{issuer}\0{subject}"),
    };
    let progress = match state.store.vault().token_of(&ifi) {
        Some(token) => {
            blocking(&state, move |store| {
                insight::learner_progress(store, &Reach::All, &token, None)
            })
            .await?
        }
        None => insight::LearnerProgress {
            learner: String::new(),
            name: None,
            last_activity: None,
            courses: vec![],
        },
    };
    Ok(Json(progress).into_response())
}

async fn learners(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(
        query.as_deref(),
        &[
            "library", "course", "status", "sort", "order", "page", "per_page",
        ],
    )?;
    let reach = insight::progress_reach(&state.store, &caller)?;
    let isil = match (&reach, params.get("library")) {
        (Reach::Library(own), None) => own.clone(),
        (Reach::Library(own), Some(asked)) if asked == own => own.clone(),
        (Reach::All, Some(asked)) => asked.to_owned(),
        (Reach::All, None) => {
            return Err(ApiError::bad_request(
                "?library",
                "parameter.required",
                "name the library (ISIL)",
            ))
        }
        _ => {
            return Err(ApiError::Forbidden(
                "the learners of another library (?library)".into(),
            ))
        }
    };
    let number = |key: &str, default: usize| -> Result<usize, ApiError> {
        match params.get(key) {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        format!("?{key}"),
                        "parameter.number",
                        format!("'{text}' is not a whole number from 1"),
                    )
                }),
        }
    };
    let filter = LearnersFilter {
        course: params.get("course").map(str::to_owned),
        status: params
            .get("status")
            .map(|s| s.parse())
            .transpose()
            .map_err(|e: String| ApiError::bad_request("?status", "parameter.status", e))?,
        sort: params
            .get("sort")
            .map(|s| s.parse())
            .transpose()
            .map_err(|e: String| ApiError::bad_request("?sort", "parameter.sort", e))?
            .unwrap_or_default(),
        descending: match params.get("order") {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "?order",
                    "parameter.order",
                    format!("'{other}': order is asc or desc"),
                ))
            }
        },
        page: number("page", 1)?,
        per_page: number("per_page", 50)?.min(insight::MAX_PER_PAGE),
    };
    let page = blocking(&state, move |store| {
        insight::library_learners(store, &isil, &filter)
    })
    .await?;
    Ok(Json(page).into_response())
}

async fn assign(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: insight::AssignmentRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "$",
            "json.body",
            format!(
                "expected {{\"learners\": [ids], \"course\": IRI, \"modules\": [IRIs], \"ready\": true|false}}: {e}"
            ),
        )
    })?;
    insight::assign(&state.store, &caller, request).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_model(
    State(state): State<ApiState>,
    Admin(caller): Admin,
) -> Result<Response, ApiError> {
    if !caller.may("course_model.read") && !caller.may("course_model.write") {
        return Err(ApiError::Forbidden("permission course_model.read".into()));
    }
    Ok(Json(course_model::in_effect(&state.store, &caller.tenant)?).into_response())
}

async fn put_model(
    State(state): State<ApiState>,
    Permitted(caller, _): Permitted<CourseModelWrite>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let doc = parse_model(&body)?;
    set_model(&state.store, &caller.tenant, &doc, &caller.key).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
