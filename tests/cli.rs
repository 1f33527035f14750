//! The `alert-ingest` binary itself: its command line, config checking, and
//! a real serve → SIGTERM → exit 0 cycle.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use alert_ingest::config::ENV_SPOOL_DIR;
use common::{count, fixture, free_port, Client, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_alert-ingest");
const REPO_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");

fn run(args: &[&str]) -> (i32, String, String) {
    run_with(args, &[])
}

/// Runs the binary to its end with `env` set (and `$RUST_LOG` unset unless
/// given): exit code (-1 for a signal), stdout, stderr.
fn run_with(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

/// The binary serving `--config <config>` on a free port, its stderr kept
/// in a file.
struct Served {
    child: Child,
    client: Client,
    log: tempfile::NamedTempFile,
}

impl Served {
    /// Starts it with `env` set (and `$RUST_LOG` unset unless given), on a
    /// spool dir of its own unless `env` names one, and waits until
    /// `/readyz` answers 200.
    async fn start(config: &Path, env: &[(&str, &str)]) -> Served {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "--listen", &addr])
            .env_remove("RUST_LOG")
            // Not the default ./spool, which every test would share (and
            // the first to start would lock against the others).
            .env(ENV_SPOOL_DIR, common::spool_dir())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let client = Client {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        assert!(
            client.wait_ready(Duration::from_secs(10)).await,
            "ready within 10 s"
        );
        eprintln!("startup to ready: {:?}", started.elapsed());
        Served { child, client, log }
    }

    /// Sends a signal (`HUP`, `TERM`).
    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// SIGTERM, then its exit status, within the grace period.
    fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within the grace period"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it has logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }
}

fn config_file(yaml: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(yaml.as_bytes()).unwrap();
    file
}

#[test]
fn help_explains_serve_and_check_config() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for word in ["check-config", "migrate", "--config", "--listen"] {
        assert!(out.contains(word), "--help lacks {word}:\n{out}");
    }
}

