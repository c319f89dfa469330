//! One WebRTC peer connection per browser guest (the `webrtc` crate, 0.21 line).
//!
//! The browser offers: one send-only audio and one send-only video transceiver
//! (its microphone and camera) and [`SLOTS`] receive-only transceivers of each
//! kind. The relay answers ICE-lite with DTLS-SRTP, H.264 constrained baseline
//! (packetization-mode 1) and Opus only, and fills the receive slots with
//! [`TrackLocalStaticRTP`]s: remote participants' tracks are mapped onto slots
//! as they are subscribed (the browser learns `mid → track` over the
//! WebSocket), so no renegotiation is ever needed.
//!
//! Media paths, all without transcoding:
//! * browser → SFU: RTP from the remote track, payload type and layer
//!   extension set by [`super::rtp::from_browser`], flow prefix, into the
//!   forwarding thread as if it came from a QUIC datagram;
//! * SFU → browser: the forwarder hands this peer its datagrams; RTP goes out
//!   on the slot's track with the slot's SSRC and negotiated payload type,
//!   keeping the SFU's rewritten sequence numbers.
//! * Feedback: the crate's interceptors answer the browser's NACKs for what we
//!   send (from their own send buffer), NACK what the browser sends us, send
//!   receiver reports and transport-wide congestion control feedback (the
//!   browser's bandwidth estimate). PLI/FIR from the browser become a PLI on the
//!   subscriber flow (the SFU rate-limits it to the publisher); a PLI the SFU
//!   sends on a browser publisher flow goes to the browser as a PLI.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use clinicmeet_protocol::{datagram, FlowId, TrackInfo, TrackKind};
use clinicmeet_rtp::is_rtcp;
use clinicmeet_rtp::rtcp::{self as mrtcp, Pli as MPli, RtcpPacket};
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState,
    Registry, SettingEngineBuilder,
};

use super::ice::{self, Advertised};
use super::rtp::{self as wrtp, InboundVideo, Kind};
use crate::forward::{FwdIn, FwdSender};
use crate::sfu::{ConnId, RELAY_SSRC};

/// Receive slots per kind a browser offers (remote participants it can show/hear).
pub const SLOTS: usize = 6;

/// Media sections an offer may have: the guest page's microphone and camera
/// plus [`SLOTS`] receive slots of each kind. More is refused before any SDP
/// work (webrtc-rs would build a transceiver per section).
pub const MAX_MEDIA_SECTIONS: usize = 2 + 2 * SLOTS;
/// H.264 as browsers and the desktop client both do it.
pub const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// How the relay's WebRTC side is set up.
#[derive(Debug, Clone)]
pub struct RtcConfig {
    /// Local address(es) advertised in host candidates (unspecified: every
    /// non-loopback interface).
    pub bind: IpAddr,
    /// Advertised instead of the local addresses (1:1 NAT), if set.
    pub public_ip: Option<IpAddr>,
    /// The shared UDP port (and ICE-TCP port) all peer connections use.
    pub mux: super::mux::IceMux,
}

/// What a peer tells its session.
#[derive(Debug)]
pub enum PeerEvent {
    Connected,
    Failed,
    /// The browser sends a track.
    Track {
        kind: TrackKind,
        ssrc: u32,
    },
}

#[derive(Debug)]
pub enum PeerError {
    Rtc(String),
    Sdp(&'static str),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Rtc(e) => write!(f, "webrtc: {e}"),
            PeerError::Sdp(e) => write!(f, "offer: {e}"),
        }
    }
}

fn rtc_err(e: impl std::fmt::Display) -> PeerError {
    PeerError::Rtc(e.to_string())
}

struct SlotState {
    kind: usize,
    mid: String,
    ssrc: u32,
    pt: u8,
    track: Arc<TrackLocalStaticRTP>,
    /// Subscriber flow and the SFU's SSRC for the track it carries.
    flow: Option<(FlowId, u32)>,
}

#[derive(Default)]
struct Routes {
    slots: Vec<SlotState>,
    /// Subscriber flow → slot index.
    sub_flows: HashMap<FlowId, usize>,
    /// Browser SSRC → publisher flow.
    pub_by_ssrc: HashMap<u32, FlowId>,
    /// Publisher flow → the browser's track (for keyframe requests).
    pub_flows: HashMap<FlowId, Arc<dyn TrackRemote>>,
    /// Browser tracks seen before their flow was known.
    remotes: HashMap<u32, Arc<dyn TrackRemote>>,
}

/// A slot assignment the browser is told about.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlotInfo {
    pub mid: String,
    pub kind: TrackKind,
    pub track_id: clinicmeet_protocol::TrackId,
    pub participant_id: clinicmeet_protocol::ParticipantId,
}

