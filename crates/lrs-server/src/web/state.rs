//! What the pages need: the store, the audit trail, the login lockouts
//! (shared with the API's authenticator), the sessions, the TOTP replay
//! memory and the staff OpenID provider.

use crate::security::audit::Audit;
use crate::security::ratelimit::AuthGuard;
use crate::web::oidc_client::{StaffOidc, StaffOidcConfig};
use crate::web::session::{SessionLimits, Sessions};
use lrs_app::totp::ReplayGuard;
use lrs_store::Store;
use std::sync::Arc;

/// How the pages behave: session limits and the OpenID provider for staff.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    pub sessions: SessionLimits,
    pub oidc: Option<StaffOidcConfig>,
}

/// The state every page handler takes.
#[derive(Clone)]
pub struct WebState {
    pub store: Arc<Store>,
    pub audit: Arc<Audit>,
    /// The failed-login lockouts, the same as the API's (`security::ratelimit`).
    pub guard: Arc<AuthGuard>,
    pub sessions: Arc<Sessions>,
    pub replay: Arc<ReplayGuard>,
    pub oidc: Option<Arc<StaffOidc>>,
}

impl WebState {
    pub fn new(
        config: &WebConfig,
        store: Arc<Store>,
        audit: Arc<Audit>,
        guard: Arc<AuthGuard>,
    ) -> Self {
        Self {
            store,
            audit,
            guard,
            sessions: Arc::new(Sessions::new(config.sessions)),
            replay: Arc::default(),
            oidc: config.oidc.clone().map(|c| Arc::new(StaffOidc::new(c))),
        }
    }
}
