//! Query strings → typed requests. Every parameter is checked here; a bad
//! or unknown one is a 400 naming it, before any SQL runs.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::model::{from_unix_micros, unix_micros, Fingerprint, Status};

use super::HistoryError;

/// Items per page when `limit` is not given, and the most one page holds.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
/// Rows in a stats answer when `limit` is not given.
pub const DEFAULT_STATS_LIMIT: i64 = 10;
/// The most `buckets` a stats answer's series may have.
pub const MAX_BUCKETS: i32 = 500;
/// The stats window when `since` is not given.
pub const DEFAULT_STATS_WINDOW: Duration = Duration::hours(24);

/// `GET /api/v1/alerts`.
#[derive(Debug, Default, PartialEq)]
pub struct AlertsQuery {
    pub filters: Filters,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub active_at: Option<OffsetDateTime>,
    pub page: Page,
}

/// What an episode must be to be listed or counted: the same parameters
/// for `alerts` and every stats route.
#[derive(Debug, Default, PartialEq)]
pub struct Filters {
    pub status: Option<Status>,
    pub alertname: Option<String>,
    /// `label=<name>=<value>`, any number: the episode's labels contain them all.
    pub labels: Vec<(String, String)>,
}

impl Filters {
    /// Takes `name=value` if it is a filter: whether it was one.
    fn take(&mut self, name: &str, value: &str) -> Result<bool, HistoryError> {
        match name {
            "status" => set(&mut self.status, name, parse_status(value)?)?,
            "alertname" => set(&mut self.alertname, name, value.to_owned())?,
            "label" => self.labels.push(parse_label(value)?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `GET /api/v1/alerts/{fingerprint}`.
#[derive(Debug, Default, PartialEq)]
pub struct EpisodesQuery {
    pub page: Page,
}

/// Keyset pagination, newest first.
#[derive(Debug, PartialEq)]
pub struct Page {
    pub limit: i64,
    /// Where the previous page ended: only older items follow.
    pub after: Option<Cursor>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// The position of an item in newest-first order: `(starts_at, fingerprint)`.
/// Opaque to clients (base64url of `<micros>.<fingerprint>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub starts_at: OffsetDateTime,
    pub fingerprint: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let text = format!("{}.{}", unix_micros(self.starts_at), self.fingerprint);
        URL_SAFE_NO_PAD.encode(text)
    }

    fn decode(value: &str) -> Option<Cursor> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()?;
        let (micros, fingerprint) = text.split_once('.')?;
        Some(Cursor {
            starts_at: from_unix_micros(micros.parse().ok()?).filter(in_range)?,
            fingerprint: valid_fingerprint(fingerprint)?.to_owned(),
        })
    }
}

/// `GET /api/v1/stats/top`, `/api/v1/stats/flapping` and
/// `/api/v1/stats/durations`.
#[derive(Debug, PartialEq)]
pub struct StatsQuery {
    pub filters: Filters,
    pub since: OffsetDateTime,
    pub until: Option<OffsetDateTime>,
    pub by: GroupBy,
    pub limit: i64,
    /// `buckets=<n>`: each item also counts its episodes in `n` equal
    /// slices of the window (a sparkline's points).
    pub buckets: Option<i32>,
}

/// Which stats route a query is for: each takes its own parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// `stats/top`: also `by` and `buckets`.
    Top,
    /// `stats/flapping`: also `buckets`.
    Flapping,
    /// `stats/durations`.
    Durations,
}

/// `GET /api/v1/alerts/{fingerprint}/notifications`: the episode that
/// started at `starts_at`.
#[derive(Debug, PartialEq)]
pub struct NotificationsQuery {
    pub starts_at: OffsetDateTime,
    pub limit: i64,
}

/// What `stats/top` counts episodes by.
#[derive(Debug, PartialEq)]
pub enum GroupBy {
    Alertname,
    Label(String),
}

impl GroupBy {
    pub fn describe(&self) -> String {
        match self {
            GroupBy::Alertname => "alertname".into(),
            GroupBy::Label(name) => format!("label:{name}"),
        }
    }
}

/// A fingerprint as Alertmanager prints it: 16 lowercase hex digits.
pub fn valid_fingerprint(s: &str) -> Option<&str> {
    Fingerprint::parse_hex(s).map(|_| s)
}

impl AlertsQuery {
    pub fn parse(query: &str) -> Result<AlertsQuery, HistoryError> {
        let mut q = AlertsQuery::default();
        let mut page = PageParams::default();
        for (name, value) in pairs(query)? {
            if q.filters.take(&name, &value)? {
                continue;
            }
            match &*name {
                "since" => set(&mut q.since, &name, parse_time(&name, &value)?)?,
                "until" => set(&mut q.until, &name, parse_time(&name, &value)?)?,
                "active_at" => set(&mut q.active_at, &name, parse_time(&name, &value)?)?,
                _ => page.take(&name, &value)?,
            }
        }
        q.page = page.into_page();
        Ok(q)
    }
}

impl EpisodesQuery {
    pub fn parse(query: &str) -> Result<EpisodesQuery, HistoryError> {
        let mut page = PageParams::default();
        for (name, value) in pairs(query)? {
            page.take(&name, &value)?;
        }
        Ok(EpisodesQuery {
            page: page.into_page(),
        })
    }
}

/// `limit` and `cursor` as given, before defaults.
#[derive(Default)]
struct PageParams {
    limit: Option<i64>,
    after: Option<Cursor>,
}

impl PageParams {
    /// Any name but `limit` and `cursor` is unknown here.
    fn take(&mut self, name: &str, value: &str) -> Result<(), HistoryError> {
        match name {
            "limit" => set(&mut self.limit, name, parse_limit(value)?),
            "cursor" => {
                let cursor = Cursor::decode(value)
                    .ok_or_else(|| bad("cursor", "is not a cursor this API returned"))?;
                set(&mut self.after, name, cursor)
            }
            _ => Err(bad(name, "unknown parameter")),
        }
    }

