//! `erpsync bench render`: invoices per second through the pipeline's CPU work — the ERP
//! serializer, the invoice PDF and the CSV row — per ERP kind, on one thread and on one
//! thread per core. No actors, no I/O: this is the ceiling the renderer stage pool can
//! reach, and what a connection's ERP limits are compared against.

use crate::domain::{ErpKind, Invoice, InvoiceLine};
use crate::pipeline::Document;
use crate::pipeline::render::{csv, pdf};
use anyhow::{Context, Result};
use rust_decimal::Decimal;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Lines per invoice.
    #[arg(long, default_value_t = 10)]
    pub lines: usize,
    /// How long each run (one ERP kind, one thread count) measures.
    #[arg(long, default_value_t = 2000)]
    pub run_ms: u64,
    /// Threads of the "all cores" runs (default: the cores available).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct RenderReport {
    pub lines: usize,
    pub run_ms: u64,
    pub threads: usize,
    /// Average size of the PDFs rendered.
    pub pdf_bytes: usize,
    pub results: Vec<ErpThroughput>,
}

#[derive(Debug, Serialize)]
pub struct ErpThroughput {
    pub erp: &'static str,
    /// Invoices per second of wall-clock time.
    pub one_core_per_sec: f64,
    pub all_cores_per_sec: f64,
    /// Invoices per second of CPU time the benchmark threads got (Linux; absent
    /// elsewhere): what a core does when nothing else runs on the machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_cpu_sec: Option<f64>,
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub per_sec: f64,
    pub per_cpu_sec: Option<f64>,
    pub pdf_bytes: usize,
}

/// CPU time this thread has had, from the Linux scheduler's statistics.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?))
}

/// Invoice `n` of the benchmark: `lines` lines (one long description that wraps), taxed,
/// a vendor name with Latin-1 and Latin Extended-A characters.
pub fn invoice(n: usize, lines: usize) -> Invoice {
    let mut inv = crate::samples::invoice("bench", n);
    inv.lines = (0..lines)
        .map(|l| {
            let quantity = Decimal::from(1 + (n + l) % 7);
            let unit_price = Decimal::new(995 + ((n * 31 + l * 97) % 50_000) as i64, 2);
            let amount = quantity * unit_price;
            let description = if l == 0 {
                format!(
                    "Replacement filter cartridges for line {n}, delivered to Werk Süd, Halle 3 — includes \
                     the express freight surcharge and the disposal of the old cartridges"
                )
            } else {
                format!("Maintenance item {l}: seals, gaskets & fittings")
            };
            InvoiceLine {
                description,
                gl_account: Some(format!("{}", 6000 + l * 10)),
                item: None,
                quantity,
                unit_price,
                amount,
                tax_amount: (amount * Decimal::new(19, 2)).round_dp(2),
                tax_code: Some("VAT19".into()),
            }
        })
        .collect();
    inv.total = inv.lines.iter().map(|l| l.amount + l.tax_amount).sum();
    inv
}

/// `docs` with the vendor reference of `erp`'s samples, where it has its own kind.
fn vendor_of(erp: ErpKind, docs: &[Document]) -> Vec<Document> {
    let id = crate::erp::registry::module(erp).sample_vendor_id();
    docs.iter()
        .cloned()
        .map(|mut d| {
            if let (Document::Invoice(inv), Some(id)) = (&mut d, id) {
                inv.vendor.id = id.to_owned();
            }
            d
        })
        .collect()
}

/// What an export of one invoice computes; returns the PDF's size.
fn work(erp: ErpKind, doc: &Document) -> Result<usize> {
    let Document::Invoice(inv) = doc else { unreachable!("the benchmark renders invoices") };
    crate::erp::registry::serialize(erp, doc).with_context(|| format!("serializing for {}", erp.as_str()))?;
    let bytes = pdf::invoice_pdf(inv)?;
    csv::bills(std::slice::from_ref(inv))?;
    Ok(bytes.len())
}

