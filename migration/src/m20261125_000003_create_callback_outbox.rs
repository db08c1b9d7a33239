//! The durable outbox of HTTP callbacks to CRMs (`callback_outbox`).
//!
//! A row is due when `delivered_at IS NULL AND next_attempt_at <= now`; the index
//! `(delivered_at, next_attempt_at)` serves exactly that query.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::create_table(
            manager,
            Table::create()
                .table(CallbackOutbox::Table)
                .if_not_exists()
                .col(big_pk_auto(CallbackOutbox::Id))
                .col(string_len(CallbackOutbox::Kind, 32))
                .col(text(CallbackOutbox::Url))
                .col(string_len(CallbackOutbox::Method, 8).default("GET"))
                .col(text(CallbackOutbox::Body))
                .col(string_len(CallbackOutbox::ContentType, 128).default(""))
                .col(integer(CallbackOutbox::Attempts).default(0))
                .col(big_integer(CallbackOutbox::NextAttemptAt).default(0))
                .col(text_null(CallbackOutbox::LastError))
                .col(big_integer(CallbackOutbox::CreatedAt).default(0))
                .col(big_integer_null(CallbackOutbox::DeliveredAt))
                .to_owned(),
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_callback_outbox_due")
                    .table(CallbackOutbox::Table)
                    .col(CallbackOutbox::DeliveredAt)
                    .col(CallbackOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(CallbackOutbox::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum CallbackOutbox {
    Table,
    Id,
    Kind,
    Url,
    Method,
    Body,
    ContentType,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    DeliveredAt,
}
