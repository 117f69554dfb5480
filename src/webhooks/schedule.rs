//! When a failed delivery is tried again: exponential backoff from
//! `webhooks.retry_base_delay_ms`, doubling per attempt up to
//! `webhooks.retry_max_delay_secs`, each wait drawn between half and all of its step (so
//! receivers coming back from an outage are not hit by every sender at once), a
//! `Retry-After` the receiver sent honoured as a floor, and never past the delivery's
//! retry window: the last attempt is made at its close, then the delivery is `failed`.

use std::time::Duration;

/// The schedule's settings.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub base: Duration,
    pub max: Duration,
}

impl Schedule {
    pub fn from_config(c: &crate::config::WebhooksConfig) -> Schedule {
        Schedule {
            base: Duration::from_millis(c.retry_base_delay_ms.get().into()),
            max: Duration::from_secs(c.retry_max_delay_secs.get().into()),
        }
    }

    /// The step after attempt `attempt` (1 for the first) failed, before jitter.
    pub fn step(&self, attempt: i32) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// When attempt `attempt + 1` is due after attempt `attempt` failed at `now_ms`, or
    /// None when the window closing at `until_ms` is over. `unit` (in [0, 1)) draws the
    /// jitter; `retry_after` is the receiver's own ask.
    pub fn next(
        &self,
        attempt: i32,
        now_ms: i64,
        until_ms: i64,
        unit: f64,
        retry_after: Option<Duration>,
    ) -> Option<i64> {
        if now_ms >= until_ms {
            return None;
        }
        let step = self.step(attempt).as_millis() as f64;
        let mut wait = (step / 2.0 + unit.clamp(0.0, 1.0) * step / 2.0) as i64;
        if let Some(ra) = retry_after {
            wait = wait.max(i64::try_from(ra.as_millis()).unwrap_or(i64::MAX));
        }
        Some(now_ms.saturating_add(wait.max(1)).min(until_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule { base: Duration::from_secs(5), max: Duration::from_secs(3600) }
    }

    #[test]
    fn steps_double_up_to_the_cap() {
        let s = schedule();
        let steps: Vec<u64> = (1..=12).map(|a| s.step(a).as_secs()).collect();
        assert_eq!(steps, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
        assert_eq!(s.step(1000).as_secs(), 3600);
    }

    #[test]
    fn waits_are_jittered_within_half_to_all_of_the_step() {
        let s = schedule();
        assert_eq!(s.next(1, 0, i64::MAX, 0.0, None), Some(2_500));
        assert_eq!(s.next(1, 0, i64::MAX, 0.999_999, None), Some(4_999));
        assert_eq!(s.next(3, 1_000, i64::MAX, 0.5, None), Some(1_000 + 15_000));
    }

    #[test]
    fn retry_after_is_a_floor_and_the_window_a_ceiling() {
        let s = schedule();
        assert_eq!(s.next(1, 0, i64::MAX, 0.0, Some(Duration::from_secs(60))), Some(60_000));
        assert_eq!(s.next(9, 0, 10_000, 0.0, None), Some(10_000), "the last attempt is at the window's close");
        assert_eq!(s.next(9, 10_000, 10_000, 0.0, None), None, "then it is over");
    }

    #[test]
    fn a_day_of_retries_with_the_defaults_is_about_thirty_attempts() {
        let s = schedule();
        let (mut at, mut attempts) = (0i64, 1);
        while let Some(next) = s.next(attempts, at, 86_400_000, 1.0, None) {
            at = next;
            attempts += 1;
        }
        assert!((25..=40).contains(&attempts), "{attempts}");
    }
}
