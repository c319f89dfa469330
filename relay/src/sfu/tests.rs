//! The forwarding core on a virtual clock.

use bytes::Bytes;
use clinicmeet_protocol::{datagram, TrackKind};
use clinicmeet_rtp::ext::VideoLayer;
use clinicmeet_rtp::rtcp::{self, Nack, Pli, RtcpPacket};
use clinicmeet_rtp::{HeaderExtensions, RtpPacket, RtpView, NACK_COPY_DELAY_US};
use uuid::Uuid;

use super::*;

const PUB: ConnId = 1;
const SUB: ConnId = 2;
const SUB2: ConnId = 3;
const PUB_FLOW: FlowId = 1;
const SUB_FLOW: FlowId = 70; // two-byte varint prefix

fn rtp(ssrc: u32, seq: u16, layer: Option<VideoLayer>) -> Bytes {
    let p = RtpPacket {
        marker: false,
        payload_type: 102,
        sequence: seq,
        timestamp: u32::from(seq) * 3000,
        ssrc,
        extensions: HeaderExtensions { video_layer: layer, ..Default::default() },
        payload: vec![seq as u8; 100],
    };
    Bytes::from(datagram::encode(PUB_FLOW, &p.to_bytes()))
}

fn layer(start: bool, keyframe: bool, tid: u8, sid: u8, layers: u8) -> Option<VideoLayer> {
    Some(VideoLayer {
        start_of_frame: start,
        end_of_frame: true,
        keyframe,
        temporal_id: tid,
        spatial_id: sid,
        temporal_layers: layers,
    })
}

struct Rx {
    seq: u16,
    ssrc: u32,
    payload0: u8,
}

/// RTP sent to `conn` on `flow`.
fn rtp_to(out: &[Transmit], conn: ConnId, flow: FlowId) -> Vec<Rx> {
    out.iter()
        .filter(|t| t.conn == conn)
        .filter_map(|t| {
            let (f, pkt) = datagram::decode(&t.data)?;
            if f != flow || is_rtcp(pkt) {
                return None;
            }
            let v = RtpView::parse(pkt).ok()?;
            Some(Rx { seq: v.sequence, ssrc: v.ssrc, payload0: v.payload()[0] })
        })
        .collect()
}

/// Every RTCP packet the relay sent to the publisher.
fn rtcp_to_publisher(out: &[Transmit]) -> impl Iterator<Item = RtcpPacket> + '_ {
    out.iter()
        .filter(|t| t.conn == PUB)
        .filter_map(|t| datagram::decode(&t.data).map(|(_, p)| p.to_vec()))
        .flat_map(|p| rtcp::parse_compound(&p).unwrap_or_default())
}

/// PLIs sent to the publisher, by media SSRC.
fn plis(out: &[Transmit]) -> Vec<u32> {
    rtcp_to_publisher(out)
        .filter_map(|p| match p {
            RtcpPacket::Pli(p) => Some(p.media_ssrc),
            _ => None,
        })
        .collect()
}

fn video_setup(encodings: Vec<(u32, u8)>) -> (Sfu, TrackId, Vec<Transmit>) {
    let mut sfu = Sfu::new();
    let id = Uuid::now_v7();
    let mut out = Vec::new();
    sfu.command(
        0,
        MediaCmd::AddTrack {
            track_id: id,
            conn: PUB,
            flow: PUB_FLOW,
            kind: TrackKind::Video,
            encodings,
            enabled: true,
        },
        &mut out,
    );
    sfu.command(
        0,
        MediaCmd::Subscribe { conn: SUB, flow: SUB_FLOW, track_id: id, max_encoding: None },
        &mut out,
    );
    (sfu, id, out)
}

fn assert_continuous(rx: &[Rx]) {
    for w in rx.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence must stay continuous");
    }
}

