//! `bench drain`: the queue is filled first, then released; items per second end to end
//! against a zero-latency sandbox with high limits, with the CPU used by this process
//! (daemon and sandbox) and by the queue server.

use super::backend::BackendArgs;
use super::cpu::{CpuSample, SANDBOX_THREADS, fmt_cpu};
use crate::domain::ItemState;
use crate::erp::sandbox::SandboxOptions;
use crate::rig::{Rig, RigSpec, count};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Invoices in all, spread evenly over the connections.
    #[arg(long, default_value_t = 10_000)]
    pub invoices: usize,
    /// Connections (one zero-latency sandbox ERP each).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Concurrency limit of each connection.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// The poller's parallel receive loops (`queue.receive_loops`; SQS).
    #[arg(long, default_value_t = 4)]
    pub receive_loops: u32,
    /// Store (and embedded queue) on a fresh PostgreSQL database created through this
    /// admin URL, instead of a scratch SQLite file.
    #[arg(long)]
    pub postgres_admin_url: Option<String>,
    /// The store's pool size (`database.max_connections`).
    #[arg(long, default_value_t = 8)]
    pub db_connections: u32,
    /// Cluster leases (`cluster.leases`; unset: on with PostgreSQL).
    #[arg(long)]
    pub leases: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct DrainReport {
    pub backend: String,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub invoices: usize,
    pub connections: usize,
    pub limit: u32,
    pub drain_secs: f64,
    pub items_per_sec: f64,
    pub succeeded: u64,
    pub duplicates: u64,
    /// CPU of the daemon while draining, in cores.
    pub daemon_cores: f64,
    /// CPU of the sandbox ERPs (in this process, on threads of their own), in cores.
    pub sandbox_cores: f64,
    /// CPU of the queue server while draining, in cores (SQS backend).
    pub emulator_cores: Option<f64>,
    /// StatusActor transactions (setup included), their mean size and duration.
    pub status_writes: u64,
    pub status_batch_mean: f64,
    pub status_write_ms_mean: f64,
    /// Connector capacity (limits + prefetch), and how much of it stood free on average.
    pub capacity: usize,
    pub free_capacity_mean: f64,
    /// Messages received while draining, and how many of them went back to the queue
    /// (their connection was saturated, or they were behind one that was).
    pub received: u64,
    pub returned: u64,
    /// Requests made to SQS while draining, by API (empty on the embedded queue).
    pub sqs_requests: BTreeMap<&'static str, u64>,
}

/// `erpsync_sqs_requests_total` now, by API.
fn sqs_requests() -> BTreeMap<&'static str, u64> {
    crate::telemetry::SQS_APIS
        .iter()
        .map(|&api| {
            (api, crate::telemetry::sample(&format!("{}{{api=\"{api}\"}}", crate::telemetry::SQS_REQUESTS)) as u64)
        })
        .collect()
}

