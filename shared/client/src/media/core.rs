//! The media engine's datagram logic, without I/O: which flow is what, what its
//! RTP and RTCP do, and when it next needs the clock.
//!
//! [`MediaCore`] maps each flow id to a [`Route`] (a published track, or a
//! subscribed audio or video track). Inputs, each with the caller's `now_us`
//! (media clock): [`MediaCore::handle_datagram`] (every incoming datagram),
//! [`MediaCore::request_keyframe`] (a decoder lost its references) and
//! [`MediaCore::handle_timeout`] (at [`MediaCore::poll_timeout`]). Outputs, from
//! [`MediaCore::poll_output`]: datagrams to send, and assembled video frames to
//! decode.
//!
//! * published video: NACKs are answered from the sender's history, a PLI asks
//!   the encoding it names for a keyframe, receiver reports go to the track's
//!   [`UplinkFeedback`];
//! * published audio: receiver reports go to the track's [`UplinkFeedback`];
//! * subscribed audio: packets go to the jitter buffer (the playout thread pulls
//!   it on its own 20 ms clock), sender reports to lip sync, and a receiver
//!   report is due once a second;
//! * subscribed video: packets go to the track's frame assembler
//!   ([`VideoReceiver`]: reordering wait, missing packets, give-up deadline);
//!   complete frames leave as [`Output::Video`] for the track's decode thread; what
//!   the assembler finds missing and its keyframe requests become NACKs (each
//!   sent twice) and rate-limited PLIs through the track's [`VideoFeedback`],
//!   with its receiver reports; sender reports go to lip sync.
//!
//! Nothing here sleeps, reads a clock or a socket.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use clinicmeet_media::pipeline::VideoSender;
use clinicmeet_media::video_receiver::{
    AssembledFrame, ReceiverEvent, ReceiverStats, VideoReceiver, VideoReceiverConfig,
};
use clinicmeet_protocol::datagram;
use clinicmeet_rtp::rtcp::{self, RtcpPacket};
use clinicmeet_rtp::{is_rtcp, RtpView};

use super::av_sync::{SharedSync, SyncStream};
use super::feedback::UplinkFeedback;
use super::stats::TrackStats;
use super::video_feedback::VideoFeedback;
use super::AudioRx;

/// Assembled frames a subscribed video track's decode thread may have queued.
pub const VIDEO_QUEUE: usize = 32;
/// Outgoing datagrams held until polled (the oldest dropped past it).
const TRANSMIT_CAPACITY: usize = 1024;
/// Assembled frames held until polled (the oldest dropped past it).
const VIDEO_CAPACITY: usize = 256;

/// The relay's reports on one published track, read by its send thread.
pub type SharedFeedback = Arc<Mutex<UplinkFeedback>>;

/// What the engine does with one flow's datagrams.
pub enum Route {
    PubVideo(Arc<Mutex<VideoSender>>, SharedFeedback),
    PubAudio { ssrc: u32, feedback: SharedFeedback },
    SubVideo(Box<SubVideo>),
    SubAudio(Arc<Mutex<AudioRx>>),
}

/// A subscribed video track's receive state: frame assembly and its feedback.
pub struct SubVideo {
    receiver: VideoReceiver,
    feedback: VideoFeedback,
    /// The participant's lip sync (its sender reports tell the clock offset).
    sync: SharedSync,
    stream: SyncStream,
    stats: Arc<Mutex<TrackStats>>,
}

impl SubVideo {
    /// `my_ssrc` sends our reports and requests; `stream` says whether this is
    /// the participant's camera or screen share.
    pub fn new(my_ssrc: u32, sync: SharedSync, stream: SyncStream, stats: Arc<Mutex<TrackStats>>) -> Self {
        SubVideo {
            receiver: VideoReceiver::new(receiver_config()),
            feedback: VideoFeedback::new(my_ssrc),
            sync,
            stream,
            stats,
        }
    }
}

