//! The QuickBooks Online dialect: Intuit's Accounting API v3 (`/v3/company/{realmId}/…`)
//! and OAuth 2.0 token endpoint (`/oauth2/v1/tokens/bearer`), answering as Intuit
//! documents — `requestid` replays, `Fault` bodies, per-realm limits, the multipart upload.
//! This file holds the routes and handlers; `quickbooks_state` admits API calls;
//! `token_book` keeps the tokens and `quickbooks_token` answers for them; `quickbooks_books` a company's records;
//! `quickbooks_query` the query language; `quickbooks_multipart` the upload body;
//! `quickbooks_wire` Intuit's answer shapes. The wire contract and its sources:
//! `quickbooks.md`.

use super::quickbooks_multipart as multipart;
use super::quickbooks_query as query;
use super::quickbooks_state::Qbo;
use super::quickbooks_token;
use super::quickbooks_wire::{FaultError, time, validation};
use super::sim::{Dialect, Sim};
use super::token_book::{Reconnect, Revoke};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

pub use super::quickbooks_books::{QBO_ACCOUNTS, QBO_INACTIVE_VENDOR, QBO_ITEMS, QBO_VENDORS};
pub use super::quickbooks_options::{QBO_SANDBOX_REALM, QuickbooksClient, QuickbooksOptions};

/// Intuit's Accounting API and token endpoint.
pub static QUICKBOOKS_ONLINE: Dialect = Dialect { name: "quickbooks_online", routes };

/// `requestid` is at most 50 characters (Intuit).
const REQUEST_ID_MAX: usize = 50;

fn routes(sim: Arc<Sim>) -> Router {
    let q = Arc::new(Qbo::new(sim));
    Router::new()
        .route("/__sandbox/stats", get(|State(q): State<Arc<Qbo>>| async move { axum::Json(q.sim.stats()) }))
        .route("/__sandbox/quickbooks/revoke", post(revoke))
        .route("/__sandbox/quickbooks/reconnect", post(reconnect))
        .route("/__sandbox/quickbooks/expire-access-tokens", post(expire_access_tokens))
        .route("/oauth2/v1/tokens/bearer", post(token))
        .route("/v3/company/{realm}/bill", post(|s, p, q, h, b| create(s, p, q, h, b, "Bill")))
        .route("/v3/company/{realm}/purchaseorder", post(|s, p, q, h, b| create(s, p, q, h, b, "PurchaseOrder")))
        .route("/v3/company/{realm}/billpayment", post(|s, p, q, h, b| create(s, p, q, h, b, "BillPayment")))
        .route("/v3/company/{realm}/query", get(run_query))
        .route("/v3/company/{realm}/upload", post(upload))
        .with_state(q)
}

fn answer((status, body): (StatusCode, Value)) -> Response {
    (status, axum::Json(body)).into_response()
}

/// `POST /oauth2/v1/tokens/bearer`: the refresh-token grant.
async fn token(State(q): State<Arc<Qbo>>, headers: HeaderMap, body: Bytes) -> Response {
    q.sim.counters.requests.fetch_add(1, SeqCst);
    let (answer, refreshed) =
        quickbooks_token::grant(&mut *q.tokens.lock().await, &headers, &body, &q.sim.opts.quickbooks);
    if refreshed {
        q.sim.counters.refreshes.fetch_add(1, SeqCst);
    }
    answer
}

/// `POST /__sandbox/quickbooks/revoke` `{"client_id"}` (every token of the client dies, as
/// when the user disconnects the app) or `{"refresh_token"}` (that one only).
async fn revoke(State(q): State<Arc<Qbo>>, axum::Json(r): axum::Json<Revoke>) -> Response {
    let revoked = q.tokens.lock().await.revoke(&r);
    axum::Json(json!({"revoked": revoked})).into_response()
}

