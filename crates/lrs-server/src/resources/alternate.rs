//! The alternate request syntax (xAPI 1.0.3 Communication 1.3): a POST with
//! `?method=PUT|GET|DELETE|POST` whose form body carries the headers, the
//! query parameters and the `content`. It is rewritten into the request it
//! stands for before routing. xAPI 2.0.0 removed it, so a 2.0.0 request
//! that uses it is rejected.

use crate::error::ApiError;
use crate::request::body::{read_whole, BodyLimit};
use crate::request::cpu::CpuBudget;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Form fields that are headers in the alternate syntax.
const HEADER_FIELDS: &[&str] = &[
    "authorization",
    "x-experience-api-version",
    "content-type",
    "content-length",
    "if-match",
    "if-none-match",
];

pub async fn alternate_syntax(
    State(cpu): State<CpuBudget>,
    request: Request,
    next: Next,
) -> Response {
    let query = request.uri().query().unwrap_or("");
    let Some(method) = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "method")
        .map(|(_, v)| v.into_owned())
    else {
        return next.run(request).await;
    };
    match rewrite(request, &method, &cpu).await {
        Ok(rewritten) => next.run(rewritten).await,
        Err(error) => error.into_response(),
    }
}

async fn rewrite(request: Request, method: &str, cpu: &CpuBudget) -> Result<Request, ApiError> {
    let invalid = |rule: &str, message: &str| ApiError::bad_request("?method", rule, message);
    if request.method() != Method::POST {
        return Err(invalid(
            "alternate-syntax.post",
            "the alternate request syntax is sent as POST",
        ));
    }
    let query = request.uri().query().unwrap_or("");
    if form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k != "method") {
        return Err(invalid(
            "alternate-syntax.extra-parameters",
            "with ?method= every other parameter goes in the form body",
        ));
    }
    let method = Method::from_bytes(method.as_bytes())
        .ok()
        .filter(|m| {
            matches!(
                *m,
                Method::GET | Method::PUT | Method::POST | Method::DELETE | Method::HEAD
            )
        })
        .ok_or_else(|| {
            invalid(
                "alternate-syntax.method",
                "method must be GET, HEAD, PUT, POST or DELETE",
            )
        })?;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if parts
        .headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Err(ApiError::UnsupportedMediaType(xapi::ValidationError::new(
            "header Content-Encoding",
            "content-encoding.unsupported",
            "the alternate request syntax takes its form without a content coding",
        )));
    }
    let limit = parts
        .extensions
        .get::<BodyLimit>()
        .map_or(usize::MAX, |limit| limit.0);
    let bytes = read_whole(body, limit).await?;
    if !bytes.is_empty() && !declared.starts_with("application/x-www-form-urlencoded") {
        return Err(invalid(
            "alternate-syntax.form",
            "the alternate request syntax sends an application/x-www-form-urlencoded body",
        ));
    }
    let mut headers = parts.headers.clone();
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
    // Decoding a big form is CPU work: under the budget, like a body.
    let form: Vec<(String, String)> = cpu
        .run(bytes.len(), move || {
            Ok(form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect())
        })
        .await?;
    let mut content = Vec::new();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form {
        let lower = key.to_ascii_lowercase();
        if lower == "content" {
            content = value.into_bytes();
        } else if HEADER_FIELDS.contains(&lower.as_str()) {
            if lower == "content-length" {
                continue;
            }
            let name = HeaderName::from_bytes(lower.as_bytes()).expect("known header names");
            let value = HeaderValue::from_str(&value).map_err(|_| {
                ApiError::bad_request(
                    format!("form {key}"),
                    "header.value",
                    "not a valid header value",
                )
            })?;
            headers.insert(name, value);
        } else {
            query.append_pair(&key, &value);
        }
    }
    let version = headers
        .get("x-experience-api-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if version.trim().starts_with("2.") {
        return Err(invalid(
            "alternate-syntax.removed",
            "xAPI 2.0.0 has no alternate request syntax",
        ));
    }
    if !content.is_empty() && !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let query = query.finish();
    let path_and_query = if query.is_empty() {
        parts.uri.path().to_owned()
    } else {
        format!("{}?{query}", parts.uri.path())
    };
    let uri: Uri = path_and_query.parse().map_err(|_| {
        invalid(
            "alternate-syntax.form",
            "form parameters do not form a query",
        )
    })?;
    let mut rewritten = Request::new(Body::from(content));
    *rewritten.method_mut() = method;
    *rewritten.uri_mut() = uri;
    *rewritten.headers_mut() = headers;
    *rewritten.extensions_mut() = parts.extensions;
    Ok(rewritten)
}
