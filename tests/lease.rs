//! Cluster slots under contention: several pools (daemons) on one PostgreSQL database,
//! many tasks each, never more than `limit` slots in use at once.

use erpsync::limits::lease::LeasePool;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_on_one_database_never_exceed_the_limit() {
    let url = erpsync::testdb::fresh_postgres().await;
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
    let url = erpsync::testdb::fresh_postgres().await;
    let mut pools = Vec::new();
    for d in 0..2 {
        let db = erpsync::store::connect(&url, 4).await.unwrap();
        erpsync::store::migrate(&db).await.unwrap();
        let pool = Arc::new(LeasePool::new(db, "acme", "acme".into(), 1, &format!("d{d}"), Duration::from_millis(900)));
        pool.ensure_slots().await.unwrap();
        pools.push(pool);
    }
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
