//! Synthetic sources for machines without hardware and for tests.
//!
//! The synthetic camera draws a moving test pattern and writes the frame number
//! and capture time into a band of large black/white blocks at the top of the
//! picture, so a receiver can measure loss and glass-to-glass latency from
//! pixels alone ([`decode_embedded`]), even after lossy H.264 at low bitrates.

use super::{AudioSource, Pacing, VideoFormat, VideoSource};
use crate::error::{MediaError, Result};
use crate::frame::{AudioFrame, VideoFrame};
use crate::{AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};

/// Blocks per row of the embedded code.
const CODE_COLS: usize = 32;
/// Rows of blocks: 96 bits = 32-bit frame number + 56-bit capture time + CRC-8.
const CODE_ROWS: usize = 3;
const WHITE: u8 = 235;
const BLACK: u8 = 16;

/// Side of one code block in pixels for a picture width (even, at least 4).
fn cell_size(width: u32) -> usize {
    ((width as usize / CODE_COLS) & !1).max(4)
}

/// Height in pixels of the code band at the top of a picture of this width.
pub fn code_band_height(width: u32) -> usize {
    cell_size(width) * CODE_ROWS
}

fn crc8(bytes: &[u8]) -> u8 {
    // CRC-8/ATM, polynomial x^8 + x^2 + x + 1.
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 { (crc << 1) ^ 0x07 } else { crc << 1 };
        }
    }
    crc
}

fn code_bits(frame_no: u64, capture_us: u64) -> [bool; CODE_COLS * CODE_ROWS] {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&(frame_no as u32).to_be_bytes());
    bytes[4..11].copy_from_slice(&capture_us.to_be_bytes()[1..]);
    bytes[11] = crc8(&bytes[..11]);
    let mut bits = [false; CODE_COLS * CODE_ROWS];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
    }
    bits
}

/// Writes `frame_no` (low 32 bits) and `capture_us` (low 56 bits) into the top band of `frame`.
/// Does nothing if the picture is too small (narrower than 128 or band taller than half the height).
pub fn embed(frame: &mut VideoFrame, frame_no: u64, capture_us: u64) {
    let cell = cell_size(frame.width);
    if frame.width < 128 || cell * CODE_ROWS * 2 > frame.height as usize {
        return;
    }
    let bits = code_bits(frame_no, capture_us);
    for (i, &bit) in bits.iter().enumerate() {
        let (bx, by) = ((i % CODE_COLS) * cell, (i / CODE_COLS) * cell);
        let val = if bit { WHITE } else { BLACK };
        for row in by..by + cell {
            let start = row * frame.y_stride + bx;
            if let Some(px) = frame.y.get_mut(start..start + cell) {
                px.fill(val);
            }
        }
        for row in by / 2..(by + cell) / 2 {
            let start = row * frame.uv_stride + bx / 2;
            for plane in [&mut frame.u, &mut frame.v] {
                if let Some(px) = plane.get_mut(start..start + cell / 2) {
                    px.fill(128);
                }
            }
        }
    }
}

