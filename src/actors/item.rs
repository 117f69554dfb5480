//! One attempt at one work item, from a received message to a recorded outcome and the
//! matching queue action. The order is what makes delivery safe:
//!
//! 1. A terminal item is never worked on again (its message is just deleted).
//! 2. The document is claimed (one task of this daemon at a time, until its outcome is
//!    recorded), then the idempotency ledger is consulted; after any earlier attempt the
//!    ERP is searched by external_ref before creating, since that attempt may have committed.
//! 3. The outcome is written by the StatusActor; only after it commits is the message
//!    deleted (or rescheduled). A crash anywhere leaves the message to be redelivered.

use super::Ctx;
use super::connector::{Claim, ConnectorShared, Delivery};
use super::stages::{self, MatcherMsg, RendererMsg, SerializerMsg, StageError};
use super::status::StatusMsg;
use crate::domain::{Invoice, ItemState, Op, Payment, PurchaseOrder};
use crate::erp::ErpError;
use crate::pipeline::Document;
use crate::pipeline::matching::{MatchError, OpenBill, normalize_invoice_number};
use crate::store::{self, ItemError, ItemUpdate};
use crate::telemetry;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::Instrument;

/// How long an item waits for another task of this daemon to finish the same document
/// before its message goes back to the queue.
const CLAIM_WAIT: Duration = Duration::from_secs(2);

/// A ledger entry: (doc kind, source id, ERP id).
type LedgerEntry = (String, String, String);

/// What an attempt did in the ERP, recorded with its outcome: the ledger entries of the
/// documents it created, and what a payment it created applied to bills.
#[derive(Default)]
struct Effects {
    ledger: Vec<LedgerEntry>,
    applications: Vec<store::BillApplication>,
}

enum Outcome {
    Succeeded {
        erp_id: String,
    },
    Failed(ItemError),
    Retry {
        error: ItemError,
        at_least: Option<Duration>,
    },
    DeadLetter(String),
    /// Already terminal: nothing to do but delete the message.
    AlreadyDone,
    /// Not now, and not an attempt: another task of this daemon is exporting the same
    /// document (`"busy"`), or every cluster slot of the connection stayed taken for the
    /// slot wait (`"saturated"`). The reason labels the returned-message count.
    NotNow(&'static str),
}

fn err(kind: &str, code: Option<String>, message: impl Into<String>) -> ItemError {
    ItemError { kind: kind.to_owned(), code, message: message.into() }
}

impl From<ErpError> for Outcome {
    fn from(e: ErpError) -> Self {
        match e {
            ErpError::Rejected { status, code, message } => {
                Outcome::Failed(err("rejected", Some(code), format!("ERP answered {status}: {message}")))
            }
            ErpError::Throttled { retry_after } => {
                Outcome::Retry { error: err(ItemError::THROTTLED, None, e.to_string()), at_least: retry_after }
            }
            ErpError::Saturated(_) => Outcome::NotNow("saturated"),
            // Bad credentials do not fix themselves quickly: wait at least a minute.
            ErpError::Auth { .. } => {
                Outcome::Retry { error: err("auth", None, e.to_string()), at_least: Some(Duration::from_secs(60)) }
            }
            other => Outcome::Retry { error: err(other.kind().as_str(), None, other.to_string()), at_least: None },
        }
    }
}

impl From<StageError> for Outcome {
    fn from(e: StageError) -> Self {
        Outcome::Retry { error: err("stage_failed", None, e.to_string()), at_least: None }
    }
}

/// What became of a delivery's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Deleted or dead-lettered: the item is finished (or was already).
    Finished,
    /// Back on the queue, to be received again after about this long (a retry, a busy
    /// or saturated connection, an outcome that could not be recorded).
    Returned(Duration),
}

/// Processes one delivery to the end; never panics out, never loses the message.
pub async fn process(ctx: &Ctx, conn: &std::sync::Arc<ConnectorShared>, delivery: Delivery) -> Disposition {
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
        let disposition = finish(ctx, conn, &delivery, outcome, effects).await;
        drop(claims);
        disposition
    }
    .instrument(span)
    .await
}

