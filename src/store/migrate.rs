//! Versioned schema migrations, applied at startup (and by operators before
//! a rollout). Safe when several instances start at once: the whole run holds
//! a transaction-scoped advisory lock, and PostgreSQL's DDL is transactional,
//! so a migration is applied entirely, once, or not at all.

use tokio_postgres::Client;

/// Arbitrary but fixed: identifies "alert-ingest schema migrations" among
/// advisory locks (ASCII "alrtmigr").
const MIGRATION_LOCK_KEY: i64 = 0x616c_7274_6d69_6772;

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// In order; never edit one that has shipped, add the next.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "notification request id",
        sql: include_str!("migrations/0002_notification_request_id.sql"),
    },
    Migration {
        version: 3,
        name: "partition history by time",
        sql: include_str!("migrations/0003_partition_history.sql"),
    },
    Migration {
        version: 4,
        name: "small GIN pending list",
        sql: include_str!("migrations/0004_gin_pending_list.sql"),
    },
    Migration {
        version: 5,
        name: "spool positions and rejected notifications",
        sql: include_str!("migrations/0005_spool.sql"),
    },
    Migration {
        version: 6,
        name: "creation event derived from the episode row",
        sql: include_str!("migrations/0006_derived_creation_event.sql"),
    },
    Migration {
        version: 7,
        name: "length check on fingerprints",
        sql: include_str!("migrations/0007_cheap_fingerprint_check.sql"),
    },
    Migration {
        version: 8,
        name: "receipt order of episode versions",
        sql: include_str!("migrations/0008_receipt_order.sql"),
    },
];

/// Applies the missing migrations up to version `last`; returns the
/// versions it applied.
pub async fn run(client: &mut Client, last: i32) -> Result<Vec<i32>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // Not the batch write's statement_timeout: a migration may build an
    // index over a big table. But never wait long for a lock another session
    // holds (a table lock blocks every batch write queued behind it): fail,
    // and the migration task tries again.
    tx.batch_execute(
        "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = '10s';
         SET LOCAL client_min_messages = warning",
    )
    .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut newly = Vec::new();
    let missing = MIGRATIONS
        .iter()
        .filter(|m| m.version <= last && !applied.contains(&m.version));
    for m in missing {
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        newly.push(m.version);
    }
    tx.commit().await?;
    Ok(newly)
}
