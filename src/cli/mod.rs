//! Implementations of the CLI commands that talk to a running daemon or its database.

pub mod connections;
pub mod follow;

use crate::config::Config;
use crate::daemon::Daemon;
use crate::store::JobSummary;
use crate::store::tokens::Scope;
use anyhow::{Context, Result, bail};
use std::time::Duration;

/// `erpsync run`: the daemon until SIGTERM or ctrl-c, then a graceful drain.
pub async fn run(cfg: Config) -> Result<()> {
    use crate::systemd::notify;
    notify("STATUS=starting: opening the database, migrating, starting actors");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut daemon = start_retrying(cfg, &mut term).await?;
    let connections = daemon.ctx().connectors.len();
    notify(&format!("READY=1\nSTATUS=running: {connections} connection(s), API on {}", daemon.http_addr()));
    let watchdog = crate::systemd::spawn_watchdog(daemon.ctx().clone());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        _ = term.recv() => tracing::info!("terminated"),
        _ = daemon.failed() => {
            notify("STATUS=actor tree failed repeatedly; exiting");
            bail!("the actor tree stopped after repeated failures")
        }
    }
    let in_flight = daemon.ctx().in_flight.lock().unwrap().len();
    notify(&format!("STOPPING=1\nSTATUS=draining {in_flight} in-flight item(s)"));
    if let Some(w) = watchdog {
        w.abort();
    }
    daemon.shutdown().await;
    Ok(())
}

