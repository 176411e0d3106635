//! Limits on the request head (URI length, number and size of header
//! fields), answered in the JSON error body. They sit below the HTTP
//! library's own limits (`security::connections`), so that a head too big
//! for us but not yet for the library gets a refusal that names the limit;
//! only heads past the library's limits get its bodiless answer
//! (docs/security.md, "What the HTTP library refuses").

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use xapi::ValidationError;

/// Longest request target (path and query), bytes: 414 `limit.uri-length`.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Most header fields in a request: 431 `limit.header-count`.
pub const MAX_HEADERS: usize = 100;
/// Largest header section (names and values), bytes: 431 `limit.header-size`.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Refuses a request whose head is over one of the limits above.
pub async fn limit_head(request: Request, next: Next) -> Response {
    match check(&request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

fn check(request: &Request) -> Result<(), ApiError> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(ApiError::Refused {
            status: StatusCode::URI_TOO_LONG,
            error: ValidationError::new(
                "uri",
                "limit.uri-length",
                format!("the request target is {target} bytes, at most {MAX_URI_BYTES} are read"),
            ),
        });
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::Refused {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            error: ValidationError::new(
                "headers",
                "limit.header-count",
                format!(
                    "the request has {} header fields, at most {MAX_HEADERS} are read",
                    headers.len()
                ),
            ),
        });
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(ApiError::Refused {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            error: ValidationError::new(
                "headers",
                "limit.header-size",
                format!(
                    "the request's header fields are {bytes} bytes, at most {MAX_HEADER_BYTES} are read"
                ),
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(uri: &str, headers: usize, value: usize) -> Request {
        let mut builder = Request::get(uri);
        for i in 0..headers {
            builder = builder.header(format!("x-h{i}"), "v".repeat(value));
        }
        builder.body(Body::empty()).unwrap()
    }

    fn refusal(request: &Request) -> (u16, String) {
        match check(request) {
            Ok(()) => (200, String::new()),
            Err(ApiError::Refused { status, error }) => (status.as_u16(), error.rule),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn long_targets_and_big_heads_are_refused_with_the_limit_named() {
        assert_eq!(refusal(&request("/xapi/about", 10, 10)).0, 200);
        let long = format!("/xapi/statements?verb={}", "x".repeat(MAX_URI_BYTES));
        assert_eq!(
            refusal(&request(&long, 0, 0)),
            (414, "limit.uri-length".into())
        );
        assert_eq!(
            refusal(&request("/xapi/about", MAX_HEADERS + 1, 1)),
            (431, "limit.header-count".into())
        );
        assert_eq!(
            refusal(&request("/xapi/about", 10, MAX_HEADER_BYTES / 9)),
            (431, "limit.header-size".into())
        );
    }
}
