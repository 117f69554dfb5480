//! Two daemons sharing one PostgreSQL refresh the same Xero connection's access token at
//! the same moments — every access token expires three times mid-export, and the simulator
//! refuses a spent refresh token at once — and neither locks the other out: refreshes are
//! serialised by the store's per-connection lock and each uses the newest refresh token
//! the other stored. Every bill is created once and the connection is never parked.

mod common;

use common::vendor::{self, XERO_VENDOR};
use erpsync::domain::ItemState;
use erpsync::rig::{Rig, RigSpec, count};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_refreshing_one_connection_on_postgres_never_lock_it_out() {
    let db = common::fresh_postgres().await;
    let sim = vendor::simulator(&XERO_VENDOR, 0.0, 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rigs = Vec::new();
    for _ in 0..2 {
        let (sim_url, dir) = (sim.base_url(), dir.path().to_owned());
        let spec = RigSpec {
            limits: vec![],
            database_url: Some(db.clone()),
            tune: Box::new(move |config| {
                let mut c = erpsync::rig::xero_connection(config, vendor::CONNECTION, &sim_url, &dir);
                c.rate_limit_per_min = NonZeroU32::new(100_000);
                config.connections = vec![c];
            }),
            ..RigSpec::default()
        };
        rigs.push(Rig::start(spec).await.expect("the daemon starts"));
    }
    let bills = 120;
    let job = vendor::submit(&rigs[0], &erpsync::rig::xero_invoices("two", bills)).await;
    let expire = format!("{}/__sandbox/xero/expire-access-tokens", sim.base_url());
    for done in [20, 50, 80] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(&rigs[0].counts().await, ItemState::Succeeded) < done {
            assert!(Instant::now() < deadline, "no progress past {done}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        reqwest::Client::new().post(&expire).send().await.unwrap().error_for_status().unwrap();
    }
    let counts = rigs[0].wait_terminal(Duration::from_secs(120)).await.expect("every item finishes");
    assert_eq!(
        count(&counts, ItemState::Succeeded),
        bills as u64,
        "{counts:?} {:?}",
        vendor::errors(&rigs[0], &job).await
    );
    let stats = sim.stats();
    assert_eq!((stats.creates, stats.duplicate_creates), (bills as u64, 0), "{stats:?}");
    // One daemon alone refreshes once at start and once after each expiry (its other calls
    // refused 401 find the new token): more means both refreshed, on one refresh token chain.
    assert!(stats.refreshes > 1 + 3, "both daemons refreshed: {stats:?}");
    let ctx = rigs[0].daemon().ctx();
    assert!(erpsync::store::parks::all(&ctx.db).await.unwrap().is_empty(), "the connection was never parked");
    for rig in rigs {
        rig.shutdown().await;
    }
}
