//! `job_idempotency`: the `Idempotency-Key`s of `POST /v1/jobs`, per tenant. A row is
//! reserved (no `status` yet) before the job is submitted and completed with the answer
//! given, which a repeat of the request with the same key and body is given again; the
//! body's SHA-256 tells a repeat from a different request reusing the key. Also an index
//! for `GET /v1/jobs`, which lists a tenant's connections' jobs newest first.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobIdempotency {
    Table,
    Tenant,
    IdempotencyKey,
    BodySha256,
    Status,
    Response,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    ConnectionId,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(JobIdempotency::Table)
                .if_not_exists()
                .col(string(JobIdempotency::Tenant))
                .col(string_len(JobIdempotency::IdempotencyKey, 255))
                .col(string_len(JobIdempotency::BodySha256, 64))
                .col(integer_null(JobIdempotency::Status))
                .col(text_null(JobIdempotency::Response))
                .col(big_integer(JobIdempotency::CreatedAtMs))
                .primary_key(Index::create().col(JobIdempotency::Tenant).col(JobIdempotency::IdempotencyKey))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("job_idempotency_created")
                .table(JobIdempotency::Table)
                .col(JobIdempotency::CreatedAtMs)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("jobs_connection_created")
                .table(Jobs::Table)
                .col(Jobs::ConnectionId)
                .col(Jobs::CreatedAtMs)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("jobs_connection_created").table(Jobs::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(JobIdempotency::Table).to_owned()).await
    }
}
