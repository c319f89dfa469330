//! The client media engine: publishes camera and microphone tracks, subscribes to
//! every remote track, and hands decoded frames and the mixed audio to the
//! application. Independent of any UI.
//!
//! Threads: one capture/encode thread per published track, one decode thread per
//! remote video track, one 20 ms audio playout thread (jitter buffers → mixer),
//! and tokio tasks for signaling (publish/subscribe) and driving the media core.
//! All datagram I/O goes through the session's [`MediaLink`]: sends, path
//! measurements, and the bounded queue of incoming datagrams.
//! The packet logic lives in the sans-IO `clinicmeet_media::pipeline` objects and
//! the media core (`media/core.rs`): flow routing, the RTCP of every track, and a
//! subscribed video track's frame assembly and feedback (NACKs, PLIs: [`video_feedback`]).
//! Its driver (`core_loop`) feeds it datagrams and timeouts, sends what it
//! answers and hands assembled frames to the decode threads, which only decode
//! and present (asking the core for a keyframe when the decoder needs one).
//!
//! API: [`MediaEngine::start`] returns the engine handle and [`MediaOutputs`]
//! (a channel of [`RemoteVideoFrame`]s and one of mixed 20 ms audio). Feed every
//! [`ClientEvent`] to [`MediaEngine::on_event`]; set the local media state with
//! [`MediaEngine::set_local_media`]; read per-track receive statistics with
//! [`MediaEngine::stats`]. Tools and tests hook into the engine with a
//! [`MediaObserver`] ([`MediaEngine::start_with_observer`]).

pub mod av_sync;
pub mod bwe;
mod core;
pub mod feedback;
pub mod observer;
pub mod publish;
pub mod record;
mod record_mux;
pub mod select;
pub mod stats;
pub mod video_feedback;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as smpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clinicmeet_media::capture::{AudioSource, VideoSource};
use clinicmeet_media::clock::now_us;
use clinicmeet_media::codec::h264::H264Config;
use clinicmeet_media::codec::opus::OpusConfig;
use clinicmeet_media::frame::VideoFrame;
use clinicmeet_media::jitter::JitterConfig;
use clinicmeet_media::mixer::Mixer;
use clinicmeet_media::pipeline::{
    AudioReceiveStream, AudioSender, Decoded, VideoDecodeStream, VideoSender, VideoSenderConfig,
};
use clinicmeet_media::video_receiver::{AssembledFrame, ReceiverStats};
use clinicmeet_media::AUDIO_FRAME_SAMPLES;
use clinicmeet_protocol::{
    Codec, EncodingSpec, KeyframeRequest, MediaChanged, MediaState, ParticipantId, TrackId, TrackInfo,
    TrackKind, TrackPublished, TrackSpec, TrackUnpublished,
};
use clinicmeet_rtp::rtcp::{ReceiverReporter, RtcpPacket};
use clinicmeet_rtp::{AUDIO_CLOCK_RATE, MAX_RTP_SIZE};
use tokio::sync::{mpsc, Notify};

use self::core::{MediaCore, Output, Route, SharedFeedback, SubVideo, VIDEO_QUEUE};
use crate::event::ClientEvent;
use crate::media_link::{Incoming, MediaLink, INCOMING_CAPACITY};
use crate::session::Session;
use av_sync::{AvSync, HeldFrames, SharedSync, SyncStream};
use feedback::opus_expected_loss_pct;
pub use observer::{MediaObserver, NoObserver, VideoTrackObserver};
use publish::{AudioPublish, VideoPublish};
use record::{RecordSummary, RecordTap, Recording};
use select::SpeakerTracker;
pub use select::VideoPolicy;
pub use stats::TrackStats;

/// Makes a fresh video source (called on every (re)publish).
pub type VideoSourceFactory =
    Arc<dyn Fn() -> clinicmeet_media::error::Result<Box<dyn VideoSource>> + Send + Sync>;
/// Makes a fresh audio source.
pub type AudioSourceFactory =
    Arc<dyn Fn() -> clinicmeet_media::error::Result<Box<dyn AudioSource>> + Send + Sync>;

/// What to publish and how.
#[derive(Clone)]
pub struct MediaConfig {
    pub camera: Option<VideoSourceFactory>,
    pub microphone: Option<AudioSourceFactory>,
    /// Screen source for `/screen on` (synthetic is fine).
    pub screen: Option<VideoSourceFactory>,
    pub video_bitrate_bps: u32,
    /// Periodic keyframe interval in seconds (0 = only on request).
    pub keyframe_interval_secs: u32,
    /// Camera: also send a low-resolution simulcast encoding (about 320x180) at this
    /// bitrate, so the relay can switch a slow subscriber to it (`None`: one encoding).
    pub simulcast_low_bps: Option<u32>,
    /// Camera: temporal layers (2: the relay can drop every other frame for a slow subscriber).
    pub temporal_layers: u8,
    /// Which remote cameras to receive (change later with [`MediaEngine::set_video_policy`]).
    pub video_policy: VideoPolicy,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            camera: None,
            microphone: None,
            screen: None,
            video_bitrate_bps: 800_000,
            keyframe_interval_secs: 4,
            simulcast_low_bps: Some(150_000),
            temporal_layers: 2,
            video_policy: VideoPolicy::All,
        }
    }
}

