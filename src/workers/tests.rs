//! The worker loop against a sink that refuses chosen rows, so that what
//! happens inside one batch is observed directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::*;
use crate::config::{BatchConfig, DatabaseConfig};
use crate::model::{testing, Status, Webhook};
use crate::queue::{Job, Queue};
use crate::store::Rows;

/// Refuses (as PostgreSQL would, with a data error) any write that carries
/// an alert named "BAD"; records the alert count of every write.
#[derive(Clone, Default)]
struct Picky {
    writes: Arc<Mutex<Vec<(usize, bool)>>>,
}

impl BatchSink for Picky {
    async fn write_batch<'a>(&'a self, rows: &'a Rows<'_>) -> Result<Written, StoreError> {
        let refused = rows.alertnames().contains(&"BAD");
        self.writes.lock().push((rows.alert_count(), refused));
        if refused {
            return Err(StoreError::Data("22000: refused".into()));
        }
        Ok(Written {
            changed: rows.alert_count() as u64,
        })
    }
}

fn webhook(name: &str, fingerprint: u64, interner: &Interner) -> Webhook {
    testing::webhook(vec![testing::alert(
        fingerprint,
        Status::Firing,
        name,
        interner,
    )])
}

#[tokio::test]
async fn a_refused_row_fails_only_its_request_even_inside_a_shared_batch() {
    let interner = Arc::new(Interner::new(100));
    let (queue, rx) = Queue::bounded(16);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answers = Vec::new();
    // Queued before the worker starts, so that its first batch holds them all.
    for (i, name) in ["A", "B", "BAD", "C", "D"].into_iter().enumerate() {
        let (job, answer) = Job::new(
            webhook(name, i as u64, &interner),
            time::OffsetDateTime::now_utc(),
            deadline,
        );
        queue.try_enqueue(job).unwrap();
        answers.push(answer);
    }
    let sink = Picky::default();
    let shared = Arc::new(Shared {
        cache: EpisodeCache::new(100),
        interner,
        metrics: Arc::new(Metrics::new()),
    });
    let settings = Settings::new(&BatchConfig::default(), &DatabaseConfig::default());
    let workers = Workers::spawn(settings, rx, shared, vec![sink.clone()]).unwrap();

    let mut outcomes = Vec::new();
    for answer in answers {
        outcomes.push(answer.await.unwrap());
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        match i {
            2 => assert!(matches!(outcome, Err(Failure::Rejected(_))), "{outcome:?}"),
            _ => assert_eq!(outcome, &Ok(Receipt { alerts: 1 })),
        }
    }
    let writes = sink.writes.lock().clone();
    assert_eq!(
        writes[0],
        (5, true),
        "one shared batch first, refused: {writes:?}"
    );
    let data_retries = writes.iter().filter(|w| w.1).count();
    assert_eq!(
        data_retries, 2,
        "the batch, then the bad request alone: {writes:?}"
    );
    assert_eq!(writes.len(), 1 + 5, "then each request alone: {writes:?}");
    queue.close();
    assert!(workers.join(Instant::now() + Duration::from_secs(5)));
}

#[tokio::test]
async fn a_request_whose_alert_rode_on_a_refused_row_is_retried_not_acknowledged() {
    let interner = Arc::new(Interner::new(100));
    let (queue, rx) = Queue::bounded(16);
    let deadline = Instant::now() + Duration::from_secs(30);
    // X sends episode 10 firing; Y sends episode 10 resolved plus a bad row.
    // Within the batch Y's version replaces X's, and Y is refused.
    let x = webhook("E", 10, &interner);
    let mut y = webhook("E", 10, &interner);
    y.alerts[0].status = Status::Resolved;
    y.alerts
        .push(webhook("BAD", 11, &interner).alerts.remove(0));
    let mut answers = Vec::new();
    for w in [x, y] {
        let (job, answer) = Job::new(w, time::OffsetDateTime::now_utc(), deadline);
        queue.try_enqueue(job).unwrap();
        answers.push(answer);
    }
    let shared = Arc::new(Shared {
        cache: EpisodeCache::new(100),
        interner,
        metrics: Arc::new(Metrics::new()),
    });
    let settings = Settings::new(&BatchConfig::default(), &DatabaseConfig::default());
    let workers = Workers::spawn(settings, rx, shared, vec![Picky::default()]).unwrap();
    let x_outcome = answers.remove(0).await.unwrap();
    let y_outcome = answers.remove(0).await.unwrap();
    assert!(
        matches!(y_outcome, Err(Failure::Rejected(_))),
        "{y_outcome:?}"
    );
    assert!(
        matches!(x_outcome, Err(Failure::Unavailable(_))),
        "X's alert was not stored: {x_outcome:?}"
    );
    queue.close();
    assert!(workers.join(Instant::now() + Duration::from_secs(5)));
}
