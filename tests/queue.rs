//! Queue-trait conformance: the SQS semantics every backend must have. Each check is a
//! function over `dyn Queue`, run here on the embedded backend (SQLite); other backends
//! run the same functions.

use erpsync::queue::embedded::EmbeddedQueue;
use erpsync::queue::{GroupFilter, Outgoing, Queue, ReceiveRequest};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_RECEIVES: u32 = 3;

async fn embedded_postgres() -> (Arc<dyn Queue>, ()) {
    let url = erpsync::testdb::fresh_postgres().await;
    let db = erpsync::store::connect(&url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    (Arc::new(EmbeddedQueue::new(db, "conformance", MAX_RECEIVES, Duration::from_millis(20))), ())
}

async fn embedded() -> (Arc<dyn Queue>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/q.db?mode=rwc", dir.path().display());
    let db = erpsync::store::connect(&url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    (Arc::new(EmbeddedQueue::new(db, "conformance", MAX_RECEIVES, Duration::from_millis(20))), dir)
}

fn msg(body: &str) -> Outgoing {
    Outgoing { body: body.into(), group: Some("g1".into()), delay: Duration::ZERO }
}

fn req(max: usize, wait_ms: u64, vis_ms: u64) -> ReceiveRequest<'static> {
    ReceiveRequest {
        max_messages: max,
        wait: Duration::from_millis(wait_ms),
        visibility: Duration::from_millis(vis_ms),
        groups: GroupFilter::Any,
    }
}

async fn undeleted_message_reappears_after_visibility_timeout(q: Arc<dyn Queue>) {
    q.send(vec![msg("a")]).await.unwrap();
    let first = q.receive(req(10, 0, 300)).await.unwrap().messages;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert!(q.receive(req(10, 0, 300)).await.unwrap().messages.is_empty(), "invisible while in flight");
    let again = q.receive(req(10, 3000, 300)).await.unwrap().messages;
    assert_eq!(again.len(), 1, "visible again after the timeout");
    assert_eq!(again[0].body, "a");
    assert_eq!(again[0].receive_count, 2, "approximate receive count grows");
}

async fn stale_receipt_cannot_delete_a_redelivered_message(q: Arc<dyn Queue>) {
    q.send(vec![msg("b")]).await.unwrap();
    let first = q.receive(req(1, 0, 100)).await.unwrap().messages.remove(0);
    let second = q.receive(req(1, 3000, 10_000)).await.unwrap().messages.remove(0);
    assert!(!q.delete(&first.receipt).await.unwrap(), "stale handle refused");
    assert!(!q.change_visibility(&[(first.receipt.clone(), Duration::ZERO)]).await.unwrap()[0]);
    assert!(q.delete(&second.receipt).await.unwrap(), "current handle deletes");
    assert!(q.receive(req(1, 200, 100)).await.unwrap().messages.is_empty(), "gone for good");
}

async fn dead_letters_after_max_receives_with_reason(q: Arc<dyn Queue>) {
    q.send(vec![msg("poison")]).await.unwrap();
    for n in 1..=MAX_RECEIVES {
        let m = q.receive(req(1, 3000, 50)).await.unwrap().messages;
        assert_eq!(m.len(), 1, "receive {n}");
        assert_eq!(m[0].receive_count, n);
    }
    let batch = q.receive(req(1, 500, 50)).await.unwrap();
    assert!(batch.messages.is_empty(), "not delivered a fourth time");
    assert_eq!(batch.dead_lettered.len(), 1);
    let dlq = q.dead_letters(10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].body, "poison");
    assert!(dlq[0].reason.contains("max_receives"), "{}", dlq[0].reason);
    assert_eq!(q.depth().await.unwrap().dead_lettered, 1);
}

async fn explicit_dead_letter_keeps_the_reason(q: Arc<dyn Queue>) {
    q.send(vec![msg("bad")]).await.unwrap();
    let m = q.receive(req(1, 0, 5000)).await.unwrap().messages.remove(0);
    assert!(q.dead_letter(&m.receipt, "unreadable message: not JSON").await.unwrap());
    assert_eq!(q.dead_letters(10).await.unwrap()[0].reason, "unreadable message: not JSON");
    assert!(!q.delete(&m.receipt).await.unwrap(), "a dead letter is no longer deletable from the queue");
}

