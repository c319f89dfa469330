//! Opus RTP payload format (RFC 7587): one Opus packet per RTP packet, 48 kHz
//! RTP clock, marker bit on the first packet of a talkspurt (after DTX).

use super::ext::{ntp_from_unix_us, AudioLevel, HeaderExtensions};
use super::{payload_type, RtpPacket, RtpView};
use crate::error::{Result, RtpError};
use crate::AUDIO_FRAME_TICKS;

/// Builds RTP packets from Opus packets, one call per 20 ms frame.
#[derive(Debug, Clone)]
pub struct OpusRtpSender {
    pub ssrc: u32,
    pub payload_type: u8,
    next_seq: u16,
    timestamp: u32,
    in_dtx: bool,
    /// Add the absolute capture time extension every this many packets (0 = never).
    pub capture_time_every: u32,
    sent: u32,
}

impl OpusRtpSender {
    pub fn new(ssrc: u32, first_seq: u16, first_timestamp: u32) -> Self {
        OpusRtpSender {
            ssrc,
            payload_type: payload_type::OPUS,
            next_seq: first_seq,
            timestamp: first_timestamp,
            in_dtx: true,
            capture_time_every: 1,
            sent: 0,
        }
    }

    /// RTP timestamp of the frame packetized last (sent or in DTX).
    pub fn last_timestamp(&self) -> u32 {
        self.timestamp.wrapping_sub(AUDIO_FRAME_TICKS)
    }

    /// One 20 ms frame: `packet` is `None` when the encoder is in DTX (nothing is sent,
    /// but the RTP clock advances). `level` goes in the RFC 6464 extension.
    pub fn packetize(
        &mut self,
        packet: Option<&[u8]>,
        level: AudioLevel,
        capture_us: u64,
    ) -> Option<RtpPacket> {
        let ts = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(AUDIO_FRAME_TICKS);
        let Some(packet) = packet else {
            self.in_dtx = true;
            return None;
        };
        let marker = std::mem::replace(&mut self.in_dtx, false);
        let with_time = self.capture_time_every > 0 && self.sent.is_multiple_of(self.capture_time_every);
        self.sent = self.sent.wrapping_add(1);
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        Some(RtpPacket {
            marker,
            payload_type: self.payload_type,
            sequence: seq,
            timestamp: ts,
            ssrc: self.ssrc,
            extensions: HeaderExtensions {
                audio_level: Some(level),
                capture_time_ntp: with_time.then(|| ntp_from_unix_us(capture_us)),
                video_layer: None,
            },
            payload: packet.to_vec(),
        })
    }
}

/// The Opus packet of an RTP packet (checked non-empty and no larger than libopus accepts).
pub fn opus_payload<'a>(rtp: &RtpView<'a>) -> Result<&'a [u8]> {
    let p = rtp.payload();
    if p.is_empty() {
        return Err(RtpError::Malformed("empty Opus payload"));
    }
    if p.len() > 1275 * 3 {
        return Err(RtpError::Malformed("Opus payload too large"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_advance_through_dtx_and_marker_starts_talkspurt() {
        let mut s = OpusRtpSender::new(1, 10, 1000);
        let lvl = AudioLevel { voice: true, level_dbov: 20 };
        let a = s.packetize(Some(&[1]), lvl, 0).unwrap();
        let b = s.packetize(Some(&[2]), lvl, 20_000).unwrap();
        assert!(s.packetize(None, lvl, 40_000).is_none());
        let c = s.packetize(Some(&[3]), lvl, 60_000).unwrap();
        assert!(a.marker && !b.marker && c.marker);
        assert_eq!((a.timestamp, b.timestamp, c.timestamp), (1000, 1960, 3880));
        assert_eq!((a.sequence, b.sequence, c.sequence), (10, 11, 12));
        let bytes = c.to_bytes();
        let v = RtpView::parse(&bytes).unwrap();
        assert_eq!(opus_payload(&v).unwrap(), &[3]);
        assert_eq!(v.extensions().audio_level, Some(lvl));
    }
}
