//! `routing_rule`: the time-based intelligent routing rules of interface 61
//! (`IntelligentRoutingRule`), column names as the manual spells the fields.
//!
//! `begintime`/`endtime` hold `HH:mm:ss`, a weekday `0`–`6`, a day of the month `1`–`31` or
//! `yyyy-MM-dd HH:mm:ss` depending on `datetype`; `subbegintime`/`subendtime` an `HH:mm:ss`
//! time of day or `''`. `parameters` is free text whose format depends on `operationtype`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::create_table(
            manager,
            Table::create()
                .table(RoutingRule::Table)
                .if_not_exists()
                .col(pk_auto(RoutingRule::Id))
                .col(string_len(RoutingRule::Telnum, 32))
                .col(boolean(RoutingRule::Offon).default(true))
                .col(string_len(RoutingRule::Operationtype, 32))
                .col(text(RoutingRule::Parameters))
                .col(string_len(RoutingRule::Datetype, 16))
                .col(string_len(RoutingRule::Begintime, 19))
                .col(string_len(RoutingRule::Endtime, 19))
                .col(string_len(RoutingRule::Subbegintime, 8).default(""))
                .col(string_len(RoutingRule::Subendtime, 8).default(""))
                .col(big_integer(RoutingRule::CreatedAt).default(0))
                .col(big_integer(RoutingRule::UpdatedAt).default(0))
                .to_owned(),
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_routing_rule_telnum")
                    .table(RoutingRule::Table)
                    .col(RoutingRule::Telnum)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(RoutingRule::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum RoutingRule {
    Table,
    Id,
    Telnum,
    Offon,
    Operationtype,
    Parameters,
    Datetype,
    Begintime,
    Endtime,
    Subbegintime,
    Subendtime,
    CreatedAt,
    UpdatedAt,
}
