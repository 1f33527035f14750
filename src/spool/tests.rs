//! The spool against a real filesystem: order, rolls, restart, and what
//! recovery does with torn, corrupted, foreign and locked directories.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use time::macros::datetime;

use super::*;
use crate::config::SpoolConfig;

fn config(dir: &Path, segment_bytes: u64, max_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_owned(),
        max_bytes,
        segment_bytes,
        ..SpoolConfig::default()
    }
}

fn open(dir: &Path, segment_bytes: u64) -> Spool {
    Spool::open(
        &config(dir, segment_bytes, 1 << 30),
        64,
        Arc::new(Metrics::new()),
    )
    .expect("spool opens")
}

/// About 150 bytes: some 25 records fill a 4 KiB segment.
fn body(i: usize) -> Vec<u8> {
    let pad = "x".repeat(100);
    format!(r#"{{"receiver":"r{i}","alerts":[],"pad":"{pad}"}}"#).into_bytes()
}

/// Why the spool in `dir` cannot be opened (it must not open).
fn refused(dir: &Path) -> OpenError {
    Spool::open(&config(dir, 4096, 1 << 30), 64, Arc::new(Metrics::new()))
        .err()
        .expect("refused")
}

/// Appends request `i` and waits for its sync.
fn append(spool: &Spool, i: usize) -> Result<(), AppendError> {
    let framed = Framed::new(&body(i), i as i64, datetime!(2026-12-05 10:00 UTC));
    spool
        .appender
        .append(framed)?
        .blocking_recv()
        .expect("answered")
}

/// Closes the writer and joins it.
fn close(spool: Spool) -> Reader {
    spool.appender.close();
    spool.writer.join().unwrap();
    spool.reader
}

/// Every record left to read, as request ids.
fn drain(reader: &mut Reader) -> Vec<i64> {
    let mut ids = Vec::new();
    while let Next::Record(r) = reader.next(Duration::ZERO).unwrap() {
        ids.push(r.entry.request_id);
    }
    ids
}

fn segments(dir: &Path) -> Vec<u64> {
    let mut numbers: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| segment::number_of(e.unwrap().file_name().to_str()?))
        .collect();
    numbers.sort();
    numbers
}

#[test]
fn records_come_back_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), 4096);
    for i in 0..200 {
        append(&spool, i).unwrap();
    }
    assert!(segments(dir.path()).len() > 2, "small segments rolled");
    let mut reader = close(spool);
    assert_eq!(drain(&mut reader), (0..200).collect::<Vec<_>>());
    assert!(matches!(reader.next(Duration::ZERO).unwrap(), Next::Closed));
}

#[test]
fn a_reader_waits_for_the_sync_and_wakes_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let Spool {
        appender,
        mut reader,
        writer,
    } = open(dir.path(), 1 << 20);
    assert!(matches!(
        reader.next(Duration::from_millis(20)).unwrap(),
        Next::Idle
    ));
    let waiting = std::thread::spawn(move || {
        let next = reader.next(Duration::from_secs(10)).unwrap();
        (reader, next)
    });
    std::thread::sleep(Duration::from_millis(50));
    let framed = Framed::new(&body(7), 7, datetime!(2026-12-05 10:00 UTC));
    appender
        .append(framed)
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    let (_, next) = waiting.join().unwrap();
    let Next::Record(record) = next else {
        panic!("{next:?}")
    };
    assert_eq!(record.entry.body, body(7));
    appender.close();
    writer.join().unwrap();
}

#[test]
fn a_restart_loads_what_was_not_loaded_and_deletes_what_was() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), 4096);
    let id = spool.appender.id();
    for i in 0..100 {
        append(&spool, i).unwrap();
    }
    let mut reader = close(spool);
    let mut loaded = None;
    for _ in 0..60 {
        let Next::Record(r) = reader.next(Duration::ZERO).unwrap() else {
            panic!()
        };
        loaded = Some(r.end);
    }
    drop(reader);
    let before = segments(dir.path());

    let spool = open(dir.path(), 4096);
    assert_eq!(spool.appender.id(), id, "the same spool");
    assert_eq!(spool.appender.status().pending_records, 100);
    let mut reader = close(spool);
    reader.skip_loaded(loaded).unwrap();
    assert_eq!(drain(&mut reader), (60..100).collect::<Vec<_>>());
    let after = segments(dir.path());
    assert!(after[0] > before[0], "segments before the position deleted");
    assert!(after.last() > before.last(), "a new segment was begun");
}

#[test]
fn the_newest_segment_is_emptied_not_deleted_so_numbers_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), 4096);
    for i in 0..50 {
        append(&spool, i).unwrap();
    }
    let mut reader = close(spool);
    let mut end = reader.position();
    while let Next::Record(r) = reader.next(Duration::ZERO).unwrap() {
        end = r.end;
    }
    reader.loaded(end, 50, 0);
    let kept = segments(dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let newest = segment::path(dir.path(), kept[0]);
    assert_eq!(std::fs::metadata(newest).unwrap().len(), HEADER_LEN);
    drop(reader);
    let spool = open(dir.path(), 4096);
    assert_eq!(segments(dir.path()), [kept[0], kept[0] + 1]);
    close(spool);
}

