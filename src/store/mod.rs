//! PostgreSQL: the connection pool, schema migrations, the batch write, and
//! the one place where database errors are classified.

mod error;
mod migrate;
pub mod partitions;
mod rows;

pub use error::{ErrorClass, StoreError};
pub use rows::{AlertRow, NotificationRow, Part, Rows};

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::config::{DatabaseConfig, HistoryConfig};
use crate::model::{from_unix_micros, unix_micros, Episode, Fingerprint};

/// Bound on one run of the migrations, so that a hung server cannot hold the
/// migration task forever. Generous: an index built over millions of rows
/// takes minutes, and the service serves (503) meanwhile.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How much longer than the server's `statement_timeout` a history query
/// may take before the client gives up on the server.
const READER_CLIENT_MARGIN: Duration = Duration::from_secs(1);

/// Identifies our sessions in `pg_stat_activity` (and to fault tests).
pub const APPLICATION_NAME: &str = "alert-ingest";
/// The history API's sessions, told apart from ingestion's.
pub const HISTORY_APPLICATION_NAME: &str = "alert-ingest-history";

/// Writes one batch in a single statement (one round trip, one implicit
/// transaction, committed when it returns):
///
/// - `stored`: the alerts are upserted (a new episode keeps its first state
///   on its row); a stored episode takes a delivery only if it was received
///   later than the version the row holds (order by receipt, not by
///   commit: several instances, or a spool loaded late, commit out of
///   order), and `updated_at` moves only if its state changed. Every
///   delivery received later moves the version, repeats included: a
///   delivery received before a repeat but loaded after it must not rewind
///   the episode.
/// - `events`: an event for each episode changed.
/// - `late`: a delivery older than its row's version changes no row; the
///   function `alert_ingest_place_late` (migration 8) puts it into the
///   timeline at its receipt time if it was a change there. Being a
///   function, its queries see what other writers committed after this
///   statement began (it runs once `stored` holds the row's lock), and
///   only a late delivery makes it read `alert_events`.
/// - the notifications and, for a batch loaded from the spool, the spool's
///   loaded position.
///
/// Rows are sorted by key so that concurrent writers lock episodes in the
/// same order and cannot deadlock each other. `$on_conflict` ends the
/// notifications insert: see `WRITE_BATCH` and `WRITE_BATCH_AGAIN`.
/// Returns the episodes changed and the late deliveries placed.
macro_rules! write_batch {
    ($on_conflict:literal) => {
        concat!(
            "
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::timestamptz[], $8::text[], $9::text[], $10::timestamptz[])
        AS t(fingerprint, starts_at, alertname, status, labels, annotations, ends_at,
             generator_url, receiver, received_at)
    ORDER BY fingerprint, starts_at
), stored AS (
    INSERT INTO alerts AS a (fingerprint, starts_at, alertname, status, labels, annotations,
                             ends_at, generator_url, receiver, first_seen_at, updated_at,
                             version_at, first_status, first_ends_at)
    SELECT fingerprint, starts_at, alertname, status, labels::jsonb, annotations::jsonb,
           ends_at, generator_url, receiver, received_at, received_at, received_at, status,
           ends_at
    FROM input
    ON CONFLICT (fingerprint, starts_at) DO UPDATE
    SET alertname = EXCLUDED.alertname, status = EXCLUDED.status, labels = EXCLUDED.labels,
        annotations = EXCLUDED.annotations, ends_at = EXCLUDED.ends_at,
        generator_url = EXCLUDED.generator_url, receiver = EXCLUDED.receiver,
        updated_at = CASE WHEN (a.status, a.ends_at, a.annotations)
                               IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.ends_at,
                                                 EXCLUDED.annotations)
                          THEN EXCLUDED.updated_at ELSE a.updated_at END,
        previous_until = CASE WHEN (a.status, a.ends_at, a.annotations)
                                   IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.ends_at,
                                                     EXCLUDED.annotations)
                              THEN COALESCE(a.version_at, a.updated_at)
                              ELSE a.previous_until END,
        version_at = EXCLUDED.version_at
    -- A row stored before migration 8 has no version: its last change's.
    WHERE EXCLUDED.version_at > COALESCE(a.version_at, a.updated_at)
    -- xmax is 0 in a row version this statement inserted, and the
    -- updating transaction's id in one it updated. A change sets both
    -- times to the delivery's receipt; an unchanged repeat only the version.
    RETURNING a.fingerprint, a.starts_at, a.status, a.ends_at, a.updated_at,
              a.previous_until, a.xmax = 0 AS inserted, a.updated_at = a.version_at AS changed
), events AS (
    -- Changes only: an inserted episode's creation event is its row
    -- (first_status, first_ends_at, first_seen_at; see alert_timeline).
    INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at,
                              previous_until)
    SELECT fingerprint, starts_at, status, ends_at, updated_at, previous_until FROM stored
    WHERE changed AND NOT inserted
), late AS (
    -- Alerts whose row holds a later (or this very) version: a delivery
    -- loaded late, or the second copy of an HA pair's notification.
    SELECT alert_ingest_place_late(fingerprint, starts_at, status, ends_at, received_at)
        AS placed
    FROM input AS i
    WHERE NOT EXISTS (SELECT FROM stored AS s
                      WHERE s.fingerprint = i.fingerprint AND s.starts_at = i.starts_at)
), notified AS (
    INSERT INTO notifications (receiver, status, group_key, group_labels, common_labels,
                               common_annotations, external_url, truncated_alerts,
                               notification_reason, alert_count, received_at, request_id)
    SELECT receiver, status, group_key, group_labels::jsonb, common_labels::jsonb,
           common_annotations::jsonb, external_url, truncated_alerts, notification_reason,
           alert_count, received_at, request_id
    FROM unnest($11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                $17::text[], $18::int8[], $19::text[], $20::int4[], $21::timestamptz[],
                $22::int8[])
        AS n(receiver, status, group_key, group_labels, common_labels, common_annotations,
             external_url, truncated_alerts, notification_reason, alert_count, received_at,
             request_id)
    ",
            $on_conflict,
            "
), loaded AS (
    -- durability: spool: how far the spool is loaded, committed with the
    -- rows (no row at all for a batch of the database mode's workers).
    INSERT INTO spool_positions AS p (spool_id, segment, record_offset, updated_at)
    SELECT $23::text, $24::int8, $25::int8, now() WHERE $23::text IS NOT NULL
    ON CONFLICT (spool_id) DO UPDATE
    SET segment = EXCLUDED.segment, record_offset = EXCLUDED.record_offset,
        updated_at = EXCLUDED.updated_at
)
SELECT (SELECT count(*) FROM stored WHERE changed), (SELECT count(*) FROM late WHERE placed)"
        )
    };
}

