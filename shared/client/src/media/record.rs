//! Local recording of the call on this device: the audio of everyone (the mix as
//! played plus this device's own microphone) and the active speaker's picture (a
//! screen share while one runs), into one fragmented MP4 file
//! ([`record_mux`](super::record_mux)) that ffmpeg and VLC play.
//!
//! The engine's threads hand the recorder what they already have through a
//! [`RecordTap`], which never blocks them: the 20 ms playout tick (mixed audio and
//! each participant's level) and the microphone go into a bounded queue
//! ([`RECORD_QUEUE`]; when it is full the frame is dropped from the recording and
//! counted, never from the call), and decoded pictures overwrite one slot per track.
//! The recorder's own thread mixes, picks the picture (with hysteresis, so the
//! video does not flicker between speakers), scales it into a fixed
//! [`RECORD_WIDTH`]x[`RECORD_HEIGHT`] canvas (letterboxed), re-encodes it with
//! openh264 and the audio with Opus, and writes the file. Its clock is the
//! playout tick, which runs across reconnects: the file goes on (silent, with the
//! last picture) while the link is down.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as smpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clinicmeet_media::codec::h264::{H264Config, H264Encoder, Preset};
use clinicmeet_media::codec::opus::{OpusConfig, OpusEncoder};
use clinicmeet_media::frame::{AudioFrame, VideoFrame};
use clinicmeet_media::AUDIO_FRAME_SAMPLES;
use clinicmeet_protocol::{ParticipantId, TrackId, TrackKind};
use serde::Serialize;

use super::record_mux::{Mp4Out, VIDEO_TIMESCALE};

/// Size of the recorded picture.
pub const RECORD_WIDTH: u32 = 640;
pub const RECORD_HEIGHT: u32 = 360;
/// Recorded frame rate.
pub const RECORD_FPS: u64 = 15;
/// Audio ticks and microphone frames waiting for the recorder (about 1.3 s of both).
pub const RECORD_QUEUE: usize = 128;
const VIDEO_BITRATE_BPS: u32 = 600_000;
const AUDIO_BITRATE_BPS: u32 = 64_000;
/// A picture older than this is not shown (its track stopped or froze).
const PICTURE_FRESH_US: u64 = 1_500_000;
/// Microphone frames held to mix into the next ticks (more are dropped, oldest first).
const MIC_BACKLOG: usize = 10;
/// A keyframe every two seconds (each fragment of the file can start playing).
const KEYFRAME_INTERVAL: u32 = 2 * RECORD_FPS as u32;

/// What the engine's threads send the recorder's thread.
pub(crate) enum RecordInput {
    /// One 20 ms playout tick: the remote mix as played and each participant's level (0..1).
    Tick { mixed: Vec<f32>, levels: Vec<(ParticipantId, f32)> },
    /// 20 ms of this device's microphone, as sent.
    Mic(Vec<f32>),
}

/// The newest decoded picture of one remote track.
struct Picture {
    participant: ParticipantId,
    kind: TrackKind,
    frame: Arc<VideoFrame>,
    at_us: u64,
}

/// The engine's side of a recording: nothing here blocks or waits.
pub struct RecordTap {
    tx: smpsc::SyncSender<RecordInput>,
    pictures: Mutex<HashMap<TrackId, Picture>>,
    dropped: AtomicU64,
    stop: AtomicBool,
}

impl RecordTap {
    fn send(&self, input: RecordInput) {
        if self.tx.try_send(input).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "recorder lags: frames dropped from the recording");
            }
        }
    }

    /// The playout thread's 20 ms tick.
    pub(crate) fn tick(&self, mixed: &[f32], levels: Vec<(ParticipantId, f32)>) {
        self.send(RecordInput::Tick { mixed: mixed.to_vec(), levels });
    }

    /// 20 ms of the own microphone (only while it is on).
    pub(crate) fn mic(&self, samples: &[f32]) {
        self.send(RecordInput::Mic(samples.to_vec()));
    }

    /// A decoded picture of a remote track, as shown (skipped when the slot is busy).
    pub(crate) fn picture(
        &self,
        track: TrackId,
        participant: ParticipantId,
        kind: TrackKind,
        frame: &Arc<VideoFrame>,
        now_us: u64,
    ) {
        if let Ok(mut p) = self.pictures.try_lock() {
            p.insert(track, Picture { participant, kind, frame: frame.clone(), at_us: now_us });
        }
    }
}

/// What a finished recording holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordSummary {
    pub bytes: u64,
    /// 20 ms audio frames written (the recording lasts `audio_frames * 20` ms).
    pub audio_frames: u64,
    pub video_frames: u64,
    /// Ticks and microphone frames the recorder could not keep up with.
    pub dropped: u64,
}

