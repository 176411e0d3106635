//! Request bodies and file answers: the body limit that answers a JSON 413
//! (by `Content-Length` up front, by counting otherwise), and the one shape
//! of a file download.

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Rejects bodies over the limit with a JSON 413, by Content-Length up front
/// and by counting otherwise.
pub async fn limit_body(max: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max) {
        // Answer at once, but keep reading (and dropping) what the client is
        // still sending, up to a bound: a server that closes mid-upload leaves
        // the client with a broken pipe instead of the 413 (RFC 9112 9.6).
        tokio::spawn(drain(request.into_body(), DRAIN_LIMIT));
        return ApiError::PayloadTooLarge(max).into_response();
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, max);
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::new(limited)))
        .await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(&response) {
        return ApiError::PayloadTooLarge(max).into_response();
    }
    response
}

/// Largest administrative request body, bytes.
pub const ADMIN_MAX_BODY: usize = 64 * 1024;

/// How much of an oversized body is read and dropped before the 413.
const DRAIN_LIMIT: usize = 256 * 1024 * 1024;

async fn drain(body: axum::body::Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut seen = 0usize;
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(30));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |d| d.len());
                    if seen > limit {
                        return;
                    }
                }
                _ => return,
            },
            _ = &mut deadline => return,
        }
    }
}

pub fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// A file as an HTTP download (`Content-Disposition: attachment`, never
/// cached): the Datatheek workbook, CSV and JSON downloads.
pub fn download(bytes: Vec<u8>, content_type: &'static str, file_name: &str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