async fn attempt(
    ctx: &Ctx,
    conn: &std::sync::Arc<ConnectorShared>,
    d: &Delivery,
    effects: &mut Effects,
    claims: &mut Vec<Claim>,
) -> Outcome {
    let env = &d.envelope;
    let (row, document, known) = match claim_and_begin(ctx, conn, d, claims).await {
        Ok(Begun::Yes(row, document, known)) => (row, document, known),
        Ok(Begun::No(row)) => return not_begun(ctx, &row),
        Err(outcome) => return outcome,
    };
    let payload = match &env.payload {
        Some(p) => Payload::Inline(p),
        None => Payload::Stored(&document),
    };
    // The attempt was counted (and the row marked in_progress) durably before the ERP can
    // see it, in the status writer's transaction: whether the next attempt looks the
    // document up before creating it depends on that count. Sent without waiting (as it
    // was until 2 Dec), a daemon killed after its create reached the ERP but before the
    // status batch holding the count committed left the row at 0 attempts, and the next
    // daemon's "first" attempt created the document again (`tests/fleet.rs`, SIGKILL: 4
    // duplicates in 1,500 on a slow machine). The counted attempt is the fencing token.
    let attempt = row.attempts.max(1) as u32;
    d.attempt.store(attempt, Ordering::Release);
    d.uncounted_before.store(store::uncounted_attempts(&row, attempt - 1), Ordering::Release);
    let result = match env.op {
        Op::ExportInvoice => export_invoice(ctx, conn, d, payload, &known, &mut effects.ledger).await,
        Op::ExportPurchaseOrder => match parse::<PurchaseOrder>(payload).and_then(|po| {
            po.validate().map_err(validation)?;
            Ok(po)
        }) {
            Ok(po) => create(ctx, conn, d, Document::PurchaseOrder(po), &known, &mut effects.ledger).await,
            Err(o) => Err(o),
        },
        Op::ExportPayment => export_payment(ctx, conn, d, payload, &known, effects, claims).await,
    };
    match result {
        Ok(erp_id) => Outcome::Succeeded { erp_id },
        Err(o) => o,
    }
}

/// The ledger's entry for the item's document when the attempt began, read under the
/// document's claim (so no export of it by this daemon can have committed since).
struct Known {
    source: String,
    erp_id: Option<String>,
}

fn store_error(e: store::StoreError) -> Outcome {
    Outcome::Retry { error: err("store", None, e.to_string()), at_least: None }
}

fn unknown_item(d: &Delivery) -> Outcome {
    Outcome::DeadLetter(format!("item {} is not known to this daemon's database", d.envelope.item_id))
}

