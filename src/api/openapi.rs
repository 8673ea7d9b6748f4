//! The OpenAPI 3.0 document of this API, served at `GET /openapi.json`.
//!
//! The document is `assets/openapi.json`, embedded in the binary. Invariant: its
//! (path, method) pairs are exactly [`super::ROUTES`] (checked by `tests/openapi.rs`).

use actix_web::HttpResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("../../assets/openapi.json");

/// `GET /openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT)
}
