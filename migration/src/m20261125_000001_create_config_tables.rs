//! Configuration tables: extensions, groups and their members, trunks, access numbers,
//! conference rooms and IVR menus.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::create_table(
            manager,
            Table::create()
                .table(Extension::Table)
                .if_not_exists()
                .col(pk_auto(Extension::Id))
                .col(string_len_uniq(Extension::Number, 32))
                .col(string_len(Extension::Password, 128).default(""))
                .col(string_len(Extension::Name, 128).default(""))
                .col(string_len_null(Extension::WorkerId, 32))
                .col(string_len_null(Extension::Department, 128))
                .col(string_len_null(Extension::Uname, 128))
                .col(string_len_null(Extension::OfficeHours, 255))
                .col(string_len(Extension::Presence, 16).default("online"))
                .col(string_len(Extension::PresenceReason, 255).default(""))
                .col(boolean(Extension::Supervisor).default(false))
                .col(string_len_null(Extension::ScreenPopUrl, 1024))
                .col(string_len_null(Extension::OutChannel, 64))
                .col(string_len_null(Extension::OutDisplayNumber, 32))
                .col(boolean(Extension::DirectCallback).default(false))
                .col(boolean_null(Extension::Recording))
                .col(big_integer(Extension::CreatedAt).default(0))
                .col(big_integer(Extension::UpdatedAt).default(0))
                .to_owned(),
        )
        .await?;

        crate::create_table(
            manager,
            Table::create()
                .table(CallGroup::Table)
                .if_not_exists()
                .col(pk_auto(CallGroup::Id))
                .col(string_len_uniq(CallGroup::Number, 32))
                .col(string_len(CallGroup::Name, 128).default(""))
                .col(string_len(CallGroup::Strategy, 16).default("ring-all"))
                .col(integer(CallGroup::RingTimeout).default(20))
                .col(integer(CallGroup::MaxWait).default(300))
                .col(integer(CallGroup::WrapUp).default(0))
                .col(string_len_null(CallGroup::Overflow, 64))
                .col(boolean_null(CallGroup::Recording))
                .col(string_len_null(CallGroup::ScreenPopUrl, 1024))
                .col(big_integer(CallGroup::CreatedAt).default(0))
                .col(big_integer(CallGroup::UpdatedAt).default(0))
                .to_owned(),
        )
        .await?;

        crate::create_table(
            manager,
            Table::create()
                .table(GroupMember::Table)
                .if_not_exists()
                .col(pk_auto(GroupMember::Id))
                .col(integer(GroupMember::GroupId))
                .col(integer(GroupMember::ExtensionId))
                .col(integer(GroupMember::Priority).default(0))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_group_member_group")
                        .from(GroupMember::Table, GroupMember::GroupId)
                        .to(CallGroup::Table, CallGroup::Id)
                        .on_delete(ForeignKeyAction::Cascade)
                        .on_update(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_group_member_extension")
                        .from(GroupMember::Table, GroupMember::ExtensionId)
                        .to(Extension::Table, Extension::Id)
                        .on_delete(ForeignKeyAction::Cascade)
                        .on_update(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_group_member_group_extension")
                    .table(GroupMember::Table)
                    .col(GroupMember::GroupId)
                    .col(GroupMember::ExtensionId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_group_member_extension")
                    .table(GroupMember::Table)
                    .col(GroupMember::ExtensionId)
                    .to_owned(),
            )
            .await?;

        crate::create_table(
            manager,
            Table::create()
                .table(Trunk::Table)
                .if_not_exists()
                .col(pk_auto(Trunk::Id))
                .col(string_len_uniq(Trunk::Name, 64))
                .col(string_len_null(Trunk::Host, 255))
                .col(string_len_null(Trunk::Password, 128))
                .col(boolean(Trunk::IsDefault).default(false))
                .col(boolean(Trunk::AllowTransit).default(false))
                .col(big_integer(Trunk::CreatedAt).default(0))
                .col(big_integer(Trunk::UpdatedAt).default(0))
                .to_owned(),
        )
        .await?;

        crate::create_table(
            manager,
            Table::create()
                .table(AccessNumber::Table)
                .if_not_exists()
                .col(pk_auto(AccessNumber::Id))
                .col(string_len_uniq(AccessNumber::Number, 32))
                .col(string_len(AccessNumber::Target, 64))
                .to_owned(),
        )
        .await?;

        crate::create_table(
            manager,
            Table::create()
                .table(ConferenceRoom::Table)
                .if_not_exists()
                .col(pk_auto(ConferenceRoom::Id))
                .col(string_len_uniq(ConferenceRoom::Number, 32))
                .col(string_len(ConferenceRoom::Name, 128).default(""))
                .col(string_len_null(ConferenceRoom::Pin, 16))
                .to_owned(),
        )
        .await?;

        crate::create_table(
            manager,
            Table::create()
                .table(IvrMenu::Table)
                .if_not_exists()
                .col(integer(IvrMenu::Id).primary_key())
                .col(string_len(IvrMenu::Name, 128).default(""))
                .col(text(IvrMenu::Definition))
                .col(string_len_null(IvrMenu::SourcePath, 1024))
                .col(big_integer(IvrMenu::CreatedAt).default(0))
                .col(big_integer(IvrMenu::UpdatedAt).default(0))
                .to_owned(),
        )
        .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents (foreign keys).
        manager
            .drop_table(Table::drop().table(IvrMenu::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(ConferenceRoom::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(AccessNumber::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Trunk::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(GroupMember::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(CallGroup::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Extension::Table).if_exists().to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Extension {
    Table,
    Id,
    Number,
    Password,
    Name,
    WorkerId,
    Department,
    Uname,
    OfficeHours,
    Presence,
    PresenceReason,
    Supervisor,
    ScreenPopUrl,
    OutChannel,
    OutDisplayNumber,
    DirectCallback,
    Recording,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CallGroup {
    Table,
    Id,
    Number,
    Name,
    Strategy,
    RingTimeout,
    MaxWait,
    WrapUp,
    Overflow,
    Recording,
    ScreenPopUrl,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum GroupMember {
    Table,
    Id,
    GroupId,
    ExtensionId,
    Priority,
}

#[derive(DeriveIden)]
enum Trunk {
    Table,
    Id,
    Name,
    Host,
    Password,
    IsDefault,
    AllowTransit,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AccessNumber {
    Table,
    Id,
    Number,
    Target,
}

#[derive(DeriveIden)]
enum ConferenceRoom {
    Table,
    Id,
    Number,
    Name,
    Pin,
}

#[derive(DeriveIden)]
enum IvrMenu {
    Table,
    Id,
    Name,
    Definition,
    SourcePath,
    CreatedAt,
    UpdatedAt,
}