/// A decoded picture of a remote track.
#[derive(Debug, Clone)]
pub struct RemoteVideoFrame {
    pub track_id: TrackId,
    pub participant_id: ParticipantId,
    pub kind: TrackKind,
    pub frame: Arc<VideoFrame>,
    /// Capture time from the RTP extension, on the local media clock
    /// (`clinicmeet_media::clock`; the sender's clock offset applied).
    pub capture_us: Option<u64>,
}

/// Where the application reads media.
pub struct MediaOutputs {
    /// Decoded remote pictures (bounded; frames are dropped when the app lags).
    pub video: smpsc::Receiver<RemoteVideoFrame>,
    /// Mixed remote audio, 20 ms (960 samples, 48 kHz mono) each, as played.
    pub audio: smpsc::Receiver<Vec<f32>>,
}

enum Cmd {
    Event(ClientEvent),
    LocalMedia(MediaState),
    Screen(bool),
    Policy(VideoPolicy),
    Record(Option<std::path::PathBuf>, tokio::sync::oneshot::Sender<crate::Result<Option<RecordSummary>>>),
}

/// Handle on the media engine; cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    tx: mpsc::UnboundedSender<Cmd>,
    shared: Arc<Shared>,
}

struct Shared {
    stats: Mutex<HashMap<TrackId, Arc<Mutex<TrackStats>>>>,
    core: Mutex<MediaCore>,
    /// Wakes the core's driver when something other than a datagram gave the
    /// core work (a decode thread's keyframe request).
    core_wake: Notify,
    /// Each subscribed video flow's decode thread (bounded, [`VIDEO_QUEUE`] frames).
    decoders: Mutex<HashMap<u64, smpsc::SyncSender<VideoWork>>>,
    audio_rx: Mutex<HashMap<TrackId, Arc<Mutex<AudioRx>>>>,
    /// Lip sync per remote participant (its audio and camera tracks).
    syncs: Mutex<HashMap<ParticipantId, SharedSync>>,
    video_out: smpsc::SyncSender<RemoteVideoFrame>,
    audio_out: smpsc::SyncSender<Vec<f32>>,
    stop: AtomicBool,
    /// The local recording's tap, while one runs ([`MediaEngine::start_recording`]).
    recorder: Mutex<Option<Arc<RecordTap>>>,
}

/// A frame for a decode thread, with its flow's receive counters.
struct VideoWork {
    frame: AssembledFrame,
    stats: ReceiverStats,
}

struct AudioRx {
    stream: AudioReceiveStream,
    stats: Arc<Mutex<TrackStats>>,
    started: bool,
    sync: SharedSync,
    reports: ReceiverReporter,
    participant_id: ParticipantId,
    /// Loudest played frame since [`MediaEngine::audio_levels`] last read it (0..1).
    peak: f32,
}

impl Shared {
    /// The participant's lip-sync state (created on first use).
    fn recorder(&self) -> Option<Arc<RecordTap>> {
        self.recorder.lock().ok().and_then(|r| r.clone())
    }

    fn sync_for(&self, participant: ParticipantId) -> SharedSync {
        let Ok(mut m) = self.syncs.lock() else { return SharedSync::default() };
        m.entry(participant).or_insert_with(|| Arc::new(Mutex::new(AvSync::default()))).clone()
    }
}

/// A track this client sends.
struct Published {
    track_id: TrackId,
    flow_id: u64,
    kind: TrackKind,
    stop: Arc<AtomicBool>,
    enabled: Arc<AtomicBool>,
}

struct Subscribed {
    flow_id: u64,
    stop: Arc<AtomicBool>,
}

impl MediaEngine {
    /// Starts the engine (spawns its tasks on the current tokio runtime).
    pub fn start(session: Session, config: MediaConfig) -> (MediaEngine, MediaOutputs) {
        MediaEngine::start_with_observer(session, config, Arc::new(NoObserver))
    }

