//! `blacklist`: numbers that may neither call in nor be called (interface 38).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "blacklist")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The number as the client gave it: digits, `+`, `*`, `#`.
    #[sea_orm(unique)]
    pub telnum: String,
    /// Epoch milliseconds of the (last) add; `blacklist.forbit.duration` counts from here.
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
