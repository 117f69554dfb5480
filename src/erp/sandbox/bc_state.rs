//! The Business Central dialect's state and its admission of API calls: the bearer token
//! (401), the environment and company (404), the per-user limits (429 past 100 connections
//! or 6,000 requests in five minutes; beyond 5 at once, requests wait in the queue), latency
//! and faults (503).

use super::admission::{InFlight, arrive, settle};
use super::bc_books::CompanyBooks;
use super::bc_token::{Refused, TokenBook};
use super::bc_wire::odata_error;
use super::sim::Sim;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The window of the per-user request rate.
const RATE_WINDOW: Duration = Duration::from_secs(300);

#[derive(Default)]
struct User {
    /// Requests of the user being processed or queued.
    connections: u64,
    /// When each request in the last [`RATE_WINDOW`] arrived.
    recent: VecDeque<Instant>,
}

pub(super) struct Bc {
    pub(super) sim: Arc<Sim>,
    pub(super) tokens: std::sync::Mutex<TokenBook>,
    pub(super) books: tokio::sync::Mutex<CompanyBooks>,
    users: std::sync::Mutex<HashMap<String, User>>,
    /// Each user's processing slots; requests beyond them wait for one.
    slots: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A request admitted for a user: counted in flight and holding a processing slot until
/// dropped.
pub(super) struct Admitted<'a> {
    _in_flight: InFlight<'a>,
    _slot: OwnedSemaphorePermit,
    bc: &'a Bc,
    user: String,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut users = self.bc.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = users.get_mut(&self.user) {
            u.connections -= 1;
        }
    }
}

/// Held while a request waits in the queue, so a request that gives up waiting still
/// frees its connection.
struct Queued<'a> {
    bc: &'a Bc,
    user: String,
    armed: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut users = self.bc.users.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(u) = users.get_mut(&self.user) {
                u.connections -= 1;
            }
        }
    }
}

/// 429 as the dialect sends it; the rate limit says when a request would be admitted again.
fn too_many(retry_after: Option<u64>) -> Response {
    let mut r = odata_error(
        StatusCode::TOO_MANY_REQUESTS,
        "Application_TooManyRequests",
        "Too many requests: the limits of this user are exhausted.",
    );
    if let Some(secs) = retry_after {
        r.headers_mut().insert("retry-after", HeaderValue::from(secs.max(1)));
    }
    r
}

/// 401 for a missing, unknown or expired token.
fn unauthorized(why: Option<Refused>) -> Response {
    let description = match why {
        Some(Refused::Expired) => "The token is expired",
        Some(Refused::Unknown) => "The token is not valid",
        None => "The authentication failed because of missing 'Authorization' header.",
    };
    let mut r = odata_error(
        StatusCode::UNAUTHORIZED,
        "Authentication_InvalidCredentials",
        "The server has rejected the client credentials.",
    );
    let www = format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
    r.headers_mut().insert("www-authenticate", HeaderValue::from_str(&www).expect("ascii header"));
    r
}

impl Bc {
    pub(super) fn new(sim: Arc<Sim>) -> Bc {
        let o = &sim.opts.business_central;
        Bc {
            tokens: std::sync::Mutex::new(TokenBook::new(o)),
            books: tokio::sync::Mutex::new(CompanyBooks::seeded()),
            users: Default::default(),
            slots: Default::default(),
            sim,
        }
    }

    /// Admits an API call to `tenant`/`environment`: the bearer token (401), the environment
    /// (404), the user's limits (429), a processing slot (waiting in the queue), then latency
    /// and injected faults (503 with Retry-After).
    pub(super) async fn admit<'a>(
        &'a self,
        tenant: &str,
        environment: &str,
        headers: &HeaderMap,
    ) -> Result<Admitted<'a>, Response> {
        let (in_flight, _, _) = arrive(&self.sim);
        let o = &self.sim.opts.business_central;
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let Some(bearer) = bearer else { return Err(unauthorized(None)) };
        let user =
            self.tokens.lock().unwrap_or_else(|e| e.into_inner()).check(bearer).map_err(|r| unauthorized(Some(r)))?;
        if !tenant.eq_ignore_ascii_case(&o.tenant) || environment != o.environment {
            let msg = format!("Environment '{environment}' of tenant '{tenant}' was not found.");
            return Err(odata_error(StatusCode::NOT_FOUND, "NoEnvironment", &msg));
        }
        let mut queued = self.take_connection(&user).map_err(too_many)?;
        let slots = {
            let mut all = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            all.entry(user.clone()).or_insert_with(|| Arc::new(Semaphore::new(o.concurrent_limit as usize))).clone()
        };
        let slot = slots.acquire_owned().await.expect("the semaphore is never closed");
        // Processing (the simulated latency) starts when a slot is free, not on arrival.
        let processing = Instant::now();
        queued.armed = false;
        let admitted = Admitted { _in_flight: in_flight, _slot: slot, bc: self, user };
        if settle(&self.sim, processing).await.is_err() {
            let mut r = odata_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "injected fault");
            r.headers_mut().insert("retry-after", HeaderValue::from(1));
            return Err(r);
        }
        Ok(admitted)
    }

    /// Counts a request against the user's connections and rate, or refuses it (429, with
    /// the seconds until the rate admits it again when that is the limit hit). A refused
    /// request uses no allowance.
    fn take_connection(&self, user: &str) -> Result<Queued<'_>, Option<u64>> {
        let o = &self.sim.opts.business_central;
        let now = Instant::now();
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let u = users.entry(user.to_owned()).or_default();
        while u.recent.front().is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW) {
            u.recent.pop_front();
        }
        if u.connections >= o.concurrent_limit + o.queue_limit {
            self.sim.counters.throttled_as("connections");
            return Err(None);
        }
        if u.recent.len() >= o.rate_per_5min as usize {
            self.sim.counters.throttled_as("rate");
            let oldest = *u.recent.front().expect("the window is full");
            let wait = RATE_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(Some(wait.as_secs_f64().ceil() as u64));
        }
        u.connections += 1;
        u.recent.push_back(now);
        Ok(Queued { bc: self, user: user.to_owned(), armed: true })
    }

    /// Sleeps through a "timeout after commit" at the configured rate: the write is in the
    /// books before the answer stalls.
    pub(super) async fn maybe_stall(&self) {
        let o = &self.sim.opts;
        if o.timeout_rate > 0.0 && rand::random::<f64>() < o.timeout_rate {
            self.sim.counters.stalls.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(o.stall_ms)).await;
        }
    }
}
