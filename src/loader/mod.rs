//! The loader (`durability: spool`): reads the spool in order and writes
//! it to PostgreSQL behind the answers, with the batch statement the
//! database mode's workers use (same idempotence, same order of receipt).
//!
//! One thread, one connection, one batch at a time, in spool order: a later
//! delivery of an episode is never committed before an earlier one, and two
//! deliveries of an episode are never in one batch (each keeps its place
//! in the order of receipt). Each
//! batch holds whole requests (up to `spool.load_max_rows` alerts, or one
//! larger request) and carries the spool position after its last request, written
//! in the same transaction as its rows: after a crash, loading resumes
//! exactly there, neither losing nor repeating a request.
//!
//! A batch that fails for a reason that may pass (PostgreSQL down, a lost
//! connection) is written again, backing off, for as long as it takes: it
//! was acknowledged. One that PostgreSQL refuses for good is written again
//! one request at a time, each read back from the spool; a request refused
//! alone goes, whole, into `rejected_notifications` with the reason (and
//! the position past it), and the requests behind it are loaded.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::runtime::Runtime;

use crate::config::LimitsConfig;
use crate::model::{Delivery, Interner};
use crate::parse::{self, ParseError, Scratch};
use crate::spool::{self, Next, Position, Reader};
use crate::store::{ErrorClass, Part, Rejection, Rows, Store, StoreError};
use crate::telemetry::Metrics;
use crate::workers::Batch;

/// How long the loader waits for a record before it looks at its stop flag.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Pause before writing a failed batch again: grows by this per attempt,
/// up to `RETRY_BACKOFF_MAX`.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// While PostgreSQL stays down, one warning per this many failed attempts.
const LOG_EVERY: u32 = 20;
/// How often a pause looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(10);

/// What the loader shares with the rest of the service.
pub struct Shared {
    pub interner: Arc<Interner>,
    pub metrics: Arc<Metrics>,
    /// Set once the schema is current: nothing is read or written before.
    pub schema_ready: Arc<AtomicBool>,
}

/// The running loader.
pub struct Loader {
    /// `true` when it stopped with everything loaded.
    thread: JoinHandle<bool>,
    stop: Arc<AtomicBool>,
}

impl Loader {
    /// Starts loading `reader`'s spool through `store` (a dedicated
    /// connection), in batches of up to `max_rows` alerts, each waiting up
    /// to `linger` to fill.
    pub fn spawn(
        reader: Reader,
        store: Store,
        shared: Shared,
        max_rows: usize,
        linger: Duration,
    ) -> std::io::Result<Loader> {
        let stop = Arc::new(AtomicBool::new(false));
        let load = Load {
            spool_id: reader.spool_id().to_string(),
            reader,
            store,
            shared,
            max_rows,
            linger,
            limits: LimitsConfig::for_loading(),
            scratch: Scratch::default(),
            stop: stop.clone(),
            carry: None,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        };
        let thread = std::thread::Builder::new()
            .name("spool-loader".into())
            .spawn(move || load.run())?;
        Ok(Loader { thread, stop })
    }

    /// Waits until everything spooled is loaded (the spool's writer must
    /// have been closed), or until `deadline`: then the loader stops after
    /// its current write, and what it has not loaded stays in the spool for
    /// the next start. `true` when everything was loaded.
    pub fn finish(self, deadline: Instant) -> bool {
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stop.store(true, Ordering::Relaxed);
        if self.thread.is_finished() {
            self.thread.join().unwrap_or(false)
        } else {
            false
        }
    }
}

/// A spooled request, parsed, and where it is in the spool.
struct Loaded {
    delivery: Delivery,
    at: Position,
    end: Position,
}

impl AsRef<Delivery> for Loaded {
    fn as_ref(&self) -> &Delivery {
        &self.delivery
    }
}

impl AsMut<Delivery> for Loaded {
    fn as_mut(&mut self) -> &mut Delivery {
        &mut self.delivery
    }
}

/// A record read from the spool, parsed or not.
enum Item {
    Parsed(Loaded),
    /// Passed the parser when it arrived and no longer does (a newer
    /// version's parser): kept as a rejection, never dropped.
    Unparsable(spool::Record, ParseError),
}

