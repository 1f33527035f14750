//! Database errors, classified once: what the requester is told, and what the
//! metrics call it, depend only on this.

use std::time::Duration;

use deadpool_postgres::PoolError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had (refused, timed out, pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The operation did not finish within `database.statement_timeout`.
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
    /// PostgreSQL refused the data itself (SQLSTATE class 22, 23 or 54):
    /// retrying the same rows can never succeed.
    #[error("database refused the data: {sqlstate}: {message}")]
    Data { sqlstate: String, message: String },
    /// Anything else PostgreSQL or the connection reported; may pass.
    #[error("database error ({class}): {message}")]
    Database {
        class: &'static str,
        message: String,
    },
    #[error("invalid database configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Whether writing the same rows again may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, StoreError::Data { .. } | StoreError::Config(_))
    }

    /// A low-cardinality name for the `db_errors_total` metric.
    pub fn class(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Timeout(_) => "timeout",
            StoreError::Data { .. } => "data",
            StoreError::Database { class, .. } => class,
            StoreError::Config(_) => "config",
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        let message = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        let Some(code) = e.code() else {
            // No SQLSTATE: the connection broke or was closed.
            return StoreError::Database {
                class: "connection",
                message,
            };
        };
        // A row routed to a default partition just as a partition for its
        // range was attached (retention) fails the default's constraint;
        // routed again it finds the new partition. Our own CHECK constraints
        // name themselves; the partition constraint has no name.
        if code.code() == "23514" && e.as_db_error().is_some_and(|db| db.constraint().is_none()) {
            return StoreError::Database {
                class: "conflict",
                message,
            };
        }
        let class = match &code.code()[..2] {
            // 22 data exception, 23 integrity, 54 program limit (e.g. an
            // index row over the btree maximum): these rows can never be stored.
            "22" | "23" | "54" => {
                return StoreError::Data {
                    sqlstate: code.code().to_owned(),
                    message: e
                        .as_db_error()
                        .map_or(message, |db| db.message().to_owned()),
                }
            }
            "08" => "connection",
            "25" => "read_only",
            "40" => "conflict",
            "53" => "resources",
            "57" if code.code() == "57014" => "timeout",
            "57" => "shutdown",
            _ => "other",
        };
        StoreError::Database { class, message }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> StoreError {
        match e {
            PoolError::Backend(e) => StoreError::Unavailable(StoreError::from(e).to_string()),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}
