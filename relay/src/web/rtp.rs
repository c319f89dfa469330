//! Packet translation between WebRTC and the relay's RTP-over-QUIC conventions,
//! sans-IO: browser packets get the relay's payload types and a synthesized
//! video-layer extension (so the SFU can start subscribers at keyframes);
//! packets for browsers lose the relay's private extensions. SDP helpers read
//! what was negotiated (payload types, which `mid` carries which local track).

use clinicmeet_rtp::ext::{HeaderExtensions, VideoLayer};
use clinicmeet_rtp::h264::payload_is_keyframe;
use clinicmeet_rtp::{payload_type, RtpPacket, RtpView};

/// Per-track state for packets arriving from a browser.
#[derive(Debug, Default)]
pub struct InboundVideo {
    last_timestamp: Option<u32>,
    last_marker: bool,
    keyframe: bool,
}

/// Media kind of a browser track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
}

/// Rewrites one browser RTP packet into the relay's convention (payload type 111/102,
/// only the video-layer extension on video). `ssrc` is kept.
pub fn from_browser(
    kind: Kind,
    state: &mut InboundVideo,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut extensions = HeaderExtensions::default();
    let pt = match kind {
        Kind::Audio => payload_type::OPUS,
        Kind::Video => {
            let start = state.last_timestamp != Some(timestamp) || state.last_marker;
            if start {
                state.keyframe = false;
            }
            // SPS or IDR anywhere in the frame marks it a keyframe.
            if payload_is_keyframe(payload) {
                state.keyframe = true;
            }
            state.last_timestamp = Some(timestamp);
            state.last_marker = marker;
            extensions.video_layer = Some(VideoLayer {
                start_of_frame: start,
                end_of_frame: marker,
                keyframe: state.keyframe,
                temporal_id: 0,
                spatial_id: 0,
                temporal_layers: 1,
            });
            payload_type::H264
        }
    };
    RtpPacket { marker, payload_type: pt, sequence, timestamp, ssrc, extensions, payload: payload.to_vec() }
        .to_bytes()
}

/// What a browser needs of a relay packet: header fields and payload, no extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound<'a> {
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

/// Parses a relay RTP packet for sending to a browser; `None` when malformed.
pub fn to_browser(packet: &[u8]) -> Option<Outbound<'_>> {
    let v = RtpView::parse(packet).ok()?;
    Some(Outbound { marker: v.marker, sequence: v.sequence, timestamp: v.timestamp, payload: v.payload() })
}

/// One media section of an SDP as far as the relay cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaSection {
    pub kind: String,
    pub mid: String,
    /// Track id from `a=msid:<stream> <track>`.
    pub track: Option<String>,
    /// First payload type whose rtpmap names `codec` (case-insensitive), in m-line order.
    pub payload_types: Vec<(u8, String)>,
    pub ssrcs: Vec<u32>,
}

impl MediaSection {
    /// The first payload type of the m-line that is this codec.
    pub fn payload_type_of(&self, codec: &str) -> Option<u8> {
        self.payload_types.iter().find(|(_, c)| c.eq_ignore_ascii_case(codec)).map(|(pt, _)| *pt)
    }
}

/// Splits an SDP into media sections (never panics on odd input).
pub fn media_sections(sdp: &str) -> Vec<MediaSection> {
    let mut out: Vec<MediaSection> = Vec::new();
    let mut order: Vec<u8> = Vec::new();
    let mut maps: Vec<(u8, String)> = Vec::new();
    let finish = |out: &mut Vec<MediaSection>, order: &mut Vec<u8>, maps: &mut Vec<(u8, String)>| {
        if let Some(m) = out.last_mut() {
            m.payload_types =
                order.iter().filter_map(|pt| maps.iter().find(|(p, _)| p == pt).cloned()).collect();
        }
        order.clear();
        maps.clear();
    };
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            finish(&mut out, &mut order, &mut maps);
            let mut parts = rest.split_whitespace();
            let kind = parts.next().unwrap_or_default().to_string();
            order = parts.skip(2).filter_map(|p| p.parse().ok()).collect();
            out.push(MediaSection { kind, ..MediaSection::default() });
        } else if let Some(m) = out.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                m.mid = mid.to_string();
            } else if let Some(msid) = line.strip_prefix("a=msid:") {
                m.track = msid.split_whitespace().nth(1).map(str::to_string);
            } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
                let mut parts = map.split_whitespace();
                let pt = parts.next().and_then(|p| p.parse().ok());
                let codec = parts.next().and_then(|c| c.split('/').next()).unwrap_or_default();
                if let Some(pt) = pt {
                    maps.push((pt, codec.to_string()));
                }
            } else if let Some(ssrc) = line.strip_prefix("a=ssrc:") {
                if let Some(s) = ssrc.split_whitespace().next().and_then(|s| s.parse().ok()) {
                    if !m.ssrcs.contains(&s) {
                        m.ssrcs.push(s);
                    }
                }
            }
        }
    }
    finish(&mut out, &mut order, &mut maps);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_video_gets_relay_payload_type_and_layer_extension() {
        let mut st = InboundVideo::default();
        let a = from_browser(Kind::Video, &mut st, false, 7, 900, 42, &[0x78, 0, 1, 0x67]);
        let b = from_browser(Kind::Video, &mut st, true, 8, 900, 42, &[0x65, 0]);
        let c = from_browser(Kind::Video, &mut st, true, 9, 3900, 42, &[0x41, 0]);
        let layer = |p: &[u8]| {
            let v = RtpView::parse(p).unwrap();
            assert_eq!(v.payload_type, payload_type::H264);
            assert_eq!(v.ssrc, 42);
            v.extensions().video_layer.unwrap()
        };
        let (la, lb, lc) = (layer(&a), layer(&b), layer(&c));
        assert!(la.start_of_frame && la.keyframe && !la.end_of_frame);
        assert!(!lb.start_of_frame && lb.keyframe && lb.end_of_frame);
        assert!(lc.start_of_frame && !lc.keyframe && lc.end_of_frame);
        let back = to_browser(&c).unwrap();
        assert_eq!((back.sequence, back.timestamp, back.payload), (9, 3900, &[0x41, 0][..]));
    }

    #[test]
    fn sdp_sections_name_mids_tracks_and_payload_types() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
                   a=rtpmap:0 PCMU/8000\r\na=ssrc:55 cname:x\r\na=ssrc:55 msid:s t\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 106\r\na=mid:1\r\na=msid:st slot-v0\r\n\
                   a=rtpmap:96 VP8/90000\r\na=rtpmap:106 H264/90000\r\n";
        let m = media_sections(sdp);
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].mid.as_str(), m[0].payload_type_of("opus"), m[0].ssrcs.clone()),
            ("0", Some(111), vec![55])
        );
        assert_eq!(m[1].track.as_deref(), Some("slot-v0"));
        assert_eq!(m[1].payload_type_of("h264"), Some(106));
        assert!(media_sections("garbage\nm=\na=rtpmap:x").len() == 1);
    }
}