/// What [`claim_and_begin`] found.
enum Begun {
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
async fn claim_and_begin(
    ctx: &Ctx,
    conn: &std::sync::Arc<ConnectorShared>,
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
        claims.push(conn.claim(doc_kind, &source, CLAIM_WAIT).await.ok_or(Outcome::NotNow("busy"))?);
        let start = store::ItemStart {
            item_id: env.item_id,
            connection_id: conn.config.id.clone(),
            doc_kind,
            source_id: source.clone(),
            max_attempts: ctx.config.retry.max_attempts.get(),
        };
        let found = ask_status(ctx, |r| StatusMsg::Start(start, r))
            .await
            .map_err(|e| not_recorded(&e))?
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
        error: err("store", None, format!("the attempt could not be recorded before calling the ERP: {why}")),
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
fn not_begun(ctx: &Ctx, row: &store::entities::job_item::Model) -> Outcome {
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
    Outcome::NotNow("busy")
}

/// The item's document: inline in the message (another producer's), or the text stored
/// with the item, parsed straight into the document type.
#[derive(Clone, Copy)]
enum Payload<'a> {
    Inline(&'a serde_json::Value),
    Stored(&'a str),
}

fn parse<T: DeserializeOwned>(payload: Payload<'_>) -> Result<T, Outcome> {
    let invalid = |message: String| Outcome::Failed(err("invalid_document", None, message));
    match payload {
        Payload::Inline(value) => T::deserialize(value).map_err(|e| invalid(e.to_string())),
        Payload::Stored(text) => serde_json::from_str(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => invalid(e.to_string()),
            _ => invalid(format!("stored payload is not JSON: {e}")),
        }),
    }
}

fn validation(e: crate::domain::documents::ValidationErrors) -> Outcome {
    Outcome::Failed(err("validation", None, e.to_string()))
}

async fn export_invoice(
    ctx: &Ctx,
    conn: &ConnectorShared,
    d: &Delivery,
    payload: Payload<'_>,
    known: &Known,
    ledger: &mut Vec<LedgerEntry>,
) -> Result<String, Outcome> {
    let inv: Invoice = parse(payload)?;
    inv.validate().map_err(validation)?;
    let source = inv.source_id.clone();
    let bill_id = create(ctx, conn, d, Document::Invoice(inv.clone()), known, ledger).await?;
    let att_kind = "bill_attachment";
    if conn.config.attach_pdf && lookup_ledger(ctx, conn, att_kind, &source).await?.is_none() {
        let pdf = stages::call(ctx, stages::RENDERER, |r| RendererMsg::InvoicePdf(Box::new(inv), r))
            .await?
            .map_err(|e| Outcome::Failed(err("render", Some(e.kind().into()), e.to_string())))?;
        let key = idempotency_key(conn, att_kind, &source);
        let att = conn.call(conn.client.attach_pdf(&bill_id, pdf, &key)).await?;
        ledger.push((att_kind.into(), source, att));
    }
    Ok(bill_id)
}

/// Matches a payment against what its vendor's bills still have open, creates it, and
/// keeps what it applied to each bill for the payments after it.
///
/// Balances are read under a claim on the vendor's bills, held (like the document's)
/// until the outcome is recorded: two payments of one vendor read and spend the same
/// balance one after the other, never at once. The claim is this daemon's; across a
/// fleet the ERP itself refuses a payment beyond a bill's balance (the payment then fails
/// with the ERP's reason rather than paying twice).
async fn export_payment(
    ctx: &Ctx,
    conn: &std::sync::Arc<ConnectorShared>,
    d: &Delivery,
    payload: Payload<'_>,
    known: &Known,
    effects: &mut Effects,
    claims: &mut Vec<Claim>,
) -> Result<String, Outcome> {
    let payment: Payment = parse(payload)?;
    payment.validate().map_err(validation)?;
    claims.push(conn.claim(VENDOR_BILLS, &payment.vendor.id, CLAIM_WAIT).await.ok_or(Outcome::NotNow("busy"))?);
    let open = open_bills(ctx, conn, &payment).await?;
    let missing = not_exported(&payment, &open);
    let matched = stages::call(ctx, stages::MATCHER, |r| MatcherMsg::Match(Box::new(payment.clone()), open, r)).await?;
    let outcome = match matched {
        Ok(outcome) => outcome,
        // The remittance names a bill this connection has not exported (yet): the bill is
        // most likely still queued, so the payment waits for it instead of failing.
        Err(MatchError::UnknownBill(number)) => {
            let numbers = if missing.is_empty() { vec![number] } else { missing };
            let message = format!(
                "waiting for invoice(s) {} to be exported to this connection before the payment can be applied",
                numbers.join(", ")
            );
            return Err(Outcome::Retry { error: err("bill_not_exported", None, message), at_least: None });
        }
        Err(e) => return Err(Outcome::Failed(err("matching", Some(e.kind().into()), e.to_string()))),
    };
    let applications: Vec<store::BillApplication> = outcome
        .applied
        .iter()
        .map(|a| store::BillApplication {
            payment_source_id: payment.source_id.clone(),
            bill_erp_id: a.erp_id.clone(),
            amount: a.amount,
        })
        .collect();
    let erp_id = create(ctx, conn, d, Document::Payment(payment, outcome), known, &mut effects.ledger).await?;
    effects.applications = applications;
    Ok(erp_id)
}

/// The claim kind a payment takes on its vendor's bills (see [`export_payment`]).
const VENDOR_BILLS: &str = "vendor_bills";

/// The remittance's invoice numbers that name none of `open` (compared normalised, as the
/// matcher does), in the remittance's order.
fn not_exported(payment: &Payment, open: &[OpenBill]) -> Vec<String> {
    let known: HashSet<String> = open.iter().map(|b| normalize_invoice_number(&b.number)).collect();
    let mut missing: Vec<String> = Vec::new();
    for a in &payment.applications {
        if !known.contains(&normalize_invoice_number(&a.invoice_number)) && !missing.contains(&a.invoice_number) {
            missing.push(a.invoice_number.clone());
        }
    }
    missing
}

/// The vendor's bills exported through this connection, each with what it still has open:
/// its total less what other recorded payments applied to it. (This payment's own
/// applications, recorded if an earlier attempt of it got that far, are not subtracted:
/// a retry matches as the first attempt did.)
async fn open_bills(ctx: &Ctx, conn: &ConnectorShared, payment: &Payment) -> Result<Vec<OpenBill>, Outcome> {
    let rows = store::exported_invoices(&ctx.db, &conn.config.id, &payment.source_id)
        .await
        .map_err(|e| Outcome::Retry { error: err("store", None, e.to_string()), at_least: None })?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let inv: Invoice = serde_json::from_str(&r.document).ok()?;
            (inv.vendor.id == payment.vendor.id).then(|| OpenBill {
                erp_id: r.erp_id.unwrap_or_default(),
                number: inv.number,
                balance: inv.total - r.paid,
                currency: inv.currency,
                due_date: inv.due_date,
            })
        })
        .collect())
}

