//! The ERP work of an attempt: the item's document parsed and validated, then created
//! at most once (ledger, lookup by external_ref, create with a stable idempotency key),
//! with what goes with it — an invoice's PDF, a payment's matching against open bills.

use super::begin::{CLAIM_WAIT, Known};
use super::outcome::{Effects, LedgerEntry, Outcome, err};
use crate::actors::Ctx;
use crate::actors::connection::Connection;
use crate::actors::connection::claims::Claim;
use crate::actors::delivery::Delivery;
use crate::actors::stages::{self, MatcherMsg, RendererMsg, SerializerMsg};
use crate::domain::{ErrorKind, Invoice, Op, Payment, PurchaseOrder};
use crate::erp::Attachment;
use crate::pipeline::Document;
use crate::pipeline::matching::{MatchError, OpenBill, normalize_invoice_number};
use crate::pipeline::serialize::attachment_file_name;
use crate::store;
use crate::store::exported_bills::ExportedBill;
use crate::telemetry::events::ReturnReason;
use serde::de::DeserializeOwned;
use std::collections::HashSet;

/// Does the ERP work of the item's op; the ERP id of the document it created (or found).
pub async fn export(
    ctx: &Ctx,
    conn: &Connection,
    d: &Delivery,
    payload: Payload<'_>,
    known: &Known,
    effects: &mut Effects,
    claims: &mut Vec<Claim>,
) -> Result<String, Outcome> {
    match d.envelope.op {
        Op::ExportInvoice => export_invoice(ctx, conn, d, payload, known, effects).await,
        Op::ExportPurchaseOrder => match parse::<PurchaseOrder>(payload).and_then(|po| {
            po.validate().map_err(validation)?;
            Ok(po)
        }) {
            Ok(po) => create(ctx, conn, d, Document::PurchaseOrder(po), known, &mut effects.ledger).await,
            Err(o) => Err(o),
        },
        Op::ExportPayment => export_payment(ctx, conn, d, payload, known, effects, claims).await,
    }
}

/// The item's document: inline in the message (another producer's), or the text stored
/// with the item, parsed straight into the document type.
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    Inline(&'a serde_json::Value),
    Stored(&'a str),
}

fn parse<T: DeserializeOwned>(payload: Payload<'_>) -> Result<T, Outcome> {
    let invalid = |message: String| Outcome::Failed(err(ErrorKind::InvalidDocument, None, message));
    match payload {
        Payload::Inline(value) => T::deserialize(value).map_err(|e| invalid(e.to_string())),
        Payload::Stored(text) => serde_json::from_str(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => invalid(e.to_string()),
            _ => invalid(format!("stored payload is not JSON: {e}")),
        }),
    }
}

fn validation(e: crate::domain::documents::ValidationErrors) -> Outcome {
    Outcome::Failed(err(ErrorKind::Validation, None, e.to_string()))
}

