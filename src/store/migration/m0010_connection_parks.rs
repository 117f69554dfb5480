//! Parked connections and the credentials operators give connections at runtime.
//!
//! `connection_parks`: one row per parked connection (its items wait, unattempted, until
//! it is resumed), so every daemon of a fleet sees the same state. `connection_credentials`:
//! a connection's secrets document as `erpsync connections set-credentials` gave it, sealed
//! with `[secrets] key`; it takes precedence over the configuration's `credentials`
//! reference, and its `updated_at_ms` tells running daemons to rebuild the client.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConnectionParks {
    Table,
    ConnectionId,
    Reason,
    Detail,
    ParkedAtMs,
}

#[derive(DeriveIden)]
enum ConnectionCredentials {
    Table,
    ConnectionId,
    Sealed,
    UpdatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ConnectionParks::Table)
                .if_not_exists()
                .col(string(ConnectionParks::ConnectionId).primary_key())
                .col(string(ConnectionParks::Reason))
                .col(text(ConnectionParks::Detail))
                .col(big_integer(ConnectionParks::ParkedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ConnectionCredentials::Table)
                .if_not_exists()
                .col(string(ConnectionCredentials::ConnectionId).primary_key())
                .col(text(ConnectionCredentials::Sealed))
                .col(big_integer(ConnectionCredentials::UpdatedAtMs))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ConnectionCredentials::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(ConnectionParks::Table).to_owned()).await
    }
}
