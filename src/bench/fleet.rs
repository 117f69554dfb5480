//! Benchmarks of the fleet side: fairness between connections, status-write throughput,
//! and several daemon processes sharing one PostgreSQL.

use crate::domain::ItemState;
use crate::erp::sandbox::SandboxOptions;
use crate::rig::{Rig, RigSpec, count};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct FairnessArgs {
    /// Items queued for the busy connection A before B's single item.
    #[arg(long, default_value_t = 5000)]
    pub backlog: usize,
    /// Concurrency limit of A.
    #[arg(long, default_value_t = 2)]
    pub limit: u32,
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Database URL (default: a scratch SQLite file).
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Noisy neighbour: connection A has a backlog of thousands; how long does connection B's
/// single item take from enqueue to success?
pub async fn fairness(args: FairnessArgs) -> Result<()> {
    let limit = args.limit;
    let rig = Rig::start(RigSpec {
        limits: vec![limit, 4],
        sandbox: SandboxOptions { latency_ms: args.latency_ms, ..Default::default() },
        database_url: args.database_url.clone(),
        tune: Box::new(|c| {
            c.log.level = "warn".into();
            for conn in &mut c.connections {
                conn.attach_pdf = false;
            }
        }),
        ..Default::default()
    })
    .await?;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let backlog: Vec<_> = (0..args.backlog).map(|n| crate::samples::invoice(&format!("{tag}a"), n)).collect();
    for chunk in backlog.chunks(1000) {
        rig.submit(0, chunk).await?;
    }
    // Let A's backlog get going before B arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let job = rig.submit(1, &[crate::samples::invoice(&format!("{tag}b"), 0)]).await?;
    let db = &rig.daemon().ctx().db;
    loop {
        let s = crate::store::job_summary(db, &job).await?.expect("job exists");
        if s.items.iter().all(|i| i.state.is_terminal()) {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("B's item did not finish within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let b_latency = started.elapsed().as_secs_f64();
    let a_done = count(&rig.counts().await, ItemState::Succeeded).saturating_sub(1);
    let report = serde_json::json!({
        "backlog": args.backlog, "limit_a": limit, "latency_ms": args.latency_ms,
        "database": if args.database_url.is_some() { "postgres" } else { "sqlite" },
        "b_enqueue_to_success_secs": b_latency, "a_done_meanwhile": a_done,
    });
    rig.shutdown().await;
    if args.json {
        println!("{report}");
    } else {
        println!("connection A: {} queued, limit {}, {} ms per call", args.backlog, limit, args.latency_ms);
        println!("B's single item: enqueue to success in {:.3} s (A finished {} meanwhile)", b_latency, a_done);
    }
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Item status updates to write.
    #[arg(long, default_value_t = 20_000)]
    pub items: usize,
    /// Concurrent writers (item tasks awaiting their outcome's commit).
    #[arg(long, default_value_t = 256)]
    pub writers: usize,
    /// Database URL (default: a scratch SQLite file).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Also seed this many items of long-ended jobs (10 per job, with timelines) and run the
    /// retention sweeper over them, at its default batch and pause, while the writes are
    /// measured.
    #[arg(long, default_value_t = 0)]
    pub with_retention: usize,
    #[arg(long)]
    pub json: bool,
}

/// Items of ended jobs for the retention sweeper to delete, dated at the epoch's first
/// millisecond.
async fn seed_ended_jobs(db: &sea_orm::DatabaseConnection, items: usize) -> Result<()> {
    use crate::domain::{ConnectionId, ItemId, JobId, Op};
    use crate::store::{NewItem, NewJob};
    use sea_orm::ConnectionTrait;
    let conn = ConnectionId::new("bench-ended");
    for j in 0..items.div_ceil(10) {
        let items: Vec<NewItem> = (0..10.min(items - j * 10))
            .map(|k| NewItem { id: ItemId::new(), source_id: format!("e{j}-{k}"), payload: "{}".into() })
            .collect();
        let job = NewJob { id: JobId::new(), connection_id: conn.clone(), op: Op::ExportInvoice, items };
        crate::store::insert_job(db, &job, crate::store::Enqueuing::ByTheOutbox).await?;
    }
    for sql in [
        "UPDATE job_items SET state = 'succeeded', created_at_ms = 1, updated_at_ms = 1 WHERE connection_id = 'bench-ended'",
        "UPDATE jobs SET created_at_ms = 1 WHERE connection_id = 'bench-ended'",
        "INSERT INTO item_events (item_id, at_ms, state, attempt, detail) \
         SELECT id, 1, 'succeeded', 1, 'exported' FROM job_items WHERE connection_id = 'bench-ended'",
    ] {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

/// Item status writes per second through the StatusActor (batched transactions).
pub async fn store(args: StoreArgs) -> Result<()> {
    use crate::actors::status::StatusMsg;
    use crate::domain::{ConnectionId, ItemId, JobId, Op};
    use crate::store::{ItemUpdate, NewItem, NewJob};
    let rig = Rig::start(RigSpec {
        limits: vec![1],
        database_url: args.database_url.clone(),
        tune: Box::new(|c| c.log.level = "warn".into()),
        ..Default::default()
    })
    .await?;
    let ctx = rig.daemon().ctx().clone();
    let status = ctx.lookup::<StatusMsg>("status").expect("status actor runs");
    // Items recorded but not queued: only the status writes are measured.
    let conn = ConnectionId::new("bench-store");
    let mut ids = Vec::with_capacity(args.items);
    for chunk in 0..args.items.div_ceil(1000) {
        let n = (args.items - chunk * 1000).min(1000);
        let items: Vec<NewItem> = (0..n)
            .map(|k| NewItem { id: ItemId::new(), source_id: format!("s{chunk}-{k}"), payload: "{}".into() })
            .collect();
        ids.extend(items.iter().map(|i| i.id));
        let job = NewJob { id: JobId::new(), connection_id: conn.clone(), op: Op::ExportInvoice, items };
        crate::store::insert_job(&ctx.db, &job, crate::store::Enqueuing::WithTheJob).await?;
    }
    if args.with_retention > 0 {
        seed_ended_jobs(&ctx.db, args.with_retention).await?;
    }
    let measuring = tokio_util::sync::CancellationToken::new();
    let sweeper = (args.with_retention > 0).then(|| {
        let (ctx, measuring) = (ctx.clone(), measuring.clone());
        tokio::spawn(async move {
            let config = ctx.config.retention.clone();
            let mut deleted = crate::store::retention::Swept::default();
            while !measuring.is_cancelled() {
                let swept = crate::retention::sweep(&ctx, &config, 2).await?;
                deleted.jobs += swept.jobs;
                deleted.items += swept.items;
                if swept == crate::store::retention::Swept::default() {
                    break;
                }
            }
            Ok::<_, crate::store::StoreError>(deleted)
        })
    });
    let started = Instant::now();
    let per_writer = ids.len().div_ceil(args.writers);
    let mut tasks = Vec::new();
    for share in ids.chunks(per_writer) {
        let (status, share, conn) = (status.clone(), share.to_vec(), conn.clone());
        tasks.push(tokio::spawn(async move {
            for id in share {
                let update = ItemUpdate {
                    item_id: id,
                    state: ItemState::Succeeded,
                    attempt: Some(1),
                    erp_id: Some(format!("b-{id}")),
                    error: None,
                    ledger: vec![("bill".into(), id.to_string(), format!("b-{id}"))],
                    applications: vec![],
                    bills: vec![],
                    connection_id: conn.clone(),
                    detail: None,
                };
                match status.call(|r| StatusMsg::Update(update, Some(r)), Some(Duration::from_secs(60))).await {
                    Ok(ractor::rpc::CallResult::Success(Ok(true))) => {}
                    other => return Err(format!("update not applied: {other:?}")),
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await?.map_err(anyhow::Error::msg)?;
    }
    let secs = started.elapsed().as_secs_f64();
    measuring.cancel();
    let deleted = match sweeper {
        Some(task) => task.await??,
        None => Default::default(),
    };
    let rate = args.items as f64 / secs;
    let database = if args.database_url.is_some() { "postgres" } else { "sqlite" };
    let stat = crate::telemetry::sample;
    let batches = stat("erpsync_status_write_batch_size_count");
    let mean_batch = stat("erpsync_status_write_batch_size_sum") / batches.max(1.0);
    let mean_write_ms = 1000.0 * stat("erpsync_status_write_duration_seconds_sum") / batches.max(1.0);
    rig.shutdown().await;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"database": database, "items": args.items, "writers": args.writers, "secs": secs,
            "items_per_sec": rate, "transactions": batches, "mean_batch": mean_batch, "mean_transaction_ms": mean_write_ms,
            "retention_deleted_jobs": deleted.jobs, "retention_deleted_items": deleted.items})
        );
    } else {
        println!(
            "{database}: {} item updates (with ledger rows and timeline events) in {secs:.3} s = {rate:.0} items/s",
            args.items
        );
        println!("  {batches} transactions, {mean_batch:.1} updates each on average, {mean_write_ms:.2} ms each");
        if args.with_retention > 0 {
            println!("  retention deleted {} ended jobs ({} items) meanwhile", deleted.jobs, deleted.items);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Fleet sizes to measure, one after the other.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2, 3])]
    pub daemons: Vec<usize>,
    #[arg(long, default_value_t = 3000)]
    pub invoices: usize,
    /// The one connection's concurrency limit.
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// PostgreSQL server to create scratch databases on (default: ERPSYNC_TEST_PG_URL or
    /// the local server).
    #[arg(long)]
    pub admin_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fleet efficiency: N `erpsync run` processes on one PostgreSQL and one connection.
pub async fn fleet(args: FleetArgs) -> Result<()> {
    use crate::erp::sandbox::Sandbox;
    let admin = args.admin_url.clone().unwrap_or_else(crate::bench::scratch_db::admin_url);
    let exe = std::env::current_exe()?;
    let ideal = args.invoices as f64 * args.latency_ms as f64 / 1000.0 / args.limit as f64;
    let mut results = Vec::new();
    for &n in &args.daemons {
        let sandbox = Sandbox::start(
            "127.0.0.1:0".parse()?,
            SandboxOptions { concurrency: args.limit.into(), latency_ms: args.latency_ms, ..Default::default() },
        )
        .await?;
        let db_url = crate::bench::scratch_db::fresh_postgres_on(&admin).await.map_err(anyhow::Error::msg)?;
        let dir = std::env::temp_dir().join(format!("erpsync-fleet-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut children = Vec::new();
        let mut apis = Vec::new();
        for i in 0..n {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let cfg = dir.join(format!("d{i}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "[database]\nurl = \"{db_url}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"error\"\n\
                     [queue]\npoll_interval_ms = 50\n\
                     [[connections]]\nid = \"acme\"\nerp = \"generic_rest\"\nbase_url = \"{}\"\nmax_concurrency = {}\nattach_pdf = false\n",
                    sandbox.base_url(),
                    args.limit
                ),
            )?;
            children.push(Child(
                std::process::Command::new(&exe)
                    .args(["run", "--config", cfg.to_str().unwrap()])
                    .stderr(std::process::Stdio::null())
                    .spawn()?,
            ));
            apis.push(format!("http://127.0.0.1:{port}"));
        }
        let http = reqwest::Client::new();
        for api in &apis {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !http.get(format!("{api}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                if Instant::now() > deadline {
                    bail!("daemon at {api} did not become ready");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let db = crate::store::connect(&db_url, 2).await?;
        let scope = crate::store::tokens::Scope::Write;
        let token = crate::store::tokens::create(&db, crate::config::DEFAULT_TENANT, scope, "bench").await?.token;
        let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
        let docs = crate::samples::invoices(&tag, args.invoices);
        let started = Instant::now();
        for (i, chunk) in docs.chunks(1000).enumerate() {
            let body = serde_json::json!({"connection_id": "acme", "op": "export_invoice", "documents": chunk});
            let r =
                http.post(format!("{}/v1/jobs", apis[i % apis.len()])).bearer_auth(&token).json(&body).send().await?;
            if r.status() != 202 {
                bail!("job refused: {}", r.text().await?);
            }
        }
        loop {
            let counts = crate::store::state_counts(&db).await?;
            if count(&counts, ItemState::Succeeded) as usize >= args.invoices {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("fleet of {n} did not finish: {counts:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let measured = started.elapsed().as_secs_f64();
        let stats = sandbox.stats();
        results.push(serde_json::json!({
            "daemons": n, "measured_secs": measured, "ideal_secs": ideal, "efficiency": ideal / measured,
            "max_concurrent_seen": stats.max_concurrent_seen, "throttled": stats.throttled,
            "duplicates": stats.duplicate_creates,
        }));
        drop(children);
        sandbox.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"invoices": args.invoices, "limit": args.limit, "latency_ms": args.latency_ms, "fleets": results})
        );
    } else {
        println!(
            "{} invoices, one connection with limit {}, {} ms per call; ideal {:.3} s",
            args.invoices, args.limit, args.latency_ms, ideal
        );
        for r in &results {
            println!(
                "{} daemon(s): {:.3} s, efficiency {:.3}, max concurrent {}, throttled {}, duplicates {}",
                r["daemons"],
                r["measured_secs"].as_f64().unwrap_or(0.0),
                r["efficiency"].as_f64().unwrap_or(0.0),
                r["max_concurrent_seen"],
                r["throttled"],
                r["duplicates"]
            );
        }
    }
    Ok(())
}
