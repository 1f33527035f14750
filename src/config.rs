//! Typed configuration: every key, its default and its unit, in one place.
//! `config.yaml` at the repository root documents the same keys for people.
//! Unknown keys and invalid values stop startup with a message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Environment variables that override the file (secrets and the database URL
/// do not belong in a file that is committed).
pub const ENV_DATABASE_URL: &str = "ALERT_INGEST_DATABASE_URL";
pub const ENV_DATABASE_URL_FALLBACK: &str = "DATABASE_URL";
pub const ENV_BEARER_TOKEN: &str = "ALERT_INGEST_AUTH_BEARER_TOKEN";
pub const ENV_BASIC_USERNAME: &str = "ALERT_INGEST_AUTH_BASIC_USERNAME";
pub const ENV_BASIC_PASSWORD: &str = "ALERT_INGEST_AUTH_BASIC_PASSWORD";
/// `durability`: `spool` or `database`.
pub const ENV_DURABILITY: &str = "ALERT_INGEST_DURABILITY";
/// `spool.dir`.
pub const ENV_SPOOL_DIR: &str = "ALERT_INGEST_SPOOL_DIR";
/// `history.database_url`.
pub const ENV_HISTORY_DATABASE_URL: &str = "ALERT_INGEST_HISTORY_DATABASE_URL";

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// What a 2xx promises (see `Durability`).
    pub durability: Durability,
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub database: DatabaseConfig,
    pub queue: QueueConfig,
    pub spool: SpoolConfig,
    pub workers: WorkersConfig,
    pub batch: BatchConfig,
    pub cache: CacheConfig,
    pub interner: InternerConfig,
    pub limits: LimitsConfig,
    pub history: HistoryConfig,
    pub retention: RetentionConfig,
    pub log: LogConfig,
}

/// When a webhook request is answered 2xx.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Once its body is synced (`fdatasync`) to the local spool; PostgreSQL
    /// is loaded from the spool behind it, so a database outage or a slow
    /// commit never reaches Alertmanager (see `spool`).
    #[default]
    Spool,
    /// Once its alerts are committed in PostgreSQL; while PostgreSQL is down
    /// or slow, webhooks are answered 503 and Alertmanager retries them.
    Database,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Spool => "spool",
            Durability::Database => "database",
        }
    }

    fn parse(s: &str) -> Option<Durability> {
        match s {
            "spool" => Some(Durability::Spool),
            "database" => Some(Durability::Database),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// How long a webhook request may wait for its alerts to be committed
    /// before it is answered 503 (Alertmanager then retries).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A connection that has not sent its full request head within this time
    /// is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the accept backlog.
    pub max_connections: usize,
    /// On SIGTERM/SIGINT: time allowed to finish in-flight requests and
    /// commit queued alerts before the process exits anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Value of the `Retry-After` header sent with 503 answers.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// HTTPS instead of plain HTTP, and optionally client certificates.
    pub tls: Option<TlsConfig>,
}

/// TLS for the listener (rustls). PEM files, read at startup.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, every client must present a certificate signed by one of
    /// these CAs (mutual TLS); Alertmanager sends one from
    /// `http_config.tls_config.cert_file`.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9095)),
            max_body_bytes: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(25),
            retry_after: Duration::from_secs(5),
            tls: None,
        }
    }
}

impl ServerConfig {
    fn validate(&self, problems: &mut Problems) {
        problems.check(
            self.max_body_bytes > 0,
            "server.max_body_bytes",
            "must be greater than 0",
        );
        problems.check(
            !self.request_timeout.is_zero(),
            "server.request_timeout",
            "must be greater than 0",
        );
        problems.check(
            !self.header_read_timeout.is_zero(),
            "server.header_read_timeout",
            "must be greater than 0",
        );
        problems.check(
            self.max_connections > 0,
            "server.max_connections",
            "must be greater than 0",
        );
        problems.check(
            self.retry_after.as_secs() >= 1,
            "server.retry_after",
            "must be at least 1s",
        );
    }
}

