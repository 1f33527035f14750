//! The bounded hand-off between ingress (async) and the workers (threads).
//!
//! Async code only ever `try_enqueue`s: a full queue is answered 503 at once
//! (Alertmanager retries 5xx), never waited on, and never a 429 (which
//! Alertmanager would drop for good). Capacity is counted in requests.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::RwLock;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::model::Webhook;

/// One webhook request on its way to PostgreSQL.
pub struct Job {
    pub webhook: Webhook,
    /// Alerts in the request as received (`webhook.alerts` is drained as
    /// workers place them into batches).
    pub alert_count: usize,
    pub received_at: OffsetDateTime,
    /// With `received_at`, the key of the request's `notifications` row, so
    /// that writing its batch again after an unknown outcome adds no second row.
    pub request_id: i64,
    /// After this the requester has been answered 503; a worker drops the job
    /// unwritten rather than spend the database on it.
    pub deadline: Instant,
    pub reply: oneshot::Sender<Result<Receipt, Failure>>,
}

impl Job {
    pub fn new(
        webhook: Webhook,
        received_at: OffsetDateTime,
        deadline: Instant,
    ) -> (Job, oneshot::Receiver<Result<Receipt, Failure>>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            alert_count: webhook.alerts.len(),
            webhook,
            received_at,
            request_id: next_request_id(),
            deadline,
            reply,
        };
        (job, answer)
    }

    /// Answers the requester; it may have given up waiting already.
    pub fn answer(self, result: Result<Receipt, Failure>) {
        let _ = self.reply.send(result);
    }
}

/// Distinct within a process (a counter) and, with the receipt time in the
/// key, in practice across instances too (the counter starts at a random
/// point in each process).
fn next_request_id() -> i64 {
    static NEXT: LazyLock<AtomicU64> =
        LazyLock::new(|| AtomicU64::new(RandomState::new().hash_one(std::process::id())));
    NEXT.fetch_add(1, Ordering::Relaxed) as i64
}

/// What a committed request reports back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// Alerts in the request.
    pub alerts: usize,
}

/// Why a request's alerts were not committed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Failure {
    /// May succeed later (database down, failing or too slow, shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// PostgreSQL refused this request's data; retrying will not help.
    #[error("{0}")]
    Rejected(String),
}

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    #[error("the ingest queue is full")]
    Full,
    #[error("the server is shutting down")]
    Closed,
}

/// The sending side, shared by every request handler.
pub struct Queue {
    /// `None` once closed for shutdown.
    tx: RwLock<Option<Sender<Job>>>,
    capacity: usize,
}

impl Queue {
    pub fn bounded(capacity: usize) -> (Queue, Receiver<Job>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let queue = Queue {
            tx: RwLock::new(Some(tx)),
            capacity,
        };
        (queue, rx)
    }

    pub fn try_enqueue(&self, job: Job) -> Result<(), QueueError> {
        let guard = self.tx.read();
        let tx = guard.as_ref().ok_or(QueueError::Closed)?;
        tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => QueueError::Full,
            TrySendError::Disconnected(_) => QueueError::Closed,
        })
    }

    /// Refuses new jobs; workers finish what is queued, then stop.
    pub fn close(&self) {
        self.tx.write().take();
    }

    pub fn depth(&self) -> usize {
        self.tx.read().as_ref().map_or(0, Sender::len)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn has_room(&self) -> bool {
        self.tx.read().as_ref().is_some_and(|tx| !tx.is_full())
    }
}