/// A batch first written: its notifications cannot be stored yet (each has
/// the key drawn when its request arrived), so they are plainly inserted,
/// which costs PostgreSQL less than `ON CONFLICT` (issue #3). The unique
/// index still refuses a duplicate; the workers then write each request
/// again with `WRITE_BATCH_AGAIN`.
const WRITE_BATCH: &str = write_batch!("");

/// A batch that may be stored already (written again after an unknown
/// outcome such as a connection lost during COMMIT, or replayed): a
/// notification found by its key is skipped.
const WRITE_BATCH_AGAIN: &str = write_batch!("ON CONFLICT (received_at, request_id) DO NOTHING");

/// The version each of a set of episodes holds (`version_at`, the receipt
/// time of the latest delivery stored; for a row not written since
/// migration 8, of its last change); episodes not stored are absent. The
/// primary key answers it, one index probe per episode.
const LAST_CHANGES: &str = "
SELECT a.fingerprint, a.starts_at, COALESCE(a.version_at, a.updated_at)
FROM unnest($1::text[], $2::timestamptz[]) AS k(fingerprint, starts_at)
JOIN alerts AS a USING (fingerprint, starts_at)";

/// A spooled request PostgreSQL refused, kept whole with the reason, in
/// the same transaction as the spool position past it.
const REJECT: &str = "
WITH rejected AS (
    INSERT INTO rejected_notifications (received_at, request_id, spool_id, segment, record_offset,
                                        sqlstate, message, body)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (received_at, request_id) DO NOTHING
)
INSERT INTO spool_positions AS p (spool_id, segment, record_offset, updated_at)
VALUES ($3, $9, $10, now())
ON CONFLICT (spool_id) DO UPDATE
SET segment = EXCLUDED.segment, record_offset = EXCLUDED.record_offset,
    updated_at = EXCLUDED.updated_at";