    fn into_page(self) -> Page {
        Page {
            limit: self.limit.unwrap_or(DEFAULT_LIMIT),
            after: self.after,
        }
    }
}

impl StatsQuery {
    pub fn parse(query: &str, stat: Stat) -> Result<StatsQuery, HistoryError> {
        let mut filters = Filters::default();
        let (mut since, mut until, mut by, mut limit, mut buckets) = (None, None, None, None, None);
        for (name, value) in pairs(query)? {
            if filters.take(&name, &value)? {
                continue;
            }
            match &*name {
                "since" => set(&mut since, &name, parse_time(&name, &value)?)?,
                "until" => set(&mut until, &name, parse_time(&name, &value)?)?,
                "by" if stat == Stat::Top => set(&mut by, &name, parse_group_by(&value)?)?,
                "buckets" if stat != Stat::Durations => {
                    set(&mut buckets, &name, parse_buckets(&value)?)?
                }
                "limit" => set(&mut limit, &name, parse_limit(&value)?)?,
                _ => return Err(bad(&name, "unknown parameter")),
            }
        }
        Ok(StatsQuery {
            filters,
            since: since.unwrap_or_else(|| OffsetDateTime::now_utc() - DEFAULT_STATS_WINDOW),
            until,
            by: by.unwrap_or(GroupBy::Alertname),
            limit: limit.unwrap_or(DEFAULT_STATS_LIMIT),
            buckets,
        })
    }

    /// The end of the window a series slices: `until`, or now; never
    /// before `since`.
    pub fn series_end(&self) -> OffsetDateTime {
        let end = self.until.unwrap_or_else(OffsetDateTime::now_utc);
        end.max(self.since + time::Duration::SECOND)
    }
}

impl NotificationsQuery {
    pub fn parse(query: &str) -> Result<NotificationsQuery, HistoryError> {
        let (mut starts_at, mut limit) = (None, None);
        for (name, value) in pairs(query)? {
            match &*name {
                "starts_at" => set(&mut starts_at, &name, parse_time(&name, &value)?)?,
                "limit" => set(&mut limit, &name, parse_limit(&value)?)?,
                _ => return Err(bad(&name, "unknown parameter")),
            }
        }
        Ok(NotificationsQuery {
            starts_at: starts_at
                .ok_or_else(|| bad("starts_at", "is required: the episode's startsAt"))?,
            limit: limit.unwrap_or(DEFAULT_LIMIT),
        })
    }
}

/// A decoded `name=value`.
type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The decoded `name=value` pairs; U+0000, which PostgreSQL cannot take
/// in text, is refused here rather than as a database error.
fn pairs(query: &str) -> Result<Vec<Pair<'_>>, HistoryError> {
    let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
    match pairs
        .iter()
        .find(|(n, v)| n.contains('\0') || v.contains('\0'))
    {
        Some((name, _)) => Err(bad(name, "contains U+0000")),
        None => Ok(pairs),
    }
}