#[test]
fn check_config_accepts_the_repository_config() {
    let (code, out, err) = run(&["check-config", "--config", REPO_CONFIG]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"));
}

#[test]
fn check_config_names_unknown_keys_and_bad_values() {
    let unknown = config_file("server:\n  listen: 127.0.0.1:9095\n  max_body: 10\n");
    let (code, _, err) = run(&["check-config", "--config", unknown.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("max_body"), "{err}");
    let invalid = config_file("workers:\n  count: 0\n");
    let (code, _, err) = run(&["check-config", "--config", invalid.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("workers.count"), "{err}");
    let (code, _, err) = run(&["check-config", "--config", "/nonexistent.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.yaml"), "{err}");
}

/// `alert-ingest migrate` brings a fresh database to the current schema,
/// is a no-op the second time, and fails (exit 1, reason on stderr) when
/// PostgreSQL cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_the_schema_once_then_exits() {
    let db = TestDb::create().await;
    let migrate = |url: &str| {
        run_with(
            &["migrate", "--config", REPO_CONFIG],
            &[("ALERT_INGEST_DATABASE_URL", url)],
        )
    };
    let (code, out, err) = migrate(&db.url);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied migrations [1, 2"), "{out}");
    let client = db.client().await;
    assert_eq!(count(&client, "alerts").await, 0, "the tables exist");
    let versions = count(&client, "schema_migrations").await;
    let (code, out, err) = migrate(&db.url);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "database schema is up to date");
    assert_eq!(count(&client, "schema_migrations").await, versions);
    let unreachable = format!("postgres://root@127.0.0.1:{}/test", free_port());
    let (code, _, err) = migrate(&unreachable);
    assert_eq!(code, 1);
    assert!(err.contains("cannot migrate"), "{err}");
}

/// SIGHUP reloads what can change while serving (auth secrets, limits,
/// log level, retention), names what needs a restart, and keeps the
/// configuration in force when the new file does not validate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_secrets_limits_log_level_and_retention() {
    let db = TestDb::create().await;
    let config = tempfile::NamedTempFile::new().unwrap();
    let write = |yaml: &str| std::fs::write(config.path(), yaml).unwrap();
    write("log:\n  level: warn\nauth:\n  bearer_token: old-token\n");
    let mut served = Served::start(config.path(), &[("ALERT_INGEST_DATABASE_URL", &db.url)]).await;
    let client = served.client.clone();
    let alerts = |n: usize| {
        let alerts = (0..n)
            .map(|i| {
                serde_json::json!({"labels": {"alertname": format!("Reload{i}")},
                                        "startsAt": "2026-11-24T00:00:00Z"})
            })
            .collect();
        common::webhook(alerts)
    };
    let post = |token: &'static str, body: String| {
        let client = client.clone();
        async move { client.post_bearer(token, body).await }
    };
    assert_eq!(post("old-token", alerts(3)).await.0, 200);
    assert_eq!(post("new-token", alerts(1)).await.0, 401);
    let horizon = |client: &Client| {
        let client = client.clone();
        async move {
            client
                .metric("alert_ingest_partition_horizon_seconds")
                .await
        }
    };
    let first_run = common::eventually(Duration::from_secs(10), || async {
        horizon(&client).await > 0
    })
    .await;
    assert!(first_run, "the startup retention run recorded its horizon");
    assert!(horizon(&client).await < 9 * 86_400, "premake 7");
    let hangup = || served.signal("HUP");

    write(
        "log:\n  level: debug\nauth:\n  bearer_token: new-token\nlimits:\n  max_alerts: 2\n\
         retention:\n  premake: 9\nqueue:\n  capacity: 10\n",
    );
    hangup();
    let reloaded = common::eventually(Duration::from_secs(10), || async {
        post("new-token", alerts(1)).await.0 == 200
    })
    .await;
    assert!(reloaded, "the new token is accepted after SIGHUP");
    assert_eq!(
        post("old-token", alerts(1)).await.0,
        401,
        "the old one is not"
    );
    let (status, body) = post("new-token", alerts(3)).await;
    assert_eq!(status, 400, "the new limit applies: {body}");
    assert!(body.contains("max_alerts"), "{body}");
    let premade = common::eventually(Duration::from_secs(10), || async {
        horizon(&client).await >= 9 * 86_400
    })
    .await;
    assert!(premade, "retention ran again with premake 9");

    // A token file rotated in place (same path, new contents) is read again.
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), "file-token-1\n").unwrap();
    let with_file = format!(
        "log:\n  level: debug\nauth:\n  bearer_token_file: {}\nlimits:\n  max_alerts: 2\n\
         retention:\n  premake: 9\nqueue:\n  capacity: 10\n",
        token_file.path().display()
    );
    write(&with_file);
    hangup();
    let from_file = common::eventually(Duration::from_secs(10), || async {
        post("file-token-1", alerts(1)).await.0 == 200
    })
    .await;
    assert!(from_file, "the token file is used after SIGHUP");
    std::fs::write(token_file.path(), "file-token-2\n").unwrap();
    hangup();
    let rotated = common::eventually(Duration::from_secs(10), || async {
        post("file-token-2", alerts(1)).await.0 == 200
    })
    .await;
    assert!(rotated, "the rotated token file is read again on SIGHUP");
    assert_eq!(post("file-token-1", alerts(1)).await.0, 401);

    // A file that does not validate changes nothing.
    write("auth:\n  bearer_token: third-token\nworkers:\n  count: 0\n");
    hangup();
    let refused = common::eventually(Duration::from_secs(10), || async {
        served.log().contains("configuration not reloaded")
    })
    .await;
    assert!(refused, "the invalid file is reported");
    assert_eq!(post("file-token-2", alerts(1)).await.0, 200);
    assert_eq!(post("third-token", alerts(1)).await.0, 401);

    let status = served.terminate();
    assert_eq!(status.code(), Some(0), "SIGHUP never stopped it");
    let output = served.log();
    let after_reload = output
        .split_once("configuration reloaded")
        .map(|(_, after)| after)
        .unwrap_or_else(|| panic!("no reload logged:\n{output}"));
    assert!(
        output.contains("apply only after a restart") && output.contains("queue"),
        "queue.capacity needs a restart:\n{output}"
    );
    assert!(
        after_reload.contains("path=\"/webhook\"") || after_reload.contains("path=/webhook"),
        "debug request lines after the reload:\n{output}"
    );
    assert!(
        !output
            .split_once("configuration reloaded")
            .unwrap()
            .0
            .contains(" DEBUG "),
        "no debug lines before it:\n{output}"
    );
    assert!(
        output.contains("configuration not reloaded") && output.contains("workers.count"),
        "the invalid file is reported:\n{output}"
    );
}

