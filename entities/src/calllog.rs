//! `calllog`: one record per call leg / business event, with the fields of the CTI manual's
//! call-log dictionary (`../shared/spec/cti-api.md`, Part C).
//!
//! Column names and JSON names are the manual's, camelCase included (`beginTime`,
//! `ivrAnwerTime` with its typo): Rust fields are snake_case and carry
//! `#[sea_orm(column_name = …)]` + `#[serde(rename = …)]`, so `serde_json::to_value(&model)`
//! yields exactly the manual's keys.
//!
//! Choices where the manual is loose:
//! - every text field is a non-null `String`, empty when unknown (the manual's JSON examples
//!   emit `""`, never `null`);
//! - `estimate` is a `String` (`""` when not rated, else `"1"`, `"2"`, `"3"`): the table says
//!   Integer but every example carries `""` (spec D-11: emit what the examples show);
//! - times (`beginTime`, `ivrAnwerTime`, `queueTime`, `ringTime`, `pickupTime`) are `i64`
//!   epoch milliseconds, `0` when the phase did not happen;
//! - durations (seconds), counts (`holdtime`) and the obsolete integer fields (`calleruid`,
//!   `calleeuid`, `productid`) are `i32`, `0` by default;
//! - `callid` is stored with a literal `@` (spec D-12).
//!
//! Which subset of fields each interface emits (30, 27, 31, 60) is the web layer's business;
//! [`Model`] serializes all of them.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Default, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "calllog")]
#[serde(default)]
pub struct Model {
    /// Call-log number (`/Oms/FileDownServlet?logId=`).
    #[sea_orm(primary_key)]
    pub id: i64,
    pub caller: String,
    pub callee: String,
    /// Peer / gateway address, e.g. `192.168.3.82:5062`.
    pub channel: String,
    #[sea_orm(column_name = "beginTime")]
    #[serde(rename = "beginTime")]
    pub begin_time: i64,
    /// Talk duration, seconds.
    pub duration: i32,
    /// `STATE_FAILED` | `STATE_RECEIVED` | `STATE_RECEIVING`.
    pub state: String,
    /// `CENTREX_CALL` | `LOCAL_CALL` | `NATIONAL_CALL` | `OVERSEAS_CALL` | `UNKNOW_CALL`.
    #[sea_orm(column_name = "callType")]
    #[serde(rename = "callType")]
    pub call_type: String,
    /// Customer rating, `""` when not rated.
    pub estimate: String,
    /// SIP Call-ID (with a literal `@`).
    pub callid: String,
    /// Obsolete.
    pub calleruid: i32,
    /// Obsolete.
    pub calleeuid: i32,
    /// Text call note.
    #[sea_orm(column_type = "Text")]
    pub record: String,
    /// Server path of the recording file.
    #[sea_orm(column_name = "recordVoice")]
    #[serde(rename = "recordVoice")]
    pub record_voice: String,
    /// Customer name.
    pub cname: String,
    pub servicetype: String,
    pub manustate: String,
    /// Customer question.
    #[sea_orm(column_type = "Text")]
    pub question: String,
    /// Click-to-call control id (or the interface-27 token).
    pub clickcallid: String,
    pub clicktoken: String,
    pub fxonum: String,
    pub accessnum: String,
    /// Obsolete.
    pub productid: i32,
    pub dtmfkey: String,
    pub ivrpoint: String,
    pub callerworknum: String,
    pub calleeworknum: String,
    /// Business type (spec Part C.1), e.g. `INCOMING`, `OUTGOING`, `IVR_TRANSFER`.
    pub business: String,
    pub prerecord: String,
    pub robotrecord: String,
    pub earlymedia: String,
    pub ivrvoicemail: String,
    #[sea_orm(column_name = "ivrAnwerTime")]
    #[serde(rename = "ivrAnwerTime")]
    pub ivr_anwer_time: i64,
    #[sea_orm(column_name = "ivrAnwerDuration")]
    #[serde(rename = "ivrAnwerDuration")]
    pub ivr_anwer_duration: i32,
    #[sea_orm(column_name = "queueTime")]
    #[serde(rename = "queueTime")]
    pub queue_time: i64,
    #[sea_orm(column_name = "queueDuration")]
    #[serde(rename = "queueDuration")]
    pub queue_duration: i32,
    #[sea_orm(column_name = "ringTime")]
    #[serde(rename = "ringTime")]
    pub ring_time: i64,
    #[sea_orm(column_name = "ringDuration")]
    #[serde(rename = "ringDuration")]
    pub ring_duration: i32,
    #[sea_orm(column_name = "pickupTime")]
    #[serde(rename = "pickupTime")]
    pub pickup_time: i64,
    /// Outside office hours.
    pub offwork: bool,
    /// Seconds the agent waited idle for this call.
    pub standby: i32,
    /// Wrap-up seconds after the call.
    pub writetime: i32,
    /// Number of holds (a count).
    pub holdtime: i32,
    pub forward: String,
    /// Obsolete.
    #[sea_orm(column_type = "Text")]
    pub stttxt: String,
    pub hungupside: String,
    pub callervideo: String,
    pub calleevideo: String,
    pub peercallid: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
