//! Background work of `lrs serve` that must never hold up a request: it
//! runs on threads of its own at the lowest CPU priority, so requests and
//! the log writer always come first. The analytics follower (`analytics.rs`)
//! is one; warming the read models after a start is the other
//! (docs/adr/0007).

use lrs_store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Lowers the calling thread to nice 19 (on Linux a thread's own priority;
/// the rest of the process keeps its own).
pub fn lowest_priority(what: &str) {
    let thread = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(thread), 19) {
        tracing::warn!(%error, "{what}: runs at normal priority");
    }
}

/// Reads the read models once in the background after a start
/// ([`Store::warm_read_models`]), so that the writer's lookups in the
/// first minutes come from memory, not the disk. Dropping the guard stops it.
pub fn warm(store: Arc<Store>) -> Stop {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let started = std::thread::Builder::new()
        .name("lrs-warm".into())
        .spawn(move || {
            lowest_priority("warming the read models");
            let began = std::time::Instant::now();
            match store.warm_read_models(&flag) {
                Ok(report) => tracing::info!(
                    trees = report.trees,
                    entries = report.entries,
                    megabytes = report.bytes / 1_000_000,
                    seconds = began.elapsed().as_secs_f64(),
                    complete = !flag.load(Ordering::Relaxed),
                    "read models warmed"
                ),
                Err(error) => tracing::warn!(%error, "warming the read models failed"),
            }
        });
    if let Err(error) = started {
        tracing::warn!(%error, "could not start warming the read models");
    }
    Stop(stop)
}

/// Sets its flag when dropped: the background work ends at its next step.
pub struct Stop(pub(crate) Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_lowers_its_own_priority_only() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let lowered = std::thread::spawn(|| {
            lowest_priority("test");
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, 19);
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }
}
