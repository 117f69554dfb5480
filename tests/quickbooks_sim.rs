//! The QuickBooks Online dialect of the sandbox, spoken to over HTTP as an Intuit client
//! would.

use erpsync::erp::sandbox::{
    QBO_INACTIVE_VENDOR, QBO_SANDBOX_REALM, QBO_VENDORS, QUICKBOOKS_ONLINE, QuickbooksOptions, Sandbox, SandboxOptions,
};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const CLIENT: &str = "qbo-client";
const SECRET: &str = "qbo-secret";
const FIRST_REFRESH: &str = "qbo-refresh-token";

async fn sandbox(opts: SandboxOptions) -> Sandbox {
    Sandbox::start_speaking(&QUICKBOOKS_ONLINE, "127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

fn fast() -> SandboxOptions {
    SandboxOptions { latency_ms: 0, ..Default::default() }
}

fn with_qbo(quickbooks: QuickbooksOptions) -> SandboxOptions {
    SandboxOptions { quickbooks, ..fast() }
}

async fn refresh(http: &Client, sb: &Sandbox, secret: &str, token: &str) -> (StatusCode, Value) {
    let r = http
        .post(format!("{}/oauth2/v1/tokens/bearer", sb.base_url()))
        .basic_auth(CLIENT, Some(secret))
        .header("accept", "application/json")
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn access_token(http: &Client, sb: &Sandbox) -> String {
    let (status, body) = refresh(http, sb, SECRET, FIRST_REFRESH).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn api(http: &Client, sb: &Sandbox, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    api_q(http, sb, method, path, token, &[])
}

/// An Accounting API request with query parameters beside `minorversion`.
fn api_q(
    http: &Client,
    sb: &Sandbox,
    method: Method,
    path: &str,
    token: &str,
    query: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut url = reqwest::Url::parse(&format!("{}/v3/company/{QBO_SANDBOX_REALM}/{path}", sb.base_url())).unwrap();
    url.query_pairs_mut().append_pair("minorversion", "75").extend_pairs(query);
    http.request(method, url).bearer_auth(token).header("accept", "application/json")
}

async fn send(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = r.send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn stats(http: &Client, sb: &Sandbox) -> Value {
    http.get(format!("{}/__sandbox/stats", sb.base_url())).send().await.unwrap().json().await.unwrap()
}

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/quickbooks_online/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bill(vendor: &str, number: &str, amount: f64) -> Value {
    json!({
        "VendorRef": {"value": vendor},
        "DocNumber": number,
        "TxnDate": "2026-11-03",
        "DueDate": "2026-12-03",
        "CurrencyRef": {"value": "USD"},
        "Line": [{"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
                  "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "6100"}}}],
    })
}

async fn create(http: &Client, sb: &Sandbox, token: &str, entity: &str, body: &Value) -> (StatusCode, Value) {
    send(api(http, sb, Method::POST, entity, token).json(body)).await
}

/// The Error of a ValidationFault answer, checked for Intuit's envelope.
fn validation_error(status: StatusCode, body: &Value) -> &Value {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["Fault"]["type"], "ValidationFault", "{body}");
    assert!(body["time"].is_string(), "{body}");
    let e = &body["Fault"]["Error"][0];
    for key in ["Message", "Detail", "code", "element"] {
        assert!(e[key].is_string(), "{key} in {body}");
    }
    e
}

#[tokio::test]
async fn refresh_tokens_rotate_and_the_old_one_is_refused() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let (status, first) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["token_type"], "bearer");
    assert_eq!(first["expires_in"], 3600);
    assert!(first["x_refresh_token_expires_in"].as_u64().unwrap() > 0);
    let next = first["refresh_token"].as_str().unwrap();
    assert_ne!(next, FIRST_REFRESH);

    let (status, body) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, second) = refresh(&http, &sb, SECRET, next).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (status, body) = refresh(&http, &sb, "wrong", second["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert_eq!(stats(&http, &sb).await["refreshes"], 2);

    // Disconnecting the app kills every token of the client.
    let r = http.post(format!("{}/__sandbox/quickbooks/revoke", sb.base_url())).json(&json!({"client_id": CLIENT}));
    assert_eq!(r.send().await.unwrap().status(), StatusCode::OK);
    let (status, body) = refresh(&http, &sb, SECRET, second["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let token = second["access_token"].as_str().unwrap();
    let (status, _) = create(&http, &sb, token, "bill", &bill(QBO_VENDORS[0].0, "R-1", 10.0)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_grace_period_lets_the_previous_refresh_token_reissue_its_successor() {
    let sb = sandbox(with_qbo(QuickbooksOptions { refresh_grace_secs: 600, ..Default::default() })).await;
    let http = Client::new();
    let (_, first) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    let (status, again) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["refresh_token"], first["refresh_token"]);
}

#[tokio::test]
async fn expired_or_foreign_tokens_are_refused_as_intuit_does() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let (_, first) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    let token = first["access_token"].as_str().unwrap().to_owned();
    let (status, body) =
        send(api_q(&http, &sb, Method::GET, "query", &token, &[("query", "select * from Vendor")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let r = http.post(format!("{}/__sandbox/quickbooks/expire-access-tokens", sb.base_url())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, body) = create(&http, &sb, &token, "bill", &bill(QBO_VENDORS[0].0, "E-1", 10.0)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let e = &body["fault"]["error"][0];
    assert_eq!(e["code"], "3200", "{body}");
    assert_eq!(e["message"], "message=AuthenticationFailed; errorCode=003200; statusCode=401");
    assert!(e["detail"].as_str().unwrap().starts_with("Token expired"), "{body}");
    assert_eq!(body["fault"]["type"], "AUTHENTICATION");

    let (_, second) = refresh(&http, &sb, SECRET, first["refresh_token"].as_str().unwrap()).await;
    let fresh = second["access_token"].as_str().unwrap();
    let r = http
        .get(format!("{}/v3/company/123/query?query=select%20*%20from%20Bill", sb.base_url()))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["fault"]["error"][0]["code"], "3100", "{body}");
    assert_eq!(stats(&http, &sb).await["creates"], 0);
}

#[tokio::test]
async fn the_golden_bill_is_created_once_per_requestid() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let body = golden("bill");
    let post = |rid: Option<&str>| {
        let query: Vec<(&str, &str)> = rid.map(|rid| ("requestid", rid)).into_iter().collect();
        send(api_q(&http, &sb, Method::POST, "bill", &token, &query).json(&body))
    };
    let (status, first) = post(Some("4f1c2a86-1d3e-5b7a-9c0d-2e4f6a8b0c1d")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let b = &first["Bill"];
    assert!(b["Id"].as_str().unwrap().chars().all(|c| c.is_ascii_digit()), "{first}");
    assert_eq!(b["SyncToken"], "0");
    assert_eq!(b["DocNumber"], "RE-2026-000117");
    assert_eq!(b["TotalAmt"], 2961.21);
    assert_eq!(b["Balance"], 2961.21);
    assert!(first["time"].is_string());

    let (status, replay) = post(Some("4f1c2a86-1d3e-5b7a-9c0d-2e4f6a8b0c1d")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replay, first, "a repeated requestid answers the original response");
    let s = stats(&http, &sb).await;
    assert_eq!((s["creates"].as_u64(), s["idempotent_replays"].as_u64()), (Some(1), Some(1)));

    // Without a requestid, a second copy is created and counted as a duplicate.
    let (status, second) = post(None).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(second["Bill"]["Id"], first["Bill"]["Id"]);
    let s = stats(&http, &sb).await;
    assert_eq!((s["creates"].as_u64(), s["duplicate_creates"].as_u64()), (Some(2), Some(1)));

    let (status, body) = post(Some(&"x".repeat(51))).await;
    validation_error(status, &body);
}

#[tokio::test]
async fn refusals_are_validation_faults_with_intuits_codes() {
    let sb = sandbox(with_qbo(QuickbooksOptions { warn_duplicate_doc_number: true, ..Default::default() })).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let vendor = QBO_VENDORS[0].0;

    let (status, body) = create(&http, &sb, &token, "bill", &bill("9999", "V-1", 10.0)).await;
    let e = validation_error(status, &body);
    assert_eq!((e["code"].as_str(), e["element"].as_str()), (Some("2500"), Some("VendorRef")));
    let (status, body) = create(&http, &sb, &token, "bill", &bill(QBO_INACTIVE_VENDOR, "V-2", 10.0)).await;
    assert_eq!(validation_error(status, &body)["code"], "2500");

    let mut unknown_account = bill(vendor, "A-1", 10.0);
    unknown_account["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"] = json!("77777");
    let (status, body) = create(&http, &sb, &token, "bill", &unknown_account).await;
    let e = validation_error(status, &body);
    assert_eq!((e["code"].as_str(), e["element"].as_str()), (Some("2500"), Some("AccountRef")));

    let (status, body) = create(&http, &sb, &token, "bill", &bill(vendor, &"9".repeat(22), 10.0)).await;
    let e = validation_error(status, &body);
    assert_eq!((e["code"].as_str(), e["element"].as_str()), (Some("2050"), Some("DocNumber")));

    let (status, _) = create(&http, &sb, &token, "bill", &bill(vendor, "DUP-1", 10.0)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = create(&http, &sb, &token, "bill", &bill(vendor, "DUP-1", 10.0)).await;
    assert_eq!(validation_error(status, &body)["code"], "6140");
    // Another vendor may use the same number.
    let (status, _) = create(&http, &sb, &token, "bill", &bill(QBO_VENDORS[1].0, "DUP-1", 10.0)).await;
    assert_eq!(status, StatusCode::OK);
    let s = stats(&http, &sb).await;
    assert_eq!(
        (s["creates"].as_u64(), s["duplicate_creates"].as_u64(), s["rejected"].as_u64()),
        (Some(2), Some(0), Some(5))
    );
}

#[tokio::test]
async fn bill_payments_link_bills_and_never_pay_beyond_the_balance() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let vendor = QBO_VENDORS[0].0;
    let (_, b) = create(&http, &sb, &token, "bill", &bill(vendor, "P-1", 100.0)).await;
    let bill_id = b["Bill"]["Id"].as_str().unwrap().to_owned();
    let payment = |amount: f64| {
        json!({
            "VendorRef": {"value": vendor},
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": {"value": "35"}},
            "TotalAmt": amount,
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": bill_id, "TxnType": "Bill"}]}],
        })
    };
    let (status, body) = create(&http, &sb, &token, "billpayment", &payment(60.0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["BillPayment"]["Id"].is_string());
    let (status, body) = create(&http, &sb, &token, "billpayment", &payment(40.01)).await;
    assert_eq!(validation_error(status, &body)["code"], "6000");
    let q = format!("select * from Bill where Id = '{bill_id}'");
    let (_, rows) = send(api_q(&http, &sb, Method::GET, "query", &token, &[("query", &q)])).await;
    assert_eq!(rows["QueryResponse"]["Bill"][0]["Balance"], 40.0, "{rows}");

    let mut po = golden("purchase_order");
    po["VendorRef"]["value"] = json!(vendor);
    let (status, body) = create(&http, &sb, &token, "purchaseorder", &po).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["PurchaseOrder"]["POStatus"], "Open");
}

#[tokio::test]
async fn queries_find_bills_by_doc_number_and_vendor() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let (_, a) = create(&http, &sb, &token, "bill", &bill(QBO_VENDORS[0].0, "O'Neil-7", 10.0)).await;
    create(&http, &sb, &token, "bill", &bill(QBO_VENDORS[1].0, "O'Neil-7", 10.0)).await;
    let query = |q: &str| send(api_q(&http, &sb, Method::GET, "query", &token, &[("query", q)]));

    let (status, body) = query(r"select * from Bill where DocNumber = 'O\'Neil-7'").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["QueryResponse"]["Bill"].as_array().unwrap().len(), 2);
    assert_eq!(
        (body["QueryResponse"]["startPosition"].as_u64(), body["QueryResponse"]["maxResults"].as_u64()),
        (Some(1), Some(2))
    );
    let q = format!(r"select * from Bill where DocNumber = 'O\'Neil-7' and VendorRef = '{}'", QBO_VENDORS[0].0);
    let (_, body) = query(&q).await;
    assert_eq!(body["QueryResponse"]["Bill"][0]["Id"], a["Bill"]["Id"]);
    assert_eq!(body["QueryResponse"]["Bill"].as_array().unwrap().len(), 1);

    let (status, body) = query("select * from Bill where DocNumber = 'none'").await;
    assert_eq!((status, &body["QueryResponse"]), (StatusCode::OK, &json!({})));
    let (status, body) = query("select * from Bill where").await;
    assert_eq!(validation_error(status, &body)["code"], "4000");
}

#[tokio::test]
async fn uploads_attach_a_pdf_to_a_bill_and_copies_are_counted() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let (_, b) = create(&http, &sb, &token, "bill", &golden("bill")).await;
    let bill_id = b["Bill"]["Id"].as_str().unwrap().to_owned();
    let upload = |bill: &str| {
        let mut meta = golden("attachable");
        meta["AttachableRef"][0]["EntityRef"]["value"] = json!(bill);
        let form = reqwest::multipart::Form::new()
            .part(
                "file_metadata_01",
                reqwest::multipart::Part::text(meta.to_string()).mime_str("application/json").unwrap(),
            )
            .part(
                "file_content_01",
                reqwest::multipart::Part::bytes(b"%PDF-1.7\n%fake\n".to_vec())
                    .file_name("RE-2026-000117.pdf")
                    .mime_str("application/pdf")
                    .unwrap(),
            );
        send(api(&http, &sb, Method::POST, "upload", &token).multipart(form))
    };
    let (status, body) = upload(&bill_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a = &body["AttachableResponse"][0]["Attachable"];
    assert!(a["Id"].is_string(), "{body}");
    assert_eq!((a["FileName"].as_str(), a["Size"].as_u64()), (Some("RE-2026-000117.pdf"), Some(15)));

    let q = format!("select * from Attachable where AttachableRef.EntityRef.Value = '{bill_id}'");
    let (_, rows) = send(api_q(&http, &sb, Method::GET, "query", &token, &[("query", &q)])).await;
    assert_eq!(rows["QueryResponse"]["Attachable"][0]["Id"], a["Id"], "{rows}");

    let (status, _) = upload(&bill_id).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = upload("999999").await;
    assert_eq!(validation_error(status, &body)["code"], "2500");
    let s = stats(&http, &sb).await;
    assert_eq!((s["attachments"].as_u64(), s["duplicate_attachments"].as_u64()), (Some(2), Some(1)));
}

/// 429 as Intuit throttles.
fn assert_throttled(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["Fault"]["type"], "ThrottleExceeded");
    assert_eq!(body["Fault"]["Error"][0]["code"], "3001");
    assert_eq!(body["Fault"]["Error"][0]["Message"], "message=ThrottleExceeded; errorCode=003001; statusCode=429");
}

#[tokio::test]
async fn the_eleventh_request_in_progress_is_throttled() {
    // Each admitted request holds its slot for the simulated latency, far longer than it
    // takes to send eleven: the eleventh always finds ten in progress.
    let sb = sandbox(SandboxOptions { latency_ms: 3_000, ..Default::default() }).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let calls =
        (0..11).map(|_| send(api_q(&http, &sb, Method::GET, "query", &token, &[("query", "select * from Bill")])));
    let answers = futures::future::join_all(calls).await;
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(refused.len(), 1, "{answers:?}");
    assert_throttled(refused[0].0, &refused[0].1);
    let s = stats(&http, &sb).await;
    assert_eq!(s["throttled_by_kind"], json!({"concurrent": 1}));
}

#[tokio::test]
async fn past_the_minute_limit_requests_are_throttled() {
    let sb = sandbox(with_qbo(QuickbooksOptions { minute_limit: 3, ..Default::default() })).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    for _ in 0..3 {
        let (status, _) =
            send(api_q(&http, &sb, Method::GET, "query", &token, &[("query", "select * from Bill")])).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = create(&http, &sb, &token, "bill", &bill(QBO_VENDORS[0].0, "T-1", 1.0)).await;
    assert_throttled(status, &body);
    let s = stats(&http, &sb).await;
    assert_eq!((s["throttled_by_kind"].clone(), s["creates"].as_u64()), (json!({"minute": 1}), Some(0)));
}

#[tokio::test]
async fn a_create_may_commit_and_then_never_answer_in_time() {
    let sb = sandbox(SandboxOptions { latency_ms: 0, timeout_rate: 1.0, stall_ms: 5_000, ..Default::default() }).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let r = api(&http, &sb, Method::POST, "bill", &token)
        .json(&bill(QBO_VENDORS[0].0, "S-1", 5.0))
        .timeout(std::time::Duration::from_millis(200))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    let q = "select * from Bill where DocNumber = 'S-1'";
    let (_, rows) = send(api_q(&http, &sb, Method::GET, "query", &token, &[("query", q)])).await;
    assert_eq!(rows["QueryResponse"]["Bill"].as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(stats(&http, &sb).await["stalls"], 1);

    let sb = sandbox(SandboxOptions { latency_ms: 0, fault_rate: 1.0, ..Default::default() }).await;
    let token = access_token(&http, &sb).await;
    let (status, body) = create(&http, &sb, &token, "bill", &bill(QBO_VENDORS[0].0, "F-1", 5.0)).await;
    assert_eq!((status, body["Fault"]["type"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("SystemFault")));
}
