//! The HTTP side: a bare hyper 1.x HTTP/1.1 server. Routes, authenticates,
//! reads the body into a pooled buffer, parses it, enqueues it, waits for the
//! commit and answers. See `Ingress::webhook` for the life of a request.

mod auth;
mod body;
mod error;
pub mod tls;

pub use auth::Auth;
pub use body::{new_pool, BufferPool};
pub use error::{json_bytes_response, json_response, IngressError};

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes};
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, IF_NONE_MATCH};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::{LimitsConfig, ServerConfig};
use crate::history::{self, History};
use crate::model::Interner;
use crate::model::{next_request_id, Webhook};
use crate::page;
use crate::parse;
use crate::queue::{Failure, Job, Queue};
use crate::spool::AppendError;
use crate::spool::{Appender, Framed};
use crate::store::Store;
use crate::telemetry::{CodeLabel, Metrics};

/// Bodies up to this size are parsed on the async thread that read them;
/// larger ones on the blocking pool, so that one 16 MiB body does not stall
/// every other connection of that thread (~1 GB/s: 256 KiB ≈ 0.3 ms).
const PARSE_INLINE_MAX_BYTES: usize = 256 * 1024;

/// Pause after a failed `accept` (e.g. out of file descriptors) before the next.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

pub type HttpResponse = Response<Full<Bytes>>;

/// How long `/readyz` waits for PostgreSQL in `durability: spool`, where
/// the answer only reports it (a probe's own timeout is often 1 s).
const READY_DATABASE_PROBE: Duration = Duration::from_millis(500);

/// Where a webhook request is made durable before it is answered 200.
pub enum Durable {
    /// `durability: database`: queued for the workers, answered after commit.
    Database(Arc<Queue>),
    /// `durability: spool`: appended to the spool, answered after its sync.
    Spool(Arc<Appender>),
}

/// Everything a request handler needs; shared by all connections.
pub struct Ingress {
    pub durable: Durable,
    pub store: Store,
    /// The read-only history API, on its own pool.
    pub history: History,
    pub interner: Arc<Interner>,
    pub metrics: Arc<Metrics>,
    /// What SIGHUP may change while requests are served: each request
    /// reads one snapshot (a lock-free load), so it sees old or new, whole.
    pub reloadable: ArcSwap<Reloadable>,
    pub buffers: BufferPool,
    pub config: ServerConfig,
    /// Set once the schema is known to be current; `/readyz` waits for it.
    pub schema_ready: Arc<AtomicBool>,
}

/// The request settings a reload replaces.
pub struct Reloadable {
    pub auth: Auth,
    pub limits: LimitsConfig,
}

#[derive(Serialize)]
struct Accepted {
    accepted: usize,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// `/readyz`'s answer: ready, and in what state the stages behind are.
#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    durability: &'static str,
    /// `up`, or why PostgreSQL does not answer.
    database: String,
    /// `durability: spool` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    spool: Option<SpoolReadiness>,
}

#[derive(Serialize)]
struct SpoolReadiness {
    pending_records: u64,
    pending_bytes: u64,
    lag_seconds: f64,
    bytes: u64,
    max_bytes: u64,
}