/// A recording in progress: its tap and its thread.
pub struct Recording {
    tap: Arc<RecordTap>,
    thread: std::thread::JoinHandle<std::io::Result<RecordSummary>>,
}

impl Recording {
    /// Creates the file and starts the recorder's thread.
    pub fn start(path: &Path) -> std::io::Result<Recording> {
        let out = Mp4Out::create(path, RECORD_WIDTH, RECORD_HEIGHT)?;
        let (tx, rx) = smpsc::sync_channel(RECORD_QUEUE);
        let tap = Arc::new(RecordTap {
            tx,
            pictures: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let t = tap.clone();
        let thread =
            std::thread::Builder::new().name("recorder".into()).spawn(move || record_loop(out, rx, t))?;
        Ok(Recording { tap, thread })
    }

    pub(crate) fn tap(&self) -> Arc<RecordTap> {
        self.tap.clone()
    }

    /// Ends the recording: what is queued is written, the file synced.
    pub fn finish(self) -> std::io::Result<RecordSummary> {
        self.tap.stop.store(true, Ordering::Relaxed);
        let mut summary =
            self.thread.join().map_err(|_| std::io::Error::other("the recorder thread panicked"))??;
        summary.dropped = self.tap.dropped.load(Ordering::Relaxed);
        Ok(summary)
    }
}

fn record_loop(
    mut out: Mp4Out,
    rx: smpsc::Receiver<RecordInput>,
    tap: Arc<RecordTap>,
) -> std::io::Result<RecordSummary> {
    let media_err = |e: clinicmeet_media::error::MediaError| std::io::Error::other(e.to_string());
    let video_cfg = H264Config {
        width: RECORD_WIDTH,
        height: RECORD_HEIGHT,
        fps: RECORD_FPS as f32,
        bitrate_bps: VIDEO_BITRATE_BPS,
        keyframe_interval: KEYFRAME_INTERVAL,
        allow_frame_skip: false,
        ..H264Config::preset(Preset::P360)
    };
    let mut video = H264Encoder::new(video_cfg).map_err(media_err)?;
    let audio_cfg = OpusConfig {
        bitrate_bps: AUDIO_BITRATE_BPS,
        fec: false,
        dtx: false,
        expected_loss_pct: 0,
        complexity: 5,
    };
    let mut audio = OpusEncoder::new(audio_cfg).map_err(media_err)?;
    let mut speaker = ActiveSpeaker::default();
    let mut mic: VecDeque<Vec<f32>> = VecDeque::new();
    let mut canvas = VideoFrame::new(RECORD_WIDTH, RECORD_HEIGHT);
    let mut summary = RecordSummary::default();
    let mut ticks: u64 = 0;
    loop {
        let input = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(i) => i,
            Err(smpsc::RecvTimeoutError::Timeout) if tap.stop.load(Ordering::Relaxed) => break,
            Err(smpsc::RecvTimeoutError::Timeout) => continue,
            Err(smpsc::RecvTimeoutError::Disconnected) => break,
        };
        let (mut pcm, levels) = match input {
            RecordInput::Mic(s) => {
                if mic.len() >= MIC_BACKLOG {
                    mic.pop_front();
                }
                mic.push_back(s);
                continue;
            }
            RecordInput::Tick { mixed, levels } => (mixed, levels),
        };
        let now_ms = ticks * 20;
        speaker.on_levels(&levels, now_ms);
        // Video first at each due instant, so the file starts with a keyframe.
        while summary.video_frames * 1000 / RECORD_FPS <= now_ms {
            let now = clinicmeet_media::clock::now_us();
            let chosen = tap.pictures.lock().ok().and_then(|p| choose(&p, speaker.current(), now));
            match chosen {
                Some(frame) => letterbox(&frame, &mut canvas),
                None => blank(&mut canvas),
            }
            canvas.frame_no = summary.video_frames;
            canvas.capture_us = summary.video_frames * 1_000_000 / RECORD_FPS;
            let encoded = video.encode(&canvas).map_err(media_err)?;
            out.video(summary.video_frames * VIDEO_TIMESCALE / RECORD_FPS, &encoded)?;
            summary.video_frames += 1;
        }
        if let Some(m) = mic.pop_front() {
            for (a, b) in pcm.iter_mut().zip(m) {
                *a = (*a + b).clamp(-1.0, 1.0);
            }
        }
        pcm.resize(AUDIO_FRAME_SAMPLES, 0.0);
        if let Some(packet) =
            audio.encode(&AudioFrame { samples: pcm, capture_us: now_ms * 1000 }).map_err(media_err)?
        {
            out.audio(ticks * AUDIO_FRAME_SAMPLES as u64, &packet)?;
        }
        summary.audio_frames += 1;
        ticks += 1;
    }
    summary.bytes = out.finish()?;
    Ok(summary)
}

/// The picture to record: a screen share while one runs, else the active speaker's
/// camera, else the camera shown most recently.
fn choose(
    pictures: &HashMap<TrackId, Picture>,
    speaker: Option<ParticipantId>,
    now_us: u64,
) -> Option<Arc<VideoFrame>> {
    let fresh = || pictures.values().filter(|p| now_us.saturating_sub(p.at_us) < PICTURE_FRESH_US);
    let newest = |kind: TrackKind| fresh().filter(|p| p.kind == kind).max_by_key(|p| p.at_us);
    newest(TrackKind::Screen)
        .or_else(|| fresh().find(|p| p.kind == TrackKind::Video && Some(p.participant) == speaker))
        .or_else(|| newest(TrackKind::Video))
        .map(|p| p.frame.clone())
}

/// Who speaks, from each participant's played level, with hysteresis: another
/// participant takes over only after being the loudest (and audible) for
/// [`ActiveSpeaker::HOLD_MS`].
#[derive(Debug, Default)]
pub struct ActiveSpeaker {
    /// Smoothed level per participant.
    levels: HashMap<ParticipantId, f32>,
    current: Option<ParticipantId>,
    /// The loudest other participant and since when.
    challenger: Option<(ParticipantId, u64)>,
}

impl ActiveSpeaker {
    pub const HOLD_MS: u64 = 800;
    /// Below this smoothed level nobody counts as speaking.
    const AUDIBLE: f32 = 0.2;

