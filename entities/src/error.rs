//! The crate's error type.

use sea_orm::{DbErr, SqlErr};

/// Everything the data layer can fail with.
///
/// `field` names follow the input structs (`number`, `groups`, `host`, …); provisioning
/// prefixes them with the entry (`extensions[2].number`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is invalid (HTTP 400).
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// The addressed row does not exist (HTTP 404).
    #[error("not found")]
    NotFound,
    /// A unique key is already taken (HTTP 409).
    #[error("conflict on {field}: {message}")]
    Conflict { field: String, message: String },
    /// Any other database failure (HTTP 500).
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

impl Error {
    /// An [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Conflict`].
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Conflict {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status this error maps to: 400, 404, 409 or 500.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Invalid { .. } => 400,
            Error::NotFound => 404,
            Error::Conflict { .. } => 409,
            Error::Db(_) => 500,
        }
    }

    /// The field an `Invalid` or `Conflict` error names.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } | Error::Conflict { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Prefix the field with the entry it belongs to: `number` → `extensions[2].number`.
    pub fn in_entry(self, entry: &str) -> Self {
        match self {
            Error::Invalid { field, message } => Error::Invalid {
                field: join_field(entry, &field),
                message,
            },
            Error::Conflict { field, message } => Error::Conflict {
                field: join_field(entry, &field),
                message,
            },
            other => other,
        }
    }

    /// Map a database unique-key violation to [`Error::Conflict`] on `field`; other errors
    /// become [`Error::Db`]. Works on SQLite, PostgreSQL and MySQL.
    pub fn from_db_unique(err: DbErr, field: &str, value: &str) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Error::conflict(field, format!("{value:?} already exists"))
            }
            _ => Error::Db(err),
        }
    }
}

fn join_field(entry: &str, field: &str) -> String {
    if field.is_empty() {
        entry.to_owned()
    } else if field.starts_with('[') {
        format!("{entry}{field}")
    } else {
        format!("{entry}.{field}")
    }
}
