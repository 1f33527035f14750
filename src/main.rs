//! The `alert-ingest` binary: parse the command line, load and validate the
//! configuration, run until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use alert_ingest::app::{App, Signal, Signals};
use alert_ingest::config::{Config, LogConfig, LogFormat};
use alert_ingest::retention::Retention;
use clap::{Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Receives Prometheus Alertmanager webhook notifications and stores every
/// alert in PostgreSQL. Without a subcommand it serves.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (see config.yaml for every key and its default).
    #[arg(
        long,
        global = true,
        env = "ALERT_INGEST_CONFIG",
        default_value = "config.yaml"
    )]
    config: PathBuf,
    /// Listen address, e.g. 127.0.0.1:9095; overrides server.listen.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration (and environment overrides) and exit.
    CheckConfig,
    /// Apply the database schema migrations and exit (for deploy pipelines
    /// that migrate before a rollout; `serve` also migrates at startup).
    Migrate,
    /// Import captured webhook bodies through the same parse and store path,
    /// in time order; safe to run again. Exit 0 when everything was stored or
    /// skipped as a repeat, 1 when some input was rejected or a write failed.
    Replay {
        /// Files (one JSON body each, or JSON lines: *.jsonl, *.ndjson), or
        /// directories, walked for *.json, *.jsonl and *.ndjson.
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("alert-ingest: {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::CheckConfig) => {
            println!("{}: configuration is valid", cli.config.display());
            return ExitCode::SUCCESS;
        }
        Some(Command::Migrate) => {
            init_logging(&config.log);
            return migrate(&config);
        }
        Some(Command::Replay { paths }) => {
            init_logging(&config.log);
            return replay(&config, &paths);
        }
        None => {}
    }
    if let Some(listen) = cli.listen {
        config.server.listen = listen;
    }
    let source = Source {
        log: init_logging(&config.log),
        path: cli.config,
        listen: cli.listen,
    };
    match runtime().block_on(serve(config, source)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            tracing::error!("shutdown grace period ran out; unfinished requests were answered 503");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ingest-io")
        .build()
        .expect("building the tokio runtime")
}

