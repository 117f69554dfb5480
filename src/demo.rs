//! `erpsync demo`: one connection of each ERP dialect — the generic REST protocol, Xero,
//! QuickBooks Online, Business Central, NetSuite and Sage Intacct — each against its
//! simulator at the vendor's documented limits (with some latency and injected faults),
//! and the daemon, in one process, exporting sample invoices with live progress.

use crate::config::{Config, ConnectionConfig};
use crate::domain::{ConnectionId, ErpKind, Invoice, ItemState, JobId, Op};
use crate::erp::registry;
use crate::erp::sandbox::{Sandbox, SandboxOptions};
use crate::jobs::{self, JobRequest};
use crate::rig::{self, Rig, RigSpec, scratch_dir};
use crate::store;
use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::path::Path;
use std::time::{Duration, Instant};

/// A connection to a simulator at a URL, its secrets written under a directory.
type Connect = fn(&mut Config, &str, &str, &Path) -> ConnectionConfig;

/// One dialect of the demo: its kind, how a connection to its simulator is made, and
/// documents its simulated company accepts.
struct Dialect {
    kind: ErpKind,
    connect: Connect,
    invoices: fn(&str, usize) -> Vec<Invoice>,
}

fn generic_rest(_: &mut Config, id: &str, sim_url: &str, _: &Path) -> ConnectionConfig {
    ConnectionConfig::new(id, ErpKind::GenericRest, sim_url)
}

const DIALECTS: [Dialect; 6] = [
    Dialect { kind: ErpKind::GenericRest, connect: generic_rest, invoices: crate::samples::invoices },
    Dialect { kind: ErpKind::Xero, connect: rig::xero_connection, invoices: rig::xero_invoices },
    Dialect {
        kind: ErpKind::QuickbooksOnline,
        connect: rig::quickbooks_connection,
        invoices: rig::quickbooks_invoices,
    },
    Dialect {
        kind: ErpKind::BusinessCentral,
        connect: rig::business_central_connection,
        invoices: rig::business_central_invoices,
    },
    Dialect { kind: ErpKind::Netsuite, connect: rig::netsuite_connection, invoices: rig::netsuite_invoices },
    Dialect { kind: ErpKind::SageIntacct, connect: rig::sage_intacct_connection, invoices: rig::sage_intacct_invoices },
];

pub async fn run(per_connection: usize) -> Result<()> {
    let opts = SandboxOptions { latency_ms: 40, jitter_ms: 40, fault_rate: 0.05, ..Default::default() };
    let mut sims = Vec::new();
    for d in &DIALECTS {
        let dialect = registry::module(d.kind).sandbox().expect("every demo kind has a simulator");
        sims.push(Sandbox::start_speaking(dialect, "127.0.0.1:0".parse()?, opts.clone()).await?);
    }
    let dir = scratch_dir();
    let urls: Vec<String> = sims.iter().map(Sandbox::base_url).collect();
    let secrets = dir.clone();
    let rig = Rig::start(RigSpec {
        limits: vec![],
        tune: Box::new(move |config| {
            config.log.level = "warn".into();
            config.connections = DIALECTS
                .iter()
                .zip(&urls)
                .map(|(d, url)| (d.connect)(config, d.kind.as_str(), url, &secrets))
                .collect();
        }),
        ..RigSpec::default()
    })
    .await?;
    println!(
        "daemon API on http://{} — one connection per ERP dialect, each against its simulator:",
        rig.daemon().http_addr()
    );
    for (d, sim) in DIALECTS.iter().zip(&sims) {
        let limits = registry::limits(rig.config.connections.iter().find(|c| c.erp == d.kind).expect("configured"));
        let rate = limits.rate_limit_per_min.map(|n| format!(", {n}/min")).unwrap_or_default();
        println!("  {:<18} {} in progress{rate} at {}", d.kind.as_str(), limits.max_concurrency, sim.base_url());
    }
    let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let mut jobs: Vec<JobId> = Vec::new();
    for (i, d) in DIALECTS.iter().enumerate() {
        let docs = (d.invoices)(&format!("{tag}{i}"), per_connection);
        let req = JobRequest {
            connection_id: ConnectionId::new(d.kind.as_str()),
            op: Op::ExportInvoice,
            documents: docs.iter().map(serde_json::value::to_raw_value).collect::<Result<_, _>>()?,
        };
        jobs.push(jobs::submit(rig.daemon().ctx(), req).await?.job_id);
    }
    let started = Instant::now();
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:<18} {bar:40} {pos:>4}/{len} {msg}").expect("template");
    let bars: Vec<ProgressBar> = DIALECTS
        .iter()
        .map(|d| {
            let b = multi.add(ProgressBar::new(per_connection as u64));
            b.set_style(style.clone());
            b.set_prefix(d.kind.as_str());
            b
        })
        .collect();
    let db = &rig.daemon().ctx().db;
    let summaries = loop {
        let mut all = Vec::new();
        for (job, bar) in jobs.iter().zip(&bars) {
            let s = store::job_summary(db, job).await?.expect("job exists");
            let done = s.items.iter().filter(|i| i.state.is_terminal()).count();
            bar.set_position(done as u64);
            bar.set_message(format!("retrying {}", s.counts["retrying"]));
            all.push(s);
        }
        if all.iter().all(|s| s.items.iter().all(|i| i.state.is_terminal())) {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for b in &bars {
        b.finish();
    }
    println!("\nfinished in {:.1} s\n", started.elapsed().as_secs_f64());
    println!(
        "{:<18} {:>5} {:>6} {:>7} {:>10} {:>10} {:>16}",
        "connection", "done", "failed", "retries", "duplicates", "throttled", "max concurrency"
    );
    for ((s, d), sim) in summaries.iter().zip(&DIALECTS).zip(&sims) {
        let ok = s.items.iter().filter(|i| i.state == ItemState::Succeeded).count();
        let failed = s.items.len() - ok;
        let retries: i32 = s.items.iter().map(|i| (i.attempts - 1).max(0)).sum();
        let stats = sim.stats();
        println!(
            "{:<18} {:>5} {:>6} {:>7} {:>10} {:>10} {:>16}",
            d.kind.as_str(),
            ok,
            failed,
            retries,
            stats.duplicate_creates,
            stats.throttled,
            stats.max_concurrent_seen
        );
    }
    rig.shutdown().await;
    for sim in sims {
        sim.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
