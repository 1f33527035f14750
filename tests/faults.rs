//! Issue #4, rows 3, 5, 6 and 18: PostgreSQL slow (a table lock held past
//! the request deadline), hung (a black-holed network), killing the
//! service's connections mid-batch, and turned read-only. Whatever happens,
//! a request is answered within its deadline, 200 only once its alerts are
//! committed and 503 (never 4xx, never a hang) otherwise; Alertmanager's
//! retries then store every alert exactly once, and the service recovers
//! by itself, leaking no connections. That is `durability: database`; with
//! `spool` (each scenario's second test) every request is answered 200
//! within its deadline whatever PostgreSQL does, and loaded into it, each
//! alert exactly once, once it works again.
//!
//! Each test touches only its own database (`TestDb`) and the backends
//! connected to it: other tests share the PostgreSQL server.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alert_ingest::config::Durability;
use common::proxy::FaultProxy;
use common::{
    admin_url, as_admin_on_own_thread, count, eventually, firing, test_config, webhook, Service,
    TestDb,
};
use serde_json::Value;
use tokio_postgres::NoTls;

/// The request deadline these tests configure (shorter than `test_config`'s,
/// to keep them fast).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How late an answer may come after its deadline (scheduling on a loaded
/// two-core machine) before it counts as a hang.
const SLACK: Duration = Duration::from_secs(1);
/// `application_name` of the tests' own sessions, so that they can be told
/// apart from the service's in `pg_stat_activity` (all start `faults-`).
const OURS: &str = "faults-test";
const OURS_LIKE: &str = "faults-%";

/// A webhook carrying one alert whose labels are unique to `(name, i)`.
fn body(name: &str, i: usize) -> String {
    webhook(vec![firing(name, i)])
}

fn config(database_url: &str, durability: Durability) -> alert_ingest::config::Config {
    let mut config = test_config(database_url);
    config.durability = durability;
    config.server.request_timeout = REQUEST_TIMEOUT;
    config
}

/// What a webhook is answered while PostgreSQL fails: (status, `error`).
fn answer_while_failing(durability: Durability) -> (u16, Option<&'static str>) {
    match durability {
        Durability::Database => (503, Some("database_unavailable")),
        // Synced to the spool: PostgreSQL's state never reaches the sender.
        Durability::Spool => (200, None),
    }
}

