//! HTTP handlers: extract, send to an actor, map the result. Nothing else.
//!
//! Keys come from the raw request path and are percent-decoded strictly (invalid
//! escapes and non-UTF-8 are refused); bodies are read up to the value limit.
//! Invariant: every limit is checked before anything is sent to an actor, so a
//! refused request changes nothing.

use super::error::{ApiError, PRECONDITION_BEST_EFFORT, PRECONDITION_HEADER};
use super::AppState;
use crate::membership::actor::GetMembers;
use crate::replication::actor::{ClientGet, ClientPut};
use crate::replication::quorum::effective_n;
use crate::replication::{Condition, Consistency, Outcome, WriteSpec};
use crate::ring::actor::GetRing;
use crate::storage::actor::unix_ms;
use crate::storage::actor::LocalPage;
use crate::storage::Version;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::json;
use std::sync::atomic::Ordering;

type Result<T> = std::result::Result<T, ApiError>;

/// Decodes a percent-encoded key, refusing bad escapes and non-UTF-8.
pub fn decode_key(raw: &str, max: usize) -> Result<String> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(ApiError::bad_request("invalid percent-encoding in key"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let key = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("key is not valid UTF-8"))?;
    if key.is_empty() {
        return Err(ApiError::bad_request("key must not be empty"));
    }
    if key.len() > max {
        return Err(ApiError::bad_request(format!(
            "key longer than the limit of {max} bytes"
        )));
    }
    Ok(key.into_owned())
}

/// The key of a `/d/{key}` (or `/cluster/locate/{key}`) request, from the raw path.
pub fn key_of(req: &HttpRequest, prefix: &str, max: usize) -> Result<String> {
    let raw = req.uri().path().strip_prefix(prefix).unwrap_or("");
    decode_key(raw, max)
}

/// The `consistency` query parameter (default quorum).
pub fn consistency_of(req: &HttpRequest) -> Result<Consistency> {
    for pair in req.query_string().split('&') {
        if let Some(value) = pair.strip_prefix("consistency=") {
            return value.parse().map_err(ApiError::bad_request);
        }
    }
    Ok(Consistency::Quorum)
}

/// Longest time to live accepted: ten years, in seconds.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The `ttl` query parameter in milliseconds: whole seconds from 1 to ten years.
pub fn ttl_of(req: &HttpRequest) -> Result<Option<u64>> {
    let Some(raw) = query_param(req, "ttl") else {
        return Ok(None);
    };
    match raw.parse::<u64>() {
        Ok(s) if (1..=MAX_TTL_SECONDS).contains(&s) => Ok(Some(s * 1000)),
        _ => Err(ApiError::bad_request(format!(
            "ttl must be a whole number of seconds from 1 to {MAX_TTL_SECONDS} (ten years), not {raw:?}"
        ))),
    }
}

/// The condition of a conditional write: `If-None-Match: *` (create only) or
/// `If-Match: "<etag>"` (write over exactly that version).
pub fn condition_of(req: &HttpRequest) -> Result<Option<Condition>> {
    let text = |name: header::HeaderName| -> Result<Option<&str>> {
        match req.headers().get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim()))
                .map_err(|_| ApiError::bad_request("conditional header is not ASCII")),
        }
    };
    match (text(header::IF_NONE_MATCH)?, text(header::IF_MATCH)?) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give If-None-Match or If-Match, not both",
        )),
        (Some("*"), None) => Ok(Some(Condition::Absent)),
        (Some(other), None) => Err(ApiError::bad_request(format!(
            "If-None-Match supports only *, not {other:?}"
        ))),
        (None, Some(etag)) => {
            let bare = etag.strip_prefix("W/").unwrap_or(etag);
            bare.strip_prefix('"')
                .and_then(|b| b.strip_suffix('"'))
                .and_then(|v| v.parse::<Version>().ok())
                .map(|v| Some(Condition::Matches(v)))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "If-Match takes one ETag as GET returns it (\"<version>\"), not {etag:?}"
                    ))
                })
        }
        (None, None) => Ok(None),
    }
}

fn require_joined(state: &AppState) -> Result<()> {
    if state.joined.load(Ordering::Relaxed) {
        Ok(())
    } else {
        Err(ApiError::NotJoined)
    }
}

/// An RFC 3339 UTC timestamp of Unix milliseconds.
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(String::new, |t| t.to_string())
}

/// The `ETag` of a version (or of its text, when that is needed as well).
fn etag(version: impl std::fmt::Display) -> String {
    format!("\"{version}\"")
}

