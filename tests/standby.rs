//! The history API on a streaming standby (`history.database_url`): the
//! service stores alerts on the primary and answers history from the
//! standby, which shows what it has replayed and nothing newer.
//!
//! The standby is real: `scripts/lib/postgres.sh`'s `ensure_standby` makes
//! one with `pg_basebackup` on 127.0.0.1:5433 (`scripts/test` does, and
//! sets `$STANDBY_URL` to its maintenance database).

mod common;

use std::time::Duration;

use common::{
    connect, count, eventually, firing, on_own_thread, test_config, webhook, with_dbname, Service,
    TestDb,
};

const DEFAULT_STANDBY_URL: &str = "postgres://root@127.0.0.1:5433/postgres";
/// A healthy standby replays within a second; 30 s bounds a broken one.
const REPLAY: Duration = Duration::from_secs(30);
/// How long a paused standby must go on hiding what the primary stored.
const HIDDEN_FOR: Duration = Duration::from_secs(2);

fn standby_url() -> String {
    std::env::var("STANDBY_URL").unwrap_or_else(|_| DEFAULT_STANDBY_URL.into())
}

/// Replay paused on the standby until dropped (also when the test fails:
/// every other database's changes wait behind it).
struct ReplayPaused {
    admin: tokio_postgres::Client,
}

impl ReplayPaused {
    async fn start() -> ReplayPaused {
        let admin = connect(&standby_url()).await;
        admin
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .unwrap();
        ReplayPaused { admin }
    }

    /// Waits until replay has stopped (it stops at the next WAL record).
    async fn paused(&self) -> bool {
        eventually(REPLAY, || async {
            let row = self
                .admin
                .query_one("SELECT pg_get_wal_replay_pause_state()", &[]);
            row.await.unwrap().get::<_, String>(0) == "paused"
        })
        .await
    }
}

impl Drop for ReplayPaused {
    fn drop(&mut self) {
        on_own_thread(standby_url(), vec!["SELECT pg_wal_replay_resume()".into()]);
    }
}

/// Episodes of `alertname` the history API returns; `None` when it does
/// not answer 200 (the standby may not have replayed the schema yet, or
/// may cancel a query that conflicts with replay: both pass).
async fn listed(service: &Service, alertname: &str) -> Option<usize> {
    let (status, body) = service
        .get(&format!("/api/v1/alerts?alertname={alertname}"))
        .await;
    if status != 200 {
        eprintln!("history answered {status}: {body}");
        return None;
    }
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    Some(page["items"].as_array().unwrap().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_answers_from_the_standby_what_it_has_replayed() {
    let standby_admin = tokio_postgres::connect(&standby_url(), tokio_postgres::NoTls).await;
    let Ok((standby_admin, connection)) = standby_admin else {
        panic!(
            "no standby at {} (scripts/test makes one: source scripts/lib/postgres.sh; \
             ensure_standby)",
            standby_url()
        );
    };
    tokio::spawn(connection);
    let recovering = standby_admin.query_one("SELECT pg_is_in_recovery()", &[]);
    assert!(
        recovering.await.unwrap().get::<_, bool>(0),
        "{} is a standby",
        standby_url()
    );

    let db = TestDb::create().await;
    let standby_db = with_dbname(&standby_url(), &db.name);
    let replicated = eventually(REPLAY, || async {
        tokio_postgres::connect(&standby_db, tokio_postgres::NoTls)
            .await
            .is_ok()
    });
    assert!(replicated.await, "the new database reaches the standby");
    let mut config = test_config(&db.url);
    config.history.database_url = Some(standby_db.clone());
    let service = Service::start_ready(config).await;
    let primary = db.client().await;

    // Stored on the primary, then shown once the standby has replayed it.
    let (status, body) = service.post(webhook(vec![firing("Replayed", 0)])).await;
    assert_eq!(status, 200, "{body}");
    service.settled().await;
    let shown = eventually(REPLAY, || async {
        listed(&service, "Replayed").await == Some(1)
    });
    assert!(shown.await, "the standby shows what it replayed");

    // While replay is paused the primary has it and history does not.
    let pause = ReplayPaused::start().await;
    primary
        .batch_execute("CREATE TABLE wal_marker ()")
        .await
        .unwrap();
    assert!(pause.paused().await, "replay pauses");
    let (status, body) = service.post(webhook(vec![firing("WhilePaused", 0)])).await;
    assert_eq!(status, 200, "{body}");
    service.settled().await;
    let stored = primary.query_one(
        "SELECT count(*) FROM alerts WHERE alertname = 'WhilePaused'",
        &[],
    );
    assert_eq!(
        stored.await.unwrap().get::<_, i64>(0),
        1,
        "stored on the primary"
    );
    tokio::time::sleep(HIDDEN_FOR).await;
    assert_eq!(
        listed(&service, "WhilePaused").await,
        Some(0),
        "not replayed, not shown"
    );
    assert_eq!(
        listed(&service, "Replayed").await,
        Some(1),
        "the standby still answers"
    );
    let sessions = standby_admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'alert-ingest-history'",
            &[&db.name],
        )
        .await
        .unwrap();
    assert!(
        sessions.get::<_, i64>(0) >= 1,
        "history's sessions are on the standby"
    );

    drop(pause);
    let shown = eventually(REPLAY, || async {
        listed(&service, "WhilePaused").await == Some(1)
    });
    assert!(shown.await, "shown once replay resumes");
    assert_eq!(count(&primary, "alerts").await, 2);
    assert!(service.shutdown().await);
}
