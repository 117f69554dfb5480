//! SQS-only end-to-end behaviour, on fauxqs (started by `scripts/test.sh`; without it these
//! fail, saying how to start it):
//!
//! - SQS itself throttling and failing: the daemon reaches the server through a proxy that
//!   can answer every call with `RequestThrottled` (400) or `ServiceUnavailable` (503), as
//!   SQS does when it throttles or has an outage. Receives, deletes, heartbeats and sends
//!   fail meanwhile; the daemon backs off, recovers, loses nothing and creates nothing
//!   twice.
//! - A FIFO queue, end to end: each connection's invoices are created in queue order.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use erpsync::domain::{ItemState, Op};
use erpsync::erp::sandbox::SandboxOptions;
use erpsync::jobs::{self, JobRequest};
use erpsync::rig::{Rig, RigQueue, RigSpec, count};
use erpsync::samples;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Pass = 0,
    Throttle = 1,
    Unavailable = 2,
}

/// An HTTP proxy in front of the SQS server that passes calls through, or answers them
/// all with SQS's throttling or outage errors. Counts the calls it saw and those it
/// failed, by action.
struct FaultyProxy {
    mode: AtomicU8,
    upstream: String,
    client: reqwest::Client,
    seen: Mutex<BTreeMap<String, u64>>,
    failed: Mutex<BTreeMap<String, u64>>,
}