async fn delayed_message_is_invisible_until_its_delay(q: Arc<dyn Queue>) {
    let started = Instant::now();
    q.send(vec![Outgoing { body: "later".into(), group: None, delay: Duration::from_millis(400) }]).await.unwrap();
    assert_eq!(q.depth().await.unwrap().delayed, 1);
    assert!(q.receive(req(1, 0, 1000)).await.unwrap().messages.is_empty());
    let m = q.receive(req(1, 3000, 1000)).await.unwrap().messages;
    assert_eq!(m.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

async fn change_visibility_reschedules(q: Arc<dyn Queue>) {
    q.send(vec![msg("c")]).await.unwrap();
    let m = q.receive(req(1, 0, 60_000)).await.unwrap().messages.remove(0);
    assert_eq!(q.depth().await.unwrap().in_flight, 1);
    assert!(q.change_visibility(&[(m.receipt.clone(), Duration::ZERO)]).await.unwrap()[0]);
    let again = q.receive(req(1, 1000, 60_000)).await.unwrap().messages;
    assert_eq!(again.len(), 1, "visible at once after a zero visibility change");
}

async fn receive_honours_max_and_order(q: Arc<dyn Queue>) {
    q.send((0..25).map(|i| msg(&format!("m{i}"))).collect()).await.unwrap();
    let a = q.receive(req(10, 0, 60_000)).await.unwrap().messages;
    assert_eq!(a.len(), 10);
    assert_eq!(a[0].body, "m0");
    let d = q.depth().await.unwrap();
    assert_eq!((d.visible, d.in_flight), (15, 10));
}

async fn long_poll_wakes_on_send(q: Arc<dyn Queue>) {
    let q2 = q.clone();
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let m = q2.receive(req(1, 5000, 1000)).await.unwrap().messages;
        (m.len(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    q.send(vec![msg("wake")]).await.unwrap();
    let (n, waited) = waiter.await.unwrap();
    assert_eq!(n, 1);
    assert!(waited < Duration::from_secs(2), "returned as soon as a message arrived: {waited:?}");
}

async fn group_filters(q: Arc<dyn Queue>) {
    if !q.can_receive_by_group() {
        return;
    }
    q.send(vec![
        Outgoing { body: "a1".into(), group: Some("a".into()), delay: Duration::ZERO },
        Outgoing { body: "b1".into(), group: Some("b".into()), delay: Duration::ZERO },
        Outgoing { body: "none".into(), group: None, delay: Duration::ZERO },
    ])
    .await
    .unwrap();
    let only_b = ReceiveRequest { groups: GroupFilter::Only("b"), ..req(10, 0, 60_000) };
    let got: Vec<_> = q.receive(only_b).await.unwrap().messages.into_iter().map(|m| m.body).collect();
    assert_eq!(got, ["b1"]);
    let known = vec!["a".to_owned(), "b".to_owned()];
    let others = ReceiveRequest { groups: GroupFilter::NoneOf(&known), ..req(10, 0, 60_000) };
    let got: Vec<_> = q.receive(others).await.unwrap().messages.into_iter().map(|m| m.body).collect();
    assert_eq!(got, ["none"]);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (q, _dir) = super::embedded().await;
                    super::$name(q).await;
                }
            )*
        }
        mod embedded_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (q, _) = super::embedded_postgres().await;
                    super::$name(q).await;
                }
            )*
        }
    };
}

/// Several receivers on one PostgreSQL queue: no message is handed to two of them while
/// its visibility lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_receivers_never_share_a_message() {
    let url = erpsync::testdb::fresh_postgres().await;
    let mut queues = Vec::new();
    for _ in 0..4 {
        let db = erpsync::store::connect(&url, 4).await.unwrap();
        erpsync::store::migrate(&db).await.unwrap();
        queues.push(Arc::new(EmbeddedQueue::new(db, "shared", 100, Duration::from_millis(10))));
    }
    queues[0].send((0..2000).map(|i| msg(&format!("m{i}"))).collect()).await.unwrap();
    let mut tasks = Vec::new();
    for q in queues {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = q.receive(req(10, 0, 60_000)).await.unwrap().messages;
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|m| m.body));
            }
        }));
    }
    let mut all = Vec::new();
    let mut per_receiver = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        per_receiver.push(got.len());
        all.extend(got);
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (2000, 2000), "each message exactly once; per receiver {per_receiver:?}");
}

conformance!(
    undeleted_message_reappears_after_visibility_timeout,
    stale_receipt_cannot_delete_a_redelivered_message,
    dead_letters_after_max_receives_with_reason,
    explicit_dead_letter_keeps_the_reason,
    delayed_message_is_invisible_until_its_delay,
    change_visibility_reschedules,
    receive_honours_max_and_order,
    long_poll_wakes_on_send,
    group_filters,
);
