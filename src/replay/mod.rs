//! `alert-ingest replay <FILE|DIR>...`: imports captured webhook bodies (a
//! backfill, or what a capturing proxy kept while the service was away)
//! through the service's own parse → store path.
//!
//! In order: [`input`] walks the paths, reads and parses every body in
//! parallel (rayon); the notifications are sorted by their derived receipt
//! time; [`write`] writes them in that order in batches, with the batch
//! statement the workers use; a [`Summary`] tells what was stored, skipped
//! and rejected.
//!
//! Idempotent, so that a replay can be repeated or resumed after a failure:
//! - a notification's key is derived from the body, not from the clock:
//!   `received_at` is the latest `startsAt`/`endsAt` of its alerts,
//!   `request_id` a hash of its bytes, so its `notifications` row repeats;
//! - a version of an episode no newer than what the database held before
//!   this replay reached the episode is skipped: the write's "last delivery
//!   wins" would otherwise rewind an episode replayed a second time (resolved
//!   → firing → resolved, two more events), and a backfill never overrides
//!   what the service stored live.

mod input;
mod summary;
mod write;

pub use summary::{Rejected, Summary};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use time::OffsetDateTime;

use crate::config::Config;
use crate::model::{Interner, Webhook};
use crate::retention::Retention;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

/// One captured notification, parsed, with the identity that makes a
/// replay of it land on the same rows.
pub struct Captured {
    pub source: Source,
    pub webhook: Webhook,
    /// The latest `startsAt` or `endsAt` of its alerts (microseconds, as
    /// the parser truncates them): a notification is sent no earlier than
    /// the newest instant it reports.
    pub received_at: OffsetDateTime,
    /// FNV-1a 64 of the body's bytes (surrounding whitespace trimmed, so a
    /// body has the same key in a `.json` file and in a line of a `.jsonl`).
    pub request_id: i64,
}

/// Where a body was read: a file, and for JSON lines its line (from 1).
/// Orders by path, then line: the tie-break between equal receipt times.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub path: Arc<Path>,
    pub line: Option<usize>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// Why a replay could not run at all (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A path of the command line cannot be read or listed.
    #[error("{}: {source}", path.display())]
    Path {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[from] StoreError),
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(std::io::Error),
}

impl ReplayError {
    /// The command line was wrong, rather than the database or the machine.
    pub fn is_usage(&self) -> bool {
        matches!(self, ReplayError::Path { .. })
    }
}

/// Replays every body under `paths`; see the module doc.
pub fn run(config: &Config, paths: &[PathBuf]) -> Result<Summary, ReplayError> {
    let files = input::files(paths)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReplayError::Runtime)?;
    let store = Store::dedicated(&config.database)?;
    runtime.block_on(store.migrate())?;
    let interner = Interner::new(config.interner.capacity);
    let (captured, mut summary) = read(config, &interner, &files);
    let writer = write::Writer {
        store: &store,
        runtime: &runtime,
        interner: &interner,
        max_rows: config.batch.max_rows,
        max_attempts: config.database.max_attempts,
        progress: progress_bar(summary.alerts, "writing", "{pos}/{len} alerts"),
    };
    write(&writer, &captured, &mut summary);
    // Backfilled rows older than today landed in the default partitions:
    // file them into partitions of their own (those within retention).
    let retention = Retention::new(
        store.clone(),
        config.retention.clone(),
        Arc::new(Metrics::new()),
    );
    if let Err(e) = runtime.block_on(retention.prepare()) {
        tracing::warn!(error = %e, "cannot file the replayed rows into time partitions yet; the service's next retention run will");
    }
    store.close();
    Ok(summary)
}

/// Reads and parses in parallel, then sorts into writing order.
fn read(config: &Config, interner: &Interner, files: &[PathBuf]) -> (Vec<Captured>, Summary) {
    let started = Instant::now();
    let progress = progress_bar(files.len() as u64, "reading", "{pos}/{len} files");
    let reader = input::Reader {
        interner,
        limits: &config.limits,
        max_body_bytes: config.server.max_body_bytes,
        progress: &progress,
    };
    let (mut captured, mut rejected) = (Vec::new(), Vec::new());
    for read in reader.read_all(files) {
        match read {
            Ok(notification) => captured.push(notification),
            Err(rejection) => rejected.push(rejection),
        }
    }
    progress.finish_and_clear();
    captured.sort_by(|a, b| (a.received_at, &a.source).cmp(&(b.received_at, &b.source)));
    let summary = Summary::new(files.len(), &captured, rejected);
    tracing::info!(
        files = files.len(),
        notifications = summary.notifications,
        elapsed = ?started.elapsed(),
        "read and parsed"
    );
    (captured, summary)
}

/// Writes the sorted notifications, and logs how long it took.
fn write(writer: &write::Writer<'_>, captured: &[Captured], summary: &mut Summary) {
    let started = Instant::now();
    writer.write_all(captured, summary);
    writer.progress.finish_and_clear();
    tracing::info!(alerts = summary.alerts, elapsed = ?started.elapsed(), "written");
}

/// A bar on stderr for a person watching. indicatif's stderr target draws
/// nothing when stderr is not a terminal (a log file, CI), where it would
/// only be noise (`tests/replay.rs` checks).
fn progress_bar(len: u64, stage: &'static str, counts: &str) -> ProgressBar {
    let template = format!("{{prefix:>7}} [{{bar:40}}] {counts} ({{eta}})");
    let style = ProgressStyle::with_template(&template)
        .expect("a valid template")
        .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        .with_style(style)
        .with_prefix(stage)
}
