//! The application layer: what the LRS does, without HTTP. The principal
//! every operation sees and its permissions, secrets, tenants and read
//! scopes, turning a validated statement into what the log stores,
//! administration of tenants, roles and credentials, progress and the
//! monthly figures and closing a month's figures, the Datatheek workbook,
//! staff accounts and their second factor.
//!
//! It never knows axum, tower, HTTP statuses or clap: operations take a
//! [`principal::Credential`] and plain values and answer with an
//! [`AppError`]; `lrs-server` maps that to HTTP, `lrs-cli` prints it.

pub mod admin;
pub mod closing;
pub mod datatheek;
pub mod error;
pub mod ingest;
pub mod insight;
pub mod lang;
pub mod principal;
pub mod privacy;
pub mod secrets;
pub mod sheets;
pub mod staff;
pub mod tenancy;
#[cfg(test)]
mod testing;
pub mod totp;

pub use error::{AppError, AppResult};
