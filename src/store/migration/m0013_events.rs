//! The event log (`store::events`): one row per item transition, job completion and
//! connection park or resume, written in the transaction of the change it describes.
//!
//! `xid` is the writing transaction's id on PostgreSQL (0 on SQLite): readers page in
//! (`xid`, `id`) order and read only below the oldest transaction still running, so a
//! row that commits late never lands behind a reader's cursor (see `store::events`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    Xid,
    Tenant,
    ConnectionId,
    JobId,
    ItemId,
    Kind,
    Data,
    AtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Events::Table)
                .if_not_exists()
                .col(big_pk_auto(Events::Id))
                .col(big_integer(Events::Xid).default(0))
                .col(string(Events::Tenant))
                .col(string_null(Events::ConnectionId))
                .col(string_null(Events::JobId))
                .col(string_null(Events::ItemId))
                .col(string(Events::Kind))
                .col(text(Events::Data))
                .col(big_integer(Events::AtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("events_order").table(Events::Table).col(Events::Xid).col(Events::Id).to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("events_job")
                .table(Events::Table)
                .col(Events::JobId)
                .col(Events::Xid)
                .col(Events::Id)
                .to_owned(),
        )
        .await?;
        // The items of a job not yet terminal: whether a batch finished its job is then a
        // probe of this index (see `event_log::completions`), not a walk over the job's
        // items. The condition is written as the query writes it, which SQLite requires to
        // use a partial index.
        m.get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS job_items_open ON job_items (job_id) WHERE {}",
                crate::store::event_log::OPEN
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection().execute_unprepared("DROP INDEX IF EXISTS job_items_open").await?;
        m.drop_table(Table::drop().table(Events::Table).to_owned()).await
    }
}