/// Why loading stopped.
enum Stopped {
    /// The spool's writer has closed and everything was loaded.
    Drained,
    /// Asked to stop (the shutdown grace ran out).
    Asked,
}

struct Load {
    reader: Reader,
    spool_id: String,
    store: Store,
    shared: Shared,
    max_rows: usize,
    linger: Duration,
    limits: LimitsConfig,
    scratch: Scratch,
    stop: Arc<AtomicBool>,
    /// A request read but not yet placed: it did not fit the last batch.
    carry: Option<Item>,
    runtime: Runtime,
}

impl Load {
    /// `true` when it stopped with everything loaded.
    fn run(mut self) -> bool {
        if let Err(stopped) = self.resume() {
            return matches!(stopped, Stopped::Drained);
        }
        loop {
            let step = std::panic::catch_unwind(AssertUnwindSafe(|| self.step()));
            match step {
                Ok(Ok(())) => {}
                Ok(Err(stopped)) => return matches!(stopped, Stopped::Drained),
                Err(_) => {
                    // A bug must not stop loading while the spool goes on
                    // acknowledging: what was not committed is read again.
                    tracing::error!(
                        "loading a batch panicked; its requests are read from the spool again"
                    );
                    self.carry = None;
                    self.reader.rewind();
                    if self.pause(RETRY_BACKOFF_MAX).is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// Loads the next batch, or rejects the next request if it no longer
    /// parses.
    fn step(&mut self) -> Result<(), Stopped> {
        match self.next_item()? {
            Item::Parsed(first) => {
                let batch = self.collect(first);
                self.load(batch)
            }
            Item::Unparsable(record, e) => {
                let message = format!("the body no longer parses: {e}");
                let key = (record.entry.received_at, record.entry.request_id);
                self.reject(record.at, record.end, key, None, &message)
            }
        }
    }

    /// Waits for the schema, reads where loading stopped last, and skips
    /// what was loaded already.
    fn resume(&mut self) -> Result<(), Stopped> {
        while !self.shared.schema_ready.load(Ordering::Acquire) {
            self.pause(IDLE_WAIT)?;
        }
        let mut attempt = 0;
        let loaded = loop {
            attempt += 1;
            let read = self
                .runtime
                .block_on(self.store.loaded_position(&self.spool_id));
            match read {
                Ok(position) => break position,
                Err(e) => self.failed(&e, attempt)?,
            }
        };
        let loaded = loaded.map(|(segment, offset)| Position {
            segment: segment as u64,
            offset: offset as u64,
        });
        if let Err(e) = self.reader.skip_loaded(loaded) {
            tracing::error!(error = %e, "cannot read the spool");
        }
        tracing::info!(spool_id = %self.spool_id, from = ?self.reader.position(), "loading the spool");
        Ok(())
    }

    /// The next request in the spool, waiting for one.
    fn next_item(&mut self) -> Result<Item, Stopped> {
        if let Some(item) = self.carry.take() {
            return Ok(item);
        }
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Stopped::Asked);
            }
            match self.reader.next(IDLE_WAIT) {
                Ok(Next::Record(record)) => return Ok(self.parse(record)),
                Ok(Next::Idle) => self.reader.set_oldest_unloaded(None),
                Ok(Next::Closed) => return Err(Stopped::Drained),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the spool");
                    self.pause(RETRY_BACKOFF_MAX)?;
                }
            }
        }
    }

    fn parse(&mut self, mut record: spool::Record) -> Item {
        let entry = &mut record.entry;
        let parsed = parse::parse_at(
            &mut entry.body,
            &mut self.scratch,
            &self.shared.interner,
            &self.limits,
            entry.received_at,
        );
        match parsed {
            Ok(webhook) => Item::Parsed(Loaded {
                delivery: Delivery::new(webhook, entry.received_at, entry.request_id),
                at: record.at,
                end: record.end,
            }),
            Err(e) => Item::Unparsable(record, e),
        }
    }

