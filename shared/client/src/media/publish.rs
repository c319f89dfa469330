//! A published track's send-side cadence, without I/O: when the path is sampled
//! for the bandwidth estimate, when sender reports are due and what they say.
//! The send threads capture, encode and send; they ask these objects when, with
//! the frame's `now_us` (media clock).

use clinicmeet_rtp::rtcp::{self, RtcpPacket};

use super::bwe::{BandwidthController, BweConfig, PathSample};
use crate::media_link::PathStats;

/// A video track's path sample for the bandwidth estimate, at most this often.
pub const BWE_INTERVAL_US: u64 = 500_000;
/// A video track's sender reports (one per encoding), at most this often.
pub const VIDEO_SR_INTERVAL_US: u64 = 1_000_000;
/// An audio track sends a sender report with its first frame and every this many frames (1 s).
pub const AUDIO_SR_EVERY_FRAMES: u64 = 50;

/// A published video track's bandwidth estimate, packet counters and report times.
#[derive(Debug, Clone)]
pub struct VideoPublish {
    bwe: BandwidthController,
    /// SSRC of the lowest encoding; encoding `id` has `ssrc + id`.
    ssrc: u32,
    /// Spatial id of the full-resolution encoding (the highest).
    main_id: u8,
    current_bps: u32,
    last_bwe_us: u64,
    last_sr_us: u64,
    packets: u32,
    octets: u32,
}

impl VideoPublish {
    pub fn new(ssrc: u32, main_id: u8, max_bps: u32) -> Self {
        let bwe = BandwidthController::new(BweConfig {
            min_bps: 100_000.min(max_bps),
            max_bps,
            low_resolution_below_bps: 250_000,
        });
        VideoPublish {
            bwe,
            ssrc,
            main_id,
            current_bps: max_bps,
            last_bwe_us: 0,
            last_sr_us: 0,
            packets: 0,
            octets: 0,
        }
    }

    /// Is a path sample due at `now_us`?
    pub fn bwe_due(&self, now_us: u64) -> bool {
        now_us.saturating_sub(self.last_bwe_us) >= BWE_INTERVAL_US
    }

    /// A path sample taken at `now_us` with the worst fraction lost the relay
    /// reported since the last one; returns the full-resolution encoding's new
    /// bitrate when the estimate moved by more than 5 %.
    pub fn on_path(&mut self, now_us: u64, path: &PathStats, rr_fraction_lost: Option<u8>) -> Option<u32> {
        self.last_bwe_us = now_us;
        let d = self.bwe.on_sample(PathSample {
            now_us,
            rtt_us: path.rtt_us,
            lost_packets: path.lost_packets,
            sent_packets: path.sent_packets,
            cwnd: path.cwnd,
            rr_fraction_lost,
        });
        tracing::info!(
            rtt_us = path.rtt_us,
            cwnd = path.cwnd,
            lost = path.lost_packets,
            sent = path.sent_packets,
            target_bps = d.bitrate_bps,
            "bandwidth estimate"
        );
        if d.bitrate_bps.abs_diff(self.current_bps) > self.current_bps / 20 {
            self.current_bps = d.bitrate_bps;
            return Some(self.current_bps);
        }
        None
    }

    /// A packet of `len` bytes was sent (the sender reports' counters).
    pub fn on_sent(&mut self, len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(len as u32);
    }

    /// Are sender reports due for the frame of `now_us`? True at most once per
    /// [`VIDEO_SR_INTERVAL_US`].
    pub fn take_sr_due(&mut self, now_us: u64) -> bool {
        if now_us.saturating_sub(self.last_sr_us) < VIDEO_SR_INTERVAL_US {
            return false;
        }
        self.last_sr_us = now_us;
        true
    }

