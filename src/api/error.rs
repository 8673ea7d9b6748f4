//! Client-visible errors and the only mapping from outcomes to HTTP statuses.
//!
//! Every error body is JSON `{"error": "<kind>", "message": "...", ...}`.
//! Invariant: no other module chooses an HTTP status for an error.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use std::fmt;

/// The header every answer to a conditional request carries.
pub const PRECONDITION_HEADER: &str = "X-Swimkv-Precondition";

/// Its value: without consensus, two concurrent conditional writers can both pass.
pub const PRECONDITION_BEST_EFFORT: &str = "best-effort";

/// Why a client request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The key is missing everywhere, or its newest version is a tombstone (404).
    NotFound {
        /// The key.
        key: String,
    },
    /// A malformed request: empty or oversized key, bad encoding, bad parameter (400).
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// The value is over the value limit (413).
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Fewer replicas than needed answered in time (503).
    Unavailable {
        /// Answers needed.
        needed: usize,
        /// Answers received.
        succeeded: usize,
        /// Replicas that failed.
        failed: usize,
        /// Replicas asked.
        replicas: usize,
    },
    /// Too many requests in flight on this node (503 with Retry-After).
    Overloaded,
    /// The method is not served on this route (405, with an `Allow` header).
    MethodNotAllowed {
        /// The methods the route serves, as the `Allow` header lists them.
        allow: &'static str,
    },
    /// No such route (404).
    NoRoute,
    /// This node is shutting down or an internal actor is gone (503).
    ShuttingDown,
    /// This node was started with an introducer and has not joined yet (503).
    NotJoined,
    /// A conditional write's precondition failed (412).
    PreconditionFailed {
        /// The key.
        key: String,
        /// The current ETag (quoted version), `None` when the key is absent.
        current: Option<String>,
    },
    /// This node's clock is off from most of its peers' clocks: writes are refused (503).
    ClockSkew,
    /// A graceful leave could not hand every key off and was given up: the node
    /// is still a member (503 with Retry-After).
    HandoffIncomplete {
        /// What failed.
        reason: String,
    },
    /// This node cannot write to its data directory in time: writes are refused (503).
    StorageUnavailable,
    /// No bearer token, a malformed or an unknown one (401 with `WWW-Authenticate: Bearer`).
    Unauthenticated {
        /// What is wrong (never the token).
        message: &'static str,
    },
    /// A known token without the role or key prefix this request needs (403).
    Forbidden {
        /// What the token lacks.
        message: String,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::NotFound { key } => write!(f, "key {key:?} not found"),
            ApiError::BadRequest { message } => f.write_str(message),
            ApiError::TooLarge { limit } => {
                write!(f, "value larger than the limit of {limit} bytes")
            }
            ApiError::Unavailable {
                needed, succeeded, ..
            } => {
                write!(
                    f,
                    "quorum not reached: {succeeded} of {needed} replicas answered in time"
                )
            }
            ApiError::Overloaded => f.write_str("too many requests in flight; retry later"),
            ApiError::MethodNotAllowed { .. } => f.write_str("method not allowed on this route"),
            ApiError::NoRoute => f.write_str("no such route"),
            ApiError::ShuttingDown => f.write_str("node is shutting down"),
            ApiError::NotJoined => f.write_str(
                "this node has not joined its cluster yet; retry, or ask another node",
            ),
            ApiError::PreconditionFailed { key, current } => match current {
                Some(etag) => write!(f, "precondition failed: key {key:?} is at {etag}"),
                None => write!(f, "precondition failed: key {key:?} does not exist"),
            },
            ApiError::StorageUnavailable => f.write_str(
                "this node cannot persist to its data directory in time; writes are refused until it can (write through another node)",
            ),
            ApiError::Unauthenticated { message } => f.write_str(message),
            ApiError::Forbidden { message } => f.write_str(message),
            ApiError::ClockSkew => f.write_str(
                "this node's clock is off from most of its peers' clocks; writes are refused until it is fixed (write through another node)",
            ),
            ApiError::HandoffIncomplete { reason } => write!(
                f,
                "the leave was given up: not every key could be handed off ({reason}); this node is still a member, retry the leave"
            ),
        }
    }
}

impl ApiError {
    /// The machine-readable kind in the `error` field.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "not_found",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Overloaded => "overloaded",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NoRoute => "not_found",
            ApiError::ShuttingDown => "unavailable",
            ApiError::NotJoined => "not_joined",
            ApiError::PreconditionFailed { .. } => "precondition_failed",
            ApiError::ClockSkew => "clock_skew",
            ApiError::HandoffIncomplete { .. } => "handoff_incomplete",
            ApiError::StorageUnavailable => "storage_unavailable",
            ApiError::Unauthenticated { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
        }
    }

    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable { .. }
            | ApiError::Overloaded
            | ApiError::ShuttingDown
            | ApiError::NotJoined
            | ApiError::ClockSkew
            | ApiError::HandoffIncomplete { .. }
            | ApiError::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({"error": self.kind(), "message": self.to_string()});
        match self {
            ApiError::NotFound { key } => body["key"] = json!(key),
            ApiError::TooLarge { limit } => body["limit"] = json!(limit),
            ApiError::Unavailable {
                needed,
                succeeded,
                failed,
                replicas,
            } => {
                body["needed"] = json!(needed);
                body["succeeded"] = json!(succeeded);
                body["failed"] = json!(failed);
                body["replicas"] = json!(replicas);
            }
            ApiError::PreconditionFailed { key, current } => {
                body["key"] = json!(key);
                body["current"] = json!(current);
            }
            _ => {}
        }
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            ApiError::Overloaded => {
                resp.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::MethodNotAllowed { allow } => {
                resp.insert_header((header::ALLOW, *allow));
            }
            ApiError::NotJoined => {
                resp.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::HandoffIncomplete { .. } => {
                resp.insert_header((header::RETRY_AFTER, "5"));
            }
            ApiError::Unauthenticated { .. } => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"swimkv\""));
            }
            ApiError::PreconditionFailed {
                current: Some(etag),
                ..
            } => {
                resp.insert_header((header::ETAG, etag.as_str()));
                resp.insert_header((PRECONDITION_HEADER, PRECONDITION_BEST_EFFORT));
            }
            ApiError::PreconditionFailed { .. } => {
                resp.insert_header((PRECONDITION_HEADER, PRECONDITION_BEST_EFFORT));
            }
            _ => {}
        }
        resp.json(body)
    }
}
