//! API tokens: a token is kept only as the SHA-256 of its text (`token_hash`, the key the
//! API looks it up by), with its tenant and scope; the token itself is shown once, when
//! created. A revoked token keeps its row, so `erpsync tokens list` shows when it was
//! revoked.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    TokenHash,
    Tenant,
    Scope,
    Name,
    LastFour,
    CreatedAtMs,
    RevokedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .if_not_exists()
                .col(string_len(ApiTokens::Id, 36).primary_key())
                // Hex, 64 characters.
                .col(string_len_uniq(ApiTokens::TokenHash, 64))
                .col(string(ApiTokens::Tenant))
                .col(string(ApiTokens::Scope))
                .col(string(ApiTokens::Name))
                .col(string_len(ApiTokens::LastFour, 4))
                .col(big_integer(ApiTokens::CreatedAtMs))
                .col(big_integer_null(ApiTokens::RevokedAtMs))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ApiTokens::Table).to_owned()).await
    }
}
