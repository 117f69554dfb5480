//! Cluster-wide concurrency slots: `max_concurrency` rows per connection, each held by at
//! most one daemon until it expires; `token` grows on every grant (the fencing token).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ErpLeases {
    Table,
    ConnectionId,
    Slot,
    Holder,
    Token,
    ExpiresAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ErpLeases::Table)
                .col(string(ErpLeases::ConnectionId))
                .col(integer(ErpLeases::Slot))
                .col(string_null(ErpLeases::Holder))
                .col(big_integer(ErpLeases::Token))
                .col(big_integer(ErpLeases::ExpiresAtMs))
                .primary_key(Index::create().col(ErpLeases::ConnectionId).col(ErpLeases::Slot))
                .to_owned(),
        )
        .await
    }
}
