//! Segment files: their names, their header, and the scan that finds where
//! the valid records of one end.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "AISPOOL\0"
//! 8       4     format version (u32 LE)
//! 12      16    the spool's id
//! 28      8     the segment's number (u64 LE), as in its file name
//! 36      4     CRC32C of bytes 0..36
//! 40            the first record
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::record::{self, Decoded, Entry};
use super::SpoolId;

pub const MAGIC: &[u8; 8] = b"AISPOOL\0";
/// Bumped when the layout of a segment or a record changes; a spool of
/// another version is refused, not misread.
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: u64 = 40;
const EXTENSION: &str = "seg";
/// Bytes read at a time by the scan.
const SCAN_CHUNK: usize = 1024 * 1024;

/// `00000000000000000042.seg`: names sort in the order of the numbers.
pub fn file_name(number: u64) -> String {
    format!("{number:020}.{EXTENSION}")
}

pub fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(file_name(number))
}

/// The number in a segment's file name; `None` for any other name.
pub fn number_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// A segment being prepared: `00000000000000000042.seg.prepared`, never
/// read; removed at startup if a crash left one.
pub fn prepared_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{}.prepared", file_name(number)))
}

/// Prepares segment `number` under its temporary name: its header, then
/// zeros up to `len`, synced. Records then overwrite blocks the file
/// already has, so an `fdatasync` flushes only them, never the file's
/// size or block map through the filesystem's journal, where it would
/// queue behind PostgreSQL's own metadata (PostgreSQL zero-fills its WAL
/// segments for the same reason, `wal_init_zero`). Measured here under a
/// background writer: a 1 KiB append + fdatasync had p99 3.5 ms and
/// p99.9 20 ms; an overwrite of zeros 0.17 ms and 0.58 ms.
pub fn prepare(dir: &Path, id: &SpoolId, number: u64, len: u64) -> std::io::Result<File> {
    let path = prepared_path(dir, number);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let made = (|| {
        file.write_all(&header(id, number))?;
        static ZEROS: [u8; ZERO_CHUNK] = [0; ZERO_CHUNK];
        let mut at = HEADER_LEN;
        while at < len {
            let n = ZERO_CHUNK.min((len - at) as usize);
            file.write_all(&ZEROS[..n])?;
            at += n as u64;
            // Flushed a chunk at a time: one flush of the whole segment
            // would fill the disk's queue for tens of milliseconds, and
            // every request's sync would wait behind it.
            if at % ZERO_SYNC_EVERY < n as u64 {
                file.sync_data()?;
            }
        }
        file.sync_all()
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(file)
}

/// Gives a prepared segment its name, durably: from here on it is part of
/// the spool.
pub fn install(dir: &Path, number: u64) -> std::io::Result<()> {
    std::fs::rename(prepared_path(dir, number), path(dir, number))?;
    File::open(dir)?.sync_all()
}

/// Bytes of zeros written at a time when preparing a segment.
const ZERO_CHUNK: usize = 64 * 1024;
/// Zeros written between two flushes when preparing a segment.
const ZERO_SYNC_EVERY: u64 = 256 * 1024;

fn header(id: &SpoolId, number: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..28].copy_from_slice(&id.0);
    h[28..36].copy_from_slice(&number.to_le_bytes());
    let crc = crc32c::crc32c(&h[..36]);
    h[36..40].copy_from_slice(&crc.to_le_bytes());
    h
}

/// What a segment's header says.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    Valid {
        id: SpoolId,
        number: u64,
    },
    /// Written by another format version of alert-ingest.
    OtherVersion(u32),
    /// Shorter than a header: a crash while the segment was being created.
    Torn,
    /// Not a segment header at all, or a damaged one.
    Invalid,
}

pub fn read_header(file: &mut File) -> std::io::Result<Header> {
    let mut h = [0; HEADER_LEN as usize];
    let mut read = 0;
    while read < h.len() {
        match file.read(&mut h[read..])? {
            0 => return Ok(Header::Torn),
            n => read += n,
        }
    }
    if &h[..8] != MAGIC {
        return Ok(Header::Invalid);
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Ok(Header::OtherVersion(version));
    }
    if crc32c::crc32c(&h[..36]).to_le_bytes() != h[36..40] {
        return Ok(Header::Invalid);
    }
    Ok(Header::Valid {
        id: SpoolId(h[12..28].try_into().expect("16 bytes")),
        number: u64::from_le_bytes(h[28..36].try_into().expect("8 bytes")),
    })
}

