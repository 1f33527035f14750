//! Keeps the history within `retention.days`, on a schedule, beside the
//! pipeline (never in it): creates the time partitions of `alert_events`
//! and `notifications` ahead of need (and for rows the default partition
//! caught), drops those past retention, and deletes resolved episodes not
//! changed within it, in bounded batches. `store::partitions` has the SQL;
//! this module decides what to do and reports it.
//!
//! Several instances may run it: an advisory lock lets one at a time do a
//! run, and the others skip theirs.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::RetentionConfig;
use crate::store::partitions::{partition_name, Maintenance, Partition, Partitioned, Range};
use crate::store::{Store, StoreError};
use crate::telemetry::{Metrics, OutcomeLabel, TableLabel};

/// Bound on one run, for a server that stopped answering (its statements
/// are bounded by the server itself): the session is then closed, and the
/// next run starts afresh.
const RUN_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Bound on taking and releasing the lock (a round trip or two).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Whose clock a run reads.
#[derive(Clone, Copy, Debug)]
enum Clock {
    /// The database's `now()`, so that an instance whose clock is wrong
    /// cannot cut history off early.
    Database,
    /// The tests' clock.
    Fixed(OffsetDateTime),
}

/// What a run does besides creating partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Creates partitions and deletes nothing (`retention.enabled: false`,
    /// and `alert-ingest migrate`).
    PartitionsOnly,
    /// Also drops partitions and deletes rows past `retention.days`.
    PartitionsAndDeletes,
}

/// What one run did.
#[derive(Debug, Default)]
pub struct Report {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
    /// Rows moved out of default partitions into new ones.
    pub moved: u64,
    /// Rows deleted from default partitions, past retention.
    pub deleted_events: u64,
    pub deleted_notifications: u64,
    /// Resolved episodes deleted from `alerts`.
    pub deleted_episodes: u64,
    /// How far ahead of now every partitioned table is covered.
    pub horizon: Duration,
    /// Steps that failed (a lock not granted in time…); tried again next run.
    pub errors: Vec<String>,
}

pub struct Retention {
    store: Store,
    config: RetentionConfig,
    metrics: Arc<Metrics>,
}

impl Retention {
    pub fn new(store: Store, config: RetentionConfig, metrics: Arc<Metrics>) -> Retention {
        Retention {
            store,
            config,
            metrics,
        }
    }

