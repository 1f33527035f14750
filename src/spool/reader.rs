//! The loader's side of the log: records in order, never past the last
//! sync; segments deleted once what they hold is loaded.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::record::{self, Decoded, Entry};
use super::segment::{self, HEADER_LEN};
use super::{Log, Position, Shared, SpoolId};
use crate::model::unix_micros;

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 256 * 1024;

/// A record read from the log.
#[derive(Debug)]
pub struct Record {
    /// Where it starts, and where the next one does: once it is loaded,
    /// `end` is the loaded position.
    pub at: Position,
    pub end: Position,
    pub entry: Entry,
}

/// What `Reader::next` found.
#[derive(Debug)]
pub enum Next {
    Record(Record),
    /// Nothing more has been synced within the wait.
    Idle,
    /// The writer has stopped and every record has been read.
    Closed,
}

/// Where the reader is, relative to what the log holds.
enum Located {
    /// Records up to `end` can be read.
    Readable {
        end: u64,
    },
    /// This segment is done; the next one is this.
    Advance(u64),
    /// Nothing to read yet.
    Wait,
    Closed,
}

pub struct Reader {
    shared: Arc<Shared>,
    /// The next record to read.
    at: Position,
    /// Everything before this is in PostgreSQL (`loaded`).
    loaded_upto: Position,
    /// The segment being read, and bytes of it read ahead.
    file: Option<(u64, File)>,
    chunk: Vec<u8>,
    chunk_at: u64,
}

impl Reader {
    pub(super) fn new(shared: Arc<Shared>) -> Reader {
        let first = *shared
            .log
            .lock()
            .segments
            .keys()
            .next()
            .expect("the writer's segment exists");
        Reader {
            shared,
            at: Position {
                segment: first,
                offset: HEADER_LEN,
            },
            loaded_upto: Position {
                segment: first,
                offset: HEADER_LEN,
            },
            file: None,
            chunk: Vec::new(),
            chunk_at: 0,
        }
    }

    pub fn spool_id(&self) -> SpoolId {
        self.shared.dir.id
    }

    /// The next record to read.
    pub fn position(&self) -> Position {
        self.at
    }

    /// Skips what PostgreSQL says is loaded already (`loaded`, the position
    /// stored with the rows; `None`: nothing of this spool is), and deletes
    /// the segments it wholly covers.
    pub fn skip_loaded(&mut self, loaded: Option<Position>) -> std::io::Result<()> {
        let Some(loaded) = loaded else {
            return Ok(());
        };
        let newest = *self
            .shared
            .log
            .lock()
            .segments
            .keys()
            .last()
            .expect("a segment");
        if loaded.segment > newest {
            tracing::error!(
                ?loaded,
                newest,
                "the loaded position is past every segment of this spool (was its directory emptied?); loading every record in it (idempotently)"
            );
            return Ok(());
        }
        let (mut records, mut bytes) = (0, 0);
        while self.at < loaded {
            match self.next(Duration::ZERO)? {
                Next::Record(r) if r.end <= loaded => {
                    records += 1;
                    bytes += r.end.offset - r.at.offset;
                }
                Next::Record(r) => {
                    tracing::warn!(?loaded, record = ?r.at, "the loaded position is not at a record boundary; loading from the record that spans it");
                    self.at = r.at;
                    self.chunk.clear();
                    break;
                }
                Next::Idle | Next::Closed => break,
            }
        }
        self.loaded(self.at, records, bytes);
        Ok(())
    }

    /// Reads again from the first record not yet loaded (after a failure
    /// that lost what was read since).
    pub fn rewind(&mut self) {
        self.at = self.loaded_upto;
        self.file = None;
        self.chunk.clear();
    }

    /// The next record, waiting up to `wait` for one to be synced.
    pub fn next(&mut self, wait: Duration) -> std::io::Result<Next> {
        let deadline = Instant::now() + wait;
        loop {
            let end = match self.readable_until(deadline) {
                Located::Readable { end } => end,
                Located::Closed => return Ok(Next::Closed),
                _ => {
                    // A segment loaded while it was written may have been
                    // sealed since (a roll, a failed write): its space is
                    // freed now, not at the next load, which a full disk
                    // may prevent.
                    self.free(self.loaded_upto);
                    return Ok(Next::Idle);
                }
            };
            if let Some(record) = self.read(end)? {
                return Ok(Next::Record(record));
            }
        }
    }

    /// Moves past finished segments and waits, until `deadline`, for
    /// synced bytes at the reader's position: `Readable`, `Closed`, or
    /// `Wait` when the deadline passed first.
    fn readable_until(&mut self, deadline: Instant) -> Located {
        // Fields apart, so that the position moves while the log is locked.
        let Reader {
            shared,
            at,
            file,
            chunk,
            ..
        } = self;
        let mut log = shared.log.lock();
        loop {
            match locate(&log, *at) {
                Located::Advance(next) => {
                    *at = Position {
                        segment: next,
                        offset: HEADER_LEN,
                    };
                    *file = None;
                    chunk.clear();
                }
                Located::Wait => {
                    if shared.grown.wait_until(&mut log, deadline).timed_out()
                        && matches!(locate(&log, *at), Located::Wait)
                    {
                        return Located::Wait;
                    }
                }
                located => return located,
            }
        }
    }