    /// [`start`](Self::start), with hooks for tools and tests (see [`observer`]).
    pub fn start_with_observer(
        session: Session,
        config: MediaConfig,
        observer: Arc<dyn MediaObserver>,
    ) -> (MediaEngine, MediaOutputs) {
        let (video_out, video) = smpsc::sync_channel(8);
        let (audio_out, audio) = smpsc::sync_channel(50);
        let shared = Arc::new(Shared {
            stats: Mutex::new(HashMap::new()),
            core: Mutex::new(MediaCore::default()),
            core_wake: Notify::new(),
            decoders: Mutex::new(HashMap::new()),
            audio_rx: Mutex::new(HashMap::new()),
            syncs: Mutex::new(HashMap::new()),
            video_out,
            audio_out,
            stop: AtomicBool::new(false),
            recorder: Mutex::new(None),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = MediaEngine { tx, shared: shared.clone() };
        let link = session.media_link();
        tokio::spawn(core_loop(link.incoming(INCOMING_CAPACITY), link, shared.clone()));
        let playout_shared = shared.clone();
        std::thread::Builder::new()
            .name("audio-playout".into())
            .spawn(move || playout_loop(playout_shared))
            .ok();
        tokio::spawn(control_loop(session, config, observer, shared, rx));
        (engine, MediaOutputs { video, audio })
    }

    /// Every session event goes here (joined/admitted/resumed, tracks, mute, ...).
    pub fn on_event(&self, ev: &ClientEvent) {
        let _ = self.tx.send(Cmd::Event(ev.clone()));
    }

    /// The local microphone/camera state (after `update_media`).
    pub fn set_local_media(&self, media: MediaState) {
        let _ = self.tx.send(Cmd::LocalMedia(media));
    }

    /// Starts or stops screen sharing (publishes/unpublishes a screen track).
    pub fn set_screen(&self, on: bool) {
        let _ = self.tx.send(Cmd::Screen(on));
    }

    /// Which remote cameras to receive: all, the participants shown, or the last N speakers.
    pub fn set_video_policy(&self, policy: VideoPolicy) {
        let _ = self.tx.send(Cmd::Policy(policy));
    }

    /// Receive statistics of every remote track.
    pub fn stats(&self) -> Vec<TrackStats> {
        let now = now_us();
        let map =
            self.shared.stats.lock().map(|m| m.values().cloned().collect::<Vec<_>>()).unwrap_or_default();
        map.iter().filter_map(|s| s.lock().ok().map(|mut s| s.snapshot(now))).collect()
    }

    /// How loud each remote participant has been since the last call, 0 (silent)
    /// to 1, from the audio as played (−60 dBov and below is 0): for the speaking
    /// highlight. Call a few times per second.
    pub fn audio_levels(&self) -> Vec<(ParticipantId, f32)> {
        let streams: Vec<_> =
            self.shared.audio_rx.lock().map(|m| m.values().cloned().collect()).unwrap_or_default();
        let mut out: Vec<(ParticipantId, f32)> = Vec::new();
        for s in streams {
            let Ok(mut a) = s.lock() else { continue };
            let level = std::mem::take(&mut a.peak);
            match out.iter_mut().find(|(p, _)| *p == a.participant_id) {
                Some((_, l)) => *l = l.max(level),
                None => out.push((a.participant_id, level)),
            }
        }
        out
    }

    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// Records the call on this device into `path` (fragmented MP4: H.264 640x360 of
    /// the active speaker or a screen share, Opus of everyone including this
    /// microphone). The relay is asked first (host or moderator, in a meeting that
    /// allows recording) and tells everyone; refused, no file is made. The file goes
    /// on across reconnects; it ends with [`stop_recording`](Self::stop_recording),
    /// when the relay reports the recording ended (another moderator stopped it),
    /// or when this client leaves.
    pub async fn start_recording(&self, path: std::path::PathBuf) -> crate::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.tx.send(Cmd::Record(Some(path), tx));
        rx.await.map_err(|_| crate::ClientError::Closed)?.map(|_| ())
    }

    /// Ends this device's recording (tells the relay, finishes the file) and returns
    /// what it holds; `None` when nothing was being recorded.
    pub async fn stop_recording(&self) -> crate::Result<Option<RecordSummary>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.tx.send(Cmd::Record(None, tx));
        rx.await.map_err(|_| crate::ClientError::Closed)?
    }
}

struct Control {
    session: Session,
    config: MediaConfig,
    observer: Arc<dyn MediaObserver>,
    shared: Arc<Shared>,
    me: Option<ParticipantId>,
    local: MediaState,
    host_muted: bool,
    published: Vec<Published>,
    subscribed: HashMap<TrackId, Subscribed>,
    /// Remote tracks announced (subscribed or not), for the video policy.
    known: HashMap<TrackId, TrackInfo>,
    speakers: SpeakerTracker,
    recording: Option<Recording>,
}

async fn control_loop(
    session: Session,
    config: MediaConfig,
    observer: Arc<dyn MediaObserver>,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut c = Control {
        session,
        config,
        observer,
        shared,
        me: None,
        local: MediaState { audio: true, video: true, screen: false },
        host_muted: false,
        published: Vec::new(),
        subscribed: HashMap::new(),
        known: HashMap::new(),
        speakers: SpeakerTracker::default(),
        recording: None,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let cmd = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => break },
            _ = tick.tick() => {
                if c.config.video_policy != VideoPolicy::All {
                    c.apply_policy().await;
                }
                continue;
            }
        };
        match cmd {
            Cmd::Policy(p) => {
                c.config.video_policy = p;
                c.apply_policy().await;
            }
            Cmd::Event(ev) => c.on_event(ev).await,
            Cmd::LocalMedia(m) => {
                if m.audio {
                    c.host_muted = false;
                }
                c.local = m;
                c.apply_enabled();
            }
            Cmd::Screen(on) => c.set_screen(on).await,
            Cmd::Record(Some(path), reply) => {
                let _ = reply.send(c.start_recording(path).await.map(|_| None));
            }
            Cmd::Record(None, reply) => {
                if c.recording.is_some() {
                    if let Err(e) = c.session.stop_recording().await {
                        tracing::debug!(error = %e, "could not tell the relay the recording stopped");
                    }
                }
                let _ = reply.send(c.end_recording());
            }
        }
    }
    c.stop_all();
    let _ = c.end_recording();
}

impl Control {
    async fn start_recording(&mut self, path: std::path::PathBuf) -> crate::Result<()> {
        if self.recording.is_some() {
            return Err(crate::ClientError::InvalidState("already recording".into()));
        }
        self.session.start_recording().await?;
        match Recording::start(&path) {
            Ok(r) => {
                if let Ok(mut t) = self.shared.recorder.lock() {
                    *t = Some(r.tap());
                }
                self.recording = Some(r);
                Ok(())
            }
            Err(e) => {
                let _ = self.session.stop_recording().await;
                Err(e.into())
            }
        }
    }

