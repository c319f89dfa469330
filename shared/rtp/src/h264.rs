//! H.264 RTP payload format (RFC 6184, packetization mode 1): single NAL unit
//! packets, STAP-A aggregation of small NAL units, FU-A fragmentation of large ones.

use super::ext::{ntp_from_unix_us, HeaderExtensions, VideoLayer};
use super::{payload_type, RtpPacket, MAX_RTP_SIZE, RTP_HEADER_LEN};
use crate::error::{Result, RtpError};

/// H.264 NAL unit types used by ClinicMeet.
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const PREFIX: u8 = 14;
    pub const STAP_A: u8 = 24;
    pub const FU_A: u8 = 28;
}

/// One encoded picture (access unit) as the packetizer sees it. The encoder's
/// output type (`clinicmeet_media::codec::h264::EncodedFrame`) implements it.
pub trait AccessUnit {
    /// The NAL units of the picture, in decoding order, without start codes.
    fn nal_units(&self) -> impl Iterator<Item = &[u8]>;
    /// An IDR picture (decodable on its own, with SPS/PPS in front).
    fn keyframe(&self) -> bool;
    /// Temporal layer of the picture.
    fn temporal_id(&self) -> u8;
    /// Capture time (µs, Unix-aligned media clock).
    fn capture_us(&self) -> u64;
}

/// Worst-case header of a video packet: 12 fixed + 4 extension header + 12 of
/// elements (video layer 3, capture time 9).
pub const VIDEO_HEADER_LEN: usize = RTP_HEADER_LEN + 4 + 12;

