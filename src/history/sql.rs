//! The history queries. PostgreSQL builds each item's JSON itself
//! (`jsonb_build_object`), so an answer is rows of text joined, never
//! decoded and re-encoded here. SQL is assembled only from the fixed
//! fragments below; every value from the request is a bound parameter.

use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use crate::model::json_object;

use super::params::{AlertsQuery, Filters, GroupBy, NotificationsQuery, Page, StatsQuery};

/// One episode as the API shows it (`a` is the `alerts` row).
const EPISODE_JSON: &str = "jsonb_build_object(
    'fingerprint', a.fingerprint, 'alertname', a.alertname, 'status', a.status,
    'labels', a.labels, 'annotations', a.annotations, 'starts_at', a.starts_at,
    'ends_at', a.ends_at, 'generator_url', a.generator_url, 'receiver', a.receiver,
    'first_seen_at', a.first_seen_at, 'updated_at', a.updated_at)";

/// The episode's timeline, oldest first: its creation event (from the row
/// at hand, `a`, where it was stored since migration 6) and its changes in
/// `alert_events`. What the `alert_timeline` view gives, without probing
/// `alerts` again for the row the query already holds.
const EVENTS_JSON: &str = "jsonb_build_object('events', COALESCE((
    SELECT jsonb_agg(jsonb_build_object('status', e.status, 'ends_at', e.ends_at,
                                        'received_at', e.received_at)
                     ORDER BY e.received_at)
    FROM (SELECT a.first_status AS status, a.first_ends_at AS ends_at,
                 a.first_seen_at AS received_at
          WHERE a.first_status IS NOT NULL
          UNION ALL
          SELECT c.status, c.ends_at, c.received_at FROM alert_events c
          WHERE c.fingerprint = a.fingerprint AND c.starts_at = a.starts_at) e), '[]'::jsonb))";

/// A statement and its parameters. Pages select `starts_at, fingerprint,
/// json`; stats select `json` alone.
pub struct Sql {
    pub text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    fn new(text: String) -> Sql {
        Sql {
            text,
            params: Vec::new(),
        }
    }

    /// Binds a value; returns its placeholder (`$n`).
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn and(&mut self, condition: &str) {
        self.text.push_str(" AND ");
        self.text.push_str(condition);
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }
}

/// `GET /api/v1/alerts`: newest episodes first, filtered.
pub fn alerts(q: &AlertsQuery) -> Sql {
    let mut sql = Sql::new(format!(
        "SELECT a.starts_at, a.fingerprint, {EPISODE_JSON}::text FROM alerts a WHERE true"
    ));
    filter(&mut sql, &q.filters, "a.");
    if let Some(since) = q.since {
        let since = sql.bind(since);
        sql.and(&format!("a.starts_at >= {since}"));
    }
    if let Some(until) = q.until {
        let until = sql.bind(until);
        sql.and(&format!("a.starts_at < {until}"));
    }
    if let Some(at) = q.active_at {
        let at = sql.bind(at);
        sql.and(&format!(
            "a.starts_at <= {at} AND (a.ends_at IS NULL OR a.ends_at > {at})"
        ));
    }
    page(sql, &q.page)
}

/// `GET /api/v1/alerts/{fingerprint}`: that label set's episodes, newest
/// first, each with its timeline.
pub fn episodes(fingerprint: &str, q: &Page) -> Sql {
    let mut sql = Sql::new(format!(
        "SELECT a.starts_at, a.fingerprint, ({EPISODE_JSON} || {EVENTS_JSON})::text
         FROM alerts a WHERE true"
    ));
    let fingerprint = sql.bind(fingerprint.to_owned());
    sql.and(&format!("a.fingerprint = {fingerprint}"));
    page(sql, q)
}

/// `GET /api/v1/alerts/{fingerprint}/notifications`: the notifications
/// that carried the episode, oldest first. Alertmanager sends a group's
/// every alert in each of its notifications, and a notification row keeps
/// its group's labels and receiver, not its alerts: so, the notifications
/// to the episode's receiver whose group labels its labels contain,
/// received from its first stored delivery to its latest.
pub fn notifications(fingerprint: &str, q: &NotificationsQuery) -> Sql {
    let mut sql = Sql::new(String::new());
    let fingerprint = sql.bind(fingerprint.to_owned());
    let starts_at = sql.bind(q.starts_at);
    let limit = sql.bind(q.limit);
    sql.text = format!(
        "SELECT jsonb_build_object(
             'received_at', n.received_at, 'receiver', n.receiver, 'status', n.status,
             'group_key', n.group_key, 'group_labels', n.group_labels,
             'alert_count', n.alert_count, 'truncated_alerts', n.truncated_alerts,
             'external_url', n.external_url)::text
         FROM alerts a JOIN notifications n
           ON n.receiver = a.receiver AND a.labels @> n.group_labels
          AND n.received_at >= a.first_seen_at
          AND n.received_at <= COALESCE(a.version_at, a.updated_at)
         WHERE a.fingerprint = {fingerprint} AND a.starts_at = {starts_at}
         ORDER BY n.received_at, n.request_id LIMIT {limit}"
    );
    sql
}