/// Optional authentication of webhook requests. Each secret may be given
/// inline, by file (`*_file`, trailing newline ignored) or by environment.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `Authorization: Bearer <token>` (Alertmanager `http_config.authorization`).
    pub bearer_token: Option<Secret>,
    pub bearer_token_file: Option<PathBuf>,
    /// `Authorization: Basic …` (Alertmanager `http_config.basic_auth`).
    pub basic_auth: Option<BasicAuthConfig>,
}

impl AuthConfig {
    fn validate(&self, problems: &mut Problems) {
        // An empty secret would make every request fail with 401, which
        // Alertmanager drops silently: refuse to start instead.
        let empty = |s: &Option<Secret>| s.as_ref().is_some_and(|s| s.expose().is_empty());
        problems.check(
            !empty(&self.bearer_token),
            "auth.bearer_token",
            "must not be empty",
        );
        problems.check(
            !self.basic_auth.as_ref().is_some_and(|b| empty(&b.password)),
            "auth.basic_auth.password",
            "must not be empty",
        );
        problems.check(
            !(self.bearer_token.is_some() && self.bearer_token_file.is_some()),
            "auth.bearer_token",
            "give either bearer_token or bearer_token_file",
        );
        if let Some(basic) = &self.basic_auth {
            problems.check(
                !basic.username.is_empty(),
                "auth.basic_auth.username",
                "must not be empty",
            );
            problems.check(
                basic.password.is_some() != basic.password_file.is_some(),
                "auth.basic_auth.password",
                "give exactly one of password or password_file",
            );
        }
    }
}

/// A credential: its `Debug` never shows it, so it cannot leak into logs.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuthConfig {
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// libpq-style URL; overridden by $ALERT_INGEST_DATABASE_URL, else $DATABASE_URL.
    pub url: String,
    /// Connections in the shared pool (`/readyz`, migrations). Each worker
    /// has one dedicated connection besides.
    pub pool_size: usize,
    /// Bound on getting a connection, new or pooled.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Bound on one batch write, enforced by the server (`statement_timeout`)
    /// and by the client (a hung server cannot enforce its own timeout).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// Attempts for a batch whose write failed for a reason that may pass
    /// (connection lost, deadlock, server restarting), within the request's deadline.
    pub max_attempts: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "postgres://root@127.0.0.1:5432/alert_ingest".into(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
            max_attempts: 3,
        }
    }
}

impl DatabaseConfig {
    fn validate(&self, problems: &mut Problems) {
        problems.check(
            names_a_server(&self.url),
            "database.url",
            "is not a valid PostgreSQL URL",
        );
        problems.check(
            self.pool_size >= 1,
            "database.pool_size",
            "must be at least 1",
        );
        problems.check(
            !self.connect_timeout.is_zero(),
            "database.connect_timeout",
            "must be greater than 0",
        );
        problems.check(
            self.statement_timeout.as_millis() >= 1,
            "database.statement_timeout",
            "must be at least 1ms",
        );
        problems.check(
            self.max_attempts >= 1,
            "database.max_attempts",
            "must be at least 1",
        );
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Webhook requests waiting for a worker; when full, new requests get 503.
    pub capacity: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { capacity: 1024 }
    }
}

impl QueueConfig {
    fn validate(&self, problems: &mut Problems) {
        problems.check(
            (1..=MAX_QUEUE_CAPACITY).contains(&self.capacity),
            "queue.capacity",
            format!("must be from 1 to {MAX_QUEUE_CAPACITY}"),
        );
    }
}

