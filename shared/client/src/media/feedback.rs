//! RTCP receiver reports, both ways.
//!
//! * Subscribing: every remote track keeps a
//!   [`ReceiverReporter`](clinicmeet_rtp::rtcp::ReceiverReporter); once a second
//!   its report (loss, jitter, LSR/DLSR) goes back on the track's flow. The relay
//!   keeps them (it terminates feedback) and reports each publisher's uplink itself.
//! * Publishing: [`UplinkFeedback`] reads the relay's reports of what reached it:
//!   the worst fraction lost since it was last asked feeds the bandwidth
//!   controller (video) and the Opus encoder's expected loss, which sizes its
//!   in-band FEC (audio); LSR/DLSR give the round trip to the relay.

use clinicmeet_rtp::ext::ntp_from_unix_us;
use clinicmeet_rtp::rtcp::{rtt_us, ReceiverReport, RtcpPacket};

/// What the relay's receiver reports say about one published track.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UplinkFeedback {
    /// Worst fraction lost (1/256) since [`UplinkFeedback::take_fraction_lost`].
    worst_fraction_lost: Option<u8>,
    /// Round trip to the relay from the last report with an SR reference (µs).
    pub rtt_us: Option<u64>,
}

impl UplinkFeedback {
    /// RTCP from the relay on a published flow; reports about other SSRCs than
    /// `ours` (the track's encodings) are ignored. `now_us` on the media clock.
    pub fn on_rtcp(&mut self, packets: &[RtcpPacket], ours: impl Fn(u32) -> bool, now_us: u64) {
        for p in packets {
            if let RtcpPacket::ReceiverReport(ReceiverReport { reports, .. }) = p {
                for b in reports.iter().filter(|b| ours(b.ssrc)) {
                    let worst = self.worst_fraction_lost.map_or(b.fraction_lost, |w| w.max(b.fraction_lost));
                    self.worst_fraction_lost = Some(worst);
                    if let Some(rtt) = rtt_us(b, ntp_from_unix_us(now_us)) {
                        self.rtt_us = Some(rtt);
                    }
                }
            }
        }
    }

    /// The worst fraction lost reported since the last call (`None`: no report).
    pub fn take_fraction_lost(&mut self) -> Option<u8> {
        self.worst_fraction_lost.take()
    }
}

/// The Opus encoder's expected loss (%) for a reported fraction lost: twice the
/// loss seen (loss comes in bursts and FEC protects only the packet before),
/// at least 5 % so a sudden loss is never met without FEC, at most 40 %.
pub fn opus_expected_loss_pct(fraction_lost: u8) -> u8 {
    let pct = (u32::from(fraction_lost) * 100).div_ceil(256);
    (pct * 2).clamp(5, 40) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_rtp::rtcp::{ntp_mid32, ReportBlock};

    fn report(ssrc: u32, fraction_lost: u8, last_sr: u32, dlsr: u32) -> RtcpPacket {
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 0x5246_4c59,
            reports: vec![ReportBlock {
                ssrc,
                fraction_lost,
                last_sr,
                delay_since_last_sr: dlsr,
                ..Default::default()
            }],
        })
    }

    #[test]
    fn worst_loss_of_our_encodings_and_the_round_trip() {
        let mut f = UplinkFeedback::default();
        assert_eq!(f.take_fraction_lost(), None);
        let sr_sent = 1_763_900_000_000_000u64;
        let lsr = ntp_mid32(ntp_from_unix_us(sr_sent));
        // Held 10 ms at the relay (DLSR), back 50 ms after the SR: 40 ms round trip.
        let dlsr = 10_000 * 65_536 / 1_000_000;
        let packets = [report(100, 12, lsr, dlsr), report(101, 30, 0, 0), report(555, 200, 0, 0)];
        f.on_rtcp(&packets, |s| s == 100 || s == 101, sr_sent + 50_000);
        assert_eq!(f.take_fraction_lost(), Some(30), "the worst of ours, not another track's");
        assert_eq!(f.take_fraction_lost(), None, "taken");
        let rtt = f.rtt_us.unwrap();
        assert!((39_000..=41_000).contains(&rtt), "{rtt}");
    }

    #[test]
    fn expected_loss_follows_reports_within_bounds() {
        assert_eq!(opus_expected_loss_pct(0), 5);
        assert_eq!(opus_expected_loss_pct(13), 12); // 5.1 % seen
        assert_eq!(opus_expected_loss_pct(128), 40); // 50 % seen
    }
}