/// Starts the daemon; while the database is unreachable, keeps trying with backoff (the
/// process is not ready meanwhile) instead of exiting, so a database restart or a daemon
/// started before its database needs no one to intervene.
async fn start_retrying(cfg: Config, term: &mut tokio::signal::unix::Signal) -> Result<Daemon> {
    use crate::systemd::notify;
    let mut backoff = Duration::from_secs(1);
    loop {
        match Daemon::start(cfg.clone()).await {
            Ok(d) => return Ok(d),
            Err(e @ crate::daemon::DaemonError::Store(_)) => {
                tracing::error!(error = %e, retry_in_secs = backoff.as_secs(), "database unavailable; retrying");
                notify(&format!("STATUS=waiting for the database: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = tokio::signal::ctrl_c() => bail!("interrupted while waiting for the database"),
                    _ = term.recv() => bail!("terminated while waiting for the database"),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                notify(&format!("STATUS=failed to start: {e}"));
                bail!("{e}");
            }
        }
    }
}

/// The daemon's API as the CLI calls it: its base URL and the token to send.
pub struct Api {
    url: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Api {
    pub fn new(url: String, token: Option<String>) -> Api {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client builds");
        Api { url, token, client }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let url = &self.url;
        req.send().await.with_context(|| format!("cannot reach the daemon at {url} (is `erpsync run` running?)"))
    }
}

async fn error_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let hint = if status == reqwest::StatusCode::UNAUTHORIZED { " (give --token or set ERPSYNC_TOKEN)" } else { "" };
    format!("{status}: {}{hint}", body["error"]["message"].as_str().unwrap_or("(no detail)"))
}

async fn fetch_job(api: &Api, job_id: &str) -> Result<JobSummaryView> {
    let resp = api.send(api.client.get(format!("{}/v1/jobs/{job_id}", api.url))).await?;
    if !resp.status().is_success() {
        bail!("{}", error_text(resp).await);
    }
    Ok(resp.json().await?)
}

/// What the CLI reads back from `GET /v1/jobs/{id}`.
#[derive(serde::Deserialize, serde::Serialize)]
pub struct JobSummaryView {
    pub job_id: String,
    pub connection_id: String,
    pub state: String,
    pub total_items: i32,
    pub counts: std::collections::BTreeMap<String, u64>,
    #[serde(default)]
    pub parked: Option<serde_json::Value>,
    pub items: Vec<serde_json::Value>,
}

impl From<JobSummary> for JobSummaryView {
    fn from(s: JobSummary) -> Self {
        let v = serde_json::to_value(s).expect("summaries serialize");
        serde_json::from_value(v).expect("same shape")
    }
}

pub async fn enqueue(api: &Api, connection: &str, documents: Vec<serde_json::Value>, wait: bool) -> Result<()> {
    let body = serde_json::json!({"connection_id": connection, "op": "export_invoice", "documents": documents});
    let resp = api.send(api.client.post(format!("{}/v1/jobs", api.url)).json(&body)).await?;
    if !resp.status().is_success() {
        bail!("job refused: {}", error_text(resp).await);
    }
    let accepted: serde_json::Value = resp.json().await?;
    let job_id = accepted["job_id"].as_str().unwrap_or_default().to_owned();
    println!("{job_id}");
    if !wait {
        return Ok(());
    }
    let total = accepted["items"].as_u64().unwrap_or(0);
    follow::follow_job(api, &job_id, total).await?;
    let summary = fetch_job(api, &job_id).await?;
    print_summary(&summary);
    if summary.state != "succeeded" {
        std::process::exit(1);
    }
    Ok(())
}

fn print_summary(s: &JobSummaryView) {
    println!("job {} on {}: {}", s.job_id, s.connection_id, s.state);
    if let Some(p) = &s.parked {
        println!(
            "  parked: {} — {} (`erpsync connections resume {}` once it is fixed)",
            p["reason"].as_str().unwrap_or(""),
            p["detail"].as_str().unwrap_or(""),
            s.connection_id
        );
    }
    for (state, n) in &s.counts {
        if *n > 0 {
            println!("  {state:<14} {n}");
        }
    }
    for item in s.items.iter().filter(|i| i["error"].is_object()) {
        println!(
            "  {} {}: {} — {}",
            item["source_id"].as_str().unwrap_or(""),
            item["state"].as_str().unwrap_or(""),
            item["error"]["kind"].as_str().unwrap_or(""),
            item["error"]["message"].as_str().unwrap_or("")
        );
    }
}

/// `erpsync status JOB [--follow]`: with `follow`, the job's events until it completes,
/// then its summary.
pub async fn status(api: &Api, job_id: &str, json: bool, follow: bool) -> Result<()> {
    if follow {
        let s = fetch_job(api, job_id).await?;
        // A finished job has nothing to follow (and one finished before the event log
        // existed has no completion event to wait for).
        if s.state == "running" {
            follow::follow_job(api, job_id, s.total_items.max(0) as u64).await?;
        }
    }
    let s = fetch_job(api, job_id).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_summary(&s);
    }
    Ok(())
}

/// The configured queue, with the database it needs (the embedded queue lives there).
async fn open_queue(cfg: &Config) -> Result<(std::sync::Arc<dyn crate::queue::Queue>, sea_orm::DatabaseConnection)> {
    let db = crate::store::connect(&cfg.database_url(), 1).await?;
    crate::store::migrate(&db).await?;
    let q = crate::queue::open(cfg, db.clone()).await?;
    Ok((q, db))
}

pub async fn dlq_list(cfg: &Config, limit: u64, json: bool) -> Result<()> {
    let (q, _db) = open_queue(cfg).await?;
    let list = q.dead_letters(limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("the dead-letter store is empty");
    }
    for d in list {
        let at = chrono::DateTime::from_timestamp_millis(d.dead_at_ms).map(|t| t.to_rfc3339()).unwrap_or_default();
        let body: String = d.body.chars().take(120).collect();
        println!("{} {} (received {}x): {}\n    {}", d.message_id, at, d.receive_count, d.reason, body);
    }
    Ok(())
}

/// `erpsync dlq redrive`: moves dead letters (of one connection, or all) back to the
/// queue. Their items are made workable again first, so the daemon does not take the
/// redriven messages for work already finished.
pub async fn dlq_redrive(cfg: &Config, connection: Option<&str>, limit: u64) -> Result<()> {
    let (q, db) = open_queue(cfg).await?;
    // Listing is bounded: with a filter, look further than `limit` for matching ones.
    let scan = if connection.is_some() { limit.saturating_mul(20).max(1000) } else { limit };
    let keep = |e: Option<&crate::queue::Envelope>| match connection {
        None => true,
        Some(c) => e.is_some_and(|e| e.connection_id.as_str() == c),
    };
    let r = crate::redrive::redrive(q.as_ref(), &db, limit, scan, keep).await?;
    if r.chosen == 0 {
        println!("nothing to redrive");
        return Ok(());
    }
    println!("redriven {} message(s); {} item(s) queued again", r.moved, r.requeued);
    if r.moved < r.chosen {
        bail!("{} message(s) could not be redriven; run the command again", r.chosen - r.moved);
    }
    Ok(())
}

pub(crate) async fn open_db(cfg: &Config) -> Result<sea_orm::DatabaseConnection> {
    let db = crate::store::connect(&cfg.database_url(), 1).await?;
    crate::store::migrate(&db).await?;
    Ok(db)
}

/// `erpsync tokens create`: prints the token alone on stdout (for scripts), what it is
/// on stderr.
pub async fn tokens_create(cfg: &Config, tenant: &str, scope: Scope, name: &str) -> Result<()> {
    if !crate::config::connection::is_valid_id(tenant) {
        bail!("tenant {tenant:?} must be non-empty and use only letters, digits, - _ .");
    }
    let db = open_db(cfg).await?;
    let minted = crate::store::tokens::create(&db, tenant, scope, name).await?;
    println!("{}", minted.token);
    eprintln!(
        "token {} for tenant {tenant}, scope {}: it is shown only now, keep it somewhere safe",
        minted.record.id,
        scope.as_str()
    );
    if !cfg.connections.iter().any(|c| c.tenant == tenant) {
        eprintln!("note: no configured connection belongs to tenant {tenant:?} yet");
    }
    Ok(())
}

/// `erpsync tokens list`.
pub async fn tokens_list(cfg: &Config, json: bool) -> Result<()> {
    let list = crate::store::tokens::list(&open_db(cfg).await?).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no tokens; create one with `erpsync tokens create --tenant T --scope write`");
    }
    let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_default();
    for t in list {
        let state = match t.revoked_at_ms {
            Some(ms) => format!("revoked {}", time(ms)),
            None => "active".to_owned(),
        };
        println!(
            "{}  erps_…{}  {:<12} {:<5}  created {}  {state}  {}",
            t.id,
            t.last_four,
            t.tenant,
            t.scope.as_str(),
            time(t.created_at_ms),
            t.name
        );
    }
    Ok(())
}

