//! The fan-out: reads the event log after its durable cursor and queues a delivery for
//! each event and each subscription of the event's tenant that names its type, in the
//! transaction that moves the cursor on (`store::webhooks::fanout`), so each event is
//! fanned out exactly once across restarts and across a fleet, where one daemon at a
//! time takes a turn. A subscription gets only the events that happened after it was
//! made.

use crate::actors::Ctx;
use crate::store::StoreError;
use crate::store::events::{self, Event, EventCursor, EventFilter};
use crate::store::webhooks::{self as store, Subscription, deliveries::NewDelivery};
use std::sync::Arc;
use tokio::sync::Notify;

/// Events read per turn.
const BATCH: u32 = 500;

/// One event of the log, as the fan-out needs it.
#[derive(Debug, Clone)]
pub struct SourceEvent {
    /// The event's cursor in the log: also what tells its deliveries apart.
    pub key: String,
    pub tenant: String,
    pub kind: String,
    pub connection: Option<String>,
    pub job_id: Option<String>,
    pub item_id: Option<String>,
    pub data: serde_json::Value,
    pub at_ms: i64,
}

/// The deliveries `events` make for `subs`.
pub fn deliveries_for(subs: &[Subscription], events: &[SourceEvent]) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for e in events.iter().filter(|e| super::is_event_type(&e.kind)) {
        let wanted =
            subs.iter().filter(|s| s.tenant == e.tenant && s.created_at_ms <= e.at_ms && s.events.contains(&e.kind));
        let mut body = None;
        for s in wanted {
            let body = body.get_or_insert_with(|| super::body(&e.kind, e.at_ms, &data(e)));
            out.push(NewDelivery {
                subscription_id: s.id.clone(),
                tenant: e.tenant.clone(),
                event_key: e.key.clone(),
                event_type: e.kind.clone(),
                body: body.clone(),
            });
        }
    }
    out
}

/// The `data` of an event's delivery: its ids, then what the event log recorded.
fn data(e: &SourceEvent) -> serde_json::Value {
    let mut data = serde_json::Map::new();
    for (name, value) in [("connection_id", &e.connection), ("job_id", &e.job_id), ("item_id", &e.item_id)] {
        if let Some(v) = value {
            data.insert(name.into(), v.clone().into());
        }
    }
    if let serde_json::Value::Object(fields) = &e.data {
        for (k, v) in fields {
            data.entry(k.clone()).or_insert_with(|| v.clone());
        }
    } else if !e.data.is_null() {
        data.insert("detail".into(), e.data.clone());
    }
    serde_json::Value::Object(data)
}

/// Queues `list` in the fan-out's own transaction.
pub async fn queue(
    c: &impl sea_orm::ConnectionTrait,
    list: &[NewDelivery],
    config: &crate::config::WebhooksConfig,
) -> Result<u64, sea_orm::DbErr> {
    let window_ms = i64::from(config.retry_window_secs.get()) * 1000;
    let n = store::deliveries::insert(c, list, crate::util::now_ms(), window_ms).await?;
    metrics::counter!(crate::telemetry::WEBHOOK_FANNED_OUT).increment(n);
    Ok(n)
}