/// Wait out network reordering (tens of ms of jitter) before NACKing, and give a
/// relay that is itself recovering a packet from the publisher time to answer.
fn receiver_config() -> VideoReceiverConfig {
    VideoReceiverConfig { reorder_wait_us: 40_000, nack_retry_us: 90_000, ..VideoReceiverConfig::default() }
}

/// What the core hands its driver.
#[derive(Debug)]
pub enum Output {
    /// A packet to send on a flow.
    Transmit { flow: u64, packet: Vec<u8> },
    /// A complete frame of a subscribed video flow, for its decoder, with the
    /// flow's receive counters as they stand.
    Video { flow: u64, frame: AssembledFrame, stats: ReceiverStats },
}

/// Outputs waiting to be polled: transmits first.
#[derive(Default)]
struct Outbox {
    transmit: VecDeque<(u64, Vec<u8>)>,
    video: VecDeque<(u64, AssembledFrame, ReceiverStats)>,
}

impl Outbox {
    fn transmit(&mut self, flow: u64, packet: Vec<u8>) {
        if self.transmit.len() >= TRANSMIT_CAPACITY {
            self.transmit.pop_front();
        }
        self.transmit.push_back((flow, packet));
    }

    fn video(&mut self, flow: u64, frame: AssembledFrame, stats: ReceiverStats) {
        if self.video.len() >= VIDEO_CAPACITY {
            self.video.pop_front();
        }
        self.video.push_back((flow, frame, stats));
    }
}

/// Flow routing and RTCP handling of the media engine; see the module docs.
#[derive(Default)]
pub struct MediaCore {
    routes: HashMap<u64, Route>,
    out: Outbox,
}

impl MediaCore {
    pub fn insert(&mut self, flow: u64, route: Route) {
        self.routes.insert(flow, route);
    }

    pub fn remove(&mut self, flow: u64) {
        self.routes.remove(&flow);
    }

    pub fn clear(&mut self) {
        self.routes.clear();
    }

    /// The sender of a published video flow.
    pub fn video_sender(&self, flow: u64) -> Option<Arc<Mutex<VideoSender>>> {
        match self.routes.get(&flow) {
            Some(Route::PubVideo(s, _)) => Some(s.clone()),
            _ => None,
        }
    }

    /// The next thing to do: a datagram to send, or a frame to decode.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some((flow, packet)) = self.out.transmit.pop_front() {
            return Some(Output::Transmit { flow, packet });
        }
        let (flow, frame, stats) = self.out.video.pop_front()?;
        Some(Output::Video { flow, frame, stats })
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work (media clock, µs):
    /// a NACK or its copy, a frame given up, a keyframe request, a receiver report.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.routes
            .values()
            .flat_map(|r| match r {
                Route::SubVideo(v) => [v.receiver.poll_timeout(), v.feedback.poll_timeout()],
                Route::SubAudio(a) => [a.lock().ok().and_then(|a| a.reports.next_report_us()), None],
                Route::PubVideo(..) | Route::PubAudio { .. } => [None, None],
            })
            .flatten()
            .min()
    }

    /// Does what is due at `now_us` (see [`poll_timeout`](Self::poll_timeout)).
    pub fn handle_timeout(&mut self, now_us: u64) {
        for (&flow, route) in &mut self.routes {
            match route {
                Route::SubVideo(v) => v.service(flow, now_us, &mut self.out),
                Route::SubAudio(a) => {
                    if let Some(rr) = a.lock().ok().and_then(|mut a| a.reports.poll(now_us)) {
                        self.out.transmit(flow, RtcpPacket::ReceiverReport(rr).to_bytes());
                    }
                }
                Route::PubVideo(..) | Route::PubAudio { .. } => {}
            }
        }
    }

    /// The decoder of a subscribed video flow cannot go on without a keyframe
    /// (broken references, or a frame it never got): a PLI, rate-limited.
    pub fn request_keyframe(&mut self, flow: u64, now_us: u64) {
        if let Some(Route::SubVideo(v)) = self.routes.get_mut(&flow) {
            v.receiver.request_keyframe();
            v.service(flow, now_us, &mut self.out);
        }
    }

    /// One incoming datagram (flow-id prefix included) at `now_us`; `rtt_us`
    /// gives the path's round trip when a sender report needs it.
    pub fn handle_datagram(&mut self, d: &[u8], now_us: u64, rtt_us: impl Fn() -> u64) {
        let Some((flow, pkt)) = datagram::decode(d) else { return };
        let out = &mut self.out;
        match self.routes.get_mut(&flow) {
            Some(Route::SubVideo(v)) => {
                if is_rtcp(pkt) {
                    v.on_rtcp(pkt, now_us, rtt_us);
                } else {
                    v.on_rtp(flow, pkt, now_us);
                }
                v.service(flow, now_us, out);
            }
            Some(Route::SubAudio(rx)) => sub_audio(out, flow, rx, pkt, now_us, rtt_us),
            Some(Route::PubVideo(sender, feedback)) => pub_video(out, flow, sender, feedback, pkt, now_us),
            Some(Route::PubAudio { ssrc, feedback }) => {
                if !is_rtcp(pkt) {
                    return;
                }
                let Ok(packets) = rtcp::parse_compound(pkt) else { return };
                let ssrc = *ssrc;
                if let Ok(mut f) = feedback.lock() {
                    f.on_rtcp(&packets, |s| s == ssrc, now_us);
                }
            }
            None => {}
        }
    }
}

