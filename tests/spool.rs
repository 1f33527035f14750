//! `durability: spool` (issue #12) against a real PostgreSQL and a real
//! filesystem: a 200 is a synced record, PostgreSQL is loaded behind it,
//! and neither a database outage, a restart, a refused request, a full
//! spool, a full disk, a failed fsync nor a damaged segment loses or
//! repeats an acknowledged alert.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use alert_ingest::app::App;
use alert_ingest::config::Config;
use common::proxy::FaultProxy;
use common::{count, firing, test_config, webhook, Service, TestDb, POISON, POISON_CONSTRAINT};
use serde_json::{json, Value};

/// A webhook of one firing alert named `name`, distinct by `i`.
fn body(name: &str, i: usize) -> String {
    webhook(vec![firing(name, i)])
}

/// The service on `db` through a fault proxy, which starts up.
async fn behind_proxy(db: &TestDb) -> (FaultProxy, Config) {
    let proxy = FaultProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut config = test_config(&db.url_via(proxy.addr));
    // A shutdown with the database away loads nothing: no need to try long.
    config.server.shutdown_grace = Duration::from_secs(2);
    (proxy, config)
}

/// Rows of `alerts`, `alert_timeline` and `notifications`.
async fn tables(db: &TestDb) -> (i64, i64, i64) {
    let client = db.client().await;
    (
        count(&client, "alerts").await,
        count(&client, "alert_timeline").await,
        count(&client, "notifications").await,
    )
}

/// Posts `n` one-alert webhooks named `name`; every answer must be 200.
async fn post_all(service: &Service, name: &str, n: usize) {
    for i in 0..n {
        let (status, answer) = service.post(body(name, i)).await;
        assert_eq!(status, 200, "request {i}: {answer}");
    }
}

