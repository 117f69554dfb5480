//! The Business Central connector against the Business Central simulator
//! (`erp::sandbox::BUSINESS_CENTRAL`, which answers as Microsoft's API v2.0 reference
//! documents): the vendor contract of `tests/common/vendor.rs`. Business Central issues
//! access tokens from client credentials and has no refresh token to rotate.

mod common;

use common::vendor::{self, Vendor};
use erpsync::erp::sandbox::{BC_VENDORS, BUSINESS_CENTRAL};

static BC_VENDOR: Vendor = Vendor {
    dialect: &BUSINESS_CENTRAL,
    connection: erpsync::rig::business_central_connection,
    invoices: erpsync::rig::business_central_invoices,
    options: |opts| opts,
    expire_tokens: Some("/__sandbox/business_central/expire-access-tokens"),
    rotates_refresh_tokens: false,
    concurrency: 5,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_central_export_through_faults_creates_every_bill_once_on_sqlite() {
    vendor::exports_every_bill_once(&BC_VENDOR, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_central_export_through_faults_creates_every_bill_once_on_postgres() {
    vendor::exports_every_bill_once(&BC_VENDOR, Some(common::fresh_postgres().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bill_of_a_blocked_vendor_fails_alone_with_business_centrals_message() {
    // Vendor 40000 is blocked for all transactions: Business Central refuses the bill.
    vendor::a_refused_bill_fails_alone(&BC_VENDOR, BC_VENDORS[3].1).await;
}
