//! Signed webhooks against a real receiver (tests/webhook_receiver.py) that verifies each
//! delivery with the `standardwebhooks` package from PyPI, an implementation independent
//! of erpsync's: delivery and verification, secret rotation, a replay refused, a failing
//! and then dead receiver retried until it is back (the exports unaffected), addresses
//! refused, tenants kept apart, redelivery; and the delivery queue's claims across
//! workers, on SQLite and PostgreSQL.

mod common;

use common::Proc;
use erpsync::rig::{Rig, RigSpec};
use erpsync::store::tokens::Scope;
use erpsync::store::webhooks::deliveries::{self, NewDelivery};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::BufRead;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// The Python with `standardwebhooks` that scripts/test.sh installs; the test fails,
/// saying how to get it, when it is missing.
fn python() -> String {
    let prefix = std::env::var("ERPSYNC_TEST_PREFIX").unwrap_or_else(|_| "/opt/erpsync-test".into());
    let python = format!("{prefix}/venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{python} cannot import standardwebhooks: run scripts/test.sh, which installs it, or \
         `python3 -m venv {prefix}/venv && {prefix}/venv/bin/pip install standardwebhooks`"
    );
    python
}

/// The receiver process, on `port`.
struct Receiver {
    proc: Option<Proc>,
    port: u16,
}

impl Receiver {
    fn start(port: u16) -> Receiver {
        Receiver::start_with(port, json!({}))
    }

