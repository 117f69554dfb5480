//! ConnectorActor: owns one ERP connection.
//!
//! Capacity is an explicit permit gate rather than a `ractor::factory`: a `Semaphore` with
//! `max_concurrency` permits, held around every ERP call. It lives in [`ConnectorShared`],
//! outside the actor's state, so a restarted actor inherits the same gate and in-flight
//! calls of its previous incarnation still count against it — a limit can never be
//! exceeded by a restart. Separately, `outstanding` counts items handed to the connector
//! (in flight + waiting for a permit); the poller only receives while
//! `outstanding < max_concurrency + prefetch`, so the local backlog is bounded and the
//! rest of the work stays on the queue.

use super::Ctx;
use super::item;
use super::supervisor::ChildSpec;
use crate::config::ConnectionConfig;
use crate::erp::registry::Limits;
use crate::erp::{ErpClient, ErpError};
use crate::limits::rate::RateLimiter;
use crate::queue::{Envelope, ReceiptHandle, Received};
use crate::telemetry;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// Bounds of how many messages a connector holds beyond its room rather than returning
/// them (see `can_take`).
const MIN_OVERFLOW: usize = 10;
const MAX_OVERFLOW: usize = 200;

pub struct ConnectorShared {
    pub config: ConnectionConfig,
    /// The limits in force: the connection's settings, else its ERP kind's profile.
    pub limits: Limits,
    pub client: Arc<dyn ErpClient>,
    gate: Semaphore,
    rate: Option<RateLimiter>,
    /// Items handed to this connector and not finished.
    outstanding: AtomicUsize,
    /// Cluster-wide slots, when several daemons share the database.
    lease: Option<Arc<crate::limits::lease::LeasePool>>,
    slot_wait: std::time::Duration,
    /// The `connection` metric label (bounded, see `telemetry::connection_label`).
    label: String,
    /// (doc kind, source id) being worked on here, with what wakes the tasks waiting for
    /// it: one document is never exported by two tasks of this daemon at once.
    busy: Mutex<HashMap<(String, String), Arc<Notify>>>,
    /// Moving average of the interval between items finishing here while saturated, in
    /// microseconds; 0 before the first such interval.
    spacing_us: AtomicU64,
    /// When the last item finished, in microseconds since `born`.
    last_departure_us: AtomicU64,
    born: std::time::Instant,
    /// When the messages returned for saturation are due back (ms since the epoch).
    returns: Mutex<BinaryHeap<Reverse<i64>>>,
    /// On a queue that keeps group order (SQS FIFO), the runs of received messages go
    /// through one at a time, in the order they were routed.
    turnstile: Turnstile,
}

/// Serves runs in ticket order; tickets are drawn in the connector actor, in the order
/// the poller routed the runs.
struct Turnstile {
    next: AtomicU64,
    serving: tokio::sync::watch::Sender<u64>,
    /// Until when the messages behind a returned one stay off: a run served before then
    /// holds later messages (received although earlier ones were in flight, which a
    /// queue that locks its groups never does) and goes back whole.
    held_until: Mutex<Option<Instant>>,
}

/// A run's turn; the next ticket is served when it is dropped, however the run ends.
struct Turn<'a>(&'a Turnstile, u64);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.serving.send_replace(self.1 + 1);
    }
}

impl Turnstile {
    fn new() -> Turnstile {
        Turnstile { next: AtomicU64::new(0), serving: tokio::sync::watch::channel(0).0, held_until: Mutex::new(None) }
    }

    fn ticket(&self) -> u64 {
        self.next.fetch_add(1, Ordering::AcqRel)
    }

    async fn turn(&self, ticket: u64) -> Turn<'_> {
        let mut serving = self.serving.subscribe();
        let _ = serving.wait_for(|s| *s == ticket).await;
        Turn(self, ticket)
    }
}

