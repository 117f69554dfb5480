//! The bodies and parameters of the webhook and event-stream endpoints, typed so that the
//! OpenAPI document's schemas are the answers' own.

use crate::store::webhooks::Subscription;
use crate::store::webhooks::deliveries::DeliveryView;
use serde::Serialize;

/// A subscription to make: where to `POST` and which event types.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only: the handler reads the body itself, to name what is wrong
pub struct WebhookRequest {
    /// An http(s) URL whose host resolves to a public address (unless
    /// `webhooks.allow_private`).
    url: String,
    /// At least one of `job.completed`, `job.completed_with_errors`, `item.failed`,
    /// `item.dead_lettered`, `connection.parked`, `connection.resumed`, `import.completed`.
    #[schema(min_items = 1)]
    events: Vec<String>,
}

/// A subscription with its signing secret, shown in this answer only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub subscription: Subscription,
    /// `whsec_` and the base64 of 32 random bytes.
    pub secret: String,
}

/// The tenant's subscriptions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Webhooks {
    pub webhooks: Vec<Subscription>,
}

/// A page of a subscription's delivery log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The id of a subscription in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; handlers read it themselves
pub struct WebhookPath {
    /// The subscription's id (`wh_…`)
    id: String,
}

/// A subscription's id and one of its deliveries' in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // as `WebhookPath`
pub struct DeliveryPath {
    /// The subscription's id (`wh_…`)
    id: String,
    /// The delivery's id (`msg_…`, its `webhook-id`)
    delivery_id: String,
}

/// The delivery log's paging.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // as `WebhookPath`
pub struct DeliveriesQuery {
    /// Deliveries a page holds, 1 to 500 (50 by default).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the page before.
    #[param(pattern = "^msg_[0-9a-fA-F]{32}$")]
    cursor: Option<String>,
}

/// Where an event stream starts, besides the `Last-Event-ID` header.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // as `WebhookPath`
pub struct JobEventsQuery {
    /// Start after this event id (as `Last-Event-ID`, which wins when both are sent).
    after: Option<String>,
}

/// The tenant's event stream's filters and start.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // as `WebhookPath`
pub struct EventsQuery {
    /// Only this connection's events (one of the tenant's).
    connection: Option<String>,
    /// Only events of these types, comma-separated (the parameter may repeat).
    #[param(rename = "type")]
    kind: Option<String>,
    /// Start after this event id (as `Last-Event-ID`, which wins when both are sent).
    after: Option<String>,
}
