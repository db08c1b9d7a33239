//! `call_group`: a group (queue) of agents, e.g. 3003. Named `call_group` because `group`
//! is an SQL keyword.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// How a group picks the agent for the next waiting caller (the `strategy` column).
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
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Ring every free agent at once; the first to answer takes the call.
    #[default]
    #[sea_orm(string_value = "ring-all")]
    RingAll,
    /// Rotate through the agents.
    #[sea_orm(string_value = "round-robin")]
    RoundRobin,
    /// The agent idle for the longest time.
    #[sea_orm(string_value = "longest-idle")]
    LongestIdle,
    /// The agent who took the fewest calls.
    #[sea_orm(string_value = "fewest-calls")]
    FewestCalls,
    /// A random free agent.
    #[sea_orm(string_value = "random")]
    Random,
}

impl Strategy {
    /// Every accepted spelling, for error messages.
    pub const ALL: &'static [&'static str] = &[
        "ring-all",
        "round-robin",
        "longest-idle",
        "fewest-calls",
        "random",
    ];

    /// The database / configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RingAll => "ring-all",
            Strategy::RoundRobin => "round-robin",
            Strategy::LongestIdle => "longest-idle",
            Strategy::FewestCalls => "fewest-calls",
            Strategy::Random => "random",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ring-all" => Ok(Strategy::RingAll),
            "round-robin" => Ok(Strategy::RoundRobin),
            "longest-idle" => Ok(Strategy::LongestIdle),
            "fewest-calls" => Ok(Strategy::FewestCalls),
            "random" => Ok(Strategy::Random),
            other => Err(format!(
                "unknown strategy {other:?} (expected one of {})",
                Strategy::ALL.join(", ")
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "call_group")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Group number, digits only, unique.
    #[sea_orm(unique)]
    pub number: String,
    pub name: String,
    pub strategy: Strategy,
    /// Seconds an agent's phone rings before the next agent is tried.
    pub ring_timeout: i32,
    /// Seconds a caller may wait in the queue.
    pub max_wait: i32,
    /// Seconds an agent stays unavailable after a call.
    pub wrap_up: i32,
    /// Where callers go when `max_wait` expires (`group:3005`, `ext:801`, `ivr:2`, …);
    /// None: they are hung up.
    pub overflow: Option<String>,
    /// Per-group recording override (None: global setting).
    pub recording: Option<bool>,
    /// Screen-pop URL for calls of this group (None: the global one).
    pub screen_pop_url: Option<String>,
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

impl Related<super::extension::Entity> for Entity {
    fn to() -> RelationDef {
        super::group_member::Relation::Extension.def()
    }

    fn via() -> Option<RelationDef> {
        Some(super::group_member::Relation::CallGroup.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
