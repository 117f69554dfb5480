//! One attempt at one work item, from a received message to a recorded outcome and the
//! matching queue action. The order is what makes delivery safe:
//!
//! 1. A terminal item is never worked on again (its message is just deleted).
//! 2. The document is claimed (one task of this daemon at a time, until its outcome is
//!    recorded), then the idempotency ledger is consulted; after any earlier attempt the
//!    ERP is searched by external_ref before creating, since that attempt may have committed.
//! 3. The outcome is written by the StatusActor; only after it commits is the message
//!    deleted (or rescheduled). A crash anywhere leaves the message to be redelivered.
//!
//! By phase: `begin` claims the document and has the attempt counted, `export` does
//! the ERP work, `finish` records the outcome and deletes or returns the message.

mod begin;
mod export;
mod finish;
mod outcome;

use super::Ctx;
use super::connection::Connection;
use super::connection::claims::Claim;
use super::delivery::{Delivery, Disposition};
use crate::store;
use begin::Begun;
use export::Payload;
use outcome::{Effects, Outcome};
use std::sync::atomic::Ordering;
use tracing::Instrument;

/// Processes one delivery to the end; never panics out, never loses the message.
pub async fn process(ctx: &Ctx, conn: &Connection, delivery: Delivery) -> Disposition {
    let env = &delivery.envelope;
    let span =
        tracing::info_span!("item", job_id = %env.job_id, item_id = %env.item_id, connection = %env.connection_id);
    async {
        let mut effects = Effects::default();
        // The document's claim is held until the outcome is recorded: released earlier,
        // another task of this daemon could take it, read the ledger before this attempt's
        // entry commits, and create the document a second time. (A payment also claims
        // its vendor's bills: see `export_payment`.)
        let mut claims = Vec::new();
        let outcome = attempt(ctx, conn, &delivery, &mut effects, &mut claims).await;
        let disposition = finish::finish(ctx, conn, &delivery, outcome, effects).await;
        drop(claims);
        disposition
    }
    .instrument(span)
    .await
}

async fn attempt(
    ctx: &Ctx,
    conn: &Connection,
    d: &Delivery,
    effects: &mut Effects,
    claims: &mut Vec<Claim>,
) -> Outcome {
    let env = &d.envelope;
    // Parked while it waited for its turn: not attempted.
    if conn.is_parked() {
        return Outcome::Park { error: None };
    }
    let (row, document, known) = match begin::claim_and_begin(ctx, conn, d, claims).await {
        Ok(Begun::Yes(row, document, known)) => (row, document, known),
        Ok(Begun::No(row)) => return begin::not_begun(ctx, &row),
        Err(outcome) => return outcome,
    };
    let payload = match &env.payload {
        Some(p) => Payload::Inline(p),
        None => Payload::Stored(&document),
    };
    // The attempt was counted (and the row marked in_progress) durably before the ERP can
    // see it, in the status writer's transaction: whether the next attempt looks the
    // document up before creating it depends on that count. Were it sent without waiting,
    // a daemon killed after its create reached the ERP but before the status batch holding
    // the count committed would leave the row at 0 attempts, and the next daemon's "first"
    // attempt would create the document again (`tests/fleet.rs` SIGKILLs a daemon mid-drain
    // to catch this). The counted attempt is the fencing token.
    let attempt = row.attempts.max(1) as u32;
    d.attempt.store(attempt, Ordering::Release);
    d.uncounted_before.store(store::uncounted_attempts(&row, attempt - 1), Ordering::Release);
    match export::export(ctx, conn, d, payload, &known, effects, claims).await {
        Ok(erp_id) => Outcome::Succeeded { erp_id },
        Err(o) => o,
    }
}
