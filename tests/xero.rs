//! The Xero connector against the Xero simulator (`erp::sandbox::XERO`, which answers as
//! Xero's reference documents): the vendor contract of `tests/common/vendor.rs`.

mod common;

use common::vendor::{self, XERO_VENDOR};
use erpsync::erp::sandbox::XERO_CONTACTS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_xero_export_through_faults_creates_every_bill_once_on_sqlite() {
    vendor::exports_every_bill_once(&XERO_VENDOR, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_xero_export_through_faults_creates_every_bill_once_on_postgres() {
    vendor::exports_every_bill_once(&XERO_VENDOR, Some(common::fresh_postgres().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_xero_refuses_fails_alone_with_xeros_message() {
    // An archived contact: Xero refuses the bill with a validation error.
    vendor::a_refused_bill_fails_alone(&XERO_VENDOR, XERO_CONTACTS[3].0).await;
}

/// Purchase orders whose every create answer is lost after Xero committed it, with
/// Xero's idempotency cache gone (a retry days later): each order is found by its number
/// (`GET /PurchaseOrders/{PurchaseOrderNumber}`) and adopted, never created twice — Xero
/// would refuse the second with "Order number must be unique".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_order_whose_answer_was_lost_is_found_by_its_number() {
    use erpsync::domain::{ItemState, Op};
    use erpsync::rig::count;
    use std::time::Duration;
    let opts = erpsync::erp::sandbox::SandboxOptions {
        latency_ms: 2,
        timeout_rate: 1.0,
        stall_ms: 1_500,
        idempotency_ttl_secs: 0,
        ..Default::default()
    };
    let sim = erpsync::erp::sandbox::Sandbox::start_speaking(
        XERO_VENDOR.dialect,
        "127.0.0.1:0".parse().unwrap(),
        (XERO_VENDOR.options)(opts),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rig = vendor::start(&XERO_VENDOR, None, &sim, dir.path()).await;
    let orders: Vec<_> = (0..4)
        .map(|i| {
            let mut po = erpsync::domain::samples::purchase_order();
            po.source_id = format!("po-lost-{i}");
            po.number = format!("PO-LOST-{i}");
            po.vendor.id = XERO_CONTACTS[i % 3].0.to_owned();
            po
        })
        .collect();
    let req = erpsync::jobs::JobRequest {
        connection_id: erpsync::domain::ConnectionId::new(vendor::CONNECTION),
        op: Op::ExportPurchaseOrder,
        documents: orders.iter().map(|d| serde_json::value::to_raw_value(d).unwrap()).collect(),
    };
    let job = erpsync::jobs::submit(rig.daemon().ctx(), req).await.unwrap().job_id;
    let counts = rig.wait_terminal(Duration::from_secs(60)).await.expect("every item finishes");
    assert_eq!(count(&counts, ItemState::Succeeded), 4, "{counts:?} {:?}", vendor::errors(&rig, &job).await);
    let stats = sim.stats();
    assert_eq!(stats.creates, 4, "each order created once: {stats:?}");
    assert!(stats.stalls >= 4, "every first answer was lost: {stats:?}");
    rig.shutdown().await;
}
