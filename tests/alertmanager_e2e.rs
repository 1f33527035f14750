//! End to end with the real Alertmanager (Debian's 0.25, `$ALERTMANAGER_BIN`):
//! alerts pushed into Alertmanager reach the service through Alertmanager's
//! own webhook notifications, and PostgreSQL must then hold exactly what
//! Alertmanager reports: same fingerprints, labels, annotations and times,
//! and one `alert_timeline` row per state change, however often a group is sent.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_postgres::Client;

use alert_ingest::config::Durability;
use common::proxy::FaultProxy;
use common::{count, eventually, free_port, test_config, Service, TestDb};

const DEFAULT_ALERTMANAGER_BIN: &str = "/usr/bin/prometheus-alertmanager";
/// Alertmanager starts in well under a second; 20 s only bounds a broken start.
const AM_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// group_wait and group_interval are 1 s; 30 s allows for Alertmanager's retries.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Several group intervals: had Alertmanager re-sent an unchanged group, or
/// the service turned a repeat into an event, it would show by then.
const SETTLE: Duration = Duration::from_secs(3);
/// The receiver name in the Alertmanager configuration below.
const RECEIVER: &str = "ingest";

/// (firing rows without ends_at, all rows) of `alerts`.
const COUNT_FIRING: &str =
    "SELECT count(*) FILTER (WHERE status = 'firing' AND ends_at IS NULL), count(*) FROM alerts";
/// Resolved rows among the fingerprints in $1.
const COUNT_RESOLVED: &str =
    "SELECT count(*) FROM alerts WHERE status = 'resolved' AND fingerprint = ANY($1)";

const NANOS_PER_MICRO: u32 = 1_000;
const NANOS_PER_MILLI: u32 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_holds_exactly_what_alertmanager_reports() {
    let started = Instant::now();
    let db = TestDb::create().await;
    let service = Service::start(test_config(&db.url)).await;
    let am = Alertmanager::start(&format!("{}/webhook", service.base)).await;
    let pg = db.client().await;

    // 1. Five firing alerts in two groups (group_by: alertname).
    let sent = alerts_to_send();
    let firing: Vec<Value> = sent.iter().map(|a| a.to_json(None)).collect();
    am.post_alerts(&firing).await;
    let seen = am.wait_for(&sent).await;
    for (s, a) in sent.iter().zip(&seen) {
        check_alertmanager_view(s, a);
    }

    // 2. Alertmanager notifies both groups; every alert is stored as firing.
    assert_five_stored_firing(&pg, &am).await;

    // 3. Resolve the whole HighLatency group: same labels and startsAt, endsAt now.
    let resolved_at = OffsetDateTime::now_utc();
    let resolving = resolutions(&sent, resolved_at);
    am.post_alerts(&resolving).await;
    let resolved_fps = resolved_fingerprints(&sent, &seen);
    let delivered = eventually(DELIVERY_TIMEOUT, || {
        let (pg, fps) = (&pg, &resolved_fps);
        async move {
            let n: i64 = pg.query_one(COUNT_RESOLVED, &[fps]).await.unwrap().get(0);
            n == 2
        }
    })
    .await;
    assert!(
        delivered,
        "2 resolved alerts not stored\n{}",
        diagnose(&pg, &am).await
    );
    tokio::time::sleep(SETTLE).await;
    // Whatever was acknowledged by then is loaded (durability: spool).
    service.settled().await;

    // 4. PostgreSQL holds exactly Alertmanager's view, and nothing else.
    let alerts = alert_rows(&pg).await;
    let events = event_rows(&pg).await;
    let notifications = notification_rows(&pg).await;
    print_rows(&alerts, &events, &notifications);
    assert_eq!(alerts.len(), 5, "exactly one row per alert");
    for (s, a) in sent.iter().zip(&seen) {
        check_stored_alert(s, a, &alerts, resolved_at);
        check_events(s, a, &events, resolved_at);
    }
    assert_eq!(events.len(), 7, "5 firing + 2 resolved events, no repeats");
    check_notifications(&notifications);

    // Alertmanager first, so that it is not sending while the service stops.
    drop(am);
    assert!(
        service.shutdown().await,
        "the service shuts down within its grace period"
    );
    eprintln!(
        "alertmanager_e2e took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Issue #4 row 19: the database goes away for a while (a proxy cuts the
/// service off from it; `$AI_OUTAGE_SECS`, default 15, scripts/chaos runs
/// 120). The service answers 503, Alertmanager keeps retrying, and once the
/// database is back every alert still firing and every resolution of an
/// alert that was delivered firing is in PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_retries_deliver_everything_after_a_database_outage() {
    // Alertmanager's retries after 503s are the database mode's way through an outage.
    database_outage(Durability::Database).await;
}

/// The same outage with `durability: spool`: Alertmanager is answered 200
/// throughout (it never sees the outage), and everything it sent meanwhile
/// is loaded into PostgreSQL once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_never_sees_a_database_outage_behind_the_spool() {
    database_outage(Durability::Spool).await;
}

