//! `vip_list`: callers who jump the queue by level (interface 39); level N waits N × 30 s
//! less.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "vip_list")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The number as the client gave it: digits, `+`, `*`, `#`.
    #[sea_orm(unique)]
    pub telnum: String,
    /// 0 (an ordinary caller) to 100.
    pub viplevel: i32,
    /// Free description (empty when not given).
    #[sea_orm(column_type = "Text")]
    pub des: String,
    /// The client's creation time, `yyyy-MM-dd HH:mm:ss`, when it gave one.
    pub createtime: Option<String>,
    /// Epoch milliseconds of the first add.
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
