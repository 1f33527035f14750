//! A fixed pool of worker threads: receive requests from the queue, gather a
//! batch (size or linger),
//! write it in one round trip, then answer every request it completes
//! (group commit).
//!
//! The first worker writes whatever is queued, one batch after another. The
//! others stand by and write only while the lead leaves more than a full
//! batch queued, or what they find queued every `BACKLOG_CHECK`: every commit
//! costs PostgreSQL as much CPU as 5 to 13 one-alert rows (issue #3),
//! so small batches written side by side cost it more than one larger batch
//! for the same requests.

mod batch;

pub use batch::Batch;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::runtime::Runtime;

use crate::config::{BatchConfig, DatabaseConfig};
use crate::model::Interner;
use crate::queue::{Failure, Job, Receipt};
use crate::store::{BatchSink, Part, StoreError};
use crate::telemetry::Metrics;

/// Pause before writing a failed batch again; grows linearly per attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// How often a standby worker looks at the queue unbidden, so that requests
/// are not left waiting behind a lead stuck on a slow write.
const BACKLOG_CHECK: Duration = Duration::from_millis(50);

/// What every worker shares.
pub struct Shared {
    pub interner: Arc<Interner>,
    pub metrics: Arc<Metrics>,
}

/// How the workers batch and retry.
#[derive(Clone, Debug)]
pub struct Settings {
    pub batch: BatchConfig,
    pub max_attempts: u32,
    /// How often a standby looks at the queue unbidden (`BACKLOG_CHECK`).
    pub backlog_check: Duration,
}

impl Settings {
    pub fn new(batch: &BatchConfig, database: &DatabaseConfig) -> Settings {
        Settings {
            batch: batch.clone(),
            max_attempts: database.max_attempts,
            backlog_check: BACKLOG_CHECK,
        }
    }
}

pub struct Workers {
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// One worker thread per sink. Each worker owns its sink (for PostgreSQL,
    /// a dedicated connection) and a single-threaded tokio runtime that drives
    /// it on the worker's own thread: a batch's round trip then wakes no other
    /// thread, and never waits behind HTTP work on the main runtime. The
    /// first is the lead; the others stand by (see the module's doc).
    pub fn spawn<S: BatchSink>(
        settings: Settings,
        rx: Receiver<Job>,
        shared: Arc<Shared>,
        sinks: Vec<S>,
    ) -> std::io::Result<Workers> {
        // Rung by the lead when it leaves more queued than a full batch; it
        // holds the only sender, so standbys learn when it stops.
        let (backlog_tx, backlog_rx) = crossbeam_channel::bounded(1);
        let mut backlog_tx = Some(backlog_tx);
        let threads = sinks
            .into_iter()
            .enumerate()
            .map(|(i, sink)| {
                let role = match backlog_tx.take() {
                    Some(tx) => Role::Lead(tx),
                    None => Role::Standby(backlog_rx.clone()),
                };
                let worker = Worker {
                    role,
                    rx: rx.clone(),
                    shared: shared.clone(),
                    settings: settings.clone(),
                    sink,
                    runtime: tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?,
                };
                std::thread::Builder::new()
                    .name(format!("ingest-worker-{i}"))
                    .spawn(move || worker.run())
            })
            .collect::<Result<_, _>>()?;
        Ok(Workers { threads })
    }

    /// Waits for the workers to drain the (closed) queue; those still busy at
    /// `deadline` are left behind, and their requests were answered 503 by
    /// their own deadline.
    pub fn join(self, deadline: Instant) -> bool {
        let mut all = true;
        for thread in self.threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                all = false;
            }
        }
        all
    }
}

enum Role {
    /// Writes whatever is queued; rings standbys when a full batch is left.
    Lead(Sender<()>),
    /// Writes only when rung, or when `backlog_check` passes with requests
    /// queued; leads once the lead has stopped.
    Standby(Receiver<()>),
}

struct Worker<S> {
    role: Role,
    rx: Receiver<Job>,
    shared: Arc<Shared>,
    settings: Settings,
    sink: S,
    runtime: Runtime,
}

impl<S: BatchSink> Worker<S> {
    fn run(self) {
        match &self.role {
            Role::Lead(backlog) => self.lead(Some(backlog)),
            Role::Standby(backlog) => {
                while let Ok(()) | Err(RecvTimeoutError::Timeout) =
                    backlog.recv_timeout(self.settings.backlog_check)
                {
                    self.take_backlog();
                }
                // The lead has stopped. At shutdown it has drained the closed
                // queue, and this returns at once; if a bug killed it, this
                // worker leads from now on.
                self.lead(None)
            }
        }
    }

    /// Writes whatever is queued, batch after batch, until the queue is
    /// closed and empty; rings `backlog` when it leaves a full batch queued.
    fn lead(&self, backlog: Option<&Sender<()>>) {
        let mut carry = None;
        while let Some(batch) = self.collect(carry.take(), Wait::ForFirst) {
            if let Some(backlog) = backlog.filter(|_| batch.is_full() && !self.rx.is_empty()) {
                let _ = backlog.try_send(());
            }
            carry = self.flush_guarded(batch);
        }
    }

    /// Writes what is queued now, without waiting for more; goes on only
    /// while batches fill (or a request spans several).
    fn take_backlog(&self) {
        let mut carry = None;
        while let Some(batch) = self.collect(carry.take(), Wait::No) {
            let full = batch.is_full();
            carry = self.flush_guarded(batch);
            if !full && carry.is_none() {
                return;
            }
        }
    }

