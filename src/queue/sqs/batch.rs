//! Batched DeleteMessage / ChangeMessageVisibility on SQS: callers ask for one entry each
//! and get their own answer (through [`Batcher`]), while the calls to SQS carry up to ten
//! entries.

use super::wire::{BatchAnswer, DeleteEntry, FailedEntry, VisibilityEntry, Wire};
use crate::queue::QueueError;

/// SQS's limit on entries per batch call.
pub const MAX_BATCH: usize = 10;
/// Batch calls in flight at once per batcher.
pub const IN_FLIGHT_CALLS: usize = 8;
/// How long a batch that is not full waits for more entries while another call is in
/// flight (see `Batcher::spawn_lingering`). Without it a busy daemon sent as many small
/// batches as calls were allowed in flight: 6 deletes per call on average while draining,
/// against 10 with it. A delete that waits keeps its message hidden, nothing more.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// How one failed entry of a batch answers: a receipt that is stale or no longer in
/// flight is `false` (the message is no longer ours); anything else is an error.
fn entry_result(f: &FailedEntry) -> Result<bool, QueueError> {
    match f.code.as_str() {
        "ReceiptHandleIsInvalid"
        | "MessageNotInflight"
        | "AWS.SimpleQueueService.MessageNotInflight"
        | "InvalidReceiptHandle" => Ok(false),
        code => Err(QueueError::Service(format!("{code}: {}", f.message.as_deref().unwrap_or("")))),
    }
}

/// Maps a batch answer back onto its `n` entries (ids are the entries' positions).
fn by_entry(n: usize, answer: Result<BatchAnswer, QueueError>) -> Vec<Result<bool, QueueError>> {
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            let msg = e.to_string();
            return (0..n).map(|_| Err(QueueError::Service(msg.clone()))).collect();
        }
    };
    let mut out: Vec<Result<bool, QueueError>> =
        (0..n).map(|_| Err(QueueError::Service("SQS did not answer for this entry".into()))).collect();
    for s in &answer.successful {
        if let Some(slot) = s.id.parse::<usize>().ok().and_then(|i| out.get_mut(i)) {
            *slot = Ok(true);
        }
    }
    for f in &answer.failed {
        if let Some(slot) = f.id.parse::<usize>().ok().and_then(|i| out.get_mut(i)) {
            *slot = entry_result(f);
        }
    }
    out
}

/// One DeleteMessageBatch call (≤ 10 receipts).
pub async fn delete_batch(wire: &Wire, url: &str, receipts: Vec<String>) -> Vec<Result<bool, QueueError>> {
    let entries: Vec<_> =
        receipts.iter().enumerate().map(|(i, r)| DeleteEntry { id: i.to_string(), receipt_handle: r }).collect();
    by_entry(entries.len(), wire.delete_message_batch(url, &entries).await)
}

/// One ChangeMessageVisibilityBatch call (≤ 10 entries of receipt, seconds).
pub async fn visibility_batch(wire: &Wire, url: &str, entries: Vec<(String, i32)>) -> Vec<Result<bool, QueueError>> {
    let entries: Vec<_> = entries
        .iter()
        .enumerate()
        .map(|(i, (r, secs))| VisibilityEntry { id: i.to_string(), receipt_handle: r, visibility_timeout: *secs })
        .collect();
    by_entry(entries.len(), wire.change_message_visibility_batch(url, &entries).await)
}
