//! Query and mutation services: HTTP handlers, actors and provisioning call these and never
//! build queries themselves.
//!
//! Every function takes `db: &C` where `C` is a [`DatabaseConnection`](sea_orm::DatabaseConnection)
//! or a [`DatabaseTransaction`](sea_orm::DatabaseTransaction); functions that write several
//! rows open their own transaction (a savepoint when `db` is already a transaction).
//!
//! Write semantics of the `*Input` structs are "replace": `update(db, id, input)` makes the
//! row look like `input`, fields left out of the input get their defaults — except
//! [`ExtensionInput::password`], where `None` keeps the current password.
//!
//! Numbers share one numbering plan: an extension, a group, an access number and a conference
//! room may not have the same number, and a trunk may not be named like an extension (both
//! would register as the same SIP account). Violations are [`Error::Conflict`] on `number`
//! (or `name`).

pub mod access_numbers;
pub mod blacklist;
pub mod calllog;
pub mod conferences;
pub mod extensions;
pub mod groups;
pub mod ivrs;
pub mod outbox;
pub mod routing_rules;
pub mod settings;
pub mod trunks;
pub mod vip;

pub use access_numbers::AccessNumberInput;
pub use conferences::ConferenceInput;
pub use extensions::{ExtensionInput, ExtensionPatch};
pub use groups::{GroupInput, Member, MemberInput};
pub use ivrs::IvrInput;
pub use outbox::NewCallback;
pub use trunks::TrunkInput;
pub use vip::VipInput;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::{access_number, call_group, conference_room, extension, trunk, Error};

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

/// Who is claiming a number in the shared numbering plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claimant {
    Extension,
    Group,
    AccessNumber,
    Conference,
    Trunk,
}

/// Fail with `Conflict` if `number` is used by another kind of object (same-table
/// uniqueness is checked by each module).
pub(crate) async fn check_numbering_plan<C: ConnectionTrait>(
    db: &C,
    number: &str,
    who: Claimant,
    field: &str,
) -> Result<(), Error> {
    use Claimant::*;
    let taken = |what: &str| {
        Err(Error::conflict(
            field,
            format!("{number:?} is already used by {what} {number}"),
        ))
    };
    if who != Extension
        && extension::Entity::find()
            .filter(extension::Column::Number.eq(number))
            .count(db)
            .await?
            > 0
    {
        return taken("extension");
    }
    if who == Trunk {
        return Ok(());
    }
    if who != Group
        && call_group::Entity::find()
            .filter(call_group::Column::Number.eq(number))
            .count(db)
            .await?
            > 0
    {
        return taken("group");
    }
    if who != AccessNumber
        && access_number::Entity::find()
            .filter(access_number::Column::Number.eq(number))
            .count(db)
            .await?
            > 0
    {
        return taken("access number");
    }
    if who != Conference
        && conference_room::Entity::find()
            .filter(conference_room::Column::Number.eq(number))
            .count(db)
            .await?
            > 0
    {
        return taken("conference room");
    }
    if who == Extension
        && trunk::Entity::find()
            .filter(trunk::Column::Name.eq(number))
            .count(db)
            .await?
            > 0
    {
        return taken("trunk");
    }
    Ok(())
}
