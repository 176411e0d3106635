//! Privacy (docs/privacy.md): erasure on request (GDPR art. 17), access on
//! request (art. 15), retention periods applied every day and on demand, the
//! anonymisation reports (6.6) and the backup window.
//!
//! Personal data in the log is removed the only way an append-only log
//! allows: the person's vault entry is destroyed (`PersonErasedV1` first,
//! then the slot), so everything sealed under their key is noise in every
//! copy; projections drop what they held about them, and the anonymous
//! figure counters stay. The same operations serve the admin API
//! (`lrs-server/src/api/privacy.rs`) and the command line
//! (`lrs-cli/src/privacy.rs`).

pub mod access;
pub mod erase;
pub mod kinds;
pub mod ops;
pub mod report;
pub mod retention;

use crate::error::{AppError, AppResult};
use lrs_store::Store;

/// Who acts when the server applies retention by itself.
pub const RETENTION_ACTOR: &str = "retention";

/// A person's identifier as the API and CLI take it: an xAPI agent with
/// exactly one inverse functional identifier.
pub fn ifi_of_agent(agent: &serde_json::Value) -> Result<xapi::Ifi, AppError> {
    xapi::agent::ifi_of(agent).ok_or_else(|| {
        AppError::bad_request(
            "$.agent",
            "privacy.agent",
            "the agent needs exactly one identifier (mbox, mbox_sha1sum, openid or account)",
        )
    })
}

/// Finishes erasures a crash interrupted: every person the log says is
/// erased but the vault still holds is destroyed now (and registered for
/// restores). Run whenever a store is opened for serving or a privacy command.
pub fn reconcile(store: &Store) -> AppResult<usize> {
    let mut destroyed = Vec::new();
    for (token, _) in store.erased_people()? {
        if store.vault().key(&token).is_some() {
            store.vault().destroy(&token)?;
            destroyed.push(token);
        }
    }
    if !destroyed.is_empty() {
        lrs_store::backup::register_erased(&privacy_dir(store), &destroyed)?;
        tracing::warn!(
            people = destroyed.len(),
            "finished erasures that a stop interrupted: their vault entries are destroyed now"
        );
    }
    Ok(destroyed.len())
}

/// The data directory's `privacy/` (backup keys, erasure register).
pub fn privacy_dir(store: &Store) -> std::path::PathBuf {
    store.data_dir().join(lrs_store::backup::PRIVACY_DIR)
}
