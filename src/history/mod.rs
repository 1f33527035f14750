//! The read side: the history API under `/api/v1/`, answered from the
//! stored alerts on a pool of its own (`history.pool_size`), so that a
//! heavy query waits for one of its own connections, never a worker's.
//!
//! - `params`: query string → typed request; every bad parameter is a 400.
//! - `sql`: typed request → one statement whose rows are JSON text.
//! - here: run it, and join the rows into the answer.

mod error;
mod params;
mod sql;

pub use error::HistoryError;

use bytes::Bytes;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::store::Store;

use params::{
    valid_fingerprint, AlertsQuery, Cursor, EpisodesQuery, NotificationsQuery, Stat, StatsQuery,
};
use sql::Sql;

/// The OpenAPI 3 description of these routes; a test keeps it true.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route is under this prefix.
pub const PREFIX: &str = "/api/v1/";

pub struct History {
    store: Store,
}

impl History {
    pub fn new(store: Store) -> History {
        History { store }
    }

    /// Answers `GET <path>?<query>`: the JSON body of a 200.
    pub async fn get(&self, path: &str, query: &str) -> Result<Bytes, HistoryError> {
        let route = path.strip_prefix(PREFIX).unwrap_or(path);
        let body = match route {
            "alerts" => self.alerts(AlertsQuery::parse(query)?).await?,
            "stats/top" => self.top(StatsQuery::parse(query, Stat::Top)?).await?,
            "stats/flapping" => {
                self.flapping(StatsQuery::parse(query, Stat::Flapping)?)
                    .await?
            }
            "stats/durations" => {
                self.durations(StatsQuery::parse(query, Stat::Durations)?)
                    .await?
            }
            "openapi.json" => return Ok(Bytes::from_static(OPENAPI.as_bytes())),
            _ => match route
                .strip_prefix("alerts/")
                .map(|rest| (rest, rest.split_once('/')))
            {
                Some((fingerprint, None)) => self.episodes(fingerprint, query).await?,
                Some((_, Some((fingerprint, "notifications")))) => {
                    self.notifications(fingerprint, query).await?
                }
                _ => return Err(HistoryError::NotFound("no such path".into())),
            },
        };
        Ok(Bytes::from(body))
    }

    async fn alerts(&self, q: AlertsQuery) -> Result<String, HistoryError> {
        let rows = self.run(sql::alerts(&q)).await?;
        Ok(page_json("", rows, q.page.limit))
    }

    async fn episodes(&self, fingerprint: &str, query: &str) -> Result<String, HistoryError> {
        let fingerprint = fingerprint_param(fingerprint)?;
        let q = EpisodesQuery::parse(query)?;
        let rows = self.run(sql::episodes(fingerprint, &q.page)).await?;
        if rows.is_empty() && q.page.after.is_none() {
            return Err(HistoryError::NotFound(format!(
                "no episode of fingerprint {fingerprint} is stored"
            )));
        }
        let head = format!(r#""fingerprint":"{fingerprint}","#);
        Ok(page_json(&head, rows, q.page.limit))
    }

    async fn notifications(&self, fingerprint: &str, query: &str) -> Result<String, HistoryError> {
        let fingerprint = fingerprint_param(fingerprint)?;
        let q = NotificationsQuery::parse(query)?;
        let rows = self.run(sql::notifications(fingerprint, &q)).await?;
        Ok(format!(
            r#"{{"fingerprint":"{fingerprint}","starts_at":{},"items":[{}]}}"#,
            json_string(&rfc3339(q.starts_at)),
            join_column(&rows, 0)
        ))
    }

    async fn top(&self, q: StatsQuery) -> Result<String, HistoryError> {
        let rows = self.run(sql::top(&q)).await?;
        let by = json_string(&q.by.describe());
        Ok(stats_json(&format!(r#""by":{by},"#), &q, rows))
    }

    async fn flapping(&self, q: StatsQuery) -> Result<String, HistoryError> {
        let rows = self.run(sql::flapping(&q)).await?;
        Ok(stats_json("", &q, rows))
    }

    async fn durations(&self, q: StatsQuery) -> Result<String, HistoryError> {
        let rows = self.run(sql::durations(&q)).await?;
        Ok(stats_json("", &q, rows))
    }

    async fn run(&self, sql: Sql) -> Result<Vec<Row>, HistoryError> {
        Ok(self.store.query(&sql.text, &sql.params()).await?)
    }
}

fn fingerprint_param(fingerprint: &str) -> Result<&str, HistoryError> {
    valid_fingerprint(fingerprint).ok_or(HistoryError::BadParameter {
        name: "fingerprint".into(),
        detail: "must be 16 lowercase hex digits, as Alertmanager prints it".into(),
    })
}

/// `{<head>"items":[…],"next_cursor":…}` from rows of `(starts_at,
/// fingerprint, json)`, of which there is one more than `limit` when
/// another page follows.
fn page_json(head: &str, mut rows: Vec<Row>, limit: i64) -> String {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => {
            let cursor = Cursor {
                starts_at: last.get::<_, OffsetDateTime>(0),
                fingerprint: last.get::<_, String>(1),
            };
            format!(r#""{}""#, cursor.encode())
        }
        _ => "null".into(),
    };
    format!(
        r#"{{{head}"items":[{}],"next_cursor":{next}}}"#,
        join_column(&rows, 2)
    )
}

/// `{<head>"since":…,"until":…,"items":[…]}` from rows of `(json)`.
fn stats_json(head: &str, q: &StatsQuery, rows: Vec<Row>) -> String {
    let until = q.until.map_or("null".into(), |t| json_string(&rfc3339(t)));
    format!(
        r#"{{{head}"since":{},"until":{until},"items":[{}]}}"#,
        json_string(&rfc3339(q.since)),
        join_column(&rows, 0)
    )
}

fn join_column(rows: &[Row], column: usize) -> String {
    let items: Vec<&str> = rows.iter().map(|r| r.get::<_, &str>(column)).collect();
    items.join(",")
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .expect("a parsed or current time formats")
}

fn json_string(s: &str) -> String {
    simd_json::to_string(s).expect("a string always serializes")
}
