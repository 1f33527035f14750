//! The spool (`durability: spool`): a local append-only log between parse
//! and the loader. A webhook request is answered 200 once its body is in
//! the log *and synced*; the [`loader`](crate::loader) then writes it to
//! PostgreSQL, in order, behind the answer. So neither a slow commit nor a
//! database outage reaches Alertmanager.
//!
//! - **Records** ([`record`]): the raw body, its request id and receipt
//!   time, framed with a length and a CRC32C.
//! - **Segments** ([`segment`]): numbered files of records; a new one is
//!   begun past `spool.segment_bytes`, and one fully loaded is deleted whole.
//! - **Group commit** ([`writer`]): one thread appends every record queued
//!   since its last sync, then one `fdatasync` covers them all, then every
//!   request it covers is answered. Nothing is acknowledged from memory.
//!   A failed write or sync is never retried on the same bytes (PostgreSQL's
//!   "fsyncgate": the kernel may have dropped the dirty pages and report the
//!   next fsync clean): those requests get 503, the segment is cut back to
//!   its last good sync, and the writer goes on in a new segment.
//! - **Reading** ([`reader`]): the loader reads records in order, never
//!   past the last sync; the position it has loaded is stored in PostgreSQL
//!   in the same transaction as the rows (see `loader`).
//! - **Recovery** (`Spool::open`): every segment is checked record by
//!   record; a torn or corrupted tail is cut at the last valid record, the
//!   bytes cut are kept in `corrupt/` and logged. A directory that is locked
//!   by another process, holds another spool's segments, or was written by
//!   an incompatible version is refused, naming it.
//!
//! The design follows Kafka's log segments and Vector's disk buffer (v2):
//! see `GUIDE.md` §4.

mod dir;
pub mod reader;
pub mod record;
pub mod segment;
mod writer;

pub use reader::{Next, Reader, Record};
pub use record::{Entry, Framed};

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::config::SpoolConfig;
use crate::model::unix_micros;
use crate::queue::{Queue, QueueError};
use crate::telemetry::Metrics;
use dir::Dir;
use segment::{Header, HEADER_LEN};
use writer::{Append, Writer};

/// How long after a failed write or sync `/readyz` answers 503 (unless an
/// append succeeds meanwhile): long enough to steer traffic elsewhere,
/// short enough that a load balancer sends some back to find out whether
/// the disk has recovered (nothing else would).
const FAILING_HOLD: Duration = Duration::from_secs(5);

/// Names a spool: the key of its loaded position in PostgreSQL.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpoolId(pub [u8; 16]);

impl SpoolId {
    fn random() -> std::io::Result<SpoolId> {
        let mut id = [0; 16];
        File::open("/dev/urandom")?.read_exact(&mut id)?;
        Ok(SpoolId(id))
    }

    fn parse_hex(s: &str) -> Option<SpoolId> {
        let value = u128::from_str_radix(s, 16).ok()?;
        (s.len() == 32).then(|| SpoolId(value.to_be_bytes()))
    }
}

impl fmt::Display for SpoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", u128::from_be_bytes(self.0))
    }
}

impl fmt::Debug for SpoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpoolId({self})")
    }
}

/// A place in the log: a segment and a byte offset in it. Positions order
/// as the records do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Why the spool cannot be opened; the service does not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("spool {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool dir {} is in use by another process (pid {holder}); every instance needs a spool dir of its own", dir.display())]
    Locked { dir: PathBuf, holder: String },
    #[error("spool dir {} is not an alert-ingest spool: {why}", dir.display())]
    NotASpool { dir: PathBuf, why: String },
    #[error("spool dir {} was written by an incompatible version of alert-ingest (spool format {found}; this build reads format {})", dir.display(), segment::FORMAT_VERSION)]
    Incompatible { dir: PathBuf, found: u32 },
    #[error("spool dir {} holds {file}, a segment of spool {found}, not of this spool ({ours}): another instance's data; load it with `alert-ingest replay` instead", dir.display())]
    Foreign {
        dir: PathBuf,
        file: String,
        found: SpoolId,
        ours: SpoolId,
    },
}

