use super::*;
use crate::domain::{PaymentApplication, VendorRef};
use proptest::prelude::*;
use rust_decimal_macros::dec;

fn bill(id: &str, number: &str, balance: Decimal, day: u32) -> OpenBill {
    OpenBill {
        erp_id: id.into(),
        number: number.into(),
        balance,
        currency: "USD".into(),
        due_date: NaiveDate::from_ymd_opt(2026, 1, day).unwrap(),
    }
}

fn payment(amount: Decimal, apps: &[(&str, Decimal)]) -> Payment {
    Payment {
        source_id: "p1".into(),
        vendor: VendorRef { id: "V1".into(), name: "Acme".into() },
        amount,
        currency: "USD".into(),
        date: NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(),
        method: "ach".into(),
        applications: apps
            .iter()
            .map(|(n, a)| PaymentApplication { invoice_number: (*n).into(), amount: *a })
            .collect(),
        reference: None,
        bank_account: None,
    }
}

fn paid(o: &MatchOutcome) -> Vec<(&str, Decimal)> {
    o.applied.iter().map(|a| (a.number.as_str(), a.amount)).collect()
}

#[test]
fn remittance_numbers_are_normalised_and_partial_payments_kept() {
    let bills = [bill("b1", "INV-00042", dec!(100), 1), bill("b2", "INV-43", dec!(80), 2)];
    let o = match_payment(&payment(dec!(150), &[("inv 42", dec!(100)), ("43", dec!(50))]), &bills).unwrap();
    assert_eq!(paid(&o), [("INV-00042", dec!(100)), ("INV-43", dec!(50))]);
    assert_eq!(o.unapplied, dec!(0));
    assert_eq!(o.strategy, MatchStrategy::Remittance);
    assert!(o.applied[1].reason.contains("partial payment of 50 against balance 80, 30 stays open"), "{o:?}");
}

#[test]
fn overpayment_is_unapplied_credit() {
    let bills = [bill("b1", "INV-1", dec!(100), 1)];
    let o = match_payment(&payment(dec!(130), &[("INV-1", dec!(120))]), &bills).unwrap();
    assert_eq!(paid(&o), [("INV-1", dec!(100))]);
    assert_eq!(o.unapplied, dec!(30));
    assert!(o.reason.contains("30 is more than the remittance applies"), "{}", o.reason);
    assert!(o.applied[0].reason.contains("asked for 120"));
}

#[test]
fn refusals_say_why() {
    let mut eur = bill("b1", "INV-1", dec!(100), 1);
    eur.currency = "EUR".into();
    let e = match_payment(&payment(dec!(100), &[("INV-1", dec!(100))]), &[eur.clone()]).unwrap_err();
    assert_eq!(e.kind(), "currency_mismatch");
    assert_eq!(e.to_string(), "payment is in USD but bill INV-1 is in EUR");
    let e = match_payment(&payment(dec!(100), &[]), &[eur]).unwrap_err();
    assert_eq!(e.kind(), "currency_mismatch");
    let e = match_payment(&payment(dec!(5), &[("INV-9", dec!(5))]), &[]).unwrap_err();
    assert_eq!(e.kind(), "unknown_bill");
    let two = [bill("b1", "INV-7", dec!(5), 1), bill("b2", "inv 007", dec!(5), 2)];
    let e = match_payment(&payment(dec!(5), &[("7", dec!(5))]), &two).unwrap_err();
    assert_eq!(e.kind(), "ambiguous_bill");
    assert!(e.to_string().contains("INV-7 (b1), inv 007 (b2)"), "{e}");
}

#[test]
fn reference_then_unique_amount() {
    let bills = [bill("b1", "INV-1", dec!(100), 1), bill("b2", "INV-2", dec!(250), 2)];
    let mut p = payment(dec!(60), &[]);
    p.reference = Some("Invoice #2".into());
    let o = match_payment(&p, &bills).unwrap();
    assert_eq!((o.strategy, paid(&o)), (MatchStrategy::Reference, vec![("INV-2", dec!(60))]));
    let o = match_payment(&payment(dec!(250), &[]), &bills).unwrap();
    assert_eq!((o.strategy, paid(&o)), (MatchStrategy::Amount, vec![("INV-2", dec!(250))]));
    assert!(o.reason.contains("only open bill with a balance of exactly 250"));
}

#[test]
fn smallest_subset_with_oldest_tie_break() {
    let bills = [
        bill("b1", "A", dec!(10.00), 5),
        bill("b2", "B", dec!(20.50), 1),
        bill("b3", "C", dec!(30.00), 3),
        bill("b4", "D", dec!(40.50), 2),
        bill("b5", "E", dec!(99.99), 9),
    ];
    // 20.50+30.00 and 40.50+10.00 both make 50.50: B (due day 1) is the oldest.
    let o = match_payment(&payment(dec!(50.50), &[]), &bills).unwrap();
    assert_eq!(o.strategy, MatchStrategy::Subset);
    assert_eq!(paid(&o), [("B", dec!(20.50)), ("C", dec!(30.00))]);
    assert!(o.reason.contains("B + C"), "{}", o.reason);
    // Two bills of 10: the one due first.
    let dup = [bill("x", "X", dec!(10), 9), bill("y", "Y", dec!(10), 1)];
    let o = match_payment(&payment(dec!(10), &[]), &dup).unwrap();
    assert_eq!(paid(&o), [("Y", dec!(10))]);
}

