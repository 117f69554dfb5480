//! `erpsync bench connectors`: a vendor connector against its simulator at the vendor's
//! documented limits, drained against the ideal its binding limit allows.
//!
//! Every bill costs two calls (the create and its PDF). At Xero's limits — 5 calls in
//! progress and 60 a minute per tenant — and QuickBooks' — 10 in progress and 500 a minute
//! per realm — the minute budget binds at a 300 ms latency once there is more than a
//! minute's budget of calls: the ideal ([`ideal_drain`]) spends each minute's budget as the
//! minute opens, as fast as the concurrency allows. Efficiency is the ideal over the
//! measured drain; a connector that spends the vendor's budget without exceeding it
//! reaches it without a single 429. A Business Central bill costs three calls (the create,
//! the attachment record and its content); at 5 in progress and 6,000 in five minutes per
//! user, concurrency binds.

use crate::domain::{ConnectionId, ItemState, Op};
use crate::erp::sandbox::{BUSINESS_CENTRAL, NETSUITE, QUICKBOOKS_ONLINE, SAGE_INTACCT, Sandbox, SandboxOptions, XERO};
use crate::jobs::{self, JobRequest};
use crate::rig::{
    Rig, RigSpec, business_central_connection, business_central_invoices, count, netsuite_connection,
    netsuite_invoices, quickbooks_connection, quickbooks_invoices, scratch_dir, xero_connection, xero_invoices,
};
use crate::rig::{sage_intacct_connection, sage_intacct_invoices};
use anyhow::{Result, bail};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct ConnectorsArgs {
    /// The vendor dialect: `xero`, `quickbooks_online`, `business_central`, `sage_intacct` or
    /// `netsuite`.
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

/// The fastest drain of `calls` calls at `latency_ms` each within `concurrency` calls in
/// progress and a vendor's fixed window of `budget` calls every `window_secs`, and which
/// of the two binds: each window's calls go out as soon as the window opens, as fast as
/// the concurrency lets them; the drain ends when the last window's last call is answered.
pub fn ideal_drain(
    calls: u64,
    budget: u64,
    window_secs: u64,
    concurrency: u64,
    latency_ms: u64,
) -> (&'static str, f64) {
    let latency = latency_ms as f64 / 1000.0;
    let waves = |n: u64| n.div_ceil(concurrency.max(1)) as f64 * latency;
    let by_concurrency = waves(calls);
    let budget = budget.max(1);
    // A window's calls that take longer than the window: the concurrency binds throughout.
    if waves(budget) >= window_secs as f64 || calls <= budget {
        return ("concurrency", by_concurrency);
    }
    let full = (calls - 1) / budget;
    let by_rate = (full * window_secs) as f64 + waves(calls - full * budget);
    if by_rate > by_concurrency { ("rate", by_rate) } else { ("concurrency", by_concurrency) }
}

pub async fn connectors(args: ConnectorsArgs) -> Result<()> {
    let opts = SandboxOptions { latency_ms: args.latency_ms, ..Default::default() };
    // A Business Central PDF is two calls: the attachment record, then its content; NetSuite
    // takes no PDF, so a bill is one call there.
    let calls_per_bill: u64 = match args.dialect.as_str() {
        "business_central" => 3,
        "netsuite" => 1,
        _ => 2,
    };
    // The rate budget: `budget` calls in any `window_secs` (Business Central's window slides
    // over five minutes; the others are a minute).
    let (dialect, concurrency, budget, window_secs) = match args.dialect.as_str() {
        "xero" => (&XERO, opts.xero.concurrent_limit as u32, opts.xero.minute_limit, 60),
        "quickbooks_online" => {
            (&QUICKBOOKS_ONLINE, opts.quickbooks.concurrent_limit as u32, opts.quickbooks.minute_limit, 60)
        }
        "business_central" => {
            (&BUSINESS_CENTRAL, opts.business_central.concurrent_limit as u32, opts.business_central.rate_per_5min, 300)
        }
        // Intacct meters volume monthly and throttles only concurrency: no minute budget.
        "sage_intacct" => (&SAGE_INTACCT, opts.intacct.concurrent_limit as u32, u32::MAX, 60),
        // NetSuite meters no calls per minute, only the account's concurrency.
        "netsuite" => (&NETSUITE, opts.netsuite.concurrency_limit as u32, u32::MAX, 60),
        other => bail!("--dialect: xero, quickbooks_online, business_central, sage_intacct or netsuite, not {other:?}"),
    };
    let per_min = (budget as u64 * 60 / window_secs) as u32;
    let sim = Sandbox::start_speaking(dialect, "127.0.0.1:0".parse()?, opts).await?;
    let dir = scratch_dir();
    let sim_url = sim.base_url();
    let dir2 = dir.clone();
    let dialect_name = args.dialect.clone();
    let rig = Rig::start(RigSpec {
        limits: vec![],
        tune: Box::new(move |c| {
            c.log.level = "warn".into();
            let conn = match dialect_name.as_str() {
                "xero" => xero_connection(c, "bench-erp", &sim_url, &dir2),
                "business_central" => business_central_connection(c, "bench-erp", &sim_url, &dir2),
                "sage_intacct" => sage_intacct_connection(c, "bench-erp", &sim_url, &dir2),
                "netsuite" => netsuite_connection(c, "bench-erp", &sim_url, &dir2),
                _ => quickbooks_connection(c, "bench-erp", &sim_url, &dir2),
            };
            c.connections = vec![conn];
        }),
        ..RigSpec::default()
    })
    .await?;
    // Short numbers: QuickBooks' DocNumber holds 21 characters.
    let docs = match args.dialect.as_str() {
        "xero" => xero_invoices("bench", args.invoices),
        "business_central" => business_central_invoices("bench", args.invoices),
        "sage_intacct" => sage_intacct_invoices("bench", args.invoices),
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
    let ideal_calls = calls_per_bill * args.invoices as u64;
    let (binding, ideal) = ideal_drain(ideal_calls, budget as u64, window_secs, concurrency as u64, args.latency_ms);
    let deadline = Duration::from_secs_f64(ideal * 3.0 + 120.0);
    let counts = rig.wait_terminal(deadline).await.map_err(|c| anyhow::anyhow!("not drained in time: {c:?}"))?;
    let measured = started.elapsed().as_secs_f64();
    let stats = sim.stats();
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
            "{}: {} bills ({} calls) at {} ms, limits {} in progress and {} ({} binds): {:.1} s against an ideal {:.1} s, efficiency {:.2}; {} throttled {:?}, {} duplicates, {} token refreshes, at most {} in progress",
            report.dialect,
            report.invoices,
            report.calls,
            report.latency_ms,
            report.concurrency_limit,
            match report.rate_limit_per_min {
                u32::MAX => "no rate budget".to_owned(),
                n => format!("{n}/min"),
            },
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

#[cfg(test)]
mod tests {
    use super::ideal_drain;

    #[test]
    fn the_ideal_spends_each_minute_as_it_opens() {
        // QuickBooks, 2,000 calls: three full minutes, then 500 calls in 50 waves of 10.
        let (binding, secs) = ideal_drain(2_000, 500, 60, 10, 300);
        assert_eq!(binding, "rate");
        assert!((secs - (180.0 + 15.0)).abs() < 1e-9, "{secs}");
        // Under a minute's budget only the concurrency binds.
        assert_eq!(ideal_drain(400, 500, 60, 10, 300), ("concurrency", 12.0));
        // A budget the concurrency cannot spend in its window does not bind (Business
        // Central: 6,000 in five minutes, 5 in progress).
        assert_eq!(ideal_drain(3_000, 6_000, 300, 5, 300).0, "concurrency");
        assert_eq!(ideal_drain(20_000, 6_000, 300, 5, 300).0, "concurrency");
    }
}
