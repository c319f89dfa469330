//! [`MediaCore`] on a virtual clock: one subscribed video flow under loss,
//! reordering, burst loss and jitter. Only the core is driven: datagrams in at
//! their arrival time, [`MediaCore::handle_timeout`] whenever
//! [`MediaCore::poll_timeout`] says (at most once a millisecond, as the driver
//! does), and every output collected with the time it left.

use super::*;
use crate::media::stats::TrackStats;
use clinicmeet_protocol::TrackKind;
use clinicmeet_rtp::ext::VideoLayer;
use clinicmeet_rtp::rtcp::REPORT_INTERVAL_US;
use clinicmeet_rtp::{HeaderExtensions, RtpPacket, NACK_COPY_DELAY_US};
use uuid::Uuid;

use crate::media::video_feedback::PLI_INTERVAL_US;

const FLOW: u64 = 5;
/// The publisher's SSRC.
const PUB: u32 = 0x1000;
/// Ours.
const ME: u32 = 7;
const T0: u64 = 10_000_000;

/// A one-packet frame of `ssrc` (an IDR when `keyframe`).
pub(super) fn video_packet(ssrc: u32, seq: u16, keyframe: bool) -> Vec<u8> {
    let layer = VideoLayer {
        start_of_frame: true,
        end_of_frame: true,
        keyframe,
        temporal_layers: 1,
        ..VideoLayer::default()
    };
    RtpPacket {
        marker: true,
        payload_type: 102,
        sequence: seq,
        timestamp: u32::from(seq) * 3000,
        ssrc,
        extensions: HeaderExtensions { video_layer: Some(layer), ..HeaderExtensions::default() },
        payload: vec![if keyframe { 0x65 } else { 0x41 }, 1, 2],
    }
    .to_bytes()
}

fn packet(seq: u16, keyframe: bool) -> Vec<u8> {
    video_packet(PUB, seq, keyframe)
}

/// A subscribed camera route whose feedback is sent as `my_ssrc`.
pub(super) fn sub_video(my_ssrc: u32) -> Route {
    let stats = Arc::new(Mutex::new(TrackStats::new(Uuid::nil(), Uuid::nil(), TrackKind::Video)));
    Route::SubVideo(Box::new(SubVideo::new(my_ssrc, SharedSync::default(), SyncStream::Camera, stats)))
}

struct Sim {
    core: MediaCore,
    now: u64,
    last_timeout: u64,
    /// NACKs sent: when, and the sequence numbers listed.
    nacks: Vec<(u64, Vec<u16>)>,
    /// PLIs sent: when.
    plis: Vec<u64>,
    /// Frames handed to the decoder: their first sequence number.
    frames: Vec<u16>,
}

impl Sim {
    fn new() -> Sim {
        let mut core = MediaCore::default();
        core.insert(FLOW, sub_video(ME));
        Sim { core, now: T0, last_timeout: 0, nacks: Vec::new(), plis: Vec::new(), frames: Vec::new() }
    }

    /// Runs the core's timeouts up to `to`.
    fn advance(&mut self, to: u64) {
        while let Some(t) = self.core.poll_timeout() {
            let t = t.max(self.last_timeout + 1_000).max(self.now);
            if t > to {
                break;
            }
            self.now = t;
            self.last_timeout = t;
            self.core.handle_timeout(t);
            self.drain();
        }
        self.now = self.now.max(to);
    }

    fn arrive(&mut self, at: u64, pkt: &[u8]) {
        assert!(at >= self.now, "time runs forward");
        self.advance(at);
        self.core.handle_datagram(&datagram::encode(FLOW, pkt), at, || 0);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit { flow, packet } => {
                    assert_eq!(flow, FLOW);
                    let Ok(packets) = rtcp::parse_compound(&packet) else { panic!("unreadable RTCP") };
                    for p in packets {
                        match p {
                            RtcpPacket::Nack(n) => {
                                assert_eq!((n.sender_ssrc, n.media_ssrc), (ME, PUB));
                                self.nacks.push((self.now, n.lost));
                            }
                            RtcpPacket::Pli(p) => {
                                assert_eq!((p.sender_ssrc, p.media_ssrc), (ME, PUB));
                                self.plis.push(self.now);
                            }
                            RtcpPacket::ReceiverReport(_) => {}
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                }
                Output::Video { flow, frame, .. } => {
                    assert_eq!(flow, FLOW);
                    self.frames.push(frame.first_seq);
                }
            }
        }
    }
}

