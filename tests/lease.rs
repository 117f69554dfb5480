//! Cluster slots under contention: several pools (daemons) on one PostgreSQL database,
//! many tasks each, never more than `limit` slots in use at once.

mod common;

use erpsync::limits::lease::LeasePool;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_on_one_database_never_exceed_the_limit() {
    let url = common::fresh_postgres().await;
    let limit = 5;
    let in_use = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for d in 0..3 {
        let db = erpsync::store::connect(&url, 8).await.unwrap();
        erpsync::store::migrate(&db).await.unwrap();
        let pool =
            Arc::new(LeasePool::new(db, "acme", "acme".into(), limit, &format!("daemon-{d}"), Duration::from_secs(1)));
        pool.ensure_slots().await.unwrap();
        let renewing = pool.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                renewing.renew().await.unwrap();
            }
        });
        for _ in 0..5 {
            let (pool, in_use, max_seen) = (pool.clone(), in_use.clone(), max_seen.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..150 {
                    let guard = pool.acquire(Duration::from_secs(30)).await.unwrap();
                    assert!(!pool.is_lost(guard.lease), "no slot lapses while renewed");
                    let n = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    in_use.fetch_sub(1, Ordering::SeqCst);
                    drop(guard);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(max_seen.load(Ordering::SeqCst), limit as usize);
}

/// A slot held past its TTL stays ours while renewed, and is free once renewals stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_slots_outlive_their_ttl_and_dead_ones_expire() {
    let pools = two_daemons_sharing_one_slot(Duration::from_millis(900)).await;
    let held = pools[0].acquire(Duration::from_secs(1)).await.unwrap();
    let renewing = pools[0].clone();
    let renewer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            renewing.renew().await.unwrap();
        }
    });
    assert!(pools[1].acquire(Duration::from_millis(2500)).await.is_err(), "a renewed slot is not taken");
    assert!(!pools[0].is_lost(held.lease));
    renewer.abort();
    let started = std::time::Instant::now();
    let other = pools[1].acquire(Duration::from_secs(5)).await.expect("an unrenewed slot expires");
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(other.lease.token > held.lease.token, "fencing tokens grow");
    std::mem::forget(held);
}

/// A slot let go is kept for the next local call a while (no round trip, no new grant:
/// the same token), long enough to bridge the status-writer commits between one call on
/// a connection and the next; unused, it goes back for other daemons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_let_go_is_kept_for_the_next_local_call_then_given_back() {
    let pools = two_daemons_sharing_one_slot(Duration::from_secs(30)).await;
    let first = pools[0].acquire(Duration::from_secs(1)).await.unwrap().lease;
    // Two commits' worth of pause before the next call (the guard is dropped at once).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = pools[0].acquire(Duration::from_secs(1)).await.unwrap();
    assert_eq!(again.lease, first, "the same grant, kept locally");
    drop(again);
    let started = std::time::Instant::now();
    let other = pools[1].acquire(Duration::from_secs(5)).await.expect("given back once idle");
    assert!(other.lease.token > first.token);
    assert!(started.elapsed() < Duration::from_secs(1), "given back after the grace, not at expiry");
}

/// Two daemons' pools of connection `acme`, limit 1, on a fresh database.
async fn two_daemons_sharing_one_slot(ttl: Duration) -> Vec<Arc<LeasePool>> {
    let url = common::fresh_postgres().await;
    let mut pools = Vec::new();
    for d in 0..2 {
        let db = erpsync::store::connect(&url, 4).await.unwrap();
        erpsync::store::migrate(&db).await.unwrap();
        let pool = Arc::new(LeasePool::new(db, "acme", "acme".into(), 1, &format!("d{d}"), ttl));
        pool.ensure_slots().await.unwrap();
        pools.push(pool);
    }
    pools
}
