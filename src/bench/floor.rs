//! `bench floor`: the least CPU a consumer that keeps erpsync's promises could spend per
//! item on the SQS path, measured against the same queue server and sandbox ERP as
//! `bench drain`, so the two can be read side by side.
//!
//! Per item the floor does only what no such consumer can leave out: receive its message
//! (ten per long poll), make its attempt durable before the ERP call (at-most-once
//! creation), call the ERP once, make its outcome durable, delete its message (ten per
//! call). Everything else the daemon does is gone: no actors, no per-connection limits or
//! leases, no ledger, timeline or metrics, no heartbeats, no serializer (bodies are
//! serialized while filling), one `UPDATE … RETURNING` to begin ten items and one
//! transaction to finish them. Its SQLite is opened exactly as the store opens it.
//!
//! If the queue server spends more CPU per item than this floor does, a consumer could in
//! principle outrun it on shared cores; if not, none can, and the drain is bound by the
//! consumer's own necessary work whatever its design.

use super::queue::{CpuSample, SANDBOX_THREADS, emulator_pid, fmt_cpu};
use crate::config::{QueueBackend, QueueConfig};
use crate::domain::{ConnectionId, ErpKind, ItemId, JobId, Op};
use crate::erp::sandbox::{Sandbox, SandboxOptions};
use crate::queue::Envelope;
use crate::queue::sqs::batch::delete_batch;
use crate::queue::sqs::wire::{ReceiveMessage, SendEntry};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use sea_orm::sqlx;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    /// SQS-compatible endpoint (a fresh queue is created there and deleted afterwards).
    #[arg(long, env = "BENCH_SQS_ENDPOINT_URL")]
    pub endpoint_url: String,
    /// Invoices to drain.
    #[arg(long, default_value_t = 10_000)]
    pub invoices: usize,
    /// Receive loops, each with up to ten items in flight.
    #[arg(long, default_value_t = 64)]
    pub loops: usize,
    /// Leave out the ERP call (the items succeed without one): what the rest costs.
    #[arg(long)]
    pub without_erp: bool,
    /// Leave out SQLite (no attempt or outcome is recorded): what the rest costs.
    #[arg(long)]
    pub without_store: bool,
    /// Process id of the queue server, for its CPU figure (default: found by its port).
    #[arg(long)]
    pub emulator_pid: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct FloorReport {
    pub invoices: usize,
    /// What was left out of each item's work (`erp`, `store`).
    pub without: Vec<&'static str>,
    pub drain_secs: f64,
    pub items_per_sec: f64,
    /// CPU of the floor consumer while draining, in cores, and per item.
    pub consumer_cores: f64,
    pub consumer_us_per_item: f64,
    /// CPU of the sandbox ERP (this process, threads of its own).
    pub sandbox_cores: f64,
    pub sandbox_us_per_item: f64,
    /// CPU of the queue server, when it could be found.
    pub emulator_cores: Option<f64>,
    pub emulator_us_per_item: Option<f64>,
    pub created_in_erp: u64,
    pub duplicates: u64,
}

/// The items, and their ERP bodies apart (as the store keeps documents apart since m0006:
/// a state change then rewrites a small row, not the document's pages).
const TABLES: [&str; 2] = [
    "CREATE TABLE floor_items (id TEXT PRIMARY KEY, state TEXT NOT NULL, \
     attempts INTEGER NOT NULL DEFAULT 0, erp_id TEXT, updated_ms INTEGER NOT NULL)",
    "CREATE TABLE floor_bodies (id TEXT PRIMARY KEY, body BLOB NOT NULL)",
];

/// Fills a fresh queue, drains it the floor's way and reports the figures; fails unless
/// every item succeeded.
pub async fn measure(args: &FloorArgs) -> Result<FloorReport> {
    if args.invoices == 0 || args.loops == 0 {
        bail!("--invoices and --loops must be at least 1");
    }
    let sandbox_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SANDBOX_THREADS)
        .enable_all()
        .build()?;
    let result = run(args, sandbox_rt.handle()).await;
    // A runtime must not be dropped where blocking is not allowed, error or not.
    sandbox_rt.shutdown_background();
    result
}

