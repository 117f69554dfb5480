//! Redriving dead letters: choosing them, making their items workable again, and moving
//! their messages back to the queue. Used by `erpsync dlq redrive` (any connection's) and
//! by `POST /v1/dead-letters/redrive` (only the caller's tenant's).

use crate::queue::{Envelope, Queue, QueueError};
use crate::store::{self, StoreError};
use sea_orm::DatabaseConnection;
use serde::Serialize;

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Redriven {
    /// Dead letters chosen.
    pub chosen: usize,
    /// Of those, the messages moved back to the queue.
    pub moved: usize,
    /// Items made workable again (`queued`, a fresh attempt budget).
    pub requeued: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Redrives up to `limit` of the newest dead letters that `keep` accepts (`keep` sees the
/// envelope, or None for a message that cannot be read as one). The dead-letter store is
/// listed in bounded pages: with a filter that is not `all`, up to `scan` of the newest are
/// looked through. Items are requeued before their messages move, so the daemon does not
/// take a redriven message for work already finished.
pub async fn redrive(
    queue: &dyn Queue,
    db: &DatabaseConnection,
    limit: u64,
    scan: u64,
    keep: impl Fn(Option<&Envelope>) -> bool,
) -> Result<Redriven, RedriveError> {
    let chosen: Vec<_> = queue
        .dead_letters(scan.max(limit))
        .await?
        .into_iter()
        .filter(|d| keep(Envelope::decode(&d.body).ok().as_ref()))
        .take(limit as usize)
        .collect();
    if chosen.is_empty() {
        return Ok(Redriven::default());
    }
    let items: Vec<_> = chosen.iter().filter_map(|d| Envelope::decode(&d.body).ok().map(|e| e.item_id)).collect();
    let requeued = store::requeue_dead_lettered(db, &items).await?;
    let ids: Vec<String> = chosen.iter().map(|d| d.message_id.clone()).collect();
    let moved = queue.redrive(&ids).await?;
    Ok(Redriven { chosen: ids.len(), moved, requeued })
}
