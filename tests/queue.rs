//! Queue-trait conformance: the SQS semantics every backend must have. Each check is a
//! function over `dyn Queue`, run on the embedded backend (SQLite), on SQS as served by
//! fauxqs (all of them, standard and FIFO queues) and, for a subset, by moto_server, so
//! that no behaviour is an artefact of one emulator. The SQS servers are started by
//! `scripts/test.sh`; without them these tests fail, saying how to start them.

mod common;

use erpsync::config::{QueueBackend, QueueConfig};
use erpsync::queue::embedded::EmbeddedQueue;
use erpsync::queue::sqs::{SqsQueue, admin};
use erpsync::queue::{GroupFilter, Outgoing, Queue, QueueError, ReceiveRequest};
use std::any::Any;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_RECEIVES: u32 = 3;

type Made = (Arc<dyn Queue>, Box<dyn Any + Send>);

async fn embedded() -> Made {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/q.db?mode=rwc", dir.path().display());
    let db = erpsync::store::connect(&url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    (Arc::new(EmbeddedQueue::new(db, "conformance", MAX_RECEIVES, Duration::from_millis(20))), Box::new(dir))
}

async fn embedded_fifo() -> Made {
    embedded_fifo_on(None).await
}

async fn embedded_postgres_fifo() -> Made {
    embedded_fifo_on(Some(common::fresh_postgres().await)).await
}

/// The embedded queue in FIFO mode, on SQLite or on the PostgreSQL database `url`.
async fn embedded_fifo_on(url: Option<String>) -> Made {
    let dir = tempfile::tempdir().unwrap();
    let url = url.unwrap_or_else(|| format!("sqlite://{}/q.db?mode=rwc", dir.path().display()));
    let db = erpsync::store::connect(&url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let q = EmbeddedQueue::new(db, "conformance", MAX_RECEIVES, Duration::from_millis(20)).keeping_group_order(true);
    (Arc::new(q), Box::new(dir))
}

async fn embedded_postgres() -> Made {
    let url = common::fresh_postgres().await;
    let db = erpsync::store::connect(&url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    (Arc::new(EmbeddedQueue::new(db, "conformance", MAX_RECEIVES, Duration::from_millis(20))), Box::new(()))
}

/// A fresh queue and dead-letter queue on an SQS-compatible server.
async fn sqs(endpoint: String, fifo: bool) -> Made {
    let suffix = if fifo { ".fifo" } else { "" };
    let cfg = QueueConfig {
        backend: QueueBackend::Sqs,
        name: Some(format!("conformance-{}{suffix}", &uuid::Uuid::new_v4().simple().to_string()[..12])),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint),
        max_receives: NonZeroU32::new(MAX_RECEIVES),
        ..QueueConfig::default()
    };
    let clients = admin::clients(&cfg).await.expect("the SQS clients are built");
    let (url, dlq) = admin::create_queues(&clients.sdk, &cfg).await.expect("queues are created");
    (Arc::new(SqsQueue::new(clients, url, dlq, MAX_RECEIVES, 4)), Box::new(()))
}

async fn sqs_fauxqs() -> Made {
    sqs(common::fauxqs_endpoint(), false).await
}
async fn sqs_fauxqs_fifo() -> Made {
    sqs(common::fauxqs_endpoint(), true).await
}
async fn sqs_moto() -> Made {
    sqs(common::moto_endpoint(), false).await
}
async fn sqs_moto_fifo() -> Made {
    sqs(common::moto_endpoint(), true).await
}

fn msg(body: &str) -> Outgoing {
    Outgoing::new(body, Some("g1".into()))
}

fn in_group(body: &str, group: &str) -> Outgoing {
    Outgoing { dedup_id: Some(body.into()), ..Outgoing::new(body, Some(group.into())) }
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
    let stale_deleted = q.delete(&first.receipt).await.unwrap();
    // SQS answers a stale delete with success; what matters is that nothing is deleted.
    assert!(!stale_deleted || !q.detects_stale_deletes(), "stale handle refused");
    assert_eq!(q.depth().await.unwrap().in_flight, 1, "the stale handle deleted nothing");
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
    let batch = q.receive(req(1, 3000, 50)).await.unwrap();
    assert!(batch.messages.is_empty(), "not delivered a fourth time");
    assert_eq!(batch.dead_lettered.len(), 1);
    let dlq = q.dead_letters(10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].body, "poison");
    assert!(dlq[0].reason.contains("max_receives"), "{}", dlq[0].reason);
    assert_eq!(q.depth().await.unwrap().dead_lettered, 1);
}

/// A message received `max_receives` times is not handed out again even by a receive that
/// comes back full of other messages (the embedded queue dead-letters such messages when a
/// receive comes up short, or once a second, rather than on every receive).
async fn exhausted_message_stays_out_of_full_receives(q: Arc<dyn Queue>) {
    q.send(vec![msg("poison")]).await.unwrap();
    for n in 1..=MAX_RECEIVES {
        let m = q.receive(req(1, 3000, 50)).await.unwrap().messages;
        assert_eq!((m.len(), m[0].receive_count), (1, n), "receive {n}");
    }
    q.send((0..3).map(|i| msg(&format!("fresh{i}"))).collect()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fresh = Vec::new();
    while fresh.len() < 3 {
        let batch = q.receive(req(3 - fresh.len(), 3000, 60_000)).await.unwrap().messages;
        assert!(!batch.is_empty(), "the fresh messages arrive");
        assert!(batch.iter().all(|m| m.body != "poison"), "the exhausted message was handed out again");
        fresh.extend(batch.into_iter().map(|m| m.body));
    }
    // A receive that comes up short: by now the exhausted message is a dead letter.
    assert!(q.receive(req(10, 200, 60_000)).await.unwrap().messages.is_empty());
    let dlq = q.dead_letters(10).await.unwrap();
    assert_eq!(dlq.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(), ["poison"]);
}

async fn explicit_dead_letter_keeps_the_reason(q: Arc<dyn Queue>) {
    q.send(vec![msg("bad")]).await.unwrap();
    let m = q.receive(req(1, 0, 5000)).await.unwrap().messages.remove(0);
    assert!(q.dead_letter(&m, "unreadable message: not JSON").await.unwrap());
    let dlq = q.dead_letters(10).await.unwrap();
    assert_eq!((dlq.len(), dlq[0].reason.as_str()), (1, "unreadable message: not JSON"));
    assert_eq!(dlq[0].body, "bad");
    assert_eq!(dlq[0].receive_count, 1);
    let deleted = q.delete(&m.receipt).await.unwrap();
    assert!(!deleted || !q.detects_stale_deletes(), "a dead letter is no longer deletable from the queue");
    assert!(q.receive(req(1, 1000, 100)).await.unwrap().messages.is_empty(), "not on the queue any more");
    assert_eq!(q.dead_letters(10).await.unwrap().len(), 1, "listing leaves dead letters in place");
}

async fn delayed_message_is_invisible_until_its_delay(q: Arc<dyn Queue>) {
    let started = Instant::now();
    q.send(vec![Outgoing { delay: Duration::from_millis(400), ..Outgoing::new("later", None) }]).await.unwrap();
    assert_eq!(q.depth().await.unwrap().delayed, 1);
    assert!(q.receive(req(1, 0, 1000)).await.unwrap().messages.is_empty());
    let m = q.receive(req(1, 3000, 1000)).await.unwrap().messages;
    assert_eq!(m.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

/// The depth sampler's figures: visible, in flight (received, not deleted), delayed and
/// dead-lettered messages, each counted in its own state only.
async fn depth_counts_each_state(q: Arc<dyn Queue>) {
    q.send(["a", "b", "c", "d"].iter().map(|b| msg(b)).collect()).await.unwrap();
    q.send(vec![Outgoing { delay: Duration::from_secs(30), ..Outgoing::new("later", None) }]).await.unwrap();
    let taken = q.receive(req(2, 2000, 60_000)).await.unwrap().messages;
    assert_eq!(taken.len(), 2);
    assert!(q.dead_letter(&taken[1], "from the test").await.unwrap());
    let d = q.depth().await.unwrap();
    assert_eq!((d.visible, d.in_flight, d.delayed, d.dead_lettered), (2, 1, 1, 1), "{d:?}");
    assert!(d.oldest_age_secs.is_none_or(|age| age < 60), "{d:?}");
}

async fn change_visibility_reschedules(q: Arc<dyn Queue>) {
    q.send(vec![msg("c")]).await.unwrap();
    let m = q.receive(req(1, 0, 60_000)).await.unwrap().messages.remove(0);
    assert_eq!(q.depth().await.unwrap().in_flight, 1);
    assert!(q.change_visibility(&[(m.receipt.clone(), Duration::ZERO)]).await.unwrap()[0]);
    let again = q.receive(req(1, 1000, 60_000)).await.unwrap().messages;
    assert_eq!(again.len(), 1, "visible at once after a zero visibility change");
}

/// A message released (visible again) is out of flight: its old receipt cannot hide it
/// again. SQS answers such a change with MessageNotInflight, or accepts it and does
/// nothing; either way the message stays visible.
async fn a_released_message_is_not_hidden_again_by_its_old_receipt(q: Arc<dyn Queue>) {
    q.send(vec![msg("r")]).await.unwrap();
    let m = q.receive(req(1, 0, 60_000)).await.unwrap().messages.remove(0);
    assert!(q.change_visibility(&[(m.receipt.clone(), Duration::ZERO)]).await.unwrap()[0]);
    let late = q.change_visibility(&[(m.receipt.clone(), Duration::from_secs(60))]).await;
    let again = q.receive(req(1, 1000, 60_000)).await.unwrap().messages;
    assert_eq!(again.len(), 1, "still visible after a change through the old receipt ({late:?})");
}

async fn receive_honours_max_and_order(q: Arc<dyn Queue>) {
    q.send((0..25).map(|i| msg(&format!("m{i}"))).collect()).await.unwrap();
    let a = q.receive(req(10, 0, 60_000)).await.unwrap().messages;
    assert_eq!(a.len(), 10);
    // Standard SQS queues do not promise order (FIFO queues do: see the FIFO checks).
    if q.backend() == "embedded" {
        assert_eq!(a[0].body, "m0");
    }
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
        Outgoing::new("a1", Some("a".into())),
        Outgoing::new("b1", Some("b".into())),
        Outgoing::new("none", None),
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

/// A message of the daemon's, for connection (group) `connection`; its body is the
/// envelope, which names the connection.
fn envelope_for(source_id: &str, connection: &str) -> Outgoing {
    use erpsync::domain::{ConnectionId, ItemId, JobId, Op};
    erpsync::queue::Envelope::by_ref(
        JobId::new(),
        ItemId::new(),
        ConnectionId::new(connection),
        Op::ExportInvoice,
        source_id,
    )
    .outgoing()
}

async fn redrive_moves_dead_letters_back(q: Arc<dyn Queue>) {
    let (x, y) = (envelope_for("x", "g1"), envelope_for("y", "g1"));
    let (xb, yb) = (x.body.clone(), y.body.clone());
    q.send(vec![x, y]).await.unwrap();
    // One at a time: on a FIFO queue the group is held while a message is in flight.
    for _ in 0..2 {
        let got = q.receive(req(1, 3000, 60_000)).await.unwrap().messages;
        assert_eq!(got.len(), 1);
        let which = if got[0].body == xb { "x" } else { "y" };
        assert!(q.dead_letter(&got[0], &format!("reason {which}")).await.unwrap());
    }
    let dlq = q.dead_letters(10).await.unwrap();
    assert_eq!(dlq.len(), 2);
    let x = dlq.iter().find(|d| d.body == xb).unwrap();
    assert_eq!(x.reason, "reason x");
    assert_eq!(q.redrive(std::slice::from_ref(&x.message_id)).await.unwrap(), 1);
    let left = q.dead_letters(10).await.unwrap();
    assert_eq!(left.iter().map(|d| &d.body).collect::<Vec<_>>(), [&yb]);
    let back = q.receive(req(10, 3000, 60_000)).await.unwrap().messages;
    assert_eq!(back.len(), 1);
    assert_eq!((&back[0].body, back[0].receive_count), (&xb, 1), "a fresh receive count");
    assert_eq!(back[0].group.as_deref(), Some("g1"), "the group survives the round trip");
}

/// SQS refuses some entries of a batch (here: characters SQS does not allow); the rest
/// are sent and the refused ones are named by their index.
async fn partial_send_names_the_failed_entries(q: Arc<dyn Queue>) {
    let err = q.send(vec![msg("ok0"), msg("bad\u{0}"), msg("ok2")]).await.unwrap_err();
    match &err {
        QueueError::PartialSend { failed, message } => {
            assert_eq!(failed, &[1]);
            assert!(message.contains("InvalidMessageContents"), "{message}");
        }
        other => panic!("expected a partial send, got {other:?}"),
    }
    let mut bodies: Vec<_> =
        q.receive(req(10, 2000, 60_000)).await.unwrap().messages.into_iter().map(|m| m.body).collect();
    bodies.sort();
    assert_eq!(bodies, ["ok0", "ok2"]);
}

/// On a FIFO queue each group comes out in order, and a group is held while one of its
/// messages is in flight, whatever the other groups do.
async fn fifo_keeps_each_groups_order(q: Arc<dyn Queue>) {
    let mut out = Vec::new();
    for i in 0..6 {
        out.push(in_group(&format!("a{i}"), "a"));
        out.push(in_group(&format!("b{i}"), "b"));
    }
    q.send(out).await.unwrap();
    let first = q.receive(req(1, 2000, 60_000)).await.unwrap().messages;
    assert_eq!(first.len(), 1);
    let held = first[0].group.clone().unwrap();
    assert_eq!(first[0].body, format!("{held}0"), "each group starts at its first message");
    let other = q.receive(req(10, 2000, 60_000)).await.unwrap().messages;
    assert!(!other.is_empty(), "the other group is not held");
    assert!(other.iter().all(|m| m.group.as_deref() != Some(held.as_str())), "group {held} is held while in flight");
    for m in first.iter().chain(&other) {
        assert!(q.delete(&m.receipt).await.unwrap());
    }
    let mut seen: Vec<String> = first.iter().chain(&other).map(|m| m.body.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 12 && Instant::now() < deadline {
        for m in q.receive(req(10, 1000, 60_000)).await.unwrap().messages {
            seen.push(m.body.clone());
            assert!(q.delete(&m.receipt).await.unwrap());
        }
    }
    for g in ["a", "b"] {
        let order: Vec<_> = seen.iter().filter(|b| b.starts_with(g)).cloned().collect();
        let expected: Vec<_> = (0..6).map(|i| format!("{g}{i}")).collect();
        assert_eq!(order, expected, "group {g} in send order");
    }
}

/// FIFO: a message sent back with a delay stays at the head of its group. Its group is held
/// until it is visible again, and then it comes first, the later ones behind it in order.
async fn fifo_returned_message_stays_first_in_its_group(q: Arc<dyn Queue>) {
    q.send((0..3).map(|i| in_group(&format!("a{i}"), "a")).collect()).await.unwrap();
    let first = q.receive(req(1, 2000, 60_000)).await.unwrap().messages;
    assert_eq!(first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["a0"]);
    assert!(q.change_visibility(&[(first[0].receipt.clone(), Duration::from_millis(500))]).await.unwrap()[0]);
    assert!(q.receive(req(10, 0, 60_000)).await.unwrap().messages.is_empty(), "the group is held while a0 waits");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 3 && Instant::now() < deadline {
        for m in q.receive(req(10, 2000, 60_000)).await.unwrap().messages {
            if m.body == "a0" {
                assert_eq!(m.receive_count, 2, "a0 is received a second time");
            }
            seen.push(m.body.clone());
            assert!(q.delete(&m.receipt).await.unwrap());
        }
    }
    assert_eq!(seen, ["a0", "a1", "a2"], "a0 first again, then the rest in order");
}

/// FIFO deduplication: the same deduplication id (the item id) within five minutes is
/// one message, so the outbox re-sending an item does not queue it twice.
async fn fifo_deduplicates_by_id(q: Arc<dyn Queue>) {
    q.send(vec![in_group("item-1", "a")]).await.unwrap();
    q.send(vec![in_group("item-1", "a")]).await.unwrap();
    let got = q.receive(req(10, 2000, 60_000)).await.unwrap().messages;
    assert_eq!(got.len(), 1);
    assert!(q.delete(&got[0].receipt).await.unwrap());
    assert!(q.receive(req(10, 1000, 60_000)).await.unwrap().messages.is_empty());
}

macro_rules! conformance {
    ($module:ident, $make:ident: $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (q, _keep) = super::$make().await;
                    super::$name(q).await;
                }
            )*
        }
    };
}

/// The checks every backend with faithful standard-queue semantics passes (the embedded
/// queue on either database, and fauxqs), plus the `extra` ones given.
macro_rules! standard_conformance {
    ($module:ident, $make:ident $(, $extra:ident)* $(,)?) => {
        conformance!($module, $make:
            undeleted_message_reappears_after_visibility_timeout,
            stale_receipt_cannot_delete_a_redelivered_message,
            dead_letters_after_max_receives_with_reason,
            exhausted_message_stays_out_of_full_receives,
            depth_counts_each_state,
            explicit_dead_letter_keeps_the_reason,
            delayed_message_is_invisible_until_its_delay,
            change_visibility_reschedules,
            a_released_message_is_not_hidden_again_by_its_old_receipt,
            receive_honours_max_and_order,
            long_poll_wakes_on_send,
            group_filters,
            redrive_moves_dead_letters_back,
            $($extra,)*
        );
    };
}

standard_conformance!(embedded_sqlite, embedded);

standard_conformance!(embedded_postgres, embedded_postgres);

/// Several receivers on one PostgreSQL queue: no message is handed to two of them while
/// its visibility lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_receivers_never_share_a_message() {
    let url = common::fresh_postgres().await;
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

standard_conformance!(sqs_fauxqs, sqs_fauxqs, partial_send_names_the_failed_entries);

// The embedded queue in FIFO mode does not deduplicate (the daemon's ledger makes a
// message sent twice harmless, and only the outbox ever sends one twice).
conformance!(embedded_sqlite_fifo, embedded_fifo:
    undeleted_message_reappears_after_visibility_timeout,
    dead_letters_after_max_receives_with_reason,
    fifo_keeps_each_groups_order,
    fifo_returned_message_stays_first_in_its_group,
);

conformance!(embedded_postgres_fifo, embedded_postgres_fifo:
    fifo_keeps_each_groups_order,
    fifo_returned_message_stays_first_in_its_group,
);

conformance!(sqs_fauxqs_fifo, sqs_fauxqs_fifo:
    undeleted_message_reappears_after_visibility_timeout,
    fifo_returned_message_stays_first_in_its_group,
    dead_letters_after_max_receives_with_reason,
    explicit_dead_letter_keeps_the_reason,
    redrive_moves_dead_letters_back,
    fifo_keeps_each_groups_order,
    fifo_deduplicates_by_id,
);

// moto deletes a message even with a stale receipt handle, accepts any characters and
// lets an old receipt hide a released message again (AWS does not), so the checks of
// those behaviours run on fauxqs only. The daemon does not depend on the last: at a
// stop it releases messages only after every earlier visibility change has landed.
conformance!(sqs_moto, sqs_moto:
    undeleted_message_reappears_after_visibility_timeout,
    dead_letters_after_max_receives_with_reason,
    explicit_dead_letter_keeps_the_reason,
    change_visibility_reschedules,
    delayed_message_is_invisible_until_its_delay,
    redrive_moves_dead_letters_back,
);

conformance!(sqs_moto_fifo, sqs_moto_fifo:
    fifo_keeps_each_groups_order,
    fifo_deduplicates_by_id,
);

/// One IAM request to a moto_server still in its first unauthenticated requests: form
/// parameters, a made-up signature naming IAM (moto routes by the credential scope).
async fn iam(endpoint: &str, params: &[(&str, &str)]) -> String {
    let date = chrono::Utc::now().format("%Y%m%d");
    let mut encoder = reqwest::Url::parse("http://form/").unwrap();
    encoder.query_pairs_mut().extend_pairs(params).append_pair("Version", "2010-05-08");
    let form = encoder.query().unwrap().to_owned();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=bootstrap/{date}/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0"
    );
    let resp = reqwest::Client::new()
        .post(endpoint)
        .header("authorization", auth)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("moto_server answers");
    let (status, body) = (resp.status(), resp.text().await.unwrap());
    assert!(status.is_success(), "IAM {params:?}: {status} {body}");
    body
}

/// The text of `<tag>…</tag>` in an XML answer.
fn xml_field(xml: &str, tag: &str) -> String {
    let start = xml.find(&format!("<{tag}>")).unwrap_or_else(|| panic!("no <{tag}> in {xml}")) + tag.len() + 2;
    xml[start..].split(&format!("</{tag}>")).next().unwrap().to_owned()
}

/// The emulators accept any signature, so the SQS calls this daemon signs itself (the hot
/// ones, `queue::sqs::wire`) are checked against a moto_server that verifies SigV4
/// against its IAM users: a user allowed `sqs:*` is created, and with its key every call
/// succeeds — send (two SendMessageBatch calls), receive, change visibility, delete —
/// while the same calls with a wrong secret are refused as SQS refuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_accepts_the_signature_of_every_call_and_refuses_a_wrong_secret() {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let endpoint = common::moto_auth_endpoint();
    // The four requests moto takes without checking.
    iam(&endpoint, &[("Action", "CreateUser"), ("UserName", "erpsync")]).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:*","Resource":"*"}]}"#;
    let created =
        iam(&endpoint, &[("Action", "CreatePolicy"), ("PolicyName", "sqs-all"), ("PolicyDocument", policy)]).await;
    let arn = xml_field(&created, "Arn");
    iam(&endpoint, &[("Action", "AttachUserPolicy"), ("UserName", "erpsync"), ("PolicyArn", &arn)]).await;
    let key = iam(&endpoint, &[("Action", "CreateAccessKey"), ("UserName", "erpsync")]).await;
    let (key_id, secret) = (xml_field(&key, "AccessKeyId"), xml_field(&key, "SecretAccessKey"));

    let clients = async |secret: &str| {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(&key_id, secret, None, None, "test")))
            .build();
        admin::clients_from(&config).await.expect("clients are built")
    };
    let cfg = QueueConfig {
        backend: QueueBackend::Sqs,
        name: Some("signed".into()),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.clone()),
        ..QueueConfig::default()
    };
    let signed = clients(&secret).await;
    let (url, dlq) = admin::create_queues(&signed.sdk, &cfg).await.expect("queues are created with the user's key");
    let queue = SqsQueue::new(signed, url.clone(), dlq.clone(), MAX_RECEIVES, 4);
    let messages = (0..15).map(|i| Outgoing::new(format!("m{i}"), Some("acme".into()))).collect();
    queue.send(messages).await.expect("SendMessageBatch is accepted");
    let request = || ReceiveRequest {
        max_messages: 10,
        wait: Duration::from_secs(1),
        visibility: Duration::from_secs(30),
        groups: GroupFilter::Any,
    };
    let got = queue.receive(request()).await.expect("ReceiveMessage is accepted").messages;
    assert!(!got.is_empty(), "messages were received");
    let back = queue.change_visibility(&[(got[0].receipt.clone(), Duration::ZERO)]).await.unwrap();
    assert_eq!(back, [true], "ChangeMessageVisibilityBatch is accepted");
    assert!(queue.delete(&got[1].receipt).await.expect("DeleteMessageBatch is accepted"));

    let forged = SqsQueue::new(clients("not-the-secret").await, url, dlq, MAX_RECEIVES, 4);
    let err = forged.send(vec![Outgoing::new("x", None)]).await.expect_err("a wrong secret is refused");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
    let err = forged.receive(request()).await.expect_err("a wrong secret is refused");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
}
