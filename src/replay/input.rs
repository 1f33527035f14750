//! The files to replay, and their bodies parsed in parallel.
//!
//! A file named `*.jsonl` or `*.ndjson` holds JSON lines (one body per
//! line, blank lines ignored). A spool segment (`*.seg`, recognised by its
//! header whatever its name) holds the bodies a service spooled, each with
//! the receipt time and request id it was received with. Any other file
//! holds one body, unless more than one of its lines starts with `{`: JSON
//! lines saved under another name (a pretty-printed body indents every
//! brace but its first).

use std::collections::HashSet;
use std::fs;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fnv::FnvHasher;
use indicatif::ProgressBar;
use rayon::prelude::*;
use time::OffsetDateTime;

use super::{Captured, Rejected, ReplayError, Source};
use crate::config::LimitsConfig;
use crate::model::{Alert, Interner};
use crate::parse::{parse_at, Scratch};
use crate::spool::segment;

/// What a directory walk picks up; a file named on the command line is
/// read whatever its name.
const EXTENSIONS: [&str; 4] = ["json", "jsonl", "ndjson", "seg"];
/// Files read as JSON lines whatever their content.
const LINES_EXTENSIONS: [&str; 2] = ["jsonl", "ndjson"];

/// The outcome of one body.
pub type Read = Result<Captured, Rejected>;

/// The files under `paths`, in order: each path as given, directories
/// walked recursively in name order, hidden entries skipped. A file reached
/// twice (named twice, or also inside a named directory) is read once.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReplayError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| path_error(path, e))?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    let mut seen = HashSet::new();
    files.retain(|f| seen.insert(fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ReplayError> {
    let mut entries = fs::read_dir(dir)
        .and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| path_error(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // Not followed through symbolic links: a link to an ancestor would loop.
        let file_type = entry.file_type().map_err(|e| path_error(&path, e))?;
        if file_type.is_dir() {
            walk(&path, files)?;
        } else if has_extension(&path, &EXTENSIONS) {
            files.push(path);
        }
    }
    Ok(())
}

fn path_error(path: &Path, source: std::io::Error) -> ReplayError {
    ReplayError::Path {
        path: path.to_owned(),
        source,
    }
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.contains(&e))
}

/// Reads and parses bodies as the service does: the same parser, limits
/// and body size cap.
pub struct Reader<'a> {
    pub interner: &'a Interner,
    pub limits: &'a LimitsConfig,
    /// `server.max_body_bytes`: a larger body would have been answered 413.
    pub max_body_bytes: usize,
    /// Advanced by one per file read.
    pub progress: &'a ProgressBar,
}

