//! Jobs, their items and timelines, the idempotency ledger and the embedded queue.
//! Times are integer milliseconds since the Unix epoch on both SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    ConnectionId,
    Op,
    TotalItems,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum JobItems {
    Table,
    Id,
    JobId,
    ConnectionId,
    Op,
    SourceId,
    Payload,
    State,
    Attempts,
    ErpId,
    ErrorKind,
    ErrorCode,
    ErrorMessage,
    Enqueued,
    CreatedAtMs,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum ItemEvents {
    Table,
    Id,
    ItemId,
    AtMs,
    State,
    Attempt,
    Detail,
}

#[derive(DeriveIden)]
enum ErpRefs {
    Table,
    ConnectionId,
    DocKind,
    SourceId,
    ErpId,
    ItemId,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum QueueMessages {
    Table,
    Id,
    Queue,
    GroupId,
    Body,
    SentAtMs,
    VisibleAtMs,
    ReceiveCount,
    DeadAtMs,
    DeadReason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .col(string_len(Jobs::Id, 36).primary_key())
                .col(string(Jobs::ConnectionId))
                .col(string(Jobs::Op))
                .col(integer(Jobs::TotalItems))
                .col(big_integer(Jobs::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(JobItems::Table)
                .col(string_len(JobItems::Id, 36).primary_key())
                .col(string_len(JobItems::JobId, 36))
                .col(string(JobItems::ConnectionId))
                .col(string(JobItems::Op))
                .col(string(JobItems::SourceId))
                .col(text(JobItems::Payload))
                .col(string(JobItems::State))
                .col(integer(JobItems::Attempts))
                .col(string_null(JobItems::ErpId))
                .col(string_null(JobItems::ErrorKind))
                .col(string_null(JobItems::ErrorCode))
                .col(text_null(JobItems::ErrorMessage))
                .col(boolean(JobItems::Enqueued))
                .col(big_integer(JobItems::CreatedAtMs))
                .col(big_integer(JobItems::UpdatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("job_items_job").table(JobItems::Table).col(JobItems::JobId).to_owned())
            .await?;
        // The outbox sweep looks for items recorded but never sent.
        m.create_index(
            Index::create()
                .name("job_items_outbox")
                .table(JobItems::Table)
                .col(JobItems::Enqueued)
                .col(JobItems::CreatedAtMs)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ItemEvents::Table)
                .col(big_pk_auto(ItemEvents::Id))
                .col(string_len(ItemEvents::ItemId, 36))
                .col(big_integer(ItemEvents::AtMs))
                .col(string(ItemEvents::State))
                .col(integer(ItemEvents::Attempt))
                .col(text_null(ItemEvents::Detail))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("item_events_item").table(ItemEvents::Table).col(ItemEvents::ItemId).to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ErpRefs::Table)
                .col(string(ErpRefs::ConnectionId))
                .col(string(ErpRefs::DocKind))
                .col(string(ErpRefs::SourceId))
                .col(string(ErpRefs::ErpId))
                .col(string_len(ErpRefs::ItemId, 36))
                .col(big_integer(ErpRefs::CreatedAtMs))
                .primary_key(Index::create().col(ErpRefs::ConnectionId).col(ErpRefs::DocKind).col(ErpRefs::SourceId))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(QueueMessages::Table)
                .col(big_pk_auto(QueueMessages::Id))
                .col(string(QueueMessages::Queue))
                .col(string_null(QueueMessages::GroupId))
                .col(text(QueueMessages::Body))
                .col(big_integer(QueueMessages::SentAtMs))
                .col(big_integer(QueueMessages::VisibleAtMs))
                .col(integer(QueueMessages::ReceiveCount))
                .col(big_integer_null(QueueMessages::DeadAtMs))
                .col(text_null(QueueMessages::DeadReason))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("queue_messages_ready")
                .table(QueueMessages::Table)
                .col(QueueMessages::Queue)
                .col(QueueMessages::DeadAtMs)
                .col(QueueMessages::VisibleAtMs)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("queue_messages_group_ready")
                .table(QueueMessages::Table)
                .col(QueueMessages::Queue)
                .col(QueueMessages::GroupId)
                .col(QueueMessages::DeadAtMs)
                .col(QueueMessages::VisibleAtMs)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
