//! Length-delimited framing for control messages: a 4-byte big-endian length,
//! then that many bytes of UTF-8 JSON. Pure: the caller feeds bytes read from a
//! stream and writes the bytes produced here.

use serde::Serialize;

use crate::limits::MAX_FRAME_LEN;

/// Framing errors. A frame that is too large poisons the stream (the peer is
/// not speaking the protocol), so the connection should be closed after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("could not encode message: {0}")]
    Encode(String),
}

/// Encodes a message as one frame (length prefix + JSON).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg).map_err(|e| FrameError::Encode(e.to_string()))?;
    frame_bytes(&body)
}

/// Prefixes raw bytes with their length.
pub fn frame_bytes(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: body.len(), max: MAX_FRAME_LEN });
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Incremental frame decoder: push bytes as they arrive, pop whole frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    pub fn new(max: usize) -> Self {
        FrameDecoder { buf: Vec::new(), max }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame body, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let body = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(Some(body))
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip_in_pieces() {
        let a = frame_bytes(b"hello").unwrap();
        let b = frame_bytes(b"").unwrap();
        let c = frame_bytes(b"world!").unwrap();
        let all: Vec<u8> = [a, b, c].concat();
        let mut d = FrameDecoder::default();
        let mut out = Vec::new();
        for chunk in all.chunks(3) {
            d.push(chunk);
            while let Some(f) = d.next_frame().unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, vec![b"hello".to_vec(), b"".to_vec(), b"world!".to_vec()]);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn oversized_frame_is_an_error() {
        let mut d = FrameDecoder::new(16);
        d.push(&100u32.to_be_bytes());
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge { len: 100, max: 16 }));
        assert!(matches!(frame_bytes(&vec![0; MAX_FRAME_LEN + 1]), Err(FrameError::TooLarge { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut d = FrameDecoder::new(256);
            d.push(&bytes);
            while let Ok(Some(_)) = d.next_frame() {}
        }
    }
}