    /// One sender report per encoding (the relay forwards each to that
    /// encoding's subscribers), stamped `now_us`: when they are sent, after the
    /// frame's encoding (RFC 3550 §6.4.1).
    pub fn sender_reports(&self, now_us: u64) -> Vec<Vec<u8>> {
        let rtp_now = clinicmeet_rtp::h264::video_rtp_timestamp(now_us);
        (0..=self.main_id)
            .map(|id| {
                let ssrc = self.ssrc.wrapping_add(u32::from(id));
                let sr = rtcp::sender_report(ssrc, now_us, rtp_now, self.packets, self.octets);
                RtcpPacket::SenderReport(sr).to_bytes()
            })
            .collect()
    }
}

/// A published audio track's report cadence, counted in 20 ms frames.
#[derive(Debug, Clone, Default)]
pub struct AudioPublish {
    frames: u64,
}

impl AudioPublish {
    /// One frame was taken from the microphone; true when a sender report (and
    /// the FEC update from the relay's reports) is due with it.
    pub fn on_frame(&mut self) -> bool {
        self.frames += 1;
        self.frames % AUDIO_SR_EVERY_FRAMES == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_sender_reports_once_a_second_per_encoding() {
        let mut p = VideoPublish::new(100, 1, 800_000);
        let start = 7_000_000u64;
        let mut due = Vec::new();
        for i in 0..106u64 {
            let now = start + i * 33_333;
            for len in [1000, 200] {
                p.on_sent(len);
            }
            if p.take_sr_due(now) {
                due.push((now, p.sender_reports(now + 2_000)));
            }
        }
        let times: Vec<u64> = due.iter().map(|(t, _)| t - start).collect();
        assert_eq!(times, vec![0, 31 * 33_333, 62 * 33_333, 93 * 33_333]);
        let Some((_, last)) = due.last() else { panic!("no reports") };
        assert_eq!(last.len(), 2);
        let parsed: Vec<_> = last.iter().filter_map(|b| rtcp::parse_compound(b).ok()).flatten().collect();
        let srs: Vec<_> = parsed
            .iter()
            .filter_map(|p| match p {
                RtcpPacket::SenderReport(sr) => Some((sr.ssrc, sr.packet_count, sr.octet_count)),
                _ => None,
            })
            .collect();
        // 94 frames before the fourth report, two packets each.
        assert_eq!(srs, vec![(100, 188, 94 * 1200), (101, 188, 94 * 1200)]);
    }

    #[test]
    fn one_encoding_one_sender_report() {
        let mut p = VideoPublish::new(7, 0, 800_000);
        assert!(p.take_sr_due(1_000_000));
        assert!(!p.take_sr_due(1_999_999));
        assert_eq!(p.sender_reports(1_000_000).len(), 1);
    }

    #[test]
    fn the_path_is_sampled_every_500_ms_and_small_moves_keep_the_bitrate() {
        let mut p = VideoPublish::new(7, 0, 800_000);
        let clean = |sent: u64| PathStats {
            rtt_us: 20_000,
            cwnd: 1_000_000,
            lost_packets: 0,
            sent_packets: sent,
            max_datagram_size: Some(1200),
        };
        let mut now = 3_000_000u64;
        let mut changes = Vec::new();
        for i in 0..10u64 {
            assert!(p.bwe_due(now));
            changes.push(p.on_path(now, &clean(i * 100), None));
            assert!(!p.bwe_due(now + BWE_INTERVAL_US - 1));
            now += BWE_INTERVAL_US;
        }
        assert!(changes.iter().all(Option::is_none), "{changes:?}");
        // Heavy loss: the estimate drops and the new bitrate is handed out once.
        let mut lowered = None;
        for i in 0..10u64 {
            let lossy = PathStats { lost_packets: i * 60, sent_packets: 1000 + i * 100, ..clean(0) };
            if let Some(bps) = p.on_path(now, &lossy, Some(128)) {
                lowered.get_or_insert(bps);
            }
            now += BWE_INTERVAL_US;
        }
        assert!(lowered.is_some_and(|b| b < 800_000), "{lowered:?}");
    }

    #[test]
    fn audio_reports_with_the_first_frame_and_then_every_second() {
        let mut a = AudioPublish::default();
        let due: Vec<u64> = (1..=160u64).filter(|_| a.on_frame()).collect();
        assert_eq!(due, vec![1, 51, 101, 151]);
    }
}
