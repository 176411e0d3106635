//! The only crate that knows HTTP: the xAPI routes (a file per resource),
//! authentication, the JSON error bodies, configuration and the `lrs` binary.
//!
//! It never touches sled or the vault file directly: everything goes through
//! `lrs_store::Store`.

pub mod admin;
pub mod admin_cli;
pub mod alternate;
pub mod analytics;
pub mod app;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod control;
pub mod datatheek;
pub mod error;
pub mod health;
pub mod ingest;
pub mod insight;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod ops_journal;
pub mod params;
pub mod ratelimit;
pub mod routes;
pub mod secret_verifier;
pub mod security_headers;
pub mod security_txt;
pub mod service_report;
pub mod staff_cli;
pub mod telemetry;
pub mod tenancy;
pub mod tls;
pub mod web;
pub mod xapi_request;

pub use app::{router, run, run_tls, AppState};
pub use config::ServeConfig;
