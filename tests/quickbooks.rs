//! The QuickBooks Online connector against the QuickBooks simulator
//! (`erp::sandbox::QUICKBOOKS_ONLINE`, which answers as Intuit's reference documents): the
//! vendor contract of `tests/common/vendor.rs`.

mod common;

use common::vendor::{self, Vendor};
use erpsync::erp::sandbox::{QBO_INACTIVE_VENDOR, QUICKBOOKS_ONLINE};

static QUICKBOOKS: Vendor = Vendor {
    dialect: &QUICKBOOKS_ONLINE,
    connection: erpsync::rig::quickbooks_connection,
    invoices: erpsync::rig::quickbooks_invoices,
    options: |mut opts| {
        opts.quickbooks.minute_limit = 100_000;
        opts.quickbooks.refresh_grace_secs = 0;
        opts
    },
    expire_tokens: Some("/__sandbox/quickbooks/expire-access-tokens"),
    rotates_refresh_tokens: true,
    concurrency: 10,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quickbooks_export_through_faults_creates_every_bill_once_on_sqlite() {
    vendor::exports_every_bill_once(&QUICKBOOKS, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quickbooks_export_through_faults_creates_every_bill_once_on_postgres() {
    vendor::exports_every_bill_once(&QUICKBOOKS, Some(common::fresh_postgres().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_quickbooks_refuses_fails_alone_with_its_fault() {
    // An inactive vendor: QuickBooks refuses the bill with a ValidationFault.
    vendor::a_refused_bill_fails_alone(&QUICKBOOKS, QBO_INACTIVE_VENDOR).await;
}
