//! Who may call what: the role each route needs, and the decision for one
//! request's `Authorization` header. [pure]
//!
//! | role  | routes |
//! | ----- | ------ |
//! | read  | `GET /d/*`, `/cluster/members`, `/cluster/ring`, `/cluster/locate/*` |
//! | write | `POST`, `PUT`, `DELETE` on `/d/*` |
//! | admin | `/cluster/local`, `POST /cluster/leave` |
//! | none  | `/health`, `/ready`, `/metrics`, `/`, `/openapi.json` and unknown routes, unless every route is protected (then `read`) |
//!
//! A token limited to a key prefix reaches only keys with that prefix on the
//! key routes (`/d/*`, `/cluster/locate/*`), reads membership and the ring as
//! any read token does, and never reaches the admin routes (they reveal or
//! affect every key). Invariant: a missing, malformed or unknown token is
//! [`Refusal::Unauthenticated`] (401), a known one without the right is
//! [`Refusal::Forbidden`] (403); nothing else refuses.

use super::tokens::{Role, TokenTable};

/// What a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the route is open.
    Open,
    /// A token with at least this role, reaching this key when there is one.
    Role(Role, Scope),
}

/// What a request touches, for a token's key prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One key (`None` when the path does not decode to a key).
    Key(Option<String>),
    /// Cluster metadata only (membership, ring): any prefix may read it.
    Metadata,
    /// Every key of the node: only a token without a prefix reaches it.
    Everything,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No, a malformed or an unknown token (401).
    Unauthenticated(&'static str),
    /// A known token without the right role or prefix (403).
    Forbidden(String),
}

