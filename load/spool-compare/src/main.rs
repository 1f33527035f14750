//! The durable-append and drain benchmark behind the spool's design
//! (issue #12: "if you write the log itself, say why no crate fit").
//!
//! For each store, in a fresh directory on the filesystem under `--dir`:
//!
//! 1. **Write**: `--producers` tokio tasks (like that many HTTP
//!    connections) each append a `--body-bytes` JSON-ish body and wait until
//!    it is durable before sending the next, for `--seconds`. Every store
//!    group-commits the same way: one writer thread takes everything queued,
//!    makes it durable with one sync, then answers each producer.
//!    - `spool`: alert-ingest's own `Spool` (its `Appender` and writer thread,
//!      unchanged): one `write` of the group and one `fdatasync`.
//!    - `redb`: one `WriteTransaction` per group, `Durability::Immediate`.
//!    - `fjall`: one `WriteBatch` per group, then one
//!      `Database::persist(PersistMode::SyncData)`.
//!
//!    Keys for redb and fjall: a u64 counter, big-endian, assigned by the
//!    writer in commit order; value: the body.
//! 2. **Drain**: every record read back in order and deleted in batches of
//!    `--drain-batch` (the loader's batch), as the loader does: the spool
//!    with `reader.next` + `reader.loaded`; redb with a read transaction
//!    (`range`) and a write transaction deleting that range (`retain_in`);
//!    fjall with `range` + `WriteBatch::remove`. The loader keeps its
//!    position in PostgreSQL, so a delete need not be durable itself (the
//!    spool's `loaded` only unlinks segments): the stores delete without a
//!    sync per batch and sync once at the end.
//!
//! One row per store and round; rounds alternate the stores (spool, redb,
//! fjall, spool, ...) because the machine is shared and noisy.

use std::fmt::Write as _;
use std::fs;
use std::future::Future;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alert_ingest::config::SpoolConfig;
use alert_ingest::spool::{Framed, Next, Spool};
use alert_ingest::telemetry::Metrics;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use time::OffsetDateTime;
use tokio::sync::oneshot;

#[derive(Parser, Debug, Clone)]
#[command(about = "Durable appends and drain: alert-ingest's spool against redb and fjall")]
struct Args {
    /// Stores to run in each round, in this order.
    #[arg(long, value_delimiter = ',', default_value = "spool,redb,fjall")]
    stores: Vec<Store>,
    /// Rounds; each runs every store once (alternating), one row each.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Concurrent producers, each waiting for its record to be durable.
    #[arg(long, default_value_t = 50)]
    producers: usize,
    /// Bytes of each record's body (a JSON-ish webhook body).
    #[arg(long, default_value_t = 700)]
    body_bytes: usize,
    /// Length of the write phase, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Records read and deleted per batch in the drain (the loader's
    /// `spool.load_max_rows` is 1,000 alerts; 1 alert a request here).
    #[arg(long, default_value_t = 1000)]
    drain_batch: usize,
    /// Most bytes of records per group commit for redb and fjall (the
    /// spool's writer uses the same 8 MiB bound, `GROUP_MAX_BYTES`).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    group_max_bytes: usize,
    /// Parent of the per-run data directories; must be on the disk to be
    /// measured, not a tmpfs. Default: this project's target/bench-data.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep each run's data directory (for inspection) instead of removing it.
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Store {
    Spool,
    Redb,
    Fjall,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Spool => "spool",
            Store::Redb => "redb",
            Store::Fjall => "fjall",
        }
    }
}

