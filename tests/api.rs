//! The HTTP API of a running daemon: answers, error bodies, health.

use erpsync::rig::{Rig, RigSpec};
use serde_json::{Value, json};
use std::time::Duration;

/// A client sending a fresh write token of the rig's tenant.
async fn erpsync_test_client(rig: &Rig) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", rig.token().await).parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_api_accepts_reports_and_refuses_clearly() {
    let rig = Rig::start(RigSpec::default()).await.unwrap();
    let base = format!("http://{}", rig.daemon().http_addr());
    let http = erpsync_test_client(&rig).await;
    let conn = rig.erps[0].connection.to_string();
    let docs: Vec<Value> =
        erpsync::samples::invoices("api", 5).iter().map(|i| serde_json::to_value(i).unwrap()).collect();

    let r = http
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"connection_id": conn, "op": "export_invoice", "documents": docs}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    assert_eq!(accepted["items"], 5);
    assert_eq!(accepted["status_url"], format!("/v1/jobs/{job}"));

    rig.wait_terminal(Duration::from_secs(30)).await.unwrap();
    let s: Value = http.get(format!("{base}/v1/jobs/{job}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["state"], "succeeded");
    assert_eq!(s["counts"]["succeeded"], 5);
    assert!(s["items"][0]["erp_id"].as_str().unwrap().starts_with("b-"));
    let item = s["items"][0]["item_id"].as_str().unwrap();
    let ev: Value = http.get(format!("{base}/v1/items/{item}/events")).send().await.unwrap().json().await.unwrap();
    let states: Vec<&str> = ev["events"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["queued", "in_progress", "succeeded"]);
    let csv = http.get(format!("{base}/v1/jobs/{job}/bills.csv")).send().await.unwrap().text().await.unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");

    let refuse = |body: Value, status: u16, code: &'static str, fragment: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http.post(format!("{base}/v1/jobs")).json(&body).send().await.unwrap();
            assert_eq!(r.status(), status, "{body}");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], code, "{e}");
            assert!(e["error"]["message"].as_str().unwrap().contains(fragment), "{e}");
        }
    };
    refuse(
        json!({"connection_id": "nope", "op": "export_invoice", "documents": docs}),
        422,
        "unknown_connection",
        "nope",
    )
    .await;
    refuse(json!({"connection_id": conn, "op": "export_invoice", "documents": []}), 422, "empty_job", "at least one")
        .await;
    refuse(
        json!({"connection_id": conn, "op": "export_invoice", "documents": [docs[0], {"source_id": 7}]}),
        422,
        "invalid_documents",
        "documents[1]",
    )
    .await;
    refuse(json!({"connection_id": conn, "op": "export_gold", "documents": docs}), 400, "bad_request", "op").await;
    refuse(
        json!({"connection_id": conn, "op": "export_invoice", "documents": docs, "extra": 1}),
        400,
        "bad_request",
        "extra",
    )
    .await;

    assert_eq!(http.get(format!("{base}/v1/jobs/not-a-uuid")).send().await.unwrap().status(), 400);
    assert_eq!(http.get(format!("{base}/v1/jobs/{}", uuid::Uuid::now_v7())).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "erpsync_build_info",
        "erpsync_items_total",
        "erpsync_erp_request_duration_seconds_bucket",
        "erpsync_connection_concurrency_limit",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    rig.shutdown().await;
}
