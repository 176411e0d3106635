//! The xAPI version a request speaks (`X-Experience-API-Version`).

use crate::error::ApiError;
use axum::http::request::Parts;
use xapi::XapiVersion;

pub const VERSION_HEADER: &str = "x-experience-api-version";

pub fn request_version(parts: &Parts) -> Result<XapiVersion, ApiError> {
    let value = parts.headers.get(VERSION_HEADER).ok_or_else(|| {
        ApiError::bad_request(
            "header X-Experience-API-Version",
            "version.required",
            "every xAPI request must send X-Experience-API-Version (1.0.3 or 2.0.0)",
        )
    })?;
    let text = value.to_str().map_err(|_| {
        ApiError::bad_request(
            "header X-Experience-API-Version",
            "version.unsupported",
            "version header is not text",
        )
    })?;
    Ok(XapiVersion::parse_header(text)?)
}
