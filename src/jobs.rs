//! Accepting a job: check it, record it with its items, put one message per item on the
//! queue, and answer. On the embedded queue, which lives in the store's database, the job
//! and its messages commit in one transaction; on SQS the messages are sent after the job
//! is durable, and whatever could not be sent is left to the outbox. Used by
//! `POST /v1/jobs` and by the in-process demo and benchmarks alike.

use crate::actors::Ctx;
use crate::actors::status::StatusMsg;
use crate::domain::{ConnectionId, Invoice, ItemId, JobId, Op, Payment, PurchaseOrder};
use crate::queue::{Envelope, Outgoing};
use crate::store::{self, NewItem, NewJob, StoreError};
use crate::telemetry;
use crate::telemetry::events::{QueueCallFailed, QueueOp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub connection_id: ConnectionId,
    pub op: Op,
    /// Kept as the client's JSON text: each is validated by reading it as its document
    /// type, and stored and queued as received, never re-encoded.
    pub documents: Vec<Box<RawValue>>,
}

// `JobRequest` as the API documents it; never read into: a request is read as a
// `JobRequest`, keeping each document's text.
/// A job: documents of one kind, `op`, for one connection.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = JobRequest)]
#[allow(dead_code)]
pub enum JobRequestSchema {
    ExportInvoice {
        connection_id: ConnectionId,
        #[schema(min_items = 1, max_items = 10000)]
        documents: Vec<Invoice>,
    },
    ExportPurchaseOrder {
        connection_id: ConnectionId,
        #[schema(min_items = 1, max_items = 10000)]
        documents: Vec<PurchaseOrder>,
    },
    ExportPayment {
        connection_id: ConnectionId,
        #[schema(min_items = 1, max_items = 10000)]
        documents: Vec<Payment>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobAccepted {
    pub job_id: JobId,
    pub items: usize,
    /// Items not on the queue yet (the queue refused or failed): the outbox sends them
    /// shortly, so the job is recorded but not yet fully queued.
    pub unsent: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("unknown connection {0:?}")]
    UnknownConnection(String),
    #[error("a job needs at least one document")]
    Empty,
    #[error("a job holds at most {max} documents, got {got}")]
    TooMany { max: usize, got: usize },
    #[error("invalid documents: {}", .0.join("; "))]
    InvalidDocuments(Vec<String>),
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error("could not record the job: {0}")]
    Store(String),
}

impl SubmitError {
    pub fn kind(&self) -> &'static str {
        match self {
            SubmitError::UnknownConnection(_) => "unknown_connection",
            SubmitError::Empty => "empty_job",
            SubmitError::TooMany { .. } => "too_many_documents",
            SubmitError::InvalidDocuments(_) => "invalid_documents",
            SubmitError::ShuttingDown => "shutting_down",
            SubmitError::Store(_) => "store",
        }
    }
}

pub const MAX_DOCUMENTS: usize = 10_000;

/// The source id of a document of `op`, or why the document cannot be read.
fn source_id(op: Op, doc: &RawValue) -> Result<String, String> {
    let text = doc.get();
    // serde reads a struct from a JSON array too, by position; a document is an object.
    if !text.starts_with('{') {
        return Err("not a JSON object".into());
    }
    let id = match op {
        Op::ExportInvoice => serde_json::from_str::<Invoice>(text).map(|d| d.source_id),
        Op::ExportPurchaseOrder => serde_json::from_str::<PurchaseOrder>(text).map(|d| d.source_id),
        Op::ExportPayment => serde_json::from_str::<Payment>(text).map(|d| d.source_id),
    };
    id.map_err(|e| e.to_string())
}

