//! The connections: each sends its requests, retries as Alertmanager does,
//! and tallies statuses, latencies and what was acknowledged.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::plan::{Item, Plan};

/// Latencies above this are clamped into the histogram's top bucket.
const MAX_LATENCY_US: u64 = 60_000_000;

/// First pause before a retry; doubles up to `RETRY_BACKOFF_MAX`.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the connections record, merged at the end.
pub struct Tally {
    pub latency: Histogram<u64>,
    pub statuses: [u64; 6],
    pub status_429: u64,
    pub transport_errors: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Requests never acknowledged (retries exhausted, or none allowed).
    pub gave_up: u64,
    /// Sequence numbers of unique requests answered 200.
    pub acked_unique: Vec<u64>,
    pub acked_repeat_groups: HashSet<u64>,
}

impl Tally {
    pub fn new() -> Tally {
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

/// Sends the plan's requests for `--duration`, at `--rate` or flat out.
pub async fn load(plan: Arc<Plan>) -> Tally {
    if plan.args.rate > 0 {
        fixed_rate(plan).await
    } else {
        flat_out(plan).await
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
