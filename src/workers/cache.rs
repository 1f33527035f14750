//! The fingerprint cache: the last committed state of recent alert episodes,
//! so that an unchanged repeat (Alertmanager re-sends firing alerts every
//! group/repeat interval; HA pairs send everything twice) costs no write.
//!
//! Updated only after a commit. The database stays correct without it: the
//! write itself is idempotent, the cache only saves the round trip.

use std::hash::Hasher;
use std::num::NonZeroUsize;

use fnv::FnvHasher;
use lru::LruCache;
use parking_lot::{Mutex, MutexGuard};

use crate::model::{unix_micros, Alert, Episode, Interner, Status};

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
    lru: Option<Mutex<LruCache<Episode, EpisodeState>>>,
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

    /// Records states that have just been committed.
    pub fn committed(&self, states: impl IntoIterator<Item = (Episode, EpisodeState)>) {
        if let Some(lru) = &self.lru {
            let mut lru = lru.lock();
            for (episode, state) in states {
                lru.put(episode, state);
            }
        }
    }
}

pub struct CacheView<'a>(Option<MutexGuard<'a, LruCache<Episode, EpisodeState>>>);

impl CacheView<'_> {
    /// Whether `state` is already what PostgreSQL holds for `episode`.
    pub fn is_committed(&mut self, episode: &Episode, state: &EpisodeState) -> bool {
        self.0
            .as_mut()
            .is_some_and(|lru| lru.get(episode) == Some(state))
    }
}
