//! `ivr_menu`: an IVR menu definition. The id is given by the configuration (`ivr:<id>`
//! targets refer to it), not generated.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ivr_menu")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub name: String,
    /// The menu definition document (its text; the format is documented in the README).
    #[sea_orm(column_type = "Text")]
    pub definition: String,
    /// The file the definition was loaded from, if any.
    pub source_path: Option<String>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