fn bad(name: &str, detail: &str) -> HistoryError {
    HistoryError::BadParameter {
        name: name.escape_debug().to_string(),
        detail: detail.into(),
    }
}

/// A parameter given twice is an error, not "the last one wins": the caller
/// meant something we would silently ignore.
fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), HistoryError> {
    if slot.replace(value).is_some() {
        return Err(bad(name, "given more than once"));
    }
    Ok(())
}

fn parse_status(value: &str) -> Result<Status, HistoryError> {
    Status::parse(value).ok_or_else(|| bad("status", "must be firing or resolved"))
}

fn parse_label(value: &str) -> Result<(String, String), HistoryError> {
    match value.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.into(), value.into())),
        _ => Err(bad("label", "must be <name>=<value>")),
    }
}

fn parse_time(name: &str, value: &str) -> Result<OffsetDateTime, HistoryError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .ok()
        .filter(in_range)
        .ok_or_else(|| {
            bad(
                name,
                "must be an RFC 3339 timestamp from year 1 to 9999, e.g. 2026-11-24T03:12:00Z",
            )
        })
}

/// Years 1 to 9999 in UTC, as the webhook parser accepts (PostgreSQL's range
/// is wider, but not as wide as `time`'s). `checked_to_offset`, as in
/// `parse::timestamp`: a valid RFC 3339 time such as
/// `9999-12-31T23:59:59-23:00` is past `time`'s range in UTC, where
/// `to_offset` would panic.
fn in_range(t: &OffsetDateTime) -> bool {
    t.checked_to_offset(time::UtcOffset::UTC)
        .is_some_and(|utc| (1..=9999).contains(&utc.year()))
}

fn parse_limit(value: &str) -> Result<i64, HistoryError> {
    parse_count("limit", value, MAX_LIMIT)
}

fn parse_buckets(value: &str) -> Result<i32, HistoryError> {
    parse_count("buckets", value, MAX_BUCKETS)
}

/// An integer from 1 to `max`, or a 400 naming the parameter.
fn parse_count<T>(name: &str, value: &str, max: T) -> Result<T, HistoryError>
where
    T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display + Copy,
{
    match value.parse::<T>() {
        Ok(n) if n >= T::from(1) && n <= max => Ok(n),
        _ => Err(bad(name, &format!("must be an integer from 1 to {max}"))),
    }
}

