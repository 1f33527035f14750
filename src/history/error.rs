//! What a history request can fail with, and its status. A database that is
//! down or slow is a 503 (try again); a bad parameter is a 400 naming it.

use hyper::StatusCode;

use crate::store::{ErrorClass, StoreError};

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
            HistoryError::Store(e) => match e.class() {
                // Values the parameters' checks let through but PostgreSQL refused.
                ErrorClass::Data => StatusCode::BAD_REQUEST,
                // A query of ours PostgreSQL cannot run: a bug, not an outage.
                ErrorClass::Other | ErrorClass::Config => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// The machine-readable `error` member.
    pub fn kind(&self) -> &'static str {
        match self {
            HistoryError::BadParameter { .. } => "bad_parameter",
            HistoryError::NotFound(_) => "not_found",
            HistoryError::Store(e) => match e.class() {
                ErrorClass::Data => "invalid_query",
                ErrorClass::Timeout => "query_timeout",
                ErrorClass::Other | ErrorClass::Config => "query_failed",
                _ => "database_unavailable",
            },
        }
    }
}
