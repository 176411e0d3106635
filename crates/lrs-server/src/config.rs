//! Server configuration, from the command line and environment.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Largest request body accepted, bytes (413 above).
    pub max_body_bytes: usize,
    /// Most statements one GET returns (`limit=0` or absent means this).
    pub max_statements_per_page: usize,
    /// `homePage` of the authority account the store writes into statements.
    pub authority_home_page: String,
    /// Networks besides loopback whose clients may read `/metrics`
    /// (`--metrics-allow`, `LRS_METRICS_ALLOW`); empty: loopback only.
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// `/health/ready` fails below this much free space on the data
    /// directory's filesystem, bytes: sled needs room to write and compact,
    /// and a full disk fails every write.
    pub ready_min_free_bytes: u64,
    /// Credential keys granted `audit.read.all` by configuration
    /// (`--audit-reader`, `LRS_AUDIT_READERS`): the bootstrap reader.
    pub audit_readers: Vec<String>,
}

impl ServeConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            max_body_bytes: 16 * 1024 * 1024,
            max_statements_per_page: 200,
            authority_home_page: format!("http://{listen}"),
            metrics_allow: Vec::new(),
            ready_min_free_bytes: 512 * 1024 * 1024,
            audit_readers: Vec::new(),
        }
    }
}