impl OpenError {
    fn io(path: &Path, source: std::io::Error) -> OpenError {
        OpenError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Why a request was not made durable; every one is a 503. Cloned to
/// every request of a failed sync, so the I/O error is shared, not copied
/// into text (its kind and OS code stay readable through `source()`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The segment files take `spool.max_bytes`: the loader is behind.
    #[error("the spool is full ({max_bytes} bytes, spool.max_bytes); the loader is behind")]
    Full { max_bytes: u64 },
    /// The writer's queue is full, or closed for shutdown.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Writing or syncing failed (a full disk, an I/O error); the records
    /// were not made durable and will never be loaded.
    #[error("the spool could not be written: {0}")]
    Write(#[source] Arc<std::io::Error>),
    /// The writer thread is gone (it panicked): nothing more is synced.
    #[error("the spool could not be written: the spool writer stopped")]
    WriterStopped,
}

/// The loader's view of the log, and the writer's: which segments exist,
/// how far each is synced, whether more may come.
struct Log {
    segments: BTreeMap<u64, Segment>,
    /// The writer has stopped: nothing is appended after what is synced.
    closed: bool,
    /// The reader found damage in the segment being written: the writer
    /// begins a new one, so that the damaged one can be cut.
    roll_requested: bool,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    /// Records end here, as far as synced and valid: never read past it.
    /// Also what the segment counts against `spool.max_bytes` (the zeros
    /// prepared ahead of its records are not counted).
    end: u64,
    /// No more records will be appended.
    sealed: bool,
}

/// What the writer, the reader and the request handlers share.
struct Shared {
    dir: Dir,
    max_bytes: u64,
    /// Segment files on disk, plus appends queued and not yet written.
    bytes: AtomicU64,
    /// Records synced and not yet loaded, and their bytes.
    pending_records: AtomicU64,
    pending_bytes: AtomicU64,
    /// Receipt time (µs) of the oldest record not yet loaded; `i64::MIN`
    /// when there is none.
    oldest_unloaded_us: AtomicI64,
    /// When the last append failed (a full disk, an I/O error), in µs since
    /// the epoch; `i64::MIN` once one has succeeded since.
    failed_at_us: AtomicI64,
    /// An append was refused for want of room, and none has been freed since.
    full: AtomicBool,
    log: Mutex<Log>,
    /// Rung when records are synced, a segment is sealed, or the writer stops.
    grown: Condvar,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn failing(&self) -> bool {
        let failed_at = self.failed_at_us.load(Ordering::Relaxed);
        let now = unix_micros(OffsetDateTime::now_utc());
        failed_at != i64::MIN && now.saturating_sub(failed_at) < FAILING_HOLD.as_micros() as i64
    }

    fn release(&self, bytes: u64) {
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.full.store(false, Ordering::Relaxed);
    }
}

/// An open spool: the handle request handlers append through, the reader
/// the loader reads through, and the writer's thread.
pub struct Spool {
    pub appender: Appender,
    pub reader: Reader,
    pub writer: JoinHandle<()>,
}

impl Spool {
    /// Opens (or creates) the spool in `config.dir`, recovers it (see the
    /// module doc) and starts its writer, whose queue holds `capacity`
    /// requests.
    pub fn open(
        config: &SpoolConfig,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Spool, OpenError> {
        let started = Instant::now();
        let dir = Dir::open(&config.dir)?;
        let recovered = recover(&dir, &metrics)?;
        let next = recovered.segments.keys().last().map_or(1, |n| n + 1);
        let file = segment::prepare(&dir.path, &dir.id, next, config.segment_bytes)
            .and_then(|file| segment::install(&dir.path, next).map(|()| file))
            .map_err(|e| OpenError::io(&segment::path(&dir.path, next), e))?;
        let mut segments = recovered.segments;
        segments.insert(
            next,
            Segment {
                end: HEADER_LEN,
                sealed: false,
            },
        );
        let bytes = segments.values().map(|s| s.end).sum();
        tracing::info!(
            dir = %dir.path.display(),
            spool_id = %dir.id,
            segments = segments.len() - 1,
            records = recovered.records,
            bytes,
            elapsed = ?started.elapsed(),
            "spool opened; records not yet loaded are loaded once PostgreSQL answers"
        );
        let shared = Arc::new(Shared {
            dir,
            max_bytes: config.max_bytes,
            bytes: AtomicU64::new(bytes),
            pending_records: AtomicU64::new(recovered.records),
            pending_bytes: AtomicU64::new(recovered.record_bytes),
            oldest_unloaded_us: AtomicI64::new(recovered.oldest.map_or(i64::MIN, unix_micros)),
            failed_at_us: AtomicI64::new(i64::MIN),
            full: AtomicBool::new(false),
            log: Mutex::new(Log {
                segments,
                closed: false,
                roll_requested: false,
            }),
            grown: Condvar::new(),
            metrics,
        });
        let (queue, rx) = Queue::bounded(capacity);
        let writer = Writer::new(shared.clone(), rx, file, next, config.segment_bytes);
        let writer = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| OpenError::io(&config.dir, e))?;
        Ok(Spool {
            appender: Appender {
                shared: shared.clone(),
                queue,
            },
            reader: Reader::new(shared),
            writer,
        })
    }
}

/// What recovery found.
struct Recovered {
    segments: BTreeMap<u64, Segment>,
    records: u64,
    record_bytes: u64,
    oldest: Option<OffsetDateTime>,
}

/// Checks every segment, cutting damage off; see the module doc.
fn recover(dir: &Dir, metrics: &Metrics) -> Result<Recovered, OpenError> {
    let mut recovered = Recovered {
        segments: BTreeMap::new(),
        records: 0,
        record_bytes: 0,
        oldest: None,
    };
    dir.remove_prepared()?;
    let numbers = dir.segments()?;
    for (i, &number) in numbers.iter().enumerate() {
        let path = segment::path(&dir.path, number);
        let io = |e| OpenError::io(&path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match segment::read_header(&mut file).map_err(io)? {
            Header::Valid { id, .. } if id != dir.id => {
                return Err(OpenError::Foreign {
                    dir: dir.path.clone(),
                    file: segment::file_name(number),
                    found: id,
                    ours: dir.id,
                })
            }
            Header::Valid { number: n, .. } if n == number => {}
            Header::OtherVersion(found) => {
                return Err(OpenError::Incompatible {
                    dir: dir.path.clone(),
                    found,
                })
            }
            Header::Torn if i + 1 == numbers.len() => {
                // A crash while the newest segment was being created: it
                // holds no record.
                tracing::warn!(file = %path.display(), "removing a segment whose header was never completed");
                std::fs::remove_file(&path).map_err(io)?;
                continue;
            }
            header => {
                tracing::error!(file = %path.display(), ?header, "segment header damaged; the whole segment is set aside");
                let len = file.metadata().map_err(io)?.len();
                set_aside(dir, number, 0, &file, len, metrics);
                std::fs::remove_file(&path).map_err(io)?;
                continue;
            }
        }
        let scanned = segment::scan(&file).map_err(io)?;
        if let Some(why) = scanned.damage {
            let (from, to) = (scanned.valid_end, scanned.written_end);
            cut(dir, number, &file, from, to, why, metrics).map_err(io)?;
        } else if scanned.len > scanned.valid_end {
            // The zeros prepared ahead of records that never came.
            file.set_len(scanned.valid_end).map_err(io)?;
        }
        recovered.records += scanned.records;
        recovered.record_bytes += scanned.valid_end - HEADER_LEN;
        if recovered.oldest.is_none() {
            recovered.oldest = scanned.first_received_at;
        }
        recovered.segments.insert(
            number,
            Segment {
                end: scanned.valid_end,
                sealed: true,
            },
        );
    }
    Ok(recovered)
}

/// Cuts segment `number` at `valid_end`: the bytes after it are damage (a
/// torn tail, a corrupted record and what follows it). They are kept in
/// `corrupt/` for inspection and never loaded.
fn cut(
    dir: &Dir,
    number: u64,
    file: &File,
    valid_end: u64,
    len: u64,
    why: &str,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let kept = set_aside(dir, number, valid_end, file, len, metrics);
    tracing::warn!(
        segment = %segment::path(&dir.path, number).display(),
        at = valid_end,
        bytes_cut = len - valid_end,
        why,
        kept = kept.as_ref().map(|p| p.display().to_string()),
        "spool segment damaged: cut at the last valid record; the bytes cut are never loaded"
    );
    file.set_len(valid_end)?;
    file.sync_all()
}

/// Copies bytes `from..len` of a damaged segment into `corrupt/`; where it
/// put them, if it could.
fn set_aside(
    dir: &Dir,
    number: u64,
    from: u64,
    file: &File,
    len: u64,
    metrics: &Metrics,
) -> Option<PathBuf> {
    use std::os::unix::fs::FileExt;
    metrics.spool_corrupt_bytes.inc_by(len - from);
    let corrupt = dir.path.join(dir::CORRUPT_DIR);
    let path = corrupt.join(format!("{}.from-{from}", segment::file_name(number)));
    let copy = || -> std::io::Result<()> {
        std::fs::create_dir_all(&corrupt)?;
        let mut bytes = vec![0; (len - from) as usize];
        file.read_exact_at(&mut bytes, from)?;
        let mut out = File::create(&path)?;
        out.write_all(&bytes)?;
        out.sync_all()
    };
    match copy() {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "cannot keep the damaged bytes");
            None
        }
    }
}

/// How full and how far behind the spool is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    /// Segment files on disk (and appends being written).
    pub bytes: u64,
    pub max_bytes: u64,
    /// Synced records not yet loaded into PostgreSQL, and their bytes.
    pub pending_records: u64,
    pub pending_bytes: u64,
    /// Age of the oldest record not yet loaded; 0 when all are.
    pub lag_seconds: f64,
    /// An append failed to be written or synced within `FAILING_HOLD`, and
    /// none has succeeded since.
    pub failing: bool,
    /// Requests waiting for the writer, and how many may.
    pub queue_depth: usize,
    pub queue_capacity: usize,
}

