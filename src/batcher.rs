//! Batching one-entry requests into calls that carry many: callers ask for one entry
//! each and get their own answer, while each call carries up to `max_batch` entries.
//!
//! There is no linger timer. A bounded number of calls may be in flight; while all are
//! busy, requests queue up and the next call takes up to `max_batch` of them. So an idle
//! daemon handles each entry at once and a busy one pays one call per batch. SQS's
//! deletes and visibility changes use it (ten per call), the embedded queue's deletes
//! (one statement per batch instead of one write transaction per message), and the item
//! reads every attempt starts with (one statement, and one hand-off to the database's
//! thread, per batch instead of per item).

use crate::queue::QueueError;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

pub struct Batcher<T, A = Result<bool, QueueError>> {
    tx: mpsc::UnboundedSender<(T, oneshot::Sender<A>)>,
}

impl<T: Send + 'static, A: Send + 'static> Batcher<T, A> {
    /// Starts the collecting task; `flush` answers one batch, entry by entry, in order.
    pub fn spawn<F, Fut>(max_batch: usize, in_flight: usize, flush: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<A>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(T, oneshot::Sender<A>)>();
        let flush = Arc::new(flush);
        let calls = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(permit) = calls.clone().acquire_owned().await else { break };
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(x) => batch.push(x),
                        Err(_) => break,
                    }
                }
                let flush = flush.clone();
                tokio::spawn(async move {
                    let (entries, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                    for (reply, answer) in replies.into_iter().zip(flush(entries).await) {
                        let _ = reply.send(answer);
                    }
                    drop(permit);
                });
            }
        });
        Batcher { tx }
    }

    /// The entry's answer; None if the batcher has stopped or its call gave no answer
    /// for this entry.
    pub async fn ask(&self, entry: T) -> Option<A> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((entry, tx)).ok()?;
        rx.await.ok()
    }
}

impl<T: Send + 'static> Batcher<T> {
    pub async fn submit(&self, entry: T) -> Result<bool, QueueError> {
        self.ask(entry)
            .await
            .ok_or_else(|| QueueError::Service("the batcher has stopped or dropped the request".into()))?
    }
}