/// The local spool of `durability: spool`: an append-only log of segment
/// files, loaded into PostgreSQL in order (see `spool`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Directory of the segment files, created if missing; relative paths
    /// are relative to the working directory. One instance per directory
    /// (a lock file refuses a second). Overridden by $ALERT_INGEST_SPOOL_DIR.
    pub dir: PathBuf,
    /// Most bytes the segment files may take on disk; past it, webhooks
    /// get 503 `spool_full` until the loader has caught up.
    pub max_bytes: u64,
    /// A segment file is closed and a new one begun past this size; fully
    /// loaded segments are deleted whole.
    pub segment_bytes: u64,
    /// Most alerts the loader writes in one transaction (a single larger
    /// request is one transaction of its own). Larger than
    /// `batch.max_rows`: no request waits on these commits, and fewer
    /// commits load faster (1,000-row batches: 1.8× the alerts/s of
    /// 100-row ones, issue #12).
    pub load_max_rows: usize,
    /// How long the loader waits for more requests to fill a batch once it
    /// has one (Kafka's `linger.ms`; a backlog fills batches at once, 0
    /// writes whatever is synced). Fewer, larger commits cost PostgreSQL
    /// less, but each is a burst of work beside the requests being
    /// answered: measured, 5 ms lowered p50 and p99.9 and raised p99 and
    /// RSS, hence the default of 0 (issue #12).
    #[serde(with = "humantime_serde")]
    pub load_linger: Duration,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("./spool"),
            max_bytes: 1024 * 1024 * 1024,
            segment_bytes: 32 * 1024 * 1024,
            load_max_rows: 1000,
            load_linger: Duration::ZERO,
        }
    }
}

impl SpoolConfig {
    fn validate(&self, durability: Durability, problems: &mut Problems) {
        problems.check(
            (1..=MAX_BATCH_ROWS).contains(&self.load_max_rows),
            "spool.load_max_rows",
            format!("must be from 1 to {MAX_BATCH_ROWS}"),
        );
        problems.check(
            self.load_linger <= Duration::from_secs(1),
            "spool.load_linger",
            "must be at most 1s (it delays every load)",
        );
        problems.check(
            !self.dir.as_os_str().is_empty(),
            "spool.dir",
            "must not be empty",
        );
        problems.check(
            self.segment_bytes >= MIN_SEGMENT_BYTES,
            "spool.segment_bytes",
            format!("must be at least {MIN_SEGMENT_BYTES}"),
        );
        // Loaded data is freed a segment at a time, and the segment being
        // written is not freed until the next one is begun: with room for
        // less than two, a full spool could never make room again.
        problems.check(
            self.max_bytes >= 2 * self.segment_bytes,
            "spool.max_bytes",
            "must be at least twice spool.segment_bytes",
        );
        // The directory is only used with durability: spool; there it must
        // be one (or not exist yet, and be created at startup).
        problems.check(
            !(durability == Durability::Spool && self.dir.exists() && !self.dir.is_dir()),
            "spool.dir",
            format_args!("{} exists and is not a directory", self.dir.display()),
        );
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Worker threads; each writes one batch at a time on its own connection.
    /// The first writes whatever is queued; the others only while more than
    /// a full batch is (see `workers`).
    pub count: usize,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig { count: 2 }
    }
}

impl WorkersConfig {
    fn validate(&self, problems: &mut Problems) {
        problems.check(
            (1..=MAX_WORKERS).contains(&self.count),
            "workers.count",
            format!("must be from 1 to {MAX_WORKERS}"),
        );
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most alerts (and most requests) written in one round trip.
    pub max_rows: usize,
    /// How long a worker holding a batch waits for more requests to join it,
    /// only while more are queued. 0 (the default): it takes what is queued
    /// and writes at once; the commit in flight is the batching window.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: 100,
            linger: Duration::ZERO,
        }
    }
}

