//! Groups (queues): CRUD and members.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::{check_numbering_plan, Change, Claimant};
use crate::call_group::{self, Strategy};
use crate::db::{begin_write, now_ms};
use crate::{extension, group_member, validate, Error};

/// A group as configured (admin API body and `[[groups]]` provisioning entry).
///
/// Only `number` is required; defaults: `strategy = "ring-all"`, `ring_timeout = 20`,
/// `max_wait = 300`, `wrap_up = 0`. `members = None` leaves the membership alone;
/// `Some(list)` makes it exactly `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupInput {
    pub number: String,
    pub name: String,
    /// `ring-all` | `round-robin` | `longest-idle` | `fewest-calls` | `random`.
    pub strategy: String,
    /// Seconds, 1..=600.
    pub ring_timeout: i32,
    /// Seconds, 0..=86400.
    pub max_wait: i32,
    /// Seconds, 0..=3600.
    pub wrap_up: i32,
    /// Overflow target when `max_wait` expires (`group:3005`, …).
    pub overflow: Option<String>,
    /// Record this group's answered calls (`Some`), or follow `[recording] enabled` (`None`);
    /// an extension's own `recording` wins over it. Also accepted as `record`.
    #[serde(alias = "record")]
    pub recording: Option<bool>,
    /// None (or `""`): the global screen-pop URL.
    pub screen_pop_url: Option<String>,
    pub members: Option<Vec<MemberInput>>,
}

impl Default for GroupInput {
    fn default() -> Self {
        GroupInput {
            number: String::new(),
            name: String::new(),
            strategy: Strategy::default().as_str().to_owned(),
            ring_timeout: 20,
            max_wait: 300,
            wrap_up: 0,
            overflow: None,
            recording: None,
            screen_pop_url: None,
            members: None,
        }
    }
}

/// One member of a group: an extension number and its priority (higher first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemberInput {
    pub extension: String,
    pub priority: i32,
}

/// A member of a group, as listed by [`members`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub extension: extension::Model,
    pub priority: i32,
}

impl GroupInput {
    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        validate::number("number", &self.number)?;
        validate::text("name", &self.name, 128)?;
        self.strategy
            .parse::<Strategy>()
            .map_err(|m| Error::invalid("strategy", m))?;
        validate::range("ring_timeout", self.ring_timeout, 1, 600)?;
        validate::range("max_wait", self.max_wait, 0, 86_400)?;
        validate::range("wrap_up", self.wrap_up, 0, 3_600)?;
        if let Some(o) = &self.overflow {
            validate::target("overflow", o)?;
            if *o == format!("group:{}", self.number) {
                return Err(Error::invalid(
                    "overflow",
                    "a group cannot overflow to itself",
                ));
            }
        }
        if let Some(url) = &self.screen_pop_url {
            validate::url("screen_pop_url", url)?;
        }
        if let Some(members) = &self.members {
            let mut seen = BTreeSet::new();
            for (i, m) in members.iter().enumerate() {
                let field = format!("members[{i}].extension");
                validate::number(&field, &m.extension)?;
                if !seen.insert(&m.extension) {
                    return Err(Error::invalid(
                        field,
                        format!("{:?} is listed twice", m.extension),
                    ));
                }
                validate::range(&format!("members[{i}].priority"), m.priority, -1000, 1000)?;
            }
        }
        Ok(())
    }

    fn strategy(&self) -> Strategy {
        self.strategy.parse().unwrap_or_default()
    }

    fn apply(&self, am: &mut call_group::ActiveModel) {
        am.number.set_if_not_equals(self.number.clone());
        am.name.set_if_not_equals(self.name.clone());
        am.strategy.set_if_not_equals(self.strategy());
        am.ring_timeout.set_if_not_equals(self.ring_timeout);
        am.max_wait.set_if_not_equals(self.max_wait);
        am.wrap_up.set_if_not_equals(self.wrap_up);
        am.overflow.set_if_not_equals(self.overflow.clone());
        am.recording.set_if_not_equals(self.recording);
        am.screen_pop_url
            .set_if_not_equals(self.screen_pop_url.clone().filter(|u| !u.is_empty()));
    }
}

/// All groups, by number.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<call_group::Model>, Error> {
    Ok(call_group::Entity::find()
        .order_by_asc(call_group::Column::Number)
        .all(db)
        .await?)
}

/// The per-group recording overrides: group number → `recording`, for every group whose
/// `recording` is set. Groups left out follow `[recording] enabled`.
pub async fn recording_overrides<C: ConnectionTrait>(
    db: &C,
) -> Result<HashMap<String, bool>, Error> {
    let rows: Vec<(String, Option<bool>)> = call_group::Entity::find()
        .select_only()
        .column(call_group::Column::Number)
        .column(call_group::Column::Recording)
        .filter(call_group::Column::Recording.is_not_null())
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(number, on)| on.map(|on| (number, on)))
        .collect())
}

/// One group by id.
pub async fn get<C: ConnectionTrait>(db: &C, id: i32) -> Result<Option<call_group::Model>, Error> {
    Ok(call_group::Entity::find_by_id(id).one(db).await?)
}

