//! Label and annotation strings, interned up to a bound.
//!
//! Bounded, not scoped: the first `capacity` distinct strings of at most
//! `MAX_INTERNED_BYTES` bytes the process meets (in practice label names and the values that repeat — `alertname`,
//! `severity`, `cluster`, `job`…) are interned for the life of the process;
//! past that bound a string is kept as an owned copy in its alert instead.
//! So a stream of label values that never repeat (a new pod name in every
//! alert, for days) cannot grow the interner beyond `capacity` strings: their
//! memory lives and dies with the alerts that carry them.

use lasso::{Spur, ThreadedRodeo};

/// A string that is either interned or, past the interner's bound, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sym {
    Interned(Spur),
    Owned(Box<str>),
}

/// Longer strings are never interned: label names and the values that repeat
/// are short, and a bound on count alone would let a few huge strings pin
/// unbounded memory for the life of the process.
pub const MAX_INTERNED_BYTES: usize = 64;

pub struct Interner {
    /// aHash: several times cheaper than the default SipHash on short label
    /// strings, and still keyed per process, so senders cannot aim collisions.
    rodeo: ThreadedRodeo<Spur, ahash::RandomState>,
    /// Soft bound: concurrent callers may overshoot it by at most one string
    /// each, since checking the length and interning are two steps.
    capacity: usize,
}

impl Interner {
    pub fn new(capacity: usize) -> Interner {
        Interner {
            rodeo: ThreadedRodeo::with_hasher(ahash::RandomState::new()),
            capacity,
        }
    }

    pub fn intern(&self, s: &str) -> Sym {
        if s.len() > MAX_INTERNED_BYTES {
            return Sym::Owned(s.into());
        }
        if let Some(spur) = self.rodeo.get(s) {
            return Sym::Interned(spur);
        }
        if self.rodeo.len() < self.capacity {
            return Sym::Interned(self.rodeo.get_or_intern(s));
        }
        Sym::Owned(s.into())
    }

    pub fn resolve<'a>(&'a self, sym: &'a Sym) -> &'a str {
        match sym {
            Sym::Interned(spur) => self.rodeo.resolve(spur),
            Sym::Owned(s) => s,
        }
    }

    /// How many strings are interned (exported as a metric).
    pub fn len(&self) -> usize {
        self.rodeo.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rodeo.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_growing_at_capacity_but_keeps_every_string() {
        let interner = Interner::new(3);
        let syms: Vec<Sym> = (0..100)
            .map(|i| interner.intern(&format!("pod-{i}")))
            .collect();
        assert_eq!(interner.len(), 3);
        for (i, sym) in syms.iter().enumerate() {
            assert_eq!(interner.resolve(sym), format!("pod-{i}"));
        }
        assert!(matches!(interner.intern("pod-1"), Sym::Interned(_)));
        assert!(matches!(interner.intern("pod-50"), Sym::Owned(_)));
    }

    #[test]
    fn long_strings_are_never_interned() {
        let interner = Interner::new(100);
        let long = "x".repeat(MAX_INTERNED_BYTES + 1);
        assert!(matches!(interner.intern(&long), Sym::Owned(_)));
        assert_eq!(interner.len(), 0);
    }
}
