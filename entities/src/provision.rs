//! Provisioning: upsert configuration from the start-up TOML file (`[[extensions]]`,
//! `[[groups]]`, `[[trunks]]`, `[[access_numbers]]`, `[[conferences]]`, `[[ivrs]]`).
//!
//! [`apply`] validates everything first (errors name the entry: `extensions[2].number`),
//! then upserts by natural key (number; name for trunks; id for IVR menus) in one
//! transaction. It never deletes rows that are not in the file. Applying the same
//! [`Provisioning`] twice gives the same rows and a report with everything `unchanged`.
//! An IVR definition is parsed and validated like any other field
//! ([`crate::repo::ivrs::definition`]); its error names the node and the problem:
//! `invalid ivrs[0].definition: node "main" (line 12): dangling target: …`.
//!
//! Group membership: an extension's `groups` list is its complete membership, a group's
//! `members` list (when given) its complete membership; when both speak about the same
//! pair the union wins and a group's `priority` applies.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    IntoActiveModel, QueryFilter, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::db::{begin_write, now_ms};
use crate::repo::{access_numbers, conferences, extensions, groups, ivrs, trunks, Change};
pub use crate::repo::{
    AccessNumberInput, ConferenceInput, ExtensionInput, GroupInput, IvrInput, MemberInput,
    TrunkInput,
};
use crate::{group_member, Error};

/// The provisioning sections of the configuration file. Unknown keys inside an entry are
/// rejected (`deny_unknown_fields` on each input); unknown top-level keys are left to the
/// configuration loader, which embeds this struct.
#[derive(Deserialize, Serialize, Default, Debug, Clone, PartialEq, Eq)]
#[serde(default)]
pub struct Provisioning {
    pub extensions: Vec<ExtensionInput>,
    pub groups: Vec<GroupInput>,
    pub trunks: Vec<TrunkInput>,
    pub access_numbers: Vec<AccessNumberInput>,
    pub conferences: Vec<ConferenceInput>,
    pub ivrs: Vec<IvrInput>,
}

/// What [`apply`] did, counted in entries of the file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProvisionReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl ProvisionReport {
    fn count(&mut self, change: Change) {
        match change {
            Change::Created => self.created += 1,
            Change::Updated => self.updated += 1,
            Change::Unchanged => self.unchanged += 1,
        }
    }
}

impl Provisioning {
    /// True when there is nothing to provision.
    pub fn is_empty(&self) -> bool {
        self.extensions.is_empty()
            && self.groups.is_empty()
            && self.trunks.is_empty()
            && self.access_numbers.is_empty()
            && self.conferences.is_empty()
            && self.ivrs.is_empty()
    }

