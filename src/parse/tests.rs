use super::*;
use crate::model::Interner;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/alertmanager-0.25"
);

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 6, "fixtures missing from {FIXTURES}");
    files
}

fn parse_bytes(body: &[u8]) -> Result<Webhook, ParseError> {
    let interner = Interner::new(1000);
    parse(&mut body.to_vec(), &mut Scratch::default(), &interner)
}

fn payload_error(body: &str) -> String {
    match parse_bytes(body.as_bytes()) {
        Err(ParseError::Payload(detail)) => detail,
        other => panic!("expected a payload error for {body}, got {other:?}"),
    }
}

fn with_alert(alert: &str) -> String {
    format!(r#"{{"receiver":"r","status":"firing","alerts":[{alert}],"version":"4"}}"#)
}

#[test]
fn every_fixture_parses_and_computed_fingerprints_equal_sent() {
    for (name, body) in fixtures() {
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let sent_alerts = sent["alerts"].as_array().unwrap();
        // Strip the fingerprints so the parser must compute them.
        let mut stripped = sent.clone();
        for a in stripped["alerts"].as_array_mut().unwrap() {
            a.as_object_mut().unwrap().remove("fingerprint");
        }
        let computed = parse_bytes(&serde_json::to_vec(&stripped).unwrap()).unwrap();
        let parsed = parse_bytes(&body).unwrap();
        assert_eq!(parsed.alerts.len(), sent_alerts.len(), "{name}");
        for ((p, c), s) in parsed.alerts.iter().zip(&computed.alerts).zip(sent_alerts) {
            assert_eq!(
                p.fingerprint.to_string(),
                s["fingerprint"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                c.fingerprint, p.fingerprint,
                "{name}: computed differs from sent"
            );
            assert_eq!(p.status.as_str(), s["status"].as_str().unwrap(), "{name}");
            assert_eq!(
                p.labels.len(),
                s["labels"].as_object().unwrap().len(),
                "{name}"
            );
        }
    }
}

#[test]
fn fixture_fields_are_kept() {
    let body = std::fs::read(format!("{FIXTURES}/mixed-firing-resolved.json")).unwrap();
    let interner = Interner::new(1000);
    let w = parse(&mut body.clone(), &mut Scratch::default(), &interner).unwrap();
    assert_eq!(&*w.notification.receiver, "cap");
    assert_eq!(w.notification.status, Status::Firing);
    assert_eq!(
        &*w.notification.group_key,
        "{}:{alertname=\"DiskFull\", cluster=\"prod-us-2\"}"
    );
    assert_eq!(&*w.notification.common_annotations, "{}");
    assert_eq!(w.notification.notification_reason, None);
    let firing = &w.alerts[0];
    assert_eq!(firing.ends_at, None, "Go's zero time is stored as NULL");
    let description = firing
        .annotations
        .iter()
        .find(|p| interner.resolve(&p.name) == "description")
        .unwrap();
    assert_eq!(
        interner.resolve(&description.value),
        "Ünïcödé test — 磁盘快满了 \"quoted\" \\ backslash\nnewline"
    );
    let resolved = &w.alerts[1];
    assert_eq!(resolved.status, Status::Resolved);
    assert_eq!(
        resolved.ends_at,
        Some(time::macros::datetime!(2026-11-23 19:24:33 UTC))
    );
    assert_eq!(resolved.alertname(&interner), "DiskFull");
}

#[test]
fn labels_are_sorted_bytewise_and_last_duplicate_wins() {
    let interner = Interner::new(10);
    let body = with_alert(
        r#"{"labels":{"b":"1","a":"2","B":"3","a":"4"},"startsAt":"2026-01-01T00:00:00Z"}"#,
    );
    let w = parse(&mut body.into_bytes(), &mut Scratch::default(), &interner).unwrap();
    let labels: Vec<(&str, &str)> = w.alerts[0]
        .labels
        .iter()
        .map(|p| (interner.resolve(&p.name), interner.resolve(&p.value)))
        .collect();
    assert_eq!(labels, [("B", "3"), ("a", "4"), ("b", "1")]);
}

#[test]
fn unknown_and_missing_optional_fields_are_tolerated() {
    let body = r#"{"alerts":[{"labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z","extra":{"x":[1,2]}}],
        "notification_reason":"initial","routeLabels":{"a":"b"},"future":null}"#;
    let w = parse_bytes(body.as_bytes()).unwrap();
    assert_eq!(
        w.notification.notification_reason.as_deref(),
        Some("initial")
    );
    assert_eq!(w.alerts[0].status, Status::Firing);
    assert_eq!(w.alerts[0].fingerprint.to_string(), {
        Fingerprint::of_sorted([("alertname", "A")]).to_string()
    });
    assert_eq!(&*w.notification.group_labels, "{}");
}

#[test]
fn errors_name_the_field() {
    let good = r#"{"labels":{"a":"b"},"startsAt":"2026-01-01T00:00:00Z"}"#;
    let bad_ts = r#"{"labels":{"a":"b"},"startsAt":"yesterday"}"#;
    let body = format!(r#"{{"alerts":[{good},{good},{good},{bad_ts}]}}"#);
    assert_eq!(
        payload_error(&body),
        "alerts[3].startsAt: invalid RFC 3339 timestamp"
    );
    assert_eq!(
        payload_error(&with_alert(
            r#"{"labels":{"a":"b"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"x"}"#
        )),
        "alerts[0].endsAt: invalid RFC 3339 timestamp"
    );
    assert_eq!(
        payload_error(&with_alert(
            r#"{"status":"pending","labels":{},"startsAt":"2026-01-01T00:00:00Z"}"#
        )),
        "alerts[0].status: must be \"firing\" or \"resolved\", not \"pending\""
    );
    assert_eq!(
        payload_error(&with_alert(r#"{"labels":{}}"#)),
        "alerts[0].startsAt: missing"
    );
    let missing = payload_error(&with_alert(r#"{"startsAt":"2026-01-01T00:00:00Z"}"#));
    assert!(
        missing.starts_with("alerts[0]: missing field `labels`"),
        "{missing}"
    );
    assert!(payload_error(r#"{"receiver":"r"}"#).contains("missing field `alerts`"));
    assert_eq!(
        payload_error(r#"{"alerts":{}}"#),
        "alerts: invalid type: expected an array"
    );
    let wrong_type = payload_error(&with_alert(
        r#"{"labels":{"a":1},"startsAt":"2026-01-01T00:00:00Z"}"#,
    ));
    assert_eq!(
        wrong_type,
        "alerts[0].labels.a: invalid type: expected a string"
    );
    let not_object = payload_error("[]");
    assert!(not_object.starts_with("body: "), "{not_object}");
    let truncated = payload_error(r#"{"alerts":[],"truncatedAlerts":"many"}"#);
    assert_eq!(
        truncated,
        "truncatedAlerts: invalid type: expected an integer"
    );
}

#[test]
fn malformed_json_is_a_json_error() {
    for body in [
        "",
        "{",
        "{\"alerts\":[}",
        "not json",
        "{\"alerts\":[]} trailing",
    ] {
        assert!(
            matches!(parse_bytes(body.as_bytes()), Err(ParseError::Json(_))),
            "{body:?}"
        );
    }
}

#[test]
fn nul_characters_are_rejected_with_the_field() {
    let detail = payload_error(&with_alert(
        r#"{"labels":{"pod":"a\u0000b"},"startsAt":"2026-01-01T00:00:00Z"}"#,
    ));
    assert_eq!(
        detail,
        "alerts[0].labels.pod: contains U+0000, which PostgreSQL cannot store"
    );
    let detail = payload_error(&with_alert(
        r#"{"labels":{},"annotations":{"s":"\u0000"},"startsAt":"2026-01-01T00:00:00Z"}"#,
    ));
    assert_eq!(
        detail,
        "alerts[0].annotations.s: contains U+0000, which PostgreSQL cannot store"
    );
    let detail = payload_error(r#"{"receiver":"a\u0000","alerts":[]}"#);
    assert_eq!(
        detail,
        "receiver: contains U+0000, which PostgreSQL cannot store"
    );
}

#[test]
fn lone_surrogates_are_rejected() {
    let body = with_alert(r#"{"labels":{"pod":"\ud800"},"startsAt":"2026-01-01T00:00:00Z"}"#);
    assert!(parse_bytes(body.as_bytes()).is_err());
}

#[test]
fn status_is_inferred_when_missing() {
    let w = parse_bytes(
        with_alert(r#"{"labels":{"a":"b"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z"}"#).as_bytes(),
    )
    .unwrap();
    assert_eq!(w.alerts[0].status, Status::Resolved);
}
