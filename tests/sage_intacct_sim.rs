//! The Sage Intacct dialect of the sandbox, spoken to over HTTP as an XML gateway client
//! would: each answer as `src/erp/sandbox/sage_intacct.md` documents it.

use erpsync::erp::sandbox::{INTACCT_INACTIVE_VENDOR, IntacctOptions, SAGE_INTACCT, Sandbox, SandboxOptions};
use reqwest::StatusCode;

async fn sandbox(opts: SandboxOptions) -> Sandbox {
    Sandbox::start_speaking(&SAGE_INTACCT, "127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

fn fast() -> SandboxOptions {
    SandboxOptions { latency_ms: 0, ..Default::default() }
}

fn gateway(sb: &Sandbox) -> String {
    format!("{}/ia/xml/xmlgw.phtml", sb.base_url())
}

fn control(sender_password: &str, controlid: &str, unique: bool) -> String {
    format!(
        "<control><senderid>erpsync-sender</senderid><password>{sender_password}</password><controlid>{controlid}</controlid>\
         <uniqueid>{unique}</uniqueid><dtdversion>3.0</dtdversion></control>"
    )
}

const LOGIN: &str =
    "<login><userid>ws-erpsync</userid><companyid>erpsync-sandbox</companyid><password>user-secret</password></login>";

fn request(control: &str, auth: &str, functions: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><request>{control}<operation transaction=\"false\">\
         <authentication>{auth}</authentication><content>{functions}</content></operation></request>"
    )
}

fn bill(fid: &str, vendor: &str, number: &str) -> String {
    format!(
        "<function controlid=\"{fid}\"><create><APBILL><WHENCREATED>11/03/2026</WHENCREATED><VENDORID>{vendor}</VENDORID>\
         <RECORDID>{number}</RECORDID><WHENDUE>12/03/2026</WHENDUE><APBILLITEMS><APBILLITEM><ACCOUNTNO>6100</ACCOUNTNO>\
         <TRX_AMOUNT>100.00</TRX_AMOUNT></APBILLITEM></APBILLITEMS></APBILL></create></function>"
    )
}

async fn post(sb: &Sandbox, body: String) -> (StatusCode, roxmltree_owned::Doc) {
    let r = reqwest::Client::new().post(gateway(sb)).body(body).send().await.unwrap();
    let status = r.status();
    (status, roxmltree_owned::Doc(r.text().await.unwrap()))
}

/// An answer's text, and the first descendant text of a tag.
mod roxmltree_owned {
    pub struct Doc(pub String);
    impl Doc {
        pub fn all(&self, tag: &str) -> Vec<String> {
            let doc = roxmltree::Document::parse(&self.0).unwrap_or_else(|e| panic!("{e}: {}", self.0));
            doc.descendants().filter(|n| n.has_tag_name(tag)).map(|n| n.text().unwrap_or("").to_owned()).collect()
        }
        pub fn first(&self, tag: &str) -> String {
            self.all(tag).into_iter().next().unwrap_or_else(|| panic!("no <{tag}> in {}", self.0))
        }
    }
}

async fn session(sb: &Sandbox) -> String {
    let body =
        request(&control("sender-secret", "s", false), LOGIN, "<function controlid=\"f\"><getAPISession/></function>");
    let (status, doc) = post(sb, body).await;
    assert_eq!(status, StatusCode::OK);
    doc.first("sessionid")
}

fn with_session(id: &str) -> String {
    format!("<sessionid>{id}</sessionid>")
}

#[tokio::test]
async fn a_login_opens_a_session_naming_its_endpoint_and_timeout() {
    let sb = sandbox(fast()).await;
    let body =
        request(&control("sender-secret", "s", false), LOGIN, "<function controlid=\"f\"><getAPISession/></function>");
    let (_, doc) = post(&sb, body).await;
    assert_eq!(doc.all("status"), ["success", "success", "success"], "{}", doc.0);
    assert_eq!(doc.first("function"), "getAPISession");
    assert_eq!(doc.first("endpoint"), gateway(&sb));
    let timeout = chrono::DateTime::parse_from_rfc3339(&doc.first("sessiontimeout")).unwrap();
    let left = timeout.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(3500) && left <= chrono::Duration::seconds(3600), "{left}");
    assert_eq!(sb.stats().refreshes, 1);
    // The session authenticates what follows; an unknown one is refused before any function.
    let id = doc.first("sessionid");
    let (_, ok) =
        post(&sb, request(&control("sender-secret", "c1", true), &with_session(&id), &bill("b", "V-1042", "N-1")))
            .await;
    assert!(ok.first("RECORDNO").parse::<u64>().is_ok(), "{}", ok.0);
    let (_, bad) =
        post(&sb, request(&control("sender-secret", "c2", true), &with_session("nope"), &bill("b", "V-1042", "N-2")))
            .await;
    assert_eq!(bad.all("status"), ["success", "failure"], "{}", bad.0);
    assert_eq!(bad.first("errorno"), "XL03000006");
    assert_eq!(sb.stats().creates, 1);
}

