//! The durable callback outbox: enqueue, fetch due rows, record the outcome.

use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::callback_outbox::{self, Column, Entity, Model};
use crate::db::now_ms;
use crate::Error;

/// A callback to deliver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCallback {
    /// `call_log_push`, `screen_pop`, `hangup`, …
    pub kind: String,
    /// `http://` or `https://` URL (with its query string for GET).
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    pub body: String,
    pub content_type: String,
}

impl NewCallback {
    /// Check the fields.
    pub fn validate(&self) -> Result<(), Error> {
        if self.kind.is_empty() || self.kind.len() > 32 {
            return Err(Error::invalid("kind", "must be 1-32 characters"));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Error::invalid("url", "must be an http:// or https:// URL"));
        }
        if !matches!(self.method.as_str(), "GET" | "POST") {
            return Err(Error::invalid("method", "must be GET or POST"));
        }
        if self.content_type.len() > 128 {
            return Err(Error::invalid(
                "content_type",
                "is longer than 128 characters",
            ));
        }
        Ok(())
    }
}

/// Store a callback, due immediately.
pub async fn enqueue<C: ConnectionTrait>(db: &C, cb: NewCallback) -> Result<Model, Error> {
    let now = now_ms();
    enqueue_at(db, cb, now).await
}

/// Store a callback, due at `next_attempt_at` (epoch ms).
pub async fn enqueue_at<C: ConnectionTrait>(
    db: &C,
    cb: NewCallback,
    next_attempt_at: i64,
) -> Result<Model, Error> {
    cb.validate()?;
    let am = callback_outbox::ActiveModel {
        kind: Set(cb.kind),
        url: Set(cb.url),
        method: Set(cb.method),
        body: Set(cb.body),
        content_type: Set(cb.content_type),
        attempts: Set(0),
        next_attempt_at: Set(next_attempt_at),
        last_error: Set(None),
        created_at: Set(now_ms()),
        delivered_at: Set(None),
        ..Default::default()
    };
    Ok(am.insert(db).await?)
}

/// Undelivered callbacks due at `now_ms`, oldest due first, at most `limit`.
pub async fn due<C: ConnectionTrait>(db: &C, now_ms: i64, limit: u64) -> Result<Vec<Model>, Error> {
    Ok(Entity::find()
        .filter(Column::DeliveredAt.is_null())
        .filter(Column::NextAttemptAt.lte(now_ms))
        .order_by_asc(Column::NextAttemptAt)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// One callback by id.
pub async fn get<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<Model>, Error> {
    Ok(Entity::find_by_id(id).one(db).await?)
}

/// Record a successful delivery (now). `NotFound` if absent.
pub async fn mark_delivered<C: ConnectionTrait>(db: &C, id: i64) -> Result<(), Error> {
    let res = Entity::update_many()
        .col_expr(Column::DeliveredAt, Expr::value(now_ms()))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Record a failed attempt: count it, keep `error`, retry at `next_ms`. `NotFound` if absent.
pub async fn reschedule<C: ConnectionTrait>(
    db: &C,
    id: i64,
    next_ms: i64,
    error: &str,
) -> Result<(), Error> {
    let res = Entity::update_many()
        .col_expr(Column::NextAttemptAt, Expr::value(next_ms))
        .col_expr(Column::LastError, Expr::value(error.to_owned()))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Number of undelivered callbacks.
pub async fn pending_count<C: ConnectionTrait>(db: &C) -> Result<u64, Error> {
    Ok(Entity::find()
        .filter(Column::DeliveredAt.is_null())
        .count(db)
        .await?)
}

/// Delete callbacks delivered before `before_ms`; returns how many.
pub async fn purge_delivered<C: ConnectionTrait>(db: &C, before_ms: i64) -> Result<u64, Error> {
    let res = Entity::delete_many()
        .filter(Column::DeliveredAt.is_not_null())
        .filter(Column::DeliveredAt.lt(before_ms))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}
