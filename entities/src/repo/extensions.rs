//! Extensions: CRUD, group membership, presence and employee-information updates.

use std::collections::{BTreeSet, HashMap};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::{check_numbering_plan, Change, Claimant};
use crate::db::{begin_write, now_ms};
use crate::extension::{self, Presence};
use crate::{call_group, group_member, validate, Error};

/// An extension as configured (admin API body and `[[extensions]]` provisioning entry).
///
/// Only `number` is required. `update` replaces every field with the input's, except
/// `password`: `None` keeps the current one (`""` on create). `groups` is the complete list
/// of group numbers the extension belongs to. Optional text fields store `None` for an
/// empty string (`None` means "not set": inherit the group's / global value).
/// `recording` (also accepted as `record`) overrides `[recording] enabled` for this
/// extension's calls; `None` follows its group / the global setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtensionInput {
    pub number: String,
    pub password: Option<String>,
    pub name: String,
    pub groups: Vec<String>,
    pub supervisor: bool,
    pub worker_id: Option<String>,
    pub department: Option<String>,
    pub uname: Option<String>,
    pub office_hours: Option<String>,
    pub screen_pop_url: Option<String>,
    pub out_channel: Option<String>,
    pub out_display_number: Option<String>,
    pub direct_callback: bool,
    /// Record this extension's answered calls (`Some`), or follow the wider setting (`None`).
    #[serde(alias = "record")]
    pub recording: Option<bool>,
}

impl ExtensionInput {
    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        validate::number("number", &self.number)?;
        if let Some(p) = &self.password {
            validate::password("password", p, 128)?;
        }
        validate::text("name", &self.name, 128)?;
        let mut seen = BTreeSet::new();
        for g in &self.groups {
            if !validate::is_number(g) {
                return Err(Error::invalid(
                    "groups",
                    format!("{g:?} is not a group number (1-32 digits)"),
                ));
            }
            if !seen.insert(g) {
                return Err(Error::invalid("groups", format!("{g:?} is listed twice")));
            }
        }
        validate_optional(
            &self.worker_id,
            &self.department,
            &self.uname,
            &self.office_hours,
            &self.screen_pop_url,
            &self.out_channel,
            &self.out_display_number,
        )
    }

    fn apply(&self, am: &mut extension::ActiveModel) {
        am.number.set_if_not_equals(self.number.clone());
        match &self.password {
            Some(p) => am.password.set_if_not_equals(p.clone()),
            None if am.password.is_not_set() => am.password = Set(String::new()),
            None => {}
        }
        am.name.set_if_not_equals(self.name.clone());
        am.supervisor.set_if_not_equals(self.supervisor);
        am.worker_id.set_if_not_equals(non_empty(&self.worker_id));
        am.department.set_if_not_equals(non_empty(&self.department));
        am.uname.set_if_not_equals(non_empty(&self.uname));
        am.office_hours
            .set_if_not_equals(non_empty(&self.office_hours));
        am.screen_pop_url
            .set_if_not_equals(non_empty(&self.screen_pop_url));
        am.out_channel
            .set_if_not_equals(non_empty(&self.out_channel));
        am.out_display_number
            .set_if_not_equals(non_empty(&self.out_display_number));
        am.direct_callback.set_if_not_equals(self.direct_callback);
        am.recording.set_if_not_equals(self.recording);
    }
}

/// A partial update of an extension: `None` fields are left alone; `Some("")` clears an
/// optional text field. Used by the compat API (interfaces 9, 35, 36, 37) and presence
/// changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtensionPatch {
    pub password: Option<String>,
    pub name: Option<String>,
    pub supervisor: Option<bool>,
    pub worker_id: Option<String>,
    pub department: Option<String>,
    pub uname: Option<String>,
    pub office_hours: Option<String>,
    pub presence: Option<Presence>,
    pub presence_reason: Option<String>,
    pub screen_pop_url: Option<String>,
    pub out_channel: Option<String>,
    pub out_display_number: Option<String>,
    pub direct_callback: Option<bool>,
}

