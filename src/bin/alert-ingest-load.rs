//! Load generator and oracle for `POST /webhook`.
//!
//! Sends Alertmanager-shaped webhooks over keep-alive HTTP/1.1 connections,
//! either at a fixed arrival rate (`--rate`: open loop; latency is measured
//! from each request's *scheduled* time, so it is free of coordinated
//! omission) or flat out (`--rate 0`: closed loop, one request in flight per
//! connection). Latencies go into an HDR histogram. With `--verify URL` it
//! then checks PostgreSQL: every alert acknowledged with a 200 is stored,
//! exactly once.
//!
//! Workloads: `unique` (every request is new alert episodes), `repeat` (a
//! fixed set of firing groups re-sent, as Alertmanager does every
//! group_interval), `mixed` (80 % repeat, 20 % unique).
//!
//! With `--retry-for D` it behaves as Alertmanager does: a request answered
//! 5xx or lost in transport is sent again (backing off from 50 ms to 1 s)
//! until it is acknowledged or D has passed since its first attempt; 4xx
//! are never retried. That makes it the oracle of scripts/chaos: whatever
//! the service and PostgreSQL go through, every acknowledged alert must be
//! stored exactly once (`--verify`), and no answer may be a 429.
//!
//! Prints `key=value` lines (for scripts/bench) after a human summary.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Share of requests that are repeats in the `mixed` workload.
const MIXED_REPEAT_SHARE: u64 = 80;
/// Latencies above this are clamped into the histogram's top bucket.
const MAX_LATENCY_US: u64 = 60_000_000;

#[derive(Parser)]
#[command(about = "Load generator and oracle for alert-ingest's POST /webhook")]
struct Args {
    /// Service address.
    #[arg(long, default_value = "127.0.0.1:9095")]
    target: String,
    #[arg(long, value_enum, default_value = "unique")]
    workload: Workload,
    /// Alerts per request.
    #[arg(long, default_value_t = 1)]
    alerts: usize,
    /// Requests per second (open loop); 0 = flat out (closed loop).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Connections (at a fixed rate: the most requests in flight).
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// How long to send, e.g. 30s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Distinct groups in the repeat set.
    #[arg(long, default_value_t = 1000)]
    groups: u64,
    /// Tag written into every alert's `run` label (default: derived from the clock).
    #[arg(long)]
    run: Option<String>,
    /// After the run, check this PostgreSQL database for every acknowledged alert.
    #[arg(long)]
    verify: Option<String>,
    /// With --verify: how long to wait for every acknowledged alert to be
    /// in PostgreSQL (with `durability: spool` a 200 means spooled, and the
    /// loader stores it shortly after), e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    verify_within: Duration,
    /// Resend a request answered 5xx (or lost in transport) until it is
    /// acknowledged or this long has passed since its first attempt, e.g. 2m.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    retry_for: Duration,
}

/// First pause before a retry; doubles up to `RETRY_BACKOFF_MAX`.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    Unique,
    Repeat,
    Mixed,
}

/// What the connections record, merged at the end.
struct Tally {
    latency: Histogram<u64>,
    statuses: [u64; 6],
    status_429: u64,
    transport_errors: u64,
    /// Attempts that were retries.
    retries: u64,
    /// Requests never acknowledged (retries exhausted, or none allowed).
    gave_up: u64,
    /// Sequence numbers of unique requests answered 200.
    acked_unique: Vec<u64>,
    acked_repeat_groups: HashSet<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"),
            statuses: [0; 6],
            status_429: 0,
            transport_errors: 0,
            retries: 0,
            gave_up: 0,
            acked_unique: Vec::new(),
            acked_repeat_groups: HashSet::new(),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        for (a, b) in self.statuses.iter_mut().zip(other.statuses) {
            *a += b;
        }
        self.status_429 += other.status_429;
        self.transport_errors += other.transport_errors;
        self.retries += other.retries;
        self.gave_up += other.gave_up;
        self.acked_unique.extend(other.acked_unique);
        self.acked_repeat_groups.extend(other.acked_repeat_groups);
    }
}

/// One request to send: unique sequence number or repeat group.
#[derive(Clone, Copy)]
enum Item {
    Unique(u64),
    Repeat(u64),
}

struct Plan {
    args: Args,
    run: String,
    starts_at: String,
    repeat_bodies: Vec<Bytes>,
    next: AtomicU64,
}

