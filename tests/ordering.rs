//! Many instances, one truth (issue #14): deliveries of the same episodes
//! land on two instances (each with its spool, as behind a load
//! balancer), each acknowledged before the next is sent, in
//! random orders (proptest). Whatever order their loaders commit in, the
//! stored state of an episode is the last delivery's. Its timeline holds
//! one entry per change sent when each delivery is stored before the next
//! arrives; when deliveries are stored out of order (loaders racing, or one
//! held back by a black-holed connection while the other stores newer
//! versions), each late one takes its place by receipt time, and the
//! timeline is still made only of states sent, in the order sent, from the
//! first to the last (it may miss a change made by an unchanged repeat it
//! never recorded: see the README's "Order of receipt").
//!
//! `ORDERING_CASES` sets how many sequences each property runs (the long
//! run of `scripts/chaos` raises it).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::proxy::FaultProxy;
use common::{firing, micros, test_config, webhook, Service, TestDb};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::Value;
use time::OffsetDateTime;

/// Episodes in each sequence (label sets of one alertname).
const EPISODES: usize = 3;

/// What a delivery says of an episode: firing, or resolved at one of two
/// times (Alertmanager may send an episode's resolution with another
/// `endsAt` later: a change of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Firing,
    Resolved(u8),
}

impl State {
    fn status(self) -> &'static str {
        match self {
            State::Firing => "firing",
            State::Resolved(_) => "resolved",
        }
    }

    fn ends_at(self) -> &'static str {
        match self {
            State::Firing => "0001-01-01T00:00:00Z",
            State::Resolved(0) => "2026-11-23T11:00:00Z",
            State::Resolved(_) => "2026-11-23T11:05:00Z",
        }
    }

    /// As PostgreSQL stores it: `(status, ends_at)`.
    fn stored(self) -> (String, Option<OffsetDateTime>) {
        (self.status().to_owned(), micros(self.ends_at()))
    }
}

/// One delivery: the instance it goes to, and each episode's state in it
/// (`None`: not in this notification).
type Delivery = (usize, Vec<Option<State>>);

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        3 => Just(State::Firing),
        2 => Just(State::Resolved(0)),
        1 => Just(State::Resolved(1)),
    ]
}

fn deliveries(max: usize) -> impl Strategy<Value = Vec<Delivery>> {
    let delivery = (
        0..2usize,
        prop::collection::vec(prop::option::weighted(0.8, state()), EPISODES),
    );
    prop::collection::vec(delivery, 1..=max)
}

fn alert(name: &str, episode: usize, state: State) -> Value {
    let mut alert = firing(name, episode);
    alert["status"] = state.status().into();
    alert["endsAt"] = state.ends_at().into();
    alert
}

/// Sends the sequence, each delivery acknowledged before the next.
async fn send(instances: &[&Service], name: &str, sequence: &[Delivery]) -> Result<(), String> {
    for (to, states) in sequence {
        let alerts: Vec<Value> = (states.iter().enumerate())
            .filter_map(|(i, s)| s.map(|s| alert(name, i, s)))
            .collect();
        if alerts.is_empty() {
            continue;
        }
        let statuses = instances[*to].deliver(&webhook(alerts), 5).await;
        if statuses.last() != Some(&200) {
            return Err(format!("a delivery was not acknowledged: {statuses:?}"));
        }
    }
    Ok(())
}

/// How closely the timeline must follow the changes sent.
#[derive(Clone, Copy, PartialEq)]
enum Timeline {
    /// One entry per change sent: each delivery was stored before the next.
    Exact,
    /// Deliveries were stored out of order: states sent, in the order sent,
    /// from the first to the last, none repeated.
    Faithful,
}

/// Whether `part` is `whole` with some elements left out.
fn is_subsequence<T: PartialEq>(part: &[T], whole: &[T]) -> bool {
    let mut rest = whole.iter();
    part.iter().all(|x| rest.any(|y| y == x))
}

/// The stored state and timeline of each episode against the sequence.
async fn check(
    pg: &tokio_postgres::Client,
    name: &str,
    sequence: &[Delivery],
    expected: Timeline,
) -> Result<(), String> {
    for episode in 0..EPISODES {
        let sent: Vec<_> = (sequence.iter())
            .filter_map(|(_, s)| s[episode].map(State::stored))
            .collect();
        let row = pg
            .query_opt(
                "SELECT fingerprint, starts_at, status, ends_at FROM alerts
                 WHERE alertname = $1 AND labels->>'instance' = $2",
                &[&name, &format!("host-{episode}")],
            )
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = sent.last() else {
            if row.is_some() {
                return Err(format!("episode {episode} was never sent but is stored"));
            }
            continue;
        };
        let row = row.ok_or(format!("episode {episode} is not stored"))?;
        let key: (String, OffsetDateTime) = (row.get(0), row.get(1));
        let stored = (row.get::<_, String>(2), row.get(3));
        if &stored != last {
            return Err(format!(
                "episode {episode}: stored {stored:?}, the last delivery said {last:?}"
            ));
        }
        let mut changes = sent.clone();
        changes.dedup();
        let timeline: Vec<(String, Option<OffsetDateTime>)> = pg
            .query(
                "SELECT status, ends_at FROM alert_timeline
                 WHERE fingerprint = $1 AND starts_at = $2 ORDER BY received_at",
                &[&key.0, &key.1],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let good = match expected {
            Timeline::Exact => timeline == changes,
            Timeline::Faithful => {
                timeline.windows(2).all(|w| w[0] != w[1])
                    && timeline.first() == sent.first()
                    && timeline.last() == sent.last()
                    && is_subsequence(&timeline, &sent)
            }
        };
        if !good {
            let stored = stored_timeline(pg, &key).await?;
            return Err(format!(
                "episode {episode}: timeline {timeline:?}, the changes sent were {changes:?}; \
                 stored: {stored:?}"
            ));
        }
    }
    Ok(())
}

/// What is stored of an episode's timeline, for a failure's message.
async fn stored_timeline(
    pg: &tokio_postgres::Client,
    key: &(String, OffsetDateTime),
) -> Result<Vec<Vec<Option<String>>>, String> {
    let rows = pg
        .query(
            "SELECT 'created', first_status, first_ends_at::text, first_seen_at::text,
                    'version ' || version_at::text
             FROM alerts WHERE fingerprint = $1 AND starts_at = $2
             UNION ALL
             SELECT 'event', status, ends_at::text, received_at::text,
                    'after ' || previous_until::text
             FROM alert_events WHERE fingerprint = $1 AND starts_at = $2",
            &[&key.0, &key.1],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|r| (0..5).map(|i| r.get(i)).collect())
        .collect())
}

