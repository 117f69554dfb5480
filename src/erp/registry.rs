//! The ERP kinds erpsync can talk to, one line each (what a kind provides is
//! [`ErpModule`], in `erp::module`).
//!
//! Everything that differs by ERP kind is asked of the kind's [`ErpModule`] here; the
//! daemon, the configuration, `erpsync preview` and the stage actors never match on the
//! kind themselves, so adding an ERP is a module of its own plus one line in [`module`].

pub use super::module::{BatchCapacity, ClientContext, ErpModule, ErpProfile, Limits};

use super::{business_central, generic_rest, netsuite, quickbooks_online, sage_intacct, xero};
use crate::config::connection::ConnectionConfig;
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError};

/// The module of `kind`: one line per ERP kind.
pub fn module(kind: ErpKind) -> &'static dyn ErpModule {
    match kind {
        ErpKind::GenericRest => &generic_rest::GenericRest,
        ErpKind::QuickbooksOnline => &quickbooks_online::QuickbooksOnline,
        ErpKind::Xero => &xero::Xero,
        ErpKind::Netsuite => &netsuite::Netsuite,
        ErpKind::BusinessCentral => &business_central::BusinessCentral,
        ErpKind::SageIntacct => &sage_intacct::SageIntacct,
    }
}

/// Validates `doc`, then serializes it for an ERP of kind `erp`: an ERP never sees a
/// document erpsync already knows is wrong.
pub fn serialize(erp: ErpKind, doc: &Document) -> Result<Payload, SerializeError> {
    doc.validate()?;
    module(erp).serialize(doc)
}

/// The limits in force for `conn`.
pub fn limits(conn: &ConnectionConfig) -> Limits {
    let profile = module(conn.erp).profile();
    let max_concurrency = conn.max_concurrency.map_or(profile.max_concurrency, |n| n.get());
    Limits {
        max_concurrency,
        rate_limit_per_min: conn.rate_limit_per_min.map(|n| n.get()).or(profile.rate_limit_per_min),
        daily_limit: profile.daily_limit,
        // At least one receive batch, so a small limit still has work ready when a call ends.
        prefetch: conn.prefetch.unwrap_or_else(|| max_concurrency.max(10)),
    }
}

#[cfg(test)]
mod tests;
