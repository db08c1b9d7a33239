//! The blacklist of interface 38: numbers that may neither call in nor be called, and the
//! soft parameter `blacklist.forbit.duration` that makes entries expire.
//!
//! - Adding a number that is already listed refreshes its add time (spec D-36): the
//!   duration counts from the latest add.
//! - With `blacklist.forbit.duration = h` (whole hours, `h > 0`) an entry blocks while it is
//!   younger than `h` hours and is then treated as absent by [`is_listed`] and [`query`]; the
//!   row itself stays until [`remove`], a re-add (which blocks again) or [`purge_expired`].
//!   Absent, empty, `0` or not a whole number: entries never expire. Because expiry is
//!   decided at read time, switching the parameter off makes old entries block again.
//! - Numbers are matched exactly as stored (no normalisation of `+`/country prefixes).

use sea_orm::{
    sea_query::OnConflict, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use crate::blacklist::{self, Column, Entity};
use crate::db::now_ms;
use crate::repo::settings;
use crate::Error;

/// The soft parameter (spelled as the manual spells it) holding the expiry in hours.
pub const FORBID_DURATION_KEY: &str = "blacklist.forbit.duration";

/// Longest number on the blacklist and the VIP list.
pub const TELNUM_MAX: usize = 32;

/// Most rows one query returns (spec D-5); larger `max` values are capped to it.
pub const PAGE_MAX: u64 = 1000;

const HOUR_MS: i64 = 3_600_000;

/// `value` must be 1-32 characters of digits, `+`, `*` and `#`.
pub fn validate_telnum(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if value.len() > TELNUM_MAX {
        return Err(Error::invalid(
            field,
            format!("is longer than {TELNUM_MAX} characters"),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'*' | b'#'))
    {
        return Err(Error::invalid(
            field,
            format!("{value:?} may only hold digits, '+', '*' and '#'"),
        ));
    }
    Ok(())
}

/// Put `telnum` on the blacklist now (or refresh its add time).
pub async fn add<C: ConnectionTrait>(db: &C, telnum: &str) -> Result<(), Error> {
    add_at(db, telnum, now_ms()).await
}

/// [`add`] with an explicit add time (epoch ms).
pub async fn add_at<C: ConnectionTrait>(db: &C, telnum: &str, at_ms: i64) -> Result<(), Error> {
    validate_telnum("telnum", telnum)?;
    let am = blacklist::ActiveModel {
        telnum: Set(telnum.to_owned()),
        created_at: Set(at_ms),
        ..Default::default()
    };
    Entity::insert(am)
        .on_conflict(
            OnConflict::column(Column::Telnum)
                .update_column(Column::CreatedAt)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Take `telnum` off the blacklist. `Ok(false)` if it was not listed (not an error: removal
/// is idempotent).
pub async fn remove<C: ConnectionTrait>(db: &C, telnum: &str) -> Result<bool, Error> {
    validate_telnum("telnum", telnum)?;
    let res = Entity::delete_many()
        .filter(Column::Telnum.eq(telnum))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// The entries in force now (expiry read from the setting), in the order they were first
/// added: `max` rows (capped at [`PAGE_MAX`]) from the zero-based offset `first` (D-5);
/// `telnum` narrows to that exact number.
pub async fn query<C: ConnectionTrait>(
    db: &C,
    first: u64,
    max: u64,
    telnum: Option<&str>,
) -> Result<Vec<blacklist::Model>, Error> {
    let hours = forbid_hours(db).await?;
    query_at(db, first, max, telnum, now_ms(), hours).await
}

/// [`query`] at time `now_ms` with expiry `forbid_hours`.
pub async fn query_at<C: ConnectionTrait>(
    db: &C,
    first: u64,
    max: u64,
    telnum: Option<&str>,
    now_ms: i64,
    forbid_hours: Option<u32>,
) -> Result<Vec<blacklist::Model>, Error> {
    let mut select = Entity::find();
    if let Some(t) = telnum {
        validate_telnum("telnum", t)?;
        select = select.filter(Column::Telnum.eq(t));
    }
    if let Some(cutoff) = cutoff(now_ms, forbid_hours) {
        select = select.filter(Column::CreatedAt.gt(cutoff));
    }
    Ok(select
        .order_by_asc(Column::Id)
        .offset(first)
        .limit(max.min(PAGE_MAX))
        .all(db)
        .await?)
}

/// Whether `number` is blocked at `now_ms` (epoch ms) given the expiry `forbid_hours`
/// (`None` or `Some(0)`: entries never expire; `Some(h)`: an entry added `h` hours or more
/// before `now_ms` no longer blocks). Any text may be passed; one that is not a valid
/// number is simply not listed.
pub async fn is_listed<C: ConnectionTrait>(
    db: &C,
    number: &str,
    now_ms: i64,
    forbid_hours: Option<u32>,
) -> Result<bool, Error> {
    if validate_telnum("telnum", number).is_err() {
        return Ok(false);
    }
    let row = Entity::find()
        .filter(Column::Telnum.eq(number))
        .one(db)
        .await?;
    Ok(row.is_some_and(|r| blocks(r.created_at, now_ms, forbid_hours)))
}

/// Whether an entry added at `created_at_ms` still blocks at `now_ms` under the expiry
/// `forbid_hours` (the rule [`is_listed`] applies, for copies of the list held in memory).
pub fn blocks(created_at_ms: i64, now_ms: i64, forbid_hours: Option<u32>) -> bool {
    cutoff(now_ms, forbid_hours).is_none_or(|cutoff| created_at_ms > cutoff)
}

/// Every entry, expired or not (for a copy held in memory; expiry is applied at read time
/// with [`blocks`]).
pub async fn all<C: ConnectionTrait>(db: &C) -> Result<Vec<blacklist::Model>, Error> {
    Ok(Entity::find().order_by_asc(Column::Id).all(db).await?)
}

/// [`is_listed`] now, with the expiry read from the setting.
pub async fn is_listed_now<C: ConnectionTrait>(db: &C, number: &str) -> Result<bool, Error> {
    let hours = forbid_hours(db).await?;
    is_listed(db, number, now_ms(), hours).await
}

/// `blacklist.forbit.duration` in hours: `None` when absent, empty, `0` or not a whole
/// number of hours (entries never expire).
pub async fn forbid_hours<C: ConnectionTrait>(db: &C) -> Result<Option<u32>, Error> {
    Ok(settings::get(db, FORBID_DURATION_KEY)
        .await?
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|h| *h > 0))
}

/// Set `blacklist.forbit.duration` to `hours`; `None` or `Some(0)` removes the setting.
pub async fn set_forbid_hours<C: ConnectionTrait>(db: &C, hours: Option<u32>) -> Result<(), Error> {
    match hours.filter(|h| *h > 0) {
        Some(h) => settings::set(db, FORBID_DURATION_KEY, &h.to_string()).await,
        None => match settings::delete(db, FORBID_DURATION_KEY).await {
            Ok(()) | Err(Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// Delete the entries that have expired at `now_ms` under `forbid_hours` (none when it is
/// `None`/`Some(0)`); returns how many. Housekeeping only: reads already ignore them.
pub async fn purge_expired<C: ConnectionTrait>(
    db: &C,
    now_ms: i64,
    forbid_hours: Option<u32>,
) -> Result<u64, Error> {
    let Some(cutoff) = cutoff(now_ms, forbid_hours) else {
        return Ok(0);
    };
    let res = Entity::delete_many()
        .filter(Column::CreatedAt.lte(cutoff))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Entries added at or before this instant have expired.
fn cutoff(now_ms: i64, forbid_hours: Option<u32>) -> Option<i64> {
    forbid_hours
        .filter(|h| *h > 0)
        .map(|h| now_ms.saturating_sub(i64::from(h) * HOUR_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telnums() {
        for ok in ["135", "+8613800000000", "*67#", "1".repeat(32).as_str()] {
            assert!(validate_telnum("telnum", ok).is_ok(), "{ok}");
        }
        for bad in ["", "12a", "1 2", "1-2", "1".repeat(33).as_str(), "１２"] {
            let err = validate_telnum("telnum", bad).expect_err(bad);
            assert_eq!(err.field(), Some("telnum"));
        }
    }

    #[test]
    fn cutoffs() {
        assert_eq!(cutoff(10 * HOUR_MS, None), None);
        assert_eq!(cutoff(10 * HOUR_MS, Some(0)), None);
        assert_eq!(cutoff(10 * HOUR_MS, Some(2)), Some(8 * HOUR_MS));
        assert_eq!(cutoff(i64::MIN, Some(1)), Some(i64::MIN));
    }
}
