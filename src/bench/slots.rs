//! `erpsync bench slots`: how close the daemon comes to the ideal drain time when every
//! connection's concurrency slots are the bottleneck. Self-contained: sandbox ERPs and the
//! daemon run in this process on a scratch SQLite database.

use crate::domain::ItemState;
use crate::erp::sandbox::SandboxOptions;
use crate::rig::{Rig, RigSpec, count};
use anyhow::{Result, bail};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct SlotsArgs {
    /// Invoices in all.
    #[arg(long, default_value_t = 5000)]
    pub invoices: usize,
    /// Fixed sandbox latency per ERP call.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Concurrency limits, one connection each.
    #[arg(long, value_delimiter = ',', default_values_t = vec![2u32, 5, 10, 25])]
    pub limits: Vec<u32>,
    /// `even`: the same number of invoices per connection; `proportional`: in proportion
    /// to each connection's limit (every connection busy until the end).
    #[arg(long, default_value = "even")]
    pub distribution: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct SlotsReport {
    pub invoices: usize,
    pub latency_ms: u64,
    pub limits: Vec<u32>,
    pub per_connection: Vec<usize>,
    pub distribution: String,
    pub measured_secs: f64,
    pub ideal_secs: f64,
    pub efficiency: f64,
    pub throttled: u64,
    pub duplicates: u64,
    pub max_concurrent_seen: Vec<u64>,
    pub succeeded: u64,
    /// Mean ERP call duration on the busiest connection, as the daemon measured it.
    pub busiest_mean_call_ms: f64,
    /// Share of the run the busiest connection's slots spent in ERP calls.
    pub busiest_slot_busy_fraction: f64,
}

pub async fn slots(args: SlotsArgs) -> Result<()> {
    let total_limit: u32 = args.limits.iter().sum();
    let per_connection: Vec<usize> = match args.distribution.as_str() {
        "even" => {
            let n = args.limits.len();
            (0..n).map(|i| args.invoices / n + usize::from(i < args.invoices % n)).collect()
        }
        "proportional" => args.limits.iter().map(|l| args.invoices * *l as usize / total_limit as usize).collect(),
        other => bail!("--distribution must be even or proportional, not {other:?}"),
    };
    let latency = Duration::from_millis(args.latency_ms);
    let ideal = per_connection
        .iter()
        .zip(&args.limits)
        .map(|(n, l)| latency.as_secs_f64() * *n as f64 / *l as f64)
        .fold(0.0, f64::max);
    let rig = Rig::start(RigSpec {
        limits: args.limits.clone(),
        sandbox: SandboxOptions { latency_ms: args.latency_ms, jitter_ms: 0, ..Default::default() },
        tune: Box::new(|c| {
            // One ERP call per document, as the ideal assumes.
            for conn in &mut c.connections {
                conn.attach_pdf = false;
            }
            c.log.level = "warn".into();
        }),
        ..Default::default()
    })
    .await?;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let docs: Vec<Vec<_>> = per_connection
        .iter()
        .enumerate()
        .map(|(i, n)| (0..*n).map(|k| crate::samples::invoice(&format!("{tag}{i}"), k)).collect())
        .collect();
    let started = Instant::now();
    for (i, d) in docs.iter().enumerate() {
        for chunk in d.chunks(1000) {
            rig.submit(i, chunk).await?;
        }
    }
    let counts = match rig.wait_terminal(Duration::from_secs(600)).await {
        Ok(c) => c,
        Err(c) => bail!("items still open after 10 minutes: {c:?}"),
    };
    let measured = started.elapsed().as_secs_f64();
    let stats = rig.stats();
    // Where the time went on the busiest connection: how long its ERP calls took as the
    // daemon saw them, and how busy its slots were.
    let busiest = per_connection
        .iter()
        .zip(&args.limits)
        .enumerate()
        .max_by(|a, b| (*a.1.0 as f64 / *a.1.1 as f64).total_cmp(&(*b.1.0 as f64 / *b.1.1 as f64)))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let label = rig.erps[busiest].connection.to_string();
    let stat = |suffix: &str| {
        crate::telemetry::sample(&format!(
            "{}{suffix}{{connection=\"{label}\"}}",
            crate::telemetry::CONNECTION_ERP_SECONDS
        ))
    };
    let (call_secs, calls) = (stat("_sum"), stat("_count"));
    let mean_call_ms = 1000.0 * call_secs / calls.max(1.0);
    let slot_busy = call_secs / (measured * args.limits[busiest] as f64);
    let report = SlotsReport {
        busiest_mean_call_ms: mean_call_ms,
        busiest_slot_busy_fraction: slot_busy,
        invoices: per_connection.iter().sum(),
        latency_ms: args.latency_ms,
        limits: args.limits.clone(),
        per_connection,
        distribution: args.distribution.clone(),
        measured_secs: measured,
        ideal_secs: ideal,
        efficiency: ideal / measured,
        throttled: stats.iter().map(|s| s.throttled).sum(),
        duplicates: stats.iter().map(|s| s.duplicate_creates).sum(),
        max_concurrent_seen: stats.iter().map(|s| s.max_concurrent_seen).collect(),
        succeeded: count(&counts, ItemState::Succeeded),
    };
    rig.shutdown().await;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "invoices       {} ({:?} over limits {:?}, {})",
            report.invoices, report.per_connection, report.limits, report.distribution
        );
        println!("latency        {} ms per ERP call", report.latency_ms);
        println!("measured       {:.3} s", report.measured_secs);
        println!("ideal          {:.3} s", report.ideal_secs);
        println!("efficiency     {:.3}", report.efficiency);
        println!("succeeded      {}", report.succeeded);
        println!("throttled      {}", report.throttled);
        println!("duplicates     {}", report.duplicates);
        println!("max concurrent {:?}", report.max_concurrent_seen);
        println!(
            "busiest connection: mean ERP call {:.2} ms, slots busy {:.1} % of the run",
            report.busiest_mean_call_ms,
            100.0 * report.busiest_slot_busy_fraction
        );
    }
    Ok(())
}
