//! `extension`: a provisioned SIP extension (a phone / an agent seat).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Agent presence (the `presence` column).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// Available for calls.
    #[default]
    #[sea_orm(string_value = "online")]
    Online,
    /// Set busy by the agent (no queue calls).
    #[sea_orm(string_value = "busy")]
    Busy,
    /// On a break ("reducing" in the manual).
    #[sea_orm(string_value = "reducing")]
    Reducing,
    /// Logged off.
    #[sea_orm(string_value = "offline")]
    Offline,
}

impl Presence {
    /// The database / wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Busy => "busy",
            Presence::Reducing => "reducing",
            Presence::Offline => "offline",
        }
    }
}

impl std::str::FromStr for Presence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "online" => Ok(Presence::Online),
            "busy" => Ok(Presence::Busy),
            "reducing" => Ok(Presence::Reducing),
            "offline" => Ok(Presence::Offline),
            other => Err(format!(
                "unknown presence {other:?} (online|busy|reducing|offline)"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "extension")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Extension number, digits only, unique.
    #[sea_orm(unique)]
    pub number: String,
    /// SIP digest password (empty: none set).
    pub password: String,
    /// Display name.
    pub name: String,
    /// Work number (interface 35 `workerid`); copied into call logs.
    pub worker_id: Option<String>,
    /// Employee name (interface 35 `department`, named so for historical reasons).
    pub department: Option<String>,
    /// Assistant name (interface 35 `uname`).
    pub uname: Option<String>,
    /// Office hours, `H:mm-H:mm` ranges comma-separated (interface 35 `officehours`).
    pub office_hours: Option<String>,
    pub presence: Presence,
    /// Free text reason for the current presence (e.g. "lunch").
    pub presence_reason: String,
    /// May listen / whisper / barge / force hang-up.
    pub supervisor: bool,
    /// Screen-pop URL for this extension (None: the group's or the global one).
    pub screen_pop_url: Option<String>,
    /// Outbound trunk / channel for this extension's outside calls (None: the default trunk).
    pub out_channel: Option<String>,
    /// Caller number shown on outside calls (interface 36; None: the trunk's default).
    pub out_display_number: Option<String>,
    /// Callers who call back this extension's outside number reach it directly.
    pub direct_callback: bool,
    /// Per-extension recording override (None: inherit group / global setting).
    pub recording: Option<bool>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::group_member::Entity")]
    GroupMember,
}

impl Related<super::group_member::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::GroupMember.def()
    }
}

impl Related<super::call_group::Entity> for Entity {
    fn to() -> RelationDef {
        super::group_member::Relation::CallGroup.def()
    }

    fn via() -> Option<RelationDef> {
        Some(super::group_member::Relation::Extension.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
