//! Queue-backend benchmarks, self-contained like `bench slots` (sandbox ERPs and the
//! daemon in this process, a scratch SQLite database); the SQS variant uses a fresh queue
//! on the SQS-compatible server at `--endpoint-url`.
//!
//! - `bench enqueue`: `POST /v1/jobs` with N invoices, answered 202, timed over many
//!   requests (p50/p99). Receiving is held meanwhile, so the figure is the API's and the
//!   producer's, not contention with draining.
//! - `bench drain`: the queue is filled first, then released; items per second end to end
//!   against a zero-latency sandbox with high limits, with the CPU used by this process
//!   (daemon and sandbox) and by the queue server.

use crate::domain::ItemState;
use crate::erp::sandbox::SandboxOptions;
use crate::rig::{Rig, RigQueue, RigSpec, count};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// `embedded` or `sqs`.
    #[arg(long, default_value = "embedded")]
    pub backend: String,
    /// SQS-compatible endpoint for `--backend sqs` (a fresh queue is created there).
    #[arg(long, env = "BENCH_SQS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Use a FIFO queue (SQS only).
    #[arg(long)]
    pub fifo: bool,
    /// Process id of the queue server, for its CPU figure (default: found by its port).
    #[arg(long)]
    pub emulator_pid: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl BackendArgs {
    fn queue(&self) -> Result<RigQueue> {
        match (self.backend.as_str(), &self.endpoint_url) {
            ("embedded", _) => Ok(RigQueue::Embedded),
            ("sqs", Some(url)) => Ok(RigQueue::Sqs { endpoint_url: url.clone(), fifo: self.fifo }),
            ("sqs", None) => bail!("--backend sqs needs --endpoint-url (or BENCH_SQS_ENDPOINT_URL)"),
            (other, _) => bail!("--backend must be embedded or sqs, not {other:?}"),
        }
    }

    fn emulator_pid(&self) -> Option<u32> {
        if self.backend != "sqs" {
            return None;
        }
        emulator_pid(self.emulator_pid, self.endpoint_url.as_deref()?)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Timed requests.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Invoices per request.
    #[arg(long, default_value_t = 200)]
    pub invoices: usize,
    /// Untimed requests first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Requests per second, sent on a fixed schedule; 0 sends each as soon as the previous
    /// one is answered (saturation).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

#[derive(Debug, Serialize)]
pub struct EnqueueReport {
    pub backend: String,
    pub requests: usize,
    pub invoices_per_request: usize,
    /// Requests per second asked for; 0 = back to back.
    pub rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub unsent_items: u64,
    pub process_cpu_secs: f64,
    pub emulator_cpu_secs: Option<f64>,
    pub wall_secs: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub async fn enqueue(args: EnqueueArgs) -> Result<()> {
    let options = crate::daemon::StartOptions::default();
    options.paused.store(true, Ordering::Release);
    let rig = Rig::start(RigSpec {
        queue: args.backend.queue()?,
        limits: vec![10],
        sandbox: SandboxOptions { latency_ms: 0, ..Default::default() },
        tune: Box::new(|c| {
            c.log.level = "warn".into();
            // The benchmark's one client is meant to go as fast as the daemon answers.
            c.http.requests_per_min_per_token = std::num::NonZeroU32::MAX;
        }),
        options,
        ..Default::default()
    })
    .await?;
    let url = format!("http://{}/v1/jobs", rig.daemon().http_addr());
    let token = rig.token().await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let connection = rig.erps[0].connection.to_string();
    let body = |round: usize| {
        let docs: Vec<_> = crate::samples::invoices(&format!("bench{round}"), args.invoices);
        serde_json::json!({"connection_id": connection, "op": "export_invoice", "documents": docs}).to_string()
    };
    // Built beforehand: a client is another machine, its CPU is not the daemon's to share.
    let payloads: Vec<String> = (0..args.warmup + args.requests).map(body).collect();
    let emulator = args.backend.emulator_pid();
    let (cpu0, emu0) = (process_cpu_secs(None), emulator.and_then(|p| process_cpu_secs(Some(p))));
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(args.requests);
    let mut unsent = 0;
    let tick = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    for (round, payload) in payloads.into_iter().enumerate() {
        if let Some(tick) = tick {
            tokio::time::sleep_until((started + tick * round as u32).into()).await;
        }
        let t = Instant::now();
        let resp = client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .context("POST /v1/jobs")?;
        let elapsed = t.elapsed().as_secs_f64() * 1000.0;
        if resp.status() != reqwest::StatusCode::ACCEPTED {
            bail!("POST /v1/jobs answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        let answer: serde_json::Value = resp.json().await?;
        unsent += answer["unsent"].as_u64().unwrap_or(0);
        if round >= args.warmup {
            latencies.push(elapsed);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = process_cpu_secs(None).zip(cpu0).map(|(b, a)| b - a).unwrap_or(0.0);
    let emu = emulator.and_then(|p| process_cpu_secs(Some(p))).zip(emu0).map(|(b, a)| b - a);
    rig.shutdown().await;
    latencies.sort_by(f64::total_cmp);
    let report = EnqueueReport {
        backend: args.backend.backend.clone(),
        requests: args.requests,
        invoices_per_request: args.invoices,
        rate: args.rate,
        p50_ms: percentile(&latencies, 50.0),
        p90_ms: percentile(&latencies, 90.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        mean_ms: latencies.iter().sum::<f64>() / latencies.len().max(1) as f64,
        unsent_items: unsent,
        process_cpu_secs: cpu,
        emulator_cpu_secs: emu,
        wall_secs: wall,
    };
    if args.backend.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("backend        {}", report.backend);
        let pace = if args.rate > 0.0 { format!("{} per second", args.rate) } else { "back to back".into() };
        println!(
            "requests       {} x {} invoices (after {} warm-up), {pace}",
            report.requests, args.invoices, args.warmup
        );
        println!(
            "202 latency    p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            report.p50_ms, report.p90_ms, report.p99_ms, report.max_ms
        );
        println!("unsent items   {}", report.unsent_items);
        println!("cpu            erpsync {:.1} s, queue server {} over {:.1} s", cpu, fmt_cpu(emu), wall);
    }
    Ok(())
}

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

/// Thread name of the runtime the benchmark's sandbox ERPs run on.
pub(super) const SANDBOX_THREADS: &str = "bench-sandbox";

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

pub(super) fn fmt_cpu(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "n/a".into())
}

/// CPU seconds used so far by this process, by its sandbox ERP threads (a part of it),
/// and by the queue server when its process is known; or, from [`CpuSample::since`],
/// used between two samples.
pub(super) struct CpuSample {
    pub process: f64,
    pub sandbox: f64,
    pub emulator: Option<f64>,
}

impl CpuSample {
    pub fn take(emulator: Option<u32>) -> CpuSample {
        CpuSample {
            process: process_cpu_secs(None).unwrap_or(0.0),
            sandbox: threads_cpu_secs(SANDBOX_THREADS).unwrap_or(0.0),
            emulator: emulator.and_then(|p| process_cpu_secs(Some(p))),
        }
    }

    pub fn since(&self, earlier: &CpuSample) -> CpuSample {
        CpuSample {
            process: self.process - earlier.process,
            sandbox: self.sandbox - earlier.sandbox,
            emulator: self.emulator.zip(earlier.emulator).map(|(b, a)| b - a),
        }
    }
}

/// The queue server's process: the one given, else the one listening on the endpoint's port.
pub(super) fn emulator_pid(explicit: Option<u32>, endpoint_url: &str) -> Option<u32> {
    explicit.or_else(|| {
        let url = reqwest::Url::parse(endpoint_url).ok()?;
        listener_pid(url.port_or_known_default()?)
    })
}

/// User + system CPU seconds of a process (this one when `pid` is None), from /proc.
fn process_cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    stat_cpu_secs(&std::fs::read_to_string(path).ok()?)
}

/// User + system CPU seconds of this process's threads whose name starts with `prefix`.
fn threads_cpu_secs(prefix: &str) -> Option<f64> {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        total += stat_cpu_secs(&stat).unwrap_or(0.0);
    }
    Some(total)
}

/// utime + stime of a `/proc/.../stat` line, in seconds.
fn stat_cpu_secs(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The process listening on a local TCP port (for the queue server's CPU figure).
fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                inodes.extend(f.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}