/// Keyset pagination: after the cursor, newest first, one row more than the
/// page so that the caller knows whether another page follows.
fn page(mut sql: Sql, page: &Page) -> Sql {
    if let Some(after) = &page.after {
        let starts_at = sql.bind(after.starts_at);
        let fingerprint = sql.bind(after.fingerprint.clone());
        // The first term lets the starts_at index bound the scan.
        sql.and(&format!(
            "a.starts_at <= {starts_at} \
             AND (a.starts_at < {starts_at} OR a.fingerprint < {fingerprint})"
        ));
    }
    let limit = sql.bind(page.limit + 1);
    sql.text.push_str(&format!(
        " ORDER BY a.starts_at DESC, a.fingerprint DESC LIMIT {limit}"
    ));
    sql
}

/// `GET /api/v1/stats/top`: episode counts by alertname or by a label's value.
pub fn top(q: &StatsQuery) -> Sql {
    let mut sql = Sql::new(String::new());
    let value = match &q.by {
        GroupBy::Alertname => "alertname".to_owned(),
        GroupBy::Label(name) => format!("labels ->> {}", sql.bind(name.clone())),
    };
    let series = Series::bind(&mut sql, q);
    sql.text = match &series {
        None => format!(
            "SELECT jsonb_build_object('value', value, 'episodes', episodes)::text FROM (
             SELECT {value} AS value, count(*) AS episodes FROM alerts WHERE true"
        ),
        Some(s) => format!(
            "WITH counted AS (
             SELECT {value} AS value, {} AS bucket, count(*) AS n FROM alerts WHERE true",
            s.bucket
        ),
    };
    if let GroupBy::Label(_) = q.by {
        // Episodes without the label are not counted under a null value.
        sql.and(&format!("{value} IS NOT NULL"));
    }
    window(&mut sql, q.since, q.until);
    filter(&mut sql, &q.filters, "");
    let limit = sql.bind(q.limit);
    sql.text.push_str(&match &series {
        None => format!(
            " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {limit}) t ORDER BY episodes DESC, value"
        ),
        Some(s) => format!(
            " GROUP BY 1, 2),
             top AS (SELECT value, sum(n)::bigint AS episodes FROM counted
                     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {limit}){}
             SELECT jsonb_build_object('value', t.value, 'episodes', t.episodes{})::text
             FROM top t ORDER BY t.episodes DESC, t.value",
            s.picked("value"),
            s.member("value")
        ),
    });
    sql
}

/// `GET /api/v1/stats/flapping`: the label sets with the most episodes
/// (two or more) in the window, with the latest episode's name and labels.
pub fn flapping(q: &StatsQuery) -> Sql {
    let mut sql = Sql::new(String::new());
    let series = Series::bind(&mut sql, q);
    sql.text = match &series {
        None => "WITH top AS (
             SELECT fingerprint, count(*) AS episodes, max(starts_at) AS last_starts_at
             FROM alerts WHERE true"
            .into(),
        Some(s) => format!(
            "WITH counted AS (
             SELECT fingerprint, {} AS bucket, count(*) AS n, max(starts_at) AS last_starts_at
             FROM alerts WHERE true",
            s.bucket
        ),
    };
    window(&mut sql, q.since, q.until);
    filter(&mut sql, &q.filters, "");
    let limit = sql.bind(q.limit);
    let (top, picked, member) = match &series {
        None => (
            format!(
                " GROUP BY fingerprint HAVING count(*) > 1
                  ORDER BY episodes DESC, fingerprint LIMIT {limit})"
            ),
            String::new(),
            String::new(),
        ),
        Some(s) => (
            format!(
                " GROUP BY 1, 2),
                 top AS (SELECT fingerprint, sum(n)::bigint AS episodes,
                                max(last_starts_at) AS last_starts_at
                         FROM counted GROUP BY fingerprint HAVING sum(n) > 1
                         ORDER BY episodes DESC, fingerprint LIMIT {limit})"
            ),
            s.picked("fingerprint"),
            s.member("fingerprint"),
        ),
    };
    sql.text.push_str(&format!(
        "{top}{picked}
         SELECT jsonb_build_object('fingerprint', t.fingerprint, 'episodes', t.episodes,
                                   'alertname', a.alertname, 'labels', a.labels,
                                   'last_starts_at', t.last_starts_at{member})::text
         FROM top t JOIN alerts a
           ON a.fingerprint = t.fingerprint AND a.starts_at = t.last_starts_at
         ORDER BY t.episodes DESC, t.fingerprint"
    ));
    sql
}