    /// Detaches the recorder from the engine's threads and finishes its file.
    fn end_recording(&mut self) -> crate::Result<Option<RecordSummary>> {
        if let Ok(mut t) = self.shared.recorder.lock() {
            *t = None;
        }
        let Some(r) = self.recording.take() else { return Ok(None) };
        let summary = r.finish()?;
        tracing::info!(
            bytes = summary.bytes,
            audio_frames = summary.audio_frames,
            video_frames = summary.video_frames,
            dropped = summary.dropped,
            "recording finished"
        );
        Ok(Some(summary))
    }

    async fn on_event(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::Joined(e) | ClientEvent::Admitted(e) => {
                // Recording here, but the relay does not know (it restarted, or our place
                // was lost and taken anew): announce it again, or stop if refused.
                if self.recording.is_some() && e.recording.map(|r| r.by) != Some(e.you.id) {
                    if let Err(err) = self.session.start_recording().await {
                        tracing::warn!(error = %err, "the relay refused the running recording; it stops");
                        let _ = self.end_recording();
                    }
                }
                self.me = Some(e.you.id);
                self.local = e.you.media;
                self.stop_all();
                self.publish_all().await;
                self.known.clear();
                for t in e.tracks {
                    self.known.insert(t.track_id, t.clone());
                    if self.video_wanted(&t) {
                        self.subscribe(t).await;
                    }
                }
            }
            ClientEvent::TrackPublished(TrackPublished { track }) => {
                self.known.insert(track.track_id, track.clone());
                if self.video_wanted(&track) {
                    self.subscribe(track).await;
                }
            }
            ClientEvent::TrackUnpublished(TrackUnpublished { track_id }) => {
                self.known.remove(&track_id);
                if let Some(s) = self.subscribed.remove(&track_id) {
                    s.stop.store(true, Ordering::Relaxed);
                    self.forget_flow(s.flow_id);
                    if let Ok(mut a) = self.shared.audio_rx.lock() {
                        a.remove(&track_id);
                    }
                    if let Ok(mut st) = self.shared.stats.lock() {
                        st.remove(&track_id);
                    }
                }
            }
            ClientEvent::KeyframeRequest(KeyframeRequest { track_id }) => {
                for p in self.published.iter().filter(|p| p.track_id == track_id) {
                    if let Some(s) = self.video_sender(p.flow_id) {
                        if let Ok(mut s) = s.lock() {
                            s.on_pli(None);
                        }
                    }
                }
            }
            ClientEvent::Muted(_) => {
                self.host_muted = true;
                self.local.audio = false;
                self.apply_enabled();
            }
            ClientEvent::MediaChanged(MediaChanged { participant_id, media, .. })
                if Some(participant_id) == self.me =>
            {
                self.local = media;
                self.apply_enabled();
            }
            ClientEvent::Left | ClientEvent::Removed | ClientEvent::Denied | ClientEvent::MeetingEnded(_) => {
                self.stop_all();
                let _ = self.end_recording();
            }
            // Another moderator ended this device's recording (or the relay did).
            ClientEvent::RecordingChanged(r)
                if self.recording.is_some() && r.recording.map(|r| r.by) != self.me =>
            {
                let _ = self.end_recording();
            }
            _ => {}
        }
    }

    /// Does the video policy let this track in now? (Audio and screen always.)
    fn video_wanted(&mut self, t: &TrackInfo) -> bool {
        if t.spec.kind != TrackKind::Video || self.config.video_policy == VideoPolicy::All {
            return true;
        }
        let cands = self.video_candidates();
        self.speakers.wanted(&self.config.video_policy, &cands).contains(&t.participant_id)
    }

    fn video_candidates(&self) -> Vec<ParticipantId> {
        let mut v: Vec<ParticipantId> = self
            .known
            .values()
            .filter(|t| t.spec.kind == TrackKind::Video && Some(t.participant_id) != self.me)
            .map(|t| t.participant_id)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Re-reads the speakers' audio levels and (un)subscribes cameras to follow the policy.
    async fn apply_policy(&mut self) {
        let now = now_us();
        let levels: Vec<(ParticipantId, clinicmeet_rtp::ext::AudioLevel)> = self
            .shared
            .audio_rx
            .lock()
            .map(|m| {
                m.values()
                    .filter_map(|a| {
                        let a = a.lock().ok()?;
                        let pid = a.stats.lock().ok()?.participant_id;
                        Some((pid, a.stream.last_level?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (pid, l) in levels {
            self.speakers.on_level(pid, l, now);
        }
        let cands = self.video_candidates();
        let wanted = self.speakers.wanted(&self.config.video_policy, &cands);
        let videos: Vec<TrackInfo> =
            self.known.values().filter(|t| t.spec.kind == TrackKind::Video).cloned().collect();
        for t in videos {
            let want = wanted.contains(&t.participant_id);
            let have = self.subscribed.contains_key(&t.track_id);
            if want && !have {
                self.subscribe(t).await;
            } else if !want && have {
                if let Some(s) = self.subscribed.remove(&t.track_id) {
                    s.stop.store(true, Ordering::Relaxed);
                    self.forget_flow(s.flow_id);
                    if let Ok(mut st) = self.shared.stats.lock() {
                        st.remove(&t.track_id);
                    }
                    if let Err(e) = self.session.unsubscribe(t.track_id).await {
                        tracing::debug!(error = %e, "unsubscribe failed");
                    }
                }
            }
        }
    }

    fn video_sender(&self, flow: u64) -> Option<Arc<Mutex<VideoSender>>> {
        self.shared.core.lock().ok().and_then(|c| c.video_sender(flow))
    }

    fn forget_flow(&self, flow: u64) {
        if let Ok(mut c) = self.shared.core.lock() {
            c.remove(flow);
        }
        if let Ok(mut d) = self.shared.decoders.lock() {
            d.remove(&flow);
        }
    }

    fn apply_enabled(&self) {
        for p in &self.published {
            let on = match p.kind {
                TrackKind::Audio => {
                    self.local.audio || (self.host_muted && self.observer.should_ignore_host_mute())
                }
                TrackKind::Video => self.local.video,
                TrackKind::Screen => true,
            };
            p.enabled.store(on, Ordering::Relaxed);
        }
    }

    fn stop_all(&mut self) {
        for p in self.published.drain(..) {
            p.stop.store(true, Ordering::Relaxed);
        }
        for (_, s) in self.subscribed.drain() {
            s.stop.store(true, Ordering::Relaxed);
        }
        if let Ok(mut c) = self.shared.core.lock() {
            c.clear();
        }
        if let Ok(mut d) = self.shared.decoders.lock() {
            d.clear();
        }
        if let Ok(mut a) = self.shared.audio_rx.lock() {
            a.clear();
        }
        if let Ok(mut s) = self.shared.stats.lock() {
            s.clear();
        }
    }

    async fn publish_all(&mut self) {
        if let Some(f) = self.config.microphone.clone() {
            if let Err(e) = self.publish_audio(f).await {
                tracing::warn!(error = %e, "could not publish the microphone");
            }
        }
        if let Some(f) = self.config.camera.clone() {
            if let Err(e) = self.publish_video(f, TrackKind::Video).await {
                tracing::warn!(error = %e, "could not publish the camera");
            }
        }
        self.apply_enabled();
    }

    async fn set_screen(&mut self, on: bool) {
        if on {
            if self.published.iter().any(|p| p.kind == TrackKind::Screen) {
                return;
            }
            if let Some(f) = self.config.screen.clone() {
                if let Err(e) = self.publish_video(f, TrackKind::Screen).await {
                    tracing::warn!(error = %e, "could not share the screen");
                }
            }
        } else {
            let (screen, rest): (Vec<_>, Vec<_>) =
                self.published.drain(..).partition(|p| p.kind == TrackKind::Screen);
            self.published = rest;
            for p in screen {
                p.stop.store(true, Ordering::Relaxed);
                self.forget_flow(p.flow_id);
                let _ = self.session.unpublish(p.track_id).await;
            }
        }
    }

    async fn publish_audio(&mut self, factory: AudioSourceFactory) -> anyhow_lite::Result<()> {
        let ssrc: u32 = rand::random();
        let spec = TrackSpec {
            kind: TrackKind::Audio,
            codec: Codec::Opus,
            encodings: vec![EncodingSpec {
                ssrc,
                width: 0,
                height: 0,
                max_bitrate_bps: 32_000,
                temporal_layers: 1,
            }],
        };
        let (track_id, flow_id) = self.session.publish(spec).await.map_err(anyhow_lite::err)?;
        let link = self.session.media_link().bound().ok_or_else(|| anyhow_lite::msg("not connected"))?;
        let mut source = factory().map_err(anyhow_lite::err)?;
        let mut sender = AudioSender::new(OpusConfig::default(), ssrc).map_err(anyhow_lite::err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let enabled = Arc::new(AtomicBool::new(true));
        let feedback = SharedFeedback::default();
        if let Ok(mut r) = self.shared.core.lock() {
            r.insert(flow_id, Route::PubAudio { ssrc, feedback: feedback.clone() });
        }
        let (st, en, global) = (stop.clone(), enabled.clone(), self.shared.clone());
        std::thread::Builder::new()
            .name("audio-send".into())
            .spawn(move || {
                let mut cadence = AudioPublish::default();
                let mut expected_loss = OpusConfig::default().expected_loss_pct;
                while !st.load(Ordering::Relaxed) && !global.stop.load(Ordering::Relaxed) {
                    let Ok(frame) = source.read_frame() else { break };
                    if !en.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Some(tap) = global.recorder() {
                        tap.mic(&frame.samples);
                    }
                    match sender.send_frame(&frame) {
                        Ok(Some(pkt)) => {
                            link.send(flow_id, &pkt);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "audio encode failed"),
                    }
                    // A sender report every second (lip sync at the receivers).
                    if cadence.on_frame() {
                        let sr = RtcpPacket::SenderReport(sender.sender_report(now_us())).to_bytes();
                        link.send(flow_id, &sr);
                        // FEC sized to the loss the relay reports.
                        let lost = feedback.lock().ok().and_then(|mut f| f.take_fraction_lost());
                        if let Some(pct) = lost.map(opus_expected_loss_pct) {
                            if pct != expected_loss {
                                tracing::debug!(pct, "opus expected loss");
                                expected_loss = pct;
                                let _ = sender.encoder().set_expected_loss(pct);
                            }
                        }
                    }
                }
            })
            .map_err(anyhow_lite::err)?;
        self.published.push(Published { track_id, flow_id, kind: TrackKind::Audio, stop, enabled });
        Ok(())
    }

    async fn publish_video(
        &mut self,
        factory: VideoSourceFactory,
        kind: TrackKind,
    ) -> anyhow_lite::Result<()> {
        let mut source = factory().map_err(anyhow_lite::err)?;
        let fmt = source.format();
        let ssrc: u32 = rand::random::<u32>() & !1;
        let camera = kind == TrackKind::Video;
        // Simulcast only for the camera, and only when the picture is wider than the low layer.
        let low_bps = self.config.simulcast_low_bps.filter(|_| camera && fmt.width > 360);
        let layers = if camera { self.config.temporal_layers.clamp(1, 3) } else { 1 };
        let mut encodings = Vec::new();
        if let Some(low) = low_bps {
            let (mut w, mut h) = (fmt.width, fmt.height);
            while w > 360 && h > 32 {
                w = w.div_ceil(2);
                h = h.div_ceil(2);
            }
            encodings.push(EncodingSpec {
                ssrc,
                width: w,
                height: h,
                max_bitrate_bps: low,
                temporal_layers: layers,
            });
        }
        encodings.push(EncodingSpec {
            ssrc: ssrc.wrapping_add(encodings.len() as u32),
            width: fmt.width,
            height: fmt.height,
            max_bitrate_bps: self.config.video_bitrate_bps,
            temporal_layers: layers,
        });
        let main_id = (encodings.len() - 1) as u8;
        let spec = TrackSpec { kind, codec: Codec::H264, encodings };
        let (track_id, flow_id) = self.session.publish(spec).await.map_err(anyhow_lite::err)?;
        let link = self.session.media_link().bound().ok_or_else(|| anyhow_lite::msg("not connected"))?;
        let mut h264 = H264Config::for_format(fmt, self.config.video_bitrate_bps);
        h264.keyframe_interval = self.config.keyframe_interval_secs * fmt.fps;
        h264.temporal_layers = layers;
        h264.screen_content = kind == TrackKind::Screen;
        let max_packet = link
            .path()
            .and_then(|p| p.max_payload(flow_id))
            .map(|m| m.saturating_sub(8).min(MAX_RTP_SIZE))
            .unwrap_or(MAX_RTP_SIZE);
        let sender = VideoSender::new(VideoSenderConfig {
            main: h264,
            low_bitrate_bps: low_bps,
            ssrc,
            max_packet_size: max_packet,
        })
        .map_err(anyhow_lite::err)?;
        let sender = Arc::new(Mutex::new(sender));
        let stop = Arc::new(AtomicBool::new(false));
        let enabled = Arc::new(AtomicBool::new(true));
        let feedback = SharedFeedback::default();
        if let Ok(mut r) = self.shared.core.lock() {
            r.insert(flow_id, Route::PubVideo(sender.clone(), feedback.clone()));
        }
        let (st, en, global) = (stop.clone(), enabled.clone(), self.shared.clone());
        let max_bps = self.config.video_bitrate_bps;
        std::thread::Builder::new()
            .name("video-send".into())
            .spawn(move || {
                let mut cadence = VideoPublish::new(ssrc, main_id, max_bps);
                let mut was_enabled = true;
                while !st.load(Ordering::Relaxed) && !global.stop.load(Ordering::Relaxed) {
                    let Ok(frame) = source.next_frame() else { break };
                    let on = en.load(Ordering::Relaxed);
                    if !on {
                        was_enabled = false;
                        continue;
                    }
                    let now = now_us();
                    let Ok(mut s) = sender.lock() else { break };
                    if !was_enabled {
                        s.on_pli(None);
                        was_enabled = true;
                    }
                    if let Some(path) = cadence.bwe_due(now).then(|| link.path()).flatten() {
                        let lost = feedback.lock().ok().and_then(|mut f| f.take_fraction_lost());
                        if let Some(bps) = cadence.on_path(now, &path, lost) {
                            let _ = s.set_bitrate(main_id, bps);
                        }
                    }
                    match s.send_frame(&frame, now) {
                        Ok(pkts) => {
                            for p in pkts {
                                cadence.on_sent(p.len());
                                link.send(flow_id, &p);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "video encode failed"),
                    }
                    drop(s);
                    if cadence.take_sr_due(now) {
                        for sr in cadence.sender_reports(now_us()) {
                            link.send(flow_id, &sr);
                        }
                    }
                }
            })
            .map_err(anyhow_lite::err)?;
        self.published.push(Published { track_id, flow_id, kind, stop, enabled });
        Ok(())
    }

    async fn subscribe(&mut self, track: TrackInfo) {
        if Some(track.participant_id) == self.me || self.subscribed.contains_key(&track.track_id) {
            return;
        }
        let track_id = track.track_id;
        let flow_id = match self.session.subscribe(track.track_id, None).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "subscribe failed");
                return;
            }
        };
        if self.session.media_link().bound().is_none() {
            return;
        }
        let stats =
            Arc::new(Mutex::new(TrackStats::new(track.track_id, track.participant_id, track.spec.kind)));
        if let Ok(mut m) = self.shared.stats.lock() {
            m.insert(track.track_id, stats.clone());
        }
        let stop = Arc::new(AtomicBool::new(false));
        match track.spec.kind {
            TrackKind::Audio => {
                let Ok(stream) = AudioReceiveStream::new(JitterConfig::default()) else { return };
                let sync = self.shared.sync_for(track.participant_id);
                let rx = Arc::new(Mutex::new(AudioRx {
                    stream,
                    stats,
                    started: false,
                    sync,
                    reports: ReceiverReporter::new(rand::random(), AUDIO_CLOCK_RATE),
                    participant_id: track.participant_id,
                    peak: 0.0,
                }));
                if let Ok(mut a) = self.shared.audio_rx.lock() {
                    a.insert(track.track_id, rx.clone());
                }
                if let Ok(mut r) = self.shared.core.lock() {
                    r.insert(flow_id, Route::SubAudio(rx));
                }
            }
            TrackKind::Video | TrackKind::Screen => {
                // The camera is shown in step with the participant's audio; a screen
                // share is not, but its sender reports still tell the clock offset.
                let stream =
                    if track.spec.kind == TrackKind::Video { SyncStream::Camera } else { SyncStream::Screen };
                let sync = self.shared.sync_for(track.participant_id);
                let (tx, rx) = smpsc::sync_channel(VIDEO_QUEUE);
                if let Ok(mut d) = self.shared.decoders.lock() {
                    d.insert(flow_id, tx);
                }
                let sub = SubVideo::new(rand::random(), sync, stream, stats.clone());
                if let Ok(mut r) = self.shared.core.lock() {
                    r.insert(flow_id, Route::SubVideo(Box::new(sub)));
                }
                let (st, shared) = (stop.clone(), self.shared.clone());
                let observer = self.observer.on_video_track(&track);
                let _ = std::thread::Builder::new()
                    .name("video-recv".into())
                    .spawn(move || video_decode_loop(track, flow_id, rx, stats, shared, st, observer));
            }
        }
        self.subscribed.insert(track_id, Subscribed { flow_id, stop });
    }
}

/// One remote video track's decode thread: decodes the frames the core
/// assembled, holds each until lip sync says it is due, and hands it out.
fn video_decode_loop(
    track: TrackInfo,
    flow_id: u64,
    rx: smpsc::Receiver<VideoWork>,
    stats: Arc<Mutex<TrackStats>>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    mut observer: Option<Box<dyn VideoTrackObserver>>,
) {
    let Ok(mut decoder) = VideoDecodeStream::new() else { return };
    let recording = observer.as_ref().is_some_and(|o| o.wants_received_video());
    decoder.set_recording(recording);
    let av = shared.sync_for(track.participant_id);
    let sync = (track.spec.kind == TrackKind::Video).then(|| av.clone());
    let mut held = HeldFrames::default();
    let mut last_shown: Option<u64> = None;
    let mut rx_stats = ReceiverStats::default();
    while !stop.load(Ordering::Relaxed) && !shared.stop.load(Ordering::Relaxed) {
        let now = now_us();
        let wait = held.next_due_us().map_or(10_000, |t| t.saturating_sub(now).clamp(1_000, 10_000));
        match rx.recv_timeout(Duration::from_micros(wait)) {
            Ok(first) => {
                for work in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                    rx_stats = work.stats;
                    let now = now_us();
                    match decoder.decode(&work.frame) {
                        Decoded::Picture(d) => {
                            let due = sync
                                .as_ref()
                                .and_then(|s| s.lock().ok())
                                .map_or(now, |mut s| s.video_due_us(d.rtp_timestamp, now));
                            held.push(due, d);
                        }
                        Decoded::NeedsKeyframe => {
                            if let Ok(mut core) = shared.core.lock() {
                                core.request_keyframe(flow_id, now);
                            }
                            shared.core_wake.notify_one();
                        }
                        Decoded::Nothing => {}
                    }
                }
                if let Some(o) = observer.as_mut().filter(|_| recording) {
                    let bytes = decoder.take_recorded();
                    if !bytes.is_empty() {
                        o.on_received_video(&bytes);
                    }
                }
            }
            Err(smpsc::RecvTimeoutError::Timeout) => {}
            Err(smpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = now_us();
        while let Some(d) = held.pop_due(now) {
            if let Some(prev) = last_shown.replace(now) {
                let gap = now.saturating_sub(prev);
                if gap > 250_000 {
                    tracing::debug!(track = %track.track_id, gap_ms = gap / 1000, keyframe = d.keyframe, "video freeze ended");
                }
            }
            if d.keyframe {
                tracing::debug!(track = %track.track_id, "keyframe shown");
            }
            let psnr = observer.as_mut().and_then(|o| o.on_decoded_frame(&d.frame));
            let skew = sync.as_ref().and_then(|s| s.lock().ok()).and_then(|s| s.skew_us(d.capture_us?, now));
            let (capture_us, offset_us) = av
                .lock()
                .map(|a| (d.capture_us.map(|c| a.local_capture_us(c)), a.clock_offset_us()))
                .unwrap_or((None, 0));
            if let Ok(mut s) = stats.lock() {
                s.on_frame(now, capture_us, psnr, &rx_stats);
                s.set_clock_offset_us(offset_us);
                if let Some(skew) = skew {
                    s.on_av_skew(now, skew);
                }
            }
            let frame = Arc::new(d.frame);
            if let Some(tap) = shared.recorder() {
                tap.picture(track.track_id, track.participant_id, track.spec.kind, &frame, now);
            }
            let _ = shared.video_out.try_send(RemoteVideoFrame {
                track_id: track.track_id,
                participant_id: track.participant_id,
                kind: track.spec.kind,
                frame,
                capture_us,
            });
        }
    }
}

/// Longest sleep of the core's driver with nothing due (it then checks `stop`).
const CORE_IDLE_US: u64 = 1_000_000;
/// Timeouts are handled at most this often (one the core keeps due is not a busy loop).
const CORE_MIN_TIMEOUT_US: u64 = 1_000;

/// Drives the [`MediaCore`]: hands it the session's media datagrams, its timeouts
/// and wake-ups, sends what it answers and gives the decode threads their frames.
async fn core_loop(mut incoming: Incoming, link: MediaLink, shared: Arc<Shared>) {
    let rtt = || link.path().map_or(0, |p| p.rtt_us);
    let mut dropped: u64 = 0;
    let mut last_timeout: u64 = 0;
    let mut deadline = now_us();
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        // An absolute deadline: a steady stream of datagrams does not push it back.
        let sleep = tokio::time::sleep(Duration::from_micros(deadline.saturating_sub(now_us())));
        tokio::select! {
            d = incoming.recv() => {
                let Some(d) = d else { return };
                let Ok(mut core) = shared.core.lock() else { return };
                core.handle_datagram(&d, now_us(), rtt);
            }
            _ = sleep => {
                let Ok(mut core) = shared.core.lock() else { return };
                last_timeout = now_us();
                core.handle_timeout(last_timeout);
            }
            _ = shared.core_wake.notified() => {}
        }
        let Ok(mut core) = shared.core.lock() else { return };
        while let Some(out) = core.poll_output() {
            match out {
                Output::Transmit { flow, packet } => {
                    link.send(flow, &packet);
                }
                Output::Video { flow, frame, stats } => {
                    let tx = shared.decoders.lock().ok().and_then(|d| d.get(&flow).cloned());
                    let Some(tx) = tx else { continue };
                    if let Err(smpsc::TrySendError::Full(_)) = tx.try_send(VideoWork { frame, stats }) {
                        // The decoder lags: this frame is lost to it, and what follows
                        // may reference it.
                        dropped += 1;
                        if dropped.is_power_of_two() {
                            tracing::debug!(dropped, "video decode queue full, newest frame dropped");
                        }
                        core.request_keyframe(flow, now_us());
                    }
                }
            }
        }
        let idle = now_us() + CORE_IDLE_US;
        deadline = core.poll_timeout().map_or(idle, |t| t.max(last_timeout + CORE_MIN_TIMEOUT_US).min(idle));
    }
}

/// Every 20 ms: pull each remote audio stream, mix, hand to the application.
fn playout_loop(shared: Arc<Shared>) {
    let mut mixer = Mixer::new();
    let start = std::time::Instant::now();
    let mut tick: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        tick += 1;
        let due = start + Duration::from_millis(20 * tick);
        if let Some(d) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(d);
        }
        let now = now_us();
        let streams: Vec<_> =
            shared.audio_rx.lock().map(|m| m.values().cloned().collect()).unwrap_or_default();
        let mut pcm: Vec<Vec<f32>> = Vec::with_capacity(streams.len());
        let mut levels: Vec<(ParticipantId, f32)> = Vec::with_capacity(streams.len());
        for s in streams {
            let Ok(mut a) = s.lock() else { continue };
            if !a.started {
                continue;
            }
            let before = a.stream.jitter_buffer().stats();
            let samples = a.stream.pull(now);
            let after = a.stream.jitter_buffer().stats();
            // A slot was played (not a stretch): that is where playout stands.
            let slots = |s: &clinicmeet_media::jitter::JitterStats| s.played + s.fec_recovered + s.concealed;
            let played_rtp = a.stream.jitter_buffer().played_rtp_timestamp();
            if let Some(rtp) = played_rtp.filter(|_| slots(&after) > slots(&before)) {
                let delay = a.sync.lock().map(|mut s| s.on_audio_played(rtp, now)).unwrap_or(0);
                a.stream.jitter_buffer_mut().set_sync_delay_us(delay);
            }
            // A frame neither played nor recovered by FEC is concealment (a gap).
            let concealed = after.played == before.played && after.fec_recovered == before.fec_recovered;
            if let Ok(mut st) = a.stats.lock() {
                st.on_audio(now, &samples, concealed);
            }
            let level = played_level(&samples);
            a.peak = a.peak.max(level);
            levels.push((a.participant_id, level));
            pcm.push(samples);
        }
        let mixed = if pcm.is_empty() {
            vec![0.0; AUDIO_FRAME_SAMPLES]
        } else {
            mixer.mix(pcm.iter().map(|v| v.as_slice()))
        };
        if let Some(tap) = shared.recorder() {
            tap.tick(&mixed, levels);
        }
        let _ = shared.audio_out.try_send(mixed);
    }
}

/// Loudness of 20 ms of played audio, 0 (−60 dBov or quieter) to 1 (full scale).
fn played_level(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let mean_square = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    let dbov = 10.0 * mean_square.max(1e-12).log10();
    ((dbov + 60.0) / 60.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod level_tests {
    #[test]
    fn played_level_follows_loudness() {
        let tone: Vec<f32> = (0..960).map(|i| (i as f32 * 0.0576).sin() * 0.3).collect();
        let l = super::played_level(&tone);
        // 0.3 amplitude sine: RMS 0.21, about −13.5 dBov.
        assert!((l - (60.0 - 13.5) / 60.0).abs() < 0.02, "{l}");
        assert_eq!(super::played_level(&[0.0; 960]), 0.0);
        assert_eq!(super::played_level(&[]), 0.0);
    }
}

/// Minimal error plumbing for the engine's internal steps (logged, never shown to users).
mod anyhow_lite {
    pub type Result<T> = std::result::Result<T, String>;
    pub fn err(e: impl std::fmt::Display) -> String {
        e.to_string()
    }
    pub fn msg(m: &str) -> String {
        m.to_string()
    }
}
