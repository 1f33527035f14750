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
//!
//! One module per stage: `plan` (what to send), `send` (the connections and
//! what they tally), `verify` (PostgreSQL against the tally), `report`.

mod plan;
mod report;
mod send;
mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use plan::{Plan, Workload};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Load generator and oracle for alert-ingest's POST /webhook")]
pub struct Args {
    /// Service address.
    #[arg(long, default_value = "127.0.0.1:9095")]
    pub target: String,
    #[arg(long, value_enum, default_value = "unique")]
    pub workload: Workload,
    /// Alerts per request.
    #[arg(long, default_value_t = 1)]
    pub alerts: usize,
    /// Requests per second (open loop); 0 = flat out (closed loop).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Connections (at a fixed rate: the most requests in flight).
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// How long to send, e.g. 30s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Distinct groups in the repeat set.
    #[arg(long, default_value_t = 1000)]
    pub groups: u64,
    /// Tag written into every alert's `run` label (default: derived from the clock).
    #[arg(long)]
    pub run: Option<String>,
    /// After the run, check this PostgreSQL database for every acknowledged alert.
    #[arg(long)]
    pub verify: Option<String>,
    /// With --verify: how long to wait for every acknowledged alert to be
    /// in PostgreSQL (with `durability: spool` a 200 means spooled, and the
    /// loader stores it shortly after), e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub verify_within: Duration,
    /// Resend a request answered 5xx (or lost in transport) until it is
    /// acknowledged or this long has passed since its first attempt, e.g. 2m.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub retry_for: Duration,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Arc::new(Plan::new(args)?);
    let started = Instant::now();
    let tally = send::load(plan.clone()).await;
    let elapsed = started.elapsed();
    let verified = match &plan.args.verify {
        Some(url) => Some(verify::verify_within(url, &plan, &tally).await?),
        None => None,
    };
    report::report(&plan, &tally, elapsed, verified.as_ref());
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
