//! ERP kinds (one module each, listed in [`registry`]) and their clients. Each client turns its ERP's answers into one closed set of error classes
//! so the connector can decide: retry (transient, throttled, ambiguous), give up on the
//! document (rejected), or stop calling the connection for a while (auth).

pub mod business_central;
pub mod generic_rest;
pub mod netsuite;
pub mod quickbooks_online;
pub mod registry;
pub mod sage_intacct;
pub mod sandbox;
pub mod xero;

use crate::domain::{ErrorKind, Op};
use crate::pipeline::serialize::Payload;
use async_trait::async_trait;
use std::time::Duration;

/// An ERP document created (or found already created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub erp_id: String,
    /// The ERP answered with an earlier create for the same idempotency key.
    pub replayed: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ErpError {
    /// Over the ERP's concurrency or rate limit.
    #[error("throttled by the ERP{}", .retry_after.map(|d| format!(" (retry after {} s)", d.as_secs_f64())).unwrap_or_default())]
    Throttled { retry_after: Option<Duration> },
    /// Failed before the ERP could have acted (connection refused, 5xx).
    #[error("transient ERP failure: {0}")]
    Transient(String),
    /// The request may or may not have been committed (timeout, reset after sending).
    #[error("no answer from the ERP, outcome unknown: {0}")]
    Ambiguous(String),
    /// The ERP refused the document; retrying will not help.
    #[error("ERP rejected the document ({status} {code}): {message}")]
    Rejected { status: u16, code: String, message: String },
    /// No cluster-wide concurrency slot came free in time: nothing was sent.
    #[error("every concurrency slot of this connection is busy: {0}")]
    Saturated(String),
    /// Credentials missing, expired or revoked.
    #[error("ERP refused our credentials ({status}): {message}")]
    Auth { status: u16, message: String },
}

impl ErpError {
    /// Stable kind: a metric label and the status API's error kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ErpError::Throttled { .. } => ErrorKind::Throttled,
            ErpError::Transient(_) => ErrorKind::Transient,
            ErpError::Ambiguous(_) => ErrorKind::Ambiguous,
            ErpError::Rejected { .. } => ErrorKind::Rejected,
            ErpError::Auth { .. } => ErrorKind::Auth,
            ErpError::Saturated(_) => ErrorKind::Saturated,
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ErpError::Rejected { .. })
    }
}

#[async_trait]
pub trait ErpClient: Send + Sync + 'static {
    /// Creates the document `op` exports. The idempotency key is stable per document.
    async fn create(&self, op: Op, payload: &Payload, idempotency_key: &str) -> Result<Created, ErpError>;

    /// Finds a document created earlier for `source_id` (after an ambiguous failure).
    async fn find_by_external_ref(&self, op: Op, source_id: &str) -> Result<Option<String>, ErpError>;

    /// Attaches a PDF to a created bill.
    async fn attach_pdf(&self, bill_id: &str, pdf: Vec<u8>, idempotency_key: &str) -> Result<String, ErpError>;
}
