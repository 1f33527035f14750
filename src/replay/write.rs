//! Writes the sorted notifications in order, in batches of up to
//! `batch.max_rows` alerts, with the workers' batch statement
//! ([`Store::write`]).
//!
//! A batch never holds one episode twice (`ON CONFLICT DO UPDATE` cannot
//! touch a row twice in one statement): the batch is written before a
//! repeat joins the next one, so each episode's events follow notification
//! order. A notification's row goes in the batch of its last alert, so that
//! a stored notification means all its alerts are stored.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use indicatif::ProgressBar;
use tokio::runtime::Runtime;

use super::{Captured, Rejected, Summary};
use crate::model::{unix_micros, Episode, Interner};
use crate::store::{AlertRow, NotificationRow, Part, Rows, Store, StoreError, Written};

/// Pause before the second attempt of a failed write; doubles after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

pub struct Writer<'a> {
    pub store: &'a Store,
    pub runtime: &'a Runtime,
    pub interner: &'a Interner,
    /// `batch.max_rows`: most alerts per round trip.
    pub max_rows: usize,
    /// `database.max_attempts`: tries for a write failing for a reason that may pass.
    pub max_attempts: u32,
    /// Advanced by one per alert written or skipped.
    pub progress: ProgressBar,
}

/// An alert of the batch being gathered: `(notification, alert)` indexes
/// into the sorted notifications.
type Slot = (usize, usize);

#[derive(Default)]
struct Batch {
    alerts: Vec<Slot>,
    episodes: HashSet<Episode>,
    /// Notifications whose last alert is in this batch.
    complete: Vec<usize>,
}

/// The writer's memory over a whole replay.
#[derive(Default)]
struct Memory {
    /// Each episode's `updated_at` (µs) as the database held it before this
    /// replay wrote it; `None` when it was not stored. A version no newer is
    /// skipped, so a second replay leaves every row as the first one did.
    before: HashMap<Episode, Option<i64>>,
    /// Notifications the database refused: their later alerts are not written.
    refused: HashSet<usize>,
}