impl BatchConfig {
    fn validate(&self, problems: &mut Problems) {
        problems.check(
            (1..=MAX_BATCH_ROWS).contains(&self.max_rows),
            "batch.max_rows",
            format!("must be from 1 to {MAX_BATCH_ROWS}"),
        );
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// No effect since issue #14, accepted so that configuration files
    /// written before still load: the fingerprint cache skipped unchanged
    /// repeats, but ordering deliveries by receipt across instances needs
    /// every delivery's receipt time on its row (README, "Order of
    /// receipt"), and a cache checked against it was measured slower than
    /// none.
    pub capacity: Option<usize>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InternerConfig {
    /// Distinct label/annotation strings interned for the life of the process;
    /// past it strings are owned by their alerts (see `model::Interner`).
    pub capacity: usize,
}

impl Default for InternerConfig {
    fn default() -> Self {
        InternerConfig { capacity: 50_000 }
    }
}

/// What one webhook request may hold. Each limit, when passed, is a 400
/// naming the field and the limit (`parse` enforces them). The defaults are
/// far above what Alertmanager sends and far below what hurts.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Alerts in one request.
    pub max_alerts: usize,
    /// Labels on one alert (and annotations on one alert, separately).
    pub max_labels: usize,
    /// Bytes in a label or annotation name.
    pub max_name_bytes: usize,
    /// Bytes in a label value.
    pub max_label_value_bytes: usize,
    /// Bytes in the `alertname` label's value: it is indexed, and a btree
    /// entry holds at most ~2,700 bytes, so a longer one could be acknowledged
    /// (spool) and then refused by PostgreSQL.
    pub max_alertname_bytes: usize,
    /// Bytes in an annotation value (and the generator URL).
    pub max_annotation_value_bytes: usize,
    /// Nesting of JSON arrays and objects, anywhere in the body (the
    /// webhook's own structure needs 4).
    pub max_json_depth: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_alerts: 10_000,
            max_labels: 256,
            max_name_bytes: 1024,
            max_label_value_bytes: 16 * 1024,
            max_alertname_bytes: 1024,
            max_annotation_value_bytes: 256 * 1024,
            max_json_depth: 64,
        }
    }
}

impl LimitsConfig {
    /// What a spooled body is checked against when it is loaded: it passed
    /// the limits in force when it arrived, which a reload may have
    /// lowered since; only what keeps parsing safe (depth) or what
    /// PostgreSQL refuses (an over-long `alertname`) is still bounded, at
    /// the widest any configuration allows.
    pub fn for_loading() -> LimitsConfig {
        LimitsConfig {
            max_alerts: usize::MAX,
            max_labels: usize::MAX,
            max_name_bytes: usize::MAX,
            max_label_value_bytes: usize::MAX,
            max_alertname_bytes: MAX_ALERTNAME_BYTES,
            max_annotation_value_bytes: usize::MAX,
            max_json_depth: MAX_JSON_DEPTH,
        }
    }

    fn validate(&self, problems: &mut Problems) {
        problems.check(
            (1..=MAX_ALERTNAME_BYTES).contains(&self.max_alertname_bytes),
            "limits.max_alertname_bytes",
            format!("must be from 1 to {MAX_ALERTNAME_BYTES} (PostgreSQL's btree entry limit)"),
        );
        for (value, key) in [
            (self.max_alerts, "limits.max_alerts"),
            (self.max_labels, "limits.max_labels"),
            (self.max_name_bytes, "limits.max_name_bytes"),
            (self.max_label_value_bytes, "limits.max_label_value_bytes"),
            (
                self.max_annotation_value_bytes,
                "limits.max_annotation_value_bytes",
            ),
        ] {
            problems.check(value >= 1, key, "must be at least 1");
        }
        problems.check(
            (4..=MAX_JSON_DEPTH).contains(&self.max_json_depth),
            "limits.max_json_depth",
            format!("must be from 4 (a webhook's own depth) to {MAX_JSON_DEPTH}"),
        );
    }
}

