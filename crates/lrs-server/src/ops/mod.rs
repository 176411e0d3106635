//! Operations: the metric names and counters every room adds to, `/metrics`
//! and the health endpoints, the per-request observer (request id, access
//! log, metrics, journal), the per-minute operations journal, and the
//! background work of `lrs serve` at the lowest CPU priority: the
//! analytics follower and warming the read models after a start.
//!
//! Never imports a surface or `security/`, nor the composition root.

pub mod analytics;
pub mod background;
pub mod counters;
pub mod health;
pub mod journal;
pub mod monitor;
pub mod observe;