#[tokio::test]
async fn a_wrong_sender_fails_the_control_block_and_a_wrong_login_the_authentication() {
    let sb = sandbox(fast()).await;
    let (_, doc) = post(&sb, request(&control("wrong", "c", false), LOGIN, "")).await;
    assert_eq!((doc.first("status"), doc.first("errorno")), ("failure".into(), "XL03000006".into()));
    assert_eq!(doc.first("description2"), "Incorrect Intacct XML Partner ID or password.");
    let wrong_user = LOGIN.replace("user-secret", "guess");
    let (_, doc) = post(&sb, request(&control("sender-secret", "c", false), &wrong_user, "")).await;
    assert_eq!(doc.all("status"), ["success", "failure"]);
    assert_eq!(doc.first("description2"), "Sign-in information is incorrect");
    let (_, doc) = post(&sb, "<request><oops></request>".into()).await;
    assert_eq!((doc.first("status"), doc.first("errorno")), ("failure".into(), "XL03000003".into()));
}

#[tokio::test]
async fn expired_sessions_and_a_disabled_user_are_refused() {
    let sb = sandbox(fast()).await;
    let id = session(&sb).await;
    let http = reqwest::Client::new();
    http.post(format!("{}/__sandbox/intacct/expire-sessions", sb.base_url())).send().await.unwrap();
    let (_, doc) =
        post(&sb, request(&control("sender-secret", "c", true), &with_session(&id), &bill("b", "V-1042", "N"))).await;
    assert_eq!((doc.first("errorno"), doc.first("description2")), ("XL03000006".into(), "Invalid session".into()));
    http.post(format!("{}/__sandbox/intacct/disable-user", sb.base_url())).send().await.unwrap();
    let (_, doc) = post(&sb, request(&control("sender-secret", "s", false), LOGIN, "")).await;
    assert_eq!(doc.all("status"), ["success", "failure"]);
    assert!(doc.first("description2").contains("inactive"), "{}", doc.0);
    assert_eq!(sb.stats().creates, 0);
}

#[tokio::test]
async fn a_unique_control_id_is_executed_once() {
    let sb = sandbox(fast()).await;
    let id = session(&sb).await;
    let send = |cid: &'static str, unique: bool| {
        post(&sb, request(&control("sender-secret", cid, unique), &with_session(&id), &bill("bill-1", "V-1042", "N-1")))
    };
    let (_, first) = send("erpsync:acme:bill:1", true).await;
    assert_eq!(first.all("status"), ["success", "success", "success"], "{}", first.0);
    let (_, again) = send("erpsync:acme:bill:1", true).await;
    assert_eq!(again.all("status"), ["success", "success", "failure"], "{}", again.0);
    assert_eq!(again.first("errorno"), "DUPLICATE_CONTROL_ID");
    assert!(again.first("description2").contains("already executed and completed"));
    assert_eq!(sb.stats().creates, 1);
    // Without uniqueid the gateway executes it again: a second bill of the same number.
    let (_, twice) = send("erpsync:acme:bill:1", false).await;
    assert_eq!(twice.all("status").last().unwrap(), "success");
    let stats = sb.stats();
    assert_eq!((stats.creates, stats.duplicate_creates), (2, 1), "{stats:?}");
}