/// `GET /api/v1/stats/durations`: time to resolve (`ends_at - starts_at`)
/// of the episodes started in the window that have resolved, per
/// alertname: how many, the median and the 90th percentile in seconds
/// (MTTR), the alertnames with the most resolved episodes first.
pub fn durations(q: &StatsQuery) -> Sql {
    let mut sql = Sql::new(
        "SELECT jsonb_build_object('alertname', alertname, 'resolved', resolved,
                                   'median_seconds', median, 'p90_seconds', p90)::text FROM (
         SELECT alertname, count(*) AS resolved,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90
         FROM (SELECT alertname, extract(epoch FROM ends_at - starts_at)::float8 AS seconds
               FROM alerts
               WHERE status = 'resolved' AND ends_at >= starts_at"
            .into(),
    );
    window(&mut sql, q.since, q.until);
    filter(&mut sql, &q.filters, "");
    let limit = sql.bind(q.limit);
    sql.text.push_str(&format!(
        ") r GROUP BY alertname ORDER BY resolved DESC, alertname LIMIT {limit}) t
         ORDER BY resolved DESC, alertname"
    ));
    sql
}

/// `buckets=<n>`: a stat counts each item's episodes per equal slice of
/// the window. Without it, the statements are those before series existed.
struct Series {
    /// Puts an episode in its slice, 1..=n.
    bucket: String,
    buckets: String,
}

impl Series {
    fn bind(sql: &mut Sql, q: &StatsQuery) -> Option<Series> {
        let buckets = q.buckets?;
        let start = sql.bind(unix_seconds(q.since));
        let end = sql.bind(unix_seconds(q.series_end()));
        let buckets = sql.bind(buckets);
        // An episode stamped after `end` (no `until`, a clock ahead) counts
        // in the last slice.
        let bucket = format!(
            "LEAST(width_bucket(extract(epoch FROM starts_at)::float8, {start}::float8, \
             {end}::float8, {buckets}::int), {buckets}::int)"
        );
        Some(Series { bucket, buckets })
    }

    /// The `top` rows' counts per slice, in one pass over `counted`
    /// (grouped by `key` and slice).
    fn picked(&self, key: &str) -> String {
        format!(", picked AS (SELECT c.{key}, c.bucket, c.n FROM counted c JOIN top USING ({key}))")
    }

    /// `'series', […]`: a top row's count in each slice, zeros included.
    fn member(&self, key: &str) -> String {
        let buckets = &self.buckets;
        format!(
            ", 'series', (SELECT jsonb_agg(COALESCE(p.n, 0) ORDER BY s.i)
                          FROM generate_series(1, {buckets}::int) AS s(i)
                          LEFT JOIN picked p ON p.{key} = t.{key} AND p.bucket = s.i)"
        )
    }
}

fn unix_seconds(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// The filters' conditions on `alerts` (its columns prefixed by `table`).
fn filter(sql: &mut Sql, f: &Filters, table: &str) {
    if let Some(status) = f.status {
        let status = sql.bind(status.as_str());
        sql.and(&format!("{table}status = {status}"));
    }
    if let Some(alertname) = &f.alertname {
        let alertname = sql.bind(alertname.clone());
        sql.and(&format!("{table}alertname = {alertname}"));
    }
    if !f.labels.is_empty() {
        // jsonb containment, answered by the GIN index on labels.
        let wanted = json_object(|| f.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let wanted = sql.bind(wanted);
        sql.and(&format!("{table}labels @> {wanted}::text::jsonb"));
    }
}

fn window(sql: &mut Sql, since: OffsetDateTime, until: Option<OffsetDateTime>) {
    let since = sql.bind(since);
    sql.and(&format!("starts_at >= {since}"));
    if let Some(until) = until {
        let until = sql.bind(until);
        sql.and(&format!("starts_at < {until}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::params::Stat;

    /// `load/history-10m.sh` EXPLAINs copies of the stats statements; they
    /// must be the statements served (without `buckets` or filters).
    #[test]
    fn the_10m_scripts_copies_are_the_statements_served() {
        let script = include_str!("../../load/history-10m.sh");
        let copy = |name: &str| {
            let start = script.find(&format!("\n{name}=\"")).expect(name) + name.len() + 3;
            let text = &script[start..start + script[start..].find('"').unwrap()];
            words(&text.replace("\\$", "$"))
        };
        let since = "since=2026-11-01T00:00:00Z";
        let served = |query: &str, stat| words(&stats_sql(query, stat).text);
        assert_eq!(copy("TOP"), served(since, Stat::Top));
        let by_label = format!("{since}&by=label:namespace");
        assert_eq!(copy("TOP_LABEL"), served(&by_label, Stat::Top));
        assert_eq!(copy("FLAPPING"), served(since, Stat::Flapping));
    }

    fn stats_sql(query: &str, stat: Stat) -> Sql {
        let q = StatsQuery::parse(query, stat).unwrap();
        match stat {
            Stat::Flapping => flapping(&q),
            _ => top(&q),
        }
    }

    fn words(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}
