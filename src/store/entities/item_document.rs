use sea_orm::entity::prelude::*;

/// An item's document as the producer sent it (JSON), apart from its row: `job_items` is
/// rewritten with every state change, and at ≈ 1.3 kB an invoice made each of those
/// rewrites ten times wider than the state it changed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "item_documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub item_id: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
