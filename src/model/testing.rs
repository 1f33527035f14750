//! Model values for unit tests of the stages downstream of parsing.

use time::macros::datetime;

use super::{Alert, Fingerprint, Interner, Notification, Pair, Status, Webhook};

/// An alert with one label, `alertname`, firing from a fixed instant.
pub fn alert(fingerprint: u64, status: Status, alertname: &str, interner: &Interner) -> Alert {
    Alert {
        fingerprint: Fingerprint(fingerprint),
        status,
        labels: vec![Pair {
            name: interner.intern("alertname"),
            value: interner.intern(alertname),
        }],
        annotations: Vec::new(),
        starts_at: datetime!(2026-11-23 10:00 UTC),
        ends_at: None,
        generator_url: "".into(),
    }
}

/// A webhook request carrying `alerts`, with an otherwise minimal notification.
pub fn webhook(alerts: Vec<Alert>) -> Webhook {
    let notification = Notification {
        receiver: "r".into(),
        status: Status::Firing,
        group_key: "{}".into(),
        group_labels: "{}".into(),
        common_labels: "{}".into(),
        common_annotations: "{}".into(),
        external_url: "".into(),
        truncated_alerts: 0,
        notification_reason: None,
    };
    Webhook {
        notification,
        alerts,
    }
}
