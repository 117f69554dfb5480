//! The bills each connection has exported, kept as the facts a payment is matched with
//! (vendor, number, total, currency, due date) apart from the job that exported them, so
//! that retention may delete old jobs and a payment that arrives months later still finds
//! its bill. Keyed like the ledger, by the bill's document; looked up by vendor.
//!
//! The bills exported before this table existed are copied from their succeeded items.

use crate::domain::{Invoice, ItemState, Op};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ExportedBills {
    Table,
    ConnectionId,
    SourceId,
    ErpId,
    VendorId,
    Number,
    Total,
    Currency,
    DueDate,
    ItemId,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ExportedBills::Table)
                .if_not_exists()
                .col(string(ExportedBills::ConnectionId))
                .col(string(ExportedBills::SourceId))
                .col(string(ExportedBills::ErpId))
                .col(string(ExportedBills::VendorId))
                .col(string(ExportedBills::Number))
                // A decimal as text, exactly as the document had it.
                .col(string(ExportedBills::Total))
                .col(string(ExportedBills::Currency))
                .col(string(ExportedBills::DueDate))
                .col(string_len(ExportedBills::ItemId, 36))
                .col(big_integer(ExportedBills::CreatedAtMs))
                .primary_key(Index::create().col(ExportedBills::ConnectionId).col(ExportedBills::SourceId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("exported_bills_vendor")
                .table(ExportedBills::Table)
                .col(ExportedBills::ConnectionId)
                .col(ExportedBills::VendorId)
                .to_owned(),
        )
        .await?;
        copy_exported(m).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ExportedBills::Table).to_owned()).await
    }
}

/// Copies the bills of succeeded invoice items; a document that does not parse as an
/// invoice (another producer's shape) is left out, as the matcher left it out.
async fn copy_exported(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = m.get_connection();
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT job_items.id, job_items.connection_id, job_items.erp_id, job_items.created_at_ms, \
           COALESCE(item_documents.payload, job_items.payload) AS document \
         FROM job_items LEFT JOIN item_documents ON item_documents.item_id = job_items.id \
         WHERE job_items.op = '{}' AND job_items.state = '{}' AND job_items.erp_id IS NOT NULL",
        Op::ExportInvoice.as_str(),
        ItemState::Succeeded.as_str(),
    );
    for row in db.query_all_raw(Statement::from_string(backend, sql)).await? {
        let document: String = row.try_get("", "document")?;
        let Ok(inv) = serde_json::from_str::<Invoice>(&document) else { continue };
        let insert = Query::insert()
            .into_table(ExportedBills::Table)
            .columns([
                ExportedBills::ConnectionId,
                ExportedBills::SourceId,
                ExportedBills::ErpId,
                ExportedBills::VendorId,
                ExportedBills::Number,
                ExportedBills::Total,
                ExportedBills::Currency,
                ExportedBills::DueDate,
                ExportedBills::ItemId,
                ExportedBills::CreatedAtMs,
            ])
            .values_panic([
                row.try_get::<String>("", "connection_id")?.into(),
                inv.source_id.into(),
                row.try_get::<String>("", "erp_id")?.into(),
                inv.vendor.id.into(),
                inv.number.into(),
                inv.total.to_string().into(),
                inv.currency.into(),
                inv.due_date.to_string().into(),
                row.try_get::<String>("", "id")?.into(),
                row.try_get::<i64>("", "created_at_ms")?.into(),
            ])
            .on_conflict(
                OnConflict::columns([ExportedBills::ConnectionId, ExportedBills::SourceId]).do_nothing().to_owned(),
            )
            .to_owned();
        m.exec_stmt(insert).await?;
    }
    Ok(())
}