impl Plan {
    fn item(&self, n: u64) -> Item {
        let repeat = match self.args.workload {
            Workload::Unique => false,
            Workload::Repeat => true,
            Workload::Mixed => n % 100 < MIXED_REPEAT_SHARE,
        };
        if repeat {
            Item::Repeat(n % self.args.groups)
        } else {
            Item::Unique(n)
        }
    }

    fn body(&self, item: Item) -> Bytes {
        match item {
            Item::Unique(n) => webhook(
                &self.run,
                &self.starts_at,
                &format!("u{n}"),
                self.args.alerts,
            ),
            Item::Repeat(g) => self.repeat_bodies[g as usize].clone(),
        }
    }
}

fn webhook(run: &str, starts_at: &str, key: &str, alerts: usize) -> Bytes {
    let items: Vec<String> = (0..alerts)
        .map(|i| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"LoadTest","run":"{run}","cluster":"prod-eu-1","job":"node","namespace":"team-{ns}","pod":"{key}-{i}","severity":"warning"}},"annotations":{{"summary":"load test alert","description":"alert {i} of {key}"}},"startsAt":"{starts_at}","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=up"}}"#,
                ns = i % 7
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"receiver":"load","status":"firing","alerts":[{}],"groupLabels":{{"alertname":"LoadTest"}},"commonLabels":{{"alertname":"LoadTest","run":"{run}"}},"commonAnnotations":{{}},"externalURL":"http://alertmanager:9093","version":"4","groupKey":"{{}}:{{alertname=\"LoadTest\", key=\"{key}\"}}","truncatedAlerts":0}}"#,
        items.join(",")
    ))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let run = args
        .run
        .clone()
        .unwrap_or_else(|| format!("load-{}", time::OffsetDateTime::now_utc().unix_timestamp()));
    let starts_at =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let repeat_bodies = (0..args.groups)
        .map(|g| webhook(&run, &starts_at, &format!("g{g}"), args.alerts))
        .collect();
    let plan = Arc::new(Plan {
        args,
        run,
        starts_at,
        repeat_bodies,
        next: AtomicU64::new(0),
    });
    let started = Instant::now();
    let tally = if plan.args.rate > 0 {
        fixed_rate(plan.clone()).await
    } else {
        flat_out(plan.clone()).await
    };
    let elapsed = started.elapsed();
    let verified = match &plan.args.verify {
        Some(url) => Some(verify_within(url, &plan, &tally).await?),
        None => None,
    };
    report(&plan, &tally, elapsed, verified.as_ref());
    // Never acceptable, whatever the faults: a 429 (Alertmanager drops it),
    // an acknowledged alert missing, an alert stored twice.
    anyhow::ensure!(
        tally.status_429 == 0,
        "{} answers were 429",
        tally.status_429
    );
    if let Some(v) = verified {
        anyhow::ensure!(
            v.lost == 0 && v.duplicates == 0,
            "verification failed: {} lost, {} duplicated",
            v.lost,
            v.duplicates
        );
    }
    Ok(())
}

async fn connect(target: &str) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends `item` until it is acknowledged, answered 4xx, or `--retry-for`
/// has passed since the first attempt. Latency is recorded once, from the
/// scheduled time to the last answer.
async fn deliver(
    plan: &Plan,
    sender: &mut Option<http1::SendRequest<Full<Bytes>>>,
    item: Item,
    scheduled: Instant,
    tally: &mut Tally,
) {
    let give_up_at = Instant::now() + plan.args.retry_for;
    let mut backoff = RETRY_BACKOFF;
    loop {
        let retryable = send(plan, sender, item, tally).await;
        if !retryable {
            break;
        }
        if Instant::now() + backoff > give_up_at {
            tally.gave_up += 1;
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        tally.retries += 1;
    }
    let micros = scheduled.elapsed().as_micros() as u64;
    tally
        .latency
        .saturating_record(micros.clamp(1, MAX_LATENCY_US));
}

/// Sends one request on `sender` (reconnecting if it broke); records its
/// status. Returns whether it deserves a retry (5xx, transport error).
async fn send(
    plan: &Plan,
    sender: &mut Option<http1::SendRequest<Full<Bytes>>>,
    item: Item,
    tally: &mut Tally,
) -> bool {
    let result = async {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            *sender = Some(connect(&plan.args.target).await?);
        }
        let s = sender.as_mut().expect("just connected");
        s.ready().await?;
        let request = Request::post("/webhook")
            .header("host", &plan.args.target)
            .header("content-type", "application/json")
            .body(Full::new(plan.body(item)))?;
        let response = s.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        anyhow::Ok(status)
    }
    .await;
    match result {
        Ok(status) => {
            tally.statuses[(status / 100).min(5) as usize] += 1;
            if status == 429 {
                tally.status_429 += 1;
            }
            if status == 200 {
                match item {
                    Item::Unique(n) => tally.acked_unique.push(n),
                    Item::Repeat(g) => {
                        tally.acked_repeat_groups.insert(g);
                    }
                }
            }
            status >= 500
        }
        Err(_) => {
            *sender = None;
            tally.transport_errors += 1;
            true
        }
    }
}

