//! The StatusActor's client half: what item tasks and the poller ask of it, each answered
//! once the transaction holding the request has committed.

use super::{StatusError, StatusMsg};
use crate::actors::Ctx;
use crate::domain::{ConnectionId, ErrorKind, ItemId, ItemState};
use crate::store::{ItemError, ItemStart, ItemUpdate, Started};
use std::time::Duration;

/// How long a caller waits for the StatusActor to commit what it asked.
const STATUS_WAIT: Duration = Duration::from_secs(30);

/// Asks the StatusActor and waits for its answer, which comes once the transaction holding
/// the request has committed.
async fn ask_status<T: Send + 'static>(
    ctx: &Ctx,
    build: impl FnOnce(ractor::RpcReplyPort<Result<T, StatusError>>) -> StatusMsg,
) -> Result<T, StatusError> {
    let status = ctx.lookup::<StatusMsg>("status").ok_or(StatusError::NoWriter)?;
    match status.call(build, Some(STATUS_WAIT)).await {
        Ok(ractor::rpc::CallResult::Success(answer)) => answer,
        Ok(_) => Err(StatusError::NoAnswer),
        Err(e) => Err(StatusError::Unreachable(e.to_string())),
    }
}

/// Begins an attempt (see [`ItemStart`]) and returns what was found once it has committed
/// (None: the item is unknown).
pub async fn begin(ctx: &Ctx, start: ItemStart) -> Result<Option<Started>, StatusError> {
    ask_status(ctx, |r| StatusMsg::Start(start, r)).await
}

/// Sends an update and returns whether it committed.
pub async fn update(ctx: &Ctx, update: ItemUpdate) -> bool {
    ask_status(ctx, |r| StatusMsg::Update(update, Some(r))).await.is_ok()
}

/// Dead-letters an item whose message could not be routed (unknown connection, …).
pub async fn record_dead_letter(ctx: &Ctx, item_id: ItemId, connection: ConnectionId, reason: &str) {
    let update = ItemUpdate {
        item_id,
        state: ItemState::DeadLettered,
        attempt: None,
        erp_id: None,
        error: Some(ItemError::new(ErrorKind::Unprocessable, None, reason)),
        ledger: vec![],
        applications: vec![],
        bills: vec![],
        connection_id: connection,
        detail: None,
    };
    let _ = ask_status(ctx, |r| StatusMsg::Update(update, Some(r))).await;
}
