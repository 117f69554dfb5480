//! PostgreSQL going away for ten seconds mid-run: readiness turns false, nothing crashes,
//! and once it is back every item finishes, exactly once. The test runs its own private
//! PostgreSQL server (initdb in a temp dir) so stopping it disturbs no other test.

use erpsync::domain::ItemState;
use erpsync::erp::sandbox::SandboxOptions;
use erpsync::rig::{Rig, RigSpec, count};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn run_as_postgres(args: &[&str]) {
    let out = Command::new("runuser").args(["-u", "postgres", "--"]).args(args).output().unwrap_or_else(|e| {
        panic!(
            "runuser is needed to run a private PostgreSQL as the postgres user ({e}); run as root via scripts/test.sh"
        )
    });
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).max()
            })
            .expect(
                "PostgreSQL server binaries are needed under /usr/lib/postgresql/*/bin: apt-get install postgresql",
            );
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Command::new("chown").args(["-R", "postgres", dir.path().to_str().unwrap()]).status().unwrap().success()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = dir.path().join("data");
        run_as_postgres(&[
            bin.join("initdb").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
        ]);
        let pg = PrivatePostgres { dir, bin, port };
        pg.ctl("start");
        pg
    }

    fn ctl(&self, what: &str) {
        let data = self.dir.path().join("data");
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let log = self.dir.path().join("log");
        let ctl = self.bin.join("pg_ctl");
        match what {
            "start" => run_as_postgres(&[
                ctl.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ]),
            _ => run_as_postgres(&[ctl.to_str().unwrap(), "-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]),
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                self.bin.join("pg_ctl").to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

async fn ready(base: &str) -> bool {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_away_for_ten_seconds_loses_nothing() {
    let pg = PrivatePostgres::start();
    let rig = Rig::start(RigSpec {
        limits: vec![4],
        database_url: Some(pg.url()),
        sandbox: SandboxOptions { latency_ms: 20, idempotency_ttl_secs: 0, ..Default::default() },
        tune: Box::new(|c| {
            c.queue.visibility_timeout_secs = std::num::NonZeroU32::new(5).unwrap();
            c.retry.base_delay_ms = std::num::NonZeroU32::new(100).unwrap();
            c.retry.max_delay_secs = std::num::NonZeroU32::new(2).unwrap();
            c.retry.max_attempts = std::num::NonZeroU32::new(50).unwrap();
            c.cluster.lease_ttl_secs = std::num::NonZeroU32::new(5).unwrap();
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let base = format!("http://{}", rig.daemon().http_addr());
    assert!(ready(&base).await);
    rig.submit(0, &erpsync::samples::invoices("outage", 300)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&rig.counts().await, ItemState::Succeeded) < 50 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    pg.ctl("stop");
    let down = Instant::now();
    let mut saw_unready = false;
    while down.elapsed() < Duration::from_secs(10) {
        saw_unready |= !ready(&base).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(saw_unready, "readiness is false while the database is away");
    pg.ctl("start");

    let counts =
        rig.wait_terminal(Duration::from_secs(120)).await.expect("everything finishes once the database is back");
    assert_eq!(count(&counts, ItemState::Succeeded), 300, "{counts:?}");
    let s = &rig.stats()[0];
    assert_eq!((s.creates, s.duplicate_creates), (300, 0), "{s:?}");
    let until = Instant::now() + Duration::from_secs(20);
    while !ready(&base).await {
        assert!(Instant::now() < until, "ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.shutdown().await;
    let _ = Path::new("");
}