/// What one store measured in one round.
struct Row {
    store: Store,
    round: usize,
    records: u64,
    errors: u64,
    write_elapsed: Duration,
    syncs: u64,
    latency_us: Histogram<u64>,
    /// `write_bytes` of /proc/self/io over the write phase: bytes this
    /// process caused to be sent to the block layer.
    disk_written: u64,
    du_after_write: u64,
    drained: u64,
    drain_elapsed: Duration,
    du_after_drain: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let parent = args.dir.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("bench-data")
    });
    fs::create_dir_all(&parent)?;
    let parent = parent.canonicalize()?;
    let (fs_type, source) = filesystem_of(&parent).unwrap_or(("?".into(), "?".into()));
    if fs_type == "tmpfs" || fs_type == "ramfs" {
        return Err(format!(
            "{} is on a {fs_type}: syncs cost nothing there; pass --dir on a real disk",
            parent.display()
        )
        .into());
    }
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "spool-compare: {} UTC, nproc {nproc}, data under {} ({fs_type} on {source})",
        OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        parent.display(),
    );
    println!(
        "{} producers, {}-byte bodies, {} s write phase, drain batches of {}, redb {}, fjall {}",
        args.producers,
        args.body_bytes,
        args.seconds,
        args.drain_batch,
        REDB_VERSION,
        FJALL_VERSION,
    );
    println!();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    println!("{}", header());
    for round in 1..=args.rounds {
        for &store in &args.stores {
            let dir = tempfile::Builder::new()
                .prefix(&format!("{}-", store.name()))
                .tempdir_in(&parent)?;
            let row = match store {
                Store::Spool => run_spool(&args, &rt, dir.path(), round)?,
                Store::Redb => run_redb(&args, &rt, dir.path(), round)?,
                Store::Fjall => run_fjall(&args, &rt, dir.path(), round)?,
            };
            println!("{}", format_row(&row));
            rows.push(row);
            if args.keep {
                eprintln!("kept {}", dir.keep().display());
            }
        }
    }
    println!();
    println!("all rows:");
    println!();
    println!("{}", header());
    for row in &rows {
        println!("{}", format_row(row));
    }
    Ok(())
}

const REDB_VERSION: &str = env!("REDB_VERSION");
const FJALL_VERSION: &str = env!("FJALL_VERSION");