async fn export_invoice(
    ctx: &Ctx,
    conn: &Connection,
    d: &Delivery,
    payload: Payload<'_>,
    known: &Known,
    effects: &mut Effects,
) -> Result<String, Outcome> {
    let inv: Invoice = parse(payload)?;
    inv.validate().map_err(validation)?;
    let source = inv.source_id.clone();
    let file_name = attachment_file_name(&inv);
    let bill_id = create(ctx, conn, d, Document::Invoice(inv.clone()), known, &mut effects.ledger).await?;
    // Recorded with whatever this attempt comes to: the bill is in the ERP now.
    effects.bills.push(ExportedBill {
        source_id: source.clone(),
        erp_id: bill_id.clone(),
        vendor_id: inv.vendor.id.clone(),
        number: inv.number.clone(),
        total: inv.total,
        currency: inv.currency.clone(),
        due_date: inv.due_date,
    });
    let att_kind = "bill_attachment";
    if conn.config.attach_pdf && lookup_ledger(ctx, conn, att_kind, &source).await?.is_none() {
        let pdf = stages::call(ctx, stages::RENDERER, |r| RendererMsg::InvoicePdf(Box::new(inv), r))
            .await?
            .map_err(|e| Outcome::Failed(err(ErrorKind::Render, Some(e.kind().into()), e.to_string())))?;
        let key = idempotency_key(conn, att_kind, &source);
        let attachment = Attachment {
            bill_id: &bill_id,
            file_name: &file_name,
            pdf,
            idempotency_key: &key,
            maybe_attached: d.attempt() > 1,
        };
        let att = conn.call(conn.client().attach_pdf(attachment)).await?;
        effects.ledger.push((att_kind.into(), source, att));
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
    conn: &Connection,
    d: &Delivery,
    payload: Payload<'_>,
    known: &Known,
    effects: &mut Effects,
    claims: &mut Vec<Claim>,
) -> Result<String, Outcome> {
    let payment: Payment = parse(payload)?;
    payment.validate().map_err(validation)?;
    claims.push(
        conn.claim(VENDOR_BILLS, &payment.vendor.id, CLAIM_WAIT).await.ok_or(Outcome::NotNow(ReturnReason::Busy))?,
    );
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
            return Err(Outcome::Retry { error: err(ErrorKind::BillNotExported, None, message), at_least: None });
        }
        Err(e) => return Err(Outcome::Failed(err(ErrorKind::Matching, Some(e.kind().into()), e.to_string()))),
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
async fn open_bills(ctx: &Ctx, conn: &Connection, payment: &Payment) -> Result<Vec<OpenBill>, Outcome> {
    let rows = store::exported_bills::vendor_bills(&ctx.db, &conn.config.id, &payment.vendor.id, &payment.source_id)
        .await
        .map_err(|e| Outcome::Retry { error: err(ErrorKind::Store, None, e.to_string()), at_least: None })?;
    Ok(rows
        .into_iter()
        .map(|r| OpenBill {
            erp_id: r.bill.erp_id,
            number: r.bill.number,
            balance: r.bill.total - r.paid,
            currency: r.bill.currency,
            due_date: r.bill.due_date,
        })
        .collect())
}

/// The key the ERP dedupes on: stable for a document on a connection, ≤ 128 characters.
fn idempotency_key(conn: &Connection, kind: &str, source: &str) -> String {
    let mut k = format!("erpsync:{}:{kind}:{source}", conn.config.id);
    k.truncate(128);
    k
}

async fn lookup_ledger(ctx: &Ctx, conn: &Connection, kind: &str, source: &str) -> Result<Option<String>, Outcome> {
    store::ledger_lookup(&ctx.db, &conn.config.id, kind, source)
        .await
        .map_err(|e| Outcome::Retry { error: err(ErrorKind::Store, None, e.to_string()), at_least: None })
}

/// Creates `doc` in the ERP at most once: ledger, then (after any earlier attempt) a
/// lookup in the ERP, then the create with a stable idempotency key.
async fn create(
    ctx: &Ctx,
    conn: &Connection,
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
    // Serialized before any lookup: an ERP without external references is searched by
    // the natural key the body carries (a number and a contact).
    let erp = conn.config.erp;
    let payload = stages::call(ctx, stages::SERIALIZER, |r| SerializerMsg::Serialize(erp, Box::new(doc), r))
        .await?
        .map_err(|e| Outcome::Failed(err(ErrorKind::Serialize, Some(e.kind().into()), e.to_string())))?;
    if d.attempt() > 1
        && let Some(id) = conn.call(conn.client().find_existing(op, &source, &payload)).await?
    {
        tracing::info!(erp_id = %id, "found the document created by an earlier attempt");
        ledger.push((kind.into(), source, id.clone()));
        return Ok(id);
    }
    let key = idempotency_key(conn, kind, &source);
    let created = conn.call(conn.client().create(op, &payload, &key)).await?;
    ledger.push((kind.into(), source, created.erp_id.clone()));
    Ok(created.erp_id)
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
