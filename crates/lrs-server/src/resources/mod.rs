//! The xAPI resources under `/xapi` (a file per resource; their shape is the
//! xAPI standard's): statements with attachments and signatures, the
//! document resources, activities, agents and about, the alternate request
//! syntax, and the layers every xAPI answer passes through.
//!
//! Never imports another surface (`api/`, `web/`) or the composition root:
//! its handlers take [`XapiState`] and the caller from `security::extract`.

pub mod about;
pub mod activities;
pub mod agents;
pub mod alternate;
pub mod attachments;
pub mod documents;
pub mod middleware;
pub mod state;
pub mod statements;

pub use state::{XapiConfig, XapiState};

use crate::security::extract::AuthState;
use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;

/// The routes below `/xapi`, for a router whose state yields [`XapiState`]
/// and [`AuthState`].
pub fn routes<S>(state: &XapiState) -> Router<S>
where
    XapiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/statements",
            get(statements::get_statements)
                .put(statements::put_statement)
                .post(statements::post_statements)
                .layer(axum::middleware::from_fn_with_state(
                    state.store.clone(),
                    middleware::consistent_through,
                )),
        )
        .route("/activities", get(activities::get_activity))
        .route("/agents", get(agents::get_person))
        .route(
            "/activities/state",
            get(documents::get_state)
                .put(documents::put_state)
                .post(documents::post_state)
                .delete(documents::delete_state),
        )
        .route(
            "/activities/profile",
            get(documents::get_activity_profile)
                .put(documents::put_activity_profile)
                .post(documents::post_activity_profile)
                .delete(documents::delete_activity_profile),
        )
        .route(
            "/agents/profile",
            get(documents::get_agent_profile)
                .put(documents::put_agent_profile)
                .post(documents::post_agent_profile)
                .delete(documents::delete_agent_profile),
        )
        .route("/about", get(about::get_about))
}
