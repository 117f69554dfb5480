//! The delivery worker: claims due deliveries (see `store::webhooks::deliveries`), sends
//! each as a signed `POST` with at most `webhooks.concurrency` in flight and
//! `webhooks.timeout_secs` per attempt, and records what the receiver answered. A 2xx is
//! delivered; `410 Gone` means the receiver wants no more and fails the delivery at once;
//! anything else, no answer included, is retried on the schedule of `super::schedule`.
//! Redirects are not followed (the specification asks senders to treat them as failures).

use super::schedule::Schedule;
use super::{address, signing};
use crate::actors::Ctx;
use crate::store::webhooks::deliveries::{AttemptRecord, Claimed, Next};
use crate::store::webhooks::{self as store, deliveries};
use crate::telemetry::events::WebhookAttempted;
use crate::util::now_ms;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

/// How long past its timeout an attempt's claim lasts: a claim lapses only when its
/// daemon died, never while the attempt can still be answered.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// How often the queue's depth is sampled for `erpsync_webhook_deliveries_pending`.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// What every attempt needs.
struct Sender {
    ctx: Arc<Ctx>,
    client: reqwest::Client,
    schedule: Schedule,
    allow_private: bool,
}

/// Runs until aborted (the daemon's stop), taking the attempts in flight with it: their
/// claims lapse and the deliveries are sent again, as after a crash.
pub async fn run(ctx: Arc<Ctx>, wake: Arc<Notify>) {
    let config = ctx.config.webhooks.clone();
    let timeout = Duration::from_secs(config.timeout_secs.get().into());
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(address::GuardedResolver { allow_private: config.allow_private })
        .user_agent(concat!("erpsync-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the webhook client builds");
    let sender = Arc::new(Sender {
        ctx: ctx.clone(),
        client,
        schedule: Schedule::from_config(&config),
        allow_private: config.allow_private,
    });
    let permits = Arc::new(Semaphore::new(config.concurrency.get() as usize));
    let lease_ms = i64::try_from((timeout + LEASE_MARGIN).as_millis()).unwrap_or(i64::MAX);
    let poll = Duration::from_millis(config.poll_interval_ms.get().into());
    let done = Arc::new(Notify::new());
    let mut in_flight = JoinSet::new();
    let mut sampled = Instant::now() - DEPTH_EVERY;
    loop {
        while in_flight.try_join_next().is_some() {}
        if sampled.elapsed() >= DEPTH_EVERY {
            sampled = Instant::now();
            if let Ok(n) = deliveries::pending(&ctx.db).await {
                metrics::gauge!(crate::telemetry::WEBHOOK_PENDING).set(n as f64);
            }
        }
        let free = permits.available_permits();
        let mut claimed = Vec::new();
        if free > 0 {
            match deliveries::claim(&ctx.db, free as u32, now_ms(), lease_ms).await {
                Ok(c) => claimed = c,
                Err(e) => tracing::warn!(error = %e, "cannot claim webhook deliveries; trying again shortly"),
            }
        }
        let full = free > 0 && claimed.len() == free;
        for c in claimed {
            let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
            let (sender, done) = (sender.clone(), done.clone());
            in_flight.spawn(async move {
                sender.attempt(c).await;
                drop(permit);
                done.notify_one();
            });
        }
        if full {
            continue;
        }
        // Nothing more is due (or no room): wait for new deliveries, a finished attempt
        // or the poll, which also brings retries coming due and other daemons' work.
        tokio::select! {
            _ = wake.notified() => {}
            _ = done.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

impl Sender {
    async fn attempt(&self, c: Claimed) {
        let started = Instant::now();
        let at_ms = now_ms();
        let (status, error, retry_after) = match self.send(&c, at_ms).await {
            Ok((status, retry_after)) => {
                let error = (!(200..300).contains(&status)).then(|| format!("the receiver answered {status}"));
                (Some(i32::from(status)), error, retry_after)
            }
            Err(e) => (None, Some(e), None),
        };
        let latency = started.elapsed();
        let next = match status {
            Some(200..=299) => Next::Delivered,
            Some(410) => Next::Failed,
            _ => match self.schedule.next(c.attempt, now_ms(), c.retry_until_ms, rand::random(), retry_after) {
                Some(at) => Next::RetryAt(at),
                None => Next::Failed,
            },
        };
        let record = AttemptRecord {
            at_ms,
            status,
            error: error.clone(),
            latency_ms: i64::try_from(latency.as_millis()).unwrap_or(i64::MAX),
        };
        WebhookAttempted {
            delivery: &c.id,
            subscription: &c.subscription_id,
            attempt: c.attempt,
            outcome: match next {
                Next::Delivered => "delivered",
                Next::RetryAt(_) => "retried",
                Next::Failed => "failed",
            },
            status,
            error: error.as_deref(),
            latency,
        }
        .emit();
        match deliveries::record(&self.ctx.db, &c, &record, next).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(delivery = %c.id, "delivery was redelivered or reclaimed meanwhile; outcome dropped")
            }
            // The claim lapses and the delivery is sent again: at least once, never lost.
            Err(e) => tracing::warn!(delivery = %c.id, error = %e, "cannot record a webhook attempt"),
        }
    }

    /// Sends one attempt; the receiver's status and `Retry-After`, or why there was none.
    async fn send(&self, c: &Claimed, at_ms: i64) -> Result<(u16, Option<Duration>), String> {
        let Some((url, sealed)) = store::target(&self.ctx.db, &c.subscription_id).await.map_err(|e| e.to_string())?
        else {
            return Err("the subscription was deleted".into());
        };
        let url = address::parse(&url)?;
        address::refused_literal(&url, self.allow_private)?;
        let key = self.ctx.secrets.as_ref().ok_or("no `[secrets] key` is configured to open the signing secret")?;
        let owner = super::secret_owner(&c.subscription_id);
        let mut secrets: Vec<SecretString> = vec![key.open(&owner, &sealed.current).map_err(|e| e.to_string())?];
        if let Some((previous, until)) = &sealed.previous
            && *until > at_ms
        {
            secrets.push(key.open(&owner, previous).map_err(|e| e.to_string())?);
        }
        let keys: Vec<Vec<u8>> = secrets.iter().filter_map(signing::key).collect();
        let timestamp = at_ms.div_euclid(1000);
        let signature = signing::header(&keys, &c.id, timestamp, c.body.as_bytes());
        let answer = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &c.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(c.body.clone())
            .send()
            .await
            .map_err(describe)?;
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Ok((answer.status().as_u16(), retry_after))
    }
}

/// A failed request in a sentence, with its cause (reqwest's own message names only the URL).
fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() { format!("the request {what}") } else { format!("the request {what}: {cause}") }
}
