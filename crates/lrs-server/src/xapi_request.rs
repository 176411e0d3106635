//! The extractor every xAPI resource starts with: the request's xAPI version
//! (required, from `X-Experience-API-Version`) and the authenticated caller.

use crate::app::AppState;
use crate::auth::Credential;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use xapi::XapiVersion;

pub const VERSION_HEADER: &str = "x-experience-api-version";

pub struct Caller {
    pub credential: Credential,
    pub version: XapiVersion,
}

/// The client's address: as `ratelimit::limit_by_address` resolved it (the
/// TCP peer, or behind a trusted proxy the client it names), else the TCP
/// peer (`into_make_service_with_connect_info`).
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ClientAddr>()
        .map(|client| client.0)
        .or_else(|| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip())
        })
}

/// The client address of a request, put into its extensions by the
/// per-address rate limit (`ratelimit.rs`), which resolves trusted proxies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Filled by the [`Caller`] extractor with the authenticated principal, for
/// middleware that runs around the handler (the audit trail, rate limits per
/// principal): put one into the request's extensions before the handler runs
/// and read it after.
#[derive(Clone, Default)]
pub struct PrincipalSlot(pub std::sync::Arc<std::sync::OnceLock<Credential>>);

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

/// Who sent the request, for every authenticated route (xAPI, `/admin`):
/// the credentials or token from the client's address (lockouts included),
/// then the per-credential rate limit; the principal goes into the
/// request's [`PrincipalSlot`] for the audit trail.
pub async fn authenticate_principal(
    parts: &Parts,
    state: &AppState,
) -> Result<Credential, ApiError> {
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let client = client_ip(parts);
    let credential = state.auth.authenticate(authorization, client).await?;
    state.limits.check_credential(&credential.key, client)?;
    if let Some(slot) = parts.extensions.get::<PrincipalSlot>() {
        let _ = slot.0.set(credential.clone());
    }
    Ok(credential)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credential = authenticate_principal(parts, state).await?;
        let version = request_version(parts)?;
        Ok(Caller {
            credential,
            version,
        })
    }
}
