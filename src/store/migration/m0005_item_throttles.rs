//! How many of an item's attempts the ERP throttled (answered 429 before doing anything):
//! those do not count against `retry.max_attempts` (see `store::ItemUpdate::is_throttle`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobItems {
    Table,
    Throttles,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table(JobItems::Table).add_column(integer(JobItems::Throttles).default(0)).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(JobItems::Table).drop_column(JobItems::Throttles).to_owned()).await
    }
}
