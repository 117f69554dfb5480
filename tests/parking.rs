//! A connection whose credentials the ERP revokes is parked: its items wait, unattempted
//! and not dead-lettered, the job status says why, `erpsync connections` lists it, and
//! once an operator gives it new credentials and resumes it every item succeeds once.
//! Against the Xero and QuickBooks simulators (both rotate refresh tokens and answer a
//! revoked one `invalid_grant`), on the embedded queue and on SQS (fauxqs), where waiting
//! must not cost queue receives either.

mod common;

use common::vendor::{self, QUICKBOOKS_VENDOR, Vendor, XERO_VENDOR};
use erpsync::domain::{ItemState, JobId};
use erpsync::erp::sandbox::{OAuthClient, QuickbooksOptions, Sandbox, XeroOptions};
use erpsync::rig::{Rig, RigQueue, RigSpec, count};
use erpsync::store::parks::{self, ParkReason};
use std::num::NonZeroU32;
use std::path::Path;
use std::time::{Duration, Instant};

const CONNECTION: &str = vendor::CONNECTION;

/// An OAuth vendor of the story: its contract, the name of its simulator's hooks, and the
/// client its connections are made with.
struct OAuthVendor {
    vendor: &'static Vendor,
    hooks: &'static str,
    client: fn() -> OAuthClient,
}

const XERO: OAuthVendor =
    OAuthVendor { vendor: &XERO_VENDOR, hooks: "xero", client: || XeroOptions::default().clients[0].clone() };
const QUICKBOOKS: OAuthVendor = OAuthVendor {
    vendor: &QUICKBOOKS_VENDOR,
    hooks: "quickbooks",
    client: || QuickbooksOptions::default().clients[0].clone(),
};

async fn start(vendor: &'static Vendor, queue: RigQueue, sim: &Sandbox, dir: &Path) -> Rig {
    let (sim_url, dir) = (sim.base_url(), dir.to_owned());
    let spec = RigSpec {
        queue,
        limits: vec![],
        tune: Box::new(move |config| {
            let mut c = (vendor.connection)(config, CONNECTION, &sim_url, &dir);
            c.rate_limit_per_min = NonZeroU32::new(100_000);
            config.connections = vec![c];
        }),
        ..RigSpec::default()
    };
    Rig::start(spec).await.expect("the daemon starts")
}

async fn hook(sim: &Sandbox, path: &str, body: serde_json::Value) -> serde_json::Value {
    let resp = reqwest::Client::new().post(format!("{}{path}", sim.base_url())).json(&body).send().await.unwrap();
    resp.error_for_status().unwrap().json().await.unwrap()
}

async fn wait_for<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut f: F) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn summary(rig: &Rig, job: &JobId) -> erpsync::store::JobSummary {
    erpsync::store::job_summary(&rig.daemon().ctx().db, job).await.unwrap().unwrap()
}

