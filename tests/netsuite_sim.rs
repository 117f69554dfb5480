//! The NetSuite dialect of the sandbox, spoken to over HTTP as a NetSuite REST client would:
//! every request signed with token-based authentication (`erp::oauth1`, held to
//! RFC 5849's example and an independently computed HMAC in its unit tests).

use erpsync::erp::oauth1::{self, TokenCredentials};
use erpsync::erp::sandbox::{
    NETSUITE, NETSUITE_ACCOUNTS, NETSUITE_INACTIVE_VENDOR, NETSUITE_VENDORS, NetsuiteOptions, Sandbox, SandboxOptions,
};
use reqwest::{Client, Method, StatusCode, Url};
use serde_json::{Value, json};
use std::time::Duration;

async fn sandbox(opts: SandboxOptions) -> Sandbox {
    Sandbox::start_speaking(&NETSUITE, "127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

fn fast() -> SandboxOptions {
    SandboxOptions { latency_ms: 0, ..Default::default() }
}

fn creds(token_secret: &str) -> TokenCredentials {
    let o = NetsuiteOptions::default();
    TokenCredentials {
        realm: erpsync::erp::netsuite::realm(&o.account),
        consumer_key: o.consumer_key,
        consumer_secret: o.consumer_secret.into(),
        token_id: o.token_id,
        token_secret: token_secret.to_owned().into(),
    }
}

/// A signed REST call to `path` (under the record API root, with its query).
async fn call(sb: &Sandbox, method: Method, path: &str, body: Option<&Value>, secret: &str) -> reqwest::Response {
    let url = Url::parse(&format!("{}/services/rest/record/v1/{path}", sb.base_url())).unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let auth = oauth1::authorization(&creds(secret), method.as_str(), &url, &oauth1::nonce(), now);
    let mut req = Client::new().request(method, url).header("authorization", auth);
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

const SECRET: &str = "ns-token-secret";

fn bill(vendor: &str, lines: usize) -> Value {
    let items: Vec<Value> = (0..lines)
        .map(|i| json!({"account": {"id": NETSUITE_ACCOUNTS[i % 3].0}, "amount": 10.5, "memo": format!("line {i}")}))
        .collect();
    json!({"entity": {"id": vendor}, "tranId": "B-1", "tranDate": "2026-11-03", "currency": {"id": "1"},
           "expense": {"items": items}})
}

async fn error_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn a_request_signed_with_the_known_secrets_is_accepted_and_any_other_is_refused_401() {
    let sb = sandbox(fast()).await;
    let ok = call(&sb, Method::PUT, "vendorBill/eid:sig-1", Some(&bill(NETSUITE_VENDORS[0].0, 1)), SECRET).await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    let (status, body) =
        error_of(call(&sb, Method::PUT, "vendorBill/eid:sig-2", Some(&bill(NETSUITE_VENDORS[0].0, 1)), "wrong").await)
            .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], 401);
    assert_eq!(body["title"], "Unauthorized");
    assert_eq!(body["o:errorDetails"][0]["o:errorCode"], "INVALID_LOGIN");
    assert!(body["o:errorDetails"][0]["detail"].as_str().unwrap().starts_with("Invalid login attempt."));
    // A header signed for one query does not pass for another.
    let url =
        Url::parse(&format!("{}/services/rest/record/v1/vendorBill/eid:sig-3?replace=expense", sb.base_url())).unwrap();
    let auth =
        oauth1::authorization(&creds(SECRET), "PUT", &url, &oauth1::nonce(), chrono::Utc::now().timestamp() as u64);
    let tampered = format!("{}/services/rest/record/v1/vendorBill/eid:sig-3?replace=item", sb.base_url());
    let r = Client::new().put(tampered).header("authorization", auth).json(&bill("101", 1)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sb.stats().creates, 1, "refused requests write nothing");
}

#[tokio::test]
async fn a_revoked_token_is_refused_with_netsuites_401() {
    let sb = sandbox(fast()).await;
    assert_eq!(call(&sb, Method::GET, "vendorBill/eid:none", None, SECRET).await.status(), StatusCode::NOT_FOUND);
    let hook = format!("{}/__sandbox/netsuite/revoke", sb.base_url());
    Client::new().post(hook).send().await.unwrap().error_for_status().unwrap();
    let (status, body) = error_of(call(&sb, Method::GET, "vendorBill/eid:none", None, SECRET).await).await;
    assert_eq!(
        (status, body["o:errorDetails"][0]["o:errorCode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("INVALID_LOGIN"))
    );
}

#[tokio::test]
async fn past_the_accounts_concurrency_limit_netsuite_answers_429() {
    let sb = sandbox(SandboxOptions { latency_ms: 400, ..Default::default() }).await;
    let limit = NetsuiteOptions::default().concurrency_limit as usize;
    let paths: Vec<String> = (0..limit).map(|i| format!("vendorBill/eid:held-{i}")).collect();
    let held = futures::future::join_all(paths.iter().map(|p| call(&sb, Method::GET, p, None, SECRET)));
    let probe = async {
        // Once every held call is in flight, one more is refused.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sb.stats().requests < limit as u64 {
            assert!(std::time::Instant::now() < deadline, "the held calls never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        error_of(call(&sb, Method::GET, "vendorBill/eid:one-more", None, SECRET).await).await
    };
    let (held, (status, body)) = tokio::join!(held, probe);
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["status"], 429);
    assert_eq!(body["o:errorDetails"][0]["o:errorCode"], "CONCURRENCY_LIMIT_EXCEEDED");
    for r in held {
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "the held calls were served");
    }
    let stats = sb.stats();
    assert_eq!(stats.throttled_by_kind.get("concurrency"), Some(&1), "{stats:?}");
}

#[tokio::test]
async fn an_upsert_by_external_id_replaces_the_lines_it_names_and_appends_the_others() {
    let sb = sandbox(fast()).await;
    let body = bill(NETSUITE_VENDORS[1].0, 2);
    let first = call(&sb, Method::PUT, "vendorBill/eid:up-1?replace=expense", Some(&body), SECRET).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("/services/rest/record/v1/vendorBill/"), "{location}");
    let again = call(&sb, Method::PUT, "vendorBill/eid:up-1?replace=expense", Some(&body), SECRET).await;
    assert_eq!(again.headers()["location"].to_str().unwrap(), location, "the same record");
    let read: Value = call(&sb, Method::GET, "vendorBill/eid:up-1", None, SECRET).await.json().await.unwrap();
    assert_eq!(read["expense"]["items"].as_array().unwrap().len(), 2, "replaced: {read}");
    assert_eq!(read["externalId"], "up-1");
    assert!(location.ends_with(read["id"].as_str().unwrap()));
    // Without `replace`, NetSuite appends the lines of a non-keyed sublist.
    call(&sb, Method::PUT, "vendorBill/eid:up-1", Some(&body), SECRET).await;
    let read: Value = call(&sb, Method::GET, "vendorBill/eid:up-1", None, SECRET).await.json().await.unwrap();
    assert_eq!(read["expense"]["items"].as_array().unwrap().len(), 4, "appended: {read}");
    let stats = sb.stats();
    assert_eq!((stats.creates, stats.duplicate_creates), (1, 0), "{stats:?}");
}

#[tokio::test]
async fn references_netsuite_does_not_have_are_refused_with_their_error_path() {
    let sb = sandbox(fast()).await;
    let (status, body) = error_of(
        call(&sb, Method::PUT, "vendorBill/eid:ref-1", Some(&bill(NETSUITE_INACTIVE_VENDOR.0, 1)), SECRET).await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let detail = &body["o:errorDetails"][0];
    assert_eq!(
        (detail["o:errorCode"].as_str(), detail["o:errorPath"].as_str()),
        (Some("INVALID_CONTENT"), Some("entity"))
    );
    assert!(detail["detail"].as_str().unwrap().contains("Invalid Field Value 104"), "{body}");
    let mut b = bill(NETSUITE_VENDORS[0].0, 2);
    b["expense"]["items"][1]["account"]["id"] = json!("9999");
    let (_, body) = error_of(call(&sb, Method::PUT, "vendorBill/eid:ref-2", Some(&b), SECRET).await).await;
    assert_eq!(body["o:errorDetails"][0]["o:errorPath"], "expense.items[1].account");
    let (status, body) = error_of(call(&sb, Method::GET, "vendorBill/eid:ref-1", None, SECRET).await).await;
    assert_eq!(
        (status, body["o:errorDetails"][0]["o:errorCode"].as_str()),
        (StatusCode::NOT_FOUND, Some("NONEXISTENT_ID"))
    );
}

#[tokio::test]
async fn currencies_are_found_by_their_symbol() {
    let sb = sandbox(fast()).await;
    let list: Value =
        call(&sb, Method::GET, "currency?q=symbol%20IS%20%22EUR%22", None, SECRET).await.json().await.unwrap();
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["items"][0]["id"], "4");
}
