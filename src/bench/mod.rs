//! `erpsync bench …`: self-contained benchmarks whose figures go in the README.
//!
//! - `slots`: the daemon against sandbox ERPs, drain time against the ideal.
//! - `render`: the pipeline's CPU work per invoice (serialize + PDF + CSV).
//! - `fairness`, `store`, `fleet`: one connection's backlog against another's item, status
//!   writes per second, several daemon processes on one PostgreSQL.
//! - `enqueue`, `drain` (in [`queue`]): the queue backends compared.
//! - `events`: how soon an SSE client gets each event after its commit, at 1,000 events/s.
//! - `connectors`: a vendor connector against its simulator at the vendor's limits.
//! - `floor` (in [`floor`]): the least CPU per item any consumer keeping erpsync's promises
//!   could spend on the SQS path, beside the queue server's.

mod connectors;
mod events;
mod fleet;
pub mod floor;
pub mod queue;
pub mod render;
pub mod scratch_db;
mod slots;

pub use connectors::{ConnectorsArgs, connectors};
pub use events::{EventsArgs, events};
pub use fleet::{FairnessArgs, FleetArgs, StoreArgs, fairness, fleet, store};
pub use render::{RenderArgs, render};
pub use slots::{SlotsArgs, SlotsReport, slots};
