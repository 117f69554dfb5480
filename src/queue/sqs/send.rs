//! The send path: messages split into SendMessageBatch calls (ten entries and at most
//! [`BATCH_BYTES`] each), several in flight, entries that failed for the server's reasons
//! retried, and what still fails reported entry by entry ([`QueueError::PartialSend`]).

use super::batch;
use super::convert::secs_ceil;
use super::wire::{SendEntry, Wire};
use crate::queue::{Outgoing, QueueError};
use futures::StreamExt;
use std::collections::HashSet;
use std::time::Duration;

/// SendMessageBatch payload budget (SQS's historical limit; newer queues allow 1 MiB).
const BATCH_BYTES: usize = 256 * 1024;
/// Longest per-message delay SQS accepts.
const MAX_DELAY_SECS: i32 = 900;
/// Rounds of a SendMessageBatch for entries that failed on the server's side.
const SEND_ROUNDS: u32 = 3;

/// Sends to one queue.
pub(super) struct Sender {
    wire: Wire,
    url: String,
    fifo: bool,
    concurrency: usize,
}

impl Sender {
    pub(super) fn new(wire: Wire, url: String, fifo: bool, concurrency: usize) -> Self {
        Sender { wire, url, fifo, concurrency: concurrency.max(1) }
    }

    pub(super) async fn send(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        let batches = plan_batches(&messages);
        let msgs = &messages;
        // A FIFO queue orders what it is sent: its batches go one after the other.
        let parallel = if self.fifo { 1 } else { self.concurrency };
        let mut failed: Vec<(usize, String)> = futures::stream::iter(batches)
            .map(|b| self.send_batch(msgs, b))
            .buffered(parallel)
            .flat_map(futures::stream::iter)
            .collect()
            .await;
        if failed.is_empty() {
            return Ok(());
        }
        failed.sort_by_key(|(i, _)| *i);
        let message = failed[0].1.clone();
        Err(QueueError::PartialSend { failed: failed.into_iter().map(|(i, _)| i).collect(), message })
    }

    fn entry<'m>(&self, i: usize, m: &'m Outgoing) -> SendEntry<'m> {
        let mut e = SendEntry { id: i.to_string(), message_body: &m.body, ..SendEntry::default() };
        if self.fifo {
            // FIFO queues refuse per-message delays and need a group and a deduplication id.
            e.message_group_id = Some(m.group.as_deref().unwrap_or("default").into());
            e.message_deduplication_id =
                Some(m.dedup_id.as_deref().map_or_else(|| uuid::Uuid::new_v4().to_string().into(), Into::into));
        } else {
            // No message attribute repeats the group: the envelope names the connection,
            // and an attribute makes the queue server spend markedly more CPU per
            // enqueued message.
            e.message_group_id = m.group.as_deref().map(Into::into);
            if !m.delay.is_zero() {
                e.delay_seconds = Some(secs_ceil(m.delay).min(MAX_DELAY_SECS));
            }
        }
        e
    }

    /// Sends the messages at `indices` in one call, retrying entries that failed on the
    /// server's side; returns the indices that could not be sent, with the last reason.
    async fn send_batch(&self, messages: &[Outgoing], mut pending: Vec<usize>) -> Vec<(usize, String)> {
        let mut failed = Vec::new();
        for round in 0..SEND_ROUNDS {
            if pending.is_empty() {
                break;
            }
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(100 << round)).await;
            }
            let entries: Vec<_> = pending.iter().map(|&i| self.entry(i, &messages[i])).collect();
            let out = match self.wire.send_message_batch(&self.url, &entries).await {
                Ok(out) => out,
                Err(e) => {
                    let reason = e.to_string();
                    if round + 1 == SEND_ROUNDS {
                        failed.extend(pending.drain(..).map(|i| (i, reason.clone())));
                    }
                    continue;
                }
            };
            let mut retry = Vec::new();
            for f in &out.failed {
                let Ok(i) = f.id.parse::<usize>() else { continue };
                let reason = format!("{}: {}", f.code, f.message.as_deref().unwrap_or(""));
                if f.sender_fault || round + 1 == SEND_ROUNDS {
                    failed.push((i, reason));
                } else {
                    retry.push(i);
                }
            }
            // Entries the answer does not mention count as failed too, never as sent.
            let answered: HashSet<usize> = out
                .successful
                .iter()
                .map(|s| s.id.as_str())
                .chain(out.failed.iter().map(|f| f.id.as_str()))
                .filter_map(|id| id.parse().ok())
                .collect();
            for &i in &pending {
                if !answered.contains(&i) {
                    failed.push((i, "SendMessageBatch did not answer for this entry".into()));
                }
            }
            pending = retry;
        }
        failed
    }
}

/// Splits messages into batches of at most ten entries and `BATCH_BYTES` of bodies.
fn plan_batches(messages: &[Outgoing]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, m) in messages.iter().enumerate() {
        let size = m.body.len();
        match out.last_mut() {
            Some(b) if b.len() < batch::MAX_BATCH && bytes + size <= BATCH_BYTES => {
                b.push(i);
                bytes += size;
            }
            _ => {
                out.push(vec![i]);
                bytes = size;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_size() {
        let small = |n: usize| (0..n).map(|i| Outgoing::new(format!("m{i}"), None)).collect::<Vec<_>>();
        assert_eq!(plan_batches(&small(25)).iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        let big: Vec<_> = (0..5).map(|_| Outgoing::new("x".repeat(100 * 1024), None)).collect();
        assert_eq!(plan_batches(&big).iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let huge = vec![Outgoing::new("x".repeat(300 * 1024), None), Outgoing::new("y", None)];
        assert_eq!(plan_batches(&huge), [vec![0], vec![1]], "an oversized body goes alone; the server decides");
    }
}
