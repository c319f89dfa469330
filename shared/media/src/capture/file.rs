//! Recordings as capture sources, for demos and for measuring quality against a
//! known input: a Y4M file (4:2:0, 8 bit) as a camera and a WAV file (PCM16,
//! 48 kHz, mono or stereo mixed down) as a microphone. Both loop at the end and
//! pace themselves in real time (or virtually, for tests), like the synthetic
//! sources. Parsing is pure (`Y4mVideo::parse`, `WavAudio::parse`) so bad files
//! give a clear error and never a panic.

use std::path::Path;

use super::{AudioSource, Pacing, VideoFormat, VideoSource};
use crate::error::{MediaError, Result};
use crate::frame::{chroma_size, AudioFrame, VideoFrame};
use crate::{AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};

fn bad(what: &str) -> MediaError {
    MediaError::UnsupportedFormat(what.to_string())
}

/// Decoded Y4M frames (I420), all in memory.
#[derive(Debug, Clone)]
pub struct Y4mVideo {
    pub format: VideoFormat,
    pub frames: Vec<VideoFrame>,
}

impl Y4mVideo {
    /// Parses a YUV4MPEG2 stream: `W`, `H`, `F` (rate) and `C420*` (or no `C`) headers.
    pub fn parse(data: &[u8]) -> Result<Y4mVideo> {
        let nl = data.iter().position(|&b| b == b'\n').ok_or_else(|| bad("y4m: no header line"))?;
        let header = std::str::from_utf8(&data[..nl]).map_err(|_| bad("y4m: header is not text"))?;
        let mut parts = header.split(' ');
        if parts.next() != Some("YUV4MPEG2") {
            return Err(bad("y4m: missing YUV4MPEG2 signature"));
        }
        let (mut w, mut h, mut fps) = (0u32, 0u32, 30u32);
        for p in parts {
            let (tag, val) = p.split_at(p.len().min(1));
            match tag {
                "W" => w = val.parse().map_err(|_| bad("y4m: bad width"))?,
                "H" => h = val.parse().map_err(|_| bad("y4m: bad height"))?,
                "F" => {
                    let (n, d) = val.split_once(':').ok_or_else(|| bad("y4m: bad frame rate"))?;
                    let (n, d): (u32, u32) = (
                        n.parse().map_err(|_| bad("y4m: bad frame rate"))?,
                        d.parse().map_err(|_| bad("y4m: bad frame rate"))?,
                    );
                    if d == 0 || n == 0 {
                        return Err(bad("y4m: zero frame rate"));
                    }
                    fps = ((n + d / 2) / d).clamp(1, 120);
                }
                "C" if !val.starts_with("420") => {
                    return Err(bad("y4m: only 4:2:0 8-bit colour is supported"));
                }
                _ => {}
            }
        }
        if !(16..=7680).contains(&w) || !(16..=4320).contains(&h) {
            return Err(bad("y4m: frame size out of range"));
        }
        let (cw, ch) = chroma_size(w, h);
        let (ysize, csize) = (w as usize * h as usize, cw * ch);
        let mut frames = Vec::new();
        let mut rest = &data[nl + 1..];
        while !rest.is_empty() {
            let nl =
                rest.iter().position(|&b| b == b'\n').ok_or_else(|| bad("y4m: truncated frame header"))?;
            if !rest.starts_with(b"FRAME") {
                return Err(bad("y4m: expected FRAME"));
            }
            rest = &rest[nl + 1..];
            if rest.len() < ysize + 2 * csize {
                return Err(bad("y4m: truncated frame"));
            }
            let (y, r) = rest.split_at(ysize);
            let (u, r) = r.split_at(csize);
            let (v, r) = r.split_at(csize);
            let mut f = VideoFrame::from_planes(w, h, y.to_vec(), w as usize, u.to_vec(), v.to_vec(), cw)?;
            f.frame_no = frames.len() as u64;
            frames.push(f);
            rest = r;
        }
        if frames.is_empty() {
            return Err(bad("y4m: no frames"));
        }
        Ok(Y4mVideo { format: VideoFormat { width: w, height: h, fps }, frames })
    }