/// `/readyz`'s status and JSON answer.
async fn readiness(service: &Service) -> (u16, Value) {
    let (status, text) = service.get("/readyz").await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `/readyz` while PostgreSQL fails: 503 with `database`; with `spool`
/// 200 (the spool takes writes), saying that PostgreSQL is not up.
async fn assert_readyz_while_failing(service: &Service, durability: Durability) {
    let (status, answer) = readiness(service).await;
    match durability {
        Durability::Database => assert_eq!(status, 503, "/readyz: {answer}"),
        Durability::Spool => {
            assert_eq!(status, 200, "/readyz: {answer}");
            assert_ne!(answer["database"], "up", "/readyz: {answer}");
        }
    }
}

/// `alert_ingest_db_errors_total` by class.
async fn db_errors(service: &Service) -> Vec<(String, u64)> {
    let metrics = service.get("/metrics").await.1;
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("alert_ingest_db_errors_total{class=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(class, n)| (class.to_owned(), n.trim().parse().unwrap()))
        .collect()
}

async fn connect_as(url: &str, application_name: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.application_name(application_name);
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A session of the test's own on its database (not counted as the service's).
async fn own_session(db: &TestDb) -> tokio_postgres::Client {
    connect_as(&db.url, OURS).await
}

/// The service's client backends on `db`: every client backend connected
/// to it but the tests' own sessions.
async fn service_backends(db: &TestDb) -> i64 {
    over_service_backends(db, "count(*)").await
}

/// Terminates the service's backends on `db` (only those); how many.
async fn terminate_service_backends(db: &TestDb) -> i64 {
    over_service_backends(db, "count(*) FILTER (WHERE pg_terminate_backend(pid))").await
}

/// `select` (an aggregate) over the service's client backends on `db`.
async fn over_service_backends(db: &TestDb, select: &str) -> i64 {
    let admin = connect_as(&admin_url(), OURS).await;
    let sql = format!(
        "SELECT {select} FROM pg_stat_activity
         WHERE datname = $1 AND backend_type = 'client backend'
           AND application_name NOT LIKE $2"
    );
    admin
        .query_one(&sql, &[&db.name, &OURS_LIKE])
        .await
        .unwrap()
        .get(0)
}

/// (alerts, distinct (fingerprint, starts_at), alert_timeline), and the
/// `instance` label of every stored alert.
async fn stored(db: &TestDb) -> ((i64, i64, i64), BTreeSet<String>) {
    let pg = own_session(db).await;
    let distinct: i64 = pg
        .query_one(
            "SELECT count(*) FROM (SELECT DISTINCT fingerprint, starts_at FROM alerts) e",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let instances = pg
        .query("SELECT labels->>'instance' FROM alerts", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    (
        (
            count(&pg, "alerts").await,
            distinct,
            count(&pg, "alert_timeline").await,
        ),
        instances,
    )
}

/// Runs SQL on an admin connection when dropped, test failed or not: undoes
/// what a test did to the shared server (locks held, database settings).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        as_admin_on_own_thread(std::mem::take(&mut self.0));
    }
}

/// Row 3: a transaction holds `ACCESS EXCLUSIVE` on `alerts` for ~6 s, three
/// times the request deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_database_answers_503_within_the_deadline_then_stores_every_retry_once() {
    // 503 while the commit cannot come in time: the database mode's answer.
    slow_database(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_database_never_delays_a_spooled_200_and_everything_is_loaded_once() {
    slow_database(Durability::Spool).await;
}

async fn slow_database(durability: Durability) {
    const HOLD: Duration = Duration::from_secs(6);
    let db = TestDb::create().await;
    let config = config(&db.url, durability);
    // The connections the service keeps: the pool's, and each worker's or the loader's.
    let writers = match durability {
        Durability::Database => config.workers.count,
        Durability::Spool => 1,
    };
    let most_backends = (writers + config.database.pool_size) as i64;
    let service = Service::start(config).await;
    assert_eq!(service.deliver(&body("Slow", 0), 1).await, [200]);
    service.settled().await;

    const LOCKER: &str = "faults-locker"; // one of OURS_LIKE
    let locker = connect_as(&db.url, LOCKER).await;
    // Ends the lock even if the test fails before it rolls back.
    let _unlock = Cleanup(vec![format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{}' AND application_name = '{LOCKER}'",
        db.name
    )]);
    locker.batch_execute("BEGIN").await.unwrap();
    locker
        .batch_execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let locked_at = Instant::now();

    // Three senders send one-alert requests, one after the other, for as
    // long as every answer must still come while the lock is held.
    const SENDERS: usize = 3;
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let client = service.client();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for i in 0.. {
                    if locked_at.elapsed() + REQUEST_TIMEOUT + SLACK >= HOLD {
                        break;
                    }
                    // Distinct however many each sends (thousands, when
                    // the spool answers at once).
                    let n = 1 + s + SENDERS * i;
                    let (status, answer, took) = client.timed_post(body("Slow", n)).await;
                    seen.push((n, status, answer, took));
                }
                seen
            })
        })
        .collect();
    let mut seen = Vec::new();
    for sender in senders {
        seen.extend(sender.await.unwrap());
    }
    // Answered (or timed out) while the lock was held, whatever was late.
    let hold_end = locked_at + HOLD;
    tokio::time::sleep_until(hold_end.into()).await;
    locker.batch_execute("ROLLBACK").await.unwrap();
    drop(locker);

    eprintln!(
        "while locked: {:?}",
        seen.iter().map(|s| (s.0, s.1, s.3)).collect::<Vec<_>>()
    );
    assert!(seen.len() >= 3, "{seen:?}");
    for (n, status, answer, took) in &seen {
        assert_eq!(
            (*status, answer["error"].as_str()),
            answer_while_failing(durability),
            "request {n} while the table was locked: {answer}"
        );
        assert!(
            *took <= REQUEST_TIMEOUT + SLACK,
            "request {n} answered after {took:?}, past its {REQUEST_TIMEOUT:?} deadline"
        );
    }

    // Alertmanager sends each refused one again; the database answers now.
    for (n, status, _, _) in &seen {
        if *status != 200 {
            let (status, answer) = service.post(body("Slow", *n)).await;
            assert_eq!(status, 200, "request {n} resent after the lock: {answer}");
        }
    }
    service.settled().await;
    let ((alerts, distinct, events), instances) = stored(&db).await;
    let sent = 1 + seen.len() as i64;
    assert_eq!(
        (alerts, distinct, events),
        (sent, sent, sent),
        "each acknowledged alert stored exactly once (alerts, episodes, events)"
    );
    let expected: BTreeSet<String> = std::iter::once(0)
        .chain(seen.iter().map(|s| s.0))
        .map(|n| format!("host-{n}"))
        .collect();
    assert_eq!(instances, expected);

    // Connections given up on (statement timed out client-side) are closed,
    // not left behind idle on the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = service_backends(&db).await;
    while last > most_backends && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = service_backends(&db).await;
    }
    eprintln!("service backends after the lock: {last}");
    assert!(
        last <= most_backends,
        "{last} service backends remain on {}, more than workers.count + database.pool_size = {most_backends}",
        db.name
    );
    service.shutdown().await;
}

