//! The group-commit writer: one thread appends what request handlers have
//! queued since its last sync, syncs once for all of it, and answers each.
//! While it syncs, new requests gather in the queue for the next group, so
//! the number of syncs follows the disk's speed, not the request rate (as
//! PostgreSQL's WAL flush does).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tokio::sync::oneshot;

use super::segment::{self, HEADER_LEN};
use super::{AppendError, Framed, Segment, Shared};
use crate::model::unix_micros;

/// Most bytes appended per sync: bounds the time the first request of a
/// group waits for the last one's bytes to be written (a record larger
/// than this is a group of its own).
const GROUP_MAX_BYTES: usize = 8 * 1024 * 1024;

/// How often an idle writer looks for a roll the reader asked for.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// A record on its way to disk, and who is waiting for it.
pub struct Append {
    pub framed: Framed,
    pub done: oneshot::Sender<Result<(), AppendError>>,
}

pub struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Append>,
    /// The segment being written; `None` after a failed write or sync,
    /// until a new segment could be begun.
    file: Option<File>,
    number: u64,
    /// Bytes of records (and header) in the segment, all synced: where the
    /// next group is written (a failed group is cut off).
    len: u64,
    segment_bytes: u64,
    /// The next segment, being zero-filled by a thread of its own while
    /// this one fills up (see `segment::prepare`).
    next: Option<(u64, JoinHandle<std::io::Result<File>>)>,
    /// One group's frames, written with one call.
    buffer: Vec<u8>,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Append>,
        file: File,
        number: u64,
        segment_bytes: u64,
    ) -> Writer {
        let mut writer = Writer {
            shared,
            rx,
            file: Some(file),
            number,
            len: HEADER_LEN,
            segment_bytes,
            next: None,
            buffer: Vec::new(),
        };
        writer.prepare_next();
        writer
    }

    /// Until the queue is closed and drained.
    pub fn run(mut self) {
        loop {
            let first = match self.rx.recv_timeout(IDLE_CHECK) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    self.roll_if_requested();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let group = self.gather(first);
            let outcome = self.commit(&group);
            for append in group {
                let _ = append.done.send(outcome.clone());
            }
        }
        self.seal();
        if let Some((number, handle)) = self.next.take() {
            let _ = handle.join();
            let _ = std::fs::remove_file(segment::prepared_path(&self.shared.dir.path, number));
        }
        let mut log = self.shared.log.lock();
        log.closed = true;
        self.shared.grown.notify_all();
    }

    /// `first`, and whatever is queued behind it, up to `GROUP_MAX_BYTES`.
    fn gather(&self, first: Append) -> Vec<Append> {
        let mut bytes = first.framed.len();
        let mut group = vec![first];
        while bytes < GROUP_MAX_BYTES {
            match self.rx.try_recv() {
                Ok(next) => {
                    bytes += next.framed.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        group
    }

    /// Appends and syncs the group: all of it is durable, or none of it
    /// will ever be loaded.
    fn commit(&mut self, group: &[Append]) -> Result<(), AppendError> {
        let bytes: u64 = group.iter().map(|a| a.framed.len() as u64).sum();
        self.buffer.clear();
        for append in group {
            self.buffer.extend_from_slice(append.framed.bytes());
        }
        let started = Instant::now();
        let buffer = std::mem::take(&mut self.buffer);
        let written = self.room_for(bytes).and_then(|(file, at)| {
            file.write_all_at(&buffer, at)?;
            fail::fail_point!("spool::sync", |_| Err(std::io::Error::other(
                "failpoint spool::sync"
            )));
            file.sync_data()
        });
        self.buffer = buffer;
        match written {
            Ok(()) => {
                let metrics = &self.shared.metrics;
                metrics
                    .spool_sync_duration
                    .observe(started.elapsed().as_secs_f64());
                metrics.spool_records_per_sync.observe(group.len() as f64);
                self.published(group.len() as u64, bytes);
                Ok(())
            }
            Err(e) => {
                self.shared.release(bytes);
                self.distrust(&e);
                Err(AppendError::Write(Arc::new(e)))
            }
        }
    }

    /// The segment to append `bytes` to, and where in it: this one, or a
    /// new one past `spool.segment_bytes` or after a failure.
    fn room_for(&mut self, bytes: u64) -> std::io::Result<(&File, u64)> {
        let full = self.len > HEADER_LEN && self.len + bytes > self.segment_bytes;
        if self.file.is_none() || full {
            self.roll()?;
        }
        let file = self.file.as_ref().expect("a segment after roll");
        Ok((file, self.len))
    }

    /// Seals the current segment and begins the next, prepared ahead.
    fn roll(&mut self) -> std::io::Result<()> {
        self.seal();
        let next = self.number + 1;
        let file = self.take_next(next)?;
        segment::install(&self.shared.dir.path, next)?;
        self.shared.bytes.fetch_add(HEADER_LEN, Ordering::Relaxed);
        let mut log = self.shared.log.lock();
        log.roll_requested = false;
        log.segments.insert(
            next,
            Segment {
                end: HEADER_LEN,
                sealed: false,
            },
        );
        drop(log);
        self.file = Some(file);
        self.number = next;
        self.len = HEADER_LEN;
        self.shared.grown.notify_all();
        self.prepare_next();
        Ok(())
    }

    /// Starts zero-filling the segment after the current one.
    fn prepare_next(&mut self) {
        let (dir, id) = (self.shared.dir.path.clone(), self.shared.dir.id);
        let (number, len) = (self.number + 1, self.segment_bytes);
        let preparing = std::thread::Builder::new()
            .name("spool-prepare".into())
            .spawn(move || segment::prepare(&dir, &id, number, len));
        match preparing {
            Ok(handle) => self.next = Some((number, handle)),
            Err(e) => tracing::warn!(error = %e, "cannot prepare the next spool segment ahead"),
        }
    }

    /// Segment `number`, prepared: by the thread started for it, or now
    /// if that failed (a full disk may have room again).
    fn take_next(&mut self, number: u64) -> std::io::Result<File> {
        if let Some((n, handle)) = self.next.take() {
            if let Ok(Ok(file)) = handle.join() {
                if n == number {
                    return Ok(file);
                }
            }
        }
        let (dir, id) = (&self.shared.dir.path, &self.shared.dir.id);
        segment::prepare(dir, id, number, self.segment_bytes)
    }

    fn roll_if_requested(&mut self) {
        if self.shared.log.lock().roll_requested {
            if let Err(e) = self.roll() {
                tracing::error!(error = %e, "cannot begin a new spool segment");
            }
        }
    }

    /// No more appends to the current segment; the zeros after its
    /// records are given back.
    fn seal(&mut self) {
        if let Some(file) = self.file.as_ref() {
            let _ = file.set_len(self.len);
        }
        let mut log = self.shared.log.lock();
        if let Some(segment) = log.segments.get_mut(&self.number) {
            segment.sealed = true;
        }
        self.file = None;
        self.shared.grown.notify_all();
    }

    /// The group is synced: the reader may read it.
    fn published(&mut self, records: u64, bytes: u64) {
        self.len += bytes;
        let shared = &self.shared;
        shared.failed_at_us.store(i64::MIN, Ordering::Relaxed);
        shared.pending_records.fetch_add(records, Ordering::Relaxed);
        shared.pending_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut log = shared.log.lock();
        let segment = log
            .segments
            .get_mut(&self.number)
            .expect("the segment being written is in the log");
        segment.end = self.len;
        drop(log);
        shared.grown.notify_all();
    }

    /// After a failed write or sync: what was written since the last good
    /// sync is cut off (best effort) and never read; the next group goes
    /// to a new segment, never to this file again.
    fn distrust(&mut self, error: &std::io::Error) {
        let now = unix_micros(time::OffsetDateTime::now_utc());
        self.shared.failed_at_us.store(now, Ordering::Relaxed);
        self.shared.metrics.spool_write_errors.inc();
        if let Some(file) = self.file.as_ref() {
            let cut = file.set_len(self.len).and_then(|()| file.sync_data());
            if let Err(e) = cut {
                tracing::error!(error = %e, "cannot cut the unsynced bytes off the spool segment; they are not read");
            }
        }
        tracing::error!(
            %error,
            segment = self.number,
            "spool write or sync failed: its requests were answered 503 and their records are never loaded; writing goes on in a new segment"
        );
        self.seal();
    }
}
