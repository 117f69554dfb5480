//! The beginning of an attempt: the document claimed, the attempt counted by the
//! StatusActor, or the reason it does not begin.

use super::outcome::{Outcome, err, uncounted_note};
use crate::actors::Ctx;
use crate::actors::connection::Connection;
use crate::actors::connection::claims::Claim;
use crate::actors::delivery::Delivery;
use crate::actors::status::client;
use crate::domain::{ErrorKind, ItemState};
use crate::store;
use crate::telemetry::events::ReturnReason;
use std::time::Duration;

/// How long an item waits for another task of this daemon to finish the same document
/// before its message goes back to the queue.
pub const CLAIM_WAIT: Duration = Duration::from_secs(2);

/// The ledger's entry for the item's document when the attempt began, read under the
/// document's claim (so no export of it by this daemon can have committed since).
pub struct Known {
    pub source: String,
    pub erp_id: Option<String>,
}

fn store_error(e: store::StoreError) -> Outcome {
    Outcome::Retry { error: err(ErrorKind::Store, None, e.to_string()), at_least: None }
}

fn unknown_item(d: &Delivery) -> Outcome {
    Outcome::DeadLetter(format!("item {} is not known to this daemon's database", d.envelope.item_id))
}

/// What [`claim_and_begin`] found.
pub enum Begun {
    /// The attempt began: the item's row (counting it), its document and the ledger's entry.
    Yes(store::entities::job_item::Model, String, Known),
    /// It did not: the item is terminal, or has used up its attempts.
    No(store::entities::job_item::Model),
}

/// Claims the item's document, then has the StatusActor begin the attempt (see
/// [`store::ItemStart`]): count it, mark the item `in_progress`, and read the item's row
/// and the document's ledger entry, in one transaction.
///
/// The ledger must be read under the claim: read before, it may predate an export that
/// another task of this daemon recorded while this one waited. erpsync's own messages name
/// the document (`source_id`), so the claim comes first; otherwise the row is read first
/// to learn it, and if the name was wrong the attempt does not begin and the right
/// document is claimed for a second try.
pub async fn claim_and_begin(
    ctx: &Ctx,
    conn: &Connection,
    d: &Delivery,
    claims: &mut Vec<Claim>,
) -> Result<Begun, Outcome> {
    let env = &d.envelope;
    let doc_kind = env.op.doc_kind();
    let mut source = match &env.source_id {
        Some(hint) => hint.clone(),
        None => {
            store::item(&ctx.db, &env.item_id).await.map_err(store_error)?.ok_or_else(|| unknown_item(d))?.source_id
        }
    };
    for _ in 0..2 {
        claims.clear();
        claims.push(conn.claim(doc_kind, &source, CLAIM_WAIT).await.ok_or(Outcome::NotNow(ReturnReason::Busy))?);
        let start = store::ItemStart {
            item_id: env.item_id,
            connection_id: conn.config.id.clone(),
            doc_kind,
            source_id: source.clone(),
            max_attempts: ctx.config.retry.max_attempts.get(),
        };
        let found = client::begin(ctx, start)
            .await
            .map_err(|e| not_recorded(&e.to_string()))?
            .ok_or_else(|| unknown_item(d))?;
        if found.begun {
            let known = Known { source: found.item.source_id.clone(), erp_id: found.erp_id };
            return Ok(Begun::Yes(found.item, found.document, known));
        }
        if found.item.source_id == source {
            return Ok(Begun::No(found.item));
        }
        source = found.item.source_id;
    }
    Err(not_recorded("the item's document changed while it was being claimed"))
}

fn not_recorded(why: &str) -> Outcome {
    Outcome::Retry {
        error: err(ErrorKind::Store, None, format!("the attempt could not be recorded before calling the ERP: {why}")),
        at_least: None,
    }
}

/// Why an attempt did not begin although its document was the one claimed.
///
/// Attempts are counted in the item's row, not by the queue's receive count: on SQS a
/// message returned because its connection was saturated is received again without
/// having been attempted. An attempt that died without recording an outcome (a crash)
/// still counted, so a message that kills the daemon cannot loop for ever. Attempts the
/// ERP throttled (429: it did nothing) are counted apart and do not use up
/// `retry.max_attempts`: an ERP busy with other clients for an hour must not dead-letter
/// a batch of invoices. Such an item is still bounded by `queue.max_receives`. Those made
/// before a redrive from the dead-letter queue do not count either.
pub fn not_begun(ctx: &Ctx, row: &store::entities::job_item::Model) -> Outcome {
    if ItemState::parse(&row.state).is_some_and(ItemState::is_terminal) {
        return Outcome::AlreadyDone;
    }
    let earlier = row.attempts.max(0) as u32;
    let uncounted = store::uncounted_attempts(row, earlier);
    let max = ctx.config.retry.max_attempts.get();
    if earlier - uncounted >= max {
        return Outcome::DeadLetter(format!(
            "gave up after {} attempts (retry.max_attempts = {max}){}",
            earlier - uncounted,
            uncounted_note(uncounted)
        ));
    }
    // Only if one status batch was asked to begin the same item twice (never by one
    // daemon, whose tasks claim the document first): the other attempt is under way.
    Outcome::NotNow(ReturnReason::Busy)
}
