//! The NetSuite dialect: NetSuite's REST record API (`/services/rest/record/v1/…`) for
//! vendorBill, purchaseOrder and vendorPayment records, answering as Oracle documents it —
//! token-based authentication checked by recomputing the signature, the account's
//! concurrency limit, 204 + `Location` on a write, the upsert by external id with its
//! `replace` parameter, lookups by internal or external id, `o:errorDetails` errors. This
//! file holds the routes and handlers; `netsuite_auth` admits calls; `netsuite_books` keeps
//! the records; `netsuite_wire` the error bodies. The wire contract and its sources:
//! `netsuite.md`.

use super::netsuite_auth::Netsuite;
use super::netsuite_books::{self, CURRENCIES, record_type};
use super::netsuite_wire::{invalid_content, not_found};
use super::sim::{Dialect, Sim};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

pub use super::netsuite_books::{NETSUITE_ACCOUNTS, NETSUITE_INACTIVE_VENDOR, NETSUITE_VENDORS};

/// NetSuite's REST record API with token-based authentication.
pub static NETSUITE: Dialect = Dialect { name: "netsuite", routes };

const ROOT: &str = "/services/rest/record/v1";

fn routes(sim: Arc<Sim>) -> Router {
    let ns = Arc::new(Netsuite::new(sim));
    Router::new()
        .route("/__sandbox/stats", get(|State(ns): State<Arc<Netsuite>>| async move { axum::Json(ns.sim.stats()) }))
        .route("/__sandbox/netsuite/revoke", post(revoke))
        .route(&format!("{ROOT}/currency"), get(currencies))
        .route(&format!("{ROOT}/{{record}}"), post(create))
        .route(&format!("{ROOT}/{{record}}/{{key}}"), get(read).put(upsert))
        .with_state(ns)
}

/// `POST /__sandbox/netsuite/revoke`: the token is revoked (as an administrator does under
/// Setup > Users/Roles > Access Tokens); every call is refused 401 from now on.
async fn revoke(State(ns): State<Arc<Netsuite>>) -> Response {
    ns.revoked.store(true, SeqCst);
    axum::Json(json!({"revoked": true})).into_response()
}

/// The URL of a record as `Location` gives it.
fn location(headers: &HeaderMap, record: &str, id: &str) -> String {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}{ROOT}/{record}/{id}")
}

/// 204 without a body, the record's URL in `Location` ("Creating a Record Instance").
fn written(headers: &HeaderMap, record: &str, id: &str) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&location(headers, record, id)) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// A "timeout after commit" at the configured rate: the record is written, then the answer
/// stalls past the client's patience.
async fn maybe_stall(ns: &Netsuite) {
    let o = &ns.sim.opts;
    if o.timeout_rate > 0.0 && rand::random::<f64>() < o.timeout_rate {
        ns.sim.counters.stalls.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(o.stall_ms)).await;
    }
}

/// A query parameter, decoded as a form.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://sandbox/?{}", uri.query().unwrap_or(""))).ok()?;
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn parse_body(body: &[u8]) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new(invalid_content(&format!("Invalid JSON in the request body: {e}"), None)))
}

/// `POST /{record}`: creates a record.
async fn create(
    State(ns): State<Arc<Netsuite>>,
    Path(record): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _guard = match ns.admit(&method, &uri, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let Some(record) = record_type(&record) else { return not_found() };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let eid = body["externalId"].as_str().unwrap_or("").to_owned();
    let c = &ns.sim.counters;
    let mut books = ns.sim.books.lock().await;
    if let Some(r) = netsuite_books::check(&books, record, &body) {
        c.rejected.fetch_add(1, SeqCst);
        return r;
    }
    let id = netsuite_books::create(&mut books, record, &eid, body, c);
    drop(books);
    maybe_stall(&ns).await;
    written(&headers, record, &id)
}

/// `PUT /{record}/eid:{externalId}?replace=…`: creates the record with that external id or
/// updates it ("Using the Upsert Operation"); `PUT /{record}/{id}` updates by internal id.
async fn upsert(
    State(ns): State<Arc<Netsuite>>,
    Path((record, key)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _guard = match ns.admit(&method, &uri, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let Some(record) = record_type(&record) else { return not_found() };
    let mut body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let replace_param = query_param(&uri, "replace").unwrap_or_default();
    let replace: Vec<&str> = replace_param.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let c = &ns.sim.counters;
    let mut books = ns.sim.books.lock().await;
    if let Some(r) = netsuite_books::check(&books, record, &body) {
        c.rejected.fetch_add(1, SeqCst);
        return r;
    }
    let id = match key.strip_prefix("eid:") {
        Some(eid) => {
            body["externalId"] = Value::String(eid.to_owned());
            match netsuite_books::find(&books, record, eid) {
                Some(at) => {
                    c.replays.fetch_add(1, SeqCst);
                    netsuite_books::update(&mut books, record, at, &body, &replace)
                }
                None => netsuite_books::create(&mut books, record, eid, body, c),
            }
        }
        None => match netsuite_books::find_id(&books, record, &key) {
            Some(at) => netsuite_books::update(&mut books, record, at, &body, &replace),
            None => return not_found(),
        },
    };
    drop(books);
    maybe_stall(&ns).await;
    written(&headers, record, &id)
}

/// `GET /{record}/{id}` or `GET /{record}/eid:{externalId}`: the record, with its `id`,
/// `externalId` and `links`.
async fn read(
    State(ns): State<Arc<Netsuite>>,
    Path((record, key)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let _guard = match ns.admit(&method, &uri, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let Some(record) = record_type(&record) else { return not_found() };
    ns.sim.counters.lookups.fetch_add(1, SeqCst);
    let books = ns.sim.books.lock().await;
    let at = match key.strip_prefix("eid:") {
        Some(eid) => netsuite_books::find(&books, record, eid),
        None => netsuite_books::find_id(&books, record, &key),
    };
    let Some(at) = at else { return not_found() };
    let doc = &books.docs[record][at];
    let mut v = doc.body.clone();
    v["id"] = Value::String(doc.id.clone());
    v["externalId"] = Value::String(doc.external_ref.clone());
    v["links"] = json!([{"rel": "self", "href": location(&headers, record, &doc.id)}]);
    axum::Json(v).into_response()
}

/// `GET /currency?q=symbol IS "EUR"`: the account's currencies, filtered by symbol.
async fn currencies(State(ns): State<Arc<Netsuite>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let _guard = match ns.admit(&method, &uri, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let wanted = match query_param(&uri, "q") {
        None => None,
        Some(q) => match q.trim().strip_prefix("symbol IS ") {
            Some(v) => Some(v.trim().trim_matches('"').to_owned()),
            None => return invalid_content(&format!("Invalid search query: {q}"), None),
        },
    };
    let items: Vec<Value> = CURRENCIES
        .iter()
        .filter(|(_, symbol)| wanted.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(symbol)))
        .map(|(id, _)| json!({"links": [{"rel": "self", "href": location(&headers, "currency", id)}], "id": id}))
        .collect();
    let n = items.len();
    axum::Json(json!({"links": [], "count": n, "hasMore": false, "items": items, "offset": 0, "totalResults": n}))
        .into_response()
}
