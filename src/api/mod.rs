//! The HTTP API: client routes under `/d/`, cluster routes under `/cluster/`,
//! health, readiness, metrics and the dashboard.
//!
//! [`configure`] registers every route on an actix-web `App`; [`AppState`] holds
//! the recipients of the actors the handlers talk to. Invariant: handlers never
//! touch state directly; they send to actors and map results (`handlers.rs`), and
//! only `error.rs` knows error statuses.

pub mod dashboard;
pub mod error;
pub mod handlers;

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
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

/// What the handlers need: actor recipients, limits and metrics.
pub struct AppState {
    /// This node's name.
    pub node: String,
    /// Number of introducers given at start (0 for the first node).
    pub introducers: usize,
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
}

/// Records request counts and latency by route pattern, method and status.
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_string());
        metrics
            .latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
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

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use handlers::*;
    let not_allowed = |allow: &'static str| web::to(move || method_not_allowed(allow));
    cfg.service(
        web::resource("/d/{key:.*}")
            .route(web::get().to(get))
            .route(web::post().to(put))
            .route(web::put().to(put))
            .route(web::delete().to(delete))
            .default_service(not_allowed("GET, POST, PUT, DELETE")),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(health))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/ready")
            .route(web::get().to(ready))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/cluster/members")
            .route(web::get().to(members))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/cluster/ring")
            .route(web::get().to(ring))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/cluster/locate/{key:.*}")
            .route(web::get().to(locate))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/cluster/local")
            .route(web::get().to(local))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/cluster/leave")
            .route(web::post().to(leave))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/")
            .route(web::get().to(dashboard::index))
            .default_service(not_allowed("GET")),
    )
    .default_service(web::to(no_route));
}
