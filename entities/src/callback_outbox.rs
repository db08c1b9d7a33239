//! `callback_outbox`: durable HTTP callbacks to CRMs, retried until accepted.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "callback_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// What the callback is: `call_log_push`, `screen_pop`, `hangup`, …
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// Content type of `body` (empty for GET).
    pub content_type: String,
    /// Failed attempts so far (plus one once delivered).
    pub attempts: i32,
    /// Epoch milliseconds; the row is due once this has passed.
    pub next_attempt_at: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds; None while pending.
    pub delivered_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
