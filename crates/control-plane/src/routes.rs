//! Custom routes (`/api/users/*` → `users`): the live router the gateway reads, and the API
//! that changes it. The store keeps the routes; the router crate validates them, rejects
//! conflicts and matches requests.

use std::sync::{Arc, RwLock};

use crate::body::Body as Incoming;
use serde_json::json;
use yun_router::{RouteError, RouteSpec, Router, Routes};
use yun_types::{ErrorCode, FunctionName};

use crate::{ApiError, ApiResult, ControlPlane, bad, body, internal, read_json_body};

/// The router in force. The gateway takes a snapshot per request (one `Arc` clone); a change
/// swaps in a whole new router, so a request never sees half a change.
pub struct LiveRouter {
    base: Router,
    current: RwLock<Arc<Router>>,
}

impl LiveRouter {
    /// `base_domain` is where function hosts live (`hello.localhost`).
    pub fn new(base_domain: &str) -> Self {
        let base = Router::new(base_domain);
        Self { current: RwLock::new(Arc::new(base.clone())), base }
    }

    pub fn get(&self) -> Arc<Router> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn routes(&self) -> Routes {
        self.get().routes().clone()
    }

    pub(crate) fn set(&self, routes: Routes) {
        let router = Arc::new(self.base.with_routes(routes));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = router;
    }
}

pub(crate) fn route_error(e: RouteError) -> ApiError {
    let code = match e {
        RouteError::Conflict { .. } => ErrorCode::Conflict,
        _ => ErrorCode::BadRequest,
    };
    ApiError::new(code, e.to_string())
}

impl ControlPlane {
    pub(crate) fn routes_view(&self, routes: &Routes) -> serde_json::Value {
        let list: Vec<_> = routes
            .specs()
            .iter()
            .map(|r| {
                json!({
                    "host": r.host,
                    "path": r.path,
                    "function": r.function,
                    "tag": r.tag,
                    "route": r.to_string(),
                })
            })
            .collect();
        json!({ "routes": list })
    }

    pub(crate) fn list_routes(&self) -> ApiResult {
        Ok(body::json(200, &self.routes_view(&self.router.routes())))
    }

    pub(crate) async fn add_route(&self, incoming: Incoming) -> ApiResult {
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let spec: RouteSpec =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid route: {e}")))?;
        let _changing = self.changes.lock().await;
        self.check_route_target(&spec)?;
        let routes = self.router.routes().with(spec.clone()).map_err(route_error)?;
        self.store.put_route(&spec)?;
        self.router.set(routes);
        Ok(body::json(
            201,
            &json!({ "route": spec.to_string(), "host": spec.host, "path": spec.path, "function": spec.function, "tag": spec.tag }),
        ))
    }

    /// A route must lead somewhere: an existing function, and a tag it has.
    pub(crate) fn check_route_target(&self, spec: &RouteSpec) -> Result<(), ApiError> {
        let name = FunctionName::new(spec.function.clone()).map_err(|e| bad(e.to_string()))?;
        let function = self.require(&name)?;
        if let Some(tag) = &spec.tag
            && !function.tags.contains_key(tag)
        {
            return Err(bad(format!("route {spec} names tag {tag}, which function {name} does not have")));
        }
        Ok(())
    }

    pub(crate) async fn delete_route(&self, host: Option<&str>, path: &str) -> ApiResult {
        let _changing = self.changes.lock().await;
        let host = host.map(str::to_ascii_lowercase);
        let Some(routes) = self.router.routes().without(host.as_deref(), path) else {
            let at = host.as_deref().map(|h| format!(" on host {h}")).unwrap_or_default();
            return Err(ApiError::new(ErrorCode::NotFound, format!("no route {path}{at}")));
        };
        self.store.delete_route(host.as_deref(), path)?;
        self.router.set(routes);
        Ok(body::json(200, &json!({ "deleted": { "host": host, "path": path } })))
    }

    /// Removes the routes that lead to a function being deleted; returns them, as text.
    pub(crate) fn remove_routes_of(&self, name: &FunctionName) -> Result<Vec<String>, ApiError> {
        let mut routes = self.router.routes();
        let doomed: Vec<RouteSpec> = routes.for_function(name.as_str()).cloned().collect();
        for spec in &doomed {
            self.store.delete_route(spec.host.as_deref(), &spec.path)?;
            routes =
                routes.without(spec.host.as_deref(), &spec.path).ok_or_else(|| internal("route vanished"))?;
        }
        self.router.set(routes);
        Ok(doomed.iter().map(|r| r.to_string()).collect())
    }
}
