//! sea-orm entities of the tables the daemon reads and writes through the ORM. The queue
//! table is driven by hand-written SQL in `queue::embedded` (it needs `RETURNING` and row
//! locking), so it has no entity here.

pub mod bill_application;
pub mod erp_ref;
pub mod exported_bill;
pub mod item_document;
pub mod item_event;
pub mod job;
pub mod job_item;