impl Ingress {
    /// The hyper service, callable as a value (tests do).
    pub async fn handle<B>(&self, req: Request<B>) -> HttpResponse
    where
        B: Body + Send,
        B::Data: Buf + Send,
        B::Error: std::fmt::Display,
    {
        let started = Instant::now();
        // One line per request at DEBUG; what it names is copied only then.
        let line = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            (
                req.method().clone(),
                req.uri().path().escape_debug().to_string(),
            )
        });
        let response = match self.route(req).await {
            Ok(response) => response,
            Err(e) => {
                // The detail can quote the sender's text (a label name):
                // escaped, so that a newline or terminal escape in it cannot
                // forge a log line or repaint an operator's terminal.
                let error = e.to_string();
                let error = error.escape_debug();
                let kind = e.kind();
                if e.status().is_server_error() {
                    tracing::warn!(kind, %error, "request not served");
                } else {
                    tracing::debug!(kind, %error, "request refused");
                }
                e.into_response(self.config.retry_after)
            }
        };
        let code = response.status().as_u16();
        let elapsed = started.elapsed();
        self.metrics
            .http_requests
            .get_or_create(&CodeLabel { code })
            .inc();
        self.metrics
            .http_request_duration
            .observe(elapsed.as_secs_f64());
        if let Some((method, path)) = line {
            let micros = elapsed.as_micros() as u64;
            tracing::debug!(%method, path, status = code, micros, "request");
        }
        response
    }

    async fn route<B>(&self, req: Request<B>) -> Result<HttpResponse, IngressError>
    where
        B: Body + Send,
        B::Data: Buf + Send,
        B::Error: std::fmt::Display,
    {
        match (req.method(), req.uri().path()) {
            (&Method::POST, "/webhook") => self.webhook(req).await,
            (_, "/webhook") => Err(IngressError::MethodNotAllowed("POST")),
            (&Method::GET, "/healthz") => {
                Ok(json_response(StatusCode::OK, &Health { status: "ok" }))
            }
            (&Method::GET, "/readyz") => self.ready().await,
            (&Method::GET, "/metrics") => Ok(self.metrics_text()),
            (&Method::GET, path) if path.starts_with(history::PREFIX) => self.history(&req).await,
            // HEAD as GET: hyper sends the headers and drops the body.
            (&Method::GET | &Method::HEAD, path) if page::is_page_path(path) => self.page(&req),
            (_, path) if page::is_page_path(path) => {
                Err(IngressError::MethodNotAllowed("GET, HEAD"))
            }
            (_, path) if path.starts_with(history::PREFIX) => {
                Err(IngressError::MethodNotAllowed("GET"))
            }
            (_, "/healthz" | "/readyz" | "/metrics") => Err(IngressError::MethodNotAllowed("GET")),
            _ => Err(IngressError::NotFound),
        }
    }

    /// The life of a webhook request, first byte to commit.
    async fn webhook<B>(&self, req: Request<B>) -> Result<HttpResponse, IngressError>
    where
        B: Body + Send,
        B::Data: Buf + Send,
        B::Error: std::fmt::Display,
    {
        let deadline = Instant::now() + self.config.request_timeout;
        let received_at = OffsetDateTime::now_utc();
        let settings = self.reloadable.load_full();
        settings.auth.check(req.headers())?;
        check_content_type(req.headers())?;
        let (parts, body) = req.into_parts();
        let read = body::read(
            &parts.headers,
            body,
            self.config.max_body_bytes,
            &self.buffers,
        );
        let buffer = tokio::time::timeout_at(deadline.into(), read)
            .await
            .map_err(|_| IngressError::BodyTimeout(self.config.request_timeout))??;
        let limits = settings.limits;
        let accepted = match &self.durable {
            Durable::Spool(spool) => {
                // The spool keeps the body as sent; the parser rewrites it
                // in place. Parsed here only to refuse what cannot be stored.
                let framed = Framed::new(&buffer.body, next_request_id(), received_at);
                let alerts = self.parse(buffer, limits, received_at).await?.alerts.len();
                self.sync(spool, framed, deadline).await?;
                alerts
            }
            Durable::Database(queue) => {
                let webhook = self.parse(buffer, limits, received_at).await?;
                let alerts = webhook.alerts.len();
                self.commit(queue, webhook, received_at, deadline).await?;
                alerts
            }
        };
        Ok(json_response(StatusCode::OK, &Accepted { accepted }))
    }

    /// `durability: spool`: appends the request and waits for the sync
    /// that covers it.
    async fn sync(
        &self,
        spool: &Appender,
        framed: Framed,
        deadline: Instant,
    ) -> Result<(), IngressError> {
        let synced = spool.append(framed).map_err(IngressError::Spool)?;
        tokio::time::timeout_at(deadline.into(), synced)
            .await
            .map_err(|_| IngressError::SyncTimeout(self.config.request_timeout))?
            .unwrap_or(Err(AppendError::WriterStopped))
            .map_err(IngressError::Spool)
    }

    /// `durability: database`: queues the request for the workers and waits
    /// for the commit of its last alert.
    async fn commit(
        &self,
        queue: &Queue,
        webhook: Webhook,
        received_at: OffsetDateTime,
        deadline: Instant,
    ) -> Result<(), IngressError> {
        let (job, answer) = Job::new(webhook, received_at, deadline);
        queue.try_enqueue(job)?;
        tokio::time::timeout_at(deadline.into(), answer)
            .await
            .map_err(|_| IngressError::CommitTimeout(self.config.request_timeout))?
            .unwrap_or_else(|_| {
                Err(Failure::Unavailable(
                    "the worker stopped before committing".into(),
                ))
            })
            .map_err(IngressError::Store)?;
        Ok(())
    }

    /// Parses the body and counts its alerts as received.
    async fn parse(
        &self,
        buffer: body::PooledBuffer,
        limits: LimitsConfig,
        received_at: OffsetDateTime,
    ) -> Result<Webhook, IngressError> {
        let webhook = self.parse_body(buffer, limits, received_at).await?;
        self.metrics
            .alerts_received
            .inc_by(webhook.alerts.len() as u64);
        Ok(webhook)
    }

    async fn parse_body(
        &self,
        mut buffer: body::PooledBuffer,
        limits: LimitsConfig,
        received_at: OffsetDateTime,
    ) -> Result<Webhook, IngressError> {
        if buffer.body.len() <= PARSE_INLINE_MAX_BYTES {
            let pad = &mut *buffer;
            return Ok(parse::parse_at(
                &mut pad.body,
                &mut pad.scratch,
                &self.interner,
                &limits,
                received_at,
            )?);
        }
        let interner = self.interner.clone();
        tokio::task::spawn_blocking(move || {
            let pad = &mut *buffer;
            parse::parse_at(
                &mut pad.body,
                &mut pad.scratch,
                &interner,
                &limits,
                received_at,
            )
        })
        .await
        .map_err(|e| IngressError::Internal(format!("parser task failed: {e}")))?
        .map_err(IngressError::from)
    }

    /// A history API request: the same credentials as a webhook.
    async fn history<B>(&self, req: &Request<B>) -> Result<HttpResponse, IngressError> {
        self.reloadable.load().auth.check(req.headers())?;
        let uri = req.uri();
        let body = self
            .history
            .get(uri.path(), uri.query().unwrap_or(""))
            .await?;
        Ok(json_bytes_response(StatusCode::OK, body))
    }

    /// The built-in page or one of its assets: the same credentials as
    /// the API it reads.
    fn page<B>(&self, req: &Request<B>) -> Result<HttpResponse, IngressError> {
        self.reloadable.load().auth.check(req.headers())?;
        let asset = page::asset(req.uri().path()).ok_or(IngressError::NotFound)?;
        let fresh = asset.matches(req.headers().get(IF_NONE_MATCH));
        let body = if fresh { &[][..] } else { asset.body };
        let mut response = Response::new(Full::new(Bytes::from_static(body)));
        if fresh {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
        }
        response.headers_mut().extend(asset.headers());
        Ok(response)
    }

    /// Ready when a webhook would be answered 200 now: in `durability:
    /// database`, the schema is current, PostgreSQL answers and the queue
    /// has room; in `durability: spool`, the spool takes writes, whatever
    /// PostgreSQL's state (which the answer reports, with the spool's lag).
    async fn ready(&self) -> Result<HttpResponse, IngressError> {
        let readiness = match &self.durable {
            Durable::Database(queue) => {
                if !self.schema_ready.load(Ordering::Acquire) {
                    return Err(IngressError::NotReady(
                        "database schema not yet migrated".into(),
                    ));
                }
                if !queue.has_room() {
                    return Err(IngressError::NotReady(
                        "the ingest queue is full or closed".into(),
                    ));
                }
                self.store
                    .ping()
                    .await
                    .map_err(|e| IngressError::NotReady(e.to_string()))?;
                Readiness {
                    status: "ready",
                    durability: "database",
                    database: "up".into(),
                    spool: None,
                }
            }
            Durable::Spool(spool) => {
                let status = spool.status();
                if !spool.has_room() {
                    let why = if status.failing {
                        "the spool's last write or sync failed"
                    } else {
                        "the spool is full, or its queue is, or it is closed"
                    };
                    return Err(IngressError::NotReady(why.into()));
                }
                Readiness {
                    status: "ready",
                    durability: "spool",
                    database: self.database_state().await,
                    spool: Some(SpoolReadiness {
                        pending_records: status.pending_records,
                        pending_bytes: status.pending_bytes,
                        lag_seconds: status.lag_seconds,
                        bytes: status.bytes,
                        max_bytes: status.max_bytes,
                    }),
                }
            }
        };
        Ok(json_response(StatusCode::OK, &readiness))
    }

    /// `up`, or why PostgreSQL is not, within `READY_DATABASE_PROBE`.
    async fn database_state(&self) -> String {
        if !self.schema_ready.load(Ordering::Acquire) {
            return "schema not yet migrated".into();
        }
        match self.store.ping_within(READY_DATABASE_PROBE).await {
            Ok(()) => "up".into(),
            Err(e) => e.to_string(),
        }
    }

    fn metrics_text(&self) -> HttpResponse {
        let m = &self.metrics;
        match &self.durable {
            Durable::Database(queue) => {
                m.queue_depth.set(queue.depth() as i64);
                m.queue_capacity.set(queue.capacity() as i64);
            }
            Durable::Spool(spool) => {
                let status = spool.status();
                m.queue_depth.set(status.queue_depth as i64);
                m.queue_capacity.set(status.queue_capacity as i64);
                m.spool_bytes.set(status.bytes as i64);
                m.spool_max_bytes.set(status.max_bytes as i64);
                m.spool_records_pending.set(status.pending_records as i64);
                m.spool_pending_bytes.set(status.pending_bytes as i64);
                m.spool_lag_seconds.set(status.lag_seconds);
            }
        }
        m.interned_strings.set(self.interner.len() as i64);
        let mut response = Response::new(Full::new(Bytes::from(m.encode())));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn check_content_type(headers: &HeaderMap) -> Result<(), IngressError> {
    let value = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = value.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(IngressError::UnsupportedMediaType(format!(
            "Content-Type must be application/json, not {value:?}"
        )))
    }
}

