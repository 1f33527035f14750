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

/// `GET /api/v1/alerts`: newest episodes first, filtered. The page's rows
/// are chosen first and only they are turned into JSON: when the planner
/// sorts the matches (statistics not yet analyzed after a burst, a filter
/// matching most of the window), building every match's JSON before the
/// sort cost 20x the page (115 ms for a first page of 20,000 matches).
pub fn alerts(q: &AlertsQuery) -> Sql {
    let mut sql = Sql::new("SELECT * FROM alerts a WHERE true".into());
    filter(&mut sql, &q.filters, "a.");
    window(&mut sql, q.since, q.until, "a.");
    if let Some(at) = q.active_at {
        let at = sql.bind(at);
        sql.and(&format!(
            "a.starts_at <= {at} AND (a.ends_at IS NULL OR a.ends_at > {at})"
        ));
    }
    let mut sql = page(sql, &q.page);
    sql.text = format!(
        "SELECT a.starts_at, a.fingerprint, {EPISODE_JSON}::text FROM ({}) a
         ORDER BY a.starts_at DESC, a.fingerprint DESC",
        sql.text
    );
    sql
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
/// that carried the episode, oldest first. A notification row keeps its
/// group's receiver and the labels common to the alerts it carried, not
/// the alerts: so, the notifications to the episode's receiver whose
/// common labels its labels contain, received from its first stored
/// delivery to its latest. (Common labels rather than group labels: a
/// notification of another route to the same receiver is left out unless
/// the alert has all its common labels too.) The lateral scan
/// is bounded by the episode's own receipt times, so it reads only the
/// partitions and the index range of its lifetime.
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
         FROM alerts a CROSS JOIN LATERAL (
             SELECT * FROM notifications n
             WHERE n.received_at >= a.first_seen_at
               AND n.received_at <= COALESCE(a.version_at, a.updated_at)
               AND n.receiver = a.receiver AND a.labels @> n.common_labels
             ORDER BY n.received_at, n.request_id DESC LIMIT {limit}) n
         WHERE a.fingerprint = {fingerprint} AND a.starts_at = {starts_at}
         ORDER BY n.received_at, n.request_id"
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
    if let GroupBy::Label(_) = q.by {
        // Episodes without the label are not counted under a null value.
        sql.and(&format!("{value} IS NOT NULL"));
    }
    let conditions = conditions(&mut sql, q);
    let limit = sql.bind(q.limit);
    let top = format!(
        "SELECT {value} AS value, count(*) AS episodes FROM alerts WHERE true{conditions}
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {limit}"
    );
    sql.text = match Series::bind(&mut sql, q) {
        None => format!(
            "SELECT jsonb_build_object('value', value, 'episodes', episodes)::text FROM (
             {top}) t ORDER BY episodes DESC, value"
        ),
        Some(series) => format!(
            "WITH top AS (
             {top}){}
             SELECT jsonb_build_object('value', t.value, 'episodes', t.episodes,
                                       'series', s.points)::text
             FROM top t JOIN series s ON s.value = t.value ORDER BY t.episodes DESC, t.value",
            series.cte("value", &value, &conditions)
        ),
    };
    sql
}

/// `GET /api/v1/stats/flapping`: the label sets with the most episodes
/// (two or more) in the window, with the latest episode's name and labels.
pub fn flapping(q: &StatsQuery) -> Sql {
    let mut sql = Sql::new(String::new());
    let conditions = conditions(&mut sql, q);
    let limit = sql.bind(q.limit);
    let top = format!(
        "SELECT fingerprint, count(*) AS episodes, max(starts_at) AS last_starts_at
         FROM alerts WHERE true{conditions}
         GROUP BY fingerprint HAVING count(*) > 1
         ORDER BY episodes DESC, fingerprint LIMIT {limit}"
    );
    let (cte, member, join) = match Series::bind(&mut sql, q) {
        None => (String::new(), "", ""),
        Some(series) => (
            series.cte("fingerprint", "fingerprint", &conditions),
            ", 'series', s.points",
            " JOIN series s ON s.fingerprint = t.fingerprint",
        ),
    };
    sql.text = format!(
        "WITH top AS (
         {top}){cte}
         SELECT jsonb_build_object('fingerprint', t.fingerprint, 'episodes', t.episodes,
                                   'alertname', a.alertname, 'labels', a.labels,
                                   'last_starts_at', t.last_starts_at{member})::text
         FROM top t JOIN alerts a
           ON a.fingerprint = t.fingerprint AND a.starts_at = t.last_starts_at{join}
         ORDER BY t.episodes DESC, t.fingerprint"
    );
    sql
}

/// The window's and the filters' conditions (` AND …`), bound once: a
/// series repeats them.
fn conditions(sql: &mut Sql, q: &StatsQuery) -> String {
    window(sql, Some(q.since), q.until, "");
    filter(sql, &q.filters, "");
    std::mem::take(&mut sql.text)
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
    window(&mut sql, Some(q.since), q.until, "");
    filter(&mut sql, &q.filters, "");
    let limit = sql.bind(q.limit);
    sql.text.push_str(&format!(
        ") r GROUP BY alertname ORDER BY resolved DESC, alertname LIMIT {limit}) t
         ORDER BY resolved DESC, alertname"
    ));
    sql
}

/// `buckets=<n>`: a stat also counts each of its rows' episodes per equal
/// slice of the window. Without it, the statements are those before
/// series existed.
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

    /// `series`: each `top` row's count per slice, zeros included. Counted
    /// after `top` is known, over its keys' episodes only (`expr` is the
    /// key's expression on `alerts`, `conditions` the same window and
    /// filters): a second pass over the few top keys, through their index
    /// where they have one, not a count of every key per slice.
    fn cte(&self, key: &str, expr: &str, conditions: &str) -> String {
        let (bucket, buckets) = (&self.bucket, &self.buckets);
        format!(
            ", series AS (
                 SELECT t.{key}, jsonb_agg(COALESCE(c.n, 0) ORDER BY s.i) AS points
                 FROM top t CROSS JOIN generate_series(1, {buckets}::int) AS s(i)
                 LEFT JOIN (
                     SELECT {expr} AS {key}, {bucket} AS bucket, count(*) AS n
                     FROM alerts WHERE true{conditions} AND {expr} IN (SELECT {key} FROM top)
                     GROUP BY 1, 2) c ON c.{key} = t.{key} AND c.bucket = s.i
                 GROUP BY t.{key})"
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

/// `since <= starts_at < until`, either bound optional (columns prefixed
/// by `table`).
fn window(
    sql: &mut Sql,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    table: &str,
) {
    if let Some(since) = since {
        let since = sql.bind(since);
        sql.and(&format!("{table}starts_at >= {since}"));
    }
    if let Some(until) = until {
        let until = sql.bind(until);
        sql.and(&format!("{table}starts_at < {until}"));
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
