//! RTP header extensions (RFC 8285 one-byte form) used by ClinicMeet.
//!
//! Ids are fixed by the protocol (no SDP negotiation between our peers):
//!
//! | id | extension | bytes |
//! |----|-----------|-------|
//! | 1 | audio level, RFC 6464 (`V` bit + level in -dBov) | 1 |
//! | 2 | absolute capture time (64-bit NTP, as in WebRTC's abs-capture-time) | 8 |
//! | 3 | video layer (ours), see [`VideoLayer`] | 2 |
//!
//! The video layer extension lets a relay thin a stream by temporal or
//! simulcast layer and find frame boundaries and keyframes without reading
//! the (possibly end-to-end encrypted) payload.

/// Extension ids.
pub mod id {
    pub const AUDIO_LEVEL: u8 = 1;
    pub const ABS_CAPTURE_TIME: u8 = 2;
    pub const VIDEO_LAYER: u8 = 3;
}

/// RFC 6464 client-to-mixer audio level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// The sender's voice activity flag.
    pub voice: bool,
    /// Level in -dBov, 0 (loudest) ..= 127 (silence).
    pub level_dbov: u8,
}

impl AudioLevel {
    /// From a frame level in dBov (negative or zero).
    pub fn from_dbov(dbov: f32, voice: bool) -> Self {
        AudioLevel { voice, level_dbov: (-dbov).round().clamp(0.0, 127.0) as u8 }
    }
}

/// The "video layer" extension, two bytes:
///
/// ```text
/// byte 0: S E K T T T I I   S start of frame, E end of frame, K keyframe,
///                           TTT temporal id, II spatial/simulcast id
/// byte 1: L L L 0 0 0 0 0   LLL number of temporal layers - 1
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoLayer {
    pub start_of_frame: bool,
    pub end_of_frame: bool,
    pub keyframe: bool,
    /// 0..=7.
    pub temporal_id: u8,
    /// Simulcast encoding (0 = lowest resolution .. 3).
    pub spatial_id: u8,
    /// Temporal layers in this encoding, 1..=8.
    pub temporal_layers: u8,
}

impl VideoLayer {
    pub fn to_bytes(self) -> [u8; 2] {
        [
            (u8::from(self.start_of_frame) << 7)
                | (u8::from(self.end_of_frame) << 6)
                | (u8::from(self.keyframe) << 5)
                | ((self.temporal_id & 7) << 2)
                | (self.spatial_id & 3),
            (self.temporal_layers.clamp(1, 8) - 1) << 5,
        ]
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let (&b0, rest) = b.split_first()?;
        let layers = rest.first().map_or(1, |b1| (b1 >> 5) + 1);
        Some(VideoLayer {
            start_of_frame: b0 & 0x80 != 0,
            end_of_frame: b0 & 0x40 != 0,
            keyframe: b0 & 0x20 != 0,
            temporal_id: (b0 >> 2) & 7,
            spatial_id: b0 & 3,
            temporal_layers: layers,
        })
    }

    /// Whether this packet belongs to the top temporal layer of a layered stream,
    /// whose frames no other frame references (safe to drop).
    pub fn is_droppable(&self) -> bool {
        self.temporal_layers > 1 && self.temporal_id + 1 >= self.temporal_layers
    }
}

/// The extensions ClinicMeet knows, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderExtensions {
    pub audio_level: Option<AudioLevel>,
    /// Capture time on the sender's wall clock, 64-bit NTP format (see [`ntp_from_unix_us`]).
    pub capture_time_ntp: Option<u64>,
    pub video_layer: Option<VideoLayer>,
}