/// Where PostgreSQL listens, from $DATABASE_URL.
async fn postgres_addr() -> SocketAddr {
    let config: tokio_postgres::Config = admin_url().parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap();
    addrs.next().unwrap()
}

/// Row 5: the network to PostgreSQL black-holes every byte (open connections
/// and new ones alike) until it heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_database_answers_503_within_the_deadline_and_recovers() {
    // 503 while the commit cannot come in time: the database mode's answer.
    hung_database(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_database_never_delays_a_spooled_200_and_everything_is_loaded_after() {
    hung_database(Durability::Spool).await;
}

async fn hung_database(durability: Durability) {
    let db = TestDb::create().await;
    let proxy = FaultProxy::start(postgres_addr().await).await;
    let config = config(&db.url_via(proxy.addr), durability);
    let statement_timeout = config.database.statement_timeout;
    let service = Service::start(config).await;
    assert_eq!(service.deliver(&body("Hung", 0), 1).await, [200]);
    service.settled().await;
    assert_eq!(service.get("/readyz").await.0, 200);

    proxy.set_blackhole();
    // Twice four requests at once: the first wave finds a worker's
    // connection open (and now hanging), the second finds it given up and
    // new ones that never finish connecting.
    for wave in 0..2 {
        let requests: Vec<_> = (1..=4)
            .map(|i| {
                let client = service.client();
                let n = wave * 10 + i;
                tokio::spawn(async move { (n, client.timed_post(body("Hung", n)).await) })
            })
            .collect();
        for request in requests {
            let (n, (status, answer, took)) = request.await.unwrap();
            assert_eq!(
                (status, answer["error"].as_str()),
                answer_while_failing(durability),
                "request {n} while the database hung: {answer}"
            );
            assert!(
                took <= REQUEST_TIMEOUT + SLACK,
                "request {n} answered after {took:?}, past its {REQUEST_TIMEOUT:?} deadline"
            );
        }
    }
    let started = Instant::now();
    assert_readyz_while_failing(&service, durability).await;
    assert!(
        started.elapsed() <= statement_timeout + SLACK,
        "/readyz answered after {:?}",
        started.elapsed()
    );
    let ((alerts, _, _), _) = stored(&db).await;
    assert_eq!(alerts, 1, "nothing can be written through a black hole");

    proxy.set_up();
    assert_recovers(
        &service,
        body("Hung", 100),
        "200 again within 10 s of the network healing",
        "/readyz 200 again within 10 s of the network healing",
    )
    .await;
    // Alertmanager's retries of what was refused (with the spool: an HA
    // peer's deliveries of what was acknowledged) are stored, once.
    for n in [1, 2, 3, 4, 11, 12, 13, 14] {
        assert_eq!(service.deliver(&body("Hung", n), 1).await, [200], "{n}");
    }
    service.settled().await;
    let ((alerts, distinct, events), _) = stored(&db).await;
    assert_eq!((alerts, distinct, events), (10, 10, 10));
    service.shutdown().await;
}

/// Row 5, when the network heals for new connections only: the connections
/// black-holed meanwhile stay open and silent (a firewall or NAT that lost
/// their state drops their packets until TCP gives up, ~15 min).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_recovers_when_hung_connections_never_come_back() {
    // A 503 and /readyz 503 while hung are the database mode's answers.
    hung_connections_never_come_back(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_recovers_when_hung_connections_never_come_back() {
    hung_connections_never_come_back(Durability::Spool).await;
}

async fn hung_connections_never_come_back(durability: Durability) {
    let db = TestDb::create().await;
    let proxy = FaultProxy::start(postgres_addr().await).await;
    let service = Service::start(config(&db.url_via(proxy.addr), durability)).await;
    assert_eq!(service.deliver(&body("Stuck", 0), 1).await, [200]);
    service.settled().await;
    assert_eq!(service.get("/readyz").await.0, 200);

    proxy.set_blackhole();
    let (status, answer) = service.post(body("Stuck", 1)).await;
    assert_eq!(status, answer_while_failing(durability).0, "{answer}");
    assert_readyz_while_failing(&service, durability).await;

    proxy.set_up_leaving_blackholed();
    assert_recovers(
        &service,
        body("Stuck", 1),
        "the workers give up on their hung connections",
        "/readyz 200 again within 10 s: new connections reach PostgreSQL",
    )
    .await;
    // The loader (or the workers) gave up on its hung connection too.
    service.settled().await;
    let ((alerts, distinct, events), _) = stored(&db).await;
    assert_eq!((alerts, distinct, events), (2, 2, 2));
    // And /readyz's own probe: a hung pooled connection is discarded, not
    // tried again by every later probe.
    let database_up = eventually(Duration::from_secs(10), || async {
        let (_, text) = service.get("/readyz").await;
        serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v["database"] == "up")
    })
    .await;
    assert!(database_up, "/readyz says the database is up again");
    service.shutdown().await;
}

/// Row 6: the service's backends are terminated, again and again, while
/// four senders deliver 200 alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_mid_batch_lose_and_duplicate_nothing() {
    // Senders see the lost batches (503) and retry, as Alertmanager does.
    connections_killed(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_mid_load_lose_and_duplicate_nothing() {
    connections_killed(Durability::Spool).await;
}

async fn connections_killed(durability: Durability) {
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 50;
    let db = TestDb::create().await;
    let service = Service::start(config(&db.url, durability)).await;

    let killer = {
        let pg = own_session(&db).await;
        let name = db.name.clone();
        tokio::spawn(async move {
            let mut terminated = 0;
            for _ in 0..50 {
                let rows = pg
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE datname = $1 AND pid <> pg_backend_pid()",
                        &[&name],
                    )
                    .await
                    .unwrap();
                terminated += rows.iter().filter(|r| r.get::<_, bool>(0)).count();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            terminated
        })
    };
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let client = service.client();
            tokio::spawn(async move {
                let (mut acknowledged, mut statuses) = (0, BTreeSet::new());
                for i in 0..PER_SENDER {
                    let seen = client.deliver(&body("Killed", s * 1000 + i), 20).await;
                    if seen.last() == Some(&200) {
                        acknowledged += 1;
                    }
                    statuses.extend(seen);
                    // Spread the deliveries over the killing.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (acknowledged, statuses)
            })
        })
        .collect();
    let (mut acknowledged, mut statuses) = (0, BTreeSet::new());
    for sender in senders {
        let (a, s) = sender.await.unwrap();
        acknowledged += a;
        statuses.extend(s);
    }
    let terminated = killer.await.unwrap();
    service.settled().await;

    let errors = db_errors(&service).await;
    eprintln!("terminated {terminated} backends; db errors {errors:?}; statuses {statuses:?}");
    assert!(terminated > 0, "no backend was terminated");
    assert!(
        errors.iter().map(|(_, n)| n).sum::<u64>() > 0,
        "{terminated} backends terminated but no write failed: {errors:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "only 200 and 503 may be answered: {statuses:?}"
    );
    assert_eq!(
        acknowledged,
        SENDERS * PER_SENDER,
        "every alert acknowledged within 20 tries"
    );
    let ((alerts, distinct, events), instances) = stored(&db).await;
    let total = (SENDERS * PER_SENDER) as i64;
    assert_eq!(
        (alerts, distinct, events),
        (total, total, total),
        "each alert stored exactly once (alerts, episodes, events); db errors {errors:?}"
    );
    assert_eq!(instances.len(), SENDERS * PER_SENDER);
    service.shutdown().await;
}

/// Row 18: the database turns read-only (`default_transaction_read_only`,
/// as a failed-over replica or a full disk would), then writable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_database_answers_503_never_400_and_the_retry_is_stored_once() {
    // 503 (never 400) while the commit cannot happen: the database mode's answer.
    read_only_database(Durability::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_database_is_waited_out_by_the_loader_never_rejected() {
    read_only_database(Durability::Spool).await;
}

async fn read_only_database(durability: Durability) {
    let db = TestDb::create().await;
    let service = Service::start(config(&db.url, durability)).await;
    assert_eq!(service.deliver(&body("ReadOnly", 0), 1).await, [200]);
    service.settled().await;

    let admin = connect_as(&admin_url(), OURS).await;
    let reset = format!(
        "ALTER DATABASE {} RESET default_transaction_read_only",
        db.name
    );
    let _reset = Cleanup(vec![reset.clone()]);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            db.name
        ))
        .await
        .unwrap();
    // Sessions take the setting when they start: make the service reconnect.
    assert!(terminate_service_backends(&db).await > 0);

    for attempt in 0..3 {
        let (status, answer, took) = service.timed_post(body("ReadOnly", 1)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            answer_while_failing(durability),
            "attempt {attempt} on a read-only database: {answer}"
        );
        assert!(took <= REQUEST_TIMEOUT + SLACK, "answered after {took:?}");
    }
    // With the spool, the loader meets the read-only database behind the 200s.
    let read_only_seen = eventually(Duration::from_secs(10), || async {
        db_errors(&service)
            .await
            .iter()
            .any(|(class, n)| class == "read_only" && *n > 0)
    })
    .await;
    let errors = db_errors(&service).await;
    assert!(
        read_only_seen,
        "db_errors_total{{class=\"read_only\"}}: {errors:?}"
    );
    let ((alerts, _, _), _) = stored(&db).await;
    assert_eq!(alerts, 1, "nothing written while read-only");

    admin.batch_execute(&reset).await.unwrap();
    assert!(terminate_service_backends(&db).await > 0);
    assert_eq!(
        service.deliver(&body("ReadOnly", 1), 1).await,
        [200],
        "the same alert, resent once the database is writable"
    );
    service.settled().await;
    let ((alerts, distinct, events), instances) = stored(&db).await;
    assert_eq!((alerts, distinct, events), (2, 2, 2));
    assert!(instances.contains("host-1"));
    // A read-only database is a failure that passes, never a refusal.
    let pg = own_session(&db).await;
    assert_eq!(count(&pg, "rejected_notifications").await, 0);
    service.shutdown().await;
}

/// Within 10 s each: `body` is stored (200), then `/readyz` answers 200.
async fn assert_recovers(service: &Service, body: String, stored: &str, ready: &str) {
    let recovered = eventually(Duration::from_secs(10), || async {
        service.post(body.clone()).await.0 == 200
    })
    .await;
    assert!(recovered, "{stored}");
    let is_ready = eventually(Duration::from_secs(10), || async {
        service.get("/readyz").await.0 == 200
    })
    .await;
    assert!(is_ready, "{ready}");
}
