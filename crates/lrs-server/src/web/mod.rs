//! The web pages for KB and library staff: login (password and TOTP, or an
//! OpenID provider), sessions, the monthly figures dashboard and the
//! library's learners; and a learner's own progress page
//! (docs/learner-page.md); server-rendered HTML without scripts
//! (docs/dashboard.md). Every read goes through `lrs_app::insight`, like the
//! JSON API, so both answer the same.
//!
//! It never sees an API credential: a logged-in session stands for an
//! `lrs_app::principal::Credential` whose key is `staff:<token>` (a local
//! account) or `oidc-staff:<issuer>#<subject>`, with the permissions of its
//! roles. Never imports another surface (`resources/`, `api/`) or the
//! composition root.

pub mod assets;
pub mod charts;
pub mod dashboard;
pub mod html;
pub mod learners;
pub mod login;
pub mod oidc_client;
pub mod oidc_login;
pub mod privacy;
pub mod progress;
pub mod session;
pub mod state;
pub mod visitor;

pub use state::{WebConfig, WebState};

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum::Router;

/// Largest form a page accepts, bytes.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The pages: login, logout, the dashboard and the learners (the composition
/// root audits them).
pub fn pages<S>() -> Router<S>
where
    WebState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(|| async { html::see_other("/dashboard", None) }))
        .route("/login", get(login::show).post(login::password))
        .route("/login/code", get(login::show_code).post(login::code))
        .route("/logout", post(login::logout))
        .route("/login/oidc", get(oidc_login::start))
        .route("/login/oidc/callback", get(oidc_login::callback))
        .route("/login/oidc/finish", get(oidc_login::finish))
        .route("/dashboard", get(dashboard::show))
        .route("/dashboard/download", get(dashboard::download))
        .route("/learners", get(learners::show))
        .route("/learners/assign", post(learners::assign))
        .route("/privacy", get(privacy::show))
        .route("/privacy/download", get(privacy::download))
        .route(html::OWN_PROGRESS_PATH, get(progress::show))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// The style sheet and icon (not audited: no person, no login).
pub fn assets<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(assets::CSS_PATH, get(assets::css))
        .route(assets::ICON_PATH, get(assets::icon))
        .route(
            "/favicon.ico",
            get(|| async { html::see_other(assets::ICON_PATH, None) }),
        )
}
