//! alert-ingest: receives Prometheus Alertmanager webhook notifications and
//! stores every alert in PostgreSQL. A 2xx means durable: synced to the
//! local spool (`durability: spool`) or committed (`durability: database`);
//! anything that may succeed later is a 503 so that Alertmanager retries.
//!
//! # Layout: the stages of a request, in order
//!
//! - [`ingress`]: hyper HTTP/1.1 server; routes, authenticates, reads the body
//!   into a pooled buffer, maps every error to a status (never 429).
//! - [`parse`]: bytes → [`model`] with simd-json in place; interns label strings.
//!
//! With `durability: spool` (the default):
//!
//! - [`spool`]: the durable log; the request's body is appended, group
//!   fsynced, and the request answered; torn or corrupted tails are cut at
//!   startup.
//! - [`loader`]: reads the spool in order and writes it to PostgreSQL in
//!   batches, each with the spool position in the same transaction.
//!
//! With `durability: database`:
//!
//! - [`queue`]: the bounded channel; `try_enqueue` only, full → 503.
//! - [`workers`]: fixed thread pool; batches (what is
//!   queued, up to a size), group commit, answers the requests a commit
//!   completes.
//!
//! Both end in:
//!
//! - [`store`]: PostgreSQL pool, migrations, the one-statement batch write,
//!   error classification.
//!
//! The read side: [`history`], the `/api/v1/` history API, on its own pool,
//! and [`page`], the built-in page at `/` that draws it;
//! and beside the pipeline, [`retention`]: time partitions and old history.
//!
//! Around them: [`model`] (leaf types), [`config`], [`telemetry`] (metrics),
//! and [`app`], which wires the stages and orders shutdown.
//!
//! Beside them: [`replay`], the `replay` command: captured webhook bodies
//! read and parsed in parallel (rayon), then written in time order through
//! the same [`parse`] and [`store`] batch write.

pub mod app;
pub mod config;
pub mod history;
pub mod ingress;
pub mod loader;
pub mod model;
pub mod page;
pub mod parse;
pub mod queue;
pub mod replay;
pub mod retention;
pub mod spool;
pub mod store;
pub mod telemetry;
pub mod workers;
