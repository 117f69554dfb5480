//! `erpsync sandbox-erp`: a simulator of an ERP speaking the generic REST protocol.
//!
//! It behaves like the ERPs erpsync must survive: a concurrency limit and a rate limit
//! (429 with Retry-After past them), latency with jitter, injected 5xx faults, and
//! "timeouts after commit" (the document is created, then the answer stalls past the
//! client's timeout). Idempotency keys are remembered for a configurable time, like Xero's
//! six minutes, so erpsync's own ledger and lookups are what must prevent duplicates after.
//! `GET /__sandbox/stats` reports what it saw, including `duplicate_creates`: creates for
//! an external_ref that already had a document.
//!
//! Vendor id `V-INACTIVE` is refused with 422 (`vendor_inactive`), for tests of permanent
//! failures.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the simulated ERP behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxOptions {
    /// Requests processed at once; past it the sandbox answers 429.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u64,
    /// Requests per minute; past it the sandbox answers 429 with Retry-After.
    #[arg(long)]
    pub rate_per_min: Option<u32>,
    /// Processing time of each request.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Random extra latency, uniformly 0..=jitter.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Share of requests failing with 503 before doing anything (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Share of creates that commit and then stall for --stall-ms before answering (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// How long a "timeout after commit" stalls.
    #[arg(long, default_value_t = 35_000)]
    pub stall_ms: u64,
    /// Bearer token required on every call (none: no auth).
    #[arg(long)]
    pub token: Option<String>,
    /// How long idempotency keys are remembered, in seconds (0: not at all).
    #[arg(long, default_value_t = 360)]
    pub idempotency_ttl_secs: u64,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            concurrency: 4,
            rate_per_min: None,
            latency_ms: 20,
            jitter_ms: 0,
            fault_rate: 0.0,
            timeout_rate: 0.0,
            stall_ms: 35_000,
            token: None,
            idempotency_ttl_secs: 360,
        }
    }
}

/// What the sandbox saw. `max_concurrent_seen` counts every request in flight, including
/// those it refused, so a client exceeding the limit always shows here.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxStats {
    pub requests: u64,
    pub max_concurrent_seen: u64,
    pub creates: u64,
    pub duplicate_creates: u64,
    pub idempotent_replays: u64,
    pub throttled: u64,
    pub faults: u64,
    pub stalls: u64,
    pub rejected: u64,
    pub lookups: u64,
    pub attachments: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_seen: AtomicU64,
    creates: AtomicU64,
    duplicate_creates: AtomicU64,
    replays: AtomicU64,
    throttled: AtomicU64,
    faults: AtomicU64,
    stalls: AtomicU64,
    rejected: AtomicU64,
    lookups: AtomicU64,
    attachments: AtomicU64,
}

struct Doc {
    id: String,
    external_ref: String,
    body: Value,
}

#[derive(Default)]
struct Books {
    next_id: u64,
    docs: HashMap<&'static str, Vec<Doc>>,
    /// (collection, external_ref) → positions in `docs`, so lookups and duplicate checks
    /// do not scan every document (the sandbox must never be the bottleneck it measures).
    by_ref: HashMap<(&'static str, String), Vec<usize>>,
    /// (collection, vendor, number) → the external_ref that first used that number.
    by_number: HashMap<(&'static str, String, String), String>,
    /// Every document id.
    ids: std::collections::HashSet<String>,
    keys: HashMap<(String, String), (String, Instant)>,
    rate_window: Option<(Instant, u32)>,
    /// Bill id → its total and what payments have applied to it so far. Like a real ERP,
    /// the sandbox refuses a payment that applies more to a bill than it has open.
    bills: HashMap<String, (Decimal, Decimal)>,
}

/// A payment's `applied_to` as (bill id, amount), if the books can take it all; else why
/// not: a bill it names is unknown, or would be paid beyond its balance. Checks every
/// entry before any is booked.
fn applications(books: &Books, doc: &Value) -> Result<Vec<(String, Decimal)>, String> {
    let mut owed: HashMap<&str, Decimal> = HashMap::new();
    let mut out = Vec::new();
    for a in doc["applied_to"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let bill = a["bill_id"].as_str().unwrap_or("");
        let Some(&(total, paid)) = books.bills.get(bill) else {
            return Err(format!("payment applies to bill {bill:?}, which does not exist"));
        };
        let Some(amount) = a["amount"].as_str().and_then(|t| t.parse::<Decimal>().ok()) else {
            return Err(format!("payment applies an unreadable amount to bill {bill}"));
        };
        let sum = owed.entry(bill).or_insert(paid);
        *sum += amount;
        if *sum > total {
            return Err(format!("bill {bill} has {} open; the payment applies {amount}", total - (*sum - amount)));
        }
        out.push((bill.to_owned(), amount));
    }
    Ok(out)
}

struct Sim {
    opts: SandboxOptions,
    /// How early to set the timer, learnt from how late it fires (µs): tokio rounds a
    /// deadline up to its next millisecond tick, which would make a "20 ms" ERP 20.5–21 ms.
    timer_lead_us: std::sync::atomic::AtomicI64,
    counters: Counters,
    books: Mutex<Books>,
}

/// A running sandbox.
pub struct Sandbox {
    pub addr: SocketAddr,
    sim: Arc<Sim>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `listen` (port 0 picks a free one) and serves until stopped or dropped.
    pub async fn start(listen: SocketAddr, opts: SandboxOptions) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let sim = Arc::new(Sim {
            opts,
            timer_lead_us: Default::default(),
            counters: Counters::default(),
            books: Mutex::default(),
        });
        let stop = CancellationToken::new();
        let app = router(sim.clone());
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(s.cancelled_owned()).await;
        });
        Ok(Sandbox { addr, sim, stop, task: Some(task) })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> SandboxStats {
        self.sim.stats()
    }