impl SubVideo {
    fn on_rtcp(&mut self, pkt: &[u8], now: u64, rtt_us: impl Fn() -> u64) {
        for p in rtcp::parse_compound(pkt).unwrap_or_default() {
            if let RtcpPacket::SenderReport(sr) = p {
                self.feedback.on_sender_report(&sr, now);
                if let Ok(mut s) = self.sync.lock() {
                    s.on_sender_report(self.stream, &sr, now, rtt_us());
                }
            }
        }
    }

    fn on_rtp(&mut self, flow: u64, pkt: &[u8], now: u64) {
        if let Ok(mut s) = self.stats.lock() {
            s.on_packet(pkt.len(), now);
        }
        let Ok(v) = RtpView::parse(pkt) else { return };
        self.feedback.on_rtp(v.ssrc, v.sequence, v.timestamp, now);
        let late = self.receiver.stats().too_late;
        self.receiver.insert(&v, now);
        if self.receiver.stats().too_late > late {
            tracing::trace!(flow, seq = v.sequence, "packet too late for its frame");
        }
    }

    /// Complete frames out, then the feedback due now.
    fn service(&mut self, flow: u64, now: u64, out: &mut Outbox) {
        while let Some(ev) = self.receiver.poll(now) {
            match ev {
                ReceiverEvent::Frame(f) => out.video(flow, f, self.receiver.stats()),
                skipped => tracing::debug!(flow, event = ?skipped, "video frame given up"),
            }
        }
        if !self.feedback.has_media() {
            return;
        }
        let lost = self.receiver.nack_list(now);
        if !lost.is_empty() {
            tracing::debug!(flow, seqs = ?lost, "nack");
        }
        let keyframe_wanted = self.receiver.take_keyframe_request();
        for pkt in self.feedback.poll(now, lost, keyframe_wanted) {
            if matches!(pkt, RtcpPacket::Pli(_)) {
                tracing::debug!(flow, "pli");
            }
            out.transmit(flow, pkt.to_bytes());
        }
    }
}

fn sub_audio(
    out: &mut Outbox,
    flow: u64,
    rx: &Mutex<AudioRx>,
    pkt: &[u8],
    now: u64,
    rtt_us: impl Fn() -> u64,
) {
    let Ok(mut a) = rx.lock() else { return };
    if is_rtcp(pkt) {
        for p in rtcp::parse_compound(pkt).unwrap_or_default() {
            if let RtcpPacket::SenderReport(sr) = p {
                a.reports.on_sender_report(&sr, now);
                if let Ok(mut sync) = a.sync.lock() {
                    sync.on_sender_report(SyncStream::Audio, &sr, now, rtt_us());
                }
            }
        }
        return;
    }
    if let Ok(v) = RtpView::parse(pkt) {
        a.reports.on_rtp(v.ssrc, v.sequence, v.timestamp, now);
        if let Ok(mut sync) = a.sync.lock() {
            sync.on_audio_packet(&v);
        }
    }
    if let Some(rr) = a.reports.poll(now) {
        out.transmit(flow, RtcpPacket::ReceiverReport(rr).to_bytes());
    }
    if let Ok(mut s) = a.stats.lock() {
        s.on_packet(pkt.len(), now);
    }
    a.started = true;
    let _ = a.stream.on_packet(pkt, now);
}

