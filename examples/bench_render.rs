//! Pipeline throughput: serialize + invoice PDF + CSV row for 10-line invoices, per ERP
//! kind, on one core and on all cores (plain threads; the daemon uses its render pool).
//!
//! Run: `cargo run --release --example bench_render` (target: ≥ 1,000 invoices/s on 2 cores).

use erpsync::domain::{ErpKind, Invoice, samples};
use erpsync::erp::registry;
use erpsync::pipeline::Document;
use erpsync::pipeline::render::{csv, pdf};
use std::time::Instant;

const PER_THREAD: usize = 200;

fn ten_line_invoice() -> Invoice {
    let mut inv = samples::invoice();
    let base = inv.lines.clone();
    inv.lines = (0..10).map(|i| base[i % base.len()].clone()).collect();
    inv.total = inv.subtotal() + inv.tax_total();
    inv.validate().expect("bench invoice is valid");
    inv
}

fn work(erp: ErpKind, inv: &Invoice, n: usize) {
    for _ in 0..n {
        let doc = Document::Invoice(inv.clone());
        std::hint::black_box(registry::serialize(erp, &doc).expect("serializes"));
        std::hint::black_box(pdf::invoice_pdf(inv).expect("renders"));
        std::hint::black_box(csv::bills(std::slice::from_ref(inv)).expect("csv"));
    }
}

fn main() {
    let inv = ten_line_invoice();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    work(ErpKind::GenericRest, &inv, 5); // parse the fonts once before timing
    println!("10-line invoices: serialize + PDF + CSV, {PER_THREAD} per thread, {cores} core(s)");
    for erp in ErpKind::ALL {
        let t = Instant::now();
        work(erp, &inv, PER_THREAD);
        let single = PER_THREAD as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..cores {
                s.spawn(|| work(erp, &inv, PER_THREAD));
            }
        });
        let all = (PER_THREAD * cores) as f64 / t.elapsed().as_secs_f64();
        println!("{:<18} 1 core {single:>7.0}/s   {cores} cores {all:>7.0}/s", erp.as_str());
    }
}
