//! The one place that wires every stage together and orders shutdown:
//! signal → stop accepting → finish in-flight requests (workers still
//! committing) → close the queue → workers flush their last batches → close
//! the pool, all within `server.shutdown_grace`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::history::History;
use crate::ingress::{self, Auth, Ingress};
use crate::model::Interner;
use crate::queue::Queue;
use crate::retention::Retention;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use crate::workers::{EpisodeCache, Settings, Shared, Workers};

/// Pause between attempts to migrate the schema while PostgreSQL is unreachable.
const MIGRATE_RETRY: Duration = Duration::from_secs(1);
/// How long startup waits for the first migration attempt (see
/// `migrate_in_background`).
const MIGRATE_STARTUP_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Auth(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
    #[error("cannot start worker threads: {0}")]
    Workers(std::io::Error),
}

/// A running service.
pub struct App {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    done: JoinHandle<bool>,
}

impl App {
    /// Starts every stage and binds the listener. PostgreSQL need not be up:
    /// the schema is migrated as soon as it answers, and until then
    /// `/readyz` and webhooks answer 503.
    pub async fn start(config: Config) -> Result<App, StartError> {
        let metrics = Arc::new(Metrics::new());
        let interner = Arc::new(Interner::new(config.interner.capacity));
        let store = Store::new(&config.database)?;
        let history = History::new(Store::reader(&config.database, &config.history)?);
        let auth = Auth::from_config(&config.auth).map_err(StartError::Auth)?;
        let tls = (config.server.tls.as_ref())
            .map(ingress::tls::acceptor)
            .transpose()
            .map_err(StartError::Tls)?;
        let retention = Retention::new(store.clone(), config.retention.clone(), metrics.clone());
        let (schema_ready, maintenance) = maintain_in_background(store.clone(), retention).await;
        let (queue, rx) = Queue::bounded(config.queue.capacity);
        let queue = Arc::new(queue);
        let shared = Arc::new(Shared {
            cache: EpisodeCache::new(config.cache.capacity),
            interner: interner.clone(),
            metrics: metrics.clone(),
        });
        let settings = Settings::new(&config.batch, &config.database);
        let connections = (0..config.workers.count)
            .map(|_| Store::dedicated(&config.database))
            .collect::<Result<Vec<_>, _>>()?;
        let workers =
            Workers::spawn(settings, rx, shared, connections).map_err(StartError::Workers)?;
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr, source })?;
        let grace = config.server.shutdown_grace;
        let ingress = Arc::new(Ingress {
            queue: queue.clone(),
            store: store.clone(),
            history,
            interner,
            metrics,
            auth,
            buffers: ingress::new_pool(),
            config: config.server,
            limits: config.limits,
            schema_ready,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let drained = ingress::serve(listener, ingress, tls, shutdown, grace).await;
            queue.close();
            let deadline = drained.signalled_at + grace;
            let joined = tokio::task::spawn_blocking(move || workers.join(deadline))
                .await
                .unwrap_or(false);
            // A retention run in progress rolls back; the next one redoes it.
            maintenance.abort();
            store.close();
            drained.complete && joined
        });
        Ok(App { addr, stop, done })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts down in order; `true` when everything finished within the grace
    /// period (whatever did not was answered 503, never 200).
    pub async fn shutdown(self) -> bool {
        let _ = self.stop.send(());
        self.done.await.unwrap_or(false)
    }
}

/// The schema's upkeep, in a task of its own: migrates, retrying until it
/// succeeds, then runs retention (partitions ahead, old history out) every
/// `retention.interval`. Startup waits for the first migration attempt,
/// but at most `MIGRATE_STARTUP_WAIT`: a migration that takes longer (an
/// index built over a big table) goes on while the listener serves
/// `/healthz`, with `/readyz` and webhooks at 503 until it is done.
async fn maintain_in_background(
    store: Store,
    retention: Retention,
) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let ready = Arc::new(AtomicBool::new(false));
    let (first_done, first) = oneshot::channel::<()>();
    let flag = ready.clone();
    let task = tokio::spawn(async move {
        let mut first_done = Some(first_done);
        loop {
            let migrated = migrate_once(&store).await;
            if migrated {
                flag.store(true, Ordering::Release);
            }
            if let Some(done) = first_done.take() {
                let _ = done.send(());
            }
            if migrated {
                break;
            }
            tokio::time::sleep(MIGRATE_RETRY).await;
        }
        retention.run_forever().await;
    });
    let _ = tokio::time::timeout(MIGRATE_STARTUP_WAIT, first).await;
    (ready, task)
}

async fn migrate_once(store: &Store) -> bool {
    match store.migrate().await {
        Ok(applied) if applied.is_empty() => true,
        Ok(applied) => {
            tracing::info!(?applied, "database schema migrated");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot migrate the database schema yet");
            false
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