impl Writer<'_> {
    /// Writes everything in order; a failure that does not pass stops the
    /// replay, and the summary says how much is left (replaying again resumes).
    pub fn write_all(&self, all: &[Captured], summary: &mut Summary) {
        if let Err(e) = self.write_in_order(all, summary) {
            summary.aborted = Some(e.to_string());
        }
    }

    fn write_in_order(&self, all: &[Captured], summary: &mut Summary) -> Result<(), StoreError> {
        let mut memory = Memory::default();
        let mut batch = Batch::default();
        for (n, captured) in all.iter().enumerate() {
            for (a, alert) in captured.webhook.alerts.iter().enumerate() {
                let episode = alert.episode();
                if batch.alerts.len() >= self.max_rows || batch.episodes.contains(&episode) {
                    self.flush(std::mem::take(&mut batch), all, &mut memory, summary)?;
                }
                if memory.refused.contains(&n) {
                    summary.refused_alerts += 1;
                    continue;
                }
                batch.alerts.push((n, a));
                batch.episodes.insert(episode);
            }
            batch.complete.push(n);
        }
        self.flush(batch, all, &mut memory, summary)
    }

    /// Writes one batch, less the versions no newer than the database held.
    fn flush(
        &self,
        mut batch: Batch,
        all: &[Captured],
        memory: &mut Memory,
        summary: &mut Summary,
    ) -> Result<(), StoreError> {
        self.progress.inc(batch.alerts.len() as u64);
        self.learn_before(&batch.episodes, memory)?;
        let gathered = batch.alerts.len();
        batch
            .alerts
            .retain(|&slot| is_newer(all, slot, &memory.before));
        summary.skipped += (gathered - batch.alerts.len()) as u64;
        batch.complete.retain(|n| !memory.refused.contains(n));
        if batch.alerts.is_empty() && batch.complete.is_empty() {
            return Ok(());
        }
        match self.write(&self.rows(&batch, all, Part::Whole)) {
            Ok(written) => {
                count(summary, batch.alerts.len(), written);
                Ok(())
            }
            Err(StoreError::Data { .. }) => self.write_each(&batch, all, memory, summary),
            Err(e) => Err(e),
        }
    }

    /// Asks the database when the episodes it has not been asked about last
    /// changed; later versions of them are this replay's own.
    fn learn_before(
        &self,
        episodes: &HashSet<Episode>,
        memory: &mut Memory,
    ) -> Result<(), StoreError> {
        let unknown: Vec<Episode> = episodes
            .iter()
            .filter(|e| !memory.before.contains_key(e))
            .copied()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let stored = self.retry(|| self.store.last_changes(&unknown))?;
        for episode in unknown {
            memory.before.insert(episode, stored.get(&episode).copied());
        }
        Ok(())
    }

    /// PostgreSQL refused a row for good: writes each notification's part
    /// alone, so that only the one carrying the bad row is rejected.
    fn write_each(
        &self,
        batch: &Batch,
        all: &[Captured],
        memory: &mut Memory,
        summary: &mut Summary,
    ) -> Result<(), StoreError> {
        let alerts = batch.alerts.iter().map(|&(n, _)| n);
        let notifications: BTreeSet<usize> = alerts.chain(batch.complete.iter().copied()).collect();
        for n in notifications {
            let rows = self.rows(batch, all, Part::Request(n));
            match self.write(&rows) {
                Ok(written) => count(summary, rows.alert_count(), written),
                Err(StoreError::Data {
                    sqlstate, message, ..
                }) => {
                    summary.refused_alerts += rows.alert_count() as u64;
                    let reason = format!("rejected by the database: {sqlstate}: {message}");
                    summary
                        .rejected
                        .push(Rejected::new(all[n].source.clone(), reason));
                    memory.refused.insert(n);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The batch's rows, or only those of one notification (`all`'s index).
    fn rows<'c>(&'c self, batch: &Batch, all: &'c [Captured], part: Part) -> Rows<'c> {
        let mut rows = Rows::default();
        for &(n, a) in batch.alerts.iter().filter(|(n, _)| part.holds(*n)) {
            let c = &all[n];
            let receiver = &c.webhook.notification.receiver;
            let alert = &c.webhook.alerts[a];
            rows.push_alert(AlertRow::new(alert, receiver, c.received_at, self.interner));
        }
        for &n in batch.complete.iter().filter(|&&n| part.holds(n)) {
            let c = &all[n];
            let alerts = c.webhook.alerts.len();
            let row =
                NotificationRow::new(&c.webhook.notification, alerts, c.received_at, c.request_id);
            rows.push_notification(row);
        }
        // A replay may repeat what was stored, by the service or another replay.
        rows.set_may_be_stored();
        rows
    }

    fn write(&self, rows: &Rows<'_>) -> Result<Written, StoreError> {
        self.retry(|| self.store.write(rows))
    }

    /// Runs `op` until it succeeds, fails for good, or has had
    /// `max_attempts` tries, pausing longer after each failure.
    fn retry<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let (mut attempt, mut backoff) = (1, FIRST_BACKOFF);
        loop {
            match self.runtime.block_on(op()) {
                Err(e) if e.is_retryable() && attempt < self.max_attempts => {
                    let warn =
                        || tracing::warn!(error = %e, attempt, "database failed; trying again");
                    self.progress.suspend(warn);
                    std::thread::sleep(backoff);
                    (attempt, backoff) = (attempt + 1, backoff * 2);
                }
                result => return result,
            }
        }
    }
}

/// Whether this version is newer than what the database held before the
/// replay reached its episode.
fn is_newer(all: &[Captured], (n, a): Slot, before: &HashMap<Episode, Option<i64>>) -> bool {
    let episode = all[n].webhook.alerts[a].episode();
    let received_at = unix_micros(all[n].received_at);
    before
        .get(&episode)
        .copied()
        .flatten()
        .is_none_or(|stored| stored < received_at)
}

fn count(summary: &mut Summary, alerts: usize, written: Written) {
    summary.stored += written.changed;
    summary.skipped += alerts as u64 - written.changed;
}
