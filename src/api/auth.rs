//! The HTTP side of client authentication: a middleware that decides every
//! request against the node's tokens before any handler runs.
//!
//! Invariant: without `--auth-tokens` it passes every request through untouched;
//! with them, a request reaches a handler only when `security::access` allows
//! it, and a refusal is a JSON 401 (with `WWW-Authenticate: Bearer`) or 403,
//! counted by route in `swimkv_auth_refused`. The token is never logged.

use super::error::ApiError;
use super::handlers::decode_key;
use super::AppState;
use crate::metrics::AuthLabels;
use crate::security::access::{self, Refusal};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, Error, ResponseError};

/// The key of a key route (`/d/*`, `/cluster/locate/*`), when it decodes.
fn key_of(req: &ServiceRequest, max: usize) -> Option<String> {
    let path = req.uri().path();
    ["/d/", "/cluster/locate/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        .and_then(|raw| decode_key(raw, max).ok())
}

/// Lets a request through when its token allows it; answers 401 or 403 otherwise.
pub async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some((auth, state)) = state.and_then(|s| s.auth.clone().map(|a| (a, s))) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let route = super::route_label(req.request());
    let pattern = Some(route).filter(|r| *r != "unmatched");
    let need = access::need(
        pattern,
        req.method().as_str(),
        key_of(&req, state.limits.max_key_bytes),
        auth.everything,
    );
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let error = match auth.check(&need, header) {
        Ok(()) => {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(Refusal::Unauthenticated(message)) => ApiError::Unauthenticated { message },
        Err(Refusal::Forbidden(message)) => ApiError::Forbidden { message },
    };
    state
        .metrics
        .auth_refused
        .get_or_create(&AuthLabels {
            route,
            status: error.status_code().as_u16(),
        })
        .inc();
    Ok(req
        .into_response(error.error_response())
        .map_into_right_body())
}
