//! Pipeline benchmarks without a database: encoding a batch for PostgreSQL
//! (`encode/…`) and the whole in-process request path — the hyper service
//! called as a value, queue, a worker, group commit — with the store
//! replaced by a no-op (`request/…`). Reference figures: benches/README.md.

mod common;

/// As in the service (src/main.rs), so that allocation costs are the real ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_ingest::config::{Config, DatabaseConfig, LimitsConfig};
use alert_ingest::history::History;
use alert_ingest::ingress::{new_pool, Auth, Durable, Ingress, Reloadable};
use alert_ingest::model::Interner;
use alert_ingest::parse::{parse, Scratch};
use alert_ingest::queue::{Job, Queue};
use alert_ingest::store::{BatchSink, Part, Rows, Store, StoreError, Written};
use alert_ingest::telemetry::Metrics;
use alert_ingest::workers::{Batch, Settings, Shared, Workers};
use arc_swap::ArcSwap;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http_body_util::Full;
use hyper::Request;

/// Commits instantly: everything but PostgreSQL is measured.
struct Discard;

impl BatchSink for Discard {
    async fn write_batch<'a>(&'a self, rows: &'a Rows<'_>) -> Result<Written, StoreError> {
        Ok(Written {
            changed: rows.alert_count() as u64,
            ..Written::default()
        })
    }
}

fn encode(c: &mut Criterion) {
    let interner = Interner::new(100_000);
    let mut group = c.benchmark_group("encode");
    for n in [1, 10, 100] {
        let webhook = parse(
            &mut common::webhook(n, 0),
            &mut Scratch::default(),
            &interner,
            &LimitsConfig::default(),
        )
        .unwrap();
        let mut batch = Batch::<Job>::new(100);
        let deadline = Instant::now() + Duration::from_secs(3600);
        batch.add(Job::new(webhook, time::OffsetDateTime::now_utc(), deadline).0);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("batch_{n}_alerts"), |b| {
            b.iter(|| batch.rows(&interner, Part::Whole).alert_count())
        });
    }
    group.finish();
}

fn request_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ingress = runtime.block_on(ingress_with_discard());
    let seed = AtomicU64::new(1);
    let mut group = c.benchmark_group("request");
    for n in [1, 10, 100] {
        group.throughput(Throughput::Elements(n as u64));
        let repeated = Bytes::from(common::webhook(n, 0));
        group.bench_function(format!("repeat_{n}_alerts"), |b| {
            b.to_async(&runtime).iter_batched(
                || repeated.clone(),
                |body| post(&ingress, body),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("unique_{n}_alerts"), |b| {
            b.to_async(&runtime).iter_batched(
                || Bytes::from(common::webhook(n, seed.fetch_add(1, Ordering::Relaxed))),
                |body| post(&ingress, body),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

async fn post(ingress: &Ingress, body: Bytes) {
    let request = Request::post("/webhook")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let response = ingress.handle(request).await;
    assert_eq!(response.status(), 200);
}

async fn ingress_with_discard() -> Ingress {
    let config = Config::default();
    let interner = Arc::new(Interner::new(config.interner.capacity));
    let metrics = Arc::new(Metrics::new());
    let (queue, rx) = Queue::bounded(config.queue.capacity);
    let shared = Arc::new(Shared {
        interner: interner.clone(),
        metrics: metrics.clone(),
    });
    let settings = Settings::new(&config.batch, &DatabaseConfig::default());
    // The worker runs for the life of the benchmark process.
    std::mem::forget(Workers::spawn(settings, rx, shared, vec![Discard]).unwrap());
    Ingress {
        durable: Durable::Database(Arc::new(queue)),
        store: Store::new(&config.database).unwrap(),
        history: History::new(Store::reader(&config.database, &config.history).unwrap()),
        interner,
        metrics,
        reloadable: ArcSwap::from_pointee(Reloadable {
            auth: Auth::default(),
            limits: config.limits,
        }),
        buffers: new_pool(),
        config: config.server,
        schema_ready: Arc::new(AtomicBool::new(true)),
    }
}

criterion_group!(benches, encode, request_path);
criterion_main!(benches);