    /// Writes frames as a Y4M stream (for tests and tools).
    pub fn to_bytes(&self) -> Vec<u8> {
        let f = self.format;
        let mut out =
            format!("YUV4MPEG2 W{} H{} F{}:1 Ip A1:1 C420jpeg\n", f.width, f.height, f.fps).into_bytes();
        for fr in &self.frames {
            let p = fr.to_packed();
            out.extend_from_slice(b"FRAME\n");
            out.extend_from_slice(&p.y);
            out.extend_from_slice(&p.u);
            out.extend_from_slice(&p.v);
        }
        out
    }
}

/// A Y4M file played as a camera, looping.
#[derive(Debug)]
pub struct Y4mCamera {
    video: Y4mVideo,
    pacing: Pacing,
    next_no: u64,
    start_us: Option<u64>,
}

impl Y4mCamera {
    pub fn open(path: &Path, pacing: Pacing) -> Result<Y4mCamera> {
        let data = std::fs::read(path).map_err(|e| MediaError::DeviceNotFound {
            kind: super::DeviceKind::Camera,
            detail: format!("{}: {e}", path.display()),
        })?;
        Ok(Y4mCamera { video: Y4mVideo::parse(&data)?, pacing, next_no: 0, start_us: None })
    }

    pub fn from_video(video: Y4mVideo, pacing: Pacing) -> Y4mCamera {
        Y4mCamera { video, pacing, next_no: 0, start_us: None }
    }
}

impl VideoSource for Y4mCamera {
    fn format(&self) -> VideoFormat {
        self.video.format
    }

    fn next_frame(&mut self) -> Result<VideoFrame> {
        let n = self.next_no;
        self.next_no += 1;
        let interval = self.video.format.frame_interval_us();
        let capture_us = self.pacing.video_capture_us(&mut self.start_us, n * interval);
        let len = self.video.frames.len() as u64;
        let src = self.video.frames.get((n % len.max(1)) as usize).ok_or(MediaError::EndOfStream)?;
        let mut f = src.clone();
        f.frame_no = n;
        f.capture_us = capture_us;
        Ok(f)
    }
}

/// PCM samples of a WAV file, 48 kHz mono.
#[derive(Debug, Clone)]
pub struct WavAudio {
    pub samples: Vec<f32>,
}

impl WavAudio {
    /// Parses a RIFF/WAVE file with 16-bit PCM at 48 kHz, 1 or 2 channels.
    pub fn parse(data: &[u8]) -> Result<WavAudio> {
        if data.len() < 12 || &data[..4] != b"RIFF" || &data[8..12] != b"WAVE" {
            return Err(bad("wav: not a RIFF/WAVE file"));
        }
        let mut pos = 12;
        let mut fmt: Option<(u16, u16, u32, u16)> = None;
        while pos + 8 <= data.len() {
            let id = &data[pos..pos + 4];
            let len =
                u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]) as usize;
            let body_start = pos + 8;
            // Streams written while recording may carry a short or zero data size: take what is there.
            let body_end = body_start.saturating_add(len).min(data.len());
            let body = &data[body_start..body_end];
            if id == b"fmt " {
                if body.len() < 16 {
                    return Err(bad("wav: short fmt chunk"));
                }
                let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                fmt = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
            } else if id == b"data" {
                let (format, channels, rate, bits) = fmt.ok_or_else(|| bad("wav: data before fmt"))?;
                if format != 1 || bits != 16 {
                    return Err(bad("wav: only 16-bit PCM is supported"));
                }
                if rate != AUDIO_SAMPLE_RATE {
                    return Err(bad("wav: only 48 kHz is supported"));
                }
                if !(1..=2).contains(&channels) {
                    return Err(bad("wav: only mono or stereo"));
                }
                let body = if len == 0 { &data[body_start..] } else { body };
                let ch = usize::from(channels);
                let samples: Vec<f32> = body
                    .chunks_exact(2 * ch)
                    .map(|frame| {
                        let sum: f32 = frame
                            .chunks_exact(2)
                            .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32_768.0)
                            .sum();
                        sum / ch as f32
                    })
                    .collect();
                if samples.is_empty() {
                    return Err(bad("wav: no samples"));
                }
                return Ok(WavAudio { samples });
            }
            pos = body_start.saturating_add(len + (len & 1));
        }
        Err(bad("wav: no data chunk"))
    }
}

/// A WAV file played as a microphone, looping.
#[derive(Debug)]
pub struct WavMicrophone {
    audio: WavAudio,
    pacing: Pacing,
    pos: u64,
    start_us: Option<u64>,
}

