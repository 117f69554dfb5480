//! Signed webhooks, as the Standard Webhooks specification describes: tenants subscribe
//! URLs to event types; the fan-out (`fanout`) turns the event log into deliveries, one
//! per event and matching subscription, in a queue of their own (`store::webhooks`); the
//! delivery worker (`worker`) sends them signed (`signing`) to addresses it may call
//! (`address`), retrying on the schedule of `schedule`. Nothing here runs on the export
//! pipeline's path: a slow or dead receiver only ever holds up its own deliveries.

pub mod address;
pub mod fanout;
pub mod schedule;
pub mod signing;
pub mod worker;

use crate::actors::Ctx;
use std::sync::Arc;

/// The event types a subscription may name.
pub const EVENT_TYPES: [&str; 7] = [
    "job.completed",
    "job.completed_with_errors",
    "item.failed",
    "item.dead_lettered",
    "connection.parked",
    "connection.resumed",
    "import.completed",
];

/// Whether `kind` is one of [`EVENT_TYPES`].
pub fn is_event_type(kind: &str) -> bool {
    EVENT_TYPES.contains(&kind)
}

/// A delivery's body: `{"type", "timestamp", "data"}`, the payload structure the
/// specification recommends (`timestamp` is when the event happened, RFC 3339).
pub fn body(kind: &str, at_ms: i64, data: &serde_json::Value) -> String {
    let at = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    let timestamp = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::json!({"type": kind, "timestamp": timestamp, "data": data}).to_string()
}

/// The sealing owner of subscription `id`'s secrets: a sealed secret copied to another
/// row (or passed off as a connection's credentials) does not open.
pub fn secret_owner(id: &str) -> String {
    format!("webhook:{id}")
}

/// Starts the fan-out and the delivery worker of one daemon; they stop when the
/// returned tasks are aborted.
pub fn spawn(ctx: &Arc<Ctx>) -> Vec<tokio::task::JoinHandle<()>> {
    let wake = Arc::new(tokio::sync::Notify::new());
    vec![tokio::spawn(fanout::run(ctx.clone(), wake.clone())), tokio::spawn(worker::run(ctx.clone(), wake))]
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_body_has_the_recommended_structure() {
        let b: serde_json::Value =
            serde_json::from_str(&super::body("job.completed", 1_700_000_000_123, &serde_json::json!({"a": 1})))
                .unwrap();
        assert_eq!(b["type"], "job.completed");
        assert_eq!(b["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(b["data"]["a"], 1);
    }
}