/// Whether `bytes` begin like a segment file.
pub fn is_segment(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// A segment's records, each with its offset; and, if it ends in damage,
/// where and why.
pub type Entries = (Vec<(u64, Entry)>, Option<(u64, &'static str)>);

/// The records of a whole segment file read into memory (`replay`), of
/// any spool.
pub fn entries(bytes: &[u8]) -> Result<Entries, String> {
    let header = bytes
        .get(..HEADER_LEN as usize)
        .ok_or("shorter than a segment header")?;
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(format!(
            "spool format {version}; this build reads format {FORMAT_VERSION}"
        ));
    }
    if crc32c::crc32c(&header[..36]).to_le_bytes() != header[36..40] {
        return Err("damaged segment header".into());
    }
    let mut entries = Vec::new();
    let mut at = HEADER_LEN as usize;
    while at < bytes.len() {
        let why = match record::decode(&bytes[at..]) {
            Decoded::Frame { len, entry } => {
                entries.push((at as u64, entry));
                at += len;
                continue;
            }
            Decoded::Incomplete { .. } => "a record cut short",
            Decoded::Invalid(why) => why,
        };
        // Zeros after the last record: room never written.
        let damage = bytes[at..]
            .iter()
            .any(|&b| b != 0)
            .then_some((at as u64, why));
        return Ok((entries, damage));
    }
    Ok((entries, None))
}

/// The records of one segment as found by a scan.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Valid records from the header on.
    pub records: u64,
    /// Where the last valid record ends: everything after is damage (a
    /// torn tail, a corrupted record and whatever follows it).
    pub valid_end: u64,
    /// The file's length (zeros prepared ahead of the records included).
    pub len: u64,
    /// Where the last byte that is not zero ends: with `damage`, the bytes
    /// from `valid_end` to here are what is cut.
    pub written_end: u64,
    /// Receipt time of the first valid record.
    pub first_received_at: Option<OffsetDateTime>,
    /// Why the bytes after `valid_end` are not a record, if there are any.
    pub damage: Option<&'static str>,
}

/// Where the last byte that is not zero ends, from `from` on: a segment is
/// zero-filled ahead of its records, so zeros after the last record are
/// room never written, not damage.
pub fn written_end(file: &File, from: u64, len: u64) -> std::io::Result<u64> {
    let mut end = from;
    let mut chunk = vec![0; SCAN_CHUNK];
    let mut at = from;
    while at < len {
        let n = SCAN_CHUNK.min((len - at) as usize);
        file.read_exact_at(&mut chunk[..n], at)?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b != 0) {
            end = at + i as u64 + 1;
        }
        at += n as u64;
    }
    Ok(end)
}

/// Reads every record after the header and checks it.
pub fn scan(file: &File) -> std::io::Result<Scanned> {
    let len = file.metadata()?.len();
    let mut scanned = Scanned {
        valid_end: HEADER_LEN,
        len,
        ..Scanned::default()
    };
    let mut chunk = Vec::new();
    let mut chunk_at = HEADER_LEN;
    loop {
        let within = (scanned.valid_end - chunk_at) as usize;
        match record::decode(&chunk[within..]) {
            Decoded::Frame { len, entry } => {
                scanned.records += 1;
                scanned.first_received_at.get_or_insert(entry.received_at);
                scanned.valid_end += len as u64;
            }
            Decoded::Incomplete { needed } => {
                let from = scanned.valid_end;
                if from + needed as u64 > len {
                    scanned.written_end = written_end(file, from, len)?;
                    if scanned.written_end > from {
                        scanned.damage = Some("a record cut short (torn tail)");
                    }
                    return Ok(scanned);
                }
                let want = needed.max(SCAN_CHUNK).min((len - from) as usize);
                chunk.resize(want, 0);
                file.read_exact_at(&mut chunk, from)?;
                chunk_at = from;
            }
            Decoded::Invalid(why) => {
                scanned.written_end = written_end(file, scanned.valid_end, len)?;
                if scanned.written_end > scanned.valid_end {
                    scanned.damage = Some(why);
                }
                return Ok(scanned);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_numbers_and_parse_back() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(number_of(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(number_of("00000000000000000042.tmp"), None);
        assert_eq!(number_of("42.seg"), None);
        assert!(file_name(9) < file_name(10));
    }
}
