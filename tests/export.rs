//! End to end on the embedded defaults: the daemon in-process, real sandbox ERPs over HTTP,
//! a real SQLite file.

use erpsync::domain::ItemState;
use erpsync::erp::sandbox::SandboxOptions;
use erpsync::harness::{Rig, RigSpec, count};
use erpsync::samples;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_600_invoices_within_each_connections_limit() {
    let rig = Rig::start(RigSpec {
        limits: vec![1, 4, 10],
        sandbox: SandboxOptions { latency_ms: 5, jitter_ms: 5, ..Default::default() },
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
    rig.shutdown().await;
}
