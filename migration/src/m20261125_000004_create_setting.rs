//! Soft parameters (`setting`): a key/value table, e.g. `blacklist.forbit.duration`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::create_table(
            manager,
            Table::create()
                .table(Setting::Table)
                .if_not_exists()
                .col(string_len(Setting::Key, 128).primary_key())
                .col(text(Setting::Value))
                .col(big_integer(Setting::UpdatedAt).default(0))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Setting::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Setting {
    Table,
    Key,
    Value,
    UpdatedAt,
}