/// Writes 20 records and closes: the segment to damage, and each record's start.
fn twenty_records(dir: &Path) -> (u64, Vec<u64>) {
    let spool = open(dir, 1 << 20);
    for i in 0..20 {
        append(&spool, i).unwrap();
    }
    let mut reader = close(spool);
    let mut starts = Vec::new();
    let mut segment = 0;
    while let Next::Record(r) = reader.next(Duration::ZERO).unwrap() {
        starts.push(r.at.offset);
        segment = r.at.segment;
    }
    (segment, starts)
}

fn reopen_and_drain(dir: &Path) -> (Vec<i64>, Metrics) {
    let metrics = Arc::new(Metrics::new());
    let spool = Spool::open(&config(dir, 1 << 20, 1 << 30), 64, metrics.clone()).unwrap();
    let mut reader = close(spool);
    let ids = drain(&mut reader);
    drop(reader);
    (ids, Arc::into_inner(metrics).unwrap())
}

#[test]
fn a_torn_tail_is_cut_at_the_last_whole_record_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, starts) = twenty_records(dir.path());
    let path = segment::path(dir.path(), segment);
    let len = std::fs::metadata(&path).unwrap().len();
    let torn_at = starts[19] + 5;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(torn_at)
        .unwrap();
    let (ids, metrics) = reopen_and_drain(dir.path());
    assert_eq!(ids, (0..19).collect::<Vec<_>>());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), starts[19]);
    assert_eq!(metrics.spool_corrupt_bytes.get(), 5);
    let kept = dir.path().join("corrupt").join(format!(
        "{}.from-{}",
        segment::file_name(segment),
        starts[19]
    ));
    assert_eq!(std::fs::metadata(kept).unwrap().len(), 5);
    assert!(len > torn_at);
}

#[test]
fn a_corrupted_byte_keeps_every_record_before_it_and_loads_nothing_after() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, starts) = twenty_records(dir.path());
    let path = segment::path(dir.path(), segment);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let at = starts[10] + 20;
    let mut byte = [0];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
    let len = file.metadata().unwrap().len();
    let (ids, metrics) = reopen_and_drain(dir.path());
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    assert_eq!(metrics.spool_corrupt_bytes.get(), len - starts[10]);
}

#[test]
fn a_second_process_on_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), 4096);
    let err = refused(dir.path());
    let text = err.to_string();
    assert!(matches!(err, OpenError::Locked { .. }), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    close(spool);
}

#[test]
fn another_spools_segment_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    twenty_records(a.path());
    close(open(b.path(), 4096));
    let foreign = segments(a.path())[0];
    std::fs::copy(
        segment::path(a.path(), foreign),
        segment::path(b.path(), foreign + 100),
    )
    .unwrap();
    let err = refused(b.path());
    assert!(matches!(err, OpenError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("another instance's data"), "{err}");
}

#[test]
fn an_incompatible_version_and_a_stranger_dir_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    close(open(dir.path(), 4096));
    let meta = dir.path().join("SPOOL");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, text.replace("format: 1", "format: 99")).unwrap();
    let err = refused(dir.path());
    assert!(
        matches!(err, OpenError::Incompatible { found: 99, .. }),
        "{err}"
    );

    let stranger = tempfile::tempdir().unwrap();
    std::fs::write(stranger.path().join("notes.txt"), "mine").unwrap();
    let err = refused(stranger.path());
    assert!(matches!(err, OpenError::NotASpool { .. }), "{err}");
}

#[test]
fn a_full_spool_refuses_appends_until_loaded_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        &config(dir.path(), 4096, 8192),
        64,
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let mut accepted = 0;
    let refused = loop {
        match append(&spool, accepted) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(refused, AppendError::Full { max_bytes: 8192 }),
        "{refused:?}"
    );
    let Spool {
        appender,
        mut reader,
        writer,
    } = spool;
    let mut end = reader.position();
    let mut records = 0;
    while let Next::Record(r) = reader.next(Duration::ZERO).unwrap() {
        end = r.end;
        records += 1;
    }
    assert_eq!(records, accepted);
    reader.loaded(end, records as u64, 0);
    let framed = Framed::new(&body(0), 0, datetime!(2026-12-05 10:00 UTC));
    let synced = appender.append(framed).expect("room again");
    synced.blocking_recv().unwrap().unwrap();
    appender.close();
    writer.join().unwrap();
}

#[cfg(feature = "failpoints")]
#[test]
fn a_failed_sync_is_never_retried_and_its_records_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), 1 << 20);
    append(&spool, 0).unwrap();
    fail::cfg("spool::sync", "return").unwrap();
    let failed = append(&spool, 1);
    fail::remove("spool::sync");
    assert!(matches!(failed, Err(AppendError::Write(_))), "{failed:?}");
    assert!(spool.appender.status().failing);
    append(&spool, 2).unwrap();
    assert!(!spool.appender.status().failing);
    assert_eq!(segments(dir.path()).len(), 2, "written on in a new segment");
    let mut reader = close(spool);
    assert_eq!(drain(&mut reader), [0, 2]);
}
