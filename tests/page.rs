//! The built-in page (`GET /`) in a real browser: Debian's Chromium,
//! headless at 1280x720, driven over WebDriver by its ChromeDriver
//! (`$CHROMIUM_BIN`, `$CHROMEDRIVER_BIN`; `scripts/test` installs both).
//! The service holds the repo's Alertmanager fixtures; each test asserts on
//! the rendered DOM against what PostgreSQL holds, and at its end that
//! the browser logged no error (console, exception, failed load), that no
//! error is shown, that every request the page made went to the service and
//! that nothing is wider than the window.
//! Without a browser: the page's auth, validators and headers.

mod common;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client as Driver, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use common::{count, fixture, free_port, post_fixtures, test_config, webhook, Service, TestDb};

const DEFAULT_CHROMIUM_BIN: &str = "/usr/bin/chromium";
const DEFAULT_CHROMEDRIVER_BIN: &str = "/usr/bin/chromedriver";
/// ChromeDriver answers in well under a second; this bounds a broken start.
const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// A view loads in tens of milliseconds here; this bounds a broken one.
const VIEW_TIMEOUT: Duration = Duration::from_secs(15);
/// Holds every fixture's startsAt (2026-11-23T19:14..19:25).
const WINDOW: &str = "since=2026-11-23T00:00:00Z&until=2026-11-24T00:00:00Z";
const WINDOW_SQL: &str =
    "starts_at >= '2026-11-23T00:00:00Z' AND starts_at < '2026-11-24T00:00:00Z'";

/// ChromeDriver and a session of headless Chromium. `close` ends the
/// session (Chromium exits); dropped without it, ChromeDriver's process
/// group, Chromium included, is killed.
struct Browser {
    driver: Child,
    client: Driver,
    _profile: tempfile::TempDir,
    /// One browser at a time in this binary, whoever runs the tests
    /// (`.config/nextest.toml` says the same to nextest across binaries).
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Browser {
    async fn start() -> Browser {
        let turn = ONE_BROWSER_AT_A_TIME.lock().await;
        let chromium =
            std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| DEFAULT_CHROMIUM_BIN.into());
        let chromedriver =
            std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| DEFAULT_CHROMEDRIVER_BIN.into());
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(profile.path().join("chromedriver.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{chromedriver}: {e} (scripts/test installs chromium-driver)")
            });
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--window-size=1280,720",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                ],
            },
            // Console messages and failed loads; the network events of
            // Chromium's DevTools protocol, to see every request made.
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + DRIVER_READY_TIMEOUT;
        let client = loop {
            let mut builder = ClientBuilder::new(HttpConnector::new());
            builder.capabilities(caps.as_object().unwrap().clone());
            match builder.connect(&url).await {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => panic!("no WebDriver session: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Browser {
            driver,
            client,
            _profile: profile,
            _turn: turn,
        }
    }

    /// Opens `path` of the service and waits for the page to have drawn it.
    async fn open(&self, service: &Service, path: &str) {
        self.client
            .goto(&format!("{}{path}", service.base))
            .await
            .unwrap();
        self.wait_ready().await;
    }

    /// Until the page has finished a view (`body[data-ready]`, set after
    /// each).
    async fn wait_ready(&self) {
        self.client
            .wait()
            .at_most(VIEW_TIMEOUT)
            .for_element(Locator::Css("body[data-ready]"))
            .await
            .expect("the page finishes its view");
    }

    /// Runs `action`, which makes the page draw a new view, and waits for it.
    async fn redraw<F: std::future::Future>(&self, action: F) -> F::Output {
        self.js("delete document.body.dataset.ready").await;
        let out = action.await;
        self.wait_ready().await;
        out
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    async fn attributes(&self, css: &str, attribute: &str) -> Vec<String> {
        let mut out = Vec::new();
        for el in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(el.attr(attribute).await.unwrap().unwrap_or_default());
        }
        out
    }

    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for el in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(el.text().await.unwrap());
        }
        out
    }

    /// The entries of a WebDriver log since the last call (ChromeDriver's
    /// `se/log`: `browser` or `performance`).
    async fn log(&self, kind: &'static str) -> Vec<Value> {
        let entries = self.client.issue_cmd(GetLog(kind)).await.unwrap();
        entries.as_array().cloned().unwrap_or_default()
    }

    /// No error in the browser's log, every request to the service, and
    /// nothing wider than the 1280 px window.
    async fn assert_clean(&self, service: &Service) {
        // Every error; the warnings of the page's own script, console and
        // requests (Chromium's other warnings, deprecations and the like,
        // are about the browser, and printed only).
        let (errors, other): (Vec<Value>, Vec<Value>) =
            self.log("browser").await.into_iter().partition(|e| {
                let ours = ["console-api", "javascript", "network", "security"]
                    .contains(&e["source"].as_str().unwrap_or_default());
                e["level"] == "SEVERE" || (e["level"] == "WARNING" && ours)
            });
        assert!(errors.is_empty(), "the browser logged: {errors:#?}");
        if !other.is_empty() {
            eprintln!("browser log, not the page's: {other:#?}");
        }
        let shown = self
            .js("return document.getElementById('error').hidden")
            .await;
        assert_eq!(shown, true, "{:?}", self.texts("#error").await);
        let own = format!("{}/", service.base);
        let requests = requests_of_pages_at(&own, &self.log("performance").await);
        assert!(requests.len() > 3, "the page's requests: {requests:?}");
        // data: URLs leave nothing (Chromium draws the date inputs' calendar
        // icon from one).
        let elsewhere: Vec<&String> = requests
            .iter()
            .filter(|u| !u.starts_with(&own) && !u.starts_with("data:"))
            .collect();
        assert!(
            elsewhere.is_empty(),
            "requests not to the service: {elsewhere:?}"
        );
        let width = self.js("return document.documentElement.scrollWidth").await;
        assert!(
            width.as_u64().unwrap() <= 1280,
            "the page is {width} px wide"
        );
    }

    async fn close(self) {
        self.client.clone().close().await.unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

#[derive(Debug)]
struct GetLog(&'static str);

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": self.0}).to_string()),
        )
    }
}