/// The read-only history API (`/api/v1/...`). It has connections of its
/// own, so a heavy query waits for one of these, never for a worker's.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Where history queries go, if not to `database.url`: typically a
    /// streaming standby of it, so that reads never take the primary's
    /// cores; answers are then as old as the standby's replay lag.
    /// Overridden by $ALERT_INGEST_HISTORY_DATABASE_URL.
    pub database_url: Option<String>,
    /// Connections for history queries; a query that finds them all busy
    /// waits up to `database.connect_timeout`, then gets 503.
    pub pool_size: usize,
    /// Bound on one history query, enforced by the server and the client;
    /// past it: 503.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            database_url: None,
            pool_size: 2,
            statement_timeout: Duration::from_secs(10),
        }
    }
}

impl HistoryConfig {
    fn validate(&self, problems: &mut Problems) {
        problems.check(
            self.database_url.as_deref().is_none_or(names_a_server),
            "history.database_url",
            "is not a valid PostgreSQL URL",
        );
        problems.check(
            self.pool_size >= 1,
            "history.pool_size",
            "must be at least 1",
        );
        problems.check(
            self.statement_timeout.as_millis() >= 1,
            "history.statement_timeout",
            "must be at least 1ms",
        );
    }
}

/// How long history is kept, and the time partitions of `alert_events` and
/// `notifications` (see `retention`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Whether this instance runs the retention task (partitions are still
    /// created ahead at startup either way).
    pub enabled: bool,
    /// Days of history kept: older partitions are dropped, and episodes not
    /// updated for this long are deleted.
    pub days: u32,
    /// Width of one partition, in days (1 = daily). Bounds are aligned to
    /// the Unix epoch, so every instance computes the same ones.
    pub partition_days: u32,
    /// Partitions created ahead of today, so that a write never waits for one.
    pub premake: u32,
    /// Time between two runs of the retention task.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Episodes deleted per statement: each DELETE is short, holds its row
    /// locks briefly, and never competes with ingestion for long.
    pub delete_batch: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            days: 30,
            partition_days: 1,
            premake: 7,
            interval: Duration::from_secs(3600),
            delete_batch: 5000,
        }
    }
}

