//! Every way a request can fail, and the one function that maps each to an
//! HTTP status and a JSON body `{"error": "<kind>", "detail": "<what exactly>"}`.
//!
//! Alertmanager retries 5xx (and transport errors) and drops every other
//! status for good, 429 included. So anything that may succeed later is a 503
//! with `Retry-After`; a 4xx is only for a request that can never succeed.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::history::HistoryError;
use crate::parse::ParseError;
use crate::queue::{Failure, QueueError};
use crate::spool::AppendError;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("no such path")]
    NotFound,
    #[error("method not allowed; use {0}")]
    MethodNotAllowed(&'static str),
    #[error("missing or invalid credentials")]
    Unauthorized { challenge: &'static str },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("alerts not committed: {0}")]
    Store(Failure),
    #[error("alerts not committed within {0:?}")]
    CommitTimeout(Duration),
    /// `durability: spool`: the request could not be made durable.
    #[error("alerts not made durable: {0}")]
    Spool(AppendError),
    #[error("alerts not made durable: the spool did not sync within {0:?}")]
    SyncTimeout(Duration),
    #[error("not ready: {0}")]
    NotReady(String),
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Our bug, not the sender's: a 5xx, so Alertmanager retries.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngressError {
    pub fn status(&self) -> StatusCode {
        use IngressError::*;
        match self {
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRead(_) | Parse(_) | Store(Failure::Rejected(_)) => StatusCode::BAD_REQUEST,
            // A body that arrives too slowly may arrive in time next try.
            BodyTimeout(_)
            | Queue(_)
            | Store(Failure::Unavailable(_))
            | CommitTimeout(_)
            | Spool(_)
            | SyncTimeout(_)
            | NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            History(e) => e.status(),
        }
    }

    /// The machine-readable `error` member.
    pub fn kind(&self) -> &'static str {
        use IngressError::*;
        match self {
            NotFound => "not_found",
            MethodNotAllowed(_) => "method_not_allowed",
            Unauthorized { .. } => "unauthorized",
            UnsupportedMediaType(_) => "unsupported_media_type",
            PayloadTooLarge { .. } => "payload_too_large",
            BodyTimeout(_) => "body_timeout",
            BodyRead(_) => "bad_body",
            Parse(ParseError::Json(_)) => "invalid_json",
            Parse(ParseError::Payload(_)) => "invalid_payload",
            Queue(QueueError::Full) => "queue_full",
            Queue(QueueError::Closed) => "shutting_down",
            Store(Failure::Unavailable(_)) | CommitTimeout(_) => "database_unavailable",
            Store(Failure::Rejected(_)) => "rejected_by_database",
            Spool(AppendError::Full { .. }) => "spool_full",
            Spool(AppendError::Queue(QueueError::Full)) => "queue_full",
            Spool(AppendError::Queue(QueueError::Closed)) => "shutting_down",
            Spool(AppendError::Write(_) | AppendError::WriterStopped) | SyncTimeout(_) => {
                "spool_unavailable"
            }
            NotReady(_) => "not_ready",
            Internal(_) => "internal",
            History(e) => e.kind(),
        }
    }

    /// The HTTP answer. `retry_after` goes with every 503.
    pub fn into_response(self, retry_after: Duration) -> Response<Full<Bytes>> {
        let status = self.status();
        let mut response = json_response(
            status,
            &ErrorBody {
                error: self.kind(),
                detail: &self.to_string(),
            },
        );
        let headers = response.headers_mut();
        match &self {
            IngressError::Unauthorized { challenge } => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            IngressError::MethodNotAllowed(allow) => {
                headers.insert(ALLOW, HeaderValue::from_static(allow));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
            }
            _ => {}
        }
        response
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    detail: &'a str,
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = simd_json::to_vec(body).expect("response bodies always serialize");
    json_bytes_response(status, Bytes::from(bytes))
}

/// A response whose body is JSON text already.
pub fn json_bytes_response(status: StatusCode, json: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(json));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(e: IngressError) -> u16 {
        e.into_response(Duration::from_secs(5)).status().as_u16()
    }

    #[test]
    fn status_mapping() {
        assert_eq!(status_of(IngressError::NotFound), 404);
        assert_eq!(status_of(IngressError::MethodNotAllowed("POST")), 405);
        assert_eq!(
            status_of(IngressError::Unauthorized {
                challenge: "Bearer"
            }),
            401
        );
        assert_eq!(
            status_of(IngressError::UnsupportedMediaType("x".into())),
            415
        );
        assert_eq!(status_of(IngressError::PayloadTooLarge { limit: 1 }), 413);
        assert_eq!(status_of(ParseError::Json("x".into()).into()), 400);
        assert_eq!(status_of(ParseError::Payload("x".into()).into()), 400);
        assert_eq!(
            status_of(IngressError::Store(Failure::Rejected("x".into()))),
            400
        );
        for unavailable in [
            IngressError::Queue(QueueError::Full),
            IngressError::Queue(QueueError::Closed),
            IngressError::Store(Failure::Unavailable("down".into())),
            IngressError::CommitTimeout(Duration::from_secs(1)),
            IngressError::Spool(AppendError::Full { max_bytes: 1 }),
            IngressError::Spool(AppendError::Queue(QueueError::Full)),
            IngressError::Spool(AppendError::Write(std::sync::Arc::new(
                std::io::ErrorKind::StorageFull.into(),
            ))),
            IngressError::Spool(AppendError::WriterStopped),
            IngressError::SyncTimeout(Duration::from_secs(1)),
            IngressError::NotReady("x".into()),
        ] {
            assert_eq!(status_of(unavailable), 503);
        }
    }

    #[test]
    fn retryable_failures_are_503_with_retry_after_and_never_429() {
        let response = IngressError::Queue(QueueError::Full).into_response(Duration::from_secs(7));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "7");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn body_is_json_with_kind_and_detail() {
        let response = IngressError::from(ParseError::Payload(
            "alerts[3].startsAt: invalid RFC 3339 timestamp".into(),
        ))
        .into_response(Duration::from_secs(1));
        let body = response.into_body();
        let bytes = futures_body(body);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["error"], "invalid_payload");
        assert_eq!(
            value["detail"],
            "alerts[3].startsAt: invalid RFC 3339 timestamp"
        );
    }

    fn futures_body(body: Full<Bytes>) -> Bytes {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(body.collect()).unwrap().to_bytes()
    }
}
