//! The live dashboard served at `GET /`: one HTML page embedded in the binary.
//!
//! The page polls `/cluster/members`, `/cluster/ring` and `/metrics` and draws the
//! ring and the member table itself; there is no front-end build chain.

use actix_web::HttpResponse;

const INDEX: &str = include_str!("../../assets/dashboard.html");

/// `GET /`.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX)
}
