//! The bottom room: what every surface reads off a request or puts on a
//! response, and nothing above it (it imports only `error.rs`): query
//! parameters, the client's address, the request id, the xAPI version
//! header, limits of the request head, body limits, content codings and
//! file downloads, the route table that lists what a router routes, and
//! the CPU budget that keeps heavy work on a body off
//! the async workers.

pub mod body;
pub mod client;
pub mod cpu;
pub mod head;
pub mod http_date;
pub mod id;
pub mod params;
pub mod routes;
pub mod version;