    /// Runs now, then every `retention.interval`, for ever (the caller
    /// aborts the task on shutdown; an aborted run's transaction rolls back).
    /// A new configuration from `reloads` applies at once, with a run.
    pub async fn run_forever(mut self, mut reloads: watch::Receiver<RetentionConfig>) {
        let mut every = schedule(self.config.interval);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    self.run_and_report().await;
                }
                // A new interval's first tick is at once: the run follows.
                // (Once the sender is gone this branch no longer matches.)
                Ok(()) = reloads.changed() => {
                    self.config = reloads.borrow_and_update().clone();
                    every = schedule(self.config.interval);
                }
            }
        }
    }

    /// One run at the database's time, logged and counted.
    async fn run_and_report(&self) {
        let outcome = match self.run(Clock::Database, self.scope()).await {
            Ok(Some(report)) => {
                self.record(&report);
                if report.errors.is_empty() {
                    "completed"
                } else {
                    "failed"
                }
            }
            Ok(None) => {
                tracing::debug!("retention: another instance holds the lock; skipped");
                "skipped"
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention run failed");
                "failed"
            }
        };
        self.metrics
            .retention_runs
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// `prepare` now, logged; for startup, where a failure only means the
    /// default partition catches rows until the next run.
    pub async fn prepare_and_report(&self) {
        match self.prepare().await {
            Ok(Some(report)) => self.record(&report),
            Ok(None) => tracing::debug!("partitions: another instance is making them"),
            Err(e) => tracing::warn!(error = %e, "cannot create partitions yet"),
        }
    }

    /// One run at `now`; `None` when another instance is running one.
    pub async fn run_once(&self, now: OffsetDateTime) -> Result<Option<Report>, StoreError> {
        self.run(Clock::Fixed(now), self.scope()).await
    }

    /// What a scheduled run does under the current configuration.
    fn scope(&self) -> Scope {
        if self.config.enabled {
            Scope::PartitionsAndDeletes
        } else {
            Scope::PartitionsOnly
        }
    }

    /// Creates the partitions a run would, at the database's time, and
    /// deletes nothing (`alert-ingest migrate` leaves a database ready to
    /// write to).
    pub async fn prepare(&self) -> Result<Option<Report>, StoreError> {
        self.run(Clock::Database, Scope::PartitionsOnly).await
    }

    async fn run(&self, clock: Clock, scope: Scope) -> Result<Option<Report>, StoreError> {
        let locked = tokio::time::timeout(CONTROL_TIMEOUT, self.store.maintenance()).await;
        let Some(mut session) = locked.unwrap_or(Err(StoreError::Timeout(CONTROL_TIMEOUT)))? else {
            return Ok(None);
        };
        let run = async {
            let now = match clock {
                Clock::Fixed(now) => now,
                Clock::Database => session.now().await?,
            };
            self.run_locked(&mut session, now, scope).await
        };
        match tokio::time::timeout(RUN_TIMEOUT, run).await {
            Ok(result) => {
                if tokio::time::timeout(CONTROL_TIMEOUT, session.release())
                    .await
                    .is_err()
                {
                    tracing::warn!("retention: releasing the lock timed out");
                }
                result.map(Some)
            }
            Err(_) => {
                session.discard();
                Err(StoreError::Timeout(RUN_TIMEOUT))
            }
        }
    }

    async fn run_locked(
        &self,
        session: &mut Maintenance,
        now: OffsetDateTime,
        scope: Scope,
    ) -> Result<Report, StoreError> {
        let mut report = Report {
            horizon: Duration::MAX,
            ..Report::default()
        };
        let cutoff = now - time::Duration::days(self.config.days.into());
        let batch = self.config.delete_batch as i64;
        for table in Partitioned::ALL {
            let partitions = self
                .create_partitions(session, table, now, cutoff, &mut report)
                .await?;
            if scope == Scope::PartitionsOnly {
                continue;
            }
            for partition in expired(&partitions, cutoff) {
                match session.drop_partition(&partition).await {
                    Ok(()) => report.dropped.push(partition.name),
                    Err(e) => report
                        .errors
                        .push(format!("dropping {}: {e}", partition.name)),
                }
            }
            let deleted = session.delete_default_before(table, cutoff, batch).await?;
            match table {
                Partitioned::AlertEvents => report.deleted_events += deleted,
                Partitioned::Notifications => report.deleted_notifications += deleted,
            }
        }
        if scope == Scope::PartitionsAndDeletes {
            report.deleted_episodes = session.delete_episodes_before(cutoff, batch).await?;
        }
        Ok(report)
    }

    /// Creates `table`'s missing partitions from today (or from the oldest
    /// row within retention that its default partition holds) to
    /// `premake` partitions ahead. Returns the partitions `table` then has.
    async fn create_partitions(
        &self,
        session: &mut Maintenance,
        table: Partitioned,
        now: OffsetDateTime,
        cutoff: OffsetDateTime,
        report: &mut Report,
    ) -> Result<Vec<Partition>, StoreError> {
        let oldest = session.oldest_in_default(table, cutoff).await?;
        let wanted = wanted(&self.config, now, oldest);
        let existing: Vec<Range> = (session.partitions(table).await?)
            .iter()
            .map(|p| p.range)
            .collect();
        let mut missing = gaps(wanted, &existing);
        // Today's and the future's first: until they exist, writes go
        // through the default partition, which a catch-up move locks.
        // Then the past, most recent first.
        missing.sort_by_key(|r| {
            let from = r.from.unix_timestamp();
            if r.to > now {
                (0, from)
            } else {
                (1, -from)
            }
        });
        for range in missing {
            match session.create(table, range).await {
                Ok(moved) => {
                    report.created.push(partition_name(table, range.from));
                    report.moved += moved;
                }
                Err(e) => report.errors.push(format!(
                    "creating {}: {e}",
                    partition_name(table, range.from)
                )),
            }
        }
        let partitions = session.partitions(table).await?;
        report.horizon = report.horizon.min(covered_ahead(&partitions, now));
        Ok(partitions)
    }

    fn record(&self, report: &Report) {
        let m = &self.metrics;
        m.retention_partitions_created
            .inc_by(report.created.len() as u64);
        m.retention_partitions_dropped
            .inc_by(report.dropped.len() as u64);
        for (table, rows) in [
            ("alerts", report.deleted_episodes),
            (Partitioned::AlertEvents.as_str(), report.deleted_events),
            (
                Partitioned::Notifications.as_str(),
                report.deleted_notifications,
            ),
        ] {
            m.retention_rows_deleted
                .get_or_create(&TableLabel { table })
                .inc_by(rows);
        }
        m.partition_horizon.set(report.horizon.as_secs() as i64);
        if report.errors.is_empty() {
            m.retention_last_completed
                .set(OffsetDateTime::now_utc().unix_timestamp());
        }
        let changed = !(report.created.is_empty()
            && report.dropped.is_empty()
            && report.deleted_episodes + report.deleted_events + report.deleted_notifications == 0);
        if !report.errors.is_empty() {
            tracing::warn!(errors = ?report.errors, "retention: some steps failed; next run tries again");
        }
        if changed {
            tracing::info!(
                created = ?report.created,
                dropped = ?report.dropped,
                moved_from_default = report.moved,
                deleted_episodes = report.deleted_episodes,
                deleted_default_rows = report.deleted_events + report.deleted_notifications,
                horizon_hours = report.horizon.as_secs() / 3600,
                "retention run"
            );
        }
    }
}

