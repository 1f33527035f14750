//! The `alert-ingest` binary: parse the command line, load and validate the
//! configuration, run until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use alert_ingest::app::{self, App};
use alert_ingest::config::{Config, LogConfig, LogFormat};
use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Receives Prometheus Alertmanager webhook notifications and stores every
/// alert in PostgreSQL. Without a subcommand it serves.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (see config.yaml for every key and its default).
    #[arg(long, global = true, default_value = "config.yaml")]
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
    if let Some(Command::CheckConfig) = cli.command {
        println!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
    if let Some(listen) = cli.listen {
        config.server.listen = listen;
    }
    init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ingest-io")
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(serve(config)) {
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

async fn serve(config: Config) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let app = App::start(config).await?;
    tracing::info!(addr = %app.local_addr(), elapsed = ?started.elapsed(), "listening");
    app::shutdown_signal().await;
    let clean = app.shutdown().await;
    tracing::info!(clean, "stopped");
    Ok(clean)
}

fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
