//! The contract every vendor connector must keep against its simulator, written once: the
//! vendor tests (tests/xero.rs, tests/quickbooks.rs) say only what differs — the dialect,
//! how a connection to it is made, documents it accepts, its limit.

use erpsync::config::{Config, ConnectionConfig};
use erpsync::domain::{ConnectionId, Invoice, ItemState, JobId, Op};
use erpsync::erp::sandbox::{Dialect, QUICKBOOKS_ONLINE, Sandbox, SandboxOptions, XERO};
use erpsync::jobs::{self, JobRequest};
use erpsync::rig::{Rig, RigSpec, count};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const CONNECTION: &str = "acme";

/// The bills of the contract's export.
pub const BILLS: usize = 300;

/// What differs between vendors.
pub struct Vendor {
    pub dialect: &'static Dialect,
    /// A connection `id` to the simulator at a URL, its secrets under a directory.
    pub connection: fn(&mut Config, &str, &str, &Path) -> ConnectionConfig,
    /// `n` documents the simulated company accepts, numbered from a prefix.
    pub invoices: fn(&str, usize) -> Vec<Invoice>,
    /// The simulator's options: its minute budget raised (the daemon's pace follows it), a
    /// spent refresh token refused at once.
    pub options: fn(SandboxOptions) -> SandboxOptions,
    /// The hook that expires every access token (or session) the simulator issued, for a
    /// vendor whose credentials are exchanged for expiring ones.
    pub expire_tokens: Option<&'static str>,
    /// Whether the vendor rotates refresh tokens (each refresh answers the next one),
    /// which erpsync must store before using again.
    pub rotates_refresh_tokens: bool,
    /// Calls in progress the vendor allows.
    pub concurrency: u64,
}

fn tune(vendor: &'static Vendor, sim_url: String, dir: PathBuf) -> Box<dyn Fn(&mut Config) + Send> {
    Box::new(move |config: &mut Config| {
        let mut c = (vendor.connection)(config, CONNECTION, &sim_url, &dir);
        c.request_timeout_ms = NonZeroU32::new(1_000).unwrap();
        c.rate_limit_per_min = NonZeroU32::new(100_000);
        config.connections = vec![c];
    })
}

pub async fn submit(rig: &Rig, docs: &[Invoice]) -> JobId {
    let req = JobRequest {
        connection_id: ConnectionId::new(CONNECTION),
        op: Op::ExportInvoice,
        documents: docs.iter().map(|d| serde_json::value::to_raw_value(d).unwrap()).collect(),
    };
    jobs::submit(rig.daemon().ctx(), req).await.expect("the job is accepted").job_id
}

/// The errors of a job's failed items, for the assertion messages.
pub async fn errors(rig: &Rig, job: &JobId) -> Vec<String> {
    let summary = erpsync::store::job_summary(&rig.daemon().ctx().db, job).await.unwrap().unwrap();
    summary
        .items
        .iter()
        .filter_map(|i| i.error.as_ref().map(|e| format!("{}: {}", e.kind, e.message)))
        .take(3)
        .collect()
}

/// The simulator of `vendor`, injecting `fault_rate` 503s and `timeout_rate` answers lost
/// after commit.
pub async fn simulator(vendor: &Vendor, fault_rate: f64, timeout_rate: f64) -> Sandbox {
    let opts = SandboxOptions { latency_ms: 5, fault_rate, timeout_rate, stall_ms: 1_500, ..Default::default() };
    Sandbox::start_speaking(vendor.dialect, "127.0.0.1:0".parse().unwrap(), (vendor.options)(opts)).await.unwrap()
}

pub async fn start(vendor: &'static Vendor, db: Option<String>, sim: &Sandbox, dir: &Path) -> Rig {
    let spec = RigSpec {
        limits: vec![],
        database_url: db,
        tune: tune(vendor, sim.base_url(), dir.to_owned()),
        ..RigSpec::default()
    };
    Rig::start(spec).await.expect("the daemon starts")
}

