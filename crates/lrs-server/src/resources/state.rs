//! What the xAPI resources need: the store and their own settings.

use crate::request::cpu::CpuBudget;
use lrs_app::tenancy::OriginExtensions;
use lrs_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;

/// The xAPI resources' settings.
#[derive(Debug, Clone)]
pub struct XapiConfig {
    /// Largest request body accepted, bytes (413 above).
    pub max_body_bytes: usize,
    /// Most statements one GET returns (`limit=0` or absent means this).
    pub max_statements_per_page: usize,
    /// `homePage` of the authority account the store writes into statements.
    pub authority_home_page: String,
    /// The context extensions naming a statement's library and app.
    pub origin_extensions: OriginExtensions,
}

impl XapiConfig {
    /// The defaults for a server at `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_statements_per_page: 200,
            authority_home_page: format!("http://{listen}"),
            origin_extensions: OriginExtensions::default(),
        }
    }
}

/// The state every xAPI resource handler takes.
#[derive(Clone)]
pub struct XapiState {
    pub store: Arc<Store>,
    pub config: Arc<XapiConfig>,
    /// Where CPU-heavy work on a request runs (big bodies off the async
    /// workers, a bounded number at once).
    pub cpu: CpuBudget,
}
