//! Database migrations of ctiswitch (`sea-orm-migration`).
//!
//! # Layout
//!
//! - [`Migrator`] lists every migration in order; `ctiswitch` runs it at start-up and
//!   from `ctiswitch migrate`.
//! - One file per logical step, named `mYYYYMMDD_NNNNNN_<what>.rs`:
//!   - `m20261125_000001_create_config_tables`: `extension`, `call_group`, `group_member`,
//!     `trunk`, `access_number`, `conference_room`, `ivr_menu`;
//!   - `m20261125_000002_create_calllog`: `calllog` (column names of the CTI manual, Part C);
//!   - `m20261125_000003_create_callback_outbox`: `callback_outbox`;
//!   - `m20261125_000004_create_setting`: `setting`;
//!   - `m20261125_000005_create_blacklist_vip_list`: `blacklist`, `vip_list` (interfaces 38, 39);
//!   - `m20261125_000006_create_routing_rule`: `routing_rule` (interface 61).
//!
//! Migrations are frozen history: they do not import the `entities` crate, they spell every
//! table and column themselves. Change the schema by adding a migration, never by editing one
//! that has shipped. Every migration has a working `down`.
//!
//! Conventions shared by all tables (so the same schema works on SQLite, PostgreSQL and
//! MySQL/MariaDB): times are `BIGINT` epoch milliseconds; optional text is `NOT NULL DEFAULT ''`
//! unless "absent" differs from "empty" (then nullable); long free text is `TEXT` without a
//! default (MySQL forbids literal defaults on `TEXT`), so writers always supply it.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_config_tables;
mod m20261125_000002_create_calllog;
mod m20261125_000003_create_callback_outbox;
mod m20261125_000004_create_setting;
mod m20261125_000005_create_blacklist_vip_list;
mod m20261125_000006_create_routing_rule;

/// All migrations of ctiswitch, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_config_tables::Migration),
            Box::new(m20261125_000002_create_calllog::Migration),
            Box::new(m20261125_000003_create_callback_outbox::Migration),
            Box::new(m20261125_000004_create_setting::Migration),
            Box::new(m20261125_000005_create_blacklist_vip_list::Migration),
            Box::new(m20261125_000006_create_routing_rule::Migration),
        ]
    }
}

/// Names of the tables the migrations create, in creation order (for tests and tooling).
pub const TABLES: &[&str] = &[
    "extension",
    "call_group",
    "group_member",
    "trunk",
    "access_number",
    "conference_room",
    "ivr_menu",
    "calllog",
    "callback_outbox",
    "setting",
    "blacklist",
    "vip_list",
    "routing_rule",
];

/// `CREATE TABLE`, with `ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin` on
/// MySQL/MariaDB: full UTF-8 whatever the database's default character set, and
/// case-sensitive comparisons like PostgreSQL and SQLite (trunk names, setting keys).
pub(crate) async fn create_table(
    manager: &SchemaManager<'_>,
    mut stmt: TableCreateStatement,
) -> Result<(), DbErr> {
    if manager.get_database_backend() == sea_orm::DbBackend::MySql {
        stmt.engine("InnoDB")
            .character_set("utf8mb4")
            .collate("utf8mb4_bin");
    }
    manager.create_table(stmt).await
}
