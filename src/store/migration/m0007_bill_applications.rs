//! What each payment applied to each bill, recorded with the payment's outcome, so that a
//! later payment is matched against what the bills still have open rather than their
//! totals (a bill paid in full is not paid again; a remittance naming it leaves the
//! money as credit, with the reason). Keyed by the payment's document: a payment
//! recorded twice (a retry after a lost answer) counts once.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BillApplications {
    Table,
    ConnectionId,
    PaymentSourceId,
    BillErpId,
    Amount,
    ItemId,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(BillApplications::Table)
                .if_not_exists()
                .col(string(BillApplications::ConnectionId))
                .col(string(BillApplications::PaymentSourceId))
                .col(string(BillApplications::BillErpId))
                // A decimal as text, exactly as the ERP was sent it.
                .col(string(BillApplications::Amount))
                .col(string_len(BillApplications::ItemId, 36))
                .col(big_integer(BillApplications::CreatedAtMs))
                .primary_key(
                    Index::create()
                        .col(BillApplications::ConnectionId)
                        .col(BillApplications::PaymentSourceId)
                        .col(BillApplications::BillErpId),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(BillApplications::Table).to_owned()).await
    }
}
