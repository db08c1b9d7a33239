//! `access_number`: a number callers from trunks dial (hotline), and where it leads.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "access_number")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub number: String,
    /// `ivr:<id>` | `group:<number>` | `ext:<number>` | `conference:<number>`; see
    /// [`crate::Target`].
    pub target: String,
}

impl Model {
    /// The parsed target (None only if the row was written bypassing validation).
    pub fn parsed_target(&self) -> Option<crate::Target> {
        self.target.parse().ok()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
