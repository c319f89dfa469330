//! The RTCP a subscriber sends back on one remote video track, sans-IO: receiver
//! reports, NACKs (each sent twice, the copy [`NACK_COPY_DELAY_US`] later) and
//! rate-limited PLIs. The media core (`media/core.rs`) feeds it what arrived and
//! what the track's frame assembler found missing, with explicit `now_us`, and
//! queues what it returns.
//!
//! Which packets are lost (reordering wait, NACK retries) and when a keyframe is
//! needed is the frame assembler's call (`clinicmeet_media::video_receiver::VideoReceiver`,
//! plus the decoder's keyframe requests); this is what turns those into packets
//! on the wire, and when.

use std::collections::VecDeque;

use clinicmeet_media::video_receiver::RateLimiter;
use clinicmeet_rtp::rtcp::{Nack, Pli, ReceiverReporter, RtcpPacket, SenderReport};
use clinicmeet_rtp::{NACK_COPY_DELAY_US, VIDEO_CLOCK_RATE};

/// NACK copies waiting for their time, at most.
const MAX_PENDING_COPIES: usize = 64;

/// At most one PLI this often.
pub const PLI_INTERVAL_US: u64 = 300_000;

/// The feedback state of one subscribed video track.
#[derive(Debug)]
pub struct VideoFeedback {
    /// Our SSRC, the sender of every report and request.
    my_ssrc: u32,
    /// The SSRC of the first RTP packet received: whom NACKs and PLIs are about.
    media_ssrc: Option<u32>,
    reports: ReceiverReporter,
    /// Second copies of NACKs already sent, with the time each is due.
    nack_copies: VecDeque<(u64, Nack)>,
    pli_limit: RateLimiter,
}

impl VideoFeedback {
    pub fn new(my_ssrc: u32) -> VideoFeedback {
        VideoFeedback {
            my_ssrc,
            media_ssrc: None,
            reports: ReceiverReporter::new(my_ssrc, VIDEO_CLOCK_RATE),
            nack_copies: VecDeque::new(),
            pli_limit: RateLimiter::new(PLI_INTERVAL_US),
        }
    }

    /// An RTP packet arrived.
    pub fn on_rtp(&mut self, ssrc: u32, seq: u16, rtp_ts: u32, now_us: u64) {
        self.media_ssrc.get_or_insert(ssrc);
        self.reports.on_rtp(ssrc, seq, rtp_ts, now_us);
    }

    /// A sender report arrived.
    pub fn on_sender_report(&mut self, sr: &SenderReport, now_us: u64) {
        self.reports.on_sender_report(sr, now_us);
    }

    /// Whether an RTP packet has arrived: until then there is nobody to send
    /// feedback about, and [`poll`](Self::poll) must not be called (the receive
    /// stream's losses and keyframe request stay with it).
    pub fn has_media(&self) -> bool {
        self.media_ssrc.is_some()
    }

    /// The RTCP to send now, in order: a receiver report when one is due, a NACK for
    /// `lost` (the stream's NACK list now; its copy is queued), the NACK copies due,
    /// a PLI if `keyframe_wanted` and the last one is [`PLI_INTERVAL_US`] old.
    pub fn poll(&mut self, now_us: u64, lost: Vec<u16>, keyframe_wanted: bool) -> Vec<RtcpPacket> {
        let Some(media_ssrc) = self.media_ssrc else { return Vec::new() };
        let mut out = Vec::new();
        if let Some(rr) = self.reports.poll(now_us) {
            out.push(RtcpPacket::ReceiverReport(rr));
        }
        if !lost.is_empty() {
            // Twice: a lost NACK (or its one retransmission) costs a round trip and,
            // two hops from the publisher, often the frame; a copy costs a few bytes.
            let nack = Nack { sender_ssrc: self.my_ssrc, media_ssrc, lost };
            // Bounded: copies leave after NACK_COPY_DELAY_US; past the cap (a flood of
            // NACK-worthy input) a NACK simply goes once.
            if self.nack_copies.len() < MAX_PENDING_COPIES {
                self.nack_copies.push_back((now_us + NACK_COPY_DELAY_US, nack.clone()));
            }
            out.push(RtcpPacket::Nack(nack));
        }
        while self.nack_copies.front().is_some_and(|c| c.0 <= now_us) {
            if let Some((_, copy)) = self.nack_copies.pop_front() {
                out.push(RtcpPacket::Nack(copy));
            }
        }
        if keyframe_wanted && self.pli_limit.allow(now_us) {
            out.push(RtcpPacket::Pli(Pli { sender_ssrc: self.my_ssrc, media_ssrc }));
        }
        out
    }