#[test]
fn starts_at_a_keyframe_and_thins_the_top_temporal_layer_with_continuous_sequence() {
    let (mut sfu, _, out) = video_setup(vec![(1000, 2)]);
    assert_eq!(plis(&out), vec![1000], "a new video subscriber asks the publisher for a keyframe");
    let mut out = Vec::new();
    let mut now = 1_000;
    // A delta frame before the keyframe is not forwarded.
    sfu.datagram(now, PUB, rtp(1000, 10, layer(true, false, 1, 0, 2)), &mut out);
    assert!(rtp_to(&out, SUB, SUB_FLOW).is_empty());
    // Keyframe (2 packets), then T1, T0, T1, T0 frames of one packet each.
    let frames = [(11, true, true, 0), (12, false, true, 0), (13, true, false, 1), (14, true, false, 0)];
    for (seq, start, kf, tid) in frames {
        now += 1000;
        sfu.datagram(now, PUB, rtp(1000, seq, layer(start, kf, tid, 0, 2)), &mut out);
    }
    let rx = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(rx.len(), 4);
    assert!(rx.iter().all(|r| r.ssrc == 1000));
    assert_continuous(&rx);
    // Slow subscriber: level 1 drops T1 frames; numbering stays continuous.
    sfu.set_level(SUB, 1);
    out.clear();
    for seq in 15..=30u16 {
        let tid = u8::from(seq % 2 == 1);
        sfu.datagram(now, PUB, rtp(1000, seq, layer(true, false, tid, 0, 2)), &mut out);
    }
    let rx2 = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(rx2.len(), 8, "only T0 frames");
    assert!(rx2.iter().all(|r| r.payload0 % 2 == 0));
    assert_eq!(rx2[0].seq, rx[3].seq.wrapping_add(1));
    assert_continuous(&rx2);
    assert_eq!(sfu.counters().dropped_thinning, 8);
}

#[test]
fn upstream_loss_keeps_a_gap_and_nacks_are_answered_from_the_cache() {
    let (mut sfu, _, _) = video_setup(vec![(1000, 1)]);
    let mut out = Vec::new();
    sfu.datagram(0, PUB, rtp(1000, 500, layer(true, true, 0, 0, 1)), &mut out);
    sfu.datagram(0, PUB, rtp(1000, 501, layer(false, false, 0, 0, 1)), &mut out);
    // 502 is lost before the relay.
    sfu.datagram(0, PUB, rtp(1000, 503, layer(false, false, 0, 0, 1)), &mut out);
    let rx = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(rx.len(), 3);
    let first = rx[0].seq;
    assert_eq!(rx[2].seq, first.wrapping_add(3), "the lost packet keeps its number");
    // The subscriber NACKs its (rewritten) numbers of 501 and of the lost 502.
    out.clear();
    let nack = RtcpPacket::Nack(Nack {
        sender_ssrc: 9,
        media_ssrc: 1000,
        lost: vec![first.wrapping_add(1), first.wrapping_add(2)],
    });
    sfu.datagram(10_000, SUB, Bytes::from(datagram::encode(SUB_FLOW, &nack.to_bytes())), &mut out);
    let re = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(re.len(), 1, "501 is in the cache, 502 never arrived");
    assert_eq!(re[0].seq, first.wrapping_add(1));
    assert_eq!(re[0].payload0, 501u16 as u8, "the original packet comes back under the rewritten number");
    assert_eq!(sfu.counters().nack_misses, 1);
    assert!(plis(&out).is_empty(), "NACKs are never forwarded to the publisher");
}

#[test]
fn subscriber_plis_become_one_rate_limited_pli_per_track() {
    let (mut sfu, id, out) = video_setup(vec![(1000, 1)]);
    assert_eq!(plis(&out).len(), 1);
    let mut out = Vec::new();
    sfu.command(
        10_000,
        MediaCmd::Subscribe { conn: SUB2, flow: 5, track_id: id, max_encoding: None },
        &mut out,
    );
    assert!(plis(&out).is_empty(), "second subscriber within the interval: no second PLI yet");
    let pli = |flow| {
        Bytes::from(datagram::encode(
            flow,
            &RtcpPacket::Pli(Pli { sender_ssrc: 1, media_ssrc: 1000 }).to_bytes(),
        ))
    };
    for t in [100_000u64, 200_000, 250_000] {
        sfu.datagram(t, SUB, pli(SUB_FLOW), &mut out);
        sfu.datagram(t, SUB2, pli(5), &mut out);
        sfu.tick(t + 1, &mut out);
    }
    assert!(plis(&out).is_empty());
    // The waiting requests go out together as one PLI when the interval is over.
    sfu.tick(PLI_INTERVAL_US - 1, &mut out);
    assert!(plis(&out).is_empty());
    sfu.tick(PLI_INTERVAL_US, &mut out);
    assert_eq!(plis(&out), vec![1000], "one PLI per interval however many subscribers ask");
    sfu.tick(PLI_INTERVAL_US + 1_000, &mut out);
    assert_eq!(plis(&out).len(), 1, "nothing waits any more");
    // A keyframe arriving answers a request made before it: no PLI follows.
    out.clear();
    sfu.datagram(400_000, SUB2, pli(5), &mut out);
    sfu.datagram(450_000, PUB, rtp(1000, 1, layer(true, true, 0, 0, 1)), &mut out);
    sfu.tick(2 * PLI_INTERVAL_US + 1, &mut out);
    assert!(plis(&out).is_empty(), "the keyframe that came answered it");
    sfu.datagram(1_000_000, SUB2, pli(5), &mut out);
    assert_eq!(plis(&out).len(), 1, "outside the interval a request goes out at once");
}