pub async fn submit(ctx: &Ctx, req: JobRequest) -> Result<JobAccepted, SubmitError> {
    if ctx.shutdown.is_cancelled() {
        return Err(SubmitError::ShuttingDown);
    }
    if !ctx.connectors.contains_key(&req.connection_id) {
        return Err(SubmitError::UnknownConnection(req.connection_id.to_string()));
    }
    if req.documents.is_empty() {
        return Err(SubmitError::Empty);
    }
    if req.documents.len() > MAX_DOCUMENTS {
        return Err(SubmitError::TooMany { max: MAX_DOCUMENTS, got: req.documents.len() });
    }
    let mut items = Vec::with_capacity(req.documents.len());
    let mut problems = Vec::new();
    for (i, doc) in req.documents.into_iter().enumerate() {
        match source_id(req.op, &doc) {
            // The client's text itself, moved rather than copied.
            Ok(source_id) => {
                items.push(NewItem { id: ItemId::new(), source_id, payload: Box::<str>::from(doc).into() })
            }
            Err(e) => problems.push(format!("documents[{i}]: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(SubmitError::InvalidDocuments(problems));
    }
    let job = NewJob { id: JobId::new(), connection_id: req.connection_id.clone(), op: req.op, items };
    let status = ctx.lookup::<StatusMsg>("status").ok_or(SubmitError::ShuttingDown)?;
    let mut accepted = JobAccepted { job_id: job.id, items: job.items.len(), unsent: 0 };
    // New rows only, so this needs no turn at the StatusActor (which would queue it behind
    // a busy drain's status batches); SQLite serialises it with the other writers.
    let embedded = ctx.queue.as_embedded();
    let recorded = async {
        // One call to the database on SQLite (`store::Script`), on the connection kept
        // for new jobs (`store::JobWriter`).
        match embedded {
            Some(q) => q.record_job(&ctx.job_writer, &job).await?,
            None => store::insert_job_on(&ctx.job_writer, &ctx.db, &job, store::Enqueuing::AfterCommit).await?,
        }
        // Checkpoint this job's pages now, before the next job commits (`store::WalNudge`).
        ctx.wal.committed();
        Ok::<_, StoreError>(())
    };
    recorded.await.map_err(|e| SubmitError::Store(e.to_string()))?;
    metrics::counter!(telemetry::JOBS_CREATED).increment(1);
    if let Some(q) = embedded {
        q.announce();
        return Ok(accepted);
    }
    // The job is durable from here on: if sending fails, the outbox sweep sends later.
    let messages: Vec<Outgoing> = job
        .items
        .iter()
        .map(|it| Envelope::by_ref(job.id, it.id, job.connection_id.clone(), job.op, &it.source_id).outgoing())
        .collect();
    let ids: Vec<ItemId> = job.items.iter().map(|i| i.id).collect();
    let deadline = Duration::from_millis(ctx.config.queue.send_timeout_ms.get().into());
    let unsent = match tokio::time::timeout(deadline, ctx.queue.send(messages)).await {
        Ok(Ok(())) => Vec::new(),
        // Some may have gone: the outbox sends them again, and a duplicate is harmless.
        Err(_) => {
            QueueCallFailed {
                op: QueueOp::Send,
                error_kind: "timeout",
                error: &format_args!("no answer within {deadline:?} for job {}", accepted.job_id),
                consequence: "the outbox will send the items",
            }
            .emit();
            ids
        }
        Ok(Err(e)) => {
            let (kind, message) = (e.kind(), e.to_string());
            let (_, unsent) = e.split_sent(ids);
            QueueCallFailed {
                op: QueueOp::Send,
                error_kind: kind,
                error: &format_args!("job {}: {} message(s) unsent: {message}", accepted.job_id, unsent.len()),
                consequence: "the outbox will send the rest",
            }
            .emit();
            unsent
        }
    };
    accepted.unsent = unsent.len();
    metrics::counter!(telemetry::QUEUE_UNSENT).increment(unsent.len() as u64);
    // Off the answer's path; should the report be lost, the job's outbox marker outlives
    // it and the sweep sends its items again.
    let _ = status.send_message(StatusMsg::JobSent { job: accepted.job_id, unsent });
    Ok(accepted)
}
