//! The bounded hand-off between ingress (async) and the workers (threads).
//!
//! Async code only ever `try_enqueue`s: a full queue is answered 503 at once
//! (Alertmanager retries 5xx), never waited on, and never a 429 (which
//! Alertmanager would drop for good). Capacity is counted in requests.

use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::RwLock;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::model::{next_request_id, Delivery, Webhook};

/// One webhook request on its way to PostgreSQL (`durability: database`).
pub struct Job {
    pub delivery: Delivery,
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
            delivery: Delivery::new(webhook, received_at, next_request_id()),
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

impl AsRef<Delivery> for Job {
    fn as_ref(&self) -> &Delivery {
        &self.delivery
    }
}

impl AsMut<Delivery> for Job {
    fn as_mut(&mut self) -> &mut Delivery {
        &mut self.delivery
    }
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

/// The sending side, shared by every request handler: of jobs for the
/// workers (`durability: database`), or of records for the spool's writer.
pub struct Queue<T = Job> {
    /// `None` once closed for shutdown.
    tx: RwLock<Option<Sender<T>>>,
    capacity: usize,
}

impl<T> Queue<T> {
    pub fn bounded(capacity: usize) -> (Queue<T>, Receiver<T>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let queue = Queue {
            tx: RwLock::new(Some(tx)),
            capacity,
        };
        (queue, rx)
    }

    pub fn try_enqueue(&self, job: T) -> Result<(), QueueError> {
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
