//! The outbox index covers only items not yet sent. Every item used to enter it, although
//! the outbox only ever looks for `enqueued = false`, and on the embedded queue (whose
//! messages commit with the job) no item is ever in that state for long: keeping the
//! index partial takes a write per item off every `POST /v1/jobs`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS job_items_outbox").await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS job_items_pending_outbox ON job_items (created_at_ms) WHERE enqueued = false",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS job_items_pending_outbox").await?;
        db.execute_unprepared("CREATE INDEX IF NOT EXISTS job_items_outbox ON job_items (enqueued, created_at_ms)")
            .await?;
        Ok(())
    }
}
