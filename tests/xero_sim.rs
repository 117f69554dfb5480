//! The Xero dialect of the sandbox, spoken to over HTTP as a Xero client would.

use erpsync::erp::sandbox::{Sandbox, SandboxOptions, XERO, XERO_CONTACTS, XERO_SANDBOX_TENANT, XeroOptions};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const CLIENT: &str = "sandbox-client";
const SECRET: &str = "sandbox-secret";
const FIRST_REFRESH: &str = "sandbox-refresh-token";

async fn sandbox(opts: SandboxOptions) -> Sandbox {
    Sandbox::start_speaking(&XERO, "127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

fn fast() -> SandboxOptions {
    SandboxOptions { latency_ms: 0, ..Default::default() }
}

fn with_xero(xero: XeroOptions) -> SandboxOptions {
    SandboxOptions { xero, ..fast() }
}

async fn refresh(http: &Client, sb: &Sandbox, secret: &str, token: &str) -> (StatusCode, Value) {
    let r = http
        .post(format!("{}/connect/token", sb.base_url()))
        .basic_auth(CLIENT, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=refresh_token&refresh_token={token}"))
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

fn api(http: &Client, sb: &Sandbox, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    http.request(method, format!("{}/api.xro/2.0/{path}", sb.base_url()))
        .bearer_auth(token)
        .header("xero-tenant-id", XERO_SANDBOX_TENANT)
        .header("accept", "application/json")
}

fn bill(contact: &str, number: &str, amount: &str) -> Value {
    json!({
        "Type": "ACCPAY",
        "Contact": {"ContactID": contact},
        "InvoiceNumber": number,
        "Date": "2024-05-01",
        "DueDate": "2024-05-31",
        "CurrencyCode": "USD",
        "Status": "AUTHORISED",
        "LineItems": [{"Description": "Widgets", "Quantity": 1, "UnitAmount": amount.parse::<f64>().unwrap(), "AccountCode": "400"}],
    })
}

const ACTIVE: &str = XERO_CONTACTS[0].0;
const ARCHIVED: &str = XERO_CONTACTS[3].0;

async fn put_bills(
    http: &Client,
    sb: &Sandbox,
    token: &str,
    bills: Vec<Value>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut r =
        api(http, sb, reqwest::Method::PUT, "Invoices?summarizeErrors=false", token).json(&json!({"Invoices": bills}));
    if let Some(k) = key {
        r = r.header("idempotency-key", k);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_is_refused_after_its_grace() {
    let sb = sandbox(with_xero(XeroOptions { refresh_grace_secs: 0, ..Default::default() })).await;
    let http = Client::new();
    let (status, first) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 1800);
    assert!(first["scope"].as_str().unwrap().contains("offline_access"));
    let next = first["refresh_token"].as_str().unwrap();
    assert_ne!(next, FIRST_REFRESH);
    let (status, body) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"})));
    let (status, second) = refresh(&http, &sb, SECRET, next).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (status, body) = refresh(&http, &sb, "wrong-secret", second["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "invalid_client"})));
    assert_eq!(sb.stats().refreshes, 2);
}

#[tokio::test]
async fn within_the_grace_period_the_old_token_answers_the_same_successor() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let (_, first) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    let (status, again) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["refresh_token"], first["refresh_token"]);
    assert_ne!(again["access_token"], first["access_token"]);
    // Once the successor is used, the grace of its predecessor ends.
    let (status, _) = refresh(&http, &sb, SECRET, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"})));
}

#[tokio::test]
async fn a_revoked_client_gets_invalid_grant_and_its_access_tokens_die() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let (_, first) = refresh(&http, &sb, SECRET, FIRST_REFRESH).await;
    let r =
        http.post(format!("{}/__sandbox/xero/revoke", sb.base_url())).json(&json!({"client_id": CLIENT})).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::OK);
    let (status, body) = refresh(&http, &sb, SECRET, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"})));
    let r = api(&http, &sb, reqwest::Method::GET, "Invoices", first["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_expired_access_token_answers_401_token_expired() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let r = api(&http, &sb, reqwest::Method::GET, "Invoices", &token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    http.post(format!("{}/__sandbox/xero/expire-access-tokens", sb.base_url())).send().await.unwrap();
    let r = api(&http, &sb, reqwest::Method::GET, "Invoices", &token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.starts_with("Bearer error=\"invalid_token\"") && www.contains("expired"), "{www}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Title"], "Unauthorized");
    assert_eq!(body["Status"], 401);
    assert!(body["Detail"].as_str().unwrap().starts_with("TokenExpired: token expired at "), "{body}");

    let r = http.get(format!("{}/api.xro/2.0/Invoices", sb.base_url())).bearer_auth("nonsense").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["Detail"], "AuthenticationUnsuccessful");
}

#[tokio::test]
async fn an_unknown_tenant_is_forbidden() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let r = http
        .get(format!("{}/api.xro/2.0/Invoices", sb.base_url()))
        .bearer_auth(&token)
        .header("xero-tenant-id", "00000000-0000-0000-0000-000000000001")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["Title"].clone(), body["Detail"].clone()),
        (json!("Forbidden"), json!("AuthenticationUnsuccessful"))
    );
}

#[tokio::test]
async fn one_bill_is_created_with_xeros_answer() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let r = put_bills(&http, &sb, &token, vec![bill(ACTIVE, "B-1", "120.50")], None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("x-minlimit-remaining"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Status"], "OK");
    let inv = &body["Invoices"][0];
    assert_eq!(inv["StatusAttributeString"], "OK");
    assert!(uuid::Uuid::parse_str(inv["InvoiceID"].as_str().unwrap()).is_ok());
    assert_eq!(inv["Total"], 120.5);
    assert_eq!(inv["AmountDue"], 120.5);
    assert_eq!(inv["Contact"]["ContactID"], ACTIVE);
    assert_eq!(inv["DateString"], "2024-05-01T00:00:00");
    assert!(inv["Date"].as_str().unwrap().starts_with("/Date("));
    let id = inv["InvoiceID"].as_str().unwrap();
    let r = api(&http, &sb, reqwest::Method::GET, &format!("Invoices/{id}"), &token).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["Invoices"][0]["InvoiceNumber"], "B-1");
    let r = api(&http, &sb, reqwest::Method::GET, "Invoices/0c1d2e3f-0000-4000-8000-000000000000", &token).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn fifty_bills_with_one_invalid_answer_200_with_that_one_in_error() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let mut bills: Vec<Value> = (0..50).map(|i| bill(ACTIVE, &format!("B-{i}"), "10")).collect();
    bills[17] = bill(ARCHIVED, "B-17", "10");
    let r = put_bills(&http, &sb, &token, bills.clone(), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let invoices = body["Invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 50);
    for (i, inv) in invoices.iter().enumerate() {
        if i == 17 {
            assert_eq!(inv["StatusAttributeString"], "ERROR");
            assert_eq!(inv["HasErrors"], true);
            assert!(inv["ValidationErrors"][0]["Message"].as_str().unwrap().contains("archived"), "{inv}");
            assert_eq!(inv["InvoiceID"], "00000000-0000-0000-0000-000000000000");
        } else {
            assert_eq!(inv["StatusAttributeString"], "OK", "{i}: {inv}");
        }
    }
    assert_eq!((sb.stats().creates, sb.stats().rejected), (49, 1));

    // Without summarizeErrors=false, Xero refuses the whole request.
    let r = api(&http, &sb, reqwest::Method::PUT, "Invoices", &token)
        .json(&json!({"Invoices": bills}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["ErrorNumber"].clone(), body["Type"].clone()), (json!(10), json!("ValidationException")));
    assert_eq!(body["Elements"].as_array().unwrap().len(), 1);
    assert_eq!(sb.stats().creates, 49);
}

#[tokio::test]
async fn a_repeated_idempotency_key_replays_the_first_answer() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let first: Value =
        put_bills(&http, &sb, &token, vec![bill(ACTIVE, "B-1", "5")], Some("k-1")).await.json().await.unwrap();
    let again: Value =
        put_bills(&http, &sb, &token, vec![bill(ACTIVE, "B-1", "5")], Some("k-1")).await.json().await.unwrap();
    assert_eq!(first["Invoices"][0]["InvoiceID"], again["Invoices"][0]["InvoiceID"]);
    let stats = sb.stats();
    assert_eq!((stats.creates, stats.idempotent_replays, stats.duplicate_creates), (1, 1, 0));
    let r = put_bills(&http, &sb, &token, vec![bill(ACTIVE, "B-2", "5")], Some("k-1")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Without a key, the same bill again is a second bill: Xero does not refuse it.
    put_bills(&http, &sb, &token, vec![bill(ACTIVE, "B-1", "5")], None).await;
    assert_eq!((sb.stats().creates, sb.stats().duplicate_creates), (2, 1));
}

#[tokio::test]
async fn a_sixth_call_in_progress_is_throttled_as_concurrent() {
    let sb = sandbox(SandboxOptions { latency_ms: 400, ..Default::default() }).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let calls = (0..6).map(|_| api(&http, &sb, reqwest::Method::GET, "Invoices", &token).send());
    let answers = futures::future::join_all(calls).await;
    let throttled: Vec<_> = answers.iter().map(|r| r.as_ref().unwrap()).filter(|r| r.status() == 429).collect();
    assert_eq!(throttled.len(), 1);
    assert_eq!(throttled[0].headers()["x-rate-limit-problem"], "concurrent");
    assert!(!throttled[0].headers().contains_key("retry-after"));
    assert_eq!(sb.stats().throttled_by_kind["concurrent"], 1);
}

#[tokio::test]
async fn the_sixty_first_call_in_a_minute_is_throttled_with_retry_after() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    for i in 0..60 {
        let r = api(&http, &sb, reqwest::Method::GET, "Invoices", &token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-minlimit-remaining"], (59 - i).to_string().as_str());
        assert_eq!(r.headers()["x-daylimit-remaining"], (4999 - i).to_string().as_str());
        assert!(r.headers().contains_key("x-appminlimit-remaining"));
    }
    let r = api(&http, &sb, reqwest::Method::GET, "Invoices", &token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-rate-limit-problem"], "minute");
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(sb.stats().throttled_by_kind["minute"], 1);
}

#[tokio::test]
async fn past_the_day_limit_calls_are_throttled_as_day() {
    let sb = sandbox(with_xero(XeroOptions { day_limit: 2, ..Default::default() })).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    for _ in 0..2 {
        assert_eq!(api(&http, &sb, reqwest::Method::GET, "Invoices", &token).send().await.unwrap().status(), 200);
    }
    let r = api(&http, &sb, reqwest::Method::GET, "Invoices", &token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-rate-limit-problem"], "day");
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 60);
}

#[tokio::test]
async fn attachments_are_stored_listed_and_overwritten_by_name() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let created: Value =
        put_bills(&http, &sb, &token, vec![bill(ACTIVE, "B-1", "5")], None).await.json().await.unwrap();
    let id = created["Invoices"][0]["InvoiceID"].as_str().unwrap().to_owned();
    let pdf = b"%PDF-1.4 a bill".to_vec();
    let put = |name: &str| {
        api(&http, &sb, reqwest::Method::PUT, &format!("Invoices/{id}/Attachments/{name}"), &token)
            .header("content-type", "application/pdf")
            .body(pdf.clone())
            .send()
    };
    let r = put("B-1.pdf").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let a = &body["Attachments"][0];
    assert_eq!((a["FileName"].clone(), a["MimeType"].clone()), (json!("B-1.pdf"), json!("application/pdf")));
    assert_eq!(a["ContentLength"], pdf.len());
    assert!(a["Url"].as_str().unwrap().ends_with(&format!("/Invoices/{id}/Attachments/B-1.pdf")));
    put("B-1.pdf").await.unwrap();
    let list: Value = api(&http, &sb, reqwest::Method::GET, &format!("Invoices/{id}/Attachments"), &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["Attachments"].as_array().unwrap().len(), 1);
    assert_eq!((sb.stats().attachments, sb.stats().duplicate_attachments), (1, 0));
    put("copy.pdf").await.unwrap();
    assert_eq!((sb.stats().attachments, sb.stats().duplicate_attachments), (2, 1));
    let r = put("bad:name.pdf").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bills_are_found_by_invoice_number_and_contact() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let other = XERO_CONTACTS[1].0;
    put_bills(
        &http,
        &sb,
        &token,
        vec![bill(ACTIVE, "N-1", "5"), bill(other, "N-1", "7"), bill(ACTIVE, "N-2", "9")],
        None,
    )
    .await;
    let q = format!("Invoices?InvoiceNumbers=N-1&ContactIDs={ACTIVE}");
    let found: Value = api(&http, &sb, reqwest::Method::GET, &q, &token).send().await.unwrap().json().await.unwrap();
    let found = found["Invoices"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["Total"], 5.0);
    let q = format!("Invoices?where=Contact.ContactID%3D%3DGuid(%22{other}%22)%20AND%20InvoiceNumber%3D%3D%22N-1%22");
    let found: Value = api(&http, &sb, reqwest::Method::GET, &q, &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(found["Invoices"].as_array().unwrap().len(), 1);
    assert_eq!(found["Invoices"][0]["Total"], 7.0);
    let q = "Invoices?InvoiceNumbers=N-1,N-2";
    let found: Value = api(&http, &sb, reqwest::Method::GET, q, &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(found["Invoices"].as_array().unwrap().len(), 3);
    assert_eq!(sb.stats().lookups, 3);
}

#[tokio::test]
async fn a_payment_beyond_the_amount_due_is_refused() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let created: Value =
        put_bills(&http, &sb, &token, vec![bill(ACTIVE, "B-1", "100")], None).await.json().await.unwrap();
    let id = created["Invoices"][0]["InvoiceID"].as_str().unwrap().to_owned();
    let pay = |amount: f64| {
        api(&http, &sb, reqwest::Method::PUT, "Payments?summarizeErrors=false", &token)
            .json(&json!({"Payments": [{"Invoice": {"InvoiceID": id}, "Account": {"Code": "090"}, "Date": "2024-06-01", "Amount": amount}]}))
            .send()
    };
    let body: Value = pay(60.0).await.unwrap().json().await.unwrap();
    assert_eq!(body["Payments"][0]["Invoice"]["AmountDue"], 40.0);
    assert!(body["Payments"][0]["PaymentID"].as_str().is_some());
    let body: Value = pay(50.0).await.unwrap().json().await.unwrap();
    assert_eq!(body["Payments"][0]["StatusAttributeString"], "ERROR");
    assert_eq!(
        body["Payments"][0]["ValidationErrors"][0]["Message"],
        "Payment amount exceeds the amount outstanding on this document"
    );
    let body: Value = pay(40.0).await.unwrap().json().await.unwrap();
    assert_eq!(body["Payments"][0]["Invoice"]["Status"], "PAID");
}

#[tokio::test]
async fn purchase_order_numbers_are_unique() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let token = access_token(&http, &sb).await;
    let po = json!({"Contact": {"ContactID": ACTIVE}, "PurchaseOrderNumber": "PO-7", "Date": "2024-05-01",
        "LineItems": [{"Description": "Bolts", "Quantity": 2, "UnitAmount": 3.5, "AccountCode": "300"}]});
    let send = || {
        api(&http, &sb, reqwest::Method::PUT, "PurchaseOrders?summarizeErrors=false", &token)
            .json(&json!({"PurchaseOrders": [po.clone()]}))
            .send()
    };
    let body: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(body["PurchaseOrders"][0]["StatusAttributeString"], "OK");
    assert_eq!(body["PurchaseOrders"][0]["Total"], 7.0);
    let body: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(body["PurchaseOrders"][0]["ValidationErrors"][0]["Message"], "Order number must be unique");
}
