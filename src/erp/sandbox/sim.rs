//! The simulated ERP's state: its books (documents, idempotency keys, bill balances), its
//! counters, and the dialects that serve them.

use super::options::{SandboxOptions, SandboxStats};
use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) in_flight: AtomicU64,
    pub(super) max_seen: AtomicU64,
    pub(super) creates: AtomicU64,
    pub(super) duplicate_creates: AtomicU64,
    pub(super) replays: AtomicU64,
    pub(super) throttled: AtomicU64,
    pub(super) faults: AtomicU64,
    pub(super) stalls: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) lookups: AtomicU64,
    pub(super) attachments: AtomicU64,
    pub(super) duplicate_attachments: AtomicU64,
    pub(super) refreshes: AtomicU64,
    /// Throttles by limit kind, for dialects that name the limit they enforce.
    pub(super) throttled_by_kind: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Counters {
    /// Counts a throttle of a named limit, in the total and under its kind.
    pub(super) fn throttled_as(&self, kind: &'static str) {
        self.throttled.fetch_add(1, SeqCst);
        *self.throttled_by_kind.lock().unwrap_or_else(|e| e.into_inner()).entry(kind).or_default() += 1;
    }
}

pub(super) struct Doc {
    pub(super) id: String,
    pub(super) external_ref: String,
    pub(super) body: Value,
}

#[derive(Default)]
pub(super) struct Books {
    pub(super) next_id: u64,
    pub(super) docs: HashMap<&'static str, Vec<Doc>>,
    /// (collection, external_ref) → positions in `docs`, so lookups and duplicate checks
    /// do not scan every document (the sandbox must never be the bottleneck it measures).
    pub(super) by_ref: HashMap<(&'static str, String), Vec<usize>>,
    /// (collection, vendor, number) → the external_ref that first used that number.
    pub(super) by_number: HashMap<(&'static str, String, String), String>,
    /// Every document id.
    pub(super) ids: std::collections::HashSet<String>,
    pub(super) keys: HashMap<(String, String), (String, Instant)>,
    pub(super) rate_window: Option<(Instant, u32)>,
    /// Bill id → its total and what payments have applied to it so far. Like a real ERP,
    /// the sandbox refuses a payment that applies more to a bill than it has open.
    pub(super) bills: HashMap<String, (Decimal, Decimal)>,
}

/// A payment's `applied_to` as (bill id, amount), if the books can take it all; else why
/// not: a bill it names is unknown, or would be paid beyond its balance. Checks every
/// entry before any is booked.
pub(super) fn applications(books: &Books, doc: &Value) -> Result<Vec<(String, Decimal)>, String> {
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

pub(super) struct Sim {
    pub(super) opts: SandboxOptions,
    /// How early to set the timer, learnt from how late it fires (µs): tokio rounds a
    /// deadline up to its next millisecond tick, which would make a "20 ms" ERP 20.5–21 ms.
    pub(super) timer_lead_us: std::sync::atomic::AtomicI64,
    pub(super) counters: Counters,
    pub(super) books: Mutex<Books>,
}

impl Sim {
    pub(super) fn stats(&self) -> SandboxStats {
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
            duplicate_attachments: c.duplicate_attachments.load(SeqCst),
            refreshes: c.refreshes.load(SeqCst),
            throttled_by_kind: c
                .throttled_by_kind
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, n)| ((*k).to_owned(), *n))
                .collect(),
        }
    }
}

/// A protocol the simulator speaks: the routes it serves over the simulated ERP's books,
/// limits and faults. An ERP kind names its dialect in its module (`erp::registry`).
pub struct Dialect {
    pub name: &'static str,
    pub(super) routes: fn(Arc<Sim>) -> Router,
}

pub(super) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": {"code": code, "message": message.into()}}))).into_response()
}

pub(super) fn throttle(retry_after_secs: u64) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "throttled", "too many requests");
    r.headers_mut().insert("retry-after", HeaderValue::from(retry_after_secs.max(1)));
    r
}
