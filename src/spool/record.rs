//! How a request is framed in a segment file, and how a frame is checked.
//!
//! ```text
//! offset  size  field
//! 0       4     length of the payload, little-endian u32
//! 4       4     CRC32C (Castagnoli) of bytes 0..4 and of the payload
//! 8       1     kind: 1 = a webhook request body, as received
//! 9       8     request id (i64 LE): the key of its `notifications` row
//! 17      8     receipt time, microseconds since the Unix epoch (i64 LE)
//! 25      …     the body
//! ```
//!
//! The checksum covers the length too, so a torn or flipped length is
//! caught like a torn payload (Kafka's batch CRC and Vector's record
//! checksum cover their headers the same way).

use time::OffsetDateTime;

use crate::model::{from_unix_micros, unix_micros};

/// Length and checksum.
pub const FRAME_HEADER_LEN: usize = 8;
/// Kind, request id and receipt time, before the body.
const PAYLOAD_HEADER_LEN: usize = 1 + 8 + 8;
/// The only kind so far: the body of a `POST /webhook`, byte for byte.
const KIND_WEBHOOK_BODY: u8 = 1;
/// A frame's payload never exceeds this; a larger length is damage.
pub const MAX_PAYLOAD_LEN: usize = u32::MAX as usize;

/// A request framed for the log, ready to be appended.
pub struct Framed(Vec<u8>);

impl Framed {
    /// Frames `body` (copied: the parser rewrites the request's buffer in
    /// place, and the spool keeps what was sent).
    pub fn new(body: &[u8], request_id: i64, received_at: OffsetDateTime) -> Framed {
        let payload_len = PAYLOAD_HEADER_LEN + body.len();
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload_len);
        frame.extend_from_slice(&(payload_len as u32).to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.push(KIND_WEBHOOK_BODY);
        frame.extend_from_slice(&request_id.to_le_bytes());
        frame.extend_from_slice(&unix_micros(received_at).to_le_bytes());
        frame.extend_from_slice(body);
        let crc = checksum(&frame[..4], &frame[FRAME_HEADER_LEN..]);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        Framed(frame)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A request read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub request_id: i64,
    pub received_at: OffsetDateTime,
    pub body: Vec<u8>,
}

/// What is at an offset of a segment's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid frame of this many bytes.
    Frame { len: usize, entry: Entry },
    /// The bytes end before the frame does: more may be coming (the
    /// active segment), or the tail is torn.
    Incomplete { needed: usize },
    /// Not a valid frame: a checksum that does not match, an unknown kind,
    /// a receipt time out of range.
    Invalid(&'static str),
}

/// Decodes the frame at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Decoded {
    let Some(header) = bytes.get(..FRAME_HEADER_LEN) else {
        return Decoded::Incomplete {
            needed: FRAME_HEADER_LEN,
        };
    };
    let payload_len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    if payload_len < PAYLOAD_HEADER_LEN {
        return Decoded::Invalid("a frame shorter than its own header");
    }
    let len = FRAME_HEADER_LEN + payload_len;
    let Some(payload) = bytes.get(FRAME_HEADER_LEN..len) else {
        return Decoded::Incomplete { needed: len };
    };
    let stored = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if checksum(&header[..4], payload) != stored {
        return Decoded::Invalid("checksum mismatch");
    }
    if payload[0] != KIND_WEBHOOK_BODY {
        return Decoded::Invalid("unknown record kind");
    }
    let int = |at: usize| i64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
    let Some(received_at) = from_unix_micros(int(9)) else {
        return Decoded::Invalid("receipt time out of range");
    };
    Decoded::Frame {
        len,
        entry: Entry {
            request_id: int(1),
            received_at,
            body: payload[PAYLOAD_HEADER_LEN..].to_vec(),
        },
    }
}

fn checksum(length: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(length), payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn framed() -> Framed {
        Framed::new(
            br#"{"alerts":[]}"#,
            -7,
            datetime!(2026-12-05 10:00:00.123456 UTC),
        )
    }

    #[test]
    fn a_frame_decodes_to_what_was_framed() {
        let f = framed();
        let Decoded::Frame { len, entry } = decode(f.bytes()) else {
            panic!("not a frame")
        };
        assert_eq!(len, f.len());
        assert_eq!(entry.request_id, -7);
        assert_eq!(entry.received_at, datetime!(2026-12-05 10:00:00.123456 UTC));
        assert_eq!(entry.body, br#"{"alerts":[]}"#);
    }

    #[test]
    fn every_cut_is_incomplete_and_every_flipped_bit_is_invalid() {
        let f = framed();
        let bytes = f.bytes();
        for cut in 0..bytes.len() {
            assert!(
                matches!(decode(&bytes[..cut]), Decoded::Incomplete { .. }),
                "cut at {cut}"
            );
        }
        for i in 0..bytes.len() * 8 {
            let mut damaged = bytes.to_vec();
            damaged[i / 8] ^= 1 << (i % 8);
            // A flipped length bit may also make the frame look longer than
            // the bytes: incomplete, never a frame.
            assert!(
                !matches!(decode(&damaged), Decoded::Frame { .. }),
                "bit {i} flipped and still decoded"
            );
        }
    }
}
