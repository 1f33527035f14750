//! The fingerprint cache: the state this instance last stored for recent
//! alert episodes, with the version it stored (`alerts.version_at`, the
//! receipt time of its delivery), so that an unchanged repeat (Alertmanager
//! re-sends firing alerts every group/repeat interval; HA pairs send
//! everything twice) costs PostgreSQL only a move of the row's version.
//!
//! Never wrong across instances: the batch statement moves only the version
//! of a row that still holds the version cached here (no other instance or
//! delivery changed it since), and writes the alert in full otherwise (see
//! `store::write_batch!`). Updated only after a commit, with what PostgreSQL
//! said it applied; the database stays correct without it.

use std::hash::Hasher;
use std::num::NonZeroUsize;

use fnv::FnvHasher;
use lru::LruCache;
use parking_lot::{Mutex, MutexGuard};

use crate::model::{unix_micros, Alert, Episode, Interner, Status};

/// A cached episode: its state and the version it was stored with (µs).
type Stored = (EpisodeState, i64);

/// What makes an episode's row change (and earn an `alert_events` row): the
/// same columns the write's `IS DISTINCT FROM` compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpisodeState {
    status: Status,
    ends_at_us: Option<i64>,
    /// FNV-1a 64 of the annotations.
    annotations: u64,
}

impl EpisodeState {
    pub fn of(alert: &Alert, interner: &Interner) -> EpisodeState {
        let mut h = FnvHasher::default();
        for pair in &alert.annotations {
            h.write(interner.resolve(&pair.name).as_bytes());
            h.write_u8(0xFF);
            h.write(interner.resolve(&pair.value).as_bytes());
            h.write_u8(0xFF);
        }
        EpisodeState {
            status: alert.status,
            ends_at_us: alert.ends_at.map(unix_micros),
            annotations: h.finish(),
        }
    }
}

/// Shared by all workers (a repeat may reach any of them).
pub struct EpisodeCache {
    /// `None` when disabled (capacity 0).
    lru: Option<Mutex<LruCache<Episode, Stored>>>,
}

impl EpisodeCache {
    pub fn new(capacity: usize) -> EpisodeCache {
        EpisodeCache {
            lru: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
        }
    }

    /// The cache locked once for a run of lookups (one request's alerts),
    /// rather than once per alert.
    pub fn view(&self) -> CacheView<'_> {
        CacheView(self.lru.as_ref().map(|lru| lru.lock()))
    }

    /// Records what a batch just committed: `(episode, state, version)`
    /// for each alert written, except the `unapplied` ones, which PostgreSQL
    /// found a later version of (or this one already): those are forgotten.
    pub fn committed(
        &self,
        states: impl IntoIterator<Item = (Episode, EpisodeState, i64)>,
        unapplied: &[Episode],
    ) {
        if let Some(lru) = &self.lru {
            let mut lru = lru.lock();
            for (episode, state, version) in states {
                lru.put(episode, (state, version));
            }
            for episode in unapplied {
                lru.pop(episode);
            }
        }
    }
}

pub struct CacheView<'a>(Option<MutexGuard<'a, LruCache<Episode, Stored>>>);

impl CacheView<'_> {
    /// The version this instance stored `episode` with, if it stored it in
    /// `state`: the version the write checks the row still holds.
    pub fn stored_version(&mut self, episode: &Episode, state: &EpisodeState) -> Option<i64> {
        let (cached, version) = self.0.as_mut()?.get(episode)?;
        (cached == state).then_some(*version)
    }
}
