//! Liveness and readiness, for orchestrators and load balancers; no auth.
//! This file says what ready means; `monitor.rs` answers the endpoints.
//!
//! - `GET /health/live`: 200 `{"status":"ok"}` whenever the process answers
//!   HTTP at all. Restart the process only when this fails.
//! - `GET /health/ready`: 200 when the store can take writes, else 503 with
//!   the failing checks named. Stop sending traffic while it fails.
//!
//! Readiness checks:
//! - `writer`: the store is open and its log writer answers: an append of
//!   no statements goes through the writer's queue like any write and comes
//!   back without writing anything (no log entry, no flush). Fails when the
//!   store is closed, the writer thread is gone, or it does not answer
//!   within 5 s (stuck on a disk that no longer completes writes).
//! - `disk_space`: the data directory's filesystem has at least
//!   `--ready-min-free-mb` free (for the service user, `statvfs` `f_bavail`).

use lrs_store::Store;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What the readiness checks look at.
pub struct Probe {
    pub store: Arc<Store>,
    pub data_dir: PathBuf,
    /// Least free space on the data directory's filesystem, bytes.
    pub min_free_bytes: u64,
}

/// How long the writer may take to answer the readiness probe.
const WRITER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Readiness {
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn failing(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect()
    }
}

/// Runs every readiness check.
pub async fn check(probe: &Probe) -> Readiness {
    let writer = check_writer(probe).await;
    let disk = check_disk(probe);
    Readiness {
        checks: vec![writer, disk],
    }
}

async fn check_writer(probe: &Probe) -> Check {
    let probe = probe
        .store
        .append_statements(String::new(), String::new(), Vec::new());
    let (ok, detail) = match tokio::time::timeout(WRITER_TIMEOUT, probe).await {
        Ok(Ok(_)) => (
            true,
            "the store is open and its log writer answers".to_owned(),
        ),
        Ok(Err(lrs_store::AppendError::Store(lrs_store::StoreError::Closed))) => {
            (false, "the store is closed".to_owned())
        }
        Ok(Err(error)) => (false, format!("the log writer failed: {error}")),
        Err(_) => (
            false,
            format!(
                "the log writer did not answer within {} s",
                WRITER_TIMEOUT.as_secs()
            ),
        ),
    };
    Check {
        name: "writer",
        ok,
        detail,
    }
}

fn check_disk(probe: &Probe) -> Check {
    const MIB: u64 = 1024 * 1024;
    let needed = probe.min_free_bytes;
    let (ok, detail) = match rustix::fs::statvfs(&probe.data_dir) {
        Ok(stats) => {
            let free = stats.f_bavail.saturating_mul(stats.f_frsize);
            (
                free >= needed,
                format!(
                    "{} MiB free on the data directory's filesystem; needs at least {} MiB",
                    free / MIB,
                    needed / MIB
                ),
            )
        }
        Err(error) => (
            false,
            format!("cannot read the data directory's filesystem: {error}"),
        ),
    };
    Check {
        name: "disk_space",
        ok,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrs_store::vault::MasterKey;
    use lrs_store::StoreConfig;

    fn open(dir: &std::path::Path) -> Arc<Store> {
        Store::open(StoreConfig::new(dir, MasterKey([7; 32]))).unwrap()
    }

    fn monitor(store: Arc<Store>, min_free_bytes: u64) -> Probe {
        Probe {
            data_dir: store.data_dir().into(),
            store,
            min_free_bytes,
        }
    }

    #[tokio::test]
    async fn an_open_store_with_room_is_ready_and_writes_nothing_to_be_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let head = store.head();
        let readiness = check(&monitor(store.clone(), 1)).await;
        assert!(readiness.is_ready(), "{readiness:?}");
        assert_eq!(store.head(), head, "the probe must not append");
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn too_little_free_space_fails_the_disk_check_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let readiness = check(&monitor(store.clone(), u64::MAX)).await;
        assert_eq!(readiness.failing(), vec!["disk_space"]);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_store_fails_the_writer_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let monitor = monitor(store.clone(), 1);
        store.close().await.unwrap();
        let readiness = check(&monitor).await;
        assert_eq!(readiness.failing(), vec!["writer"]);
        assert_eq!(readiness.checks[0].detail, "the store is closed");
    }
}
