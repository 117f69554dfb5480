//! One ERP connection's shared state: its config and client, and what bounds the work on
//! it — the gate around each ERP call, the claims on documents, the pacer of returned
//! messages and the turnstile of ordered runs.
//!
//! Capacity is an explicit permit gate rather than a `ractor::factory`: a `Semaphore` with
//! `max_concurrency` permits, held around every ERP call (see [`gate`]). It lives here,
//! outside the connector actor's state, so a restarted actor inherits the same gate and
//! in-flight calls of its previous incarnation still count against it — a limit can never
//! be exceeded by a restart. Separately, `outstanding` counts items handed to the
//! connector (in flight + waiting for a permit); the poller only receives while
//! `outstanding < max_concurrency + prefetch`, so the local backlog is bounded and the
//! rest of the work stays on the queue.

pub mod claims;
pub mod gate;
pub mod pacer;
pub mod turnstile;

use crate::config::ConnectionConfig;
use crate::erp::registry::Limits;
use crate::erp::{ErpClient, ErpError};
use crate::limits::lease::LeasePool;
use crate::limits::rate::RateLimiter;
use crate::telemetry;
use claims::{Claim, Claims};
use gate::Gate;
use pacer::Pacer;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use turnstile::Turnstile;

pub struct Connection {
    pub config: ConnectionConfig,
    /// The limits in force: the connection's settings, else its ERP kind's profile.
    pub limits: Limits,
    pub client: Arc<dyn ErpClient>,
    gate: Gate,
    /// Items handed to this connector and not finished.
    outstanding: AtomicUsize,
    /// The `connection` metric label (bounded, see `telemetry::connection_label`).
    label: String,
    claims: Arc<Claims>,
    pacer: Pacer,
    /// On a queue that keeps group order (SQS FIFO), the runs of received messages go
    /// through one at a time, in the order they were routed.
    turnstile: Turnstile,
}

impl Connection {
    pub fn new(
        config: ConnectionConfig,
        limits: Limits,
        client: Arc<dyn ErpClient>,
        label: String,
        lease: Option<Arc<LeasePool>>,
        slot_wait: Duration,
    ) -> Self {
        let limit = limits.max_concurrency as usize;
        let rate = limits.rate_limit_per_min.map(RateLimiter::per_minute);
        let limit_gauge = metrics::gauge!(telemetry::CONNECTION_LIMIT, "connection" => label.clone());
        if label == telemetry::OTHER_CONNECTIONS {
            // Connections sharing the `other` label add up.
            limit_gauge.increment(limit as f64);
        } else {
            limit_gauge.set(limit as f64);
        }
        metrics::gauge!(telemetry::CONNECTION_IN_FLIGHT, "connection" => label.clone()).increment(0.0);
        Connection {
            gate: Gate::new(limit, rate, lease, slot_wait, label.clone(), config.erp, config.request_timeout()),
            config,
            limits,
            client,
            outstanding: AtomicUsize::new(0),
            label,
            claims: Arc::new(Claims::default()),
            pacer: Pacer::new(),
            turnstile: Turnstile::new(),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn limit(&self) -> usize {
        self.limits.max_concurrency as usize
    }

    /// How many more items the poller may hand over.
    pub fn room(&self) -> usize {
        (self.limit() + self.limits.prefetch as usize).saturating_sub(self.outstanding.load(Ordering::Acquire))
    }

    /// Whether a received message may still be handed over although `room()` is 0.
    ///
    /// The poller asks for no more than the room, but a queue that cannot filter by
    /// connection (SQS) returns whatever it holds, and SQS's whole-second delays bring
    /// returned messages back in bursts. Up to [`Pacer::overflow`] beyond the room wait
    /// here for a slot (visibility extended by heartbeats) instead of going back.
    pub fn can_take(&self) -> bool {
        self.outstanding() < self.limit() + self.limits.prefetch as usize + self.pacer.overflow()
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// An item was handed to this connector.
    pub fn arrived(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// An item handed to this connector is done with the ERP.
    pub fn departed(&self) {
        let held = self.outstanding.fetch_sub(1, Ordering::AcqRel);
        self.pacer.observe_departure(held, self.limit());
    }

    /// How long a message for this saturated connection should stay on the queue (see
    /// [`Pacer::return_delay`]).
    pub fn return_delay(&self, receive_count: u32) -> Duration {
        self.pacer.return_delay(receive_count, self.outstanding())
    }

    /// Runs one ERP call under the connection's rate limit and concurrency gate.
    pub async fn call<T>(&self, fut: impl Future<Output = Result<T, ErpError>>) -> Result<T, ErpError> {
        self.gate.call(fut).await
    }

    /// Claims a document for this task (see [`Claims::claim`]).
    pub async fn claim(&self, kind: &str, source: &str, wait: Duration) -> Option<Claim> {
        self.claims.claim(kind, source, wait).await
    }

    pub fn turnstile(&self) -> &Turnstile {
        &self.turnstile
    }
}
