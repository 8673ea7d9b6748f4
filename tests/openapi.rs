//! The OpenAPI document (`assets/openapi.json`, served at `GET /openapi.json`)
//! cannot drift from the code: its operations are exactly the routes
//! `api::configure` registers (`api::ROUTES`), every status a handler can answer
//! is documented on its operation and nothing else is, and every error body
//! `error.rs` produces fits the documented error schema.
//!
//! `scripts/schemathesis.sh` fuzzes a running node against the same document.

#![allow(clippy::unwrap_used)]

use actix_web::body::to_bytes;
use actix_web::http::{header, StatusCode};
use actix_web::test as service;
use actix_web::{App, ResponseError};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use swimkv::api::error::ApiError;
use swimkv::api::{self, openapi, ROUTES};

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
];

fn doc() -> Value {
    serde_json::from_str(openapi::DOCUMENT).expect("assets/openapi.json is not JSON")
}

/// An actix path pattern as OpenAPI writes it: `/d/{key:.*}` -> `/d/{key}`.
fn openapi_path(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        let name = rest[open + 1..close].split(':').next().unwrap();
        out.push_str(&rest[..open]);
        out.push_str(&format!("{{{name}}}"));
        rest = &rest[close + 1..];
    }
    out + rest
}

/// A concrete request path for a route pattern (`/d/{key:.*}` -> `/d/k`).
fn concrete(pattern: &str) -> String {
    openapi_path(pattern).replace("{key}", "k")
}

/// The served (path, method) pairs, from `api::ROUTES`.
fn served() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .flat_map(|(path, allow)| {
            allow
                .split(", ")
                .map(|m| (openapi_path(path), m.to_lowercase()))
        })
        .collect()
}

/// The documented (path, method) pairs.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let verbs = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| verbs.contains(&k.as_str()))
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect()
}

/// Follows a local `$ref` (`#/components/...`) until a non-reference object.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        v = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    v
}