async fn database_outage(durability: Durability) {
    let outage = Duration::from_secs(
        std::env::var("AI_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(15),
    );
    let db = TestDb::create().await;
    let proxy = FaultProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut config = test_config(&db.url_via(proxy.addr));
    config.durability = durability;
    let service = Service::start(config).await;
    assert!(
        service.wait_ready(Duration::from_secs(10)).await,
        "the service never became ready"
    );
    let am = Alertmanager::start(&format!("{}/webhook", service.base)).await;
    let pg = db.client().await;

    // Five firing alerts, delivered and stored.
    let sent = alerts_to_send();
    am.post_alerts(&sent.iter().map(|a| a.to_json(None)).collect::<Vec<_>>())
        .await;
    let seen = am.wait_for(&sent).await;
    assert_five_stored_firing(&pg, &am).await;
    service.settled().await;

    // The database goes away. Meanwhile the HighLatency group resolves and a
    // new alert group starts firing.
    proxy.set_down();
    let resolved_at = OffsetDateTime::now_utc();
    let resolving = resolutions(&sent, resolved_at);
    am.post_alerts(&resolving).await;
    let during: Vec<Value> = (0..3)
        .map(|i| {
            json!({
                "labels": {"alertname": "DuringOutage", "instance": format!("host-{i}")},
                "annotations": {"summary": "fired while the database was away"},
                "startsAt": rfc3339(OffsetDateTime::now_utc() - time::Duration::seconds(10)),
            })
        })
        .collect();
    am.post_alerts(&during).await;
    tokio::time::sleep(outage).await;
    let refused = service
        .metric(r#"alert_ingest_http_requests_total{code="503"}"#)
        .await;
    match durability {
        Durability::Database => assert!(
            refused > 0,
            "Alertmanager was never answered 503 during the outage"
        ),
        Durability::Spool => {
            assert_eq!(
                non_2xx_answers(&service).await,
                Vec::<String>::new(),
                "Alertmanager was answered non-2xx during the outage"
            );
            let failed = am.metric(AM_WEBHOOK_FAILURES).await;
            assert_eq!(failed, 0, "Alertmanager saw failed webhook notifications");
            // Both groups' notifications were acknowledged from the spool
            // while the database was away (so the checks above were not idle).
            let spooled = service.metric("alert_ingest_spool_records_pending").await;
            assert!(spooled >= 2, "{spooled} requests spooled during the outage");
        }
    }
    assert_eq!(count(&pg, "alerts").await, 5, "nothing stored while away");

    // Back: Alertmanager's retries (or the loader) deliver the resolutions and the new group.
    proxy.set_up();
    service.settled().await;
    let resolved_fps = resolved_fingerprints(&sent, &seen);
    let caught_up = eventually(Duration::from_secs(60), || {
        let (pg, fps) = (&pg, &resolved_fps);
        async move {
            let resolved: i64 = pg.query_one(COUNT_RESOLVED, &[fps]).await.unwrap().get(0);
            let new: i64 = pg
                .query_one(
                    "SELECT count(*) FROM alerts WHERE alertname = 'DuringOutage' AND status = 'firing'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            resolved == 2 && new == 3
        }
    })
    .await;
    assert!(
        caught_up,
        "after the outage: not every resolution and new alert stored ({refused} answers were 503)\n{}",
        diagnose(&pg, &am).await
    );
    assert_eq!(
        count(&pg, "alerts").await,
        8,
        "one row per alert, none twice"
    );
    if durability == Durability::Spool {
        assert_eq!(non_2xx_answers(&service).await, Vec::<String>::new());
        assert_eq!(am.metric(AM_WEBHOOK_FAILURES).await, 0);
    }
    drop(am);
    service.shutdown().await;
}

/// Alertmanager's count of webhook notifications that failed (a non-2xx
/// answer or a transport error), retries included.
const AM_WEBHOOK_FAILURES: &str =
    r#"alertmanager_notifications_failed_total{integration="webhook"}"#;

/// The service's `alert_ingest_http_requests_total` series for any status
/// but 2xx.
async fn non_2xx_answers(service: &Service) -> Vec<String> {
    let metrics = service.get("/metrics").await.1;
    metrics
        .lines()
        .filter(|l| l.starts_with("alert_ingest_http_requests_total{"))
        .filter(|l| !l.contains("code=\"2"))
        .map(str::to_owned)
        .collect()
}

/// Waits until Alertmanager has delivered the five alerts of
/// `alerts_to_send`, each stored once as firing.
async fn assert_five_stored_firing(pg: &Client, am: &Alertmanager) {
    let delivered = eventually(DELIVERY_TIMEOUT, || async {
        let row = pg.query_one(COUNT_FIRING, &[]).await.unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1)) == (5, 5)
    })
    .await;
    assert!(
        delivered,
        "5 firing alerts not stored\n{}",
        diagnose(pg, am).await
    );
}

// ---------------------------------------------------------------------------
// The alerts

/// An alert as this test pushes it into Alertmanager.
struct Sent {
    labels: Value,
    annotations: Value,
    starts_at: OffsetDateTime,
    generator_url: String,
    /// Resolved in the second step (the whole HighLatency group).
    resolve: bool,
}

impl Sent {
    fn alertname(&self) -> &str {
        self.labels["alertname"].as_str().unwrap()
    }

    /// The `POST /api/v2/alerts` item; no `endsAt` means firing.
    fn to_json(&self, ends_at: Option<OffsetDateTime>) -> Value {
        let mut alert = json!({
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": rfc3339(self.starts_at),
            "generatorURL": self.generator_url,
        });
        if let Some(ends_at) = ends_at {
            alert["endsAt"] = rfc3339(ends_at).into();
        }
        alert
    }
}

/// The resolutions of the alerts meant to resolve, ended at `at`.
fn resolutions(sent: &[Sent], at: OffsetDateTime) -> Vec<Value> {
    sent.iter()
        .filter(|s| s.resolve)
        .map(|s| s.to_json(Some(at)))
        .collect()
}

/// Alertmanager's fingerprints of the alerts meant to resolve.
fn resolved_fingerprints(sent: &[Sent], seen: &[Seen]) -> Vec<String> {
    sent.iter()
        .zip(seen)
        .filter(|(s, _)| s.resolve)
        .map(|(_, a)| a.fingerprint.clone())
        .collect()
}

/// Five alerts, two alertnames. The awkward values are deliberate: Unicode,
/// quotes and a backslash must survive Alertmanager, JSON and jsonb unchanged.
fn alerts_to_send() -> Vec<Sent> {
    // Nine significant sub-second digits: Alertmanager keeps nanoseconds in
    // its webhooks, PostgreSQL keeps microseconds, so truncation is exercised.
    let base = (OffsetDateTime::now_utc() - time::Duration::minutes(5))
        .replace_nanosecond(212_632_181)
        .unwrap();
    let at =
        |i: i64| base + time::Duration::seconds(i * 7) + time::Duration::nanoseconds(i * 1_111);
    let url = |expr: &str| format!("http://prometheus.example:9090/graph?g0.expr={expr}&g0.tab=1");
    let alert = |i, labels, annotations, expr: &str, resolve| Sent {
        labels,
        annotations,
        starts_at: at(i),
        generator_url: url(expr),
        resolve,
    };
    vec![
        alert(
            0,
            json!({"alertname": "DiskFull", "instance": "db-1:9100", "severity": "critical",
                   "mountpoint": "/var/lib/postgresql"}),
            json!({"summary": "磁盘已满 — disk full on db-1 ✓", "description": "Ünïcödé ☃ 🚨 fill rate 3 GiB/h"}),
            "node_filesystem_avail_bytes%7Binstance%3D%22db-1%3A9100%22%7D%20%3C%201e9",
            false,
        ),
        alert(
            1,
            json!({"alertname": "DiskFull", "instance": "win-1:9182", "severity": "warning",
                   "volume": r#"C:\Data "quoted" \n"#}),
            json!({"summary": r#"Volume "C:\Data" at 91% (path C:\\Data\\)"#}),
            "windows_logical_disk_free_bytes%20%3C%201e9",
            false,
        ),
        alert(
            2,
            json!({"alertname": "DiskFull", "instance": "web-1:9100", "severity": "warning",
                   "mountpoint": "/srv"}),
            json!({}),
            "node_filesystem_avail_bytes%7Bmountpoint%3D%22%2Fsrv%22%7D%20%3C%201e9",
            false,
        ),
        alert(
            3,
            json!({"alertname": "HighLatency", "service": "checkout", "quantile": "0.99"}),
            json!({"summary": "p99 latency > 500 ms", "runbook_url": "https://runbooks.example/latency"}),
            "histogram_quantile(0.99%2C%20rate(http_duration_seconds_bucket%5B5m%5D))%20%3E%200.5",
            true,
        ),
        alert(
            4,
            json!({"alertname": "HighLatency", "service": "search", "region": "eu-west-1"}),
            json!({"summary": "p99 latency > 1 s — Suche langsam"}),
            "histogram_quantile(0.99%2C%20rate(search_duration_seconds_bucket%5B5m%5D))%20%3E%201",
            true,
        ),
    ]
}

/// Alertmanager's own view of an alert (`GET /api/v2/alerts`).
struct Seen {
    fingerprint: String,
    labels: Value,
    annotations: Value,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    state: String,
    generator_url: String,
}

impl Seen {
    fn from_json(alert: &Value) -> Seen {
        let text = |field: &str| {
            alert[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} in {alert}"))
        };
        Seen {
            fingerprint: text("fingerprint").to_owned(),
            labels: alert["labels"].clone(),
            annotations: alert["annotations"].clone(),
            starts_at: parse_time(text("startsAt")),
            ends_at: parse_time(text("endsAt")),
            state: alert["status"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            generator_url: text("generatorURL").to_owned(),
        }
    }
}

/// Alertmanager stored what was sent. Its API prints times with millisecond
/// precision only (go-openapi's DateTime), although it keeps nanoseconds.
fn check_alertmanager_view(sent: &Sent, seen: &Seen) {
    let who = &sent.labels;
    assert!(
        is_fingerprint(&seen.fingerprint),
        "{who}: fingerprint {:?}",
        seen.fingerprint
    );
    assert_eq!(
        seen.annotations, sent.annotations,
        "{who}: annotations in Alertmanager"
    );
    assert_eq!(
        seen.starts_at,
        truncate(sent.starts_at, NANOS_PER_MILLI),
        "{who}: startsAt in Alertmanager"
    );
    assert!(
        seen.ends_at > OffsetDateTime::now_utc(),
        "{who}: firing, so endsAt is in the future"
    );
    assert_eq!(seen.state, "active", "{who}: state in Alertmanager");
    assert_eq!(
        seen.generator_url, sent.generator_url,
        "{who}: generatorURL in Alertmanager"
    );
}

// ---------------------------------------------------------------------------
// What PostgreSQL must hold

fn check_stored_alert(sent: &Sent, seen: &Seen, rows: &[AlertRow], resolved_at: OffsetDateTime) {
    let who = &seen.labels;
    let matching: Vec<&AlertRow> = rows
        .iter()
        .filter(|r| r.fingerprint == seen.fingerprint)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "{who}: one row with Alertmanager's fingerprint {}",
        seen.fingerprint
    );
    let row = matching[0];
    assert_eq!(row.labels, seen.labels, "{who}: labels");
    assert_eq!(row.annotations, seen.annotations, "{who}: annotations");
    // Alertmanager's API shows milliseconds, its webhooks nanoseconds: the
    // row must have the microseconds that were sent and agree with the API.
    assert_eq!(
        row.starts_at,
        truncate(sent.starts_at, NANOS_PER_MICRO),
        "{who}: starts_at"
    );
    assert_eq!(
        truncate(row.starts_at, NANOS_PER_MILLI),
        seen.starts_at,
        "{who}: starts_at vs API"
    );
    let (status, ends_at) = expected_state(sent, resolved_at);
    assert_eq!(row.status, status, "{who}: status");
    assert_eq!(row.ends_at, ends_at, "{who}: ends_at");
    assert_eq!(
        row.generator_url, sent.generator_url,
        "{who}: generator_url"
    );
    assert_eq!(
        row.generator_url, seen.generator_url,
        "{who}: generator_url vs API"
    );
    assert_eq!(row.alertname, sent.alertname(), "{who}: alertname");
    assert_eq!(row.receiver, RECEIVER, "{who}: receiver");
}

/// One 'firing' event when first stored, one 'resolved' event for a resolved
/// alert, and nothing for Alertmanager's unchanged re-sends.
fn check_events(sent: &Sent, seen: &Seen, events: &[EventRow], resolved_at: OffsetDateTime) {
    let who = &seen.labels;
    let mine: Vec<&EventRow> = events
        .iter()
        .filter(|e| e.fingerprint == seen.fingerprint)
        .collect();
    let starts_at = truncate(sent.starts_at, NANOS_PER_MICRO);
    assert!(
        mine.iter().all(|e| e.starts_at == starts_at),
        "{who}: events of this episode only"
    );
    let firing: Vec<_> = mine.iter().filter(|e| e.status == "firing").collect();
    assert_eq!(firing.len(), 1, "{who}: one firing event");
    assert_eq!(
        firing[0].ends_at, None,
        "{who}: firing event has no ends_at"
    );
    let resolved: Vec<_> = mine.iter().filter(|e| e.status == "resolved").collect();
    if sent.resolve {
        assert_eq!(resolved.len(), 1, "{who}: one resolved event");
        assert_eq!(
            resolved[0].ends_at,
            expected_state(sent, resolved_at).1,
            "{who}: event ends_at"
        );
        assert!(
            resolved[0].received_at > firing[0].received_at,
            "{who}: resolved after firing"
        );
    } else {
        assert!(
            resolved.is_empty(),
            "{who}: still firing, so no resolved event"
        );
    }
}

/// Two firing notifications (one per group) and at least one for the
/// resolution: Alertmanager may split a group's changes over several sends.
fn check_notifications(rows: &[NotificationRow]) {
    assert!(
        rows.len() >= 3,
        "at least 3 notifications, got {}",
        rows.len()
    );
    for n in rows {
        assert_eq!(n.receiver, RECEIVER, "{n:?}");
        assert!(!n.group_key.is_empty(), "{n:?}");
        assert!(n.external_url.starts_with("http://"), "{n:?}");
    }
    let mut groups: Vec<&str> = rows.iter().map(|n| n.group_key.as_str()).collect();
    groups.sort();
    groups.dedup();
    assert_eq!(groups.len(), 2, "one group key per alertname: {groups:?}");
    assert!(
        rows.iter().any(|n| n.status == "resolved"),
        "a notification of the resolved group"
    );
    let alerts: i64 = rows.iter().map(|n| i64::from(n.alert_count)).sum();
    assert!(
        alerts >= 7,
        "notifications carried 5 firing + 2 resolved alerts at least, got {alerts}"
    );
}

/// `(status, ends_at)` a row must end with: the resolved ones carry the
/// `endsAt` this test sent, to the microsecond.
fn expected_state(
    sent: &Sent,
    resolved_at: OffsetDateTime,
) -> (&'static str, Option<OffsetDateTime>) {
    if sent.resolve {
        ("resolved", Some(truncate(resolved_at, NANOS_PER_MICRO)))
    } else {
        ("firing", None)
    }
}

// ---------------------------------------------------------------------------
// Reading PostgreSQL

#[derive(Debug)]
struct AlertRow {
    fingerprint: String,
    starts_at: OffsetDateTime,
    alertname: String,
    status: String,
    labels: Value,
    annotations: Value,
    ends_at: Option<OffsetDateTime>,
    generator_url: String,
    receiver: String,
}

#[derive(Debug)]
struct EventRow {
    fingerprint: String,
    starts_at: OffsetDateTime,
    status: String,
    ends_at: Option<OffsetDateTime>,
    received_at: OffsetDateTime,
}

#[derive(Debug)]
struct NotificationRow {
    receiver: String,
    status: String,
    group_key: String,
    external_url: String,
    alert_count: i32,
}

async fn alert_rows(pg: &Client) -> Vec<AlertRow> {
    let sql = "SELECT fingerprint, starts_at, alertname, status, labels::text, annotations::text,
                      ends_at, generator_url, receiver
               FROM alerts ORDER BY alertname, starts_at";
    let json = |text: String| serde_json::from_str::<Value>(&text).unwrap();
    pg.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| AlertRow {
            fingerprint: r.get(0),
            starts_at: r.get(1),
            alertname: r.get(2),
            status: r.get(3),
            labels: json(r.get(4)),
            annotations: json(r.get(5)),
            ends_at: r.get(6),
            generator_url: r.get(7),
            receiver: r.get(8),
        })
        .collect()
}

async fn event_rows(pg: &Client) -> Vec<EventRow> {
    let sql = "SELECT fingerprint, starts_at, status, ends_at, received_at
               FROM alert_timeline ORDER BY received_at, fingerprint";
    pg.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| EventRow {
            fingerprint: r.get(0),
            starts_at: r.get(1),
            status: r.get(2),
            ends_at: r.get(3),
            received_at: r.get(4),
        })
        .collect()
}

async fn notification_rows(pg: &Client) -> Vec<NotificationRow> {
    let sql = "SELECT receiver, status, group_key, external_url, alert_count
               FROM notifications ORDER BY received_at";
    pg.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| NotificationRow {
            receiver: r.get(0),
            status: r.get(1),
            group_key: r.get(2),
            external_url: r.get(3),
            alert_count: r.get(4),
        })
        .collect()
}

/// One line per row, for the record (and for a failure's diagnosis).
fn print_rows(alerts: &[AlertRow], events: &[EventRow], notifications: &[NotificationRow]) {
    eprintln!("alerts ({}):", alerts.len());
    for a in alerts {
        eprintln!(
            "  {} {} {} starts_at={} ends_at={} labels={} annotations={} generator_url={} receiver={}",
            a.fingerprint,
            a.alertname,
            a.status,
            rfc3339(a.starts_at),
            a.ends_at.map_or("NULL".into(), rfc3339),
            a.labels,
            a.annotations,
            a.generator_url,
            a.receiver,
        );
    }
    eprintln!("alert_timeline ({}):", events.len());
    for e in events {
        eprintln!(
            "  {} starts_at={} {} ends_at={} received_at={}",
            e.fingerprint,
            rfc3339(e.starts_at),
            e.status,
            e.ends_at.map_or("NULL".into(), rfc3339),
            rfc3339(e.received_at),
        );
    }
    eprintln!("notifications ({}):", notifications.len());
    for n in notifications {
        eprintln!("  {n:?}");
    }
}

/// What a timed-out wait prints: the tables so far and Alertmanager's log
/// (failed webhook deliveries are logged at warn).
async fn diagnose(pg: &Client, am: &Alertmanager) -> String {
    let rows: Vec<String> = alert_rows(pg)
        .await
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    format!(
        "alerts:\n{}\nnotifications: {}\nAlertmanager stderr:\n{}",
        rows.join("\n"),
        count(pg, "notifications").await,
        am.stderr()
    )
}

// ---------------------------------------------------------------------------
// The Alertmanager process

/// A running Alertmanager; dropping it kills and reaps the process, so that
/// it never outlives the test, even one that panics.
struct Alertmanager {
    child: Child,
    base: String,
    stderr_path: PathBuf,
    http: reqwest::Client,
    /// Configuration, storage and log; removed after the process is gone.
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager routing every alert to `webhook_url` and waits
    /// until it is ready.
    async fn start(webhook_url: &str) -> Alertmanager {
        let bin =
            std::env::var("ALERTMANAGER_BIN").unwrap_or_else(|_| DEFAULT_ALERTMANAGER_BIN.into());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("am.yml");
        std::fs::write(&config, alertmanager_config(webhook_url)).unwrap();
        let stderr_path = dir.path().join("alertmanager.log");
        let port = free_port();
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=") // empty: no clustering, no gossip port
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run Alertmanager {bin}: {e} (set ALERTMANAGER_BIN)")
            });
        let mut am = Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            _dir: dir,
        };
        am.wait_ready().await;
        am
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + AM_READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("Alertmanager exited with {status}:\n{}", self.stderr());
            }
            let ready = self.http.get(format!("{}/-/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "Alertmanager not ready after {AM_READY_TIMEOUT:?}:\n{}",
            self.stderr()
        );
    }

    async fn post_alerts(&self, alerts: &[Value]) {
        let response = self
            .http
            .post(format!("{}/api/v2/alerts", self.base))
            .json(alerts)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "POST /api/v2/alerts: {body}"
        );
    }

    /// Polls `GET /api/v2/alerts` until every sent alert is listed; returns
    /// Alertmanager's view of each, in the order of `sent`.
    async fn wait_for(&self, sent: &[Sent]) -> Vec<Seen> {
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let mut listed = Vec::new();
        while Instant::now() < deadline {
            listed = self.list_alerts().await;
            let find = |s: &Sent| listed.iter().find(|a| a["labels"] == s.labels);
            if listed.len() == sent.len() && sent.iter().all(|s| find(s).is_some()) {
                return sent
                    .iter()
                    .map(|s| Seen::from_json(find(s).unwrap()))
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "Alertmanager does not list the {} alerts sent: {listed:#?}",
            sent.len()
        );
    }

    async fn list_alerts(&self) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/api/v2/alerts", self.base))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET /api/v2/alerts: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The value of one series in Alertmanager's own `/metrics`; 0 when absent.
    async fn metric(&self, series: &str) -> u64 {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        let metrics = response.text().await.unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
    }

    fn stderr(&self) -> String {
        read_log(&self.stderr_path)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One route, one webhook receiver. `max_alerts: 0` sends every alert of a
/// group; `group_interval: 1s` lets a change go out within a second.
fn alertmanager_config(webhook_url: &str) -> String {
    format!(
        r#"route:
  receiver: {RECEIVER}
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: {RECEIVER}
    webhook_configs:
      - url: "{webhook_url}"
        send_resolved: true
        max_alerts: 0
"#
    )
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()))
}

// ---------------------------------------------------------------------------
// Times

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn parse_time(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Drops the digits below `unit_nanos` (1 000: microseconds, PostgreSQL's
/// resolution; 1 000 000: milliseconds, Alertmanager's API).
fn truncate(t: OffsetDateTime, unit_nanos: u32) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / unit_nanos * unit_nanos)
        .unwrap()
}

fn is_fingerprint(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
