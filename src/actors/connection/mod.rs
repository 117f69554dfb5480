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
use crate::store::parks::{Park, ParkReason};
use crate::telemetry;
use claims::{Claim, Claims};
use gate::Gate;
use pacer::Pacer;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use turnstile::Turnstile;

pub struct Connection {
    pub config: ConnectionConfig,
    /// The limits in force: the connection's settings, else its ERP kind's profile.
    pub limits: Limits,
    /// Replaced when an operator stores new credentials (see `actors::parking`); an item
    /// in flight finishes with the client it started with.
    client: RwLock<Arc<dyn ErpClient>>,
    /// The version of the credentials `client` was built from (`connections::CONFIGURED`
    /// for the configuration's).
    credentials_version: AtomicI64,
    /// Set while the connection is parked: nothing is received for it, and what arrives
    /// is shelved unattempted (see `store::parks`).
    parked: RwLock<Option<Park>>,
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
        credentials_version: i64,
        label: String,
        lease: Option<Arc<LeasePool>>,
        slot_wait: Duration,
    ) -> Self {
        let limit = limits.max_concurrency as usize;
        let rate = limits.rate_limit_per_min.map(RateLimiter::budget);
        let limit_gauge = metrics::gauge!(telemetry::CONNECTION_LIMIT, "connection" => label.clone());
        if label == telemetry::OTHER_CONNECTIONS {
            // Connections sharing the `other` label add up.
            limit_gauge.increment(limit as f64);
        } else {
            limit_gauge.set(limit as f64);
        }
        metrics::gauge!(telemetry::CONNECTION_IN_FLIGHT, "connection" => label.clone()).increment(0.0);
        for reason in ParkReason::ALL {
            metrics::gauge!(telemetry::CONNECTION_PARKED, "connection" => label.clone(), "reason" => reason.as_str())
                .increment(0.0);
        }
        Connection {
            gate: Gate::new(limit, rate, lease, slot_wait, label.clone(), config.erp, config.request_timeout()),
            config,
            limits,
            client: RwLock::new(client),
            credentials_version: AtomicI64::new(credentials_version),
            parked: RwLock::new(None),
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

    /// The client for the next ERP call.
    pub fn client(&self) -> Arc<dyn ErpClient> {
        self.client.read().unwrap().clone()
    }

    pub fn credentials_version(&self) -> i64 {
        self.credentials_version.load(Ordering::Acquire)
    }

    /// Uses `client`, built from credentials of `version`, for the calls from now on.
    pub fn replace_client(&self, client: Arc<dyn ErpClient>, version: i64) {
        *self.client.write().unwrap() = client;
        self.credentials_version.store(version, Ordering::Release);
    }

    /// Credentials of `version` could not be used: keep the client, and do not try them again.
    pub fn skip_credentials(&self, version: i64) {
        self.credentials_version.fetch_max(version, Ordering::AcqRel);
    }

    /// The connection's park, while it is parked.
    pub fn park(&self) -> Option<Park> {
        self.parked.read().unwrap().clone()
    }

    pub fn is_parked(&self) -> bool {
        self.parked.read().unwrap().is_some()
    }

    /// Follows the fleet's record of this connection's park; returns whether it changed.
    pub fn set_park(&self, park: Option<Park>) -> bool {
        let mut current = self.parked.write().unwrap();
        let (was, now) = (current.as_ref().map(|p| p.reason), park.as_ref().map(|p| p.reason));
        *current = park;
        if was == now {
            return false;
        }
        // Added and taken away, not set: connections sharing the `other` label add up.
        let gauge = |reason: ParkReason| metrics::gauge!(telemetry::CONNECTION_PARKED, "connection" => self.label.clone(), "reason" => reason.as_str());
        if let Some(r) = was {
            gauge(r).decrement(1.0);
        }
        if let Some(r) = now {
            gauge(r).increment(1.0);
        }
        true
    }

    /// How many more items the poller may hand over: none while parked.
    pub fn room(&self) -> usize {
        if self.is_parked() {
            return 0;
        }
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