/// The values the `error` property of a (possibly `allOf`) schema may take.
fn error_kinds(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        // Every part constrains `error`; the allowed kinds are their intersection.
        return parts
            .iter()
            .map(|p| error_kinds(doc, p))
            .filter(|k| !k.is_empty())
            .reduce(|a, b| a.intersection(&b).cloned().collect())
            .unwrap_or_default();
    }
    if let Some(parts) = schema.get("anyOf").and_then(Value::as_array) {
        return parts.iter().flat_map(|p| error_kinds(doc, p)).collect();
    }
    let error = resolve(doc, &schema["properties"]["error"]);
    error["enum"]
        .as_array()
        .map(|e| e.iter().map(|k| k.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The properties a (possibly `allOf`/`anyOf`) object schema declares.
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(doc, schema);
    let mut out: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for combinator in ["allOf", "anyOf"] {
        for part in schema[combinator].as_array().into_iter().flatten() {
            out.extend(properties(doc, part));
        }
    }
    out
}

/// One of every `ApiError`. The `match` stops compiling when a variant is added,
/// so the new one is added here (and then has to be documented).
fn every_error() -> Vec<ApiError> {
    let all = vec![
        ApiError::NotFound { key: "k".into() },
        ApiError::bad_request("bad"),
        ApiError::TooLarge { limit: 1024 },
        ApiError::Unavailable {
            needed: 2,
            succeeded: 1,
            failed: 1,
            replicas: 3,
        },
        ApiError::Overloaded,
        ApiError::MethodNotAllowed { allow: "GET" },
        ApiError::NoRoute,
        ApiError::ShuttingDown,
        ApiError::NotJoined,
        ApiError::PreconditionFailed {
            key: "k".into(),
            current: Some("\"v\"".into()),
        },
        ApiError::ClockSkew,
        ApiError::HandoffIncomplete {
            reason: "push failed".into(),
        },
        ApiError::StorageUnavailable,
        ApiError::Unauthenticated {
            message: "a bearer token is required",
        },
        ApiError::Forbidden {
            message: "no".into(),
        },
    ];
    for e in &all {
        match e {
            ApiError::NotFound { .. }
            | ApiError::BadRequest { .. }
            | ApiError::TooLarge { .. }
            | ApiError::Unavailable { .. }
            | ApiError::Overloaded
            | ApiError::MethodNotAllowed { .. }
            | ApiError::NoRoute
            | ApiError::ShuttingDown
            | ApiError::NotJoined
            | ApiError::PreconditionFailed { .. }
            | ApiError::ClockSkew
            | ApiError::HandoffIncomplete { .. }
            | ApiError::StorageUnavailable
            | ApiError::Unauthenticated { .. }
            | ApiError::Forbidden { .. } => {}
        }
    }
    all
}

/// Per (path, method): success statuses and the errors it can answer.
type Answers = BTreeMap<(&'static str, &'static str), (Vec<u16>, Vec<ApiError>)>;

/// What each operation can answer: its success statuses and the errors its handler
/// (and the 405 of its resource) can return, read off `handlers.rs`, plus the
/// refusals of bearer-token authentication (`security::access`): 401 and 403 on
/// every operation that needs a role, only 401 on the open ones (under
/// `--auth-everything` any valid token may call them).
fn answers() -> Answers {
    use ApiError::*;
    let quorum = Unavailable {
        needed: 2,
        succeeded: 0,
        failed: 2,
        replicas: 3,
    };
    let bad = ApiError::bad_request("bad");
    let wrong = MethodNotAllowed { allow: "GET" };
    let common = [Overloaded, ShuttingDown, NotJoined, wrong.clone()];
    let failed = PreconditionFailed {
        key: "k".into(),
        current: None,
    };
    let read = [NotFound { key: "k".into() }, bad.clone(), quorum.clone()];
    let write = [
        TooLarge { limit: 1 },
        bad.clone(),
        quorum.clone(),
        failed.clone(),
        ClockSkew,
        StorageUnavailable,
    ];
    let delete = [bad.clone(), quorum, failed, ClockSkew, StorageUnavailable];
    let unauthenticated = Unauthenticated {
        message: "a bearer token is required",
    };
    // A route that needs a role (read, write or admin).
    let guarded = [
        unauthenticated.clone(),
        Forbidden {
            message: "no".into(),
        },
    ];
    // An open route: refused only under --auth-everything, and never with a 403.
    let open = [unauthenticated];
    let cat = |a: &[ApiError], b: &[ApiError]| [a, b].concat();
    let cat3 = |a: &[ApiError], b: &[ApiError], c: &[ApiError]| [a, b, c].concat();
    BTreeMap::from([
        (
            ("/d/{key}", "get"),
            (vec![200], cat3(&read, &common, &guarded)),
        ),
        (
            ("/d/{key}", "post"),
            (vec![200], cat3(&write, &common, &guarded)),
        ),
        (
            ("/d/{key}", "put"),
            (vec![200], cat3(&write, &common, &guarded)),
        ),
        (
            ("/d/{key}", "delete"),
            (vec![200], cat3(&delete, &common, &guarded)),
        ),
        (
            ("/cluster/members", "get"),
            (vec![200], cat(&[ShuttingDown, wrong.clone()], &guarded)),
        ),
        (
            ("/cluster/ring", "get"),
            (vec![200], cat(&[ShuttingDown, wrong.clone()], &guarded)),
        ),
        (
            ("/cluster/locate/{key}", "get"),
            (
                vec![200],
                cat(&[bad.clone(), ShuttingDown, wrong.clone()], &guarded),
            ),
        ),
        (
            ("/cluster/local", "get"),
            (
                vec![200],
                cat(&[bad, ShuttingDown, wrong.clone()], &guarded),
            ),
        ),
        (
            ("/cluster/leave", "post"),
            (
                vec![200],
                cat(
                    &[
                        ShuttingDown,
                        HandoffIncomplete {
                            reason: "push failed".into(),
                        },
                        wrong.clone(),
                    ],
                    &guarded,
                ),
            ),
        ),
        // Not ready is a 503 with the readiness body, not an error.
        (
            ("/ready", "get"),
            (vec![200, 503], cat(&[ShuttingDown, wrong.clone()], &open)),
        ),
        (
            ("/health", "get"),
            (vec![200], cat(std::slice::from_ref(&wrong), &open)),
        ),
        (
            ("/metrics", "get"),
            (vec![200], cat(std::slice::from_ref(&wrong), &open)),
        ),
        (
            ("/", "get"),
            (vec![200], cat(std::slice::from_ref(&wrong), &open)),
        ),
        (("/openapi.json", "get"), (vec![200], cat(&[wrong], &open))),
    ])
}

#[test]
fn the_document_is_openapi_3_0_with_the_crate_version_and_every_reference_resolves() {
    let doc = doc();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0."));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    fn walk(doc: &Value, v: &Value) {
        match v {
            Value::Object(o) => {
                if o.contains_key("$ref") {
                    resolve(doc, v);
                }
                o.values().for_each(|x| walk(doc, x));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(doc, x)),
            _ => {}
        }
    }
    walk(&doc, &doc);
    let mut ids = BTreeSet::new();
    for (path, method) in documented(&doc) {
        let id = doc["paths"][&path][&method]["operationId"]
            .as_str()
            .unwrap();
        assert!(ids.insert(id.to_string()), "operationId {id} twice");
    }
}