    /// When the next NACK copy or receiver report is due (poll then at the latest).
    pub fn poll_timeout(&self) -> Option<u64> {
        let copy = self.nack_copies.front().map(|c| c.0);
        copy.into_iter().chain(self.reports.next_report_us()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_rtp::rtcp::REPORT_INTERVAL_US;

    const ME: u32 = 7;
    const PUB: u32 = 0x1000;

    fn nacks(out: &[RtcpPacket]) -> Vec<Vec<u16>> {
        out.iter()
            .filter_map(|p| match p {
                RtcpPacket::Nack(n) => {
                    assert_eq!((n.sender_ssrc, n.media_ssrc), (ME, PUB));
                    Some(n.lost.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn plis(out: &[RtcpPacket]) -> usize {
        out.iter().filter(|p| matches!(p, RtcpPacket::Pli(_))).count()
    }

    fn reports(out: &[RtcpPacket]) -> Vec<&RtcpPacket> {
        out.iter().filter(|p| matches!(p, RtcpPacket::ReceiverReport(_))).collect()
    }

    /// Packets `seqs` arrive 1 ms apart from `t`; returns the time after the last.
    fn receive(f: &mut VideoFeedback, seqs: &[u16], t: u64) -> u64 {
        for (i, s) in seqs.iter().enumerate() {
            f.on_rtp(PUB, *s, u32::from(*s) * 3000, t + i as u64 * 1_000);
        }
        t + seqs.len() as u64 * 1_000
    }

    #[test]
    fn nothing_before_the_first_packet() {
        let mut f = VideoFeedback::new(ME);
        assert!(!f.has_media());
        assert!(f.poll(0, vec![1, 2], true).is_empty());
        assert_eq!(f.poll_timeout(), None);
        receive(&mut f, &[1], 0);
        assert!(f.has_media());
    }

    #[test]
    fn a_loss_is_nacked_twice_15_ms_apart() {
        let mut f = VideoFeedback::new(ME);
        let t = receive(&mut f, &[1, 2, 4], 1_000_000);
        let out = f.poll(t, vec![3], false);
        assert_eq!(nacks(&out), [vec![3]]);
        assert_eq!(reports(&out).len(), 1, "the first report goes out with the first poll");
        assert_eq!(f.poll_timeout(), Some(t + NACK_COPY_DELAY_US));
        assert!(f.poll(t + NACK_COPY_DELAY_US - 1, vec![], false).is_empty(), "not before it is due");
        let out = f.poll(t + NACK_COPY_DELAY_US, vec![], false);
        assert_eq!(nacks(&out), [vec![3]], "the copy");
        assert_eq!(f.poll_timeout(), Some(t + REPORT_INTERVAL_US), "then the next report");
        assert!(f.poll(t + 100_000, vec![], false).is_empty());
    }

    #[test]
    fn reordered_packets_are_no_loss_in_the_report() {
        let mut f = VideoFeedback::new(ME);
        let t = receive(&mut f, &[10, 11, 13, 12, 14], 0);
        let out = f.poll(t, vec![], false);
        match reports(&out)[..] {
            [RtcpPacket::ReceiverReport(rr)] => {
                let b = &rr.reports[0];
                assert_eq!((rr.ssrc, b.ssrc), (ME, PUB));
                assert_eq!((b.cumulative_lost, b.fraction_lost), (0, 0));
                assert_eq!(b.highest_seq & 0xffff, 14);
            }
            ref other => panic!("{other:?}"),
        }
        // The next report a second later, not before.
        assert!(reports(&f.poll(t + 500_000, vec![], false)).is_empty());
        let t2 = receive(&mut f, &[15, 16], t + 600_000);
        assert_eq!(reports(&f.poll(t + 1_000_000, vec![], false)).len(), 1);
        assert!(t2 < t + 1_000_000);
    }

    #[test]
    fn a_burst_is_one_nack_and_copies_keep_their_order() {
        let mut f = VideoFeedback::new(ME);
        let t = receive(&mut f, &[100, 111], 0);
        let burst: Vec<u16> = (101..=110).collect();
        assert_eq!(nacks(&f.poll(t, burst.clone(), false)), vec![burst.clone()]);
        // A later loss 5 ms on: its own NACK now, its copy after the burst's.
        assert_eq!(nacks(&f.poll(t + 5_000, vec![115], false)), [vec![115]]);
        assert_eq!(f.poll_timeout(), Some(t + NACK_COPY_DELAY_US));
        // Polled late: both copies at once, in order.
        let out = f.poll(t + 30_000, vec![], false);
        assert_eq!(nacks(&out), [burst, vec![115]]);
        assert_eq!(f.poll_timeout(), Some(t + REPORT_INTERVAL_US));
    }

    #[test]
    fn plis_are_rate_limited() {
        let mut f = VideoFeedback::new(ME);
        let t = receive(&mut f, &[1], 0);
        assert_eq!(plis(&f.poll(t, vec![], true)), 1);
        assert_eq!(plis(&f.poll(t + 100_000, vec![], true)), 0, "too soon");
        assert_eq!(plis(&f.poll(t + PLI_INTERVAL_US - 1, vec![], true)), 0);
        assert_eq!(plis(&f.poll(t + PLI_INTERVAL_US, vec![], false)), 0, "not wanted");
        assert_eq!(plis(&f.poll(t + PLI_INTERVAL_US + 1, vec![], true)), 1);
    }
}
