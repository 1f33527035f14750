//! Parse-stage benchmarks: simd-json in place plus validation and interning
//! (`parse/…`), the fingerprint computed (`fingerprint/…`), and interning
//! (`intern/…`). Reference figures and the
//! machine: benches/README.md.

mod common;

/// As in the service (src/main.rs), so that allocation costs are the real ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;

use alert_ingest::config::LimitsConfig;
use alert_ingest::model::{Fingerprint, Interner};
use alert_ingest::parse::{parse, Scratch};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn parse_bodies(c: &mut Criterion) {
    let interner = Interner::new(100_000);
    let limits = LimitsConfig::default();
    let mut group = c.benchmark_group("parse");
    let mut bodies = common::fixtures();
    for n in [1, 10, 100] {
        bodies.push((format!("synthetic_{n}_alerts"), common::webhook(n, 0)));
    }
    for (name, body) in bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        let mut scratch = Scratch::default();
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || body.clone(),
                |buf| parse(buf, &mut scratch, &interner, &limits).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn fingerprint(c: &mut Criterion) {
    let interner = Interner::new(1000);
    let webhook = parse(
        &mut common::webhook(1, 0),
        &mut Scratch::default(),
        &interner,
        &LimitsConfig::default(),
    )
    .unwrap();
    let alert = &webhook.alerts[0];
    let labels: Vec<(&str, &str)> = alert
        .labels
        .iter()
        .map(|p| (interner.resolve(&p.name), interner.resolve(&p.value)))
        .collect();
    let mut group = c.benchmark_group("fingerprint");
    group.throughput(Throughput::Elements(1));
    group.bench_function("computed_8_labels", |b| {
        b.iter(|| Fingerprint::of_sorted(black_box(&labels).iter().copied()))
    });
    group.finish();
}

fn intern(c: &mut Criterion) {
    let mut group = c.benchmark_group("intern");
    group.throughput(Throughput::Elements(1));
    let interner = Interner::new(1);
    interner.intern("alertname");
    group.bench_function("known_string", |b| {
        b.iter(|| interner.intern(black_box("alertname")))
    });
    group.bench_function("past_capacity", |b| {
        b.iter(|| interner.intern(black_box("worker-7d9f8c6b5-x2x9k")))
    });
    group.finish();
}

criterion_group!(benches, parse_bodies, fingerprint, intern);
criterion_main!(benches);
