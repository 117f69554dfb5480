//! The refresh tokens OAuth vendors rotate (QuickBooks, Xero), one row per connection,
//! sealed with `[secrets] key`. A vendor invalidates a refresh token once it has issued the
//! next, so the newest must be in the database before it is used again: a restart, or
//! another daemon of the fleet, then refreshes with it instead of locking the customer out.
//! `seed` (sealed too) is the refresh token from the connection's credentials the row
//! started from, so new credentials from the operator replace a stored token.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ErpTokens {
    Table,
    ConnectionId,
    RefreshToken,
    Seed,
    UpdatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ErpTokens::Table)
                .if_not_exists()
                .col(string(ErpTokens::ConnectionId).primary_key())
                .col(text(ErpTokens::RefreshToken))
                .col(string(ErpTokens::Seed))
                .col(big_integer(ErpTokens::UpdatedAtMs))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ErpTokens::Table).to_owned()).await
    }
}
