//! Soft parameters: `get` / `set` text values by key (e.g. `blacklist.forbit.duration`).

use sea_orm::{sea_query::OnConflict, ActiveValue::Set, ConnectionTrait, EntityTrait, QueryOrder};

use crate::db::now_ms;
use crate::setting::{self, Column, Entity};
use crate::{validate, Error};

/// The value of `key`, if set.
pub async fn get<C: ConnectionTrait>(db: &C, key: &str) -> Result<Option<String>, Error> {
    Ok(Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
        .map(|m| m.value))
}

/// Set `key` to `value` (insert or replace).
pub async fn set<C: ConnectionTrait>(db: &C, key: &str, value: &str) -> Result<(), Error> {
    validate::required_text("key", key, 128)?;
    let am = setting::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(value.to_owned()),
        updated_at: Set(now_ms()),
    };
    Entity::insert(am)
        .on_conflict(
            OnConflict::column(Column::Key)
                .update_columns([Column::Value, Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Every setting, by key.
pub async fn all<C: ConnectionTrait>(db: &C) -> Result<Vec<setting::Model>, Error> {
    Ok(Entity::find().order_by_asc(Column::Key).all(db).await?)
}

/// Remove `key`. `NotFound` if it was not set.
pub async fn delete<C: ConnectionTrait>(db: &C, key: &str) -> Result<(), Error> {
    let res = Entity::delete_by_id(key.to_owned()).exec(db).await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}