/// The URLs requested by documents loaded from `origin`, from the
/// `Network.requestWillBeSent` events of a performance log (the browser's
/// own start page, which it loads before the test's, is not the page's).
fn requests_of_pages_at(origin: &str, entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
        .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
        .map(|m| m["message"]["params"].clone())
        .filter(|p| {
            p["documentURL"]
                .as_str()
                .is_some_and(|d| d.starts_with(origin))
        })
        .filter_map(|p| Some(p["request"]["url"].as_str()?.to_owned()))
        .collect()
}

/// The service holding every fixture, and one HighLatency label set fired
/// again later (a second episode, so that something flaps).
async fn with_fixtures() -> (TestDb, Service) {
    let db = TestDb::create().await;
    let service = Service::start_ready(test_config(&db.url)).await;
    post_fixtures(&service).await;
    let refire = String::from_utf8(fixture("firing-two-alerts.json"))
        .unwrap()
        .replace("2026-11-23T19:14:38Z", "2026-11-23T21:02:00Z");
    let (status, body) = service.post(refire).await;
    assert_eq!(status, 200, "{body}");
    service.settled().await;
    (db, service)
}

async fn fingerprints(db: &TestDb, condition: &str) -> Vec<String> {
    let rows = db
        .client()
        .await
        .query(
            &format!(
                "SELECT DISTINCT fingerprint FROM alerts WHERE {WINDOW_SQL} AND {condition} ORDER BY 1"
            ),
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_holds_one_row_per_stored_label_set() {
    let (db, service) = with_fixtures().await;
    let browser = Browser::start().await;
    browser.open(&service, &format!("/?{WINDOW}")).await;
    let rows = browser.attributes("#rows .row", "data-fingerprint").await;
    let stored = fingerprints(&db, "true").await;
    assert!(
        stored.len() > 80,
        "the fixtures hold {} label sets",
        stored.len()
    );
    assert_eq!(sorted(rows.clone()), stored, "one row per stored label set");
    let episodes = count(&db.client().await, &format!("alerts WHERE {WINDOW_SQL}")).await;
    let summary = browser.texts("#summary").await.concat();
    let counted = format!("{} label sets, {episodes} episodes", stored.len());
    assert!(summary.starts_with(&counted), "{summary}");
    // The first row's first episode: its bar, and the pointer's place on it.
    let bar = "const c = document.getElementById('bars');
               const e = timeline.rows[0].episodes[0];
               const [x0, x1] = barOf(e, c.clientWidth, Date.now());
               const box = c.getBoundingClientRect();
               const at = { clientX: box.left + (x0 + x1) / 2, clientY: box.top + 11, bubbles: true };";
    // The canvas drew it in its severity's colour, in the middle of its bar.
    let pixel = browser
        .js(&format!(
            "{bar}
             const r = devicePixelRatio;
             const d = c.getContext('2d').getImageData(Math.round((x0 + x1) / 2 * r), Math.round(11 * r), 1, 1).data;
             const hex = cssVar('--' + severityOf(e.labels)).slice(1);
             const want = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
             return {{ got: Array.from(d.slice(0, 3)), want, alpha: d[3] }};"
        ))
        .await;
    let channel = |key: &str, i: usize| pixel[key][i].as_i64().unwrap();
    for i in 0..3 {
        assert!(
            (channel("got", i) - channel("want", i)).abs() <= 2,
            "{pixel}"
        );
    }
    assert!(pixel["alpha"].as_i64().unwrap() > 200, "{pixel}");
    // The pointer over that bar shows its labels and annotations; a click
    // there opens that episode.
    let hovered = browser
        .js(&format!(
            "{bar} c.dispatchEvent(new MouseEvent('mousemove', at));
             const tip = document.getElementById('tooltip');
             return {{ shown: !tip.hidden, text: tip.textContent, labels: e.labels,
                       summary: e.annotations.summary, fingerprint: e.fingerprint,
                       starts_at: e.starts_at }};"
        ))
        .await;
    let tip = hovered["text"].as_str().unwrap();
    assert_eq!(hovered["shown"], true);
    for value in hovered["labels"].as_object().unwrap().values() {
        assert!(tip.contains(value.as_str().unwrap()), "{value} in {tip}");
    }
    assert!(tip.contains(hovered["summary"].as_str().unwrap()), "{tip}");
    browser
        .redraw(browser.js(&format!(
            "{bar} c.dispatchEvent(new MouseEvent('click', at));"
        )))
        .await;
    let opened = browser
        .attributes("#episode-body", "data-fingerprint")
        .await;
    assert_eq!(opened, [hovered["fingerprint"].as_str().unwrap()]);
    let started = browser.attributes("#episode-body", "data-starts-at").await;
    assert_eq!(started, [hovered["starts_at"].as_str().unwrap()]);
    browser.assert_clean(&service).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtering_by_a_label_leaves_only_the_matching_rows() {
    let (db, service) = with_fixtures().await;
    let browser = Browser::start().await;
    browser.open(&service, &format!("/?{WINDOW}")).await;
    // Through the form, as a person would: the label box, then Apply.
    let input = browser.client.find(Locator::Id("label")).await.unwrap();
    input.send_keys("namespace=payments").await.unwrap();
    let apply = browser
        .client
        .find(Locator::Css("#filters button[type=submit]"))
        .await
        .unwrap();
    browser.redraw(apply.click()).await.unwrap();
    let rows = browser.attributes("#rows .row", "data-fingerprint").await;
    let stored = fingerprints(&db, r#"labels @> '{"namespace": "payments"}'"#).await;
    assert_eq!(stored.len(), 2, "the fixtures' payments label sets");
    assert_eq!(sorted(rows), stored);
    // The filter is in the URL under the API's name: the link reopens it.
    let url = browser.client.current_url().await.unwrap();
    assert!(
        url.query().unwrap().contains("label=namespace%3Dpayments"),
        "{url}"
    );
    browser.client.refresh().await.unwrap();
    browser.wait_ready().await;
    let reopened = browser.attributes("#rows .row", "data-fingerprint").await;
    assert_eq!(sorted(reopened), stored);
    // And an alertname no alert has leaves none.
    browser
        .open(&service, &format!("/?{WINDOW}&alertname=NoSuchAlert"))
        .await;
    assert!(browser
        .attributes("#rows .row", "data-fingerprint")
        .await
        .is_empty());
    let summary = browser.texts("#summary").await.concat();
    assert!(summary.starts_with("0 label sets, 0 episodes"), "{summary}");
    browser.assert_clean(&service).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_episode_view_shows_its_events_source_and_notifications() {
    let (db, service) = with_fixtures().await;
    let browser = Browser::start().await;
    browser
        .open(&service, &format!("/?{WINDOW}&alertname=HighLatency"))
        .await;
    // The 10.0.3.17 label set fired at 19:14:38, resolved (resolved-group),
    // then fired again at 21:02: its row opens the latest episode; the
    // first is one click away in the label set's list.
    let row = browser
        .client
        .find(Locator::Css("#rows .row[title*='10.0.3.17']"))
        .await
        .unwrap();
    let fingerprint = row.attr("data-fingerprint").await.unwrap().unwrap();
    browser.redraw(row.click()).await.unwrap();
    let latest = browser.texts("#episode-events li").await;
    assert_eq!(latest.len(), 1, "{latest:?}");
    let first = browser
        .client
        .find(Locator::Css(".episodes-list button[aria-pressed=false]"))
        .await
        .unwrap();
    browser.redraw(first.click()).await.unwrap();
    let events = browser.texts("#episode-events li").await;
    let stored: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM alert_timeline
             WHERE fingerprint = $1 AND starts_at = '2026-11-23T19:14:38Z'",
            &[&fingerprint],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(events.len() as i64, stored, "{events:?}");
    assert!(events[0].starts_with("firing") && events[1].starts_with("resolved"));
    let source = browser
        .attributes("#episode-times a", "href")
        .await
        .concat();
    let fixture: Value = serde_json::from_slice(&fixture("firing-two-alerts.json")).unwrap();
    assert_eq!(
        source,
        fixture["alerts"][0]["generatorURL"].as_str().unwrap()
    );
    // The two notifications of its group: the firing one and the resolved one.
    let notified = browser
        .texts("#episode-notifications tbody td:nth-child(2)")
        .await;
    assert_eq!(notified, ["firing", "resolved"]);
    let labels = browser.texts("#episode-body .kv dd").await.join(" ");
    assert!(labels.contains("10.0.3.17:9100") && labels.contains("checkout"));
    // Escape closes it; the URL forgets it.
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys(&char::from(fantoccini::key::Key::Escape).to_string())
        .await
        .unwrap();
    let closed = browser
        .js("return document.getElementById('episode').hidden")
        .await;
    assert_eq!(closed, true);
    let url = browser.client.current_url().await.unwrap();
    assert!(!url.as_str().contains("fingerprint="), "{url}");
    browser.assert_clean(&service).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_and_flapping_show_the_stats_with_sparklines() {
    let (db, service) = with_fixtures().await;
    let browser = Browser::start().await;
    browser
        .open(&service, &format!("/?view=noisy&{WINDOW}"))
        .await;
    let noisy = browser
        .attributes("#noisy tbody tr", "data-alertname")
        .await;
    let counts = db
        .client()
        .await
        .query(
            &format!(
                "SELECT alertname FROM alerts WHERE {WINDOW_SQL}
                 GROUP BY 1 ORDER BY count(*) DESC, 1"
            ),
            &[],
        )
        .await
        .unwrap();
    let expected: Vec<String> = counts.iter().map(|r| r.get(0)).collect();
    assert_eq!(noisy, expected);
    let lines = browser
        .attributes("#noisy svg.spark polyline", "points")
        .await;
    assert_eq!(lines.len(), noisy.len());
    assert!(
        lines.iter().all(|p| p.split(' ').count() == 48),
        "{lines:?}"
    );
    // Each sparkline's points add up to its row's episodes.
    let series = browser.attributes("#noisy svg.spark", "aria-label").await;
    let episodes = browser.texts("#noisy tbody td.num").await;
    for (points, count) in series.iter().zip(&episodes) {
        let counts = points.rsplit(": ").next().unwrap().split(", ");
        let sum: i64 = counts.map(|n| n.parse::<i64>().unwrap()).sum();
        assert_eq!(sum.to_string(), *count, "{points}");
    }
    // The HighLatency label sets fired twice: they flap.
    let flapping = browser
        .attributes("#flapping tbody tr", "data-fingerprint")
        .await;
    let twice = db
        .client()
        .await
        .query(
            &format!(
                "SELECT fingerprint FROM alerts WHERE {WINDOW_SQL} GROUP BY 1 HAVING count(*) > 1"
            ),
            &[],
        )
        .await
        .unwrap();
    let twice: Vec<String> = twice.iter().map(|r| r.get(0)).collect();
    assert_eq!((sorted(flapping), twice.len()), (sorted(twice), 2));
    // Time to resolve: the resolved alertnames.
    let durations = browser
        .attributes("#durations tbody tr", "data-alertname")
        .await;
    assert_eq!(sorted(durations), ["DiskFull", "HighLatency"]);
    // The URL's filters narrow the tables too.
    browser
        .open(
            &service,
            &format!("/?view=noisy&{WINDOW}&label=namespace=payments"),
        )
        .await;
    let payments = browser
        .attributes("#noisy tbody tr", "data-alertname")
        .await;
    assert_eq!(payments, ["HighLatency"]);
    browser.assert_clean(&service).await;
    browser.close().await;
}

/// Labels and annotations are data, never markup or script: a label set
/// built to inject HTML, and `javascript:` links, render as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_labels_and_links_render_as_text() {
    let db = TestDb::create().await;
    let service = Service::start_ready(test_config(&db.url)).await;
    let pwn = "document.title='pwned'";
    let name = format!("<img src=x onerror=\"{pwn}\">");
    let body = webhook(vec![json!({
        "status": "firing",
        "labels": {"alertname": name, "severity": "critical",
                   "x": format!("<script>{pwn}</script>")},
        "annotations": {"runbook_url": format!("javascript:{pwn}"), "summary": "<b>bold</b>"},
        "startsAt": "2026-11-23T19:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": format!("javascript:{pwn}"),
    })]);
    let (status, answer) = service.post(body).await;
    assert_eq!(status, 200, "{answer}");
    service.settled().await;
    let browser = Browser::start().await;
    browser.open(&service, &format!("/?{WINDOW}")).await;
    assert_eq!(browser.texts("#rows .row .name").await, [name]);
    let row = browser
        .client
        .find(Locator::Css("#rows .row"))
        .await
        .unwrap();
    browser.redraw(row.click()).await.unwrap();
    let shown = browser.texts("#episode-body .kv dd").await.join("\n");
    let links = shown.matches(&format!("javascript:{pwn}")).count();
    assert_eq!(
        links, 2,
        "the runbook_url and the generatorURL, as text: {shown}"
    );
    assert!(shown.contains("<b>bold</b>"), "{shown}");
    let injected = "img, script:not([src]), a[href^='javascript'], b";
    assert!(browser
        .client
        .find_all(Locator::Css(injected))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        browser.client.title().await.unwrap(),
        "Alert history · alert-ingest"
    );
    browser.assert_clean(&service).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_takes_the_api_credentials_and_revalidates() {
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    config.auth.basic_auth = Some(alert_ingest::config::BasicAuthConfig {
        username: "sre".into(),
        password: Some(alert_ingest::config::Secret("s3cret".into())),
        password_file: None,
    });
    let service = Service::start_ready(config).await;
    // A request with the credentials and, if given, an If-None-Match.
    let send = |method: reqwest::Method, path: &str, tag: Option<String>| {
        let url = format!("{}{path}", service.base);
        let request = service
            .http
            .request(method, url)
            .basic_auth("sre", Some("s3cret"));
        let request = match tag {
            Some(tag) => request.header("if-none-match", tag),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    use reqwest::Method;
    for path in [
        "/",
        "/assets/app.js",
        "/assets/style.css",
        "/assets/favicon.svg",
    ] {
        let anonymous = service
            .http
            .get(format!("{}{path}", service.base))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("Basic"),
            "a browser asks for it: {challenge}"
        );
        let body: Value = anonymous.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");

        let ok = send(Method::GET, path, None).await;
        assert_eq!(ok.status(), 200, "{path}");
        let csp = ok.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        let etag = ok.headers()["etag"].to_str().unwrap().to_owned();
        let again = send(Method::GET, path, Some(etag.clone())).await;
        assert_eq!(again.status(), 304, "{path}");
        let weak = send(Method::GET, path, Some(format!("W/{etag}"))).await;
        assert_eq!(weak.status(), 304, "a weak tag matches too: {path}");
        let head = send(Method::HEAD, path, None).await;
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(head.headers()["etag"], etag.as_str());
        assert!(head.bytes().await.unwrap().is_empty());
    }
    let missing = send(Method::GET, "/assets/nothing.js", None).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(send(Method::POST, "/", None).await.status(), 405);
}