#[test]
fn covering_everything_then_single_bill_then_unmatched() {
    let bills = [bill("b1", "A", dec!(10), 1), bill("b2", "B", dec!(20), 2)];
    let o = match_payment(&payment(dec!(45), &[]), &bills).unwrap();
    assert_eq!((o.strategy, o.unapplied), (MatchStrategy::AllOpenBills, dec!(15)));
    let o = match_payment(&payment(dec!(7), &[]), &bills[..1]).unwrap();
    assert_eq!((o.strategy, paid(&o)), (MatchStrategy::SingleBill, vec![("A", dec!(7))]));
    let o = match_payment(&payment(dec!(7), &[]), &bills).unwrap();
    assert_eq!((o.strategy, o.unapplied), (MatchStrategy::Unmatched, dec!(7)));
    assert!(o.applied.is_empty());
    assert!(o.reason.contains("unapplied credit for a person to apply"));
}

fn arb_bills() -> impl Strategy<Value = Vec<OpenBill>> {
    prop::collection::vec((1i64..50_000, 1u32..28, 0u8..10, any::<bool>()), 0..40).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (cents, day, num, eur))| {
                let mut b = bill(&format!("b{i}"), &format!("INV-{num}{i}"), Decimal::new(cents, 2), day);
                if eur {
                    b.currency = "EUR".into();
                }
                b
            })
            .collect()
    })
}

fn arb_payment() -> impl Strategy<Value = Payment> {
    let apps = prop::collection::vec((0usize..40, 0u8..10, 1i64..60_000), 0..4);
    (1i64..200_000, apps, any::<bool>()).prop_map(|(cents, apps, with_ref)| {
        let mut p = payment(Decimal::new(cents, 2), &[]);
        let mut budget = p.amount;
        for (i, num, a) in apps {
            let amount = Decimal::new(a, 2).min(budget);
            if amount > Decimal::ZERO {
                budget -= amount;
                p.applications.push(PaymentApplication { invoice_number: format!("inv {num}{i}"), amount });
            }
        }
        if with_ref {
            p.reference = Some("INV-3".into());
        }
        p
    })
}

proptest! {
    #[test]
    fn applications_never_exceed_payment_or_balances(p in arb_payment(), bills in arb_bills()) {
        let Ok(o) = match_payment(&p, &bills) else { return Ok(()) };
        prop_assert_eq!(o.applied_total() + o.unapplied, p.amount);
        prop_assert!(o.unapplied >= Decimal::ZERO);
        prop_assert!(o.applied_total() <= p.amount);
        for a in &o.applied {
            prop_assert!(a.amount > Decimal::ZERO);
            prop_assert!(!a.reason.is_empty());
            let b = bills.iter().find(|b| b.erp_id == a.erp_id).unwrap();
            prop_assert_eq!(&b.currency, &p.currency);
            let total: Decimal = o.applied.iter().filter(|x| x.erp_id == a.erp_id).map(|x| x.amount).sum();
            prop_assert!(total <= b.balance);
        }
        prop_assert!(!o.reason.is_empty());
    }

    #[test]
    fn the_order_bills_arrive_in_does_not_matter(p in arb_payment(), bills in arb_bills()) {
        let mut reversed = bills.clone();
        reversed.reverse();
        prop_assert_eq!(match_payment(&p, &bills), match_payment(&p, &reversed));
    }

    #[test]
    fn subset_matches_sum_exactly(bills in arb_bills(), pick in prop::collection::vec(any::<prop::sample::Index>(), 1..4)) {
        let usd: Vec<&OpenBill> = bills.iter().filter(|b| b.currency == "USD").collect();
        prop_assume!(!usd.is_empty());
        let mut idx: Vec<usize> = pick.iter().map(|i| i.index(usd.len())).collect();
        idx.sort_unstable();
        idx.dedup();
        let amount: Decimal = idx.iter().map(|&i| usd[i].balance).sum();
        let o = match_payment(&payment(amount, &[]), &bills).unwrap();
        // A set summing exactly exists, so the matcher must place the whole payment.
        prop_assert_eq!(o.unapplied, Decimal::ZERO, "{:?}", o);
        prop_assert!(o.applied.len() <= idx.len());
    }
}

#[test]
fn a_remittance_naming_a_bill_paid_in_full_leaves_the_money_as_credit_and_says_so() {
    let bills = [bill("b1", "INV-1", dec!(0), 1), bill("b2", "INV-2", dec!(30), 2)];
    let o = match_payment(&payment(dec!(100), &[("INV-1", dec!(70)), ("INV-2", dec!(30))]), &bills).unwrap();
    assert_eq!(paid(&o), [("INV-2", dec!(30))]);
    assert_eq!(o.unapplied, dec!(70));
    assert!(o.reason.contains("remittance names invoice INV-1 but nothing is left to apply to it"), "{}", o.reason);
}

#[test]
fn without_a_remittance_a_bill_paid_in_full_is_not_a_candidate() {
    // The paid bill had the payment's exact amount: it must not be chosen again.
    let bills = [bill("b1", "INV-1", dec!(0), 1), bill("b2", "INV-2", dec!(40), 2), bill("b3", "INV-3", dec!(60), 3)];
    let o = match_payment(&payment(dec!(100), &[]), &bills).unwrap();
    assert_eq!(o.strategy, MatchStrategy::AllOpenBills, "{o:?}");
    assert_eq!(paid(&o), [("INV-2", dec!(40)), ("INV-3", dec!(60))]);
}
