//! `erpsync bench connectors`: a vendor connector against its simulator at the vendor's
//! documented limits, drained against the ideal its binding limit allows.
//!
//! Every bill costs two calls (the create and its PDF). At Xero's limits — 5 calls in
//! progress and 60 a minute per tenant — and QuickBooks' — 10 in progress and 500 a minute
//! per realm — the minute budget binds at a 300 ms latency, so the ideal is the last call
//! leaving when the budget allows it; with less concurrency the other bound
//! (`calls × latency / concurrency`) would. Efficiency is the ideal over the measured
//! drain; a connector that paces itself to the vendor's budget reaches it without a
//! single 429.

use crate::domain::{ConnectionId, ItemState, Op};
use crate::erp::sandbox::{NETSUITE, QUICKBOOKS_ONLINE, Sandbox, SandboxOptions, XERO};
use crate::jobs::{self, JobRequest};
use crate::rig::{
    Rig, RigSpec, count, netsuite_connection, netsuite_invoices, quickbooks_connection, quickbooks_invoices,
    scratch_dir, xero_connection, xero_invoices,
};
use anyhow::{Result, bail};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct ConnectorsArgs {
    /// The vendor dialect: `xero`, `quickbooks_online` or `netsuite`.
    #[arg(long, default_value = "xero")]
    pub dialect: String,
    /// Bills to export (two calls each: the create and the PDF).
    #[arg(long, default_value_t = 60)]
    pub invoices: usize,
    /// The simulated ERP's latency per call.
    #[arg(long, default_value_t = 300)]
    pub latency_ms: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct ConnectorsReport {
    pub dialect: String,
    pub invoices: usize,
    pub calls: u64,
    pub latency_ms: u64,
    pub concurrency_limit: u32,
    pub rate_limit_per_min: u32,
    pub binding_limit: &'static str,
    pub measured_secs: f64,
    pub ideal_secs: f64,
    pub efficiency: f64,
    pub throttled: u64,
    pub throttled_by_kind: std::collections::BTreeMap<String, u64>,
    pub duplicates: u64,
    pub refreshes: u64,
    pub max_concurrent_seen: u64,
    pub succeeded: u64,
}

pub async fn connectors(args: ConnectorsArgs) -> Result<()> {
    let opts = SandboxOptions { latency_ms: args.latency_ms, ..Default::default() };
    let (dialect, concurrency, per_min) = match args.dialect.as_str() {
        "xero" => (&XERO, opts.xero.concurrent_limit as u32, opts.xero.minute_limit),
        "quickbooks_online" => {
            (&QUICKBOOKS_ONLINE, opts.quickbooks.concurrent_limit as u32, opts.quickbooks.minute_limit)
        }
        // NetSuite meters no calls per minute, only the account's concurrency.
        "netsuite" => (&NETSUITE, opts.netsuite.concurrency_limit as u32, u32::MAX),
        other => bail!("--dialect: xero, quickbooks_online or netsuite, not {other:?}"),
    };
    let sim = Sandbox::start_speaking(dialect, "127.0.0.1:0".parse()?, opts).await?;
    let dir = scratch_dir();
    let sim_url = sim.base_url();
    let dir2 = dir.clone();
    let rig = Rig::start(RigSpec {
        limits: vec![],
        tune: Box::new(move |c| {
            c.log.level = "warn".into();
            let conn = match dialect.name {
                "xero" => xero_connection(c, "bench-erp", &sim_url, &dir2),
                "netsuite" => netsuite_connection(c, "bench-erp", &sim_url, &dir2),
                _ => quickbooks_connection(c, "bench-erp", &sim_url, &dir2),
            };
            c.connections = vec![conn];
        }),
        ..RigSpec::default()
    })
    .await?;
    // Short numbers: QuickBooks' DocNumber holds 21 characters.
    let docs = match dialect.name {
        "xero" => xero_invoices("bench", args.invoices),
        "netsuite" => netsuite_invoices("bench", args.invoices),
        _ => quickbooks_invoices("bench", args.invoices),
    };
    let req = JobRequest {
        connection_id: ConnectionId::new("bench-erp"),
        op: Op::ExportInvoice,
        documents: docs.iter().map(serde_json::value::to_raw_value).collect::<Result<_, _>>()?,
    };
    let started = Instant::now();
    jobs::submit(rig.daemon().ctx(), req).await?;
    // NetSuite takes no PDF: a bill is one call there.
    let calls_per_bill = if dialect.name == "netsuite" { 1 } else { 2 };
    let ideal_calls = calls_per_bill * args.invoices as u64;
    let deadline = Duration::from_secs(ideal_calls * 60 / per_min.max(1) as u64 * 3 + 120);
    let counts = rig.wait_terminal(deadline).await.map_err(|c| anyhow::anyhow!("not drained in time: {c:?}"))?;
    let measured = started.elapsed().as_secs_f64();
    let stats = sim.stats();
    let by_rate = ideal_calls as f64 * 60.0 / per_min as f64;
    let by_concurrency = ideal_calls as f64 * args.latency_ms as f64 / 1000.0 / concurrency as f64;
    // A budget of `per_min` a minute lets the first minute's calls go at once: the last of
    // `calls` goes out when the budget allows it, and is answered a latency later.
    let by_rate_exact =
        ((ideal_calls.saturating_sub(1)) / per_min as u64) as f64 * 60.0 + args.latency_ms as f64 / 1000.0;
    let (binding, ideal) = if by_rate >= by_concurrency {
        ("rate", by_rate_exact.max(by_concurrency))
    } else {
        ("concurrency", by_concurrency)
    };
    let report = ConnectorsReport {
        dialect: args.dialect.clone(),
        invoices: args.invoices,
        calls: stats.requests,
        latency_ms: args.latency_ms,
        concurrency_limit: concurrency,
        rate_limit_per_min: per_min,
        binding_limit: binding,
        measured_secs: measured,
        ideal_secs: ideal,
        efficiency: ideal / measured,
        throttled: stats.throttled,
        throttled_by_kind: stats.throttled_by_kind.clone(),
        duplicates: stats.duplicate_creates,
        refreshes: stats.refreshes,
        max_concurrent_seen: stats.max_concurrent_seen,
        succeeded: count(&counts, ItemState::Succeeded),
    };
    rig.shutdown().await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{}: {} bills ({} calls) at {} ms, limits {} in progress and {}/min ({} binds): {:.1} s against an ideal {:.1} s, efficiency {:.2}; {} throttled {:?}, {} duplicates, {} token refreshes, at most {} in progress",
            report.dialect,
            report.invoices,
            report.calls,
            report.latency_ms,
            report.concurrency_limit,
            report.rate_limit_per_min,
            report.binding_limit,
            report.measured_secs,
            report.ideal_secs,
            report.efficiency,
            report.throttled,
            report.throttled_by_kind,
            report.duplicates,
            report.refreshes,
            report.max_concurrent_seen
        );
    }
    if report.succeeded != args.invoices as u64 || report.duplicates > 0 {
        bail!("not every bill was created exactly once: {report:?}");
    }
    Ok(())
}
