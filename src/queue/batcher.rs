//! Batching one-entry requests into calls that carry many: callers ask for one entry
//! each and get their own answer, while each call carries up to `max_batch` entries.
//!
//! A bounded number of calls may be in flight; while all are busy, requests queue up and
//! the next call takes up to `max_batch` of them. So an idle daemon handles each entry at
//! once and a busy one pays one call per batch. With a linger ([`Batcher::spawn_lingering`]),
//! a batch that is not full waits up to that long for more entries, but only while another
//! call is in flight: an idle daemon still sends each entry at once, and a busy one sends
//! full batches instead of as many small ones as there are calls allowed in flight (which,
//! on SQS, are billed and cost CPU per request, not per entry). SQS's
//! deletes and visibility changes use it (ten per call), and the embedded queue's deletes
//! (one statement per batch instead of one write transaction per message).

use super::QueueError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
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
        Self::spawn_lingering(max_batch, in_flight, Duration::ZERO, flush)
    }

    /// [`spawn`](Self::spawn), where a batch that is not full waits up to `linger` for
    /// more entries while another call is in flight.
    pub fn spawn_lingering<F, Fut>(max_batch: usize, in_flight: usize, linger: Duration, flush: F) -> Self
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
                // Another call in flight (this one holds a permit too): wait a little for
                // a fuller batch. A barrier ends the wait, as does the channel closing.
                let others_in_flight = calls.available_permits() + 1 < in_flight;
                if batch.len() < max_batch && carried.is_none() && !linger.is_zero() && others_in_flight {
                    let deadline = tokio::time::Instant::now() + linger;
                    while batch.len() < max_batch {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(Request::Entry(entry, reply))) => batch.push((entry, reply)),
                            Ok(Some(barrier)) => {
                                carried = Some(barrier);
                                break;
                            }
                            Ok(None) | Err(_) => break,
                        }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lingering_batcher_sends_at_once_when_idle_and_fills_batches_when_busy() {
        // Calls take 200 ms and log their batches; two may be in flight; linger 2 s.
        let batches = Arc::new(Mutex::new(Vec::<Vec<u64>>::new()));
        let b = batches.clone();
        let batcher = Arc::new(Batcher::spawn_lingering(4, 2, Duration::from_secs(2), move |entries: Vec<u64>| {
            let b = b.clone();
            async move {
                b.lock().unwrap().push(entries.clone());
                tokio::time::sleep(Duration::from_millis(200)).await;
                entries
            }
        }));
        // Idle: the first entry goes alone, at once (not after the linger).
        let started = std::time::Instant::now();
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.ask(0).await }
        });
        while batches.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Busy (the first call is in flight): the next entries wait for a full batch of
        // four rather than each taking the free call.
        let mut later = Vec::new();
        for e in 1..=4u64 {
            let batcher = batcher.clone();
            later.push(tokio::spawn(async move { batcher.ask(e).await }));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(first.await.unwrap(), Some(0));
        assert!(started.elapsed() < Duration::from_secs(1), "the idle entry waited for the linger");
        for (e, task) in (1..=4u64).zip(later) {
            assert_eq!(task.await.unwrap(), Some(e));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "a full batch waited for the linger");
        let mut batches = batches.lock().unwrap().clone();
        batches.iter_mut().for_each(|b| b.sort_unstable());
        assert_eq!(batches, vec![vec![0], vec![1, 2, 3, 4]]);
    }
}