/// One HTTP/1.1 connection over `io` (plain TCP or TLS).
fn connection<I>(
    io: I,
    ingress: Arc<Ingress>,
) -> http1::Connection<
    TokioIo<I>,
    impl hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = HttpResponse,
            Error = Infallible,
            Future = impl Future<Output = Result<HttpResponse, Infallible>> + Send,
        > + Send,
>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = ingress.config.header_read_timeout;
    let service = service_fn(move |req| {
        let handler = ingress.clone();
        async move { Ok::<_, Infallible>(handler.handle(req).await) }
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(io), service)
}

/// How `serve` ended.
pub struct Drained {
    /// When the shutdown signal came.
    pub signalled_at: Instant,
    /// Whether every connection finished within the grace period.
    pub complete: bool,
}

/// Accepts connections until `shutdown` resolves, then lets in-flight
/// requests finish (idle keep-alive connections are closed) for at most
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    ingress: Arc<Ingress>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Drained {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(ingress.config.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        match &tls {
            None => {
                let connection = graceful.watch(connection(stream, ingress.clone()));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Some(tls) => {
                // The handshake runs in the connection's own task, bounded
                // like a request head, so a slow one holds up no one else.
                let (tls, ingress, watcher) = (tls.clone(), ingress.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let timeout = ingress.config.header_read_timeout;
                    match tokio::time::timeout(timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let connection = watcher.watch(connection(stream, ingress));
                            if let Err(e) = connection.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    drop(slot);
                });
            }
        }
    }
    let signalled_at = Instant::now();
    drop(listener);
    let complete = tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_ok();
    Drained {
        signalled_at,
        complete,
    }
}
