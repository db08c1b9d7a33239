//! IVR menus: list, get, upsert by id, delete. A definition is parsed and validated
//! ([`definition`], the format of `docs/ivr.md`) before it is stored: a bad document is
//! rejected with the node and the problem named.

pub mod definition;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait, IntoActiveModel, QueryOrder,
};
use serde::{Deserialize, Serialize};

use super::Change;
use crate::db::now_ms;
use crate::{ivr_menu, validate, Error};

/// An IVR menu (`[[ivrs]]` entry). `definition` is the document's text: the configuration
/// loader reads the file named in the TOML and puts its path in `source_path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvrInput {
    pub id: i32,
    pub name: String,
    pub definition: String,
    pub source_path: Option<String>,
}

impl IvrInput {
    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        validate::range("id", self.id, 0, i32::MAX)?;
        validate::text("name", &self.name, 128)?;
        if self.definition.trim().is_empty() {
            return Err(Error::invalid("definition", "is empty"));
        }
        definition::IvrDefinition::parse(&self.definition)
            .map_err(|e| Error::invalid("definition", e.to_string()))?;
        if let Some(p) = &self.source_path {
            validate::text("source_path", p, 1024)?;
        }
        Ok(())
    }
}

/// The parsed definition of a stored menu (stored rows were validated, but may predate
/// the validation). The error names the menu: `ivr 1.definition`.
pub fn parse(model: &ivr_menu::Model) -> Result<definition::IvrDefinition, Error> {
    definition::IvrDefinition::parse(&model.definition)
        .map_err(|e| Error::invalid(format!("ivr {}.definition", model.id), e.to_string()))
}

/// All menus, by id.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<ivr_menu::Model>, Error> {
    Ok(ivr_menu::Entity::find()
        .order_by_asc(ivr_menu::Column::Id)
        .all(db)
        .await?)
}

/// One menu by id.
pub async fn get<C: ConnectionTrait>(db: &C, id: i32) -> Result<Option<ivr_menu::Model>, Error> {
    Ok(ivr_menu::Entity::find_by_id(id).one(db).await?)
}

/// Create or replace menu `input.id`.
pub async fn upsert<C: ConnectionTrait>(db: &C, input: IvrInput) -> Result<ivr_menu::Model, Error> {
    input.validate()?;
    Ok(upsert_row(db, &input, now_ms()).await?.0)
}

/// Delete menu `id`. `NotFound` if absent.
pub async fn delete<C: ConnectionTrait>(db: &C, id: i32) -> Result<(), Error> {
    let res = ivr_menu::Entity::delete_by_id(id).exec(db).await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

pub(crate) async fn upsert_row<C: ConnectionTrait>(
    db: &C,
    input: &IvrInput,
    now: i64,
) -> Result<(ivr_menu::Model, Change), Error> {
    let existing = get(db, input.id).await?;
    let (mut am, created) = match &existing {
        None => (
            ivr_menu::ActiveModel {
                id: Set(input.id),
                created_at: Set(now),
                ..Default::default()
            },
            true,
        ),
        Some(e) => (e.clone().into_active_model(), false),
    };
    am.name.set_if_not_equals(input.name.clone());
    am.definition.set_if_not_equals(input.definition.clone());
    am.source_path.set_if_not_equals(input.source_path.clone());
    if created {
        am.updated_at = Set(now);
        return Ok((am.insert(db).await?, Change::Created));
    }
    match existing {
        Some(e) if !am.is_changed() => Ok((e, Change::Unchanged)),
        _ => {
            am.updated_at = Set(now);
            Ok((am.update(db).await?, Change::Updated))
        }
    }
}
