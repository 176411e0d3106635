//! The `lrs` command line: every clap argument, opening the data directory
//! and the master key, and the commands (serve, administration, staff
//! accounts, audit, analytics, backups, reports). The only crate that knows
//! clap; it calls application functions (`lrs_app`) and starts the server
//! (`lrs_server`), never an HTTP handler.

pub mod admin;
pub mod analytics;
pub mod args;
pub mod audit;
pub mod cli;
pub mod control;
pub mod data;
pub mod end_of_contract;
pub mod export;
pub mod figures;
pub mod keys;
pub mod privacy;
pub mod serve;
pub mod service_report;
pub mod staff;
pub mod store_ops;
pub mod telemetry;
