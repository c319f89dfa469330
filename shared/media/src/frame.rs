//! Raw media frames: I420 video and 48 kHz mono audio.

use crate::error::{MediaError, Result};
use crate::AUDIO_FRAME_SAMPLES;

/// One I420 (YUV 4:2:0 planar, 8-bit) picture.
///
/// Planes may carry row padding: row `r` of the luma plane starts at
/// `r * y_stride`. Chroma planes are `ceil(width/2) x ceil(height/2)`.
/// [`VideoFrame::new`] creates tightly packed planes (`y_stride == width`).
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
    pub y_stride: usize,
    /// Stride of both chroma planes.
    pub uv_stride: usize,
    /// Capture time on the media clock ([`crate::clock::now_us`], µs).
    pub capture_us: u64,
    /// Frame counter of the source (0, 1, 2, ...).
    pub frame_no: u64,
}

impl std::fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("y_stride", &self.y_stride)
            .field("uv_stride", &self.uv_stride)
            .field("capture_us", &self.capture_us)
            .field("frame_no", &self.frame_no)
            .finish_non_exhaustive()
    }
}

impl VideoFrame {
    /// A black, tightly packed frame.
    pub fn new(width: u32, height: u32) -> Self {
        let (cw, ch) = chroma_size(width, height);
        VideoFrame {
            width,
            height,
            y: vec![16; width as usize * height as usize],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
            y_stride: width as usize,
            uv_stride: cw,
            capture_us: 0,
            frame_no: 0,
        }
    }

    /// Wraps planes, checking that their sizes match the strides and dimensions.
    #[allow(clippy::too_many_arguments)]
    pub fn from_planes(
        width: u32,
        height: u32,
        y: Vec<u8>,
        y_stride: usize,
        u: Vec<u8>,
        v: Vec<u8>,
        uv_stride: usize,
    ) -> Result<Self> {
        let f = VideoFrame { width, height, y, u, v, y_stride, uv_stride, capture_us: 0, frame_no: 0 };
        f.validate()?;
        Ok(f)
    }

    /// Checks plane sizes against dimensions and strides.
    pub fn validate(&self) -> Result<()> {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = chroma_size(self.width, self.height);
        if w == 0 || h == 0 {
            return Err(MediaError::InvalidFrame("zero width or height".into()));
        }
        if self.y_stride < w || self.uv_stride < cw {
            return Err(MediaError::InvalidFrame("stride smaller than row width".into()));
        }
        let need = |stride: usize, rows: usize, cols: usize| stride * (rows - 1) + cols;
        if self.y.len() < need(self.y_stride, h, w)
            || self.u.len() < need(self.uv_stride, ch, cw)
            || self.v.len() < need(self.uv_stride, ch, cw)
        {
            return Err(MediaError::InvalidFrame(format!(
                "plane sizes {}/{}/{} too small for {}x{}",
                self.y.len(),
                self.u.len(),
                self.v.len(),
                w,
                h
            )));
        }
        Ok(())
    }

    /// Chroma plane width and height.
    pub fn chroma_size(&self) -> (usize, usize) {
        chroma_size(self.width, self.height)
    }

    /// Luma sample at (x, y); 0 outside the picture.
    pub fn luma(&self, x: usize, y: usize) -> u8 {
        if x >= self.width as usize || y >= self.height as usize {
            return 0;
        }
        self.y.get(y * self.y_stride + x).copied().unwrap_or(0)
    }

    /// A tightly packed copy (strides equal to plane widths).
    pub fn to_packed(&self) -> VideoFrame {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = self.chroma_size();
        let pack = |src: &[u8], stride: usize, cols: usize, rows: usize| {
            let mut out = Vec::with_capacity(cols * rows);
            for r in 0..rows {
                let start = r * stride;
                out.extend_from_slice(src.get(start..start + cols).unwrap_or(&[]));
            }
            out.resize(cols * rows, 0);
            out
        };
        VideoFrame {
            width: self.width,
            height: self.height,
            y: pack(&self.y, self.y_stride, w, h),
            u: pack(&self.u, self.uv_stride, cw, ch),
            v: pack(&self.v, self.uv_stride, cw, ch),
            y_stride: w,
            uv_stride: cw,
            capture_us: self.capture_us,
            frame_no: self.frame_no,
        }
    }

