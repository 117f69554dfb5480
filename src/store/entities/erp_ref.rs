use sea_orm::entity::prelude::*;

/// The idempotency ledger: which ERP document a source document became.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erp_refs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connection_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub doc_kind: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub source_id: String,
    pub erp_id: String,
    pub item_id: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
