use sea_orm::entity::prelude::*;

/// A bill a connection exported, as a payment is matched with it (see `m0015_exported_bills`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "exported_bills")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connection_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub source_id: String,
    pub erp_id: String,
    pub vendor_id: String,
    pub number: String,
    /// A decimal, as text.
    pub total: String,
    pub currency: String,
    /// `YYYY-MM-DD`.
    pub due_date: String,
    pub item_id: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
