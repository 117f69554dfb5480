//! The gate around one ERP call: the connection's rate limit, its concurrency permits
//! and, when several daemons share the database, a cluster-wide slot.

use crate::domain::ErpKind;
use crate::erp::ErpError;
use crate::limits::lease::{LeaseError, LeasePool};
use crate::limits::rate::RateLimiter;
use crate::telemetry;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

pub struct Gate {
    permits: Arc<Semaphore>,
    /// How long the permit (and slot) of a call whose answer was lost stays taken: the ERP
    /// may still be working on it, and counts it against the limit until it is done.
    lost_answer_hold: Duration,
    rate: Option<RateLimiter>,
    /// Cluster-wide slots, when several daemons share the database.
    lease: Option<Arc<LeasePool>>,
    slot_wait: Duration,
    /// The `connection` metric label.
    label: String,
    erp: ErpKind,
}

impl Gate {
    pub(super) fn new(
        limit: usize,
        rate: Option<RateLimiter>,
        lease: Option<Arc<LeasePool>>,
        slot_wait: Duration,
        label: String,
        erp: ErpKind,
        lost_answer_hold: Duration,
    ) -> Self {
        Gate { permits: Arc::new(Semaphore::new(limit)), lost_answer_hold, rate, lease, slot_wait, label, erp }
    }

    /// Runs one ERP call under the connection's rate limit and concurrency gate.
    pub async fn call<T>(&self, fut: impl Future<Output = Result<T, ErpError>>) -> Result<T, ErpError> {
        let permit = self.permits.clone().acquire_owned().await.expect("the gate is never closed");
        // Across the fleet: a slot in the database, after the local permit so a daemon never
        // holds more slots than it can use.
        let slot = match &self.lease {
            Some(pool) => match pool.acquire(self.slot_wait).await {
                Ok(guard) => Some(guard),
                Err(LeaseError::Timeout(d)) => {
                    return Err(ErpError::Saturated(format!("no slot free within {} s", d.as_secs())));
                }
                Err(e) => return Err(ErpError::Transient(e.to_string())),
            },
            None => None,
        };
        // The rate budget last, right before the call: a call granted and then kept waiting
        // for a permit would reach the ERP later than its grant says, and the ERP counts
        // arrivals.
        if let Some(rate) = &self.rate {
            rate.acquire().await;
        }
        let in_flight = metrics::gauge!(telemetry::CONNECTION_IN_FLIGHT, "connection" => self.label.clone());
        in_flight.increment(1.0);
        let started = Instant::now();
        let mut result = fut.await;
        in_flight.decrement(1.0);
        if let (Some(pool), Some(guard)) = (&self.lease, &slot) {
            // Fencing: a slot that lapsed mid-call may have been granted to another daemon,
            // so this call's answer cannot be trusted as the only one; the retry looks the
            // document up before creating anything.
            if pool.is_lost(guard.lease) {
                result = Err(ErpError::Ambiguous("the cluster concurrency slot lapsed during the call".into()));
            }
        }
        if matches!(result, Err(ErpError::Ambiguous(_))) && !self.lost_answer_hold.is_zero() {
            // A call that timed out (or lost its connection) may still be running at the
            // ERP, which counts it against the concurrency limit until it ends there: the
            // next call must not take its place before then.
            let hold = self.lost_answer_hold;
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                drop((permit, slot));
            });
        } else {
            drop((permit, slot));
        }
        metrics::histogram!(telemetry::CONNECTION_ERP_SECONDS, "connection" => self.label.clone())
            .record(started.elapsed().as_secs_f64());
        let erp = self.erp.as_str();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind().as_str(),
        };
        metrics::histogram!(telemetry::ERP_REQUEST_SECONDS, "erp" => erp, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        if matches!(result, Err(ErpError::Throttled { .. })) {
            metrics::counter!(telemetry::THROTTLED, "erp" => erp).increment(1);
        }
        result
    }
}