    /// A batch beginning with `first`: the whole requests queued behind it,
    /// or synced within `spool.load_linger` of it, while they fit in
    /// `max_rows` alerts and change none of its episodes.
    /// The first is taken whole whatever its size, so that a request is one
    /// transaction.
    fn collect(&mut self, first: Loaded) -> Batch<Loaded> {
        let first_alerts = first.delivery.alert_count;
        self.reader
            .set_oldest_unloaded(Some(first.delivery.received_at));
        let mut batch = Batch::new(self.max_rows.max(first_alerts));
        batch.add(first);
        let linger_until = Instant::now() + self.linger;
        while !batch.is_full() {
            let wait = linger_until.saturating_duration_since(Instant::now());
            let record = match self.reader.next(wait) {
                Ok(Next::Record(record)) => record,
                _ => break,
            };
            match self.parse(record) {
                Item::Parsed(next) if self.fits(&batch, &next) => batch.add(next),
                item => {
                    self.carry = Some(item);
                    break;
                }
            }
        }
        batch
    }

    /// Whether `next` joins `batch`: whole, and with no episode the batch
    /// holds (each delivery keeps its place in the order of receipt).
    fn fits(&self, batch: &Batch<Loaded>, next: &Loaded) -> bool {
        next.delivery.alert_count <= batch.room() && !batch.holds_an_episode_of(next)
    }

    /// Writes the batch; if PostgreSQL refuses it, each of its requests
    /// on its own.
    fn load(&mut self, batch: Batch<Loaded>) -> Result<(), Stopped> {
        match self.commit(&batch, Writing::First) {
            Ok(()) => Ok(()),
            Err(WriteFailed::Refused { .. }) => {
                let spans: Vec<(Position, Position)> =
                    batch.jobs().map(|l| (l.at, l.end)).collect();
                spans
                    .into_iter()
                    .try_for_each(|(at, end)| self.load_alone(at, end))
            }
            Err(WriteFailed::Stopped(stopped)) => Err(stopped),
        }
    }

    /// After a batch was refused: the request at `at`, read back from the
    /// spool and written on its own; refused again, it is rejected.
    fn load_alone(&mut self, at: Position, end: Position) -> Result<(), Stopped> {
        let entry = self.reread(at)?;
        let key = (entry.received_at, entry.request_id);
        let record = spool::Record { at, end, entry };
        let loaded = match self.parse(record) {
            Item::Parsed(loaded) => loaded,
            Item::Unparsable(_, e) => {
                let message = format!("the body no longer parses: {e}");
                return self.reject(at, end, key, None, &message);
            }
        };
        let mut batch = Batch::new(loaded.delivery.alert_count.max(1));
        batch.add(loaded);
        match self.commit(&batch, Writing::AfterRefusal) {
            Ok(()) => Ok(()),
            Err(WriteFailed::Refused { sqlstate, message }) => {
                self.reject(at, end, key, Some(&sqlstate), &message)
            }
            Err(WriteFailed::Stopped(stopped)) => Err(stopped),
        }
    }

    /// Writes `batch` with the spool position after it until it commits
    /// (or is refused); then the spool learns of it.
    fn commit(&mut self, batch: &Batch<Loaded>, writing: Writing) -> Result<(), WriteFailed> {
        let (end, records, bytes) = extent(batch);
        let metrics = &self.shared.metrics;
        metrics.alerts_unchanged.inc_by(batch.unchanged as u64);
        let mut rows = batch.rows(&self.shared.interner, Part::Whole);
        rows.set_loaded_position(self.spool_id.clone(), end.segment as i64, end.offset as i64);
        if writing == Writing::AfterRefusal {
            // Its notification may be what was refused: stored already (by
            // a replay of this spool, say).
            rows.set_may_be_stored();
        }
        self.write(&mut rows)?;
        drop(rows);
        self.loaded(end, records, bytes);
        Ok(())
    }

    /// The request at `at` read back from the spool (it was read a moment
    /// ago: if the disk fails now, loading cannot go on past it without
    /// losing it, so it waits).
    fn reread(&self, at: Position) -> Result<spool::Entry, Stopped> {
        loop {
            match self.reader.reread(at) {
                Ok(entry) => return Ok(entry),
                Err(e) => {
                    tracing::error!(error = %e, ?at, "cannot read a spooled request back");
                    self.pause(RETRY_BACKOFF_MAX)?;
                }
            }
        }
    }