/// Reads back `(frame_no, capture_us)` written by [`embed`], or `None` when the
/// band is unreadable (checksum mismatch, picture too small).
pub fn decode_embedded(frame: &VideoFrame) -> Option<(u64, u64)> {
    let cell = cell_size(frame.width);
    if frame.width < 128 || cell * CODE_ROWS * 2 > frame.height as usize {
        return None;
    }
    let mut bytes = [0u8; 12];
    for i in 0..CODE_COLS * CODE_ROWS {
        let (bx, by) = ((i % CODE_COLS) * cell, (i / CODE_COLS) * cell);
        // Average the centre half of the block, away from blurred edges.
        let (lo, hi) = (cell / 4, cell - cell / 4);
        let (mut sum, mut n) = (0u32, 0u32);
        for y in by + lo..by + hi {
            for x in bx + lo..bx + hi {
                sum += u32::from(frame.luma(x, y));
                n += 1;
            }
        }
        if sum > 128 * n.max(1) {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    if crc8(&bytes[..11]) != bytes[11] {
        return None;
    }
    let frame_no = u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    let mut t = [0u8; 8];
    t[1..].copy_from_slice(&bytes[4..11]);
    Some((frame_no, u64::from_be_bytes(t)))
}

/// A camera that draws a moving test pattern with an embedded frame number and capture time.
#[derive(Debug)]
pub struct SyntheticCamera {
    format: VideoFormat,
    pacing: Pacing,
    next_no: u64,
    start_us: Option<u64>,
    /// Per-column and per-row wave tables (scaled by 1000) for a cheap smooth pattern.
    col_wave: Vec<i32>,
    row_wave: Vec<i32>,
}

impl SyntheticCamera {
    /// A camera with the given format. Fails on a zero or odd-free nonsense size.
    pub fn new(format: VideoFormat, pacing: Pacing) -> Result<Self> {
        if format.width < 16
            || format.height < 16
            || format.fps == 0
            || format.width > 7680
            || format.height > 4320
        {
            return Err(MediaError::UnsupportedFormat(format!(
                "synthetic camera {}x{}@{}",
                format.width, format.height, format.fps
            )));
        }
        let span = format.width.max(format.height) as usize * 2 + 4096;
        let col_wave =
            (0..span).map(|i| ((i as f64 * std::f64::consts::TAU / 160.0).sin() * 1000.0) as i32).collect();
        let row_wave =
            (0..span).map(|i| ((i as f64 * std::f64::consts::TAU / 120.0).cos() * 1000.0) as i32).collect();
        Ok(SyntheticCamera { format, pacing, next_no: 0, start_us: None, col_wave, row_wave })
    }

    /// Draws frame `frame_no` with the given capture time (pure: same inputs, same picture).
    pub fn render(&self, frame_no: u64, capture_us: u64) -> VideoFrame {
        let (w, h) = (self.format.width as usize, self.format.height as usize);
        let mut f = VideoFrame::new(self.format.width, self.format.height);
        let n = frame_no as usize;
        let span = self.col_wave.len();
        // Smooth moving waves in luma.
        for y in 0..h {
            let rw = self.row_wave[(y + span - (2 * n) % span) % span];
            let row = &mut f.y[y * w..y * w + w];
            for (x, px) in row.iter_mut().enumerate() {
                let cw = self.col_wave[(x + 3 * n) % span];
                *px = (128 + (cw * rw) / 16_667 + ((x + y) as i32 >> 4)).clamp(16, 235) as u8;
            }
        }
        // Camera-like detail: a drifting zone plate (rings of rising spatial frequency)
        // in the lower third, so the encoder has real texture to spend bits on.
        let zy0 = h * 2 / 3;
        let (cx, cy) = ((w / 2) as i64 + (n % 64) as i64 - 32, (zy0 + h) as i64 / 2);
        for y in zy0..h {
            let dy = y as i64 - cy;
            let row = &mut f.y[y * w..y * w + w];
            for (x, px) in row.iter_mut().enumerate() {
                let dx = x as i64 - cx;
                let phase = ((dx * dx + dy * dy) / 24) as usize + n * 3;
                let z = self.col_wave[phase % 160] / 25; // ±40
                *px = (i32::from(*px) + z).clamp(16, 235) as u8;
            }
        }
        // A bright square bouncing across the picture.
        let side = (h / 6).max(8);
        let period_x = 2 * (w - side);
        let period_y = 2 * (h - side);
        let tri = |t: usize, p: usize| {
            let t = t % p.max(1);
            if t <= p / 2 {
                t
            } else {
                p - t
            }
        };
        let (sx, sy) = (tri(n * 4, period_x), tri(n * 3, period_y));
        for y in sy..(sy + side).min(h) {
            f.y[y * w + sx..y * w + (sx + side).min(w)].fill(220);
        }
        // Slowly drifting chroma.
        let (cw, ch) = f.chroma_size();
        for y in 0..ch {
            for x in 0..cw {
                let u = 128 + self.col_wave[(2 * x + n) % span] / 40;
                let v = 128 + self.row_wave[(2 * y + 2 * n) % span] / 40;
                f.u[y * cw + x] = u.clamp(16, 240) as u8;
                f.v[y * cw + x] = v.clamp(16, 240) as u8;
            }
        }
        let (sxc, syc) = (sx / 2, sy / 2);
        for y in syc..(syc + side / 2).min(ch) {
            f.u[y * cw + sxc..y * cw + (sxc + side / 2).min(cw)].fill(90);
            f.v[y * cw + sxc..y * cw + (sxc + side / 2).min(cw)].fill(200);
        }
        embed(&mut f, frame_no, capture_us);
        f.frame_no = frame_no;
        f.capture_us = capture_us;
        f
    }
}

impl VideoSource for SyntheticCamera {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<VideoFrame> {
        let interval = self.format.frame_interval_us();
        let n = self.next_no;
        self.next_no += 1;
        let offset_us = match self.pacing {
            // Exact for any frame rate (the interval is rounded down).
            Pacing::Virtual { .. } => n * 1_000_000 / u64::from(self.format.fps),
            Pacing::RealTime => n * interval,
        };
        let capture_us = self.pacing.video_capture_us(&mut self.start_us, offset_us);
        Ok(self.render(n, capture_us))
    }
}

/// What a synthetic microphone produces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SyntheticSound {
    /// A continuous sine tone.
    Tone { freq_hz: f32, amplitude: f32 },
    /// Voice-like bursts (a harmonic-rich vowel with syllable modulation, 0.2–0.9 s)
    /// separated by silences (0.2–0.7 s), deterministic for a given seed.
    SpeechLike { seed: u64, amplitude: f32 },
    /// Digital silence.
    Silence,
}

/// A microphone producing a tone or speech-like bursts.
#[derive(Debug)]
pub struct SyntheticMicrophone {
    sound: SyntheticSound,
    pacing: Pacing,
    /// Index of the next sample.
    pos: u64,
    phase: f64,
    start_us: Option<u64>,
    rng: u64,
    /// Remaining samples of the current burst (>0) or silence (<=0 handled by `in_burst`).
    segment_left: u64,
    in_burst: bool,
    pitch_hz: f64,
}

impl SyntheticMicrophone {
    pub fn new(sound: SyntheticSound, pacing: Pacing) -> Self {
        let seed = match sound {
            SyntheticSound::SpeechLike { seed, .. } => seed,
            _ => 1,
        };
        SyntheticMicrophone {
            sound,
            pacing,
            pos: 0,
            phase: 0.0,
            start_us: None,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            segment_left: 0,
            in_burst: false,
            pitch_hz: 150.0,
        }
    }

    /// A 440 Hz tone at half scale, virtual pacing from t=0 (handy in tests).
    pub fn tone(freq_hz: f32) -> Self {
        Self::new(SyntheticSound::Tone { freq_hz, amplitude: 0.5 }, Pacing::Virtual { start_us: 0 })
    }

    /// Whether the most recent sample belonged to a speech burst (for DTX tests).
    pub fn in_burst(&self) -> bool {
        self.in_burst
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn rand_range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_rand() % (hi - lo).max(1)
    }

    /// Generates the next 960 samples without any pacing.
    pub fn generate(&mut self) -> Vec<f32> {
        let sr = f64::from(AUDIO_SAMPLE_RATE);
        let mut out = Vec::with_capacity(AUDIO_FRAME_SAMPLES);
        for _ in 0..AUDIO_FRAME_SAMPLES {
            let s = match self.sound {
                SyntheticSound::Silence => 0.0,
                SyntheticSound::Tone { freq_hz, amplitude } => {
                    self.phase = (self.phase + f64::from(freq_hz) / sr).fract();
                    (self.phase * std::f64::consts::TAU).sin() as f32 * amplitude
                }
                SyntheticSound::SpeechLike { amplitude, .. } => {
                    if self.segment_left == 0 {
                        self.in_burst = !self.in_burst;
                        self.segment_left = if self.in_burst {
                            self.pitch_hz = self.rand_range(110, 230) as f64;
                            self.rand_range(9_600, 43_200)
                        } else {
                            self.rand_range(9_600, 33_600)
                        };
                    }
                    self.segment_left -= 1;
                    if self.in_burst {
                        let t = self.pos as f64 / sr;
                        self.phase = (self.phase + self.pitch_hz / sr).fract();
                        let p = self.phase * std::f64::consts::TAU;
                        // Vowel-like: fundamental plus decaying harmonics, 4 Hz syllable envelope.
                        let v =
                            p.sin() + 0.6 * (2.0 * p).sin() + 0.4 * (3.0 * p).sin() + 0.2 * (5.0 * p).sin();
                        let env = 0.55 + 0.45 * (t * 4.0 * std::f64::consts::TAU).sin();
                        (v / 2.2 * env) as f32 * amplitude
                    } else {
                        0.0
                    }
                }
            };
            self.pos += 1;
            out.push(s);
        }
        out
    }
}

impl AudioSource for SyntheticMicrophone {
    fn read_frame(&mut self) -> Result<AudioFrame> {
        let offset_us = self.pos * 1_000_000 / u64::from(AUDIO_SAMPLE_RATE);
        let capture_us = self.pacing.audio_capture_us(&mut self.start_us, offset_us);
        let samples = self.generate();
        Ok(AudioFrame { samples, capture_us })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_code_round_trips_at_all_presets() {
        for fmt in [VideoFormat::P180, VideoFormat::P360, VideoFormat::P720] {
            let mut cam =
                SyntheticCamera::new(fmt, Pacing::Virtual { start_us: 1_763_900_000_000_000 }).unwrap();
            for _ in 0..3 {
                let f = cam.next_frame().unwrap();
                assert_eq!(decode_embedded(&f), Some((f.frame_no, f.capture_us)), "{fmt:?}");
            }
        }
    }

    #[test]
    fn corrupted_code_is_rejected_not_misread() {
        let cam = SyntheticCamera::new(VideoFormat::P360, Pacing::Virtual { start_us: 0 }).unwrap();
        let mut f = cam.render(77, 123_456);
        let cell = cell_size(f.width);
        // Flip one block.
        let v = f.luma(cell / 2, cell / 2);
        for y in 0..cell {
            for x in 0..cell {
                f.y[y * f.y_stride + x] = if v > 128 { BLACK } else { WHITE };
            }
        }
        assert_eq!(decode_embedded(&f), None);
    }

    #[test]
    fn pattern_moves_between_frames() {
        let cam = SyntheticCamera::new(VideoFormat::P360, Pacing::Virtual { start_us: 0 }).unwrap();
        let (a, b) = (cam.render(1, 0), cam.render(1, 0));
        assert_eq!(a, b, "rendering is deterministic");
        let cam = SyntheticCamera::new(VideoFormat::P360, Pacing::Virtual { start_us: 0 }).unwrap();
        let (a, b) = (cam.render(1, 0), cam.render(2, 0));
        let psnr = a.psnr_luma(&b).unwrap();
        assert!(psnr < 40.0, "frames should differ, psnr {psnr}");
    }

    #[test]
    fn virtual_pacing_timestamps() {
        let mut mic = SyntheticMicrophone::tone(440.0);
        let a = mic.read_frame().unwrap();
        let b = mic.read_frame().unwrap();
        assert_eq!((a.capture_us, b.capture_us), (0, 20_000));
        assert_eq!(a.samples.len(), AUDIO_FRAME_SAMPLES);
        assert!((a.level_dbov() - (-9.03)).abs() < 0.2, "{}", a.level_dbov());
    }

    #[test]
    fn speech_like_has_bursts_and_silences() {
        let mut mic = SyntheticMicrophone::new(
            SyntheticSound::SpeechLike { seed: 7, amplitude: 0.5 },
            Pacing::Virtual { start_us: 0 },
        );
        let (mut silent, mut loud) = (0, 0);
        for _ in 0..500 {
            let f = mic.read_frame().unwrap();
            if f.level_dbov() < -90.0 {
                silent += 1;
            } else if f.level_dbov() > -30.0 {
                loud += 1;
            }
        }
        assert!(silent > 100 && loud > 100, "silent {silent} loud {loud}");
    }
}
