//! Time partitions of `alert_events` and `notifications`, and the deletes
//! that keep history within retention: the SQL of `retention`, which
//! decides what to do. Everything runs on one session that holds an
//! advisory lock, so that two instances never maintain at once.
//!
//! Lock discipline (ingestion must never wait long): DDL on a parent waits
//! at most `DDL_LOCK_TIMEOUT` for its lock and is tried again next run;
//! partitions are created by `ATTACH`, which takes only SHARE UPDATE
//! EXCLUSIVE on the parent; deletes go in bounded batches.

use std::fmt;

use deadpool_postgres::Object;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_postgres::SimpleQueryMessage;

use super::{Store, StoreError};

/// The partitioned tables; each has a `<table>_default` partition. Their
/// names are only ever formatted into SQL from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitioned {
    AlertEvents,
    Notifications,
}

impl Partitioned {
    pub const ALL: [Partitioned; 2] = [Partitioned::AlertEvents, Partitioned::Notifications];

    pub const fn as_str(self) -> &'static str {
        match self {
            Partitioned::AlertEvents => "alert_events",
            Partitioned::Notifications => "notifications",
        }
    }

    /// The partition that catches rows no time partition holds.
    const fn default_partition(self) -> &'static str {
        match self {
            Partitioned::AlertEvents => "alert_events_default",
            Partitioned::Notifications => "notifications_default",
        }
    }
}

impl fmt::Display for Partitioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies "alert-ingest retention" among advisory locks (ASCII "alrtretn").
const RETENTION_LOCK_KEY: i64 = 0x616c_7274_7265_746e;

/// Longest wait for a table lock: while DDL waits, the writes queue behind it.
const DDL_LOCK_TIMEOUT: &str = "500ms";

/// Bound on one maintenance statement (moving a day of rows out of the
/// default partition is the longest), enforced by the server.
const STATEMENT_TIMEOUT: &str = "5min";

/// A maintenance transaction never waits on its client between statements;
/// one idle this long has lost its client (a network black hole), and the
/// server ends it, releasing its locks, without waiting for TCP to notice.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

/// A partition's bounds: `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

/// A time partition that exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub range: Range,
}

/// A session holding the retention lock; released when dropped (the lock
/// is the session's, so it also goes if the connection does).
pub struct Maintenance {
    client: Object,
}

impl Store {
    /// A maintenance session, or `None` when another instance holds the lock.
    pub async fn maintenance(&self) -> Result<Option<Maintenance>, StoreError> {
        let client = self.connection().await?;
        // ISO dates in UTC: partition bounds are read back from their text.
        // The keepalive settings make the server notice a vanished client
        // within a minute, and end its session, and so free the lock.
        client
            .batch_execute(&format!(
                "SET statement_timeout = '{STATEMENT_TIMEOUT}';
                 SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}';
                 SET TimeZone = 'UTC'; SET DateStyle = 'ISO';
                 SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10;
                 SET tcp_keepalives_count = 3; SET tcp_user_timeout = 60000"
            ))
            .await?;
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&RETENTION_LOCK_KEY])
            .await?
            .get(0);
        if !locked {
            restore(&client).await;
            return Ok(None);
        }
        Ok(Some(Maintenance { client }))
    }
}