    /// Writes and commits `rows`, again and again while the failure may
    /// pass: the requests were acknowledged.
    fn write(&self, rows: &mut Rows<'_>) -> Result<(), WriteFailed> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            match self.runtime.block_on(self.store.write(rows)) {
                Ok(written) => {
                    let (alerts, notifications) = (rows.alert_count(), rows.notification_count());
                    let took = started.elapsed();
                    (self.shared.metrics).committed(alerts, notifications, &written, took);
                    if attempt > 1 {
                        tracing::info!(attempt, "loading the spool again");
                    }
                    return Ok(());
                }
                Err(StoreError::Data {
                    sqlstate, message, ..
                }) => {
                    self.shared.metrics.db_error(ErrorClass::Data);
                    return Err(WriteFailed::Refused { sqlstate, message });
                }
                Err(e) => {
                    self.failed(&e, attempt).map_err(WriteFailed::Stopped)?;
                    // It may have committed before the failure reached us.
                    rows.set_may_be_stored();
                }
            }
        }
    }

    /// Keeps the request at `at` in `rejected_notifications` and moves the
    /// position past it, in one transaction.
    fn reject(
        &mut self,
        at: Position,
        end: Position,
        (received_at, request_id): (OffsetDateTime, i64),
        sqlstate: Option<&str>,
        message: &str,
    ) -> Result<(), Stopped> {
        // The body as received: the parser rewrote the copy it was given.
        let body = self.reread(at)?.body;
        let rejection = Rejection {
            received_at,
            request_id,
            spool_id: &self.spool_id,
            segment: at.segment as i64,
            offset: at.offset as i64,
            sqlstate,
            message,
            body: &body,
            next_segment: end.segment as i64,
            next_offset: end.offset as i64,
        };
        let mut attempt = 0;
        while let Err(e) = self.runtime.block_on(self.store.reject(&rejection)) {
            attempt += 1;
            self.failed(&e, attempt)?;
        }
        self.shared.metrics.rejected_notifications.inc();
        tracing::warn!(
            request_id,
            sqlstate,
            reason = message.escape_debug().to_string(),
            "a spooled request was refused by PostgreSQL; kept in rejected_notifications"
        );
        self.loaded(end, 1, end.offset - at.offset);
        Ok(())
    }

    /// Everything before `end` is committed: `records` requests of `bytes`.
    fn loaded(&mut self, end: Position, records: u64, bytes: u64) {
        self.reader.loaded(end, records, bytes);
        let next = match &self.carry {
            Some(Item::Parsed(l)) => Some(l.delivery.received_at),
            Some(Item::Unparsable(r, _)) => Some(r.entry.received_at),
            None => None,
        };
        self.reader.set_oldest_unloaded(next);
    }

    /// A write failed for a reason that may pass: counted, logged (the
    /// first time and every `LOG_EVERY`th), and paused for.
    fn failed(&self, e: &StoreError, attempt: u32) -> Result<(), Stopped> {
        self.shared.metrics.db_error(e.class());
        if attempt == 1 || attempt.is_multiple_of(LOG_EVERY) {
            tracing::warn!(error = %e, attempt, "loading the spool into PostgreSQL failed; trying again");
        }
        self.pause((RETRY_BACKOFF * attempt).min(RETRY_BACKOFF_MAX))
    }

    /// Sleeps `pause`, unless asked to stop meanwhile.
    fn pause(&self, pause: Duration) -> Result<(), Stopped> {
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Stopped::Asked);
            }
            std::thread::sleep(STOP_CHECK.min(until - Instant::now()));
        }
        Ok(())
    }
}

/// Whether a batch is written for the first time, or again, request by
/// request, after PostgreSQL refused it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writing {
    First,
    AfterRefusal,
}

/// Why a write did not commit.
enum WriteFailed {
    /// PostgreSQL refused the data (SQLSTATE class 22, 23 or 54).
    Refused {
        sqlstate: String,
        message: String,
    },
    Stopped(Stopped),
}

/// Where a batch ends in the spool, its requests and their bytes.
fn extent(batch: &Batch<Loaded>) -> (Position, u64, u64) {
    let (mut end, mut records, mut bytes) = (
        Position {
            segment: 0,
            offset: 0,
        },
        0,
        0,
    );
    for loaded in batch.jobs() {
        end = loaded.end;
        records += 1;
        bytes += loaded.end.offset - loaded.at.offset;
    }
    (end, records, bytes)
}