    pub fn current(&self) -> Option<ParticipantId> {
        self.current
    }

    pub fn on_levels(&mut self, levels: &[(ParticipantId, f32)], now_ms: u64) {
        for (p, l) in levels {
            let s = self.levels.entry(*p).or_insert(0.0);
            *s = 0.85 * *s + 0.15 * l;
        }
        self.levels.retain(|p, _| levels.iter().any(|(q, _)| q == p));
        if self.current.is_some_and(|c| !self.levels.contains_key(&c)) {
            self.current = None;
        }
        let loudest = self
            .levels
            .iter()
            .filter(|(_, l)| **l >= Self::AUDIBLE)
            .max_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(b.0)))
            .map(|(p, _)| *p);
        match loudest {
            None => self.challenger = None,
            Some(p) if Some(p) == self.current => self.challenger = None,
            Some(p) if self.current.is_none() => {
                self.current = Some(p);
                self.challenger = None;
            }
            Some(p) => match self.challenger {
                Some((c, since)) if c == p => {
                    if now_ms.saturating_sub(since) >= Self::HOLD_MS {
                        self.current = Some(p);
                        self.challenger = None;
                    }
                }
                _ => self.challenger = Some((p, now_ms)),
            },
        }
    }
}

fn blank(canvas: &mut VideoFrame) {
    canvas.y.fill(16);
    canvas.u.fill(128);
    canvas.v.fill(128);
}