impl ConnectorShared {
    pub fn new(
        config: ConnectionConfig,
        limits: Limits,
        client: Arc<dyn ErpClient>,
        label: String,
        lease: Option<Arc<crate::limits::lease::LeasePool>>,
        slot_wait: std::time::Duration,
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
        ConnectorShared {
            config,
            limits,
            client,
            gate: Semaphore::new(limit),
            rate,
            outstanding: AtomicUsize::new(0),
            lease,
            slot_wait,
            label,
            busy: Mutex::new(HashMap::new()),
            spacing_us: AtomicU64::new(0),
            last_departure_us: AtomicU64::new(0),
            born: std::time::Instant::now(),
            returns: Mutex::new(BinaryHeap::new()),
            turnstile: Turnstile::new(),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Learns how often this connector finishes an item at full capacity: the interval
    /// between two departures while every slot was taken (so it is the connector's pace,
    /// not the arrival rate). Time in the connector divided by the items held (Little's law) was
    /// tried first: as a backlog runs down — at the end of a drain, or while SQS is down
    /// and nothing new arrives — it overestimates many times over, and the inflated
    /// estimate held returned messages back for tens of seconds.
    ///
    /// `held` counts this item: after it leaves, `held - 1` remain. Only if those still
    /// fill every slot is the time to the next departure a sample (no departure can come
    /// between, so the slots stay full until then); otherwise the mark is cleared.
    fn observe_departure(&self, held: usize) {
        let now = (self.born.elapsed().as_micros().max(1)).min(u64::MAX as u128) as u64;
        let mark = if held > self.limit() { now } else { 0 };
        let previous = self.last_departure_us.swap(mark, Ordering::AcqRel);
        if previous == 0 {
            return;
        }
        let sample = now.saturating_sub(previous).max(1);
        let old = self.spacing_us.load(Ordering::Relaxed);
        let new = if old == 0 { sample } else { (old * 9 + sample) / 10 };
        self.spacing_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Messages held beyond the room: about a second of this connector's work (at least
    /// one batch, at most 200), so returned messages arriving in SQS's whole-second
    /// bursts are absorbed rather than returned again.
    fn overflow(&self) -> usize {
        match self.spacing_us.load(Ordering::Relaxed) {
            0 => MIN_OVERFLOW,
            us => (1_000_000 / us as usize).clamp(MIN_OVERFLOW, MAX_OVERFLOW),
        }
    }

    /// How long a message for this saturated connection should stay on the queue, given
    /// how often it was received already.
    ///
    /// It should come back when everything ahead of it — the items held here and the
    /// messages returned before it — is done: that many times the learnt interval
    /// between finished items. The delay is also capped at 2^(receives-1) s, so a poor
    /// estimate (at start) costs little, and the receives of one message stay
    /// logarithmic in the backlog's drain time, well under `max_receives`.
    pub fn return_delay(&self, receive_count: u32) -> std::time::Duration {
        let spacing_ms = match self.spacing_us.load(Ordering::Relaxed) {
            0 => 1_000.0,
            us => us as f64 / 1000.0,
        };
        let now = crate::util::now_ms();
        let mut due = self.returns.lock().unwrap();
        while due.peek().is_some_and(|Reverse(t)| *t <= now) {
            due.pop();
        }
        let ahead = (self.outstanding() + due.len() + 1) as f64;
        let slot = now + (spacing_ms * ahead) as i64;
        let cap = 1_000i64 << receive_count.saturating_sub(1).min(20);
        let at = slot.min(now + cap).clamp(now + 1_000, now + 15 * 60 * 1_000);
        if due.len() < 100_000 {
            due.push(Reverse(at));
        }
        std::time::Duration::from_millis((at - now) as u64)
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
    /// returned messages back in bursts. Up to [`Self::overflow`] beyond the room wait
    /// here for a slot (visibility extended by heartbeats) instead of going back.
    pub fn can_take(&self) -> bool {
        self.outstanding() < self.limit() + self.limits.prefetch as usize + self.overflow()
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Runs one ERP call under the connection's rate limit and concurrency gate.
    pub async fn call<T>(&self, fut: impl Future<Output = Result<T, ErpError>>) -> Result<T, ErpError> {
        if let Some(rate) = &self.rate {
            rate.acquire().await;
        }
        let _permit = self.gate.acquire().await.expect("the gate is never closed");
        // Across the fleet: a slot in the database, after the local permit so a daemon never
        // holds more slots than it can use.
        let slot = match &self.lease {
            Some(pool) => match pool.acquire(self.slot_wait).await {
                Ok(guard) => Some(guard),
                Err(crate::limits::lease::LeaseError::Timeout(d)) => {
                    return Err(ErpError::Saturated(format!("no slot free within {} s", d.as_secs())));
                }
                Err(e) => return Err(ErpError::Transient(e.to_string())),
            },
            None => None,
        };
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
        drop(slot);
        metrics::histogram!(telemetry::CONNECTION_ERP_SECONDS, "connection" => self.label.clone())
            .record(started.elapsed().as_secs_f64());
        let erp = self.config.erp.as_str();
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

    /// Claims a document for this task, waiting up to `wait` while another task works on
    /// it (copies of one document submitted together then follow each other within
    /// milliseconds instead of going back to the queue); None if it stayed taken.
    pub async fn claim(self: &Arc<Self>, kind: &str, source: &str, wait: Duration) -> Option<Claim> {
        let key = (kind.to_owned(), source.to_owned());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let holder = match self.busy.lock().unwrap().entry(key.clone()) {
                Entry::Vacant(v) => {
                    v.insert(Arc::new(Notify::new()));
                    return Some(Claim { conn: self.clone(), key });
                }
                Entry::Occupied(o) => o.get().clone(),
            };
            let released = holder.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            // Released between the look and the registration: look again.
            if !self.busy.lock().unwrap().get(&key).is_some_and(|n| Arc::ptr_eq(n, &holder)) {
                continue;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return None;
            }
        }
    }
}

pub struct Claim {
    conn: Arc<ConnectorShared>,
    key: (String, String),
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(waiting) = self.conn.busy.lock().unwrap().remove(&self.key) {
            waiting.notify_waiters();
        }
    }
}

/// A received message on its way through a connector. Dropping it — finished, abandoned
/// or lost in a dying mailbox — gives the capacity back and stops its heartbeat.
pub struct Delivery {
    pub receipt: ReceiptHandle,
    /// The message as received (its body goes to the dead-letter store if it comes to that).
    pub message: Received,
    pub envelope: Envelope,
    /// Which attempt at the item this is (from its row; 0 until the attempt starts).
    pub attempt: AtomicU32,
    /// How many of the item's earlier attempts do not count against
    /// `retry.max_attempts` (throttled by the ERP, or made before a redrive).
    pub uncounted_before: AtomicU32,
    ctx: Arc<Ctx>,
    conn: Arc<ConnectorShared>,
    /// Still counted in the connector's `outstanding`.
    counted: std::sync::atomic::AtomicBool,
}

impl Delivery {
    /// Registers a message as handed to `conn`.
    pub fn new(ctx: Arc<Ctx>, conn: Arc<ConnectorShared>, message: Received, envelope: Envelope) -> Self {
        conn.outstanding.fetch_add(1, Ordering::AcqRel);
        let receipt = message.receipt.clone();
        ctx.in_flight.lock().unwrap().insert(receipt.clone(), std::time::Instant::now());
        Delivery {
            receipt,
            message,
            envelope,
            attempt: AtomicU32::new(0),
            uncounted_before: AtomicU32::new(0),
            ctx,
            conn,
            counted: true.into(),
        }
    }

    pub fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Acquire)
    }

    /// This attempt's number among those that count against `retry.max_attempts`.
    pub fn counted_attempts(&self) -> u32 {
        self.attempt().saturating_sub(self.uncounted_before.load(Ordering::Acquire))
    }

    /// The ERP work is done: the connector may take the next item while this one's
    /// outcome is being recorded, so its slots never wait on our bookkeeping.
    pub fn release_capacity(&self) {
        if self.counted.swap(false, Ordering::AcqRel) {
            let held = self.conn.outstanding.fetch_sub(1, Ordering::AcqRel);
            self.conn.observe_departure(held);
            self.ctx.capacity.notify_one();
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.ctx.in_flight.lock().unwrap().remove(&self.receipt);
        self.release_capacity();
    }
}

pub enum ConnectorMsg {
    /// One item, worked on beside the others (up to the connection's limit).
    Process(Box<Delivery>),
    /// A connection's messages from one receive of a queue that keeps group order, in
    /// that order: worked on one after the other, so the ERP creates them in queue order.
    /// When one goes back to the queue (a retry, a busy connection), the rest go back
    /// with it, unattempted, to come again behind it.
    ProcessInOrder(Vec<Delivery>),
}

pub struct ConnectorActor;

pub struct ConnectorState {
    ctx: Arc<Ctx>,
    conn: Arc<ConnectorShared>,
}

impl Actor for ConnectorActor {
    type Msg = ConnectorMsg;
    type State = ConnectorState;
    type Arguments = (Arc<Ctx>, Arc<ConnectorShared>);

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        (ctx, conn): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ConnectorState { ctx, conn })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (ctx, conn) = (state.ctx.clone(), state.conn.clone());
        let abandon = ctx.abandon.clone();
        match msg {
            ConnectorMsg::Process(delivery) => state.ctx.tasks.spawn(async move {
                tokio::select! {
                    // Abandoned work leaves its message to reappear after the visibility timeout.
                    _ = abandon.cancelled() => {}
                    _ = item::process(&ctx, &conn, *delivery) => {}
                }
            }),
            ConnectorMsg::ProcessInOrder(run) => {
                let ticket = conn.turnstile.ticket();
                state.ctx.tasks.spawn(async move {
                    tokio::select! {
                        _ = abandon.cancelled() => {}
                        _ = in_order(&ctx, &conn, ticket, run) => {}
                    }
                })
            }
        };
        Ok(())
    }
}

/// Works through a run of deliveries one by one, after the runs routed before it (see
/// [`ConnectorMsg::ProcessInOrder`]).
async fn in_order(ctx: &Ctx, conn: &Arc<ConnectorShared>, ticket: u64, run: Vec<Delivery>) {
    let turnstile = &conn.turnstile;
    let _turn = turnstile.turn(ticket).await;
    let mut run = run.into_iter();
    let held = turnstile.held_until.lock().unwrap().and_then(|t| t.checked_duration_since(Instant::now()));
    if let Some(left) = held {
        return_behind(ctx, run, left).await;
        return;
    }
    while let Some(delivery) = run.next() {
        let item::Disposition::Returned(delay) = item::process(ctx, conn, delivery).await else { continue };
        // The rest become visible no sooner than the one that went back, and the queue
        // then hands the group out in order again. SQS counts visibility in whole
        // seconds, rounded up: so does the hold.
        let hold = std::time::Duration::from_secs(delay.as_secs() + u64::from(delay.subsec_nanos() > 0));
        *turnstile.held_until.lock().unwrap() = Some(Instant::now() + hold);
        return_behind(ctx, run, delay).await;
        return;
    }
}

/// Returns deliveries behind one that went back to the queue, unattempted.
async fn return_behind(ctx: &Ctx, rest: impl Iterator<Item = Delivery>, delay: std::time::Duration) {
    let rest: Vec<_> = rest.map(|d| (d.receipt.clone(), delay)).collect();
    if rest.is_empty() {
        return;
    }
    metrics::counter!(telemetry::QUEUE_RETURNED, "reason" => "behind_returned").increment(rest.len() as u64);
    if let Err(e) = ctx.queue.change_visibility(&rest).await {
        metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "return", "error_kind" => e.kind()).increment(1);
        tracing::warn!(error = %e, "could not return the rest of an ordered run; it reappears after its visibility timeout");
    }
}

pub fn specs(ctx: &Arc<Ctx>) -> Vec<ChildSpec> {
    ctx.connectors
        .values()
        .map(|conn| {
            let name = ctx.name(&format!("connector.{}", conn.config.id));
            let (c, s, n) = (ctx.clone(), conn.clone(), name.clone());
            ChildSpec {
                name,
                kind: "connector",
                start: Arc::new(move |parent| {
                    let (c, s, n) = (c.clone(), s.clone(), n.clone());
                    Box::pin(async move {
                        Ok(Actor::spawn_linked(Some(n), ConnectorActor, (c, s), parent).await?.0.get_cell())
                    })
                }),
            }
        })
        .collect()
}
