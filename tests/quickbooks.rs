//! The QuickBooks Online connector against the QuickBooks simulator
//! (`erp::sandbox::QUICKBOOKS_ONLINE`, which answers as Intuit's reference documents): the
//! vendor contract of `tests/common/vendor.rs`.

mod common;

use common::vendor::{self, QUICKBOOKS_VENDOR as QUICKBOOKS};
use erpsync::erp::sandbox::QBO_INACTIVE_VENDOR;

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
