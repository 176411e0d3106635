//! A router that keeps the list of its own routes: every route is added
//! with its method, its path and its description ([`Operation`]) through
//! [`RouteTable`], which both registers it with axum and writes it down.
//! The composition root builds the served router and the OpenAPI document
//! (`openapi.rs`) from the same tables, so a JSON route cannot be served
//! undocumented nor documented unserved; its tests compare the two anyway
//! and ask the served router for every documented operation.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;

/// One route as the OpenAPI document shows it: method, path (in axum's
/// `{param}` syntax, which is OpenAPI's too) and what it does.
#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    pub path: String,
    pub operation: Operation,
}

/// What a route does, for its OpenAPI operation: a tag, a summary, its
/// query parameters, its body, its answers. Path parameters come from the
/// path's `{name}`s; error answers from the part of the API the path is in.
#[derive(Clone, Debug, Default)]
pub struct Operation {
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: Option<&'static str>,
    /// `(name, description, required)`.
    pub query: Vec<(&'static str, &'static str, bool)>,
    /// `(media type, description)`.
    pub body: Option<(&'static str, &'static str)>,
    /// `(status, media type or "" for none, description)`.
    pub answers: Vec<(u16, &'static str, &'static str)>,
    /// Needs no credential.
    pub public: bool,
    pub deprecated: bool,
}

impl Operation {
    pub fn new(tag: &'static str, summary: &'static str) -> Self {
        Self {
            tag,
            summary,
            ..Self::default()
        }
    }

    pub fn describe(mut self, description: &'static str) -> Self {
        self.description = Some(description);
        self
    }

    /// An optional query parameter.
    pub fn query(mut self, name: &'static str, description: &'static str) -> Self {
        self.query.push((name, description, false));
        self
    }

    pub fn query_required(mut self, name: &'static str, description: &'static str) -> Self {
        self.query.push((name, description, true));
        self
    }

    /// A JSON request body.
    pub fn json_body(self, description: &'static str) -> Self {
        self.body("application/json", description)
    }

    pub fn body(mut self, media: &'static str, description: &'static str) -> Self {
        self.body = Some((media, description));
        self
    }

    /// A JSON answer.
    pub fn answers(self, status: u16, description: &'static str) -> Self {
        self.answers_as(status, "application/json", description)
    }

    /// An answer of another media type (`""`: no body).
    pub fn answers_as(
        mut self,
        status: u16,
        media: &'static str,
        description: &'static str,
    ) -> Self {
        self.answers.push((status, media, description));
        self
    }

    pub fn public(mut self) -> Self {
        self.public = true;
        self
    }
}

/// Routes with the list of what they route.
pub struct RouteTable<S> {
    router: Router<S>,
    entries: Vec<Route>,
    /// The entries of this table are deprecated paths.
    deprecated: bool,
    /// What each path given to [`RouteTable::on`] is routed as.
    paths: fn(&str) -> String,
}

impl<S> Default for RouteTable<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<S> RouteTable<S>
where
    S: Clone + Send + Sync + 'static,
{
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            entries: Vec::new(),
            deprecated: false,
            paths: str::to_owned,
        }
    }

    /// A table that routes each path as `paths` turns it, its operations
    /// deprecated: the same handlers once more at their old paths
    /// (`api::routes`: the paths without `/v1`).
    pub fn deprecated_at(paths: fn(&str) -> String) -> Self {
        Self {
            deprecated: true,
            paths,
            ..Self::new()
        }
    }

    /// Routes `method path` to `handler` (which may carry its own layers,
    /// `Handler::layer`). Panics, as axum does, on a method routed twice.
    pub fn on<H, T>(
        mut self,
        method: Method,
        path: &str,
        handler: H,
        mut operation: Operation,
    ) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("no method filter for {method}"));
        let path = (self.paths)(path);
        self.router = self.router.route(&path, on(filter, handler));
        operation.deprecated |= self.deprecated;
        self.entries.push(Route {
            method,
            path,
            operation,
        });
        self
    }

    pub fn get<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        handler: H,
        operation: Operation,
    ) -> Self {
        self.on(Method::GET, path, handler, operation)
    }

    pub fn post<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        handler: H,
        operation: Operation,
    ) -> Self {
        self.on(Method::POST, path, handler, operation)
    }

    pub fn put<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        handler: H,
        operation: Operation,
    ) -> Self {
        self.on(Method::PUT, path, handler, operation)
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        handler: H,
        operation: Operation,
    ) -> Self {
        self.on(Method::DELETE, path, handler, operation)
    }

    /// Both tables' routes (axum's `merge`).
    pub fn merge(mut self, other: RouteTable<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.entries.extend(other.entries);
        self
    }

    /// `other`'s routes below `prefix` (axum's `nest`: the handlers see the
    /// path without the prefix).
    pub fn nest(mut self, prefix: &str, other: RouteTable<S>) -> Self {
        self.router = self.router.nest(prefix, other.router);
        self.entries
            .extend(other.entries.into_iter().map(|route| Route {
                path: format!("{prefix}{}", route.path),
                ..route
            }));
        self
    }

    /// The same routes with the router changed by `f`: layers, never new
    /// routes (those go through [`RouteTable::on`]).
    pub fn map_router(mut self, f: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = f(self.router);
        self
    }

    /// What this table routes, in the order the routes were added.
    pub fn entries(&self) -> &[Route] {
        &self.entries
    }

    pub fn into_parts(self) -> (Router<S>, Vec<Route>) {
        (self.router, self.entries)
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_table_routes_what_it_lists_and_nothing_else() {
        let op = || Operation::new("t", "s");
        let table = RouteTable::<()>::new()
            .get("/a", || async { "get a" }, op())
            .post("/a", || async { "post a" }, op())
            .nest(
                "/x",
                RouteTable::new().delete("/b/{id}", || async { "delete" }, op()),
            );
        let listed: Vec<(Method, &str)> = table
            .entries()
            .iter()
            .map(|route| (route.method.clone(), route.path.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (Method::GET, "/a"),
                (Method::POST, "/a"),
                (Method::DELETE, "/x/b/{id}"),
            ]
        );
        let router = table.into_router();
        let status = |method: Method, uri: &'static str| {
            let router = router.clone();
            async move {
                let request = Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap();
                router.oneshot(request).await.unwrap().status()
            }
        };
        assert_eq!(status(Method::GET, "/a").await, StatusCode::OK);
        assert_eq!(status(Method::POST, "/a").await, StatusCode::OK);
        assert_eq!(
            status(Method::PUT, "/a").await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(status(Method::DELETE, "/x/b/7").await, StatusCode::OK);
        assert_eq!(status(Method::GET, "/a/").await, StatusCode::NOT_FOUND);
    }
}