/// Closed loop: each connection sends its next request when the last is answered.
async fn flat_out(plan: Arc<Plan>) -> Tally {
    let deadline = Instant::now() + plan.args.duration;
    let tasks: Vec<_> = (0..plan.args.connections)
        .map(|_| {
            let plan = plan.clone();
            tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut sender = None;
                while Instant::now() < deadline {
                    let n = plan.next.fetch_add(1, Ordering::Relaxed);
                    deliver(&plan, &mut sender, plan.item(n), Instant::now(), &mut tally).await;
                }
                tally
            })
        })
        .collect();
    collect(tasks).await
}

/// Open loop: requests are scheduled at exact intervals and handed to free
/// connections; a request that waits for a connection counts the wait.
async fn fixed_rate(plan: Arc<Plan>) -> Tally {
    let (tx, rx) = async_channel(plan.args.connections * 64);
    let tasks: Vec<_> = (0..plan.args.connections)
        .map(|_| {
            let (plan, rx) = (plan.clone(), rx.clone());
            tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut sender = None;
                while let Some((n, scheduled)) = rx.recv().await {
                    deliver(&plan, &mut sender, plan.item(n), scheduled, &mut tally).await;
                }
                tally
            })
        })
        .collect();
    // The schedule runs on a thread of its own: std's sleep is precise to tens
    // of microseconds where tokio's timer rounds to a millisecond, and every
    // late wake-up would be charged to the server as latency.
    let (rate, duration) = (plan.args.rate, plan.args.duration);
    let scheduler = std::thread::spawn(move || {
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now();
        let total = (duration.as_secs_f64() * rate as f64) as u64;
        for n in 0..total {
            let scheduled = start + interval.mul_f64(n as f64);
            if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if tx.blocking_send((n, scheduled)).is_err() {
                break;
            }
        }
    });
    let tally = collect(tasks).await;
    let _ = scheduler.join();
    tally
}

/// A multi-consumer queue for the fixed-rate dispatcher (tokio's mpsc has one consumer).
fn async_channel<T: Send + 'static>(capacity: usize) -> (Dispatch<T>, Workers<T>) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    (Dispatch(tx), Workers(Arc::new(tokio::sync::Mutex::new(rx))))
}

struct Dispatch<T>(tokio::sync::mpsc::Sender<T>);

impl<T> Dispatch<T> {
    fn blocking_send(&self, item: T) -> Result<(), ()> {
        self.0.blocking_send(item).map_err(|_| ())
    }
}

struct Workers<T>(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<T>>>);

impl<T> Clone for Workers<T> {
    fn clone(&self) -> Self {
        Workers(self.0.clone())
    }
}

impl<T> Workers<T> {
    async fn recv(&self) -> Option<T> {
        self.0.lock().await.recv().await
    }
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut total = Tally::new();
    for task in tasks {
        total.merge(task.await.expect("connection task"));
    }
    total
}

/// What PostgreSQL holds of the run's acknowledged alerts.
struct Verified {
    /// Acknowledged alerts PostgreSQL lacks (0 is the only pass).
    lost: u64,
    /// Alerts of the run stored more than once (0 is the only pass).
    duplicates: u64,
    /// Alerts of the run stored (acknowledged or not: a request answered
    /// 503 may have committed before its answer was lost).
    stored: u64,
    /// From the end of the load to the verification that found nothing
    /// missing (or gave up): how far behind the answers the rows were.
    stored_within: Duration,
}

/// Verifies again every `VERIFY_POLL` until nothing acknowledged is
/// missing or `--verify-within` has passed.
async fn verify_within(url: &str, plan: &Plan, tally: &Tally) -> anyhow::Result<Verified> {
    const VERIFY_POLL: Duration = Duration::from_millis(100);
    let started = Instant::now();
    loop {
        let mut verified = verify(url, plan, tally).await?;
        if verified.lost == 0 || started.elapsed() >= plan.args.verify_within {
            verified.stored_within = started.elapsed();
            return Ok(verified);
        }
        tokio::time::sleep(VERIFY_POLL).await;
    }
}