/// Runs until aborted, waking `wake` (the delivery worker) when it queued deliveries.
pub async fn run(ctx: Arc<Ctx>, wake: Arc<Notify>) {
    let mut news = events::Waiter::new();
    loop {
        match turn(&ctx).await {
            // A full batch: there may be more behind it at once.
            Ok(Turned { read, queued }) => {
                if queued > 0 {
                    wake.notify_one();
                }
                if read == BATCH as usize {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhook fan-out failed; trying again"),
        }
        news.wait().await;
    }
}

/// What one turn did.
struct Turned {
    read: usize,
    queued: u64,
}

/// One turn: the events after the cursor, their deliveries, the cursor moved on, in one
/// transaction. Nothing when there is nothing to read or another daemon holds the turn.
async fn turn(ctx: &Ctx) -> Result<Turned, StoreError> {
    let idle = Turned { read: 0, queued: 0 };
    let filter = EventFilter { kinds: super::EVENT_TYPES.map(String::from).to_vec(), ..EventFilter::default() };
    // Looked at without the turn first, so that an idle fan-out writes nothing.
    let peeked = store::fanout::peek(&ctx.db).await?;
    let mut read = events::read_after(&ctx.db, cursor(&peeked)?.as_ref(), &filter, BATCH).await?;
    if read.is_empty() {
        return Ok(idle);
    }
    let Some(turn) = store::fanout::begin(&ctx.db).await? else {
        return Ok(idle);
    };
    if turn.cursor != peeked {
        read = events::read_after(&ctx.db, cursor(&turn.cursor)?.as_ref(), &filter, BATCH).await?;
    }
    let Some(last) = read.last().map(|e| e.cursor.to_string()) else {
        return Ok(idle);
    };
    let subs = store::all(&turn.txn).await?;
    let source: Vec<SourceEvent> = read.iter().map(SourceEvent::from).collect();
    let queued = queue(&turn.txn, &deliveries_for(&subs, &source), &ctx.config.webhooks).await?;
    turn.commit(&last).await?;
    Ok(Turned { read: read.len(), queued })
}

fn cursor(stored: &Option<String>) -> Result<Option<EventCursor>, StoreError> {
    stored
        .as_deref()
        .map(|c| c.parse::<EventCursor>().map_err(|e| StoreError::Corrupt(format!("webhook fan-out cursor: {e}"))))
        .transpose()
}

impl From<&Event> for SourceEvent {
    fn from(e: &Event) -> SourceEvent {
        SourceEvent {
            key: e.cursor.to_string(),
            tenant: e.tenant.clone(),
            kind: e.kind.clone(),
            connection: e.connection.clone(),
            job_id: e.job_id.clone(),
            item_id: e.item_id.clone(),
            data: e.data.clone(),
            at_ms: e.at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, tenant: &str, events: &[&str], created_at_ms: i64) -> Subscription {
        Subscription {
            id: id.into(),
            tenant: tenant.into(),
            url: "https://example.com/".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            created_at_ms,
            secret_set_at_ms: created_at_ms,
            previous_secret_valid_until_ms: None,
        }
    }

    fn event(key: &str, tenant: &str, kind: &str, at_ms: i64) -> SourceEvent {
        SourceEvent {
            key: key.into(),
            tenant: tenant.into(),
            kind: kind.into(),
            connection: Some("books".into()),
            job_id: Some("j1".into()),
            item_id: None,
            data: serde_json::json!({"succeeded": 3}),
            at_ms,
        }
    }

    #[test]
    fn an_event_goes_to_its_tenants_subscriptions_that_name_its_type_made_before_it() {
        let subs = [
            sub("a", "acme", &["job.completed"], 0),
            sub("b", "acme", &["item.failed"], 0),
            sub("c", "globex", &["job.completed"], 0),
            sub("d", "acme", &["job.completed", "item.failed"], 0),
            sub("late", "acme", &["job.completed"], 50),
        ];
        let events = [event("1", "acme", "job.completed", 10), event("2", "acme", "item.in_progress", 11)];
        let out = deliveries_for(&subs, &events);
        let to: Vec<&str> = out.iter().map(|d| d.subscription_id.as_str()).collect();
        assert_eq!(to, ["a", "d"]);
        let body: serde_json::Value = serde_json::from_str(&out[0].body).unwrap();
        assert_eq!(body["type"], "job.completed");
        assert_eq!(body["data"]["job_id"], "j1");
        assert_eq!(body["data"]["connection_id"], "books");
        assert_eq!(body["data"]["succeeded"], 3);
        assert_eq!(out[0].body, out[1].body, "one body per event");
    }
}