pub async fn floor(args: FloorArgs) -> Result<()> {
    let report = measure(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let us = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "n/a".into());
        println!(
            "invoices       {} ({} ERP creates, {} duplicates)",
            report.invoices, report.created_in_erp, report.duplicates
        );
        if !report.without.is_empty() {
            println!("left out       {}", report.without.join(", "));
        }
        println!("drained in     {:.2} s", report.drain_secs);
        println!("throughput     {:.0} items/s", report.items_per_sec);
        println!(
            "cpu (cores)    floor consumer {:.2}, sandbox ERP {:.2}, queue server {}",
            report.consumer_cores,
            report.sandbox_cores,
            fmt_cpu(report.emulator_cores)
        );
        println!(
            "cpu per item   floor consumer {:.0} µs, sandbox ERP {:.0} µs, queue server {} µs",
            report.consumer_us_per_item,
            report.sandbox_us_per_item,
            us(report.emulator_us_per_item)
        );
    }
    Ok(())
}

async fn run(args: &FloorArgs, sandbox_rt: &tokio::runtime::Handle) -> Result<FloorReport> {
    let opts = SandboxOptions { latency_ms: 0, jitter_ms: 0, concurrency: 100_000, ..Default::default() };
    let sandbox =
        sandbox_rt.spawn(Sandbox::start("127.0.0.1:0".parse()?, opts)).await?.context("starting the sandbox ERP")?;
    let bills = reqwest::Url::parse(&sandbox.base_url())?.join("bills")?.to_string();

    let scratch = crate::rig::scratch_dir();
    let url = format!("sqlite://{}?mode=rwc", scratch.join("floor.db").display());
    let db = crate::store::connect(&url, 8).await?;
    let pool = db.get_sqlite_connection_pool().clone();
    for table in TABLES {
        sqlx::query(table).execute(&pool).await?;
    }

    let cfg = QueueConfig {
        backend: QueueBackend::Sqs,
        name: Some(format!("erpsync-floor-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])),
        region: Some("us-east-1".into()),
        endpoint_url: Some(args.endpoint_url.clone()),
        ..Default::default()
    };
    let clients = crate::queue::sqs::admin::clients(&cfg).await?;
    let (queue_url, dlq_url) = crate::queue::sqs::admin::create_queues(&clients.sdk, &cfg).await?;
    let wire = clients.wire.clone();

    let bodies = Arc::new(fill(&pool, &wire, &queue_url, args.invoices).await?);

    let emulator = emulator_pid(args.emulator_pid, &args.endpoint_url);
    let steps = Steps { erp: !args.without_erp, store: !args.without_store };
    let erp = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(1024).build()?;
    let done = Arc::new(AtomicUsize::new(0));
    let cpu0 = CpuSample::take(emulator);
    let started = Instant::now();
    let (writes, requests) = mpsc::channel(args.loops * 2);
    let writer = tokio::spawn(writer(pool.clone(), requests));
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..args.loops {
        let (writes, wire, erp, bills, queue_url, done, steps) =
            (writes.clone(), wire.clone(), erp.clone(), bills.clone(), queue_url.clone(), done.clone(), steps);
        let bodies = bodies.clone();
        let total = args.invoices;
        loops.spawn(async move {
            while done.load(Ordering::Acquire) < total {
                let n = consume_once(steps, &bodies, &writes, &wire, &erp, &bills, &queue_url).await?;
                done.fetch_add(n, Ordering::AcqRel);
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = loops.join_next().await {
        joined??;
    }
    drop(writes);
    writer.await??;
    let secs = started.elapsed().as_secs_f64();
    let cpu = CpuSample::take(emulator).since(&cpu0);
    let succeeded = if steps.store {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM floor_items WHERE state = 'succeeded'")
            .fetch_one(&pool)
            .await? as usize
    } else {
        done.load(Ordering::Acquire)
    };
    let stats = sandbox.stats();
    crate::queue::sqs::admin::delete_queues(&clients.sdk, &[&queue_url, &dlq_url]).await;
    drop((db, pool));
    let _ = std::fs::remove_dir_all(&scratch);

    let n = args.invoices as f64;
    let per_item = |cpu: f64| cpu / n * 1e6;
    let report = FloorReport {
        invoices: args.invoices,
        without: [(!steps.erp).then_some("erp"), (!steps.store).then_some("store")].into_iter().flatten().collect(),
        drain_secs: secs,
        items_per_sec: succeeded as f64 / secs,
        consumer_cores: (cpu.process - cpu.sandbox) / secs,
        consumer_us_per_item: per_item(cpu.process - cpu.sandbox),
        sandbox_cores: cpu.sandbox / secs,
        sandbox_us_per_item: per_item(cpu.sandbox),
        emulator_cores: cpu.emulator.map(|c| c / secs),
        emulator_us_per_item: cpu.emulator.map(per_item),
        created_in_erp: stats.creates,
        duplicates: stats.duplicate_creates,
    };
    if succeeded != args.invoices {
        bail!("{} of {} items succeeded", succeeded, args.invoices);
    }
    Ok(report)
}

/// Items in their table (bodies serialized for the ERP already), messages on the queue:
/// the envelopes erpsync itself sends, by reference. Also answers the bodies by item id,
/// for `--without-store`.
async fn fill(
    pool: &sqlx::SqlitePool,
    wire: &crate::queue::sqs::wire::Wire,
    queue_url: &str,
    n: usize,
) -> Result<HashMap<String, Bytes>> {
    let connection = ConnectionId::new("floor");
    let job = JobId::new();
    let now = crate::util::now_ms();
    let mut envelopes = Vec::with_capacity(n);
    let mut bodies = HashMap::with_capacity(n);
    let mut tx = pool.begin().await?;
    for k in 0..n {
        let invoice = crate::samples::invoice("floor", k);
        let source_id = invoice.source_id.clone();
        let payload =
            crate::erp::registry::serialize(ErpKind::GenericRest, &crate::pipeline::Document::Invoice(invoice))?;
        let item = ItemId::new();
        sqlx::query("INSERT INTO floor_items (id, state, updated_ms) VALUES (?, 'queued', ?)")
            .bind(item.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO floor_bodies (id, body) VALUES (?, ?)")
            .bind(item.to_string())
            .bind(&payload.body)
            .execute(&mut *tx)
            .await?;
        let envelope = Envelope::by_ref(job, item, connection.clone(), Op::ExportInvoice, &source_id);
        envelopes.push(serde_json::to_string(&envelope)?);
        bodies.insert(item.to_string(), Bytes::from(payload.body));
    }
    tx.commit().await?;
    let batches: Vec<&[String]> = envelopes.chunks(10).collect();
    for wave in batches.chunks(20) {
        let sends = wave.iter().map(|batch| async move {
            let entries: Vec<SendEntry<'_>> = batch
                .iter()
                .enumerate()
                .map(|(i, body)| SendEntry { id: i.to_string(), message_body: body, ..Default::default() })
                .collect();
            let answer = wire.send_message_batch(queue_url, &entries).await?;
            if !answer.failed.is_empty() {
                bail!("{} messages were not sent: {:?}", answer.failed.len(), answer.failed[0]);
            }
            Ok(())
        });
        futures::future::try_join_all(sends).await?;
    }
    Ok(bodies)
}

/// A request to the one writer: begin these items (answered with their ERP bodies), or
/// record these outcomes (answered once committed).
enum Write {
    Begin(Vec<String>, oneshot::Sender<Vec<(String, Bytes)>>),
    Finish(Vec<(String, String)>, oneshot::Sender<()>),
}

/// A request's answer, held until its transaction commits.
enum Answer {
    Begun(oneshot::Sender<Vec<(String, Bytes)>>, Vec<(String, Bytes)>),
    Finished(oneshot::Sender<()>),
}

/// Writers to one SQLite file wait on its lock (busy-spinning), so, like the daemon's
/// StatusActor, one task writes everything: whatever requests have gathered go into one
/// transaction.
async fn writer(pool: sqlx::SqlitePool, mut requests: mpsc::Receiver<Write>) -> Result<()> {
    let mut batch = Vec::new();
    while requests.recv_many(&mut batch, 64).await > 0 {
        let now = crate::util::now_ms();
        let mut tx = pool.begin().await?;
        let mut answers = Vec::with_capacity(batch.len());
        for request in batch.drain(..) {
            match request {
                Write::Begin(ids, reply) => {
                    let marks = vec!["?"; ids.len()].join(",");
                    // Only `?` markers are spliced in.
                    let begin = sqlx::AssertSqlSafe(format!(
                        "UPDATE floor_items SET state = 'in_progress', attempts = attempts + 1, updated_ms = ? \
                         WHERE id IN ({marks}) AND state <> 'succeeded' RETURNING id"
                    ));
                    let read = sqlx::AssertSqlSafe(format!("SELECT id, body FROM floor_bodies WHERE id IN ({marks})"));
                    let mut begin = sqlx::query_scalar::<_, String>(begin).bind(now);
                    let mut read = sqlx::query_as::<_, (String, Vec<u8>)>(read);
                    for id in &ids {
                        begin = begin.bind(id);
                    }
                    let begun = begin.fetch_all(&mut *tx).await?;
                    for id in &begun {
                        read = read.bind(id);
                    }
                    let bodies: Vec<(String, Vec<u8>)> =
                        if begun.is_empty() { Vec::new() } else { read.fetch_all(&mut *tx).await? };
                    let bodies = bodies.into_iter().map(|(id, body)| (id, Bytes::from(body))).collect();
                    answers.push(Answer::Begun(reply, bodies));
                }
                Write::Finish(outcomes, reply) => {
                    let marks = vec!["?"; outcomes.len()].join(",");
                    let cases = "WHEN ? THEN ? ".repeat(outcomes.len());
                    // Only `?` markers are spliced in.
                    let sql = sqlx::AssertSqlSafe(format!(
                        "UPDATE floor_items SET state = 'succeeded', updated_ms = ?, \
                         erp_id = CASE id {cases}END WHERE id IN ({marks})"
                    ));
                    let mut finish = sqlx::query(sql).bind(now);
                    for (id, erp_id) in &outcomes {
                        finish = finish.bind(id).bind(erp_id);
                    }
                    for (id, _) in &outcomes {
                        finish = finish.bind(id);
                    }
                    if !outcomes.is_empty() {
                        finish.execute(&mut *tx).await?;
                    }
                    answers.push(Answer::Finished(reply));
                }
            }
        }
        tx.commit().await?;
        // A loop that has gone away no longer needs its answer.
        for answer in answers {
            let _ = match answer {
                Answer::Begun(reply, bodies) => reply.send(bodies).map_err(drop),
                Answer::Finished(reply) => reply.send(()),
            };
        }
    }
    Ok(())
}

/// Which of an item's steps the floor takes (all of them unless told otherwise).
#[derive(Debug, Clone, Copy)]
struct Steps {
    erp: bool,
    store: bool,
}

/// One receive and everything its messages need; the number of items finished.
async fn consume_once(
    steps: Steps,
    bodies: &HashMap<String, Bytes>,
    writes: &mpsc::Sender<Write>,
    wire: &crate::queue::sqs::wire::Wire,
    erp: &reqwest::Client,
    bills: &str,
    queue_url: &str,
) -> Result<usize> {
    let messages = wire
        .receive_message(&ReceiveMessage {
            queue_url,
            max_number_of_messages: 10,
            wait_time_seconds: 1,
            visibility_timeout: 60,
            message_system_attribute_names: &[],
            message_attribute_names: &[],
        })
        .await?;
    if messages.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(messages.len());
    for m in &messages {
        let envelope: Envelope = serde_json::from_str(&m.body).context("an envelope")?;
        ids.push(envelope.item_id.to_string());
    }
    // The attempts begin, durably, before any ERP call.
    let begun = if steps.store {
        let (reply, begun) = oneshot::channel();
        writes.send(Write::Begin(ids, reply)).await.context("the writer stopped")?;
        begun.await.context("the writer stopped")?
    } else {
        ids.into_iter()
            .map(|id| {
                let body = bodies.get(&id).cloned().unwrap_or_default();
                (id, body)
            })
            .collect()
    };
    let calls = begun.into_iter().map(|(id, body)| async move {
        if !steps.erp {
            return anyhow::Ok((id, String::new()));
        }
        let resp = erp
            .post(bills)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &id)
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await?
            .error_for_status()?;
        let created: serde_json::Value = resp.json().await?;
        let erp_id = created.get("id").and_then(|v| v.as_str()).context("the ERP's answer has an id")?.to_owned();
        anyhow::Ok((id, erp_id))
    });
    let created = futures::future::try_join_all(calls).await?;
    let finished = created.len();
    if steps.store {
        let (reply, committed) = oneshot::channel();
        writes.send(Write::Finish(created, reply)).await.context("the writer stopped")?;
        committed.await.context("the writer stopped")?;
    }
    let receipts = messages.into_iter().map(|m| m.receipt_handle).collect();
    for deleted in delete_batch(wire, queue_url, receipts).await {
        if !deleted? {
            bail!("a message was no longer ours to delete (its visibility ran out)");
        }
    }
    Ok(finished)
}
