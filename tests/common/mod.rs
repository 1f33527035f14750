//! Shared test harness: a fresh PostgreSQL database per test, the service
//! started in-process on a free port, an HTTP client, and a TCP fault proxy
//! that can cut the service off from PostgreSQL.
#![allow(dead_code)] // each test binary uses its own subset

pub mod proxy;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alert_ingest::app::App;
use alert_ingest::config::Config;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_postgres::NoTls;

pub const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/alertmanager-0.25"
);
const DEFAULT_ADMIN_URL: &str = "postgres://root@127.0.0.1:5432/test";

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// A loopback port nobody listens on right now, for a child process to
/// bind (the race with other processes until it does is accepted).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Posts every fixture to `service`, each answered 200.
pub async fn post_fixtures(service: &Service) {
    for name in fixture_names() {
        let (status, body) = service.post(fixture(&name)).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
}

pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into())
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to {url}: {e} (is PostgreSQL up? scripts/test starts it)")
        });
    tokio::spawn(connection);
    client
}

/// A database of its own, dropped when the test ends (scripts/test also
/// drops leftovers named `ai_test_*` from runs that crashed).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ai_test_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&admin_url()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = with_dbname(&admin_url(), &name);
        TestDb { name, url }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// The database URL with its host and port replaced (to go through a proxy).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let config: tokio_postgres::Config = self.url.parse().unwrap();
        let user = config.get_user().unwrap_or("root");
        format!(
            "postgres://{user}@{}:{}/{}",
            addr.ip(),
            addr.port(),
            self.name
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        as_admin_on_own_thread(vec![format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )]);
    }
}

/// Runs SQL as the admin role on a thread and runtime of its own, for
/// `Drop` impls (which may run while a runtime unwinds): undoes what a test
/// did to the shared server whether or not the test passed. Errors are
/// printed, not raised.
pub fn as_admin_on_own_thread(statements: Vec<String>) {
    on_own_thread(admin_url(), statements)
}

/// [`as_admin_on_own_thread`] on the server at `url`.
pub fn on_own_thread(url: String, statements: Vec<String>) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await else {
                return;
            };
            tokio::spawn(connection);
            for sql in statements {
                if let Err(e) = client.batch_execute(&sql).await {
                    eprintln!("cleanup {sql:?}: {e}");
                }
            }
        });
    })
    .join();
}

pub fn with_dbname(url: &str, name: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("DATABASE_URL ends with /dbname");
    let query = url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{name}{query}")
}

/// A spool directory of its own under the system's temp dir
/// (`alert-ingest-tests/`, which scripts/test empties before a run). The
/// clock is in the name because process ids come round again (pid_max is
/// often 32768): a test whose pid an earlier test process had would
/// otherwise open that test's spool and load what it left into its own
/// database.
pub fn spool_dir() -> std::path::PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir()
        .join("alert-ingest-tests")
        .join(format!(
            "spool-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ))
}

/// A config for tests: the default durability (spool) with a spool of its
/// own, a free port, this database, short timeouts.
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::default();
    config.spool.dir = spool_dir();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.request_timeout = Duration::from_secs(5);
    config.server.shutdown_grace = Duration::from_secs(10);
    config.database.url = database_url.to_owned();
    config.database.connect_timeout = Duration::from_millis(500);
    config.database.statement_timeout = Duration::from_secs(2);
    config
}

/// The service, running in this process. Derefs to a [`Client`] for it.
pub struct Service {
    app: Option<App>,
    client: Client,
}