impl ExtensionPatch {
    /// Check every given field.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(p) = &self.password {
            validate::password("password", p, 128)?;
        }
        if let Some(v) = &self.name {
            validate::text("name", v, 128)?;
        }
        if let Some(v) = &self.presence_reason {
            validate::text("presence_reason", v, 255)?;
        }
        validate_optional(
            &self.worker_id,
            &self.department,
            &self.uname,
            &self.office_hours,
            &self.screen_pop_url,
            &self.out_channel,
            &self.out_display_number,
        )
    }
}

/// `None` for an empty string: optional text is stored as NULL, never as `""`.
fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref().filter(|s| !s.is_empty()).cloned()
}

#[allow(clippy::too_many_arguments)]
fn validate_optional(
    worker_id: &Option<String>,
    department: &Option<String>,
    uname: &Option<String>,
    office_hours: &Option<String>,
    screen_pop_url: &Option<String>,
    out_channel: &Option<String>,
    out_display_number: &Option<String>,
) -> Result<(), Error> {
    let texts = [
        ("worker_id", worker_id, 32),
        ("department", department, 128),
        ("uname", uname, 128),
        ("out_channel", out_channel, 64),
    ];
    for (field, value, max) in texts {
        if let Some(v) = value {
            validate::text(field, v, max)?;
        }
    }
    if let Some(v) = office_hours {
        validate::office_hours("office_hours", v)?;
    }
    if let Some(v) = screen_pop_url {
        validate::url("screen_pop_url", v)?;
    }
    if let Some(v) = out_display_number {
        display_number("out_display_number", v)?;
    }
    Ok(())
}

fn display_number(field: &str, value: &str) -> Result<(), Error> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if value.is_empty() || validate::is_number(digits) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{value:?} must be empty or 1-32 digits (optionally after '+')"),
        ))
    }
}

/// All extensions, by number.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<extension::Model>, Error> {
    Ok(extension::Entity::find()
        .order_by_asc(extension::Column::Number)
        .all(db)
        .await?)
}

/// The per-extension recording overrides: extension number → `recording`, for every
/// extension whose `recording` is set. Extensions left out follow their group's override or
/// `[recording] enabled`.
pub async fn recording_overrides<C: ConnectionTrait>(
    db: &C,
) -> Result<HashMap<String, bool>, Error> {
    let rows: Vec<(String, Option<bool>)> = extension::Entity::find()
        .select_only()
        .column(extension::Column::Number)
        .column(extension::Column::Recording)
        .filter(extension::Column::Recording.is_not_null())
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(number, on)| on.map(|on| (number, on)))
        .collect())
}

/// One extension by id.
pub async fn get<C: ConnectionTrait>(db: &C, id: i32) -> Result<Option<extension::Model>, Error> {
    Ok(extension::Entity::find_by_id(id).one(db).await?)
}

/// One extension by number.
pub async fn by_number<C: ConnectionTrait>(
    db: &C,
    number: &str,
) -> Result<Option<extension::Model>, Error> {
    Ok(extension::Entity::find()
        .filter(extension::Column::Number.eq(number))
        .one(db)
        .await?)
}

/// Create an extension and its group memberships. `Conflict` if the number is taken,
/// `Invalid` naming `groups` if a group does not exist.
pub async fn create<C>(db: &C, input: ExtensionInput) -> Result<extension::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    input.validate()?;
    let txn = begin_write(db).await?;
    if by_number(&txn, &input.number).await?.is_some() {
        return Err(taken(&input.number));
    }
    let (model, _) = write_row(&txn, None, &input, now_ms()).await?;
    sync_groups(&txn, model.id, &input.groups).await?;
    txn.commit().await?;
    Ok(model)
}

/// Replace extension `id` with `input` (memberships included). `NotFound` if absent.
pub async fn update<C>(db: &C, id: i32, input: ExtensionInput) -> Result<extension::Model, Error>
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
    let (model, _) = write_row(&txn, Some(existing), &input, now_ms()).await?;
    sync_groups(&txn, model.id, &input.groups).await?;
    txn.commit().await?;
    Ok(model)
}

