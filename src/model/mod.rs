//! Leaf types shared by every stage: what an alert *is* once it has left the
//! HTTP body. Nothing here knows about HTTP, channels or PostgreSQL.

mod fingerprint;
mod intern;
#[cfg(test)]
pub(crate) mod testing;

pub use fingerprint::Fingerprint;
pub use intern::{Interner, Sym};

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use time::OffsetDateTime;

/// An alert's state as Alertmanager reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    /// The spelling used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "firing" => Some(Status::Firing),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// A name/value pair of a label set or of annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub name: Sym,
    pub value: Sym,
}

/// One alert of a notification. `labels` and `annotations` are sorted by name
/// (byte-wise, as Alertmanager's fingerprint requires) with unique names.
#[derive(Clone, Debug)]
pub struct Alert {
    pub fingerprint: Fingerprint,
    pub status: Status,
    pub labels: Vec<Pair>,
    pub annotations: Vec<Pair>,
    /// Truncated to microseconds, PostgreSQL's resolution, so that the
    /// episode key is the same in memory and in the table.
    pub starts_at: OffsetDateTime,
    /// `None` when Alertmanager sent Go's zero time ("not set").
    pub ends_at: Option<OffsetDateTime>,
    pub generator_url: Box<str>,
}

impl Alert {
    /// An alert *episode* is one firing of a label set: `(fingerprint, startsAt)`.
    pub fn episode(&self) -> Episode {
        Episode {
            fingerprint: self.fingerprint,
            starts_at_us: unix_micros(self.starts_at),
        }
    }

    /// The value of the `alertname` label, or "" when it has none.
    pub fn alertname<'a>(&'a self, interner: &'a Interner) -> &'a str {
        self.labels
            .iter()
            .find(|p| interner.resolve(&p.name) == "alertname")
            .map_or("", |p| interner.resolve(&p.value))
    }
}

/// The key of the `alerts` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Episode {
    pub fingerprint: Fingerprint,
    pub starts_at_us: i64,
}

/// The part of a webhook request that describes the notification itself; it
/// becomes one `notifications` row. JSON members are kept as JSON text.
#[derive(Clone, Debug)]
pub struct Notification {
    pub receiver: Box<str>,
    pub status: Status,
    pub group_key: Box<str>,
    pub group_labels: Box<str>,
    pub common_labels: Box<str>,
    pub common_annotations: Box<str>,
    pub external_url: Box<str>,
    pub truncated_alerts: i64,
    pub notification_reason: Option<Box<str>>,
}

/// A whole parsed webhook request.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub notification: Notification,
    pub alerts: Vec<Alert>,
}

/// A webhook request as it was received: its alerts, and the key of its
/// `notifications` row, `(received_at, request_id)`, drawn when it arrived
/// (and kept in the spool with its body), so that writing it again after an
/// unknown outcome, or loading it again, adds no second row.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub webhook: Webhook,
    /// Alerts in the request as received (`webhook.alerts` is drained as
    /// batches take them).
    pub alert_count: usize,
    pub received_at: OffsetDateTime,
    pub request_id: i64,
}

impl Delivery {
    pub fn new(webhook: Webhook, received_at: OffsetDateTime, request_id: i64) -> Delivery {
        Delivery {
            alert_count: webhook.alerts.len(),
            webhook,
            received_at,
            request_id,
        }
    }
}

/// Distinct within a process (a counter) and, with the receipt time in the
/// key, in practice across instances too (the counter starts at a random
/// point in each process).
pub fn next_request_id() -> i64 {
    static NEXT: LazyLock<AtomicU64> =
        LazyLock::new(|| AtomicU64::new(RandomState::new().hash_one(std::process::id())));
    NEXT.fetch_add(1, Ordering::Relaxed) as i64
}

/// Microseconds since the Unix epoch (PostgreSQL keeps microseconds).
pub fn unix_micros(t: OffsetDateTime) -> i64 {
    // Fits: timestamps are limited to years 1..=9999 by the parser.
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// The inverse of `unix_micros`; `None` outside `time`'s range.
pub fn from_unix_micros(us: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).ok()
}

/// Serializes name/value pairs as a JSON object (the text of a `jsonb` column).
pub fn json_object<'a, I>(pairs: impl Fn() -> I) -> String
where
    I: Iterator<Item = (&'a str, &'a str)>,
{
    struct Object<F>(F);
    impl<'a, F, I> serde::Serialize for Object<F>
    where
        F: Fn() -> I,
        I: Iterator<Item = (&'a str, &'a str)>,
    {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map((self.0)())
        }
    }
    simd_json::to_string(&Object(pairs)).expect("a map of strings always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_object_escapes() {
        let pairs = [("a", "x\"y\\z\n"), ("ü", "磁盘")];
        let text = json_object(|| pairs.iter().copied());
        assert_eq!(text, r#"{"a":"x\"y\\z\n","ü":"磁盘"}"#);
    }
}
