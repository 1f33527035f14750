//! Retention against a real PostgreSQL: time partitions made ahead, rows
//! the default partition caught moved into partitions of their own, old
//! partitions dropped, old resolved episodes deleted in batches, and the
//! advisory lock that keeps two instances from running at once. Runs are
//! given their `now`, so "forty days later" needs no waiting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alert_ingest::config::RetentionConfig;
use alert_ingest::retention::Retention;
use alert_ingest::store::Store;
use alert_ingest::telemetry::Metrics;
use common::{count, test_config, webhook, Service, TestDb};
use serde_json::json;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-24 15:00 UTC);

async fn migrated(db: &TestDb) -> Store {
    let store = Store::new(&test_config(&db.url).database).unwrap();
    store.migrate().await.unwrap();
    store
}

fn retention(store: &Store, config: RetentionConfig) -> Retention {
    Retention::new(store.clone(), config, Arc::new(Metrics::new()))
}

fn policy() -> RetentionConfig {
    RetentionConfig {
        days: 30,
        partition_days: 1,
        premake: 2,
        delete_batch: 2,
        ..RetentionConfig::default()
    }
}

async fn partitions(client: &tokio_postgres::Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::text::regclass ORDER BY 1",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Events and notifications received `days_ago` days before NOW.
async fn insert_received(client: &tokio_postgres::Client, days_ago: i64, rows: i64) {
    let at = NOW - time::Duration::days(days_ago);
    client
        .execute(
            "INSERT INTO alert_events (fingerprint, starts_at, status, received_at)
             SELECT lpad(to_hex(i), 16, '0'), $1, 'firing', $1 FROM generate_series(1, $2::bigint) i",
            &[&at, &rows],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO notifications (receiver, status, group_key, group_labels, common_labels,
                 common_annotations, external_url, truncated_alerts, alert_count, received_at,
                 request_id)
             SELECT 'r', 'firing', 'g', '{}', '{}', '{}', '', 0, 1, $1, i
             FROM generate_series(1, $2::bigint) i",
            &[&at, &rows],
        )
        .await
        .unwrap();
}

/// An episode whose last change was `days_ago` days before NOW.
async fn insert_episode(client: &tokio_postgres::Client, n: i64, status: &str, days_ago: i64) {
    let at = NOW - time::Duration::days(days_ago);
    client
        .execute(
            "INSERT INTO alerts (fingerprint, starts_at, alertname, status, labels, annotations,
                                 ends_at, generator_url, receiver, first_seen_at, updated_at)
             VALUES (lpad(to_hex($1::bigint), 16, '0'), $2::timestamptz - interval '1 hour', 'Old', $3,
                     '{}', '{}', CASE WHEN $3 = 'resolved' THEN $2 END, '', 'r', $2, $2)",
            &[&n, &at, &status],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_made_ahead_and_catch_up_with_the_default() {
    let db = TestDb::create().await;
    let store = migrated(&db).await;
    let client = db.client().await;
    // Rows written before any partition existed land in the default.
    insert_received(&client, 40, 3).await; // past retention
    insert_received(&client, 20, 5).await;
    insert_received(&client, 0, 7).await;
    assert_eq!(count(&client, "alert_events_default").await, 15);

    let report = retention(&store, policy())
        .run_once(NOW)
        .await
        .unwrap()
        .expect("nobody else holds the lock");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for table in ["alert_events", "notifications"] {
        let names = partitions(&client, table).await;
        assert_eq!(names.len(), 1 + 23, "{names:?}");
        assert_eq!(names[0], format!("{table}_default"));
        assert_eq!(
            names[1],
            format!("{table}_p20261104"),
            "from the day of the oldest row within retention"
        );
        assert_eq!(names[23], format!("{table}_p20261126"), "to two days ahead");
        // The 40-day-old rows are deleted, the others moved out of the default.
        assert_eq!(count(&client, &format!("{table}_default")).await, 0);
        assert_eq!(count(&client, &format!("{table}_p20261104")).await, 5);
        assert_eq!(count(&client, &format!("{table}_p20261124")).await, 7);
        assert_eq!(count(&client, table).await, 12);
    }
    assert_eq!(report.deleted_events, 3);
    assert_eq!(report.deleted_notifications, 3);
    assert_eq!(report.moved, 24);
    assert_eq!(
        report.horizon,
        Duration::from_secs(57 * 3600),
        "to the 27th 00:00"
    );

    // A second run at the same time has nothing to do.
    let again = retention(&store, policy())
        .run_once(NOW)
        .await
        .unwrap()
        .unwrap();
    assert!(again.created.is_empty() && again.dropped.is_empty() && again.moved == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_partitions_and_resolved_episodes_go_firing_ones_stay() {
    let db = TestDb::create().await;
    let store = migrated(&db).await;
    let client = db.client().await;
    insert_received(&client, 20, 4).await;
    insert_received(&client, 1, 6).await;
    for n in 0..5 {
        insert_episode(&client, n, "resolved", 25).await;
    }
    insert_episode(&client, 10, "resolved", 5).await;
    insert_episode(&client, 11, "firing", 25).await;
    retention(&store, policy())
        .run_once(NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count(&client, "alerts").await, 7, "all within retention");

    // Fifteen days later the 20-day-old partition is 35 days old.
    let later = NOW + time::Duration::days(15);
    let report = retention(&store, policy())
        .run_once(later)
        .await
        .unwrap()
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // Cut-off: 9 December 15:00 minus 30 days; the partitions of 4 to 8
    // November end before it.
    let mut dropped = report.dropped.clone();
    dropped.sort();
    let expected: Vec<String> = ["alert_events", "notifications"]
        .iter()
        .flat_map(|t| (4..=8).map(move |d| format!("{t}_p202611{d:02}")))
        .collect();
    assert_eq!(dropped, expected);
    assert_eq!(count(&client, "alert_events").await, 6);
    assert_eq!(count(&client, "notifications").await, 6);
    // Five resolved episodes last changed 40 days before `later`, deleted
    // two at a time; the recent one and the firing one remain.
    assert_eq!(report.deleted_episodes, 5);
    let left: Vec<String> = client
        .query(
            "SELECT status || ':' || fingerprint FROM alerts ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        left,
        ["firing:000000000000000b", "resolved:000000000000000a"]
    );
    let names = partitions(&client, "alert_events").await;
    assert!(
        names.contains(&"alert_events_p20261211".to_owned()),
        "{names:?}"
    );
    assert!(!names.contains(&"alert_events_p20261104".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_retention_deletes_nothing_but_still_makes_partitions() {
    let db = TestDb::create().await;
    let store = migrated(&db).await;
    let client = db.client().await;
    insert_received(&client, 40, 2).await;
    insert_episode(&client, 1, "resolved", 40).await;
    let keep = RetentionConfig {
        enabled: false,
        ..policy()
    };
    let report = retention(&store, keep)
        .run_once(NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.created.len(), 6, "{:?}", report.created);
    assert_eq!(count(&client, "alert_events").await, 2);
    assert_eq!(count(&client, "alerts").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_run_at_once() {
    let db = TestDb::create().await;
    let store = migrated(&db).await;
    let client = db.client().await;
    // An unrelated advisory lock, one letter off retention's key, does not
    // block a run.
    client
        .execute("SELECT pg_advisory_lock(x'616c727472657472'::bigint)", &[])
        .await
        .unwrap();
    let other = Store::new(&test_config(&db.url).database).unwrap();
    assert!(retention(&other, policy())
        .run_once(NOW)
        .await
        .unwrap()
        .is_some());
    client
        .execute("SELECT pg_advisory_lock(x'616c72747265746e'::bigint)", &[])
        .await
        .unwrap();
    assert!(
        retention(&store, policy())
            .run_once(NOW)
            .await
            .unwrap()
            .is_none(),
        "skipped while the lock is held"
    );
    client
        .execute("SELECT pg_advisory_unlock_all()", &[])
        .await
        .unwrap();
    // Both at once (whether or not they overlap): both finish without an
    // error, and the partitions are made once.
    let (mine, theirs) = (retention(&store, policy()), retention(&other, policy()));
    let later = NOW + time::Duration::days(3);
    let (a, b) = tokio::join!(mine.run_once(later), theirs.run_once(later));
    let (a, b) = (a.unwrap(), b.unwrap());
    let created: usize = [&a, &b]
        .iter()
        .filter_map(|r| r.as_ref())
        .map(|r| {
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            r.created.len()
        })
        .sum();
    assert_eq!(created, 6, "three new days for two tables, made once");
}

/// The service runs retention itself: partitions exist as soon as it is
/// ready, webhooks land in them, and the metrics say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_makes_partitions_and_writes_into_them() {
    let db = TestDb::create().await;
    let service = Service::start_ready(test_config(&db.url)).await;
    let client = db.client().await;
    let ok = common::eventually(Duration::from_secs(10), || async {
        service
            .metric("alert_ingest_retention_runs_total{outcome=\"completed\"}")
            .await
            >= 1
    })
    .await;
    assert!(ok, "a retention run completed");
    // A new episode, then a change to it: an alert_events row (the
    // creation event is the episode's row).
    let alert = json!({"labels": {"alertname": "Now"}, "startsAt": "2026-11-24T00:00:00Z"});
    let (status, body) = service.post(webhook(vec![alert])).await;
    assert_eq!(status, 200, "{body}");
    let resolved = json!({"labels": {"alertname": "Now"}, "startsAt": "2026-11-24T00:00:00Z",
                          "status": "resolved", "endsAt": "2026-11-24T01:00:00Z"});
    let (status, body) = service.post(webhook(vec![resolved])).await;
    assert_eq!(status, 200, "{body}");
    service.settled().await;
    assert_eq!(count(&client, "alert_events").await, 1);
    assert_eq!(
        count(&client, "alert_events_default").await,
        0,
        "today has a partition"
    );
    assert_eq!(count(&client, "notifications_default").await, 0);
    let horizon = service
        .metric("alert_ingest_partition_horizon_seconds")
        .await;
    assert!(horizon >= 7 * 86_400, "premake 7 days: {horizon}");
}

/// Migration 0003 keeps what an older schema held: rows move into daily
/// partitions of the partitioned tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_keeps_existing_history() {
    let db = TestDb::create().await;
    let client = db.client().await;
    let store = Store::new(&test_config(&db.url).database).unwrap();
    assert_eq!(store.migrate_up_to(2).await.unwrap(), [1, 2]);
    insert_received(&client, 3, 4).await;
    let applied = store.migrate().await.unwrap();
    assert!(applied.contains(&3), "{applied:?}");
    // Straight into a partition of their day, none through the default.
    assert_eq!(count(&client, "alert_events").await, 4);
    assert_eq!(count(&client, "alert_events_p20261121").await, 4);
    assert_eq!(count(&client, "notifications_p20261121").await, 4);
    assert_eq!(count(&client, "notifications_default").await, 0);
    let report = retention(&store, policy())
        .run_once(NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.moved, 0);
    assert_eq!(count(&client, "notifications_p20261121").await, 4);
}
