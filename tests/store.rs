//! The store's SQLite upkeep against a real SQLite file.

use sea_orm::ConnectionTrait;
use std::time::Duration;

/// Under sustained writes SQLite's PASSIVE checkpoints may never let the WAL start over;
/// the checkpointer then RESTARTs it, so the WAL file stops growing. Here with a 20 ms
/// period and a 4 MiB threshold (the daemon uses 250 ms and 64 MiB), while 100 MiB are
/// written in 1 MiB transactions; without the checkpointer the WAL would hold all of it
/// (the automatic checkpoint is a 256 MiB backstop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wal.db?mode=rwc", dir.path().display());
    let db = erpsync::store::connect(&url, 4).await.unwrap();
    db.execute_unprepared("CREATE TABLE blobs (b BLOB)").await.unwrap();
    let checkpointer = erpsync::store::spawn_checkpointer_with(&db, Duration::from_millis(20), 1024)
        .expect("SQLite has a checkpointer");
    let wal = dir.path().join("wal.db-wal");
    let mut largest = 0;
    for _ in 0..100 {
        db.execute_unprepared("INSERT INTO blobs VALUES (zeroblob(1048576))").await.unwrap();
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    checkpointer.abort();
    let mib = largest / (1 << 20);
    assert!(mib < 40, "the WAL grew to {mib} MiB while 100 MiB were written");
}