fn query_param<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.query_string().split('&').find_map(|pair| {
        pair.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Bytes> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Counts a client request in flight; refuses it when the node is saturated.
struct InFlight<'a>(&'a AppState);

impl<'a> InFlight<'a> {
    fn enter(state: &'a AppState) -> Result<InFlight<'a>> {
        let now = state.inflight.fetch_add(1, Ordering::Relaxed);
        if now >= state.limits.max_inflight_requests {
            state.inflight.fetch_sub(1, Ordering::Relaxed);
            state.metrics.overloaded.inc();
            return Err(ApiError::Overloaded);
        }
        Ok(InFlight(state))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn unavailable(o: Outcome, key: String) -> ApiError {
    match o {
        Outcome::PreconditionFailed { current } => ApiError::PreconditionFailed {
            key,
            current: current.map(etag),
        },
        Outcome::ClockSkewed => ApiError::ClockSkew,
        Outcome::NotJoined => ApiError::NotJoined,
        Outcome::StorageUnavailable => ApiError::StorageUnavailable,
        Outcome::Unavailable {
            needed,
            succeeded,
            failed,
            replicas,
        } => ApiError::Unavailable {
            needed,
            succeeded,
            failed,
            replicas,
        },
        _ => ApiError::ShuttingDown,
    }
}

/// Everything under `/d`: `GET`, `POST`, `PUT` and `DELETE` of `/d/{key}` go to
/// their handlers, any other method is a 405, and `/d` itself is no route (in
/// that order, as a resource would answer: the state is extracted last).
pub async fn client(req: HttpRequest, payload: web::Payload) -> actix_web::Result<HttpResponse> {
    if !req.path().starts_with("/d/") {
        return Err(ApiError::NoRoute.into());
    }
    let method = req.method().clone();
    if !matches!(
        method,
        Method::GET | Method::POST | Method::PUT | Method::DELETE
    ) {
        return Err(ApiError::MethodNotAllowed {
            allow: super::CLIENT_METHODS,
        }
        .into());
    }
    let state = web::Data::<AppState>::extract(&req).await?;
    let answer = match method {
        Method::GET => get(req, state).await,
        Method::DELETE => delete(req, state).await,
        _ => put(req, payload, state).await,
    };
    Ok(answer?)
}

/// `GET /d/{key}`.
pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    let key = key_of(&req, "/d/", state.limits.max_key_bytes)?;
    let consistency = consistency_of(&req)?;
    require_joined(&state)?;
    let _slot = InFlight::enter(&state)?;
    let outcome = state
        .get
        .send(ClientGet {
            key: key.clone(),
            consistency,
        })
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    match outcome {
        Outcome::Read(Some(record)) if record.is_live(unix_ms()) => {
            let version = record.version.to_string();
            let mut answer = HttpResponse::Ok();
            answer
                .content_type("application/octet-stream")
                .insert_header((header::ETAG, etag(&version)))
                .insert_header(("X-Swimkv-Version", version));
            if let Some(expires) = record.expires_ms {
                answer.insert_header(("X-Swimkv-Expires", rfc3339(expires)));
            }
            Ok(answer.body(record.value.unwrap_or_default()))
        }
        Outcome::Read(_) => Err(ApiError::NotFound { key }),
        other => Err(unavailable(other, key)),
    }
}

async fn write(
    req: &HttpRequest,
    state: &AppState,
    value: Option<Bytes>,
    key: String,
) -> Result<HttpResponse> {
    let consistency = consistency_of(req)?;
    let ttl_ms = ttl_of(req)?;
    if ttl_ms.is_some() && value.is_none() {
        return Err(ApiError::bad_request(
            "ttl applies to POST and PUT, not DELETE",
        ));
    }
    let condition = condition_of(req)?;
    if condition == Some(Condition::Absent) && value.is_none() {
        return Err(ApiError::bad_request(
            "If-None-Match applies to POST and PUT; DELETE takes If-Match",
        ));
    }
    require_joined(state)?;
    let _slot = InFlight::enter(state)?;
    let outcome = state
        .put
        .send(ClientPut {
            key: key.clone(),
            spec: WriteSpec {
                value,
                expires_ms: None,
                condition,
            },
            ttl_ms,
            consistency,
        })
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    match outcome {
        Outcome::Written { version, acks } => {
            let mut answer = HttpResponse::Ok();
            answer.insert_header((header::ETAG, etag(version)));
            if condition.is_some() {
                answer.insert_header((PRECONDITION_HEADER, PRECONDITION_BEST_EFFORT));
            }
            Ok(answer.json(json!({
                "key": key,
                "version": version.to_string(),
                "acks": acks,
            })))
        }
        other => Err(unavailable(other, key)),
    }
}

/// `POST /d/{key}` and `PUT /d/{key}`: the body is the value, raw bytes.
pub async fn put(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let key = key_of(&req, "/d/", state.limits.max_key_bytes)?;
    consistency_of(&req)?;
    ttl_of(&req)?;
    condition_of(&req)?;
    let value = read_body(&req, payload, state.limits.max_value_bytes).await?;
    write(&req, &state, Some(value), key).await
}

/// `DELETE /d/{key}`: writes a tombstone.
pub async fn delete(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    let key = key_of(&req, "/d/", state.limits.max_key_bytes)?;
    write(&req, &state, None, key).await
}

/// Any method a route does not serve; `allow` lists the ones it does.
pub async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse> {
    Err(ApiError::MethodNotAllowed { allow })
}

/// Any path no route serves.
pub async fn no_route() -> Result<HttpResponse> {
    Err(ApiError::NoRoute)
}

/// `GET /health`.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "node": state.node}))
}

/// `GET /ready`: 200 only once a rolling restart can move on to the next node:
/// this node is joined, it is not a pending replica still receiving its handoff,
/// and enough members are alive for the quorums of the replica sets it
/// coordinates (the replication factor shrinks only with members that left).
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse> {
    let view = state
        .members
        .send(GetMembers)
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    let live = view.members.iter().filter(|m| m.state.is_live()).count();
    let alive = view
        .members
        .iter()
        .filter(|m| m.state == crate::membership::member::State::Alive)
        .count();
    let pending = view.members.iter().any(|m| m.local && m.pending);
    let joined = view.joined && state.serving.load(Ordering::Relaxed);
    let r = &state.replication;
    let n = effective_n(r.n, view.members_not_left);
    let quorum = crate::replication::quorum::needed(Consistency::Quorum, r.r.max(r.w), n);
    let ready = joined && !pending && alive >= quorum;
    let body = json!({
        "ready": ready,
        "joined": joined,
        "pending": pending,
        "live_members": live,
        "quorum": quorum,
    });
    Ok(if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}

/// `GET /cluster/members`.
pub async fn members(state: web::Data<AppState>) -> Result<HttpResponse> {
    let view = state
        .members
        .send(GetMembers)
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /cluster/ring`.
pub async fn ring(state: web::Data<AppState>) -> Result<HttpResponse> {
    let snap = state
        .ring
        .send(GetRing)
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    let ring = &snap.ring;
    let members: Vec<_> = ring
        .members()
        .iter()
        .map(|m| json!({"id": m, "peer_addr": snap.peers.get(m), "tokens": ring.tokens_of(m)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "epoch": ring.epoch(),
        "vnodes": ring.vnodes(),
        "replication": state.replication.n,
        "members": members,
    })))
}

/// `GET /cluster/locate/{key}`.
pub async fn locate(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    let key = key_of(&req, "/cluster/locate/", state.limits.max_key_bytes)?;
    let snap = state
        .ring
        .send(GetRing)
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    let token = crate::ring::hash::token(key.as_bytes());
    let replicas: Vec<_> = snap
        .ring
        .preference_list(token, state.replication.n)
        .into_iter()
        .map(|m| json!({"id": m, "peer_addr": snap.peers.get(m)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "key": key,
        "token": token,
        "epoch": snap.ring.epoch(),
        "replicas": replicas,
    })))
}

/// `GET /cluster/local?after=<key>&limit=<n>`: the keys held locally, paged.
pub async fn local(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    let after = match query_param(&req, "after") {
        Some(a) if !a.is_empty() => Some(decode_key(
            &a.replace('+', "%20"),
            state.limits.max_key_bytes,
        )?), // form encoding: + is a space
        _ => None,
    };
    let limit = match query_param(&req, "limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=10_000).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit must be a number from 1 to 10000"))?,
        None => 1000,
    };
    let page = state
        .local
        .send(LocalPage { after, limit })
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    let next = if page.len() == limit {
        page.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    let keys: Vec<_> = page
        .into_iter()
        .map(|(k, r)| {
            json!({
                "key": k,
                "version": r.version.to_string(),
                "tombstone": r.is_tombstone(),
                "size": r.value.as_ref().map_or(0, |v| v.len()),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"node": state.node, "keys": keys, "next": next})))
}

/// `POST /cluster/leave`: hand every key off, announce `left`, then stop the node.
pub async fn leave(state: web::Data<AppState>) -> Result<HttpResponse> {
    let Some(leave) = &state.leave else {
        return Err(ApiError::ShuttingDown);
    };
    match leave
        .send(crate::node::GracefulLeave { force: false })
        .await
    {
        Ok(Ok(handed_off)) => Ok(HttpResponse::Ok().json(json!({
            "node": state.node,
            "state": "left",
            "handed_off": handed_off,
        }))),
        Ok(Err(crate::node::LeaveRefused::HandoffIncomplete(why))) => {
            Err(ApiError::HandoffIncomplete { reason: why })
        }
        _ => Err(ApiError::ShuttingDown),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}
