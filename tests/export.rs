//! End to end: the daemon in-process, real sandbox ERPs over HTTP, a real SQLite file, and
//! each queue backend — the embedded queue, and SQS as served by fauxqs (started by
//! `scripts/test.sh`; without it the SQS variants fail, saying how to start it).

mod common;

use erpsync::domain::ItemState;
use erpsync::erp::sandbox::SandboxOptions;
use erpsync::rig::{Rig, RigQueue, RigSpec, count};
use erpsync::samples;
use std::time::Duration;

async fn exports_600_invoices_within_each_connections_limit(db: Option<String>, queue: RigQueue) {
    let rig = Rig::start(RigSpec {
        database_url: db.clone(),
        queue: queue.clone(),
        limits: vec![1, 4, 10],
        // Calls long enough to overlap, so every limit is reached even on a loaded machine.
        sandbox: SandboxOptions { latency_ms: 15, jitter_ms: 10, ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    let all = samples::invoices("e2e", 600);
    for (i, chunk) in all.chunks(200).enumerate() {
        rig.submit(i, chunk).await.unwrap();
    }
    let counts = rig.wait_terminal(Duration::from_secs(120)).await.expect("all items terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 600, "{counts:?}");
    for (erp, stats) in rig.erps.iter().zip(rig.stats()) {
        assert_eq!(stats.max_concurrent_seen, erp.limit as u64, "{}: {stats:?}", erp.connection);
        assert_eq!(stats.duplicate_creates, 0, "{stats:?}");
        assert_eq!(stats.throttled, 0, "{stats:?}");
        assert_eq!(stats.creates, 200, "{stats:?}");
        assert_eq!(stats.attachments, 200, "{stats:?}");
    }
    // On SQS the limit-1 connection's messages are returned to the queue while it is
    // saturated; those receives are not attempts.
    let db = &rig.daemon().ctx().db;
    let row = sea_orm::ConnectionTrait::query_one_raw(
        db,
        sea_orm::Statement::from_string(
            sea_orm::ConnectionTrait::get_database_backend(db),
            "SELECT MIN(attempts), MAX(attempts) FROM job_items",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let (min, max): (i32, i32) = (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
    assert_eq!((min, max), (1, 1), "every item took exactly one attempt");
    rig.shutdown().await;
}

fn tune_fast_retries(visibility_secs: u32, timeout_ms: u32) -> Box<dyn Fn(&mut erpsync::config::Config) + Send> {
    Box::new(move |c| {
        c.queue.visibility_timeout_secs = std::num::NonZeroU32::new(visibility_secs).unwrap();
        c.retry.base_delay_ms = std::num::NonZeroU32::new(50).unwrap();
        c.retry.max_delay_secs = std::num::NonZeroU32::new(1).unwrap();
        c.retry.max_attempts = std::num::NonZeroU32::new(30).unwrap();
        for conn in &mut c.connections {
            conn.request_timeout_ms = std::num::NonZeroU32::new(timeout_ms).unwrap();
        }
    })
}

async fn faults_and_timeouts_after_commit_create_nothing_twice(db: Option<String>, queue: RigQueue) {
    // The sandbox forgets idempotency keys at once, so only erpsync's ledger and its
    // lookups after ambiguous failures stand between a timeout and a duplicate.
    let rig = Rig::start(RigSpec {
        database_url: db.clone(),
        queue: queue.clone(),
        limits: vec![1, 4, 10],
        sandbox: SandboxOptions {
            latency_ms: 5,
            jitter_ms: 5,
            fault_rate: 0.2,
            timeout_rate: 0.05,
            stall_ms: 1500,
            idempotency_ttl_secs: 0,
            ..Default::default()
        },
        tune: tune_fast_retries(10, 400),
        ..Default::default()
    })
    .await
    .unwrap();
    let all = samples::invoices("faults", 600);
    for (i, chunk) in all.chunks(200).enumerate() {
        rig.submit(i, chunk).await.unwrap();
    }
    let counts = rig.wait_terminal(Duration::from_secs(240)).await.expect("all items terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 600, "{counts:?}");
    let stats = rig.stats();
    assert!(stats.iter().map(|s| s.faults).sum::<u64>() > 50, "faults were injected: {stats:?}");
    assert!(stats.iter().map(|s| s.stalls).sum::<u64>() > 5, "timeouts after commit happened: {stats:?}");
    for s in &stats {
        assert_eq!(s.duplicate_creates, 0, "{s:?}");
        assert_eq!(s.creates, 200, "every invoice created exactly once: {s:?}");
    }
    rig.shutdown().await;
}

async fn a_panicking_stage_is_restarted_and_the_item_succeeds_on_retry(db: Option<String>, queue: RigQueue) {
    let options = erpsync::daemon::StartOptions::default();
    let docs = samples::invoices("panic", 20);
    options.faults.panic_on("renderer", &docs[7].source_id, 1);
    let rig = Rig::start(RigSpec {
        database_url: db.clone(),
        queue: queue.clone(),
        limits: vec![4],
        sandbox: SandboxOptions { latency_ms: 2, ..Default::default() },
        tune: tune_fast_retries(10, 5000),
        options,
        ..Default::default()
    })
    .await
    .unwrap();
    let job = rig.submit(0, &docs).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("all items terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 20, "{counts:?}");
    let summary = erpsync::store::job_summary(&rig.daemon().ctx().db, &job).await.unwrap().unwrap();
    let item = summary.items.iter().find(|i| i.source_id == docs[7].source_id).unwrap();
    assert_eq!(item.attempts, 2, "the panicking document succeeded on its second attempt");
    let metrics =
        reqwest::get(format!("http://{}/metrics", rig.daemon().http_addr())).await.unwrap().text().await.unwrap();
    let restarts = metrics
        .lines()
        .find(|l| l.starts_with("erpsync_actor_restarts_total{actor=\"renderer\"}"))
        .unwrap_or_else(|| panic!("no renderer restart in /metrics:\n{metrics}"));
    // Exactly 1 when the test has its process to itself (nextest); other tests in the
    // same process may add theirs under `cargo test`.
    let n: f64 = restarts.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{restarts}");
    assert_eq!(rig.stats()[0].duplicate_creates, 0);
    rig.shutdown().await;
}

async fn malformed_messages_are_dead_lettered_with_reasons_and_the_rest_succeed(db: Option<String>, queue: RigQueue) {
    use erpsync::queue::Outgoing;
    let rig = Rig::start(RigSpec {
        database_url: db.clone(),
        queue: queue.clone(),
        limits: vec![4],
        sandbox: SandboxOptions { latency_ms: 2, ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    let conn = rig.erps[0].connection.to_string();
    let template = serde_json::json!({
        "v": 1, "job_id": uuid::Uuid::now_v7(), "item_id": uuid::Uuid::now_v7(),
        "connection_id": conn, "op": "export_invoice", "payload": {"source_id": "x"}
    });
    let with = |k: &str, v: serde_json::Value| {
        let mut t = template.clone();
        t[k] = v;
        t.to_string()
    };
    let without = |k: &str| {
        let mut t = template.clone();
        t.as_object_mut().unwrap().remove(k);
        t.to_string()
    };
    // (body, a fragment the dead-letter reason must contain)
    let kinds: Vec<(String, &str)> = vec![
        ("{not json".into(), "not JSON"),
        ("[1,2,3]".into(), "not a JSON object"),
        (without("v"), "no version"),
        (with("v", 2.into()), "unsupported envelope version 2"),
        (without("item_id"), "\"item_id\" is invalid"),
        (with("job_id", "nope".into()), "\"job_id\" is invalid"),
        (with("op", "export_unicorn".into()), "\"op\" is invalid"),
        (with("connection_id", "no-such-erp".into()), "unknown connection"),
        (without("payload"), "neither \"payload\" nor \"payload_ref\""),
        (format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat(300 * 1024)), "over the"),
    ];
    let mut bad = Vec::new();
    for i in 0..50 {
        let (body, _) = &kinds[i % kinds.len()];
        // Half carry the connection's group, half none: both paths must dead-letter.
        let group = (i % 2 == 0).then(|| conn.clone());
        bad.push(Outgoing::new(body.clone(), group));
    }
    let docs = samples::invoices("amid-bad", 40);
    rig.submit(0, &docs[..20]).await.unwrap();
    rig.daemon().ctx().queue.send(bad).await.unwrap();
    rig.submit(0, &docs[20..]).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("items terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 40, "{counts:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = rig.daemon().ctx().queue.dead_letters(100).await.unwrap();
        if dead.len() >= 50 || std::time::Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dead.len(), 50, "{dead:#?}");
    for (body, fragment) in &kinds {
        let d = dead.iter().find(|d| &d.body == body).expect("each kind dead-lettered");
        assert!(d.reason.contains(fragment), "reason {:?} should mention {fragment:?}", d.reason);
        assert_eq!(d.receive_count, 1, "dead-lettered on first sight, never looped on");
    }
    assert_eq!(rig.daemon().ctx().queue.depth().await.unwrap().visible, 0);
    rig.shutdown().await;
}

async fn a_killed_daemon_restarted_on_the_same_database_finishes_everything_once(db: Option<String>, queue: RigQueue) {
    let mut rig = Rig::start(RigSpec {
        database_url: db.clone(),
        queue: queue.clone(),
        limits: vec![2, 4],
        sandbox: SandboxOptions { latency_ms: 20, jitter_ms: 10, idempotency_ttl_secs: 0, ..Default::default() },
        tune: tune_fast_retries(2, 5000),
        ..Default::default()
    })
    .await
    .unwrap();
    let docs = samples::invoices("crash", 300);
    rig.submit(0, &docs[..150]).await.unwrap();
    rig.submit(1, &docs[150..]).await.unwrap();
    // Kill once real progress is made, with calls in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&rig.counts().await, ItemState::Succeeded) < 60 {
        assert!(std::time::Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = rig.stats();
    rig.daemon.take().unwrap().kill().await;
    assert!(before.iter().map(|s| s.creates).sum::<u64>() < 300, "killed mid-run");
    rig.restart(Default::default()).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(120)).await.expect("all items terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 300, "{counts:?}");
    for (erp, s) in rig.erps.iter().zip(rig.stats()) {
        assert_eq!(s.duplicate_creates, 0, "{s:?}");
        assert_eq!(s.creates, 150, "{s:?}");
        assert!(s.max_concurrent_seen <= erp.limit as u64, "{s:?}");
    }
    // Exactly one terminal event per item in its timeline.
    let db = &rig.daemon().ctx().db;
    let rows = sea_orm::ConnectionTrait::query_all_raw(
        db,
        sea_orm::Statement::from_string(
            sea_orm::ConnectionTrait::get_database_backend(db),
            "SELECT item_id, COUNT(*) FROM item_events \
             WHERE state IN ('succeeded', 'failed', 'dead_lettered') GROUP BY item_id HAVING COUNT(*) <> 1",
        ),
    )
    .await
    .unwrap();
    assert!(rows.is_empty(), "{} items with more than one terminal event", rows.len());
    rig.shutdown().await;
}

async fn permanent_errors_fail_the_item_with_the_erps_reason(db: Option<String>, queue: RigQueue) {
    let rig = Rig::start(RigSpec {
        database_url: db.clone(),
        queue: queue.clone(),
        limits: vec![2],
        sandbox: SandboxOptions { latency_ms: 2, ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    let mut docs = samples::invoices("perm", 3);
    docs[0].vendor.id = "V-INACTIVE".into();
    docs[1].lines[0].amount += rust_decimal::Decimal::ONE;
    let job = rig.submit(0, &docs).await.unwrap();
    rig.wait_terminal(Duration::from_secs(30)).await.expect("terminal");
    let s = erpsync::store::job_summary(&rig.daemon().ctx().db, &job).await.unwrap().unwrap();
    let e0 = s.items[0].error.as_ref().unwrap();
    assert_eq!(
        (s.items[0].state, e0.kind.as_str(), e0.code.as_deref()),
        (ItemState::Failed, "rejected", Some("vendor_inactive"))
    );
    assert_eq!(s.items[0].attempts, 1, "permanent errors are not retried");
    let e1 = s.items[1].error.as_ref().unwrap();
    assert_eq!((s.items[1].state, e1.kind.as_str()), (ItemState::Failed, "validation"));
    assert!(e1.message.contains("lines[0].amount"), "{}", e1.message);
    assert_eq!(s.items[2].state, ItemState::Succeeded);
    assert_eq!(rig.stats()[0].creates, 1);
    rig.shutdown().await;
}

async fn a_graceful_stop_drains_and_returns_the_rest_losing_nothing(db: Option<String>, queue: RigQueue) {
    let mut rig = Rig::start(RigSpec {
        database_url: db.clone(),
        queue: queue.clone(),
        limits: vec![2],
        sandbox: SandboxOptions { latency_ms: 30, idempotency_ttl_secs: 0, ..Default::default() },
        tune: Box::new(|c| {
            c.shutdown.drain_timeout_secs = 0;
            c.queue.visibility_timeout_secs = std::num::NonZeroU32::new(60).unwrap();
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let docs = samples::invoices("drain", 60);
    rig.submit(0, &docs).await.unwrap();
    while count(&rig.counts().await, ItemState::Succeeded) < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A zero drain timeout abandons the in-flight items at once; their messages must be
    // visible again immediately (not after the 60 s visibility timeout).
    rig.daemon.take().unwrap().shutdown().await;
    rig.restart(Default::default()).await.unwrap();
    let counts =
        rig.wait_terminal(Duration::from_secs(30)).await.expect("all terminal well before the visibility timeout");
    assert_eq!(count(&counts, ItemState::Succeeded), 60, "{counts:?}");
    let s = &rig.stats()[0];
    assert_eq!((s.creates, s.duplicate_creates), (60, 0), "{s:?}");
    rig.shutdown().await;
}

async fn attempts_the_erp_throttled_do_not_use_up_the_retry_budget(db: Option<String>, queue: RigQueue) {
    // The ERP takes one call at a time, but the connection is configured for four (another
    // client shares the ERP's quota, say): most calls are answered 429 with Retry-After.
    // With retry.max_attempts = 1, any attempt that counted would dead-letter its item.
    let rig = Rig::start(RigSpec {
        database_url: db,
        queue,
        limits: vec![1],
        sandbox: SandboxOptions { latency_ms: 50, ..Default::default() },
        tune: Box::new(|c| {
            c.connections[0].max_concurrency = std::num::NonZeroU32::new(4);
            c.retry.max_attempts = std::num::NonZeroU32::new(1).unwrap();
            c.retry.base_delay_ms = std::num::NonZeroU32::new(50).unwrap();
            c.retry.max_delay_secs = std::num::NonZeroU32::new(1).unwrap();
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let docs = samples::invoices("throttled", 6);
    let job = rig.submit(0, &docs).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("all items terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 6, "{counts:?}");
    let s = &rig.stats()[0];
    assert!(s.throttled >= 3, "the ERP throttled several calls: {s:?}");
    assert_eq!((s.creates, s.duplicate_creates), (6, 0), "{s:?}");
    // Each item took one attempt that counted, after as many as the ERP throttled, and the
    // job's status says so.
    let summary = erpsync::store::job_summary(&rig.daemon().ctx().db, &job).await.unwrap().unwrap();
    for item in &summary.items {
        assert_eq!(item.attempts, item.throttled + 1, "{item:?}");
    }
    let throttled: i32 = summary.items.iter().map(|i| i.throttled).sum();
    assert_eq!(throttled as u64, s.throttled, "every throttled call is counted on its item: {summary:?}");
    rig.shutdown().await;
}

fn fauxqs() -> RigQueue {
    RigQueue::Sqs { endpoint_url: common::fauxqs_endpoint(), fifo: false }
}

/// Every scenario above runs on SQLite and on PostgreSQL with the embedded queue, and on
/// SQS (fauxqs) with SQLite.
macro_rules! backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(None, erpsync::rig::RigQueue::Embedded).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Some(crate::common::fresh_postgres().await), erpsync::rig::RigQueue::Embedded).await;
                }
            )*
        }
        mod sqs_fauxqs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(None, super::fauxqs()).await;
                }
            )*
        }
    };
}

backends!(
    exports_600_invoices_within_each_connections_limit,
    faults_and_timeouts_after_commit_create_nothing_twice,
    a_panicking_stage_is_restarted_and_the_item_succeeds_on_retry,
    malformed_messages_are_dead_lettered_with_reasons_and_the_rest_succeed,
    a_killed_daemon_restarted_on_the_same_database_finishes_everything_once,
    permanent_errors_fail_the_item_with_the_erps_reason,
    a_graceful_stop_drains_and_returns_the_rest_losing_nothing,
    attempts_the_erp_throttled_do_not_use_up_the_retry_budget,
);

/// A payment for `invoices` (one vendor), its remittance naming each in full; the
/// numbers are written the way a payer might (lower case, spaces) to go through the
/// matcher's normalisation.
fn payment_for(source_id: &str, invoices: &[&erpsync::domain::Invoice]) -> erpsync::domain::Payment {
    use erpsync::domain::{Payment, PaymentApplication};
    let applications: Vec<PaymentApplication> = invoices
        .iter()
        .map(|i| PaymentApplication { invoice_number: i.number.to_lowercase().replace('-', " "), amount: i.total })
        .collect();
    Payment {
        source_id: source_id.into(),
        vendor: invoices[0].vendor.clone(),
        amount: applications.iter().map(|a| a.amount).sum(),
        currency: invoices[0].currency.clone(),
        date: invoices[0].due_date,
        method: "ach".into(),
        applications,
        reference: None,
        bank_account: Some("1010".into()),
    }
}

/// The bill ids and amounts the sandbox was sent for a payment, sorted by bill id.
async fn applied_to(rig: &Rig, payment: &str) -> Vec<(String, String)> {
    let bodies = rig.erps[0].sandbox.bodies_for("bill-payments", payment).await;
    assert_eq!(bodies.len(), 1, "one payment created for {payment}: {bodies:?}");
    let mut applied: Vec<(String, String)> = bodies[0]["applied_to"]
        .as_array()
        .expect("applied_to is a list")
        .iter()
        .map(|a| (a["bill_id"].as_str().unwrap().to_owned(), a["amount"].as_str().unwrap().to_owned()))
        .collect();
    applied.sort();
    applied
}

/// A daemon with a fast sandbox ERP, and `n` invoices of one vendor for payments to pay.
async fn payments_rig(tag: &str, n: usize) -> (Rig, Vec<erpsync::domain::Invoice>) {
    let rig = Rig::start(RigSpec {
        limits: vec![4],
        sandbox: SandboxOptions { latency_ms: 2, ..Default::default() },
        tune: tune_fast_retries(10, 5000),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut invoices = samples::invoices(tag, n);
    for inv in &mut invoices {
        inv.vendor = invoices_vendor();
    }
    (rig, invoices)
}

async fn bill_id(rig: &Rig, invoice: &erpsync::domain::Invoice) -> String {
    let ids = rig.erps[0].sandbox.created_for("bills", &invoice.source_id).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_apply_to_exported_bills_and_wait_for_bills_not_exported_yet() {
    use erpsync::domain::Op;
    let (rig, invoices) = payments_rig("pay", 4).await;
    rig.submit(0, &invoices[..3]).await.unwrap();
    rig.wait_terminal(Duration::from_secs(30)).await.expect("invoices exported");

    // Paying two exported bills: the payment names their ERP ids.
    let paid = payment_for("pay-p1", &[&invoices[0], &invoices[2]]);
    let job = rig.submit_op(0, Op::ExportPayment, &[paid]).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(30)).await.expect("payment terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 4, "{counts:?}");
    let mut expected = vec![
        (bill_id(&rig, &invoices[0]).await, invoices[0].total.to_string()),
        (bill_id(&rig, &invoices[2]).await, invoices[2].total.to_string()),
    ];
    expected.sort();
    assert_eq!(applied_to(&rig, "pay-p1").await, expected);
    let s = erpsync::store::job_summary(&rig.daemon().ctx().db, &job).await.unwrap().unwrap();
    assert!(s.items[0].erp_id.is_some());

    // Paying an exported bill and one not exported yet: the payment waits, saying which.
    let waiting = payment_for("pay-p2", &[&invoices[1], &invoices[3]]);
    let job = rig.submit_op(0, Op::ExportPayment, &[waiting]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let item = loop {
        let s = erpsync::store::job_summary(&rig.daemon().ctx().db, &job).await.unwrap().unwrap();
        let item = s.items[0].clone();
        if item.state == ItemState::Retrying && item.attempts >= 2 {
            break item;
        }
        assert!(item.state == ItemState::Queued || !item.state.is_terminal(), "must not give up: {item:?}");
        assert!(std::time::Instant::now() < deadline, "payment never waited: {item:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let e = item.error.expect("a waiting payment says why");
    assert_eq!(e.kind.as_str(), "bill_not_exported", "{e:?}");
    let named = invoices[3].number.to_lowercase().replace('-', " ");
    assert!(e.message.contains(&named), "names the missing invoice: {}", e.message);
    assert!(!e.message.contains(&invoices[1].number.to_lowercase().replace('-', " ")), "{}", e.message);
    assert!(rig.erps[0].sandbox.bodies_for("bill-payments", "pay-p2").await.is_empty(), "nothing sent yet");

    rig.submit(0, &invoices[3..]).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("all terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 6, "{counts:?}");
    let mut expected = vec![
        (bill_id(&rig, &invoices[1]).await, invoices[1].total.to_string()),
        (bill_id(&rig, &invoices[3]).await, invoices[3].total.to_string()),
    ];
    expected.sort();
    assert_eq!(applied_to(&rig, "pay-p2").await, expected);
    assert_eq!(rig.stats()[0].duplicate_creates, 0);
    rig.shutdown().await;
}

/// Payments are matched against what their bills still have open. A bill part paid by one
/// payment and named in full by the next gets only its rest (the sandbox, like a real ERP,
/// refuses a payment beyond a bill's balance); a third naming it when nothing is left is
/// booked as credit with the vendor, not applied again and not left waiting for the bill.
/// Retention deletes an invoice's job but never the bill a payment is matched with: a
/// payment arriving after the job is gone still applies to the bill, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_after_retention_deleted_its_bills_job_still_applies_to_the_bill() {
    use erpsync::domain::Op;
    let (rig, invoices) = payments_rig("ret", 2).await;
    let bills_job = rig.submit(0, &invoices).await.unwrap();
    rig.wait_terminal(Duration::from_secs(30)).await.expect("invoices exported");
    let ctx = rig.daemon().ctx().clone();
    let retention = erpsync::config::RetentionConfig::default();
    // A cutoff just ahead of now: every ended job is older than it.
    let swept = erpsync::retention::sweep(&ctx, &retention, erpsync::util::now_ms() + 1).await.unwrap();
    assert_eq!((swept.jobs, swept.items), (1, 2), "the invoices' job and its items are deleted");
    assert!(erpsync::store::job_summary(&ctx.db, &bills_job).await.unwrap().is_none(), "the job is gone");

    let paid = payment_for("ret-p1", &[&invoices[1]]);
    rig.submit_op(0, Op::ExportPayment, &[paid]).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(30)).await.expect("payment terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 1, "{counts:?}");
    let expected = vec![(bill_id(&rig, &invoices[1]).await, invoices[1].total.to_string())];
    assert_eq!(applied_to(&rig, "ret-p1").await, expected, "the payment applied to its bill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_payment_spends_only_what_its_bills_still_have_open() {
    use erpsync::domain::Op;
    use rust_decimal::Decimal;
    let rig = Rig::start(RigSpec {
        limits: vec![4],
        sandbox: SandboxOptions { latency_ms: 2, ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    let mut inv = samples::invoice("open", 0);
    inv.vendor = invoices_vendor();
    rig.submit(0, &[inv.clone()]).await.unwrap();
    rig.wait_terminal(Duration::from_secs(30)).await.expect("invoice exported");
    let bill = bill_id(&rig, &inv).await;
    let part = (inv.total / Decimal::from(3)).round_dp(2);
    assert!(part > Decimal::ZERO && part < inv.total, "{part} of {}", inv.total);
    let mut first = payment_for("open-p1", &[&inv]);
    (first.amount, first.applications[0].amount) = (part, part);
    let second = payment_for("open-p2", &[&inv]);
    let third = payment_for("open-p3", &[&inv]);
    for (k, p) in [first, second, third].into_iter().enumerate() {
        let job = rig.submit_op(0, Op::ExportPayment, &[p]).await.unwrap();
        let expected = 2 + k as u64;
        let counts = rig.wait_terminal(Duration::from_secs(30)).await.expect("payment terminal");
        assert_eq!(count(&counts, ItemState::Succeeded), expected, "payment {}: {counts:?}", k + 1);
        let s = erpsync::store::job_summary(&rig.daemon().ctx().db, &job).await.unwrap().unwrap();
        assert_eq!(s.items[0].state, ItemState::Succeeded, "{:?}", s.items[0]);
    }
    assert_eq!(applied_to(&rig, "open-p1").await, [(bill.clone(), part.to_string())]);
    assert_eq!(applied_to(&rig, "open-p2").await, [(bill.clone(), (inv.total - part).to_string())]);
    assert_eq!(applied_to(&rig, "open-p3").await, [], "nothing left to apply");
    let third = &rig.erps[0].sandbox.bodies_for("bill-payments", "open-p3").await[0];
    assert_eq!(third["unapplied"].as_str(), Some(inv.total.to_string().as_str()), "{third}");
    let second = &rig.erps[0].sandbox.bodies_for("bill-payments", "open-p2").await[0];
    assert_eq!(second["unapplied"].as_str(), Some(part.to_string().as_str()), "{second}");
    rig.shutdown().await;
}

fn invoices_vendor() -> erpsync::domain::VendorRef {
    erpsync::domain::VendorRef { id: "V-PAY".into(), name: "Café Lumière SARL".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_the_matcher_refuses_fails_at_once_with_the_reason() {
    use erpsync::domain::Op;
    let rig = Rig::start(RigSpec {
        limits: vec![2],
        sandbox: SandboxOptions { latency_ms: 2, ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    let mut inv = samples::invoice("perr", 0);
    inv.vendor = invoices_vendor();
    rig.submit(0, &[inv.clone()]).await.unwrap();
    rig.wait_terminal(Duration::from_secs(30)).await.expect("invoice exported");
    let mut in_gbp = payment_for("perr-gbp", &[&inv]);
    in_gbp.currency = "GBP".into();
    let job = rig.submit_op(0, Op::ExportPayment, &[in_gbp]).await.unwrap();
    rig.wait_terminal(Duration::from_secs(30)).await.expect("payment terminal");
    let s = erpsync::store::job_summary(&rig.daemon().ctx().db, &job).await.unwrap().unwrap();
    let (item, e) = (&s.items[0], s.items[0].error.clone().unwrap());
    assert_eq!((item.state, item.attempts, e.kind.as_str()), (ItemState::Failed, 1, "matching"), "{e:?}");
    assert_eq!(e.code.as_deref(), Some("currency_mismatch"));
    assert!(e.message.contains(&format!("payment is in GBP but bill {} is in USD", inv.number)), "{}", e.message);
    assert!(rig.erps[0].sandbox.bodies_for("bill-payments", "perr-gbp").await.is_empty());
    rig.shutdown().await;
}

/// The same documents submitted in many jobs, to an ERP that keeps no idempotency keys:
/// each is created once. Only erpsync's own guards stand between the copies — the claim
/// that keeps two tasks of this daemon off one document, and the ledger. Copies wait for
/// the claim and take it the moment it is let go: let go before the ledger entry of the
/// first export committed (as it once was), 20–80 of the 600 created a document again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_submitted_many_times_is_created_once_by_an_erp_without_idempotency_keys() {
    let rig = rig_without_idempotency_keys().await;
    let documents = samples::invoices("copies", 10);
    let jobs = 60;
    for _ in 0..jobs {
        rig.submit(0, &documents).await.unwrap();
    }
    let counts = rig.wait_terminal(Duration::from_secs(120)).await.expect("all items terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 10 * jobs as u64, "{counts:?}");
    let s = &rig.stats()[0];
    assert_eq!((s.creates, s.duplicate_creates, s.idempotent_replays), (10, 0, 0), "{s:?}");
    rig.shutdown().await;
}

/// Messages whose `source_id` hint is wrong or missing (another producer's, or a bug):
/// the item's row decides which document is claimed. Copies of ten documents, recorded
/// directly and sent with bogus hints, each unlike the others: claimed by the hint, they
/// would all run at once and create again (the ERP keeps no idempotency keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_with_a_wrong_or_missing_document_hint_still_create_each_document_once() {
    use erpsync::queue::Envelope;
    let rig = rig_without_idempotency_keys().await;
    let ctx = rig.daemon().ctx().clone();
    let documents = samples::invoices("hints", 10);
    let mut messages = Vec::new();
    for copy in 0..30 {
        let job = rig.invoice_job(0, &documents);
        erpsync::store::insert_job(&ctx.db, &job, erpsync::store::Enqueuing::WithTheJob).await.unwrap();
        for item in &job.items {
            let mut envelope =
                Envelope::by_ref(job.id, item.id, job.connection_id.clone(), job.op, &format!("bogus-{}", item.id));
            if copy % 3 == 0 {
                envelope.source_id = None;
            }
            messages.push(envelope.outgoing());
        }
    }
    ctx.queue.send(messages).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("all items terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 300, "{counts:?}");
    let s = &rig.stats()[0];
    assert_eq!((s.creates, s.duplicate_creates), (10, 0), "{s:?}");
    rig.shutdown().await;
}

/// One connection (limit 20) to a zero-latency ERP that keeps no idempotency keys, no PDFs:
/// every create it sees is real, so its `duplicate_creates` counts erpsync's own slips.
async fn rig_without_idempotency_keys() -> Rig {
    Rig::start(RigSpec {
        limits: vec![20],
        sandbox: SandboxOptions { latency_ms: 0, idempotency_ttl_secs: 0, ..Default::default() },
        tune: Box::new(|c| {
            for conn in &mut c.connections {
                conn.attach_pdf = false;
            }
        }),
        ..Default::default()
    })
    .await
    .unwrap()
}