#[test]
fn the_documented_operations_are_exactly_the_routes_configure_registers() {
    let doc = doc();
    let served = served();
    let documented = documented(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented: {undocumented:?}; documented but not served: {unserved:?}"
    );
    // Every path parameter of a route is declared.
    for (pattern, _) in ROUTES {
        let path = openapi_path(pattern);
        let item = &doc["paths"][&path];
        for name in path
            .split('{')
            .skip(1)
            .map(|s| s.split('}').next().unwrap())
        {
            let declared = item["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true);
            assert!(declared, "{path}: path parameter {name} not declared");
        }
    }
}

#[actix_web::test]
async fn configure_serves_exactly_the_routes_table_and_answers_other_methods_with_405() {
    // No AppState: a handler that needs it fails with 500, which still shows the
    // route matched; 404 or 405 would mean it did not.
    let app = service::init_service(App::new().configure(api::configure)).await;
    for (pattern, allow) in ROUTES {
        let uri = concrete(pattern);
        let served: Vec<&str> = allow.split(", ").collect();
        for method in METHODS {
            let req = service::TestRequest::default()
                .method(method.parse().unwrap())
                .uri(&uri)
                .to_request();
            if *pattern == "/cluster/leave" && method == "POST" {
                continue; // without AppState it is refused anyway, but never call it
            }
            let res = service::call_service(&app, req).await;
            if served.contains(&method) {
                assert!(
                    ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED]
                        .contains(&res.status()),
                    "{method} {uri}: {}",
                    res.status()
                );
            } else {
                assert_eq!(
                    res.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {uri}"
                );
                assert_eq!(
                    res.headers().get(header::ALLOW).unwrap(),
                    *allow,
                    "{method} {uri}"
                );
            }
        }
    }
    let req = service::TestRequest::get()
        .uri("/no/such/route")
        .to_request();
    assert_eq!(
        service::call_service(&app, req).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn the_document_is_served_at_openapi_json_as_json() {
    let app = service::init_service(App::new().configure(api::configure)).await;
    let res = service::call_service(
        &app,
        service::TestRequest::get()
            .uri("/openapi.json")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let body = service::read_body(res).await;
    assert_eq!(body, openapi::DOCUMENT.as_bytes());
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/openapi.json")).unwrap();
    assert_eq!(body, bytes, "the binary embeds a stale document");
}

#[test]
fn every_status_an_operation_can_answer_is_documented_and_nothing_else_is() {
    let doc = doc();
    let answers = answers();
    let listed: BTreeSet<(String, String)> = answers
        .keys()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(
        listed,
        served(),
        "answers() must cover every served operation"
    );

    for ((path, method), (success, errors)) in &answers {
        let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
        let documented: BTreeSet<u16> = responses.keys().map(|s| s.parse().unwrap()).collect();
        let mut expected: BTreeSet<u16> = success.iter().copied().collect();
        expected.extend(errors.iter().map(|e| e.status_code().as_u16()));
        assert_eq!(documented, expected, "{} {path}", method.to_uppercase());

        for error in errors {
            let status = error.status_code().as_u16().to_string();
            let response = resolve(&doc, &responses[&status]);
            let schema = &response["content"]["application/json"]["schema"];
            assert!(
                error_kinds(&doc, schema).contains(error.kind()),
                "{} {path}: the {status} schema does not allow error kind {:?}",
                method.to_uppercase(),
                error.kind()
            );
            if status == "405" {
                assert_eq!(response["headers"]["Allow"]["required"], true, "{path}");
            }
            if status == "401" {
                assert_eq!(
                    response["headers"]["WWW-Authenticate"]["required"], true,
                    "{path}"
                );
            }
        }
    }

    // The list for the data route, spelled out.
    let data: BTreeSet<&str> = ["get", "post", "put", "delete"]
        .iter()
        .flat_map(|m| {
            doc["paths"]["/d/{key}"][m]["responses"]
                .as_object()
                .unwrap()
                .keys()
        })
        .map(String::as_str)
        .collect();
    assert_eq!(
        data,
        BTreeSet::from(["200", "400", "401", "403", "404", "405", "412", "413", "503"])
    );
    let ok = resolve(&doc, &doc["paths"]["/d/{key}"]["get"]["responses"]["200"]);
    assert!(ok["content"]["application/octet-stream"].is_object());
    for h in ["X-Swimkv-Version", "ETag"] {
        assert_eq!(ok["headers"][h]["required"], true, "{h}");
    }
}

#[actix_web::test]
async fn every_error_body_fits_the_documented_error_schema() {
    let doc = doc();
    let schema = &doc["components"]["schemas"]["Error"];
    let kinds = error_kinds(&doc, schema);
    let fields = properties(&doc, schema);
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, BTreeSet::from(["error", "message"]));
    for error in every_error() {
        assert!(
            kinds.contains(error.kind()),
            "kind {:?} undocumented",
            error.kind()
        );
        let res = error.error_response();
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let body: Value =
            serde_json::from_slice(&to_bytes(res.into_body()).await.unwrap()).unwrap();
        for field in body.as_object().unwrap().keys() {
            assert!(
                fields.contains(field),
                "{error:?}: field {field} undocumented"
            );
        }
    }
}

#[test]
fn leave_is_documented_but_marked_so_fuzzers_skip_it() {
    let doc = doc();
    let leave = &doc["paths"]["/cluster/leave"]["post"];
    assert_eq!(leave["x-swimkv-disruptive"], true);
    assert!(leave["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "disruptive"));
    for (path, method) in documented(&doc) {
        let op = &doc["paths"][&path][&method];
        let tagged = op["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "disruptive");
        assert_eq!(tagged, op["x-swimkv-disruptive"] == true, "{method} {path}");
    }
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/schemathesis.sh"
    ))
    .unwrap();
    assert!(script.contains("--exclude-tag disruptive"));
}

#[test]
fn every_operation_takes_an_optional_bearer_token() {
    let doc = doc();
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    // Per operation, not global: without --auth-tokens no token is needed.
    assert!(doc.get("security").is_none(), "no top-level security");
    let optional = serde_json::json!([{"bearerAuth": []}, {}]);
    for (path, method) in documented(&doc) {
        let op = &doc["paths"][&path][&method];
        assert_eq!(op["security"], optional, "{} {path}", method.to_uppercase());
        assert!(
            op["description"]
                .as_str()
                .is_some_and(|d| d.contains("--auth-tokens")),
            "{} {path}: the description does not say what token it needs",
            method.to_uppercase()
        );
    }
    let refused = ApiError::Unauthenticated {
        message: "a bearer token is required",
    }
    .error_response();
    assert_eq!(
        refused.headers().get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer realm=\"swimkv\""
    );
}
