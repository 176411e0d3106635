//! Statement requests with attachments (`multipart/mixed`, Communication
//! 1.5.2) and the multipart response for `attachments=true`. The boundary is
//! read from the Content-Type here and handed to multer, which would refuse
//! `multipart/mixed` if it parsed the header itself. Reading a request is
//! plain CPU work on bytes already received (linear in the body: one pass
//! of multer, one SHA-256 per part, one look-up per attachment), so the
//! handler runs it under its CPU budget.

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use lrs_core::envelope::AttachmentContent;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use xapi::signature::SIGNATURE_USAGE_TYPE;

const HASH_HEADER: &str = "x-experience-api-hash";

/// A statement request: the statements JSON and the attachment parts.
pub struct StatementRequest {
    pub body: Value,
    pub parts: Vec<AttachmentContent>,
}

fn parse_json(bytes: &[u8], path: &str) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        // serde_json stops at 128 levels; that is past the depth limit.
        if e.to_string().starts_with("recursion limit exceeded") {
            ApiError::bad_request(
                path,
                "limit.depth",
                format!(
                    "a statement nests objects and arrays at most {} levels deep: {e}",
                    xapi::validate::limits::MAX_DEPTH
                ),
            )
        } else {
            ApiError::bad_request(path, "json.syntax", format!("body is not valid json: {e}"))
        }
    })
}

/// Reads a PUT/POST statements body in either of the two allowed forms
/// (Communication 1.5.2: a statement request MUST be `application/json` or
/// `multipart/mixed`, so a request without Content-Type is a 400 too).
pub fn read(headers: &HeaderMap, body: Bytes) -> Result<StatementRequest, ApiError> {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::bad_request(
            "header Content-Type",
            "content-type",
            "statements are sent as application/json or multipart/mixed; this request has no Content-Type",
        ));
    };
    let content_type = content_type.to_str().unwrap_or("\u{fffd}");
    let mime: mime::Mime = content_type.parse().map_err(|_| {
        ApiError::bad_request(
            "header Content-Type",
            "content-type",
            format!("{content_type:?} is not a media type"),
        )
    })?;
    match (mime.type_().as_str(), mime.subtype().as_str()) {
        ("application", "json") => Ok(StatementRequest {
            body: parse_json(&body, "$")?,
            parts: Vec::new(),
        }),
        // multer reads from a stream; this one holds the whole body and is
        // ready at once, so the reading completes in one poll.
        ("multipart", "mixed") => read_multipart(&mime, body)
            .now_or_never()
            .unwrap_or_else(|| Err(ApiError::internal("multipart reading did not complete"))),
        _ => Err(ApiError::bad_request(
            "header Content-Type",
            "content-type",
            format!(
                "statements are sent as application/json or multipart/mixed, not {content_type:?}"
            ),
        )),
    }
}

async fn read_multipart(mime: &mime::Mime, body: Bytes) -> Result<StatementRequest, ApiError> {
    let boundary = mime
        .get_param("boundary")
        .map(|b| b.as_str().to_owned())
        .ok_or_else(|| {
            ApiError::bad_request(
                "header Content-Type",
                "multipart.boundary",
                "multipart/mixed needs a boundary parameter",
            )
        })?;
    let malformed = |e: multer::Error| {
        ApiError::bad_request(
            "$",
            "multipart.syntax",
            format!("multipart body is malformed: {e}"),
        )
    };
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let first = multipart
        .next_field()
        .await
        .map_err(malformed)?
        .ok_or_else(|| {
            ApiError::bad_request("$", "multipart.statements", "multipart body has no parts")
        })?;
    let first_type = first
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !first_type.trim().starts_with("application/json") {
        return Err(ApiError::bad_request(
            "part 1",
            "multipart.statements",
            "the first part must be the statements, with Content-Type application/json",
        ));
    }
    let statements = parse_json(&first.bytes().await.map_err(malformed)?, "$")?;
    let mut parts = Vec::new();
    let mut index = 1;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        index += 1;
        let path = format!("part {index}");
        let hash = field
            .headers()
            .get(HASH_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                ApiError::bad_request(
                    &path,
                    "attachments.hash-header",
                    "every attachment part needs X-Experience-API-Hash",
                )
            })?;
        if let Some(encoding) = field.headers().get("content-transfer-encoding") {
            if !encoding
                .to_str()
                .is_ok_and(|e| e.trim().eq_ignore_ascii_case("binary"))
            {
                return Err(ApiError::bad_request(
                    &path,
                    "attachments.transfer-encoding",
                    "attachment parts are sent with Content-Transfer-Encoding: binary",
                ));
            }
        }
        let content_type = field
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = field.bytes().await.map_err(malformed)?;
        if hex::encode(Sha256::digest(&bytes)) != hash {
            return Err(ApiError::bad_request(
                &path,
                "attachments.hash-mismatch",
                "the part's content does not hash (SHA-256) to its X-Experience-API-Hash",
            ));
        }
        parts.push(AttachmentContent {
            sha2: hash,
            content_type,
            bytes: bytes.to_vec(),
        });
    }
    Ok(StatementRequest {
        body: statements,
        parts,
    })
}