impl Reader<'_> {
    /// Every body of every file, files and lines in parallel.
    pub fn read_all(&self, files: &[PathBuf]) -> Vec<Read> {
        files
            .par_iter()
            .flat_map_iter(|path| {
                let read = self.read_file(path);
                self.progress.inc(1);
                read
            })
            .collect()
    }

    fn read_file(&self, path: &Path) -> Vec<Read> {
        let path: Arc<Path> = path.into();
        let mut bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let source = Source { path, line: None };
                return vec![Err(Rejected::new(source, format!("cannot read: {e}")))];
            }
        };
        if segment::is_segment(&bytes) {
            return self.segment(path, &bytes);
        }
        if is_json_lines(&path, &bytes) {
            return self.lines(path, &mut bytes);
        }
        let source = Source { path, line: None };
        vec![self.body(source, trim(&mut bytes), &mut Scratch::default(), None)]
    }

    /// A spool segment's records, each keyed as the service received it,
    /// so that loading a spool again (or one the service loaded in part)
    /// adds no row twice. `line` is the record's number.
    fn segment(&self, path: Arc<Path>, bytes: &[u8]) -> Vec<Read> {
        let source = |line| Source {
            path: path.clone(),
            line,
        };
        let (entries, damage) = match segment::entries(bytes) {
            Ok(read) => read,
            Err(why) => return vec![Err(Rejected::new(source(None), why))],
        };
        let mut read: Vec<Read> = entries
            .into_par_iter()
            .enumerate()
            .map_init(Scratch::default, |scratch, (i, (_, mut entry))| {
                let key = Some((entry.received_at, entry.request_id));
                self.body(source(Some(i + 1)), &mut entry.body, scratch, key)
            })
            .collect();
        if let Some((at, why)) = damage {
            let reason = format!("damaged from byte {at} on ({why}): the rest is not read");
            read.push(Err(Rejected::new(source(None), reason)));
        }
        read
    }

    fn lines(&self, path: Arc<Path>, bytes: &mut [u8]) -> Vec<Read> {
        let lines: Vec<(usize, &mut [u8])> = bytes
            .split_mut(|&b| b == b'\n')
            .map(trim)
            .enumerate()
            .filter(|(_, line)| !line.is_empty())
            .collect();
        lines
            .into_par_iter()
            .map_init(Scratch::default, |scratch, (i, line)| {
                let source = Source {
                    path: path.clone(),
                    line: Some(i + 1),
                };
                self.body(source, line, scratch, None)
            })
            .collect()
    }

    /// One body; `key`: its receipt time and request id when it carries
    /// them (a spool record), else derived from its alerts and its bytes.
    fn body(
        &self,
        source: Source,
        body: &mut [u8],
        scratch: &mut Scratch,
        key: Option<(OffsetDateTime, i64)>,
    ) -> Read {
        if body.len() > self.max_body_bytes {
            let reason = format!(
                "{} bytes, more than server.max_body_bytes ({})",
                body.len(),
                self.max_body_bytes
            );
            return Err(Rejected::new(source, reason));
        }
        // Before parsing: simd-json rewrites the body in place.
        let request_id = key.map_or_else(|| request_id(body), |(_, id)| id);
        let now = key.map_or_else(OffsetDateTime::now_utc, |(at, _)| at);
        let webhook = match parse_at(body, scratch, self.interner, self.limits, now) {
            Ok(webhook) => webhook,
            Err(e) => return Err(Rejected::new(source, e.to_string())),
        };
        let Some(received_at) = key.map(|(at, _)| at).or_else(|| latest(&webhook.alerts)) else {
            return Err(Rejected::new(source, NO_ALERTS.into()));
        };
        Ok(Captured {
            source,
            webhook,
            received_at,
            request_id,
        })
    }
}

/// Alertmanager never sends a notification without alerts; one in a capture
/// has nothing to store and no time to be dated by.
const NO_ALERTS: &str = "no alerts: nothing to store, and no time to date the notification by";

fn is_json_lines(path: &Path, bytes: &[u8]) -> bool {
    has_extension(path, &LINES_EXTENSIONS)
        || bytes
            .split(|&b| b == b'\n')
            .filter(|line| line.first() == Some(&b'{'))
            .nth(1)
            .is_some()
}

/// Without surrounding ASCII whitespace (a line's `\r`, a file's last newline).
fn trim(bytes: &mut [u8]) -> &mut [u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &mut bytes[start..end]
}

fn request_id(body: &[u8]) -> i64 {
    let mut hasher = FnvHasher::default();
    hasher.write(body);
    hasher.finish() as i64
}

/// The newest instant the alerts report: their `startsAt`, and `endsAt` when set.
fn latest(alerts: &[Alert]) -> Option<OffsetDateTime> {
    alerts
        .iter()
        .flat_map(|a| std::iter::once(a.starts_at).chain(a.ends_at))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_drops_surrounding_whitespace_only() {
        assert_eq!(trim(&mut b" \t{\"a\": 1}\r\n".to_vec()), b"{\"a\": 1}");
        assert_eq!(trim(&mut b" \r\n".to_vec()), b"");
        assert_eq!(trim(&mut Vec::new()), b"");
    }

    #[test]
    fn json_lines_by_name_or_by_content() {
        let one = b"{\"receiver\": \"r\"}\n";
        let pretty = b"{\n  \"alerts\": [\n    {\n    }\n  ]\n}\n";
        let lines = b"{\"a\": 1}\n\n{\"a\": 2}\n";
        assert!(is_json_lines(Path::new("x.jsonl"), one));
        assert!(is_json_lines(Path::new("x.ndjson"), one));
        assert!(!is_json_lines(Path::new("x.json"), one));
        assert!(!is_json_lines(Path::new("x.json"), pretty));
        assert!(is_json_lines(Path::new("x.json"), lines));
        assert!(is_json_lines(Path::new("capture.log"), lines));
    }

    #[test]
    fn request_id_is_fnv1a_64_of_the_bytes() {
        // FNV-1a 64 offset basis and the published vector for "a".
        assert_eq!(request_id(b""), 0xcbf29ce484222325_u64 as i64);
        assert_eq!(request_id(b"a"), 0xaf63dc4c8601ec8c_u64 as i64);
    }
}