    /// A bug that panics while writing must not take the worker (and with
    /// the last one, all ingestion) down: the batch's requests are dropped
    /// unanswered, which their handlers answer 503.
    fn flush_guarded(&self, batch: Batch<Job>) -> Option<Job> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.flush(batch))).unwrap_or_else(
            |_| {
                tracing::error!("a batch write panicked; its requests were answered 503");
                None
            },
        )
    }

    /// Starts a batch with `carry` or a first request — blocking for it with
    /// `Wait::ForFirst` — then takes those already queued until the batch is
    /// full; with a `batch.linger`, and only if more were queued, keeps
    /// taking them until it has passed. `None` when there is no first
    /// request: the queue is closed and empty, or (`Wait::No`) empty.
    fn collect(&self, carry: Option<Job>, wait: Wait) -> Option<Batch<Job>> {
        let mut batch = Batch::new(self.settings.batch.max_rows);
        match carry.and_then(|job| self.live(job)) {
            Some(job) => batch.add(job),
            None => loop {
                let next = match wait {
                    Wait::ForFirst => self.rx.recv().ok()?,
                    Wait::No => self.rx.try_recv().ok()?,
                };
                if let Some(job) = self.live(next) {
                    batch.add(job);
                    break;
                }
            },
        }
        // Linger only under load: with nothing else queued, waiting for company
        // would add `linger` to every request while the database idles.
        let linger = !self.rx.is_empty() && !self.settings.batch.linger.is_zero();
        let linger_until = Instant::now() + self.settings.batch.linger;
        while !batch.is_full() {
            let next = match self.rx.try_recv() {
                Ok(job) => job,
                Err(_) if linger => match self.rx.recv_deadline(linger_until) {
                    Ok(job) => job,
                    Err(_) => break,
                },
                Err(_) => break,
            };
            if let Some(job) = self.live(next) {
                batch.add(job);
            }
        }
        Some(batch)
    }

    /// Drops a request whose requester has already been answered 503.
    fn live(&self, job: Job) -> Option<Job> {
        if job.deadline > Instant::now() {
            return Some(job);
        }
        job.answer(Err(Failure::Unavailable(
            "timed out waiting in the queue".into(),
        )));
        None
    }

    /// Writes the batch and answers the requests it completes; returns the
    /// request that goes on in the next batch, if any.
    fn flush(&self, batch: Batch<Job>) -> Option<Job> {
        // Counted as they were merged, like every delivery is counted as received.
        self.shared
            .metrics
            .alerts_unchanged
            .inc_by(batch.unchanged as u64);
        let result = self.write(&batch, Part::Whole);
        match result {
            Ok(()) => self.answer_all(batch, Ok(())),
            Err(e) if !e.is_retryable() => self.write_each(batch),
            Err(e) => self.answer_all(batch, Err(Failure::Unavailable(e.to_string()))),
        }
    }

    /// One request's data was refused: write each request on its own, so
    /// that only the one that carries the bad row is refused.
    fn write_each(&self, batch: Batch<Job>) -> Option<Job> {
        let mut outcomes: Vec<Result<(), Failure>> = (0..batch.job_count())
            .map(|i| match self.write(&batch, Part::Request(i)) {
                Ok(()) => Ok(()),
                Err(e @ StoreError::Data { .. }) => Err(Failure::Rejected(e.to_string())),
                Err(e) => Err(Failure::Unavailable(e.to_string())),
            })
            .collect();
        // A request whose alert was carried by a later request's row is not
        // stored if that row was not: it must be retried, not acknowledged.
        for (owner, dependent) in batch.dependencies() {
            if outcomes[owner].is_err() && outcomes[dependent].is_ok() {
                outcomes[dependent] = Err(Failure::Unavailable(
                    "a newer version of one of its alerts, sent in another request, was not stored"
                        .into(),
                ));
            }
        }
        let mut carry = None;
        for ((_, job, complete), outcome) in batch.into_jobs().zip(outcomes) {
            carry = answer(job, complete, outcome);
        }
        carry
    }

    fn answer_all(&self, batch: Batch<Job>, outcome: Result<(), Failure>) -> Option<Job> {
        let mut carry = None;
        for (_, job, complete) in batch.into_jobs() {
            carry = answer(job, complete, outcome.clone());
        }
        carry
    }

    /// Writes the batch (or one request's part), retrying what may pass.
    fn write(&self, batch: &Batch<Job>, part: Part) -> Result<(), StoreError> {
        let mut rows = batch.rows(&self.shared.interner, part);
        if let Part::Request(_) = part {
            // After a failed batch, which an earlier attempt of may have
            // committed before its answer was lost.
            rows.set_may_be_stored();
        }
        let metrics = &self.shared.metrics;
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            match self.runtime.block_on(self.sink.write_batch(&rows)) {
                Ok(written) => {
                    let (alerts, notifications) = (rows.alert_count(), rows.notification_count());
                    metrics.committed(alerts, notifications, &written, started.elapsed());
                    return Ok(());
                }
                Err(e) => {
                    metrics.db_error(e.class());
                    tracing::warn!(error = %e, attempt, "batch write failed");
                    if !e.is_retryable() || attempt >= self.settings.max_attempts {
                        return Err(e);
                    }
                    std::thread::sleep(RETRY_BACKOFF * attempt);
                    // It may have committed before the failure reached us.
                    rows.set_may_be_stored();
                    attempt += 1;
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Wait {
    ForFirst,
    No,
}

/// Answers a complete request; hands back an incomplete one that succeeded
/// so far (a failed one is answered at once: its remaining alerts are moot).
fn answer(job: Job, complete: bool, outcome: Result<(), Failure>) -> Option<Job> {
    match outcome {
        Ok(()) if !complete => Some(job),
        Ok(()) => {
            let alerts = job.delivery.alert_count;
            job.answer(Ok(Receipt { alerts }));
            None
        }
        Err(failure) => {
            job.answer(Err(failure));
            None
        }
    }
}

#[cfg(test)]
mod tests;