fn statements_of(body: &Value) -> Vec<(String, &Value)> {
    match body {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("$[{i}]"), s))
            .collect(),
        other => vec![("$".to_owned(), other)],
    }
}

/// Matches parts to attachments: every attachment without `fileUrl` needs a
/// part, every part must belong to an attachment, signatures must verify.
/// Returns, per statement, the contents that belong to it.
pub fn match_parts(
    body: &Value,
    parts: &[AttachmentContent],
    version: xapi::XapiVersion,
) -> Result<Vec<Vec<AttachmentContent>>, ApiError> {
    let by_hash: BTreeMap<&str, &AttachmentContent> =
        parts.iter().map(|p| (p.sha2.as_str(), p)).collect();
    let mut used = HashSet::new();
    let mut per_statement = Vec::new();
    let no_attachments = Vec::new();
    for (path, statement) in statements_of(body) {
        let mut contents = Vec::new();
        // One look-up per attachment: linear, however many there are.
        let mut taken: HashSet<&str> = HashSet::new();
        let mut verified: HashSet<(&str, &str)> = HashSet::new();
        let mut checker = None;
        let attachments = statement
            .get("attachments")
            .and_then(Value::as_array)
            .unwrap_or(&no_attachments);
        for (j, attachment) in attachments.iter().enumerate() {
            let at = format!("{path}.attachments[{j}]");
            let sha2 = attachment
                .get("sha2")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            let part = by_hash.get(sha2.as_str());
            if attachment.get("usageType").and_then(Value::as_str) == Some(SIGNATURE_USAGE_TYPE) {
                let part = part.ok_or_else(|| {
                    ApiError::bad_request(
                        &at,
                        "signature.missing",
                        "a signature attachment needs its JWS as a part",
                    )
                })?;
                let declared = attachment
                    .get("contentType")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                // Each distinct signature once per statement, against the
                // statement's comparison form made once.
                if verified.insert((part.sha2.as_str(), declared)) {
                    checker
                        .get_or_insert_with(|| xapi::signature::Checker::new(statement, version))
                        .check(declared, &part.bytes, &at)?;
                }
            }
            match part {
                Some(part) => {
                    used.insert(part.sha2.as_str());
                    if taken.insert(part.sha2.as_str()) {
                        contents.push((*part).clone());
                    }
                }
                None if attachment.get("fileUrl").is_some() => {}
                None => return Err(ApiError::bad_request(
                    &at,
                    "attachments.content-missing",
                    "an attachment without fileUrl needs a multipart/mixed part with the same sha2",
                )),
            }
        }
        per_statement.push(contents);
    }
    if let Some(extra) = parts.iter().find(|p| !used.contains(p.sha2.as_str())) {
        return Err(ApiError::bad_request(
            "$",
            "attachments.part-unclaimed",
            format!(
                "part with hash {} belongs to no attachment of the statements",
                extra.sha2
            ),
        ));
    }
    Ok(per_statement)
}

/// The `attachments=true` response: the JSON first, then each distinct
/// attachment once.
pub fn multipart_response(json: &Value, contents: Vec<AttachmentContent>) -> Response {
    let boundary = format!("lrs-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    let mut write = |bytes: &[u8]| body.extend_from_slice(bytes);
    write(format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n").as_bytes());
    write(json.to_string().as_bytes());
    let mut seen = HashSet::new();
    for content in contents {
        if !seen.insert(content.sha2.clone()) {
            continue;
        }
        write(
            format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {}\r\n\r\n",
                content.content_type, content.sha2
            )
            .as_bytes(),
        );
        write(&content.bytes);
    }
    write(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut response = Body::from(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
