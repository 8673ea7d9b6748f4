//! The HTTP API: client routes under `/d/`, cluster routes under `/cluster/`,
//! health, readiness, metrics and the dashboard.
//!
//! [`configure`] registers every route on an actix-web `App`; [`AppState`] holds
//! the recipients of the actors the handlers talk to. Invariant: handlers never
//! touch state directly; they send to actors and map results (`handlers.rs`), and
//! only `error.rs` knows error statuses.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod handlers;
pub mod openapi;

use crate::config::{Limits, ReplicationConfig};
use crate::membership::actor::GetMembers;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::node::GracefulLeave;
use crate::replication::actor::{ClientGet, ClientPut};
use crate::ring::actor::GetRing;
use crate::storage::actor::LocalPage;
use actix::Recipient;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Instant;

/// What the handlers need: actor recipients, limits and metrics.
pub struct AppState {
    /// This node's name.
    pub node: String,
    /// Number of introducers given at start (0 for the first node).
    pub introducers: usize,
    /// Set once this node is part of a cluster; `/d/` answers 503 `not_joined` before.
    pub joined: Arc<AtomicBool>,
    /// Set once this node may coordinate: joined, and its view of where data
    /// lives settled since it started (every member reported its handoff).
    pub serving: Arc<AtomicBool>,
    /// Client reads.
    pub get: Recipient<ClientGet>,
    /// Client writes and deletes.
    pub put: Recipient<ClientPut>,
    /// Member list.
    pub members: Recipient<GetMembers>,
    /// Graceful leave (absent in tests that must not stop the process).
    pub leave: Option<Recipient<GracefulLeave>>,
    /// Ring snapshot.
    pub ring: Recipient<GetRing>,
    /// Local key pages.
    pub local: Recipient<LocalPage>,
    /// Limits.
    pub limits: Limits,
    /// Replication settings (for readiness and locate).
    pub replication: ReplicationConfig,
    /// Metrics.
    pub metrics: Metrics,
    /// Client requests in flight on this node.
    pub inflight: Arc<AtomicUsize>,
    /// Bearer tokens, when the node runs with `--auth-tokens`.
    pub auth: Option<crate::security::Auth>,
}

/// Records request counts and latency by route pattern, method and status.
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let metrics = &state.metrics;
        let route = route_label(res.request());
        metrics
            .latency
            .get_or_create(&RouteLabels { route })
            .observe(started.elapsed().as_secs_f64());
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status: res.status().as_u16(),
            })
            .inc();
    }
    Ok(res)
}

/// The label of an HTTP method: the standard ones by name, any other `other` (a
/// client cannot grow the metrics with made-up methods).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

/// The [`ROUTES`] pattern the router matched for `req`, `unmatched` if none. The
/// common case is read off the path (a pattern ending in `{key:.*}` matches its
/// prefix, any other only itself) without routing the request a second time.
pub(crate) fn route_label(req: &actix_web::HttpRequest) -> &'static str {
    let path = req.path();
    let fast = ROUTES
        .iter()
        .map(|(p, _)| *p)
        .find(|p| match p.strip_suffix("{key:.*}") {
            Some(prefix) => path.starts_with(prefix),
            None => path == *p,
        });
    fast.or_else(|| {
        let matched = req.match_pattern()?;
        ROUTES.iter().map(|(p, _)| *p).find(|p| *p == matched)
    })
    .unwrap_or("unmatched")
}

/// Every route, in registration order: the path pattern and the methods it
/// serves, as the `Allow` header of its 405 lists them. [`configure`] registers
/// exactly these (tests compare them with `assets/openapi.json`).
pub const ROUTES: &[(&str, &str)] = &[
    (CLIENT_ROUTE, CLIENT_METHODS),
    ("/health", "GET"),
    ("/ready", "GET"),
    ("/metrics", "GET"),
    ("/cluster/members", "GET"),
    ("/cluster/ring", "GET"),
    ("/cluster/locate/{key:.*}", "GET"),
    ("/cluster/local", "GET"),
    ("/cluster/leave", "POST"),
    ("/", "GET"),
    ("/openapi.json", "GET"),
];

/// The methods [`CLIENT_ROUTE`] serves ([`handlers::client`] dispatches them).
pub const CLIENT_METHODS: &str = "GET, POST, PUT, DELETE";

/// The handler of `method` on the route `path` of [`ROUTES`] (all but
/// [`CLIENT_ROUTE`]).
fn route(path: &str, method: &str) -> actix_web::Route {
    use handlers::*;
    match (path, method) {
        ("/health", "GET") => web::get().to(health),
        ("/ready", "GET") => web::get().to(ready),
        ("/metrics", "GET") => web::get().to(metrics),
        ("/cluster/members", "GET") => web::get().to(members),
        ("/cluster/ring", "GET") => web::get().to(ring),
        ("/cluster/locate/{key:.*}", "GET") => web::get().to(locate),
        ("/cluster/local", "GET") => web::get().to(local),
        ("/cluster/leave", "POST") => web::post().to(leave),
        ("/", "GET") => web::get().to(dashboard::index),
        ("/openapi.json", "GET") => web::get().to(openapi::document),
        _ => unreachable!("ROUTES lists {method} {path} but no handler serves it"),
    }
}

/// The client route of [`ROUTES`]: served through the prefix scope [`CLIENT_SCOPE`].
pub const CLIENT_ROUTE: &str = "/d/{key:.*}";

/// The prefix under which [`CLIENT_ROUTE`] is registered. A pattern with a
/// variable costs a regular-expression match on every request (regex-lite's
/// PikeVM: about 12,000 of the 90,000 instructions of a GET, measured with
/// callgrind); a static prefix is a string comparison, and the handlers read the
/// key off the path themselves.
const CLIENT_SCOPE: &str = "/d";

/// Registers every route of [`ROUTES`]; any other method on one of them is a 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for &(path, allow) in ROUTES {
        if path == CLIENT_ROUTE {
            cfg.service(web::scope(CLIENT_SCOPE).default_service(web::to(handlers::client)));
            continue;
        }
        let resource = allow
            .split(", ")
            .fold(web::resource(path), |r, method| {
                r.route(route(path, method))
            })
            .default_service(web::to(move || handlers::method_not_allowed(allow)));
        cfg.service(resource);
    }
    cfg.default_service(web::to(handlers::no_route));
}
