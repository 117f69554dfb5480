//! The Xero dialect's state and its admission of Accounting API calls: the bearer token
//! (401), the tenant (403), the per-tenant and per-app limits (429), latency and faults.

use super::admission::{InFlight, arrive, settle};
use super::sim::Sim;
use super::token_book::TokenBook;
use super::xero_books::{Remembered, TenantBooks};
use super::xero_token::refused;
use super::xero_wire::{api_exception, envelope, problem, too_many, validation_body};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use tokio::time::Instant;

/// The Xero dialect's state: the simulator's counters and options, plus what only Xero has.
pub(super) struct Xero {
    pub(super) sim: Arc<Sim>,
    pub(super) tokens: tokio::sync::Mutex<TokenBook>,
    /// Tenant id → its records.
    pub(super) books: tokio::sync::Mutex<HashMap<String, TenantBooks>>,
    /// Held only between awaits: admission must not queue behind a slow handler.
    limits: std::sync::Mutex<Limits>,
}

impl Xero {
    pub(super) fn new(sim: Arc<Sim>) -> Xero {
        let o = &sim.opts.xero;
        Xero {
            tokens: tokio::sync::Mutex::new(TokenBook::new("xero", &o.clients)),
            books: tokio::sync::Mutex::new(o.tenants.iter().map(|t| (t.clone(), TenantBooks::seeded())).collect()),
            limits: std::sync::Mutex::new(Limits::default()),
            sim,
        }
    }
}

/// A fixed window of calls (Xero's minute and day limits).
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    used: u32,
}

impl Window {
    /// The window as of `now`, restarted if `len` has passed.
    fn current(w: &mut Option<Window>, now: Instant, len: Duration) -> &mut Window {
        let w = w.get_or_insert(Window { start: now, used: 0 });
        if now.duration_since(w.start) >= len {
            *w = Window { start: now, used: 0 };
        }
        w
    }

    fn retry_after(&self, now: Instant, len: Duration) -> u64 {
        (len.saturating_sub(now.duration_since(self.start)).as_secs_f64().ceil() as u64).max(1)
    }
}

#[derive(Default)]
struct TenantLimits {
    in_flight: u64,
    minute: Option<Window>,
    day: Option<Window>,
}

#[derive(Default)]
struct Limits {
    tenants: HashMap<String, TenantLimits>,
    app_minute: Option<Window>,
}

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// What is left of each limit, sent on every response past admission.
#[derive(Clone, Copy)]
pub(super) struct Remaining {
    minute: u32,
    day: u32,
    app_minute: u32,
}

impl Remaining {
    pub(super) fn apply(self, mut r: Response) -> Response {
        let h = r.headers_mut();
        h.insert(HeaderName::from_static("x-minlimit-remaining"), HeaderValue::from(self.minute));
        h.insert(HeaderName::from_static("x-daylimit-remaining"), HeaderValue::from(self.day));
        h.insert(HeaderName::from_static("x-appminlimit-remaining"), HeaderValue::from(self.app_minute));
        r
    }
}

/// A request admitted for a tenant: held in flight (both the simulator's count and the
/// tenant's concurrency) until dropped.
pub(super) struct Admitted<'a> {
    _in_flight: InFlight<'a>,
    x: &'a Xero,
    pub(super) tenant: String,
    pub(super) remaining: Remaining,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut l = self.x.limits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = l.tenants.get_mut(&self.tenant) {
            t.in_flight -= 1;
        }
    }
}

impl Xero {
    /// Admits an Accounting API call: the bearer token (401), the `Xero-tenant-id` (403),
    /// the tenant's and the app's limits (429), then latency and injected faults (503).
    pub(super) async fn admit<'a>(&'a self, headers: &HeaderMap) -> Result<Admitted<'a>, Response> {
        let (in_flight, arrived, _) = arrive(&self.sim);
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        self.tokens.lock().await.check_access(bearer).map_err(refused)?;
        let tenant = headers.get("xero-tenant-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        if !self.books.lock().await.contains_key(&tenant) {
            return Err(problem(StatusCode::FORBIDDEN, "Forbidden", "AuthenticationUnsuccessful"));
        }
        let remaining = self.take_call(&tenant).map_err(|(kind, retry_after, remaining)| {
            self.sim.counters.throttled_as(kind);
            remaining.apply(too_many(kind, retry_after))
        })?;
        let admitted = Admitted { _in_flight: in_flight, x: self, tenant, remaining };
        if settle(&self.sim, arrived).await.is_err() {
            let r = problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "injected fault");
            return Err(remaining.apply(r));
        }
        Ok(admitted)
    }

    /// Counts a call against the tenant's and the app's limits, or refuses it with the
    /// limit it hit and the seconds until it resets. Refused calls use no allowance.
    fn take_call(&self, tenant: &str) -> Result<Remaining, (&'static str, Option<u64>, Remaining)> {
        let o = &self.sim.opts.xero;
        let now = Instant::now();
        let mut l = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let Limits { tenants, app_minute } = &mut *l;
        let t = tenants.entry(tenant.to_owned()).or_default();
        let app = *Window::current(app_minute, now, MINUTE);
        let minute = *Window::current(&mut t.minute, now, MINUTE);
        let day = *Window::current(&mut t.day, now, DAY);
        let remaining = Remaining {
            minute: o.minute_limit.saturating_sub(minute.used),
            day: o.day_limit.saturating_sub(day.used),
            app_minute: o.app_minute_limit.saturating_sub(app.used),
        };
        let refuse = |kind: &'static str, retry_after: Option<u64>| Err((kind, retry_after, remaining));
        if t.in_flight >= o.concurrent_limit {
            return refuse("concurrent", None);
        }
        if minute.used >= o.minute_limit {
            return refuse("minute", Some(minute.retry_after(now, MINUTE)));
        }
        if app.used >= o.app_minute_limit {
            return refuse("appminute", Some(app.retry_after(now, MINUTE)));
        }
        if day.used >= o.day_limit {
            return refuse("day", Some(day.retry_after(now, DAY)));
        }
        t.in_flight += 1;
        for w in [&mut t.minute, &mut t.day, app_minute].into_iter().flatten() {
            w.used += 1;
        }
        Ok(Remaining { minute: remaining.minute - 1, day: remaining.day - 1, app_minute: remaining.app_minute - 1 })
    }

    /// Sleeps through a "timeout after commit" at the configured rate: the document is in
    /// the books (and its idempotency key remembered) before the answer stalls.
    pub(super) async fn maybe_stall(&self) {
        let o = &self.sim.opts;
        if o.timeout_rate > 0.0 && rand::random::<f64>() < o.timeout_rate {
            self.sim.counters.stalls.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(o.stall_ms)).await;
        }
    }
}

