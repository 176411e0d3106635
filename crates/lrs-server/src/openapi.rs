//! The OpenAPI 3 document of every JSON route, made from the route tables
//! the router is built from (`request::routes`, `server::Tables`), and
//! served, without a credential, at `GET /api/v1/openapi.json` (the REST-API
//! Design Rules' `/core/publish-openapi`). Part of the composition root:
//! it sees every room's table; no room imports it.
//!
//! Each operation's description is its table entry's [`Operation`]; what
//! the document adds by itself: path parameters from the path's `{name}`s,
//! the `X-Experience-API-Version` header below `/xapi`, the security
//! schemes, and the error answers of each part of the API: problem details
//! (`error::problem_details`) below `/api/v1` and `/admin/v1`, the
//! project's `{"error": {...}}` elsewhere, RFC 6749's shape at the token
//! endpoint.

use crate::error::PROBLEM_JSON;
use crate::request::routes::{Operation, Route, RouteTable};
use axum::body::Bytes;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::{Arc, OnceLock};

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

/// The document, once the router has every table.
pub type Published = Arc<OnceLock<Bytes>>;

/// `GET /api/v1/openapi.json`, answering `document` once it is published.
pub fn routes<S>(document: Published) -> RouteTable<S>
where
    S: Clone + Send + Sync + 'static,
{
    RouteTable::new()
        .get(
            PATH,
            move || {
                let document = document.clone();
                async move { serve(&document) }
            },
            Operation::new("meta", "This OpenAPI document")
                .public()
                .answers(200, "The OpenAPI 3 document of every JSON route"),
        )
        .map_router(|router| {
            router.route_layer(axum::middleware::from_fn(
                |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    let mut response = next.run(request).await;
                    response.headers_mut().insert(
                        crate::api::API_VERSION_HEADER.clone(),
                        axum::http::HeaderValue::from_static(crate::api::API_VERSION),
                    );
                    response
                },
            ))
        })
}

fn serve(document: &Published) -> Response {
    match document.get() {
        Some(bytes) => {
            ([(header::CONTENT_TYPE, "application/json")], bytes.clone()).into_response()
        }
        None => crate::error::ApiError::Unavailable.into_response(),
    }
}

/// Which error answers a path has.
enum Area {
    /// `/api/v1`, `/admin/v1`: problem details.
    Versioned,
    /// The token endpoint: RFC 6749 5.2 errors.
    Token,
    /// Everything else: `{"error": {...}}`.
    Plain,
}

fn area(path: &str) -> Area {
    if path.starts_with("/api/v1/") || path.starts_with("/admin/v1/") {
        Area::Versioned
    } else if path == "/oauth/token" {
        Area::Token
    } else {
        Area::Plain
    }
}

/// The whole document for these routes.
pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    let mut tags: Vec<&str> = Vec::new();
    for route in routes {
        let item = paths.entry(route.path.clone()).or_insert_with(|| json!({}));
        let method = route.method.as_str().to_ascii_lowercase();
        assert!(
            item.get(&method).is_none(),
            "{} {} is in the route tables twice",
            route.method,
            route.path
        );
        item[method] = operation(route);
        if !tags.contains(&route.operation.tag) {
            tags.push(route.operation.tag);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Learning Record Store",
            "version": crate::api::API_VERSION,
            "description": "The xAPI resources (below /xapi, shaped by xAPI 1.0.3), the administration API (/admin/v1), the progress, figures and analytics API (/api/v1), OAuth and the operations endpoints. The paths of /api and /admin without /v1 are deprecated (headers Deprecation, Sunset, Link); docs/api-design-rules.md says which REST-API Design Rules are met and how.",
            "contact": {"name": "The operator of this LRS (see /.well-known/security.txt for security reports)"},
            "license": {"name": "Proprietary"}
        },
        "servers": [{"url": "/"}],
        "tags": tags.iter().map(|tag| json!({"name": tag})).collect::<Vec<_>>(),
        "security": [{"basic": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic", "description": "A credential's key and secret"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "An access token of POST /oauth/token or of a configured OpenID provider"}
            },
            "headers": {
                "API-Version": {"description": "The full version of the API", "schema": {"type": "string", "example": crate::api::API_VERSION}}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}}
                },
                "ErrorDetail": {
                    "type": "object",
                    "required": ["status", "code", "message"],
                    "properties": {
                        "status": {"type": "integer"},
                        "code": {"type": "string", "description": "What kind of error: invalid, unauthorized, forbidden, not_found, conflict, ..."},
                        "message": {"type": "string"},
                        "path": {"type": "string", "description": "Where: a JSON path, ?parameter or header"},
                        "rule": {"type": "string", "description": "The rule that failed"}
                    }
                },
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details; `error` is the project's error object",
                    "required": ["type", "title", "status", "error"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string"},
                        "error": {"$ref": "#/components/schemas/ErrorDetail"}
                    }
                },
                "OAuthError": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "error_description": {"type": "string"}
                    }
                }
            }
        }
    })
}

fn operation(route: &Route) -> Value {
    let op: &Operation = &route.operation;
    let mut parameters: Vec<Value> = path_parameters(&route.path)
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(op.query.iter().map(|(name, description, required)| {
        json!({"name": name, "in": "query", "required": required, "description": description, "schema": {"type": "string"}})
    }));
    if route.path.starts_with("/xapi/") && route.path != "/xapi/about" {
        parameters.push(json!({
            "name": "X-Experience-API-Version", "in": "header", "required": true,
            "description": "1.0.3 (or 1.0.x, 2.0.0: docs/xapi-versions.md)",
            "schema": {"type": "string"}
        }));
    }
    let mut responses = Map::new();
    for (status, media, description) in &op.answers {
        let entry = responses
            .entry(status.to_string())
            .or_insert_with(|| json!({"description": description}));
        if !media.is_empty() {
            let schema = if media.ends_with("json") {
                json!({})
            } else {
                json!({"type": "string", "format": "binary"})
            };
            entry["content"][*media] = json!({"schema": schema});
        }
        if route.path.starts_with("/api/") || route.path.starts_with("/admin/") {
            entry["headers"]["API-Version"] = json!({"$ref": "#/components/headers/API-Version"});
        }
    }
    let default = match area(&route.path) {
        Area::Versioned => {
            json!({"description": "An error: problem details", "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}})
        }
        Area::Token => {
            json!({"description": "An error: RFC 6749 5.2 (429 and 5xx: the project's error body)", "content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/OAuthError"}, {"$ref": "#/components/schemas/Error"}]}}}})
        }
        Area::Plain => {
            json!({"description": "An error: what is wrong and where", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
        }
    };
    responses.insert("default".into(), default);
    let mut value = json!({
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": operation_id(&route.method, &route.path),
        "responses": responses,
    });
    if let Some(description) = op.description {
        value["description"] = json!(description);
    }
    if !parameters.is_empty() {
        value["parameters"] = json!(parameters);
    }
    if let Some((media, description)) = op.body {
        value["requestBody"] = json!({
            "required": true,
            "description": description,
            "content": {media: {"schema": {}}}
        });
    }
    if op.public {
        value["security"] = json!([]);
    }
    if op.deprecated {
        value["deprecated"] = json!(true);
    }
    value
}

/// `get_api_v1_figures_monthly` for `GET /api/v1/figures/monthly`.
fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            segment
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}
