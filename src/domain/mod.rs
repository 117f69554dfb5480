//! Domain types: identifiers, sync operations, item states and the AP documents that flow
//! through the pipeline. Nothing in here touches actors, the database or the network.

pub mod documents;
pub mod error_kind;
pub mod ids;
pub mod master_data;
pub mod money;
pub mod samples;
pub mod state;
pub mod validation;

pub use documents::{Invoice, InvoiceLine, Payment, PaymentApplication, PurchaseOrder, VendorRef};
pub use error_kind::ErrorKind;
pub use ids::{ConnectionId, ItemId, JobId};
pub use master_data::{GlAccount, GlAccountType, Vendor};
pub use state::{ErpKind, ItemState, JobState, Op};
pub use validation::{FieldError, ValidationErrors};