    /// A receiver on `port` (0: any) with `config` (as [`Receiver::configure`]) in force
    /// from its first request.
    fn start_with(port: u16, config: Value) -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook_receiver.py");
        let mut child = std::process::Command::new(python())
            .args([script, &port.to_string(), &config.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("listening ").and_then(|p| p.parse().ok()).expect("the receiver listens");
        Receiver { proc: Some(Proc(child)), port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/erpsync", self.port)
    }

    fn stop(&mut self) {
        self.proc.take();
    }

    async fn configure(&self, config: Value) {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/__config", self.port))
            .json(&config)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    async fn received(&self) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/__received", self.port);
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }

    /// Waits until the receiver has recorded a delivery `pred` holds for.
    async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + DEADLINE;
        loop {
            let all = self.received().await;
            if let Some(r) = all.iter().find(|r| pred(r)) {
                return r.clone();
            }
            assert!(Instant::now() < until, "no delivery {what} within {DEADLINE:?}; received: {all:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Answer {
    status: u16,
    body: Value,
}

async fn call(base: &str, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}

fn assert_error(a: &Answer, status: u16, code: &str, fragment: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["error"]["code"], code, "{}", a.body);
    assert!(a.body["error"]["message"].as_str().unwrap().contains(fragment), "{}", a.body);
}

/// A rig of two connections (the second of tenant `globex`) with a secrets key and fast
/// webhook retries; `tune` has the last word.
struct Setup {
    rig: Rig,
    base: String,
    _key: tempfile::NamedTempFile,
}

async fn setup(db: Option<String>, allow_private: bool) -> Setup {
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), "7a".repeat(32)).unwrap();
    setup_keyed(db, allow_private, key).await
}

/// As [`setup`], with the secrets key in `key` (daemons of one fleet share it).
async fn setup_keyed(db: Option<String>, allow_private: bool, key: tempfile::NamedTempFile) -> Setup {
    let reference = format!("file:{}", key.path().display());
    let rig = Rig::start(RigSpec {
        limits: vec![4, 4],
        database_url: db,
        tune: Box::new(move |c| {
            c.connections[1].tenant = "globex".into();
            c.secrets.key = Some(reference.clone());
            c.webhooks.allow_private = allow_private;
            c.webhooks.poll_interval_ms = NonZeroU32::new(20).unwrap();
            c.webhooks.retry_base_delay_ms = NonZeroU32::new(100).unwrap();
            c.webhooks.retry_max_delay_secs = NonZeroU32::new(1).unwrap();
            c.webhooks.timeout_secs = NonZeroU32::new(2).unwrap();
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let base = format!("http://{}", rig.daemon().http_addr());
    Setup { rig, base, _key: key }
}

impl Setup {
    async fn subscribe(&self, token: &str, url: &str, events: &[&str]) -> Value {
        let a =
            call(&self.base, Method::POST, "/v1/webhooks", token, Some(json!({"url": url, "events": events}))).await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body
    }

    /// Queues an event for subscription `sub` as the fan-out would.
    async fn queue_event(&self, sub: &str, tenant: &str, key: &str, data: Value) {
        let body = erpsync::webhooks::body("job.completed", erpsync::util::now_ms(), &data);
        let d = NewDelivery {
            subscription_id: sub.into(),
            tenant: tenant.into(),
            event_key: key.into(),
            event_type: "job.completed".into(),
            body,
        };
        deliveries::insert(&self.rig.daemon().ctx().db, &[d], erpsync::util::now_ms(), 86_400_000).await.unwrap();
    }

    async fn log(&self, token: &str, sub: &str) -> Vec<Value> {
        let a = call(&self.base, Method::GET, &format!("/v1/webhooks/{sub}/deliveries"), token, None).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["deliveries"].as_array().unwrap().clone()
    }

    /// Waits until the log of `sub` shows a delivery `pred` holds for.
    async fn wait_log(&self, token: &str, sub: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + DEADLINE;
        loop {
            let log = self.log(token, sub).await;
            if let Some(d) = log.iter().find(|d| pred(d)) {
                return d.clone();
            }
            assert!(Instant::now() < until, "no delivery {what} within {DEADLINE:?}; log: {log:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn a_delivery_is_signed_and_verified_by_the_reference_library(db: Option<String>) {
    let s = setup(db, true).await;
    let receiver = Receiver::start(0);
    let token = s.rig.token().await;
    let sub = s.subscribe(&token, &receiver.url(), &["job.completed", "item.failed"]).await;
    let secret = sub["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() >= 6 + 32, "{secret}");
    let id = sub["id"].as_str().unwrap();
    let shown = call(&s.base, Method::GET, &format!("/v1/webhooks/{id}"), &token, None).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.get("secret").is_none() && !shown.body.to_string().contains(secret), "{}", shown.body);
    assert_eq!(shown.body["events"], json!(["job.completed", "item.failed"]));
    assert!(shown.body["secret_set_at_ms"].as_i64().unwrap() > 0);
    let listed = call(&s.base, Method::GET, "/v1/webhooks", &token, None).await;
    assert_eq!(listed.body["webhooks"][0]["id"], id);
    assert!(!listed.body.to_string().contains(secret));

    let globex = s.rig.token_for("globex", Scope::Write).await;
    let theirs = s.subscribe(&globex, &receiver.url(), &["job.completed"]).await;
    receiver.configure(json!({"secrets": [secret, theirs["secret"]]})).await;
    // A job of the subscriber's tenant completes: the fan-out takes its event from the log.
    let job = s.rig.submit(0, &erpsync::samples::invoices("whjob", 3)).await.unwrap();
    let got = receiver.wait_for("accepted", |r| r["accepted_by"] == json!([0])).await;
    let body: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "job.completed", "{body:#}");
    assert_eq!(body["data"]["job_id"], job.to_string());
    assert_eq!(body["data"]["connection_id"], s.rig.erps[0].connection.as_str());
    assert_eq!(body["data"]["total_items"], 3, "{body:#}");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    // Another tenant's job reaches its own subscription only.
    let other = s.rig.submit(1, &erpsync::samples::invoices("whother", 2)).await.unwrap();
    let theirs_got = receiver.wait_for("of globex", |r| r["accepted_by"] == json!([1])).await;
    assert!(theirs_got["body"].as_str().unwrap().contains(&other.to_string()));
    assert_eq!(s.log(&token, id).await.len(), 1, "acme's subscription got acme's job only");
    let logged = s.wait_log(&token, id, "delivered", |d| d["state"] == "delivered").await;
    assert_eq!(logged["id"], got["id"], "the log's id is the webhook-id");
    assert_eq!(logged["attempts"], 1);
    assert_eq!(logged["attempt_log"][0]["status"], 200);
    assert!(logged["attempt_log"][0]["latency_ms"].as_i64().is_some());

    let gone = call(&s.base, Method::DELETE, &format!("/v1/webhooks/{id}"), &token, None).await;
    assert_eq!(gone.status, 204);
    let again = call(&s.base, Method::GET, &format!("/v1/webhooks/{id}"), &token, None).await;
    assert_error(&again, 404, "not_found", id);
    s.rig.shutdown().await;
}

async fn an_item_failure_and_a_job_completing_with_errors_are_delivered(db: Option<String>) {
    let s = setup(db, true).await;
    let receiver = Receiver::start(0);
    let token = s.rig.token().await;
    let sub = s.subscribe(&token, &receiver.url(), &["item.failed", "job.completed_with_errors"]).await;
    receiver.configure(json!({"secrets": [sub["secret"]]})).await;
    let mut docs = erpsync::samples::invoices("whfail", 3);
    docs[0].vendor.id = "V-INACTIVE".into();
    let job = s.rig.submit(0, &docs).await.unwrap();
    let body = |r: &Value| serde_json::from_str::<Value>(r["body"].as_str().unwrap()).unwrap();
    let failed = receiver.wait_for("item.failed", |r| body(r)["type"] == "item.failed").await;
    let failed = body(&failed);
    assert_eq!(failed["data"]["job_id"], job.to_string());
    assert!(failed["data"]["item_id"].is_string(), "{failed:#}");
    assert_eq!(failed["data"]["error"]["code"], "vendor_inactive", "{failed:#}");
    let done = receiver.wait_for("job.completed_with_errors", |r| body(r)["type"] == "job.completed_with_errors").await;
    assert_eq!(body(&done)["data"]["job_id"], job.to_string());
    let types: Vec<String> =
        receiver.received().await.iter().map(|r| body(r)["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types.len(), 2, "only the subscribed types: {types:?}");
    s.rig.shutdown().await;
}

async fn a_rotated_secret_and_its_predecessor_both_verify_during_the_overlap(db: Option<String>) {
    let s = setup(db, true).await;
    let receiver = Receiver::start(0);
    let token = s.rig.token().await;
    let sub = s.subscribe(&token, &receiver.url(), &["job.completed"]).await;
    let (id, old) = (sub["id"].as_str().unwrap(), sub["secret"].as_str().unwrap().to_owned());
    let rotated = call(&s.base, Method::POST, &format!("/v1/webhooks/{id}/rotate-secret"), &token, None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let until = rotated.body["previous_secret_valid_until_ms"].as_i64().unwrap();
    assert!(until > erpsync::util::now_ms() + 86_000_000, "the old secret counts for a day: {until}");
    // A verifier holding only the old secret, one holding only the new: both accept.
    receiver.configure(json!({"secrets": [old, new]})).await;
    s.queue_event(id, "default", "e1", json!({})).await;
    let got = receiver.wait_for("verified", |r| !r["accepted_by"].as_array().unwrap().is_empty()).await;
    assert_eq!(got["accepted_by"], json!([0, 1]), "{got:#}");
    assert_eq!(got["signature"].as_str().unwrap().split(' ').count(), 2);
    let shown = call(&s.base, Method::GET, &format!("/v1/webhooks/{id}"), &token, None).await;
    assert!(!shown.body.to_string().contains(&new), "{}", shown.body);
    s.rig.shutdown().await;
}

async fn a_replayed_delivery_with_an_old_timestamp_is_refused(db: Option<String>) {
    let s = setup(db, true).await;
    let receiver = Receiver::start(0);
    let token = s.rig.token().await;
    let sub = s.subscribe(&token, &receiver.url(), &["job.completed"]).await;
    let (id, secret) = (sub["id"].as_str().unwrap(), sub["secret"].as_str().unwrap());
    receiver.configure(json!({"secrets": [secret]})).await;
    s.queue_event(id, "default", "e1", json!({})).await;
    let captured = receiver.wait_for("accepted", |r| r["accepted_by"] == json!([0])).await;
    let replay = || async {
        let r = reqwest::Client::new()
            .post(receiver.url())
            .header("webhook-id", captured["id"].as_str().unwrap())
            .header("webhook-timestamp", captured["timestamp"].as_str().unwrap())
            .header("webhook-signature", captured["signature"].as_str().unwrap())
            .body(captured["body"].as_str().unwrap().to_owned())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    // Replayed ten minutes later (the verifier's clock moved on), byte for byte.
    receiver.configure(json!({"clock_offset_secs": 600})).await;
    let (status, verdict) = replay().await;
    assert_eq!(status, 401, "{verdict}");
    assert_eq!(verdict["errors"], json!(["Message timestamp too old"]));
    // The same bytes at once verify: the timestamp alone refused the replay.
    receiver.configure(json!({"clock_offset_secs": 0})).await;
    assert_eq!(replay().await.0, 200);
    s.rig.shutdown().await;
}

async fn a_failing_then_dead_receiver_is_retried_until_it_is_back_and_exports_go_on(db: Option<String>) {
    let s = setup(db, true).await;
    let mut receiver = Receiver::start(0);
    let port = receiver.port;
    let token = s.rig.token().await;
    let sub = s.subscribe(&token, &receiver.url(), &["job.completed"]).await;
    let (id, secret) = (sub["id"].as_str().unwrap(), sub["secret"].as_str().unwrap().to_owned());
    receiver.configure(json!({"secrets": [secret], "status": 500})).await;
    // The export pipeline is not held up by the failing receiver, whose delivery is the
    // job's own completion.
    let invoices = erpsync::samples::invoices("wh", 20);
    let started = Instant::now();
    s.rig.submit(0, &invoices).await.unwrap();
    let counts = s.rig.wait_terminal(DEADLINE).await.expect("the job finishes");
    assert_eq!(erpsync::rig::count(&counts, erpsync::domain::ItemState::Succeeded), 20, "{counts:?}");
    let export_took = started.elapsed();
    s.wait_log(&token, id, "retried three times", |d| d["attempt_log"].as_array().is_some_and(|l| l.len() >= 3)).await;
    receiver.stop();
    s.wait_log(&token, id, "unanswered", |d| d["state"] == "pending" && d["last_status"].is_null()).await;
    let receiver = Receiver::start_with(port, json!({"secrets": [secret]}));
    let done = s.wait_log(&token, id, "delivered", |d| d["state"] == "delivered").await;
    let log = done["attempt_log"].as_array().unwrap();
    let statuses: Vec<Option<i64>> = log.iter().map(|a| a["status"].as_i64()).collect();
    assert!(statuses[..3].iter().all(|s| *s == Some(500)), "{statuses:?}");
    assert!(statuses.contains(&None), "an attempt while it was down: {statuses:?}");
    assert_eq!(statuses.last(), Some(&Some(200)));
    let errors: Vec<&str> = log.iter().filter_map(|a| a["error"].as_str()).collect();
    assert!(errors.iter().any(|e| e.contains("connect")), "{errors:?}");
    // Backoff: the waits grow (jitter keeps each within half to all of its step).
    let at: Vec<i64> = log.iter().map(|a| a["at_ms"].as_i64().unwrap()).collect();
    let (first, third) = (at[1] - at[0], at[3] - at[2]);
    assert!((50..=400).contains(&first), "first wait {first} ms; attempts at {at:?}");
    assert!(third >= 200, "the third wait {third} ms is longer; attempts at {at:?}");
    let seen = receiver.received().await;
    assert_eq!(seen.last().unwrap()["id"], done["id"], "retries keep the webhook-id");
    assert!(export_took < Duration::from_secs(20), "exports took {export_took:?}");
    s.rig.shutdown().await;
}

async fn addresses_and_event_types_are_checked(db: Option<String>) {
    let s = setup(db, false).await;
    let token = s.rig.token().await;
    let post = |body: Value| {
        let (base, token) = (s.base.clone(), token.clone());
        async move { call(&base, Method::POST, "/v1/webhooks", &token, Some(body)).await }
    };
    let events = json!(["job.completed"]);
    for (url, code, fragment) in [
        ("http://127.0.0.1:9/hook", "private_address", "loopback"),
        ("http://localhost:9/hook", "private_address", "loopback"),
        ("http://10.0.0.8/hook", "private_address", "private"),
        ("http://169.254.169.254/latest/meta-data", "private_address", "link-local"),
        ("http://[::1]:9/", "private_address", "loopback"),
        ("ftp://example.com/", "bad_url", "http(s)"),
        ("nonsense", "bad_url", "not a URL"),
    ] {
        let a = post(json!({"url": url, "events": events})).await;
        assert_error(&a, 422, code, fragment);
        assert!(a.body["error"]["message"].as_str().unwrap().starts_with("url: "), "{}", a.body);
    }
    let a = post(json!({"url": "https://203.0.113.7/h", "events": ["job.completed", "job.exploded"]})).await;
    assert_error(&a, 422, "unknown_event_type", "\"job.exploded\"");
    let a = post(json!({"url": "https://203.0.113.7/h", "events": []})).await;
    assert_error(&a, 422, "bad_events", "events: ");
    let a = post(json!({"url": "https://203.0.113.7/h"})).await;
    assert_error(&a, 422, "bad_events", "events: ");
    let a = post(json!({"url": "https://203.0.113.7/h", "events": ["import.completed"], "extra": 1})).await;
    assert_error(&a, 422, "unknown_field", "extra: ");
    let ok = post(json!({"url": "https://203.0.113.7/h", "events": ["import.completed"]})).await;
    assert_eq!(ok.status, 201, "{}", ok.body);

    // A subscription whose host now points inside (as after DNS rebinding) is refused
    // at delivery time, before any request is made.
    let receiver = Receiver::start(0);
    let db = &s.rig.daemon().ctx().db;
    let sneaky = "wh_sneaky";
    let sub = erpsync::store::webhooks::Subscription {
        id: sneaky.into(),
        tenant: "default".into(),
        url: receiver.url(),
        events: vec!["job.completed".into()],
        created_at_ms: 0,
        secret_set_at_ms: 0,
        previous_secret_valid_until_ms: None,
    };
    let key = s.rig.daemon().ctx().secrets.clone().unwrap();
    let secret = erpsync::webhooks::signing::new_secret();
    let sealed = key.seal(&erpsync::webhooks::secret_owner(sneaky), &secret);
    erpsync::store::webhooks::insert(db, &sub, &sealed).await.unwrap();
    s.queue_event(sneaky, "default", "e1", json!({})).await;
    let d = s
        .wait_log(&token, sneaky, "refused", |d| d["attempts"].as_i64() >= Some(1) && !d["last_error"].is_null())
        .await;
    assert!(d["last_error"].as_str().unwrap().contains("loopback"), "{d:#}");
    assert!(receiver.received().await.is_empty(), "nothing reached the receiver");
    s.rig.shutdown().await;
}

async fn another_tenants_webhooks_are_not_found_and_reading_is_not_managing(db: Option<String>) {
    let s = setup(db, true).await;
    let receiver = Receiver::start(0);
    let acme = s.rig.token().await;
    let globex = s.rig.token_for("globex", Scope::Write).await;
    let reader = s.rig.token_for("default", Scope::Read).await;
    let sub = s.subscribe(&acme, &receiver.url(), &["job.completed"]).await;
    let id = sub["id"].as_str().unwrap();
    receiver.configure(json!({"secrets": [sub["secret"]]})).await;
    s.queue_event(id, "default", "e1", json!({})).await;
    let d = s.wait_log(&acme, id, "delivered", |d| d["state"] == "delivered").await;
    let delivery = d["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries")),
        (Method::POST, format!("/v1/webhooks/{id}/deliveries/{delivery}/redeliver")),
    ] {
        let a = call(&s.base, method.clone(), &path, &globex, None).await;
        assert_error(&a, 404, "not_found", id);
    }
    let listed = call(&s.base, Method::GET, "/v1/webhooks", &globex, None).await;
    assert_eq!(listed.body["webhooks"], json!([]));
    let a = call(
        &s.base,
        Method::POST,
        "/v1/webhooks",
        &reader,
        Some(json!({"url": receiver.url(), "events": ["job.completed"]})),
    )
    .await;
    assert_error(&a, 403, "insufficient_scope", "write");
    assert_eq!(call(&s.base, Method::GET, &format!("/v1/webhooks/{id}"), &reader, None).await.status, 200);
    let a = call(&s.base, Method::GET, &format!("/v1/webhooks/{id}/deliveries?cursor=nope"), &acme, None).await;
    assert_error(&a, 422, "bad_parameter", "cursor");
    s.rig.shutdown().await;
}

async fn a_redelivery_sends_the_same_message_again(db: Option<String>) {
    let s = setup(db, true).await;
    let receiver = Receiver::start(0);
    let token = s.rig.token().await;
    let sub = s.subscribe(&token, &receiver.url(), &["job.completed"]).await;
    let id = sub["id"].as_str().unwrap();
    receiver.configure(json!({"secrets": [sub["secret"]]})).await;
    for n in 0..3 {
        s.queue_event(id, "default", &format!("e{n}"), json!({"n": n})).await;
    }
    let until = Instant::now() + DEADLINE;
    while s.log(&token, id).await.iter().filter(|d| d["state"] == "delivered").count() < 3 {
        assert!(Instant::now() < until, "three deliveries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Cursor pages, newest first.
    let page = call(&s.base, Method::GET, &format!("/v1/webhooks/{id}/deliveries?limit=2"), &token, None).await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest =
        call(&s.base, Method::GET, &format!("/v1/webhooks/{id}/deliveries?limit=2&cursor={cursor}"), &token, None)
            .await;
    let ids: Vec<&str> = page.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.body["deliveries"].as_array().unwrap())
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(rest.body["next_cursor"].is_null());

    let first = ids[2].to_owned();
    let a = call(&s.base, Method::POST, &format!("/v1/webhooks/{id}/deliveries/{first}/redeliver"), &token, None).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["state"], "pending");
    let d = s
        .wait_log(&token, id, "redelivered", |d| {
            d["id"] == first.as_str() && d["attempts"] == 2 && d["state"] == "delivered"
        })
        .await;
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 2);
    let copies = receiver.received().await.iter().filter(|r| r["id"] == first.as_str()).count();
    assert_eq!(copies, 2, "the same webhook-id twice");
    let missing =
        call(&s.base, Method::POST, &format!("/v1/webhooks/{id}/deliveries/msg_00/redeliver"), &token, None).await;
    assert_error(&missing, 404, "not_found", "msg_00");
    s.rig.shutdown().await;
}

/// Two daemons on one PostgreSQL: both fan out and both send, and each job's completion
/// reaches the receiver once.
async fn a_fleet_delivers_each_event_once(db: Option<String>) {
    let url = db.expect("a fleet shares a PostgreSQL database");
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), "7a".repeat(32)).unwrap();
    let copy = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(key.path(), copy.path()).unwrap();
    let a = setup_keyed(Some(url.clone()), true, key).await;
    let b = setup_keyed(Some(url), true, copy).await;
    let receiver = Receiver::start(0);
    let token = a.rig.token().await;
    let sub = a.subscribe(&token, &receiver.url(), &["job.completed"]).await;
    receiver.configure(json!({"secrets": [sub["secret"]]})).await;
    let mut jobs = Vec::new();
    for n in 0..6 {
        let rig = if n % 2 == 0 { &a.rig } else { &b.rig };
        jobs.push(rig.submit(0, &erpsync::samples::invoices(&format!("fleet{n}"), 2)).await.unwrap().to_string());
    }
    let until = Instant::now() + DEADLINE;
    let body = |r: &Value| serde_json::from_str::<Value>(r["body"].as_str().unwrap()).unwrap();
    loop {
        let got: Vec<String> =
            receiver.received().await.iter().map(|r| body(r)["data"]["job_id"].as_str().unwrap().to_owned()).collect();
        if jobs.iter().all(|j| got.contains(j)) {
            break;
        }
        assert!(Instant::now() < until, "every job's completion within {DEADLINE:?}: {got:?} of {jobs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every delivery is recorded delivered after its one attempt, and was sent once.
    let until = Instant::now() + DEADLINE;
    let log = loop {
        let log = a.log(&token, sub["id"].as_str().unwrap()).await;
        if log.len() == jobs.len() && log.iter().all(|d| d["state"] == "delivered") {
            break log;
        }
        assert!(Instant::now() < until, "{log:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(log.iter().all(|d| d["attempts"] == 1), "{log:#?}");
    let ids: Vec<String> = receiver.received().await.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (jobs.len(), jobs.len()), "{ids:?}");
    b.rig.shutdown().await;
    a.rig.shutdown().await;
}

/// Claimers racing over one queue each get different deliveries, and together all.
async fn claims_are_disjoint_across_workers(db: Option<String>) {
    let scratch = tempfile::tempdir().unwrap();
    let url = db.unwrap_or_else(|| format!("sqlite://{}/claims.db?mode=rwc", scratch.path().display()));
    let db = erpsync::store::connect(&url, 8).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let list: Vec<NewDelivery> = (0..300)
        .map(|i| NewDelivery {
            subscription_id: "wh_1".into(),
            tenant: "t".into(),
            event_key: format!("e{i}"),
            event_type: "job.completed".into(),
            body: "{}".into(),
        })
        .collect();
    let now = erpsync::util::now_ms();
    assert_eq!(deliveries::insert(&db, &list, now, 60_000).await.unwrap(), 300);
    assert_eq!(deliveries::insert(&db, &list[..10], now, 60_000).await.unwrap(), 0, "an event is queued once");
    let mut workers = Vec::new();
    for _ in 0..4 {
        let db = db.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = deliveries::claim(&db, 7, erpsync::util::now_ms(), 60_000).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 300, "every delivery claimed");
    assert_eq!(distinct.len(), 300, "none twice");
    // A claim that lapsed (its daemon died) is claimed again; a live one is not.
    let later = erpsync::util::now_ms() + 61_000;
    assert_eq!(deliveries::claim(&db, 500, later, 60_000).await.unwrap().len(), 300);
    assert!(deliveries::claim(&db, 500, later, 60_000).await.unwrap().is_empty());
}

on_both_databases!(
    claims_are_disjoint_across_workers,
    a_delivery_is_signed_and_verified_by_the_reference_library,
    a_failing_then_dead_receiver_is_retried_until_it_is_back_and_exports_go_on,
);

mod fleet {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fleet_delivers_each_event_once_on_postgres() {
        super::a_fleet_delivers_each_event_once(Some(crate::common::fresh_postgres().await)).await;
    }
}

on_sqlite!(
    an_item_failure_and_a_job_completing_with_errors_are_delivered,
    a_rotated_secret_and_its_predecessor_both_verify_during_the_overlap,
    a_replayed_delivery_with_an_old_timestamp_is_refused,
    addresses_and_event_types_are_checked,
    another_tenants_webhooks_are_not_found_and_reading_is_not_managing,
    a_redelivery_sends_the_same_message_again,
);
