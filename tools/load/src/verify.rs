//! After the load: PostgreSQL against what was acknowledged.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::plan::Plan;
use crate::send::Tally;

/// What PostgreSQL holds of the run's acknowledged alerts.
pub struct Verified {
    /// Acknowledged alerts PostgreSQL lacks (0 is the only pass).
    pub lost: u64,
    /// Alerts of the run stored more than once (0 is the only pass).
    pub duplicates: u64,
    /// Alerts of the run stored (acknowledged or not: a request answered
    /// 503 may have committed before its answer was lost).
    pub stored: u64,
    /// From the end of the load to the verification that found nothing
    /// missing (or gave up): how far behind the answers the rows were.
    pub stored_within: Duration,
}

/// Verifies again every `VERIFY_POLL` until nothing acknowledged is
/// missing or `--verify-within` has passed.
pub async fn verify_within(url: &str, plan: &Plan, tally: &Tally) -> anyhow::Result<Verified> {
    const VERIFY_POLL: Duration = Duration::from_millis(100);
    let started = Instant::now();
    loop {
        let mut verified = verify(url, plan, tally).await?;
        if verified.lost == 0 || started.elapsed() >= plan.args.verify_within {
            verified.stored_within = started.elapsed();
            return Ok(verified);
        }
        tokio::time::sleep(VERIFY_POLL).await;
    }
}

async fn verify(url: &str, plan: &Plan, tally: &Tally) -> anyhow::Result<Verified> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let filter = format!(r#"{{"run": "{}"}}"#, plan.run);
    let rows = client
        .query("SELECT labels->>'pod', count(*) FROM alerts WHERE labels @> $1::text::jsonb GROUP BY 1", &[&filter])
        .await?;
    let mut stored = HashSet::with_capacity(rows.len());
    let mut duplicates = 0;
    for row in &rows {
        let (pod, n): (String, i64) = (row.get(0), row.get(1));
        if n != 1 {
            eprintln!("alert {pod} of run {} is stored {n} times", plan.run);
            duplicates += 1;
        }
        stored.insert(pod);
    }
    // Every alert of a run fires once and never changes: exactly one event
    // in its timeline, however often it was delivered (`alerts` cannot hold
    // a row twice, its primary key sees to that; `alert_events` could).
    // A database the service has not migrated to `alert_timeline` yet (an
    // A/B against an older binary) keeps every event in `alert_events`.
    let timeline = if client
        .query_one("SELECT to_regclass('alert_timeline') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0)
    {
        "alert_timeline"
    } else {
        "alert_events"
    };
    let events = client
        .query(
            &format!(
                "SELECT a.labels->>'pod', count(*) FROM alerts a
             JOIN {timeline} e USING (fingerprint, starts_at)
             WHERE a.labels @> $1::text::jsonb GROUP BY 1 HAVING count(*) <> 1"
            ),
            &[&filter],
        )
        .await?;
    for row in &events {
        let (pod, n): (String, i64) = (row.get(0), row.get(1));
        eprintln!("alert {pod} of run {} has {n} events", plan.run);
        duplicates += 1;
    }
    let alerts = plan.args.alerts;
    let expected = tally
        .acked_unique
        .iter()
        .map(|n| format!("u{n}"))
        .chain(tally.acked_repeat_groups.iter().map(|g| format!("g{g}")))
        .flat_map(|key| (0..alerts).map(move |i| format!("{key}-{i}")));
    Ok(Verified {
        lost: expected.filter(|pod| !stored.contains(pod)).count() as u64,
        duplicates,
        stored: stored.len() as u64,
        stored_within: Duration::ZERO,
    })
}