fn pub_video(
    out: &mut Outbox,
    flow: u64,
    sender: &Mutex<VideoSender>,
    feedback: &Mutex<UplinkFeedback>,
    pkt: &[u8],
    now: u64,
) {
    if !is_rtcp(pkt) {
        return;
    }
    let Ok(packets) = rtcp::parse_compound(pkt) else { return };
    // The sender's lock is released before the feedback's is taken: the send
    // thread takes them in the other order.
    let ours = sender.lock().map(|s| [s.ssrc_of(0), s.ssrc_of(1)]).unwrap_or_default();
    if let Ok(mut f) = feedback.lock() {
        f.on_rtcp(&packets, |ssrc| ours.contains(&Some(ssrc)), now);
    }
    for p in packets {
        match p {
            RtcpPacket::Nack(n) => {
                let resend = sender.lock().map(|s| s.on_nack(n.media_ssrc, &n.lost, now)).unwrap_or_default();
                tracing::trace!(ssrc = n.media_ssrc, lost = ?n.lost, resent = resend.len(), "nack received");
                for r in resend {
                    out.transmit(flow, r);
                }
            }
            RtcpPacket::Pli(p) => {
                // Only the encoding asked for: a subscriber switching to the low
                // layer must not cost everyone else a keyframe.
                if let Ok(mut s) = sender.lock() {
                    let known = s.ssrc_of(0) == Some(p.media_ssrc) || s.ssrc_of(1) == Some(p.media_ssrc);
                    tracing::debug!(ssrc = p.media_ssrc, known, "pli received");
                    s.on_pli(known.then_some(p.media_ssrc));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_media::capture::VideoFormat;
    use clinicmeet_media::codec::h264::H264Config;
    use clinicmeet_media::frame::VideoFrame;
    use clinicmeet_media::jitter::JitterConfig;
    use clinicmeet_media::pipeline::{AudioReceiveStream, VideoSenderConfig};
    use clinicmeet_protocol::TrackKind;
    use clinicmeet_rtp::rtcp::{Nack, Pli, ReceiverReport, ReceiverReporter, ReportBlock};
    use clinicmeet_rtp::{RtpPacket, AUDIO_CLOCK_RATE, MAX_RTP_SIZE};

    use super::clock_tests::{sub_video, video_packet};
    use uuid::Uuid;

    fn rtp(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
        RtpPacket {
            payload_type: 111,
            sequence: seq,
            timestamp: ts,
            ssrc,
            payload: vec![0xf8, 0xff, 0xfe],
            ..RtpPacket::default()
        }
        .to_bytes()
    }

    fn on(flow: u64, pkt: &[u8]) -> Vec<u8> {
        datagram::encode(flow, pkt)
    }

    fn drain(core: &mut MediaCore) -> Vec<(u64, Vec<u8>)> {
        std::iter::from_fn(|| core.poll_output())
            .filter_map(|o| match o {
                Output::Transmit { flow, packet } => Some((flow, packet)),
                Output::Video { .. } => None,
            })
            .collect()
    }

    fn audio_rx() -> Arc<Mutex<AudioRx>> {
        let Ok(stream) = AudioReceiveStream::new(JitterConfig::default()) else { panic!("opus decoder") };
        Arc::new(Mutex::new(AudioRx {
            stream,
            stats: Arc::new(Mutex::new(TrackStats::new(Uuid::nil(), Uuid::nil(), TrackKind::Audio))),
            started: false,
            sync: SharedSync::default(),
            reports: ReceiverReporter::new(7, AUDIO_CLOCK_RATE),
            participant_id: Uuid::nil(),
            peak: 0.0,
        }))
    }

    fn rr(ssrc: u32, fraction_lost: u8) -> Vec<u8> {
        let block = ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: 0,
            highest_seq: 0,
            jitter: 0,
            last_sr: 0,
            delay_since_last_sr: 0,
        };
        RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 1, reports: vec![block] }).to_bytes()
    }

    fn keyframe(ssrc: u32, seq: u16) -> Vec<u8> {
        video_packet(ssrc, seq, true)
    }

    fn frames(core: &mut MediaCore) -> Vec<(u64, u16)> {
        std::iter::from_fn(|| core.poll_output())
            .filter_map(|o| match o {
                Output::Video { flow, frame, .. } => Some((flow, frame.first_seq)),
                Output::Transmit { .. } => None,
            })
            .collect()
    }

    #[test]
    fn datagrams_go_to_the_route_of_their_flow() {
        let mut core = MediaCore::default();
        core.insert(1, sub_video(7));
        core.insert(300, sub_video(7));
        core.handle_datagram(&on(300, &keyframe(5, 10)), 0, || 0);
        core.handle_datagram(&on(1, &keyframe(6, 11)), 0, || 0);
        core.handle_datagram(&on(9, &keyframe(7, 12)), 0, || 0);
        assert_eq!(frames(&mut core), vec![(300, 10), (1, 11)]);
        core.remove(300);
        core.handle_datagram(&on(300, &keyframe(5, 13)), 0, || 0);
        assert!(frames(&mut core).is_empty());
    }

    #[test]
    fn malformed_datagrams_are_ignored() {
        let mut core = MediaCore::default();
        core.insert(1, sub_video(7));
        core.insert(2, Route::SubAudio(audio_rx()));
        core.insert(3, Route::PubAudio { ssrc: 4, feedback: SharedFeedback::default() });
        for d in [&[][..], &[0xff][..], &[0x02][..], &[0x02, 0x80, 0xc8][..], &[0x03, 0x81, 0xc9, 0, 9][..]] {
            core.handle_datagram(d, 0, || 0);
        }
        assert!(drain(&mut core).is_empty());
    }

    #[test]
    fn subscribed_audio_reports_once_a_second_on_its_flow() {
        let mut core = MediaCore::default();
        let a = audio_rx();
        core.insert(4, Route::SubAudio(a.clone()));
        let mut reports = Vec::new();
        // 3 s of 20 ms packets on a virtual clock, every tenth lost, pairs swapped.
        for i in 0..150u16 {
            if i % 10 == 3 {
                continue;
            }
            let seq = if i % 10 == 5 {
                i + 1
            } else if i % 10 == 6 {
                i - 1
            } else {
                i
            };
            let now = 1_000_000 + u64::from(i) * 20_000;
            core.handle_datagram(&on(4, &rtp(9, seq, u32::from(seq) * 960)), now, || 0);
            for (flow, pkt) in drain(&mut core) {
                assert_eq!(flow, 4);
                reports.push((now, pkt));
            }
        }
        assert!(a.lock().is_ok_and(|a| a.started));
        let times: Vec<u64> = reports.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![1_000_000, 2_000_000, 3_000_000], "{times:?}");
        let Ok(last) = rtcp::parse_compound(&reports[2].1) else { panic!("unreadable report") };
        let Some(RtcpPacket::ReceiverReport(r)) = last.first() else { panic!("{last:?}") };
        assert_eq!(r.reports.first().map(|b| b.ssrc), Some(9));
        assert!(r.reports.first().is_some_and(|b| b.fraction_lost > 0), "{r:?}");
    }

    fn video_sender() -> Arc<Mutex<VideoSender>> {
        let main = H264Config::for_format(VideoFormat { width: 160, height: 96, fps: 15 }, 200_000);
        let cfg = VideoSenderConfig { main, low_bitrate_bps: None, ssrc: 40, max_packet_size: MAX_RTP_SIZE };
        let Ok(s) = VideoSender::new(cfg) else { panic!("encoder") };
        Arc::new(Mutex::new(s))
    }

    #[test]
    fn a_nack_on_a_published_flow_resends_from_the_history() {
        let mut core = MediaCore::default();
        let sender = video_sender();
        let feedback = SharedFeedback::default();
        core.insert(2, Route::PubVideo(sender.clone(), feedback.clone()));
        let now = 5_000_000;
        let sent = sender.lock().ok().and_then(|mut s| s.send_frame(&VideoFrame::new(160, 96), now).ok());
        let sent = sent.unwrap_or_default();
        let first = RtpPacket::parse(&sent[0]).map(|p| p.sequence).unwrap_or_default();
        let nack = Nack { sender_ssrc: 1, media_ssrc: 40, lost: vec![first, first.wrapping_sub(1)] };
        core.handle_datagram(&on(2, &RtcpPacket::Nack(nack).to_bytes()), now + 30_000, || 0);
        let out = drain(&mut core);
        assert_eq!(out, vec![(2, sent[0].clone())]);
        // Another SSRC's NACK is not ours; RTP on a published flow is ignored.
        let other = Nack { sender_ssrc: 1, media_ssrc: 41, lost: vec![first] };
        core.handle_datagram(&on(2, &RtcpPacket::Nack(other).to_bytes()), now + 40_000, || 0);
        core.handle_datagram(&on(2, &sent[0]), now + 40_000, || 0);
        assert!(drain(&mut core).is_empty());
        // A PLI makes the next frame a keyframe; reports feed the uplink feedback.
        let pli = RtcpPacket::Pli(Pli { sender_ssrc: 1, media_ssrc: 40 }).to_bytes();
        let keyframe = |pkts: &[Vec<u8>]| {
            pkts.iter().any(|p| {
                RtpView::parse(p).is_ok_and(|v| clinicmeet_rtp::h264::payload_is_keyframe(v.payload()))
            })
        };
        let frame = |t: u64| {
            sender
                .lock()
                .ok()
                .and_then(|mut s| s.send_frame(&VideoFrame::new(160, 96), t).ok())
                .unwrap_or_default()
        };
        assert!(!keyframe(&frame(now + 45_000)));
        core.handle_datagram(&on(2, &pli), now + 50_000, || 0);
        assert!(keyframe(&frame(now + 110_000)));
        core.handle_datagram(&on(2, &rr(40, 30)), now + 50_000, || 0);
        core.handle_datagram(&on(2, &rr(99, 200)), now + 50_000, || 0);
        assert_eq!(feedback.lock().ok().and_then(|mut f| f.take_fraction_lost()), Some(30));
    }

    #[test]
    fn published_audio_reads_only_its_own_reports() {
        let mut core = MediaCore::default();
        let feedback = SharedFeedback::default();
        core.insert(3, Route::PubAudio { ssrc: 4, feedback: feedback.clone() });
        core.handle_datagram(&on(3, &rr(5, 90)), 0, || 0);
        core.handle_datagram(&on(3, &rtp(4, 1, 0)), 0, || 0);
        assert_eq!(feedback.lock().ok().and_then(|mut f| f.take_fraction_lost()), None);
        core.handle_datagram(&on(3, &rr(4, 20)), 0, || 0);
        assert_eq!(feedback.lock().ok().and_then(|mut f| f.take_fraction_lost()), Some(20));
        assert!(drain(&mut core).is_empty());
    }

    #[test]
    fn the_transmit_queue_is_bounded() {
        let mut core = MediaCore::default();
        for i in 0..(TRANSMIT_CAPACITY as u64 + 10) {
            core.out.transmit(i, vec![0]);
        }
        let out = drain(&mut core);
        assert_eq!(out.len(), TRANSMIT_CAPACITY);
        assert_eq!(out.first().map(|(f, _)| *f), Some(10));
    }
}

#[cfg(test)]
#[path = "core_clock_tests.rs"]
mod clock_tests;
