//! The one place that wires every stage together and orders shutdown:
//! signal → stop accepting → finish in-flight requests (workers still
//! committing) → close the queue → workers flush their last batches (with
//! `durability: spool`: the spool syncs, the loader loads) → the schema's
//! upkeep stops → close the pool, all within `server.shutdown_grace`.
//! `App::start` assembles the stages; `Running::until` and
//! `Behind::shut_down_in_order` are that order as code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Durability, RetentionConfig};
use crate::history::History;
use crate::ingress::{self, Auth, Drained, Durable, Ingress, Reloadable};
use crate::loader::{self, Loader};
use crate::model::Interner;
use crate::queue::Queue;
use crate::retention::Retention;
use crate::spool::{self, Appender, Spool};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use crate::workers::{Settings, Shared, Workers};

/// Pause between attempts to migrate the schema while PostgreSQL is unreachable.
const MIGRATE_RETRY: Duration = Duration::from_secs(1);
/// How long startup waits for the first migration attempt (see
/// `maintain_in_background`).
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
    #[error(transparent)]
    Spool(#[from] spool::OpenError),
}

/// A running service.
pub struct App {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    done: JoinHandle<bool>,
    ingress: Arc<Ingress>,
    retention: watch::Sender<RetentionConfig>,
    /// The configuration the service started with: what a reload cannot
    /// change is compared against it.
    started: Config,
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Sections now in force.
    pub applied: Vec<&'static str>,
    /// Sections that changed in the file but apply only after a restart.
    pub needs_restart: Vec<&'static str>,
}

impl App {
    /// Starts every stage and binds the listener. PostgreSQL need not be up:
    /// the schema is migrated as soon as it answers, and until then
    /// `/readyz` and webhooks answer 503.
    pub async fn start(config: Config) -> Result<App, StartError> {
        warn_of_ignored_settings(&config);
        let metrics = Arc::new(Metrics::new());
        let interner = Arc::new(Interner::new(config.interner.capacity));
        let store = Store::new(&config.database)?;
        let front = Front::load(&config)?;
        let upkeep = Upkeep::start(&config, store.clone(), &metrics).await?;
        let stages = Stages {
            config: &config,
            interner: &interner,
            metrics: &metrics,
            schema_ready: &upkeep.schema_ready,
        };
        let (durable, pipeline) = stages.behind_the_ingress()?;
        let (listener, addr) = bind(config.server.listen).await?;
        let ingress = Arc::new(Ingress {
            durable,
            store: store.clone(),
            history: front.history,
            interner,
            metrics,
            reloadable: ArcSwap::from_pointee(Reloadable {
                auth: front.auth,
                limits: config.limits,
            }),
            buffers: ingress::new_pool(),
            config: config.server.clone(),
            schema_ready: upkeep.schema_ready,
        });
        let running = Running {
            listener,
            ingress: ingress.clone(),
            tls: front.tls,
            grace: config.server.shutdown_grace,
            behind: Behind {
                pipeline,
                upkeep: upkeep.task,
                store,
            },
        };
        let (stop, stopped) = oneshot::channel::<()>();
        Ok(App {
            addr,
            stop,
            done: tokio::spawn(running.until(stopped)),
            ingress,
            retention: upkeep.reloads,
            started: config,
        })
    }

