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
