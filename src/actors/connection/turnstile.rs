//! The turnstile of a connection's ordered runs: on a queue that keeps group order, the
//! runs of received messages go through one at a time, in the order they were routed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Serves runs in ticket order; tickets are drawn in the connector actor, in the order
/// the poller routed the runs.
pub struct Turnstile {
    next: AtomicU64,
    serving: tokio::sync::watch::Sender<u64>,
    /// Until when the messages behind a returned one stay off: a run served before then
    /// holds later messages (received although earlier ones were in flight, which a
    /// queue that locks its groups never does) and goes back whole.
    held_until: Mutex<Option<Instant>>,
}

/// A run's turn; the next ticket is served when it is dropped, however the run ends.
pub struct Turn<'a>(&'a Turnstile, u64);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.serving.send_replace(self.1 + 1);
    }
}

impl Turnstile {
    pub(super) fn new() -> Turnstile {
        Turnstile { next: AtomicU64::new(0), serving: tokio::sync::watch::channel(0).0, held_until: Mutex::new(None) }
    }

    pub fn ticket(&self) -> u64 {
        self.next.fetch_add(1, Ordering::AcqRel)
    }

    pub async fn turn(&self, ticket: u64) -> Turn<'_> {
        let mut serving = self.serving.subscribe();
        let _ = serving.wait_for(|s| *s == ticket).await;
        Turn(self, ticket)
    }

    /// How much longer the messages behind a returned one stay off, if they do.
    pub fn held(&self) -> Option<Duration> {
        self.held_until.lock().unwrap().and_then(|t| t.checked_duration_since(Instant::now()))
    }

    /// Keeps the messages behind a returned one off for `hold`.
    pub fn hold(&self, hold: Duration) {
        *self.held_until.lock().unwrap() = Some(Instant::now() + hold);
    }
}