/// The key the ERP dedupes on: stable for a document on a connection, ≤ 128 characters.
fn idempotency_key(conn: &ConnectorShared, kind: &str, source: &str) -> String {
    let mut k = format!("erpsync:{}:{kind}:{source}", conn.config.id);
    k.truncate(128);
    k
}

async fn lookup_ledger(ctx: &Ctx, conn: &ConnectorShared, kind: &str, source: &str) -> Result<Option<String>, Outcome> {
    store::ledger_lookup(&ctx.db, &conn.config.id, kind, source)
        .await
        .map_err(|e| Outcome::Retry { error: err("store", None, e.to_string()), at_least: None })
}

/// Creates `doc` in the ERP at most once: ledger, then (after any earlier attempt) a
/// lookup by external_ref, then the create with a stable idempotency key.
async fn create(
    ctx: &Ctx,
    conn: &ConnectorShared,
    d: &Delivery,
    doc: Document,
    known: &Known,
    ledger: &mut Vec<LedgerEntry>,
) -> Result<String, Outcome> {
    let op = d.envelope.op;
    let kind = op.doc_kind();
    let source = doc.source_id().to_owned();
    // An inline payload (another producer's message) may name another document than the
    // item's row: then its own ledger entry is looked up.
    let found =
        if source == known.source { known.erp_id.clone() } else { lookup_ledger(ctx, conn, kind, &source).await? };
    if let Some(id) = found {
        return Ok(id);
    }
    if d.attempt() > 1
        && let Some(id) = conn.call(conn.client.find_by_external_ref(op, &source)).await?
    {
        tracing::info!(erp_id = %id, "found the document created by an earlier attempt");
        ledger.push((kind.into(), source, id.clone()));
        return Ok(id);
    }
    let erp = conn.config.erp;
    let payload = stages::call(ctx, stages::SERIALIZER, |r| SerializerMsg::Serialize(erp, Box::new(doc), r))
        .await?
        .map_err(|e| Outcome::Failed(err("serialize", Some(e.kind().into()), e.to_string())))?;
    let key = idempotency_key(conn, kind, &source);
    let created = conn.call(conn.client.create(op, &payload, &key)).await?;
    ledger.push((kind.into(), source, created.erp_id.clone()));
    Ok(created.erp_id)
}

/// Sends an update to the StatusActor and returns whether it committed.
#[allow(clippy::too_many_arguments)]
async fn record(
    ctx: &Ctx,
    conn: &ConnectorShared,
    d: &Delivery,
    state: ItemState,
    erp_id: Option<String>,
    error: Option<ItemError>,
    effects: Effects,
    detail: Option<String>,
) -> bool {
    let attempt = d.attempt();
    let update = ItemUpdate {
        item_id: d.envelope.item_id,
        state,
        attempt: (attempt > 0).then_some(attempt),
        erp_id,
        error,
        ledger: effects.ledger,
        applications: effects.applications,
        connection_id: conn.config.id.clone(),
        detail,
    };
    ask_status(ctx, |r| StatusMsg::Update(update, Some(r))).await.is_ok()
}