/// One group by number.
pub async fn by_number<C: ConnectionTrait>(
    db: &C,
    number: &str,
) -> Result<Option<call_group::Model>, Error> {
    Ok(call_group::Entity::find()
        .filter(call_group::Column::Number.eq(number))
        .one(db)
        .await?)
}

/// Create a group (and its members when given). `Conflict` if the number is taken.
pub async fn create<C>(db: &C, input: GroupInput) -> Result<call_group::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    input.validate()?;
    let txn = begin_write(db).await?;
    if by_number(&txn, &input.number).await?.is_some() {
        return Err(taken(&input.number));
    }
    let (model, _) = write_row(&txn, None, &input, now_ms()).await?;
    if let Some(members) = &input.members {
        sync_members(&txn, model.id, members).await?;
    }
    txn.commit().await?;
    Ok(model)
}

/// Replace group `id` with `input` (members too when given). `NotFound` if absent.
pub async fn update<C>(db: &C, id: i32, input: GroupInput) -> Result<call_group::Model, Error>
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
    if let Some(members) = &input.members {
        sync_members(&txn, model.id, members).await?;
    }
    txn.commit().await?;
    Ok(model)
}

/// Delete group `id` and its memberships. `NotFound` if absent.
pub async fn delete<C>(db: &C, id: i32) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_write(db).await?;
    group_member::Entity::delete_many()
        .filter(group_member::Column::GroupId.eq(id))
        .exec(&txn)
        .await?;
    let res = call_group::Entity::delete_by_id(id).exec(&txn).await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    txn.commit().await?;
    Ok(())
}

/// Members of group `id`, highest priority first, then by extension number.
pub async fn members<C: ConnectionTrait>(db: &C, id: i32) -> Result<Vec<Member>, Error> {
    let rows = group_member::Entity::find()
        .filter(group_member::Column::GroupId.eq(id))
        .find_also_related(extension::Entity)
        .all(db)
        .await?;
    let mut members: Vec<Member> = rows
        .into_iter()
        .filter_map(|(m, e)| {
            e.map(|extension| Member {
                extension,
                priority: m.priority,
            })
        })
        .collect();
    members.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.extension.number.cmp(&b.extension.number))
    });
    Ok(members)
}

fn taken(number: &str) -> Error {
    Error::conflict("number", format!("group {number:?} already exists"))
}

/// Insert (existing = None) or update the group row to match `input`; members are not
/// touched. The caller has checked same-table uniqueness.
pub(crate) async fn write_row<C: ConnectionTrait>(
    db: &C,
    existing: Option<call_group::Model>,
    input: &GroupInput,
    now: i64,
) -> Result<(call_group::Model, Change), Error> {
    if existing.as_ref().map(|e| e.number.as_str()) != Some(input.number.as_str()) {
        check_numbering_plan(db, &input.number, Claimant::Group, "number").await?;
    }
    match existing {
        None => {
            let mut am = call_group::ActiveModel {
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

/// Upsert by number (provisioning); members are not touched.
pub(crate) async fn upsert_row<C: ConnectionTrait>(
    db: &C,
    input: &GroupInput,
    now: i64,
) -> Result<(call_group::Model, Change), Error> {
    let existing = by_number(db, &input.number).await?;
    write_row(db, existing, input, now).await
}

/// Make the members of group `group_id` exactly `members`. Unknown extension →
/// `Invalid` naming `members[i].extension`. Returns whether anything changed.
pub(crate) async fn sync_members<C: ConnectionTrait>(
    db: &C,
    group_id: i32,
    members: &[MemberInput],
) -> Result<bool, Error> {
    let mut wanted: BTreeMap<i32, i32> = BTreeMap::new();
    if !members.is_empty() {
        let exts = extension::Entity::find()
            .filter(extension::Column::Number.is_in(members.iter().map(|m| m.extension.clone())))
            .all(db)
            .await?;
        for (i, m) in members.iter().enumerate() {
            let ext = exts
                .iter()
                .find(|e| e.number == m.extension)
                .ok_or_else(|| {
                    Error::invalid(
                        format!("members[{i}].extension"),
                        format!("extension {:?} does not exist", m.extension),
                    )
                })?;
            wanted.insert(ext.id, m.priority);
        }
    }
    let current = group_member::Entity::find()
        .filter(group_member::Column::GroupId.eq(group_id))
        .all(db)
        .await?;
    let mut changed = false;
    for m in current {
        match wanted.remove(&m.extension_id) {
            None => {
                group_member::Entity::delete_by_id(m.id).exec(db).await?;
                changed = true;
            }
            Some(p) if p != m.priority => {
                let mut am = m.into_active_model();
                am.priority = Set(p);
                am.update(db).await?;
                changed = true;
            }
            Some(_) => {}
        }
    }
    for (extension_id, priority) in wanted {
        group_member::ActiveModel {
            group_id: Set(group_id),
            extension_id: Set(extension_id),
            priority: Set(priority),
            ..Default::default()
        }
        .insert(db)
        .await?;
        changed = true;
    }
    Ok(changed)
}
