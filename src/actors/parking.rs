//! Parked connections at runtime (the record is `store::parks`): parking one when its
//! ERP refuses its credentials for good, shelving the messages that arrive for it, and
//! following the fleet — every second each daemon reads which connections are parked and
//! which have new credentials, so an operator's `erpsync connections resume` or
//! `set-credentials` (or a park by another daemon) takes effect everywhere without a
//! restart. A resumed connection's shelved items are sent again by the outbox sweep.

use super::Ctx;
use super::connection::Connection;
use crate::connections;
use crate::domain::ItemId;
use crate::queue::ReceiptHandle;
use crate::store::parks::{self, ParkReason};
use crate::telemetry::events::{MessagesReturned, QueueCallFailed, QueueOp, ReturnReason};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a daemon reads the fleet's parks and credential versions.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Parks `conn` for `reason`, in the database (for the fleet) and here.
pub async fn park(ctx: &Ctx, conn: &Connection, reason: ParkReason, detail: &str) {
    match parks::park(&ctx.db, &conn.config.tenant, conn.config.id.as_str(), reason, detail).await {
        Ok(true) => tracing::error!(
            connection = %conn.config.id,
            reason = reason.as_str(),
            detail,
            "connection parked: its items wait, unattempted, until `erpsync connections resume`"
        ),
        Ok(false) => {}
        // Parked here all the same: the next attempt on another daemon parks it there.
        Err(e) => tracing::warn!(connection = %conn.config.id, error = %e, "could not record the park"),
    }
    let park = parks::Park {
        connection_id: conn.config.id.to_string(),
        reason,
        detail: detail.to_owned(),
        parked_at_ms: crate::util::now_ms(),
    };
    conn.set_park(Some(park));
}

/// Shelves a message of a parked connection: its item flagged for the outbox, then the
/// message deleted. Returns false when the item could not be flagged; the message must
/// then go back to the queue instead.
pub async fn shelve(ctx: &Ctx, item: ItemId, receipt: &ReceiptHandle) -> bool {
    if let Err(e) = parks::shelve(&ctx.db, item).await {
        tracing::warn!(%item, error = %e, "could not shelve the item of a parked connection");
        return false;
    }
    MessagesReturned { reason: ReturnReason::Parked, count: 1 }.emit();
    if let Err(e) = ctx.queue.delete(receipt).await {
        // It comes back, and is shelved again; the outbox sends the item once resumed.
        QueueCallFailed {
            op: QueueOp::Delete,
            error_kind: e.kind(),
            error: &e,
            consequence: "it will be shelved again",
        }
        .emit();
    }
    true
}

/// Follows the fleet's parks and stored credentials until shutdown.
pub async fn watch(ctx: Arc<Ctx>) {
    loop {
        sync(&ctx).await;
        tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = ctx.shutdown.cancelled() => return,
        }
    }
}

/// One round of [`watch`].
pub async fn sync(ctx: &Ctx) {
    let (parked, versions) = match tokio::try_join!(parks::all(&ctx.db), connections_versions(ctx)) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the parked connections; keeping what was known");
            return;
        }
    };
    let mut parked: HashMap<String, parks::Park> = parked.into_iter().map(|p| (p.connection_id.clone(), p)).collect();
    let mut resumed_any = false;
    for (id, conn) in &ctx.connectors {
        if let Some(version) = versions.get(id.as_str())
            && *version > conn.credentials_version()
        {
            renew_client(ctx, conn).await;
        }
        let park = parked.remove(id.as_str());
        let resumed = park.is_none();
        if conn.set_park(park) && resumed {
            tracing::info!(connection = %id, "connection resumed: its waiting items are sent again");
            resumed_any = true;
        }
    }
    if resumed_any {
        ctx.capacity.notify_waiters();
        super::outbox::resend_unsent(ctx).await;
    }
}

async fn version_of(ctx: &Ctx, conn: &Connection) -> i64 {
    let stored = crate::store::connection_credentials::get(&ctx.db, conn.config.id.as_str()).await;
    stored.ok().flatten().map_or(connections::CONFIGURED, |(_, v)| v)
}

async fn connections_versions(ctx: &Ctx) -> Result<HashMap<String, i64>, sea_orm::DbErr> {
    Ok(crate::store::connection_credentials::versions(&ctx.db).await?.into_iter().collect())
}

/// Rebuilds `conn`'s client with its stored credentials.
async fn renew_client(ctx: &Ctx, conn: &Connection) {
    let built = match connections::credentials(&ctx.db, ctx.secrets.as_ref(), &conn.config).await {
        Ok((text, version)) => {
            connections::client(&ctx.db, ctx.secrets.as_ref(), &conn.config, text).map(|client| (client, version))
        }
        Err(e) => Err(e),
    };
    match built {
        Ok((client, version)) => {
            conn.replace_client(client, version);
            tracing::info!(connection = %conn.config.id, "new credentials in use");
        }
        Err(e) => {
            // Said once per version: the old client stays in use.
            conn.skip_credentials(version_of(ctx, conn).await);
            tracing::error!(connection = %conn.config.id, error = %e, "the new credentials cannot be used")
        }
    }
}
