//! The API's OpenAPI 3.1 document, served at `GET /v1/openapi.json` without a token (it
//! holds no tenant's data, and clients and API testers fetch it before they have one).
//!
//! The paths and schemas come from the handlers' `#[utoipa::path]` operations and the
//! types they answer with. What the `/v1` middleware adds to every operation is added here
//! by [`finish`], once: the bearer token, and the errors the middleware itself answers
//! (401, 403 to a write without the scope, 413, 429, 503), and the 500 of a store read
//! that fails midway.

use super::errors::ErrorBody;
use axum::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, Content, Header, OpenApi, Ref, RefOr, ResponseBuilder};

pub const PATH: &str = "/v1/openapi.json";
const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "erpsync",
        description = "Exports accounts-payable documents to ERPs asynchronously: submit a job, \
                       then follow its items. Every `/v1` endpoint but this document takes \
                       `Authorization: Bearer erps_…` and sees only the token's tenant; every \
                       error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "jobs", description = "Submitting, listing, following and cancelling jobs"),
        (name = "items", description = "One document of a job"),
        (name = "dead-letters", description = "Messages whose attempts ran out"),
        (name = "meta", description = "This document"),
        (name = "ops", description = "For load balancers, systemd and scrapers; no token")
    )
)]
pub struct ApiDoc;

/// The document as served: serialized once, when the router is made.
#[derive(Clone)]
pub struct Document(Arc<str>);

impl Document {
    pub fn of(doc: &OpenApi) -> Document {
        Document(doc.to_json().expect("an OpenAPI document serializes").into())
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = serde_json::Value))
)]
pub async fn document(Extension(d): Extension<Document>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], d.0.to_string()).into_response()
}

/// The errors every `/v1` operation can answer, by component name.
const UNAUTHORIZED: &str = "Unauthorized";
const FORBIDDEN: &str = "Forbidden";
const TOO_LARGE: &str = "TooLarge";
const RATE_LIMITED: &str = "RateLimited";
const UNAVAILABLE: &str = "Unavailable";
const INTERNAL: &str = "Internal";

fn error_response(description: &str) -> ResponseBuilder {
    let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
    ResponseBuilder::new().description(description).content("application/json", body)
}

fn header_of(schema_type: Type, description: &str) -> Header {
    HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(schema_type)).description(Some(description)).build()
}

