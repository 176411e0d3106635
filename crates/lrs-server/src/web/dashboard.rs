//! placeholder
use crate::web::Staff;
use axum::response::Response;
pub async fn show(staff: Staff) -> Response {
    staff.error(axum::http::StatusCode::NOT_FOUND, "x", "y")
}
pub async fn download(staff: Staff) -> Response {
    staff.error(axum::http::StatusCode::NOT_FOUND, "x", "y")
}
