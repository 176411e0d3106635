//! `POST /api/sql` (permission `analytics.sql`): SQL over the Parquet files
//! (docs/analytics.md). Each caller's session holds only its tenant's
//! share, built from that share's files: the KB everything, a library the
//! files of its ISIL's rows, an app its own partitions. An error says the
//! rule that failed and where; the engine's whole message goes to the
//! server log only.

use crate::api::state::ApiState;
use crate::error::ApiError;
use crate::request::params::Params;
use crate::request::routes::{Operation, RouteTable};
use crate::security::extract::{Admin, AuthState};
use axum::body::Bytes;
use axum::extract::{FromRef, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lrs_analytics::{AnalyticsError, Format, Reach};
use lrs_app::insight::{self, FigureAccess};

/// `POST /api/v1/sql`.
pub fn routes<S>(table: RouteTable<S>) -> RouteTable<S>
where
    ApiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    table.post(
        "/api/v1/sql",
        sql,
        Operation::new(
            "analytics",
            "SQL over the caller's share of the analytics files (permission analytics.sql)",
        )
        .describe(
            "The answer's format from `format` (body or query), else the Accept header, else JSON.",
        )
        .query("format", "json (the default), csv, arrow or parquet")
        .json_body("`{\"sql\": \"...\", \"format\"?}`; or the SQL as text/plain")
        .answers(200, "The rows (JSON; CSV, Arrow IPC or Parquet as asked)"),
    )
}

/// The query: a JSON body `{"sql": "...", "format": "csv"}` or the SQL as
/// `text/plain`; the format from `format` (body or `?format=`), else the
/// `Accept` header, else JSON.
async fn sql(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["format"])?;
    let reach = match insight::access(&state.store, &caller, "analytics.sql")? {
        FigureAccess::Kb => Reach::All,
        FigureAccess::Library(isil) => Reach::Library(isil),
        FigureAccess::App(_) => Reach::Tenant(caller.tenant.clone()),
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (text, body_format) = if is_json {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            sql: String,
            format: Option<String>,
        }
        let parsed: Body = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("$", "sql.body", e.to_string()))?;
        (parsed.sql, parsed.format)
    } else {
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::bad_request("$", "sql.body", "the query is not UTF-8"))?;
        (text, None)
    };
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "$.sql",
            "sql.empty",
            "no query given",
        ));
    }
    let format = match body_format.as_deref().or(params.get("format")) {
        Some(name) => Format::from_name(name).ok_or_else(|| {
            ApiError::bad_request(
                "?format",
                "sql.format",
                format!("'{name}': the format is json, csv, arrow or parquet"),
            )
        })?,
        None => match headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
            Some(accept) => Format::from_accept(accept).ok_or_else(|| {
                ApiError::bad_request(
                    "Accept",
                    "sql.format",
                    "answers are application/json, text/csv, application/vnd.apache.arrow.stream or application/vnd.apache.parquet",
                )
            })?,
            None => Format::Json,
        },
    };
    let settings = state
        .analytics
        .clone()
        .ok_or_else(|| ApiError::internal("the analytics files could not be opened at start"))?;
    let answer = async {
        let session =
            lrs_analytics::sql::session(&settings.target, &reach, settings.limits).await?;
        let (schema, batches) = lrs_analytics::sql::query(&session, &text, settings.limits).await?;
        lrs_analytics::sql::encode(&schema, &batches, format)
    }
    .await;
    match answer {
        Ok(bytes) => Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            )],
            bytes,
        )
            .into_response()),
        Err(AnalyticsError::Sql(error)) => {
            // The caller sees the rule and where; the engine's text (which
            // may quote values) only the server log.
            tracing::warn!(rule = error.rule, detail = %error.detail, "sql query refused or failed");
            let path = if error.rule == "sql.format" {
                "?format"
            } else {
                "$.sql"
            };
            Err(ApiError::bad_request(path, error.rule, error.message))
        }
        Err(error @ AnalyticsError::Timeout(_)) => Ok(limit_exceeded(
            StatusCode::SERVICE_UNAVAILABLE,
            "query_timeout",
            error,
        )),
        Err(error @ AnalyticsError::Memory { .. }) => Ok(limit_exceeded(
            StatusCode::UNPROCESSABLE_ENTITY,
            "query_memory",
            error,
        )),
        Err(other) => Err(ApiError::internal(other)),
    }
}

/// A query over its time or memory limit: the status and a JSON body that
/// says which.
fn limit_exceeded(status: StatusCode, code: &str, error: AnalyticsError) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {
            "status": status.as_u16(), "code": code, "message": error.to_string()
        }})),
    )
        .into_response()
}