#[test]
fn muted_audio_is_not_forwarded_and_resumes_with_continuous_sequence() {
    let mut sfu = Sfu::new();
    let id = Uuid::now_v7();
    let mut out = Vec::new();
    let add = MediaCmd::AddTrack {
        track_id: id,
        conn: PUB,
        flow: PUB_FLOW,
        kind: TrackKind::Audio,
        encodings: vec![(77, 1)],
        enabled: true,
    };
    sfu.command(0, add, &mut out);
    sfu.command(
        0,
        MediaCmd::Subscribe { conn: SUB, flow: SUB_FLOW, track_id: id, max_encoding: None },
        &mut out,
    );
    assert!(plis(&out).is_empty(), "no keyframes for audio");
    sfu.set_level(SUB, 2);
    for seq in 0..5 {
        sfu.datagram(0, PUB, rtp(77, seq, None), &mut out);
    }
    // Host mute: the client keeps sending, the relay forwards nothing.
    sfu.command(0, MediaCmd::SetEnabled { track_id: id, enabled: false }, &mut out);
    for seq in 5..50 {
        sfu.datagram(0, PUB, rtp(77, seq, None), &mut out);
    }
    assert_eq!(rtp_to(&out, SUB, SUB_FLOW).len(), 5, "audio is never thinned, but muted is muted");
    assert_eq!(sfu.counters().dropped_muted, 45);
    sfu.command(0, MediaCmd::SetEnabled { track_id: id, enabled: true }, &mut out);
    for seq in 50..55 {
        sfu.datagram(0, PUB, rtp(77, seq, None), &mut out);
    }
    let rx = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(rx.len(), 10);
    assert_continuous(&rx);
    assert_eq!(rx[5].payload0, 50);
}

#[test]
fn simulcast_switches_only_at_a_keyframe_and_recovers_upward() {
    let (mut sfu, _, out) = video_setup(vec![(2000, 1), (2001, 1)]);
    assert_eq!(plis(&out), vec![2001], "the best encoding is asked for first");
    let mut out = Vec::new();
    let mut now = 0u64;
    let mut seq = [100u16, 900u16];
    let mut frame = |sfu: &mut Sfu, out: &mut Vec<Transmit>, now: u64, enc: usize, kf: bool| {
        for part in 0..2 {
            let l = layer(part == 0, kf, 0, enc as u8, 1);
            sfu.datagram(now, PUB, rtp(2000 + enc as u32, seq[enc], l), out);
            seq[enc] = seq[enc].wrapping_add(1);
        }
    };
    frame(&mut sfu, &mut out, now, 0, true);
    frame(&mut sfu, &mut out, now, 1, true);
    frame(&mut sfu, &mut out, now, 1, false);
    let rx = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(rx.len(), 4, "high encoding from its keyframe on; low ignored");
    // Congested: level 2 wants the low encoding, but only from its next keyframe.
    sfu.set_level(SUB, 2);
    out.clear();
    now += 600_000;
    frame(&mut sfu, &mut out, now, 0, false);
    frame(&mut sfu, &mut out, now, 1, false);
    assert_eq!(plis(&out), vec![2000], "keyframe of the low encoding requested");
    let mid = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(mid.len(), 2, "still the high encoding until the switch");
    frame(&mut sfu, &mut out, now, 0, true);
    frame(&mut sfu, &mut out, now, 1, false);
    frame(&mut sfu, &mut out, now, 0, false);
    let after = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(after.len(), 6);
    let all: Vec<Rx> = rx.into_iter().chain(after).collect();
    assert!(all.iter().all(|r| r.ssrc == 2000), "one SSRC whatever the encoding");
    assert_continuous(&all);
    // Clear again: back up at the high encoding's next keyframe.
    sfu.set_level(SUB, 0);
    out.clear();
    now += 600_000;
    frame(&mut sfu, &mut out, now, 0, false);
    assert_eq!(plis(&out), vec![2001]);
    frame(&mut sfu, &mut out, now, 1, true);
    frame(&mut sfu, &mut out, now, 0, false);
    let up = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(up.len(), 4, "low frame, then high from its keyframe, low no more");
    assert_continuous(&up);
}

