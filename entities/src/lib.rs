//! # Layout
//!
//! The data layer of ctiswitch: SeaORM entities, the services that query and change them,
//! and start-up provisioning. The schema itself is created by the `migration` crate.
//!
//! | module | holds |
//! |---|---|
//! | [`extension`], [`call_group`], [`group_member`], [`trunk`], [`access_number`], [`conference_room`], [`ivr_menu`] | configuration tables, one entity per file |
//! | [`calllog`] | the call-log table, columns and JSON names of the CTI manual (spec Part C) |
//! | [`callback_outbox`] | durable HTTP callbacks to CRMs |
//! | [`setting`] | soft parameters (key → text) |
//! | [`blacklist`], [`vip_list`] | interface 38's blacklist and 39's VIP list (by `telnum`) |
//! | [`db`] | [`connect`] (SQLite WAL / in-memory rules, PostgreSQL, MySQL), [`db::begin_write`], [`db::now_ms`] |
//! | [`repo`] | query/mutation services per table, the `*Input` structs and their validation |
//! | [`provision`] | [`provision::Provisioning`] (the TOML sections) and [`provision::apply`] |
//! | [`error`] | [`Error`]: `Invalid` (400), `NotFound` (404), `Conflict` (409), `Db` (500) |
//! | [`target`] | [`Target`]: `ivr:<id>` / `group:<n>` / `ext:<n>` / `conference:<n>` |
//! | [`validate`] | field validators shared by the inputs |
//!
//! Conventions: every time column is an `i64` of epoch milliseconds; optional text is an
//! empty `String` unless "absent" means something different from "empty" (then `Option`);
//! models derive `Serialize` (the call log with the manual's camelCase names).

pub mod access_number;
pub mod blacklist;
pub mod call_group;
pub mod callback_outbox;
pub mod calllog;
pub mod conference_room;
pub mod extension;
pub mod group_member;
pub mod ivr_menu;
pub mod routing_rule;
pub mod setting;
pub mod trunk;
pub mod vip_list;

pub mod db;
pub mod error;
pub mod provision;
pub mod repo;
pub mod target;
pub mod validate;

pub use db::connect;
pub use error::Error;
pub use target::Target;

/// The SeaORM version the entities are built with.
pub use sea_orm;

/// Entities under short names: `use entities::prelude::*; Extension::find()…`.
pub mod prelude {
    pub use crate::access_number::Entity as AccessNumber;
    pub use crate::blacklist::Entity as Blacklist;
    pub use crate::call_group::Entity as CallGroup;
    pub use crate::callback_outbox::Entity as CallbackOutbox;
    pub use crate::calllog::Entity as Calllog;
    pub use crate::conference_room::Entity as ConferenceRoom;
    pub use crate::extension::Entity as Extension;
    pub use crate::group_member::Entity as GroupMember;
    pub use crate::ivr_menu::Entity as IvrMenu;
    pub use crate::setting::Entity as Setting;
    pub use crate::trunk::Entity as Trunk;
    pub use crate::vip_list::Entity as VipList;
}
