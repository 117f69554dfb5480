//! The pace of a saturated connection: how often it finishes an item at full capacity,
//! and from that how many messages it holds beyond its room and how long a message it
//! cannot take yet stays on the queue.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bounds of how many messages a connector holds beyond its room rather than returning
/// them (see `Connection::can_take`).
const MIN_OVERFLOW: usize = 10;
const MAX_OVERFLOW: usize = 200;

pub struct Pacer {
    /// Moving average of the interval between items finishing here while saturated, in
    /// microseconds; 0 before the first such interval.
    spacing_us: AtomicU64,
    /// When the last item finished, in microseconds since `born`.
    last_departure_us: AtomicU64,
    born: Instant,
    /// When the messages returned for saturation are due back (ms since the epoch).
    returns: Mutex<BinaryHeap<Reverse<i64>>>,
}

impl Pacer {
    pub(super) fn new() -> Self {
        Pacer {
            spacing_us: AtomicU64::new(0),
            last_departure_us: AtomicU64::new(0),
            born: Instant::now(),
            returns: Mutex::new(BinaryHeap::new()),
        }
    }

    /// Learns how often this connector finishes an item at full capacity: the interval
    /// between two departures while every slot was taken (so it is the connector's pace,
    /// not the arrival rate). Not the time in the connector divided by the items held
    /// (Little's law): as a backlog runs down — at the end of a drain, or while SQS is
    /// down and nothing new arrives — that overestimates many times over, and the inflated
    /// estimate would hold returned messages back for tens of seconds.
    ///
    /// `held` counts this item: after it leaves, `held - 1` remain. Only if those still
    /// fill every one of the `limit` slots is the time to the next departure a sample (no
    /// departure can come between, so the slots stay full until then); otherwise the mark
    /// is cleared.
    pub fn observe_departure(&self, held: usize, limit: usize) {
        let now = (self.born.elapsed().as_micros().max(1)).min(u64::MAX as u128) as u64;
        let mark = if held > limit { now } else { 0 };
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
    pub fn overflow(&self) -> usize {
        match self.spacing_us.load(Ordering::Relaxed) {
            0 => MIN_OVERFLOW,
            us => (1_000_000 / us as usize).clamp(MIN_OVERFLOW, MAX_OVERFLOW),
        }
    }

    /// How long a message for this saturated connection should stay on the queue, given
    /// how often it was received already and how many items the connector holds.
    ///
    /// It should come back when everything ahead of it — the items held here and the
    /// messages returned before it — is done: that many times the learnt interval
    /// between finished items. The delay is also capped at 2^(receives-1) s, so a poor
    /// estimate (at start) costs little, and the receives of one message stay
    /// logarithmic in the backlog's drain time, well under `max_receives`.
    pub fn return_delay(&self, receive_count: u32, outstanding: usize) -> Duration {
        let spacing_ms = match self.spacing_us.load(Ordering::Relaxed) {
            0 => 1_000.0,
            us => us as f64 / 1000.0,
        };
        let now = crate::util::now_ms();
        let mut due = self.returns.lock().unwrap();
        while due.peek().is_some_and(|Reverse(t)| *t <= now) {
            due.pop();
        }
        let ahead = (outstanding + due.len() + 1) as f64;
        let slot = now + (spacing_ms * ahead) as i64;
        let cap = 1_000i64 << receive_count.saturating_sub(1).min(20);
        let at = slot.min(now + cap).clamp(now + 1_000, now + 15 * 60 * 1_000);
        if due.len() < 100_000 {
            due.push(Reverse(at));
        }
        Duration::from_millis((at - now) as u64)
    }
}
