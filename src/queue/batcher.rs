//! Batching one-entry requests into calls that carry many: callers ask for one entry
//! each and get their own answer, while each call carries up to `max_batch` entries.
//!
//! There is no linger timer. A bounded number of calls may be in flight; while all are
//! busy, requests queue up and the next call takes up to `max_batch` of them. So an idle
//! daemon handles each entry at once and a busy one pays one call per batch. SQS's
//! deletes and visibility changes use it (ten per call), and so do the embedded queue's
//! deletes (one statement per batch instead of one write transaction per message).

use super::QueueError;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

type Reply = oneshot::Sender<Result<bool, QueueError>>;

pub struct Batcher<T> {
    tx: mpsc::UnboundedSender<(T, Reply)>,
}

impl<T: Send + 'static> Batcher<T> {
    /// Starts the collecting task; `flush` answers one batch, entry by entry.
    pub fn spawn<F, Fut>(max_batch: usize, in_flight: usize, flush: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<bool, QueueError>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(T, Reply)>();
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
                    let (entries, replies): (Vec<T>, Vec<Reply>) = batch.into_iter().unzip();
                    for (reply, result) in replies.into_iter().zip(flush(entries).await) {
                        let _ = reply.send(result);
                    }
                    drop(permit);
                });
            }
        });
        Batcher { tx }
    }

    pub async fn submit(&self, entry: T) -> Result<bool, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((entry, tx)).map_err(|_| QueueError::Service("the batcher has stopped".into()))?;
        rx.await.map_err(|_| QueueError::Service("the batcher dropped the request".into()))?
    }
}
