//! Issue #4, row 9: failures injected just before and just after the commit
//! of a batch (`fail` crate failpoints in `Store::write`; build with
//! `--features failpoints`, as scripts/test does). Whatever the failure, a
//! request is answered 200 only once its alerts are committed, and writing a
//! batch again after an unknown outcome stores nothing twice.
#![cfg(feature = "failpoints")]

mod common;

use common::{count, test_config, webhook, Service, TestDb};

/// Failed writes counted as lost connections (what the failpoints report).
const CONNECTION_ERRORS: &str = r#"alert_ingest_db_errors_total{class="connection"}"#;
const DATA_ERRORS: &str = r#"alert_ingest_db_errors_total{class="data"}"#;
use serde_json::json;

fn body(i: usize) -> String {
    webhook(vec![json!({
        "status": "firing",
        "labels": {"alertname": "Failpoint", "instance": format!("host-{i}")},
        "annotations": {"summary": "s"},
        "startsAt": "2026-11-23T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom/graph",
    })])
}

/// Rows in (alerts, alert_events, notifications).
async fn tables(db: &TestDb) -> (i64, i64, i64) {
    let pg = db.client().await;
    (
        count(&pg, "alerts").await,
        count(&pg, "alert_events").await,
        count(&pg, "notifications").await,
    )
}

async fn started() -> (fail::FailScenario<'static>, TestDb, Service) {
    let scenario = fail::FailScenario::setup();
    let db = TestDb::create().await;
    let service = Service::start(test_config(&db.url)).await;
    (scenario, db, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_with_a_lost_answer_is_written_again_and_stored_once() {
    let (scenario, db, service) = started().await;
    // The first write commits, then reports a lost connection: the worker
    // cannot know it committed, writes the batch again, and only then answers.
    fail::cfg("store::write::after_commit", "1*return").unwrap();
    assert_eq!(service.deliver(&body(1), 1).await, [200]);
    assert_eq!(
        tables(&db).await,
        (1, 1, 1),
        "the second write of the batch must add no alert, event or notification"
    );
    assert_eq!(
        service.metric(CONNECTION_ERRORS).await,
        1,
        "the failpoint fired once"
    );
    assert_eq!(
        service.metric(DATA_ERRORS).await,
        0,
        "the second write skips the committed notification instead of colliding with it"
    );
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_before_the_commit_is_never_acknowledged_and_the_retry_stores_it() {
    let (scenario, db, service) = started().await;
    // Every attempt fails before the statement is sent.
    fail::cfg("store::write::before", "return").unwrap();
    let (status, answer) = service.post(body(2)).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(tables(&db).await, (0, 0, 0));
    // The database works again; Alertmanager's retry is stored.
    fail::remove("store::write::before");
    assert_eq!(service.deliver(&body(2), 3).await, [200]);
    assert_eq!(tables(&db).await, (1, 1, 1));
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_crash_after_commit_answers_503_and_the_retry_is_deduplicated() {
    let (scenario, db, service) = started().await;
    // The worker panics between the commit and the answer: the request was
    // stored but is answered 503, so Alertmanager sends it again.
    fail::cfg("store::write::after_commit", "1*panic").unwrap();
    assert_eq!(service.deliver(&body(3), 3).await, [503, 200]);
    let (alerts, events, notifications) = tables(&db).await;
    assert_eq!((alerts, events), (1, 1), "the alert is stored once");
    // Two deliveries did arrive, and the notifications table records both.
    assert_eq!(notifications, 2);
    // The worker survived: later requests are still stored.
    assert_eq!(service.deliver(&body(4), 1).await, [200]);
    assert_eq!(tables(&db).await.0, 2);
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermittent_failures_under_concurrency_lose_and_duplicate_nothing() {
    let (scenario, db, service) = started().await;
    // One write in three fails, before or after its commit.
    fail::cfg("store::write::before", "33%return").unwrap();
    fail::cfg("store::write::after_commit", "33%return").unwrap();
    let senders: Vec<_> = (0..8)
        .map(|s| {
            let client = service.client();
            tokio::spawn(async move {
                let mut acknowledged = 0;
                for i in 0..25 {
                    let seen = client.deliver(&body(1000 + s * 100 + i), 20).await;
                    if seen.last() == Some(&200) {
                        acknowledged += 1;
                    }
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = 0;
    for sender in senders {
        acknowledged += sender.await.unwrap();
    }
    fail::remove("store::write::before");
    fail::remove("store::write::after_commit");
    let (alerts, events, _) = tables(&db).await;
    assert!(
        service.metric(CONNECTION_ERRORS).await >= 10,
        "the failpoints fired"
    );
    assert_eq!(acknowledged, 200, "every alert was acknowledged in the end");
    assert_eq!(
        (alerts, events),
        (200, 200),
        "each alert stored exactly once"
    );
    scenario.teardown();
}
