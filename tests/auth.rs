//! Who may call `/v1`: bearer tokens, their scopes and tenants, the rate limit per token,
//! the body limit, and the endpoints that need no token.

use erpsync::daemon::StartOptions;
use erpsync::queue::{GroupFilter, ReceiveRequest};
use erpsync::rig::{Rig, RigSpec};
use erpsync::store::tokens::Scope;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

async fn call(base: &str, method: Method, path: &str, auth: Option<&str>, body: Option<&Value>) -> Answer {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body, headers }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn job_body(connection: &str, n: usize) -> Value {
    let docs = erpsync::samples::invoices(&uuid::Uuid::new_v4().simple().to_string()[..8], n);
    json!({"connection_id": connection, "op": "export_invoice", "documents": docs})
}

fn api_base(rig: &Rig) -> String {
    format!("http://{}", rig.daemon().http_addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_malformed_unknown_and_revoked_tokens_are_refused_each_with_its_code() {
    let rig = Rig::start(RigSpec::default()).await.unwrap();
    let base = api_base(&rig);
    let conn = rig.erps[0].connection.to_string();
    let a = call(&base, Method::GET, "/v1/dead-letters", None, None).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (401, Some("missing_token")), "{}", a.body);
    assert!(a.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let unknown = format!("erps_{}", "0f".repeat(32));
    for (auth, code) in [
        ("Bearer nope".to_owned(), "malformed_token"),
        (format!("Basic {}", &unknown[5..]), "malformed_token"),
        (bearer(&unknown[..60]), "malformed_token"),
        (bearer(&unknown), "unknown_token"),
    ] {
        let a = call(&base, Method::GET, "/v1/dead-letters", Some(&auth), None).await;
        assert_eq!((a.status, a.body["error"]["code"].as_str()), (401, Some(code)), "{auth}: {}", a.body);
        assert!(a.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Revoked before it was ever used: refused at once.
    let db = &rig.daemon().ctx().db;
    let never_used = erpsync::store::tokens::create(db, "default", Scope::Read, "x").await.unwrap();
    assert!(erpsync::store::tokens::revoke(db, &never_used.record.id).await.unwrap());
    let a = call(&base, Method::GET, "/v1/dead-letters", Some(&bearer(&never_used.token)), None).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (401, Some("revoked_token")), "{}", a.body);

    // Revoked while in use: refused within the cache's bound.
    let busy = erpsync::store::tokens::create(db, "default", Scope::Write, "busy").await.unwrap();
    let auth = bearer(&busy.token);
    assert_eq!(call(&base, Method::POST, "/v1/jobs", Some(&auth), Some(&job_body(&conn, 1))).await.status, 202);
    assert!(erpsync::store::tokens::revoke(db, &busy.record.id).await.unwrap());
    let revoked = Instant::now();
    let bound = erpsync::http::auth::CACHE_TTL + Duration::from_secs(1);
    loop {
        let a = call(&base, Method::GET, "/v1/dead-letters", Some(&auth), None).await;
        if a.status == 401 {
            assert_eq!(a.body["error"]["code"], "revoked_token", "{}", a.body);
            break;
        }
        assert!(revoked.elapsed() < bound, "a revoked token still worked after {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_reads_but_may_not_submit() {
    let rig = Rig::start(RigSpec::default()).await.unwrap();
    let base = api_base(&rig);
    let read = bearer(&rig.token_for("default", Scope::Read).await);
    let conn = rig.erps[0].connection.to_string();
    let a = call(&base, Method::POST, "/v1/jobs", Some(&read), Some(&job_body(&conn, 1))).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (403, Some("insufficient_scope")), "{}", a.body);
    assert!(a.body["error"]["message"].as_str().unwrap().contains("scope write"), "{}", a.body);
    let write = bearer(&rig.token().await);
    let a = call(&base, Method::POST, "/v1/jobs", Some(&write), Some(&job_body(&conn, 1))).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let job = a.body["job_id"].as_str().unwrap();
    assert_eq!(call(&base, Method::GET, &format!("/v1/jobs/{job}"), Some(&read), None).await.status, 200);
    let admin = bearer(&rig.token_for("default", Scope::Admin).await);
    assert_eq!(call(&base, Method::POST, "/v1/jobs", Some(&admin), Some(&job_body(&conn, 1))).await.status, 202);
    rig.shutdown().await;
}

/// Every `/v1` endpoint, asked by another tenant's token about this tenant's job, item,
/// connection and dead letter, answers exactly as it does for ones that do not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_data_is_answered_as_unknown() {
    let options = StartOptions::default();
    // Nothing is worked on, so the test can dead-letter a message itself.
    options.paused.store(true, Ordering::Release);
    let rig = Rig::start(RigSpec {
        limits: vec![4, 4],
        tune: Box::new(|c| c.connections[1].tenant = "globex".into()),
        options,
        ..Default::default()
    })
    .await
    .unwrap();
    let base = api_base(&rig);
    let (acme_conn, globex_conn) = (rig.erps[0].connection.to_string(), rig.erps[1].connection.to_string());
    let acme = bearer(&rig.token_for("default", Scope::Admin).await);
    let globex = bearer(&rig.token_for("globex", Scope::Admin).await);

    let a = call(&base, Method::POST, "/v1/jobs", Some(&acme), Some(&job_body(&acme_conn, 2))).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let job = a.body["job_id"].as_str().unwrap().to_owned();
    let summary = call(&base, Method::GET, &format!("/v1/jobs/{job}"), Some(&acme), None).await;
    let item = summary.body["items"][0]["item_id"].as_str().unwrap().to_owned();
    let q = rig.daemon().ctx().queue.clone();
    let req = ReceiveRequest {
        max_messages: 1,
        wait: Duration::from_secs(1),
        visibility: Duration::from_secs(60),
        groups: GroupFilter::Any,
    };
    let got = q.receive(req).await.unwrap().messages;
    assert!(q.dead_letter(&got[0], "given up").await.unwrap());

    let (unknown_job, unknown_item) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    for (mine, unknown) in [
        (format!("/v1/jobs/{job}"), format!("/v1/jobs/{unknown_job}")),
        (format!("/v1/jobs/{job}/bills.csv"), format!("/v1/jobs/{unknown_job}/bills.csv")),
        (format!("/v1/items/{item}/events"), format!("/v1/items/{unknown_item}/events")),
    ] {
        assert_eq!(call(&base, Method::GET, &mine, Some(&acme), None).await.status, 200, "{mine}");
        let theirs = call(&base, Method::GET, &mine, Some(&globex), None).await;
        let none = call(&base, Method::GET, &unknown, Some(&acme), None).await;
        assert_eq!((theirs.status, none.status), (404, 404), "{mine}: {} / {}", theirs.body, none.body);
        let as_unknown = none.body.to_string().replace(&unknown_job, &job).replace(&unknown_item, &item);
        assert_eq!(theirs.body.to_string(), as_unknown, "{mine}");
    }
    let dead = call(&base, Method::GET, "/v1/dead-letters", Some(&acme), None).await;
    assert_eq!(dead.body["dead_letters"].as_array().unwrap().len(), 1, "{}", dead.body);
    let dead = call(&base, Method::GET, "/v1/dead-letters", Some(&globex), None).await;
    assert_eq!(dead.body, json!({"dead_letters": []}));

    // A connection of another tenant is as unknown as one that does not exist.
    let theirs = call(&base, Method::POST, "/v1/jobs", Some(&acme), Some(&job_body(&globex_conn, 1))).await;
    let none = call(&base, Method::POST, "/v1/jobs", Some(&acme), Some(&job_body("nope", 1))).await;
    assert_eq!((theirs.status, none.status), (422, 422));
    assert_eq!(theirs.body.to_string(), none.body.to_string().replace("nope", &globex_conn));
    assert_eq!(theirs.body["error"]["code"], "unknown_connection");
    let a = call(&base, Method::POST, "/v1/jobs", Some(&globex), Some(&job_body(&globex_conn, 1))).await;
    assert_eq!(a.status, 202, "its own tenant may: {}", a.body);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_is_held_to_its_rate_and_bodies_to_their_limit() {
    let rig = Rig::start(RigSpec {
        tune: Box::new(|c| {
            c.http.requests_per_min_per_token = 60.try_into().unwrap();
            c.http.max_body_bytes = 20_000.try_into().unwrap();
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let base = api_base(&rig);
    let conn = rig.erps[0].connection.to_string();
    let (one, other) = (bearer(&rig.token().await), bearer(&rig.token().await));
    // A burst of a tenth of the minute's budget, then 429.
    for _ in 0..6 {
        assert_eq!(call(&base, Method::GET, "/v1/dead-letters", Some(&one), None).await.status, 200);
    }
    let a = call(&base, Method::GET, "/v1/dead-letters", Some(&one), None).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (429, Some("rate_limited")), "{}", a.body);
    let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(call(&base, Method::GET, "/v1/dead-letters", Some(&other), None).await.status, 200, "per token");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(call(&base, Method::GET, "/v1/dead-letters", Some(&one), None).await.status, 200, "after Retry-After");

    let a = call(&base, Method::POST, "/v1/jobs", Some(&other), Some(&job_body(&conn, 100))).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (413, Some("body_too_large")), "{}", a.body);
    assert!(a.body["error"]["message"].as_str().unwrap().contains("20000"), "{}", a.body);
    let a = call(&base, Method::POST, "/v1/jobs", Some(&other), Some(&job_body(&conn, 2))).await;
    assert_eq!(a.status, 202, "a body within the limit: {}", a.body);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_need_no_token_and_can_move_to_their_own_address() {
    let rig = Rig::start(RigSpec::default()).await.unwrap();
    let base = api_base(&rig);
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(call(&base, Method::GET, path, None, None).await.status, 200, "{path}");
    }
    assert!(rig.daemon().metrics_addr().is_none());
    rig.shutdown().await;

    let rig = Rig::start(RigSpec {
        tune: Box::new(|c| c.http.metrics_listen = Some("127.0.0.1:0".parse().unwrap())),
        ..Default::default()
    })
    .await
    .unwrap();
    let (api, ops) = (api_base(&rig), format!("http://{}", rig.daemon().metrics_addr().unwrap()));
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(call(&ops, Method::GET, path, None, None).await.status, 200, "{path}");
    }
    let metrics = call(&ops, Method::GET, "/metrics", None, None).await.body;
    assert!(metrics.as_str().unwrap().contains("erpsync_build_info"));
    assert_eq!(call(&api, Method::GET, "/metrics", None, None).await.status, 404, "only on metrics_listen");
    assert_eq!(call(&api, Method::GET, "/healthz", None, None).await.status, 200, "health stays on the API too");
    assert_eq!(call(&ops, Method::GET, "/v1/dead-letters", None, None).await.status, 404, "no API there");
    rig.shutdown().await;
}