/// Runs `work` on `threads` threads for `run`, the documents' vendor named as `erp`
/// names one.
pub fn measure(erp: ErpKind, docs: &[Document], threads: usize, run: Duration) -> Result<Measured> {
    let docs = &vendor_of(erp, docs);
    let done = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + run;
    let cpu = std::thread::scope(|s| -> Result<Option<Duration>> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (done, bytes) = (&done, &bytes);
                s.spawn(move || -> Result<Option<Duration>> {
                    let cpu_start = thread_cpu();
                    // Each thread starts at its own place in the documents, and does at
                    // least one, so a short run still measures something.
                    let mut i = t * docs.len() / threads.max(1);
                    loop {
                        let size = work(erp, &docs[i % docs.len()])?;
                        done.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(size as u64, Ordering::Relaxed);
                        i += 1;
                        if Instant::now() >= deadline {
                            return Ok(cpu_start.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a)));
                        }
                    }
                })
            })
            .collect();
        let mut cpu = Some(Duration::ZERO);
        for w in workers {
            let used = w.join().expect("benchmark threads do not panic")?;
            cpu = cpu.zip(used).map(|(a, b)| a + b);
        }
        Ok(cpu)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    Ok(Measured {
        per_sec: n as f64 / elapsed,
        per_cpu_sec: cpu.filter(|c| !c.is_zero()).map(|c| n as f64 / c.as_secs_f64()),
        pdf_bytes: (bytes.load(Ordering::Relaxed) / n.max(1)) as usize,
    })
}

pub fn run(args: &RenderArgs) -> Result<RenderReport> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let docs: Vec<Document> = (0..64).map(|n| Document::Invoice(invoice(n, args.lines))).collect();
    // Warm up: fonts parsed, the shared font subset built.
    work(ErpKind::GenericRest, &docs[0])?;
    let run = Duration::from_millis(args.run_ms);
    let mut results = Vec::new();
    let mut pdf_bytes = 0;
    for erp in ErpKind::ALL {
        let one = measure(erp, &docs, 1, run)?;
        let all = measure(erp, &docs, threads, run)?;
        pdf_bytes = one.pdf_bytes;
        // Over both runs: more work, so a steadier figure.
        let per_cpu_sec = match (one.per_cpu_sec, all.per_cpu_sec) {
            (Some(a), Some(b)) => Some((a + b * threads as f64) / (1.0 + threads as f64)),
            _ => None,
        };
        results.push(ErpThroughput {
            erp: erp.as_str(),
            one_core_per_sec: one.per_sec,
            all_cores_per_sec: all.per_sec,
            per_cpu_sec,
        });
    }
    Ok(RenderReport { lines: args.lines, run_ms: args.run_ms, threads, pdf_bytes, results })
}

/// `erpsync bench render`.
pub fn render(args: RenderArgs) -> Result<()> {
    let report = run(&args)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{}-line invoices, serialize + PDF ({} bytes on average) + CSV, {} ms per run",
        report.lines, report.pdf_bytes, report.run_ms
    );
    let all = format!("{} threads", report.threads);
    println!("{:<20} {:>14} {:>14} {:>14}", "erp", "1 thread /s", format!("{all} /s"), "per CPU-s");
    for r in &report.results {
        let cpu = r.per_cpu_sec.map(|c| format!("{c:.0}")).unwrap_or_else(|| "-".into());
        println!("{:<20} {:>14.0} {:>14.0} {:>14}", r.erp, r.one_core_per_sec, r.all_cores_per_sec, cpu);
    }
    println!("(per CPU-s: invoices per second of CPU time the benchmark got, unaffected by other load)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_invoices_are_valid_and_every_erp_renders_them() {
        for n in 0..8 {
            invoice(n, 10).validate().unwrap();
        }
        let docs = [Document::Invoice(invoice(1, 10))];
        for erp in ErpKind::ALL {
            let m = measure(erp, &docs, 2, Duration::ZERO).unwrap();
            assert!(m.per_sec > 0.0 && m.pdf_bytes > 1000, "{} {m:?}", erp.as_str());
        }
    }
}
