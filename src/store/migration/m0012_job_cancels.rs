//! Cancelled jobs, one row each: an item of a cancelled job that was in flight when the
//! job was cancelled finishes its attempt, and the status writer turns the retry that
//! attempt would schedule into `cancelled`, so nothing of the job is attempted again.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobCancels {
    Table,
    JobId,
    CancelledAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(JobCancels::Table)
                .if_not_exists()
                .col(string(JobCancels::JobId).primary_key())
                .col(big_integer(JobCancels::CancelledAtMs))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(JobCancels::Table).to_owned()).await
    }
}