/// Change some fields of extension `id`. `NotFound` if absent.
pub async fn patch<C>(db: &C, id: i32, patch: ExtensionPatch) -> Result<extension::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    patch.validate()?;
    let txn = begin_write(db).await?;
    let existing = get(&txn, id).await?.ok_or(Error::NotFound)?;
    let mut am = existing.clone().into_active_model();
    macro_rules! put {
        ($($f:ident),*) => {$(
            if let Some(v) = patch.$f.clone() {
                am.$f.set_if_not_equals(v);
            }
        )*};
    }
    macro_rules! put_optional {
        ($($f:ident),*) => {$(
            if patch.$f.is_some() {
                am.$f.set_if_not_equals(non_empty(&patch.$f));
            }
        )*};
    }
    put!(
        password,
        name,
        supervisor,
        presence,
        presence_reason,
        direct_callback
    );
    put_optional!(
        worker_id,
        department,
        uname,
        office_hours,
        screen_pop_url,
        out_channel,
        out_display_number
    );
    let model = if am.is_changed() {
        am.updated_at = Set(now_ms());
        am.update(&txn).await?
    } else {
        existing
    };
    txn.commit().await?;
    Ok(model)
}

/// [`patch`] addressed by number. `NotFound` if there is no such extension.
pub async fn patch_by_number<C>(
    db: &C,
    number: &str,
    patch: ExtensionPatch,
) -> Result<extension::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let existing = by_number(db, number).await?.ok_or(Error::NotFound)?;
    self::patch(db, existing.id, patch).await
}

/// Employee information of interface 35 (`SET_WORKER_ID`): `None` fields are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub worker_id: String,
    /// The employee name (the manual's `department`).
    pub department: Option<String>,
    pub uname: Option<String>,
    /// `H:mm-H:mm` ranges, comma-separated.
    pub office_hours: Option<String>,
}

/// Interface 35: set the work number (and employee name, assistant name, office hours) of
/// extension `number`. `NotFound` if there is no such extension.
pub async fn set_worker_info<C>(db: &C, number: &str, info: WorkerInfo) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let patch = ExtensionPatch {
        worker_id: Some(info.worker_id),
        department: info.department,
        uname: info.uname,
        office_hours: info.office_hours,
        ..Default::default()
    };
    patch_by_number(db, number, patch).await.map(|_| ())
}

/// Interface 36: extension `number` calls out through `channel` showing `display`.
/// `NotFound` if there is no such extension.
pub async fn set_out_call_display<C>(
    db: &C,
    number: &str,
    channel: &str,
    display: &str,
) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let patch = ExtensionPatch {
        out_channel: Some(channel.to_owned()),
        out_display_number: Some(display.to_owned()),
        ..Default::default()
    };
    patch_by_number(db, number, patch).await.map(|_| ())
}

/// Interface 37: turn direct callback on or off for extension `number`.
/// `NotFound` if there is no such extension.
pub async fn set_direct_callback<C>(db: &C, number: &str, on: bool) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let patch = ExtensionPatch {
        direct_callback: Some(on),
        ..Default::default()
    };
    patch_by_number(db, number, patch).await.map(|_| ())
}

/// Interface 9: set (`Some`) or remove (`None`) the screen-pop URL of extension `number`,
/// or of the group with that number when no extension has it. `NotFound` if neither exists.
pub async fn set_screen_pop_url<C>(db: &C, number: &str, url: Option<&str>) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let url = url.unwrap_or_default();
    validate::url("screen_pop_url", url)?;
    let url = Some(url.to_owned()).filter(|u| !u.is_empty());
    if by_number(db, number).await?.is_some() {
        let patch = ExtensionPatch {
            screen_pop_url: Some(url.unwrap_or_default()),
            ..Default::default()
        };
        return patch_by_number(db, number, patch).await.map(|_| ());
    }
    let group = call_group::Entity::find()
        .filter(call_group::Column::Number.eq(number))
        .one(db)
        .await?
        .ok_or(Error::NotFound)?;
    if group.screen_pop_url != url {
        let mut am = group.into_active_model();
        am.screen_pop_url = Set(url);
        am.updated_at = Set(now_ms());
        am.update(db).await?;
    }
    Ok(())
}

