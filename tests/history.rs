//! The history API (`/api/v1/`) against a real PostgreSQL: filters, keyset
//! pages, an episode's timeline, the stats, errors, auth, the OpenAPI
//! document, and its separate connection pool.

mod common;

use std::time::{Duration, Instant};

use common::{test_config, webhook, Service, TestDb};
use serde_json::{json, Value};

/// Label sets of the fixture history (see `store_history`).
const DISK_A: (&str, &str, &str) = ("DiskFull", "instance=a", "critical");
const DISK_B: (&str, &str, &str) = ("DiskFull", "instance=b", "warning");
const LATENCY_API: (&str, &str, &str) = ("HighLatency", "service=api", "critical");
const LATENCY_WEB: (&str, &str, &str) = ("HighLatency", "service=web", "warning");

fn alert(set: (&str, &str, &str), starts: &str, ends: Option<&str>) -> Value {
    let (name, extra, severity) = set;
    let (key, value) = extra.split_once('=').unwrap();
    json!({
        "status": if ends.is_some() { "resolved" } else { "firing" },
        "labels": {"alertname": name, key: value, "severity": severity},
        "annotations": {"summary": format!("{name} on {value}")},
        "startsAt": starts,
        "endsAt": ends.unwrap_or("0001-01-01T00:00:00Z"),
        "generatorURL": "http://prometheus/graph",
    })
}

