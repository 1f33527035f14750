//! Issue #4, rows 13–17: hostile and abusive input. JSON bombs and label
//! abuse get a fast 400 from the limits in config; injection attempts are
//! stored verbatim; idle and slow sockets are closed by the timeouts while
//! real traffic goes on; wrong credentials store nothing and never show up
//! in the logs.

mod common;

use std::time::Duration;

use common::{count, test_config, webhook, Service, TestDb};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn alert(labels: Value, annotations: Value) -> Value {
    json!({
        "status": "firing", "labels": labels, "annotations": annotations,
        "startsAt": "2026-11-23T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom/graph",
    })
}

async fn started() -> (TestDb, Service) {
    let db = TestDb::create().await;
    let service = Service::start(test_config(&db.url)).await;
    (db, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bombs_and_label_abuse_get_a_fast_400_naming_the_limit() {
    let (db, service) = started().await;
    let ok = |i: usize| alert(json!({"alertname": "Ok", "i": i.to_string()}), json!({}));

    // Nested 100,000 deep in a field the parser does not know (the case
    // where serde would recurse to skip it): no stack overflow.
    let depth = 100_000;
    let bomb = format!(
        r#"{{"receiver":"r","alerts":[],"extra":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let (status, answer, took) = service.timed_post(bomb).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["detail"],
        "body: JSON nested deeper than limits.max_json_depth (64)"
    );
    assert!(took < Duration::from_secs(3), "took {took:?} (debug build)");

    // 100,000 alerts in one body (3.9 MB, under the body limit).
    let alerts = vec![json!({"labels": {}, "startsAt": "2026-11-23T10:00:00Z"}); 100_000];
    let (status, answer, took) = service.timed_post(webhook(alerts)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["detail"],
        "alerts: 100000 alerts, more than limits.max_alerts (10000)"
    );
    assert!(took < Duration::from_secs(3), "took {took:?} (debug build)");

    // 10,000 labels on one alert.
    let labels: serde_json::Map<String, Value> =
        (0..10_000).map(|i| (format!("l{i}"), json!("v"))).collect();
    let (status, answer, _) = service
        .timed_post(webhook(vec![alert(json!(labels), json!({}))]))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["detail"],
        "alerts[0].labels: 10000 entries, more than limits.max_labels (256)"
    );

    // A 1 MiB label value, and a 2 KiB label name.
    let (status, answer, _) = service
        .timed_post(webhook(vec![
            ok(0),
            alert(json!({"pod": "x".repeat(1 << 20)}), json!({})),
        ]))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["detail"],
        "alerts[1].labels.pod: 1048576 bytes, more than limits.max_label_value_bytes (16384)"
    );
    let (status, answer, _) = service
        .timed_post(webhook(vec![alert(
            json!({"n".repeat(2048): "v"}),
            json!({}),
        )]))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["detail"],
        "alerts[0].labels: a name of 2048 bytes, more than limits.max_name_bytes (1024)"
    );
    // A 4000-byte alertname: more than its btree index holds.
    let (status, answer, _) = service
        .timed_post(webhook(vec![alert(
            json!({"alertname": "a".repeat(4000)}),
            json!({}),
        )]))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "invalid_payload", "{answer}");
    assert_eq!(
        answer["detail"],
        "alerts[0].labels.alertname: 4000 bytes, more than limits.max_alertname_bytes (1024)"
    );

    // None of it was stored (nor spooled, to be loaded later), and the
    // service still works.
    service.settled().await;
    let pg = db.client().await;
    assert_eq!(count(&pg, "alerts").await, 0);
    assert_eq!(count(&pg, "notifications").await, 0);
    assert_eq!(service.post(webhook(vec![ok(1)])).await.0, 200);
    service.settled().await;
    assert_eq!(count(&pg, "alerts").await, 1);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5000_alert_group_is_stored_whole() {
    let (db, service) = started().await;
    let alerts: Vec<Value> = (0..5000)
        .map(|i| {
            alert(
                json!({"alertname": "Big", "pod": format!("pod-{i}"), "namespace": "prod"}),
                json!({"summary": format!("pod {i} is down"), "runbook": "https://runbooks/big"}),
            )
        })
        .collect();
    let body = webhook(alerts);
    assert!(body.len() > 1_000_000, "{} bytes", body.len());
    let (status, answer) = service.post(body).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (200, &json!(5000)),
        "{answer}"
    );
    service.settled().await;
    let pg = db.client().await;
    assert_eq!(count(&pg, "alerts").await, 5000);
    assert_eq!(count(&pg, "alert_timeline").await, 5000);
    assert_eq!(count(&pg, "notifications").await, 1);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_corpus_and_unicode_are_stored_byte_exact() {
    let (db, service) = started().await;
    let corpus = [
        "'; DROP TABLE alerts;--",
        "\"; DROP TABLE alerts; --",
        "$1",
        "$$ || pg_sleep(10) || $$",
        "\\",
        "\\.",
        "back\\slash\\\\",
        "tab\there",
        "new\nline\r\n",
        "%s%s%s%n",
        "{\"json\": [1, 2]}",
        "') OR 1=1 --",
        "\u{7}\u{1b}[31mred",
        "监控告警",
        "🔥🚨",
        "שלום עולם",
        "e\u{301}",
        "\u{feff}bom",
    ];
    let alerts: Vec<Value> = corpus
        .iter()
        .enumerate()
        .map(|(i, s)| {
            alert(
                json!({"alertname": "Corpus", "i": i.to_string(), "value": s, *s: "as a name"}),
                json!({"summary": s, *s: s}),
            )
        })
        .collect();
    let (status, answer) = service.post(webhook(alerts)).await;
    assert_eq!(status, 200, "{answer}");
    service.settled().await;
    let pg = db.client().await;
    for (i, s) in corpus.iter().enumerate() {
        let row = pg
            .query_one(
                "SELECT labels->>'value', labels->>$2, annotations->>'summary', annotations->>$2
                 FROM alerts WHERE labels->>'i' = $1",
                &[&i.to_string(), s],
            )
            .await
            .unwrap();
        let got: (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(
            got,
            (
                s.to_string(),
                "as a name".into(),
                s.to_string(),
                s.to_string()
            ),
            "corpus entry {i} {s:?}"
        );
    }
    // The schema is intact.
    for table in [
        "alerts",
        "alert_timeline",
        "notifications",
        "schema_migrations",
    ] {
        assert!(count(&pg, table).await > 0, "{table}");
    }
    service.shutdown().await;
}

/// File descriptors open in this process (the service runs in it).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Whether the server closed `stream` (EOF or reset) within `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar answer before the close is fine; keep reading.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_sockets_are_closed_while_real_traffic_goes_on() {
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.server.header_read_timeout = Duration::from_secs(1);
    config.server.request_timeout = Duration::from_secs(2);
    let service = Service::start(config).await;
    let addr = service.base.trim_start_matches("http://").to_owned();
    // Warm up the client's pool and the service before counting descriptors.
    assert_eq!(
        service
            .post(webhook(vec![alert(json!({"a": "0"}), json!({}))]))
            .await
            .0,
        200
    );
    let baseline = open_fds();

    // 500 sockets that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    // 20 that send a request head one byte at a time, too slowly to finish.
    let mut slow_heads = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow_heads.push(s);
    }
    let dribble = tokio::spawn(async move {
        for _ in 0..30 {
            for s in slow_heads.iter_mut() {
                let _ = s.write_all(b"X").await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        slow_heads
    });
    // 5 that send a full head and then the body too slowly (2 bytes/100 ms).
    let mut slow_bodies = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
        slow_bodies.push(s);
    }

    // Meanwhile, real requests are answered, and none waits behind the
    // hostile sockets: a request that did would take the header timeout
    // (1 s) or more. The median stays low; the strict p99 < 100 ms of the
    // issue is measured by scripts/chaos row 14 (slowhttptest, with the
    // machine to itself), not here, where the whole suite shares two cores.
    let mut took = Vec::new();
    for i in 0..50 {
        let body = webhook(vec![alert(json!({"a": (i + 1).to_string()}), json!({}))]);
        let (status, _, t) = service.timed_post(body).await;
        assert_eq!(status, 200);
        took.push(t);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    took.sort();
    let (median, worst) = (took[took.len() / 2], took[took.len() - 1]);
    eprintln!("real requests beside 525 hostile sockets: median {median:?}, slowest {worst:?}");
    assert!(median < Duration::from_millis(100), "median {median:?}");
    assert!(worst < Duration::from_secs(1), "a request waited {worst:?}");

    // The header timeout (1 s) closed the idle sockets and the slow heads.
    for s in idle.iter_mut() {
        assert!(
            closed_by_server(s, Duration::from_secs(3)).await,
            "an idle socket stayed open"
        );
    }
    let mut slow_heads = dribble.await.unwrap();
    for s in slow_heads.iter_mut() {
        assert!(
            closed_by_server(s, Duration::from_secs(3)).await,
            "a slow head stayed open"
        );
    }
    // The request timeout (2 s) ended the slow bodies with a 503.
    for mut s in slow_bodies {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 4096];
            loop {
                let _ = s.write_all(b" ").await;
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 503"), "slow body got {text:?}");
    }
    drop(idle);
    drop(slow_heads);
    // Descriptors return to where they were.
    let settled = common::eventually(Duration::from_secs(5), || async {
        open_fds() <= baseline + 2
    })
    .await;
    assert!(settled, "fds {} vs baseline {baseline}", open_fds());
    service.settled().await;
    assert_eq!(count(&db.client().await, "alerts").await, 51);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_of_every_kind_get_401_and_store_nothing() {
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.auth.basic_auth = Some(alert_ingest::config::BasicAuthConfig {
        username: "alertmanager".into(),
        password: Some(alert_ingest::config::Secret("correct-horse-battery".into())),
        password_file: None,
    });
    let service = Service::start(config).await;
    let body = webhook(vec![alert(json!({"a": "1"}), json!({}))]);
    let send = |user: &'static str, password: Option<&'static str>| {
        service
            .http
            .post(format!("{}/webhook", service.base))
            .header("content-type", "application/json")
            .basic_auth(user, password)
            .body(body.clone())
            .send()
    };
    let attempts = [
        ("alertmanager", None),
        ("alertmanager", Some("")),
        ("alertmanager", Some("wrong")),
        // The right length, one byte off: the comparison is constant-time
        // and exact.
        ("alertmanager", Some("correct-horse-batterx")),
        ("alertmanager", Some("correct-horse-battery ")),
        ("Alertmanager", Some("correct-horse-battery")),
        ("", Some("correct-horse-battery")),
    ];
    for (user, password) in attempts {
        let answer = send(user, password).await.unwrap();
        assert_eq!(answer.status(), 401, "{user:?} {password:?}");
        assert!(answer.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
    }
    // A bearer token where basic auth is configured.
    let bearer = service
        .http
        .post(format!("{}/webhook", service.base))
        .header("content-type", "application/json")
        .bearer_auth("correct-horse-battery")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    service.settled().await;
    assert_eq!(count(&db.client().await, "alerts").await, 0);
    assert_eq!(
        send("alertmanager", Some("correct-horse-battery"))
            .await
            .unwrap()
            .status(),
        200
    );
    service.settled().await;
    assert_eq!(count(&db.client().await, "alerts").await, 1);
    service.shutdown().await;
}
