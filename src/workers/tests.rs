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
use crate::store::Written;

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
            return Err(StoreError::Data {
                sqlstate: "22000".into(),
                message: "refused".into(),
                source: None,
            });
        }
        Ok(Written {
            changed: rows.alert_count() as u64,
            ..Written::default()
        })
    }
}

/// A standby check that never comes within a test.
const NEVER: Duration = Duration::from_secs(3600);

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
    let workers = spawn(rx, vec![sink.clone()], interner, NEVER);

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
    shut_down(&queue, workers);
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
    let workers = spawn(rx, vec![Picky::default()], interner, NEVER);
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
    shut_down(&queue, workers);
}

/// Records which worker wrote how many alerts. The first write of a sink
/// made with `held` waits until the test sends on (or drops) its release.
#[derive(Clone)]
struct Tagged {
    worker: usize,
    writes: Arc<Mutex<Vec<(usize, usize)>>>,
    hold: Arc<Mutex<Option<crossbeam_channel::Receiver<()>>>>,
    entered: crossbeam_channel::Sender<usize>,
}

impl BatchSink for Tagged {
    async fn write_batch<'a>(&'a self, rows: &'a Rows<'_>) -> Result<Written, StoreError> {
        let _ = self.entered.send(self.worker);
        let hold = self.hold.lock().take();
        if let Some(release) = hold {
            let _ = release.recv();
        }
        self.writes.lock().push((self.worker, rows.alert_count()));
        Ok(Written {
            changed: rows.alert_count() as u64,
            ..Written::default()
        })
    }
}

/// A lead (worker 0) whose first write is held, and one standby.
struct Pair {
    sinks: Vec<Tagged>,
    writes: Arc<Mutex<Vec<(usize, usize)>>>,
    release: crossbeam_channel::Sender<()>,
    entered: crossbeam_channel::Receiver<usize>,
}

fn pair() -> Pair {
    let writes = Arc::new(Mutex::new(Vec::new()));
    let (release, held) = crossbeam_channel::bounded(1);
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let sinks = (0..2)
        .map(|worker| Tagged {
            worker,
            writes: writes.clone(),
            hold: Arc::new(Mutex::new((worker == 0).then(|| held.clone()))),
            entered: entered_tx.clone(),
        })
        .collect();
    Pair {
        sinks,
        writes,
        release,
        entered,
    }
}

/// Workers with the default settings, one per sink (the first leads).
fn spawn<S: BatchSink>(
    rx: crossbeam_channel::Receiver<Job>,
    sinks: Vec<S>,
    interner: Arc<Interner>,
    backlog_check: Duration,
) -> Workers {
    let shared = Arc::new(Shared {
        interner,
        metrics: Arc::new(Metrics::new()),
    });
    let mut settings = Settings::new(&BatchConfig::default(), &DatabaseConfig::default());
    settings.backlog_check = backlog_check;
    Workers::spawn(settings, rx, shared, sinks).unwrap()
}

fn enqueue(
    queue: &Queue,
    fingerprints: std::ops::Range<u64>,
    interner: &Interner,
) -> Vec<tokio::sync::oneshot::Receiver<Result<Receipt, Failure>>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    fingerprints
        .map(|i| {
            let (job, answer) = Job::new(
                webhook("A", i, interner),
                time::OffsetDateTime::now_utc(),
                deadline,
            );
            queue.try_enqueue(job).unwrap();
            answer
        })
        .collect()
}

/// Closes the queue; the workers must drain it and stop within 5 s.
fn shut_down(queue: &Queue, workers: Workers) {
    queue.close();
    assert!(workers.join(Instant::now() + Duration::from_secs(5)));
}

/// A request's answer, or a failed test rather than a hung one.
async fn answered(
    answer: tokio::sync::oneshot::Receiver<Result<Receipt, Failure>>,
) -> Result<Receipt, Failure> {
    tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("answered within 10 s")
        .unwrap()
}

#[tokio::test]
async fn the_standby_writes_nothing_while_the_lead_keeps_up() {
    let interner = Arc::new(Interner::new(100));
    let (queue, rx) = Queue::bounded(16);
    let Pair {
        sinks,
        writes,
        release,
        ..
    } = pair();
    drop(release); // the lead's first write is not held
    let workers = spawn(rx, sinks, interner.clone(), NEVER);
    for i in 0..20 {
        let answer = enqueue(&queue, i..i + 1, &interner).remove(0);
        assert_eq!(answered(answer).await, Ok(Receipt { alerts: 1 }));
    }
    let writes = writes.lock().clone();
    assert_eq!(writes, vec![(0, 1); 20], "every batch the lead's");
    shut_down(&queue, workers);
}

#[tokio::test]
async fn the_lead_rings_the_standby_when_it_leaves_a_full_batch_queued() {
    let interner = Arc::new(Interner::new(1000));
    let (queue, rx) = Queue::bounded(1000);
    // Queued before the workers start: the lead takes a full batch (100
    // one-alert requests) and leaves 150.
    let mut answers = enqueue(&queue, 0..250, &interner);
    let pair = pair();
    let workers = spawn(rx, pair.sinks, interner.clone(), NEVER);
    // Answered while the lead's write is still held: the standby wrote them.
    for answer in answers.drain(100..) {
        assert_eq!(answered(answer).await, Ok(Receipt { alerts: 1 }));
    }
    assert_eq!(*pair.writes.lock(), vec![(1, 100), (1, 50)]);
    pair.release.send(()).unwrap();
    for answer in answers {
        assert_eq!(answered(answer).await, Ok(Receipt { alerts: 1 }));
    }
    assert_eq!(*pair.writes.lock(), vec![(1, 100), (1, 50), (0, 100)]);
    shut_down(&queue, workers);
}

#[tokio::test]
async fn the_standby_takes_over_what_waits_behind_a_stuck_lead() {
    let interner = Arc::new(Interner::new(100));
    let (queue, rx) = Queue::bounded(16);
    let pair = pair();
    let workers = spawn(rx, pair.sinks, interner.clone(), Duration::from_millis(10));
    let first = enqueue(&queue, 0..1, &interner);
    // The lead is inside its (held) write before the others are queued.
    assert_eq!(pair.entered.recv_timeout(Duration::from_secs(5)), Ok(0));
    for answer in enqueue(&queue, 1..4, &interner) {
        assert_eq!(answered(answer).await, Ok(Receipt { alerts: 1 }));
    }
    let writes = pair.writes.lock().clone();
    assert!(writes.iter().all(|w| w.0 == 1), "{writes:?}");
    assert_eq!(writes.iter().map(|w| w.1).sum::<usize>(), 3, "{writes:?}");
    pair.release.send(()).unwrap();
    for answer in first {
        assert_eq!(answered(answer).await, Ok(Receipt { alerts: 1 }));
    }
    shut_down(&queue, workers);
}
