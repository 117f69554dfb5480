//! The rest of the job API: the job listing, one item, cancelling a job, redriving dead
//! letters and idempotent job submission; each scoped to the token's tenant.

mod common;

use erpsync::daemon::StartOptions;
use erpsync::queue::{GroupFilter, ReceiveRequest};
use erpsync::rig::{Rig, RigSpec};
use erpsync::store::tokens::Scope;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body, headers }
}

async fn call(base: &str, method: Method, path: &str, token: &str, body: Option<&Value>) -> Answer {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    send(req).await
}

fn job_body(connection: &str, n: usize) -> Value {
    let docs = erpsync::samples::invoices(&uuid::Uuid::new_v4().simple().to_string()[..8], n);
    json!({"connection_id": connection, "op": "export_invoice", "documents": docs})
}

fn api_base(rig: &Rig) -> String {
    format!("http://{}", rig.daemon().http_addr())
}

/// Two connections on a fresh database (`db`, or SQLite), the second of tenant `globex`; nothing is worked on while `paused`.
async fn two_tenants(db: Option<String>, paused: bool) -> (Rig, Arc<AtomicBool>) {
    let options = StartOptions::default();
    options.paused.store(paused, Ordering::Release);
    let pause = options.paused.clone();
    let rig = Rig::start(RigSpec {
        limits: vec![4, 4],
        tune: Box::new(|c| c.connections[1].tenant = "globex".into()),
        database_url: db,
        options,
        ..Default::default()
    })
    .await
    .unwrap();
    (rig, pause)
}

fn assert_error(a: &Answer, status: u16, code: &str, fragment: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["error"]["code"], code, "{}", a.body);
    assert!(a.body["error"]["message"].as_str().unwrap().contains(fragment), "{}", a.body);
}