/// A browser's peer connection and its routing.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    routes: Arc<Mutex<Routes>>,
    closed: Arc<std::sync::atomic::AtomicBool>,
    /// This connection's place on the shared ports (released on drop).
    _lease: super::mux::Lease,
}

struct Handler {
    conn: ConnId,
    events: mpsc::Sender<PeerEvent>,
    gathered: mpsc::Sender<()>,
    routes: Arc<Mutex<Routes>>,
    fwd: FwdSender,
}

/// Peer events waiting for the guest's session, at most. Callbacks never wait:
/// when full an event is dropped and logged. A browser gets there only by
/// announcing dozens of SSRCs faster than its session drains them (a real one
/// sends two tracks; `Connected`/`Failed` come a handful per connection).
const PEER_EVENTS: usize = 64;

impl Handler {
    fn event(&self, ev: PeerEvent) {
        if self.events.try_send(ev).is_err() {
            tracing::debug!(conn = self.conn, "peer events full or closed; event dropped");
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(conn = self.conn, %state, "guest peer connection");
        match state {
            RTCPeerConnectionState::Connected => {
                self.event(PeerEvent::Connected);
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                self.event(PeerEvent::Failed);
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = match track.kind().await {
            RtpCodecKind::Audio => Kind::Audio,
            _ => Kind::Video,
        };
        let conn = self.conn;
        let routes = self.routes.clone();
        let events = self.events.clone();
        let fwd = self.fwd.clone();
        tokio::spawn(async move {
            let mut announced: Option<u32> = None;
            let mut state = InboundVideo::default();
            while let Some(ev) = track.poll().await {
                let p = match ev {
                    TrackRemoteEvent::OnRtpPacket(p) => p,
                    TrackRemoteEvent::OnEnded => break,
                    _ => continue,
                };
                let ssrc = p.header.ssrc;
                if announced != Some(ssrc) {
                    announced = Some(ssrc);
                    if let Ok(mut r) = routes.lock() {
                        r.remotes.insert(ssrc, track.clone());
                    }
                    let tk = if kind == Kind::Audio { TrackKind::Audio } else { TrackKind::Video };
                    if events.try_send(PeerEvent::Track { kind: tk, ssrc }).is_err() {
                        tracing::debug!(conn, ssrc, "peer events full; track announcement dropped");
                    }
                }
                let flow = routes.lock().ok().and_then(|r| r.pub_by_ssrc.get(&ssrc).copied());
                let Some(flow) = flow else { continue };
                let pkt = wrtp::from_browser(
                    kind,
                    &mut state,
                    p.header.marker,
                    p.header.sequence_number,
                    p.header.timestamp,
                    ssrc,
                    &p.payload,
                );
                let data = with_flow(flow, &pkt);
                if fwd.try_send(FwdIn::Datagram { conn, data, at: Instant::now() }).is_err() {
                    tracing::debug!(conn, "forwarder busy; guest packet dropped");
                }
            }
        });
    }
}

fn with_flow(flow: FlowId, packet: &[u8]) -> Bytes {
    let mut prefix = [0u8; 8];
    let n = datagram::write_flow_id(flow, &mut prefix);
    let mut v = Vec::with_capacity(n + packet.len());
    v.extend_from_slice(prefix.get(..n).unwrap_or_default());
    v.extend_from_slice(packet);
    Bytes::from(v)
}

/// Passes keyframe requests about what the relay sends on to the application
/// (the track-local event stream); every other inbound RTCP stays with the
/// interceptors that act on it (NACK responder, reports, TWCC).
struct KeyframeRequests {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let keep: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>())
                .cloned()
                .collect();
            if keep.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(keep);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

fn feedback(kinds: &[(&str, &str)]) -> Vec<RTCPFeedback> {
    kinds.iter().map(|(t, p)| RTCPFeedback { typ: (*t).into(), parameter: (*p).into() }).collect()
}

fn h264() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: clinicmeet_rtp::VIDEO_CLOCK_RATE,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: feedback(&[("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]),
    }
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: clinicmeet_rtp::AUDIO_CLOCK_RATE,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

impl Peer {
    /// Answers a browser's offer. Returns the peer, the answer SDP (all candidates
    /// included) and the peer's events.
    pub async fn answer(
        conn: ConnId,
        offer: String,
        cfg: &RtcConfig,
        fwd: FwdSender,
    ) -> Result<(Peer, String, mpsc::Receiver<PeerEvent>), PeerError> {
        // Refuse offers without H.264 up front, with a message the guest page shows.
        let offered = wrtp::media_sections(&offer);
        if offered.len() > MAX_MEDIA_SECTIONS {
            return Err(PeerError::Sdp("the offer has more media sections than a guest page makes"));
        }
        if !offered.iter().any(|m| m.kind == "video" && m.payload_type_of("H264").is_some()) {
            return Err(PeerError::Sdp("the browser offers no H.264 video"));
        }
        let mut me = MediaEngine::default();
        me.register_codec(
            RTCRtpCodecParameters { rtp_codec: opus(), payload_type: 111 },
            RtpCodecKind::Audio,
        )
        .map_err(rtc_err)?;
        me.register_codec(
            RTCRtpCodecParameters { rtp_codec: h264(), payload_type: 102 },
            RtpCodecKind::Video,
        )
        .map_err(rtc_err)?;
        let registry = register_default_interceptors(Registry::new(), &mut me).map_err(rtc_err)?;
        let registry = registry.with(
            Slot::from(14_000usize),
            KeyframeRequests { reads: VecDeque::new(), writes: VecDeque::new() },
        );
        // ICE through the shared ports: the lease's ufrag routes the browser's checks
        // to this connection (see `mux`); the public address is put into the answer's
        // candidates by `ice::advertise`, not by the crate's 1:1 NAT setting, so the
        // crate's own candidates keep the local addresses its sockets report.
        let lease = cfg.mux.lease();
        let (ufrag, pwd) = lease.credentials();
        let se = SettingEngineBuilder::new()
            .with_lite(true)
            .with_include_loopback_candidate(true)
            .with_ice_credentials(ufrag, pwd)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
        let routes = Arc::new(Mutex::new(Routes::default()));
        let (ev_tx, ev_rx) = mpsc::channel(PEER_EVENTS);
        let (g_tx, mut g_rx) = mpsc::channel(1);
        let handler = Arc::new(Handler {
            conn,
            events: ev_tx,
            gathered: g_tx,
            routes: routes.clone(),
            fwd: fwd.clone(),
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_setting_engine(se.build())
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_runtime(lease.runtime())
            .with_udp_addrs(vec![SocketAddr::new(cfg.bind, 0)])
            .with_tcp_addrs(match cfg.mux.tcp_port() {
                Some(_) => vec![SocketAddr::new(cfg.bind, 0)],
                None => vec![],
            })
            .build()
            .await
            .map_err(rtc_err)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        // Receivers for the browser's own microphone and camera.
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            };
            pc.add_transceiver_from_kind(kind, Some(init)).await.map_err(rtc_err)?;
        }
        // Send slots.
        let mut slots = Vec::new();
        for (k, kind) in [(0usize, RtpCodecKind::Audio), (1, RtpCodecKind::Video)] {
            for i in 0..SLOTS {
                let ssrc: u32 = rand::random();
                let codec = if k == 0 { opus() } else { h264() };
                let id = format!("slot-{}{i}", if k == 0 { 'a' } else { 'v' });
                let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                    format!("relay-{id}"),
                    id.clone(),
                    id.clone(),
                    kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        codec,
                        ..Default::default()
                    }],
                )));
                pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.map_err(rtc_err)?;
                slots.push((id, SlotState { kind: k, mid: String::new(), ssrc, pt: 0, track, flow: None }));
            }
        }

        let offer = RTCSessionDescription::offer(offer).map_err(rtc_err)?;
        pc.set_remote_description(offer).await.map_err(rtc_err)?;
        let answer = pc.create_answer(None).await.map_err(rtc_err)?;
        pc.set_local_description(answer).await.map_err(rtc_err)?;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), g_rx.recv()).await;
        let local = pc.local_description().await.ok_or(PeerError::Sdp("no local description"))?;
        let advertised = Advertised {
            udp_port: cfg.mux.udp_addr().port(),
            tcp_port: cfg.mux.tcp_port(),
            public_ip: cfg.public_ip,
        };
        let answer_sdp = ice::advertise(&local.sdp, &advertised);

        // Which mid carries which slot, with which payload type.
        let sections = wrtp::media_sections(&local.sdp);
        let mut ready = Vec::new();
        for (id, mut s) in slots {
            let Some(sec) = sections.iter().find(|m| m.track.as_deref() == Some(id.as_str())) else {
                continue;
            };
            let codec = if s.kind == 0 { "opus" } else { "H264" };
            let Some(pt) = sec.payload_type_of(codec) else { continue };
            s.mid = sec.mid.clone();
            s.pt = pt;
            ready.push(s);
        }
        if ready.is_empty() {
            let _ = pc.close().await;
            return Err(PeerError::Sdp("no receive slots were negotiated"));
        }
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for s in &ready {
            let track = s.track.clone();
            let routes2 = routes.clone();
            let fwd2 = fwd.clone();
            let slot_ssrc = s.ssrc;
            let closed = closed.clone();
            tokio::spawn(async move {
                loop {
                    // `None` until the sender is bound, and after it is gone.
                    let Some(TrackLocalEvent::OnRtcpPacket(_packets)) = track.poll().await else {
                        if closed.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    };
                    // Only keyframe requests get here (see KeyframeRequests).
                    let target = routes2
                        .lock()
                        .ok()
                        .and_then(|r| r.slots.iter().find(|s| s.ssrc == slot_ssrc).and_then(|s| s.flow));
                    if let Some((flow, media_ssrc)) = target {
                        let pli = RtcpPacket::Pli(MPli { sender_ssrc: RELAY_SSRC, media_ssrc });
                        let data = with_flow(flow, &mrtcp::write_compound(&[pli]));
                        let _ = fwd2.try_send(FwdIn::Datagram { conn, data, at: Instant::now() });
                    }
                }
            });
        }
        if let Ok(mut r) = routes.lock() {
            r.slots = ready;
        }
        Ok((Peer { pc, routes, closed, _lease: lease }, answer_sdp, ev_rx))
    }

    /// Free slots per kind (audio, video).
    pub fn slot_counts(&self) -> (usize, usize) {
        let r = self.routes.lock();
        r.map(|r| {
            let a = r.slots.iter().filter(|s| s.kind == 0).count();
            (a, r.slots.len() - a)
        })
        .unwrap_or((0, 0))
    }

    /// The browser's track with `ssrc` publishes on `flow`.
    pub fn published(&self, ssrc: u32, flow: FlowId) {
        if let Ok(mut r) = self.routes.lock() {
            r.pub_by_ssrc.insert(ssrc, flow);
            if let Some(t) = r.remotes.get(&ssrc).cloned() {
                r.pub_flows.insert(flow, t);
            }
        }
    }

    /// Puts a subscribed remote track on a free slot of its kind.
    pub fn attach(&self, info: &TrackInfo, flow: FlowId) -> Option<SlotInfo> {
        let mut r = self.routes.lock().ok()?;
        let k = super::bridge::slot_kind(info.spec.kind);
        let i = r.slots.iter().position(|s| s.kind == k && s.flow.is_none())?;
        let out_ssrc = info.spec.encodings.first().map_or(0, |e| e.ssrc);
        let slot = r.slots.get_mut(i)?;
        slot.flow = Some((flow, out_ssrc));
        let mid = slot.mid.clone();
        r.sub_flows.insert(flow, i);
        Some(SlotInfo {
            mid,
            kind: info.spec.kind,
            track_id: info.track_id,
            participant_id: info.participant_id,
        })
    }

    /// Frees the slot of a flow; returns its mid.
    pub fn detach_flow(&self, flow: FlowId) -> Option<String> {
        let mut r = self.routes.lock().ok()?;
        let i = r.sub_flows.remove(&flow)?;
        let slot = r.slots.get_mut(i)?;
        slot.flow = None;
        Some(slot.mid.clone())
    }

    /// Sends what the forwarder hands this connection until it closes.
    pub async fn run_outbound(&self, mut rx: mpsc::Receiver<Bytes>) {
        while let Some(data) = rx.recv().await {
            let Some((flow, packet)) = datagram::decode(&data) else { continue };
            if is_rtcp(packet) {
                // On a publisher flow: the SFU wants a keyframe from the browser.
                let wants_key = mrtcp::parse_compound(packet)
                    .map(|ps| ps.iter().any(|p| matches!(p, RtcpPacket::Pli(_))))
                    .unwrap_or(false);
                if !wants_key {
                    continue;
                }
                let target = self.routes.lock().ok().and_then(|r| {
                    let t = r.pub_flows.get(&flow).cloned()?;
                    let ssrc = r.pub_by_ssrc.iter().find(|(_, f)| **f == flow).map(|(s, _)| *s)?;
                    Some((t, ssrc))
                });
                if let Some((t, media_ssrc)) = target {
                    let pli = PictureLossIndication { sender_ssrc: RELAY_SSRC, media_ssrc };
                    let _ = t.write_rtcp(vec![Box::new(pli) as Box<dyn rtc::rtcp::Packet>]).await;
                }
                continue;
            }
            let target = self.routes.lock().ok().and_then(|r| {
                let i = *r.sub_flows.get(&flow)?;
                r.slots.get(i).map(|s| (s.track.clone(), s.ssrc, s.pt))
            });
            let (Some((track, ssrc, pt)), Some(o)) = (target, wrtp::to_browser(packet)) else { continue };
            let pkt = rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker: o.marker,
                    payload_type: pt,
                    sequence_number: o.sequence,
                    timestamp: o.timestamp,
                    ssrc,
                    ..Default::default()
                },
                payload: Bytes::copy_from_slice(o.payload),
            };
            if let Err(err) = track.write_rtp(pkt).await {
                tracing::debug!(%err, "guest RTP not sent");
            }
        }
    }

    pub async fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.pc.close().await;
    }
}