#[test]
fn garbage_never_panics() {
    let (mut sfu, _, _) = video_setup(vec![(1000, 2)]);
    let mut out = Vec::new();
    let mut x: u32 = 12345;
    for len in 0..400usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for conn in [PUB, SUB, 99] {
            let mut d = bytes.clone();
            if let Some(b) = d.first_mut() {
                *b = if conn == SUB { SUB_FLOW as u8 } else { PUB_FLOW as u8 };
            }
            sfu.datagram(0, conn, Bytes::from(d), &mut out);
        }
    }
    assert!(sfu.counters().malformed > 0);
}

/// NACKs the relay sent to the publisher, as (media SSRC, lost numbers).
fn upstream_nacks(out: &[Transmit]) -> Vec<(u32, Vec<u16>)> {
    rtcp_to_publisher(out)
        .filter_map(|p| match p {
            RtcpPacket::Nack(n) => Some((n.media_ssrc, n.lost)),
            _ => None,
        })
        .collect()
}

#[test]
fn upstream_loss_is_nacked_to_the_publisher_and_the_retransmission_fills_the_gap() {
    let (mut sfu, _, _) = video_setup(vec![(1000, 1)]);
    let mut out = Vec::new();
    sfu.datagram(0, PUB, rtp(1000, 500, layer(true, true, 0, 0, 1)), &mut out);
    sfu.datagram(1_000, PUB, rtp(1000, 503, layer(false, false, 0, 0, 1)), &mut out);
    assert!(upstream_nacks(&out).is_empty(), "it may be reordering");
    sfu.tick(1_000 + UPSTREAM_REORDER_WAIT_US, &mut out);
    assert_eq!(upstream_nacks(&out), vec![(1000, vec![501, 502])], "a gap outlasting reordering is NACKed");
    let first = rtp_to(&out, SUB, SUB_FLOW)[0].seq;
    out.clear();
    sfu.tick(1_000 + UPSTREAM_REORDER_WAIT_US + NACK_COPY_DELAY_US - 1, &mut out);
    assert!(upstream_nacks(&out).is_empty(), "the copy waits");
    sfu.tick(1_000 + UPSTREAM_REORDER_WAIT_US + NACK_COPY_DELAY_US, &mut out);
    assert_eq!(upstream_nacks(&out), vec![(1000, vec![501, 502])], "then goes, in a QUIC packet of its own");
    // Retried after the retry interval, at most a few times, only for what is still missing.
    out.clear();
    sfu.datagram(50_000, PUB, rtp(1000, 501, layer(false, false, 0, 0, 1)), &mut out);
    let re = rtp_to(&out, SUB, SUB_FLOW);
    assert_eq!(re.len(), 1);
    assert_eq!(re[0].seq, first.wrapping_add(1), "the late packet gets the number kept for it");
    out.clear();
    sfu.tick(60_000, &mut out);
    assert!(upstream_nacks(&out).is_empty(), "not yet");
    let retried = 1_000 + UPSTREAM_REORDER_WAIT_US + UPSTREAM_NACK_RETRY_US;
    sfu.tick(retried, &mut out);
    sfu.tick(retried + NACK_COPY_DELAY_US, &mut out);
    assert_eq!(upstream_nacks(&out), vec![(1000, vec![502]); 2], "a retry and its copy");
    out.clear();
    for i in 2..20 {
        let at = 1_000 + UPSTREAM_REORDER_WAIT_US + i * UPSTREAM_NACK_RETRY_US;
        sfu.tick(at, &mut out);
        sfu.tick(at + NACK_COPY_DELAY_US, &mut out);
    }
    // Retries at 271, 391 and 511 ms; the next would be past the 600 ms give-up.
    assert_eq!(upstream_nacks(&out).len(), 3 * 2, "retried until the give-up deadline");
    assert_eq!(sfu.counters().upstream_nacks, 6);
    assert_eq!(plis(&out), vec![1000], "a packet given up costs a keyframe: asked for at once");
}

#[test]
fn upstream_nack_retries_follow_the_publishers_round_trip_time() {
    let (mut sfu, _, _) = video_setup(vec![(1000, 1)]);
    sfu.set_rtt(PUB, 60_000);
    let mut out = Vec::new();
    sfu.datagram(0, PUB, rtp(1000, 500, layer(true, true, 0, 0, 1)), &mut out);
    sfu.datagram(0, PUB, rtp(1000, 502, layer(false, false, 0, 0, 1)), &mut out);
    sfu.tick(UPSTREAM_REORDER_WAIT_US, &mut out);
    sfu.tick(UPSTREAM_REORDER_WAIT_US + NACK_COPY_DELAY_US, &mut out);
    assert_eq!(upstream_nacks(&out).len(), 2, "the NACK and its copy");
    out.clear();
    let retry = 60_000 + UPSTREAM_RETRY_MARGIN_US;
    sfu.tick(UPSTREAM_REORDER_WAIT_US + retry - 1, &mut out);
    assert!(upstream_nacks(&out).is_empty());
    sfu.tick(UPSTREAM_REORDER_WAIT_US + retry, &mut out);
    assert_eq!(upstream_nacks(&out), vec![(1000, vec![501])], "one RTT and a margin later");
}