    /// Half the width and height (rounded up), each output sample the mean of a 2x2 block.
    /// Used for the low-resolution simulcast encoding.
    pub fn downscale_half(&self) -> VideoFrame {
        fn half(src: &[u8], stride: usize, w: usize, h: usize, out: &mut [u8], ow: usize, oh: usize) {
            for oy in 0..oh {
                let (y0, y1) = (2 * oy, (2 * oy + 1).min(h - 1));
                for ox in 0..ow {
                    let (x0, x1) = (2 * ox, (2 * ox + 1).min(w - 1));
                    let at = |x: usize, y: usize| u32::from(src.get(y * stride + x).copied().unwrap_or(0));
                    let sum = at(x0, y0) + at(x1, y0) + at(x0, y1) + at(x1, y1);
                    out[oy * ow + ox] = ((sum + 2) / 4) as u8;
                }
            }
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let mut out = VideoFrame::new(self.width.div_ceil(2).max(1), self.height.div_ceil(2).max(1));
        let (ow, oh) = (out.width as usize, out.height as usize);
        half(&self.y, self.y_stride, w, h, &mut out.y, ow, oh);
        let (cw, ch) = self.chroma_size();
        let (ocw, och) = out.chroma_size();
        half(&self.u, self.uv_stride, cw, ch, &mut out.u, ocw, och);
        half(&self.v, self.uv_stride, cw, ch, &mut out.v, ocw, och);
        out.capture_us = self.capture_us;
        out.frame_no = self.frame_no;
        out
    }

    /// PSNR (dB) of the luma plane of `other` against `self`; `None` if sizes differ.
    /// Identical planes give `f64::INFINITY`.
    pub fn psnr_luma(&self, other: &VideoFrame) -> Option<f64> {
        if self.width != other.width || self.height != other.height {
            return None;
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let mut sse = 0u64;
        for r in 0..h {
            let a = self.y.get(r * self.y_stride..r * self.y_stride + w)?;
            let b = other.y.get(r * other.y_stride..r * other.y_stride + w)?;
            for (x, y) in a.iter().zip(b) {
                let d = i64::from(*x) - i64::from(*y);
                sse += (d * d) as u64;
            }
        }
        if sse == 0 {
            return Some(f64::INFINITY);
        }
        let mse = sse as f64 / (w * h) as f64;
        Some(10.0 * (255.0f64 * 255.0 / mse).log10())
    }
}

/// Chroma plane size for a given luma size (4:2:0, rounded up).
pub fn chroma_size(width: u32, height: u32) -> (usize, usize) {
    (width.div_ceil(2) as usize, height.div_ceil(2) as usize)
}

/// 20 ms of 48 kHz mono audio as `f32` samples in [-1.0, 1.0].
#[derive(Clone, Debug, PartialEq)]
pub struct AudioFrame {
    /// Exactly [`AUDIO_FRAME_SAMPLES`] (960) samples.
    pub samples: Vec<f32>,
    /// Capture time of the first sample on the media clock ([`crate::clock::now_us`], µs).
    pub capture_us: u64,
}

impl AudioFrame {
    /// 20 ms of silence.
    pub fn silence(capture_us: u64) -> Self {
        AudioFrame { samples: vec![0.0; AUDIO_FRAME_SAMPLES], capture_us }
    }

    /// Wraps samples, checking that there are exactly 960.
    pub fn new(samples: Vec<f32>, capture_us: u64) -> Result<Self> {
        if samples.len() != AUDIO_FRAME_SAMPLES {
            return Err(MediaError::InvalidFrame(format!(
                "audio frame has {} samples, expected {AUDIO_FRAME_SAMPLES}",
                samples.len()
            )));
        }
        Ok(AudioFrame { samples, capture_us })
    }

    /// From 16-bit PCM.
    pub fn from_i16(pcm: &[i16], capture_us: u64) -> Result<Self> {
        Self::new(pcm.iter().map(|&s| f32::from(s) / 32768.0).collect(), capture_us)
    }

    /// To 16-bit PCM (saturating).
    pub fn to_i16(&self) -> Vec<i16> {
        self.samples.iter().map(|&s| f32_to_i16(s)).collect()
    }

    /// Root-mean-square level in dBFS (full-scale sine ≈ -3 dBFS); -127 for silence.
    pub fn level_dbov(&self) -> f32 {
        let n = self.samples.len().max(1) as f32;
        let ms: f32 = self.samples.iter().map(|s| s * s).sum::<f32>() / n;
        if ms <= 1e-13 {
            return -127.0;
        }
        (10.0 * ms.log10()).max(-127.0)
    }
}

/// Converts one sample to i16 with saturation.
pub fn f32_to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_frame_validates_and_psnr_is_infinite_against_itself() {
        let f = VideoFrame::new(7, 5);
        assert!(f.validate().is_ok());
        assert_eq!(f.chroma_size(), (4, 3));
        assert_eq!(f.psnr_luma(&f), Some(f64::INFINITY));
    }

    #[test]
    fn short_planes_are_rejected() {
        let r = VideoFrame::from_planes(4, 4, vec![0; 15], 4, vec![0; 4], vec![0; 4], 2);
        assert!(r.is_err());
    }

    #[test]
    fn to_packed_removes_padding() {
        let mut f =
            VideoFrame::from_planes(2, 2, vec![1, 2, 9, 3, 4, 9], 3, vec![5, 9], vec![6, 9], 2).unwrap();
        f.frame_no = 3;
        let p = f.to_packed();
        assert_eq!(p.y, vec![1, 2, 3, 4]);
        assert_eq!(p.u, vec![5]);
        assert_eq!(p.frame_no, 3);
    }

    #[test]
    fn downscale_half_averages_blocks() {
        let mut f = VideoFrame::new(4, 2);
        f.y = vec![0, 4, 100, 100, 8, 12, 50, 50];
        f.frame_no = 9;
        let h = f.downscale_half();
        assert_eq!((h.width, h.height, h.y.clone(), h.frame_no), (2, 1, vec![6, 75], 9));
        assert!(h.validate().is_ok());
        let odd = VideoFrame::new(5, 3).downscale_half();
        assert_eq!((odd.width, odd.height), (3, 2));
        assert!(odd.validate().is_ok());
    }

    #[test]
    fn audio_frame_length_is_checked() {
        assert!(AudioFrame::new(vec![0.0; 959], 0).is_err());
        let f = AudioFrame::from_i16(&[16384; 960], 1).unwrap();
        assert!((f.level_dbov() - (-6.02)).abs() < 0.1);
        assert_eq!(f.to_i16()[0], 16384);
    }
}