/// Invoices per job when filling the queue for `bench drain`.
const JOB_SIZE: usize = 200;
pub async fn drain(args: DrainArgs) -> Result<()> {
    let options = crate::daemon::StartOptions::default();
    options.paused.store(true, Ordering::Release);
    let paused = options.paused.clone();
    // The sandbox ERPs get threads of their own, so that the daemon's CPU can be told
    // apart from theirs (they are the stand-in for the ERPs, not part of erpsync).
    let sandbox_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SANDBOX_THREADS)
        .enable_all()
        .build()?;
    let database_url = match &args.postgres_admin_url {
        Some(admin) => Some(crate::bench::scratch_db::fresh_postgres_on(admin).await.map_err(anyhow::Error::msg)?),
        None => None,
    };
    let receive_loops = std::num::NonZeroU32::new(args.receive_loops).context("--receive-loops must be at least 1")?;
    let db_connections =
        std::num::NonZeroU32::new(args.db_connections).context("--db-connections must be at least 1")?;
    let leases = args.leases;
    let rig = Rig::start(RigSpec {
        queue: args.backend.queue()?,
        limits: vec![args.limit; args.connections.max(1)],
        sandbox: SandboxOptions { latency_ms: 0, jitter_ms: 0, ..Default::default() },
        tune: Box::new(move |c| {
            c.log.level = "warn".into();
            c.queue.receive_loops = receive_loops;
            c.database.max_connections = db_connections;
            c.cluster.leases = leases;
            for conn in &mut c.connections {
                // One ERP call per item: the queue path is what is measured.
                conn.attach_pdf = false;
            }
        }),
        options,
        database_url,
        sandbox_runtime: Some(sandbox_rt.handle().clone()),
    })
    .await?;
    let n = args.connections.max(1);
    let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    // Jobs of 200 invoices, the connections taking turns, as several customers' jobs
    // arrive: the queue then holds every connection's work throughout. (One connection's
    // jobs after the other's would leave a receive little but one connection's messages,
    // and that connection's limit would bound the drain.)
    let docs: Vec<Vec<_>> = (0..n)
        .map(|i| {
            let per = args.invoices / n + usize::from(i < args.invoices % n);
            (0..per).map(|k| crate::samples::invoice(&format!("{tag}{i}"), k)).collect()
        })
        .collect();
    let chunks: Vec<Vec<_>> = docs.iter().map(|d| d.chunks(JOB_SIZE).collect()).collect();
    for round in 0..chunks.iter().map(Vec::len).max().unwrap_or(0) {
        for (i, c) in chunks.iter().enumerate() {
            if let Some(chunk) = c.get(round) {
                rig.submit(i, chunk).await?;
            }
        }
    }
    let emulator = args.backend.emulator_pid();
    let cpu0 = CpuSample::take(emulator);
    let received0 = crate::telemetry::sample_total(crate::telemetry::QUEUE_RECEIVED);
    let requests0 = sqs_requests();
    let deleted0 = crate::telemetry::sample_total(crate::telemetry::QUEUE_DELETED);
    let returned0 = crate::telemetry::sample_total(crate::telemetry::QUEUE_RETURNED);
    let started_ms = crate::util::now_ms();
    let started = Instant::now();
    paused.store(false, Ordering::Release);
    // How much of the connectors' capacity (limit + prefetch) stands free while draining:
    // mostly free means the feed (receiving) limits, mostly taken the work does.
    let sampler_ctx = rig.daemon().ctx().clone();
    let stop_sampling = tokio_util::sync::CancellationToken::new();
    let stop = stop_sampling.clone();
    let sampler = tokio::spawn(async move {
        let (mut free, mut samples) = (0usize, 0usize);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = stop.cancelled() => break,
            }
            free += sampler_ctx.connectors.values().map(|c| c.room()).sum::<usize>();
            samples += 1;
        }
        (free, samples)
    });
    // Polled slowly (counting every item costs CPU the daemon should have); the finish
    // time is read exactly afterwards from the last item's update.
    let counts = loop {
        let counts = rig.counts().await;
        if counts.iter().all(|(s, n)| s.is_terminal() || *n == 0) {
            break counts;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("items still open after 15 minutes: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let capacity: usize = rig.daemon().ctx().connectors.values().map(|c| c.limit() + c.limits.prefetch as usize).sum();
    stop_sampling.cancel();
    let (free, samples) = sampler.await.unwrap_or((0, 0));
    let cpu = CpuSample::take(emulator).since(&cpu0);
    let finished_ms = crate::store::last_update_ms(&rig.daemon().ctx().db).await?.unwrap_or(started_ms);
    let secs = ((finished_ms - started_ms) as f64 / 1000.0).max(0.001);
    // CPU is read at the poll that saw the end, up to 250 ms after it: spread over that
    // window too.
    let cpu_window = started.elapsed().as_secs_f64().max(secs);
    let stats = rig.stats();
    let succeeded = count(&counts, ItemState::Succeeded);
    let stat = crate::telemetry::sample;
    let received = crate::telemetry::sample_total(crate::telemetry::QUEUE_RECEIVED) - received0;
    let returned = crate::telemetry::sample_total(crate::telemetry::QUEUE_RETURNED) - returned0;
    let deleted = crate::telemetry::sample_total(crate::telemetry::QUEUE_DELETED) - deleted0;
    let sqs_requests: BTreeMap<_, _> = sqs_requests()
        .into_iter()
        .map(|(api, n)| (api, n.saturating_sub(requests0.get(api).copied().unwrap_or(0))))
        .filter(|(_, n)| *n > 0)
        .collect();
    let writes = stat("erpsync_status_write_duration_seconds_count").max(1.0);
    let status_batch = stat("erpsync_status_write_batch_size_sum") / writes;
    let status_ms = stat("erpsync_status_write_duration_seconds_sum") / writes * 1000.0;
    rig.shutdown().await;
    sandbox_rt.shutdown_background();
    let report = DrainReport {
        backend: args.backend.backend.clone(),
        database: if args.postgres_admin_url.is_some() { "postgres" } else { "sqlite" },
        invoices: args.invoices,
        connections: n,
        limit: args.limit,
        drain_secs: secs,
        items_per_sec: succeeded as f64 / secs,
        succeeded,
        duplicates: stats.iter().map(|s| s.duplicate_creates).sum(),
        daemon_cores: (cpu.process - cpu.sandbox) / cpu_window,
        sandbox_cores: cpu.sandbox / cpu_window,
        emulator_cores: cpu.emulator.map(|c| c / cpu_window),
        status_writes: writes as u64,
        status_batch_mean: status_batch,
        status_write_ms_mean: status_ms,
        capacity,
        free_capacity_mean: free as f64 / samples.max(1) as f64,
        received: received as u64,
        returned: returned as u64,
        sqs_requests,
    };
    if args.backend.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("backend        {} (store on {})", report.backend, report.database);
        println!("invoices       {} over {} connections (limit {} each)", report.invoices, n, args.limit);
        println!("drained in     {:.2} s", report.drain_secs);
        println!("throughput     {:.0} items/s", report.items_per_sec);
        println!("succeeded      {}", report.succeeded);
        println!("duplicates     {}", report.duplicates);
        println!(
            "cpu (cores)    erpsync {:.2}, sandbox ERPs {:.2}, queue server {}",
            report.daemon_cores,
            report.sandbox_cores,
            fmt_cpu(report.emulator_cores)
        );
        println!(
            "status writes  {} transactions, {:.0} updates and {:.1} ms each on average",
            report.status_writes, report.status_batch_mean, report.status_write_ms_mean
        );
        println!(
            "free capacity  {:.0} of {} slots on average (mostly free: receiving limits; mostly taken: the work)",
            report.free_capacity_mean, report.capacity
        );
        println!("received       {} messages, {} of them sent back to wait for room", report.received, report.returned);
        if !report.sqs_requests.is_empty() {
            let per_call =
                |messages: f64, api: &str| messages / report.sqs_requests.get(api).copied().unwrap_or(0).max(1) as f64;
            println!(
                "sqs requests   {} ({:.1} messages per ReceiveMessage, {:.1} per DeleteMessageBatch)",
                report.sqs_requests.iter().map(|(api, n)| format!("{api} {n}")).collect::<Vec<_>>().join(", "),
                per_call(report.received as f64, "ReceiveMessage"),
                per_call(deleted, "DeleteMessageBatch")
            );
        }
    }
    Ok(())
}