/// Six episodes, newest first: D, A3, B, A2, C, A1 (A flaps three times).
/// Every resolved one was first stored firing, so it has two events.
async fn store_history(service: &Service) {
    let history = [
        (DISK_A, "2026-11-01T00:00:00Z", Some("2026-11-01T01:00:00Z")),
        (LATENCY_API, "2026-11-01T06:00:00Z", None),
        (DISK_A, "2026-11-02T00:00:00Z", Some("2026-11-02T00:30:00Z")),
        (DISK_B, "2026-11-02T12:00:00Z", None),
        (DISK_A, "2026-11-03T00:00:00Z", None),
        (
            LATENCY_WEB,
            "2026-11-03T06:00:00Z",
            Some("2026-11-03T07:00:00Z"),
        ),
    ];
    for (set, starts, ends) in history {
        let (status, body) = service.post(webhook(vec![alert(set, starts, None)])).await;
        assert_eq!(status, 200, "{body}");
        if ends.is_some() {
            let (status, body) = service.post(webhook(vec![alert(set, starts, ends)])).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    service.settled().await;
}

async fn get_json(service: &Service, path: &str) -> Value {
    let (status, body) = service.get(path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `(alertname, the distinguishing label's value, starts_at)` of each item.
fn keys(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let labels = &i["labels"];
            let which = labels
                .get("instance")
                .or(labels.get("service"))
                .unwrap()
                .as_str()
                .unwrap();
            format!(
                "{}/{which}@{}",
                i["alertname"].as_str().unwrap(),
                &i["starts_at"].as_str().unwrap()[..10]
            )
        })
        .collect()
}

async fn started() -> (TestDb, Service) {
    let db = TestDb::create().await;
    let service = Service::start(test_config(&db.url)).await;
    store_history(&service).await;
    (db, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_episodes_newest_first_with_every_filter() {
    let (_db, service) = started().await;
    let all = get_json(&service, "/api/v1/alerts").await;
    assert_eq!(
        keys(&all),
        [
            "HighLatency/web@2026-11-03",
            "DiskFull/a@2026-11-03",
            "DiskFull/b@2026-11-02",
            "DiskFull/a@2026-11-02",
            "HighLatency/api@2026-11-01",
            "DiskFull/a@2026-11-01",
        ]
    );
    assert_eq!(all["next_cursor"], Value::Null);
    let newest = &all["items"][0];
    for field in [
        "fingerprint",
        "alertname",
        "status",
        "labels",
        "annotations",
        "starts_at",
        "ends_at",
        "generator_url",
        "receiver",
        "first_seen_at",
        "updated_at",
    ] {
        assert!(newest.get(field).is_some(), "{field} missing: {newest}");
    }
    assert_eq!(newest["status"], "resolved");
    assert_eq!(newest["starts_at"], "2026-11-03T06:00:00+00:00");
    assert_eq!(newest["ends_at"], "2026-11-03T07:00:00+00:00");
    assert_eq!(newest["annotations"]["summary"], "HighLatency on web");
    assert_eq!(all["items"][1]["ends_at"], Value::Null, "firing: no end");

    let cases = [
        (
            "status=firing",
            vec![
                "DiskFull/a@2026-11-03",
                "DiskFull/b@2026-11-02",
                "HighLatency/api@2026-11-01",
            ],
        ),
        (
            "alertname=HighLatency",
            vec!["HighLatency/web@2026-11-03", "HighLatency/api@2026-11-01"],
        ),
        (
            "label=severity%3Dcritical&label=alertname=DiskFull",
            vec![
                "DiskFull/a@2026-11-03",
                "DiskFull/a@2026-11-02",
                "DiskFull/a@2026-11-01",
            ],
        ),
        (
            "since=2026-11-02T00:00:00Z&until=2026-11-03T00:00:00Z",
            vec!["DiskFull/b@2026-11-02", "DiskFull/a@2026-11-02"],
        ),
        (
            "active_at=2026-11-02T00:15:00Z",
            vec!["DiskFull/a@2026-11-02", "HighLatency/api@2026-11-01"],
        ),
        (
            "status=resolved&label=service=web",
            vec!["HighLatency/web@2026-11-03"],
        ),
        ("label=instance=c", vec![]),
    ];
    for (query, expected) in cases {
        let page = get_json(&service, &format!("/api/v1/alerts?{query}")).await;
        assert_eq!(keys(&page), expected, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_pages_cover_everything_once() {
    let (_db, service) = started().await;
    let mut seen = Vec::new();
    let mut path = "/api/v1/alerts?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = get_json(&service, &path).await;
        pages += 1;
        seen.extend(keys(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/alerts?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let all = keys(&get_json(&service, "/api/v1/alerts").await);
    assert_eq!(pages, 3);
    assert_eq!(seen, all);
    // A page with a filter continues the same filter.
    let first = get_json(&service, "/api/v1/alerts?alertname=DiskFull&limit=3").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = get_json(
        &service,
        &format!("/api/v1/alerts?alertname=DiskFull&limit=3&cursor={cursor}"),
    )
    .await;
    assert_eq!(keys(&rest), ["DiskFull/a@2026-11-01"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    // Episodes starting at the same instant are told apart by fingerprint.
    let ties: Vec<Value> = ["t1", "t2", "t3", "t4"]
        .iter()
        .map(|t| {
            alert(
                ("Tie", &format!("instance={t}"), "warning"),
                "2026-11-04T00:00:00Z",
                None,
            )
        })
        .collect();
    assert_eq!(service.post(webhook(ties)).await.0, 200);
    service.settled().await;
    let mut fingerprints = Vec::new();
    let mut path = "/api/v1/alerts?alertname=Tie&limit=1".to_owned();
    loop {
        let page = get_json(&service, &path).await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{page}");
        fingerprints.push(items[0]["fingerprint"].as_str().unwrap().to_owned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/alerts?alertname=Tie&limit=1&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected = fingerprints.clone();
    expected.sort();
    expected.reverse();
    expected.dedup();
    assert_eq!(fingerprints, expected, "four distinct, descending");
    assert_eq!(fingerprints.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_label_set_shows_every_episode_with_its_timeline() {
    let (_db, service) = started().await;
    let all = get_json(
        &service,
        "/api/v1/alerts?alertname=DiskFull&label=instance=a",
    )
    .await;
    let fingerprint = all["items"][0]["fingerprint"].as_str().unwrap().to_owned();
    let history = get_json(&service, &format!("/api/v1/alerts/{fingerprint}")).await;
    assert_eq!(history["fingerprint"], fingerprint);
    let items = history["items"].as_array().unwrap();
    let starts: Vec<&str> = items
        .iter()
        .map(|i| i["starts_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-11-03T00:00:00+00:00",
            "2026-11-02T00:00:00+00:00",
            "2026-11-01T00:00:00+00:00"
        ]
    );
    let timeline = |i: usize| -> Vec<String> {
        items[i]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}:{}", e["status"].as_str().unwrap(), e["ends_at"]))
            .collect()
    };
    assert_eq!(timeline(0), ["firing:null"]);
    assert_eq!(
        timeline(2),
        ["firing:null", "resolved:\"2026-11-01T01:00:00+00:00\""]
    );
    let page = get_json(&service, &format!("/api/v1/alerts/{fingerprint}?limit=2")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());

    let (status, body) = service.get("/api/v1/alerts/0000000000000000").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = service.get("/api/v1/alerts/NOT-A-FINGERPRINT").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("fingerprint"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_the_noisiest_the_flapping_and_the_time_to_resolve() {
    let (_db, service) = started().await;
    let since = "since=2026-10-01T00:00:00Z";
    let top = get_json(&service, &format!("/api/v1/stats/top?{since}")).await;
    assert_eq!(top["by"], "alertname");
    assert_eq!(
        top["items"],
        json!([{"value": "DiskFull", "episodes": 4}, {"value": "HighLatency", "episodes": 2}])
    );
    let by_severity = get_json(
        &service,
        &format!("/api/v1/stats/top?{since}&by=label:severity&limit=1"),
    )
    .await;
    assert_eq!(
        by_severity["items"],
        json!([{"value": "critical", "episodes": 4}])
    );
    let by_service = get_json(
        &service,
        &format!("/api/v1/stats/top?{since}&by=label:service"),
    )
    .await;
    assert_eq!(
        by_service["items"],
        json!([{"value": "api", "episodes": 1}, {"value": "web", "episodes": 1}]),
        "episodes without the label are not counted"
    );
    let window = get_json(
        &service,
        "/api/v1/stats/top?since=2026-11-02T00:00:00Z&until=2026-11-03T00:00:00Z",
    )
    .await;
    assert_eq!(
        window["items"],
        json!([{"value": "DiskFull", "episodes": 2}])
    );
    assert_eq!(window["until"], "2026-11-03T00:00:00Z");

    let flapping = get_json(&service, &format!("/api/v1/stats/flapping?{since}")).await;
    let items = flapping["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{flapping}");
    assert_eq!(items[0]["episodes"], 3);
    assert_eq!(items[0]["labels"]["instance"], "a");
    assert_eq!(items[0]["last_starts_at"], "2026-11-03T00:00:00+00:00");
    // The default window is the last 24 hours: none of this history.
    let recent = get_json(&service, "/api/v1/stats/top").await;
    assert_eq!(recent["items"], json!([]));

    // Time to resolve of the resolved episodes: DiskFull 1 h and 30 min,
    // HighLatency 1 h; the firing ones do not count.
    let durations = get_json(&service, &format!("/api/v1/stats/durations?{since}")).await;
    let rows: Vec<(String, i64, f64, f64)> = (durations["items"].as_array().unwrap().iter())
        .map(|i| {
            let seconds = |name: &str| i[name].as_f64().unwrap();
            let name = i["alertname"].as_str().unwrap().to_owned();
            let resolved = i["resolved"].as_i64().unwrap();
            (
                name,
                resolved,
                seconds("median_seconds"),
                seconds("p90_seconds"),
            )
        })
        .collect();
    let expected = [
        ("DiskFull", 2, 2700.0, 3420.0),
        ("HighLatency", 1, 3600.0, 3600.0),
    ];
    assert_eq!(rows.len(), expected.len(), "{durations}");
    for (row, (name, resolved, median, p90)) in rows.iter().zip(expected) {
        assert_eq!((row.0.as_str(), row.1), (name, resolved), "{durations}");
        assert!(
            (row.2 - median).abs() < 1e-6 && (row.3 - p90).abs() < 1e-6,
            "{durations}"
        );
    }
    let window = get_json(
        &service,
        "/api/v1/stats/durations?since=2026-11-02T00:00:00Z&until=2026-11-03T00:00:00Z",
    )
    .await;
    assert_eq!(window["items"].as_array().unwrap().len(), 1, "{window}");
    assert_eq!(window["items"][0]["median_seconds"].as_f64(), Some(1800.0));
}

/// `buckets=3` over three days: each item's episodes per day. An episode
/// starting exactly at a slice's start (2026-11-02T00:00) is in that slice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_series_count_each_slice_of_the_window() {
    let (_db, service) = started().await;
    let days = "since=2026-11-01T00:00:00Z&until=2026-11-04T00:00:00Z&buckets=3";
    let top = get_json(&service, &format!("/api/v1/stats/top?{days}")).await;
    assert_eq!(
        top["items"],
        json!([
            {"value": "DiskFull", "episodes": 4, "series": [1, 2, 1]},
            {"value": "HighLatency", "episodes": 2, "series": [1, 0, 1]},
        ])
    );
    let by_severity = get_json(
        &service,
        &format!("/api/v1/stats/top?{days}&by=label:severity"),
    )
    .await;
    assert_eq!(
        by_severity["items"],
        json!([
            {"value": "critical", "episodes": 4, "series": [2, 1, 1]},
            {"value": "warning", "episodes": 2, "series": [0, 1, 1]},
        ])
    );
    let flapping = get_json(&service, &format!("/api/v1/stats/flapping?{days}")).await;
    assert_eq!(flapping["items"][0]["series"], json!([1, 1, 1]));
    assert_eq!(flapping["items"][0]["episodes"], 3);
    // The alerts filters narrow every stat.
    let service = &service;
    let filtered = |route: &str, filters: &str| {
        let path = format!("/api/v1/stats/{route}?since=2026-10-01T00:00:00Z&{filters}");
        async move { get_json(service, &path).await["items"].clone() }
    };
    assert_eq!(
        filtered("top", "label=instance=a").await,
        json!([{"value": "DiskFull", "episodes": 3}])
    );
    let resolved = filtered("flapping", "status=resolved").await;
    assert_eq!(resolved[0]["episodes"], 2, "A1 and A2 resolved, A3 firing");
    let latency = filtered("durations", "alertname=HighLatency").await;
    assert_eq!(latency.as_array().unwrap().len(), 1);
    assert_eq!(latency[0]["alertname"], "HighLatency");
    assert_eq!(
        filtered("top", "status=firing&alertname=Nope").await,
        json!([])
    );
    // Without until, the series ends now; an episode stamped later (a
    // clock ahead) counts in the last slice; an empty window has no rows.
    let ahead = alert(LATENCY_WEB, "2030-01-01T00:00:00Z", None);
    let (status, answer) = service.post(webhook(vec![ahead])).await;
    assert_eq!(status, 200, "{answer}");
    service.settled().await;
    let open = get_json(
        service,
        "/api/v1/stats/top?since=2026-11-01T00:00:00Z&buckets=2",
    )
    .await;
    assert_eq!(open["items"][1]["value"], "HighLatency", "{open}");
    assert_eq!(open["items"][1]["series"], json!([2, 1]), "{open}");
    let empty = "/api/v1/stats/top?since=2026-11-02T00:00:00Z&until=2026-11-02T00:00:00Z&buckets=3";
    assert_eq!(get_json(service, empty).await["items"], json!([]));
    // Without buckets, no series; durations take none.
    let plain = get_json(service, "/api/v1/stats/top?since=2026-11-01T00:00:00Z").await;
    assert!(plain["items"][0].get("series").is_none(), "{plain}");
    let (status, body) = service
        .get("/api/v1/stats/durations?since=2026-11-01T00:00:00Z&buckets=3")
        .await;
    assert_eq!(status, 400, "{body}");
}

/// Not the notifications of another receiver, nor of a group whose common
/// labels the episode does not have, even while it fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_episodes_notifications_are_its_receivers_and_its_groups() {
    let db = TestDb::create().await;
    let service = Service::start(test_config(&db.url)).await;
    let starts = "2026-11-01T00:00:00Z";
    let send = |receiver: &str, common: Value, alerts: Vec<Value>| {
        let mut body: Value = serde_json::from_str(&webhook(alerts)).unwrap();
        body["receiver"] = json!(receiver);
        body["commonLabels"] = common;
        body.to_string()
    };
    let mine = alert(DISK_A, starts, None);
    let other = alert(LATENCY_API, starts, None);
    for body in [
        send("test", json!({"alertname": "DiskFull"}), vec![mine.clone()]),
        send("pager", json!({}), vec![other.clone()]),
        send("test", json!({"alertname": "HighLatency"}), vec![other]),
        send(
            "test",
            json!({"alertname": "DiskFull"}),
            vec![alert(DISK_A, starts, Some("2026-11-01T01:00:00Z"))],
        ),
    ] {
        let (status, answer) = service.post(body).await;
        assert_eq!(status, 200, "{answer}");
    }
    service.settled().await;
    let fingerprint = get_json(&service, "/api/v1/alerts?alertname=DiskFull").await["items"][0]
        ["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let notes = get_json(
        &service,
        &format!("/api/v1/alerts/{fingerprint}/notifications?starts_at={starts}"),
    )
    .await;
    let statuses: Vec<&Value> = notes["items"].as_array().unwrap().iter().collect();
    assert_eq!(
        statuses.len(),
        2,
        "its firing and its resolution only: {notes}"
    );
    assert!(statuses.iter().all(|n| n["receiver"] == "test"), "{notes}");
}

/// The notifications of an episode are those of its receiver and group
/// received while it was delivered: here, one per event (every request of
/// `store_history` is its own notification).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_episode_lists_the_notifications_that_carried_it() {
    let (_db, service) = started().await;
    let flapping = get_json(
        &service,
        "/api/v1/stats/flapping?since=2026-10-01T00:00:00Z",
    )
    .await;
    let fingerprint = flapping["items"][0]["fingerprint"].as_str().unwrap();
    let episodes = get_json(&service, &format!("/api/v1/alerts/{fingerprint}")).await;
    for episode in episodes["items"].as_array().unwrap() {
        let starts_at = episode["starts_at"].as_str().unwrap();
        let notes = get_json(
            &service,
            &format!(
                "/api/v1/alerts/{fingerprint}/notifications?starts_at={}",
                starts_at.replace('+', "%2B")
            ),
        )
        .await;
        let received = |list: &Value| -> Vec<String> {
            let items = list.as_array().unwrap().iter();
            items
                .map(|i| i["received_at"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            received(&notes["items"]),
            received(&episode["events"]),
            "{starts_at}"
        );
        assert_eq!(notes["items"][0]["receiver"], "test");
        assert_eq!(notes["items"][0]["external_url"], "http://am:9093");
    }
    let none = get_json(
        &service,
        &format!("/api/v1/alerts/{fingerprint}/notifications?starts_at=2020-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(none["items"], json!([]));
    for (bad, expected) in [
        (format!("/api/v1/alerts/{fingerprint}/notifications"), 400),
        (
            "/api/v1/alerts/xyz/notifications?starts_at=2020-01-01T00:00:00Z".into(),
            400,
        ),
        (
            format!("/api/v1/alerts/{fingerprint}/events?starts_at=2020-01-01T00:00:00Z"),
            404,
        ),
    ] {
        let (status, body) = service.get(&bad).await;
        assert_eq!(status, expected, "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_json_error_naming_the_parameter() {
    let (_db, service) = started().await;
    for (path, parameter) in [
        ("/api/v1/alerts?status=open", "status"),
        ("/api/v1/alerts?limit=5000", "limit"),
        ("/api/v1/alerts?since=last%20tuesday", "since"),
        ("/api/v1/alerts?active_at=2026-13-01T00:00:00Z", "active_at"),
        ("/api/v1/alerts?label=severity", "label"),
        ("/api/v1/alerts?cursor=Zm9v", "cursor"),
        ("/api/v1/alerts?offset=10", "offset"),
        ("/api/v1/stats/top?by=severity", "by"),
        ("/api/v1/stats/flapping?by=alertname", "by"),
        ("/api/v1/stats/durations?by=alertname", "by"),
        ("/api/v1/stats/durations?limit=0", "limit"),
    ] {
        let (status, body) = service.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"], "bad_parameter", "{path}");
        assert!(
            error["detail"].as_str().unwrap().starts_with(parameter),
            "{path}: {body}"
        );
    }
    let (status, _) = service.get("/api/v1/nothing").await;
    assert_eq!(status, 404);
    let response = service
        .http
        .delete(format!("{}/api/v1/alerts", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    // Nothing above changed what is stored.
    assert_eq!(
        get_json(&service, "/api/v1/alerts").await["items"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_takes_the_webhook_credentials() {
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.auth.bearer_token = Some(alert_ingest::config::Secret("s3cret".into()));
    let service = Service::start(config).await;
    let (status, _) = service.get("/api/v1/alerts").await;
    assert_eq!(status, 401);
    let (status, _) = service.get("/api/v1/openapi.json").await;
    assert_eq!(status, 401);
    let response = service
        .http
        .get(format!("{}/api/v1/alerts", service.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The OpenAPI document is kept true: every documented route answers 200
/// with the documented parameters' examples, and every property the
/// document marks required is in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_as_documented() {
    let (_db, service) = started().await;
    let doc = get_json(&service, "/api/v1/openapi.json").await;
    let flapping = get_json(
        &service,
        "/api/v1/stats/flapping?since=2026-10-01T00:00:00Z",
    )
    .await;
    let fingerprint = flapping["items"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 7, "every route is documented");
    for (path, item) in paths {
        let get = &item["get"];
        let mut url = path.replace("{fingerprint}", &fingerprint);
        let mut query = Vec::new();
        for p in get["parameters"].as_array().into_iter().flatten() {
            if let (Some(example), "query") = (p.get("example"), p["in"].as_str().unwrap()) {
                let value = example.as_str().map_or(example.to_string(), str::to_owned);
                query.push(format!("{}={value}", p["name"].as_str().unwrap()));
            }
        }
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let answer = get_json(&service, &url).await;
        let schema = &get["responses"]["200"]["content"]["application/json"]["schema"];
        check_required(&doc, schema, &answer, &url);
    }
}

/// Asserts that `value` holds every required property of `schema`, through
/// `$ref`s, `allOf`s and array items.
fn check_required(doc: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return check_required(doc, &doc["components"]["schemas"][name], value, at);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        check_required(doc, part, value, at);
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap();
        let Some(member) = value.get(name) else {
            panic!("{at}: documented property {name} is missing from {value}");
        };
        if let Some(property) = schema["properties"].get(name) {
            check_required(doc, property, member, &format!("{at} .{name}"));
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        assert!(!values.is_empty(), "{at}: an empty list proves nothing");
        for v in values {
            check_required(doc, items, v, at);
        }
    }
}

/// The history API has its own pool: with many slow history queries at
/// once, PostgreSQL never sees more history sessions than
/// `history.pool_size`, a query past `history.statement_timeout` is a 503,
/// and every webhook posted meanwhile is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_history_queries_neither_take_ingest_connections_nor_fail_webhooks() {
    const ROWS: i64 = 200_000;
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.history.pool_size = 1;
    config.history.statement_timeout = Duration::from_millis(50);
    config.database.connect_timeout = Duration::from_secs(2);
    let service = Service::start(config).await;
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO alerts (fingerprint, starts_at, alertname, status, labels, annotations,
                                 generator_url, receiver, first_seen_at, updated_at)
             SELECT lpad(to_hex(i), 16, '0'), now() - i * interval '1 second', 'Bulk',
                    'firing', jsonb_build_object('alertname', 'Bulk', 'pod', 'p' || i),
                    '{}', '', 'r', now(), now()
             FROM generate_series(1, $1::bigint) AS i",
            &[&ROWS],
        )
        .await
        .unwrap();
    // Grouping 200,000 rows by a label takes well over 50 ms.
    let (status, body) = service
        .get("/api/v1/stats/top?by=label:pod&since=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("query_timeout"), "{body}");

    let stop = Instant::now() + Duration::from_secs(3);
    let hammers: Vec<_> = (0..6)
        .map(|_| {
            let c = service.client();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while Instant::now() < stop {
                    let path = "/api/v1/stats/top?by=label:pod&since=2000-01-01T00:00:00Z";
                    statuses.push(c.get(path).await.0);
                }
                statuses
            })
        })
        .collect();
    let watcher = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let admin = common::connect(&url).await;
            let mut most = 0;
            while Instant::now() < stop {
                let row = admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                         WHERE application_name = $1 AND datname = current_database()",
                        &[&alert_ingest::store::HISTORY_APPLICATION_NAME],
                    )
                    .await
                    .unwrap();
                most = most.max(row.get::<_, i64>(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            most
        })
    };
    let mut latencies = Vec::new();
    let mut n: i64 = 0;
    while Instant::now() < stop {
        n += 1;
        let body = webhook(vec![alert(
            DISK_A,
            &format!("2026-11-05T00:00:{:02}Z", n % 60),
            None,
        )]);
        let (status, answer, took) = service.timed_post(body).await;
        assert_eq!(status, 200, "{answer}");
        latencies.push(took);
    }
    let mut statuses = Vec::new();
    for h in hammers {
        statuses.extend(h.await.unwrap());
    }
    let most = watcher.await.unwrap();
    // Every webhook was committed, the history pool's timeouts aside.
    service.settled().await;
    let episodes: i64 = client
        .query_one(
            "SELECT count(*) FROM alerts WHERE alertname = 'DiskFull'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        episodes,
        n.min(60),
        "one episode per distinct startsAt sent"
    );
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "{} webhooks, p99 {p99:?}; {} history queries, statuses {:?}; most history sessions {most}",
        latencies.len(),
        statuses.len(),
        {
            let mut s = statuses.clone();
            s.dedup();
            s
        }
    );
    assert!(
        statuses.iter().all(|&s| s == 503),
        "all time out: {statuses:?}"
    );
    assert!(statuses.len() >= 6, "the history queries ran");
    assert_eq!(most, 1, "history sessions seen, with pool_size 1");
    assert!(latencies.len() >= 20, "webhooks kept being committed");
}