async fn jobs_are_listed_newest_first_in_cursor_pages_filtered_and_refused_clearly(db: Option<String>) {
    let (rig, _options) = two_tenants(db, true).await;
    let base = api_base(&rig);
    let (acme_conn, globex_conn) = (rig.erps[0].connection.to_string(), rig.erps[1].connection.to_string());
    let acme = rig.token_for("default", Scope::Read).await;
    let acme_w = rig.token_for("default", Scope::Write).await;
    let globex = rig.token_for("globex", Scope::Write).await;
    let mut submitted = HashSet::new();
    for n in 1..=5 {
        let a = call(&base, Method::POST, "/v1/jobs", &acme_w, Some(&job_body(&acme_conn, n))).await;
        assert_eq!(a.status, 202, "{}", a.body);
        submitted.insert(a.body["job_id"].as_str().unwrap().to_owned());
    }
    let g = call(&base, Method::POST, "/v1/jobs", &globex, Some(&job_body(&globex_conn, 1))).await;
    let globex_job = g.body["job_id"].as_str().unwrap().to_owned();

    let mut pages = Vec::new();
    let mut path = "/v1/jobs?limit=2".to_owned();
    loop {
        let a = call(&base, Method::GET, &path, &acme, None).await;
        assert_eq!(a.status, 200, "{}", a.body);
        pages.push(a.body["jobs"].as_array().unwrap().clone());
        match a.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/jobs?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let listed: Vec<&Value> = pages.iter().flatten().collect();
    let ids: HashSet<String> = listed.iter().map(|j| j["job_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, submitted, "every job of the tenant once, none of another tenant's");
    let keys: Vec<(i64, String)> = listed
        .iter()
        .map(|j| (j["created_at_ms"].as_i64().unwrap(), j["job_id"].as_str().unwrap().to_owned()))
        .collect();
    let mut newest_first = keys.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, newest_first);
    for j in &listed {
        assert_eq!(j["state"], "running");
        assert_eq!(j["counts"]["queued"], j["total_items"], "{j}");
        assert_eq!(j["counts"]["cancelled"], 0);
    }

    let count = |path: String, token: String| {
        let base = base.clone();
        async move {
            let a = call(&base, Method::GET, &path, &token, None).await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
            a.body["jobs"].as_array().unwrap().len()
        }
    };
    assert_eq!(count(format!("/v1/jobs?connection={acme_conn}&state=running"), acme.clone()).await, 5);
    assert_eq!(count("/v1/jobs?state=succeeded".into(), acme.clone()).await, 0);
    assert_eq!(count(format!("/v1/jobs?since_ms={}", i64::MAX), acme.clone()).await, 0);
    assert_eq!(count("/v1/jobs?limit=100000".into(), acme.clone()).await, 5, "limit is capped, not refused");
    let theirs = call(&base, Method::GET, "/v1/jobs", &globex, None).await;
    assert_eq!(theirs.body["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(theirs.body["jobs"][0]["job_id"], globex_job.as_str());

    // Another tenant's connection is answered as an unknown one.
    let a = call(&base, Method::GET, &format!("/v1/jobs?connection={globex_conn}"), &acme, None).await;
    let none = call(&base, Method::GET, "/v1/jobs?connection=nope", &acme, None).await;
    assert_eq!((a.status, none.status), (404, 404));
    assert_eq!(a.body.to_string(), none.body.to_string().replace("nope", &globex_conn));
    for (query, name) in [
        ("cursor=bm9wZQ", "cursor"),
        ("cursor=%%%", "cursor"),
        ("state=done", "state"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("since_ms=yesterday", "since_ms"),
        ("colour=red", "colour"),
    ] {
        let a = call(&base, Method::GET, &format!("/v1/jobs?{query}"), &acme, None).await;
        assert_error(&a, 400, "bad_parameter", &format!("`{name}`"));
    }
    rig.shutdown().await;
}

async fn an_item_is_shown_with_its_job_and_connection_and_hidden_from_other_tenants(db: Option<String>) {
    let (rig, _options) = two_tenants(db, false).await;
    let base = api_base(&rig);
    let conn = rig.erps[0].connection.to_string();
    let acme = rig.token_for("default", Scope::Write).await;
    let globex = rig.token_for("globex", Scope::Read).await;
    let a = call(&base, Method::POST, "/v1/jobs", &acme, Some(&job_body(&conn, 2))).await;
    let job = a.body["job_id"].as_str().unwrap().to_owned();
    rig.wait_terminal(Duration::from_secs(30)).await.unwrap();
    let summary = call(&base, Method::GET, &format!("/v1/jobs/{job}"), &acme, None).await;
    let item = summary.body["items"][0]["item_id"].as_str().unwrap().to_owned();

    let a = call(&base, Method::GET, &format!("/v1/items/{item}"), &acme, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["item_id"], item.as_str());
    assert_eq!(a.body["job_id"], job.as_str());
    assert_eq!(a.body["connection_id"], conn.as_str());
    assert_eq!(a.body["state"], "succeeded");
    assert_eq!(a.body["attempts"], 1);
    assert!(a.body["erp_id"].as_str().unwrap().starts_with("b-"), "{}", a.body);
    assert!(a.body["error"].is_null());

    let theirs = call(&base, Method::GET, &format!("/v1/items/{item}"), &globex, None).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let none = call(&base, Method::GET, &format!("/v1/items/{unknown}"), &acme, None).await;
    assert_eq!((theirs.status, none.status), (404, 404));
    assert_eq!(theirs.body.to_string(), none.body.to_string().replace(&unknown, &item));
    assert_error(&theirs, 404, "not_found", &item);
    let bad = call(&base, Method::GET, "/v1/items/not-an-id", &acme, None).await;
    assert_error(&bad, 400, "bad_id", "item");
    rig.shutdown().await;
}

async fn a_cancelled_job_stops_its_waiting_items_and_none_is_attempted_after(db: Option<String>) {
    let (rig, pause) = two_tenants(db, true).await;
    let base = api_base(&rig);
    let conn = rig.erps[0].connection.to_string();
    let read = rig.token_for("default", Scope::Read).await;
    let acme = rig.token_for("default", Scope::Write).await;
    let globex = rig.token_for("globex", Scope::Admin).await;
    let a = call(&base, Method::POST, "/v1/jobs", &acme, Some(&job_body(&conn, 3))).await;
    let job = a.body["job_id"].as_str().unwrap().to_owned();
    let cancel = format!("/v1/jobs/{job}/cancel");

    let theirs = call(&base, Method::POST, &cancel, &globex, None).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let none = call(&base, Method::POST, &format!("/v1/jobs/{unknown}/cancel"), &acme, None).await;
    assert_eq!((theirs.status, none.status), (404, 404));
    assert_eq!(theirs.body.to_string(), none.body.to_string().replace(&unknown, &job));
    assert_error(&call(&base, Method::POST, &cancel, &read, None).await, 403, "insufficient_scope", "write");

    let a = call(&base, Method::POST, &cancel, &acme, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["state"], "cancelled");
    assert_eq!(a.body["counts"]["cancelled"], 3);
    assert_eq!(a.body["counts"]["queued"], 0);
    assert_error(&call(&base, Method::POST, &cancel, &acme, None).await, 409, "job_finished", "cancelled");

    // The items' messages are still on the queue: once receiving resumes, each is taken
    // and dropped without an attempt.
    pause.store(false, Ordering::Release);
    let q = rig.daemon().ctx().queue.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = q.depth().await.unwrap();
        if d.visible + d.in_flight + d.delayed == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the cancelled items' messages were never taken: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rig.erps[0].sandbox.stats().requests, 0, "no attempt reached the ERP");
    let s = call(&base, Method::GET, &format!("/v1/jobs/{job}"), &acme, None).await;
    assert_eq!(s.body["counts"]["cancelled"], 3, "{}", s.body);
    for item in s.body["items"].as_array().unwrap() {
        assert_eq!(item["attempts"], 0, "{item}");
        let id = item["item_id"].as_str().unwrap();
        let ev = call(&base, Method::GET, &format!("/v1/items/{id}/events"), &acme, None).await;
        let states: Vec<&str> =
            ev.body["events"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["queued", "cancelled"]);
    }
    let listed = call(&base, Method::GET, "/v1/jobs?state=cancelled", &acme, None).await;
    assert_eq!(listed.body["jobs"][0]["job_id"], job.as_str(), "{}", listed.body);
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("erpsync_items_total") && l.contains("outcome=\"cancelled\"") && l.ends_with(" 3")),
        "{metrics}"
    );
    rig.shutdown().await;
}

async fn a_redrive_moves_only_the_tenants_own_dead_letters(db: Option<String>) {
    let (rig, _options) = two_tenants(db, true).await;
    let base = api_base(&rig);
    let (acme_conn, globex_conn) = (rig.erps[0].connection.to_string(), rig.erps[1].connection.to_string());
    let acme = rig.token_for("default", Scope::Write).await;
    let acme_read = rig.token_for("default", Scope::Read).await;
    let globex = rig.token_for("globex", Scope::Admin).await;
    for (conn, token) in [(&acme_conn, &acme), (&globex_conn, &globex)] {
        assert_eq!(call(&base, Method::POST, "/v1/jobs", token, Some(&job_body(conn, 1))).await.status, 202);
    }
    let q = rig.daemon().ctx().queue.clone();
    let mut dead = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while dead < 2 {
        assert!(Instant::now() < deadline, "only {dead} of 2 messages received");
        let req = ReceiveRequest {
            max_messages: 2,
            wait: Duration::from_secs(1),
            visibility: Duration::from_secs(60),
            groups: GroupFilter::Any,
        };
        for m in q.receive(req).await.unwrap().messages {
            assert!(q.dead_letter(&m, "given up").await.unwrap());
            dead += 1;
        }
    }
    let redrive = "/v1/dead-letters/redrive";
    let theirs = call(&base, Method::POST, redrive, &globex, Some(&json!({"connection": acme_conn}))).await;
    let none = call(&base, Method::POST, redrive, &globex, Some(&json!({"connection": "nope"}))).await;
    assert_eq!((theirs.status, none.status), (404, 404));
    assert_eq!(theirs.body.to_string(), none.body.to_string().replace("nope", &acme_conn));
    assert_error(
        &call(&base, Method::POST, redrive, &acme_read, Some(&json!({}))).await,
        403,
        "insufficient_scope",
        "write",
    );
    assert_error(
        &call(&base, Method::POST, redrive, &acme, Some(&json!({"limit": 0}))).await,
        400,
        "bad_request",
        "limit",
    );
    assert_error(
        &call(&base, Method::POST, redrive, &acme, Some(&json!({"colour": 1}))).await,
        400,
        "bad_request",
        "colour",
    );

    let g = call(&base, Method::POST, redrive, &globex, Some(&json!({}))).await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!((g.body["chosen"].as_u64(), g.body["moved"].as_u64()), (Some(1), Some(1)), "{}", g.body);
    let left = call(&base, Method::GET, "/v1/dead-letters", &acme, None).await;
    assert_eq!(left.body["dead_letters"].as_array().unwrap().len(), 1, "acme's dead letter stays: {}", left.body);
    let a = call(&base, Method::POST, redrive, &acme, Some(&json!({"connection": acme_conn, "limit": 10}))).await;
    assert_eq!((a.body["chosen"].as_u64(), a.body["moved"].as_u64()), (Some(1), Some(1)), "{}", a.body);
    for token in [&acme, &globex] {
        let left = call(&base, Method::GET, "/v1/dead-letters", token, None).await;
        assert_eq!(left.body, json!({"dead_letters": []}));
    }
    assert_eq!(q.depth().await.unwrap().visible, 2, "both messages are back on the queue");
    let again = call(&base, Method::POST, redrive, &acme, None).await;
    assert_eq!((again.status, again.body["chosen"].as_u64()), (200, Some(0)), "{}", again.body);
    rig.shutdown().await;
}

async fn an_idempotency_key_replays_the_first_job_and_refuses_a_different_body(db: Option<String>) {
    let (rig, _options) = two_tenants(db, true).await;
    let base = api_base(&rig);
    let (acme_conn, globex_conn) = (rig.erps[0].connection.to_string(), rig.erps[1].connection.to_string());
    let acme = rig.token_for("default", Scope::Write).await;
    let globex = rig.token_for("globex", Scope::Write).await;
    let keyed = |token: &str, key: &str, body: &Value| {
        let req = reqwest::Client::new()
            .post(format!("{base}/v1/jobs"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body);
        send(req)
    };
    let body = job_body(&acme_conn, 2);
    let first = keyed(&acme, "order-1", &body).await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = keyed(&acme, "order-1", &body).await;
    assert_eq!((again.status, &again.body), (202, &first.body));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let listed = call(&base, Method::GET, "/v1/jobs", &acme, None).await;
    assert_eq!(listed.body["jobs"].as_array().unwrap().len(), 1, "one job for the key: {}", listed.body);

    let other = keyed(&acme, "order-1", &job_body(&acme_conn, 2)).await;
    assert_error(&other, 422, "idempotency_key_reused", "Idempotency-Key");
    // Keys are the tenant's: another tenant's same key is its own.
    let g = keyed(&globex, "order-1", &job_body(&globex_conn, 1)).await;
    assert_eq!(g.status, 202, "{}", g.body);
    assert_ne!(g.body["job_id"], first.body["job_id"]);
    assert_error(&keyed(&acme, &"k".repeat(256), &body).await, 400, "bad_idempotency_key", "Idempotency-Key");
    assert_eq!(keyed(&acme, &"k".repeat(255), &job_body(&acme_conn, 1)).await.status, 202);

    // A refused request is not remembered: fixed, it goes through under the same key.
    let empty = json!({"connection_id": acme_conn, "op": "export_invoice", "documents": []});
    assert_error(&keyed(&acme, "order-2", &empty).await, 422, "empty_job", "at least one");
    assert_eq!(keyed(&acme, "order-2", &job_body(&acme_conn, 1)).await.status, 202);

    // Concurrent repeats: one job; each answer is that job or a 409 while it is submitted.
    let body = job_body(&acme_conn, 3);
    let answers = futures::future::join_all((0..6).map(|_| keyed(&acme, "order-3", &body))).await;
    let jobs: HashSet<String> =
        answers.iter().filter(|a| a.status == 202).map(|a| a.body["job_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(jobs.len(), 1, "{:?}", answers.iter().map(|a| (a.status, a.body.clone())).collect::<Vec<_>>());
    assert!(answers.iter().all(|a| a.status == 202 || a.status == 409));
    let listed = call(&base, Method::GET, "/v1/jobs?limit=500", &acme, None).await;
    assert_eq!(listed.body["jobs"].as_array().unwrap().len(), 4, "{}", listed.body);
    rig.shutdown().await;
}

/// In the store: a cancel takes the job's waiting items (`queued`, `retrying`) and leaves
/// one in progress, whose outcome then stands; a cancelled item's attempt does not begin
/// and a late update of it does not take.
async fn a_cancel_spares_the_item_in_flight_and_fences_the_cancelled_ones(db: Option<String>) {
    use erpsync::domain::ItemState::{InProgress, Retrying, Succeeded};
    use erpsync::domain::{ConnectionId, ErrorKind, ItemId, JobId, Op};
    use erpsync::store::{Enqueuing, ItemError, ItemStart, ItemUpdate, NewItem, NewJob};
    let dir = tempfile::tempdir().unwrap();
    let url = db.unwrap_or_else(|| format!("sqlite://{}/jobs.db?mode=rwc", dir.path().display()));
    let db = erpsync::store::connect(&url, 2).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let ids: Vec<ItemId> = (0..4).map(|_| ItemId::new()).collect();
    let acme = ConnectionId::new("acme");
    let job = NewJob {
        id: JobId::new(),
        connection_id: acme.clone(),
        op: Op::ExportInvoice,
        items: ids.iter().map(|&id| NewItem { id, source_id: format!("inv-{id}"), payload: "{}".into() }).collect(),
    };
    erpsync::store::insert_job(&db, &job, Enqueuing::ByTheOutbox).await.unwrap();
    let update = |k: usize, state, attempt, erp_id: Option<&str>| ItemUpdate {
        item_id: ids[k],
        state,
        attempt: Some(attempt),
        erp_id: erp_id.map(str::to_owned),
        error: (state == Retrying).then(|| ItemError::new(ErrorKind::Transient, None, "from the test")),
        ledger: vec![],
        applications: vec![],
        bills: vec![],
        connection_id: acme.clone(),
        detail: None,
    };
    // Item 0 is queued, item 1 retrying, items 2 and 3 in progress.
    let history = [
        update(1, InProgress, 1, None),
        update(1, Retrying, 1, None),
        update(2, InProgress, 1, None),
        update(3, InProgress, 1, None),
    ];
    assert_eq!(erpsync::store::apply_updates(&db, &history).await.unwrap(), [true; 4]);

    let mut cancelled = erpsync::store::cancel_job(&db, &job.id).await.unwrap();
    cancelled.sort();
    let mut expected = vec![ids[0].to_string(), ids[1].to_string()];
    expected.sort();
    assert_eq!(cancelled, expected);
    let state = |k: usize| {
        let db = db.clone();
        let id = ids[k];
        async move { erpsync::store::item(&db, &id).await.unwrap().unwrap().state }
    };
    assert_eq!(state(2).await, "in_progress", "the item in flight is left to finish");

    let start = |k: usize| ItemStart {
        item_id: ids[k],
        connection_id: acme.clone(),
        doc_kind: "bill",
        source_id: format!("inv-{}", ids[k]),
        max_attempts: 10,
    };
    let (applied, started) =
        erpsync::store::apply_batch(&db, &[update(2, Succeeded, 1, Some("b-1"))], &[start(0), start(1)]).await.unwrap();
    assert_eq!(applied, [true], "the outcome of the item in flight stands");
    assert!(started.iter().all(|s| !s.as_ref().unwrap().begun), "no attempt begins on a cancelled item");
    let late = update(1, Succeeded, 2, Some("b-2"));
    assert_eq!(erpsync::store::apply_updates(&db, &[late]).await.unwrap(), [false], "a cancelled item is final");
    assert_eq!(
        (state(0).await, state(1).await, state(2).await),
        ("cancelled".into(), "cancelled".into(), "succeeded".into())
    );
    // The other item in flight fails retryably: its retry is not scheduled, it is cancelled.
    assert_eq!(erpsync::store::apply_updates(&db, &[update(3, Retrying, 1, None)]).await.unwrap(), [true]);
    assert_eq!(state(3).await, "cancelled", "a cancelled job's item in flight is not retried");
    let summary = erpsync::store::job_summary(&db, &job.id).await.unwrap().unwrap();
    assert_eq!(summary.state, erpsync::domain::JobState::Cancelled);
    assert!(erpsync::store::cancel_job(&db, &job.id).await.unwrap().is_empty(), "nothing is left to cancel");
}

/// In the store: a key older than `idempotency::KEPT` is forgotten, and a new request
/// under it reserves it afresh.
async fn an_idempotency_key_is_forgotten_after_it_is_kept(db: Option<String>) {
    use erpsync::store::idempotency::{self, Reservation};
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let url = db.unwrap_or_else(|| format!("sqlite://{}/jobs.db?mode=rwc", dir.path().display()));
    let db = erpsync::store::connect(&url, 2).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    assert_eq!(idempotency::reserve(&db, "acme", "k", "h1").await.unwrap(), Reservation::Reserved);
    assert_eq!(idempotency::reserve(&db, "acme", "k", "h1").await.unwrap(), Reservation::InProgress);
    idempotency::complete(&db, "acme", "k", 202, "{}").await.unwrap();
    let replay = Reservation::Replay { status: 202, response: "{}".into() };
    assert_eq!(idempotency::reserve(&db, "acme", "k", "h1").await.unwrap(), replay);
    assert_eq!(idempotency::reserve(&db, "acme", "k", "h2").await.unwrap(), Reservation::Mismatch);
    let old = erpsync::util::now_ms() - idempotency::KEPT.as_millis() as i64 - 1000;
    db.execute_unprepared(&format!("UPDATE job_idempotency SET created_at_ms = {old}")).await.unwrap();
    assert_eq!(idempotency::reserve(&db, "acme", "k", "h2").await.unwrap(), Reservation::Reserved);
}

/// Each test on SQLite and on PostgreSQL.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(None).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(Some(crate::common::fresh_postgres().await)).await;
            })*
        }
    };
}

on_both_databases!(
    a_cancel_spares_the_item_in_flight_and_fences_the_cancelled_ones,
    an_idempotency_key_is_forgotten_after_it_is_kept,
    jobs_are_listed_newest_first_in_cursor_pages_filtered_and_refused_clearly,
    an_item_is_shown_with_its_job_and_connection_and_hidden_from_other_tenants,
    a_cancelled_job_stops_its_waiting_items_and_none_is_attempted_after,
    a_redrive_moves_only_the_tenants_own_dead_letters,
    an_idempotency_key_replays_the_first_job_and_refuses_a_different_body,
);