/// Delete extension `id` and its memberships. `NotFound` if absent.
pub async fn delete<C>(db: &C, id: i32) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_write(db).await?;
    group_member::Entity::delete_many()
        .filter(group_member::Column::ExtensionId.eq(id))
        .exec(&txn)
        .await?;
    let res = extension::Entity::delete_by_id(id).exec(&txn).await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    txn.commit().await?;
    Ok(())
}

/// Numbers of the groups extension `id` belongs to, sorted.
pub async fn group_numbers<C: ConnectionTrait>(db: &C, id: i32) -> Result<Vec<String>, Error> {
    let groups = group_member::Entity::find()
        .filter(group_member::Column::ExtensionId.eq(id))
        .find_also_related(call_group::Entity)
        .all(db)
        .await?;
    let mut numbers: Vec<String> = groups
        .into_iter()
        .filter_map(|(_, g)| g.map(|g| g.number))
        .collect();
    numbers.sort();
    Ok(numbers)
}

fn taken(number: &str) -> Error {
    Error::conflict("number", format!("extension {number:?} already exists"))
}

/// Insert (existing = None) or update the extension row to match `input`; memberships are
/// not touched. The caller has checked same-table uniqueness.
pub(crate) async fn write_row<C: ConnectionTrait>(
    db: &C,
    existing: Option<extension::Model>,
    input: &ExtensionInput,
    now: i64,
) -> Result<(extension::Model, Change), Error> {
    if existing.as_ref().map(|e| e.number.as_str()) != Some(input.number.as_str()) {
        check_numbering_plan(db, &input.number, Claimant::Extension, "number").await?;
    }
    match existing {
        None => {
            let mut am = extension::ActiveModel {
                presence: Set(Presence::Online),
                presence_reason: Set(String::new()),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            };
            input.apply(&mut am);
            let model = am
                .insert(db)
                .await
                .map_err(|e| Error::from_db_unique(e, "number", &input.number))?;
            Ok((model, Change::Created))
        }
        Some(existing) => {
            let mut am = existing.clone().into_active_model();
            input.apply(&mut am);
            if !am.is_changed() {
                return Ok((existing, Change::Unchanged));
            }
            am.updated_at = Set(now);
            let model = am
                .update(db)
                .await
                .map_err(|e| Error::from_db_unique(e, "number", &input.number))?;
            Ok((model, Change::Updated))
        }
    }
}

/// Upsert by number (provisioning); memberships are not touched.
pub(crate) async fn upsert_row<C: ConnectionTrait>(
    db: &C,
    input: &ExtensionInput,
    now: i64,
) -> Result<(extension::Model, Change), Error> {
    let existing = by_number(db, &input.number).await?;
    write_row(db, existing, input, now).await
}

/// Make extension `ext_id` a member of exactly the groups `numbers` (existing memberships
/// keep their priority, new ones get 0). Returns whether anything changed.
pub(crate) async fn sync_groups<C: ConnectionTrait>(
    db: &C,
    ext_id: i32,
    numbers: &[String],
) -> Result<bool, Error> {
    let mut wanted = BTreeSet::new();
    if !numbers.is_empty() {
        let groups = call_group::Entity::find()
            .filter(call_group::Column::Number.is_in(numbers.iter().cloned()))
            .all(db)
            .await?;
        for n in numbers {
            match groups.iter().find(|g| &g.number == n) {
                Some(g) => {
                    wanted.insert(g.id);
                }
                None => {
                    return Err(Error::invalid(
                        "groups",
                        format!("group {n:?} does not exist"),
                    ))
                }
            }
        }
    }
    let current = group_member::Entity::find()
        .filter(group_member::Column::ExtensionId.eq(ext_id))
        .all(db)
        .await?;
    let mut changed = false;
    for m in &current {
        if !wanted.remove(&m.group_id) {
            group_member::Entity::delete_by_id(m.id).exec(db).await?;
            changed = true;
        }
    }
    for group_id in wanted {
        group_member::ActiveModel {
            group_id: Set(group_id),
            extension_id: Set(ext_id),
            priority: Set(0),
            ..Default::default()
        }
        .insert(db)
        .await?;
        changed = true;
    }
    Ok(changed)
}