/// The whole story for one vendor on one queue backend.
async fn revoked_parked_reconnected_resumed(oauth: OAuthVendor, queue: RigQueue) {
    let sim = vendor::simulator(oauth.vendor, 0.0, 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let rig = start(oauth.vendor, queue, &sim, dir.path()).await;
    let db = rig.daemon().ctx().db.clone();
    let bills = 60;
    let job = vendor::submit(&rig, &(oauth.vendor.invoices)("p", bills)).await;
    wait_for("some bills exported", Duration::from_secs(60), async || {
        count(&rig.counts().await, ItemState::Succeeded) >= 5
    })
    .await;

    // The customer disconnects the app: every token of the client dies.
    let client = (oauth.client)();
    let revoke = format!("/__sandbox/{}/revoke", oauth.hooks);
    hook(&sim, &revoke, serde_json::json!({"client_id": client.client_id})).await;
    wait_for("the connection parked", Duration::from_secs(30), async || {
        parks::of(&db, CONNECTION).await.unwrap().is_some()
    })
    .await;
    let park = parks::of(&db, CONNECTION).await.unwrap().unwrap();
    assert_eq!(park.reason, ParkReason::AuthRevoked);
    assert!(park.detail.contains("invalid_grant"), "{}", park.detail);
    assert!(!park.detail.contains("-rt-"), "no token in the detail: {}", park.detail);

    // Everything in flight settles; then nothing reaches the ERP while parked.
    wait_for("in-flight attempts settled", Duration::from_secs(30), async || {
        count(&rig.counts().await, ItemState::InProgress) == 0
    })
    .await;
    let before = sim.stats();
    let s = summary(&rig, &job).await;
    let parked = s.parked.as_ref().expect("the job status names the park");
    assert_eq!(parked.reason.as_str(), "auth_revoked");
    let waiting: Vec<_> = s.items.iter().filter(|i| i.state != ItemState::Succeeded).collect();
    assert!(!waiting.is_empty(), "some bills wait");
    for item in &waiting {
        assert!(!item.state.is_terminal(), "nothing failed or was dead-lettered: {item:?}");
        assert_eq!(item.attempts, item.throttled, "waiting used no attempts: {item:?}");
    }
    let succeeded_while_parked = count(&rig.counts().await, ItemState::Succeeded);

    // `erpsync connections` lists it parked, and never a secret.
    let config = rig.daemon().ctx().config.as_ref().clone();
    let metrics = reqwest::get(format!("http://{}/metrics", rig.daemon().http_addr())).await.unwrap().text().await;
    let line = format!("erpsync_connection_parked{{connection=\"{CONNECTION}\",reason=\"auth_revoked\"}} 1");
    assert!(metrics.unwrap().contains(&line), "the parked gauge");

    // The customer connects the app again; the operator stores the new credentials.
    let reconnect = format!("/__sandbox/{}/reconnect", oauth.hooks);
    let fresh = hook(&sim, &reconnect, serde_json::json!({"client_id": client.client_id})).await;
    let creds = dir.path().join("new-creds.json");
    let document = serde_json::json!({
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "refresh_token": fresh["refresh_token"],
    });
    std::fs::write(&creds, document.to_string()).unwrap();
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, r#"{"client_id": "x", "client_secret": "y"}"#).unwrap();
    let refused = erpsync::cli::connections::set_credentials(&config, CONNECTION, &wrong).await.unwrap_err();
    assert!(format!("{refused:#}").contains("refresh_token"), "names the missing key: {refused:#}");
    erpsync::cli::connections::set_credentials(&config, CONNECTION, &creds).await.unwrap();
    let stored = erpsync::store::connection_credentials::get(&db, CONNECTION).await.unwrap().unwrap();
    assert!(!stored.0.contains("-rt-") && !stored.0.contains(&client.client_secret), "stored sealed only");

    // New credentials alone do not resume it (the operator decides when).
    let still = Instant::now() + Duration::from_millis(1_500);
    while Instant::now() < still {
        assert!(rig.daemon().ctx().connectors.values().all(|c| c.is_parked()), "still parked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.stats().creates, before.creates, "nothing was created while parked");
    assert_eq!(count(&rig.counts().await, ItemState::Succeeded), succeeded_while_parked);

    erpsync::cli::connections::resume(&config, CONNECTION).await.unwrap();
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("every item finishes");
    assert_eq!(count(&counts, ItemState::Succeeded), bills as u64, "{counts:?} {:?}", vendor::errors(&rig, &job).await);
    let stats = sim.stats();
    assert_eq!(stats.creates, bills as u64, "{stats:?}");
    assert_eq!(stats.duplicate_creates, 0, "{stats:?}");
    assert!(summary(&rig, &job).await.parked.is_none(), "a finished job names no park");
    assert!(parks::of(&db, CONNECTION).await.unwrap().is_none());
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_connection_parks_and_after_new_credentials_and_resume_every_bill_succeeds_once() {
    revoked_parked_reconnected_resumed(XERO, RigQueue::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_quickbooks_connection_parks_and_resumes_with_new_credentials() {
    revoked_parked_reconnected_resumed(QUICKBOOKS, RigQueue::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqs_a_parked_connection_s_items_wait_on_the_shelf_and_come_back_on_resume() {
    let endpoint_url = common::fauxqs_endpoint();
    revoked_parked_reconnected_resumed(XERO, RigQueue::Sqs { endpoint_url, fifo: false }).await;
}

/// A daemon started while its connection is parked keeps it parked, and an operator's
/// park and resume reach a running daemon without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_park_survives_a_restart_and_resume_reaches_the_running_daemon() {
    let sim = vendor::simulator(&XERO_VENDOR, 0.0, 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rig = start(&XERO_VENDOR, RigQueue::Embedded, &sim, dir.path()).await;
    let config = rig.daemon().ctx().config.as_ref().clone();
    erpsync::cli::connections::park(&config, CONNECTION, "month-end close").await.unwrap();
    assert!(erpsync::cli::connections::park(&config, CONNECTION, "").await.is_err(), "parked already");
    wait_for("the running daemon follows the park", Duration::from_secs(5), async || {
        rig.daemon().ctx().connectors.values().all(|c| c.is_parked())
    })
    .await;
    rig.restart(Default::default()).await.unwrap();
    let job = vendor::submit(&rig, &erpsync::rig::xero_invoices("r", 10)).await;
    let still = Instant::now() + Duration::from_millis(1_500);
    while Instant::now() < still {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.stats().creates, 0, "nothing is exported while parked");
    let s = summary(&rig, &job).await;
    assert_eq!(
        s.parked.as_ref().map(|p| (p.reason, p.detail.as_str())),
        Some((ParkReason::Operator, "month-end close"))
    );

    erpsync::cli::connections::resume(&config, CONNECTION).await.unwrap();
    assert!(erpsync::cli::connections::resume(&config, CONNECTION).await.is_err(), "not parked any more");
    let counts = rig.wait_terminal(Duration::from_secs(30)).await.expect("every item finishes");
    assert_eq!(count(&counts, ItemState::Succeeded), 10, "{counts:?}");
    assert_eq!(sim.stats().duplicate_creates, 0);
    rig.shutdown().await;
}
