//! The spool directory: created if missing, locked for one process, named
//! by a meta file, and checked before anything in it is trusted.
//!
//! ```text
//! spool/
//!   LOCK                      held (flock) by the process using the spool; its pid
//!   SPOOL                     "alert-ingest spool", the format version and the spool's id
//!   00000000000000000007.seg  segments, oldest first
//!   corrupt/                  bytes cut from damaged segments, kept for inspection
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::segment::{self, FORMAT_VERSION};
use super::{OpenError, SpoolId};

const LOCK_FILE: &str = "LOCK";
const META_FILE: &str = "SPOOL";
const META_TITLE: &str = "alert-ingest spool";
pub const CORRUPT_DIR: &str = "corrupt";

/// An open, locked spool directory.
pub struct Dir {
    pub path: PathBuf,
    pub id: SpoolId,
    /// Held for the life of the process; the kernel drops the lock with it.
    _lock: File,
}

impl Dir {
    /// Creates the directory if needed, takes its lock, reads (or writes)
    /// its meta file, and refuses a directory that is not ours to use.
    pub fn open(path: &Path) -> Result<Dir, OpenError> {
        let io = |e| OpenError::io(path, e);
        fs::create_dir_all(path).map_err(io)?;
        let lock = lock(path)?;
        let id = match read_meta(path)? {
            Some(id) => id,
            None => {
                refuse_foreign_files(path)?;
                write_meta(path)?
            }
        };
        Ok(Dir {
            path: path.to_owned(),
            id,
            _lock: lock,
        })
    }

    /// Removes segments left half-prepared by a crash (never part of the
    /// spool: see `segment::prepare`).
    pub fn remove_prepared(&self) -> Result<(), OpenError> {
        for entry in fs::read_dir(&self.path).map_err(|e| OpenError::io(&self.path, e))? {
            let path = entry.map_err(|e| OpenError::io(&self.path, e))?.path();
            if path.extension().is_some_and(|e| e == "prepared") {
                fs::remove_file(&path).map_err(|e| OpenError::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// The segments' numbers, in order.
    pub fn segments(&self) -> Result<Vec<u64>, OpenError> {
        let mut numbers = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(|e| OpenError::io(&self.path, e))? {
            let entry = entry.map_err(|e| OpenError::io(&self.path, e))?;
            if let Some(n) = entry.file_name().to_str().and_then(segment::number_of) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }
}

fn lock(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| OpenError::io(&path, e))?;
    if let Err(e) = file.try_lock() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(match e {
            fs::TryLockError::WouldBlock => OpenError::Locked {
                dir: dir.to_owned(),
                holder: holder.trim().to_owned(),
            },
            fs::TryLockError::Error(e) => OpenError::io(&path, e),
        });
    }
    let pid = std::process::id().to_string();
    file.set_len(0)
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(|e| OpenError::io(&path, e))?;
    Ok(file)
}

/// The id in the meta file; `None` when there is no meta file yet.
fn read_meta(dir: &Path) -> Result<Option<SpoolId>, OpenError> {
    let path = dir.join(META_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(OpenError::io(&path, e)),
    };
    let not_ours = || OpenError::NotASpool {
        dir: dir.to_owned(),
        why: format!("{META_FILE} is not an alert-ingest spool's meta file"),
    };
    let mut lines = text.lines();
    if lines.next() != Some(META_TITLE) {
        return Err(not_ours());
    }
    let mut version = None;
    let mut id = None;
    for line in lines {
        match line.split_once(": ") {
            Some(("format", v)) => version = v.parse::<u32>().ok(),
            Some(("id", v)) => id = SpoolId::parse_hex(v),
            _ => {}
        }
    }
    match (version, id) {
        (Some(FORMAT_VERSION), Some(id)) => Ok(Some(id)),
        (Some(found), Some(_)) => Err(OpenError::Incompatible {
            dir: dir.to_owned(),
            found,
        }),
        _ => Err(not_ours()),
    }
}

/// A new spool's meta file, written whole or not at all (a temporary file,
/// synced, renamed, the directory synced).
fn write_meta(dir: &Path) -> Result<SpoolId, OpenError> {
    let id = SpoolId::random().map_err(|e| OpenError::io(Path::new("/dev/urandom"), e))?;
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = format!("{META_TITLE}\nformat: {FORMAT_VERSION}\nid: {id}\ncreated: {created}\n");
    let tmp = dir.join(format!("{META_FILE}.tmp"));
    let path = dir.join(META_FILE);
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| OpenError::io(&path, e))?;
    tracing::info!(dir = %dir.display(), spool_id = %id, "created a new spool");
    Ok(id)
}

/// A directory without a meta file must hold nothing but what a crash
/// while creating one leaves: it may be someone else's.
fn refuse_foreign_files(dir: &Path) -> Result<(), OpenError> {
    for entry in fs::read_dir(dir).map_err(|e| OpenError::io(dir, e))? {
        let name = entry.map_err(|e| OpenError::io(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if name != LOCK_FILE && name != format!("{META_FILE}.tmp") {
            return Err(OpenError::NotASpool {
                dir: dir.to_owned(),
                why: format!("it holds {name:?} but no {META_FILE} file"),
            });
        }
    }
    Ok(())
}