impl FaultyProxy {
    async fn start(upstream: String) -> (Arc<FaultyProxy>, String) {
        let proxy = Arc::new(FaultyProxy {
            mode: AtomicU8::new(Mode::Pass as u8),
            upstream,
            client: reqwest::Client::new(),
            seen: Mutex::default(),
            failed: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (proxy, url)
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Release);
    }

    fn failed(&self, action: &str) -> u64 {
        self.failed.lock().unwrap().get(action).copied().unwrap_or(0)
    }

    fn seen(&self, action: &str) -> u64 {
        self.seen.lock().unwrap().get(action).copied().unwrap_or(0)
    }
}

async fn forward(
    State(p): State<Arc<FaultyProxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The JSON protocol names the action in `X-Amz-Target: AmazonSQS.ReceiveMessage`.
    let action = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("unknown")
        .to_owned();
    *p.seen.lock().unwrap().entry(action.clone()).or_default() += 1;
    let fault = match p.mode.load(Ordering::Acquire) {
        1 => Some((StatusCode::BAD_REQUEST, "RequestThrottled", "Rate exceeded")),
        2 => Some((StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Service is unavailable")),
        _ => None,
    };
    if let Some((status, code, message)) = fault {
        *p.failed.lock().unwrap().entry(action).or_default() += 1;
        let body = format!(r#"{{"__type":"com.amazonaws.sqs#{code}","message":"{message}"}}"#);
        return (
            status,
            [
                (header::CONTENT_TYPE, "application/x-amz-json-1.0"),
                (header::HeaderName::from_static("x-amzn-query-error"), &format!("{code};Sender")),
            ],
            body,
        )
            .into_response();
    }
    let target = format!("{}{}", p.upstream, uri.path_and_query().map(|q| q.as_str()).unwrap_or("/"));
    let mut req = p.client.request(method, target).body(body);
    for (name, value) in &headers {
        if name != header::CONTENT_LENGTH && name != header::HOST {
            req = req.header(name, value);
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let mut out = HeaderMap::new();
            for (name, value) in resp.headers() {
                if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING && name != header::CONNECTION {
                    out.insert(name, value.clone());
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            (status, out, bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The daemon's failed-queue-call count for `op`, from its `/metrics`.
async fn queue_errors(rig: &Rig, op: &str) -> f64 {
    let text =
        reqwest::get(format!("http://{}/metrics", rig.daemon().http_addr())).await.unwrap().text().await.unwrap();
    let prefix = format!("erpsync_queue_errors_total{{op=\"{op}\"");
    text.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

async fn wait_for(rig: &Rig, what: &str, deadline: Duration, done: impl Fn(&[(ItemState, u64)]) -> bool) {
    let until = Instant::now() + deadline;
    loop {
        let counts = rig.counts().await;
        if done(&counts) {
            return;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_throttling_and_outage_are_ridden_out_losing_nothing_and_creating_nothing_twice() {
    let (proxy, endpoint) = FaultyProxy::start(common::fauxqs_endpoint()).await;
    let rig = Rig::start(RigSpec {
        queue: RigQueue::Sqs { endpoint_url: endpoint, fifo: false },
        limits: vec![4, 10],
        // Slow enough that the outage finds calls in flight.
        sandbox: SandboxOptions { latency_ms: 40, jitter_ms: 10, ..Default::default() },
        tune: Box::new(|c| {
            // Messages whose deletes failed come back soon.
            c.queue.visibility_timeout_secs = NonZeroU32::new(4).unwrap();
            c.queue.wait_time_secs = 1;
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let invoices = samples::invoices("sqs-outage", 640);
    rig.submit(0, &invoices[..300]).await.unwrap();
    rig.submit(1, &invoices[300..600]).await.unwrap();
    wait_for(&rig, "the first successes", Duration::from_secs(60), |c| count(c, ItemState::Succeeded) >= 80).await;

    // Outage: every call fails, with calls in flight at the ERPs.
    proxy.set(Mode::Unavailable);
    let during = JobRequest {
        connection_id: rig.erps[0].connection.clone(),
        op: Op::ExportInvoice,
        documents: invoices[600..].iter().map(|d| serde_json::value::to_raw_value(d).unwrap()).collect(),
    };
    let asked = Instant::now();
    let accepted = jobs::submit(rig.daemon().ctx(), during).await.expect("the job is recorded while SQS is down");
    assert_eq!(accepted.unsent, 40, "no item of a job sent during the outage is reported as queued");
    // Bounded by `queue.send_timeout_ms` (2 s), not by the SDK's and our own retries.
    assert!(asked.elapsed() < Duration::from_secs(8), "the API answered in {:?}", asked.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Then throttling.
    proxy.set(Mode::Throttle);
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set(Mode::Pass);

    let counts = rig.wait_terminal(Duration::from_secs(120)).await.expect("all items terminal after SQS recovers");
    assert_eq!(count(&counts, ItemState::Succeeded), 640, "{counts:?}");
    for (erp, (stats, creates)) in rig.erps.iter().zip(rig.stats().into_iter().zip([340, 300])) {
        assert_eq!((stats.creates, stats.duplicate_creates), (creates, 0), "{}: {stats:?}", erp.connection);
        assert!(stats.max_concurrent_seen <= erp.limit as u64, "{}: {stats:?}", erp.connection);
    }
    for action in ["ReceiveMessage", "DeleteMessageBatch", "SendMessageBatch"] {
        assert!(proxy.failed(action) > 0, "the faults reached {action}: {:?}", proxy.failed.lock().unwrap());
    }
    assert!(queue_errors(&rig, "receive").await > 0.0, "failed receives are counted");
    assert!(queue_errors(&rig, "delete").await > 0.0, "failed deletes are counted");
    rig.shutdown().await;
    // Every request is counted, the SDK's retries of failed ones included (each is billed).
    // (Receives are left out: a long poll may still be on its way when the daemon stops.)
    for action in ["DeleteMessageBatch", "SendMessageBatch"] {
        let counted = erpsync::telemetry::sample(&format!("erpsync_sqs_requests_total{{api=\"{action}\"}}"));
        assert_eq!(counted as u64, proxy.seen(action), "{action}: counted by the daemon vs seen by the server");
    }
}

/// On a FIFO queue each connection's invoices are created in the order they were queued,
/// although the ERP fails about one call in seven with a 503 (the failed item goes back
/// for a retry, and the items received behind it go back with it) and the limits would
/// let up to 10 run at once. Every invoice is created once, no limit is exceeded.
///
/// fauxqs locks a group while any of its messages is in flight, as SQS does, but hands
/// out one message of a group per receive, so the runs here are of one item and this
/// checks the order end to end, not the run logic (it passes on fauxqs without it). moto
/// hands out several, and there the test fails without the run logic; but once a
/// returned message is visible again moto may hand out later messages of the group
/// before it, which SQS does not, so it cannot check order either.
async fn fifo_creates_in_queue_order(queue: RigQueue, per_connection: usize) {
    let rig = Rig::start(RigSpec {
        queue,
        limits: vec![1, 4, 10],
        sandbox: SandboxOptions { latency_ms: 2, jitter_ms: 3, fault_rate: 0.15, ..Default::default() },
        tune: Box::new(|c| {
            c.retry.base_delay_ms = NonZeroU32::new(50).unwrap();
            c.retry.max_delay_secs = NonZeroU32::new(1).unwrap();
            c.retry.max_attempts = NonZeroU32::new(30).unwrap();
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut queued: Vec<Vec<String>> = vec![Vec::new(); 3];
    for round in 0..2 {
        for (erp, order) in queued.iter_mut().enumerate() {
            let invoices = samples::invoices(&format!("fifo-{erp}-{round}"), per_connection / 2);
            order.extend(invoices.iter().map(|i| i.source_id.clone()));
            rig.submit(erp, &invoices).await.unwrap();
        }
    }
    let counts = rig.wait_terminal(Duration::from_secs(120)).await.expect("all items terminal");
    assert_eq!(count(&counts, ItemState::Succeeded), 3 * per_connection as u64, "{counts:?}");
    for ((erp, stats), order) in rig.erps.iter().zip(rig.stats()).zip(&queued) {
        assert_eq!(
            (stats.creates, stats.duplicate_creates),
            (per_connection as u64, 0),
            "{}: {stats:?}",
            erp.connection
        );
        assert!(stats.max_concurrent_seen <= erp.limit as u64, "{}: {stats:?}", erp.connection);
        assert!(stats.faults > 0, "{}: the ERP failed no call, so no retry was tested: {stats:?}", erp.connection);
        let created = erp.sandbox.creation_order("bills").await;
        if let Some(at) = (0..order.len()).find(|&i| created.get(i) != order.get(i)) {
            panic!(
                "{}: created out of queue order from position {at}: created {:?}, queued {:?}",
                erp.connection,
                &created[at..(at + 5).min(created.len())],
                &order[at..(at + 5).min(order.len())]
            );
        }
    }
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_queue_creates_each_connections_invoices_in_queue_order_through_faults() {
    fifo_creates_in_queue_order(RigQueue::Sqs { endpoint_url: common::fauxqs_endpoint(), fifo: true }, 60).await;
}

/// The same on the embedded queue in FIFO mode, which hands out several messages of a
/// connection per receive (up to 50, in order): here the runs are of many items, so this
/// checks the run logic — an item going back takes the items received behind it back with
/// it — which the fauxqs run above cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_fifo_queue_creates_each_connections_invoices_in_queue_order_through_faults() {
    fifo_creates_in_queue_order(RigQueue::EmbeddedFifo, 60).await;
}

/// A long poll in progress when the daemon stops is not cut off: what it brings goes
/// straight back to the queue, visible at once, instead of staying hidden for the
/// visibility timeout because SQS handed it to a receive nobody read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_a_long_poll_brings_while_the_daemon_stops_go_back_at_once() {
    use erpsync::domain::{ItemId, JobId};
    use erpsync::queue::{Envelope, GroupFilter, ReceiveRequest};
    let mut rig = Rig::start(RigSpec {
        queue: RigQueue::Sqs { endpoint_url: common::fauxqs_endpoint(), fifo: false },
        limits: vec![4],
        tune: Box::new(|c| {
            c.queue.visibility_timeout_secs = NonZeroU32::new(60).unwrap();
            c.queue.wait_time_secs = 2;
            c.shutdown.drain_timeout_secs = 0;
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let queue = rig.daemon().ctx().queue.clone();
    let connection = rig.erps[0].connection.clone();
    // Idle: the receive loops are in their long polls when the stop begins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop = tokio::spawn(rig.daemon.take().unwrap().shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let messages = (0..5)
        .map(|i| {
            let (job, item) = (JobId::new(), ItemId::new());
            Envelope::by_ref(job, item, connection.clone(), Op::ExportInvoice, &format!("stop-{i}")).outgoing()
        })
        .collect();
    queue.send(messages).await.unwrap();
    stop.await.unwrap();
    let req = || ReceiveRequest {
        max_messages: 10,
        wait: Duration::ZERO,
        visibility: Duration::from_secs(60),
        groups: GroupFilter::Any,
    };
    let mut visible = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while visible < 5 && Instant::now() < deadline {
        visible += queue.receive(req()).await.unwrap().messages.len();
    }
    assert_eq!(visible, 5, "every message visible right after the stop, none hidden by a cut-off receive");
    rig.shutdown().await;
}

/// A crash between recording a job and sending its messages: the job's outbox marker
/// (written with it, `store::Enqueuing::AfterCommit`) is never cleared by a sender, so
/// once it is older than the outbox's 10 s the daemon's sweep hands the job's items to the
/// outbox, sends them, and every invoice is created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_recorded_but_never_sent_is_sent_by_the_outbox() {
    use erpsync::store::Enqueuing;
    let rig = Rig::start(RigSpec {
        queue: RigQueue::Sqs { endpoint_url: common::fauxqs_endpoint(), fifo: false },
        limits: vec![4],
        ..Default::default()
    })
    .await
    .unwrap();
    let job = rig.invoice_job(0, &samples::invoices("never-sent", 25));
    // Recorded as `POST /v1/jobs` records it, and then nothing: the sender "crashed".
    erpsync::store::insert_job(&rig.daemon().ctx().db, &job, Enqueuing::AfterCommit).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("the outbox sent the job's items");
    assert_eq!(count(&counts, ItemState::Succeeded), 25, "{counts:?}");
    let stats = &rig.stats()[0];
    assert_eq!((stats.creates, stats.duplicate_creates), (25, 0), "{stats:?}");
    rig.shutdown().await;
}

/// `bench floor` drains what it filled: every item created in the sandbox ERP once, and
/// its CPU figures read for both sides (the queue server found by its port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_benchmark_creates_every_item_once_and_reads_both_sides_cpu() {
    use erpsync::bench::floor::{FloorArgs, measure};
    let args = FloorArgs {
        endpoint_url: common::fauxqs_endpoint(),
        invoices: 120,
        loops: 4,
        without_erp: false,
        without_store: false,
        emulator_pid: None,
        json: true,
    };
    let report = measure(&args).await.expect("the floor drains");
    assert_eq!(report.created_in_erp, 120);
    assert_eq!(report.duplicates, 0);
    assert!(report.without.is_empty());
    assert!(report.items_per_sec > 0.0);
    assert!(report.emulator_us_per_item.is_some(), "the queue server's CPU is read");
}
