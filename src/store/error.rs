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
    Data {
        sqlstate: String,
        message: String,
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    /// Anything else PostgreSQL or the connection reported; may pass.
    #[error("database error ({}): {message}", .class.as_str())]
    Database {
        class: ErrorClass,
        message: String,
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    #[error("invalid database configuration: {0}")]
    Config(String),
}

/// What kind of failure a [`StoreError`] is: callers decide on it (never
/// on an error's text), and it is the `class` label of
/// `alert_ingest_db_errors_total` ([`ErrorClass::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// No connection could be had.
    Unavailable,
    /// Past `database.statement_timeout`: ours, or the server's (57014).
    Timeout,
    /// The data itself was refused (22, 23, 54): never retried.
    Data,
    /// The connection broke (08, or no SQLSTATE at all).
    Connection,
    /// Serialization failure or deadlock (40), or a row routed to a default
    /// partition as the partition for its range was attached (an unnamed
    /// 23514): the same statement may pass again.
    Conflict,
    /// A read-only server, e.g. a standby or a promoted one's old primary (25).
    ReadOnly,
    /// Out of resources: disk, memory, connections (53).
    Resources,
    /// The server shutting down, or an operator's intervention (57 but 57014).
    Shutdown,
    /// Anything else, e.g. a statement of ours PostgreSQL cannot run.
    Other,
    /// Our configuration (the URL, a setting).
    Config,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Data => "data",
            ErrorClass::Connection => "connection",
            ErrorClass::Conflict => "conflict",
            ErrorClass::ReadOnly => "read_only",
            ErrorClass::Resources => "resources",
            ErrorClass::Shutdown => "shutdown",
            ErrorClass::Other => "other",
            ErrorClass::Config => "config",
        }
    }
}

/// SQLSTATE → class: the one place the codes are read. `names_constraint`:
/// whether the error names its constraint (our own CHECKs do; a
/// partition's bound has no name).
pub fn classify(sqlstate: &str, names_constraint: bool) -> ErrorClass {
    if sqlstate == "23514" && !names_constraint {
        // Routed again, the row finds the partition attached meanwhile.
        return ErrorClass::Conflict;
    }
    match sqlstate.get(..2) {
        // 22 data exception, 23 integrity, 54 program limit (e.g. an index
        // row over the btree maximum): these rows can never be stored.
        Some("22" | "23" | "54") => ErrorClass::Data,
        Some("08") => ErrorClass::Connection,
        Some("25") => ErrorClass::ReadOnly,
        Some("40") => ErrorClass::Conflict,
        Some("53") => ErrorClass::Resources,
        Some("57") if sqlstate == "57014" => ErrorClass::Timeout,
        Some("57") => ErrorClass::Shutdown,
        _ => ErrorClass::Other,
    }
}

impl StoreError {
    /// Whether writing the same rows again may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, StoreError::Data { .. } | StoreError::Config(_))
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Unavailable(_) => ErrorClass::Unavailable,
            StoreError::Timeout(_) => ErrorClass::Timeout,
            StoreError::Data { .. } => ErrorClass::Data,
            StoreError::Database { class, .. } => *class,
            StoreError::Config(_) => ErrorClass::Config,
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        let Some(db) = e.as_db_error() else {
            // No SQLSTATE: the connection broke or was closed.
            return StoreError::Database {
                class: ErrorClass::Connection,
                message: e.to_string(),
                source: Some(e),
            };
        };
        let sqlstate = db.code().code().to_owned();
        match classify(&sqlstate, db.constraint().is_some()) {
            ErrorClass::Data => StoreError::Data {
                sqlstate,
                message: db.message().to_owned(),
                source: Some(e),
            },
            class => StoreError::Database {
                class,
                message: format!("{sqlstate}: {}", db.message()),
                source: Some(e),
            },
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One SQLSTATE of each class, as PostgreSQL sends them.
    #[test]
    fn every_sqlstate_class_maps_to_its_error_class() {
        let cases = [
            ("22001", true, ErrorClass::Data),        // string too long
            ("22P02", true, ErrorClass::Data),        // invalid text representation
            ("23505", true, ErrorClass::Data),        // unique violation
            ("23514", true, ErrorClass::Data),        // our own CHECK, named
            ("23514", false, ErrorClass::Conflict),   // a partition's bound
            ("54000", true, ErrorClass::Data),        // program limit exceeded
            ("08006", false, ErrorClass::Connection), // connection failure
            ("25006", false, ErrorClass::ReadOnly),   // read-only transaction
            ("40001", false, ErrorClass::Conflict),   // serialization failure
            ("40P01", false, ErrorClass::Conflict),   // deadlock
            ("53100", false, ErrorClass::Resources),  // disk full
            ("53300", false, ErrorClass::Resources),  // too many connections
            ("57014", false, ErrorClass::Timeout),    // statement timeout
            ("57P01", false, ErrorClass::Shutdown),   // admin shutdown
            ("42P01", false, ErrorClass::Other),      // undefined table
            ("XX000", false, ErrorClass::Other),      // internal error
            ("", false, ErrorClass::Other),
        ];
        for (sqlstate, named, class) in cases {
            assert_eq!(classify(sqlstate, named), class, "{sqlstate}");
        }
    }

    /// The `class` labels dashboards, rules and tests/faults.rs know.
    #[test]
    fn every_class_has_its_own_metric_label() {
        let labels = [
            (ErrorClass::Unavailable, "unavailable"),
            (ErrorClass::Timeout, "timeout"),
            (ErrorClass::Data, "data"),
            (ErrorClass::Connection, "connection"),
            (ErrorClass::Conflict, "conflict"),
            (ErrorClass::ReadOnly, "read_only"),
            (ErrorClass::Resources, "resources"),
            (ErrorClass::Shutdown, "shutdown"),
            (ErrorClass::Other, "other"),
            (ErrorClass::Config, "config"),
        ];
        for (class, label) in labels {
            // A variant added without a label here fails to compile.
            match class {
                ErrorClass::Unavailable
                | ErrorClass::Timeout
                | ErrorClass::Data
                | ErrorClass::Connection
                | ErrorClass::Conflict
                | ErrorClass::ReadOnly
                | ErrorClass::Resources
                | ErrorClass::Shutdown
                | ErrorClass::Other
                | ErrorClass::Config => assert_eq!(class.as_str(), label),
            }
        }
    }

    #[test]
    fn only_refused_data_and_configuration_are_final() {
        assert!(StoreError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(StoreError::Unavailable("down".into()).is_retryable());
        assert!(!StoreError::Config("x".into()).is_retryable());
        assert_eq!(StoreError::Config("x".into()).class(), ErrorClass::Config);
        let refused = StoreError::Data {
            sqlstate: "22001".into(),
            message: "too long".into(),
            source: None,
        };
        assert!(!refused.is_retryable());
        assert_eq!(refused.class(), ErrorClass::Data);
    }
}
