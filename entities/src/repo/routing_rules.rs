//! Intelligent routing rules (interface 61): CRUD for the admin API, and
//! [`enabled_for`], the rules the call routing reads for a called number. Which rule applies
//! at a given time and what it does are pure functions of the rows:
//! [`routing_rule::active_rule`] and [`routing_rule::Model::action`] (formats and semantics
//! in [`crate::routing_rule`]).
//!
//! The manual's SOAP service (`IntelligentRoutingServiceImpl?wsdl`: `addIntelligentRoutingRule`,
//! `deleteIntelligentRoutingRule`, `getAllIntelligentRouting`, `updateIntelligentRoutingRule`)
//! calls these functions (`web/src/soap/routing.rs`), as the admin REST API does.
//!
//! Rules are not unique per number or time: several may overlap, and
//! [`routing_rule::active_rule`] decides. The number is not required to exist as an
//! extension or access number.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::db::{begin_write, now_ms};
use crate::routing_rule::{self, Column, Entity, RuleAction, Schedule};
use crate::{validate, Error};

/// A rule as the admin API (and the manual's `IntelligentRoutingRule`, without `id`)
/// sends it. Every field but `offon` is text; `offon` defaults to `true` (enabled).
/// Blanks around values are dropped and the schedule is stored in canonical form
/// (`9:00:00` → `09:00:00`, `01` → `1`, a `T` separator → a space); `subbegintime` and
/// `subendtime` are stored empty unless `datetype` is `WEEK_TYPE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingRuleInput {
    pub telnum: String,
    pub offon: bool,
    pub operationtype: String,
    pub parameters: String,
    pub datetype: String,
    pub begintime: String,
    pub endtime: String,
    pub subbegintime: String,
    pub subendtime: String,
}

/// A stored rule as input: the base a partial update (SOAP `updateIntelligentRoutingRule`)
/// changes.
impl From<routing_rule::Model> for RoutingRuleInput {
    fn from(m: routing_rule::Model) -> Self {
        RoutingRuleInput {
            telnum: m.telnum,
            offon: m.offon,
            operationtype: m.operationtype,
            parameters: m.parameters,
            datetype: m.datetype,
            begintime: m.begintime,
            endtime: m.endtime,
            subbegintime: m.subbegintime,
            subendtime: m.subendtime,
        }
    }
}

impl Default for RoutingRuleInput {
    fn default() -> Self {
        RoutingRuleInput {
            telnum: String::new(),
            offon: true,
            operationtype: String::new(),
            parameters: String::new(),
            datetype: String::new(),
            begintime: String::new(),
            endtime: String::new(),
            subbegintime: String::new(),
            subendtime: String::new(),
        }
    }
}

impl RoutingRuleInput {
    /// Check every field; the error names the first bad one, in the order `telnum`,
    /// `operationtype`, `parameters`, `datetype`, `begintime`, `endtime`, `subbegintime`,
    /// `subendtime`.
    pub fn validate(&self) -> Result<(), Error> {
        self.normalized().map(|_| ())
    }

    /// The input validated and in the form it is stored in.
    pub fn normalized(&self) -> Result<RoutingRuleInput, Error> {
        let telnum = self.telnum.trim();
        validate::number("telnum", telnum)?;
        let action = RuleAction::parse(&self.operationtype, &self.parameters)?;
        let schedule = Schedule::parse(
            &self.datetype,
            &self.begintime,
            &self.endtime,
            &self.subbegintime,
            &self.subendtime,
        )?;
        let (begintime, endtime, subbegintime, subendtime) = schedule.to_fields();
        Ok(RoutingRuleInput {
            telnum: telnum.to_owned(),
            offon: self.offon,
            operationtype: action.operation_type().as_str().to_owned(),
            parameters: self.parameters.trim().to_owned(),
            datetype: schedule.date_type().as_str().to_owned(),
            begintime,
            endtime,
            subbegintime,
            subendtime,
        })
    }
}

/// All rules, by id (the manual's `getAllIntelligentRouting`).
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<routing_rule::Model>, Error> {
    Ok(Entity::find().order_by_asc(Column::Id).all(db).await?)
}

/// One rule by id.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    id: i32,
) -> Result<Option<routing_rule::Model>, Error> {
    Ok(Entity::find_by_id(id).one(db).await?)
}

/// Add a rule; the stored row (with its `id`) is returned.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    input: RoutingRuleInput,
) -> Result<routing_rule::Model, Error> {
    let input = input.normalized()?;
    let now = now_ms();
    let mut am = <routing_rule::ActiveModel as Default>::default();
    assign(&mut am, input);
    am.created_at = Set(now);
    am.updated_at = Set(now);
    Ok(am.insert(db).await?)
}

/// Replace rule `id` with `input`. `NotFound` if absent.
pub async fn update<C>(
    db: &C,
    id: i32,
    input: RoutingRuleInput,
) -> Result<routing_rule::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let input = input.normalized()?;
    let txn = begin_write(db).await?;
    let existing = get(&txn, id).await?.ok_or(Error::NotFound)?;
    let mut am = existing.clone().into_active_model();
    assign(&mut am, input);
    if !am.is_changed() {
        txn.commit().await?;
        return Ok(existing);
    }
    am.updated_at = Set(now_ms());
    let model = am.update(&txn).await?;
    txn.commit().await?;
    Ok(model)
}

/// Delete rule `id`. `NotFound` if absent.
pub async fn delete<C: ConnectionTrait>(db: &C, id: i32) -> Result<(), Error> {
    let res = Entity::delete_by_id(id).exec(db).await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// The enabled (`offon`) rules of the called number `telnum`, by id: what the call routing
/// passes to [`routing_rule::active_rule`]. Any text may be passed; one that is not a valid
/// number has no rules.
pub async fn enabled_for<C: ConnectionTrait>(
    db: &C,
    telnum: &str,
) -> Result<Vec<routing_rule::Model>, Error> {
    if !validate::is_number(telnum) {
        return Ok(Vec::new());
    }
    Ok(Entity::find()
        .filter(Column::Telnum.eq(telnum))
        .filter(Column::Offon.eq(true))
        .order_by_asc(Column::Id)
        .all(db)
        .await?)
}

fn assign(am: &mut routing_rule::ActiveModel, input: RoutingRuleInput) {
    am.telnum.set_if_not_equals(input.telnum);
    am.offon.set_if_not_equals(input.offon);
    am.operationtype.set_if_not_equals(input.operationtype);
    am.parameters.set_if_not_equals(input.parameters);
    am.datetype.set_if_not_equals(input.datetype);
    am.begintime.set_if_not_equals(input.begintime);
    am.endtime.set_if_not_equals(input.endtime);
    am.subbegintime.set_if_not_equals(input.subbegintime);
    am.subendtime.set_if_not_equals(input.subendtime);
}
