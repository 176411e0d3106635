//! placeholder
use crate::web::Staff;
use axum::response::Response;
pub async fn show(staff: Staff) -> Response {
    staff.error(axum::http::StatusCode::NOT_FOUND, "x", "y")
}
pub async fn assign(staff: Staff) -> Response {
    staff.error(axum::http::StatusCode::NOT_FOUND, "x", "y")
}
