//! The extractors every authenticated route starts with. [`Caller`]: an xAPI
//! request's version (required, from `X-Experience-API-Version`) and the
//! authenticated principal. [`Admin`]: the principal of an `/api` or
//! `/admin` request (no version header). [`Permitted`]: an [`Admin`] that
//! holds one named permission, so a handler that needs it says so in its
//! signature instead of in its first line.
//!
//! They need only [`AuthState`] (the authenticator and the rate limits),
//! taken from whatever state the router holds through axum's `FromRef`.

use crate::error::ApiError;
use crate::request::client::client_ip;
use crate::request::version::request_version;
use crate::security::authn::Authenticator;
use crate::security::ratelimit::RateLimits;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use lrs_app::principal::Credential;
use std::marker::PhantomData;
use std::sync::Arc;
use xapi::XapiVersion;

/// What authenticating a request needs: the authenticator (Basic, bearer
/// tokens, lockouts) and the per-credential rate limit.
#[derive(Clone)]
pub struct AuthState {
    pub auth: Arc<Authenticator>,
    pub limits: Arc<RateLimits>,
}

/// An xAPI request: its version and who sent it.
pub struct Caller {
    pub credential: Credential,
    pub version: XapiVersion,
}

/// Filled by the extractors with the authenticated principal, for
/// middleware that runs around the handler (the audit trail, rate limits per
/// principal): put one into the request's extensions before the handler runs
/// and read it after.
#[derive(Clone, Default)]
pub struct PrincipalSlot(pub std::sync::Arc<std::sync::OnceLock<Credential>>);

/// Who sent the request, for every authenticated route (xAPI, `/admin`):
/// the credentials or token from the client's address (lockouts included),
/// then the per-credential rate limit; the principal goes into the
/// request's [`PrincipalSlot`] for the audit trail.
pub async fn authenticate_principal(
    parts: &Parts,
    state: &AuthState,
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

impl<S> FromRequestParts<S> for Caller
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let credential = authenticate_principal(parts, &AuthState::from_ref(state)).await?;
        let version = request_version(parts)?;
        Ok(Caller {
            credential,
            version,
        })
    }
}

/// The principal behind a request to `/api` or `/admin` (no xAPI version header).
pub struct Admin(pub Credential);

impl<S> FromRequestParts<S> for Admin
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate_principal(parts, &AuthState::from_ref(state))
            .await
            .map(Admin)
    }
}

/// A permission a handler requires before it runs (`lrs_app::admin::PERMISSIONS`).
pub trait Permission {
    const NAME: &'static str;
}

/// An authenticated principal holding the permission `P`; any other gets the
/// one 403 that names the permission.
pub struct Permitted<P>(pub Credential, pub PhantomData<P>);

impl<P: Permission> Permitted<P> {
    pub fn credential(&self) -> &Credential {
        &self.0
    }
}

impl<S, P> FromRequestParts<S> for Permitted<P>
where
    AuthState: FromRef<S>,
    S: Send + Sync,
    P: Permission,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Admin(credential) = Admin::from_request_parts(parts, state).await?;
        credential.require_permission(P::NAME)?;
        Ok(Permitted(credential, PhantomData))
    }
}

/// Declares permission marker types for [`Permitted`].
macro_rules! permissions {
    ($($marker:ident => $name:literal),* $(,)?) => {
        $(
            #[doc = concat!("The permission `", $name, "`.")]
            pub struct $marker;
            impl Permission for $marker {
                const NAME: &'static str = $name;
            }
        )*
    };
}

permissions! {
    AdminTenants => "admin.tenants",
    AdminRoles => "admin.roles",
    CourseModelWrite => "course_model.write",
    ProgressReadOwn => "progress.read.own",
    AnalyticsSql => "analytics.sql",
    PrivacyErase => "privacy.erase",
    PrivacyAccess => "privacy.access",
    PrivacyRetention => "privacy.retention",
    PrivacyReports => "privacy.reports",
}