#[test]
fn a_loss_is_nacked_once_and_copied_15_ms_later() {
    let mut sim = Sim::new();
    let at = |seq: u16| T0 + u64::from(seq) * 33_000;
    for seq in (0..=9).chain(13..=14) {
        sim.arrive(at(seq), &packet(seq, seq == 0));
    }
    // The gap opened when 13 arrived; NACKed once the 40 ms reordering wait is over.
    let nacked = at(13) + 40_000;
    sim.advance(nacked);
    assert_eq!(sim.nacks, vec![(nacked, vec![10, 11, 12])]);
    assert_eq!(sim.core.poll_timeout(), Some(nacked + NACK_COPY_DELAY_US), "the copy's timeout");
    // No datagram arrives meanwhile: the copy goes from handle_timeout.
    sim.advance(nacked + NACK_COPY_DELAY_US - 1);
    assert_eq!(sim.nacks.len(), 1, "not before it is due");
    sim.advance(nacked + 19_000);
    assert_eq!(sim.nacks, vec![(nacked, vec![10, 11, 12]), (nacked + NACK_COPY_DELAY_US, vec![10, 11, 12])]);
    // The retransmissions arrive, then the stream goes on: nothing more is asked.
    for seq in 10..=12 {
        sim.arrive(nacked + 20_000, &packet(seq, false));
    }
    for seq in 15..=40 {
        sim.arrive(at(seq), &packet(seq, false));
    }
    sim.advance(at(40) + 2 * REPORT_INTERVAL_US);
    assert_eq!(sim.nacks.len(), 2, "{:?}", sim.nacks);
    assert!(sim.plis.is_empty(), "{:?}", sim.plis);
    assert_eq!(sim.frames, (0..=40).collect::<Vec<u16>>());
}

#[test]
fn a_packet_reordered_within_the_wait_is_accepted_without_nack_or_pli() {
    let mut sim = Sim::new();
    let at = |seq: u64| T0 + seq * 5_000;
    for seq in 0..=20u16 {
        match seq {
            8 => {}
            // 8 arrives after 10: 7 ms after its gap opened, inside the 40 ms wait.
            11 => {
                sim.arrive(at(10) + 2_000, &packet(8, false));
                sim.arrive(at(11), &packet(11, false));
            }
            _ => sim.arrive(at(u64::from(seq)), &packet(seq, seq == 0)),
        }
    }
    sim.advance(at(20) + 1_000_000);
    assert!(sim.nacks.is_empty(), "{:?}", sim.nacks);
    assert!(sim.plis.is_empty(), "{:?}", sim.plis);
    assert_eq!(sim.frames, (0..=20).collect::<Vec<u16>>(), "8 accepted, all in order");
}

#[test]
fn a_burst_beyond_repair_costs_one_pli_per_300_ms() {
    let mut sim = Sim::new();
    let at = |i: u64| T0 + i * 10_000;
    for seq in 0..10u16 {
        sim.arrive(at(u64::from(seq)), &packet(seq, seq == 0));
    }
    assert!(sim.plis.is_empty());
    // 2000 packets lost at once: more than NACKs can bring back; the stream restarts.
    let burst = at(10);
    let mut seq = 2_010u16;
    sim.arrive(burst, &packet(seq, false));
    assert_eq!(sim.plis, vec![burst]);
    // Then 300 ms of a broken stream: a gap in every other packet, another jump.
    for i in 1..30u64 {
        seq = seq.wrapping_add(if i == 15 { 1_500 } else { 2 });
        sim.arrive(burst + i * 10_000, &packet(seq, false));
    }
    sim.advance(burst + PLI_INTERVAL_US - 1);
    assert_eq!(sim.plis, vec![burst], "at most one PLI within 300 ms");
    // The keyframe is still wanted: asked for again once the interval allows.
    sim.advance(burst + 1_000_000);
    assert!(sim.plis.len() >= 2, "{:?}", sim.plis);
    assert!(sim.plis.windows(2).all(|w| w[1] - w[0] >= PLI_INTERVAL_US), "{:?}", sim.plis);
}

#[test]
fn jittered_arrivals_in_order_cause_no_nack() {
    let mut sim = Sim::new();
    // 50 frames a second, each delayed 30 ms ± 30 ms (a fixed pseudo-random
    // sequence), never overtaking the one before: gaps of up to 80 ms between
    // arrivals, twice the reordering wait.
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut last = 0;
    for seq in 0..200u16 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let jitter = (rng % 60_001) as i64 - 30_000;
        let nominal = T0 + u64::from(seq) * 20_000 + 30_000;
        let arrival = (nominal as i64 + jitter) as u64;
        last = arrival.max(last);
        sim.arrive(last, &packet(seq, seq == 0));
    }
    sim.advance(last + 1_000_000);
    assert!(sim.nacks.is_empty(), "{:?}", sim.nacks);
    assert!(sim.plis.is_empty(), "{:?}", sim.plis);
    assert_eq!(sim.frames, (0..200).collect::<Vec<u16>>());
}