impl RetentionConfig {
    fn validate(&self, problems: &mut Problems) {
        problems.check(self.days >= 1, "retention.days", "must be at least 1");
        problems.check(
            (1..=MAX_PARTITION_DAYS).contains(&self.partition_days),
            "retention.partition_days",
            format!("must be from 1 to {MAX_PARTITION_DAYS}"),
        );
        problems.check(
            self.premake <= MAX_PREMAKE,
            "retention.premake",
            format!("must be at most {MAX_PREMAKE}"),
        );
        problems.check(
            self.interval.as_secs() >= 1,
            "retention.interval",
            "must be at least 1s",
        );
        problems.check(
            (1..=MAX_DELETE_BATCH).contains(&self.delete_batch),
            "retention.delete_batch",
            format!("must be from 1 to {MAX_DELETE_BATCH}"),
        );
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `alert_ingest=debug,warn`…
    /// ($RUST_LOG overrides it.)
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl LogConfig {
    fn validate(&self, problems: &mut Problems) {
        problems.check(
            tracing_subscriber::EnvFilter::try_new(&self.level).is_ok(),
            "log.level",
            "is not a valid tracing filter",
        );
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Upper bounds that catch a typo before it allocates (the queue and the
/// batches preallocate their capacity).
const MAX_QUEUE_CAPACITY: usize = 1_000_000;
const MAX_WORKERS: usize = 256;
const MAX_BATCH_ROWS: usize = 10_000;
const MAX_PARTITION_DAYS: u32 = 31;
const MAX_PREMAKE: u32 = 366;
const MAX_DELETE_BATCH: usize = 1_000_000;
/// Below PostgreSQL's btree entry limit (a third of an 8 KiB page, less the
/// tuple's header and `starts_at`), for incompressible text.
const MAX_ALERTNAME_BYTES: usize = 2000;
/// A segment must hold at least its header and a small record.
const MIN_SEGMENT_BYTES: u64 = 4096;
/// The depth check walks the parsed document without recursion, but serde
/// recurses into values it skips: past this, a thread stack could overflow.
const MAX_JSON_DEPTH: usize = 256;

/// Every problem found, so that one run of `check-config` lists them all.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// What `validate` finds, one `key: what is wrong` each, in the order
/// checked; every section's `validate` adds to it.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    /// Notes `key: what` unless `ok`.
    fn check(&mut self, ok: bool, key: &str, what: impl std::fmt::Display) {
        if !ok {
            self.0.push(format!("{key}: {what}"));
        }
    }
}

impl Config {
    /// Reads, applies environment overrides, and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
        let mut config = Config::from_yaml(&text)?;
        let mut problems = config.apply_env(|key| std::env::var(key).ok());
        if let Err(ConfigError(more)) = config.validate() {
            problems.extend(more);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }

    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError(vec![e.to_string()]))
    }

    /// Applies the environment's overrides; returns the problems of those
    /// that are not valid values.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(durability) = var(ENV_DURABILITY) {
            match Durability::parse(&durability) {
                Some(d) => self.durability = d,
                None => problems.push(format!(
                    "{ENV_DURABILITY}: must be \"spool\" or \"database\", not {durability:?}"
                )),
            }
        }
        if let Some(dir) = var(ENV_SPOOL_DIR) {
            self.spool.dir = PathBuf::from(dir);
        }
        if let Some(url) = var(ENV_DATABASE_URL).or_else(|| var(ENV_DATABASE_URL_FALLBACK)) {
            self.database.url = url;
        }
        // Empty (say, from an empty Secret key) means unset: the primary.
        if let Some(url) = var(ENV_HISTORY_DATABASE_URL) {
            self.history.database_url = Some(url).filter(|u| !u.is_empty());
        }
        if let Some(token) = var(ENV_BEARER_TOKEN) {
            self.auth.bearer_token = Some(Secret(token));
        }
        if let Some(password) = var(ENV_BASIC_PASSWORD) {
            let basic = self.auth.basic_auth.get_or_insert_with(Default::default);
            basic.password = Some(Secret(password));
        }
        if let Some(username) = var(ENV_BASIC_USERNAME) {
            let basic = self.auth.basic_auth.get_or_insert_with(Default::default);
            basic.username = username;
        }
        problems
    }

    /// Checks every section (each next to its struct); `ConfigError`
    /// lists all that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        self.server.validate(&mut problems);
        self.database.validate(&mut problems);
        self.queue.validate(&mut problems);
        self.workers.validate(&mut problems);
        self.batch.validate(&mut problems);
        self.limits.validate(&mut problems);
        self.history.validate(&mut problems);
        self.retention.validate(&mut problems);
        self.log.validate(&mut problems);
        self.spool.validate(self.durability, &mut problems);
        self.auth.validate(&mut problems);
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems.0))
        }
    }
}