    /// The record at the reader's position, which `end` (synced) is past;
    /// `None` when it is damaged (and has been dealt with).
    fn read(&mut self, end: u64) -> std::io::Result<Option<Record>> {
        loop {
            let within = self
                .at
                .offset
                .checked_sub(self.chunk_at)
                .map(|w| w as usize);
            let bytes = within.and_then(|w| self.chunk.get(w..)).unwrap_or_default();
            match record::decode(bytes) {
                Decoded::Frame { len, entry } => {
                    let at = self.at;
                    self.at.offset += len as u64;
                    return Ok(Some(Record {
                        at,
                        end: self.at,
                        entry,
                    }));
                }
                Decoded::Incomplete { needed } if self.at.offset + needed as u64 <= end => {
                    self.fill(needed, end)?;
                }
                Decoded::Incomplete { .. } => {
                    self.damaged("a record runs past the last sync")?;
                    return Ok(None);
                }
                Decoded::Invalid(why) => {
                    self.damaged(why)?;
                    return Ok(None);
                }
            }
        }
    }

    /// Reads at least `needed` bytes from the reader's position.
    fn fill(&mut self, needed: usize, end: u64) -> std::io::Result<()> {
        let segment = self.at.segment;
        if self.file.as_ref().is_none_or(|(n, _)| *n != segment) {
            let file = File::open(segment::path(&self.shared.dir.path, segment))?;
            self.file = Some((segment, file));
        }
        let (_, file) = self.file.as_ref().expect("opened above");
        let len = needed.max(READ_CHUNK).min((end - self.at.offset) as usize);
        self.chunk.resize(len, 0);
        file.read_exact_at(&mut self.chunk, self.at.offset)?;
        self.chunk_at = self.at.offset;
        Ok(())
    }

    /// A record that fails its checksum after the startup scan passed it
    /// (the disk changed under us): the segment is cut there once it is
    /// sealed, as recovery would, and the reader moves on.
    fn damaged(&mut self, why: &'static str) -> std::io::Result<()> {
        let mut log = self.shared.log.lock();
        let segment = log
            .segments
            .get_mut(&self.at.segment)
            .expect("a readable segment is in the log");
        if !segment.sealed {
            log.roll_requested = true;
            self.shared
                .grown
                .wait_for(&mut log, Duration::from_millis(100));
            return Ok(());
        }
        let (end, at) = (segment.end, self.at.offset);
        segment.end = at;
        drop(log);
        let path = segment::path(&self.shared.dir.path, self.at.segment);
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let (dir, metrics) = (&self.shared.dir, &self.shared.metrics);
        super::cut(dir, self.at.segment, &file, at, end, why, metrics)?;
        self.shared.release(end - at);
        self.chunk.clear();
        Ok(())
    }

    /// The loader has committed everything before `upto`: `records` more
    /// records of `bytes` bytes. Deletes the sealed segments wholly before
    /// it; the newest segment is emptied down to its header instead, so
    /// that the numbers of the segments written after a restart continue
    /// from it (a position in PostgreSQL names a segment by its number).
    pub fn loaded(&mut self, upto: Position, records: u64, bytes: u64) {
        let shared = &self.shared;
        shared.pending_records.fetch_sub(records, Ordering::Relaxed);
        shared.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.loaded_upto = upto;
        self.free(upto);
    }

    /// Deletes (or empties) the sealed segments wholly before `upto`.
    fn free(&self, upto: Position) {
        let shared = &self.shared;
        let mut log = shared.log.lock();
        let newest = *log.segments.keys().last().expect("a segment");
        let done: Vec<(u64, u64)> = log
            .segments
            .range(..=upto.segment)
            .filter(|(n, s)| s.sealed && (**n < upto.segment || upto.offset >= s.end))
            .filter(|(n, s)| **n != newest || s.end > HEADER_LEN)
            .map(|(n, s)| (*n, s.end))
            .collect();
        for (n, _) in &done {
            if *n == newest {
                let s = log.segments.get_mut(n).expect("listed above");
                s.end = HEADER_LEN;
            } else {
                log.segments.remove(n);
            }
        }
        drop(log);
        for (n, end) in done {
            let path = segment::path(&shared.dir.path, n);
            let freed = if n == newest {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(HEADER_LEN))
                    .map(|()| end - HEADER_LEN)
            } else {
                std::fs::remove_file(&path).map(|()| end)
            };
            match freed {
                Ok(freed) => shared.release(freed),
                Err(e) => {
                    tracing::error!(error = %e, file = %path.display(), "cannot delete a loaded spool segment")
                }
            }
        }
    }

    /// The receipt time of the oldest record not yet loaded, for the lag.
    pub fn set_oldest_unloaded(&self, oldest: Option<OffsetDateTime>) {
        let us = oldest.map_or(i64::MIN, unix_micros);
        self.shared.oldest_unloaded_us.store(us, Ordering::Relaxed);
    }

    /// Reads the one record at `at` again (its body, as received, for a
    /// rejection).
    pub fn reread(&self, at: Position) -> std::io::Result<Entry> {
        let file = File::open(segment::path(&self.shared.dir.path, at.segment))?;
        let mut header = [0; record::FRAME_HEADER_LEN];
        file.read_exact_at(&mut header, at.offset)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let mut frame = vec![0; record::FRAME_HEADER_LEN + len];
        file.read_exact_at(&mut frame, at.offset)?;
        match record::decode(&frame) {
            Decoded::Frame { entry, .. } => Ok(entry),
            _ => Err(std::io::Error::other(
                "the record changed since it was read",
            )),
        }
    }
}

fn locate(log: &Log, at: Position) -> Located {
    let next = || log.segments.range(at.segment + 1..).next().map(|(n, _)| *n);
    match log.segments.get(&at.segment) {
        Some(s) if at.offset < s.end => Located::Readable { end: s.end },
        Some(s) if !s.sealed => Located::Wait,
        _ => match next() {
            Some(n) => Located::Advance(n),
            None if log.closed => Located::Closed,
            None => Located::Wait,
        },
    }
}
