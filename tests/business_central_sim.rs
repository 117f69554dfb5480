//! The Business Central dialect of the sandbox, spoken to over HTTP as a Business Central
//! client would: it answers as `src/erp/sandbox/business_central.md` documents.

use erpsync::erp::sandbox::{
    BC_SANDBOX_COMPANY, BC_SANDBOX_ENVIRONMENT, BC_SANDBOX_TENANT, BC_VENDORS, BUSINESS_CENTRAL,
    BusinessCentralOptions, Sandbox, SandboxOptions,
};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";

async fn sandbox(opts: SandboxOptions) -> Sandbox {
    Sandbox::start_speaking(&BUSINESS_CENTRAL, "127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

fn fast() -> SandboxOptions {
    SandboxOptions { latency_ms: 0, ..Default::default() }
}

fn with_bc(f: impl FnOnce(&mut BusinessCentralOptions)) -> SandboxOptions {
    let mut o = fast();
    f(&mut o.business_central);
    o
}

async fn token_request(
    http: &Client,
    sb: &Sandbox,
    tenant: &str,
    id: &str,
    secret: &str,
    scope: &str,
) -> (StatusCode, Value) {
    let r = http
        .post(format!("{}/{tenant}/oauth2/v2.0/token", sb.base_url()))
        .form(&[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret), ("scope", scope)])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn token(http: &Client, sb: &Sandbox) -> String {
    let (status, body) = token_request(http, sb, BC_SANDBOX_TENANT, "bc-client", "bc-secret", SCOPE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn api(http: &Client, sb: &Sandbox, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    let url = format!(
        "{}/v2.0/{BC_SANDBOX_TENANT}/{BC_SANDBOX_ENVIRONMENT}/api/v2.0/companies({BC_SANDBOX_COMPANY})/{path}",
        sb.base_url()
    );
    http.request(method, url).bearer_auth(token).header("accept", "application/json")
}

/// A `GET` of `path` with `$filter=filter`, its JSON answer.
async fn filtered(http: &Client, sb: &Sandbox, path: &str, filter: &str, token: &str) -> Value {
    let mut url = reqwest::Url::parse(&format!(
        "{}/v2.0/{BC_SANDBOX_TENANT}/{BC_SANDBOX_ENVIRONMENT}/api/v2.0/companies({BC_SANDBOX_COMPANY})/{path}",
        sb.base_url()
    ))
    .unwrap();
    url.query_pairs_mut().append_pair("$filter", filter);
    http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

fn bill(vendor: &str, number: &str) -> Value {
    json!({
        "vendorNumber": vendor,
        "vendorInvoiceNumber": number,
        "invoiceDate": "2026-11-03",
        "postingDate": "2026-11-03",
        "dueDate": "2026-12-03",
        "currencyCode": "EUR",
        "purchaseInvoiceLines": [
            {"lineType": "Account", "lineObjectNumber": "6100", "description": "Pump service", "quantity": 4, "unitCost": 480.00, "taxCode": "VAT19"},
            {"lineType": "Comment", "description": "delivered to Werk Süd"}
        ]
    })
}

async fn post_bill(http: &Client, sb: &Sandbox, token: &str, body: &Value) -> (StatusCode, Value) {
    let r = api(http, sb, Method::POST, "purchaseInvoices", token).json(body).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

fn odata_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn the_token_endpoint_grants_client_credentials_and_refuses_as_the_identity_platform_does() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let (status, ok) = token_request(&http, &sb, BC_SANDBOX_TENANT, "bc-client", "bc-secret", SCOPE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((ok["token_type"].as_str(), ok["expires_in"].as_u64()), (Some("Bearer"), Some(3599)));
    assert!(ok["access_token"].as_str().is_some_and(|t| !t.is_empty()) && ok.get("refresh_token").is_none());

    let (status, wrong) = token_request(&http, &sb, BC_SANDBOX_TENANT, "bc-client", "nope", SCOPE).await;
    assert_eq!((status, wrong["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert!(wrong["error_description"].as_str().unwrap().starts_with("AADSTS7000215:"), "{wrong}");
    assert_eq!(wrong["error_codes"], json!([7000215]));
    let (status, unknown) = token_request(&http, &sb, BC_SANDBOX_TENANT, "who", "x", SCOPE).await;
    assert_eq!((status, unknown["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
    let (status, scope) =
        token_request(&http, &sb, BC_SANDBOX_TENANT, "bc-client", "bc-secret", "https://graph.microsoft.com/.default")
            .await;
    assert_eq!((status, scope["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
    let (status, tenant) = token_request(&http, &sb, "other-tenant", "bc-client", "bc-secret", SCOPE).await;
    assert_eq!((status, tenant["error_codes"].clone()), (StatusCode::BAD_REQUEST, json!([90002])));

    let hook = format!("{}/__sandbox/business_central/revoke-client-secret", sb.base_url());
    http.post(hook).json(&json!({"client_id": "bc-client"})).send().await.unwrap().error_for_status().unwrap();
    let (status, revoked) = token_request(&http, &sb, BC_SANDBOX_TENANT, "bc-client", "bc-secret", SCOPE).await;
    assert_eq!((status, revoked["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert!(revoked["error_description"].as_str().unwrap().starts_with("AADSTS7000222:"), "{revoked}");
    assert_eq!(sb.stats().refreshes, 1, "only the granted request issued a token");
}

#[tokio::test]
async fn a_missing_unknown_or_expired_token_is_refused_with_401() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let r = api(&http, &sb, Method::GET, "purchaseInvoices", "made-up").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let t = token(&http, &sb).await;
    assert_eq!(api(&http, &sb, Method::GET, "purchaseInvoices", &t).send().await.unwrap().status(), StatusCode::OK);
    let hook = format!("{}/__sandbox/business_central/expire-access-tokens", sb.base_url());
    http.post(hook).send().await.unwrap().error_for_status().unwrap();
    let r = api(&http, &sb, Method::GET, "purchaseInvoices", &t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("expired"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(odata_code(&body), "Authentication_InvalidCredentials");
}

#[tokio::test]
async fn a_purchase_invoice_is_created_with_its_lines_and_found_by_its_vendor_invoice_number() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let t = token(&http, &sb).await;
    let (status, created) = post_bill(&http, &sb, &t, &bill("10000", "RE-2026-000117")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["@odata.etag"].as_str().unwrap().starts_with("W/\""));
    assert!(created["@odata.context"].as_str().unwrap().contains("$metadata#"));
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(created["vendorId"].as_str(), Some(BC_VENDORS[0].0));
    assert_eq!(created["vendorName"].as_str(), Some(BC_VENDORS[0].2));
    assert_eq!(created["status"].as_str(), Some("Draft"));
    assert_eq!(created["totalAmountExcludingTax"], json!(1920));
    assert!(created["number"].as_str().is_some_and(|n| !n.is_empty()));

    let filter = format!("vendorInvoiceNumber eq 'RE-2026-000117' and vendorId eq {}", BC_VENDORS[0].0);
    let found: Value = filtered(&http, &sb, "purchaseInvoices", filter.as_str(), &t).await;
    assert_eq!(found["value"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["value"][0]["id"].as_str(), Some(id.as_str()));
    let none: Value = filtered(&http, &sb, "purchaseInvoices", "vendorInvoiceNumber eq 'O''Brien'", &t).await;
    assert_eq!(none["value"], json!([]));
    let stats = sb.stats();
    assert_eq!((stats.creates, stats.lookups, stats.duplicate_creates), (1, 2, 0));

    // Business Central does not refuse a second draft with the same vendor invoice number.
    let (status, _) = post_bill(&http, &sb, &t, &bill("10000", "RE-2026-000117")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(sb.stats().duplicate_creates, 1);
}

#[tokio::test]
async fn documents_business_central_refuses_carry_its_odata_error() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let t = token(&http, &sb).await;
    let (status, blocked) = post_bill(&http, &sb, &t, &bill(BC_VENDORS[3].1, "B-1")).await;
    assert_eq!((status, odata_code(&blocked)), (StatusCode::BAD_REQUEST, "Application_DialogException"));
    assert!(blocked["error"]["message"].as_str().unwrap().contains("Vendor 40000 is blocked with type All"));

    let mut old_field = bill("10000", "B-2");
    old_field["purchaseInvoiceLines"][0] = json!({"lineType": "Account", "lineObjectNumber": "6100", "description": "x", "quantity": 1, "directUnitCost": 5});
    let (status, refused) = post_bill(&http, &sb, &t, &old_field).await;
    assert_eq!((status, odata_code(&refused)), (StatusCode::BAD_REQUEST, "BadRequest"));
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'directUnitCost' does not exist on type 'Microsoft.NAV.purchaseInvoiceLine'")
    );

    let mut account = bill("10000", "B-3");
    account["purchaseInvoiceLines"][0]["lineObjectNumber"] = json!("9999");
    let (status, missing) = post_bill(&http, &sb, &t, &account).await;
    assert_eq!((status, odata_code(&missing)), (StatusCode::BAD_REQUEST, "Internal_RecordNotFound"));
    let (status, long) = post_bill(&http, &sb, &t, &bill("10000", &"9".repeat(36))).await;
    assert_eq!((status, odata_code(&long)), (StatusCode::BAD_REQUEST, "Application_StringExceededLength"));
    assert_eq!(sb.stats().rejected, 4);

    // A purchase order line keeps directUnitCost.
    let po = json!({"vendorNumber": "10000", "number": "PO-1", "orderDate": "2026-10-12", "purchaseOrderLines": [{"lineType": "Account", "lineObjectNumber": "6100", "description": "x", "quantity": 2, "directUnitCost": 5}]});
    let r = api(&http, &sb, Method::POST, "purchaseOrders", &t).json(&po).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = api(&http, &sb, Method::POST, "purchaseOrders", &t).json(&po).send().await.unwrap();
    let again: Value = r.json().await.unwrap();
    assert_eq!(odata_code(&again), "Internal_EntityWithSameKeyExists");
}

#[tokio::test]
async fn an_attachment_is_a_record_then_its_content_and_a_second_copy_is_counted() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let t = token(&http, &sb).await;
    let (_, created) = post_bill(&http, &sb, &t, &bill("10000", "A-1")).await;
    let bill_id = created["id"].as_str().unwrap();
    let record = json!({"fileName": "A-1.pdf", "parentType": "Purchase Invoice", "parentId": bill_id});
    let r = api(&http, &sb, Method::POST, "documentAttachments", &t).json(&record).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let att: Value = r.json().await.unwrap();
    assert_eq!(att["byteSize"], json!(0));
    let att_id = att["id"].as_str().unwrap();
    let content = format!("documentAttachments({att_id})/attachmentContent");
    let r = api(&http, &sb, Method::PATCH, &content, &t).body("%PDF-1.7 x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "If-Match is required");
    let r =
        api(&http, &sb, Method::PATCH, &content, &t).header("if-match", "*").body("%PDF-1.7 x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let listed: Value = api(&http, &sb, Method::GET, &format!("purchaseInvoices({bill_id})/documentAttachments"), &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["value"][0]["byteSize"], json!(10), "{listed}");
    let bytes = api(&http, &sb, Method::GET, &content, &t).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"%PDF-1.7 x");
    assert_eq!((sb.stats().attachments, sb.stats().duplicate_attachments), (1, 0));
    let r = api(&http, &sb, Method::POST, "documentAttachments", &t).json(&record).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(sb.stats().duplicate_attachments, 1, "a second record of the same file on the bill");
    let orphan = json!({"fileName": "x.pdf", "parentType": "Purchase Invoice", "parentId": uuid::Uuid::new_v4()});
    let r = api(&http, &sb, Method::POST, "documentAttachments", &t).json(&orphan).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_snapshot_batch_of_vendor_payments_keeps_all_or_nothing() {
    let sb = sandbox(fast()).await;
    let http = Client::new();
    let t = token(&http, &sb).await;
    let (_, created) = post_bill(&http, &sb, &t, &bill("10000", "P-1")).await;
    let inv = created["id"].as_str().unwrap();
    let journals: Value =
        api(&http, &sb, Method::GET, "vendorPaymentJournals", &t).send().await.unwrap().json().await.unwrap();
    let journal = journals["value"][0]["id"].as_str().unwrap().to_owned();
    let url = format!("companies({BC_SANDBOX_COMPANY})/vendorPaymentJournals({journal})/vendorPayments");
    let line = |vendor: &str, amount: f64| {
        json!({"method": "POST", "id": "1", "url": url, "headers": {"Content-Type": "application/json"},
        "body": {"vendorNumber": vendor, "postingDate": "2026-12-01", "amount": amount, "appliesToInvoiceId": inv, "description": "Payment", "comment": "pay-1 via wire"}})
    };
    let batch_url = format!("{}/v2.0/{BC_SANDBOX_TENANT}/{BC_SANDBOX_ENVIRONMENT}/api/v2.0/$batch", sb.base_url());
    let send = |body: Value, snapshot: bool| {
        let mut r = http.post(&batch_url).bearer_auth(&t).json(&body);
        if snapshot {
            r = r.header("Isolation", "snapshot");
        }
        r.send()
    };
    let mixed = json!({"requests": [line("10000", 10.0), line(BC_VENDORS[3].1, 5.0)]});
    let answer: Value = send(mixed.clone(), true).await.unwrap().json().await.unwrap();
    assert_eq!(answer["responses"][0]["status"], json!(201));
    assert_eq!(answer["responses"][1]["status"], json!(400));
    assert_eq!(sb.stats().creates, 1, "with Isolation: snapshot nothing of a failing batch is kept");
    let answer: Value = send(mixed, false).await.unwrap().json().await.unwrap();
    assert_eq!(answer["responses"][0]["status"], json!(201));
    assert_eq!(sb.stats().creates, 2, "without it, the requests that succeeded are kept");
    let listed: Value = filtered(
        &http,
        &sb,
        &format!("vendorPaymentJournals({journal})/vendorPayments"),
        "comment eq 'pay-1 via wire'",
        &t,
    )
    .await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    let too_many = json!({"requests": (0..101).map(|_| line("10000", 1.0)).collect::<Vec<_>>()});
    assert_eq!(send(too_many, true).await.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn beyond_five_requests_wait_in_the_queue_and_beyond_the_queue_are_refused() {
    let http = Client::new();
    // 8 at once with a 300 ms latency: 5 are processed, 3 wait, none is refused.
    let sb = sandbox(SandboxOptions { latency_ms: 300, ..Default::default() }).await;
    let t = token(&http, &sb).await;
    let started = std::time::Instant::now();
    let calls = (0..8).map(|_| api(&http, &sb, Method::GET, "purchaseInvoices", &t).send());
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(|r| r.as_ref().unwrap().status() == StatusCode::OK));
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "the last three waited for a slot: {:?}",
        started.elapsed()
    );
    assert_eq!(sb.stats().throttled, 0);

    // No queue: the sixth at once is refused.
    let sb = sandbox(SandboxOptions { latency_ms: 300, ..with_bc(|o| o.queue_limit = 0) }).await;
    let t = token(&http, &sb).await;
    let calls = (0..6).map(|_| api(&http, &sb, Method::GET, "purchaseInvoices", &t).send());
    let answers = futures::future::join_all(calls).await;
    let refused: Vec<_> =
        answers.iter().filter(|r| r.as_ref().unwrap().status() == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(sb.stats().throttled_by_kind.get("connections"), Some(&1));
}

#[tokio::test]
async fn past_the_five_minute_budget_requests_are_refused_with_retry_after() {
    let sb = sandbox(with_bc(|o| o.rate_per_5min = 3)).await;
    let http = Client::new();
    let t = token(&http, &sb).await;
    for _ in 0..3 {
        assert_eq!(api(&http, &sb, Method::GET, "purchaseInvoices", &t).send().await.unwrap().status(), StatusCode::OK);
    }
    let r = api(&http, &sb, Method::GET, "purchaseInvoices", &t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((295..=300).contains(&wait), "{wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(odata_code(&body), "Application_TooManyRequests");
    assert_eq!(sb.stats().throttled_by_kind.get("rate"), Some(&1));
}

#[tokio::test]
async fn faults_answer_503_and_a_stalled_create_is_committed() {
    let sb = sandbox(SandboxOptions { fault_rate: 1.0, ..fast() }).await;
    let http = Client::new();
    let t = token(&http, &sb).await;
    let r = api(&http, &sb, Method::GET, "purchaseInvoices", &t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));

    let sb = sandbox(SandboxOptions { timeout_rate: 1.0, stall_ms: 2_000, ..fast() }).await;
    let t = token(&http, &sb).await;
    let lost = api(&http, &sb, Method::POST, "purchaseInvoices", &t)
        .json(&bill("20000", "S-1"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(lost.is_err_and(|e| e.is_timeout()));
    let found: Value =
        filtered(&http, &sb, "purchaseInvoices", "vendorInvoiceNumber eq 'S-1' and vendorNumber eq '20000'", &t).await;
    assert_eq!(found["value"].as_array().unwrap().len(), 1, "the create committed before its answer stalled");
    assert_eq!(sb.stats().stalls, 1);
}
