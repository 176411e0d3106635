//! CPU-heavy request work (decoding, parsing, validating, verifying and
//! sealing a big body; opening a big stored statement or document) kept off
//! the async workers: small work runs where it is, big work on tokio's
//! blocking pool, at most one fewer at a time than the machine has cores, so
//! one core always stays for the workers that answer everyone else.
//! Knows nothing of xAPI: it runs closures.

use crate::error::ApiError;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Work for a body below this many bytes runs on the async worker: every
/// step is linear in the body, so it costs well under a millisecond there,
/// less than the hand-over to another thread.
pub const INLINE_BELOW: usize = 16 * 1024;

/// Runs request work by its weight (the bytes it reads); see the module.
#[derive(Clone, Debug)]
pub struct CpuBudget {
    permits: Arc<Semaphore>,
    threads: usize,
}

impl CpuBudget {
    /// At most `threads` big pieces of work at once (at least one).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        Self {
            permits: Arc::new(Semaphore::new(threads)),
            threads,
        }
    }

    /// One fewer than the cores this process may use, at least one.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cores.saturating_sub(1))
    }

    /// How many big pieces of work may run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work`, which reads about `weight` bytes: below [`INLINE_BELOW`]
    /// right here, else on the blocking pool once a permit is free (waiting
    /// requests queue in order; waiting holds no thread). A panic in `work`
    /// answers a 500 like a panic in a handler.
    pub async fn run<T, F>(&self, weight: usize, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        if weight < INLINE_BELOW {
            return work();
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Unavailable)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            work()
        })
        .await
        .map_err(|error| ApiError::internal(format!("request work failed: {error}")))?
    }
}

impl Default for CpuBudget {
    fn default() -> Self {
        Self::for_this_machine()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn big_work_leaves_the_workers_free_and_runs_one_permit_at_a_time() {
        let budget = CpuBudget::new(1);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let budget = budget.clone();
            let (running, most) = (running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                budget
                    .run(usize::MAX, move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        // Busy, as validation is: no await, no sleep.
                        let until = std::time::Instant::now() + Duration::from_millis(100);
                        while std::time::Instant::now() < until {
                            std::hint::spin_loop();
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            }));
        }
        // Meanwhile the async workers answer at once.
        for _ in 0..10 {
            let started = std::time::Instant::now();
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(started.elapsed() < Duration::from_millis(50));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(budget.run(10, || Ok(7)).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_panic_in_big_work_is_an_internal_error() {
        let budget = CpuBudget::new(1);
        let result: Result<(), ApiError> = budget.run(usize::MAX, || panic!("boom")).await;
        assert!(matches!(result, Err(ApiError::Internal(_))));
    }
}
