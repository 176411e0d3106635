//! The JSON API for people and programs other than xAPI clients: `/admin`
//! (tenants, roles, credentials, the audit trail) and `/api` (progress,
//! figures, the course model, the Datatheek workbook, SQL over the
//! analytics files). Bodies are JSON up to `request::body::ADMIN_MAX_BODY`.
//!
//! Never imports another surface (`resources/`, `web/`) or the composition
//! root; the operations themselves are `lrs_app`'s.

pub mod admin;
pub mod analytics;
pub mod audit;
pub mod insight;
pub mod privacy;
pub mod state;

pub use state::ApiState;

use crate::security::extract::AuthState;
use axum::extract::FromRef;
use axum::Router;

/// Every `/api` and `/admin` route, for a router whose state yields
/// [`ApiState`] and [`AuthState`].
pub fn routes<S>() -> Router<S>
where
    ApiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    admin::routes()
        .merge(insight::routes())
        .merge(analytics::routes())
        .merge(audit::routes())
        .merge(privacy::routes())
}
