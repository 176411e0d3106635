//! The About resource: which xAPI versions this LRS speaks. No auth needed.

use axum::Json;
use serde_json::{json, Value};

pub async fn get_about() -> Json<Value> {
    Json(json!({
        "version": ["1.0.3", "2.0.0"],
        "extensions": {
            "https://w3id.org/xapi/lrs/implementation": {
                "name": "lrs (KB event-sourced LRS)",
                "version": env!("CARGO_PKG_VERSION")
            }
        }
    }))
}
