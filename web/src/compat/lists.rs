//! Interfaces 38 (blacklist) and 39 (VIP list) on `/bridge/jsoncfg`; the argument is the
//! `json` parameter (query string or form body), a bare number or URL-encoded JSON.
//!
//! | `opt` | `json` | answer |
//! |---|---|---|
//! | `BLACK_LIST_ADD` | the number | `200` |
//! | `BLACK_LIST_RMV` | the number | `200` |
//! | `BLACK_LIST_QUERY` | `{"first":0,"maxResults":10,"telnum":"…"}` | JSON array of numbers |
//! | `VIP_LIST_ADD` | `{"telnum":…,"viplevel":5,"des":…,"createtime":"yyyy-MM-dd HH:mm:ss"}` | `200` |
//! | `VIP_LIST_RMV` | the number | `200` |
//! | `VIP_LIST_QUERY` | as `BLACK_LIST_QUERY` | JSON array of VIP objects |
//!
//! A missing, blank or malformed `json`, a bad number (1-32 of digits, `+`, `*`, `#`) or a
//! bad field answers `400`; a database failure `500`. JSON answers are
//! `application/json;charset=UTF-8`.
//!
//! Decisions where the manual is silent (spec D-5, D-36):
//! - A number may also arrive as a JSON string (`json="135…"`); the quotes are dropped.
//! - Adding a listed number answers `200` (the blacklist refreshes its add time, from which
//!   `blacklist.forbit.duration` counts; the VIP list replaces the entry). Removing a number
//!   that is not listed answers `200` too: removal is idempotent.
//! - Queries: `first` is a zero-based row offset (default 0), `maxResults` defaults to 100
//!   and is capped at 1000; both may be JSON numbers or numeric strings. `telnum` is an
//!   exact match; absent, `null` or empty lists everything. Rows come in the order they
//!   were first added. The manual prints the condition as
//!   `{"first":0,"maxResults":10,telnum":"132…"}` (a quote missing before `telnum`): that
//!   form is accepted too — only when the text is not valid JSON, and only by inserting the
//!   missing quote before a bare `telnum"` key.
//! - The blacklist query leaves out entries that have expired under
//!   `blacklist.forbit.duration`.
//! - `VIP_LIST_QUERY` (the manual only says "VIP customer JSON string") answers an array of
//!   `{"telnum":"…","viplevel":5,"des":"…","createtime":"yyyy-MM-dd HH:mm:ss"}`, the
//!   names of the add operation: `viplevel` a number, `des` `""` when none was given,
//!   `createtime` the one given at the add, or else the time the switch first stored the
//!   entry (local time, D-4) — always a string.
//! - `viplevel` is required, an integer 0..=100, as a JSON number or a numeric string;
//!   `des` and `createtime` are optional (`null` = absent).

use actix_web::HttpResponse;
use actors::routing_lists::ListChange;
use entities::repo::{blacklist, vip, VipInput};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{code, repo_error, Params};
use crate::AppState;

/// `maxResults` when the query does not give one (D-5).
const DEFAULT_MAX_RESULTS: u64 = 100;

/// Interface 38.a, `BLACK_LIST_ADD`: `json` = the number.
pub async fn black_list_add(state: &AppState, params: &Params) -> HttpResponse {
    let Some(number) = bare_number(params) else {
        return code(400);
    };
    match blacklist::add(&state.db, &number).await {
        Ok(()) => {
            let at_ms = entities::db::now_ms();
            state
                .list_changed(ListChange::BlacklistAdded {
                    telnum: number,
                    at_ms,
                })
                .await;
            code(200)
        }
        Err(e) => repo_error("BLACK_LIST_ADD", e),
    }
}

/// Interface 38.b, `BLACK_LIST_RMV`: `json` = the number. `200` also when the number was
/// not listed (idempotent).
pub async fn black_list_rmv(state: &AppState, params: &Params) -> HttpResponse {
    let Some(number) = bare_number(params) else {
        return code(400);
    };
    match blacklist::remove(&state.db, &number).await {
        Ok(_) => {
            state
                .list_changed(ListChange::BlacklistRemoved { telnum: number })
                .await;
            code(200)
        }
        Err(e) => repo_error("BLACK_LIST_RMV", e),
    }
}

/// Interface 38.c, `BLACK_LIST_QUERY`: the numbers in force, e.g.
/// `["13255555555","13566666666"]`.
pub async fn black_list_query(state: &AppState, params: &Params) -> HttpResponse {
    let Some(q) = query_condition(params) else {
        return code(400);
    };
    match blacklist::query(&state.db, q.first, q.max, q.telnum.as_deref()).await {
        Ok(rows) => json(&rows.into_iter().map(|r| r.telnum).collect::<Vec<_>>()),
        Err(e) => repo_error("BLACK_LIST_QUERY", e),
    }
}

