//! The bottom room: what every surface reads off a request or puts on a
//! response, and nothing above it (it imports only `error.rs`): query
//! parameters, the client's address, the request id, the xAPI version
//! header, body limits and file downloads.

pub mod body;
pub mod client;
pub mod http_date;
pub mod id;
pub mod params;
pub mod version;
