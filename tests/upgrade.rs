//! Upgrading a database that holds data: the schema of the last release
//! (migrations 1 to 5, stopped there), rows written as that
//! release wrote them, then the service started on it. What the database
//! answered before the upgrade it must answer after, and new writes must
//! carry on from the old rows.

mod common;

use std::collections::HashMap;

use alert_ingest::model::Fingerprint;
use alert_ingest::store::Store;
use common::{count, test_config, webhook, Service, TestDb};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The last schema version before migration 6 (creation events derived).
const RELEASED: i32 = 5;

/// The schema of the last release, built by the service's own migrations
/// stopped at its version.
async fn released_schema(db: &TestDb) {
    let store = Store::new(&test_config(&db.url).database).unwrap();
    let applied = store.migrate_up_to(RELEASED).await.unwrap();
    assert_eq!(applied, [1, 2, 3, 4, 5]);
    store.close();
}

/// Three episodes as the last release stored them: each with a creation
/// event in `alert_events`, and `resolved` with its resolution too.
///   firing:   firing since 10:00
///   resolved: fired at 09:00, resolved at 09:30
///   edited:   fired at 08:00, annotation edited at 08:10 (same status)
const OLD_ROWS: &str = "
INSERT INTO alerts (fingerprint, starts_at, alertname, status, labels, annotations, ends_at,
                    generator_url, receiver, first_seen_at, updated_at) VALUES
 ('FP1', '2026-11-20 10:00Z', 'Old', 'firing',
  '{\"alertname\":\"Old\",\"n\":\"firing\"}', '{}', NULL, 'http://g', 'webhook',
  '2026-11-20 10:00:01Z', '2026-11-20 10:00:01Z'),
 ('FP2', '2026-11-20 09:00Z', 'Old', 'resolved',
  '{\"alertname\":\"Old\",\"n\":\"resolved\"}', '{}', '2026-11-20 09:30Z', 'http://g', 'webhook',
  '2026-11-20 09:00:01Z', '2026-11-20 09:30:01Z'),
 ('FP3', '2026-11-20 08:00Z', 'Old', 'firing',
  '{\"alertname\":\"Old\",\"n\":\"edited\"}', '{\"summary\":\"edited\"}', NULL, 'http://g',
  'webhook', '2026-11-20 08:00:01Z', '2026-11-20 08:10:01Z');
INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at) VALUES
 ('FP1', '2026-11-20 10:00Z', 'firing', NULL, '2026-11-20 10:00:01Z'),
 ('FP2', '2026-11-20 09:00Z', 'firing', NULL, '2026-11-20 09:00:01Z'),
 ('FP2', '2026-11-20 09:00Z', 'resolved', '2026-11-20 09:30Z', '2026-11-20 09:30:01Z'),
 ('FP3', '2026-11-20 08:00Z', 'firing', NULL, '2026-11-20 08:00:01Z'),
 ('FP3', '2026-11-20 08:00Z', 'firing', NULL, '2026-11-20 08:10:01Z');
INSERT INTO notifications (receiver, status, group_key, group_labels, common_labels,
                           common_annotations, external_url, truncated_alerts,
                           notification_reason, alert_count, received_at, request_id) VALUES
 ('webhook', 'firing', '{}:{alertname=\"Old\"}', '{\"alertname\":\"Old\"}',
  '{\"alertname\":\"Old\"}', '{}', 'http://am', 0, NULL, 1, '2026-11-20 10:00:01Z', 1)";

/// The fingerprint of an old episode: `{alertname="Old", n=…}`.
fn old(n: &str) -> String {
    Fingerprint::of_sorted([("alertname", "Old"), ("n", n)]).to_string()
}

/// `OLD_ROWS` with the episodes' fingerprints.
fn old_rows() -> String {
    OLD_ROWS
        .replace("FP1", &old("firing"))
        .replace("FP2", &old("resolved"))
        .replace("FP3", &old("edited"))
}