/// Interface 39.a, `VIP_LIST_ADD`: `json` = `{"telnum","viplevel","des","createtime"}`.
pub async fn vip_list_add(state: &AppState, params: &Params) -> HttpResponse {
    let Some(input) = json_object(params).and_then(|o| vip_input(&o)) else {
        return code(400);
    };
    let change = ListChange::VipSet {
        telnum: input.telnum.clone(),
        level: u32::try_from(input.viplevel).unwrap_or(0),
    };
    match vip::add(&state.db, input).await {
        Ok(()) => {
            state.list_changed(change).await;
            code(200)
        }
        Err(e) => repo_error("VIP_LIST_ADD", e),
    }
}

/// Interface 39.b, `VIP_LIST_RMV`: `json` = the number. `200` also when the number was not
/// listed (idempotent).
pub async fn vip_list_rmv(state: &AppState, params: &Params) -> HttpResponse {
    let Some(number) = bare_number(params) else {
        return code(400);
    };
    match vip::remove(&state.db, &number).await {
        Ok(_) => {
            state
                .list_changed(ListChange::VipRemoved { telnum: number })
                .await;
            code(200)
        }
        Err(e) => repo_error("VIP_LIST_RMV", e),
    }
}

/// One entry of the `VIP_LIST_QUERY` answer.
#[derive(Debug, Serialize)]
struct VipEntry {
    telnum: String,
    viplevel: i32,
    des: String,
    createtime: String,
}

/// Interface 39.c, `VIP_LIST_QUERY`: an array of [`VipEntry`].
pub async fn vip_list_query(state: &AppState, params: &Params) -> HttpResponse {
    let Some(q) = query_condition(params) else {
        return code(400);
    };
    match vip::query(&state.db, q.first, q.max, q.telnum.as_deref()).await {
        Ok(rows) => json(
            &rows
                .into_iter()
                .map(|r| VipEntry {
                    createtime: r.createtime.unwrap_or_else(|| local_time(r.created_at)),
                    telnum: r.telnum,
                    viplevel: r.viplevel,
                    des: r.des,
                })
                .collect::<Vec<_>>(),
        ),
        Err(e) => repo_error("VIP_LIST_QUERY", e),
    }
}

fn json<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json;charset=UTF-8")
        .json(value)
}

/// Epoch ms as `yyyy-MM-dd HH:mm:ss` in the switch's local time.
fn local_time(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `json` as a bare number, or a JSON string holding one (the repository validates it).
fn bare_number(params: &Params) -> Option<String> {
    let raw = params.required("json")?;
    let number = if raw.starts_with('"') {
        match serde_json::from_str::<Value>(raw).ok()? {
            Value::String(s) => s.trim().to_owned(),
            _ => return None,
        }
    } else {
        raw.to_owned()
    };
    (!number.is_empty()).then_some(number)
}

/// `json` as a JSON object; the manual's misprinted query form is repaired (module doc).
fn json_object(params: &Params) -> Option<Map<String, Value>> {
    let raw = params.required("json")?;
    let parsed = serde_json::from_str::<Value>(raw)
        .ok()
        .or_else(|| serde_json::from_str::<Value>(&repair_telnum_quote(raw)?).ok())?;
    match parsed {
        Value::Object(o) => Some(o),
        _ => None,
    }
}

/// `…,telnum":…` → `…,"telnum":…` (and the same right after `{`), the quote the manual's
/// printed example lacks. `None` when there is nothing to repair.
fn repair_telnum_quote(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len() + 1);
    let mut rest = raw;
    let mut repaired = false;
    while let Some(at) = rest.find("telnum\"") {
        let before = rest[..at].trim_end();
        let prev = before
            .chars()
            .last()
            .or_else(|| out.trim_end().chars().last());
        out.push_str(&rest[..at]);
        if matches!(prev, Some(',') | Some('{')) {
            out.push('"');
            repaired = true;
        }
        out.push_str("telnum\"");
        rest = &rest[at + "telnum\"".len()..];
    }
    out.push_str(rest);
    repaired.then_some(out)
}

/// The paging condition of 38.c and 39.c.
#[derive(Debug, PartialEq, Eq)]
struct QueryCondition {
    first: u64,
    max: u64,
    telnum: Option<String>,
}

fn query_condition(params: &Params) -> Option<QueryCondition> {
    let o = json_object(params)?;
    Some(QueryCondition {
        first: optional_int(&o, "first")?
            .map(u64::try_from)
            .transpose()
            .ok()?
            .unwrap_or(0),
        max: optional_int(&o, "maxResults")?
            .map(u64::try_from)
            .transpose()
            .ok()?
            .unwrap_or(DEFAULT_MAX_RESULTS),
        telnum: optional_number_text(&o, "telnum")?,
    })
}

