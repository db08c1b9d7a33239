//! The blacklist (interface 38) and the VIP list (interface 39).
//!
//! - `blacklist`: one row per number; `created_at` (epoch ms) is the time it was (last)
//!   added, from which the soft parameter `blacklist.forbit.duration` counts.
//! - `vip_list`: one row per number with its level; `createtime` is the client's own
//!   `yyyy-MM-dd HH:mm:ss` text (nullable: the manual makes it optional), `created_at` the
//!   switch's epoch ms.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::create_table(
            manager,
            Table::create()
                .table(Blacklist::Table)
                .if_not_exists()
                .col(pk_auto(Blacklist::Id))
                .col(string_len_uniq(Blacklist::Telnum, 32))
                .col(big_integer(Blacklist::CreatedAt).default(0))
                .to_owned(),
        )
        .await?;
        crate::create_table(
            manager,
            Table::create()
                .table(VipList::Table)
                .if_not_exists()
                .col(pk_auto(VipList::Id))
                .col(string_len_uniq(VipList::Telnum, 32))
                .col(integer(VipList::Viplevel).default(0))
                .col(text(VipList::Des))
                .col(string_len_null(VipList::Createtime, 19))
                .col(big_integer(VipList::CreatedAt).default(0))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(VipList::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Blacklist::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Blacklist {
    Table,
    Id,
    Telnum,
    CreatedAt,
}

#[derive(DeriveIden)]
enum VipList {
    Table,
    Id,
    Telnum,
    Viplevel,
    Des,
    Createtime,
    CreatedAt,
}
