//! Items' documents in a table of their own (`item_documents`), apart from `job_items`,
//! whose row every state change rewrites: at ≈ 1.3 kB an invoice made each rewrite of a
//! ≈ 150-byte state ten times wider, and the status writer's transactions wrote a page to
//! the WAL for every three items they touched.
//!
//! Expand, then contract. This release copies the documents over and reads them from
//! here, falling back to `job_items.payload` for an item a daemon of an earlier release
//! recorded after this migration ran. On PostgreSQL, where a fleet upgrading one daemon at
//! a time runs both releases against one database, new items keep their document in
//! `job_items.payload` as well, for the earlier daemons still running (an earlier binary
//! refuses to start against this schema: sea-orm's migrator rejects a database holding a
//! migration it does not know). On SQLite, whose file one daemon owns, new items leave
//! `job_items.payload` empty. A later release, once no earlier daemon can be running,
//! stops the copy on PostgreSQL and empties the column.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ItemDocuments {
    Table,
    ItemId,
    Payload,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ItemDocuments::Table)
                .if_not_exists()
                .col(string_len(ItemDocuments::ItemId, 36).primary_key())
                .col(text(ItemDocuments::Payload))
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared("INSERT INTO item_documents (item_id, payload) SELECT id, payload FROM job_items")
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Items recorded since kept no copy in their row on SQLite: give it back.
        m.get_connection()
            .execute_unprepared(
                "UPDATE job_items SET payload = \
                   (SELECT d.payload FROM item_documents d WHERE d.item_id = job_items.id) \
                 WHERE payload = '' AND EXISTS (SELECT 1 FROM item_documents d WHERE d.item_id = job_items.id)",
            )
            .await?;
        m.drop_table(Table::drop().table(ItemDocuments::Table).to_owned()).await
    }
}