fn vip_input(o: &Map<String, Value>) -> Option<VipInput> {
    Some(VipInput {
        telnum: optional_number_text(o, "telnum")??,
        viplevel: i32::try_from(optional_int(o, "viplevel")??).ok()?,
        des: optional_text(o, "des")?.unwrap_or_default(),
        createtime: optional_text(o, "createtime")?.filter(|t| !t.trim().is_empty()),
    })
}

/// An integer given as a JSON number or a numeric string: `Some(None)` when absent or
/// `null`, `None` when it is something else.
fn optional_int(o: &Map<String, Value>, name: &str) -> Option<Option<i64>> {
    match o.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => n.as_i64().map(Some),
        Some(Value::String(s)) => s.trim().parse().ok().map(Some),
        Some(_) => None,
    }
}

/// Text: `Some(None)` when absent or `null`, `None` when not a string.
fn optional_text(o: &Map<String, Value>, name: &str) -> Option<Option<String>> {
    match o.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    }
}

/// A phone number as a string (trimmed; blank = absent) or a non-negative JSON integer.
fn optional_number_text(o: &Map<String, Value>, name: &str) -> Option<Option<String>> {
    match o.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            Some((!s.is_empty()).then(|| s.to_owned()))
        }
        Some(Value::Number(n)) => n.as_u64().map(|n| Some(n.to_string())),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        Params(vec![("json".into(), json.into())])
    }

    #[test]
    fn the_manuals_misprinted_condition_is_repaired() {
        assert_eq!(
            repair_telnum_quote(r#"{"first":0,"maxResults":10,telnum":"132XXXXXXXX"}"#).as_deref(),
            Some(r#"{"first":0,"maxResults":10,"telnum":"132XXXXXXXX"}"#)
        );
        assert_eq!(
            repair_telnum_quote(r#"{ telnum":"1"}"#).as_deref(),
            Some(r#"{ "telnum":"1"}"#)
        );
        // Nothing to repair in valid JSON or elsewhere.
        assert_eq!(repair_telnum_quote(r#"{"telnum":"1"}"#), None);
        assert_eq!(repair_telnum_quote(r#"{"x":"atelnum":"1"}"#), None);
        let q = query_condition(&params(
            r#"{"first":0,"maxResults":10,telnum":"13200000000"}"#,
        ))
        .unwrap();
        assert_eq!(
            q,
            QueryCondition {
                first: 0,
                max: 10,
                telnum: Some("13200000000".into())
            }
        );
        // A broken text that the repair does not fix stays an error.
        assert!(query_condition(&params(r#"{"first":0,telnum":"1""#)).is_none());
    }

    #[test]
    fn conditions() {
        assert_eq!(
            query_condition(&params("{}")).unwrap(),
            QueryCondition {
                first: 0,
                max: DEFAULT_MAX_RESULTS,
                telnum: None
            }
        );
        assert_eq!(
            query_condition(&params(r#"{"first":"20","maxResults":"5","telnum":""}"#)).unwrap(),
            QueryCondition {
                first: 20,
                max: 5,
                telnum: None
            }
        );
        for bad in [
            r#"{"first":-1}"#,
            r#"{"maxResults":-1}"#,
            r#"{"first":1.5}"#,
            r#"{"first":"x"}"#,
            r#"{"telnum":true}"#,
            "[]",
            "135",
            "not json",
        ] {
            assert!(query_condition(&params(bad)).is_none(), "{bad}");
        }
    }

    #[test]
    fn vip_inputs() {
        let o = |s: &str| serde_json::from_str::<Map<String, Value>>(s).unwrap();
        let input = vip_input(&o(
            r#"{"telnum":"135","viplevel":"5","des":"vip customer","createtime":"2018-09-11 15:57:41"}"#,
        ))
        .unwrap();
        assert_eq!(input.telnum, "135");
        assert_eq!(input.viplevel, 5);
        assert_eq!(input.createtime.as_deref(), Some("2018-09-11 15:57:41"));
        let bare = vip_input(&o(r#"{"telnum":135,"viplevel":1,"des":null}"#)).unwrap();
        assert_eq!((bare.telnum.as_str(), bare.des.as_str()), ("135", ""));
        for bad in [
            r#"{"viplevel":5}"#,
            r#"{"telnum":"135"}"#,
            r#"{"telnum":"135","viplevel":"five"}"#,
            r#"{"telnum":"135","viplevel":5.5}"#,
            r#"{"telnum":"135","viplevel":99999999999}"#,
            r#"{"telnum":"135","viplevel":5,"des":7}"#,
        ] {
            assert!(vip_input(&o(bad)).is_none(), "{bad}");
        }
    }

    #[test]
    fn bare_numbers() {
        assert_eq!(bare_number(&params("135")).as_deref(), Some("135"));
        assert_eq!(bare_number(&params(r#""135""#)).as_deref(), Some("135"));
        assert_eq!(bare_number(&params(r#""""#)), None);
        assert_eq!(bare_number(&params(r#""135"#)), None);
        assert_eq!(bare_number(&params(" ")), None);
    }
}
