//! The generic REST protocol's routes: create, look up and list documents, attach PDFs,
//! and the lists an importer reads.

use super::admission::admit;
use super::sim::{Dialect, Doc, Sim, applications, error};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use tokio::time::Instant;

/// The generic REST protocol.
pub static GENERIC_REST: Dialect = Dialect { name: "generic_rest", routes };

const COLLECTIONS: [&str; 3] = ["bills", "purchase-orders", "bill-payments"];

fn routes(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/__sandbox/stats", get(|State(s): State<Arc<Sim>>| async move { axum::Json(s.stats()) }))
        .route("/bills", post(create_bill).get(list_bills))
        .route("/purchase-orders", post(create_po).get(list_pos))
        .route("/bill-payments", post(create_payment).get(list_payments))
        .route("/payments", get(list_payments))
        .route("/bills/{id}/attachments", post(attach))
        .route("/vendors", get(list_vendors))
        .route("/gl-accounts", get(list_gl_accounts))
        .with_state(sim)
}

fn key_of(headers: &HeaderMap) -> Option<String> {
    headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn create(sim: Arc<Sim>, collection: &'static str, headers: HeaderMap, body: Bytes) -> Response {
    let _guard = match admit(&sim, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let c = &sim.counters;
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        c.rejected.fetch_add(1, SeqCst);
        return error(StatusCode::BAD_REQUEST, "bad_json", "body is not JSON");
    };
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let external_ref = text(&doc["external_ref"]);
    let vendor = text(&doc["vendor"]["id"]);
    let number = text(&doc["number"]);
    if external_ref.is_empty() || vendor.is_empty() {
        c.rejected.fetch_add(1, SeqCst);
        return error(StatusCode::UNPROCESSABLE_ENTITY, "validation", "external_ref and vendor.id are required");
    }
    if vendor == "V-INACTIVE" {
        c.rejected.fetch_add(1, SeqCst);
        return error(StatusCode::UNPROCESSABLE_ENTITY, "vendor_inactive", format!("vendor {vendor} is inactive"));
    }
    let ttl = Duration::from_secs(sim.opts.idempotency_ttl_secs);
    let id = {
        let mut books = sim.books.lock().await;
        let key = key_of(&headers).map(|k| (collection.to_owned(), k));
        if let Some(k) = &key
            && let Some((id, at)) = books.keys.get(k)
            && at.elapsed() < ttl
        {
            c.replays.fetch_add(1, SeqCst);
            return (StatusCode::OK, axum::Json(json!({"id": id}))).into_response();
        }
        let number_owner = books.by_number.get(&(collection, vendor.clone(), number.clone()));
        if !number.is_empty() && number_owner.is_some_and(|r| *r != external_ref) {
            c.rejected.fetch_add(1, SeqCst);
            return error(
                StatusCode::CONFLICT,
                "duplicate_number",
                format!("vendor {vendor} already has a document numbered {number}"),
            );
        }
        let applied = match collection {
            "bill-payments" => match applications(&books, &doc) {
                Ok(applied) => applied,
                Err(why) => {
                    c.rejected.fetch_add(1, SeqCst);
                    return error(StatusCode::UNPROCESSABLE_ENTITY, "overapplied", why);
                }
            },
            _ => Vec::new(),
        };
        if books.by_ref.contains_key(&(collection, external_ref.clone())) {
            c.duplicate_creates.fetch_add(1, SeqCst);
        }
        books.next_id += 1;
        let id = format!("{}-{}", &collection[..1], books.next_id);
        if collection == "bills" {
            let total = doc["total"].as_str().and_then(|t| t.parse().ok()).unwrap_or_default();
            books.bills.insert(id.clone(), (total, Decimal::ZERO));
        }
        for (bill, amount) in applied {
            if let Some((_, paid)) = books.bills.get_mut(&bill) {
                *paid += amount;
            }
        }
        let docs = books.docs.entry(collection).or_default();
        let at = docs.len();
        docs.push(Doc { id: id.clone(), external_ref: external_ref.clone(), body: doc });
        books.by_ref.entry((collection, external_ref.clone())).or_default().push(at);
        books.by_number.entry((collection, vendor, number)).or_insert(external_ref);
        books.ids.insert(id.clone());
        if let Some(k) = key.filter(|_| !ttl.is_zero()) {
            books.keys.insert(k, (id.clone(), Instant::now()));
        }
        c.creates.fetch_add(1, SeqCst);
        id
    };
    if sim.opts.timeout_rate > 0.0 && rand::random::<f64>() < sim.opts.timeout_rate {
        c.stalls.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(sim.opts.stall_ms)).await;
    }
    (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response()
}

async fn create_bill(State(s): State<Arc<Sim>>, h: HeaderMap, b: Bytes) -> Response {
    create(s, COLLECTIONS[0], h, b).await
}
async fn create_po(State(s): State<Arc<Sim>>, h: HeaderMap, b: Bytes) -> Response {
    create(s, COLLECTIONS[1], h, b).await
}
async fn create_payment(State(s): State<Arc<Sim>>, h: HeaderMap, b: Bytes) -> Response {
    create(s, COLLECTIONS[2], h, b).await
}

#[derive(Deserialize)]
struct ListQuery {
    external_ref: Option<String>,
    cursor: Option<String>,
}

const PAGE: usize = 100;

fn page(all: Vec<Value>, cursor: Option<&str>) -> Response {
    let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
    let items: Vec<Value> = all.iter().skip(start).take(PAGE).cloned().collect();
    let next = (start + PAGE < all.len()).then(|| (start + PAGE).to_string());
    axum::Json(json!({"items": items, "next_cursor": next})).into_response()
}

async fn list(sim: Arc<Sim>, collection: &'static str, headers: HeaderMap, q: ListQuery) -> Response {
    let _guard = match admit(&sim, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if q.external_ref.is_some() {
        sim.counters.lookups.fetch_add(1, SeqCst);
    }
    let books = sim.books.lock().await;
    let docs = books.docs.get(collection).map(Vec::as_slice).unwrap_or_default();
    let with_id = |d: &Doc| {
        let mut v = d.body.clone();
        v["id"] = Value::String(d.id.clone());
        v
    };
    let all: Vec<Value> = match &q.external_ref {
        Some(r) => books
            .by_ref
            .get(&(collection, r.clone()))
            .map(|at| at.iter().map(|i| with_id(&docs[*i])).collect())
            .unwrap_or_default(),
        None => docs.iter().map(with_id).collect(),
    };
    page(all, q.cursor.as_deref())
}

async fn list_bills(State(s): State<Arc<Sim>>, h: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    list(s, COLLECTIONS[0], h, q).await
}
async fn list_pos(State(s): State<Arc<Sim>>, h: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    list(s, COLLECTIONS[1], h, q).await
}
async fn list_payments(State(s): State<Arc<Sim>>, h: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    list(s, COLLECTIONS[2], h, q).await
}

/// A fixed, generated chart of vendors and GL accounts for import tests.
async fn list_vendors(State(s): State<Arc<Sim>>, h: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    if let Err(r) = admit(&s, &h).await {
        return r;
    }
    let all = (0..250).map(|i| json!({"id": format!("V{i}"), "name": format!("Vendor {i}")})).collect();
    page(all, q.cursor.as_deref())
}

async fn list_gl_accounts(State(s): State<Arc<Sim>>, h: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    if let Err(r) = admit(&s, &h).await {
        return r;
    }
    let all = (0..120).map(|i| json!({"id": format!("{}", 6000 + i * 10), "name": format!("Expense {i}")})).collect();
    page(all, q.cursor.as_deref())
}

async fn attach(State(sim): State<Arc<Sim>>, Path(bill_id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let _guard = match admit(&sim, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !body.starts_with(b"%PDF-") {
        sim.counters.rejected.fetch_add(1, SeqCst);
        return error(StatusCode::UNPROCESSABLE_ENTITY, "not_pdf", "attachment is not a PDF");
    }
    let mut books = sim.books.lock().await;
    if !books.ids.contains(&bill_id) {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no bill {bill_id}"));
    }
    let key = key_of(&headers).map(|k| ("attachments".to_owned(), k));
    if let Some((id, _)) = key.as_ref().and_then(|k| books.keys.get(k)) {
        return (StatusCode::OK, axum::Json(json!({"id": id}))).into_response();
    }
    books.next_id += 1;
    let id = format!("att-{}", books.next_id);
    if let Some(k) = key {
        books.keys.insert(k, (id.clone(), Instant::now()));
    }
    sim.counters.attachments.fetch_add(1, SeqCst);
    (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response()
}
