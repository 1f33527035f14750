//! A batch encoded for PostgreSQL: one array per column, bound as parameters
//! of `WRITE_BATCH` and expanded there with `unnest`. Only bound parameters
//! reach the database; no SQL is ever assembled from payload text.

use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use crate::model::{json_object, Alert, Interner, Notification, Pair};

/// One `alerts` row (and, if it changes the episode, one `alert_events` row).
pub struct AlertRow<'a> {
    pub fingerprint: String,
    pub starts_at: OffsetDateTime,
    pub alertname: &'a str,
    pub status: &'static str,
    pub labels: String,
    pub annotations: String,
    pub ends_at: Option<OffsetDateTime>,
    pub generator_url: &'a str,
    pub receiver: &'a str,
    pub received_at: OffsetDateTime,
}

impl<'a> AlertRow<'a> {
    /// The row of `alert`, delivered to `receiver` at `received_at`.
    pub fn new(
        alert: &'a Alert,
        receiver: &'a str,
        received_at: OffsetDateTime,
        interner: &'a Interner,
    ) -> AlertRow<'a> {
        AlertRow {
            fingerprint: alert.fingerprint.to_string(),
            starts_at: alert.starts_at,
            alertname: alert.alertname(interner),
            status: alert.status.as_str(),
            labels: pairs_json(&alert.labels, interner),
            annotations: pairs_json(&alert.annotations, interner),
            ends_at: alert.ends_at,
            generator_url: &alert.generator_url,
            receiver,
            received_at,
        }
    }
}

/// One `notifications` row.
pub struct NotificationRow<'a> {
    pub receiver: &'a str,
    pub status: &'static str,
    pub group_key: &'a str,
    pub group_labels: &'a str,
    pub common_labels: &'a str,
    pub common_annotations: &'a str,
    pub external_url: &'a str,
    pub truncated_alerts: i64,
    pub notification_reason: Option<&'a str>,
    pub alert_count: i32,
    pub received_at: OffsetDateTime,
    pub request_id: i64,
}

impl<'a> NotificationRow<'a> {
    /// The row of a notification of `alert_count` alerts, keyed by
    /// `(received_at, request_id)`.
    pub fn new(
        n: &'a Notification,
        alert_count: usize,
        received_at: OffsetDateTime,
        request_id: i64,
    ) -> NotificationRow<'a> {
        NotificationRow {
            receiver: &n.receiver,
            status: n.status.as_str(),
            group_key: &n.group_key,
            group_labels: &n.group_labels,
            common_labels: &n.common_labels,
            common_annotations: &n.common_annotations,
            external_url: &n.external_url,
            truncated_alerts: n.truncated_alerts,
            notification_reason: n.notification_reason.as_deref(),
            alert_count: i32::try_from(alert_count).unwrap_or(i32::MAX),
            received_at,
            request_id,
        }
    }
}

/// Labels or annotations as the text of a `jsonb` object.
fn pairs_json(pairs: &[Pair], interner: &Interner) -> String {
    json_object(|| {
        pairs
            .iter()
            .map(|p| (interner.resolve(&p.name), interner.resolve(&p.value)))
    })
}

/// Which requests of a batch to encode: all of them, or one alone (after
/// PostgreSQL refused the batch, each request is written on its own so that
/// only the one carrying the bad row is refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Whole,
    /// The rows of the request with this index in the batch.
    Request(usize),
}

impl Part {
    /// Whether request `n`'s rows belong to this part.
    pub fn holds(self, n: usize) -> bool {
        match self {
            Part::Whole => true,
            Part::Request(only) => only == n,
        }
    }
}

