//! ClinicMeet RTP (RFC 3550) with one-byte header extensions (RFC 8285),
//! payload formats for H.264 (RFC 6184) and Opus (RFC 7587), and the RTCP
//! packets the relay and clients exchange.
//!
//! This crate has no codec and no device dependency: the relay builds on it
//! alone, the clients' media engine (`clinicmeet-media`) on top of it.
//!
//! Parsing never panics: every length is checked and malformed input gives
//! [`RtpError::Malformed`]. [`RtpView`] borrows a datagram without copying
//! (what a relay wants); [`RtpPacket`] owns its parts (what a sender builds).

pub mod error;
pub mod ext;
pub mod h264;
pub mod opus;
pub mod rtcp;
#[cfg(feature = "proptest")]
pub mod strategies;

use error::Result;
pub use error::RtpError;
pub use ext::{AudioLevel, HeaderExtensions, VideoLayer};

/// Fixed RTP header size.
pub const RTP_HEADER_LEN: usize = 12;
/// Largest RTP packet, whatever a connection's path MTU: the relay forwards the
/// same packet to every subscriber, and a subscriber's QUIC path may be at the
/// 1200-byte minimum MTU (about 1160 bytes of datagram) — quinn's black-hole
/// detection drops a connection to it under random loss (5 % is enough, quinn
/// issue #2212), after which every larger packet would be refused for that
/// subscriber. Also the senders' default.
pub const MAX_RTP_SIZE: usize = 1_100;
/// RTP clock rate of Opus audio (RFC 7587: always 48 kHz).
pub const AUDIO_CLOCK_RATE: u32 = 48_000;
/// RTP clock rate of H.264 video (RFC 6184).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;
/// RTP timestamp ticks of one 20 ms audio frame (960 at 48 kHz).
pub const AUDIO_FRAME_TICKS: u32 = AUDIO_CLOCK_RATE / 50;
/// Each NACK is sent twice, by subscribers and by the relay, the copy this long
/// after it: a lost NACK (or its one retransmission) costs a whole round trip, a
/// copy a few dozen bytes (and, when both arrive, a second retransmission).
/// Datagrams handed to quinn together travel in one QUIC packet and are lost
/// together, so an immediate copy would protect nothing.
pub const NACK_COPY_DELAY_US: u64 = 15_000;
/// RFC 8285 one-byte extension profile.
const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// Dynamic payload types used by ClinicMeet (fixed: there is no SDP between our peers).
pub mod payload_type {
    pub const OPUS: u8 = 111;
    pub const H264: u8 = 102;
}

/// A borrowed, validated RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
    buf: &'a [u8],
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Byte range of the one-byte extension elements (empty when none).
    ext_range: (usize, usize),
    payload_range: (usize, usize),
}

impl<'a> RtpView<'a> {
    /// Parses and validates an RTP packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        if buf.len() < RTP_HEADER_LEN {
            return Err(RtpError::Malformed("RTP packet shorter than its header"));
        }
        let b0 = buf[0];
        if b0 >> 6 != 2 {
            return Err(RtpError::Malformed("RTP version is not 2"));
        }
        let padding = b0 & 0x20 != 0;
        let has_ext = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0f);
        let mut pos = RTP_HEADER_LEN + 4 * csrc_count;
        if buf.len() < pos {
            return Err(RtpError::Malformed("RTP CSRC list truncated"));
        }
        let mut ext_range = (pos, pos);
        if has_ext {
            let hdr = buf.get(pos..pos + 4).ok_or(RtpError::Malformed("RTP extension header truncated"))?;
            let profile = u16::from_be_bytes([hdr[0], hdr[1]]);
            let words = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
            let start = pos + 4;
            let end = start + 4 * words;
            if buf.len() < end {
                return Err(RtpError::Malformed("RTP extension truncated"));
            }
            if profile == ONE_BYTE_PROFILE {
                ext_range = (start, end);
            } else {
                ext_range = (end, end); // other profiles are skipped
            }
            pos = end;
        }
        let mut end = buf.len();
        if padding {
            let pad = usize::from(*buf.last().unwrap_or(&0));
            if pad == 0 || pad > end - pos {
                return Err(RtpError::Malformed("RTP padding length invalid"));
            }
            end -= pad;
        }
        Ok(RtpView {
            buf,
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            ext_range,
            payload_range: (pos, end),
        })
    }

    /// The payload (after header, CSRCs and extensions, without padding).
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.payload_range.0..self.payload_range.1]
    }

    /// The raw one-byte extension element area.
    pub fn extension_bytes(&self) -> &'a [u8] {
        &self.buf[self.ext_range.0..self.ext_range.1]
    }

    /// Data of the one-byte header extension element with this id.
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        ext::find_one_byte(self.extension_bytes(), id)
    }

    /// All known header extensions, decoded.
    pub fn extensions(&self) -> HeaderExtensions {
        HeaderExtensions::parse_one_byte(self.extension_bytes())
    }

    /// The whole packet.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Copies into an owned packet.
    pub fn to_owned_packet(&self) -> RtpPacket {
        RtpPacket {
            marker: self.marker,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            extensions: self.extensions(),
            payload: self.payload().to_vec(),
        }
    }
}

