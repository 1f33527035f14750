//! What a history request can fail with, and its status. A database that is
//! down or slow is a 503 (try again); a bad parameter is a 400 naming it.

use hyper::StatusCode;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{name}: {detail}")]
    BadParameter { name: String, detail: String },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HistoryError {
    pub fn status(&self) -> StatusCode {
        match self {
            HistoryError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            HistoryError::NotFound(_) => StatusCode::NOT_FOUND,
            // Values the parameters' checks let through but PostgreSQL refused.
            HistoryError::Store(StoreError::Data(_)) => StatusCode::BAD_REQUEST,
            // A query of ours PostgreSQL cannot run: a bug, not an outage.
            HistoryError::Store(StoreError::Database { class: "other", .. }) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            HistoryError::Store(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            HistoryError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `error` member.
    pub fn kind(&self) -> &'static str {
        match self {
            HistoryError::BadParameter { .. } => "bad_parameter",
            HistoryError::NotFound(_) => "not_found",
            HistoryError::Store(StoreError::Data(_)) => "invalid_query",
            HistoryError::Store(StoreError::Database { class: "other", .. }) => "query_failed",
            HistoryError::Store(StoreError::Timeout(_)) => "query_timeout",
            HistoryError::Store(StoreError::Database {
                class: "timeout", ..
            }) => "query_timeout",
            HistoryError::Store(e) if e.is_retryable() => "database_unavailable",
            HistoryError::Store(_) => "query_failed",
        }
    }
}
