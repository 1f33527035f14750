//! Issue #4, row 9: failures injected just before and just after the commit
//! of a batch (`fail` crate failpoints in `Store::write`; build with
//! `--features failpoints`, as scripts/test does). Whatever the failure, a
//! request is answered 200 only once its alerts are committed, and writing a
//! batch again after an unknown outcome stores nothing twice. The spool's
//! loader writes with the same statement: with `durability: spool` the same
//! failures are retried behind the 200 until they pass, and store nothing
//! twice either.
#![cfg(feature = "failpoints")]

mod common;

use std::time::Duration;

use alert_ingest::config::{Config, Durability};
use common::{count, eventually, test_config, webhook, Service, TestDb};

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

/// Rows in (alerts, alert_timeline, notifications).
async fn tables(db: &TestDb) -> (i64, i64, i64) {
    let pg = db.client().await;
    (
        count(&pg, "alerts").await,
        count(&pg, "alert_timeline").await,
        count(&pg, "notifications").await,
    )
}

async fn started(durability: Durability) -> (fail::FailScenario<'static>, TestDb, Service) {
    started_with(durability, |_| {}).await
}

/// `started`, with the test's own changes to the configuration.
async fn started_with(
    durability: Durability,
    tune: impl FnOnce(&mut Config),
) -> (fail::FailScenario<'static>, TestDb, Service) {
    let scenario = fail::FailScenario::setup();
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.durability = durability;
    tune(&mut config);
    let service = Service::start(config).await;
    (scenario, db, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_with_a_lost_answer_is_written_again_and_stored_once() {
    // The worker answers only after writing again: 200 only after commit.
    lost_commit_answer(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_with_a_lost_answer_is_loaded_again_from_the_spool_and_stored_once() {
    lost_commit_answer(Durability::Spool).await;
}

async fn lost_commit_answer(durability: Durability) {
    let (scenario, db, service) = started(durability).await;
    // The first write commits, then reports a lost connection: the worker
    // (or the loader) cannot know it committed, and writes the batch again;
    // a worker only then answers.
    fail::cfg("store::write::after_commit", "1*return").unwrap();
    assert_eq!(service.deliver(&body(1), 1).await, [200]);
    service.settled().await;
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
    // A request whose commit failed is answered 503: the database mode's promise.
    failure_before_the_commit(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_before_the_commit_is_loaded_from_the_spool_once_it_passes() {
    failure_before_the_commit(Durability::Spool).await;
}

async fn failure_before_the_commit(durability: Durability) {
    let (scenario, db, service) = started(durability).await;
    // Every attempt fails before the statement is sent.
    fail::cfg("store::write::before", "return").unwrap();
    let (status, answer) = service.post(body(2)).await;
    match durability {
        Durability::Database => assert_eq!(status, 503, "{answer}"),
        Durability::Spool => {
            // Synced to the spool: acknowledged, and loading it fails behind.
            assert_eq!(status, 200, "{answer}");
            let tried = eventually(Duration::from_secs(10), || async {
                service.metric(CONNECTION_ERRORS).await > 0
            })
            .await;
            assert!(tried, "the loader tried to write it");
        }
    }
    assert_eq!(tables(&db).await, (0, 0, 0));
    fail::remove("store::write::before");
    match durability {
        // The database works again; Alertmanager's retry is stored.
        Durability::Database => assert_eq!(service.deliver(&body(2), 3).await, [200]),
        // The database works again; the loader's next attempt stores it.
        Durability::Spool => service.settled().await,
    }
    assert_eq!(tables(&db).await, (1, 1, 1));
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_crash_after_commit_answers_503_and_the_retry_is_deduplicated() {
    // A worker that dies before answering: only the database mode answers after commit.
    let (scenario, db, service) = started(Durability::Database).await;
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
async fn a_loader_panic_after_commit_loads_the_rest_and_stores_nothing_twice() {
    let (scenario, db, service) = started(Durability::Spool).await;
    // The loader panics between its commit and learning of it: it reads
    // the batch from the spool again and writes it again.
    fail::cfg("store::write::after_commit", "1*panic").unwrap();
    assert_eq!(service.deliver(&body(3), 1).await, [200]);
    service.settled().await;
    assert_eq!(tables(&db).await, (1, 1, 1), "stored once");
    // The loader survived: later requests are still loaded.
    assert_eq!(service.deliver(&body(4), 1).await, [200]);
    service.settled().await;
    assert_eq!(tables(&db).await, (2, 2, 2));
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermittent_failures_under_concurrency_lose_and_duplicate_nothing() {
    // Senders see the failures (503) and retry, as Alertmanager does.
    intermittent_failures(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermittent_failures_behind_the_spool_lose_and_duplicate_nothing() {
    intermittent_failures(Durability::Spool).await;
}

async fn intermittent_failures(durability: Durability) {
    let (scenario, db, service) = started_with(durability, |config| {
        // The loader would take all that the senders spooled meanwhile in
        // a few large batches: at most 10 requests a write makes at least
        // 20 writes for the failpoints to hit (each fails or is written
        // again with p ≈ 0.55, so ~24 failures are expected; 10 are asserted).
        if durability == Durability::Spool {
            config.spool.load_max_rows = 10;
        }
    })
    .await;
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
    // With the spool, loading goes on through the failures.
    service.settled().await;
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