/// Ticks now, then every `interval`; a late run delays the next.
fn schedule(interval: Duration) -> tokio::time::Interval {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every
}

/// Midnight UTC of the first day of the `days`-wide partition holding `t`,
/// counting from the Unix epoch (so every instance agrees).
fn aligned(t: OffsetDateTime, days: u32) -> OffsetDateTime {
    let day = t.unix_timestamp().div_euclid(86_400);
    let start = day - day.rem_euclid(i64::from(days));
    OffsetDateTime::from_unix_timestamp(start * 86_400).expect("a day within the timestamp range")
}

/// The partitions that should exist: from the one holding `oldest` (a row
/// the default partition caught) or now, to `premake` beyond now's.
fn wanted(
    config: &RetentionConfig,
    now: OffsetDateTime,
    oldest: Option<OffsetDateTime>,
) -> Vec<Range> {
    let width = time::Duration::days(config.partition_days.into());
    let first = aligned(oldest.map_or(now, |o| o.min(now)), config.partition_days);
    let end = aligned(now, config.partition_days) + width * (config.premake + 1);
    let mut ranges = Vec::new();
    let mut from = first;
    while from < end {
        ranges.push(Range {
            from,
            to: from + width,
        });
        from += width;
    }
    ranges
}

/// The parts of `wanted` no existing partition covers (after a change of
/// `partition_days` the old partitions stay and new ones fill around them).
fn gaps(wanted: Vec<Range>, existing: &[Range]) -> Vec<Range> {
    let mut gaps = Vec::new();
    for range in wanted {
        let mut from = range.from;
        let mut overlapping: Vec<&Range> = existing
            .iter()
            .filter(|e| e.from < range.to && e.to > range.from)
            .collect();
        overlapping.sort_by_key(|e| e.from);
        for e in overlapping {
            if e.from > from {
                gaps.push(Range { from, to: e.from });
            }
            from = from.max(e.to);
        }
        if from < range.to {
            gaps.push(Range { from, to: range.to });
        }
    }
    gaps
}

/// How far from `now` partitions cover time without a hole: zero when no
/// partition holds `now` (writes are going to the default partition).
fn covered_ahead(partitions: &[Partition], now: OffsetDateTime) -> Duration {
    let mut ranges: Vec<Range> = partitions.iter().map(|p| p.range).collect();
    ranges.sort_by_key(|r| r.from);
    let mut end = now;
    for r in ranges {
        if r.from <= end && r.to > end {
            end = r.to;
        }
    }
    (end - now).try_into().unwrap_or(Duration::ZERO)
}