impl HeaderExtensions {
    /// Decodes the one-byte element area; unknown ids are ignored, malformed ones dropped.
    pub fn parse_one_byte(area: &[u8]) -> Self {
        let mut out = HeaderExtensions::default();
        for (id, data) in (OneByteIter { area, pos: 0 }) {
            match id {
                id::AUDIO_LEVEL => {
                    if let Some(&b) = data.first() {
                        out.audio_level = Some(AudioLevel { voice: b & 0x80 != 0, level_dbov: b & 0x7f });
                    }
                }
                id::ABS_CAPTURE_TIME => {
                    if let Some(t) = data.get(..8) {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(t);
                        out.capture_time_ntp = Some(u64::from_be_bytes(a));
                    }
                }
                id::VIDEO_LAYER => out.video_layer = VideoLayer::from_bytes(data),
                _ => {}
            }
        }
        out
    }

    /// Bytes the elements take (before padding to 32-bit words).
    pub fn one_byte_len(&self) -> usize {
        self.audio_level.map_or(0, |_| 2)
            + self.capture_time_ntp.map_or(0, |_| 9)
            + self.video_layer.map_or(0, |_| 3)
    }

    /// Appends the elements (not padded).
    pub fn write_one_byte(&self, out: &mut Vec<u8>) {
        if let Some(v) = self.video_layer {
            out.push((id::VIDEO_LAYER << 4) | 1);
            out.extend_from_slice(&v.to_bytes());
        }
        if let Some(a) = self.audio_level {
            out.push(id::AUDIO_LEVEL << 4);
            out.push((u8::from(a.voice) << 7) | a.level_dbov.min(127));
        }
        if let Some(t) = self.capture_time_ntp {
            out.push((id::ABS_CAPTURE_TIME << 4) | 7);
            out.extend_from_slice(&t.to_be_bytes());
        }
    }
}

/// Finds the data of element `id` in a one-byte extension area.
pub fn find_one_byte(area: &[u8], id: u8) -> Option<&[u8]> {
    OneByteIter { area, pos: 0 }.find(|(i, _)| *i == id).map(|(_, d)| d)
}

struct OneByteIter<'a> {
    area: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for OneByteIter<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let b = *self.area.get(self.pos)?;
            self.pos += 1;
            let id = b >> 4;
            if id == 0 {
                continue; // padding byte
            }
            if id == 15 {
                self.pos = self.area.len(); // reserved: stop parsing
                return None;
            }
            let len = usize::from(b & 0x0f) + 1;
            let data = self.area.get(self.pos..self.pos + len)?;
            self.pos += len;
            return Some((id, data));
        }
    }
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// 64-bit NTP timestamp (32.32 fixed point seconds since 1900) from Unix microseconds.
pub fn ntp_from_unix_us(us: u64) -> u64 {
    let secs = us / 1_000_000 + NTP_UNIX_OFFSET_S;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// Unix microseconds from a 64-bit NTP timestamp (0 if before 1970).
pub fn unix_us_from_ntp(ntp: u64) -> u64 {
    let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET_S);
    let frac = ((ntp & 0xffff_ffff) * 1_000_000 + (1 << 31)) >> 32;
    secs * 1_000_000 + frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_round_trip() {
        for us in [0u64, 1, 999_999, 1_763_900_000_123_456] {
            assert_eq!(unix_us_from_ntp(ntp_from_unix_us(us)), us);
        }
    }

    #[test]
    fn video_layer_bits() {
        let v = VideoLayer {
            start_of_frame: true,
            end_of_frame: true,
            keyframe: false,
            temporal_id: 3,
            spatial_id: 2,
            temporal_layers: 6,
        };
        assert_eq!(VideoLayer::from_bytes(&v.to_bytes()), Some(v));
        assert!(!v.is_droppable());
        assert!(VideoLayer { temporal_id: 1, temporal_layers: 2, ..v }.is_droppable());
    }

    #[test]
    fn unknown_and_padding_elements_are_skipped() {
        let area = [0x00, 0x91, 0xaa, 0xbb, 0x10, 0x85, 0x00, 0x00];
        let e = HeaderExtensions::parse_one_byte(&area);
        assert_eq!(e.audio_level, Some(AudioLevel { voice: true, level_dbov: 5 }));
        assert_eq!(find_one_byte(&area, 9), Some(&[0xaa, 0xbb][..]));
    }
}