/// How far a spool has been loaded.
const LOADED_POSITION: &str =
    "SELECT segment, record_offset FROM spool_positions WHERE spool_id = $1";

/// Where workers write batches: [`Store`] (PostgreSQL) in the service; a
/// no-op in benchmarks that measure everything but the database.
pub trait BatchSink: Send + Sync + 'static {
    /// Writes and commits one batch.
    fn write_batch<'a>(
        &'a self,
        rows: &'a Rows<'_>,
    ) -> impl std::future::Future<Output = Result<Written, StoreError>> + Send + 'a;
}

impl BatchSink for Store {
    fn write_batch<'a>(
        &'a self,
        rows: &'a Rows<'_>,
    ) -> impl std::future::Future<Output = Result<Written, StoreError>> + Send + 'a {
        self.write(rows)
    }
}

/// A spooled request PostgreSQL refused, where it is in the spool, and
/// where the next one starts.
pub struct Rejection<'a> {
    pub received_at: OffsetDateTime,
    pub request_id: i64,
    pub spool_id: &'a str,
    pub segment: i64,
    pub offset: i64,
    /// `None`: the body no longer parses.
    pub sqlstate: Option<&'a str>,
    pub message: &'a str,
    pub body: &'a [u8],
    pub next_segment: i64,
    pub next_offset: i64,
}

/// What one committed batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Episodes inserted or changed (each added an event to its timeline).
    pub changed: u64,
    /// Alerts received before the version their episode's row holds whose
    /// state went into the timeline at their receipt time (see `late`).
    pub late: u64,
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// The client-side bound on one operation (see `bounded`).
    statement_timeout: Duration,
}

impl Store {
    /// Builds the shared pool (`database.pool_size` connections: `/readyz`,
    /// migrations). Connections are made on first use, so this succeeds with
    /// the database down (the service starts and answers 503 meanwhile).
    pub fn new(config: &DatabaseConfig) -> Result<Store, StoreError> {
        Store::build(
            config,
            Url::Primary,
            config.pool_size,
            Session::writer(config),
        )
    }

    /// A worker's own connection. Its connection task runs on the runtime
    /// that first uses it: the worker's, which alone may use it afterwards.
    pub fn dedicated(config: &DatabaseConfig) -> Result<Store, StoreError> {
        Store::build(config, Url::Primary, 1, Session::writer(config))
    }

    /// The history API's pool: its own connections (never a worker's), to
    /// `history.database_url` if set (a standby), its own timeout,
    /// read-only sessions, timestamps rendered in UTC.
    pub fn reader(config: &DatabaseConfig, history: &HistoryConfig) -> Result<Store, StoreError> {
        let session = Session {
            application_name: HISTORY_APPLICATION_NAME,
            statement_timeout: history.statement_timeout,
            // The server cancels a slow query first and the connection goes
            // back to the pool; the client's bound is for a hung server only
            // (it discards the connection, whose session may live on until
            // the server notices).
            client_timeout: history.statement_timeout + READER_CLIENT_MARGIN,
            // No parallel workers: one history query uses one core, so
            // `history.pool_size` bounds the cores history can take from
            // ingestion (load/history-contention.sh).
            options: "-c default_transaction_read_only=on -c TimeZone=UTC \
                      -c max_parallel_workers_per_gather=0",
        };
        let url = match &history.database_url {
            Some(url) => Url::History(url),
            None => Url::Primary,
        };
        Store::build(config, url, history.pool_size, session)
    }

