//! A batch: the alerts of one or more requests that one worker writes in one
//! round trip. A request's alerts may span batches: the batch records how
//! far into each request it reaches, and only a request whose last alert is in
//! a committed batch is answered.
//!
//! A batch holds requests of any type that carries a [`Delivery`]: queued
//! jobs with a requester waiting (`durability: database`), or records
//! loaded from the spool.

use std::collections::HashMap;

use crate::model::{from_unix_micros, unix_micros, Alert, Delivery, Episode, Interner};
use crate::store::{AlertRow, NotificationRow, Rows};

use super::cache::{CacheView, EpisodeCache, EpisodeState};

struct Entry {
    alert: Alert,
    state: EpisodeState,
    /// The version this instance stored the same state with (the cache's):
    /// the write then only moves the row's version, if the row still holds it.
    stored_version: Option<i64>,
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
    /// `ON CONFLICT DO UPDATE` cannot touch a row twice), the later version wins.
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
    pub fn add(&mut self, mut job: J, cache: &EpisodeCache, interner: &Interner) {
        let room = self.max_rows.saturating_sub(self.placed).max(1);
        let alerts = &mut job.as_mut().webhook.alerts;
        let take = room.min(alerts.len());
        let slot = self.jobs.len();
        let mut cache = cache.view();
        for alert in alerts.drain(..take) {
            self.place(alert, slot, &mut cache, interner);
        }
        self.placed += take;
        self.jobs.push(job);
    }

    fn place(&mut self, alert: Alert, job: usize, cache: &mut CacheView<'_>, interner: &Interner) {
        let episode = alert.episode();
        let state = EpisodeState::of(&alert, interner);
        let entry = Entry {
            stored_version: cache.stored_version(&episode, &state),
            alert,
            state,
            job,
            superseded: Vec::new(),
        };
        if let Some(&i) = self.by_episode.get(&episode) {
            let replaced = std::mem::replace(&mut self.entries[i], entry);
            let superseded = &mut self.entries[i].superseded;
            *superseded = replaced.superseded;
            superseded.push(replaced.job);
            self.unchanged += 1;
        } else {
            self.by_episode.insert(episode, self.entries.len());
            self.entries.push(entry);
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

    /// Encodes the batch, or only what request `only` contributed to it.
    pub fn rows<'a>(&'a self, interner: &'a Interner, only: Option<usize>) -> Rows<'a> {
        let mut rows = Rows::default();
        let wanted = |job: usize| only.is_none_or(|o| o == job);
        for entry in self.entries.iter().filter(|e| wanted(e.job)) {
            let job = self.jobs[entry.job].as_ref();
            let receiver = &job.webhook.notification.receiver;
            let mut row = AlertRow::new(&entry.alert, receiver, job.received_at, interner);
            row.stored_version = entry.stored_version.and_then(from_unix_micros);
            rows.push_alert(row);
        }
        for (_, job) in self.jobs.iter().enumerate().filter(|(i, _)| wanted(*i)) {
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

    /// What this batch writes, for the cache (all, or one request's): each
    /// episode's state and version (its delivery's receipt time, µs).
    pub fn states(
        &self,
        only: Option<usize>,
    ) -> impl Iterator<Item = (Episode, EpisodeState, i64)> + '_ {
        self.entries
            .iter()
            .filter(move |e| only.is_none_or(|o| o == e.job))
            .map(|e| {
                let version = unix_micros(self.jobs[e.job].as_ref().received_at);
                (e.alert.episode(), e.state, version)
            })
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

    fn job(alerts: Vec<Alert>) -> Job {
        let deadline = Instant::now() + Duration::from_secs(60);
        Job::new(
            testing::webhook(alerts),
            time::OffsetDateTime::now_utc(),
            deadline,
        )
        .0
    }

    #[test]
    fn a_large_request_spans_batches_and_gets_its_notification_last() {
        let interner = Interner::new(100);
        let cache = EpisodeCache::new(0);
        let mut carried = Some(job((0..250)
            .map(|i| alert(i, Status::Firing, &interner))
            .collect()));
        let mut counts = Vec::new();
        while let Some(job) = carried.take() {
            let mut batch = Batch::<Job>::new(100);
            batch.add(job, &cache, &interner);
            let rows = batch.rows(&interner, None);
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
    fn firing_batch() -> (Interner, EpisodeCache, Batch<Job>) {
        let interner = Interner::new(100);
        let cache = EpisodeCache::new(0);
        let mut batch = Batch::new(100);
        batch.add(
            job(vec![alert(1, Status::Firing, &interner)]),
            &cache,
            &interner,
        );
        (interner, cache, batch)
    }

    #[test]
    fn one_episode_twice_in_a_batch_is_written_once_in_its_later_version() {
        let (interner, cache, mut batch) = firing_batch();
        batch.add(
            job(vec![alert(1, Status::Resolved, &interner)]),
            &cache,
            &interner,
        );
        assert_eq!(batch.unchanged, 1);
        let states: Vec<_> = batch.states(None).collect();
        assert_eq!(states.len(), 1);
        assert_eq!(
            states[0].1,
            EpisodeState::of(&alert(1, Status::Resolved, &interner), &interner)
        );
        let rows = batch.rows(&interner, None);
        assert_eq!((rows.alert_count(), rows.notification_count()), (1, 2));
        assert_eq!(
            batch.rows(&interner, Some(0)).alert_count(),
            0,
            "the later request carries it"
        );
    }

    #[test]
    fn another_delivery_of_an_episode_in_the_batch_is_seen() {
        let (interner, _cache, batch) = firing_batch();
        let repeat = job(vec![alert(1, Status::Firing, &interner)]);
        let resolved = job(vec![alert(1, Status::Resolved, &interner)]);
        let other = job(vec![alert(2, Status::Resolved, &interner)]);
        assert!(batch.holds_an_episode_of(&repeat));
        assert!(batch.holds_an_episode_of(&resolved));
        assert!(!batch.holds_an_episode_of(&other));
    }

    #[test]
    fn a_repeat_of_the_cached_state_carries_its_stored_version_and_a_change_does_not() {
        let interner = Interner::new(100);
        let cache = EpisodeCache::new(10);
        let firing = alert(1, Status::Firing, &interner);
        let state = EpisodeState::of(&firing, &interner);
        cache.committed([(firing.episode(), state, 42)], &[]);
        let mut batch = Batch::<Job>::new(100);
        batch.add(job(vec![firing.clone()]), &cache, &interner);
        assert_eq!(batch.entries[0].stored_version, Some(42));
        batch.add(
            job(vec![alert(2, Status::Resolved, &interner)]),
            &cache,
            &interner,
        );
        assert_eq!(batch.entries[1].stored_version, None, "not cached");
        let mut changed = Batch::<Job>::new(100);
        changed.add(
            job(vec![alert(1, Status::Resolved, &interner)]),
            &cache,
            &interner,
        );
        assert_eq!(changed.entries[0].stored_version, None, "another state");
        cache.committed([], &[firing.episode()]);
        let mut forgotten = Batch::<Job>::new(100);
        forgotten.add(job(vec![firing]), &cache, &interner);
        assert_eq!(
            forgotten.entries[0].stored_version, None,
            "unapplied: forgotten"
        );
    }
}