/// Rewrites the sequence number of a serialized RTP packet in place (relays keep
/// sequence numbers continuous per subscriber). Errors if `buf` is not RTP.
pub fn rewrite_sequence(buf: &mut [u8], sequence: u16) -> Result<()> {
    if buf.len() < RTP_HEADER_LEN || buf[0] >> 6 != 2 {
        return Err(RtpError::Malformed("not an RTP packet"));
    }
    buf[2..4].copy_from_slice(&sequence.to_be_bytes());
    Ok(())
}

/// Rewrites the SSRC of a serialized RTP packet in place.
pub fn rewrite_ssrc(buf: &mut [u8], ssrc: u32) -> Result<()> {
    if buf.len() < RTP_HEADER_LEN || buf[0] >> 6 != 2 {
        return Err(RtpError::Malformed("not an RTP packet"));
    }
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    Ok(())
}

/// RFC 5761 demultiplexing: RTCP packet types 192..=223 sit where RTP has marker+PT.
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 4 && buf[0] >> 6 == 2 && (192..=223).contains(&buf[1])
}

/// An owned RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpPacket {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub extensions: HeaderExtensions,
    pub payload: Vec<u8>,
}

impl RtpPacket {
    /// Parses an owned packet.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        RtpView::parse(buf).map(|v| v.to_owned_packet())
    }

    /// Header size including extensions, as serialized.
    pub fn header_len(&self) -> usize {
        let ext = self.extensions.one_byte_len();
        RTP_HEADER_LEN + if ext > 0 { 4 + ext.div_ceil(4) * 4 } else { 0 }
    }

    /// Serialized size.
    pub fn len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// Appends the serialized packet to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let ext_len = self.extensions.one_byte_len();
        out.push(0x80 | if ext_len > 0 { 0x10 } else { 0 });
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        if ext_len > 0 {
            let words = ext_len.div_ceil(4);
            out.extend_from_slice(&ONE_BYTE_PROFILE.to_be_bytes());
            out.extend_from_slice(&(words as u16).to_be_bytes());
            let start = out.len();
            self.extensions.write_one_byte(out);
            out.resize(start + words * 4, 0); // zero padding elements
        }
        out.extend_from_slice(&self.payload);
    }

    /// Serializes into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.write_to(&mut out);
        out
    }
}

/// Unwraps 16-bit sequence numbers into a monotonic 64-bit space.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqUnwrapper {
    last: Option<u64>,
}

impl SeqUnwrapper {
    /// Extended sequence number of `seq`, relative to the highest seen so far
    /// (values within ±32768 of it).
    pub fn unwrap(&mut self, seq: u16) -> u64 {
        let ext = self.peek(seq);
        if self.last.is_none_or(|l| ext > l) {
            self.last = Some(ext);
        }
        ext
    }

    /// Like [`unwrap`](Self::unwrap) without updating the state.
    pub fn peek(&self, seq: u16) -> u64 {
        match self.last {
            None => (1u64 << 16) + u64::from(seq), // start one cycle in so early reordering stays positive
            Some(last) => {
                let diff = i64::from(seq.wrapping_sub(last as u16) as i16);
                (last as i64 + diff).max(0) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_extensions() {
        let mut p = RtpPacket {
            marker: true,
            payload_type: payload_type::H264,
            sequence: 65535,
            timestamp: 0xdead_beef,
            ssrc: 42,
            payload: vec![1, 2, 3],
            ..Default::default()
        };
        p.extensions.video_layer = Some(VideoLayer {
            start_of_frame: true,
            end_of_frame: false,
            keyframe: true,
            temporal_id: 1,
            spatial_id: 0,
            temporal_layers: 2,
        });
        p.extensions.audio_level = Some(AudioLevel { voice: true, level_dbov: 30 });
        p.extensions.capture_time_ntp = Some(0x0123_4567_89ab_cdef);
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), p.len());
        assert_eq!(bytes.len() % 4, 3); // 12 + 4 + 16 (padded elements) + 3 payload
        let v = RtpView::parse(&bytes).unwrap();
        assert_eq!(v.payload(), &[1, 2, 3]);
        assert_eq!(v.to_owned_packet(), p);
        let mut b = bytes.clone();
        rewrite_sequence(&mut b, 7).unwrap();
        assert_eq!(RtpView::parse(&b).unwrap().sequence, 7);
    }

    #[test]
    fn padding_and_csrc_and_foreign_extension_profile() {
        // V=2, P=1, X=1, CC=1; two-byte-profile extension of 1 word; payload 2 bytes; 2 bytes padding.
        let mut b = vec![0xB1, 0x66, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[9, 9, 9, 9]); // CSRC
        b.extend_from_slice(&[0x10, 0x00, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd]);
        b.extend_from_slice(&[7, 8, 0, 2]);
        let v = RtpView::parse(&b).unwrap();
        assert_eq!(v.payload(), &[7, 8]);
        assert_eq!(v.extensions(), HeaderExtensions::default());
        let last = b.len() - 1;
        b[last] = 200;
        assert!(RtpView::parse(&b).is_err());
    }

    #[test]
    fn sequence_unwrapping() {
        let mut u = SeqUnwrapper::default();
        let a = u.unwrap(65534);
        assert_eq!(u.unwrap(65535), a + 1);
        assert_eq!(u.unwrap(1), a + 3);
        assert_eq!(u.unwrap(0), a + 2); // reordered, behind the highest
        assert_eq!(u.unwrap(2), a + 4);
    }

    #[test]
    fn rtcp_demux() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(!is_rtcp(&[0x80, 0x66, 0, 6]));
    }
}
