//! The only crate that knows HTTP. Rooms, from the bottom up (each imports
//! only rooms below it; docs/ARCHITECTURE.md, `.ci/modules.py` checks it):
//!
//! - `error.rs`: the one map from errors to statuses and JSON bodies;
//! - `request/`: query parameters, client address, request id, the xAPI
//!   version header, body limits, file downloads;
//! - `ops/`: metric names and counters, `/metrics`, health, the request
//!   observer, the operations journal, the analytics follower;
//! - `security/`: authentication, extractors, rate limits, OAuth and
//!   OpenID, the audit middleware, TLS, security headers;
//! - the surfaces, which never import each other: `resources/` (xAPI),
//!   `api/` (`/api` and `/admin` JSON), `web/` (staff pages);
//! - `config.rs`, `server.rs`, `openapi.rs` and `tasks.rs`: the
//!   composition root (the OpenAPI document of every JSON route, and the
//!   work the server does by itself).
//!
//! What the LRS does is `lrs-app`'s; this crate turns HTTP into calls of it.
//! It never touches sled or the vault file directly, and never knows clap.

pub mod api;
pub mod config;
pub mod error;
pub mod openapi;
pub mod ops;
pub mod request;
pub mod resources;
pub mod security;
pub mod server;
pub mod tasks;
pub mod web;

pub use config::ServeConfig;
pub use server::{router, run, run_tls, AppState, ServeError};
