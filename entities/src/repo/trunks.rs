//! Trunks (gateways / carriers): CRUD; at most one default trunk.

use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::{check_numbering_plan, Change, Claimant};
use crate::db::{begin_write, now_ms};
use crate::{trunk, validate, Error};

/// A trunk as configured (admin API body and `[[trunks]]` provisioning entry).
///
/// `name` is required, and `host` (calls for this trunk go there) or `password` (the
/// gateway registers to us as account `name`) or both. `default = true` makes it the
/// trunk for outgoing calls to non-extensions and clears the flag on every other trunk.
/// `update` replaces every field (a `None` host or password is removed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrunkInput {
    pub name: String,
    pub host: Option<String>,
    pub password: Option<String>,
    pub default: bool,
    pub allow_transit: bool,
}

impl TrunkInput {
    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.is_empty() {
            return Err(Error::invalid("name", "is required"));
        }
        if self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(Error::invalid(
                "name",
                format!(
                    "{:?} must be 1-64 letters, digits, '-', '_' or '.'",
                    self.name
                ),
            ));
        }
        if let Some(h) = &self.host {
            validate::host_port("host", h)?;
        }
        if let Some(p) = &self.password {
            if p.is_empty() {
                return Err(Error::invalid("password", "must not be empty when given"));
            }
            validate::password("password", p, 128)?;
        }
        if self.host.is_none() && self.password.is_none() {
            return Err(Error::invalid(
                "host",
                "a trunk needs a host (ip:port calls are sent to) or a password (the gateway registers)",
            ));
        }
        Ok(())
    }

    fn apply(&self, am: &mut trunk::ActiveModel) {
        am.name.set_if_not_equals(self.name.clone());
        am.host.set_if_not_equals(self.host.clone());
        am.password.set_if_not_equals(self.password.clone());
        am.is_default.set_if_not_equals(self.default);
        am.allow_transit.set_if_not_equals(self.allow_transit);
    }
}

/// All trunks, by name.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<trunk::Model>, Error> {
    Ok(trunk::Entity::find()
        .order_by_asc(trunk::Column::Name)
        .all(db)
        .await?)
}

/// One trunk by id.
pub async fn get<C: ConnectionTrait>(db: &C, id: i32) -> Result<Option<trunk::Model>, Error> {
    Ok(trunk::Entity::find_by_id(id).one(db).await?)
}

/// One trunk by name.
pub async fn by_name<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> Result<Option<trunk::Model>, Error> {
    Ok(trunk::Entity::find()
        .filter(trunk::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// The default trunk, if one is marked.
pub async fn default_trunk<C: ConnectionTrait>(db: &C) -> Result<Option<trunk::Model>, Error> {
    Ok(trunk::Entity::find()
        .filter(trunk::Column::IsDefault.eq(true))
        .order_by_asc(trunk::Column::Id)
        .one(db)
        .await?)
}

/// Create a trunk. `Conflict` if the name is taken.
pub async fn create<C>(db: &C, input: TrunkInput) -> Result<trunk::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    input.validate()?;
    let txn = begin_write(db).await?;
    if by_name(&txn, &input.name).await?.is_some() {
        return Err(taken(&input.name));
    }
    let (model, _) = write_row(&txn, None, &input, now_ms()).await?;
    txn.commit().await?;
    Ok(model)
}

/// Replace trunk `id` with `input`. `NotFound` if absent.
pub async fn update<C>(db: &C, id: i32, input: TrunkInput) -> Result<trunk::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    input.validate()?;
    let txn = begin_write(db).await?;
    let existing = get(&txn, id).await?.ok_or(Error::NotFound)?;
    if let Some(other) = by_name(&txn, &input.name).await? {
        if other.id != id {
            return Err(taken(&input.name));
        }
    }
    let (model, _) = write_row(&txn, Some(existing), &input, now_ms()).await?;
    txn.commit().await?;
    Ok(model)
}

/// Delete trunk `id`. `NotFound` if absent.
pub async fn delete<C: ConnectionTrait>(db: &C, id: i32) -> Result<(), Error> {
    let res = trunk::Entity::delete_by_id(id).exec(db).await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

fn taken(name: &str) -> Error {
    Error::conflict("name", format!("trunk {name:?} already exists"))
}

/// Insert (existing = None) or update the trunk row to match `input`; a default trunk
/// clears the flag on the others. The caller has checked same-table uniqueness.
pub(crate) async fn write_row<C: ConnectionTrait>(
    db: &C,
    existing: Option<trunk::Model>,
    input: &TrunkInput,
    now: i64,
) -> Result<(trunk::Model, Change), Error> {
    if existing.as_ref().map(|e| e.name.as_str()) != Some(input.name.as_str()) {
        check_numbering_plan(db, &input.name, Claimant::Trunk, "name").await?;
    }
    let (model, change) = match existing {
        None => {
            let mut am = trunk::ActiveModel {
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            };
            input.apply(&mut am);
            let model = am
                .insert(db)
                .await
                .map_err(|e| Error::from_db_unique(e, "name", &input.name))?;
            (model, Change::Created)
        }
        Some(existing) => {
            let mut am = existing.clone().into_active_model();
            input.apply(&mut am);
            if am.is_changed() {
                am.updated_at = Set(now);
                let model = am
                    .update(db)
                    .await
                    .map_err(|e| Error::from_db_unique(e, "name", &input.name))?;
                (model, Change::Updated)
            } else {
                (existing, Change::Unchanged)
            }
        }
    };
    if model.is_default {
        trunk::Entity::update_many()
            .col_expr(trunk::Column::IsDefault, Expr::value(false))
            .col_expr(trunk::Column::UpdatedAt, Expr::value(now))
            .filter(trunk::Column::IsDefault.eq(true))
            .filter(trunk::Column::Id.ne(model.id))
            .exec(db)
            .await?;
    }
    Ok((model, change))
}

/// Upsert by name (provisioning).
pub(crate) async fn upsert_row<C: ConnectionTrait>(
    db: &C,
    input: &TrunkInput,
    now: i64,
) -> Result<(trunk::Model, Change), Error> {
    let existing = by_name(db, &input.name).await?;
    write_row(db, existing, input, now).await
}
