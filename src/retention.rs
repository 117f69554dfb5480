//! The retention sweeper: every `retention.interval_secs`, deletes the jobs that ended
//! more than `retention.days` ago (see `store::retention` for what goes and what stays),
//! a small batch per transaction with a pause between batches of at least nineteen times
//! the batch's own time, so that the status writer's transactions are never queued behind
//! a long delete and a sweep takes at most a twentieth of the database's write time.
//! Every daemon of a fleet sweeps; two sweeping at once delete disjoint or already-deleted
//! rows, which is harmless.

use crate::actors::Ctx;
use crate::config::RetentionConfig;
use crate::store::retention::{self, Swept};
use crate::telemetry;
use std::sync::Arc;
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

/// Sweeps until shutdown; returns at once when retention keeps everything.
pub async fn run(ctx: Arc<Ctx>) {
    let config = ctx.config.retention.clone();
    if config.days == 0 {
        return;
    }
    let interval = Duration::from_secs(config.interval_secs.get().into());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = ctx.shutdown.cancelled() => return,
        }
        let cutoff = crate::util::now_ms() - i64::from(config.days) * DAY_MS;
        if let Err(e) = sweep(&ctx, &config, cutoff).await {
            tracing::warn!(error = %e, "retention sweep failed; the next one tries again");
        }
    }
}

/// One sweep: batches until one comes back short, or shutdown. Returns what it deleted.
pub async fn sweep(ctx: &Ctx, config: &RetentionConfig, cutoff_ms: i64) -> Result<Swept, crate::store::StoreError> {
    let mut total = Swept::default();
    let least = Duration::from_millis(config.pause_ms.into());
    loop {
        let started = std::time::Instant::now();
        let swept = retention::sweep(&ctx.db, cutoff_ms, config.batch_items.get()).await?;
        let took = started.elapsed();
        metrics::histogram!(telemetry::RETENTION_BATCH_SECONDS).record(took.as_secs_f64());
        metrics::counter!(telemetry::RETENTION_DELETED, "what" => "jobs").increment(swept.jobs);
        metrics::counter!(telemetry::RETENTION_DELETED, "what" => "items").increment(swept.items);
        total.jobs += swept.jobs;
        total.items += swept.items;
        total.idempotency_keys += swept.idempotency_keys;
        if swept == Swept::default() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(least.max(took * 19)) => {}
            _ = ctx.shutdown.cancelled() => break,
        }
    }
    if total.jobs > 0 {
        tracing::info!(jobs = total.jobs, items = total.items, "retention deleted ended jobs");
    }
    Ok(total)
}