/// Whether `url` is a PostgreSQL URL (or key=value string) naming a server:
/// an empty string parses as one with no host, and would connect nowhere.
fn names_a_server(url: &str) -> bool {
    url.parse::<tokio_postgres::Config>()
        .is_ok_and(|c| !c.get_hosts().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_config_yaml_is_valid_and_matches_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml")).unwrap();
        let config = Config::from_yaml(&text).unwrap();
        config.validate().unwrap();
        let defaults = Config::default();
        assert_eq!(
            format!("{config:?}"),
            format!("{defaults:?}"),
            "config.yaml drifted from the defaults"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_yaml("server:\n  listne: 127.0.0.1:1\n").unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
    }

    #[test]
    fn invalid_values_are_all_named() {
        let yaml = "queue:\n  capacity: 0\nworkers:\n  count: 0\nbatch:\n  linger: soon\n";
        let err = Config::from_yaml(yaml).unwrap_err();
        assert!(err.to_string().contains("linger"), "{err}");
        let config = Config::from_yaml("queue:\n  capacity: 0\nworkers:\n  count: 0\n").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("queue.capacity") && err.contains("workers.count"),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_url_and_secrets() {
        let mut config = Config::default();
        config.apply_env(|k| match k {
            ENV_DATABASE_URL_FALLBACK => Some("postgres://x@h/db".into()),
            ENV_BASIC_PASSWORD => Some("pw".into()),
            ENV_BASIC_USERNAME => Some("am".into()),
            _ => None,
        });
        assert_eq!(config.database.url, "postgres://x@h/db");
        let basic = config.auth.basic_auth.as_ref().unwrap();
        let password = basic.password.as_ref().map(Secret::expose);
        assert_eq!((basic.username.as_str(), password), ("am", Some("pw")));
        config.validate().unwrap();
        config.apply_env(|k| (k == ENV_DATABASE_URL).then(|| "postgres://y@h/db".into()));
        assert_eq!(config.database.url, "postgres://y@h/db");
    }

    #[test]
    fn history_reads_where_history_database_url_says() {
        let mut config = Config::default();
        assert_eq!(config.history.database_url, None, "the primary by default");
        config.apply_env(|k| {
            (k == ENV_HISTORY_DATABASE_URL).then(|| "postgres://r@standby:5433/db".into())
        });
        let url = config.history.database_url.as_deref();
        assert_eq!(url, Some("postgres://r@standby:5433/db"));
        config.validate().unwrap();
        config.apply_env(|k| (k == ENV_HISTORY_DATABASE_URL).then(String::new));
        assert_eq!(config.history.database_url, None, "empty is unset");
        config.history.database_url = Some(String::new());
        assert!(config.validate().is_err(), "an empty URL names no server");
        config.history.database_url = None;
        config.database.url = String::new();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("database.url: is not a valid"), "{err}");
        config.database.url = "postgres://root@127.0.0.1:5432/db".into();
        config.history.database_url = Some("mysql:/nope".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("history.database_url: is not a valid PostgreSQL URL"),
            "{err}"
        );
    }

    #[test]
    fn durability_and_spool_dir_come_from_the_environment_and_are_checked() {
        let mut config = Config::default();
        assert_eq!(config.durability, Durability::Spool, "the default");
        let problems = config.apply_env(|k| match k {
            ENV_DURABILITY => Some("database".into()),
            ENV_SPOOL_DIR => Some("/var/lib/alert-ingest/spool".into()),
            _ => None,
        });
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.durability, Durability::Database);
        assert_eq!(config.spool.dir, Path::new("/var/lib/alert-ingest/spool"));
        let problems = config.apply_env(|k| (k == ENV_DURABILITY).then(|| "disk".into()));
        assert_eq!(
            problems,
            ["ALERT_INGEST_DURABILITY: must be \"spool\" or \"database\", not \"disk\""]
        );
        config.spool.segment_bytes = 1 << 20;
        config.spool.max_bytes = 1 << 20;
        config.spool.load_linger = Duration::from_secs(5);
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("spool.max_bytes: must be at least twice")
                && err.contains("spool.load_linger: must be at most 1s"),
            "{err}"
        );
        let yaml = "spool:\n  load_linger: 20ms\n";
        let linger = Config::from_yaml(yaml).unwrap().spool.load_linger;
        assert_eq!(linger, Duration::from_millis(20));
        let err = Config::from_yaml("durability: disk\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("durability"), "{err}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let config = Config::from_yaml("auth:\n  bearer_token: hunter2\n").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn empty_secrets_are_refused() {
        let mut config = Config::default();
        config.apply_env(|k| (k == ENV_BEARER_TOKEN).then(String::new));
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("auth.bearer_token: must not be empty"),
            "{err}"
        );
    }

    #[test]
    fn basic_auth_needs_one_password_source() {
        let config = Config::from_yaml("auth:\n  basic_auth:\n    username: am\n").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("auth.basic_auth.password"), "{err}");
    }
}
