//! Why an item's attempt did not succeed: one closed set of kinds. A kind's name is stable:
//! it is the `error_kind` metric label, the `error.kind` of the status API and what the
//! item's row keeps.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The ERP said we were over its concurrency or rate limit; it did nothing.
    Throttled,
    /// The call failed before the ERP could have acted (connection refused, 5xx).
    Transient,
    /// The ERP may or may not have acted (timeout, reset, a cluster slot that lapsed).
    Ambiguous,
    /// The ERP refused our credentials.
    Auth,
    /// Every cluster-wide slot of the connection stayed taken: nothing was sent, and the
    /// message goes back to the queue without counting an attempt.
    Saturated,
    /// A pipeline stage crashed, timed out or was restarting.
    StageFailed,
    /// erpsync's own database failed.
    Store,
    /// A payment names a bill not exported to its connection yet.
    BillNotExported,
    /// The ERP refused the document.
    Rejected,
    /// The document is not one (not JSON, or not the shape of its kind).
    InvalidDocument,
    /// The document breaks a rule of its kind (missing number, totals that do not add up).
    Validation,
    /// The PDF could not be rendered.
    Render,
    /// The document cannot be expressed in the ERP's format.
    Serialize,
    /// The payment cannot be matched to bills.
    Matching,
    /// The message could not be worked on at all, or its attempts ran out.
    Unprocessable,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Throttled,
        ErrorKind::Transient,
        ErrorKind::Ambiguous,
        ErrorKind::Auth,
        ErrorKind::Saturated,
        ErrorKind::StageFailed,
        ErrorKind::Store,
        ErrorKind::BillNotExported,
        ErrorKind::Rejected,
        ErrorKind::InvalidDocument,
        ErrorKind::Validation,
        ErrorKind::Render,
        ErrorKind::Serialize,
        ErrorKind::Matching,
        ErrorKind::Unprocessable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::Ambiguous => "ambiguous",
            ErrorKind::Auth => "auth",
            ErrorKind::Saturated => "saturated",
            ErrorKind::StageFailed => "stage_failed",
            ErrorKind::Store => "store",
            ErrorKind::BillNotExported => "bill_not_exported",
            ErrorKind::Rejected => "rejected",
            ErrorKind::InvalidDocument => "invalid_document",
            ErrorKind::Validation => "validation",
            ErrorKind::Render => "render",
            ErrorKind::Serialize => "serialize",
            ErrorKind::Matching => "matching",
            ErrorKind::Unprocessable => "unprocessable",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether an attempt failing this way is tried again (with backoff) rather than
    /// failing the item for good.
    pub fn is_retried(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled
                | ErrorKind::Transient
                | ErrorKind::Ambiguous
                | ErrorKind::Auth
                | ErrorKind::StageFailed
                | ErrorKind::Store
                | ErrorKind::BillNotExported
        )
    }

    /// The kinds an attempt is retried for, in [`ErrorKind::ALL`]'s order.
    pub fn retried() -> impl Iterator<Item = ErrorKind> {
        ErrorKind::ALL.into_iter().filter(|k| k.is_retried())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names_and_serde() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::Value::String(k.as_str().into()));
        }
    }

    #[test]
    fn the_retried_kinds_are_the_transient_ones() {
        let retried: Vec<_> = ErrorKind::retried().map(ErrorKind::as_str).collect();
        assert_eq!(
            retried,
            ["throttled", "transient", "ambiguous", "auth", "stage_failed", "store", "bill_not_exported"]
        );
    }
}
