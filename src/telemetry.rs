//! Metrics, exposed at `GET /metrics` in the Prometheus text format.
//! Names are constants here; labels are low-cardinality (status codes, error
//! classes), never an alert's labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::store::{ErrorClass, Written};

/// Prefix of every metric name.
const NAMESPACE: &str = "alert_ingest";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    pub table: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<CodeLabel, Counter>,
    pub http_request_duration: Histogram,
    pub alerts_received: Counter,
    pub alerts_stored: Counter,
    pub alerts_unchanged: Counter,
    pub alerts_late: Counter,
    pub notifications_stored: Counter,
    pub queue_depth: Gauge,
    pub queue_capacity: Gauge,
    pub batch_rows: Histogram,
    pub commit_duration: Histogram,
    pub db_errors: Family<ClassLabel, Counter>,
    pub interned_strings: Gauge,
    pub retention_runs: Family<OutcomeLabel, Counter>,
    pub retention_partitions_created: Counter,
    pub retention_partitions_dropped: Counter,
    pub retention_rows_deleted: Family<TableLabel, Counter>,
    pub retention_last_completed: Gauge,
    pub partition_horizon: Gauge,
    pub spool_bytes: Gauge,
    pub spool_max_bytes: Gauge,
    pub spool_records_pending: Gauge,
    pub spool_pending_bytes: Gauge,
    pub spool_lag_seconds: Gauge<f64, AtomicU64>,
    pub spool_sync_duration: Histogram,
    pub spool_records_per_sync: Histogram,
    pub spool_write_errors: Counter,
    pub spool_corrupt_bytes: Counter,
    pub rejected_notifications: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(NAMESPACE);
        // 100 µs .. ~3.3 s
        let latency = || Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        let m = Metrics {
            http_requests: Family::default(),
            http_request_duration: latency(),
            alerts_received: Counter::default(),
            alerts_stored: Counter::default(),
            alerts_unchanged: Counter::default(),
            alerts_late: Counter::default(),
            notifications_stored: Counter::default(),
            queue_depth: Gauge::default(),
            queue_capacity: Gauge::default(),
            // 1 .. 16384 rows: the loader's batches reach spool.load_max_rows.
            batch_rows: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
            commit_duration: latency(),
            db_errors: Family::default(),
            interned_strings: Gauge::default(),
            retention_runs: Family::default(),
            retention_partitions_created: Counter::default(),
            retention_partitions_dropped: Counter::default(),
            retention_rows_deleted: Family::default(),
            retention_last_completed: Gauge::default(),
            partition_horizon: Gauge::default(),
            spool_bytes: Gauge::default(),
            spool_max_bytes: Gauge::default(),
            spool_records_pending: Gauge::default(),
            spool_pending_bytes: Gauge::default(),
            spool_lag_seconds: Gauge::default(),
            // 25 µs .. ~0.8 s: a sync on a fast disk is well under 100 µs.
            spool_sync_duration: Histogram::new(exponential_buckets(0.000_025, 2.0, 16)),
            // 1 .. 1024 records
            spool_records_per_sync: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            spool_write_errors: Counter::default(),
            spool_corrupt_bytes: Counter::default(),
            rejected_notifications: Counter::default(),
            registry: Registry::default(),
        };
        m.register_ingest(&mut registry);
        m.register_pipeline(&mut registry);
        m.register_retention(&mut registry);
        m.register_spool(&mut registry);
        Metrics { registry, ..m }
    }

    /// What the ingress accepted and what was stored of it.
    fn register_ingest(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by status code",
            self.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request head to answer",
            self.http_request_duration.clone(),
        );
        registry.register(
            "alerts_received",
            "Alerts in accepted-for-processing webhook requests",
            self.alerts_received.clone(),
        );
        registry.register(
            "alerts_stored",
            "Alert episodes inserted or changed in PostgreSQL",
            self.alerts_stored.clone(),
        );
        registry.register(
            "alerts_unchanged",
            "Alerts that changed no episode's state: unchanged repeats (which move its \
             version only), earlier versions replaced in the same batch, late deliveries \
             of a state the timeline already shows",
            self.alerts_unchanged.clone(),
        );
        registry.register(
            "alerts_late",
            "Alerts received before the version their episode holds (another instance or \
             a late spool load stored a later one first), put into the timeline at their \
             receipt time",
            self.alerts_late.clone(),
        );
        registry.register(
            "notifications_stored",
            "Webhook notifications committed",
            self.notifications_stored.clone(),
        );
    }

    /// The queue, the batch writes and the interner behind the ingress.
    fn register_pipeline(&self, registry: &mut Registry) {
        registry.register(
            "queue_depth",
            "Webhook requests waiting for a worker (durability: database) or for the spool's writer (spool)",
            self.queue_depth.clone(),
        );
        registry.register(
            "queue_capacity",
            "Most webhook requests that may wait for a worker",
            self.queue_capacity.clone(),
        );
        registry.register(
            "batch_rows",
            "Alert rows written per batch",
            self.batch_rows.clone(),
        );
        registry.register(
            "commit_duration_seconds",
            "Time to write and commit one batch",
            self.commit_duration.clone(),
        );
        registry.register(
            "db_errors",
            "Database errors, by class",
            self.db_errors.clone(),
        );
        registry.register(
            "interned_strings",
            "Label strings held by the interner",
            self.interned_strings.clone(),
        );
    }

    /// The retention task and the partitions it keeps ahead.
    fn register_retention(&self, registry: &mut Registry) {
        registry.register(
            "retention_runs",
            "Retention runs, by outcome (completed, failed, skipped: another instance held the lock)",
            self.retention_runs.clone(),
        );
        registry.register(
            "retention_partitions_created",
            "Time partitions created",
            self.retention_partitions_created.clone(),
        );
        registry.register(
            "retention_partitions_dropped",
            "Time partitions dropped past retention",
            self.retention_partitions_dropped.clone(),
        );
        registry.register(
            "retention_rows_deleted",
            "Rows deleted past retention, by table (alerts: resolved episodes)",
            self.retention_rows_deleted.clone(),
        );
        registry.register(
            "retention_last_completed_timestamp_seconds",
            "Unix time of the last retention run that completed every step",
            self.retention_last_completed.clone(),
        );
        registry.register(
            "partition_horizon_seconds",
            "How far ahead of now every partitioned table has partitions",
            self.partition_horizon.clone(),
        );
    }

    /// `durability: spool`: the spool and what its loader refused.
    fn register_spool(&self, registry: &mut Registry) {
        registry.register(
            "spool_bytes",
            "Bytes of the spool's segment files on disk (bounded by spool_max_bytes)",
            self.spool_bytes.clone(),
        );
        registry.register(
            "spool_max_bytes",
            "spool.max_bytes: past it webhooks get 503 spool_full",
            self.spool_max_bytes.clone(),
        );
        registry.register(
            "spool_records_pending",
            "Requests synced to the spool and not yet loaded into PostgreSQL",
            self.spool_records_pending.clone(),
        );
        registry.register(
            "spool_pending_bytes",
            "Bytes of the requests synced to the spool and not yet loaded",
            self.spool_pending_bytes.clone(),
        );
        registry.register(
            "spool_lag_seconds",
            "Age of the oldest request in the spool not yet loaded into PostgreSQL (0: none)",
            self.spool_lag_seconds.clone(),
        );
        registry.register(
            "spool_sync_duration_seconds",
            "Time to append and fdatasync one group of requests to the spool",
            self.spool_sync_duration.clone(),
        );
        registry.register(
            "spool_records_per_sync",
            "Requests made durable by one fdatasync (group commit)",
            self.spool_records_per_sync.clone(),
        );
        registry.register(
            "spool_write_errors",
            "Spool appends or syncs that failed (full disk, I/O error); their requests got 503",
            self.spool_write_errors.clone(),
        );
        registry.register(
            "spool_corrupt_bytes",
            "Bytes cut from damaged spool segments (torn tails, corruption); kept in corrupt/, never loaded",
            self.spool_corrupt_bytes.clone(),
        );
        registry.register(
            "rejected_notifications",
            "Spooled requests PostgreSQL refused when loaded; kept in the rejected_notifications table",
            self.rejected_notifications.clone(),
        );
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// A batch was committed: `alerts` alert rows and `notifications`
    /// rows, in `took`; `written` says what the alert rows did.
    pub fn committed(
        &self,
        alerts: usize,
        notifications: usize,
        written: &Written,
        took: Duration,
    ) {
        self.commit_duration.observe(took.as_secs_f64());
        self.batch_rows.observe(alerts as f64);
        self.notifications_stored.inc_by(notifications as u64);
        self.alerts_stored.inc_by(written.changed);
        self.alerts_late.inc_by(written.late);
        let unchanged = alerts as u64 - written.changed - written.late;
        self.alerts_unchanged.inc_by(unchanged);
    }

    pub fn db_error(&self, class: ErrorClass) {
        let class = class.as_str();
        self.db_errors.get_or_create(&ClassLabel { class }).inc();
    }
}