/// Splits the NAL units of one access unit into RTP payloads of at most `max_payload` bytes.
pub fn packetize<'a>(nals: impl IntoIterator<Item = &'a [u8]>, max_payload: usize) -> Result<Vec<Vec<u8>>> {
    if max_payload < 3 {
        return Err(RtpError::InvalidArgument(format!("H.264 payload limit {max_payload} below 3 bytes")));
    }
    let nals: Vec<&[u8]> = nals.into_iter().filter(|n| !n.is_empty()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < nals.len() {
        // Try to aggregate NAL units i.. into one STAP-A.
        let mut size = 1;
        let mut j = i;
        while j < nals.len()
            && size + 2 + nals[j].len() <= max_payload
            && nals[j].len() <= usize::from(u16::MAX)
        {
            size += 2 + nals[j].len();
            j += 1;
        }
        if j - i >= 2 {
            let group = &nals[i..j];
            let f = group.iter().fold(0, |acc, n| acc | (n[0] & 0x80));
            let nri = group.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
            let mut p = Vec::with_capacity(size);
            p.push(f | nri | nal_type::STAP_A);
            for n in group {
                p.extend_from_slice(&(n.len() as u16).to_be_bytes());
                p.extend_from_slice(n);
            }
            out.push(p);
            i = j;
            continue;
        }
        let nal = nals[i];
        if nal.len() <= max_payload {
            out.push(nal.to_vec());
        } else {
            // FU-A: equal-sized fragments of the NAL body.
            let body = &nal[1..];
            let room = max_payload - 2;
            let count = body.len().div_ceil(room);
            let chunk = body.len().div_ceil(count);
            let indicator = (nal[0] & 0xe0) | nal_type::FU_A;
            for (k, part) in body.chunks(chunk).enumerate() {
                let mut header = nal[0] & 0x1f;
                if k == 0 {
                    header |= 0x80;
                }
                if k + 1 == count {
                    header |= 0x40;
                }
                let mut p = Vec::with_capacity(part.len() + 2);
                p.push(indicator);
                p.push(header);
                p.extend_from_slice(part);
                out.push(p);
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Reassembles the NAL units of one access unit from its RTP payloads, in order.
pub fn depacketize<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Vec<u8>>> {
    let mut nals = Vec::new();
    let mut fu: Option<Vec<u8>> = None;
    for p in payloads {
        let (&h, rest) = p.split_first().ok_or(RtpError::Malformed("empty H.264 payload"))?;
        let t = h & 0x1f;
        if t != nal_type::FU_A && fu.is_some() {
            return Err(RtpError::Malformed("FU-A fragment sequence interrupted"));
        }
        match t {
            1..=23 => nals.push(p.to_vec()),
            nal_type::STAP_A => {
                let mut rest = rest;
                if rest.is_empty() {
                    return Err(RtpError::Malformed("empty STAP-A"));
                }
                while !rest.is_empty() {
                    let len_bytes = rest.get(..2).ok_or(RtpError::Malformed("STAP-A size truncated"))?;
                    let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                    let nal = rest.get(2..2 + len).ok_or(RtpError::Malformed("STAP-A unit truncated"))?;
                    if nal.is_empty() {
                        return Err(RtpError::Malformed("STAP-A unit of size 0"));
                    }
                    nals.push(nal.to_vec());
                    rest = &rest[2 + len..];
                }
            }
            nal_type::FU_A => {
                let (&fh, data) = rest.split_first().ok_or(RtpError::Malformed("FU-A header missing"))?;
                let (start, end) = (fh & 0x80 != 0, fh & 0x40 != 0);
                if start {
                    if fu.is_some() {
                        return Err(RtpError::Malformed("FU-A start before previous end"));
                    }
                    let mut buf = Vec::with_capacity(data.len() * 4 + 1);
                    buf.push((h & 0xe0) | (fh & 0x1f));
                    fu = Some(buf);
                }
                let buf = fu.as_mut().ok_or(RtpError::Malformed("FU-A fragment without start"))?;
                buf.extend_from_slice(data);
                if end {
                    if let Some(nal) = fu.take() {
                        nals.push(nal);
                    }
                }
            }
            _ => return Err(RtpError::Malformed("unsupported H.264 packetization type")),
        }
    }
    if fu.is_some() {
        return Err(RtpError::Malformed("FU-A fragment without end"));
    }
    Ok(nals)
}

/// Whether an RTP payload belongs to a keyframe: it contains a parameter set
/// (SPS or PPS) or an IDR slice, as a single NAL unit, inside a STAP-A, or as
/// the start fragment of an FU-A. A PPS counts: when a keyframe's SPS packet is
/// lost upstream, the frame is still marked from its PPS and the SPS comes back
/// by NACK (the relay's browser path relies on this). Never panics on truncated
/// or malformed input (it says `false`, or judges the units it could read).
pub fn payload_is_keyframe(payload: &[u8]) -> bool {
    let Some((&h, rest)) = payload.split_first() else { return false };
    let key = |t: u8| t == nal_type::IDR || t == nal_type::SPS || t == nal_type::PPS;
    match h & 0x1f {
        nal_type::STAP_A => {
            let mut rest = rest;
            while let (Some(l), Some(&first)) = (rest.get(..2), rest.get(2)) {
                if key(first & 0x1f) {
                    return true;
                }
                let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
                rest = rest.get(2 + len..).unwrap_or(&[]);
            }
            false
        }
        nal_type::FU_A => rest.first().is_some_and(|fh| fh & 0x80 != 0 && key(fh & 0x1f)),
        t => key(t),
    }
}

/// 90 kHz RTP timestamp of a capture time.
pub fn video_rtp_timestamp(capture_us: u64) -> u32 {
    (capture_us.wrapping_mul(9) / 100) as u32
}

/// Turns encoded frames into RTP packets with the video layer and capture time extensions.
#[derive(Debug, Clone)]
pub struct H264RtpSender {
    pub ssrc: u32,
    pub payload_type: u8,
    /// Simulcast encoding id carried in the layer extension.
    pub spatial_id: u8,
    /// Temporal layers of the encoder (carried in the layer extension).
    pub temporal_layers: u8,
    max_packet_size: usize,
    next_seq: u16,
}

impl H264RtpSender {
    pub fn new(ssrc: u32, first_seq: u16) -> Self {
        H264RtpSender {
            ssrc,
            payload_type: payload_type::H264,
            spatial_id: 0,
            temporal_layers: 1,
            max_packet_size: MAX_RTP_SIZE,
            next_seq: first_seq,
        }
    }

    /// Sets the largest RTP packet (from the QUIC connection's maximum datagram size).
    pub fn set_max_packet_size(&mut self, bytes: usize) -> Result<()> {
        if bytes < VIDEO_HEADER_LEN + 3 {
            return Err(RtpError::InvalidArgument(format!("RTP packet size {bytes} too small")));
        }
        self.max_packet_size = bytes;
        Ok(())
    }

    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// The sequence number the next packet will get.
    pub fn next_sequence(&self) -> u16 {
        self.next_seq
    }

    /// Packetizes one encoded frame (skipped frames give no packets).
    pub fn packetize(&mut self, frame: &impl AccessUnit) -> Result<Vec<RtpPacket>> {
        let payloads = packetize(frame.nal_units(), self.max_packet_size - VIDEO_HEADER_LEN)?;
        let n = payloads.len();
        let capture_us = frame.capture_us();
        let ts = video_rtp_timestamp(capture_us);
        let mut out = Vec::with_capacity(n);
        for (i, payload) in payloads.into_iter().enumerate() {
            let layer = VideoLayer {
                start_of_frame: i == 0,
                end_of_frame: i + 1 == n,
                keyframe: frame.keyframe(),
                temporal_id: frame.temporal_id(),
                spatial_id: self.spatial_id,
                temporal_layers: self.temporal_layers,
            };
            let extensions = HeaderExtensions {
                video_layer: Some(layer),
                capture_time_ntp: (i == 0).then(|| ntp_from_unix_us(capture_us)),
                audio_level: None,
            };
            out.push(RtpPacket {
                marker: i + 1 == n,
                payload_type: self.payload_type,
                sequence: self.next_seq,
                timestamp: ts,
                ssrc: self.ssrc,
                extensions,
                payload,
            });
            self.next_seq = self.next_seq.wrapping_add(1);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_stap_and_fu_round_trip() {
        let sps = vec![0x67, 1, 2, 3];
        let pps = vec![0x68, 4];
        let idr: Vec<u8> = std::iter::once(0x65).chain((0..5000).map(|i| i as u8)).collect();
        let small = vec![0x41, 9, 9];
        let nals = [sps.as_slice(), pps.as_slice(), idr.as_slice(), small.as_slice()];
        let payloads = packetize(nals, 1000).unwrap();
        assert_eq!(payloads[0][0] & 0x1f, nal_type::STAP_A);
        assert!(payloads.iter().all(|p| p.len() <= 1000));
        assert!(payload_is_keyframe(&payloads[0]));
        assert!(payload_is_keyframe(&payloads[1]));
        assert!(!payload_is_keyframe(&payloads[2]));
        let back = depacketize(payloads.iter().map(|p| p.as_slice())).unwrap();
        assert_eq!(back, vec![sps, pps, idr, small]);
    }

    #[test]
    fn keyframe_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &[u8], bool)] = &[
            ("empty", &[], false),
            ("single IDR", &[0x65, 0x88, 0x84], true),
            ("single SPS", &[0x67, 0x42, 0x00, 0x1f], true),
            ("single PPS alone", &[0x68, 0xce, 0x3c, 0x80], true),
            ("single non-IDR slice", &[0x41, 0x9a, 0x02], false),
            ("single SEI", &[0x06, 0x05], false),
            ("single NAL header only, IDR", &[0x65], true),
            ("STAP-A SPS then PPS", &[0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68], true),
            ("STAP-A PPS then IDR", &[0x78, 0, 1, 0x68, 0, 2, 0x65, 0x88], true),
            ("STAP-A PPS only", &[0x78, 0, 2, 0x68, 0xce], true),
            ("STAP-A PPS and slice", &[0x78, 0, 1, 0x68, 0, 2, 0x41, 0x9a], true),
            ("STAP-A header only", &[0x78], false),
            ("STAP-A size truncated", &[0x78, 0], false),
            ("STAP-A size without unit", &[0x78, 0, 9], false),
            ("STAP-A second size past the end", &[0x78, 0, 1, 0x68, 0xff, 0xff], true),
            ("STAP-A unit longer than claimed rest", &[0x78, 0, 200, 0x67], true),
            ("FU-A start of IDR", &[0x7c, 0x85, 0x88], true),
            ("FU-A start of SPS", &[0x7c, 0x87, 0x42], true),
            ("FU-A start of PPS", &[0x7c, 0x88, 0xce], true),
            ("FU-A start of slice", &[0x5c, 0x81, 0x9a], false),
            ("FU-A middle of IDR", &[0x7c, 0x05, 0x88], false),
            ("FU-A end of IDR", &[0x7c, 0x45, 0x88], false),
            ("FU-A indicator only", &[0x7c], false),
            ("FU-A start, header only", &[0x7c, 0x85], true),
            ("unsupported STAP-B", &[0x79, 0, 1, 0x65], false),
        ];
        for &(name, payload, want) in cases {
            assert_eq!(payload_is_keyframe(payload), want, "{name}");
        }
    }

    #[test]
    fn fu_a_errors() {
        assert!(depacketize([&[0x7c, 0x05, 1][..]]).is_err()); // middle without start
        assert!(depacketize([&[0x7c, 0x85, 1][..]]).is_err()); // start without end
        assert!(depacketize([&[0x78, 0x00, 0x05][..]]).is_err()); // STAP-A truncated
        assert!(depacketize([&[][..]]).is_err());
        assert!(packetize([&[1u8, 2][..]], 2).is_err());
    }
}