/// `alert-ingest migrate`: exit 0 once the schema is current, 1 if it cannot be.
fn migrate(config: &Config) -> ExitCode {
    let applied = runtime().block_on(async {
        let store = alert_ingest::store::Store::new(&config.database)?;
        let applied = store.migrate().await?;
        // Partitions for today and `retention.premake` days ahead, so that
        // the first writes after a rollout land in them.
        let metrics = std::sync::Arc::new(alert_ingest::telemetry::Metrics::new());
        let retention = Retention::new(store.clone(), config.retention.clone(), metrics);
        retention.prepare().await?;
        store.close();
        Ok::<_, alert_ingest::store::StoreError>(applied)
    });
    match applied {
        Ok(applied) if applied.is_empty() => {
            println!("database schema is up to date");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            println!("applied migrations {applied:?}; database schema is up to date");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("alert-ingest: cannot migrate the database schema: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `alert-ingest replay`: the summary on stdout; exit 0 when everything was
/// stored or skipped, 1 when something was not, 2 for a path that cannot be read.
fn replay(config: &Config, paths: &[PathBuf]) -> ExitCode {
    match alert_ingest::replay::run(config, paths) {
        Ok(summary) => {
            print!("{summary}");
            if summary.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("alert-ingest replay: {e}");
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
        }
    }
}

/// Where the configuration came from, to read it again on SIGHUP.
struct Source {
    path: PathBuf,
    listen: Option<std::net::SocketAddr>,
    log: LogLevel,
}

impl Source {
    fn load(&self) -> Result<Config, alert_ingest::config::ConfigError> {
        let mut config = Config::load(&self.path)?;
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        Ok(config)
    }
}

async fn serve(config: Config, source: Source) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    #[cfg(feature = "profiling")]
    let profiler = profiling::start()?;
    let mut signals = Signals::install()?;
    let app = App::start(config).await?;
    tracing::info!(addr = %app.local_addr(), elapsed = ?started.elapsed(), "listening");
    while signals.next().await == Signal::Reload {
        reload(&app, &source);
    }
    let clean = app.shutdown().await;
    #[cfg(feature = "profiling")]
    profiling::write(profiler)?;
    tracing::info!(clean, "stopped");
    Ok(clean)
}

/// SIGHUP: reads the configuration again and applies what may change while
/// serving; a configuration that does not validate changes nothing.
fn reload(app: &App, source: &Source) {
    let config = match source.load() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration not reloaded; the one in force stays");
            return;
        }
    };
    let level = config.log.level.clone();
    match app.reload(config) {
        Ok(mut reloaded) => {
            if source.log.set(&level) {
                reloaded.applied.push("log.level");
            }
            tracing::info!(applied = ?reloaded.applied, "SIGHUP: configuration reloaded");
            if !reloaded.needs_restart.is_empty() {
                tracing::warn!(
                    sections = ?reloaded.needs_restart,
                    "SIGHUP: these sections changed but apply only after a restart"
                );
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration not reloaded; the one in force stays")
        }
    }
}

/// The log filter, replaceable while running, and the `log.level` last
/// configured.
struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    configured: std::sync::Mutex<String>,
}

impl LogLevel {
    /// Whether `level` is a change now in force.
    fn set(&self, level: &str) -> bool {
        let mut configured = self.configured.lock().expect("never poisoned");
        if *configured == level {
            return false;
        }
        *configured = level.to_owned();
        // A valid $RUST_LOG pinned the filter at startup; an invalid one was
        // ignored then (log.level applied), and is ignored now.
        if EnvFilter::try_from_default_env().is_ok() {
            tracing::warn!("log.level changed, but $RUST_LOG is set and overrides it");
            return false;
        }
        // Validated with the rest of the configuration.
        EnvFilter::try_new(level).is_ok_and(|filter| self.handle.reload(filter).is_ok())
    }
}

fn init_logging(log: &LogConfig) -> LogLevel {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let (filter, handle) = reload::Layer::new(filter);
    // Colours only for a person at a terminal: a log file or journald gets
    // plain text, never escape sequences.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (text, json) = match log.format {
        LogFormat::Text => (
            Some(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)),
            None,
        ),
        LogFormat::Json => (None, Some(fmt::layer().json().with_writer(std::io::stderr))),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .init();
    LogLevel {
        handle,
        configured: std::sync::Mutex::new(log.level.clone()),
    }
}

/// Whole-process CPU profile, written as a flamegraph on shutdown.
#[cfg(feature = "profiling")]
mod profiling {
    use anyhow::Context;

    /// Where the SVG goes; without it the build profiles nothing.
    const ENV_SVG: &str = "ALERT_INGEST_PROFILE_SVG";
    /// Samples per second: odd, so as not to beat with periodic work.
    const FREQUENCY_HZ: i32 = 997;

    pub fn start() -> anyhow::Result<Option<(pprof::ProfilerGuard<'static>, String)>> {
        let Ok(path) = std::env::var(ENV_SVG) else {
            return Ok(None);
        };
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY_HZ)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .context("starting the profiler")?;
        tracing::info!(%path, "profiling; the flamegraph is written on shutdown");
        Ok(Some((guard, path)))
    }

    pub fn write(profiler: Option<(pprof::ProfilerGuard<'static>, String)>) -> anyhow::Result<()> {
        let Some((guard, path)) = profiler else {
            return Ok(());
        };
        let report = guard.report().build().context("building the profile")?;
        let file = std::fs::File::create(&path).with_context(|| format!("creating {path}"))?;
        report.flamegraph(file).context("writing the flamegraph")?;
        tracing::info!(%path, "flamegraph written");
        Ok(())
    }
}
