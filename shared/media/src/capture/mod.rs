//! Capture and playback: the traits every source and sink implements, device
//! enumeration types, and synthetic sources for machines without hardware.
//!
//! Timing model: [`VideoSource::next_frame`] and [`AudioSource::read_frame`]
//! return the next frame when it is due. Real devices block until the device
//! delivers it. Synthetic sources take a [`Pacing`]: `RealTime` sleeps until the
//! frame is due (for live demos), `Virtual` returns at once with timestamps from
//! a virtual clock (for deterministic tests and benchmarks).

#[cfg(feature = "devices")]
pub mod audio_device;
#[cfg(feature = "devices")]
pub mod camera;
/// Y4M and WAV recordings as camera and microphone (looping).
pub mod file;
#[cfg(feature = "devices")]
pub mod screen;
pub mod synthetic;

use crate::error::Result;
use crate::frame::{AudioFrame, VideoFrame};

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKind {
    Camera,
    Microphone,
    Speaker,
    Screen,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Camera => "camera",
            DeviceKind::Microphone => "microphone",
            DeviceKind::Speaker => "speaker",
            DeviceKind::Screen => "screen",
        })
    }
}

/// One enumerated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Stable identifier to open the device with (backend-specific).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    pub kind: DeviceKind,
}

/// Video format a source delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl VideoFormat {
    pub const P180: VideoFormat = VideoFormat { width: 320, height: 180, fps: 15 };
    pub const P360: VideoFormat = VideoFormat { width: 640, height: 360, fps: 30 };
    pub const P720: VideoFormat = VideoFormat { width: 1280, height: 720, fps: 30 };

    /// Frame interval in microseconds.
    pub fn frame_interval_us(&self) -> u64 {
        1_000_000 / u64::from(self.fps.max(1))
    }
}

/// How a synthetic source paces its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Sleep until each frame is due; capture times from the media clock ([`crate::clock`]).
    RealTime,
    /// Return immediately; frame `n` has capture time `start_us + n * interval`.
    Virtual { start_us: u64 },
}

impl Pacing {
    /// Capture time of the video frame due `offset_us` after the stream's first
    /// frame; in real time, sleeps until it is due (`start` remembers the first).
    pub fn video_capture_us(self, start: &mut Option<u64>, offset_us: u64) -> u64 {
        match self {
            Pacing::Virtual { start_us } => start_us + offset_us,
            Pacing::RealTime => {
                let start = *start.get_or_insert_with(crate::clock::now_us);
                crate::clock::sleep_until_us(start + offset_us);
                crate::clock::now_us()
            }
        }
    }

    /// Capture time (of its first sample) of the 20 ms audio frame starting
    /// `offset_us` after the stream's first; in real time, sleeps until the
    /// frame is complete, 20 ms after its first sample.
    pub fn audio_capture_us(self, start: &mut Option<u64>, offset_us: u64) -> u64 {
        match self {
            Pacing::Virtual { start_us } => start_us + offset_us,
            Pacing::RealTime => {
                let start = *start.get_or_insert_with(crate::clock::now_us);
                crate::clock::sleep_until_us(start + offset_us + 20_000);
                start + offset_us
            }
        }
    }
}

/// A source of I420 video frames (camera, screen, synthetic pattern, file).
pub trait VideoSource: Send {
    /// The format frames are delivered in.
    fn format(&self) -> VideoFormat;
    /// The next frame, blocking until it is due (real devices: until captured).
    /// `capture_us` and `frame_no` are set by the source.
    fn next_frame(&mut self) -> Result<VideoFrame>;
}

/// A source of 20 ms, 48 kHz mono audio frames (microphone, synthetic, file).
pub trait AudioSource: Send {
    /// The next 20 ms frame, blocking until it is due.
    fn read_frame(&mut self) -> Result<AudioFrame>;
}

/// A sink for 20 ms, 48 kHz mono audio frames (speaker).
pub trait AudioSink: Send {
    /// Queues one frame for playback. May block while the device buffer is full.
    fn play(&mut self, frame: &AudioFrame) -> Result<()>;
}

impl<T: VideoSource + ?Sized> VideoSource for Box<T> {
    fn format(&self) -> VideoFormat {
        (**self).format()
    }
    fn next_frame(&mut self) -> Result<VideoFrame> {
        (**self).next_frame()
    }
}

impl<T: AudioSource + ?Sized> AudioSource for Box<T> {
    fn read_frame(&mut self) -> Result<AudioFrame> {
        (**self).read_frame()
    }
}

impl<T: AudioSink + ?Sized> AudioSink for Box<T> {
    fn play(&mut self, frame: &AudioFrame) -> Result<()> {
        (**self).play(frame)
    }
}

/// A sink that discards audio (no speaker present, headless clients).
#[derive(Debug, Default)]
pub struct NullAudioSink {
    /// Frames played so far.
    pub frames: u64,
}

impl AudioSink for NullAudioSink {
    fn play(&mut self, _frame: &AudioFrame) -> Result<()> {
        self.frames += 1;
        Ok(())
    }
}

/// A camera whose pictures reach the application `delay` after their capture
/// time, as with a slow capture pipeline (some USB cameras and capture cards
/// lag by 100 ms or more). Frames keep their true capture times and their rate:
/// the inner source runs on its own thread, and each frame is handed out once
/// it is `delay` old. Used to check that receivers keep lip sync when one
/// stream's path is slower.
pub struct Delayed {
    frames: std::sync::mpsc::Receiver<Result<VideoFrame>>,
    format: VideoFormat,
    delay: std::time::Duration,
}

impl Delayed {
    pub fn new(mut inner: Box<dyn VideoSource>, delay: std::time::Duration) -> Result<Self> {
        let format = inner.format();
        // Enough for the delay at 60 fps; the thread ends when this side is dropped.
        let (tx, frames) = std::sync::mpsc::sync_channel(64);
        std::thread::Builder::new()
            .name("delayed-camera".into())
            .spawn(move || loop {
                let f = inner.next_frame();
                let failed = f.is_err();
                if tx.send(f).is_err() || failed {
                    break;
                }
            })
            .map_err(|e| crate::MediaError::Device {
                kind: DeviceKind::Camera,
                detail: format!("cannot start the delayed camera: {e}"),
            })?;
        Ok(Delayed { frames, format, delay })
    }
}

impl VideoSource for Delayed {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<VideoFrame> {
        let f = self.frames.recv().map_err(|_| crate::MediaError::Device {
            kind: DeviceKind::Camera,
            detail: "the delayed camera stopped".into(),
        })??;
        let due = f.capture_us.saturating_add(self.delay.as_micros() as u64);
        crate::clock::sleep_until_us(due);
        Ok(f)
    }
}
