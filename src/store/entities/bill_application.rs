use sea_orm::entity::prelude::*;

/// What a payment applied to a bill, as sent to the ERP (see `m0007_bill_applications`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bill_applications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connection_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub payment_source_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub bill_erp_id: String,
    /// A decimal, as text.
    pub amount: String,
    pub item_id: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
