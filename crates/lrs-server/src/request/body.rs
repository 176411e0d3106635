//! Request bodies and file answers: the body limit that answers a JSON 413
//! (by `Content-Length` up front, by counting otherwise), the [`RawBody`]
//! extractor that reads a body whole and answers every failure to read it
//! in JSON, `Content-Encoding` (gzip and deflate undone within the same
//! limit, anything else a 415), and the one shape of a file download.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::io::Read;

/// The body limit of a request, put into its extensions by [`limit_body`]
/// for the extractors below it (a decoded body is held to it too).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// Rejects bodies over the limit with a JSON 413, by Content-Length up front
/// and by counting otherwise. Any refusal below it that an extractor of the
/// framework answered in plain text (a body it could not read, say) is
/// turned into the JSON error body as well.
pub async fn limit_body(max: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max) {
        // Answer at once, but keep reading (and dropping) what the client is
        // still sending, up to a bound: a server that closes mid-upload leaves
        // the client with a broken pipe instead of the 413 (RFC 9112 9.6).
        tokio::spawn(drain(request.into_body(), DRAIN_LIMIT));
        return ApiError::PayloadTooLarge(max).into_response();
    }
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(BodyLimit(max));
    let limited = http_body_util::Limited::new(body, max);
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::new(limited)))
        .await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(&response) {
        return ApiError::PayloadTooLarge(max).into_response();
    }
    if response.status().is_client_error() && is_plain_text(&response) {
        return json_refusal(response).await;
    }
    response
}

/// A plain-text refusal of one of the framework's extractors (axum answers
/// a body it cannot read, a query or path it cannot parse, in text) as the
/// JSON error body, its text as the message.
async fn json_refusal(response: Response) -> Response {
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let rule = if text.starts_with("Failed to buffer the request body") {
        "body.read"
    } else {
        "request.rejected"
    };
    let message = text.trim().trim_end_matches('.').to_lowercase();
    ApiError::Refused {
        status,
        error: xapi::ValidationError::new("body", rule, message),
    }
    .into_response()
}

fn is_plain_text(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"))
}

/// A request body read whole, its `Content-Encoding` not yet undone
/// ([`RawBody::decode`] does that: CPU work, so the handler runs it where
/// its other work on the body runs). Every failure is a JSON refusal:
/// over the limit 413 `limit.body-size`, a body that cannot be read (a
/// broken chunked encoding, a connection closed early) 400 `body.read`, a
/// content coding other than gzip, deflate or identity 415.
#[derive(Debug)]
pub struct RawBody {
    pub bytes: Bytes,
    encoding: Encoding,
    limit: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |limit| limit.0);
        let encoding = encoding_of(request.headers())?;
        let bytes = read_whole(request.into_body(), limit).await?;
        Ok(RawBody {
            bytes,
            encoding,
            limit,
        })
    }
}

impl RawBody {
    /// What working on this body costs, for [`crate::request::cpu::CpuBudget`]:
    /// its length, or for an encoded body as much as the limit allows.
    pub fn weight(&self) -> usize {
        match self.encoding {
            Encoding::Identity => self.bytes.len(),
            Encoding::Gzip | Encoding::Deflate => self.limit.max(self.bytes.len()),
        }
    }

    /// The body with its content coding undone, at most the body limit
    /// long (413 `limit.body-size` past it; 400 `content-encoding.malformed`
    /// for bytes that are not what the coding says).
    pub fn decode(self) -> Result<Bytes, ApiError> {
        let limit = self.limit;
        let bytes = self.bytes;
        let decoded = match self.encoding {
            Encoding::Identity => return Ok(bytes),
            Encoding::Gzip => {
                read_bounded(flate2::read::MultiGzDecoder::new(&bytes[..]), limit, "gzip")?
            }
            // HTTP's deflate is the zlib format (RFC 9110 8.4.1.2); some
            // clients send raw deflate, which is tried when the zlib
            // reading fails.
            Encoding::Deflate => {
                match read_bounded(flate2::read::ZlibDecoder::new(&bytes[..]), limit, "deflate") {
                    Err(ApiError::Invalid(_)) => read_bounded(
                        flate2::read::DeflateDecoder::new(&bytes[..]),
                        limit,
                        "deflate",
                    )?,
                    other => other?,
                }
            }
        };
        Ok(Bytes::from(decoded))
    }
}

/// Reads a decoder to its end, refusing more than `limit` bytes of output
/// (a small compressed body can stand for a very large one).
fn read_bounded(decoder: impl Read, limit: usize, coding: &str) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    decoder
        .take(limit.saturating_add(1) as u64)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::bad_request(
                "body",
                "content-encoding.malformed",
                format!("the body is not valid {coding}: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    Ok(out)
}

/// The content coding of a request: identity, gzip (also `x-gzip`) or
/// deflate, one of them; anything else is a 415 naming what is accepted.
fn encoding_of(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let mut found = Encoding::Identity;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Err(unsupported_encoding(
                "the content coding is not readable text".into(),
            ));
        };
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let this = match coding.to_ascii_lowercase().as_str() {
                "identity" => continue,
                "gzip" | "x-gzip" => Encoding::Gzip,
                "deflate" => Encoding::Deflate,
                _ => {
                    return Err(unsupported_encoding(format!(
                        "content coding {coding:?} is not supported; send gzip, deflate or identity"
                    )))
                }
            };
            if found != Encoding::Identity {
                return Err(unsupported_encoding(
                    "at most one content coding (gzip or deflate) is supported".into(),
                ));
            }
            found = this;
        }
    }
    Ok(found)
}

fn unsupported_encoding(message: String) -> ApiError {
    ApiError::UnsupportedMediaType(xapi::ValidationError::new(
        "header Content-Encoding",
        "content-encoding.unsupported",
        message,
    ))
}

/// Reads a body whole; over `limit` (counted by [`limit_body`]'s
/// `Limited`) is a 413, any other failure a 400 `body.read`.
pub async fn read_whole(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|error| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
            while let Some(current) = source {
                if current.is::<http_body_util::LengthLimitError>() {
                    return ApiError::PayloadTooLarge(limit);
                }
                source = current.source();
            }
            ApiError::bad_request(
                "body",
                "body.read",
                format!(
                    "the request body could not be read: {}",
                    lowercase_chain(&error)
                ),
            )
        })
}

/// An error and its causes, as one lowercase line.
fn lowercase_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(current) = source {
        let text = current.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        source = current.source();
    }
    parts.join(": ").to_lowercase()
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
        .get(header::CONTENT_TYPE)
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