/// `erpsync tokens revoke`.
pub async fn tokens_revoke(cfg: &Config, id: &str) -> Result<()> {
    if !crate::store::tokens::revoke(&open_db(cfg).await?, id).await? {
        bail!("no active token {id} (see `erpsync tokens list`)");
    }
    println!("revoked {id}; daemons refuse it within {} s", crate::http::auth::CACHE_TTL.as_secs());
    Ok(())
}

/// `erpsync queue create`: the SQS queue and its dead-letter queue with a redrive policy.
pub async fn queue_create(cfg: &Config) -> Result<()> {
    if cfg.queue.backend != crate::config::QueueBackend::Sqs {
        println!("queue.backend is {}: nothing to create (the embedded queue is a table)", cfg.queue.backend.as_str());
        return Ok(());
    }
    let client = crate::queue::sqs::admin::client(&cfg.queue).await;
    let (url, dlq) = crate::queue::sqs::admin::create_queues(&client, &cfg.queue).await?;
    println!("queue            {url}");
    println!("dead-letter queue {dlq}");
    println!(
        "redrive policy   maxReceiveCount {} (the daemon dead-letters after {} receives, with a reason)",
        cfg.queue.max_receives() + crate::queue::sqs::admin::REDRIVE_MARGIN,
        cfg.queue.max_receives()
    );
    Ok(())
}