    /// Applies what can change while serving (auth secrets, limits,
    /// retention) from `new`, a validated configuration, and names the
    /// sections that changed but need a restart. `log.level` is the caller's
    /// (it owns the subscriber). Nothing is applied when the new auth cannot
    /// be loaded.
    pub fn reload(&self, new: Config) -> Result<Reloaded, StartError> {
        let mut reloaded = Reloaded::default();
        // Secret files are read again every time: a rotated token keeps
        // its path, so comparing the configuration would miss it.
        let auth = Auth::from_config(&new.auth).map_err(StartError::Auth)?;
        let in_force = self.ingress.reloadable.load();
        if auth != in_force.auth {
            reloaded.applied.push("auth");
        }
        if new.limits != in_force.limits {
            reloaded.applied.push("limits");
        }
        if !reloaded.applied.is_empty() {
            self.ingress.reloadable.store(Arc::new(Reloadable {
                auth,
                limits: new.limits,
            }));
        }
        if self.retention.send_if_modified(|in_force| {
            let changed = *in_force != new.retention;
            *in_force = new.retention.clone();
            changed
        }) {
            reloaded.applied.push("retention");
        }
        let (s, n) = (&self.started, &new);
        for (changed, section) in [
            (n.durability != s.durability, "durability"),
            (n.spool != s.spool, "spool"),
            (n.server != s.server, "server"),
            (n.database != s.database, "database"),
            (n.queue != s.queue, "queue"),
            (n.workers != s.workers, "workers"),
            (n.batch != s.batch, "batch"),
            (n.interner != s.interner, "interner"),
            (n.history != s.history, "history"),
            (n.log.format != s.log.format, "log.format"),
        ] {
            if changed {
                reloaded.needs_restart.push(section);
            }
        }
        Ok(reloaded)
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

/// Settings still accepted that no longer do anything: said once at startup.
fn warn_of_ignored_settings(config: &Config) {
    if let Some(capacity) = config.cache.capacity {
        tracing::warn!(
            capacity,
            "cache.capacity has no effect since issue #14: every delivery is written \
             (README, \"Order of receipt\"); remove it from the configuration"
        );
    }
}

/// What the ingress serves besides webhooks, loaded before anything runs:
/// the history API's pool, the credentials, the TLS certificate.
struct Front {
    history: History,
    auth: Auth,
    tls: Option<TlsAcceptor>,
}

impl Front {
    fn load(config: &Config) -> Result<Front, StartError> {
        let history = History::new(Store::reader(&config.database, &config.history)?);
        let auth = Auth::from_config(&config.auth).map_err(StartError::Auth)?;
        let tls = (config.server.tls.as_ref())
            .map(ingress::tls::acceptor)
            .transpose()
            .map_err(StartError::Tls)?;
        Ok(Front { history, auth, tls })
    }
}

/// The schema's upkeep (see `maintain_in_background`), started.
struct Upkeep {
    /// Set once the schema is migrated: until then `/readyz` and webhooks answer 503.
    schema_ready: Arc<AtomicBool>,
    task: JoinHandle<()>,
    /// Where a reload sends a new retention configuration.
    reloads: watch::Sender<RetentionConfig>,
}

impl Upkeep {
    async fn start(
        config: &Config,
        store: Store,
        metrics: &Arc<Metrics>,
    ) -> Result<Upkeep, StartError> {
        // A connection of its own: a long run never takes /readyz's.
        let retention = Retention::new(
            Store::dedicated(&config.database)?,
            config.retention.clone(),
            metrics.clone(),
        );
        let (reloads, reloaded) = watch::channel(config.retention.clone());
        let (schema_ready, task) = maintain_in_background(store, retention, reloaded).await;
        Ok(Upkeep {
            schema_ready,
            task,
            reloads,
        })
    }
}

/// Binds `addr`; returns the listener and the address it got (port 0 picks one).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listen_error = |source| StartError::Listen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    Ok((listener, bound))
}

/// The service once started: the ingress in front, the rest behind it.
struct Running {
    listener: TcpListener,
    ingress: Arc<Ingress>,
    tls: Option<TlsAcceptor>,
    grace: Duration,
    behind: Behind,
}

impl Running {
    /// Serves until `stop`, then shuts down in order; `true` when
    /// everything finished within the grace period.
    async fn until(self, stop: oneshot::Receiver<()>) -> bool {
        let stopped = async {
            let _ = stop.await;
        };
        let drained =
            ingress::serve(self.listener, self.ingress, self.tls, stopped, self.grace).await;
        self.behind.shut_down_in_order(drained, self.grace).await
    }
}

/// What shutdown finishes once the ingress has drained.
struct Behind {
    pipeline: Pipeline,
    upkeep: JoinHandle<()>,
    store: Store,
}

impl Behind {
    /// The module doc's order after the last answer: the pipeline commits
    /// (or syncs and loads) what it was given until the grace ends, the
    /// upkeep stops, the pool closes.
    async fn shut_down_in_order(self, drained: Drained, grace: Duration) -> bool {
        let deadline = drained.signalled_at + grace;
        let pipeline = self.pipeline;
        let finished = tokio::task::spawn_blocking(move || pipeline.finish(deadline))
            .await
            .unwrap_or(false);
        // A retention run in progress rolls back; the next one redoes it.
        self.upkeep.abort();
        self.store.close();
        drained.complete && finished
    }
}

/// What the stages behind the ingress are built from.
struct Stages<'a> {
    config: &'a Config,
    interner: &'a Arc<Interner>,
    metrics: &'a Arc<Metrics>,
    schema_ready: &'a Arc<AtomicBool>,
}

