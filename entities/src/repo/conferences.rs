//! Conference (meet-me) rooms: CRUD.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::{check_numbering_plan, Change, Claimant};
use crate::db::begin_write;
use crate::{conference_room, validate, Error};

/// A conference room as configured (`[[conferences]]` entry). `pin`: 1-16 digits callers
/// must enter, None for an open room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConferenceInput {
    pub number: String,
    pub name: String,
    pub pin: Option<String>,
}

impl ConferenceInput {
    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        validate::number("number", &self.number)?;
        validate::text("name", &self.name, 128)?;
        if let Some(pin) = &self.pin {
            if pin.is_empty() || pin.len() > 16 || !pin.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid("pin", "must be 1-16 digits"));
            }
        }
        Ok(())
    }
}

/// All rooms, by number.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<conference_room::Model>, Error> {
    Ok(conference_room::Entity::find()
        .order_by_asc(conference_room::Column::Number)
        .all(db)
        .await?)
}

/// One room by id.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    id: i32,
) -> Result<Option<conference_room::Model>, Error> {
    Ok(conference_room::Entity::find_by_id(id).one(db).await?)
}

/// One room by number.
pub async fn by_number<C: ConnectionTrait>(
    db: &C,
    number: &str,
) -> Result<Option<conference_room::Model>, Error> {
    Ok(conference_room::Entity::find()
        .filter(conference_room::Column::Number.eq(number))
        .one(db)
        .await?)
}

/// Create a room. `Conflict` if the number is taken.
pub async fn create<C>(db: &C, input: ConferenceInput) -> Result<conference_room::Model, Error>
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

/// Replace room `id` with `input`. `NotFound` if absent.
pub async fn update<C>(
    db: &C,
    id: i32,
    input: ConferenceInput,
) -> Result<conference_room::Model, Error>
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

/// Delete room `id`. `NotFound` if absent.
pub async fn delete<C: ConnectionTrait>(db: &C, id: i32) -> Result<(), Error> {
    let res = conference_room::Entity::delete_by_id(id).exec(db).await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

fn taken(number: &str) -> Error {
    Error::conflict(
        "number",
        format!("conference room {number:?} already exists"),
    )
}

pub(crate) async fn write_row<C: ConnectionTrait>(
    db: &C,
    existing: Option<conference_room::Model>,
    input: &ConferenceInput,
) -> Result<(conference_room::Model, Change), Error> {
    if existing.as_ref().map(|e| e.number.as_str()) != Some(input.number.as_str()) {
        check_numbering_plan(db, &input.number, Claimant::Conference, "number").await?;
    }
    let (mut am, created) = match &existing {
        None => (<conference_room::ActiveModel as Default>::default(), true),
        Some(e) => (e.clone().into_active_model(), false),
    };
    am.number.set_if_not_equals(input.number.clone());
    am.name.set_if_not_equals(input.name.clone());
    am.pin.set_if_not_equals(input.pin.clone());
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
    input: &ConferenceInput,
) -> Result<(conference_room::Model, Change), Error> {
    let existing = by_number(db, &input.number).await?;
    write_row(db, existing, input).await
}
