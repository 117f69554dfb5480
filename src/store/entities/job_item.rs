use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub job_id: String,
    pub connection_id: String,
    pub op: String,
    pub source_id: String,
    pub state: String,
    /// Attempts counted in `attempts`, including those the ERP throttled.
    pub attempts: i32,
    /// How many of `attempts` the ERP throttled.
    pub throttles: i32,
    /// The attempts that counted when the item was last redriven from the dead-letter
    /// queue. What counts against `retry.max_attempts` is
    /// `attempts - throttles - redriven_attempts`.
    pub redriven_attempts: i32,
    pub erp_id: Option<String>,
    pub error_kind: Option<String>,
    pub error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    /// False until the item's message is on the queue (the outbox flag).
    pub enqueued: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