fn cases(default: u32) -> u32 {
    std::env::var("ORDERING_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1) // zero cases would check nothing and pass
}

/// Runs `property` on random sequences of up to `max` deliveries, each with
/// an alertname of its own, on this runtime.
fn for_sequences<F, Fut>(runs: u32, max: usize, property: F)
where
    F: Fn(String, Vec<Delivery>) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let runtime = tokio::runtime::Handle::current();
    let seq = AtomicUsize::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: runs,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(&deliveries(max), |sequence| {
            let name = format!("Seq{}", seq.fetch_add(1, Ordering::Relaxed));
            runtime
                .block_on(property(name, sequence))
                .map_err(TestCaseError::fail)
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Two instances on one database, default configuration (spool).
async fn two_instances(db: &TestDb, b_url: &str) -> (Service, Service) {
    let a = Service::start_ready(test_config(&db.url)).await;
    let mut config = test_config(b_url);
    config.server.shutdown_grace = Duration::from_secs(2);
    let b = Service::start_ready(config).await;
    (a, b)
}

/// Each delivery stored before the next is sent (`Timeline::Exact`), or
/// the two loaders racing, each committing whenever it gets to it.
async fn two_instances_property(expected: Timeline) {
    let db = TestDb::create().await;
    let (a, b) = two_instances(&db, &db.url).await;
    let pg = db.client().await;
    for_sequences(cases(64), 6, |name, sequence| {
        let (a, b, pg) = (&a, &b, &pg);
        async move {
            let turns: Vec<&[Delivery]> = match expected {
                Timeline::Exact => sequence.chunks(1).collect(),
                Timeline::Faithful => vec![&sequence],
            };
            for turn in turns {
                send(&[a, b], &name, turn).await?;
                a.settled().await;
                b.settled().await;
            }
            check(pg, &name, &sequence, expected).await
        }
    });
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_stored_in_turn_over_two_instances_give_the_last_state_and_every_change() {
    two_instances_property(Timeline::Exact).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_interleaving_of_two_loaders_keeps_the_last_state_and_a_faithful_timeline() {
    two_instances_property(Timeline::Faithful).await;
}

/// The reproduction of issue #14: 20 episodes, five alternating deliveries
/// (firing on A, resolved on B, re-fired with the same startsAt on A, ...).
/// (Before issue #14, A's fingerprint cache, which last saw them firing,
/// skipped the re-fire.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refire_on_the_instance_that_last_saw_the_episode_firing_is_stored() {
    let db = TestDb::create().await;
    let (a, b) = two_instances(&db, &db.url).await;
    let pg = db.client().await;
    let states = [
        State::Firing,
        State::Resolved(0),
        State::Firing,
        State::Resolved(0),
        State::Firing,
    ];
    let name = "Refired";
    for (k, state) in states.iter().enumerate() {
        let alerts = (0..20).map(|i| alert(name, i, *state)).collect();
        let to = if k % 2 == 0 { &a } else { &b };
        assert_eq!(to.deliver(&webhook(alerts), 5).await.last(), Some(&200));
        // Each delivery stored before the next, as the issue reproduced it.
        to.settled().await;
    }
    let rows = pg
        .query(
            "SELECT a.status, (SELECT count(*) FROM alert_timeline t
                               WHERE t.fingerprint = a.fingerprint AND t.starts_at = a.starts_at)
             FROM alerts a WHERE alertname = $1",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    for row in rows {
        assert_eq!(row.get::<_, String>(0), "firing");
        assert_eq!(
            row.get::<_, i64>(1),
            5,
            "firing, resolved, firing, resolved, firing"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// B's loader is held back (its connection to PostgreSQL black-holed) for
/// the whole sequence: everything B acknowledged is loaded after what A
/// stored later. No rewind, and B's deliveries still take their place in
/// the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loader_held_back_never_rewinds_an_episode_when_it_comes_back() {
    let db = TestDb::create().await;
    let proxy = FaultProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let (a, b) = two_instances(&db, &db.url_via(proxy.addr)).await;
    let pg = db.client().await;
    for_sequences(cases(8), 6, |name, sequence| {
        let (a, b, pg, proxy) = (&a, &b, &pg, &proxy);
        async move {
            proxy.set_blackhole();
            send(&[a, b], &name, &sequence).await?;
            a.settled().await;
            proxy.set_up();
            b.settled().await;
            check(pg, &name, &sequence, Timeline::Faithful).await
        }
    });
    a.shutdown().await;
    b.shutdown().await;
}
