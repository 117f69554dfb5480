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

/// What the collecting task is asked: an entry to answer, or to wait until every entry
/// asked for before has been answered.
enum Request<T, A> {
    Entry(T, oneshot::Sender<A>),
    Barrier(oneshot::Sender<()>),
}

pub struct Batcher<T, A = Result<bool, QueueError>> {
    tx: mpsc::UnboundedSender<Request<T, A>>,
}

impl<T: Send + 'static, A: Send + 'static> Batcher<T, A> {
    /// Starts the collecting task; `flush` answers one batch, entry by entry, in order.
    pub fn spawn<F, Fut>(max_batch: usize, in_flight: usize, flush: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<A>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Request<T, A>>();
        let flush = Arc::new(flush);
        let in_flight = in_flight.max(1);
        let calls = Arc::new(Semaphore::new(in_flight));
        tokio::spawn(async move {
            // A barrier met while a batch was being collected, handled after that batch.
            let mut carried = None;
            loop {
                let Some(next) = (match carried.take() {
                    Some(r) => Some(r),
                    None => rx.recv().await,
                }) else {
                    break;
                };
                let first = match next {
                    Request::Entry(entry, reply) => (entry, reply),
                    Request::Barrier(done) => {
                        // Every call in flight holds a permit: having them all means every
                        // earlier entry has its answer, and no later one has started.
                        let Ok(all) = calls.clone().acquire_many_owned(in_flight as u32).await else { break };
                        let _ = done.send(());
                        drop(all);
                        continue;
                    }
                };
                let Ok(permit) = calls.clone().acquire_owned().await else { break };
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(Request::Entry(entry, reply)) => batch.push((entry, reply)),
                        Ok(barrier) => {
                            carried = Some(barrier);
                            break;
                        }
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
        self.tx.send(Request::Entry(entry, tx)).ok()?;
        rx.await.ok()
    }

    /// Returns once every entry asked for before this call has been answered (its call
    /// finished), even by callers that stopped waiting; entries asked for meanwhile wait
    /// until then. So what is asked after `settle` lands after what was asked before it.
    pub async fn settle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::Barrier(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

impl<T: Send + 'static> Batcher<T> {
    pub async fn submit(&self, entry: T) -> Result<bool, QueueError> {
        self.ask(entry)
            .await
            .ok_or_else(|| QueueError::Service("the batcher has stopped or dropped the request".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn settle_waits_for_every_earlier_entry_and_holds_back_later_ones() {
        // Each call sleeps as many milliseconds as its largest entry and logs its
        // entries' start and end.
        let log = Arc::new(Mutex::new(Vec::<(u64, &str)>::new()));
        let l = log.clone();
        let batcher = Batcher::spawn(2, 3, move |entries: Vec<u64>| {
            let l = l.clone();
            async move {
                l.lock().unwrap().extend(entries.iter().map(|&e| (e, "start")));
                tokio::time::sleep(Duration::from_millis(entries.iter().copied().max().unwrap_or(0))).await;
                l.lock().unwrap().extend(entries.iter().map(|&e| (e, "end")));
                entries
            }
        });
        // Callers that stop waiting at once: their entries are still sent.
        for e in [80, 60, 40, 20, 10] {
            assert!(tokio::time::timeout(Duration::from_millis(1), batcher.ask(e)).await.is_err());
        }
        let (_, later) = tokio::join!(batcher.settle(), async {
            tokio::task::yield_now().await;
            batcher.ask(1).await
        });
        assert_eq!(later, Some(1));
        let log = log.lock().unwrap().clone();
        let at = |entry: u64, what: &str| log.iter().position(|&x| x == (entry, what)).unwrap();
        for e in [80, 60, 40, 20, 10] {
            assert!(at(e, "end") < at(1, "start"), "{e} answered before the later entry started: {log:?}");
        }
    }
}
