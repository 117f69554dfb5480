//! Domain types: identifiers, sync operations, item states and the AP documents that flow
//! through the pipeline. Nothing in here touches actors, the database or the network.

pub mod documents;
pub mod ids;
pub mod state;

pub use documents::{Invoice, InvoiceLine, Payment, PaymentApplication, PurchaseOrder, VendorRef};
pub use ids::{ConnectionId, ItemId, JobId};
pub use state::{ErpKind, ItemState, JobState, Op};