fn shared_responses() -> [(&'static str, ResponseBuilder); 6] {
    [
        (
            UNAUTHORIZED,
            error_response("No token, or a malformed, unknown or revoked one")
                .header("WWW-Authenticate", header_of(Type::String, "`Bearer realm=\"erpsync\"`")),
        ),
        (FORBIDDEN, error_response("The token's scope does not allow this: writing needs `write`")),
        (TOO_LARGE, error_response("The body exceeds `http.max_body_bytes`")),
        (
            RATE_LIMITED,
            error_response("More requests with this token than `http.requests_per_min_per_token`")
                .header("Retry-After", header_of(Type::Integer, "Seconds until a retry is allowed")),
        ),
        (UNAVAILABLE, error_response("The store cannot be reached, or the daemon is shutting down")),
        (INTERNAL, error_response("A read of the store failed midway; the message says how")),
    ]
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("patch", &mut item.patch),
        ("head", &mut item.head),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// Adds what the `/v1` middleware does to every operation behind it.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Components::new);
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("erps_ and 64 hex digits")
        .description(Some("An API token, from `erpsync tokens create --tenant T --scope read|write|admin`"))
        .build();
    components.security_schemes.insert(BEARER.to_owned(), SecurityScheme::Http(bearer));
    for (name, response) in shared_responses() {
        components.responses.insert(name.to_owned(), RefOr::T(response.build()));
    }
    // utoipa carries serde's `deny_unknown_fields` to structs but not to an enum's variants.
    if let Some(RefOr::T(Schema::OneOf(request))) = components.schemas.get_mut("JobRequest") {
        for variant in &mut request.items {
            if let RefOr::T(Schema::Object(o)) = variant {
                o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") || path == PATH {
            continue;
        }
        for (method, op) in operations_mut(item) {
            op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
            let mut add = |status: &str, name: &str| {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
            };
            add("401", UNAUTHORIZED);
            add("429", RATE_LIMITED);
            add("503", UNAVAILABLE);
            add("500", INTERNAL);
            // Reading needs the least scope there is: only a write can be forbidden.
            if method != "get" && method != "head" {
                add("403", FORBIDDEN);
            }
            if op.request_body.is_some() {
                add("413", TOO_LARGE);
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::super::api_doc;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn doc() -> Value {
        serde_json::to_value(api_doc(true)).unwrap()
    }

    /// The paths of every plain axum `route` call in the HTTP sources: a route added that
    /// way bypasses `routes!`, and so the document, unless it is listed there too.
    fn plain_routes() -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http"))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices(".route(\"") {
                    let rest = &text[at + ".route(\"".len()..];
                    found.insert(rest[..rest.find('"').unwrap()].to_owned());
                }
            }
        }
        found
    }

    #[test]
    fn the_document_lists_every_route_of_the_router() {
        let doc = doc();
        let paths: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
        for route in plain_routes() {
            assert!(paths.contains(&route), "{route} is routed but not in the OpenAPI document: route it with routes!");
        }
        let expected = [
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/cancel",
            "/v1/jobs/{id}/bills.csv",
            "/v1/items/{id}",
            "/v1/items/{id}/events",
            "/v1/dead-letters",
            "/v1/dead-letters/redrive",
            "/v1/events",
            "/v1/jobs/{id}/events",
            "/v1/webhooks",
            "/v1/webhooks/{id}",
            "/v1/webhooks/{id}/rotate-secret",
            "/v1/webhooks/{id}/deliveries",
            "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            "/v1/openapi.json",
            "/healthz",
            "/readyz",
            "/metrics",
        ];
        assert_eq!(paths, expected.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>());
        let without_metrics = serde_json::to_value(api_doc(false)).unwrap();
        assert!(without_metrics["paths"].get("/metrics").is_none());
    }

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc = doc();
        let version = doc["openapi"].as_str().unwrap();
        assert!(version.starts_with("3.1."), "{version}");
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not local"));
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn every_v1_operation_takes_the_token_and_names_its_errors() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for (status, r) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                    let body = r.pointer("/content/application~1json/schema/$ref").or_else(|| r.get("$ref"));
                    assert!(body.is_some(), "{method} {path} {status} has no error body");
                }
                if !path.starts_with("/v1/") || path == super::PATH {
                    assert!(op.get("security").is_none(), "{method} {path} needs no token");
                    continue;
                }
                assert_eq!(op["security"], serde_json::json!([{"bearer": []}]), "{method} {path}");
                for status in ["401", "429", "500", "503"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
                assert_eq!(responses.contains_key("403"), method != "get", "{method} {path}");
            }
        }
        let create = &doc["paths"]["/v1/jobs"]["post"];
        for status in ["202", "400", "409", "413", "422"] {
            assert!(create["responses"].get(status).is_some(), "POST /v1/jobs lacks {status}");
        }
        for variant in doc["components"]["schemas"]["JobRequest"]["oneOf"].as_array().unwrap() {
            assert_eq!(variant["additionalProperties"], false, "{variant}");
        }
        let params = create["parameters"].as_array().unwrap();
        assert!(params.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
        for (path, method) in
            [("/v1/jobs/{id}", "get"), ("/v1/jobs/{id}/cancel", "post"), ("/v1/items/{id}/events", "get")]
        {
            let op = &doc["paths"][path][method];
            assert!(op["responses"].get("400").is_some() && op["responses"].get("404").is_some(), "{path}");
            let id = &op["parameters"][0];
            assert_eq!(
                (&id["name"], &id["in"], &id["schema"]["format"]),
                (&"id".into(), &"path".into(), &"uuid".into())
            );
        }
        let list = doc["paths"]["/v1/jobs"]["get"]["parameters"].as_array().unwrap();
        let names: BTreeSet<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, BTreeSet::from(["connection", "state", "since_ms", "limit", "cursor"]));
    }
}
