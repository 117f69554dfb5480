//! What every ERP kind must do alike, asked of each kind through the registry.

mod golden;

use super::*;
use crate::domain::{Op, samples};
use crate::pipeline::matching::MatchOutcome;
use rust_decimal::Decimal;

#[test]
fn invalid_documents_are_refused_with_every_field() {
    let mut inv = samples::invoice();
    inv.currency = "EURO".into();
    inv.number.clear();
    for erp in ErpKind::ALL {
        let err = serialize(erp, &Document::Invoice(inv.clone())).unwrap_err();
        assert_eq!(err.kind(), "validation");
        assert_eq!(err.to_string(), "invalid document: number: is required; currency: unknown currency code \"EURO\"");
    }
}

fn sample_payment(unapplied: Decimal, applied: bool) -> Document {
    use crate::pipeline::matching::Applied;
    let p = samples::payment();
    let outcome = MatchOutcome {
        applied: if applied {
            vec![Applied {
                erp_id: "1187".into(),
                number: "RE-2026-000117".into(),
                amount: p.amount - unapplied,
                reason: "test".into(),
            }]
        } else {
            Vec::new()
        },
        unapplied: if applied { unapplied } else { p.amount },
        ..Default::default()
    };
    Document::Payment(p, outcome)
}

#[test]
fn payments_the_erp_cannot_express_are_refused_by_name() {
    let kinds = |credit| -> Vec<(&str, &str)> {
        ErpKind::ALL
            .iter()
            .map(|&erp| {
                let r = serialize(erp, &sample_payment(credit, true));
                (erp.as_str(), r.err().map(|e| e.kind()).unwrap_or("ok"))
            })
            .collect()
    };
    let with_credit = kinds(Decimal::new(100, 0));
    assert_eq!(
        with_credit,
        [
            ("generic_rest", "ok"),
            ("quickbooks_online", "ok"),
            ("xero", "unapplied_credit"),
            ("netsuite", "unapplied_credit"),
            ("business_central", "ok"),
            ("sage_intacct", "unapplied_credit"),
        ]
    );
    for erp in
        [ErpKind::QuickbooksOnline, ErpKind::Xero, ErpKind::Netsuite, ErpKind::BusinessCentral, ErpKind::SageIntacct]
    {
        let e = serialize(erp, &sample_payment(Decimal::ZERO, false)).unwrap_err();
        assert_eq!(e.kind(), "nothing_applied", "{}", erp.as_str());
    }
    let Document::Payment(mut p, o) = sample_payment(Decimal::ZERO, true) else { unreachable!() };
    p.bank_account = None;
    let e = serialize(ErpKind::Xero, &Document::Payment(p.clone(), o.clone())).unwrap_err();
    assert_eq!(e.to_string(), "bank_account is required for xero");
    p.bank_account = Some("1010".into());
    p.method = "barter".into();
    let e = serialize(ErpKind::SageIntacct, &Document::Payment(p, o)).unwrap_err();
    assert_eq!(e.to_string(), "method \"barter\" has no equivalent in sage_intacct");
}

#[test]
fn identifiers_too_long_for_the_erp_are_refused() {
    let mut inv = samples::invoice();
    inv.number = "RE-2026-000117-CORRECTION-2".into();
    let e = serialize(ErpKind::QuickbooksOnline, &Document::Invoice(inv.clone())).unwrap_err();
    assert_eq!(e.to_string(), "number is 27 characters, quickbooks_online allows at most 21");
    serialize(ErpKind::Xero, &Document::Invoice(inv)).unwrap();
    let mut inv = samples::invoice();
    inv.lines[0].tax_code = None;
    let e = serialize(ErpKind::SageIntacct, &Document::Invoice(inv)).unwrap_err();
    assert_eq!(e.to_string(), "lines[0].tax_code is required for sage_intacct");
}

#[test]
fn every_kind_is_registered_under_its_own_name() {
    for kind in ErpKind::ALL {
        assert_eq!(module(kind).kind(), kind, "{}", kind.as_str());
    }
}

#[test]
fn the_profiles_hold_the_documented_defaults() {
    let defaults: Vec<_> = ErpKind::ALL
        .iter()
        .map(|&k| {
            let p = module(k).profile();
            (k.as_str(), p.max_concurrency, p.rate_limit_per_min, p.daily_limit)
        })
        .collect();
    assert_eq!(
        defaults,
        [
            ("generic_rest", 4, None, None),
            ("quickbooks_online", 10, Some(500), None),
            ("xero", 5, Some(60), Some(5_000)),
            ("netsuite", 5, None, None),
            ("business_central", 5, Some(1_200), None),
            ("sage_intacct", 6, None, None),
        ]
    );
    for kind in ErpKind::ALL {
        let p = module(kind).profile();
        assert!(p.max_concurrency <= ConnectionConfig::MAX_CONCURRENCY, "{}", kind.as_str());
        assert!(
            [Op::ExportInvoice, Op::ExportPurchaseOrder, Op::ExportPayment].iter().all(|&op| p.batch.for_op(op) >= 1)
        );
    }
}

#[test]
fn a_profile_refusing_purchase_orders_matches_its_serializer() {
    for kind in ErpKind::ALL {
        let result = serialize(kind, &Document::PurchaseOrder(samples::purchase_order()));
        let refused = matches!(result, Err(SerializeError::Unsupported { .. }));
        assert_eq!(refused, !module(kind).profile().accepts_purchase_orders, "{}", kind.as_str());
    }
}

#[test]
fn a_connection_setting_overrides_its_kinds_profile() {
    let mut c = ConnectionConfig::new("a", ErpKind::Xero, "https://api.xero.com/api.xro/2.0");
    assert_eq!(
        limits(&c),
        Limits { max_concurrency: 5, rate_limit_per_min: Some(60), daily_limit: Some(5_000), prefetch: 10 }
    );
    c.max_concurrency = std::num::NonZeroU32::new(20);
    c.rate_limit_per_min = std::num::NonZeroU32::new(30);
    c.prefetch = Some(3);
    assert_eq!(
        limits(&c),
        Limits { max_concurrency: 20, rate_limit_per_min: Some(30), daily_limit: Some(5_000), prefetch: 3 }
    );
    c.prefetch = None;
    assert_eq!(limits(&c).prefetch, 20, "the default prefetch is the limit, at least 10");
}

#[tokio::test]
async fn kinds_without_a_client_refuse_their_connections() {
    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    let cx = ClientContext { db, max_concurrency: 4, secrets: None };
    for kind in [ErpKind::BusinessCentral, ErpKind::SageIntacct] {
        let c = ConnectionConfig::new("a", kind, "http://127.0.0.1:1");
        let expected = format!("{} connections are not supported by this build yet", kind.as_str());
        assert_eq!(module(kind).check(&c), [("erp", expected.clone())]);
        assert_eq!(module(kind).client(&c, None, &cx).err(), Some(expected));
    }
    let c = ConnectionConfig::new("a", ErpKind::GenericRest, "http://127.0.0.1:1");
    assert!(module(ErpKind::GenericRest).check(&c).is_empty());
    assert!(module(ErpKind::GenericRest).client(&c, None, &cx).is_ok());
}
