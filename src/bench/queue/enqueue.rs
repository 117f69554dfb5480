//! `bench enqueue`: `POST /v1/jobs` with N invoices, answered 202, timed over many
//! requests. Receiving is held meanwhile, so the figure is the API's and the producer's,
//! not contention with draining.

use super::backend::BackendArgs;
use super::cpu::{fmt_cpu, process_cpu_secs};
use crate::erp::sandbox::SandboxOptions;
use crate::rig::{Rig, RigSpec};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