    /// Validate every entry, duplicates, the single default trunk and the shared numbering
    /// plan, without touching the database. Errors name the entry (`groups[1].strategy`).
    pub fn validate(&self) -> Result<(), Error> {
        check_list(
            &self.extensions,
            "extensions",
            "number",
            |e| e.number.clone(),
            ExtensionInput::validate,
        )?;
        check_list(
            &self.groups,
            "groups",
            "number",
            |g| g.number.clone(),
            GroupInput::validate,
        )?;
        check_list(
            &self.trunks,
            "trunks",
            "name",
            |t| t.name.clone(),
            TrunkInput::validate,
        )?;
        check_list(
            &self.access_numbers,
            "access_numbers",
            "number",
            |a| a.number.clone(),
            AccessNumberInput::validate,
        )?;
        check_list(
            &self.conferences,
            "conferences",
            "number",
            |c| c.number.clone(),
            ConferenceInput::validate,
        )?;
        check_list(
            &self.ivrs,
            "ivrs",
            "id",
            |i| i.id.to_string(),
            IvrInput::validate,
        )?;

        let mut default_trunk: Option<usize> = None;
        for (i, t) in self.trunks.iter().enumerate() {
            if t.default {
                if let Some(j) = default_trunk {
                    return Err(Error::invalid(
                        format!("trunks[{i}].default"),
                        format!("only one trunk can be the default (trunks[{j}] is too)"),
                    ));
                }
                default_trunk = Some(i);
            }
        }

        // One numbering plan for extensions, groups, access numbers and conference rooms.
        let mut plan: HashMap<&str, String> = HashMap::new();
        let entries = self
            .extensions
            .iter()
            .enumerate()
            .map(|(i, e)| (e.number.as_str(), format!("extensions[{i}]")))
            .chain(
                self.groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (g.number.as_str(), format!("groups[{i}]"))),
            )
            .chain(
                self.access_numbers
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a.number.as_str(), format!("access_numbers[{i}]"))),
            )
            .chain(
                self.conferences
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.number.as_str(), format!("conferences[{i}]"))),
            );
        for (number, entry) in entries {
            if let Some(other) = plan.get(number) {
                return Err(Error::invalid(
                    format!("{entry}.number"),
                    format!("{number:?} is also used by {other}"),
                ));
            }
            plan.insert(number, entry);
        }
        for (i, t) in self.trunks.iter().enumerate() {
            if let Some(other) = plan.get(t.name.as_str()) {
                if other.starts_with("extensions[") {
                    return Err(Error::invalid(
                        format!("trunks[{i}].name"),
                        format!("{:?} is also the number of {other}", t.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_list<T>(
    list: &[T],
    section: &str,
    key_field: &str,
    key: impl Fn(&T) -> String,
    validate: impl Fn(&T) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in list.iter().enumerate() {
        let entry = format!("{section}[{i}]");
        validate(item).map_err(|e| e.in_entry(&entry))?;
        if let Some(j) = seen.insert(key(item), i) {
            return Err(Error::invalid(
                format!("{entry}.{key_field}"),
                format!("duplicate of {section}[{j}]"),
            ));
        }
    }
    Ok(())
}

/// Validate `p`, then upsert it in one transaction (nothing is written if anything fails).
pub async fn apply<C>(db: &C, p: &Provisioning) -> Result<ProvisionReport, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    p.validate()?;
    let now = now_ms();
    let txn = begin_write(db).await?;
    let mut report = ProvisionReport::default();

    for (i, t) in p.trunks.iter().enumerate() {
        let (_, change) = trunks::upsert_row(&txn, t, now)
            .await
            .map_err(|e| e.in_entry(&format!("trunks[{i}]")))?;
        report.count(change);
    }
    for (i, m) in p.ivrs.iter().enumerate() {
        let (_, change) = ivrs::upsert_row(&txn, m, now)
            .await
            .map_err(|e| e.in_entry(&format!("ivrs[{i}]")))?;
        report.count(change);
    }
    for (i, c) in p.conferences.iter().enumerate() {
        let (_, change) = conferences::upsert_row(&txn, c)
            .await
            .map_err(|e| e.in_entry(&format!("conferences[{i}]")))?;
        report.count(change);
    }

    // Groups before extensions (extensions name their groups), members last.
    let mut group_ids = Vec::with_capacity(p.groups.len());
    let mut group_changes = Vec::with_capacity(p.groups.len());
    for (i, g) in p.groups.iter().enumerate() {
        let (model, change) = groups::upsert_row(&txn, g, now)
            .await
            .map_err(|e| e.in_entry(&format!("groups[{i}]")))?;
        group_ids.push(model.id);
        group_changes.push(change);
    }
    let mut ext_ids = Vec::with_capacity(p.extensions.len());
    let mut ext_changes = Vec::with_capacity(p.extensions.len());
    for (i, e) in p.extensions.iter().enumerate() {
        let (model, change) = extensions::upsert_row(&txn, e, now)
            .await
            .map_err(|err| err.in_entry(&format!("extensions[{i}]")))?;
        ext_ids.push(model.id);
        ext_changes.push(change);
    }
    sync_memberships(
        &txn,
        p,
        &group_ids,
        &ext_ids,
        &mut group_changes,
        &mut ext_changes,
    )
    .await?;
    for change in group_changes.into_iter().chain(ext_changes) {
        report.count(change);
    }

    for (i, a) in p.access_numbers.iter().enumerate() {
        let (_, change) = access_numbers::upsert_row(&txn, a)
            .await
            .map_err(|e| e.in_entry(&format!("access_numbers[{i}]")))?;
        report.count(change);
    }

    txn.commit().await?;
    Ok(report)
}

/// Bring `group_member` in line with the file (see the module doc). A changed pair marks
/// its extension entry updated, or its group entry if the extension is not in the file.
async fn sync_memberships<C: ConnectionTrait>(
    db: &C,
    p: &Provisioning,
    group_ids: &[i32],
    ext_ids: &[i32],
    group_changes: &mut [Change],
    ext_changes: &mut [Change],
) -> Result<(), Error> {
    let mut desired: BTreeMap<(i32, i32), Option<i32>> = BTreeMap::new();
    for (i, e) in p.extensions.iter().enumerate() {
        for g in &e.groups {
            let gid = match p.groups.iter().position(|pg| &pg.number == g) {
                Some(j) => group_ids[j],
                None => {
                    groups::by_number(db, g)
                        .await?
                        .ok_or_else(|| {
                            Error::invalid(
                                format!("extensions[{i}].groups"),
                                format!("group {g:?} does not exist"),
                            )
                        })?
                        .id
                }
            };
            desired.entry((gid, ext_ids[i])).or_insert(None);
        }
    }
    let mut full_groups = BTreeSet::new();
    for (i, g) in p.groups.iter().enumerate() {
        let Some(members) = &g.members else { continue };
        full_groups.insert(group_ids[i]);
        for (k, m) in members.iter().enumerate() {
            let eid = match p.extensions.iter().position(|pe| pe.number == m.extension) {
                Some(j) => ext_ids[j],
                None => {
                    extensions::by_number(db, &m.extension)
                        .await?
                        .ok_or_else(|| {
                            Error::invalid(
                                format!("groups[{i}].members[{k}].extension"),
                                format!("extension {:?} does not exist", m.extension),
                            )
                        })?
                        .id
                }
            };
            desired.insert((group_ids[i], eid), Some(m.priority));
        }
    }
    if ext_ids.is_empty() && full_groups.is_empty() {
        return Ok(());
    }

    let mut scope = Condition::any();
    if !ext_ids.is_empty() {
        scope = scope.add(group_member::Column::ExtensionId.is_in(ext_ids.iter().copied()));
    }
    if !full_groups.is_empty() {
        scope = scope.add(group_member::Column::GroupId.is_in(full_groups.iter().copied()));
    }
    let current = group_member::Entity::find().filter(scope).all(db).await?;

    let mut touched: Vec<(i32, i32)> = Vec::new();
    for m in current {
        let key = (m.group_id, m.extension_id);
        match desired.remove(&key) {
            None => {
                group_member::Entity::delete_by_id(m.id).exec(db).await?;
                touched.push(key);
            }
            Some(Some(priority)) if priority != m.priority => {
                let mut am = m.into_active_model();
                am.priority = Set(priority);
                am.update(db).await?;
                touched.push(key);
            }
            Some(_) => {}
        }
    }
    for ((group_id, extension_id), priority) in desired {
        group_member::ActiveModel {
            group_id: Set(group_id),
            extension_id: Set(extension_id),
            priority: Set(priority.unwrap_or(0)),
            ..Default::default()
        }
        .insert(db)
        .await?;
        touched.push((group_id, extension_id));
    }

    let bump = |c: &mut Change| {
        if *c == Change::Unchanged {
            *c = Change::Updated;
        }
    };
    for (group_id, extension_id) in touched {
        if let Some(i) = ext_ids.iter().position(|&id| id == extension_id) {
            bump(&mut ext_changes[i]);
        } else if let Some(j) = group_ids.iter().position(|&id| id == group_id) {
            bump(&mut group_changes[j]);
        }
    }
    Ok(())
}
