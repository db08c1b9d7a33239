//! The VIP list of interface 39: callers who jump the queue by level. A caller of level N
//! is queued as if it had already waited N × [`WAIT_CREDIT_SECS`] seconds; level 0 is an
//! ordinary caller (interface 40).
//!
//! Adding a number that is already listed replaces its level, description and creation
//! time (an upsert by `telnum`); numbers are matched exactly as stored.

use sea_orm::{
    sea_query::OnConflict, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::db::now_ms;
use crate::repo::blacklist::{validate_telnum, PAGE_MAX};
use crate::vip_list::{self, Column, Entity};
use crate::{validate, Error};

/// Seconds of waiting one VIP level skips.
pub const WAIT_CREDIT_SECS: u64 = 30;

/// Highest VIP level.
pub const LEVEL_MAX: i32 = 100;

/// The waiting a caller of `level` skips, in seconds (`level` × 30).
pub fn wait_credit_secs(level: u32) -> u64 {
    u64::from(level) * WAIT_CREDIT_SECS
}

/// A VIP entry as interface 39 sends it. `viplevel` 0..=100; `createtime`:
/// `yyyy-MM-dd HH:mm:ss` (a `T` is accepted as the separator and stored as a space; blank
/// counts as absent); `des` at most 1024 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VipInput {
    pub telnum: String,
    pub viplevel: i32,
    pub des: String,
    pub createtime: Option<String>,
}

impl VipInput {
    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        validate_telnum("telnum", &self.telnum)?;
        validate::range("viplevel", self.viplevel, 0, LEVEL_MAX)?;
        validate::text("des", &self.des, 1024)?;
        if let Some(t) = self.createtime.as_deref().filter(|t| !t.trim().is_empty()) {
            normalize_createtime(t)?;
        }
        Ok(())
    }
}

/// `yyyy-MM-dd HH:mm:ss` (or with `T`), returned in the manual's form.
fn normalize_createtime(value: &str) -> Result<String, Error> {
    let v = value.trim();
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(v, f).ok())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .ok_or_else(|| {
            Error::invalid(
                "createtime",
                format!("{value:?} is not yyyy-MM-dd HH:mm:ss"),
            )
        })
}

/// Add `input.telnum` to the VIP list, or replace its entry.
pub async fn add<C: ConnectionTrait>(db: &C, input: VipInput) -> Result<(), Error> {
    input.validate()?;
    let createtime = match input.createtime.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(normalize_createtime(t)?),
    };
    let am = vip_list::ActiveModel {
        telnum: Set(input.telnum),
        viplevel: Set(input.viplevel),
        des: Set(input.des),
        createtime: Set(createtime),
        created_at: Set(now_ms()),
        ..Default::default()
    };
    Entity::insert(am)
        .on_conflict(
            OnConflict::column(Column::Telnum)
                .update_columns([Column::Viplevel, Column::Des, Column::Createtime])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Take `telnum` off the VIP list. `Ok(false)` if it was not listed (removal is
/// idempotent).
pub async fn remove<C: ConnectionTrait>(db: &C, telnum: &str) -> Result<bool, Error> {
    validate_telnum("telnum", telnum)?;
    let res = Entity::delete_many()
        .filter(Column::Telnum.eq(telnum))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// The entries in the order they were first added: `max` rows (capped at [`PAGE_MAX`])
/// from the zero-based offset `first` (D-5); `telnum` narrows to that exact number.
pub async fn query<C: ConnectionTrait>(
    db: &C,
    first: u64,
    max: u64,
    telnum: Option<&str>,
) -> Result<Vec<vip_list::Model>, Error> {
    let mut select = Entity::find();
    if let Some(t) = telnum {
        validate_telnum("telnum", t)?;
        select = select.filter(Column::Telnum.eq(t));
    }
    Ok(select
        .order_by_asc(Column::Id)
        .offset(first)
        .limit(max.min(PAGE_MAX))
        .all(db)
        .await?)
}

/// Every entry (for a copy held in memory).
pub async fn all<C: ConnectionTrait>(db: &C) -> Result<Vec<vip_list::Model>, Error> {
    Ok(Entity::find().order_by_asc(Column::Id).all(db).await?)
}

/// The VIP level of `number`: 0 when it is not on the list (or listed with level 0). Any
/// text may be passed.
pub async fn level<C: ConnectionTrait>(db: &C, number: &str) -> Result<u32, Error> {
    if validate_telnum("telnum", number).is_err() {
        return Ok(0);
    }
    let row = Entity::find()
        .filter(Column::Telnum.eq(number))
        .one(db)
        .await?;
    Ok(row.map_or(0, |r| u32::try_from(r.viplevel).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs() {
        let ok = VipInput {
            telnum: "13500000000".into(),
            viplevel: 5,
            des: "vip customer".into(),
            createtime: Some("2018-09-11 15:57:41".into()),
        };
        assert!(ok.validate().is_ok());
        for (bad, field) in [
            (
                VipInput {
                    viplevel: 101,
                    ..ok.clone()
                },
                "viplevel",
            ),
            (
                VipInput {
                    viplevel: -1,
                    ..ok.clone()
                },
                "viplevel",
            ),
            (
                VipInput {
                    telnum: "".into(),
                    ..ok.clone()
                },
                "telnum",
            ),
            (
                VipInput {
                    createtime: Some("2018-09-11".into()),
                    ..ok.clone()
                },
                "createtime",
            ),
            (
                VipInput {
                    des: "x".repeat(1025),
                    ..ok.clone()
                },
                "des",
            ),
        ] {
            assert_eq!(bad.validate().unwrap_err().field(), Some(field));
        }
        assert_eq!(
            normalize_createtime("2018-09-11T15:57:41").unwrap(),
            "2018-09-11 15:57:41"
        );
        assert_eq!(wait_credit_secs(3), 90);
    }
}
