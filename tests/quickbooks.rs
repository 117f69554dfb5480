//! The QuickBooks Online connector against the QuickBooks simulator
//! (`erp::sandbox::QUICKBOOKS_ONLINE`, which answers as Intuit's reference documents):
//! exports through faults and answers lost after commit create every bill once with its
//! PDF once, within QuickBooks' limits; the refresh token Intuit
//! rotates is stored, so a restarted daemon refreshes with the newest one.

mod common;

use erpsync::config::Config;
use erpsync::domain::{ConnectionId, Invoice, ItemState, Op};
use erpsync::erp::sandbox::{QBO_INACTIVE_VENDOR, QUICKBOOKS_ONLINE, Sandbox, SandboxOptions};
use erpsync::jobs::{self, JobRequest};
use erpsync::rig::{Rig, RigSpec, count};
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

const CONNECTION: &str = "acme-qbo";

fn invoices(prefix: &str, n: usize) -> Vec<Invoice> {
    erpsync::rig::quickbooks_invoices(prefix, n)
}

fn tune(sim_url: String, dir: std::path::PathBuf) -> Box<dyn Fn(&mut Config) + Send> {
    Box::new(move |config: &mut Config| {
        let mut c = erpsync::rig::quickbooks_connection(config, CONNECTION, &sim_url, &dir);
        c.request_timeout_ms = NonZeroU32::new(1_000).unwrap();
        // The simulator's minute limit is raised below; the daemon's pace follows it.
        c.rate_limit_per_min = NonZeroU32::new(100_000);
        config.connections = vec![c];
    })
}

async fn submit(rig: &Rig, docs: &[Invoice]) -> erpsync::domain::JobId {
    let req = JobRequest {
        connection_id: ConnectionId::new(CONNECTION),
        op: Op::ExportInvoice,
        documents: docs.iter().map(|d| serde_json::value::to_raw_value(d).unwrap()).collect(),
    };
    jobs::submit(rig.daemon().ctx(), req).await.expect("the job is accepted").job_id
}

/// The errors of a job's failed items, for the assertion messages.
async fn errors(rig: &Rig, job: &erpsync::domain::JobId) -> Vec<String> {
    let summary = erpsync::store::job_summary(&rig.daemon().ctx().db, job).await.unwrap().unwrap();
    summary
        .items
        .iter()
        .filter_map(|i| i.error.as_ref().map(|e| format!("{}: {}", e.kind, e.message)))
        .take(3)
        .collect()
}

async fn start(db: Option<String>, sim: &Sandbox, dir: &Path) -> Rig {
    let spec =
        RigSpec { limits: vec![], database_url: db, tune: tune(sim.base_url(), dir.to_owned()), ..RigSpec::default() };
    Rig::start(spec).await.expect("the daemon starts")
}

fn simulator_options(fault_rate: f64, timeout_rate: f64) -> SandboxOptions {
    let mut opts = SandboxOptions { latency_ms: 5, fault_rate, timeout_rate, stall_ms: 1_500, ..Default::default() };
    opts.quickbooks.minute_limit = 100_000;
    // A spent refresh token is refused at once: only the stored newest one works.
    opts.quickbooks.refresh_grace_secs = 0;
    opts
}

async fn exports_every_bill_once(db: Option<String>) {
    let sim = Sandbox::start_speaking(&QUICKBOOKS_ONLINE, "127.0.0.1:0".parse().unwrap(), simulator_options(0.1, 0.03))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rig = start(db, &sim, dir.path()).await;
    let docs = invoices("qbo", 150);
    let job = submit(&rig, &docs).await;
    // Mid-export, the ERP expires every access token it issued: the next call is refused
    // 401, the client refreshes once and sends it again.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&rig.counts().await, ItemState::Succeeded) < 30 {
        assert!(std::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reqwest::Client::new()
        .post(format!("{}/__sandbox/quickbooks/expire-access-tokens", sim.base_url()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(120)).await.expect("every item finishes");
    assert_eq!(count(&counts, ItemState::Succeeded), 150, "{counts:?} {:?}", errors(&rig, &job).await);
    let stats = sim.stats();
    assert_eq!(stats.creates, 150, "{stats:?}");
    assert_eq!(stats.duplicate_creates, 0, "{stats:?}");
    assert_eq!(stats.duplicate_attachments, 0, "{stats:?}");
    assert!(stats.faults > 0 && stats.stalls > 0, "faults and lost answers were injected: {stats:?}");
    assert!(stats.max_concurrent_seen <= 10, "QuickBooks' 10 concurrent calls per realm held: {stats:?}");
    assert!(stats.refreshes >= 2, "the token expired mid-export and was refreshed: {stats:?}");

    // A new daemon on the same database refreshes with the rotated token it stored: the
    // one in the credentials file was spent long ago and is refused.
    let refreshes = stats.refreshes;
    rig.daemon.take().unwrap().kill().await;
    rig.restart(Default::default()).await.unwrap();
    let job = submit(&rig, &invoices("qbo-2", 10)).await;
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("every item finishes");
    assert_eq!(count(&counts, ItemState::Succeeded), 160, "{counts:?} {:?}", errors(&rig, &job).await);
    assert!(sim.stats().refreshes > refreshes, "the restarted daemon refreshed");
    assert_eq!(sim.stats().duplicate_creates, 0);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quickbooks_export_through_faults_creates_every_bill_once_on_sqlite() {
    exports_every_bill_once(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quickbooks_export_through_faults_creates_every_bill_once_on_postgres() {
    exports_every_bill_once(Some(common::fresh_postgres().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_quickbooks_refuses_fails_alone_with_its_fault() {
    let sim = Sandbox::start_speaking(&QUICKBOOKS_ONLINE, "127.0.0.1:0".parse().unwrap(), simulator_options(0.0, 0.0))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rig = start(None, &sim, dir.path()).await;
    let mut docs = invoices("qbo-r", 3);
    // An inactive vendor: QuickBooks refuses the bill with a ValidationFault.
    docs[1].vendor.id = QBO_INACTIVE_VENDOR.to_owned();
    let job = submit(&rig, &docs).await;
    let counts = rig.wait_terminal(Duration::from_secs(30)).await.expect("every item finishes");
    assert_eq!(count(&counts, ItemState::Succeeded), 2, "{counts:?} {:?}", errors(&rig, &job).await);
    assert_eq!(count(&counts, ItemState::Failed), 1, "{counts:?}");
    rig.shutdown().await;
}
