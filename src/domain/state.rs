//! Operations and the item/job state machine.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a work item asks the connector to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    ExportInvoice,
    ExportPurchaseOrder,
    ExportPayment,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::ExportInvoice, Op::ExportPurchaseOrder, Op::ExportPayment];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::ExportInvoice => "export_invoice",
            Op::ExportPurchaseOrder => "export_purchase_order",
            Op::ExportPayment => "export_payment",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == s)
    }

    /// The kind of ERP document this op creates; the idempotency ledger is keyed by it.
    pub fn doc_kind(self) -> &'static str {
        match self {
            Op::ExportInvoice => "bill",
            Op::ExportPurchaseOrder => "purchase_order",
            Op::ExportPayment => "bill_payment",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `queued → in_progress → succeeded | failed | retrying → … | dead_lettered`; an item
/// still `queued` or `retrying` when its job is cancelled becomes `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Queued,
    InProgress,
    Retrying,
    Succeeded,
    /// Permanent: the ERP (or our validation) rejected the document.
    Failed,
    /// The message could not be processed at all, or transient failures never ended.
    DeadLettered,
    /// Its job was cancelled before the item was attempted again; it never will be.
    Cancelled,
}

impl ItemState {
    pub const ALL: [ItemState; 7] = [
        ItemState::Queued,
        ItemState::InProgress,
        ItemState::Retrying,
        ItemState::Succeeded,
        ItemState::Failed,
        ItemState::DeadLettered,
        ItemState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Queued => "queued",
            ItemState::InProgress => "in_progress",
            ItemState::Retrying => "retrying",
            ItemState::Succeeded => "succeeded",
            ItemState::Failed => "failed",
            ItemState::DeadLettered => "dead_lettered",
            ItemState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ItemState> {
        ItemState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, ItemState::Succeeded | ItemState::Failed | ItemState::DeadLettered | ItemState::Cancelled)
    }

    /// Whether a cancel of its job stops this item: it waits for an attempt, none is
    /// under way.
    pub fn is_cancellable(self) -> bool {
        matches!(self, ItemState::Queued | ItemState::Retrying)
    }
}

impl fmt::Display for ItemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's state is derived from its items, never stored on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Some items are not terminal yet.
    Running,
    /// Every item succeeded.
    Succeeded,
    /// Every item is terminal and at least one failed or was dead-lettered, none cancelled.
    CompletedWithErrors,
    /// Every item is terminal and the job was cancelled: at least one item is `cancelled`.
    Cancelled,
}

impl JobState {
    /// Derives the job state from (state, count) pairs of its items.
    pub fn derive(counts: &[(ItemState, u64)]) -> JobState {
        let open = counts.iter().any(|(s, n)| *n > 0 && !s.is_terminal());
        let bad = counts.iter().any(|(s, n)| *n > 0 && matches!(s, ItemState::Failed | ItemState::DeadLettered));
        let cancelled = counts.iter().any(|(s, n)| *n > 0 && *s == ItemState::Cancelled);
        match (open, cancelled, bad) {
            (true, _, _) => JobState::Running,
            (false, true, _) => JobState::Cancelled,
            (false, false, false) => JobState::Succeeded,
            (false, false, true) => JobState::CompletedWithErrors,
        }
    }

    pub const ALL: [JobState; 4] =
        [JobState::Running, JobState::Succeeded, JobState::CompletedWithErrors, JobState::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::CompletedWithErrors => "completed_with_errors",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_state_is_derived_from_items() {
        use ItemState::*;
        assert_eq!(JobState::derive(&[(Succeeded, 3), (Retrying, 1)]), JobState::Running);
        assert_eq!(JobState::derive(&[(Succeeded, 3), (Retrying, 0)]), JobState::Succeeded);
        assert_eq!(JobState::derive(&[(Succeeded, 3), (Failed, 1)]), JobState::CompletedWithErrors);
        assert_eq!(JobState::derive(&[(Succeeded, 3), (Failed, 1), (Cancelled, 2)]), JobState::Cancelled);
        assert_eq!(JobState::derive(&[(Cancelled, 2), (InProgress, 1)]), JobState::Running);
    }

    #[test]
    fn cancelled_is_terminal_and_only_waiting_items_cancel() {
        assert!(ItemState::Cancelled.is_terminal());
        let cancellable: Vec<_> = ItemState::ALL.into_iter().filter(|s| s.is_cancellable()).collect();
        assert_eq!(cancellable, [ItemState::Queued, ItemState::Retrying]);
        for st in JobState::ALL {
            assert_eq!(JobState::parse(st.as_str()), Some(st));
        }
    }

    #[test]
    fn ops_and_states_round_trip_through_their_names() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.as_str()), Some(op));
        }
        for st in ItemState::ALL {
            assert_eq!(ItemState::parse(st.as_str()), Some(st));
        }
    }
}

/// The kind of ERP behind a connection; picks the serializer, the client and default limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErpKind {
    GenericRest,
    QuickbooksOnline,
    Xero,
    Netsuite,
    BusinessCentral,
    SageIntacct,
}

impl ErpKind {
    pub const ALL: [ErpKind; 6] = [
        ErpKind::GenericRest,
        ErpKind::QuickbooksOnline,
        ErpKind::Xero,
        ErpKind::Netsuite,
        ErpKind::BusinessCentral,
        ErpKind::SageIntacct,
    ];

    pub fn parse(s: &str) -> Option<ErpKind> {
        ErpKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErpKind::GenericRest => "generic_rest",
            ErpKind::QuickbooksOnline => "quickbooks_online",
            ErpKind::Xero => "xero",
            ErpKind::Netsuite => "netsuite",
            ErpKind::BusinessCentral => "business_central",
            ErpKind::SageIntacct => "sage_intacct",
        }
    }
}