    fn build(
        config: &DatabaseConfig,
        url: Url<'_>,
        pool_size: usize,
        session: Session,
    ) -> Result<Store, StoreError> {
        let (key, url) = match url {
            Url::Primary => ("database.url", config.url.as_str()),
            Url::History(url) => ("history.database_url", url),
        };
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Config(format!("{key}: {e}")))?;
        pg.application_name(session.application_name)
            .connect_timeout(config.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .options(format!(
                "-c statement_timeout={} {}",
                session.statement_timeout.as_millis(),
                session.options
            ));
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Store {
            pool,
            statement_timeout: session.client_timeout,
        })
    }

    /// Brings the schema up to date; returns the versions it applied.
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        self.migrate_up_to(i32::MAX).await
    }

    /// Applies the missing migrations up to version `last` and no further:
    /// the schema an older release left (upgrade tests start from it).
    pub async fn migrate_up_to(&self, last: i32) -> Result<Vec<i32>, StoreError> {
        let mut client = self.connection().await?;
        let run = migrate::run(&mut client, last);
        match tokio::time::timeout(MIGRATION_TIMEOUT, run).await {
            Ok(result) => Ok(result?),
            Err(_) => {
                // Mid-transaction on a hung server: never back into the pool.
                drop(Object::take(client));
                Err(StoreError::Timeout(MIGRATION_TIMEOUT))
            }
        }
    }

    /// Whether PostgreSQL answers a trivial query within the timeouts.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.on_connection(async |client| {
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    /// `ping` within `limit`, the connection's acquisition included (for
    /// `/readyz`, whose callers give up after a second or so). A connection
    /// that does not answer in time is discarded, never pooled again:
    /// cancelling the query from outside would return it to the pool, and
    /// every later probe would wait on the same hung connection.
    pub async fn ping_within(&self, limit: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + limit;
        let client = tokio::time::timeout_at(deadline, self.connection())
            .await
            .unwrap_or(Err(StoreError::Timeout(limit)))?;
        let query = tokio::time::timeout_at(deadline, client.simple_query("SELECT 1")).await;
        let result = match query {
            Ok(answer) => answer.map(drop).map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout(limit)),
        };
        discard_if_timed_out(client, &result);
        result
    }

    /// Writes and commits one batch; see `WRITE_BATCH`.
    pub async fn write(&self, rows: &Rows<'_>) -> Result<Written, StoreError> {
        self.on_connection(async |client| {
            fail::fail_point!("store::write::before", |_| Err(failpoint("before")));
            let sql = if rows.may_be_stored() {
                WRITE_BATCH_AGAIN
            } else {
                WRITE_BATCH
            };
            let statement = client.prepare_cached(sql).await?;
            let row = client.query_one(&statement, &rows.params()).await?;
            // Committed, but the caller hears of a lost connection: the
            // outcome it cannot know, as when COMMIT's answer is lost.
            fail::fail_point!("store::write::after_commit", |_| {
                Err(failpoint("after_commit"))
            });
            Ok(Written {
                changed: row.get::<_, i64>(0) as u64,
                late: row.get::<_, i64>(1) as u64,
            })
        })
        .await
    }

    /// Where loading spool `spool_id` resumes: `(segment, offset)` of the
    /// next record; `None` when nothing of it was ever loaded.
    pub async fn loaded_position(&self, spool_id: &str) -> Result<Option<(i64, i64)>, StoreError> {
        self.on_connection(async |client| {
            let row = client.query_opt(LOADED_POSITION, &[&spool_id]).await?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
        .await
    }

    /// Keeps a refused spooled request (see `REJECT`) and moves the
    /// spool's position past it, in one transaction.
    pub async fn reject(&self, rejection: &Rejection<'_>) -> Result<(), StoreError> {
        let r = rejection;
        self.on_connection(async |client| {
            client
                .execute(
                    REJECT,
                    &[
                        &r.received_at,
                        &r.request_id,
                        &r.spool_id,
                        &r.segment,
                        &r.offset,
                        &r.sqlstate,
                        &r.message,
                        &r.body,
                        &r.next_segment,
                        &r.next_offset,
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Runs one read query (the history API's), bounded by the pool's timeout.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.on_connection(async |client| Ok(client.query(sql, params).await?))
            .await
    }

    /// The version each stored one of `episodes` holds, in microseconds since
    /// the Unix epoch (see `LAST_CHANGES`).
    pub async fn last_changes(
        &self,
        episodes: &[Episode],
    ) -> Result<HashMap<Episode, i64>, StoreError> {
        let fingerprints: Vec<String> =
            episodes.iter().map(|e| e.fingerprint.to_string()).collect();
        let starts_at: Vec<OffsetDateTime> = episodes
            .iter()
            .map(|e| {
                from_unix_micros(e.starts_at_us)
                    .expect("an episode's startsAt was parsed within the years 1 to 9999")
            })
            .collect();
        self.on_connection(async |client| {
            let statement = client.prepare_cached(LAST_CHANGES).await?;
            let rows = client
                .query(&statement, &[&fingerprints, &starts_at])
                .await?;
            Ok(rows.iter().filter_map(last_change).collect())
        })
        .await
    }

    pub fn close(&self) {
        self.pool.close();
    }

    async fn connection(&self) -> Result<Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Runs `op` on a pooled connection within the client-side bound; a
    /// connection whose operation timed out never goes back to the pool.
    async fn on_connection<T>(
        &self,
        op: impl AsyncFnOnce(&Object) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let client = self.connection().await?;
        let result = self.bounded(op(&client)).await;
        discard_if_timed_out(client, &result);
        result
    }

    /// The client-side bound on a database operation: a server that is hung
    /// (SIGSTOP, a black-holed network) cannot enforce its own timeout.
    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.statement_timeout, op)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.statement_timeout)))
    }
}

/// Which server a pool connects to.
enum Url<'a> {
    /// `database.url`: where everything is written.
    Primary,
    /// `history.database_url`: where history is read, if not the primary.
    History(&'a str),
}

/// How a pool's sessions are set up.
struct Session {
    application_name: &'static str,
    /// Enforced by the server.
    statement_timeout: Duration,
    /// Enforced by the client (`Store::bounded`).
    client_timeout: Duration,
    /// More `-c` settings for every session.
    options: &'static str,
}

impl Session {
    fn writer(config: &DatabaseConfig) -> Session {
        Session {
            application_name: APPLICATION_NAME,
            statement_timeout: config.statement_timeout,
            client_timeout: config.statement_timeout,
            // One generic plan for the batch statement, made once per
            // connection. Left to choose, PostgreSQL compares the generic
            // plan (costed for arrays of unknown length) with custom plans
            // (costed for the bound arrays) and, for batches of a few rows,
            // keeps planning a custom plan on every execution: ~115 µs of
            // CPU per batch, a quarter of a one-row batch's (issue #3).
            options: "-c synchronous_commit=on -c plan_cache_mode=force_generic_plan",
        }
    }
}

/// After a timeout the query may still be running on a hung server (or the
/// network may have lost it): the connection's state is unknown, so it must
/// not go back to the pool, where every later user would queue behind it.
fn discard_if_timed_out<T>(client: Object, result: &Result<T, StoreError>) {
    if matches!(result, Err(StoreError::Timeout(_))) {
        drop(Object::take(client));
    }
}

/// A row of `LAST_CHANGES` as `(episode, version in µs)`; every stored
/// fingerprint is valid hex (the table's CHECK).
fn last_change(row: &tokio_postgres::Row) -> Option<(Episode, i64)> {
    let episode = Episode {
        fingerprint: Fingerprint::parse_hex(row.get(0))?,
        starts_at_us: unix_micros(row.get(1)),
    };
    Some((episode, unix_micros(row.get(2))))
}

/// What a failpoint in the write path reports: a broken connection.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
fn failpoint(name: &str) -> StoreError {
    StoreError::Database {
        class: ErrorClass::Connection,
        message: format!("connection lost (failpoint store::write::{name})"),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    /// load/pgbench measures PostgreSQL's ceiling with a copy of the batch
    /// statement (pgbench cannot bind our arrays); the writes of the alerts
    /// must stay the very text the workers run, or its figures mean nothing.
    #[test]
    fn pgbench_copy_of_the_batch_write_is_current() {
        let part = |sql: &str| {
            let from = sql.find("), stored AS (").expect("stored CTE");
            let to = sql.find("), notified AS (").expect("notified CTE");
            sql[from..to].to_owned()
        };
        let copy = include_str!("../../load/pgbench/write-batch.sql");
        assert_eq!(part(copy), part(super::WRITE_BATCH));
    }
}
