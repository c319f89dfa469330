//! Media in the app: runs `clinicmeet_client::media::MediaEngine` for the live
//! session, and moves its output to the web view and the speaker.
//!
//! * Sources: the chosen camera / microphone (`shared/media`: nokhwa, cpal) or the
//!   synthetic test pattern / tone (`devices::SYNTHETIC_ID`). Factories read the
//!   current [`Choice`] when the engine publishes (at join), so one engine serves
//!   every join of the session; chat-only and "no device" publish nothing.
//! * Local picture: the camera source is wrapped ([`LocalVideo`]) so every captured
//!   frame is also scaled for the self tile (`local`); the microphone source
//!   ([`LocalAudio`]) reports its level as `audio_level` events.
//! * Remote pictures: one pump thread takes decoded frames, keeps the newest per
//!   participant, scales it to the tile size in Rust and stores it in
//!   [`FrameSlots`] (latest frame wins); `video` events say when a participant's
//!   frames start and stop (2 s without frames).
//! * Audio: the mixed remote audio is played through cpal on the chosen speaker;
//!   without one it is drained.
//! * Device check ([`Preview`]): the same wrapped sources, read by a thread of
//!   their own until the preview stops (before joining).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clinicmeet_client::media::{
    AudioSourceFactory, MediaConfig, MediaEngine, MediaOutputs, RemoteVideoFrame, VideoSourceFactory,
};
use clinicmeet_client::Session;
use clinicmeet_media::capture::synthetic::{SyntheticCamera, SyntheticMicrophone, SyntheticSound};
use clinicmeet_media::capture::{
    AudioSink, AudioSource, DeviceKind as MediaKind, Pacing, VideoFormat, VideoSource,
};
use clinicmeet_media::error::{MediaError, Result as MediaResult};
use clinicmeet_media::frame::{AudioFrame, VideoFrame};
use clinicmeet_protocol::TrackKind;

use super::devices::SYNTHETIC_ID;
use super::EventSink;
use crate::contract::{AppEvent, EngineEvent};
use crate::frames::{self, FrameSlots};

/// Participant id of this device's own camera in frames and events.
pub const LOCAL: &str = "local";

/// A remote participant's video counts as stopped after this long without frames.
const VIDEO_GONE_AFTER: Duration = Duration::from_secs(2);

/// Capture format of the camera (and the test pattern).
const CAPTURE: VideoFormat = VideoFormat::P360;

/// Which devices the next publish uses (`None`: publish nothing of that kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choice {
    pub camera: Option<String>,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
}

/// Where local media reports to.
#[derive(Clone)]
pub struct Taps {
    pub slots: Arc<FrameSlots>,
    pub sink: EventSink,
}

/// Opens the camera `id` (or the test pattern).
pub fn open_camera(id: &str) -> MediaResult<Box<dyn VideoSource>> {
    if id == SYNTHETIC_ID {
        return Ok(Box::new(SyntheticCamera::new(CAPTURE, Pacing::RealTime)?));
    }
    Ok(Box::new(clinicmeet_media::capture::camera::Camera::open(Some(id), CAPTURE)?))
}

/// Opens the microphone `id` (or the test tone).
pub fn open_microphone(id: &str) -> MediaResult<Box<dyn AudioSource>> {
    if id == SYNTHETIC_ID {
        return Ok(Box::new(SyntheticMicrophone::new(
            SyntheticSound::SpeechLike { seed: 7, amplitude: 0.3 },
            Pacing::RealTime,
        )));
    }
    Ok(Box::new(clinicmeet_media::capture::audio_device::Microphone::open(Some(id))?))
}

fn not_chosen(kind: MediaKind) -> MediaError {
    MediaError::DeviceNotFound { kind, detail: "not used in this call".into() }
}

/// The camera factory the media engine calls on (re)publish.
pub fn camera_factory(choice: Arc<Mutex<Choice>>, taps: Taps) -> VideoSourceFactory {
    Arc::new(move || {
        let id = lock(&choice).camera.clone().ok_or_else(|| not_chosen(MediaKind::Camera))?;
        Ok(Box::new(LocalVideo::new(open_camera(&id)?, taps.clone())) as Box<dyn VideoSource>)
    })
}

/// Frames per second of a shared screen: documents, results and slides, not motion.
pub const SCREEN_FPS: u32 = 10;

