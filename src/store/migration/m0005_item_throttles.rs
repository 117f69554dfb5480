//! Attempts that do not count against `retry.max_attempts`: those the ERP throttled
//! (answered 429 before doing anything; see `store::ItemUpdate::is_throttle`), and those
//! made before the item was last redriven from the dead-letter queue. `attempts` itself
//! never goes back, so after a redrive the next attempt still looks the document up in
//! the ERP before creating it, and a stale attempt from before cannot overwrite it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobItems {
    Table,
    Throttles,
    RedrivenAttempts,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table(JobItems::Table).add_column(integer(JobItems::Throttles).default(0)).to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter().table(JobItems::Table).add_column(integer(JobItems::RedrivenAttempts).default(0)).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(JobItems::Table).drop_column(JobItems::RedrivenAttempts).to_owned()).await?;
        m.alter_table(Table::alter().table(JobItems::Table).drop_column(JobItems::Throttles).to_owned()).await
    }
}