/// Scales `src` into `canvas` keeping its aspect ratio (black bars around it),
/// nearest neighbour.
pub fn letterbox(src: &VideoFrame, canvas: &mut VideoFrame) {
    blank(canvas);
    let (cw, ch) = (canvas.width as u64, canvas.height as u64);
    let (sw, sh) = (u64::from(src.width.max(1)), u64::from(src.height.max(1)));
    // Fit: the scaled size, even so the chroma planes line up.
    let (mut w, mut h) = if sw * ch >= sh * cw { (cw, sh * cw / sw) } else { (sw * ch / sh, ch) };
    w = (w & !1).max(2);
    h = (h & !1).max(2);
    let (x0, y0) = (((cw - w) / 2) & !1, ((ch - h) / 2) & !1);
    let plane = |dst: &mut [u8], dst_stride: usize, src_plane: &[u8], src_stride: usize, div: u64| {
        let (w, h, x0, y0) = (w / div, h / div, x0 / div, y0 / div);
        let (sw, sh) = (sw.div_ceil(div), sh.div_ceil(div));
        for y in 0..h {
            let sy = (y * sh / h) as usize;
            let drow = (y0 + y) as usize * dst_stride;
            for x in 0..w {
                let sx = (x * sw / w) as usize;
                if let (Some(d), Some(s)) =
                    (dst.get_mut(drow + (x0 + x) as usize), src_plane.get(sy * src_stride + sx))
                {
                    *d = *s;
                }
            }
        }
    };
    let (ys, uvs) = (canvas.y_stride, canvas.uv_stride);
    plane(&mut canvas.y, ys, &src.y, src.y_stride, 1);
    plane(&mut canvas.u, uvs, &src.u, src.uv_stride, 2);
    plane(&mut canvas.v, uvs, &src.v, src.uv_stride, 2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_speaker_changes_only_after_the_hold_time() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut s = ActiveSpeaker::default();
        let mut t = 0;
        let mut run = |s: &mut ActiveSpeaker, la: f32, lb: f32, ms: u64| {
            for _ in 0..ms / 20 {
                s.on_levels(&[(a, la), (b, lb)], t);
                t += 20;
            }
        };
        run(&mut s, 0.0, 0.0, 400);
        assert_eq!(s.current(), None, "silence: nobody");
        run(&mut s, 0.8, 0.0, 400);
        assert_eq!(s.current(), Some(a));
        // b louder for a moment (a cough): a stays.
        run(&mut s, 0.0, 0.9, 300);
        run(&mut s, 0.8, 0.0, 400);
        assert_eq!(s.current(), Some(a));
        // b speaks on: after the hold time (plus smoothing) it takes over.
        run(&mut s, 0.0, 0.9, 1_500);
        assert_eq!(s.current(), Some(b));
    }

    #[test]
    fn letterbox_keeps_the_aspect_and_fills_the_canvas_with_black_around() {
        // A 4:3 white picture in a 16:9 canvas: bars left and right.
        let mut src = VideoFrame::new(320, 240);
        src.y.fill(235);
        let mut canvas = VideoFrame::new(RECORD_WIDTH, RECORD_HEIGHT);
        letterbox(&src, &mut canvas);
        assert_eq!(canvas.luma(320, 180), 235, "centre is the picture");
        assert_eq!(canvas.luma(10, 180), 16, "left bar is black");
        assert_eq!(canvas.luma(630, 180), 16, "right bar is black");
        assert_eq!(canvas.luma(100, 2), 235, "full height");
        // An odd-sized, tiny, tall picture: scaled up between wide side bars, no panic.
        let odd = VideoFrame::new(3, 7);
        letterbox(&odd, &mut canvas);
        canvas.validate().unwrap();
        assert_eq!(canvas.luma(320, 180), 16, "its (black) picture in the middle");
        assert_eq!(canvas.luma(5, 180), 16);
    }

    #[test]
    fn the_screen_share_wins_then_the_speaker_then_any_fresh_camera() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let pic = |participant, kind, at_us, luma: u8| {
            let mut f = VideoFrame::new(16, 16);
            f.y.fill(luma);
            Picture { participant, kind, frame: Arc::new(f), at_us }
        };
        let mut m = HashMap::new();
        m.insert(Uuid::from_u128(10), pic(a, TrackKind::Video, 1_000_000, 50));
        m.insert(Uuid::from_u128(11), pic(b, TrackKind::Video, 1_100_000, 60));
        let now = 1_200_000;
        assert_eq!(choose(&m, Some(a), now).unwrap().y[0], 50, "the speaker");
        assert_eq!(choose(&m, None, now).unwrap().y[0], 60, "no speaker: the newest camera");
        m.insert(Uuid::from_u128(12), pic(b, TrackKind::Screen, 1_150_000, 70));
        assert_eq!(choose(&m, Some(a), now).unwrap().y[0], 70, "a screen share wins");
        assert!(choose(&m, Some(a), now + 10_000_000).is_none(), "stale pictures are not shown");
    }

    /// The file a recording writes is fragmented MP4 with both tracks, and a full
    /// queue drops recorded frames without blocking the caller.
    #[test]
    fn a_recording_writes_a_file_and_a_full_queue_drops_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.mp4");
        let rec = Recording::start(&path).unwrap();
        let tap = rec.tap();
        let tone: Vec<f32> = (0..AUDIO_FRAME_SAMPLES).map(|i| (i as f32 * 0.06).sin() * 0.3).collect();
        let start = std::time::Instant::now();
        // 20 000 ticks at once: far more than the queue; the caller never waits.
        for _ in 0..20_000 {
            tap.tick(&tone, vec![(Uuid::from_u128(1), 0.5)]);
        }
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        let summary = rec.finish().unwrap();
        assert!(summary.dropped > 0, "{summary:?}");
        assert_eq!(summary.audio_frames + summary.dropped, 20_000, "{summary:?}");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, summary.bytes);
        assert_eq!(&bytes[4..8], b"ftyp");
        let has = |tag: &[u8]| bytes.windows(4).any(|w| w == tag);
        assert!(has(b"avc1") && has(b"Opus") && has(b"moof"), "fragmented MP4, H.264 and Opus");
    }
}
