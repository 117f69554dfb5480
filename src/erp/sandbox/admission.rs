//! Admission of every request, whatever the dialect: auth, the concurrency limit, the
//! rate limit, latency and injected faults.

use super::sim::{Counters, Sim, error, throttle};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use tokio::time::Instant;

/// Counts a request in flight for as long as it lives, even if the client goes away.
pub(super) struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}

/// Admission: auth, the concurrency limit, the rate limit, latency, injected faults. On
/// success, returns the guard that keeps the request counted until it is answered.
pub(super) async fn admit<'a>(sim: &'a Sim, headers: &HeaderMap) -> Result<InFlight<'a>, Response> {
    let (guard, arrived, now) = arrive(sim);
    let c = &sim.counters;
    if let Some(token) = &sim.opts.token {
        let expected = format!("Bearer {token}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token"));
        }
    }
    if now > sim.opts.concurrency {
        c.throttled.fetch_add(1, SeqCst);
        return Err(throttle(1));
    }
    if let Some(per_min) = sim.opts.rate_per_min {
        let mut books = sim.books.lock().await;
        let t = Instant::now();
        let (start, n) = books.rate_window.get_or_insert((t, 0));
        if t.duration_since(*start) >= Duration::from_secs(60) {
            *start = t;
            *n = 0;
        }
        if *n >= per_min {
            c.throttled.fetch_add(1, SeqCst);
            let wait = Duration::from_secs(60).saturating_sub(t.duration_since(*start));
            return Err(throttle(wait.as_secs_f64().ceil() as u64));
        }
        *n += 1;
    }
    if settle(sim, arrived).await.is_err() {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "injected fault"));
    }
    Ok(guard)
}

/// The first step of every admission: counts the request and holds it in flight. Returns
/// the guard, when it arrived (latency counts from there, whatever admission costs) and how
/// many requests are in flight with it.
pub(super) fn arrive(sim: &Sim) -> (InFlight<'_>, Instant, u64) {
    let arrived = Instant::now();
    let c = &sim.counters;
    c.requests.fetch_add(1, SeqCst);
    let now = c.in_flight.fetch_add(1, SeqCst) + 1;
    let guard = InFlight(c);
    c.max_seen.fetch_max(now, SeqCst);
    (guard, arrived, now)
}

/// The last step of admission, once the dialect's own checks passed: waits out the
/// simulated latency, then fails the request (`Err`, counted as a fault) at the injected
/// fault rate. The dialect answers a fault in its own words.
pub(super) async fn settle(sim: &Sim, arrived: Instant) -> Result<(), ()> {
    let jitter = if sim.opts.jitter_ms > 0 { rand::random_range(0..=sim.opts.jitter_ms) } else { 0 };
    simulate_latency(sim, arrived + Duration::from_millis(sim.opts.latency_ms + jitter)).await;
    if sim.opts.fault_rate > 0.0 && rand::random::<f64>() < sim.opts.fault_rate {
        sim.counters.faults.fetch_add(1, SeqCst);
        return Err(());
    }
    Ok(())
}

/// Sleeps so the answer goes out at `target` on average: the timer is set early by the
/// lateness it showed so far (a running average of wake-up minus target).
async fn simulate_latency(sim: &Sim, target: Instant) {
    let lead = Duration::from_micros(sim.timer_lead_us.load(SeqCst).clamp(0, 2_000) as u64);
    tokio::time::sleep_until(target.checked_sub(lead).unwrap_or(target)).await;
    let now = Instant::now();
    let late_us = if now >= target {
        now.duration_since(target).as_micros() as i64
    } else {
        -(target.duration_since(now).as_micros() as i64)
    };
    let _ = sim.timer_lead_us.fetch_update(SeqCst, SeqCst, |lead| Some((lead + late_us / 8).clamp(0, 2_000)));
}
