//! `group_member`: an extension's membership of a group; unique per (group, extension).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "group_member")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub group_id: i32,
    pub extension_id: i32,
    /// Higher priority agents are offered calls first (strategy permitting); default 0.
    pub priority: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::call_group::Entity",
        from = "Column::GroupId",
        to = "super::call_group::Column::Id",
        on_delete = "Cascade",
        on_update = "Cascade"
    )]
    CallGroup,
    #[sea_orm(
        belongs_to = "super::extension::Entity",
        from = "Column::ExtensionId",
        to = "super::extension::Column::Id",
        on_delete = "Cascade",
        on_update = "Cascade"
    )]
    Extension,
}

impl Related<super::call_group::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CallGroup.def()
    }
}

impl Related<super::extension::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Extension.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
