use super::*;
use crate::config::LimitsConfig;
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
    parse_with(&Interner::new(1000), body)
}

fn parse_with(interner: &Interner, body: &[u8]) -> Result<Webhook, ParseError> {
    parse(
        &mut body.to_vec(),
        &mut Scratch::default(),
        interner,
        &LimitsConfig::default(),
    )
}

/// Asserts the first alert's labels, in the order the parser keeps them.
fn assert_first_labels(body: &str, expected: &[(&str, &str)]) {
    let interner = Interner::new(1000);
    let w = parse_with(&interner, body.as_bytes()).unwrap();
    let labels: Vec<(&str, &str)> = w.alerts[0]
        .labels
        .iter()
        .map(|p| (interner.resolve(&p.name), interner.resolve(&p.value)))
        .collect();
    assert_eq!(labels, expected);
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
    let w = parse(
        &mut body.clone(),
        &mut Scratch::default(),
        &interner,
        &LimitsConfig::default(),
    )
    .unwrap();
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
    let body = with_alert(
        r#"{"labels":{"b":"1","a":"2","B":"3","a":"4"},"startsAt":"2026-01-01T00:00:00Z"}"#,
    );
    assert_first_labels(&body, &[("B", "3"), ("a", "4"), ("b", "1")]);
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

fn limit_error(body: &str, limits: &LimitsConfig) -> String {
    let interner = Interner::new(1000);
    match parse(
        &mut body.as_bytes().to_vec(),
        &mut Scratch::default(),
        &interner,
        limits,
    ) {
        Err(ParseError::Payload(detail)) => detail,
        other => panic!("expected a payload error, got {other:?}"),
    }
}

fn labelled(labels: &str) -> String {
    with_alert(&format!(
        r#"{{"labels":{{{labels}}},"startsAt":"2026-01-01T00:00:00Z"}}"#
    ))
}

#[test]
fn deep_nesting_anywhere_is_refused_without_recursion() {
    // 100,000 levels in an unknown field: serde would recurse into it to
    // skip it and overflow the stack; the tape walk refuses it first.
    let depth = 100_000;
    let body = format!(
        r#"{{"receiver":"r","alerts":[],"extra":{}1{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert_eq!(
        limit_error(&body, &LimitsConfig::default()),
        "body: JSON nested deeper than limits.max_json_depth (64)"
    );
    // Exactly at the limit passes; one more level does not. The body, the
    // alerts array and an alert are 3 levels; "x" adds 2 (at) or 3 (over).
    let limits = LimitsConfig {
        max_json_depth: 5,
        ..LimitsConfig::default()
    };
    let at = with_alert(r#"{"labels":{},"startsAt":"2026-01-01T00:00:00Z","x":[[1]]}"#);
    let interner = Interner::new(10);
    parse(
        &mut at.into_bytes(),
        &mut Scratch::default(),
        &interner,
        &limits,
    )
    .unwrap();
    let over = with_alert(r#"{"labels":{},"startsAt":"2026-01-01T00:00:00Z","x":[[[1]]]}"#);
    assert!(limit_error(&over, &limits).starts_with("body: JSON nested deeper"));
}

#[test]
fn too_many_alerts_is_refused_before_they_are_built() {
    let limits = LimitsConfig {
        max_alerts: 3,
        ..LimitsConfig::default()
    };
    let alert = r#"{"labels":{"a":"b"},"startsAt":"2026-01-01T00:00:00Z"}"#;
    let body = |n: usize| {
        format!(
            r#"{{"receiver":"r","alerts":[{}]}}"#,
            vec![alert; n].join(",")
        )
    };
    let interner = Interner::new(10);
    let three = parse(
        &mut body(3).into_bytes(),
        &mut Scratch::default(),
        &interner,
        &limits,
    );
    assert_eq!(three.unwrap().alerts.len(), 3);
    assert_eq!(
        limit_error(&body(4), &limits),
        "alerts: 4 alerts, more than limits.max_alerts (3)"
    );
}

#[test]
fn label_count_name_and_value_limits_name_the_field() {
    let limits = LimitsConfig {
        max_labels: 2,
        max_name_bytes: 8,
        max_label_value_bytes: 10,
        max_annotation_value_bytes: 20,
        ..LimitsConfig::default()
    };
    assert_eq!(
        limit_error(&labelled(r#""a":"1","b":"2","c":"3""#), &limits),
        "alerts[0].labels: 3 entries, more than limits.max_labels (2)"
    );
    assert_eq!(
        limit_error(&labelled(r#""averyverylongname":"1""#), &limits),
        "alerts[0].labels: a name of 17 bytes, more than limits.max_name_bytes (8)"
    );
    assert_eq!(
        limit_error(&labelled(r#""pod":"12345678901""#), &limits),
        "alerts[0].labels.pod: 11 bytes, more than limits.max_label_value_bytes (10)"
    );
    // Annotation values have their own, larger limit.
    let annotated = |value: &str| {
        with_alert(&format!(
            r#"{{"labels":{{}},"annotations":{{"summary":"{value}"}},"startsAt":"2026-01-01T00:00:00Z"}}"#
        ))
    };
    let interner = Interner::new(10);
    let ok = annotated("12345678901234567890");
    parse(
        &mut ok.into_bytes(),
        &mut Scratch::default(),
        &interner,
        &limits,
    )
    .unwrap();
    assert_eq!(
        limit_error(&annotated("123456789012345678901"), &limits),
        "alerts[0].annotations.summary: 21 bytes, more than limits.max_annotation_value_bytes (20)"
    );
    // Byte lengths, not characters: "é" is two bytes.
    assert_eq!(
        limit_error(&labelled(r#""pod":"éééééé""#), &limits),
        "alerts[0].labels.pod: 12 bytes, more than limits.max_label_value_bytes (10)"
    );
    let body = r#"{"receiver":"r","groupLabels":{"a":"1","b":"2","c":"3"},"alerts":[]}"#;
    assert_eq!(
        limit_error(body, &limits),
        "groupLabels: 3 entries, more than limits.max_labels (2)"
    );
}

#[test]
fn a_one_mebibyte_label_value_is_refused_and_unicode_within_limits_is_kept() {
    let big = "x".repeat(1 << 20);
    assert_eq!(
        limit_error(
            &labelled(&format!(r#""pod":"{big}""#)),
            &LimitsConfig::default()
        ),
        "alerts[0].labels.pod: 1048576 bytes, more than limits.max_label_value_bytes (16384)"
    );
    let body = labelled(r#""team":"监控","mood":"🔥","rtl":"שלום""#);
    assert_first_labels(&body, &[("mood", "🔥"), ("rtl", "שלום"), ("team", "监控")]);
}