/// The service's config on `db`, retention off: the old rows are dated
/// 2026-11-20, and would be deleted as history past `retention.days`
/// once that many days have gone by.
fn old_rows_config(db: &TestDb) -> alert_ingest::config::Config {
    let mut config = test_config(&db.url);
    config.retention.enabled = false;
    config
}

/// Every timeline, as `(fingerprint, status, ends_at, received_at)` in
/// order, read from `source` (a table or view with the timeline columns).
async fn timelines(
    db: &TestDb,
    source: &str,
) -> Vec<(String, String, Option<OffsetDateTime>, OffsetDateTime)> {
    let client = db.client().await;
    let sql = format!(
        "SELECT fingerprint, status, ends_at, received_at FROM {source}
         ORDER BY fingerprint, starts_at, received_at"
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// The timeline of each episode of `fingerprint` as the history API gives it.
async fn api_timeline(service: &Service, fingerprint: &str) -> Value {
    let (status, body) = service.get(&format!("/api/v1/alerts/{fingerprint}")).await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    page["items"][0]["events"].clone()
}

/// A timeline as `status:ends_at` strings.
fn changes(events: Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["status"].as_str().unwrap(), e["ends_at"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_database_answers_as_before_and_carries_on() {
    let db = TestDb::create().await;
    released_schema(&db).await;
    db.client().await.batch_execute(&old_rows()).await.unwrap();
    let before = timelines(&db, "alert_events").await;
    assert_eq!(before.len(), 5);

    let service = Service::start_ready(old_rows_config(&db)).await;
    let client = db.client().await;
    let version: i32 = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert!(version > RELEASED, "migrated past the release: {version}");

    // The same timelines, in SQL and through the API; old rows untouched.
    assert_eq!(timelines(&db, "alert_timeline").await, before);
    assert_eq!(count(&client, "alert_events").await, 5);
    assert_eq!(
        api_timeline(&service, &old("resolved")).await,
        json!([
            {"status": "firing", "ends_at": null, "received_at": "2026-11-20T09:00:01+00:00"},
            {"status": "resolved", "ends_at": "2026-11-20T09:30:00+00:00",
             "received_at": "2026-11-20T09:30:01+00:00"},
        ])
    );
    assert_eq!(
        api_timeline(&service, &old("edited")).await,
        json!([
            {"status": "firing", "ends_at": null, "received_at": "2026-11-20T08:00:01+00:00"},
            {"status": "firing", "ends_at": null, "received_at": "2026-11-20T08:10:01+00:00"},
        ])
    );
    let notifications = client
        .query_one(
            "SELECT receiver, status, group_key, alert_count, request_id FROM notifications",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(notifications.get::<_, &str>(2), "{}:{alertname=\"Old\"}");
    assert_eq!(notifications.get::<_, i64>(4), 1);

    // A new episode: its creation event is its row, not an alert_events row.
    let new = json!({
        "status": "firing",
        "labels": {"alertname": "New"},
        "annotations": {},
        "startsAt": "2026-11-21T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://g",
    });
    let (status, body) = service.post(webhook(vec![new.clone()])).await;
    assert_eq!(status, 200, "{body}");
    service.settled().await;
    assert_eq!(count(&client, "alert_events").await, 5);
    assert_eq!(count(&client, "alert_timeline").await, 6);

    // Resolving it, and the old firing episode, appends one change each to
    // alert_events; the old episode keeps its old creation event.
    let mut resolved = new;
    resolved["status"] = json!("resolved");
    resolved["endsAt"] = json!("2026-11-21T10:30:00Z");
    let old_resolved = json!({
        "status": "resolved",
        "labels": {"alertname": "Old", "n": "firing"},
        "annotations": {},
        "startsAt": "2026-11-20T10:00:00Z",
        "endsAt": "2026-11-21T11:00:00Z",
        "generatorURL": "http://g",
    });
    let (status, body) = service.post(webhook(vec![resolved, old_resolved])).await;
    assert_eq!(status, 200, "{body}");
    service.settled().await;
    let rows = client
        .query(
            "SELECT a.fingerprint, a.first_status, count(e.*) FROM alerts a
             LEFT JOIN alert_events e USING (fingerprint, starts_at)
             GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let by_episode: HashMap<String, (Option<String>, i64)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    assert_eq!(by_episode.len(), 4);
    // Stored before the upgrade: no first state on the row, its events as
    // they were, and the resolution of the firing one after them.
    assert_eq!(by_episode[&old("firing")], (None, 2));
    assert_eq!(by_episode[&old("resolved")], (None, 2));
    assert_eq!(by_episode[&old("edited")], (None, 2));
    assert_eq!(
        changes(api_timeline(&service, &old("firing")).await),
        ["firing:null", "resolved:\"2026-11-21T11:00:00+00:00\""]
    );
    // Stored after: the row says it was first firing; one change event.
    let new_fp = Fingerprint::of_sorted([("alertname", "New")]).to_string();
    assert_eq!(by_episode[&new_fp], (Some("firing".to_owned()), 1));
    assert_eq!(
        changes(api_timeline(&service, &new_fp).await),
        ["firing:null", "resolved:\"2026-11-21T10:30:00+00:00\""]
    );
    service.shutdown().await;
}

/// A delivery loaded late (another instance stored a later one first) of
/// an episode stored before the upgrade: one whose timeline is all in
/// `alert_events`, and one whose events retention dropped (nothing to place
/// it against). Both are acknowledged and stored without error, neither
/// rewinds its row, and the first takes its place in the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_delivery_of_an_episode_stored_before_the_upgrade_is_placed() {
    let db = TestDb::create().await;
    released_schema(&db).await;
    let client = db.client().await;
    client.batch_execute(&old_rows()).await.unwrap();
    // `firing` lost its events to retention.
    client
        .execute(
            "DELETE FROM alert_events WHERE fingerprint = $1",
            &[&old("firing")],
        )
        .await
        .unwrap();
    let service = Service::start_ready(old_rows_config(&db)).await;
    // Another instance stored later deliveries of both, in their state.
    client
        .execute(
            "UPDATE alerts SET version_at = now() + interval '1 hour'
             WHERE fingerprint IN ($1, $2)",
            &[&old("firing"), &old("resolved")],
        )
        .await
        .unwrap();
    let late = |n: &str, status: &str, ends_at: &str| {
        json!({
            "status": status,
            "labels": {"alertname": "Old", "n": n},
            "annotations": {},
            "startsAt": if n == "firing" { "2026-11-20T10:00:00Z" } else { "2026-11-20T09:00:00Z" },
            "endsAt": ends_at,
            "generatorURL": "http://g",
        })
    };
    let body = webhook(vec![
        late("firing", "resolved", "2026-11-20T10:30:00Z"),
        late("resolved", "firing", "0001-01-01T00:00:00Z"),
    ]);
    let (status, answer) = service.post(body).await;
    assert_eq!(status, 200, "{answer}");
    service.settled().await;
    let states: HashMap<String, String> = client
        .query("SELECT fingerprint, status FROM alerts", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(states[&old("firing")], "firing", "no rewind");
    assert_eq!(states[&old("resolved")], "resolved", "no rewind");
    assert_eq!(
        changes(api_timeline(&service, &old("resolved")).await),
        [
            "firing:null",
            "resolved:\"2026-11-20T09:30:00+00:00\"",
            "firing:null",
            "resolved:\"2026-11-20T09:30:00+00:00\""
        ],
        "fired again at its receipt, resolved again at the row's version"
    );
    assert_eq!(
        api_timeline(&service, &old("firing")).await,
        json!([]),
        "nothing left to place it against"
    );
    assert_eq!(service.metric("alert_ingest_alerts_late_total").await, 1);
    // Stored without error: no failed write, nothing set aside.
    let metrics = service.get("/metrics").await.1;
    let failed: Vec<&str> = (metrics.lines())
        .filter(|l| l.starts_with("alert_ingest_db_errors_total{"))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(count(&client, "rejected_notifications").await, 0);
    service.shutdown().await;
}
