//! The bills each connection has exported, as payments are matched with them: written
//! with the outcome of the attempt that created (or found) the bill, read by vendor with
//! what recorded payments have applied to each. They outlive the jobs that exported them
//! (retention deletes jobs, never these), like the ledger.

use super::StoreError;
use super::entities::{bill_application, exported_bill};
use crate::domain::ConnectionId;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use std::collections::HashMap;

/// A bill in the ERP, with the facts a payment is matched on.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedBill {
    /// The AP application's id of the invoice.
    pub source_id: String,
    pub erp_id: String,
    pub vendor_id: String,
    pub number: String,
    pub total: Decimal,
    pub currency: String,
    pub due_date: NaiveDate,
}

/// A vendor's bill and what other payments have applied to it so far.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorBill {
    pub bill: ExportedBill,
    pub paid: Decimal,
}

/// Records bills (once per connection and document: a retry's outcome adds nothing).
pub(super) async fn record<C: ConnectionTrait>(
    db: &C,
    bills: Vec<(String, String, ExportedBill)>,
    now: i64,
) -> Result<(), StoreError> {
    if bills.is_empty() {
        return Ok(());
    }
    let rows = bills.into_iter().map(|(connection_id, item_id, b)| exported_bill::ActiveModel {
        connection_id: Set(connection_id),
        source_id: Set(b.source_id),
        erp_id: Set(b.erp_id),
        vendor_id: Set(b.vendor_id),
        number: Set(b.number),
        total: Set(b.total.to_string()),
        currency: Set(b.currency),
        due_date: Set(b.due_date.to_string()),
        item_id: Set(item_id),
        created_at_ms: Set(now),
    });
    exported_bill::Entity::insert_many(rows)
        .on_conflict_do_nothing_on([exported_bill::Column::ConnectionId, exported_bill::Column::SourceId])
        .exec(db)
        .await?;
    Ok(())
}

/// The bills exported through `connection` to `vendor`, each with what recorded payments
/// other than `except_payment` applied to it.
pub async fn vendor_bills(
    db: &DatabaseConnection,
    connection: &ConnectionId,
    vendor: &str,
    except_payment: &str,
) -> Result<Vec<VendorBill>, StoreError> {
    let rows = exported_bill::Entity::find()
        .filter(exported_bill::Column::ConnectionId.eq(connection.to_string()))
        .filter(exported_bill::Column::VendorId.eq(vendor))
        .all(db)
        .await?;
    let mut paid: HashMap<String, Decimal> = HashMap::new();
    for ids in rows.chunks(500) {
        let applied = bill_application::Entity::find()
            .filter(bill_application::Column::ConnectionId.eq(connection.to_string()))
            .filter(bill_application::Column::BillErpId.is_in(ids.iter().map(|b| b.erp_id.clone())))
            .filter(bill_application::Column::PaymentSourceId.ne(except_payment))
            .all(db)
            .await?;
        for a in applied {
            let amount = a.amount.parse::<Decimal>().map_err(|e| {
                StoreError::Corrupt(format!(
                    "payment {} applied {:?} to bill {}: {e}",
                    a.payment_source_id, a.amount, a.bill_erp_id
                ))
            })?;
            *paid.entry(a.bill_erp_id).or_default() += amount;
        }
    }
    rows.into_iter()
        .map(|r| {
            let corrupt = |what: &str, e: &dyn std::fmt::Display| {
                StoreError::Corrupt(format!("exported bill {} has a bad {what}: {e}", r.source_id))
            };
            let total = r.total.parse::<Decimal>().map_err(|e| corrupt("total", &e))?;
            let due_date = r.due_date.parse::<NaiveDate>().map_err(|e| corrupt("due date", &e))?;
            let paid = paid.get(&r.erp_id).copied().unwrap_or_default();
            let bill = ExportedBill {
                source_id: r.source_id,
                erp_id: r.erp_id,
                vendor_id: r.vendor_id,
                number: r.number,
                total,
                currency: r.currency,
                due_date,
            };
            Ok(VendorBill { bill, paid })
        })
        .collect()
}