/// `log.format: json`: every line is one JSON object, and at debug each
/// request has its line (method, path, status, micros) and a refused one
/// its error kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_request_and_error_kinds() {
    let db = TestDb::create().await;
    let config = config_file("log:\n  level: debug\n  format: json\n");
    let mut served = Served::start(config.path(), &[("ALERT_INGEST_DATABASE_URL", &db.url)]).await;
    let client = &served.client;
    assert_eq!(client.post(fixture("firing-two-alerts.json")).await.0, 200);
    assert_eq!(client.post("{").await.0, 400);
    served.terminate();
    let output = served.log();
    let lines: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request = |status: u64| {
        lines.iter().any(|l| {
            let f = &l["fields"];
            f["message"] == "request"
                && f["method"] == "POST"
                && f["path"] == "/webhook"
                && f["status"] == status
                && f["micros"].is_u64()
        })
    };
    assert!(request(200) && request(400), "request lines:\n{output}");
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "request refused"
                && l["fields"]["kind"] == "invalid_json"),
        "the refusal with its kind:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_until_sigterm_then_exits_zero() {
    let db = TestDb::create().await;
    let config = config_file("log:\n  level: warn\n");
    let mut served = Served::start(config.path(), &[("ALERT_INGEST_DATABASE_URL", &db.url)]).await;
    let (status, body) = served.client.post(fixture("firing-two-alerts.json")).await;
    assert_eq!(status, 200, "{body}");

    let status = served.terminate();
    assert_eq!(status.code(), Some(0));
    assert_eq!(count(&db.client().await, "alerts").await, 2);
}

/// Issue #4 row 17: with every log line on (debug), neither the bearer
/// token, nor the database password, nor a wrong token attempt shows in the
/// output, and a label name carrying a newline and a terminal escape is
/// logged escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_secret_and_escape_what_senders_wrote() {
    const TOKEN: &str = "tok-8c1f2e9a7b";
    const DB_PASSWORD: &str = "pw-5d3b1a0c9e";
    const WRONG: &str = "guess-0f9e8d7c";
    let db = TestDb::create().await;
    let config = config_file("log:\n  level: debug\n");
    // Trust authentication ignores the password, but it is in the URL.
    let url = db.url.replacen("root@", &format!("root:{DB_PASSWORD}@"), 1);
    let env = [
        ("ALERT_INGEST_DATABASE_URL", url.as_str()),
        ("ALERT_INGEST_AUTH_BEARER_TOKEN", TOKEN),
        ("RUST_LOG", "debug"),
    ];
    let mut served = Served::start(config.path(), &env).await;
    let client = &served.client;
    let good = String::from_utf8(fixture("firing-two-alerts.json")).unwrap();
    assert_eq!(client.post_bearer(WRONG, good.clone()).await.0, 401);
    assert_eq!(client.post_bearer(TOKEN, good).await.0, 200);
    // A 400 whose detail quotes a hostile label name.
    let hostile = r#"{"receiver":"r","alerts":[{"labels":{"x\nFORGED LOG LINE \u001b[31m":"a\u0000"},"startsAt":"2026-01-01T00:00:00Z"}]}"#;
    assert_eq!(client.post_bearer(TOKEN, hostile.into()).await.0, 400);
    served.terminate();
    let output = served.log();
    assert!(
        output.contains("request refused"),
        "debug logging was on:\n{output}"
    );
    for secret in [TOKEN, DB_PASSWORD, WRONG] {
        assert!(
            !output.contains(secret),
            "{secret} is in the log:\n{output}"
        );
    }
    assert!(
        !output.lines().any(|l| l.starts_with("FORGED")),
        "a sender forged a log line:\n{output}"
    );
    assert!(
        !output.contains('\u{1b}'),
        "a raw terminal escape reached the log"
    );
}