/// What request handlers append through.
pub struct Appender {
    shared: Arc<Shared>,
    queue: Queue<Append>,
}

/// Resolves once the record is synced (or could not be).
pub type Synced = oneshot::Receiver<Result<(), AppendError>>;

impl Appender {
    /// Queues `framed` for the writer; the answer comes once it is synced.
    /// Refused at once when the spool is full or the queue is.
    pub fn append(&self, framed: Framed) -> Result<Synced, AppendError> {
        let len = framed.len() as u64;
        let shared = &self.shared;
        let before = shared.bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > shared.max_bytes {
            shared.bytes.fetch_sub(len, Ordering::Relaxed);
            shared.full.store(true, Ordering::Relaxed);
            return Err(AppendError::Full {
                max_bytes: shared.max_bytes,
            });
        }
        let (done, synced) = oneshot::channel();
        if let Err(e) = self.queue.try_enqueue(Append { framed, done }) {
            shared.release(len);
            return Err(e.into());
        }
        Ok(synced)
    }

    /// Refuses new records; the writer syncs what is queued, then stops.
    pub fn close(&self) {
        self.queue.close();
    }

    pub fn id(&self) -> SpoolId {
        self.shared.dir.id
    }

    /// Whether an append may be taken now (`/readyz`).
    pub fn has_room(&self) -> bool {
        let s = &self.shared;
        self.queue.has_room()
            && !s.full.load(Ordering::Relaxed)
            && s.bytes.load(Ordering::Relaxed) < s.max_bytes
            && !s.failing()
    }

    pub fn status(&self) -> Status {
        let s = &self.shared;
        let oldest = s.oldest_unloaded_us.load(Ordering::Relaxed);
        let lag_seconds = if oldest == i64::MIN {
            0.0
        } else {
            let now = unix_micros(OffsetDateTime::now_utc());
            (now.saturating_sub(oldest)).max(0) as f64 / 1e6
        };
        Status {
            bytes: s.bytes.load(Ordering::Relaxed),
            max_bytes: s.max_bytes,
            pending_records: s.pending_records.load(Ordering::Relaxed),
            pending_bytes: s.pending_bytes.load(Ordering::Relaxed),
            lag_seconds,
            failing: s.failing(),
            queue_depth: self.queue.depth(),
            queue_capacity: self.queue.capacity(),
        }
    }
}

#[cfg(test)]
mod tests;