#[tokio::test]
async fn an_inactive_vendor_is_refused_and_bills_are_found_by_number_and_vendor() {
    let sb = sandbox(fast()).await;
    let id = session(&sb).await;
    let functions = format!("{}{}", bill("a", INTACCT_INACTIVE_VENDOR, "N-9"), bill("b", "V-2001", "O'Neil-1"));
    let (_, doc) = post(&sb, request(&control("sender-secret", "c", true), &with_session(&id), &functions)).await;
    assert_eq!(doc.all("status"), ["success", "success", "failure", "success"], "{}", doc.0);
    assert_eq!(doc.first("errorno"), "BL01001973");
    assert!(doc.first("description2").contains("inactive"));
    let recordno = doc.first("RECORDNO");
    let query = "<function controlid=\"q\"><readByQuery><object>APBILL</object><fields>RECORDNO,RECORDID,STATE</fields>\
                 <query>RECORDID = 'O\\'Neil-1' AND VENDORID = 'V-2001'</query><pagesize>10</pagesize></readByQuery></function>";
    let (_, found) = post(&sb, request(&control("sender-secret", "q", false), &with_session(&id), query)).await;
    assert_eq!(found.all("RECORDNO"), [recordno], "{}", found.0);
    assert_eq!(found.first("RECORDID"), "O'Neil-1");
    let other = query.replace("V-2001", "V-1042");
    let (_, none) = post(&sb, request(&control("sender-secret", "q", false), &with_session(&id), &other)).await;
    assert!(none.all("RECORDNO").is_empty(), "{}", none.0);
    let stats = sb.stats();
    assert_eq!((stats.rejected, stats.lookups), (1, 2), "{stats:?}");
}

#[tokio::test]
async fn a_supporting_document_is_created_once_and_linked_to_its_bill() {
    let sb = sandbox(fast()).await;
    let id = session(&sb).await;
    let (_, doc) =
        post(&sb, request(&control("sender-secret", "c", true), &with_session(&id), &bill("b", "V-1042", "N"))).await;
    let recordno = doc.first("RECORDNO");
    let attach = format!(
        "<function controlid=\"s\"><create_supdoc><supdocid>ES{recordno}</supdocid><supdocname>N.pdf</supdocname>\
         <supdocfoldername>erpsync</supdocfoldername><attachments><attachment><attachmentname>N</attachmentname>\
         <attachmenttype>pdf</attachmenttype><attachmentdata>JVBERi0=</attachmentdata></attachment></attachments>\
         </create_supdoc></function><function controlid=\"l\"><update><APBILL><RECORDNO>{recordno}</RECORDNO>\
         <SUPDOCID>ES{recordno}</SUPDOCID></APBILL></update></function>"
    );
    let (_, first) = post(&sb, request(&control("sender-secret", "a1", true), &with_session(&id), &attach)).await;
    assert_eq!(first.all("status"), ["success", "success", "success", "success"], "{}", first.0);
    let (_, again) = post(&sb, request(&control("sender-secret", "a2", true), &with_session(&id), &attach)).await;
    assert_eq!(again.all("status"), ["success", "success", "failure", "success"], "{}", again.0);
    assert!(again.first("description2").contains("already exists"));
    let stats = sb.stats();
    assert_eq!((stats.attachments, stats.duplicate_attachments), (1, 0), "{stats:?}");
}

#[tokio::test]
async fn past_the_concurrency_limit_the_gateway_answers_429_gw_0010() {
    let opts = SandboxOptions {
        // Long enough that all five are in flight at once on a loaded machine.
        latency_ms: 1_000,
        intacct: Box::new(IntacctOptions { concurrent_limit: 2, ..Default::default() }),
        ..Default::default()
    };
    let sb = sandbox(opts).await;
    let body =
        request(&control("sender-secret", "s", false), LOGIN, "<function controlid=\"f\"><getAPISession/></function>");
    let answers = futures::future::join_all((0..5).map(|_| post(&sb, body.clone()))).await;
    let throttled: Vec<_> = answers.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(throttled.len(), 3, "five at once, two admitted");
    assert_eq!(throttled[0].1.first("errorno"), "GW-0010");
    let stats = sb.stats();
    assert_eq!((stats.throttled, stats.throttled_by_kind.get("concurrent").copied()), (3, Some(3)), "{stats:?}");
    // Refused requests are answered at once: the two held plus one refused, at least.
    assert!(stats.max_concurrent_seen >= 3, "{stats:?}");
}

#[tokio::test]
async fn injected_faults_answer_503_before_anything_runs() {
    let sb = sandbox(SandboxOptions { latency_ms: 0, fault_rate: 1.0, ..Default::default() }).await;
    let body =
        request(&control("sender-secret", "s", false), LOGIN, "<function controlid=\"f\"><getAPISession/></function>");
    let r = reqwest::Client::new().post(gateway(&sb)).body(body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let stats = sb.stats();
    assert_eq!((stats.faults, stats.refreshes), (1, 0), "{stats:?}");
}