/// 300 bills through 10 % faults and 6 % answers lost after commit, every access token
/// expired mid-export: each bill is created once with its PDF once, within the vendor's
/// concurrency; then a daemon started again on the same database refreshes with the
/// rotated refresh token the first one stored (the credentials' one is long spent).
pub async fn exports_every_bill_once(vendor: &'static Vendor, db: Option<String>) {
    // 6 % of 300 creates: the chance that no answer is lost at all is below 1 in 10^8.
    let sim = simulator(vendor, 0.1, 0.06).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rig = start(vendor, db, &sim, dir.path()).await;
    let job = submit(&rig, &(vendor.invoices)("c1", BILLS)).await;
    if let Some(expire) = vendor.expire_tokens {
        // Mid-export, the ERP expires every access token it issued: the next call is
        // refused 401, the client gets a new one once and sends it again.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while count(&rig.counts().await, ItemState::Succeeded) < 30 {
            assert!(std::time::Instant::now() < deadline, "no progress");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let hook = format!("{}{}", sim.base_url(), expire);
        reqwest::Client::new().post(hook).send().await.unwrap().error_for_status().unwrap();
    }
    let counts = rig.wait_terminal(Duration::from_secs(120)).await.expect("every item finishes");
    assert_eq!(count(&counts, ItemState::Succeeded), BILLS as u64, "{counts:?} {:?}", errors(&rig, &job).await);
    let stats = sim.stats();
    assert_eq!(stats.creates, BILLS as u64, "{stats:?}");
    assert_eq!(stats.duplicate_creates, 0, "{stats:?}");
    assert_eq!(stats.duplicate_attachments, 0, "{stats:?}");
    assert!(stats.faults > 0 && stats.stalls > 0, "faults and lost answers were injected: {stats:?}");
    assert!(stats.max_concurrent_seen <= vendor.concurrency, "the vendor's concurrency held: {stats:?}");
    if vendor.expire_tokens.is_some() {
        assert!(stats.refreshes >= 2, "the token expired mid-export and was refreshed: {stats:?}");
    }
    if !vendor.rotates_refresh_tokens {
        rig.shutdown().await;
        return;
    }

    // The rotated refresh token is stored, and only sealed: the vendor's tokens (prefixed
    // `<dialect>-rt-`) never appear in the row.
    let stored = erpsync::store::erp_tokens::read(&rig.daemon().ctx().db, CONNECTION).await.unwrap();
    let stored = stored.expect("the rotated refresh token is stored");
    assert!(!stored.sealed.is_empty() && !stored.sealed.contains("-rt-"), "{}", stored.sealed);

    let refreshes = stats.refreshes;
    rig.daemon.take().unwrap().kill().await;
    rig.restart(Default::default()).await.unwrap();
    let job = submit(&rig, &(vendor.invoices)("c2", 10)).await;
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("every item finishes");
    assert_eq!(count(&counts, ItemState::Succeeded), BILLS as u64 + 10, "{counts:?} {:?}", errors(&rig, &job).await);
    assert!(sim.stats().refreshes > refreshes, "the restarted daemon refreshed");
    assert_eq!(sim.stats().duplicate_creates, 0);
    rig.shutdown().await;
}

/// Of three bills, the one the vendor refuses (its vendor `refused_vendor`) fails alone.
pub async fn a_refused_bill_fails_alone(vendor: &'static Vendor, refused_vendor: &str) {
    let sim = simulator(vendor, 0.0, 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let rig = start(vendor, None, &sim, dir.path()).await;
    let mut docs = (vendor.invoices)("r", 3);
    docs[1].vendor.id = refused_vendor.to_owned();
    let job = submit(&rig, &docs).await;
    let counts = rig.wait_terminal(Duration::from_secs(30)).await.expect("every item finishes");
    assert_eq!(count(&counts, ItemState::Succeeded), 2, "{counts:?} {:?}", errors(&rig, &job).await);
    assert_eq!(count(&counts, ItemState::Failed), 1, "{counts:?}");
    rig.shutdown().await;
}

/// Xero, its minute and day budgets raised and a spent refresh token refused at once.
pub static XERO_VENDOR: Vendor = Vendor {
    dialect: &XERO,
    connection: erpsync::rig::xero_connection,
    invoices: erpsync::rig::xero_invoices,
    options: |mut opts| {
        opts.xero.minute_limit = 100_000;
        opts.xero.day_limit = 100_000;
        opts.xero.refresh_grace_secs = 0;
        opts
    },
    expire_tokens: Some("/__sandbox/xero/expire-access-tokens"),
    rotates_refresh_tokens: true,
    concurrency: 5,
};

/// QuickBooks Online, its minute budget raised and a spent refresh token refused at once.
pub static QUICKBOOKS_VENDOR: Vendor = Vendor {
    dialect: &QUICKBOOKS_ONLINE,
    connection: erpsync::rig::quickbooks_connection,
    invoices: erpsync::rig::quickbooks_invoices,
    options: |mut opts| {
        opts.quickbooks.minute_limit = 100_000;
        opts.quickbooks.refresh_grace_secs = 0;
        opts
    },
    expire_tokens: Some("/__sandbox/quickbooks/expire-access-tokens"),
    rotates_refresh_tokens: true,
    concurrency: 10,
};
