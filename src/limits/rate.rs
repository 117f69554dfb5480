//! A minute's budget of `per_min` grants. Vendors count fixed or sliding minutes (Xero
//! refuses the 61st call of its minute), so the times of the last `per_min` grants are
//! kept, and a grant waits until fewer than `per_min` fall in the 61 seconds before it:
//! never more than `per_min` in any minute, however the vendor draws its windows.
//!
//! [`RateLimiter::budget`] is only that: an ERP connection spends its minute's budget as
//! fast as its concurrency allows, which is what the vendor grants it — pacing the calls
//! evenly would leave the budget unspent and a backlog waiting while the ERP is idle.
//! [`RateLimiter::per_minute`] adds a token bucket (bursts up to a tenth of the minute, at
//! least one) that spreads requests over the minute: the API paces each token's requests
//! with it, so one client cannot spend its minute in a second.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The minute a vendor counts, and a second more: a call reaches the vendor a little after
/// its grant, by more for some calls (the first waits for an access token), so a window
/// drawn from the vendor's first arrival could otherwise hold one grant too many.
const WINDOW: Duration = Duration::from_secs(61);

pub struct RateLimiter {
    interval: Duration,
    burst: f64,
    per_min: usize,
    state: Mutex<State>,
}

struct State {
    tokens: f64,
    at: Instant,
    /// When the last `per_min` grants were made, oldest first.
    granted: VecDeque<Instant>,
}

impl RateLimiter {
    /// Paced: `per_min` a minute, in bursts of at most a tenth of it.
    pub fn per_minute(per_min: u32) -> Self {
        Self::with_burst(per_min, (per_min.max(1) as f64 / 10.0).max(1.0))
    }

    /// A vendor's minute budget, spent as soon as it is wanted (the bucket never binds
    /// before the window does).
    pub fn budget(per_min: u32) -> Self {
        Self::with_burst(per_min, per_min.max(1) as f64)
    }

    fn with_burst(per_min: u32, burst: f64) -> Self {
        let per_min = per_min.max(1);
        RateLimiter {
            interval: Duration::from_secs_f64(60.0 / per_min as f64),
            burst,
            per_min: per_min as usize,
            state: Mutex::new(State { tokens: burst, at: Instant::now(), granted: VecDeque::new() }),
        }
    }

    /// Waits until a token is available and takes it.
    pub async fn acquire(&self) {
        while let Err(wait) = self.try_acquire().await {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token if one is available; otherwise says how long until one is.
    pub async fn try_acquire(&self) -> Result<(), Duration> {
        let mut st = self.state.lock().await;
        let now = Instant::now();
        let refill = now.duration_since(st.at).as_secs_f64() / self.interval.as_secs_f64();
        st.tokens = (st.tokens + refill).min(self.burst);
        st.at = now;
        while st.granted.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            st.granted.pop_front();
        }
        if st.granted.len() >= self.per_min {
            let oldest = *st.granted.front().expect("a full window has a first grant");
            return Err((oldest + WINDOW).duration_since(now).max(Duration::from_millis(1)));
        }
        if st.tokens >= 1.0 {
            st.tokens -= 1.0;
            st.granted.push_back(now);
            return Ok(());
        }
        Err(self.interval.mul_f64(1.0 - st.tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spreads_calls_over_the_minute() {
        let rl = RateLimiter::per_minute(60); // one a second, burst of 6
        let start = Instant::now();
        for _ in 0..6 {
            rl.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(10), "the burst is immediate");
        for _ in 0..4 {
            rl.acquire().await;
        }
        let e = start.elapsed();
        assert!(e >= Duration::from_secs(4) && e < Duration::from_millis(4100), "{e:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_is_spent_at_once_and_renews_a_window_later() {
        let rl = RateLimiter::budget(500);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..1_200 {
            rl.acquire().await;
            at.push(start.elapsed());
        }
        assert!(at[499] < Duration::from_millis(10), "a minute's budget at once: {:?}", at[499]);
        assert_eq!((at[500], at[1_000]), (WINDOW, WINDOW * 2), "then the next when the window allows");
        for (i, t) in at.iter().enumerate() {
            let in_minute = at[i..].iter().take_while(|u| **u < *t + WINDOW).count();
            assert!(in_minute <= 500, "{in_minute} grants in the minute from {t:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn try_acquire_says_how_long_to_wait() {
        let rl = RateLimiter::per_minute(60);
        for _ in 0..6 {
            rl.try_acquire().await.unwrap();
        }
        let wait = rl.try_acquire().await.unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        tokio::time::advance(wait).await;
        rl.try_acquire().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn no_minute_holds_more_than_the_limit() {
        let rl = RateLimiter::per_minute(60);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..130 {
            rl.acquire().await;
            at.push(start.elapsed());
        }
        for (i, t) in at.iter().enumerate() {
            let in_minute = at[i..].iter().take_while(|u| **u < *t + WINDOW).count();
            assert!(in_minute <= 60, "{in_minute} grants in the minute from {t:?}");
        }
        // The pace still averages the limit: 130 grants in a little over two minutes.
        assert!(at[129] < Duration::from_secs(131), "{:?}", at[129]);
    }
}