impl WavMicrophone {
    pub fn open(path: &Path, pacing: Pacing) -> Result<WavMicrophone> {
        let data = std::fs::read(path).map_err(|e| MediaError::DeviceNotFound {
            kind: super::DeviceKind::Microphone,
            detail: format!("{}: {e}", path.display()),
        })?;
        Ok(WavMicrophone { audio: WavAudio::parse(&data)?, pacing, pos: 0, start_us: None })
    }

    pub fn from_audio(audio: WavAudio, pacing: Pacing) -> WavMicrophone {
        WavMicrophone { audio, pacing, pos: 0, start_us: None }
    }
}

impl AudioSource for WavMicrophone {
    fn read_frame(&mut self) -> Result<AudioFrame> {
        let offset_us = self.pos * 1_000_000 / u64::from(AUDIO_SAMPLE_RATE);
        let capture_us = self.pacing.audio_capture_us(&mut self.start_us, offset_us);
        let len = self.audio.samples.len() as u64;
        let samples = (0..AUDIO_FRAME_SAMPLES as u64)
            .map(|i| self.audio.samples.get(((self.pos + i) % len.max(1)) as usize).copied().unwrap_or(0.0))
            .collect();
        self.pos += AUDIO_FRAME_SAMPLES as u64;
        Ok(AudioFrame { samples, capture_us })
    }
}

/// A 16-bit PCM mono 48 kHz WAV file of `samples` (for tests and tools).
pub fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let mut h = wav_header((samples.len() * 2) as u32);
    h.reserve(samples.len() * 2);
    for s in samples {
        h.extend_from_slice(&crate::frame::f32_to_i16(*s).to_le_bytes());
    }
    h
}

/// The 44-byte header of a 16-bit PCM mono 48 kHz WAV file with `data` bytes of
/// samples (a recorder writes 0 first and rewrites it as the file grows).
pub fn wav_header(data: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&AUDIO_SAMPLE_RATE.to_le_bytes());
    h.extend_from_slice(&(AUDIO_SAMPLE_RATE * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video() -> Y4mVideo {
        let mut frames = Vec::new();
        for i in 0..3u8 {
            let mut f = VideoFrame::new(32, 18);
            f.y.iter_mut().for_each(|p| *p = 40 + i * 50);
            frames.push(f);
        }
        Y4mVideo { format: VideoFormat { width: 32, height: 18, fps: 25 }, frames }
    }

    #[test]
    fn y4m_round_trips_and_loops() {
        let bytes = video().to_bytes();
        let v = Y4mVideo::parse(&bytes).unwrap();
        assert_eq!(v.format, VideoFormat { width: 32, height: 18, fps: 25 });
        assert_eq!(v.frames.len(), 3);
        let mut cam = Y4mCamera::from_video(v, Pacing::Virtual { start_us: 1_000 });
        let lum: Vec<u8> = (0..5).map(|_| cam.next_frame().unwrap().y[0]).collect();
        assert_eq!(lum, vec![40, 90, 140, 40, 90]);
    }

    #[test]
    fn bad_y4m_is_an_error_not_a_panic() {
        let bytes = video().to_bytes();
        for cut in [0, 5, 20, 40, bytes.len() - 1] {
            assert!(Y4mVideo::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Y4mVideo::parse(b"YUV4MPEG2 W32 H18 C444\nFRAME\n").is_err());
        assert!(Y4mVideo::parse(b"YUV4MPEG2 W99999999999 H18\n").is_err());
    }

    #[test]
    fn wav_round_trips_and_loops() {
        let tone: Vec<f32> = (0..1_440).map(|i| (i as f32 / 10.0).sin() * 0.5).collect();
        let a = WavAudio::parse(&wav_bytes(&tone)).unwrap();
        assert_eq!(a.samples.len(), 1_440);
        assert!((a.samples[100] - tone[100]).abs() < 1e-3);
        let mut mic = WavMicrophone::from_audio(a, Pacing::Virtual { start_us: 0 });
        let f1 = mic.read_frame().unwrap();
        let f2 = mic.read_frame().unwrap();
        assert_eq!((f1.samples.len(), f2.capture_us), (960, 20_000));
        // The second frame wraps around after 480 samples.
        assert!((f2.samples[480] - tone[0]).abs() < 1e-3);
        for cut in [0, 11, 30, 44] {
            assert!(WavAudio::parse(&wav_bytes(&tone)[..cut]).is_err(), "cut at {cut}");
        }
    }
}