impl Maintenance {
    /// The time partitions of `table` (not its default).
    pub async fn partitions(&self, table: Partitioned) -> Result<Vec<Partition>, StoreError> {
        let rows = self
            .client
            .query(
                r"SELECT c.oid::regclass::text, b[1]::timestamptz, b[2]::timestamptz
                  FROM pg_inherits i
                  JOIN pg_class c ON c.oid = i.inhrelid,
                  LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                       'FROM \(''(.*)''\) TO \(''(.*)''\)') AS b
                  WHERE i.inhparent = $1::text::regclass AND b IS NOT NULL
                  ORDER BY 2",
                &[&table.as_str()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Partition {
                name: r.get(0),
                range: Range {
                    from: r.get(1),
                    to: r.get(2),
                },
            })
            .collect())
    }

    /// The oldest `received_at` at or after `since` in `table`'s default partition.
    pub async fn oldest_in_default(
        &self,
        table: Partitioned,
        since: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let default = table.default_partition();
        let sql = format!("SELECT min(received_at) FROM {default} WHERE received_at >= $1");
        Ok(self.client.query_one(&sql, &[&since]).await?.get(0))
    }

    /// Creates `table`'s partition for `range`, moving in the rows the
    /// default partition holds for it, all in one transaction. Returns the
    /// rows moved: the move's own result, its one `moved` column.
    ///
    /// The whole transaction is one simple query, COMMIT included: no
    /// client round trip happens while its locks are held, so a client
    /// lost mid-way cannot hold them (the server rolls back).
    pub async fn create(&mut self, table: Partitioned, range: Range) -> Result<u64, StoreError> {
        let name = partition_name(table, range.from);
        let default = table.default_partition();
        let (from, to) = (literal(range.from), literal(range.to));
        let messages = self
            .in_one_transaction(&format!(
                "LOCK TABLE {default} IN SHARE ROW EXCLUSIVE MODE;
                 CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
                 WITH moved AS (
                     DELETE FROM {default}
                     WHERE received_at >= '{from}' AND received_at < '{to}' RETURNING *),
                 inserted AS (INSERT INTO {name} SELECT * FROM moved RETURNING 1)
                 SELECT count(*) AS moved FROM inserted;
                 ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{from}') TO ('{to}');"
            ))
            .await?;
        let moved = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.try_get("moved").ok().flatten(),
            _ => None,
        });
        Ok(moved.and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    /// Drops a partition, with every row in it.
    pub async fn drop_partition(&mut self, partition: &Partition) -> Result<(), StoreError> {
        self.in_one_transaction(&format!("DROP TABLE {};", partition.name))
            .await?;
        Ok(())
    }

    /// Runs `statements` as one transaction in one simple query, with the
    /// DDL lock bound; returns what the server answered.
    async fn in_one_transaction(
        &self,
        statements: &str,
    ) -> Result<Vec<SimpleQueryMessage>, StoreError> {
        let sql =
            format!("BEGIN; SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'; {statements} COMMIT;");
        match self.client.simple_query(&sql).await {
            Ok(messages) => Ok(messages),
            Err(e) => {
                // The failed statement left the transaction aborted.
                let _ = self.client.batch_execute("ROLLBACK").await;
                Err(e.into())
            }
        }
    }

    /// The database's clock: every instance cuts history off at the same time.
    pub async fn now(&self) -> Result<OffsetDateTime, StoreError> {
        Ok(self.client.query_one("SELECT now()", &[]).await?.get(0))
    }

    /// Deletes rows received before `cutoff` from `table`'s default
    /// partition, `batch` at a time. Returns the rows deleted.
    pub async fn delete_default_before(
        &self,
        table: Partitioned,
        cutoff: OffsetDateTime,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let default = table.default_partition();
        let sql = format!(
            "DELETE FROM {default} WHERE ctid = ANY (ARRAY(
                 SELECT ctid FROM {default} WHERE received_at < $1 LIMIT $2))"
        );
        self.delete_in_batches(&sql, cutoff, batch).await
    }

    /// Deletes resolved episodes whose last change is before `cutoff`,
    /// `batch` at a time. A firing episode stays while it fires:
    /// Alertmanager still sends it.
    pub async fn delete_episodes_before(
        &self,
        cutoff: OffsetDateTime,
        batch: i64,
    ) -> Result<u64, StoreError> {
        // starts_at <= updated_at always, so the starts_at index bounds the scan.
        let sql = "DELETE FROM alerts WHERE ctid = ANY (ARRAY(
                       SELECT ctid FROM alerts
                       WHERE starts_at < $1 AND updated_at < $1 AND status = 'resolved'
                       LIMIT $2))";
        self.delete_in_batches(sql, cutoff, batch).await
    }

    async fn delete_in_batches(
        &self,
        sql: &str,
        cutoff: OffsetDateTime,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let statement = self.client.prepare(sql).await?;
        let mut total = 0;
        loop {
            let deleted = self.client.execute(&statement, &[&cutoff, &batch]).await?;
            total += deleted;
            if deleted < batch as u64 {
                return Ok(total);
            }
        }
    }

    /// Closes a session whose state is unknown (its run timed out): the
    /// server ends it and its lock; it never goes back to the pool.
    pub fn discard(self) {
        drop(Object::take(self.client));
    }

    /// Releases the lock and returns the session to the pool as it was.
    pub async fn release(self) {
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&RETENTION_LOCK_KEY])
            .await;
        restore(&self.client).await;
    }
}

/// Back to the pool's session settings.
async fn restore(client: &Object) {
    let _ = client.batch_execute("RESET ALL").await;
}

/// `alert_events_p20261124`: the table and the first day of the range.
pub fn partition_name(table: Partitioned, from: OffsetDateTime) -> String {
    let d = from.date();
    format!(
        "{table}_p{:04}{:02}{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    )
}

/// A timestamp as SQL literal text: RFC 3339, generated here, never from input.
fn literal(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("a partition bound formats")
}
