//! RFC 3339 timestamps as Alertmanager writes them (Go's `time.Time`).

use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{OffsetDateTime, UtcOffset};

/// Go's zero `time.Time`: Alertmanager's way of saying "not set".
const GO_ZERO_TIME: OffsetDateTime = datetime!(0001-01-01 0:00 UTC);

const NANOS_PER_MICRO: u32 = 1_000;

/// Why a timestamp is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    Syntax,
    /// Valid RFC 3339 whose UTC instant is after the year 9999
    /// (e.g. `9999-12-31T23:59:59-23:00`).
    OutOfRange,
}

/// Parses any RFC 3339 timestamp (any offset, up to nanoseconds), converts
/// it to UTC and truncates it to microseconds, PostgreSQL's resolution.
/// `Ok(None)` for Go's zero time.
pub fn parse(s: &str) -> Result<Option<OffsetDateTime>, Invalid> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| Invalid::Syntax)?;
    let t = t
        .checked_to_offset(UtcOffset::UTC)
        .ok_or(Invalid::OutOfRange)?;
    if t == GO_ZERO_TIME {
        return Ok(None);
    }
    let micros_only = (t.nanosecond() / NANOS_PER_MICRO) * NANOS_PER_MICRO;
    Ok(Some(
        t.replace_nanosecond(micros_only)
            .expect("truncation keeps it in range"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_zero_time_is_none() {
        assert_eq!(parse("0001-01-01T00:00:00Z").unwrap(), None);
    }

    #[test]
    fn nanoseconds_are_truncated_to_microseconds() {
        let t = parse("2026-11-23T19:24:38.21263218Z").unwrap().unwrap();
        assert_eq!(t, datetime!(2026-11-23 19:24:38.212632 UTC));
    }

    #[test]
    fn any_offset_is_the_same_instant() {
        let utc = parse("2026-11-23T19:14:38Z").unwrap();
        assert_eq!(parse("2026-11-23T21:14:38+02:00").unwrap(), utc);
        assert_eq!(parse("2026-11-23T13:44:38.000-05:30").unwrap(), utc);
    }

    #[test]
    fn zero_time_with_an_offset_is_a_real_instant() {
        // Only the exact zero instant means "unset"; Go never writes it otherwise.
        assert!(parse("0001-01-01T01:00:00+01:00").unwrap().is_none());
        assert!(parse("0001-01-01T00:00:01Z").unwrap().is_some());
    }

    #[test]
    fn offsets_that_leave_the_representable_range_are_refused() {
        assert_eq!(parse("9999-12-31T23:59:59-23:00"), Err(Invalid::OutOfRange));
        let t = parse("9999-12-31T22:59:59-01:00").unwrap().unwrap();
        assert_eq!(t.offset(), UtcOffset::UTC);
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-11-23T19:14:38",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
