//! `alert-ingest replay`, the real binary against a real PostgreSQL: exact
//! rows from a directory and a JSON-lines file, a second replay that changes
//! nothing, time order whatever the command line's order, and rejections
//! reported by file, line and reason.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    count, fixture, micros, refuse_poison, webhook, TestDb, FIXTURES, POISON, POISON_CONSTRAINT,
};
use serde_json::{json, Value};
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_alert-ingest");
const REPO_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");
const TABLES: [&str; 3] = ["alerts", "alert_timeline", "notifications"];

struct Replayed {
    code: i32,
    stdout: String,
    stderr: String,
}

fn replay(db_url: &str, config: &str, paths: &[&Path]) -> Replayed {
    let out = Command::new(BIN)
        .args(["replay", "--config", config])
        .args(paths)
        .env("ALERT_INGEST_DATABASE_URL", db_url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    Replayed {
        code: out.status.code().unwrap_or(-1),
        stdout: text(out.stdout),
        stderr: text(out.stderr),
    }
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn copy_fixture(name: &str, to: &Path) {
    write(to, fixture(name));
}

/// JSON lines: each body on one line, as a capture would append them.
fn json_lines(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn compact(name: &str) -> String {
    fixture_json(name).to_string()
}

/// What storing `bodies` must leave, worked out from the JSON alone:
/// `(episodes, events, notifications, alerts)`. An episode gets one event
/// per distinct (status, endsAt, annotations) it is sent with (the fixtures
/// never go back to an earlier state).
fn expected(bodies: &[Value]) -> (i64, i64, i64, i64) {
    let mut states: HashMap<(String, Option<OffsetDateTime>), HashSet<String>> = HashMap::new();
    let mut alerts = 0;
    for body in bodies {
        for a in body["alerts"].as_array().unwrap() {
            alerts += 1;
            let episode = (
                a["fingerprint"].as_str().unwrap().to_owned(),
                micros(a["startsAt"].as_str().unwrap()),
            );
            let state = json!([
                a["status"],
                micros(a["endsAt"].as_str().unwrap()).map(|t| t.to_string()),
                a["annotations"]
            ]);
            states.entry(episode).or_default().insert(state.to_string());
        }
    }
    let events = states.values().map(|s| s.len() as i64).sum();
    (states.len() as i64, events, bodies.len() as i64, alerts)
}

async fn counts(db: &TestDb) -> [i64; 3] {
    let client = db.client().await;
    let mut counts = [0; 3];
    for (n, table) in counts.iter_mut().zip(TABLES) {
        *n = count(&client, table).await;
    }
    counts
}

/// Every row of every table, as text: equal dumps mean nothing changed.
async fn dump(db: &TestDb) -> Vec<String> {
    let client = db.client().await;
    let mut dump = Vec::new();
    for table in TABLES {
        let sql = format!("SELECT t::text FROM {table} t ORDER BY 1");
        for row in client.query(&sql, &[]).await.unwrap() {
            dump.push(format!("{table}: {}", row.get::<_, String>(0)));
        }
    }
    dump
}

/// The summary's `stored:` and `skipped:` lines.
fn assert_stored_skipped(out: &Replayed, stored: i64, skipped: i64) {
    assert_line(
        out,
        &format!("stored: {stored} (episodes inserted or changed)"),
    );
    assert_line(
        out,
        &format!(
            "skipped: {skipped} (repeats: unchanged, or no newer than what the database held)"
        ),
    );
}

fn assert_line(out: &Replayed, line: &str) {
    assert!(
        out.stdout.lines().any(|l| l == line),
        "no line {line:?} in the summary:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
}

/// The directory part: fixtures in nested folders, plus a hidden file and a
/// file of another extension whose alerts must not be read.
fn capture_dir(root: &Path) -> PathBuf {
    let dir = root.join("captures");
    copy_fixture(
        "firing-two-alerts.json",
        &dir.join("a/firing-two-alerts.json"),
    );
    copy_fixture("large-group-84-alerts.json", &dir.join("a/b/large.json"));
    copy_fixture(
        "empty-annotations.json",
        &dir.join("empty-annotations.json"),
    );
    copy_fixture("truncated-alerts.json", &dir.join("truncated-alerts.json"));
    let unread = |name: &str| {
        webhook(vec![json!({
            "status": "firing", "labels": {"alertname": name},
            "annotations": {}, "startsAt": "2026-11-23T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": ""
        })])
    };
    write(&dir.join(".hidden.json"), unread("Hidden"));
    write(&dir.join("a/.tmp/x.json"), unread("HiddenDir"));
    write(&dir.join("notes.txt"), unread("OtherExtension"));
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_and_json_lines_are_stored_exactly_and_replaying_again_changes_nothing() {
    let db = TestDb::create().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = capture_dir(tmp.path());
    // The resolution of firing-two-alerts' episodes comes in the lines,
    // with blank lines and a CRLF line end around it.
    let lines = tmp.path().join("night.jsonl");
    let resolved = format!("{}\r", compact("resolved-group.json"));
    write(
        &lines,
        json_lines(&[&compact("mixed-firing-resolved.json"), "", &resolved, ""]),
    );

    let bodies: Vec<Value> = [
        "firing-two-alerts.json",
        "large-group-84-alerts.json",
        "empty-annotations.json",
        "truncated-alerts.json",
        "mixed-firing-resolved.json",
        "resolved-group.json",
    ]
    .into_iter()
    .map(fixture_json)
    .collect();
    let (episodes, events, notifications, alerts) = expected(&bodies);
    // The fixtures as documented: 89 episodes (truncated-alerts repeats
    // three of the large group's), two of them resolved later.
    assert_eq!((episodes, events, notifications, alerts), (89, 91, 6, 94));

    let first = replay(&db.url, REPO_CONFIG, &[&dir, &lines]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_line(&first, "files: 5");
    assert_line(
        &first,
        &format!("notifications: {notifications} (0 rejected)"),
    );
    assert_line(&first, &format!("alerts: {alerts}"));
    assert_stored_skipped(&first, events, alerts - events);
    assert_line(&first, "rejected: 0");
    assert!(
        !first.stderr.contains("alerts ("),
        "no progress bar off a terminal:\n{}",
        first.stderr
    );
    assert_eq!(counts(&db).await, [episodes, events, notifications]);
    let stored = dump(&db).await;

    let second = replay(&db.url, REPO_CONFIG, &[&lines, &dir]);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert_stored_skipped(&second, 0, alerts);
    assert_eq!(dump(&db).await, stored, "a second replay changed rows");
}

/// Batches of one alert (every notification split, every repeat its own
/// round trip) leave exactly the rows that batches of 100 do: the rows
/// depend on the bodies only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_size_does_not_change_what_is_stored() {
    let (big, small) = (TestDb::create().await, TestDb::create().await);
    let tmp = tempfile::tempdir().unwrap();
    let dir = capture_dir(tmp.path());
    copy_fixture("resolved-group.json", &dir.join("z/resolved.json"));
    copy_fixture("mixed-firing-resolved.json", &dir.join("mixed.json"));
    let config = tmp.path().join("small-batches.yaml");
    write(&config, "log:\n  level: warn\nbatch:\n  max_rows: 1\n");

    let out = replay(&big.url, REPO_CONFIG, &[&dir]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let out = replay(&small.url, config.to_str().unwrap(), &[&dir]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_stored_skipped(&out, 91, 3);
    assert_eq!(dump(&small).await, dump(&big).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_and_resolved_given_in_the_wrong_order_end_resolved_with_events_in_order() {
    let db = TestDb::create().await;
    let resolved = fixture_path("resolved-group.json");
    let firing = fixture_path("firing-two-alerts.json");
    let out = replay(&db.url, REPO_CONFIG, &[&resolved, &firing]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_stored_skipped(&out, 4, 0);

    let client = db.client().await;
    let episodes =
        |rows: Vec<tokio_postgres::Row>| -> Vec<(String, String, Option<OffsetDateTime>)> {
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
        };
    let alerts_sql = "SELECT fingerprint, status, ends_at FROM alerts ORDER BY fingerprint";
    let events_sql = "SELECT fingerprint, status, received_at FROM alert_timeline
                      ORDER BY fingerprint, received_at";
    let ends_at = micros("2026-11-23T19:25:20Z");
    let starts_at = micros("2026-11-23T19:14:38Z");
    let mut want_alerts = Vec::new();
    let mut want_events = Vec::new();
    for fp in ["6f4f0dbeef4eb2a1", "d02d0110466a7a70"] {
        want_alerts.push((fp.to_owned(), "resolved".to_owned(), ends_at));
        // Each event dated by its notification: firing at startsAt, resolved at endsAt.
        want_events.push((fp.to_owned(), "firing".to_owned(), starts_at));
        want_events.push((fp.to_owned(), "resolved".to_owned(), ends_at));
    }
    assert_eq!(
        episodes(client.query(alerts_sql, &[]).await.unwrap()),
        want_alerts
    );
    assert_eq!(
        episodes(client.query(events_sql, &[]).await.unwrap()),
        want_events
    );
    let stored = dump(&db).await;

    // The older firing body alone, later: it must not rewind the episodes.
    let out = replay(&db.url, REPO_CONFIG, &[&firing]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_stored_skipped(&out, 0, 2);
    assert_eq!(dump(&db).await, stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_files_and_lines_are_rejected_by_name_and_reason_and_the_rest_is_stored() {
    let db = TestDb::create().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("captures");
    copy_fixture("firing-two-alerts.json", &dir.join("good.json"));
    write(&dir.join("bad.json"), "{\"receiver\": \"r\", \"alerts\": [");
    let mut bad_time = fixture_json("empty-annotations.json");
    bad_time["alerts"][0]["startsAt"] = json!("yesterday");
    let mut bad_time_2 = fixture_json("mixed-firing-resolved.json");
    bad_time_2["alerts"][0]["startsAt"] = json!("soon");
    let lines = [
        compact("empty-annotations.json"),
        "{not json}".to_owned(),
        String::new(),
        bad_time.to_string(),
        webhook(vec![]),
        compact("mixed-firing-resolved.json"),
        bad_time_2.to_string(),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    write(&dir.join("night.jsonl"), json_lines(&lines));

    let out = replay(&db.url, REPO_CONFIG, &[&dir]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let (bad, night) = (dir.join("bad.json"), dir.join("night.jsonl"));
    let (bad, night) = (bad.display(), night.display());
    assert_line(&out, "notifications: 8 (5 rejected)");
    assert_line(&out, "rejected: 5 notifications, grouped by reason:");
    assert_line(&out, "  alerts[0].startsAt: invalid RFC 3339 timestamp (2)");
    let text = &out.stdout;
    let group = text
        .find("  alerts[0].startsAt: invalid RFC 3339 timestamp (2)\n")
        .unwrap();
    assert!(
        text[group..].contains(&format!("(2)\n    {night}:4\n    {night}:7\n")),
        "{text}"
    );
    for (source, reason) in [
        (format!("{bad}"), "malformed JSON: "),
        (format!("{night}:2"), "malformed JSON: "),
        (format!("{night}:5"), "no alerts: "),
    ] {
        let at = text
            .find(&format!("\n    {source}\n"))
            .unwrap_or_else(|| panic!("{source} not listed:\n{text}"));
        let heading = text[..at]
            .lines()
            .rev()
            .find(|l| !l.starts_with("    "))
            .unwrap();
        assert!(
            heading.starts_with(&format!("  {reason}")),
            "{source} listed under {heading:?}:\n{text}"
        );
    }
    // good.json (2 alerts), lines 1 (1) and 6 (2): five new episodes.
    assert_stored_skipped(&out, 5, 0);
    assert_eq!(counts(&db).await, [5, 5, 3]);
}

/// PostgreSQL refuses a row for good (a CHECK constraint the parser cannot
/// foresee): only that notification is rejected; its batch neighbours commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_the_database_refuses_is_rejected_alone() {
    let db = migrated().await;
    refuse_poison(&db.client().await).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut poison = fixture_json("empty-annotations.json");
    poison["alerts"][0]["labels"]["alertname"] = json!(POISON);
    let lines = tmp.path().join("capture.ndjson");
    let bodies = [
        compact("firing-two-alerts.json"),
        poison.to_string(),
        compact("mixed-firing-resolved.json"),
    ];
    write(
        &lines,
        json_lines(&bodies.iter().map(String::as_str).collect::<Vec<_>>()),
    );

    let out = replay(&db.url, REPO_CONFIG, &[&lines]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_line(&out, &format!("    {}:2", lines.display()));
    assert!(
        out.stdout.contains("  rejected by the database: "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(POISON_CONSTRAINT), "{}", out.stdout);
    assert_stored_skipped(&out, 4, 0);
    assert_eq!(counts(&db).await, [4, 4, 2]);
}

/// A database of its own, migrated by `alert-ingest migrate`.
async fn migrated() -> TestDb {
    let db = TestDb::create().await;
    let migrated = Command::new(BIN)
        .args(["migrate", "--config", REPO_CONFIG])
        .env("ALERT_INGEST_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    db
}

/// A migrated database whose first `failures` writes of alerts fail with
/// a serialization failure (SQLSTATE 40001, a failure that may pass).
async fn failing_writes(failures: i32) -> TestDb {
    let db = migrated().await;
    // A sequence, not a table: its count survives the failed transactions.
    let sql = format!(
        "CREATE SEQUENCE writes;
         CREATE FUNCTION fail_first() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF nextval('writes') <= {failures} THEN
                 RAISE EXCEPTION 'injected failure' USING ERRCODE = 'serialization_failure';
             END IF;
             RETURN NULL;
         END $$;
         CREATE TRIGGER fail_first BEFORE INSERT ON alerts
             FOR EACH STATEMENT EXECUTE FUNCTION fail_first();"
    );
    db.client().await.batch_execute(&sql).await.unwrap();
    db
}

/// The repository config allows 3 attempts (`database.max_attempts`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_is_tried_again_and_a_lasting_failure_stops_the_replay() {
    let fixtures = Path::new(FIXTURES);
    let passing = failing_writes(2).await;
    let out = replay(&passing.url, REPO_CONFIG, &[fixtures]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stderr.matches("trying again").count(),
        2,
        "{}",
        out.stderr
    );
    assert_stored_skipped(&out, 91, 3);
    assert_eq!(counts(&passing).await, [89, 91, 6]);

    let lasting = failing_writes(i32::MAX).await;
    let out = replay(&lasting.url, REPO_CONFIG, &[fixtures]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_stored_skipped(&out, 0, 0);
    assert!(
        out.stdout.contains(
            "not written: 94 alerts (database error (conflict): 40001: injected failure)"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(counts(&lasting).await, [0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_path_is_a_usage_error_and_an_unreachable_database_a_failure() {
    let db = TestDb::create().await;
    let missing = Path::new("/nonexistent/captures");
    let out = replay(
        &db.url,
        REPO_CONFIG,
        &[&fixture_path("resolved-group.json"), missing],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("/nonexistent/captures"),
        "{}",
        out.stderr
    );
    let out = replay(&db.url, REPO_CONFIG, &[]);
    assert_eq!(out.code, 2, "no path: {}", out.stderr);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("postgres://root@127.0.0.1:{port}/test");
    let out = replay(
        &unreachable,
        REPO_CONFIG,
        &[&fixture_path("resolved-group.json")],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot migrate"), "{}", out.stderr);
    let schema = db
        .client()
        .await
        .query_one("SELECT to_regclass('alerts') IS NULL", &[])
        .await
        .unwrap();
    assert!(
        schema.get::<_, bool>(0),
        "a usage error touches no database"
    );
}
