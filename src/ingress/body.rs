//! Reads a request body into a pooled buffer, enforcing the size cap: from
//! `Content-Length` before reading anything, and for a chunked body as soon
//! as it passes the cap.

use std::sync::Arc;

use bytes::Buf;
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::header::{HeaderMap, CONTENT_LENGTH};
use object_pool::{Pool, ReusableOwned};

use crate::parse::Scratch;

use super::error::IngressError;

/// A pooled buffer bigger than this after use is freed rather than kept, so
/// that one 16 MiB request does not pin 16 MiB per pooled buffer for ever.
const RETAIN_MAX_BYTES: usize = 1024 * 1024;

/// Most buffers kept for reuse; past it a returned buffer is freed, so that a
/// burst of concurrent requests does not pin its peak memory for ever.
const POOL_MAX_BUFFERS: usize = 64;

/// A request body and simd-json's scratch space, reused across requests.
#[derive(Default)]
pub struct Scratchpad {
    pub body: Vec<u8>,
    pub scratch: Scratch,
}

pub type BufferPool = Arc<Pool<Scratchpad>>;

pub fn new_pool() -> BufferPool {
    Arc::new(Pool::new(0, Scratchpad::default))
}

/// A buffer on loan from the pool; on return it is cleared, or freed if it
/// grew over `RETAIN_MAX_BYTES` or the pool already holds enough.
pub struct PooledBuffer {
    loan: Option<ReusableOwned<Scratchpad>>,
    pool: BufferPool,
}

impl std::ops::Deref for PooledBuffer {
    type Target = Scratchpad;
    fn deref(&self) -> &Scratchpad {
        self.loan.as_ref().expect("on loan until dropped")
    }
}

impl std::ops::DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut Scratchpad {
        self.loan.as_mut().expect("on loan until dropped")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let Some(mut loan) = self.loan.take() else {
            return;
        };
        if loan.body.capacity() > RETAIN_MAX_BYTES || self.pool.len() >= POOL_MAX_BUFFERS {
            drop(loan.detach());
        } else {
            loan.body.clear();
        }
    }
}

pub async fn read<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    pool: &BufferPool,
) -> Result<PooledBuffer, IngressError>
where
    B: Body,
    B::Data: Buf,
    B::Error: std::fmt::Display,
{
    let declared = declared_length(headers)?;
    if declared.is_some_and(|n| n > limit) {
        return Err(IngressError::PayloadTooLarge { limit });
    }
    let mut buffer = PooledBuffer {
        loan: Some(pool.pull_owned(Scratchpad::default)),
        pool: pool.clone(),
    };
    buffer.body.reserve(declared.unwrap_or(0));
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| IngressError::BodyRead(e.to_string()))?;
        if let Ok(mut data) = frame.into_data() {
            if buffer.body.len() + data.remaining() > limit {
                return Err(IngressError::PayloadTooLarge { limit });
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                buffer.body.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok(buffer)
}

fn declared_length(headers: &HeaderMap) -> Result<Option<usize>, IngressError> {
    let Some(value) = headers.get(CONTENT_LENGTH) else {
        return Ok(None);
    };
    let parsed = value
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match parsed {
        Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        None => Err(IngressError::BodyRead("invalid Content-Length".into())),
    }
}
