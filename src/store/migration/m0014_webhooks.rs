//! Webhooks: the tenants' subscriptions and the deliveries queued for them, kept apart
//! from the work items and their queue so that a slow or dead receiver never holds up an
//! export.
//!
//! `webhook_subscriptions`: one row per subscription, its signing secret sealed with
//! `[secrets] key` (and the secret it replaced, still signed with until
//! `previous_until_ms`). `webhook_deliveries`: one row per event and subscription (the
//! unique `(subscription_id, event_key)` makes fanning an event out twice harmless), with
//! the body exactly as it is sent and signed, the attempt count, when it is next due and
//! the claim of the daemon sending it. `webhook_attempts`: every attempt's answer, for the
//! delivery log. `webhook_fanout`: how far the fan-out has read the event log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookSubscriptions {
    Table,
    Id,
    Tenant,
    Url,
    Events,
    Secret,
    PreviousSecret,
    PreviousUntilMs,
    SecretSetAtMs,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    SubscriptionId,
    Tenant,
    EventKey,
    EventType,
    Body,
    State,
    Attempts,
    NextAttemptAtMs,
    RetryUntilMs,
    Claim,
    ClaimUntilMs,
    LastStatus,
    LastError,
    LastAttemptAtMs,
    DeliveredAtMs,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    DeliveryId,
    Attempt,
    AtMs,
    Status,
    Error,
    LatencyMs,
}

#[derive(DeriveIden)]
enum WebhookFanout {
    Table,
    Name,
    Cursor,
    UpdatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use WebhookDeliveries as D;
        m.create_table(
            Table::create()
                .table(WebhookSubscriptions::Table)
                .if_not_exists()
                .col(string(WebhookSubscriptions::Id).primary_key())
                .col(string(WebhookSubscriptions::Tenant))
                .col(text(WebhookSubscriptions::Url))
                .col(text(WebhookSubscriptions::Events))
                .col(text(WebhookSubscriptions::Secret))
                .col(text_null(WebhookSubscriptions::PreviousSecret))
                .col(big_integer_null(WebhookSubscriptions::PreviousUntilMs))
                .col(big_integer(WebhookSubscriptions::SecretSetAtMs))
                .col(big_integer(WebhookSubscriptions::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("webhook_subscriptions_tenant")
                .table(WebhookSubscriptions::Table)
                .col(WebhookSubscriptions::Tenant)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(D::Table)
                .if_not_exists()
                .col(string(D::Id).primary_key())
                .col(string(D::SubscriptionId))
                .col(string(D::Tenant))
                .col(string(D::EventKey))
                .col(string(D::EventType))
                .col(text(D::Body))
                .col(string(D::State))
                .col(integer(D::Attempts))
                .col(big_integer(D::NextAttemptAtMs))
                .col(big_integer(D::RetryUntilMs))
                .col(string_null(D::Claim))
                .col(big_integer_null(D::ClaimUntilMs))
                .col(integer_null(D::LastStatus))
                .col(text_null(D::LastError))
                .col(big_integer_null(D::LastAttemptAtMs))
                .col(big_integer_null(D::DeliveredAtMs))
                .col(big_integer(D::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("webhook_deliveries_event")
                .table(D::Table)
                .col(D::SubscriptionId)
                .col(D::EventKey)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // What the workers claim: the pending deliveries that are due.
        m.create_index(
            Index::create()
                .name("webhook_deliveries_due")
                .table(D::Table)
                .col(D::State)
                .col(D::NextAttemptAtMs)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // The delivery log: a subscription's deliveries, newest first.
        m.create_index(
            Index::create()
                .name("webhook_deliveries_log")
                .table(D::Table)
                .col(D::SubscriptionId)
                .col(D::Id)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookAttempts::Table)
                .if_not_exists()
                .col(string(WebhookAttempts::DeliveryId))
                .col(integer(WebhookAttempts::Attempt))
                .col(big_integer(WebhookAttempts::AtMs))
                .col(integer_null(WebhookAttempts::Status))
                .col(text_null(WebhookAttempts::Error))
                .col(big_integer(WebhookAttempts::LatencyMs))
                .primary_key(Index::create().col(WebhookAttempts::DeliveryId).col(WebhookAttempts::Attempt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookFanout::Table)
                .if_not_exists()
                .col(string(WebhookFanout::Name).primary_key())
                .col(text_null(WebhookFanout::Cursor))
                .col(big_integer(WebhookFanout::UpdatedAtMs))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WebhookFanout::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(WebhookAttempts::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(WebhookSubscriptions::Table).to_owned()).await
    }
}
