//! The Sage Intacct connector against the Intacct simulator (`erp::sandbox::SAGE_INTACCT`,
//! which answers as Sage's XML gateway documents): the vendor contract of
//! `tests/common/vendor.rs`, then the client alone on what the contract does not reach —
//! a replayed control id, a disabled user, one PDF per bill.

mod common;

use common::vendor::{self, Vendor};
use erpsync::config::Config;
use erpsync::domain::{ErpKind, Op};
use erpsync::erp::registry::{ClientContext, module};
use erpsync::erp::sandbox::{INTACCT_INACTIVE_VENDOR, SAGE_INTACCT, Sandbox, SandboxOptions};
use erpsync::erp::{Attachment, ErpClient, ErpError};
use erpsync::pipeline::Document;
use std::sync::Arc;

static INTACCT_VENDOR: Vendor = Vendor {
    dialect: &SAGE_INTACCT,
    connection: erpsync::rig::sage_intacct_connection,
    invoices: erpsync::rig::sage_intacct_invoices,
    options: |opts| opts,
    expire_tokens: Some("/__sandbox/intacct/expire-sessions"),
    rotates_refresh_tokens: false,
    concurrency: 6,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intacct_export_through_faults_creates_every_bill_once_on_sqlite() {
    vendor::exports_every_bill_once(&INTACCT_VENDOR, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intacct_export_through_faults_creates_every_bill_once_on_postgres() {
    vendor::exports_every_bill_once(&INTACCT_VENDOR, Some(common::fresh_postgres().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bill_intacct_refuses_fails_alone_with_intaccts_error() {
    // An inactive vendor: Intacct refuses the bill (BL01001973).
    vendor::a_refused_bill_fails_alone(&INTACCT_VENDOR, INTACCT_INACTIVE_VENDOR).await;
}

/// A company on a smaller tier than the connection assumes: 3 requests at once.
static SMALL_TIER: Vendor = Vendor {
    options: |mut opts| {
        opts.intacct.concurrent_limit = 3;
        opts
    },
    expire_tokens: None,
    ..INTACCT_VENDOR
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gw_0010_throttles_are_retried_until_every_bill_is_created_once() {
    let sb = vendor::simulator(&SMALL_TIER, 0.0, 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let rig = vendor::start(&SMALL_TIER, None, &sb, dir.path()).await;
    let job = vendor::submit(&rig, &erpsync::rig::sage_intacct_invoices("t", 40)).await;
    let counts = rig.wait_terminal(std::time::Duration::from_secs(60)).await.expect("every item finishes");
    let succeeded = erpsync::rig::count(&counts, erpsync::domain::ItemState::Succeeded);
    assert_eq!(succeeded, 40, "{counts:?} {:?}", vendor::errors(&rig, &job).await);
    let stats = sb.stats();
    assert!(stats.throttled_by_kind.get("concurrent").is_some_and(|n| *n > 0), "6 at once met a limit of 3: {stats:?}");
    assert_eq!((stats.creates, stats.duplicate_creates, stats.duplicate_attachments), (40, 0, 0), "{stats:?}");
    rig.shutdown().await;
}

async fn sim() -> Sandbox {
    let opts = SandboxOptions { latency_ms: 0, ..Default::default() };
    Sandbox::start_speaking(&SAGE_INTACCT, "127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

/// The connector's client for the simulator, as the daemon builds it.
async fn client(sb: &Sandbox, dir: &std::path::Path) -> Arc<dyn ErpClient> {
    let conn = erpsync::rig::sage_intacct_connection(&mut Config::default(), "acme", &sb.base_url(), dir);
    assert!(module(ErpKind::SageIntacct).check(&conn).is_empty());
    let text = conn.resolve_token().unwrap();
    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    let cx = ClientContext { db, max_concurrency: 6, secrets: None };
    module(ErpKind::SageIntacct).client(&conn, text, &cx).unwrap()
}

fn bill(n: usize) -> erpsync::pipeline::serialize::Payload {
    let inv = erpsync::rig::sage_intacct_invoices("k", n + 1).pop().unwrap();
    erpsync::erp::registry::serialize(ErpKind::SageIntacct, &Document::Invoice(inv)).unwrap()
}

#[tokio::test]
async fn a_replayed_control_id_adopts_the_bill_it_created() {
    let sb = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&sb, dir.path()).await;
    let payload = bill(0);
    let first = c.create(Op::ExportInvoice, &payload, "erpsync:acme:bill:k-1").await.unwrap();
    assert!(!first.replayed);
    // The same document again, as after an answer lost after commit: Intacct refuses the
    // control id, and the client finds the bill it made.
    let again = c.create(Op::ExportInvoice, &payload, "erpsync:acme:bill:k-1").await.unwrap();
    assert_eq!((again.erp_id.as_str(), again.replayed), (first.erp_id.as_str(), true));
    assert_eq!(c.find_existing(Op::ExportInvoice, "k-1", &payload).await.unwrap(), Some(first.erp_id));
    let stats = sb.stats();
    assert_eq!((stats.creates, stats.duplicate_creates, stats.refreshes), (1, 0, 1), "{stats:?}");
}

#[tokio::test]
async fn an_expired_session_is_reopened_once_and_a_disabled_user_is_revoked() {
    let sb = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&sb, dir.path()).await;
    c.create(Op::ExportInvoice, &bill(0), "k-0").await.unwrap();
    let http = reqwest::Client::new();
    http.post(format!("{}/__sandbox/intacct/expire-sessions", sb.base_url())).send().await.unwrap();
    c.create(Op::ExportInvoice, &bill(1), "k-1").await.unwrap();
    assert_eq!(sb.stats().refreshes, 2, "one new session after the expiry");
    http.post(format!("{}/__sandbox/intacct/disable-user", sb.base_url())).send().await.unwrap();
    let e = c.create(Op::ExportInvoice, &bill(2), "k-2").await.unwrap_err();
    let ErpError::Revoked { message } = &e else { panic!("a disabled user is revoked, not {e:?}") };
    assert!(message.contains("XL03000006"), "{message}");
    assert!(!message.contains("user-secret") && !message.contains("sender-secret"), "{message}");
    assert_eq!(sb.stats().creates, 2);
}

#[tokio::test]
async fn a_bill_gets_its_pdf_once_however_often_it_is_sent() {
    let sb = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&sb, dir.path()).await;
    let created = c.create(Op::ExportInvoice, &bill(0), "k-0").await.unwrap();
    let attach = |key: &'static str| Attachment {
        bill_id: &created.erp_id,
        file_name: "K-0.pdf",
        pdf: b"%PDF-1.4 bill".to_vec(),
        idempotency_key: key,
        maybe_attached: true,
    };
    let id = c.attach_pdf(attach("a-0")).await.unwrap();
    // Sent again, under the same key and under another: the same supporting document.
    assert_eq!(c.attach_pdf(attach("a-0")).await.unwrap(), id);
    assert_eq!(c.attach_pdf(attach("a-1")).await.unwrap(), id);
    let stats = sb.stats();
    assert_eq!((stats.attachments, stats.duplicate_attachments), (1, 0), "{stats:?}");
}

#[tokio::test]
async fn a_wrong_sender_password_is_revoked_without_quoting_it() {
    let sb = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut conn = erpsync::rig::sage_intacct_connection(&mut Config::default(), "acme", &sb.base_url(), dir.path());
    let creds = dir.path().join("wrong.json");
    let doc = r#"{"sender_id":"erpsync-sender","sender_password":"not-the-PASSWORD","company_id":"erpsync-sandbox","user_id":"ws-erpsync","user_password":"user-secret"}"#;
    std::fs::write(&creds, doc).unwrap();
    conn.credentials = Some(format!("file:{}", creds.display()));
    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    let cx = ClientContext { db, max_concurrency: 6, secrets: None };
    let c = module(ErpKind::SageIntacct).client(&conn, conn.resolve_token().unwrap(), &cx).unwrap();
    let e = c.create(Op::ExportInvoice, &bill(0), "k-0").await.unwrap_err();
    assert!(matches!(&e, ErpError::Revoked { message } if message.contains("XL03000006")), "{e:?}");
    assert!(!format!("{e:?} {e}").contains("not-the-PASSWORD"));
}

/// A bill of `vendor` numbered `number` for `amount`, as the serializer's function.
fn bill_of(vendor: &str, number: &str, amount: &str) -> erpsync::pipeline::serialize::Payload {
    let body = format!(
        "<function controlid=\"bill-{number}\"><create><APBILL><VENDORID>{vendor}</VENDORID><RECORDID>{number}</RECORDID>\
         <APBILLITEMS><APBILLITEM><ACCOUNTNO>6100</ACCOUNTNO><TRX_AMOUNT>{amount}</TRX_AMOUNT></APBILLITEM>\
         </APBILLITEMS></APBILL></create></function>"
    );
    erpsync::pipeline::serialize::Payload { content_type: "application/xml", body: body.into_bytes() }
}

#[tokio::test]
async fn a_payment_sent_again_is_found_instead_of_paying_twice() {
    let sb = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&sb, dir.path()).await;
    let mut open = erpsync::samples::sample_open_bills();
    for (i, b) in open.iter_mut().enumerate() {
        let created = c.create(Op::ExportInvoice, &bill_of("V-1042", &b.number, "5000.00"), &format!("b-{i}")).await;
        b.erp_id = created.unwrap().erp_id;
    }
    let payment = erpsync::domain::samples::payment();
    let outcome = erpsync::pipeline::matching::match_payment(&payment, &open).unwrap();
    let payload =
        erpsync::erp::registry::serialize(ErpKind::SageIntacct, &Document::Payment(payment, outcome)).unwrap();
    assert_eq!(c.find_existing(Op::ExportPayment, "ap-pay-c0ffee", &payload).await.unwrap(), None);
    let paid = c.create(Op::ExportPayment, &payload, "erpsync:acme:bill_payment:ap-pay-c0ffee").await.unwrap();
    // After a lost answer: the lookup finds it, and a resend under its control id adopts it.
    let found = c.find_existing(Op::ExportPayment, "ap-pay-c0ffee", &payload).await.unwrap();
    assert_eq!(found.as_deref(), Some(paid.erp_id.as_str()));
    let again = c.create(Op::ExportPayment, &payload, "erpsync:acme:bill_payment:ap-pay-c0ffee").await.unwrap();
    assert_eq!((again.erp_id, again.replayed), (paid.erp_id, true));
    let stats = sb.stats();
    assert_eq!((stats.creates, stats.duplicate_creates), (3, 0), "two bills and one payment: {stats:?}");
}
