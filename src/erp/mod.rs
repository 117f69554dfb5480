//! ERP kinds (one module each, listed in [`registry`]) and their clients. Each client turns its ERP's answers into one closed set of error classes
//! so the connector can decide: retry (transient, throttled, ambiguous), give up on the
//! document (rejected), or stop calling the connection for a while (auth).

mod bearer;
pub mod business_central;
mod business_central_client;
pub mod client_credentials;
mod credentials_doc;
pub mod generic_rest;
pub mod module;
pub mod netsuite;
mod netsuite_client;
pub mod oauth;
pub mod oauth1;
mod quickbooks_client;
pub mod quickbooks_online;
pub mod registry;
pub mod sage_intacct;
mod sage_intacct_client;
mod sage_intacct_wire;
pub mod sandbox;
pub mod xero;
mod xero_client;

#[cfg(test)]
mod parser_props;

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

/// A PDF to attach to a created bill.
pub struct Attachment<'a> {
    pub bill_id: &'a str,
    /// The name the ERP files it under (the invoice number, made safe).
    pub file_name: &'a str,
    pub pdf: Vec<u8>,
    pub idempotency_key: &'a str,
    /// An earlier attempt may have attached it already: a client whose ERP has no
    /// idempotency for attachments looks for it first.
    pub maybe_attached: bool,
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
    /// Credentials refused for this call (a 401 or 403 that another attempt may not get).
    #[error("ERP refused our credentials ({status}): {message}")]
    Auth { status: u16, message: String },
    /// The connection's credentials are refused for good (a revoked or expired refresh
    /// token, a deleted client secret, a disabled integration user): no call can succeed
    /// until an operator gives it new ones, so the connection is parked.
    #[error("the ERP revoked this connection's credentials: {message}")]
    Revoked { message: String },
}

impl ErpError {
    /// Stable kind: a metric label and the status API's error kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ErpError::Throttled { .. } => ErrorKind::Throttled,
            ErpError::Transient(_) => ErrorKind::Transient,
            ErpError::Ambiguous(_) => ErrorKind::Ambiguous,
            ErpError::Rejected { .. } => ErrorKind::Rejected,
            ErpError::Auth { .. } | ErpError::Revoked { .. } => ErrorKind::Auth,
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

    /// Finds a document an earlier attempt may have created (after an ambiguous failure):
    /// by `source_id` where the ERP keeps it, else by the ERP's natural key, read from the
    /// `payload` that would create it.
    async fn find_existing(&self, op: Op, source_id: &str, payload: &Payload) -> Result<Option<String>, ErpError>;

    /// Attaches a PDF to a created bill, at most once.
    async fn attach_pdf(&self, attachment: Attachment<'_>) -> Result<String, ErpError>;
}

/// A `Retry-After` header in either of its forms (RFC 9110 §10.2.3): seconds, or an HTTP
/// date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        // Beyond what a Duration holds (or negative, or not a number) is no usable answer.
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(reqwest::header::RETRY_AFTER, later.parse().unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120), "{wait:?}");
        h.insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past means now");
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
