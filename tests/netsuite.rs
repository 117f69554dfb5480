//! The NetSuite connector against the NetSuite simulator (`erp::sandbox::NETSUITE`, which
//! answers as Oracle's reference documents): the vendor contract of `tests/common/vendor.rs`.

mod common;

use common::vendor::{self, Vendor};
use erpsync::erp::sandbox::{NETSUITE, NETSUITE_INACTIVE_VENDOR};

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
