//! How erpsync's values are put to SQS: SDK errors as [`QueueError`], durations in SQS's
//! whole seconds, and the message attributes this client sets on dead letters.

use crate::queue::QueueError;
use aws_sdk_sqs::types::MessageAttributeValue;
use std::time::Duration;

/// Why the message was dead-lettered.
pub(super) const ATTR_REASON: &str = "erpsync_reason";
/// How often it had been received when it was.
pub(super) const ATTR_RECEIVES: &str = "erpsync_receive_count";
/// When it was, in milliseconds since the epoch.
pub(super) const ATTR_DEAD_AT: &str = "erpsync_dead_at_ms";
/// The message's group, kept with a dead letter for a redrive to restore.
pub(super) const ATTR_GROUP: &str = "erpsync_group";

pub(super) fn service_err<E: std::error::Error>(what: &str, e: E) -> QueueError {
    QueueError::Service(format!("{what}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))
}

/// SQS durations are whole seconds: rounded up, so a wait is never cut short.
pub(super) fn secs_ceil(d: Duration) -> i32 {
    let s = d.as_millis().div_ceil(1000);
    i32::try_from(s).unwrap_or(i32::MAX)
}

pub(super) fn string_attr(v: impl Into<String>) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(v).build().expect("data type is set")
}

pub(super) fn number_attr(v: i64) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("Number").string_value(v.to_string()).build().expect("data type is set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_seconds() {
        assert_eq!(secs_ceil(Duration::ZERO), 0);
        assert_eq!(secs_ceil(Duration::from_millis(1)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(1000)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(1001)), 2);
    }
}
