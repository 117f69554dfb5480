//! Matcher benchmark: one vendor with 500 open bills, timed per scenario.
//!
//! Run: `cargo run --release --example bench_matcher` (target: median ≤ 1 ms).

use chrono::NaiveDate;
use erpsync::domain::{Payment, PaymentApplication, VendorRef};
use erpsync::pipeline::matching::{OpenBill, match_payment};
use rust_decimal::Decimal;
use std::hint::black_box;
use std::time::{Duration, Instant};

const BILLS: usize = 500;
const RUNS: usize = 2_000;

/// Deterministic pseudo-random balances between 50.00 and 20,000.00 (no rand dependency).
fn open_bills() -> Vec<OpenBill> {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    (0..BILLS)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let cents = 5_000 + (seed % 1_995_000) as i64;
            OpenBill {
                erp_id: format!("{}", 10_000 + i),
                number: format!("INV-{:06}", i * 7 + 3),
                balance: Decimal::new(cents, 2),
                currency: "USD".into(),
                due_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new((i % 365) as u64),
            }
        })
        .collect()
}

fn payment(amount: Decimal, apps: Vec<PaymentApplication>) -> Payment {
    Payment {
        source_id: "bench".into(),
        vendor: VendorRef { id: "V1".into(), name: "Bench Vendor".into() },
        amount,
        currency: "USD".into(),
        date: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        method: "ach".into(),
        applications: apps,
        reference: None,
        bank_account: Some("1010".into()),
    }
}

fn measure(name: &str, p: &Payment, bills: &[OpenBill]) {
    let outcome = match_payment(p, bills).expect("benchmark payments match");
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            black_box(match_payment(black_box(p), black_box(bills)).ok());
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    let median = times[RUNS / 2];
    let p99 = times[RUNS * 99 / 100];
    println!(
        "{name:<28} median {:>8.1} µs   p99 {:>8.1} µs   ({:?}, {} bill(s), unapplied {})",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        outcome.strategy,
        outcome.applied.len(),
        outcome.unapplied
    );
}

fn main() {
    let bills = open_bills();
    println!("matcher, {BILLS} open bills, {RUNS} runs per scenario");
    let remit = ["inv 003", "INV-000346", "inv-3454"]
        .iter()
        .map(|n| PaymentApplication { invoice_number: (*n).into(), amount: Decimal::new(1_000, 2) })
        .collect();
    measure("remittance (3 invoices)", &payment(Decimal::new(3_000, 2), remit), &bills);
    measure("unique amount", &payment(bills[250].balance, vec![]), &bills);
    let pair = bills[17].balance + bills[401].balance;
    measure("subset of 2", &payment(pair, vec![]), &bills);
    let triple = bills[5].balance + bills[222].balance + bills[480].balance;
    measure("subset of 3", &payment(triple, vec![]), &bills);
    measure("3 of 500 by sum", &payment(Decimal::new(1_234_567, 2), vec![]), &bills);
    // Worst case: every balance an even number of cents and an odd payment, so no set can
    // ever match and the search runs until its step budget is spent.
    let even: Vec<OpenBill> = bills
        .iter()
        .cloned()
        .map(|mut b| {
            b.balance = (b.balance * Decimal::new(50, 0)).floor() / Decimal::new(50, 0);
            b
        })
        .collect();
    measure("no match (budget exhausted)", &payment(Decimal::new(1_234_567, 2), vec![]), &even);
}
