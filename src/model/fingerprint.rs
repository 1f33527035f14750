//! Alertmanager's alert fingerprint (prometheus/common `model/signature.go`,
//! `labelSetToFingerprint`): FNV-1a 64 over `name 0xFF value 0xFF` for each
//! label, in byte-wise name order.

use std::fmt;
use std::hash::Hasher;

use fnv::FnvHasher;

/// Separates names and values in the hashed byte stream, as upstream does.
const SEPARATOR: u8 = 0xFF;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// Computes the fingerprint of a label set whose pairs are already sorted
    /// by name (the caller's invariant; see `model::Alert`).
    ///
    /// ```
    /// use alert_ingest::model::Fingerprint;
    /// let fp = Fingerprint::of_sorted([("alertname", "alert1"), ("severity", "critical")]);
    /// assert_eq!(fp.to_string(), "0223b772b51c29e1");
    /// ```
    pub fn of_sorted<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Fingerprint {
        let mut hasher = FnvHasher::default();
        for (name, value) in labels {
            hasher.write(name.as_bytes());
            hasher.write_u8(SEPARATOR);
            hasher.write(value.as_bytes());
            hasher.write_u8(SEPARATOR);
        }
        Fingerprint(hasher.finish())
    }

    /// Parses the 16 lowercase hex digits Alertmanager sends.
    pub fn parse_hex(s: &str) -> Option<Fingerprint> {
        let valid = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| u64::from_str_radix(s, 16).ok().map(Fingerprint))?
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(labels: &[(&str, &str)]) -> String {
        let mut sorted = labels.to_vec();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Fingerprint::of_sorted(sorted).to_string()
    }

    #[test]
    fn upstream_vectors() {
        assert_eq!(fp(&[]), "cbf29ce484222325");
        assert_eq!(
            fp(&[("job", "foo"), ("severity", "warning")]),
            "9266ef3da838ad95"
        );
        assert_eq!(
            fp(&[("alertname", "alert1"), ("severity", "critical")]),
            "0223b772b51c29e1"
        );
        assert_eq!(
            fp(&[("name", "garland, briggs"), ("fear", "love is not enough")]),
            "507a62d79ee76c9a"
        );
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let f = Fingerprint::parse_hex("0223b772b51c29e1").unwrap();
        assert_eq!(f.to_string(), "0223b772b51c29e1");
        assert_eq!(Fingerprint::parse_hex("0223B772B51C29E1"), None);
        assert_eq!(Fingerprint::parse_hex("0223b772b51c29e"), None);
        assert_eq!(Fingerprint::parse_hex("+223b772b51c29e1"), None);
    }
}
