//! A batch: the alerts of one or more requests that one worker writes in one
//! round trip. A request's alerts may span batches: the batch records how
//! far into each request it reaches, and only a request whose last alert is in
//! a committed batch is answered.
//!
//! A batch holds requests of any type that carries a [`Delivery`]: queued
//! jobs with a requester waiting (`durability: database`), or records
//! loaded from the spool.

use std::collections::hash_map::{self, HashMap};

use time::OffsetDateTime;

use crate::model::{Alert, Delivery, Episode, Interner};
use crate::store::{AlertRow, NotificationRow, Part, Rows};

struct Entry {
    alert: Alert,
    /// When the request that supplied this version was received.
    received_at: OffsetDateTime,
    /// Index into `Batch::jobs` of the request that supplied this version.
    job: usize,
    /// Earlier requests whose version of this episode this one replaced:
    /// their answer depends on this row too.
    superseded: Vec<usize>,
}

pub struct Batch<J> {
    /// Requests with alerts in this batch; only the last may be incomplete.
    jobs: Vec<J>,
    entries: Vec<Entry>,
    /// Entries by episode: one row per key per statement (PostgreSQL's
    /// `ON CONFLICT DO UPDATE` cannot touch a row twice), the version
    /// received later wins.
    by_episode: HashMap<Episode, usize>,
    /// Alerts placed in the batch, including merged ones.
    placed: usize,
    /// Alerts not written: replaced by a later version in the same batch.
    pub unchanged: usize,
    max_rows: usize,
}

impl<J: AsRef<Delivery> + AsMut<Delivery>> Batch<J> {
    pub fn new(max_rows: usize) -> Batch<J> {
        Batch {
            jobs: Vec::new(),
            entries: Vec::with_capacity(max_rows),
            by_episode: HashMap::with_capacity(max_rows),
            placed: 0,
            unchanged: 0,
            max_rows,
        }
    }

    /// Whether the batch should be written now rather than wait for more.
    pub fn is_full(&self) -> bool {
        self.placed >= self.max_rows || self.jobs.len() >= self.max_rows || self.has_partial()
    }

    /// Alerts that still fit before the batch is full.
    pub fn room(&self) -> usize {
        self.max_rows.saturating_sub(self.placed)
    }

    /// Whether `job` carries another delivery of an episode this batch
    /// holds. Written in one statement, only the later one would reach
    /// PostgreSQL, and the earlier one's place in the order of receipt
    /// would be lost (another instance may have stored a delivery received
    /// between the two): the loader, which finds many deliveries of an
    /// episode waiting in the spool after an outage, begins a new batch.
    pub fn holds_an_episode_of(&self, job: &J) -> bool {
        (job.as_ref().webhook.alerts.iter())
            .any(|alert| self.by_episode.contains_key(&alert.episode()))
    }

    /// Takes as many of `job`'s alerts as fit (all of them if they do).
    pub fn add(&mut self, mut job: J) {
        let room = self.max_rows.saturating_sub(self.placed).max(1);
        let delivery = job.as_mut();
        let received_at = delivery.received_at;
        let take = room.min(delivery.webhook.alerts.len());
        let slot = self.jobs.len();
        for alert in delivery.webhook.alerts.drain(..take) {
            self.place(alert, slot, received_at);
        }
        self.placed += take;
        self.jobs.push(job);
    }

    /// Places `alert` of request `job`, received at `received_at`. Of two
    /// versions of an episode, the one received later is written, whatever
    /// the order of the queue (two requests may be queued in the opposite
    /// order to their receipt); the other request depends on its row.
    fn place(&mut self, alert: Alert, job: usize, received_at: OffsetDateTime) {
        let episode = alert.episode();
        let entry = Entry {
            alert,
            received_at,
            job,
            superseded: Vec::new(),
        };
        // One hash per alert: the slot is looked up and, if new, filled.
        let i = match self.by_episode.entry(episode) {
            hash_map::Entry::Vacant(slot) => {
                slot.insert(self.entries.len());
                self.entries.push(entry);
                return;
            }
            hash_map::Entry::Occupied(slot) => *slot.get(),
        };
        self.unchanged += 1;
        let held = &mut self.entries[i];
        if held.received_at > received_at {
            held.superseded.push(job);
        } else {
            let replaced = std::mem::replace(held, entry);
            held.superseded = replaced.superseded;
            held.superseded.push(replaced.job);
        }
    }