    /// Document ids created for an external_ref in a collection (`bills`, …).
    pub async fn created_for(&self, collection: &str, external_ref: &str) -> Vec<String> {
        let books = self.sim.books.lock().await;
        books
            .docs
            .get(collection)
            .map(|d| d.iter().filter(|d| d.external_ref == external_ref).map(|d| d.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The external_refs of a collection's documents, in the order they were created.
    pub async fn creation_order(&self, collection: &str) -> Vec<String> {
        let books = self.sim.books.lock().await;
        books.docs.get(collection).map(|d| d.iter().map(|d| d.external_ref.clone()).collect()).unwrap_or_default()
    }

    /// The bodies received for an external_ref in a collection, oldest first, each with
    /// the `id` the sandbox gave it: what the ERP was sent, for tests to inspect.
    pub async fn bodies_for(&self, collection: &str, external_ref: &str) -> Vec<Value> {
        let books = self.sim.books.lock().await;
        let Some(docs) = books.docs.get(collection) else { return Vec::new() };
        docs.iter()
            .filter(|d| d.external_ref == external_ref)
            .map(|d| {
                let mut v = d.body.clone();
                v["id"] = Value::String(d.id.clone());
                v
            })
            .collect()
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Sim {
    fn stats(&self) -> SandboxStats {
        let c = &self.counters;
        SandboxStats {
            requests: c.requests.load(SeqCst),
            max_concurrent_seen: c.max_seen.load(SeqCst),
            creates: c.creates.load(SeqCst),
            duplicate_creates: c.duplicate_creates.load(SeqCst),
            idempotent_replays: c.replays.load(SeqCst),
            throttled: c.throttled.load(SeqCst),
            faults: c.faults.load(SeqCst),
            stalls: c.stalls.load(SeqCst),
            rejected: c.rejected.load(SeqCst),
            lookups: c.lookups.load(SeqCst),
            attachments: c.attachments.load(SeqCst),
        }
    }
}

const COLLECTIONS: [&str; 3] = ["bills", "purchase-orders", "bill-payments"];

fn router(sim: Arc<Sim>) -> Router {
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

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": {"code": code, "message": message.into()}}))).into_response()
}

fn throttle(retry_after_secs: u64) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "throttled", "too many requests");
    r.headers_mut().insert("retry-after", HeaderValue::from(retry_after_secs.max(1)));
    r
}

/// Counts a request in flight for as long as it lives, even if the client goes away.
struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}

/// Admission: auth, the concurrency limit, the rate limit, latency, injected faults. On
/// success, returns the guard that keeps the request counted until it is answered.
async fn admit<'a>(sim: &'a Sim, headers: &HeaderMap) -> Result<InFlight<'a>, Response> {
    // Latency counts from arrival, whatever admission itself costs.
    let arrived = Instant::now();
    let c = &sim.counters;
    c.requests.fetch_add(1, SeqCst);
    let now = c.in_flight.fetch_add(1, SeqCst) + 1;
    let guard = InFlight(c);
    c.max_seen.fetch_max(now, SeqCst);
    if let Some(token) = &sim.opts.token {
        let expected = format!("Bearer {token}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token"));
        }
    }
    if now > sim.opts.concurrency {
        c.throttled.fetch_add(1, SeqCst);
        return Err(throttle(1));
    }
    if let Some(per_min) = sim.opts.rate_per_min {
        let mut books = sim.books.lock().await;
        let t = Instant::now();
        let (start, n) = books.rate_window.get_or_insert((t, 0));
        if t.duration_since(*start) >= Duration::from_secs(60) {
            *start = t;
            *n = 0;
        }
        if *n >= per_min {
            c.throttled.fetch_add(1, SeqCst);
            let wait = Duration::from_secs(60).saturating_sub(t.duration_since(*start));
            return Err(throttle(wait.as_secs_f64().ceil() as u64));
        }
        *n += 1;
    }
    let jitter = if sim.opts.jitter_ms > 0 { rand::random_range(0..=sim.opts.jitter_ms) } else { 0 };
    simulate_latency(sim, arrived + Duration::from_millis(sim.opts.latency_ms + jitter)).await;
    if sim.opts.fault_rate > 0.0 && rand::random::<f64>() < sim.opts.fault_rate {
        c.faults.fetch_add(1, SeqCst);
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "injected fault"));
    }
    Ok(guard)
}

/// Sleeps so the answer goes out at `target` on average: the timer is set early by the
/// lateness it showed so far (a running average of wake-up minus target).
async fn simulate_latency(sim: &Sim, target: Instant) {
    let lead = Duration::from_micros(sim.timer_lead_us.load(SeqCst).clamp(0, 2_000) as u64);
    tokio::time::sleep_until(target.checked_sub(lead).unwrap_or(target)).await;
    let now = Instant::now();
    let late_us = if now >= target {
        now.duration_since(target).as_micros() as i64
    } else {
        -(target.duration_since(now).as_micros() as i64)
    };
    let _ = sim.timer_lead_us.fetch_update(SeqCst, SeqCst, |lead| Some((lead + late_us / 8).clamp(0, 2_000)));
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
