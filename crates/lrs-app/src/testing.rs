//! Test helpers shared by this crate's unit tests: a real store in a
//! temporary directory, and statements through the real ingest.

use lrs_store::{PreparedStatement, Store};

/// A fresh store in a temporary directory (dropped with the `TempDir`).
pub fn temp_store() -> (tempfile::TempDir, std::sync::Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(lrs_store::StoreConfig::new(
        dir.path(),
        lrs_store::MasterKey([7; 32]),
    ))
    .unwrap();
    (dir, store)
}

/// A statement through the real ingest, as app `app-a` sends it for
/// `library`.
pub fn prepare(store: &Store, statement: serde_json::Value, library: &str) -> PreparedStatement {
    crate::ingest::prepare(
        store,
        statement,
        &serde_json::json!({"mbox": "mailto:lrs@example.nl"}),
        xapi::XapiVersion::V1_0_3,
        "$",
        &[],
        lrs_core::events::OriginV1 {
            app: Some("app-a".into()),
            library: Some(library.into()),
        },
    )
    .unwrap()
}