fn header() -> String {
    [
        "| store | round | records/s | syncs/s | records/sync | p50 ms | p99 ms | p99.9 ms | drain records/s | du after write MB | du after drain MB | disk KiB written/sync | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    .join("\n")
}

fn format_row(r: &Row) -> String {
    let secs = r.write_elapsed.as_secs_f64();
    let ms = |q: f64| r.latency_us.value_at_quantile(q) as f64 / 1000.0;
    let mb = |b: u64| b as f64 / 1e6;
    let mut s = String::new();
    let _ = write!(
        s,
        "| {} | {} | {:.0} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
        r.store.name(),
        r.round,
        r.records as f64 / secs,
        r.syncs as f64 / secs,
        r.records as f64 / r.syncs.max(1) as f64,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        r.drained as f64 / r.drain_elapsed.as_secs_f64(),
        mb(r.du_after_write),
        mb(r.du_after_drain),
        r.disk_written as f64 / 1024.0 / r.syncs.max(1) as f64,
        r.errors,
    );
    s
}

// ---------------------------------------------------------------------------
// The write phase, common to every store

/// Where producers append: resolves once the record is durable.
trait Sink: Send + Sync + 'static {
    fn submit(
        &self,
        body: &[u8],
        id: i64,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static;
}

struct Produced {
    records: u64,
    errors: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

/// `args.producers` tasks appending until `args.seconds` have passed.
fn produce<S: Sink>(args: &Args, rt: &tokio::runtime::Runtime, sink: Arc<S>) -> Produced {
    let next_id = Arc::new(AtomicI64::new(1));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    rt.block_on(async {
        let tasks: Vec<_> = (0..args.producers)
            .map(|_| {
                let (sink, next_id) = (sink.clone(), next_id.clone());
                let body_bytes = args.body_bytes;
                tokio::spawn(async move {
                    let mut latency = new_histogram();
                    let (mut records, mut errors) = (0u64, 0u64);
                    let mut first_error = None;
                    while Instant::now() < deadline {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        let body = webhook_body(id as u64, body_bytes);
                        let sent = Instant::now();
                        match sink.submit(&body, id).await {
                            Ok(()) => {
                                let us = sent.elapsed().as_micros() as u64;
                                latency.saturating_record(us.max(1));
                                records += 1;
                            }
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert(e);
                                // Do not spin on a persistent failure.
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    }
                    if let Some(e) = first_error {
                        eprintln!("a producer saw {errors} errors, the first: {e}");
                    }
                    (latency, records, errors)
                })
            })
            .collect();
        let mut out = Produced {
            records: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency_us: new_histogram(),
        };
        for task in tasks {
            let (latency, records, errors) = task.await.expect("a producer panicked");
            out.latency_us.add(&latency).expect("same bounds");
            out.records += records;
            out.errors += errors;
        }
        out.elapsed = started.elapsed();
        out
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// An Alertmanager-like webhook body of exactly `len` bytes (truncated if
/// the skeleton is longer), unique per `id`, with text of ordinary
/// compressibility in its description.
fn webhook_body(id: u64, len: usize) -> Vec<u8> {
    let mut rng = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut body = format!(
        concat!(
            r#"{{"receiver":"team-{}","status":"firing","alerts":[{{"status":"firing","#,
            r#""labels":{{"alertname":"HighRequestLatency","instance":"host-{}.example.net:9100","#,
            r#""job":"node","severity":"warning"}},"annotations":{{"summary":"p99 latency above 500ms","#,
            r#""description":""#
        ),
        next() % 16,
        next() % 5000,
    );
    const WORDS: [&str; 16] = [
        "latency",
        "request",
        "above",
        "threshold",
        "for",
        "the",
        "last",
        "minutes",
        "on",
        "service",
        "api",
        "gateway",
        "upstream",
        "backend",
        "check",
        "dashboard",
    ];
    let tail = format!(
        r#""}},"startsAt":"2026-05-01T10:{:02}:{:02}.000Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"{:016x}"}}],"groupKey":"{{}}:{{alertname=\"HighRequestLatency\"}}","truncatedAlerts":0,"version":"4"}}"#,
        next() % 60,
        next() % 60,
        next(),
    );
    while body.len() + tail.len() < len {
        body.push_str(WORDS[(next() % 16) as usize]);
        body.push(' ');
    }
    body.push_str(&tail);
    let mut body = body.into_bytes();
    body.truncate(len);
    // Pad inside the description if the words overshot by a few bytes.
    body.resize(len, b' ');
    body
}

// ---------------------------------------------------------------------------
// The spool

struct SpoolSink(alert_ingest::spool::Appender);

impl Sink for SpoolSink {
    fn submit(
        &self,
        body: &[u8],
        id: i64,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let queued = self
            .0
            .append(Framed::new(body, id, OffsetDateTime::now_utc()));
        async move {
            match queued {
                Ok(synced) => match synced.await {
                    Ok(outcome) => outcome.map_err(|e| e.to_string()),
                    Err(_) => Err("the spool writer stopped".into()),
                },
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

fn run_spool(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    round: usize,
) -> Result<Row, Box<dyn std::error::Error>> {
    let metrics = Arc::new(Metrics::new());
    let config = SpoolConfig {
        dir: dir.join("spool"),
        max_bytes: 1 << 40,
        ..SpoolConfig::default()
    };
    let Spool {
        appender,
        mut reader,
        writer,
    } = Spool::open(&config, 1024, metrics.clone())?;
    let sink = Arc::new(SpoolSink(appender));
    let io_before = proc_io_write_bytes();
    let produced = produce(args, rt, sink.clone());
    let disk_written = proc_io_write_bytes().saturating_sub(io_before);
    let syncs = spool_syncs(&metrics);
    let du_after_write = du(dir);

    // The drain, as the loader does it.
    sink.0.close();
    let started = Instant::now();
    let (mut drained, mut batch_records, mut batch_bytes) = (0u64, 0u64, 0u64);
    let mut body_bytes = 0usize;
    let mut last_end = None;
    loop {
        match reader.next(Duration::from_secs(10))? {
            Next::Record(record) => {
                body_bytes += record.entry.body.len();
                drained += 1;
                batch_records += 1;
                batch_bytes += record.end.offset - record.at.offset;
                last_end = Some(record.end);
                if batch_records == args.drain_batch as u64 {
                    reader.loaded(record.end, batch_records, batch_bytes);
                    (batch_records, batch_bytes) = (0, 0);
                }
            }
            Next::Closed => break,
            Next::Idle => return Err("the spool reader waited 10 s for a record".into()),
        }
    }
    if let Some(end) = last_end.filter(|_| batch_records > 0) {
        reader.loaded(end, batch_records, batch_bytes);
    }
    let drain_elapsed = started.elapsed();
    writer.join().map_err(|_| "the spool writer panicked")?;
    check_drained(Store::Spool, produced.records, drained, body_bytes, args);
    let du_after_drain = du(dir);
    Ok(Row {
        store: Store::Spool,
        round,
        records: produced.records,
        errors: produced.errors,
        write_elapsed: produced.elapsed,
        syncs,
        latency_us: produced.latency_us,
        disk_written,
        du_after_write,
        drained,
        drain_elapsed,
        du_after_drain,
    })
}

/// Group commits the spool's writer made: the count of its
/// records-per-sync histogram.
fn spool_syncs(metrics: &Metrics) -> u64 {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("alert_ingest_spool_records_per_sync_count"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}

// ---------------------------------------------------------------------------
// redb and fjall: the same group commit, by a writer thread of ours

/// A record on its way to a store, and who waits for it.
struct Job {
    value: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

struct QueueSink(crossbeam_channel::Sender<Job>);

impl Sink for QueueSink {
    fn submit(
        &self,
        body: &[u8],
        _id: i64,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let (done, durable) = oneshot::channel();
        let queued = self
            .0
            .try_send(Job {
                value: body.to_vec(),
                done,
            })
            .map_err(|e| format!("queue: {e}"));
        async move {
            queued?;
            durable
                .await
                .map_err(|_| "the writer stopped".to_string())?
        }
    }
}

/// The writer thread: takes the first job, then everything queued behind
/// it up to `group_max_bytes`, commits them with one durable commit, then
/// answers each; until the queue is closed. Returns the store and the
/// number of commits.
fn group_commit_writer<D: Send + 'static>(
    rx: crossbeam_channel::Receiver<Job>,
    group_max_bytes: usize,
    mut db: D,
    mut commit: impl FnMut(&mut D, &[Job]) -> Result<(), String> + Send + 'static,
) -> JoinHandle<(D, u64)> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let mut syncs = 0;
            let mut group = Vec::new();
            while let Ok(first) = rx.recv() {
                let mut bytes = first.value.len();
                group.push(first);
                while bytes < group_max_bytes {
                    match rx.try_recv() {
                        Ok(job) => {
                            bytes += job.value.len();
                            group.push(job);
                        }
                        Err(_) => break,
                    }
                }
                let outcome = commit(&mut db, &group);
                if outcome.is_ok() {
                    syncs += 1;
                }
                for job in group.drain(..) {
                    let _ = job.done.send(outcome.clone());
                }
            }
            (db, syncs)
        })
        .expect("spawn the writer")
}

fn check_drained(store: Store, written: u64, drained: u64, body_bytes: usize, args: &Args) {
    let expected = written as usize * args.body_bytes;
    if drained != written || body_bytes != expected {
        eprintln!(
            "WARNING {}: {written} records acknowledged, {drained} drained ({body_bytes} body bytes, {expected} expected)",
            store.name()
        );
    }
}

const TABLE: TableDefinition<&[u8; 8], &[u8]> = TableDefinition::new("records");

fn run_redb(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    round: usize,
) -> Result<Row, Box<dyn std::error::Error>> {
    let db = redb::Database::create(dir.join("records.redb"))?;
    {
        let tx = db.begin_write()?;
        tx.open_table(TABLE)?;
        tx.commit()?;
    }
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let mut next_key = 0u64;
    let writer = group_commit_writer(rx, args.group_max_bytes, db, move |db, group| {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let mut tx = db.begin_write().map_err(|x| e(&x))?;
        tx.set_durability(redb::Durability::Immediate)
            .map_err(|x| e(&x))?;
        {
            let mut table = tx.open_table(TABLE).map_err(|x| e(&x))?;
            for job in group {
                next_key += 1;
                table
                    .insert(&next_key.to_be_bytes(), job.value.as_slice())
                    .map_err(|x| e(&x))?;
            }
        }
        tx.commit().map_err(|x| e(&x))
    });
    let io_before = proc_io_write_bytes();
    let produced = produce(args, rt, Arc::new(QueueSink(tx)));
    let disk_written = proc_io_write_bytes().saturating_sub(io_before);
    // The sink, and with it the queue's sender, is gone: the writer stops.
    let (db, syncs) = writer.join().map_err(|_| "the redb writer panicked")?;
    let du_after_write = du(dir);

    let started = Instant::now();
    let (mut drained, mut body_bytes) = (0u64, 0usize);
    let mut from = [0u8; 8];
    loop {
        let mut last = None;
        {
            let read = db.begin_read()?;
            let table = read.open_table(TABLE)?;
            for item in table.range(&from..)?.take(args.drain_batch) {
                let (key, value) = item?;
                let body = value.value().to_vec();
                body_bytes += body.len();
                drained += 1;
                last = Some(*key.value());
            }
        }
        let Some(last) = last else { break };
        let mut write = db.begin_write()?;
        // Not durable by itself: the loaded position is in PostgreSQL
        // (see the module doc); one durable commit below.
        write.set_durability(redb::Durability::None)?;
        {
            let mut table = write.open_table(TABLE)?;
            table.retain_in(&from..=&last, |_, _| false)?;
        }
        write.commit()?;
        from = (u64::from_be_bytes(last) + 1).to_be_bytes();
    }
    let mut write = db.begin_write()?;
    write.set_durability(redb::Durability::Immediate)?;
    write.commit()?;
    let drain_elapsed = started.elapsed();
    check_drained(Store::Redb, produced.records, drained, body_bytes, args);
    drop(db);
    let du_after_drain = du(dir);
    Ok(Row {
        store: Store::Redb,
        round,
        records: produced.records,
        errors: produced.errors,
        write_elapsed: produced.elapsed,
        syncs,
        latency_us: produced.latency_us,
        disk_written,
        du_after_write,
        drained,
        drain_elapsed,
        du_after_drain,
    })
}

fn run_fjall(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    round: usize,
) -> Result<Row, Box<dyn std::error::Error>> {
    let db = fjall::Database::builder(dir.join("fjall")).open()?;
    let keyspace = db.keyspace("records", fjall::KeyspaceCreateOptions::default)?;
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let mut next_key = 0u64;
    let ks = keyspace.clone();
    let writer = group_commit_writer(rx, args.group_max_bytes, db, move |db, group| {
        let mut batch = db.batch();
        for job in group {
            next_key += 1;
            batch.insert(&ks, next_key.to_be_bytes().as_slice(), job.value.as_slice());
        }
        batch.commit().map_err(|e| e.to_string())?;
        db.persist(fjall::PersistMode::SyncData)
            .map_err(|e| e.to_string())
    });
    let io_before = proc_io_write_bytes();
    let produced = produce(args, rt, Arc::new(QueueSink(tx)));
    let disk_written = proc_io_write_bytes().saturating_sub(io_before);
    let (db, syncs) = writer.join().map_err(|_| "the fjall writer panicked")?;
    let du_after_write = du(dir);

    let started = Instant::now();
    let (mut drained, mut body_bytes) = (0u64, 0usize);
    let mut from = [0u8; 8];
    loop {
        let mut keys = Vec::with_capacity(args.drain_batch);
        for guard in keyspace.range(from..).take(args.drain_batch) {
            let (key, value) = guard.into_inner()?;
            let body = value.to_vec();
            body_bytes += body.len();
            keys.push(key);
        }
        let Some(last) = keys.last() else { break };
        from = (u64::from_be_bytes(last.as_ref().try_into()?) + 1).to_be_bytes();
        drained += keys.len() as u64;
        // Written to the journal (OS buffers), not synced: see the module doc.
        let mut batch = db.batch();
        for key in keys {
            batch.remove(&keyspace, key);
        }
        batch.commit()?;
    }
    db.persist(fjall::PersistMode::SyncData)?;
    let drain_elapsed = started.elapsed();
    check_drained(Store::Fjall, produced.records, drained, body_bytes, args);
    drop(keyspace);
    drop(db);
    let du_after_drain = du(dir);
    Ok(Row {
        store: Store::Fjall,
        round,
        records: produced.records,
        errors: produced.errors,
        write_elapsed: produced.elapsed,
        syncs,
        latency_us: produced.latency_us,
        disk_written,
        du_after_write,
        drained,
        drain_elapsed,
        du_after_drain,
    })
}

// ---------------------------------------------------------------------------
// The machine

/// Bytes allocated on disk under `path`, as `du` counts them.
fn du(path: &Path) -> u64 {
    fn walk(path: &Path) -> io::Result<u64> {
        let meta = fs::symlink_metadata(path)?;
        let mut total = meta.blocks() * 512;
        if meta.is_dir() {
            for entry in fs::read_dir(path)? {
                total += walk(&entry?.path()).unwrap_or(0);
            }
        }
        Ok(total)
    }
    walk(path).unwrap_or(0)
}

/// `write_bytes` of /proc/self/io: bytes this process (every thread of it)
/// caused to be sent to the storage layer.
fn proc_io_write_bytes() -> u64 {
    fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The filesystem type and source of the mount holding `path`.
fn filesystem_of(path: &Path) -> Option<(String, String)> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let mount_point = Path::new(fields.get(4)?);
        let dash = fields.iter().position(|f| *f == "-")?;
        let (fs_type, source) = (fields.get(dash + 1)?, fields.get(dash + 2)?);
        let depth = mount_point.components().count();
        if path.starts_with(mount_point) && best.as_ref().is_none_or(|(d, ..)| depth >= *d) {
            best = Some((depth, fs_type.to_string(), source.to_string()));
        }
    }
    best.map(|(_, t, s)| (t, s))
}
