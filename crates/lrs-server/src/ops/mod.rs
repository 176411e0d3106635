//! Operations: the metric names and counters every room adds to, `/metrics`
//! and the health endpoints, the per-request observer (request id, access
//! log, metrics, journal), the per-minute operations journal, and the
//! analytics follower that `lrs serve` runs in the background.
//!
//! Never imports a surface or `security/`, nor the composition root.

pub mod analytics;
pub mod counters;
pub mod health;
pub mod journal;
pub mod monitor;
pub mod observe;
