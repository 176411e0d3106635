//! What the `/api` and `/admin` handlers need: the store, the audit trail
//! (administrative actions are recorded, the trail is read) and where the
//! analytics files are.

use crate::ops::analytics::AnalyticsConfig;
use crate::security::audit::Audit;
use lrs_store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub audit: Arc<Audit>,
    /// `None`: the analytics files could not be opened (`POST /api/sql` answers 503).
    pub analytics: Option<Arc<AnalyticsConfig>>,
}