#[test]
fn a_nacks_copy_buys_a_second_retransmission_only_on_an_uncongested_connection() {
    let (mut sfu, _, _) = video_setup(vec![(1000, 1)]);
    let mut out = Vec::new();
    sfu.datagram(0, PUB, rtp(1000, 500, layer(true, true, 0, 0, 1)), &mut out);
    let first = rtp_to(&out, SUB, SUB_FLOW)[0].seq;
    let nack = Bytes::from(datagram::encode(
        SUB_FLOW,
        &RtcpPacket::Nack(Nack { sender_ssrc: 9, media_ssrc: 1000, lost: vec![first] }).to_bytes(),
    ));
    out.clear();
    sfu.datagram(10_000, SUB, nack.clone(), &mut out);
    sfu.datagram(10_001, SUB, nack.clone(), &mut out);
    assert_eq!(rtp_to(&out, SUB, SUB_FLOW).len(), 2, "uncongested: both copies answered");
    sfu.set_level(SUB, 1);
    out.clear();
    sfu.datagram(100_000, SUB, nack.clone(), &mut out);
    sfu.datagram(100_001, SUB, nack.clone(), &mut out);
    assert_eq!(rtp_to(&out, SUB, SUB_FLOW).len(), 1, "congested: the copy is not answered again");
    sfu.datagram(200_000, SUB, nack, &mut out);
    assert_eq!(rtp_to(&out, SUB, SUB_FLOW).len(), 2, "a later retry is answered");
}

/// Receiver reports the relay sent to the publisher.
fn reports_to_publisher(out: &[Transmit]) -> Vec<rtcp::ReceiverReport> {
    rtcp_to_publisher(out)
        .filter_map(|p| match p {
            RtcpPacket::ReceiverReport(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn the_relay_reports_uplink_loss_to_the_publisher_and_keeps_subscriber_reports() {
    let (mut sfu, _, _) = video_setup(vec![(1000, 1)]);
    let mut out = Vec::new();
    let sr = RtcpPacket::SenderReport(rtcp::sender_report(1000, 1_763_900_000_000_000, 0, 0, 0));
    sfu.datagram(0, PUB, Bytes::from(datagram::encode(PUB_FLOW, &sr.to_bytes())), &mut out);
    // 100 packets from the publisher, every tenth lost on the way (not recovered).
    for seq in 0..100u16 {
        if seq % 10 != 5 {
            sfu.datagram(
                u64::from(seq) * 1_000,
                PUB,
                rtp(1000, seq, layer(seq == 0, seq == 0, 0, 0, 1)),
                &mut out,
            );
        }
    }
    out.clear();
    sfu.tick(150_000, &mut out);
    let rr = reports_to_publisher(&out);
    assert_eq!(rr.len(), 1, "one report per track");
    assert_eq!(rr[0].ssrc, RELAY_SSRC);
    let b = &rr[0].reports[0];
    assert_eq!((b.ssrc, b.cumulative_lost), (1000, 10));
    assert!((24..=27).contains(&b.fraction_lost), "fraction lost {}", b.fraction_lost);
    assert_eq!(b.last_sr, rtcp::ntp_mid32(ntp_of(&sr)), "LSR echoes the publisher's sender report");
    assert_eq!(b.delay_since_last_sr, (150_000u64 * 65_536 / 1_000_000) as u32);
    out.clear();
    sfu.tick(600_000, &mut out);
    assert!(reports_to_publisher(&out).is_empty(), "once a second");

    // A subscriber's report stops at the relay.
    let sub_rr = RtcpPacket::ReceiverReport(rtcp::ReceiverReport {
        ssrc: 9,
        reports: vec![rtcp::ReportBlock { ssrc: 1000, fraction_lost: 40, ..Default::default() }],
    });
    out.clear();
    sfu.datagram(700_000, SUB, Bytes::from(datagram::encode(SUB_FLOW, &sub_rr.to_bytes())), &mut out);
    assert!(out.is_empty(), "not forwarded: {out:?}");
    assert_eq!(sfu.counters().reports_received, 1);
    assert_eq!(sfu.counters().reports_sent, 1);
}

fn ntp_of(p: &RtcpPacket) -> u64 {
    match p {
        RtcpPacket::SenderReport(sr) => sr.ntp_time,
        _ => 0,
    }
}
