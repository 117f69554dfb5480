//! `erpsync demo`: three sandbox ERPs with different limits (and some injected faults)
//! and the daemon, in one process, exporting sample invoices with live progress.

use crate::domain::{ItemState, JobId};
use crate::erp::sandbox::SandboxOptions;
use crate::rig::{Rig, RigSpec};
use crate::store;
use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

pub async fn run(per_connection: usize) -> Result<()> {
    let rig = Rig::start(RigSpec {
        limits: vec![2, 4, 8],
        sandbox: SandboxOptions { latency_ms: 40, jitter_ms: 40, fault_rate: 0.05, ..Default::default() },
        ..Default::default()
    })
    .await?;
    println!("daemon API on http://{} — sandbox ERPs:", rig.daemon().http_addr());
    for e in &rig.erps {
        println!("  {:<16} limit {:>2} at {}", e.connection, e.limit, e.sandbox.base_url());
    }
    let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let mut jobs: Vec<JobId> = Vec::new();
    for i in 0..rig.erps.len() {
        let docs: Vec<_> = (0..per_connection).map(|n| crate::samples::invoice(&format!("{tag}{i}"), n)).collect();
        jobs.push(rig.submit(i, &docs).await?);
    }
    let started = Instant::now();
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:<16} {bar:40} {pos:>4}/{len} {msg}").expect("template");
    let bars: Vec<ProgressBar> = rig
        .erps
        .iter()
        .map(|e| {
            let b = multi.add(ProgressBar::new(per_connection as u64));
            b.set_style(style.clone());
            b.set_prefix(e.connection.to_string());
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
        "{:<16} {:>5} {:>6} {:>7} {:>8} {:>16}",
        "connection", "done", "failed", "retries", "limit", "max concurrency"
    );
    for ((s, e), stats) in summaries.iter().zip(&rig.erps).zip(rig.stats()) {
        let ok = s.items.iter().filter(|i| i.state == ItemState::Succeeded).count();
        let failed = s.items.len() - ok;
        let retries: i32 = s.items.iter().map(|i| (i.attempts - 1).max(0)).sum();
        println!(
            "{:<16} {:>5} {:>6} {:>7} {:>8} {:>16}",
            e.connection, ok, failed, retries, e.limit, stats.max_concurrent_seen
        );
    }
    rig.shutdown().await;
    Ok(())
}