/// An HTTP client aimed at one service; cheap to clone into tasks.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Service {
    pub async fn start(config: Config) -> Service {
        let app = App::start(config).await.expect("service starts");
        let client = Client {
            base: format!("http://{}", app.local_addr()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        Service {
            app: Some(app),
            client,
        }
    }

    /// Starts the service and waits (10 s at most) until `/readyz` says
    /// it is ready: the schema migrated, and a webhook would be taken.
    pub async fn start_ready(config: Config) -> Service {
        let service = Service::start(config).await;
        assert!(
            service.wait_ready(Duration::from_secs(10)).await,
            "the service is ready within 10 s"
        );
        service
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub async fn shutdown(mut self) -> bool {
        self.app.take().unwrap().shutdown().await
    }
}

impl std::ops::Deref for Service {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Client {
    pub async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, serde_json::Value) {
        self.post_as("application/json", body).await
    }

    /// Status 0 when the request failed in transport (refused, reset).
    pub async fn post_as(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let sent = self.webhook(content_type).body(body).send().await;
        let Ok(response) = sent else {
            return (0, serde_json::Value::Null);
        };
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Posts a webhook with `Authorization: Bearer <token>`; the status and
    /// the body's text.
    pub async fn post_bearer(&self, token: &str, body: String) -> (u16, String) {
        let response = self
            .webhook("application/json")
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// A `POST /webhook` with this content type, to be given a body.
    fn webhook(&self, content_type: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/webhook", self.base))
            .header("content-type", content_type)
    }

    /// Polls `/readyz` until it answers 200, for at most `within`.
    pub async fn wait_ready(&self, within: Duration) -> bool {
        eventually(within, || async {
            let ready = self.http.get(format!("{}/readyz", self.base)).send().await;
            ready.is_ok_and(|r| r.status() == 200)
        })
        .await
    }

    /// Waits until every request acknowledged so far is in PostgreSQL:
    /// with `durability: spool`, until the loader has loaded the spool (a
    /// 200 means synced to it); with `durability: database` at once (a 200
    /// means committed). Panics after 30 s.
    pub async fn settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.metric("alert_ingest_spool_records_pending").await != 0 {
            assert!(
                Instant::now() < deadline,
                "the spool was not loaded into PostgreSQL within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Posts once; the status, the answer and how long it took.
    pub async fn timed_post(&self, body: String) -> (u16, serde_json::Value, Duration) {
        let started = Instant::now();
        let (status, answer) = self.post(body).await;
        (status, answer, started.elapsed())
    }

    /// Sends as Alertmanager does: again after any non-2xx (transport errors
    /// included), up to `tries`. Returns the statuses seen.
    pub async fn deliver(&self, body: &str, tries: usize) -> Vec<u16> {
        let mut seen = Vec::new();
        for _ in 0..tries {
            let (status, _) = self.post(body.to_owned()).await;
            seen.push(status);
            if (200..300).contains(&status) {
                break;
            }
        }
        seen
    }

    /// The value of one series in `/metrics`, e.g.
    /// `alert_ingest_db_errors_total{class="connection"}`; 0 when absent.
    pub async fn metric(&self, series: &str) -> u64 {
        let metrics = self.get("/metrics").await.1;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0, |v| v.parse().unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// A firing alert whose labels are unique to `(name, i)`.
pub fn firing(name: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "status": "firing",
        "labels": {"alertname": name, "instance": format!("host-{i}")},
        "annotations": {"summary": "s"},
        "startsAt": "2026-11-23T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom/graph",
    })
}

/// A webhook of `alerts`, with every notification field Alertmanager sends.
pub fn webhook(alerts: Vec<serde_json::Value>) -> String {
    serde_json::json!({
        "receiver": "test", "status": "firing", "alerts": alerts, "groupLabels": {},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0
    })
    .to_string()
}

/// A timestamp as PostgreSQL stores it: UTC, microseconds; `None` for Go's
/// zero time (Alertmanager's "not set").
pub fn micros(t: &str) -> Option<OffsetDateTime> {
    let t = OffsetDateTime::parse(t, &Rfc3339).unwrap();
    let t = t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap();
    (t.year() != 1).then_some(t)
}

/// The alertname that `refuse_poison` makes PostgreSQL refuse.
pub const POISON: &str = "Poison";
/// The constraint `refuse_poison` adds, named in PostgreSQL's refusal.
pub const POISON_CONSTRAINT: &str = "test_poison";

/// Makes PostgreSQL itself refuse every alert named [`POISON`] (SQLSTATE
/// 23514, naming [`POISON_CONSTRAINT`]): a refusal no parser can foresee,
/// as a constraint an operator added would be. The schema must have been
/// migrated (a service's startup does it while PostgreSQL answers).
pub async fn refuse_poison(client: &tokio_postgres::Client) {
    client
        .batch_execute(&format!(
            "ALTER TABLE alerts ADD CONSTRAINT {POISON_CONSTRAINT} CHECK (alertname <> '{POISON}')"
        ))
        .await
        .unwrap();
}

/// Letters from xorshift64, so PostgreSQL cannot compress them below the
/// btree row limit as it would a repeated character.
pub fn incompressible(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Counts rows of a table.
pub async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
