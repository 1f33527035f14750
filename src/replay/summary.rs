//! What a replay did, printed when it ends:
//!
//! ```text
//! files: 3
//! notifications: 5 (2 rejected)
//! alerts: 90
//! stored: 88 (episodes inserted or changed)
//! skipped: 2 (repeats: unchanged, or no newer than what the database held)
//! rejected: 2 notifications, grouped by reason:
//!   malformed JSON: InvalidNumber at character 12 ('x') (1)
//!     captures/bad.json
//!   alerts[0].startsAt: invalid RFC 3339 timestamp (1)
//!     captures/night.jsonl:3
//! ```
//!
//! A write that failed for good adds `not written: N alerts (why)`.

use std::collections::BTreeMap;
use std::fmt;

use super::{Captured, Source};

/// Sources listed under one reason; the rest are counted.
const MAX_SOURCES_PER_REASON: usize = 10;

/// A body that was not stored, and why.
#[derive(Debug)]
pub struct Rejected {
    pub source: Source,
    pub reason: String,
}

impl Rejected {
    pub fn new(source: Source, reason: String) -> Rejected {
        Rejected { source, reason }
    }
}

#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    /// Bodies found, rejected ones included.
    pub notifications: usize,
    /// Alerts of the notifications that parsed.
    pub alerts: u64,
    /// Episodes inserted or changed (each added an `alert_events` row).
    pub stored: u64,
    /// Alerts that changed nothing: unchanged repeats, and versions no newer
    /// than what the database held before the replay.
    pub skipped: u64,
    /// Alerts of notifications the database refused, left unwritten.
    pub refused_alerts: u64,
    pub rejected: Vec<Rejected>,
    /// Why writing stopped before the end (a failure that did not pass).
    pub aborted: Option<String>,
}

impl Summary {
    pub fn new(files: usize, captured: &[Captured], rejected: Vec<Rejected>) -> Summary {
        Summary {
            files,
            notifications: captured.len() + rejected.len(),
            alerts: captured.iter().map(|c| c.webhook.alerts.len() as u64).sum(),
            rejected,
            ..Summary::default()
        }
    }

    /// Everything was stored or skipped as a repeat.
    pub fn is_clean(&self) -> bool {
        self.rejected.is_empty() && self.aborted.is_none()
    }

    /// Rejections by reason, largest group first, sources in order.
    fn by_reason(&self) -> Vec<(&str, Vec<&Source>)> {
        let mut groups: BTreeMap<&str, Vec<&Source>> = BTreeMap::new();
        for r in &self.rejected {
            groups.entry(&r.reason).or_default().push(&r.source);
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_by_key(|(_, sources)| std::cmp::Reverse(sources.len()));
        for (_, sources) in &mut groups {
            sources.sort();
        }
        groups
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "files: {}", self.files)?;
        writeln!(
            f,
            "notifications: {} ({} rejected)",
            self.notifications,
            self.rejected.len()
        )?;
        writeln!(f, "alerts: {}", self.alerts)?;
        writeln!(f, "stored: {} (episodes inserted or changed)", self.stored)?;
        writeln!(
            f,
            "skipped: {} (repeats: unchanged, or no newer than what the database held)",
            self.skipped
        )?;
        if let Some(why) = &self.aborted {
            let done = self.stored + self.skipped + self.refused_alerts;
            let unwritten = self.alerts.saturating_sub(done);
            writeln!(f, "not written: {unwritten} alerts ({why})")?;
        }
        if self.rejected.is_empty() {
            return writeln!(f, "rejected: 0");
        }
        writeln!(
            f,
            "rejected: {} notifications, grouped by reason:",
            self.rejected.len()
        )?;
        for (reason, sources) in self.by_reason() {
            writeln!(f, "  {reason} ({})", sources.len())?;
            for source in sources.iter().take(MAX_SOURCES_PER_REASON) {
                writeln!(f, "    {source}")?;
            }
            if sources.len() > MAX_SOURCES_PER_REASON {
                writeln!(
                    f,
                    "    … and {} more",
                    sources.len() - MAX_SOURCES_PER_REASON
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn rejection(path: &str, line: Option<usize>, reason: &str) -> Rejected {
        let source = Source {
            path: Path::new(path).into(),
            line,
        };
        Rejected::new(source, reason.into())
    }

    #[test]
    fn rejections_are_grouped_by_reason_largest_first_and_capped() {
        let mut rejected: Vec<_> = (1..=12)
            .rev()
            .map(|line| rejection("a.jsonl", Some(line), "no alerts"))
            .collect();
        rejected.push(rejection("b.json", None, "malformed JSON: x"));
        let summary = Summary {
            notifications: 20,
            rejected,
            ..Summary::default()
        };
        let text = summary.to_string();
        let expected = "rejected: 13 notifications, grouped by reason:
  no alerts (12)
    a.jsonl:1
    a.jsonl:2
    a.jsonl:3
    a.jsonl:4
    a.jsonl:5
    a.jsonl:6
    a.jsonl:7
    a.jsonl:8
    a.jsonl:9
    a.jsonl:10
    … and 2 more
  malformed JSON: x (1)
    b.json
";
        assert!(text.ends_with(expected), "{text}");
        assert!(!summary.is_clean());
    }

    #[test]
    fn a_clean_run_says_so() {
        let summary = Summary {
            files: 1,
            notifications: 1,
            alerts: 3,
            stored: 1,
            skipped: 2,
            ..Summary::default()
        };
        assert!(summary.is_clean());
        assert_eq!(
            summary.to_string(),
            "files: 1\nnotifications: 1 (0 rejected)\nalerts: 3\n\
             stored: 1 (episodes inserted or changed)\n\
             skipped: 2 (repeats: unchanged, or no newer than what the database held)\n\
             rejected: 0\n"
        );
    }
}
