//! Integration tests against a real PostgreSQL: what each request leaves in
//! the `alerts`, `alert_timeline` and `notifications` tables, and what the
//! sender is told.

mod common;

use std::time::Duration;

use alert_ingest::config::Durability;
use common::proxy::FaultProxy;
use common::{
    count, eventually, fixture, fixture_names, incompressible, micros, refuse_poison, test_config,
    webhook, Client, Service, TestDb, POISON, POISON_CONSTRAINT,
};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Rows = Vec<tokio_postgres::Row>;

async fn started() -> (TestDb, Service) {
    let db = TestDb::create().await;
    let service = Service::start(test_config(&db.url)).await;
    (db, service)
}

fn alert(name: &str, i: usize, status: &str, ends_at: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": name, "instance": format!("host-{i}")},
        "annotations": {"summary": format!("summary {i}")},
        "startsAt": "2026-11-23T10:00:00.123456789Z",
        "endsAt": ends_at,
        "generatorURL": "http://prom/graph",
    })
}

const ZERO: &str = "0001-01-01T00:00:00Z";

/// Posts a webhook of `alerts`; the HTTP status.
async fn status_of(service: &Client, alerts: Vec<Value>) -> u16 {
    service.post(webhook(alerts)).await.0
}

async fn alerts_rows(db: &TestDb) -> Rows {
    db.client()
        .await
        .query(
            "SELECT fingerprint, alertname, status, labels::text, annotations::text, starts_at, ends_at,
                    generator_url, receiver, first_seen_at <= updated_at
             FROM alerts ORDER BY fingerprint, starts_at",
            &[],
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fixture_stores_exact_rows_in_all_three_tables_and_repeats_add_none() {
    for name in fixture_names() {
        let (db, service) = started().await;
        let body = fixture(&name);
        let sent: Value = serde_json::from_slice(&body).unwrap();
        let sent_alerts = sent["alerts"].as_array().unwrap();
        let (status, answer) = service.post(body.clone()).await;
        assert_eq!(
            (status, &answer),
            (200, &json!({"accepted": sent_alerts.len()})),
            "{name}"
        );
        service.settled().await;

        let rows = alerts_rows(&db).await;
        assert_eq!(rows.len(), sent_alerts.len(), "{name}: one row per episode");
        for a in sent_alerts {
            let fp = a["fingerprint"].as_str().unwrap();
            let row = rows
                .iter()
                .find(|r| r.get::<_, &str>(0) == fp)
                .unwrap_or_else(|| panic!("{name}: {fp} missing"));
            assert_eq!(
                row.get::<_, &str>(1),
                a["labels"]["alertname"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                row.get::<_, &str>(2),
                a["status"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                serde_json::from_str::<Value>(row.get(3)).unwrap(),
                a["labels"],
                "{name}"
            );
            assert_eq!(
                serde_json::from_str::<Value>(row.get(4)).unwrap(),
                a["annotations"],
                "{name}"
            );
            assert_eq!(
                Some(row.get::<_, OffsetDateTime>(5)),
                micros(a["startsAt"].as_str().unwrap()),
                "{name}"
            );
            assert_eq!(
                row.get::<_, Option<OffsetDateTime>>(6),
                micros(a["endsAt"].as_str().unwrap()),
                "{name}"
            );
            assert_eq!(
                row.get::<_, &str>(7),
                a["generatorURL"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                row.get::<_, &str>(8),
                sent["receiver"].as_str().unwrap(),
                "{name}"
            );
            assert!(row.get::<_, bool>(9));
        }

        let client = db.client().await;
        let events = client
            .query(
                "SELECT fingerprint, status, ends_at FROM alert_timeline",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            events.len(),
            sent_alerts.len(),
            "{name}: one event per new episode"
        );
        for a in sent_alerts {
            let fp = a["fingerprint"].as_str().unwrap();
            let e = events.iter().find(|e| e.get::<_, &str>(0) == fp).unwrap();
            assert_eq!(e.get::<_, &str>(1), a["status"].as_str().unwrap());
            assert_eq!(
                e.get::<_, Option<OffsetDateTime>>(2),
                micros(a["endsAt"].as_str().unwrap())
            );
        }

        let n = client
            .query_one(
                "SELECT receiver, status, group_key, group_labels::text, common_labels::text,
                        common_annotations::text, external_url, truncated_alerts,
                        notification_reason, alert_count
                 FROM notifications",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(n.get::<_, &str>(0), sent["receiver"].as_str().unwrap());
        assert_eq!(n.get::<_, &str>(1), sent["status"].as_str().unwrap());
        assert_eq!(n.get::<_, &str>(2), sent["groupKey"].as_str().unwrap());
        assert_eq!(
            serde_json::from_str::<Value>(n.get(3)).unwrap(),
            sent["groupLabels"]
        );
        assert_eq!(
            serde_json::from_str::<Value>(n.get(4)).unwrap(),
            sent["commonLabels"]
        );
        assert_eq!(
            serde_json::from_str::<Value>(n.get(5)).unwrap(),
            sent["commonAnnotations"]
        );
        assert_eq!(n.get::<_, &str>(6), sent["externalURL"].as_str().unwrap());
        assert_eq!(
            n.get::<_, i64>(7),
            sent["truncatedAlerts"].as_i64().unwrap()
        );
        assert_eq!(n.get::<_, Option<&str>>(8), None);
        assert_eq!(n.get::<_, i32>(9) as usize, sent_alerts.len());

        // The same delivery again (a retry, or the HA peer): no new episode, no new event.
        let (status, _) = service.post(body).await;
        assert_eq!(status, 200);
        service.settled().await;
        assert_eq!(
            count(&client, "alerts").await as usize,
            sent_alerts.len(),
            "{name}"
        );
        assert_eq!(
            count(&client, "alert_timeline").await as usize,
            sent_alerts.len(),
            "{name}"
        );
        assert_eq!(count(&client, "notifications").await, 2, "{name}");
        service.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_then_resolved_is_one_episode_with_two_events() {
    let (db, service) = started().await;
    assert_eq!(
        status_of(&service, vec![alert("Flap", 1, "firing", ZERO)]).await,
        200
    );
    let ends = "2026-11-23T10:05:00.5Z";
    assert_eq!(
        status_of(&service, vec![alert("Flap", 1, "resolved", ends)]).await,
        200
    );
    // A later repeat of the resolution changes nothing.
    assert_eq!(
        status_of(&service, vec![alert("Flap", 1, "resolved", ends)]).await,
        200
    );
    service.settled().await;

    let client = db.client().await;
    let row = client
        .query_one("SELECT status, ends_at FROM alerts", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "resolved");
    assert_eq!(row.get::<_, Option<OffsetDateTime>>(1), micros(ends));
    let events: Vec<(String, Option<OffsetDateTime>)> = client
        .query(
            "SELECT status, ends_at FROM alert_timeline ORDER BY received_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        events,
        [
            ("firing".to_string(), None),
            ("resolved".to_string(), micros(ends))
        ]
    );
    // The creation event is the episode's row; alert_events holds the change.
    let first = client
        .query_one("SELECT first_status, first_ends_at FROM alerts", &[])
        .await
        .unwrap();
    assert_eq!(first.get::<_, Option<&str>>(0), Some("firing"));
    assert_eq!(first.get::<_, Option<OffsetDateTime>>(1), None);
    assert_eq!(count(&client, "alert_events").await, 1);
    // A changed annotation is a change too; the same alert next week is a new episode.
    let mut changed = alert("Flap", 1, "resolved", ends);
    changed["annotations"]["summary"] = json!("edited");
    let mut next_week = alert("Flap", 1, "firing", ZERO);
    next_week["startsAt"] = json!("2026-11-30T10:00:00Z");
    assert_eq!(status_of(&service, vec![changed, next_week]).await, 200);
    service.settled().await;
    assert_eq!(count(&client, "alerts").await, 2);
    assert_eq!(count(&client, "alert_timeline").await, 4);
    assert_eq!(count(&client, "alert_events").await, 2);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_clients_store_every_alert_once() {
    const CLIENTS: usize = 50;
    const REQUESTS: usize = 10;
    const ALERTS: usize = 7;
    let (db, service) = started().await;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let service = service.client();
        tasks.push(tokio::spawn(async move {
            for r in 0..REQUESTS {
                // Every client also re-sends one shared alert: concurrent duplicates.
                let mut alerts: Vec<Value> = (0..ALERTS)
                    .map(|i| alert(&format!("C{c}"), r * ALERTS + i, "firing", ZERO))
                    .collect();
                alerts.push(alert("Shared", 0, "firing", ZERO));
                let (status, body) = service.post(webhook(alerts)).await;
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    service.settled().await;
    let client = db.client().await;
    let expected = (CLIENTS * REQUESTS * ALERTS + 1) as i64;
    assert_eq!(count(&client, "alerts").await, expected);
    assert_eq!(count(&client, "alert_timeline").await, expected);
    assert_eq!(
        count(&client, "notifications").await,
        (CLIENTS * REQUESTS) as i64
    );
    let dupes: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT fingerprint, starts_at FROM alerts GROUP BY 1, 2 HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dupes, 0);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_unreachable_answers_503_never_200_and_recovers() {
    // A 503 while PostgreSQL is away is what `durability: database` promises.
    database_unreachable_then_back(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_unreachable_is_answered_200_from_the_spool_and_loaded_after() {
    database_unreachable_then_back(Durability::Spool).await;
}

/// PostgreSQL cut off by a fault proxy, then back. `database`: 503 while
/// it is away, 200 again once it returns. `spool`: 200 throughout, and
/// every acknowledged request is loaded once it returns.
async fn database_unreachable_then_back(durability: Durability) {
    let db = TestDb::create().await;
    let proxy = FaultProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut config = test_config(&db.url_via(proxy.addr));
    config.durability = durability;
    let service = Service::start(config).await;
    let body = |i: usize| webhook(vec![alert("Outage", i, "firing", ZERO)]);
    assert_eq!(service.post(body(0)).await.0, 200);
    service.settled().await;
    assert_eq!(service.get("/readyz").await.0, 200);

    proxy.set_down();
    let answer_while_down = match durability {
        Durability::Database => (503, Some("database_unavailable")),
        Durability::Spool => (200, None),
    };
    for i in 1..=5 {
        let started = std::time::Instant::now();
        let (status, answer) = service.post(body(i)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            answer_while_down,
            "{answer}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "answered within the request timeout"
        );
    }
    let (ready, readiness) = service.get("/readyz").await;
    match durability {
        Durability::Database => assert_eq!(ready, 503, "{readiness}"),
        Durability::Spool => {
            // Ready (the spool takes writes), and saying PostgreSQL is not up.
            assert_eq!(ready, 200, "{readiness}");
            let readiness: Value = serde_json::from_str(&readiness).unwrap();
            assert_eq!(readiness["durability"], "spool");
            assert_ne!(readiness["database"], "up", "{readiness}");
            assert_eq!(readiness["spool"]["pending_records"], 5, "{readiness}");
        }
    }
    let client = db.client().await;
    assert_eq!(
        count(&client, "alerts").await,
        1,
        "nothing written while down"
    );

    proxy.set_up();
    let recovered = eventually(Duration::from_secs(10), || async {
        service.post(body(6)).await.0 == 200
    })
    .await;
    assert!(recovered, "200 again within 10 s of the database returning");
    assert_eq!(service.get("/readyz").await.0, 200);
    service.settled().await;
    let stored = match durability {
        // 1 to 5 were refused (Alertmanager sends them again).
        Durability::Database => 2,
        Durability::Spool => 7,
    };
    assert_eq!(count(&client, "alerts").await, stored);
    let metrics = service.get("/metrics").await.1;
    assert!(
        metrics.contains("alert_ingest_db_errors_total{class="),
        "{metrics}"
    );
    match durability {
        // Five webhooks and one /readyz were answered 503.
        Durability::Database => assert!(
            metrics.contains("alert_ingest_http_requests_total{code=\"503\"} 6"),
            "{metrics}"
        ),
        // Every request was answered 200: the outage never reached a sender.
        Durability::Spool => {
            let codes: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("alert_ingest_http_requests_total{"))
                .collect();
            assert!(!codes.is_empty(), "{metrics}");
            assert!(
                codes.iter().all(|l| l.contains("code=\"200\"")),
                "{codes:?}"
            );
        }
    }
    service.shutdown().await;
}

/// Sends raw bytes and returns the status code and body of the answer.
async fn raw(service: &Service, request: &[u8]) -> (u16, String) {
    let addr = service.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_store_nothing() {
    // Includes a request PostgreSQL refuses: a 400 `rejected_by_database` only here.
    bad_requests_store_nothing(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_spool_nothing() {
    bad_requests_store_nothing(Durability::Spool).await;
}

/// Every kind of bad request gets its 4xx and leaves nothing behind (with
/// `spool`, nothing spooled to be loaded later either); only the refusal
/// by PostgreSQL itself differs: a 400 with `database`, a rejection kept
/// in `rejected_notifications` with `spool` (its 200 came before the load).
async fn bad_requests_store_nothing(durability: Durability) {
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.durability = durability;
    config.server.max_body_bytes = 64 * 1024;
    let service = Service::start_ready(config).await;
    let client = db.client().await;
    refuse_poison(&client).await;
    let good = webhook(vec![alert("Good", 1, "firing", ZERO)]);

    let (status, body) = service.post("{not json").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, body) = service.post(r#"{"receiver":"x"}"#).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_payload"))
    );
    assert!(
        body["detail"].as_str().unwrap().contains("alerts"),
        "{body}"
    );
    let bad_time = webhook(vec![
        alert("Bad", 1, "firing", ZERO),
        json!({"labels": {}, "startsAt": "nope"}),
    ]);
    let (status, body) = service.post(bad_time).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "alerts[1].startsAt: invalid RFC 3339 timestamp"
    );
    // Valid RFC 3339 whose UTC instant is past year 9999: refused, and the
    // workers live on (it once panicked a worker per request).
    for _ in 0..3 {
        let far = webhook(vec![
            json!({"labels": {"a": "b"}, "startsAt": "9999-12-31T23:59:59-23:00"}),
        ]);
        let (status, body) = service.post(far).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["detail"],
            "alerts[0].startsAt: later than the year 9999 in UTC"
        );
    }
    let (status, body) = service.post_as("text/plain", good.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    assert_eq!(
        service
            .post_as("application/json; charset=utf-8", good.clone())
            .await
            .0,
        200
    );

    let too_big = webhook(vec![
        json!({"labels": {"x": "y".repeat(70 * 1024)}, "startsAt": "2026-01-01T00:00:00Z"}),
    ]);
    let (status, body) = service.post(too_big.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    let lie = b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000000000\r\n\r\n{";
    assert_eq!(raw(&service, lie).await.0, 413);
    let mut chunked = b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for chunk in too_big.as_bytes().chunks(8192) {
        chunked.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend(chunk);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    assert_eq!(raw(&service, &chunked).await.0, 413);

    let (status, _) = service.get("/nope").await;
    assert_eq!(status, 404);
    let (status, _) = service.get("/webhook").await;
    assert_eq!(status, 405);
    assert_eq!(service.get("/healthz").await.0, 200);

    // An alertname longer than its btree index holds: refused by the
    // parser, before a spool could acknowledge what PostgreSQL would refuse.
    let huge_name = webhook(vec![alert(&incompressible(4000), 1, "firing", ZERO)]);
    let (status, body) = service.post(huge_name).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_payload")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("limits.max_alertname_bytes"),
        "{body}"
    );

    // PostgreSQL itself refuses this one (a CHECK constraint): with
    // `database`, 400, not an endless 503; with `spool`, acknowledged and
    // then kept aside. Either way the service goes on.
    let poison = webhook(vec![alert(POISON, 1, "firing", ZERO)]);
    let (status, body) = service.post(poison.clone()).await;
    match durability {
        Durability::Database => {
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("rejected_by_database")),
                "{body}"
            );
            assert!(
                body["detail"].as_str().unwrap().contains(POISON_CONSTRAINT),
                "{body}"
            );
        }
        Durability::Spool => assert_eq!(status, 200, "{body}"),
    }
    assert_eq!(
        status_of(&service, vec![alert("Good", 2, "firing", ZERO)]).await,
        200
    );

    service.settled().await;
    assert_eq!(
        count(&client, "alerts").await,
        2,
        "only the good requests stored"
    );
    assert_eq!(count(&client, "notifications").await, 2);
    let rejected: Vec<(String, Vec<u8>)> = client
        .query("SELECT sqlstate, body FROM rejected_notifications", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    match durability {
        Durability::Database => assert!(rejected.is_empty(), "{rejected:?}"),
        Durability::Spool => assert_eq!(rejected, [("23514".into(), poison.into_bytes())]),
    }
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_alert_is_refused_alone_while_its_batch_neighbours_commit() {
    // The refusal reaches the sender (a 400) only when the 200 waits for the commit.
    poison_among_neighbours(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_alert_is_rejected_alone_at_load_while_its_batch_neighbours_load() {
    poison_among_neighbours(Durability::Spool).await;
}

/// 40 concurrent one-alert requests, three of them bad: one the parser
/// refuses (400 in both modes), two PostgreSQL refuses inside a batch of
/// good ones. `database`: those two get 400 `rejected_by_database`;
/// `spool`: 200, then each is kept alone in `rejected_notifications`. The
/// neighbours are stored either way.
async fn poison_among_neighbours(durability: Durability) {
    const REQUESTS: usize = 40;
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.durability = durability;
    // One worker and a long linger: requests queue up behind each commit and
    // are written together, so the bad rows share batches with good ones.
    // (The spool's loader batches whatever the spool holds when it reads.)
    config.workers.count = 1;
    config.batch.linger = Duration::from_millis(50);
    let service = Service::start_ready(config).await;
    let client = db.client().await;
    refuse_poison(&client).await;
    let mut tasks = Vec::new();
    for i in 0..REQUESTS {
        let service = service.client();
        tasks.push(tokio::spawn(async move {
            let mut a = alert("Batch", i, "firing", ZERO);
            match i {
                // Refused by the parser: PostgreSQL cannot store U+0000.
                7 => a["labels"]["pod"] = json!("bad\u{0}pod"),
                // Refused by PostgreSQL itself, inside a batch (a CHECK constraint).
                13 | 29 => a["labels"]["alertname"] = json!(POISON),
                _ => {}
            }
            service.post(webhook(vec![a])).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    for (i, (status, body)) in answers.iter().enumerate() {
        match (i, durability) {
            (7, _) => assert_eq!(
                (*status, &body["detail"]),
                (
                    400,
                    &json!("alerts[0].labels.pod: contains U+0000, which PostgreSQL cannot store")
                )
            ),
            (13 | 29, Durability::Database) => assert_eq!(
                (*status, body["error"].as_str()),
                (400, Some("rejected_by_database")),
                "{body}"
            ),
            _ => assert_eq!(*status, 200, "request {i}: {body}"),
        }
    }
    service.settled().await;
    assert_eq!(count(&client, "alerts").await, REQUESTS as i64 - 3);
    let rejected: Vec<String> = client
        .query(
            "SELECT convert_from(body, 'UTF8')::jsonb #>> '{alerts,0,labels,instance}'
             FROM rejected_notifications WHERE sqlstate = '23514' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: &[&str] = match durability {
        Durability::Database => &[],
        Durability::Spool => &["host-13", "host-29"],
    };
    assert_eq!(rejected, expected);
    let metrics = service.get("/metrics").await.1;
    assert!(
        metrics.contains("alert_ingest_db_errors_total{class=\"data\"}"),
        "{metrics}"
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_when_configured() {
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.auth.bearer_token = Some(alert_ingest::config::Secret("s3cret-token".into()));
    let service = Service::start(config).await;
    let body = webhook(vec![alert("Auth", 1, "firing", ZERO)]);
    let send = |token: Option<&'static str>| {
        let mut request = service
            .http
            .post(format!("{}/webhook", service.base))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let refused = send(None).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let wrong = send(Some("guess")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        !wrong.text().await.unwrap().contains("s3cret"),
        "the secret is never echoed"
    );
    assert_eq!(send(Some("s3cret-token")).await.unwrap().status(), 200);
    service.settled().await;
    assert_eq!(count(&db.client().await, "alerts").await, 1);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_store_each_episode_once() {
    let db = TestDb::create().await;
    // Both start (and migrate) at the same moment.
    let (a, b) = tokio::join!(
        Service::start(test_config(&db.url)),
        Service::start(test_config(&db.url))
    );
    // Firing before resolved, as Alertmanager sends them.
    let mut names = fixture_names();
    names.sort_by_key(|n| n.starts_with("resolved"));
    let post = |service: &Service, body: String| {
        let (http, base) = (service.http.clone(), service.base.clone());
        async move {
            let response = http
                .post(format!("{base}/webhook"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    // The HA pair: both peers deliver each notification at the same moment,
    // and each delivery is retried twice more.
    for name in &names {
        let body = String::from_utf8(fixture(name)).unwrap();
        for _ in 0..3 {
            tokio::join!(post(&a, body.clone()), post(&b, body.clone()));
        }
    }
    a.settled().await;
    b.settled().await;
    let client = db.client().await;
    let episodes: i64 = client
        .query_one(
            "SELECT count(DISTINCT (fingerprint, starts_at)) FROM alerts",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count(&client, "alerts").await, episodes);
    // One event per first sight plus one per real change, however many deliveries.
    let changes: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT DISTINCT fingerprint, starts_at, status, ends_at FROM alert_timeline) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        count(&client, "alert_timeline").await,
        changes,
        "no duplicate events"
    );
    let resolved: i64 = client
        .query_one(
            "SELECT count(*) FROM alert_timeline WHERE status = 'resolved'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let resolved_sent = serde_json::from_slice::<Value>(&fixture("resolved-group.json")).unwrap()
        ["alerts"]
        .as_array()
        .unwrap()
        .len() as i64;
    let resolved_elsewhere = 1; // mixed-firing-resolved.json carries one resolved alert
    assert_eq!(resolved, resolved_sent + resolved_elsewhere);
    let row = client
        .query_one(
            "SELECT count(*), max(version)::bigint FROM schema_migrations",
            &[],
        )
        .await
        .unwrap();
    let (applied, latest): (i64, i64) = (row.get(0), row.get(1));
    assert!(latest >= 4, "every migration ran: {latest}");
    assert_eq!(applied, latest, "each migration applied once");
    let gin: Vec<String> = client
        .query_one(
            "SELECT reloptions FROM pg_class WHERE relname = 'alerts_labels_idx'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(gin, ["gin_pending_list_limit=64"], "migration 0004");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_everything_in_flight_and_loses_nothing_acknowledged() {
    const MAX_PER_SENDER: usize = 100_000;
    let (db, service) = started().await;
    let mut senders = Vec::new();
    for c in 0..20 {
        let client = service.client();
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            // Until the listener is gone (status 0), however fast the machine.
            for r in 0..MAX_PER_SENDER {
                let i = c * MAX_PER_SENDER + r;
                let (status, body) = client
                    .post(webhook(vec![alert("Drain", i, "firing", ZERO)]))
                    .await;
                // 200 committed; 503 draining; 0 the listener is gone: all retried by Alertmanager.
                assert!(matches!(status, 200 | 503 | 0), "status {status}: {body}");
                if status == 200 {
                    acknowledged.push(format!("host-{i}"));
                }
                if status == 0 {
                    return (acknowledged, true);
                }
            }
            (acknowledged, false)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(service.shutdown().await, "drained within the grace period");
    let (mut acknowledged, mut cut_off) = (Vec::new(), false);
    for s in senders {
        let (acked, saw_refusal) = s.await.unwrap();
        acknowledged.extend(acked);
        cut_off |= saw_refusal;
    }
    assert!(
        !acknowledged.is_empty(),
        "some requests were served before the shutdown"
    );
    assert!(
        cut_off,
        "the shutdown came while senders were still sending"
    );
    let client = db.client().await;
    let stored: Vec<String> = client
        .query("SELECT labels->>'instance' FROM alerts", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|a| !stored.contains(a))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
}
