//! The QuickBooks dialect's state and its admission of Accounting API calls: the bearer
//! token (401 AuthenticationFailed 3200), the realm (403 3100), the per-realm limits (429
//! ThrottleExceeded 003001: 10 in progress, 500 a minute), then latency and faults.

use super::admission::{InFlight, arrive, settle};
use super::quickbooks_books::Company;
use super::quickbooks_wire::{forbidden_realm, throttled, unauthorized, unavailable};
use super::sim::Sim;
use super::token_book::{Refused, TokenBook};
use axum::http::HeaderMap;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The QuickBooks dialect's state: the simulator's counters and options, plus what only
/// QuickBooks has.
pub(super) struct Qbo {
    pub(super) sim: Arc<Sim>,
    pub(super) tokens: tokio::sync::Mutex<TokenBook>,
    /// Realm id → its company.
    pub(super) books: tokio::sync::Mutex<HashMap<String, Company>>,
    /// Held only between awaits: admission must not queue behind a slow handler.
    limits: std::sync::Mutex<HashMap<String, RealmLimits>>,
}

/// A realm's requests in progress and its fixed minute window (start, requests in it).
#[derive(Default)]
struct RealmLimits {
    in_flight: u64,
    minute: Option<(Instant, u32)>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Qbo {
    pub(super) fn new(sim: Arc<Sim>) -> Qbo {
        let o = &sim.opts.quickbooks;
        Qbo {
            tokens: tokio::sync::Mutex::new(TokenBook::new("qbo", &o.clients)),
            books: tokio::sync::Mutex::new(o.realms.iter().map(|r| (r.clone(), Company::seeded())).collect()),
            limits: std::sync::Mutex::new(HashMap::new()),
            sim,
        }
    }
}

/// A request admitted for a realm: held in flight (the simulator's count and the realm's
/// concurrency) until dropped.
pub(super) struct Admitted<'a> {
    _in_flight: InFlight<'a>,
    q: &'a Qbo,
    realm: String,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut l = self.q.limits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = l.get_mut(&self.realm) {
            r.in_flight -= 1;
        }
    }
}

impl Qbo {
    /// Admits an Accounting API call for `realm`.
    pub(super) async fn admit<'a>(&'a self, headers: &HeaderMap, realm: &str) -> Result<Admitted<'a>, Response> {
        let (in_flight, arrived, _) = arrive(&self.sim);
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .unwrap_or("");
        if bearer.is_empty() {
            return Err(unauthorized("Malformed bearer token: too short or too long"));
        }
        match self.tokens.lock().await.check_access(bearer) {
            Ok(()) => {}
            Err(Refused::Expired(_)) => {
                return Err(unauthorized(&format!("Token expired: {}", bearer.chars().take(24).collect::<String>())));
            }
            Err(Refused::Unknown) => return Err(unauthorized("Token revoked or invalid")),
        }
        if !self.books.lock().await.contains_key(realm) {
            return Err(forbidden_realm());
        }
        let o = &self.sim.opts.quickbooks;
        {
            let mut all = self.limits.lock().unwrap_or_else(|e| e.into_inner());
            let l = all.entry(realm.to_owned()).or_default();
            if l.in_flight >= o.concurrent_limit {
                self.sim.counters.throttled_as("concurrent");
                return Err(throttled());
            }
            let now = Instant::now();
            let (start, used) = l.minute.get_or_insert((now, 0));
            if now.duration_since(*start) >= MINUTE {
                (*start, *used) = (now, 0);
            }
            if *used >= o.minute_limit {
                self.sim.counters.throttled_as("minute");
                return Err(throttled());
            }
            *used += 1;
            l.in_flight += 1;
        }
        let admitted = Admitted { _in_flight: in_flight, q: self, realm: realm.to_owned() };
        if settle(&self.sim, arrived).await.is_err() {
            return Err(unavailable());
        }
        Ok(admitted)
    }
}