/// The longest `Idempotency-Key` Xero takes.
const MAX_KEY_CHARS: usize = 128;

impl Xero {
    /// Runs a write on the tenant's books under Xero's `Idempotency-Key`: a repeat of the
    /// same request (method, URI, body) within the TTL answers what the first one did
    /// without writing again, errors included; the same key on a different request is
    /// refused with 400. The answer carries the remaining-limit headers.
    pub(super) async fn write<F>(&self, adm: &Admitted<'_>, req: &Request<'_>, write: F) -> Response
    where
        F: FnOnce(&mut TenantBooks) -> (StatusCode, Value),
    {
        let key = req.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if key.as_ref().is_some_and(|k| k.chars().count() > MAX_KEY_CHARS) {
            let msg = format!("Idempotency-Key must be at most {MAX_KEY_CHARS} characters");
            return adm.remaining.apply(api_exception(400, "BadRequest", &msg, Vec::new()));
        }
        let fingerprint = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            req.body.hash(&mut h);
            (req.method.to_owned(), req.uri.to_owned(), h.finish())
        };
        let ttl = Duration::from_secs(self.sim.opts.idempotency_ttl_secs);
        let mut books = self.books.lock().await;
        let tb = books.get_mut(&adm.tenant).expect("admitted tenants have books");
        if let Some(k) = &key
            && let Some(seen) = tb.keys.get(k)
            && seen.at.elapsed() < ttl
        {
            if seen.request != fingerprint {
                let msg = format!("Idempotency Key {k} is used with a different request.");
                return adm.remaining.apply(api_exception(400, "BadRequest", &msg, Vec::new()));
            }
            self.sim.counters.replays.fetch_add(1, SeqCst);
            let status = StatusCode::from_u16(seen.status).unwrap_or(StatusCode::OK);
            return adm.remaining.apply((status, axum::Json(seen.body.clone())).into_response());
        }
        let (status, body) = write(tb);
        if let Some(k) = key.filter(|_| !ttl.is_zero()) {
            let seen =
                Remembered { request: fingerprint, status: status.as_u16(), body: body.clone(), at: Instant::now() };
            tb.keys.insert(k, seen);
        }
        drop(books);
        if status.is_success() {
            self.maybe_stall().await;
        }
        adm.remaining.apply((status, axum::Json(body)).into_response())
    }
}

/// What identifies a write for its idempotency key.
pub(super) struct Request<'a> {
    pub(super) headers: &'a HeaderMap,
    pub(super) method: &'a str,
    pub(super) uri: &'a str,
    pub(super) body: &'a [u8],
}

/// A batch write (`{"Invoices":[...]}`, `{"Payments":[...]}`, …; a bare element is taken
/// as a batch of one) as Xero answers it. With `summarizeErrors=false`: 200, every element
/// applied on its own, failed ones marked `StatusAttributeString: ERROR` with their
/// `ValidationErrors`. Otherwise (Xero's default) any failing element refuses the whole
/// request with a 400 ValidationException and nothing is written. `apply(books, element,
/// dry_run)` validates an element and, unless `dry_run`, writes it.
pub(super) fn batch<F>(
    books: &mut TenantBooks,
    body: &[u8],
    collection: &str,
    summarize_errors: bool,
    mut apply: F,
) -> (StatusCode, Value)
where
    F: FnMut(&mut TenantBooks, &Value, bool) -> Result<Value, Value>,
{
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let r = json!({"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": "Invalid Json data", "Elements": []});
        return (StatusCode::BAD_REQUEST, r);
    };
    let elements = match v.get(collection) {
        Some(Value::Array(a)) => a.clone(),
        _ if v.is_object() => vec![v],
        _ => Vec::new(),
    };
    if summarize_errors {
        let failed: Vec<Value> = elements.iter().filter_map(|e| apply(books, e, true).err()).collect();
        if !failed.is_empty() {
            return (StatusCode::BAD_REQUEST, validation_body(failed));
        }
    }
    let out = elements.iter().map(|e| apply(books, e, false).unwrap_or_else(|failed| failed)).collect();
    (StatusCode::OK, envelope(collection, out))
}

/// `summarizeErrors` from a query string: true unless it says false, as Xero defaults.
pub(super) fn summarize_errors(query: Option<&str>) -> bool {
    !query.unwrap_or("").split('&').any(|p| p.eq_ignore_ascii_case("summarizeErrors=false"))
}
