//! Batched DeleteMessage / ChangeMessageVisibility on SQS: callers ask for one entry each
//! and get their own answer (through [`Batcher`]), while the calls to SQS carry up to ten
//! entries.

use super::service_err;
use crate::queue::QueueError;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
};

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
fn entry_result(f: &BatchResultErrorEntry) -> Result<bool, QueueError> {
    match f.code() {
        "ReceiptHandleIsInvalid"
        | "MessageNotInflight"
        | "AWS.SimpleQueueService.MessageNotInflight"
        | "InvalidReceiptHandle" => Ok(false),
        code => Err(QueueError::Service(format!("{code}: {}", f.message().unwrap_or("")))),
    }
}

/// Maps a batch answer back onto its entries (ids are the entries' positions).
fn by_entry(
    n: usize,
    ok_ids: impl Iterator<Item = String>,
    failed: &[BatchResultErrorEntry],
) -> Vec<Result<bool, QueueError>> {
    let mut out: Vec<Result<bool, QueueError>> =
        (0..n).map(|_| Err(QueueError::Service("SQS did not answer for this entry".into()))).collect();
    for id in ok_ids {
        if let Some(slot) = id.parse::<usize>().ok().and_then(|i| out.get_mut(i)) {
            *slot = Ok(true);
        }
    }
    for f in failed {
        if let Some(slot) = f.id().parse::<usize>().ok().and_then(|i| out.get_mut(i)) {
            *slot = entry_result(f);
        }
    }
    out
}

fn all_failed(n: usize, e: QueueError) -> Vec<Result<bool, QueueError>> {
    let msg = e.to_string();
    (0..n).map(|_| Err(QueueError::Service(msg.clone()))).collect()
}

/// One DeleteMessageBatch call (≤ 10 receipts).
pub async fn delete_batch(client: &Client, url: &str, receipts: Vec<String>) -> Vec<Result<bool, QueueError>> {
    let n = receipts.len();
    let entries: Vec<_> = receipts
        .into_iter()
        .enumerate()
        .map(|(i, r)| DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(r).build())
        .collect::<Result<_, _>>()
        .expect("id and receipt handle are set");
    match client.delete_message_batch().queue_url(url).set_entries(Some(entries)).send().await {
        Ok(out) => by_entry(n, out.successful().iter().map(|s| s.id().to_owned()), out.failed()),
        Err(e) => all_failed(n, service_err("DeleteMessageBatch", e)),
    }
}

/// One ChangeMessageVisibilityBatch call (≤ 10 entries of receipt, seconds).
pub async fn visibility_batch(
    client: &Client,
    url: &str,
    entries: Vec<(String, i32)>,
) -> Vec<Result<bool, QueueError>> {
    let n = entries.len();
    let entries: Vec<_> = entries
        .into_iter()
        .enumerate()
        .map(|(i, (r, secs))| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(r)
                .visibility_timeout(secs)
                .build()
        })
        .collect::<Result<_, _>>()
        .expect("id and receipt handle are set");
    match client.change_message_visibility_batch().queue_url(url).set_entries(Some(entries)).send().await {
        Ok(out) => by_entry(n, out.successful().iter().map(|s| s.id().to_owned()), out.failed()),
        Err(e) => all_failed(n, service_err("ChangeMessageVisibilityBatch", e)),
    }
}