/// `POST /__sandbox/quickbooks/reconnect` `{"client_id"}`: a new refresh token for the
/// client, as when the user connects the app again (the authorization-code flow).
async fn reconnect(State(q): State<Arc<Qbo>>, axum::Json(r): axum::Json<Reconnect>) -> Response {
    match q.tokens.lock().await.reconnect(&r.client_id) {
        Some(token) => axum::Json(json!({"refresh_token": token})).into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /__sandbox/quickbooks/expire-access-tokens`: every access token issued so far
/// expires now, so a test can expire one mid-export without waiting out its lifetime.
async fn expire_access_tokens(State(q): State<Arc<Qbo>>) -> Response {
    let expired = q.tokens.lock().await.expire_access();
    axum::Json(json!({"expired": expired})).into_response()
}

/// `POST /v3/company/{realm}/{entity}?minorversion=N&requestid=R`: one create. A
/// `requestid` seen before in this company answers the original response, success or
/// refusal, and does nothing else.
async fn create(
    State(q): State<Arc<Qbo>>,
    Path(realm): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
    entity: &'static str,
) -> Response {
    let _admitted = match q.admit(&headers, &realm).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let c = &q.sim.counters;
    let request_id = params.get("requestid").filter(|r| !r.is_empty());
    if let Some(r) = request_id.filter(|r| r.chars().count() > REQUEST_ID_MAX) {
        c.rejected.fetch_add(1, SeqCst);
        let detail = format!("requestid is {} characters; at most {REQUEST_ID_MAX} are allowed", r.chars().count());
        let error = FaultError {
            code: "2050",
            message: "String length is either shorter or longer than supported by specification",
            detail,
            element: "requestid",
        };
        return answer(validation(error));
    }
    let (result, created) = {
        let mut books = q.books.lock().await;
        let company = books.get_mut(&realm).expect("admission checked the realm");
        if let Some(original) = request_id.and_then(|r| company.requests.get(r)) {
            c.replays.fetch_add(1, SeqCst);
            return answer(original.clone());
        }
        let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let result = match company.create(entity, doc, q.sim.opts.quickbooks.warn_duplicate_doc_number) {
            Ok((record, duplicate)) => {
                c.creates.fetch_add(1, SeqCst);
                if duplicate {
                    c.duplicate_creates.fetch_add(1, SeqCst);
                }
                let mut body = json!({"time": time()});
                body[entity] = record;
                (StatusCode::OK, body)
            }
            Err(error) => {
                c.rejected.fetch_add(1, SeqCst);
                validation(error)
            }
        };
        if let Some(r) = request_id {
            company.requests.insert(r.clone(), result.clone());
        }
        let created = result.0 == StatusCode::OK;
        (result, created)
    };
    let o = &q.sim.opts;
    if created && o.timeout_rate > 0.0 && rand::random::<f64>() < o.timeout_rate {
        c.stalls.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(o.stall_ms)).await;
    }
    answer(result)
}

/// `GET /v3/company/{realm}/query?query=select * from …`.
async fn run_query(
    State(q): State<Arc<Qbo>>,
    Path(realm): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let _admitted = match q.admit(&headers, &realm).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    q.sim.counters.lookups.fetch_add(1, SeqCst);
    let parsed = match query::parse(params.get("query").map(String::as_str).unwrap_or("")) {
        Ok(p) => p,
        Err(error) => return answer(validation(error)),
    };
    let all = q.books.lock().await.get(&realm).map(|c| c.lists(parsed.entity)).unwrap_or_default();
    let rows = parsed.select(all);
    let response = if rows.is_empty() {
        json!({})
    } else {
        let mut r = json!({"startPosition": parsed.start, "maxResults": rows.len()});
        r[parsed.entity] = Value::Array(rows);
        r
    };
    axum::Json(json!({"QueryResponse": response, "time": time()})).into_response()
}

/// `POST /v3/company/{realm}/upload`: multipart with `file_metadata_01` (the Attachable,
/// JSON) and `file_content_01` (the file).
async fn upload(State(q): State<Arc<Qbo>>, Path(realm): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let _admitted = match q.admit(&headers, &realm).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let c = &q.sim.counters;
    let refuse = |detail: String| {
        c.rejected.fetch_add(1, SeqCst);
        answer(validation(FaultError {
            code: "2010",
            message: "Request has invalid or unsupported property",
            detail,
            element: "",
        }))
    };
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(boundary) = multipart::boundary(content_type) else {
        return refuse(format!("the upload must be multipart/form-data, not {content_type:?}"));
    };
    let parts = match multipart::parse(&boundary, &body) {
        Ok(p) => p,
        Err(why) => return refuse(format!("unreadable multipart body: {why}")),
    };
    let part = |name: &str| parts.iter().find(|p| p.name == name);
    let (Some(meta), Some(file)) = (part("file_metadata_01"), part("file_content_01")) else {
        return refuse("the upload needs the parts file_metadata_01 and file_content_01".into());
    };
    let Ok(meta_json) = serde_json::from_slice::<Value>(&meta.data) else {
        return refuse("file_metadata_01 is not a JSON Attachable".into());
    };
    let result = q.books.lock().await.get_mut(&realm).expect("admission checked the realm").attach(
        &realm,
        meta_json,
        file.file_name.clone(),
        &file.data,
    );
    match result {
        Ok((attachable, duplicate)) => {
            c.attachments.fetch_add(1, SeqCst);
            if duplicate {
                c.duplicate_attachments.fetch_add(1, SeqCst);
            }
            let body = json!({"AttachableResponse": [{"Attachable": attachable}], "time": time()});
            axum::Json(body).into_response()
        }
        Err(error) => {
            c.rejected.fetch_add(1, SeqCst);
            answer(validation(error))
        }
    }
}
