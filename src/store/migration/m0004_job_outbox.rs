//! The outbox of a job being sent to SQS: one marker row per job, written with the job and
//! deleted once its sender has reported, instead of a flag rewritten in each of its item
//! rows (see `store::Enqueuing::AfterCommit`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobOutbox {
    Table,
    JobId,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(JobOutbox::Table)
                .if_not_exists()
                .col(string_len(JobOutbox::JobId, 36).primary_key())
                .col(big_integer(JobOutbox::CreatedAtMs))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(JobOutbox::Table).to_owned()).await
    }
}
