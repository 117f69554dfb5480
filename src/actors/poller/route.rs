//! Routing a received batch: each message to its connector as a delivery (or, on a queue
//! that keeps group order, each connection's messages as one run), dead-lettered if it
//! cannot be worked on, or back to the queue if its connection cannot take it now.

use crate::actors::Ctx;
use crate::actors::connector::ConnectorMsg;
use crate::actors::delivery::Delivery;
use crate::actors::status::client::record_dead_letter;
use crate::actors::visibility::return_unplaced;
use crate::domain::{ConnectionId, ItemId};
use crate::queue::{Envelope, ReceiptHandle, ReceiveBatch, Received};
use crate::telemetry;
use crate::telemetry::events::{MessageDeadLettered, MessagesReturned, ReturnReason};
use std::sync::Arc;
use std::time::Duration;

/// Routes a received batch; returns (messages placed or dead-lettered, messages returned
/// to the queue because their connection was saturated).
pub async fn route_batch(ctx: &Arc<Ctx>, batch: ReceiveBatch) -> (usize, usize) {
    for dead in &batch.dead_lettered {
        MessageDeadLettered { reason_kind: "max_receives", message_id: Some(&dead.message_id), reason: &dead.reason }
            .emit();
        if let Ok(env) = Envelope::decode(&dead.body) {
            record_dead_letter(ctx, env.item_id, env.connection_id, &dead.reason).await;
        }
    }
    let n = batch.messages.len();
    metrics::counter!(telemetry::QUEUE_RECEIVED).increment(n as u64);
    let mut returned: Vec<(ReceiptHandle, Duration)> = Vec::new();
    // On a queue that keeps group order, each connection's messages go over as one run,
    // in the order received (`ConnectorMsg::ProcessInOrder`).
    let mut runs: Vec<(ConnectionId, Vec<Delivery>)> = Vec::new();
    let ordered = ctx.queue.keeps_group_order();
    // Connections one of whose messages went back: on an ordered queue, the messages
    // behind it go back too, no sooner.
    let mut held: Vec<(ConnectionId, Duration)> = Vec::new();
    for m in batch.messages {
        match route(ctx, m).await {
            Routed::Done => {}
            Routed::Back(receipt, delay, connection) => {
                if ordered && !held.iter().any(|(c, _)| *c == connection) {
                    held.push((connection, delay));
                }
                returned.push((receipt, delay));
            }
            Routed::Ready(delivery) if ordered => {
                let connection = &delivery.envelope.connection_id;
                if let Some((_, delay)) = held.iter().find(|(c, _)| c == connection) {
                    returned.push((delivery.receipt.clone(), *delay));
                } else if let Some((_, run)) = runs.iter_mut().find(|(c, _)| c == connection) {
                    run.push(*delivery);
                } else {
                    runs.push((connection.clone(), vec![*delivery]));
                }
            }
            Routed::Ready(delivery) => {
                let receipt = delivery.receipt.clone();
                if !hand_over(ctx, &delivery.envelope.connection_id.clone(), ConnectorMsg::Process(delivery)) {
                    returned.push((receipt, Duration::from_secs(1)));
                }
            }
        }
    }
    for (connection, run) in runs {
        let receipts: Vec<_> = run.iter().map(|d| d.receipt.clone()).collect();
        if !hand_over(ctx, &connection, ConnectorMsg::ProcessInOrder(run)) {
            returned.extend(receipts.into_iter().map(|r| (r, Duration::from_secs(1))));
        }
    }
    return_unplaced(ctx, &returned).await;
    (n - returned.len(), returned.len())
}

/// Where a received message goes.
enum Routed {
    /// Dead-lettered (unreadable, unknown connection).
    Done,
    /// Back to the queue after a delay (the message is for this connection).
    Back(ReceiptHandle, Duration, ConnectionId),
    /// For its connector.
    Ready(Box<Delivery>),
}

/// Decides where a message goes: dead-lettered, back to the queue (with a delay), or to
/// its connector.
async fn route(ctx: &Arc<Ctx>, m: Received) -> Routed {
    let env = match Envelope::decode(&m.body) {
        Ok(env) => env,
        Err(e) => {
            reject(ctx, &m, e.kind(), &format!("unreadable message: {e}"), None).await;
            return Routed::Done;
        }
    };
    let Some(conn) = ctx.connectors.get(&env.connection_id) else {
        let reason = format!("unknown connection {:?}", env.connection_id.as_str());
        reject(ctx, &m, "unknown_connection", &reason, Some((env.item_id, env.connection_id.clone()))).await;
        return Routed::Done;
    };
    // Received as the daemon began to stop: straight back, for whoever runs next.
    if ctx.shutdown.is_cancelled() {
        return Routed::Back(m.receipt, Duration::ZERO, env.connection_id);
    }
    // A parked connection's items wait on the shelf, not on the queue (see `store::parks`).
    if conn.is_parked() && crate::actors::parking::shelve(ctx, env.item_id, &m.receipt).await {
        return Routed::Done;
    }
    if !conn.can_take() {
        let delay = conn.return_delay(m.receive_count);
        return Routed::Back(m.receipt, delay, env.connection_id);
    }
    Routed::Ready(Box::new(Delivery::new(ctx.clone(), conn.clone(), m, env)))
}

/// Sends `msg` to the connector of `connection`; false when it is restarting (the
/// messages then come back shortly).
fn hand_over(ctx: &Ctx, connection: &ConnectionId, msg: ConnectorMsg) -> bool {
    let name = format!("connector.{connection}");
    match ctx.lookup::<ConnectorMsg>(&name) {
        Some(actor) if actor.send_message(msg).is_ok() => true,
        _ => {
            MessagesReturned { reason: ReturnReason::ConnectorRestarting, count: 1 }.emit();
            false
        }
    }
}

async fn reject(ctx: &Ctx, m: &Received, kind: &'static str, reason: &str, item: Option<(ItemId, ConnectionId)>) {
    MessageDeadLettered { reason_kind: kind, message_id: Some(&m.message_id), reason }.emit();
    if let Some((item_id, conn)) = item {
        record_dead_letter(ctx, item_id, conn, reason).await;
    }
    if let Err(e) = ctx.queue.dead_letter(m, reason).await {
        tracing::warn!(error = %e, "could not dead-letter; it will be seen again");
    }
}