async fn readyz(service: &Service) -> (u16, Value) {
    let (status, text) = service.get("/readyz").await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_never_reaches_the_sender_and_everything_is_stored_after() {
    let db = TestDb::create().await;
    let (proxy, config) = behind_proxy(&db).await;
    let service = Service::start_ready(config).await;
    post_all(&service, "Before", 5).await;
    service.settled().await;

    proxy.set_down();
    let mut sends = Vec::new();
    for task in 0..5 {
        let client = service.client();
        sends.push(tokio::spawn(async move {
            for i in 0..20 {
                let (status, answer) = client.post(body("During", task * 100 + i)).await;
                assert_eq!(status, 200, "while the database is away: {answer}");
            }
        }));
    }
    for send in sends {
        send.await.unwrap();
    }
    let (status, ready) = readyz(&service).await;
    assert_eq!(status, 200, "ready while the spool takes writes: {ready}");
    assert_eq!(ready["durability"], "spool");
    assert_ne!(ready["database"], "up", "{ready}");
    assert_eq!(ready["spool"]["pending_records"], 100, "{ready}");
    assert!(
        ready["spool"]["lag_seconds"].as_f64().unwrap() > 0.0,
        "{ready}"
    );
    assert_eq!(tables(&db).await, (5, 5, 5), "nothing loaded while away");

    proxy.set_up();
    service.settled().await;
    assert_eq!(tables(&db).await, (105, 105, 105));
    let (_, ready) = readyz(&service).await;
    assert_eq!(ready["database"], "up", "{ready}");
    assert_eq!(ready["spool"]["lag_seconds"], 0.0, "{ready}");
    assert!(service.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_postgresql_refuses_is_kept_whole_and_the_rest_is_stored() {
    let db = TestDb::create().await;
    let service = Service::start_ready(test_config(&db.url)).await;
    // What the parser cannot foresee: a constraint an operator added.
    let client = db.client().await;
    common::refuse_poison(&client).await;
    let mut poison = String::new();
    for i in 0..10 {
        let name = if i == 4 || i == 7 { POISON } else { "Fine" };
        let sent = body(name, i);
        if i == 4 {
            poison = sent.clone();
        }
        let (status, answer) = service.post(sent).await;
        assert_eq!(status, 200, "acknowledged from the spool: {answer}");
    }
    service.settled().await;
    assert_eq!(
        tables(&db).await,
        (8, 8, 8),
        "the requests around them stored"
    );
    let rejected = client
        .query(
            "SELECT sqlstate, message, body FROM rejected_notifications ORDER BY received_at",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].get::<_, &str>(0), "23514");
    assert!(rejected[0].get::<_, &str>(1).contains(POISON_CONSTRAINT));
    assert_eq!(
        rejected[0].get::<_, &[u8]>(2),
        poison.as_bytes(),
        "byte for byte"
    );
    assert_eq!(
        service
            .metric("alert_ingest_rejected_notifications_total")
            .await,
        2
    );
    assert!(service.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_spool_loads_what_was_left_exactly_once() {
    let db = TestDb::create().await;
    let (proxy, config) = behind_proxy(&db).await;
    let service = Service::start_ready(config.clone()).await;
    proxy.set_down();
    post_all(&service, "Left", 20).await;
    assert!(service.shutdown().await, "exit clean, the rest on disk");
    assert_eq!(tables(&db).await, (0, 0, 0));

    proxy.set_up();
    let service = Service::start(config.clone()).await;
    service.settled().await;
    assert_eq!(tables(&db).await, (20, 20, 20));
    post_all(&service, "After", 5).await;
    assert!(service.shutdown().await);

    let service = Service::start(config).await;
    service.settled().await;
    assert_eq!(tables(&db).await, (25, 25, 25), "nothing loaded twice");
    assert!(service.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_spools_of_their_own_store_exact_rows() {
    let db = TestDb::create().await;
    let a = Service::start(test_config(&db.url)).await;
    let b = Service::start(test_config(&db.url)).await;
    // An HA pair: both instances get every notification; each also gets
    // some of its own.
    for i in 0..30 {
        let both = body("Both", i);
        let (ra, rb) = tokio::join!(a.post(both.clone()), b.post(both));
        assert_eq!((ra.0, rb.0), (200, 200));
        assert_eq!(a.post(body("OnlyA", i)).await.0, 200);
        assert_eq!(b.post(body("OnlyB", i)).await.0, 200);
    }
    a.settled().await;
    b.settled().await;
    assert_eq!(tables(&db).await, (90, 90, 120));
    let client = db.client().await;
    assert_eq!(count(&client, "spool_positions").await, 2);
    assert!(a.shutdown().await && b.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_dir_in_use_is_refused_naming_it() {
    let db = TestDb::create().await;
    let config = test_config(&db.url);
    let service = Service::start(config.clone()).await;
    let err = App::start(config.clone())
        .await
        .err()
        .expect("a second instance on the same spool dir is refused");
    let text = err.to_string();
    assert!(
        text.contains(&config.spool.dir.display().to_string()),
        "{text}"
    );
    assert!(text.contains("in use by another process"), "{text}");
    assert!(service.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_is_a_503_with_retry_after_until_the_loader_makes_room() {
    let db = TestDb::create().await;
    let (proxy, mut config) = behind_proxy(&db).await;
    config.spool.segment_bytes = 4096;
    config.spool.max_bytes = 16384;
    let service = Service::start_ready(config).await;
    proxy.set_down();
    let mut acknowledged = 0;
    let refused = loop {
        let response = service
            .http
            .post(format!("{}/webhook", service.base))
            .header("content-type", "application/json")
            .body(body("Fill", acknowledged))
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            break response;
        }
        acknowledged += 1;
        assert!(acknowledged < 1000, "never full");
    };
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let answer: Value = refused.json().await.unwrap();
    assert_eq!(answer["error"], "spool_full", "{answer}");
    assert_eq!(readyz(&service).await.0, 503, "not ready while full");

    proxy.set_up();
    service.settled().await;
    assert_eq!(service.post(body("Fill", acknowledged)).await.0, 200);
    service.settled().await;
    let stored = acknowledged as i64 + 1;
    assert_eq!(tables(&db).await, (stored, stored, stored));
    assert!(service.shutdown().await);
}

/// A tmpfs of `size` mounted on a directory of its own, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = common::spool_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mounting a tmpfs needs root (scripts/test and CI run as root)"
        );
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_503_and_nothing_acknowledged_is_lost() {
    let db = TestDb::create().await;
    let disk = SmallDisk::mount("256k");
    let (proxy, mut config) = behind_proxy(&db).await;
    config.spool.dir = disk.0.clone();
    // Segments are zero-filled whole when begun: small ones on a small disk.
    config.spool.segment_bytes = 16 * 1024;
    let service = Service::start_ready(config).await;
    proxy.set_down();
    // 20 alerts a request, ~5 KiB: the disk fills within ~50 requests.
    let big = |i: usize| webhook((0..20).map(|j| firing("Disk", i * 100 + j)).collect());
    let mut acknowledged = 0;
    let answer = loop {
        let (status, answer) = service.post(big(acknowledged)).await;
        if status != 200 {
            assert_eq!(status, 503, "{answer}");
            break answer;
        }
        acknowledged += 1;
        assert!(acknowledged < 1000, "never full");
    };
    assert_eq!(answer["error"], "spool_unavailable", "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("No space left"),
        "{answer}"
    );
    assert_eq!(
        service
            .metric("alert_ingest_spool_write_errors_total")
            .await,
        1
    );

    proxy.set_up();
    service.settled().await;
    // Loaded segments deleted: room again, in a new segment.
    let (status, answer) = service.post(big(acknowledged)).await;
    assert_eq!(status, 200, "{answer}");
    service.settled().await;
    let stored = 20 * (acknowledged as i64 + 1);
    assert_eq!(tables(&db).await, (stored, stored, acknowledged as i64 + 1));
    assert!(service.shutdown().await);
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_is_a_503_and_its_record_is_never_loaded() {
    let _scenario = fail::FailScenario::setup();
    let db = TestDb::create().await;
    let service = Service::start(test_config(&db.url)).await;
    assert_eq!(service.post(body("Synced", 0)).await.0, 200);
    fail::cfg("spool::sync", "return").unwrap();
    let (status, answer) = service.post(body("Unsynced", 1)).await;
    fail::remove("spool::sync");
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("spool_unavailable"))
    );
    assert_eq!(service.post(body("Synced", 2)).await.0, 200);
    service.settled().await;
    let client = db.client().await;
    let names: Vec<String> = client
        .query("SELECT alertname FROM alerts ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        ["Synced", "Synced"],
        "the unsynced record never loaded"
    );
    assert!(service.shutdown().await);
}

/// Segment files of a spool dir, oldest first, with their lengths.
fn segment_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .collect();
    files.sort();
    files
}

/// Spools 10 requests named `name` with the database away and stops; the
/// segment that holds them.
async fn ten_spooled(name: &str, config: &Config, proxy: &FaultProxy) -> PathBuf {
    let service = Service::start_ready(config.clone()).await;
    proxy.set_down();
    post_all(&service, name, 10).await;
    assert!(service.shutdown().await);
    proxy.set_up();
    let files = segment_files(&config.spool.dir);
    let (path, _) = files
        .iter()
        .rev()
        .find(|(_, len)| *len > 40)
        .expect("a segment with records");
    path.clone()
}

/// Where each record of a segment starts (the frame's length prefix).
fn record_starts(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 40;
    let mut starts = Vec::new();
    while at + 8 <= bytes.len() {
        starts.push(at as u64);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    starts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_and_a_corrupted_byte_keep_every_record_before_the_damage() {
    let db = TestDb::create().await;
    let (proxy, config) = behind_proxy(&db).await;

    // A crash mid-append: the last record cut short.
    let segment = ten_spooled("Torn", &config, &proxy).await;
    let starts = record_starts(&segment);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(starts[9] + 11).unwrap();
    let service = Service::start(config.clone()).await;
    service.settled().await;
    assert_eq!(tables(&db).await, (9, 9, 9));
    assert_eq!(
        service
            .metric("alert_ingest_spool_corrupt_bytes_total")
            .await,
        11
    );
    assert!(service.shutdown().await);

    // A flipped byte inside the 6th record of the next ten.
    let segment = ten_spooled("Flipped", &config, &proxy).await;
    let starts = record_starts(&segment);
    let mut bytes = std::fs::read(&segment).unwrap();
    let len = bytes.len() as u64;
    bytes[starts[5] as usize + 30] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let service = Service::start(config.clone()).await;
    service.settled().await;
    assert_eq!(tables(&db).await, (9 + 5, 9 + 5, 9 + 5), "never garbage");
    assert_eq!(
        service
            .metric("alert_ingest_spool_corrupt_bytes_total")
            .await,
        len - starts[5]
    );
    let kept = config.spool.dir.join("corrupt");
    assert_eq!(
        std::fs::read_dir(kept).unwrap().count(),
        2,
        "both cuts kept"
    );
    assert!(service.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_copied_elsewhere_is_replayed_idempotently_beside_the_live_load() {
    let db = TestDb::create().await;
    let (proxy, config) = behind_proxy(&db).await;
    ten_spooled("Copied", &config, &proxy).await;
    let replay = |url: String, dir: PathBuf| {
        let mut config = test_config(&url);
        config.spool.dir = common::spool_dir();
        tokio::task::spawn_blocking(move || alert_ingest::replay::run(&config, &[dir]))
    };

    // Loaded into another database from a copy, twice: the same rows.
    let elsewhere = TestDb::create().await;
    for _ in 0..2 {
        let summary = replay(elsewhere.url.clone(), config.spool.dir.clone())
            .await
            .unwrap()
            .expect("replay runs");
        assert!(summary.is_clean(), "{summary}");
        assert_eq!(tables(&elsewhere).await, (10, 10, 10));
    }

    // Replayed into the service's own database, then loaded live by the
    // service: each request is keyed as it was received, so no row twice.
    replay(db.url.clone(), config.spool.dir.clone())
        .await
        .unwrap()
        .unwrap();
    let service = Service::start(config).await;
    service.settled().await;
    assert_eq!(tables(&db).await, (10, 10, 10));
    assert!(service.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_spooled_during_an_outage_is_an_event_of_its_own() {
    let db = TestDb::create().await;
    let (proxy, config) = behind_proxy(&db).await;
    let service = Service::start_ready(config).await;
    proxy.set_down();
    // Firing, resolved, firing again (resolve timeout), resolved: all of
    // them waiting in the spool when the loader gets to them.
    let version = |status: &str, ends_at: &str| {
        let mut a = firing("Flapping", 0);
        a["status"] = json!(status);
        a["endsAt"] = json!(ends_at);
        webhook(vec![a])
    };
    for (status, ends_at) in [
        ("firing", "0001-01-01T00:00:00Z"),
        ("resolved", "2026-11-23T10:05:00Z"),
        ("firing", "0001-01-01T00:00:00Z"),
        ("resolved", "2026-11-23T10:09:00Z"),
    ] {
        assert_eq!(service.post(version(status, ends_at)).await.0, 200);
    }
    proxy.set_up();
    service.settled().await;
    let events: Vec<String> = db
        .client()
        .await
        .query(
            "SELECT status FROM alert_timeline ORDER BY received_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(events, ["firing", "resolved", "firing", "resolved"]);
    assert_eq!(tables(&db).await, (1, 4, 4));
    assert!(service.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_lingers_to_fill_a_batch() {
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.spool.load_linger = Duration::from_secs(1);
    let service = Service::start_ready(config).await;
    // One by one, each answered before the next is sent: well within the
    // linger of the first, they are loaded together.
    post_all(&service, "Lingered", 5).await;
    service.settled().await;
    assert_eq!(tables(&db).await, (5, 5, 5));
    assert_eq!(
        service.metric("alert_ingest_batch_rows_count").await,
        1,
        "one transaction for the five requests"
    );
    assert!(service.shutdown().await);
}
