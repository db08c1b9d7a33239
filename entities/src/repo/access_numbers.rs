//! Access numbers (hotlines dialled from trunks): CRUD.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::{check_numbering_plan, Change, Claimant};
use crate::db::begin_write;
use crate::{access_number, validate, Error};

/// An access number as configured (admin API body and `[[access_numbers]]` entry).
/// `target` is `ivr:<id>` | `group:<number>` | `ext:<number>` | `conference:<number>`; the
/// target itself is not required to exist yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessNumberInput {
    pub number: String,
    pub target: String,
}

impl AccessNumberInput {
    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        validate::number("number", &self.number)?;
        if self.target.is_empty() {
            return Err(Error::invalid("target", "is required"));
        }
        validate::target("target", &self.target)
    }
}

/// All access numbers, by number.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<access_number::Model>, Error> {
    Ok(access_number::Entity::find()
        .order_by_asc(access_number::Column::Number)
        .all(db)
        .await?)
}

/// One access number by id.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    id: i32,
) -> Result<Option<access_number::Model>, Error> {
    Ok(access_number::Entity::find_by_id(id).one(db).await?)
}

/// One access number by number.
pub async fn by_number<C: ConnectionTrait>(
    db: &C,
    number: &str,
) -> Result<Option<access_number::Model>, Error> {
    Ok(access_number::Entity::find()
        .filter(access_number::Column::Number.eq(number))
        .one(db)
        .await?)
}

/// Create an access number. `Conflict` if the number is taken.
pub async fn create<C>(db: &C, input: AccessNumberInput) -> Result<access_number::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    input.validate()?;
    let txn = begin_write(db).await?;
    if by_number(&txn, &input.number).await?.is_some() {
        return Err(taken(&input.number));
    }
    let (model, _) = write_row(&txn, None, &input).await?;
    txn.commit().await?;
    Ok(model)
}

/// Replace access number `id` with `input`. `NotFound` if absent.
pub async fn update<C>(
    db: &C,
    id: i32,
    input: AccessNumberInput,
) -> Result<access_number::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    input.validate()?;
    let txn = begin_write(db).await?;
    let existing = get(&txn, id).await?.ok_or(Error::NotFound)?;
    if let Some(other) = by_number(&txn, &input.number).await? {
        if other.id != id {
            return Err(taken(&input.number));
        }
    }
    let (model, _) = write_row(&txn, Some(existing), &input).await?;
    txn.commit().await?;
    Ok(model)
}

/// Delete access number `id`. `NotFound` if absent.
pub async fn delete<C: ConnectionTrait>(db: &C, id: i32) -> Result<(), Error> {
    let res = access_number::Entity::delete_by_id(id).exec(db).await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

fn taken(number: &str) -> Error {
    Error::conflict("number", format!("access number {number:?} already exists"))
}

pub(crate) async fn write_row<C: ConnectionTrait>(
    db: &C,
    existing: Option<access_number::Model>,
    input: &AccessNumberInput,
) -> Result<(access_number::Model, Change), Error> {
    if existing.as_ref().map(|e| e.number.as_str()) != Some(input.number.as_str()) {
        check_numbering_plan(db, &input.number, Claimant::AccessNumber, "number").await?;
    }
    let (mut am, created) = match &existing {
        None => (<access_number::ActiveModel as Default>::default(), true),
        Some(e) => (e.clone().into_active_model(), false),
    };
    am.number.set_if_not_equals(input.number.clone());
    am.target.set_if_not_equals(input.target.clone());
    if created {
        let model = am
            .insert(db)
            .await
            .map_err(|e| Error::from_db_unique(e, "number", &input.number))?;
        return Ok((model, Change::Created));
    }
    match existing {
        Some(e) if !am.is_changed() => Ok((e, Change::Unchanged)),
        _ => {
            let model = am
                .update(db)
                .await
                .map_err(|e| Error::from_db_unique(e, "number", &input.number))?;
            Ok((model, Change::Updated))
        }
    }
}

/// Upsert by number (provisioning).
pub(crate) async fn upsert_row<C: ConnectionTrait>(
    db: &C,
    input: &AccessNumberInput,
) -> Result<(access_number::Model, Change), Error> {
    let existing = by_number(db, &input.number).await?;
    write_row(db, existing, input).await
}