/// What `method` on the route `pattern` (a route pattern from the API's route
/// table, `None` when no route matched) needs; `key` is the decoded key of a
/// key route. `everything` protects the otherwise open routes too.
pub fn need(pattern: Option<&str>, method: &str, key: Option<String>, everything: bool) -> Need {
    let read = |scope| Need::Role(Role::Read, scope);
    match pattern {
        Some("/d/{key:.*}") => match method {
            "GET" | "HEAD" => read(Scope::Key(key)),
            _ => Need::Role(Role::Write, Scope::Key(key)),
        },
        Some("/cluster/locate/{key:.*}") => read(Scope::Key(key)),
        Some("/cluster/members" | "/cluster/ring") => read(Scope::Metadata),
        Some("/cluster/local" | "/cluster/leave") => Need::Role(Role::Admin, Scope::Everything),
        _ if everything => read(Scope::Metadata),
        _ => Need::Open,
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Decides a request needing `need` that carries the `Authorization` header
/// value `authorization`, against `tokens`.
pub fn decide(
    tokens: &TokenTable,
    authorization: Option<&str>,
    need: &Need,
) -> Result<(), Refusal> {
    let Need::Role(role, scope) = need else {
        return Ok(());
    };
    let Some(header) = authorization else {
        return Err(Refusal::Unauthenticated("a bearer token is required"));
    };
    let Some(token) = bearer(header) else {
        return Err(Refusal::Unauthenticated(
            "the Authorization header must be `Bearer <token>`",
        ));
    };
    let Some(grant) = tokens.lookup(token) else {
        return Err(Refusal::Unauthenticated("unknown token"));
    };
    if grant.role < *role {
        return Err(Refusal::Forbidden(format!(
            "this token has the {} role; this request needs {}",
            grant.role.name(),
            role.name()
        )));
    }
    match (&grant.prefix, scope) {
        (None, _) | (Some(_), Scope::Metadata) => Ok(()),
        (Some(prefix), Scope::Key(Some(key))) if key.starts_with(prefix.as_str()) => Ok(()),
        (Some(prefix), Scope::Key(_)) => Err(Refusal::Forbidden(format!(
            "this token is limited to keys starting with {prefix:?}"
        ))),
        (Some(prefix), Scope::Everything) => Err(Refusal::Forbidden(format!(
            "this token is limited to keys starting with {prefix:?}; this route reaches every key"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: &str = "Bearer r-0123456789abcdef";
    const APP_WRITER: &str = "Bearer w-0123456789abcdef";
    const ADMIN: &str = "bearer a-0123456789abcdef";
    const APP_ADMIN: &str = "Bearer p-0123456789abcdef";

    fn tokens() -> TokenTable {
        TokenTable::parse(
            "r-0123456789abcdef read\nw-0123456789abcdef write app/\na-0123456789abcdef admin\np-0123456789abcdef admin app/\n",
        )
        .expect("valid")
    }

    fn on(
        pattern: &str,
        method: &str,
        key: Option<&str>,
        auth: Option<&str>,
    ) -> Result<(), Refusal> {
        let need = need(Some(pattern), method, key.map(str::to_string), false);
        decide(&tokens(), auth, &need)
    }

    fn status(r: Result<(), Refusal>) -> u16 {
        match r {
            Ok(()) => 200,
            Err(Refusal::Unauthenticated(_)) => 401,
            Err(Refusal::Forbidden(_)) => 403,
        }
    }

    #[test]
    fn the_route_table_gives_each_role_its_routes() {
        let d = "/d/{key:.*}";
        // (route pattern, method, key, Authorization header, expected status)
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, u16);
        let cases: &[Case] = &[
            (d, "GET", Some("k"), None, 401),
            (d, "GET", Some("k"), Some("Bearer nope-nope-nope-nope"), 401),
            (d, "GET", Some("k"), Some("Basic abc"), 401),
            (d, "GET", Some("k"), Some(READ), 200),
            (d, "POST", Some("k"), Some(READ), 403),
            (d, "DELETE", Some("app/x"), Some(READ), 403),
            (d, "POST", Some("app/x"), Some(APP_WRITER), 200),
            (d, "PUT", Some("other"), Some(APP_WRITER), 403),
            (d, "GET", Some("other"), Some(APP_WRITER), 403),
            (d, "POST", None, Some(APP_WRITER), 403),
            (d, "POST", Some("other"), Some(ADMIN), 200),
            ("/cluster/members", "GET", None, Some(APP_WRITER), 200),
            ("/cluster/ring", "GET", None, None, 401),
            (
                "/cluster/locate/{key:.*}",
                "GET",
                Some("other"),
                Some(APP_WRITER),
                403,
            ),
            ("/cluster/local", "GET", None, Some(READ), 403),
            ("/cluster/leave", "POST", None, None, 401),
            ("/cluster/leave", "POST", None, Some(APP_WRITER), 403),
            ("/cluster/leave", "POST", None, Some(APP_ADMIN), 403),
            ("/cluster/leave", "POST", None, Some(ADMIN), 200),
            ("/cluster/local", "GET", None, Some(ADMIN), 200),
            ("/health", "GET", None, None, 200),
            ("/metrics", "GET", None, Some("Bearer nope"), 200),
        ];
        for &(pattern, method, key, auth, want) in cases {
            assert_eq!(
                status(on(pattern, method, key, auth)),
                want,
                "{method} {pattern} key {key:?} with {auth:?}"
            );
        }
    }

    #[test]
    fn protecting_everything_closes_the_open_routes() {
        let need = need(Some("/health"), "GET", None, true);
        assert_eq!(status(decide(&tokens(), None, &need)), 401);
        assert_eq!(status(decide(&tokens(), Some(APP_WRITER), &need)), 200);
        let unmatched = super::need(None, "GET", None, true);
        assert_eq!(status(decide(&tokens(), None, &unmatched)), 401);
        assert_eq!(super::need(None, "GET", None, false), Need::Open);
    }

    #[test]
    fn a_bearer_header_is_parsed_strictly() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
        assert_eq!(bearer("Token abc"), None);
    }
}
