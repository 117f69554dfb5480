//! The NetSuite connector against the NetSuite simulator (`erp::sandbox::NETSUITE`, which
//! answers as Oracle's reference documents): the vendor contract of `tests/common/vendor.rs`.

mod common;

use common::vendor::{self, Vendor};
use erpsync::domain::{ErpKind, Op};
use erpsync::erp::registry::{self, ClientContext};
use erpsync::erp::sandbox::{NETSUITE, NETSUITE_INACTIVE_VENDOR};
use erpsync::erp::{ErpClient, ErpError};
use erpsync::pipeline::Document;

static NETSUITE_VENDOR: Vendor = Vendor {
    dialect: &NETSUITE,
    connection: erpsync::rig::netsuite_connection,
    invoices: erpsync::rig::netsuite_invoices,
    options: |opts| opts,
    // A TBA token neither expires nor is refreshed.
    expire_tokens: None,
    rotates_refresh_tokens: false,
    concurrency: 5,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netsuite_export_through_faults_creates_every_bill_once_on_sqlite() {
    vendor::exports_every_bill_once(&NETSUITE_VENDOR, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netsuite_export_through_faults_creates_every_bill_once_on_postgres() {
    vendor::exports_every_bill_once(&NETSUITE_VENDOR, Some(common::fresh_postgres().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bill_netsuite_refuses_fails_alone() {
    // An inactive vendor: NetSuite refuses the bill's `entity` reference.
    vendor::a_refused_bill_fails_alone(&NETSUITE_VENDOR, NETSUITE_INACTIVE_VENDOR.0).await;
}

/// The client of a connection to `sim`, as the daemon builds it.
async fn client(sim: &erpsync::erp::sandbox::Sandbox, dir: &std::path::Path) -> std::sync::Arc<dyn ErpClient> {
    let mut config = erpsync::config::Config::default();
    let conn = erpsync::rig::netsuite_connection(&mut config, "c", &sim.base_url(), dir);
    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    let cx = ClientContext { db, max_concurrency: 5, secrets: None };
    let module = registry::module(ErpKind::Netsuite);
    assert!(module.check(&conn).is_empty(), "{:?}", module.check(&conn));
    module.client(&conn, conn.resolve_token().unwrap(), &cx).unwrap()
}

#[tokio::test]
async fn a_retried_create_lands_on_the_same_bill_with_its_lines_replaced_and_is_found_by_external_id() {
    let sim = vendor::simulator(&NETSUITE_VENDOR, 0.0, 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(&sim, dir.path()).await;
    let inv = erpsync::rig::netsuite_invoices("once", 3).remove(2);
    let lines = inv.lines.len();
    assert!(lines > 1);
    let payload = registry::serialize(ErpKind::Netsuite, &Document::Invoice(inv.clone())).unwrap();
    let first = client.create(Op::ExportInvoice, &payload, "k").await.unwrap();
    let again = client.create(Op::ExportInvoice, &payload, "k").await.unwrap();
    assert_eq!(first.erp_id, again.erp_id, "the upsert by external id updates the same bill");
    let stored = sim.bodies_for("vendorBill", &inv.source_id).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["expense"]["items"].as_array().unwrap().len(), lines, "lines replaced, not appended");
    assert_eq!(stored[0]["currency"]["id"], "1", "USD is sent as the account's currency id");
    let found = client.find_existing(Op::ExportInvoice, &inv.source_id, &payload).await.unwrap();
    assert_eq!(found, Some(first.erp_id));
    let other = registry::serialize(
        ErpKind::Netsuite,
        &Document::Invoice(erpsync::rig::netsuite_invoices("none", 1).remove(0)),
    )
    .unwrap();
    assert_eq!(client.find_existing(Op::ExportInvoice, "none-inv-0", &other).await.unwrap(), None);
    let stats = sim.stats();
    assert_eq!((stats.creates, stats.duplicate_creates), (1, 0), "{stats:?}");
}

#[tokio::test]
async fn a_revoked_token_is_revoked_and_a_refused_bill_keeps_netsuites_code() {
    let sim = vendor::simulator(&NETSUITE_VENDOR, 0.0, 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(&sim, dir.path()).await;
    let mut inv = erpsync::rig::netsuite_invoices("ref", 1).remove(0);
    inv.vendor.id = NETSUITE_INACTIVE_VENDOR.0.to_owned();
    let payload = registry::serialize(ErpKind::Netsuite, &Document::Invoice(inv)).unwrap();
    let ErpError::Rejected { status, code, message } =
        client.create(Op::ExportInvoice, &payload, "k").await.unwrap_err()
    else {
        panic!("an inactive vendor is a rejection")
    };
    assert_eq!((status, code.as_str()), (400, "INVALID_CONTENT"));
    assert!(message.contains("Invalid Field Value 104") && message.contains("(at entity)"), "{message}");
    let hook = format!("{}/__sandbox/netsuite/revoke", sim.base_url());
    reqwest::Client::new().post(hook).send().await.unwrap().error_for_status().unwrap();
    let err = client.create(Op::ExportInvoice, &payload, "k").await.unwrap_err();
    assert!(matches!(err, ErpError::Revoked { .. }), "{err:?}");
}

/// An account whose pool is smaller than the connection thinks (other integrations share
/// it): NetSuite's 429s are throttling, retried until every bill is created once.
static CROWDED_ACCOUNT: Vendor = Vendor {
    options: |mut opts| {
        opts.netsuite.concurrency_limit = 2;
        opts
    },
    ..NETSUITE_VENDOR
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netsuites_concurrency_429s_are_throttling_and_every_bill_is_still_created_once() {
    let sim = vendor::simulator(&CROWDED_ACCOUNT, 0.0, 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let rig = vendor::start(&CROWDED_ACCOUNT, None, &sim, dir.path()).await;
    let job = vendor::submit(&rig, &erpsync::rig::netsuite_invoices("crowd", 40)).await;
    let counts = rig.wait_terminal(std::time::Duration::from_secs(60)).await.expect("every item finishes");
    let succeeded = erpsync::rig::count(&counts, erpsync::domain::ItemState::Succeeded);
    assert_eq!(succeeded, 40, "{counts:?} {:?}", vendor::errors(&rig, &job).await);
    let stats = sim.stats();
    assert!(
        stats.throttled_by_kind.get("concurrency").is_some_and(|n| *n > 0),
        "the account's limit was hit: {stats:?}"
    );
    assert_eq!((stats.creates, stats.duplicate_creates), (40, 0), "{stats:?}");
    rig.shutdown().await;
}

#[tokio::test]
async fn a_purchase_order_and_a_payment_applying_a_bill_are_upserted_by_external_id() {
    use erpsync::pipeline::matching::{OpenBill, match_payment};
    let sim = vendor::simulator(&NETSUITE_VENDOR, 0.0, 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(&sim, dir.path()).await;
    let inv = erpsync::rig::netsuite_invoices("pay", 1).remove(0);
    let bill = registry::serialize(ErpKind::Netsuite, &Document::Invoice(inv.clone())).unwrap();
    let bill_id = client.create(Op::ExportInvoice, &bill, "b").await.unwrap().erp_id;

    let mut po = erpsync::domain::samples::purchase_order();
    po.vendor.id = inv.vendor.id.clone();
    po.currency = "USD".into();
    for (l, line) in po.lines.iter_mut().enumerate() {
        (line.gl_account, line.item) = (Some(erpsync::erp::sandbox::NETSUITE_ACCOUNTS[l % 3].0.into()), None);
    }
    let po_payload = registry::serialize(ErpKind::Netsuite, &Document::PurchaseOrder(po.clone())).unwrap();
    client.create(Op::ExportPurchaseOrder, &po_payload, "p").await.unwrap();
    assert_eq!(sim.bodies_for("purchaseOrder", &po.source_id).await.len(), 1);

    let mut payment = erpsync::domain::samples::payment();
    (payment.vendor.id, payment.currency, payment.bank_account) =
        (inv.vendor.id.clone(), "USD".into(), Some("1".into()));
    payment.amount = inv.total;
    payment.applications =
        vec![erpsync::domain::PaymentApplication { invoice_number: inv.number.clone(), amount: inv.total }];
    let open = [OpenBill {
        erp_id: bill_id.clone(),
        number: inv.number.clone(),
        balance: inv.total,
        currency: "USD".into(),
        due_date: inv.due_date,
    }];
    let outcome = match_payment(&payment, &open).unwrap();
    let doc = Document::Payment(payment.clone(), outcome);
    let pay_payload = registry::serialize(ErpKind::Netsuite, &doc).unwrap();
    let first = client.create(Op::ExportPayment, &pay_payload, "y").await.unwrap();
    let again = client.create(Op::ExportPayment, &pay_payload, "y").await.unwrap();
    assert_eq!(first.erp_id, again.erp_id);
    let stored = sim.bodies_for("vendorPayment", &payment.source_id).await;
    assert_eq!(stored[0]["apply"]["items"].as_array().unwrap().len(), 1, "the application replaced: {}", stored[0]);
    assert_eq!(stored[0]["apply"]["items"][0]["doc"]["id"], bill_id.as_str());
    assert_eq!(sim.stats().duplicate_creates, 0);
}