/// Partitions whose every row is older than `cutoff`.
fn expired(partitions: &[Partition], cutoff: OffsetDateTime) -> Vec<Partition> {
    partitions
        .iter()
        .filter(|p| p.range.to <= cutoff)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn config(partition_days: u32, premake: u32) -> RetentionConfig {
        RetentionConfig {
            partition_days,
            premake,
            ..RetentionConfig::default()
        }
    }

    fn range(from: OffsetDateTime, to: OffsetDateTime) -> Range {
        Range { from, to }
    }

    #[test]
    fn partitions_are_whole_days_aligned_to_the_epoch() {
        let now = datetime!(2026-11-24 15:30 UTC);
        assert_eq!(aligned(now, 1), datetime!(2026-11-24 0:00 UTC));
        // 1970-01-01 was a Thursday: 7-day partitions start on Thursdays.
        assert_eq!(aligned(now, 7), datetime!(2026-11-19 0:00 UTC));
        let ranges = wanted(&config(1, 2), now, None);
        assert_eq!(
            ranges,
            [
                range(
                    datetime!(2026-11-24 0:00 UTC),
                    datetime!(2026-11-25 0:00 UTC)
                ),
                range(
                    datetime!(2026-11-25 0:00 UTC),
                    datetime!(2026-11-26 0:00 UTC)
                ),
                range(
                    datetime!(2026-11-26 0:00 UTC),
                    datetime!(2026-11-27 0:00 UTC)
                ),
            ]
        );
        let caught = wanted(&config(1, 0), now, Some(datetime!(2026-11-22 23:59 UTC)));
        assert_eq!(caught.len(), 3, "from the default partition's oldest row");
        assert_eq!(caught[0].from, datetime!(2026-11-22 0:00 UTC));
    }

    #[test]
    fn gaps_fill_around_existing_partitions() {
        let day = |d: u8| {
            OffsetDateTime::new_utc(
                time::Date::from_calendar_date(2026, time::Month::November, d).unwrap(),
                time::Time::MIDNIGHT,
            )
        };
        let weekly = vec![range(day(19), day(26))];
        // Daily partitions already exist for the 24th and 25th.
        let existing = [range(day(24), day(25)), range(day(25), day(26))];
        assert_eq!(
            gaps(weekly, &existing),
            [range(day(19), day(24))],
            "only the uncovered part"
        );
        let all_there = vec![range(day(24), day(25))];
        assert_eq!(gaps(all_there, &existing), []);
        let between = vec![range(day(23), day(27))];
        assert_eq!(
            gaps(between, &existing),
            [range(day(23), day(24)), range(day(26), day(27))]
        );
    }

    #[test]
    fn the_horizon_stops_at_the_first_hole() {
        let p = |from, to| Partition {
            name: String::new(),
            range: range(from, to),
        };
        let now = datetime!(2026-11-24 12:00 UTC);
        let days = [
            p(
                datetime!(2026-11-24 0:00 UTC),
                datetime!(2026-11-25 0:00 UTC),
            ),
            p(
                datetime!(2026-11-25 0:00 UTC),
                datetime!(2026-11-26 0:00 UTC),
            ),
            p(
                datetime!(2026-11-27 0:00 UTC),
                datetime!(2026-11-28 0:00 UTC),
            ),
        ];
        assert_eq!(covered_ahead(&days, now), Duration::from_secs(36 * 3600));
        assert_eq!(
            covered_ahead(&days[1..], now),
            Duration::ZERO,
            "no partition for today"
        );
    }

    #[test]
    fn only_partitions_wholly_past_the_cutoff_expire() {
        let p = |name: &str, from, to| Partition {
            name: name.into(),
            range: range(from, to),
        };
        let partitions = [
            p(
                "old",
                datetime!(2026-10-24 0:00 UTC),
                datetime!(2026-10-25 0:00 UTC),
            ),
            p(
                "straddles",
                datetime!(2026-10-25 0:00 UTC),
                datetime!(2026-10-26 0:00 UTC),
            ),
        ];
        let expired = expired(&partitions, datetime!(2026-10-25 12:00 UTC));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].name, "old");
    }
}
