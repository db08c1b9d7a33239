//! `trunk`: a gateway / carrier for numbers that are not extensions.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "trunk")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Trunk name, unique; also the account name of a registering gateway.
    #[sea_orm(unique)]
    pub name: String,
    /// `ip:port` / `host:port` calls for this trunk are sent to (None: a registering gateway).
    pub host: Option<String>,
    /// Password of a gateway that registers to us as account `name`.
    pub password: Option<String>,
    /// Outgoing calls to numbers that are not extensions use this trunk (at most one).
    pub is_default: bool,
    /// Calls from this trunk may be routed out to another trunk (default: forbidden).
    pub allow_transit: bool,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
