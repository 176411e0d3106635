//! The one place that maps errors to HTTP statuses and JSON bodies. Every
//! error body says what was wrong and where:
//! `{"error": {"status": 400, "code": "...", "message": "...", "path": "...", "rule": "..."}}`.
//!
//! Below `/api/v1` and `/admin/v1` the same body is also a problem details
//! object (RFC 9457, the REST-API Design Rules' error rule,
//! [`problem_details`]): `application/problem+json` with `type`, `title`,
//! `status`, `detail` and `instance`, and the `error` object kept as an
//! extension member, so a client that reads `error.code` reads it there too.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lrs_app::AppError;
use serde_json::json;
use xapi::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("authentication required: {0}")]
    Unauthorized(&'static str),
    #[error("the credential lacks the scope for this: needs {0}")]
    Forbidden(String),
    /// A bearer token that does not verify (RFC 6750 `invalid_token`): 401
    /// with a `Bearer` challenge naming the reason.
    #[error("invalid bearer token: {0}")]
    InvalidToken(&'static str),
    /// An authenticated principal that no rule lets in (e.g. an external
    /// token whose tenant claim maps to no tenant): 403 saying why.
    #[error("{0}")]
    Denied(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    /// The body is over the route's limit: 413 with rule `limit.body-size`.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A content type or content coding the route does not take: 415 with
    /// path and rule.
    #[error("{0}")]
    UnsupportedMediaType(ValidationError),
    /// A refusal whose status was decided below the application (a
    /// framework extractor, the request head's own limits), in the JSON
    /// error body with path and rule.
    #[error("{error}")]
    Refused {
        status: StatusCode,
        error: ValidationError,
    },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("internal error")]
    Internal(String),
    #[error("the store is shutting down")]
    Unavailable,
    /// The data directory's disk is full (ENOSPC): 507 Insufficient
    /// Storage (RFC 4918), saying that nothing was stored; the detail goes
    /// to the log.
    #[error("the server's disk is full: nothing of this request was stored; send it again once the operator has freed space")]
    StorageFull(String),
    /// Rate limited or locked out: 429 with `Retry-After`.
    #[error("too many requests ({reason}); retry after {retry_after_secs} s")]
    TooManyRequests {
        reason: &'static str,
        retry_after_secs: u64,
    },
}

impl ApiError {
    pub fn bad_request(
        path: impl Into<String>,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Invalid(ValidationError::new(path, rule, message))
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        ApiError::Internal(error.to_string())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            // The store's own limits (`limit.*`: depth, list items, agents,
            // extensions size, batch size) are "too large", not "malformed".
            ApiError::Invalid(e) if e.is_limit() => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            ApiError::Denied(_) => (StatusCode::FORBIDDEN, "denied"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Refused { status, .. } => (*status, code_of(*status)),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::StorageFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
        }
    }
}

/// The `code` of a refusal whose status was decided elsewhere.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "header_fields_too_large",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        _ => "invalid",
    }
}

/// The one map from the application's errors to HTTP: a domain error says
/// what went wrong, this says which status that is.
impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Invalid(e) => ApiError::Invalid(e),
            AppError::Forbidden(what) => ApiError::Forbidden(what),
            AppError::NotFound(what) => ApiError::NotFound(what),
            AppError::Conflict(why) => ApiError::Conflict(why),
            AppError::Unavailable => ApiError::Unavailable,
            AppError::StorageFull(detail) => ApiError::StorageFull(detail),
            AppError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

