//! A token bucket: `per_min` tokens a minute, bursts up to a tenth of that (at least one),
//! so a connection spreads its calls instead of spending a minute's budget in a second
//! and then being throttled by the ERP. The API limits each token's requests with one too.

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct RateLimiter {
    interval: Duration,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn per_minute(per_min: u32) -> Self {
        let per_min = per_min.max(1);
        let burst = (per_min as f64 / 10.0).max(1.0);
        RateLimiter {
            interval: Duration::from_secs_f64(60.0 / per_min as f64),
            burst,
            state: Mutex::new((burst, Instant::now())),
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
        let refill = now.duration_since(st.1).as_secs_f64() / self.interval.as_secs_f64();
        st.0 = (st.0 + refill).min(self.burst);
        st.1 = now;
        if st.0 >= 1.0 {
            st.0 -= 1.0;
            return Ok(());
        }
        Err(self.interval.mul_f64(1.0 - st.0))
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
}