fn parse_group_by(value: &str) -> Result<GroupBy, HistoryError> {
    match value.strip_prefix("label:") {
        Some(name) if !name.is_empty() => Ok(GroupBy::Label(name.into())),
        None if value == "alertname" => Ok(GroupBy::Alertname),
        _ => Err(bad("by", "must be alertname or label:<name>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn rejected(result: Result<impl std::fmt::Debug, HistoryError>) -> String {
        match result {
            Err(HistoryError::BadParameter { name, .. }) => name,
            other => panic!("expected a bad parameter, got {other:?}"),
        }
    }

    #[test]
    fn alerts_query_reads_every_filter() {
        let q = AlertsQuery::parse(
            "status=firing&alertname=Disk%20Full&label=job=node&label=env=a%3Db\
             &since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00%2B01:00\
             &active_at=2026-11-01T12:00:00Z&limit=5",
        )
        .unwrap();
        assert_eq!(q.filters.status, Some(Status::Firing));
        assert_eq!(q.filters.alertname.as_deref(), Some("Disk Full"));
        assert_eq!(
            q.filters.labels,
            vec![("job".into(), "node".into()), ("env".into(), "a=b".into())]
        );
        assert_eq!(q.since, Some(datetime!(2026-11-01 00:00 UTC)));
        assert_eq!(q.until, Some(datetime!(2026-11-01 23:00 UTC)));
        assert_eq!(q.page.limit, 5);
        assert_eq!(AlertsQuery::parse("").unwrap(), AlertsQuery::default());
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(rejected(AlertsQuery::parse("status=open")), "status");
        assert_eq!(rejected(AlertsQuery::parse("limit=0")), "limit");
        assert_eq!(rejected(AlertsQuery::parse("limit=1001")), "limit");
        assert_eq!(rejected(AlertsQuery::parse("limit=ten")), "limit");
        assert_eq!(rejected(AlertsQuery::parse("since=yesterday")), "since");
        assert_eq!(rejected(AlertsQuery::parse("label=novalue")), "label");
        assert_eq!(rejected(AlertsQuery::parse("label==x")), "label");
        assert_eq!(rejected(AlertsQuery::parse("cursor=xyz")), "cursor");
        assert_eq!(rejected(AlertsQuery::parse("limit=1&limit=2")), "limit");
        assert_eq!(rejected(AlertsQuery::parse("offset=100")), "offset");
        assert_eq!(rejected(StatsQuery::parse("by=job", Stat::Top)), "by");
        assert_eq!(
            rejected(StatsQuery::parse("by=alertname", Stat::Flapping)),
            "by"
        );
        assert_eq!(rejected(EpisodesQuery::parse("status=firing")), "status");
        assert_eq!(rejected(AlertsQuery::parse("alertname=a%00b")), "alertname");
        assert_eq!(rejected(AlertsQuery::parse("label=a=%00")), "label");
        assert_eq!(rejected(StatsQuery::parse("by=label:%00", Stat::Top)), "by");
        assert_eq!(
            rejected(StatsQuery::parse("buckets=0", Stat::Top)),
            "buckets"
        );
        assert_eq!(
            rejected(StatsQuery::parse("buckets=501", Stat::Flapping)),
            "buckets"
        );
        assert_eq!(
            rejected(StatsQuery::parse("buckets=5", Stat::Durations)),
            "buckets"
        );
        assert_eq!(rejected(NotificationsQuery::parse("limit=5")), "starts_at");
        assert_eq!(
            rejected(NotificationsQuery::parse("starts_at=x")),
            "starts_at"
        );
        assert_eq!(
            rejected(AlertsQuery::parse("since=0000-12-31T00:00:00Z")),
            "since"
        );
        assert_eq!(
            rejected(AlertsQuery::parse("until=9999-12-31T23:59:59-23:00")),
            "until"
        );
        let ancient = URL_SAFE_NO_PAD.encode("-210000000000000000.0223b772b51c29e1");
        assert_eq!(
            rejected(AlertsQuery::parse(&format!("cursor={ancient}"))),
            "cursor"
        );
    }

    #[test]
    fn cursor_round_trips_and_rejects_forgeries() {
        let cursor = Cursor {
            starts_at: datetime!(2026-11-24 03:12:00.123456 UTC),
            fingerprint: "0223b772b51c29e1".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        let forged = URL_SAFE_NO_PAD.encode("1.'; DROP TABLE alerts;--");
        assert_eq!(Cursor::decode(&forged), None);
    }

    #[test]
    fn stats_default_to_the_last_day_by_alertname() {
        let q = StatsQuery::parse("", Stat::Top).unwrap();
        assert_eq!(q.by, GroupBy::Alertname);
        assert_eq!(q.limit, DEFAULT_STATS_LIMIT);
        let age = OffsetDateTime::now_utc() - q.since;
        assert!((age - DEFAULT_STATS_WINDOW).abs() < Duration::seconds(5));
        let q = StatsQuery::parse("by=label:namespace&limit=3", Stat::Top).unwrap();
        assert_eq!(q.by, GroupBy::Label("namespace".into()));
        assert_eq!(q.limit, 3);
        assert_eq!(q.buckets, None);
        let q = StatsQuery::parse(
            "label=job=node&status=resolved&alertname=A",
            Stat::Durations,
        );
        let filters = q.unwrap().filters;
        assert_eq!(filters.labels, vec![("job".into(), "node".into())]);
        assert_eq!(filters.status, Some(Status::Resolved));
        assert_eq!(filters.alertname.as_deref(), Some("A"));
    }

    #[test]
    fn a_series_slices_the_window_up_to_until_or_now() {
        let q = StatsQuery::parse(
            "since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00Z&buckets=24",
            Stat::Flapping,
        )
        .unwrap();
        assert_eq!(q.buckets, Some(24));
        assert_eq!(q.series_end(), datetime!(2026-11-02 00:00 UTC));
        let q = StatsQuery::parse("since=2026-11-01T00:00:00Z", Stat::Top).unwrap();
        assert!(OffsetDateTime::now_utc() - q.series_end() < Duration::seconds(5));
        let future = StatsQuery::parse("since=9000-01-01T00:00:00Z", Stat::Top).unwrap();
        assert!(future.series_end() > future.since);
    }
}
