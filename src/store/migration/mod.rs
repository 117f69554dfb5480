//! Schema migrations, as code. They run at start-up and with `erpsync migrate`.

mod m0001_initial;
mod m0002_erp_leases;
mod m0003_pending_outbox_index;
mod m0004_job_outbox;
mod m0005_item_throttles;
mod m0006_item_documents;
mod m0007_bill_applications;
mod m0008_api_tokens;
mod m0009_erp_tokens;
mod m0010_connection_parks;
mod m0011_job_idempotency;
mod m0012_job_cancels;
mod m0015_exported_bills;

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_erp_leases::Migration),
            Box::new(m0003_pending_outbox_index::Migration),
            Box::new(m0004_job_outbox::Migration),
            Box::new(m0005_item_throttles::Migration),
            Box::new(m0006_item_documents::Migration),
            Box::new(m0007_bill_applications::Migration),
            Box::new(m0008_api_tokens::Migration),
            Box::new(m0009_erp_tokens::Migration),
            Box::new(m0010_connection_parks::Migration),
            Box::new(m0011_job_idempotency::Migration),
            Box::new(m0012_job_cancels::Migration),
            Box::new(m0015_exported_bills::Migration),
        ]
    }
}