impl Stages<'_> {
    /// The stages `durability` chooses, and how the ingress hands them a request.
    fn behind_the_ingress(&self) -> Result<(Durable, Pipeline), StartError> {
        match self.config.durability {
            Durability::Database => self.workers(),
            Durability::Spool => self.spool(),
        }
    }

    /// `durability: database`: the queue and the workers behind it.
    fn workers(&self) -> Result<(Durable, Pipeline), StartError> {
        let config = self.config;
        let (queue, rx) = Queue::bounded(config.queue.capacity);
        let queue = Arc::new(queue);
        let shared = Arc::new(Shared {
            interner: self.interner.clone(),
            metrics: self.metrics.clone(),
        });
        let settings = Settings::new(&config.batch, &config.database);
        let connections = (0..config.workers.count)
            .map(|_| Store::dedicated(&config.database))
            .collect::<Result<Vec<_>, _>>()?;
        let workers =
            Workers::spawn(settings, rx, shared, connections).map_err(StartError::Workers)?;
        let pipeline = Pipeline::Workers {
            queue: queue.clone(),
            workers,
        };
        Ok((Durable::Database(queue), pipeline))
    }

    /// `durability: spool`: the spool (recovered before the listener is
    /// bound) and the loader behind it.
    fn spool(&self) -> Result<(Durable, Pipeline), StartError> {
        let config = self.config;
        let spool = Spool::open(&config.spool, config.queue.capacity, self.metrics.clone())?;
        let shared = loader::Shared {
            interner: self.interner.clone(),
            metrics: self.metrics.clone(),
            schema_ready: self.schema_ready.clone(),
        };
        let store = Store::dedicated(&config.database)?;
        let loader = Loader::spawn(
            spool.reader,
            store,
            shared,
            config.spool.load_max_rows,
            config.spool.load_linger,
        )
        .map_err(StartError::Workers)?;
        let appender = Arc::new(spool.appender);
        let pipeline = Pipeline::Spool {
            appender: appender.clone(),
            writer: spool.writer,
            loader,
        };
        Ok((Durable::Spool(appender), pipeline))
    }
}

/// The stages behind the ingress, as shutdown finishes them.
enum Pipeline {
    Workers {
        queue: Arc<Queue>,
        workers: Workers,
    },
    Spool {
        appender: Arc<Appender>,
        writer: std::thread::JoinHandle<()>,
        loader: Loader,
    },
}

impl Pipeline {
    /// After the last request was answered: the workers commit what is
    /// queued, or the spool syncs what it was given and the loader loads
    /// what it can until `deadline` (the rest stays on disk for the next
    /// start). `false` when an acknowledged request may not be durable.
    fn finish(self, deadline: Instant) -> bool {
        match self {
            Pipeline::Workers { queue, workers } => {
                queue.close();
                workers.join(deadline)
            }
            Pipeline::Spool {
                appender,
                writer,
                loader,
            } => {
                appender.close();
                let synced = writer.join().is_ok();
                if !loader.finish(deadline) {
                    let left = appender.status().pending_records;
                    tracing::warn!(
                        left,
                        "shutdown grace ran out before the spool was loaded; the rest is loaded at the next start"
                    );
                }
                synced
            }
        }
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
    reloads: watch::Receiver<RetentionConfig>,
) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let ready = Arc::new(AtomicBool::new(false));
    let (first_done, first) = oneshot::channel::<()>();
    let flag = ready.clone();
    let task = tokio::spawn(async move {
        let mut first_done = Some(first_done);
        loop {
            let migrated = migrate_once(&store).await;
            if migrated {
                // Partitions for today before the first write: rows routed
                // to the default partition while one for their day is being
                // attached would fail (retryably) and then have to be moved.
                retention.prepare_and_report().await;
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
        retention.run_forever(reloads).await;
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

/// What the process was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT.
    Shutdown,
    /// SIGHUP: read the configuration again.
    Reload,
}

/// The signals the service acts on, installed once at startup (before it
/// is ready, so that an early SIGHUP reloads rather than kills).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                Signal::Shutdown
            }
            _ = self.int.recv() => {
                tracing::info!("SIGINT: shutting down");
                Signal::Shutdown
            }
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
