//! A fleet of real `erpsync run` processes sharing one PostgreSQL and one sandbox ERP:
//! together they never exceed the connection's limit, and survive one of them dying.

mod common;
use common::*;

use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Fleet {
    daemons: Vec<(Proc, String)>,
    _sandbox: Proc,
    sandbox_url: String,
    db_url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn wait_for<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut f: F) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_fleet(daemons: usize, limit: u32) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let db_url = common::fresh_postgres().await;
    let erp = free_port();
    let sandbox = Proc(
        Command::new(BIN)
            .args(["sandbox-erp", "--listen", &format!("127.0.0.1:{erp}"), "--latency-ms", "10", "--jitter-ms", "10"])
            .args(["--concurrency", &limit.to_string(), "--idempotency-ttl-secs", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let mut procs = Vec::new();
    for i in 0..daemons {
        let api = free_port();
        let cfg = dir.path().join(format!("d{i}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[database]\nurl = \"{db_url}\"\n[http]\nlisten = \"127.0.0.1:{api}\"\n[log]\nlevel = \"warn\"\n\
                 [queue]\nvisibility_timeout_secs = 6\npoll_interval_ms = 50\n\
                 [cluster]\nlease_ttl_secs = 3\n\
                 [[connections]]\nid = \"acme\"\nerp = \"generic_rest\"\nbase_url = \"http://127.0.0.1:{erp}\"\nmax_concurrency = {limit}\n"
            ),
        )
        .unwrap();
        let child =
            Command::new(BIN).args(["run", "--config", cfg.to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap();
        procs.push((Proc(child), format!("http://127.0.0.1:{api}")));
    }
    for (_, base) in &procs {
        wait_for("daemon ready", Duration::from_secs(30), async || {
            http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }
    let http = authed_client(&db_token(&db_url).await);
    Fleet { daemons: procs, _sandbox: sandbox, sandbox_url: format!("http://127.0.0.1:{erp}"), db_url, http, _dir: dir }
}

impl Fleet {
    async fn submit(&self, tag: &str, n: usize) -> Vec<String> {
        let mut jobs = Vec::new();
        let docs = erpsync::samples::invoices(tag, n);
        for (i, chunk) in docs.chunks(500).enumerate() {
            let base = &self.daemons[i % self.daemons.len()].1;
            let body = json!({"connection_id": "acme", "op": "export_invoice", "documents": chunk});
            let r = self.http.post(format!("{base}/v1/jobs")).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 202);
            jobs.push(r.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned());
        }
        jobs
    }

    async fn stats(&self) -> Value {
        self.http.get(format!("{}/__sandbox/stats", self.sandbox_url)).send().await.unwrap().json().await.unwrap()
    }

    async fn wait_jobs(&self, base: &str, jobs: &[String], limit: Duration) {
        for job in jobs {
            wait_for("jobs to finish", limit, async || {
                let v: Value =
                    self.http.get(format!("{base}/v1/jobs/{job}")).send().await.unwrap().json().await.unwrap();
                v["state"] != "running"
            })
            .await;
            let v: Value = self.http.get(format!("{base}/v1/jobs/{job}")).send().await.unwrap().json().await.unwrap();
            assert_eq!(v["state"], "succeeded", "{}", v["counts"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_share_one_limit_of_five() {
    let fleet = start_fleet(3, 5).await;
    let jobs = fleet.submit("fleet", 1500).await;
    let base = fleet.daemons[0].1.clone();
    fleet.wait_jobs(&base, &jobs, Duration::from_secs(240)).await;
    let s = fleet.stats().await;
    assert_eq!(s["max_concurrent_seen"], 5, "{s}");
    assert_eq!(s["throttled"], 0, "{s}");
    assert_eq!(s["duplicate_creates"], 0, "{s}");
    assert_eq!(s["creates"], 1500, "{s}");
    // Every daemon did its share of the work.
    let db = erpsync::store::connect(&fleet.db_url, 2).await.unwrap();
    let holders = sea_orm::ConnectionTrait::query_all_raw(
        &db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) FROM erp_leases WHERE token > 0",
        ),
    )
    .await
    .unwrap();
    assert_eq!(holders[0].try_get_by_index::<i64>(0).unwrap(), 5, "exactly five slot rows were ever granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_daemons_slots_are_reclaimed_and_the_others_finish() {
    let mut fleet = start_fleet(3, 5).await;
    let jobs = fleet.submit("fleet-kill", 1500).await;
    wait_for("progress before the kill", Duration::from_secs(60), async || {
        fleet.stats().await["creates"].as_u64().unwrap_or(0) >= 300
    })
    .await;
    let (mut victim, _) = fleet.daemons.remove(2);
    let pid = victim.0.id();
    victim.0.kill().unwrap(); // SIGKILL: no drain, no release
    victim.0.wait().unwrap();
    let killed_at = Instant::now();
    let db = erpsync::store::connect(&fleet.db_url, 2).await.unwrap();
    let held_by_victim = async || {
        let rows = sea_orm::ConnectionTrait::query_all_raw(
            &db,
            sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) FROM erp_leases WHERE holder LIKE $1 AND expires_at_ms > $2",
                [format!("%:{pid}:%").into(), erpsync::util::now_ms().into()],
            ),
        )
        .await
        .unwrap();
        rows[0].try_get_by_index::<i64>(0).unwrap()
    };
    wait_for("the dead daemon's slots to lapse", Duration::from_secs(10), async || held_by_victim().await == 0).await;
    assert!(killed_at.elapsed() <= Duration::from_secs(4), "reclaimed within the 3 s lease expiry (+1 s)");
    let base = fleet.daemons[0].1.clone();
    fleet.wait_jobs(&base, &jobs, Duration::from_secs(240)).await;
    let s = fleet.stats().await;
    assert!(s["max_concurrent_seen"].as_u64().unwrap() <= 5, "{s}");
    assert_eq!(s["duplicate_creates"], 0, "{s}");
    assert_eq!(s["creates"], 1500, "{s}");
}