    /// Whether the last request still has alerts for a later batch.
    pub fn has_partial(&self) -> bool {
        self.jobs
            .last()
            .is_some_and(|j| !j.as_ref().webhook.alerts.is_empty())
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    /// Encodes the batch, or only what one request contributed to it.
    pub fn rows<'a>(&'a self, interner: &'a Interner, part: Part) -> Rows<'a> {
        let mut rows = Rows::default();
        for entry in self.entries.iter().filter(|e| part.holds(e.job)) {
            let job = self.jobs[entry.job].as_ref();
            let receiver = &job.webhook.notification.receiver;
            rows.push_alert(AlertRow::new(
                &entry.alert,
                receiver,
                job.received_at,
                interner,
            ));
        }
        for (_, job) in self.jobs.iter().enumerate().filter(|(i, _)| part.holds(*i)) {
            let job = job.as_ref();
            if job.webhook.alerts.is_empty() {
                let n = &job.webhook.notification;
                let row = NotificationRow::new(n, job.alert_count, job.received_at, job.request_id);
                rows.push_notification(row);
            }
        }
        rows
    }

    /// `(owner, dependent)`: request `dependent` sent a version of an episode
    /// that request `owner` replaced within this batch, so `dependent` is
    /// only stored if `owner`'s row is.
    pub fn dependencies(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.entries
            .iter()
            .flat_map(|e| e.superseded.iter().map(move |&d| (e.job, d)))
    }

    /// The requests with alerts in this batch, in order.
    pub fn jobs(&self) -> impl Iterator<Item = &J> {
        self.jobs.iter()
    }

    /// Hands back the requests: `(index, job, complete)`; an incomplete one
    /// goes on in the next batch.
    pub fn into_jobs(self) -> impl Iterator<Item = (usize, J, bool)> {
        self.jobs.into_iter().enumerate().map(|(i, job)| {
            let complete = job.as_ref().webhook.alerts.is_empty();
            (i, job, complete)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::model::{testing, Status};
    use crate::queue::Job;

    fn alert(i: u64, status: Status, interner: &Interner) -> Alert {
        testing::alert(i, status, "A", interner)
    }

    fn job_at(alerts: Vec<Alert>, received_at: OffsetDateTime) -> Job {
        let deadline = Instant::now() + Duration::from_secs(60);
        Job::new(testing::webhook(alerts), received_at, deadline).0
    }

    fn job(alerts: Vec<Alert>) -> Job {
        job_at(alerts, OffsetDateTime::now_utc())
    }

    #[test]
    fn a_large_request_spans_batches_and_gets_its_notification_last() {
        let interner = Interner::new(100);
        let mut carried = Some(job((0..250)
            .map(|i| alert(i, Status::Firing, &interner))
            .collect()));
        let mut counts = Vec::new();
        while let Some(job) = carried.take() {
            let mut batch = Batch::<Job>::new(100);
            batch.add(job);
            let rows = batch.rows(&interner, Part::Whole);
            counts.push((
                rows.alert_count(),
                rows.notification_count(),
                batch.is_full(),
            ));
            drop(rows);
            let (_, job, complete) = batch.into_jobs().next().unwrap();
            carried = (!complete).then_some(job);
        }
        assert_eq!(counts, [(100, 0, true), (100, 0, true), (50, 1, false)]);
    }

    /// A batch holding one request: episode 1 firing.
    fn firing_batch() -> (Interner, Batch<Job>) {
        let interner = Interner::new(100);
        let mut batch = Batch::new(100);
        batch.add(job(vec![alert(1, Status::Firing, &interner)]));
        (interner, batch)
    }

    #[test]
    fn one_episode_twice_in_a_batch_is_written_once_in_its_later_version() {
        let (interner, mut batch) = firing_batch();
        batch.add(job(vec![alert(1, Status::Resolved, &interner)]));
        assert_eq!(batch.unchanged, 1);
        assert_eq!(batch.entries.len(), 1);
        assert_eq!(batch.entries[0].alert.status, Status::Resolved);
        let rows = batch.rows(&interner, Part::Whole);
        assert_eq!((rows.alert_count(), rows.notification_count()), (1, 2));
        assert_eq!(
            batch.rows(&interner, Part::Request(0)).alert_count(),
            0,
            "the later request carries it"
        );
        assert_eq!(batch.dependencies().collect::<Vec<_>>(), [(1, 0)]);
    }

    #[test]
    fn of_two_versions_the_one_received_later_wins_whatever_the_queue_order() {
        let interner = Interner::new(100);
        let now = OffsetDateTime::now_utc();
        let mut batch = Batch::<Job>::new(100);
        batch.add(job_at(vec![alert(1, Status::Resolved, &interner)], now));
        // Received a moment earlier, queued after it.
        let earlier = now - Duration::from_millis(1);
        batch.add(job_at(vec![alert(1, Status::Firing, &interner)], earlier));
        assert_eq!(batch.entries.len(), 1);
        assert_eq!(batch.entries[0].alert.status, Status::Resolved);
        assert_eq!(batch.rows(&interner, Part::Request(1)).alert_count(), 0);
        assert_eq!(batch.dependencies().collect::<Vec<_>>(), [(0, 1)]);
    }

    #[test]
    fn another_delivery_of_an_episode_in_the_batch_is_seen() {
        let (interner, batch) = firing_batch();
        let repeat = job(vec![alert(1, Status::Firing, &interner)]);
        let resolved = job(vec![alert(1, Status::Resolved, &interner)]);
        let other = job(vec![alert(2, Status::Resolved, &interner)]);
        assert!(batch.holds_an_episode_of(&repeat));
        assert!(batch.holds_an_episode_of(&resolved));
        assert!(!batch.holds_an_episode_of(&other));
    }
}