async fn verify(url: &str, plan: &Plan, tally: &Tally) -> anyhow::Result<Verified> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let filter = format!(r#"{{"run": "{}"}}"#, plan.run);
    let rows = client
        .query("SELECT labels->>'pod', count(*) FROM alerts WHERE labels @> $1::text::jsonb GROUP BY 1", &[&filter])
        .await?;
    let mut stored = HashSet::with_capacity(rows.len());
    let mut duplicates = 0;
    for row in &rows {
        let (pod, n): (String, i64) = (row.get(0), row.get(1));
        if n != 1 {
            eprintln!("alert {pod} of run {} is stored {n} times", plan.run);
            duplicates += 1;
        }
        stored.insert(pod);
    }
    // Every alert of a run fires once and never changes: exactly one event
    // in its timeline, however often it was delivered (`alerts` cannot hold
    // a row twice, its primary key sees to that; `alert_events` could).
    // A database the service has not migrated to `alert_timeline` yet (an
    // A/B against an older binary) keeps every event in `alert_events`.
    let timeline = if client
        .query_one("SELECT to_regclass('alert_timeline') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0)
    {
        "alert_timeline"
    } else {
        "alert_events"
    };
    let events = client
        .query(
            &format!(
                "SELECT a.labels->>'pod', count(*) FROM alerts a
             JOIN {timeline} e USING (fingerprint, starts_at)
             WHERE a.labels @> $1::text::jsonb GROUP BY 1 HAVING count(*) <> 1"
            ),
            &[&filter],
        )
        .await?;
    for row in &events {
        let (pod, n): (String, i64) = (row.get(0), row.get(1));
        eprintln!("alert {pod} of run {} has {n} events", plan.run);
        duplicates += 1;
    }
    let alerts = plan.args.alerts;
    let expected = tally
        .acked_unique
        .iter()
        .map(|n| format!("u{n}"))
        .chain(tally.acked_repeat_groups.iter().map(|g| format!("g{g}")))
        .flat_map(|key| (0..alerts).map(move |i| format!("{key}-{i}")));
    Ok(Verified {
        lost: expected.filter(|pod| !stored.contains(pod)).count() as u64,
        duplicates,
        stored: stored.len() as u64,
        stored_within: Duration::ZERO,
    })
}

fn report(plan: &Plan, tally: &Tally, elapsed: Duration, verified: Option<&Verified>) {
    let sent: u64 = tally.statuses.iter().sum::<u64>() + tally.transport_errors;
    let ok = tally.statuses[2];
    let secs = elapsed.as_secs_f64();
    let q = |p: f64| tally.latency.value_at_quantile(p) as f64 / 1000.0;
    let acked_alerts = ok * plan.args.alerts as u64;
    eprintln!(
        "{sent} requests in {secs:.1}s: {:.0} req/s, {:.0} alerts/s acknowledged; 2xx {ok}, 4xx {}, 5xx {}, transport errors {}",
        sent as f64 / secs,
        acked_alerts as f64 / secs,
        tally.statuses[4],
        tally.statuses[5],
        tally.transport_errors
    );
    eprintln!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        tally.latency.max() as f64 / 1000.0
    );
    if tally.retries + tally.gave_up > 0 {
        eprintln!(
            "retries {}, requests never acknowledged {}",
            tally.retries, tally.gave_up
        );
    }
    if let Some(v) = verified {
        eprintln!(
            "verified in PostgreSQL: {} acknowledged alerts missing, {} stored more than once ({} of the run stored; checked {:.1} s after the load ended)",
            v.lost, v.duplicates, v.stored, v.stored_within.as_secs_f64()
        );
    }
    println!("run={}", plan.run);
    println!("requests={sent}");
    println!("seconds={secs:.3}");
    println!("req_per_s={:.0}", sent as f64 / secs);
    println!("alerts_per_s={:.0}", acked_alerts as f64 / secs);
    println!("ok={ok}");
    println!("status_4xx={}", tally.statuses[4]);
    println!("status_5xx={}", tally.statuses[5]);
    println!("status_429={}", tally.status_429);
    println!("transport_errors={}", tally.transport_errors);
    println!("retries={}", tally.retries);
    println!("gave_up={}", tally.gave_up);
    println!("acked_alerts={acked_alerts}");
    for (name, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        println!("{name}_ms={:.2}", q(p));
    }
    if let Some(v) = verified {
        println!("lost={}", v.lost);
        println!("duplicates={}", v.duplicates);
        println!("stored={}", v.stored);
        println!("stored_within_ms={}", v.stored_within.as_millis());
    }
}