/// How long an item task waits for the StatusActor to commit what it asked.
const STATUS_WAIT: Duration = Duration::from_secs(30);

/// Asks the StatusActor and waits for its answer, which comes once the transaction holding
/// the request has committed.
async fn ask_status<T: Send + 'static>(
    ctx: &Ctx,
    build: impl FnOnce(ractor::RpcReplyPort<Result<T, String>>) -> StatusMsg,
) -> Result<T, String> {
    let status = ctx.lookup::<StatusMsg>("status").ok_or("no status writer")?;
    match status.call(build, Some(STATUS_WAIT)).await {
        Ok(ractor::rpc::CallResult::Success(answer)) => answer,
        Ok(_) => Err("the status writer did not answer".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Exponential backoff with jitter (half fixed, half random), at least `at_least`.
pub fn backoff(attempt: u32, base: Duration, max: Duration, at_least: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max);
    let jittered = exp.mul_f64(0.5 + rand::random::<f64>() * 0.5);
    jittered.max(at_least.unwrap_or_default()).min(Duration::from_secs(12 * 3600))
}

async fn finish(ctx: &Ctx, conn: &ConnectorShared, d: &Delivery, outcome: Outcome, effects: Effects) -> Disposition {
    d.release_capacity();
    let q = &ctx.queue;
    let erp = conn.config.erp.as_str();
    let op = d.envelope.op.as_str();
    let retry_cfg = &ctx.config.retry;
    let (state, erp_id, error, detail) = match outcome {
        Outcome::AlreadyDone => {
            delete(ctx, d).await;
            return Disposition::Finished;
        }
        Outcome::NotNow(reason) => return returned(ctx, d, Duration::from_secs(2), reason).await,
        Outcome::Succeeded { erp_id } => (ItemState::Succeeded, Some(erp_id), None, None),
        Outcome::Failed(e) => (ItemState::Failed, None, Some(e), None),
        Outcome::DeadLetter(reason) => (ItemState::DeadLettered, None, Some(err("unprocessable", None, reason)), None),
        Outcome::Retry { error, .. }
            if error.kind != ItemError::THROTTLED && d.counted_attempts() >= retry_cfg.max_attempts.get() =>
        {
            let reason = format!(
                "gave up after {} attempts{}; last error: {}",
                d.counted_attempts(),
                uncounted_note(d.attempt() - d.counted_attempts()),
                error.message
            );
            (ItemState::DeadLettered, None, Some(err(&error.kind, error.code, reason)), None)
        }
        Outcome::Retry { error, at_least } => {
            let delay = backoff(
                d.attempt(),
                Duration::from_millis(retry_cfg.base_delay_ms.get().into()),
                Duration::from_secs(retry_cfg.max_delay_secs.get().into()),
                at_least,
            );
            metrics::counter!(telemetry::RETRIES, "erp" => erp, "error_kind" => error.kind.clone()).increment(1);
            metrics::counter!(telemetry::CONNECTION_RETRIES, "connection" => conn.label().to_owned(), "error_kind" => error.kind.clone())
                .increment(1);
            tracing::info!(error = %error.message, delay_ms = delay.as_millis() as u64, "attempt failed; retrying");
            let detail = format!("retry in {:.1} s", delay.as_secs_f64());
            // The ledger must be durable before the message comes back.
            if record(ctx, conn, d, ItemState::Retrying, None, Some(error), effects, Some(detail)).await {
                return returned(ctx, d, delay, "retry").await;
            }
            // Not recorded: the message stays invisible until its visibility timeout.
            return Disposition::Returned(visibility_timeout(ctx));
        }
    };
    let reason = error.as_ref().map(|e| e.message.clone());
    if !record(ctx, conn, d, state, erp_id, error.clone(), effects, detail).await {
        // Not recorded: keep the message; it comes back after a short pause.
        tracing::warn!("outcome not recorded; the message will be redelivered");
        return returned(ctx, d, Duration::from_secs(5), "unrecorded").await;
    }
    metrics::counter!(telemetry::ITEMS, "erp" => erp, "op" => op, "outcome" => state.as_str()).increment(1);
    metrics::counter!(telemetry::CONNECTION_ITEMS, "connection" => conn.label().to_owned(), "outcome" => state.as_str())
        .increment(1);
    match state {
        ItemState::DeadLettered => {
            let reason = reason.unwrap_or_default();
            tracing::warn!(%reason, "item dead-lettered");
            metrics::counter!(telemetry::QUEUE_DEAD_LETTERED, "reason" => "item").increment(1);
            if let Err(e) = q.dead_letter(&d.message, &reason).await {
                tracing::warn!(error = %e, "could not dead-letter the message; it will be redelivered");
            }
        }
        _ => {
            if let Some(e) = &error {
                tracing::warn!(kind = %e.kind, error = %e.message, "item failed");
            }
            delete(ctx, d).await;
        }
    }
    Disposition::Finished
}

/// How a dead-letter reason mentions the earlier attempts that did not count.
fn uncounted_note(uncounted: u32) -> String {
    match uncounted {
        0 => String::new(),
        n => format!(", not counting {n} the ERP throttled or made before a redrive"),
    }
}

fn visibility_timeout(ctx: &Ctx) -> Duration {
    Duration::from_secs(ctx.config.queue.visibility_timeout_secs.get().into())
}

/// Puts the message back on the queue, visible again after `delay`.
async fn returned(ctx: &Ctx, d: &Delivery, delay: Duration, reason: &'static str) -> Disposition {
    metrics::counter!(telemetry::QUEUE_RETURNED, "reason" => reason).increment(1);
    match ctx.queue.change_visibility(&[(d.receipt.clone(), delay)]).await {
        Ok(_) => Disposition::Returned(delay),
        Err(e) => {
            tracing::warn!(error = %e, "could not reschedule the message; it reappears after its visibility timeout");
            Disposition::Returned(visibility_timeout(ctx))
        }
    }
}

async fn delete(ctx: &Ctx, d: &Delivery) {
    match ctx.queue.delete(&d.receipt).await {
        Ok(true) => metrics::counter!(telemetry::QUEUE_DELETED).increment(1),
        Ok(false) => tracing::debug!("receipt handle was stale; the message was redelivered meanwhile"),
        Err(e) => {
            metrics::counter!(telemetry::QUEUE_ERRORS, "op" => "delete", "error_kind" => e.kind()).increment(1);
            tracing::warn!(error = %e, "could not delete the message; it will be redelivered and skipped")
        }
    }
}

/// Dead-letters an item whose message could not be routed (unknown connection, …).
pub async fn record_dead_letter(
    ctx: &Ctx,
    item_id: crate::domain::ItemId,
    connection: crate::domain::ConnectionId,
    reason: &str,
) {
    let update = ItemUpdate {
        item_id,
        state: ItemState::DeadLettered,
        attempt: None,
        erp_id: None,
        error: Some(err("unprocessable", None, reason)),
        ledger: vec![],
        applications: vec![],
        connection_id: connection,
        detail: None,
    };
    let _ = ask_status(ctx, |r| StatusMsg::Update(update, Some(r))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::samples;

    #[test]
    fn missing_bills_are_named_as_the_remittance_names_them() {
        let payment = samples::payment();
        let bill = |number: &str| OpenBill {
            erp_id: "b-1".into(),
            number: number.into(),
            balance: payment.amount,
            currency: payment.currency.clone(),
            due_date: payment.date,
        };
        assert_eq!(not_exported(&payment, &[]), ["RE-2026-000117", "re 2026 000098"]);
        // Found after normalisation, as the matcher would find it.
        assert_eq!(not_exported(&payment, &[bill("RE-2026-000098")]), ["RE-2026-000117"]);
        assert!(not_exported(&payment, &[bill("RE-2026-000098"), bill("re2026000117")]).is_empty());
    }
}