/// Opens the screen to share (the default screen of the display the app runs on).
/// Fails with [`MediaError::DeviceNotFound`] where capture is unavailable (Wayland
/// without X11, Windows and macOS for now).
pub fn open_screen() -> MediaResult<Box<dyn VideoSource>> {
    Ok(Box::new(clinicmeet_media::capture::screen::ScreenCapture::open(None, SCREEN_FPS)?))
}

/// The microphone factory the media engine calls on (re)publish.
pub fn microphone_factory(choice: Arc<Mutex<Choice>>, taps: Taps) -> AudioSourceFactory {
    Arc::new(move || {
        let id = lock(&choice).microphone.clone().ok_or_else(|| not_chosen(MediaKind::Microphone))?;
        Ok(Box::new(LocalAudio::new(open_microphone(&id)?, taps.clone())) as Box<dyn AudioSource>)
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A camera whose frames also go to the self tile.
pub struct LocalVideo {
    inner: Box<dyn VideoSource>,
    taps: Taps,
    announced: bool,
}

impl LocalVideo {
    pub fn new(inner: Box<dyn VideoSource>, taps: Taps) -> LocalVideo {
        LocalVideo { inner, taps, announced: false }
    }
}

impl VideoSource for LocalVideo {
    fn format(&self) -> VideoFormat {
        self.inner.format()
    }

    fn next_frame(&mut self) -> MediaResult<VideoFrame> {
        let f = self.inner.next_frame()?;
        let target = self.taps.slots.target(LOCAL);
        if let Some(m) = target.and_then(|bx| frames::encode_scaled(LOCAL, &f, bx)) {
            self.taps.slots.put(LOCAL, m);
        }
        if !self.announced {
            self.announced = true;
            (self.taps.sink)(video(LOCAL, false, true));
        }
        Ok(f)
    }
}

impl Drop for LocalVideo {
    fn drop(&mut self) {
        if self.announced {
            self.taps.slots.forget(LOCAL);
            (self.taps.sink)(video(LOCAL, false, false));
        }
    }
}

/// 0..1 for the UI's meter: -60 dBFS and below is 0, 0 dBFS is 1.
pub fn meter_level(frame: &AudioFrame) -> f64 {
    ((f64::from(frame.level_dbov()) + 60.0) / 60.0).clamp(0.0, 1.0)
}

/// A microphone that reports its level (five times a second).
pub struct LocalAudio {
    inner: Box<dyn AudioSource>,
    taps: Taps,
    n: u64,
    peak: f64,
}

impl LocalAudio {
    pub fn new(inner: Box<dyn AudioSource>, taps: Taps) -> LocalAudio {
        LocalAudio { inner, taps, n: 0, peak: 0.0 }
    }
}

impl AudioSource for LocalAudio {
    fn read_frame(&mut self) -> MediaResult<AudioFrame> {
        let f = self.inner.read_frame()?;
        self.peak = self.peak.max(meter_level(&f));
        self.n += 1;
        if self.n.is_multiple_of(10) {
            let level = (self.peak * 100.0).round() / 100.0;
            (self.taps.sink)(audio_level(LOCAL, level));
            self.peak = 0.0;
        }
        Ok(f)
    }
}

/// The media of one live session.
pub struct AppMedia {
    engine: MediaEngine,
    stop: Arc<AtomicBool>,
}

impl AppMedia {
    /// Starts the engine (on the current tokio runtime) and its output threads.
    pub fn start(session: Session, choice: Arc<Mutex<Choice>>, taps: Taps) -> AppMedia {
        let config = MediaConfig {
            camera: Some(camera_factory(choice.clone(), taps.clone())),
            microphone: Some(microphone_factory(choice.clone(), taps.clone())),
            screen: Some(Arc::new(open_screen)),
            ..MediaConfig::default()
        };
        let (engine, MediaOutputs { video, audio }) = MediaEngine::start(session, config);
        let stop = Arc::new(AtomicBool::new(false));
        let (st, t) = (stop.clone(), taps.clone());
        let _ = std::thread::Builder::new().name("app-video".into()).spawn(move || video_pump(video, t, st));
        let st = stop.clone();
        let _ =
            std::thread::Builder::new().name("app-audio".into()).spawn(move || play_audio(audio, choice, st));
        let (st, e) = (stop.clone(), engine.clone());
        let _ =
            std::thread::Builder::new().name("app-levels".into()).spawn(move || remote_levels(e, taps, st));
        AppMedia { engine, stop }
    }

    pub fn engine(&self) -> &MediaEngine {
        &self.engine
    }
}

impl Drop for AppMedia {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.engine.stop();
    }
}

/// Remote participants' audio levels as `audio_level` events, five times a second
/// (the speaking highlight and active speaker).
/// Every 10 s it also logs (debug) the video path's counters: decoded pictures per
/// second per track, and per tile the frames scaled, sent to the page, and replaced
/// unsent (a measurement aid: `RUST_LOG=clinicmeet_app=debug`).
fn remote_levels(engine: MediaEngine, taps: Taps, stop: Arc<AtomicBool>) {
    let mut tick = 0u64;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        tick += 1;
        if tick.is_multiple_of(50) && tracing::enabled!(tracing::Level::DEBUG) {
            for st in engine.stats().iter().filter(|s| s.kind != TrackKind::Audio) {
                tracing::debug!(participant = %st.participant_id, kind = ?st.kind, fps = st.fps, decoded = st.frames_decoded, "video track");
            }
            for (id, st) in taps.slots.stats() {
                tracing::debug!(tile = %id, produced = st.produced, sent = st.delivered, replaced = st.replaced, "frames to the page");
            }
        }
        for (id, level) in engine.audio_levels() {
            let level = (f64::from(level) * 100.0).round() / 100.0;
            (taps.sink)(audio_level(&id.to_string(), level));
        }
    }
}

/// The frame id of `participant`'s screen share (`screen:<participant id>`).
/// Frames of a camera (or, `screen`, a screen share) started or stopped arriving.
fn video(participant: &str, screen: bool, available: bool) -> EngineEvent {
    let participant_id = participant.to_string();
    EngineEvent::App(if screen {
        AppEvent::Screen { participant_id, available }
    } else {
        AppEvent::Video { participant_id, available }
    })
}

fn audio_level(participant: &str, level: f64) -> EngineEvent {
    EngineEvent::App(AppEvent::AudioLevel { participant_id: participant.to_string(), level })
}

pub fn screen_frame_id(participant: &str) -> String {
    format!("screen:{participant}")
}

/// Remote pictures → newest per tile → scaled → [`FrameSlots`]. Cameras are
/// framed under the participant id with `video` events, screen shares under
/// [`screen_frame_id`] with `screen` events (both say when frames start and stop).
fn video_pump(rx: std::sync::mpsc::Receiver<RemoteVideoFrame>, taps: Taps, stop: Arc<AtomicBool>) {
    // Frame id → (participant id, is a screen share, last frame seen).
    let mut seen: HashMap<String, (String, bool, Instant)> = HashMap::new();
    let mut newest: HashMap<String, RemoteVideoFrame> = HashMap::new();
    let announce = |participant: &str, screen: bool, available: bool| {
        (taps.sink)(video(participant, screen, available));
    };
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(f) => {
                newest.clear();
                // Latest frame wins: take everything queued, keep the newest of each tile.
                for f in std::iter::once(f).chain(rx.try_iter()) {
                    let id = match f.kind {
                        TrackKind::Video => f.participant_id.to_string(),
                        TrackKind::Screen => screen_frame_id(&f.participant_id.to_string()),
                        TrackKind::Audio => continue,
                    };
                    newest.insert(id, f);
                }
                for (id, f) in newest.drain() {
                    if let Some(m) =
                        taps.slots.target(&id).and_then(|bx| frames::encode_scaled(&id, &f.frame, bx))
                    {
                        taps.slots.put(&id, m);
                    }
                    let screen = f.kind == TrackKind::Screen;
                    let participant = f.participant_id.to_string();
                    if seen.insert(id, (participant.clone(), screen, Instant::now())).is_none() {
                        announce(&participant, screen, true);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let gone: Vec<String> =
            seen.iter().filter(|(_, s)| s.2.elapsed() > VIDEO_GONE_AFTER).map(|(id, _)| id.clone()).collect();
        for id in gone {
            if let Some((participant, screen, _)) = seen.remove(&id) {
                taps.slots.forget(&id);
                announce(&participant, screen, false);
            }
        }
    }
}

/// Mixed remote audio → the chosen speaker (or nowhere).
fn play_audio(rx: std::sync::mpsc::Receiver<Vec<f32>>, choice: Arc<Mutex<Choice>>, stop: Arc<AtomicBool>) {
    let speaker_id = lock(&choice).speaker.clone();
    let mut speaker: Option<Box<dyn AudioSink>> = match speaker_id.as_deref() {
        Some(id) if id != SYNTHETIC_ID => {
            match clinicmeet_media::capture::audio_device::Speaker::open(Some(id)) {
                Ok(s) => Some(Box::new(s)),
                Err(e) => {
                    tracing::warn!(error = %e, "no speaker: remote audio is not played");
                    None
                }
            }
        }
        _ => None,
    };
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(samples) => {
                if let (Some(s), Ok(frame)) = (speaker.as_mut(), AudioFrame::new(samples, 0)) {
                    if let Err(e) = s.play(&frame) {
                        tracing::warn!(error = %e, "speaker failed: remote audio is not played");
                        speaker = None;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// The device check's live preview: camera picture and microphone level.
pub struct Preview {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Preview {
    /// Starts reading the chosen camera and microphone; errors of one do not stop the other.
    pub fn start(choice: &Choice, taps: &Taps) -> Preview {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if let Some(id) = choice.camera.clone() {
            let (st, t) = (stop.clone(), taps.clone());
            if let Ok(h) = std::thread::Builder::new().name("preview-camera".into()).spawn(move || {
                match open_camera(&id) {
                    Ok(src) => {
                        let mut src = LocalVideo::new(src, t);
                        while !st.load(Ordering::Relaxed) && src.next_frame().is_ok() {}
                    }
                    Err(e) => tracing::warn!(error = %e, "camera preview failed"),
                }
            }) {
                threads.push(h);
            }
        }
        if let Some(id) = choice.microphone.clone() {
            let (st, t) = (stop.clone(), taps.clone());
            if let Ok(h) = std::thread::Builder::new().name("preview-mic".into()).spawn(move || {
                match open_microphone(&id) {
                    Ok(src) => {
                        let mut src = LocalAudio::new(src, t);
                        while !st.load(Ordering::Relaxed) && src.read_frame().is_ok() {}
                    }
                    Err(e) => tracing::warn!(error = %e, "microphone preview failed"),
                }
            }) {
                threads.push(h);
            }
        }
        Preview { stop, threads }
    }

    /// Stops and waits for the devices to close (a real camera opens once at a time).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taps() -> (Taps, Arc<Mutex<Vec<serde_json::Value>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let sink: EventSink = Arc::new(move |e| lock(&ev).push(serde_json::to_value(e).unwrap_or_default()));
        (Taps { slots: Arc::new(FrameSlots::default()), sink }, events)
    }

    #[test]
    fn preview_of_the_test_pattern_and_tone_reaches_the_self_tile_and_meter() {
        let (taps, events) = taps();
        taps.slots.set_size(LOCAL, 160, 160);
        let choice = Choice {
            camera: Some(SYNTHETIC_ID.into()),
            microphone: Some(SYNTHETIC_ID.into()),
            speaker: None,
        };
        let p = Preview::start(&choice, &taps);
        std::thread::sleep(Duration::from_millis(700));
        let frame = taps.slots.take_one().expect("a fresh local frame");
        p.stop();
        // 640x360 scaled into 160x160: 160x90.
        assert_eq!(
            (u16::from_le_bytes([frame[4], frame[5]]), u16::from_le_bytes([frame[6], frame[7]])),
            (160, 90)
        );
        assert_eq!(&frame[9..14], b"local");
        assert!(taps.slots.stats()[LOCAL].produced >= 10);
        let ev = lock(&events).clone();
        assert!(ev.iter().any(|e| e["event"] == "video" && e["available"] == true));
        assert!(ev.iter().any(|e| e["event"] == "video" && e["available"] == false), "closed on stop");
        assert!(ev.iter().any(|e| e["event"] == "audio_level"), "meter events: {ev:?}");
    }

    #[test]
    fn nothing_chosen_opens_nothing() {
        let (taps, events) = taps();
        let choice = Arc::new(Mutex::new(Choice::default()));
        assert!(camera_factory(choice.clone(), taps.clone())().is_err());
        assert!(microphone_factory(choice, taps.clone())().is_err());
        Preview::start(&Choice::default(), &taps).stop();
        assert!(lock(&events).is_empty());
    }
}
