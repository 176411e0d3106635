//! Staff login through an OpenID provider (placeholder until written).

use crate::app::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct StaffOidcConfig {
    pub display_name: String,
}

impl StaffOidcConfig {
    pub fn load(_path: &std::path::Path) -> anyhow::Result<Self> {
        anyhow::bail!("not yet")
    }
}

pub struct StaffOidc {
    config: StaffOidcConfig,
}

impl StaffOidc {
    pub fn new(config: StaffOidcConfig) -> Self {
        Self { config }
    }
    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }
}

pub async fn start(State(_state): State<AppState>) -> Response {
    StatusCode::NOT_FOUND.into_response()
}
pub async fn callback(State(_state): State<AppState>) -> Response {
    StatusCode::NOT_FOUND.into_response()
}
pub async fn finish(State(_state): State<AppState>) -> Response {
    StatusCode::NOT_FOUND.into_response()
}