#[derive(Default)]
pub struct Rows<'a> {
    fingerprint: Vec<String>,
    starts_at: Vec<OffsetDateTime>,
    alertname: Vec<&'a str>,
    status: Vec<&'static str>,
    labels: Vec<String>,
    annotations: Vec<String>,
    ends_at: Vec<Option<OffsetDateTime>>,
    generator_url: Vec<&'a str>,
    receiver: Vec<&'a str>,
    received_at: Vec<OffsetDateTime>,
    n_receiver: Vec<&'a str>,
    n_status: Vec<&'static str>,
    n_group_key: Vec<&'a str>,
    n_group_labels: Vec<&'a str>,
    n_common_labels: Vec<&'a str>,
    n_common_annotations: Vec<&'a str>,
    n_external_url: Vec<&'a str>,
    n_truncated_alerts: Vec<i64>,
    n_notification_reason: Vec<Option<&'a str>>,
    n_alert_count: Vec<i32>,
    n_received_at: Vec<OffsetDateTime>,
    n_request_id: Vec<i64>,
    /// The spool position the batch loads up to: `(spool id, segment,
    /// offset)`, all `None` for the database mode's workers.
    spool_id: Option<String>,
    segment: Option<i64>,
    offset: Option<i64>,
    /// See `set_may_be_stored`.
    may_be_stored: bool,
}

impl<'a> Rows<'a> {
    pub fn push_alert(&mut self, row: AlertRow<'a>) {
        self.fingerprint.push(row.fingerprint);
        self.starts_at.push(row.starts_at);
        self.alertname.push(row.alertname);
        self.status.push(row.status);
        self.labels.push(row.labels);
        self.annotations.push(row.annotations);
        self.ends_at.push(row.ends_at);
        self.generator_url.push(row.generator_url);
        self.receiver.push(row.receiver);
        self.received_at.push(row.received_at);
    }

    pub fn push_notification(&mut self, row: NotificationRow<'a>) {
        self.n_receiver.push(row.receiver);
        self.n_status.push(row.status);
        self.n_group_key.push(row.group_key);
        self.n_group_labels.push(row.group_labels);
        self.n_common_labels.push(row.common_labels);
        self.n_common_annotations.push(row.common_annotations);
        self.n_external_url.push(row.external_url);
        self.n_truncated_alerts.push(row.truncated_alerts);
        self.n_notification_reason.push(row.notification_reason);
        self.n_alert_count.push(row.alert_count);
        self.n_received_at.push(row.received_at);
        self.n_request_id.push(row.request_id);
    }

    /// Records, with the rows, that the spool `spool_id` is loaded up to
    /// `(segment, offset)`.
    pub fn set_loaded_position(&mut self, spool_id: String, segment: i64, offset: i64) {
        self.spool_id = Some(spool_id);
        self.segment = Some(segment);
        self.offset = Some(offset);
    }

    /// Marks rows that may be in the database already: written again after
    /// an unknown outcome, or replayed. Their notifications are then only
    /// added where absent (alerts and events are idempotent either way).
    pub fn set_may_be_stored(&mut self) {
        self.may_be_stored = true;
    }

    pub fn may_be_stored(&self) -> bool {
        self.may_be_stored
    }

    /// The `alertname` of each alert row, in order.
    pub fn alertnames(&self) -> &[&'a str] {
        &self.alertname
    }

    pub fn alert_count(&self) -> usize {
        self.fingerprint.len()
    }

    pub fn notification_count(&self) -> usize {
        self.n_receiver.len()
    }

    /// The parameters of `WRITE_BATCH`, in its `$1..$25` order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 25] {
        [
            &self.fingerprint,
            &self.starts_at,
            &self.alertname,
            &self.status,
            &self.labels,
            &self.annotations,
            &self.ends_at,
            &self.generator_url,
            &self.receiver,
            &self.received_at,
            &self.n_receiver,
            &self.n_status,
            &self.n_group_key,
            &self.n_group_labels,
            &self.n_common_labels,
            &self.n_common_annotations,
            &self.n_external_url,
            &self.n_truncated_alerts,
            &self.n_notification_reason,
            &self.n_alert_count,
            &self.n_received_at,
            &self.n_request_id,
            &self.spool_id,
            &self.segment,
            &self.offset,
        ]
    }
}