/// The store's errors mean here what they mean to the application
/// (`AppError`'s mapping): one place says which is which.
impl From<lrs_store::StoreError> for ApiError {
    fn from(error: lrs_store::StoreError) -> Self {
        AppError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = match &self {
            ApiError::Invalid(e)
            | ApiError::UnsupportedMediaType(e)
            | ApiError::Refused { error: e, .. } => json!({"error": {
                "status": status.as_u16(), "code": code, "message": e.message, "path": e.path, "rule": e.rule
            }}),
            ApiError::PayloadTooLarge(max) => json!({"error": {
                "status": status.as_u16(), "code": code,
                "message": format!("the request body is larger than {max} bytes (the limit of this route)"),
                "path": "body", "rule": "limit.body-size"
            }}),
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                json!({"error": {"status": 500, "code": code, "message": "internal error; see the server log"}})
            }
            ApiError::StorageFull(detail) => {
                tracing::error!(%detail, "a write refused: the disk is full");
                json!({"error": {"status": status.as_u16(), "code": code, "message": self.to_string()}})
            }
            other => {
                json!({"error": {"status": status.as_u16(), "code": code, "message": other.to_string()}})
            }
        };
        let error_object = body["error"].clone();
        let mut response = (status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorObject(error_object));
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(&1).to_owned()),
            );
        }
        if let ApiError::UnsupportedMediaType(e) = &self {
            if e.rule.starts_with("content-encoding") {
                // RFC 9110 15.5.16: say which codings would have been taken.
                response.headers_mut().insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("gzip, deflate, identity"),
                );
            }
        }
        if let ApiError::InvalidToken(reason) = &self {
            let challenge = format!(
                "Bearer realm=\"xAPI\", error=\"invalid_token\", error_description=\"{}\"",
                reason.replace(['"', '\\'], "'")
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        } else if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"xAPI\""),
            );
        }
        response
    }
}

/// The `error` object of an answer [`ApiError`] made, kept on the response
/// for [`problem_details`].
#[derive(Clone, Debug)]
struct ErrorObject(serde_json::Value);

/// The media type of a problem details body (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Middleware: an error answer of [`ApiError`] becomes a problem details
/// body (RFC 9457): `type` `about:blank` (the status says what kind of
/// problem it is; the project's own kind is `error.code`), `title` the
/// status's reason phrase, `status`, `detail` the message, `instance` the
/// request's path, and the `error` object as it always was. Other answers
/// pass unchanged.
pub async fn problem_details(request: Request, next: Next) -> Response {
    let instance = request.uri().path().to_owned();
    let response = next.run(request).await;
    let Some(ErrorObject(error)) = response.extensions().get::<ErrorObject>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let status = parts.status;
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": error["message"],
        "instance": instance,
        "error": error,
    });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    #[tokio::test]
    async fn an_error_becomes_problem_details_and_keeps_its_error_object() {
        let app = Router::new()
            .route(
                "/api/v1/x",
                get(|| async { ApiError::bad_request("?month", "month.format", "not a month") }),
            )
            .route("/api/v1/ok", get(|| async { axum::Json(json!({"a": 1})) }))
            .route_layer(axum::middleware::from_fn(problem_details));
        let response = app
            .clone()
            .oneshot(
                Request::get("/api/v1/x")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "about:blank", "title": "Bad Request", "status": 400,
                "detail": "not a month", "instance": "/api/v1/x",
                "error": {"status": 400, "code": "invalid", "message": "not a month",
                          "path": "?month", "rule": "month.format"}
            })
        );
        let ok = app
            .oneshot(
                Request::get("/api/v1/ok")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(ok.headers()[header::CONTENT_TYPE], "application/json");
    }

    /// A write that found the disk full answers 507 saying nothing was
    /// stored, whether the store's error came straight or through the
    /// application; any other store error stays a 500 without detail.
    #[tokio::test]
    async fn a_full_disk_is_507_and_says_nothing_was_stored() {
        let enospc = || lrs_store::StoreError::Io(std::io::Error::from_raw_os_error(28));
        for error in [
            ApiError::from(enospc()),
            ApiError::from(AppError::from(enospc())),
            ApiError::from(lrs_store::StoreError::StorageFull("from the writer".into())),
        ] {
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["error"]["code"], "insufficient_storage");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("disk is full") && message.contains("nothing"));
        }
        let eio = lrs_store::StoreError::Io(std::io::Error::from_raw_os_error(5));
        assert_eq!(
            ApiError::from(eio).into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
