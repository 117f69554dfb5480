//! What an attempt came to, and what it did in the ERP on the way.

use crate::actors::stages::StageError;
use crate::domain::ErrorKind;
use crate::erp::ErpError;
use crate::store::{self, ItemError};
use crate::telemetry::events::ReturnReason;
use std::time::Duration;

/// A ledger entry: (doc kind, source id, ERP id).
pub type LedgerEntry = (String, String, String);

/// What an attempt did in the ERP, recorded with its outcome: the ledger entries of the
/// documents it created, what a payment it created applied to bills, and the bill an
/// invoice became.
#[derive(Default)]
pub struct Effects {
    pub ledger: Vec<LedgerEntry>,
    pub applications: Vec<store::BillApplication>,
    pub bills: Vec<store::exported_bills::ExportedBill>,
}

pub enum Outcome {
    Succeeded {
        erp_id: String,
    },
    Failed(ItemError),
    Retry {
        error: ItemError,
        at_least: Option<Duration>,
    },
    DeadLetter(String),
    /// Already terminal: nothing to do but delete the message.
    AlreadyDone,
    /// The connection is parked (its credentials were revoked, found by this attempt
    /// when `error` is set): the item is shelved until the connection is resumed, and the
    /// attempt does not count.
    Park {
        error: Option<ItemError>,
    },
    /// Not now, and not an attempt: another task of this daemon is exporting the same
    /// document (`Busy`), or every cluster slot of the connection stayed taken for the
    /// slot wait (`Saturated`). The reason labels the returned-message count.
    NotNow(ReturnReason),
}

pub fn err(kind: ErrorKind, code: Option<String>, message: impl Into<String>) -> ItemError {
    ItemError::new(kind, code, message)
}

impl From<ErpError> for Outcome {
    fn from(e: ErpError) -> Self {
        match e {
            ErpError::Rejected { status, code, message } => {
                Outcome::Failed(err(ErrorKind::Rejected, Some(code), format!("ERP answered {status}: {message}")))
            }
            ErpError::Throttled { retry_after } => {
                Outcome::Retry { error: err(ErrorKind::Throttled, None, e.to_string()), at_least: retry_after }
            }
            ErpError::Saturated(_) => Outcome::NotNow(ReturnReason::Saturated),
            // Bad credentials do not fix themselves quickly: wait at least a minute.
            ErpError::Revoked { .. } => {
                Outcome::Park { error: Some(err(ErrorKind::Auth, Some(store::PARKED_CODE.to_owned()), e.to_string())) }
            }
            ErpError::Auth { .. } => Outcome::Retry {
                error: err(ErrorKind::Auth, None, e.to_string()),
                at_least: Some(Duration::from_secs(60)),
            },
            other => Outcome::Retry { error: err(other.kind(), None, other.to_string()), at_least: None },
        }
    }
}

impl From<StageError> for Outcome {
    fn from(e: StageError) -> Self {
        Outcome::Retry { error: err(ErrorKind::StageFailed, None, e.to_string()), at_least: None }
    }
}

/// How a dead-letter reason mentions the earlier attempts that did not count.
pub fn uncounted_note(uncounted: u32) -> String {
    match uncounted {
        0 => String::new(),
        n => format!(", not counting {n} the ERP throttled or made before a redrive"),
    }
}
