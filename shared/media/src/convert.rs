//! Pixel format conversions between what devices deliver and the engine's I420.
//!
//! Colour conversion is done by the `yuv` crate (yuvutils-rs, SIMD); MJPEG is decoded
//! with `zune-jpeg`. Only NV12 → I420 is done here, because it is a plane reshuffle
//! (de-interleaving the chroma plane) with no colour arithmetic.
//!
//! Every function checks buffer sizes against the stated dimensions and returns
//! [`MediaError::InvalidFrame`] instead of panicking, so it is safe on untrusted input.
//!
//! Colour model: BT.601, limited ("TV") range, which is what H.264 decoders assume
//! when the stream carries no colour description (openh264 writes none).

use yuv::{
    BufferStoreMut, YuvConversionMode, YuvPackedImage, YuvPlanarImage, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

const RANGE: YuvRange = YuvRange::Limited;
const MATRIX: YuvStandardMatrix = YuvStandardMatrix::Bt601;
const MODE: YuvConversionMode = YuvConversionMode::Balanced;

/// Packed pixel layouts a camera, screen or decoder may deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 3 bytes per pixel, R G B.
    Rgb24,
    /// 3 bytes per pixel, B G R.
    Bgr24,
    /// 1 byte per pixel, full-range grey (infrared and monochrome cameras).
    Gray8,
    /// 4 bytes per pixel, R G B A.
    Rgba,
    /// 4 bytes per pixel, B G R A (X11 and Windows screens, little-endian ARGB32).
    Bgra,
    /// Packed 4:2:2, Y0 U Y1 V (most USB webcams without compression).
    Yuyv,
    /// Semi-planar 4:2:0: Y plane then interleaved U V plane, both with `stride`.
    Nv12,
    /// Planar 4:2:0 (the engine's format), Y then U then V, packed.
    I420,
    /// One JPEG picture per frame (USB webcams at high resolutions).
    Mjpeg,
}

impl PixelFormat {
    /// Bytes per pixel of the first (or only) plane; `None` for compressed MJPEG.
    pub fn bytes_per_pixel(self) -> Option<usize> {
        match self {
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => Some(3),
            PixelFormat::Gray8 => Some(1),
            PixelFormat::Rgba | PixelFormat::Bgra => Some(4),
            PixelFormat::Yuyv => Some(2),
            PixelFormat::Nv12 | PixelFormat::I420 => Some(1),
            PixelFormat::Mjpeg => None,
        }
    }

    /// Minimum row stride in bytes for `width` pixels.
    pub fn min_stride(self, width: u32) -> usize {
        match self {
            // YUYV macropixels cover two pixels; odd widths still need a whole one.
            PixelFormat::Yuyv => width.div_ceil(2) as usize * 4,
            other => other.bytes_per_pixel().unwrap_or(0) * width as usize,
        }
    }
}

/// A borrowed picture in some packed format, as a device hands it over.
#[derive(Debug, Clone, Copy)]
pub struct RawImage<'a> {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per row of the first plane (0 means tightly packed).
    pub stride: usize,
    pub data: &'a [u8],
}

impl<'a> RawImage<'a> {
    /// A tightly packed image.
    pub fn packed(format: PixelFormat, width: u32, height: u32, data: &'a [u8]) -> Self {
        RawImage { format, width, height, stride: 0, data }
    }

    fn stride(&self) -> usize {
        if self.stride == 0 {
            self.format.min_stride(self.width)
        } else {
            self.stride
        }
    }
}

/// Converts any supported picture to a tightly packed I420 frame.
pub fn to_i420(img: &RawImage<'_>) -> Result<VideoFrame> {
    match img.format {
        PixelFormat::Mjpeg => mjpeg_to_i420(img.data),
        PixelFormat::I420 => i420_from_packed(img.data, img.width, img.height),
        _ => {
            let mut frame = new_frame(img.width, img.height)?;
            to_i420_into(img, &mut frame)?;
            Ok(frame)
        }
    }
}

/// Converts into an existing frame of the same size (no allocation on the hot path).
pub fn to_i420_into(img: &RawImage<'_>, out: &mut VideoFrame) -> Result<()> {
    if img.width != out.width || img.height != out.height {
        return Err(MediaError::InvalidFrame(format!(
            "source {}x{} does not match destination {}x{}",
            img.width, img.height, out.width, out.height
        )));
    }
    check_dims(img.width, img.height)?;
    out.validate()?;
    let stride = img.stride();
    let min_stride = img.format.min_stride(img.width);
    if stride < min_stride {
        return Err(MediaError::InvalidFrame(format!(
            "stride {stride} smaller than {min_stride} for {:?} width {}",
            img.format, img.width
        )));
    }
    let h = img.height as usize;
    let first_plane = stride * (h - 1) + min_stride;
    let needed = match img.format {
        // The interleaved chroma plane follows the luma plane with the same stride.
        PixelFormat::Nv12 => {
            stride * h + stride * (img.height.div_ceil(2) as usize - 1) + img.width.div_ceil(2) as usize * 2
        }
        _ => first_plane,
    };
    if img.data.len() < needed {
        return Err(MediaError::InvalidFrame(format!(
            "{:?} {}x{} needs {needed} bytes, got {}",
            img.format,
            img.width,
            img.height,
            img.data.len()
        )));
    }
    let stride_u32 =
        u32::try_from(stride).map_err(|_| MediaError::InvalidFrame("stride too large".into()))?;
    let mut planar = planar_mut(out)?;
    let r = match img.format {
        PixelFormat::Rgb24 => yuv::rgb_to_yuv420(&mut planar, img.data, stride_u32, RANGE, MATRIX, MODE),
        PixelFormat::Rgba => yuv::rgba_to_yuv420(&mut planar, img.data, stride_u32, RANGE, MATRIX, MODE),
        PixelFormat::Bgra => yuv::bgra_to_yuv420(&mut planar, img.data, stride_u32, RANGE, MATRIX, MODE),
        PixelFormat::Bgr24 => yuv::bgr_to_yuv420(&mut planar, img.data, stride_u32, RANGE, MATRIX, MODE),
        PixelFormat::Gray8 => {
            // Rare (IR cameras): expand to RGB and let the colour converter map the range.
            let (w, h) = (img.width as usize, img.height as usize);
            let mut rgb = Vec::with_capacity(w * h * 3);
            for r in 0..h {
                let row = img.data.get(r * stride..r * stride + w).unwrap_or(&[]);
                rgb.extend(row.iter().flat_map(|&g| [g, g, g]));
            }
            rgb.resize(w * h * 3, 0);
            yuv::rgb_to_yuv420(&mut planar, &rgb, img.width * 3, RANGE, MATRIX, MODE)
        }
        PixelFormat::Yuyv => {
            let packed = YuvPackedImage {
                yuy: img.data,
                yuy_stride: stride_u32,
                width: img.width,
                height: img.height,
            };
            yuv::yuyv422_to_yuv420(&mut planar, &packed)
        }
        PixelFormat::Nv12 => {
            drop(planar);
            nv12_planes_to_i420(img.data, stride, img.width, img.height, out);
            return Ok(());
        }
        PixelFormat::I420 | PixelFormat::Mjpeg => {
            return Err(MediaError::UnsupportedFormat(format!(
                "{:?} cannot be converted in place; use to_i420",
                img.format
            )))
        }
    };
    r.map_err(|e| MediaError::InvalidFrame(format!("colour conversion: {e}")))
}

/// Decodes one MJPEG (JPEG) picture into I420.
pub fn mjpeg_to_i420(jpeg: &[u8]) -> Result<VideoFrame> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(8192)
        .set_max_height(8192);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    let rgb = decoder.decode().map_err(|e| MediaError::InvalidFrame(format!("MJPEG decode: {e:?}")))?;
    let info =
        decoder.info().ok_or_else(|| MediaError::InvalidFrame("MJPEG decode: no image info".into()))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    to_i420(&RawImage::packed(PixelFormat::Rgb24, w, h, &rgb))
}

/// Converts an I420 frame to tightly packed RGBA (for display in the UI).
pub fn i420_to_rgba(frame: &VideoFrame) -> Result<Vec<u8>> {
    let mut rgba = vec![0u8; frame.width as usize * frame.height as usize * 4];
    i420_to_rgba_into(frame, &mut rgba)?;
    Ok(rgba)
}

/// Converts an I420 frame into a caller-provided RGBA buffer (`width * height * 4` bytes).
pub fn i420_to_rgba_into(frame: &VideoFrame, rgba: &mut [u8]) -> Result<()> {
    frame.validate()?;
    let need = frame.width as usize * frame.height as usize * 4;
    if rgba.len() < need {
        return Err(MediaError::InvalidFrame(format!("RGBA buffer has {} bytes, needs {need}", rgba.len())));
    }
    let planar = YuvPlanarImage {
        y_plane: &frame.y,
        y_stride: stride_u32(frame.y_stride)?,
        u_plane: &frame.u,
        u_stride: stride_u32(frame.uv_stride)?,
        v_plane: &frame.v,
        v_stride: stride_u32(frame.uv_stride)?,
        width: frame.width,
        height: frame.height,
    };
    yuv::yuv420_to_rgba(&planar, &mut rgba[..need], frame.width * 4, RANGE, MATRIX)
        .map_err(|e| MediaError::InvalidFrame(format!("colour conversion: {e}")))
}

fn check_dims(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return Err(MediaError::InvalidFrame(format!("unsupported picture size {width}x{height}")));
    }
    Ok(())
}

fn new_frame(width: u32, height: u32) -> Result<VideoFrame> {
    check_dims(width, height)?;
    Ok(VideoFrame::new(width, height))
}

fn stride_u32(s: usize) -> Result<u32> {
    u32::try_from(s).map_err(|_| MediaError::InvalidFrame("stride too large".into()))
}

fn planar_mut(frame: &mut VideoFrame) -> Result<YuvPlanarImageMut<'_, u8>> {
    Ok(YuvPlanarImageMut {
        y_stride: stride_u32(frame.y_stride)?,
        u_stride: stride_u32(frame.uv_stride)?,
        v_stride: stride_u32(frame.uv_stride)?,
        width: frame.width,
        height: frame.height,
        y_plane: BufferStoreMut::Borrowed(&mut frame.y),
        u_plane: BufferStoreMut::Borrowed(&mut frame.u),
        v_plane: BufferStoreMut::Borrowed(&mut frame.v),
    })
}

fn i420_from_packed(data: &[u8], width: u32, height: u32) -> Result<VideoFrame> {
    check_dims(width, height)?;
    let (cw, ch) = crate::frame::chroma_size(width, height);
    let ylen = width as usize * height as usize;
    let clen = cw * ch;
    let (Some(y), Some(u), Some(v)) =
        (data.get(..ylen), data.get(ylen..ylen + clen), data.get(ylen + clen..ylen + 2 * clen))
    else {
        return Err(MediaError::InvalidFrame(format!(
            "I420 {width}x{height} needs {} bytes, got {}",
            ylen + 2 * clen,
            data.len()
        )));
    };
    VideoFrame::from_planes(width, height, y.to_vec(), width as usize, u.to_vec(), v.to_vec(), cw)
}

/// NV12 → I420: copy luma rows, split interleaved chroma. Sizes were checked by the caller.
fn nv12_planes_to_i420(data: &[u8], stride: usize, width: u32, height: u32, out: &mut VideoFrame) {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = crate::frame::chroma_size(width, height);
    for r in 0..h {
        let (Some(src), Some(dst)) =
            (data.get(r * stride..r * stride + w), out.y.get_mut(r * out.y_stride..r * out.y_stride + w))
        else {
            return;
        };
        dst.copy_from_slice(src);
    }
    let uv_base = stride * h;
    for r in 0..ch {
        let start = uv_base + r * stride;
        let Some(src) = data.get(start..start + cw * 2) else { return };
        let row_u = r * out.uv_stride;
        for (c, pair) in src.chunks_exact(2).enumerate() {
            if let (Some(u), Some(v)) = (out.u.get_mut(row_u + c), out.v.get_mut(row_u + c)) {
                *u = pair[0];
                *v = pair[1];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RGB → I420 → RGBA comes back close to the source colour.
    fn roundtrip(rgb: [u8; 3]) -> [u8; 4] {
        let (w, h) = (16, 8);
        let data: Vec<u8> = (0..w * h).flat_map(|_| rgb).collect();
        let f = to_i420(&RawImage::packed(PixelFormat::Rgb24, w, h, &data)).unwrap();
        let back = i420_to_rgba(&f).unwrap();
        [back[0], back[1], back[2], back[3]]
    }

    #[test]
    fn rgb_roundtrip_keeps_colours() {
        for c in [[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [20, 200, 90]] {
            let b = roundtrip(c);
            for i in 0..3 {
                assert!((i32::from(b[i]) - i32::from(c[i])).abs() <= 4, "{c:?} came back as {b:?}");
            }
            assert_eq!(b[3], 255);
        }
    }

    #[test]
    fn bt601_limited_range_levels() {
        let white: Vec<u8> = vec![255; 4 * 4 * 4];
        let f = to_i420(&RawImage::packed(PixelFormat::Rgba, 4, 4, &white)).unwrap();
        assert!((i32::from(f.y[0]) - 235).abs() <= 1, "white luma {}", f.y[0]);
        assert!((i32::from(f.u[0]) - 128).abs() <= 1);
        let black: Vec<u8> = [0, 0, 0, 255].repeat(16);
        let f = to_i420(&RawImage::packed(PixelFormat::Bgra, 4, 4, &black)).unwrap();
        assert!((i32::from(f.y[0]) - 16).abs() <= 1, "black luma {}", f.y[0]);
    }

    #[test]
    fn bgra_and_rgba_differ_by_channel_order() {
        let red_rgba: Vec<u8> = [255, 0, 0, 255].repeat(16);
        let a = to_i420(&RawImage::packed(PixelFormat::Rgba, 4, 4, &red_rgba)).unwrap();
        let blue_bgra: Vec<u8> = [0, 0, 255, 255].repeat(16); // B=0, G=0, R=255: red
        let b = to_i420(&RawImage::packed(PixelFormat::Bgra, 4, 4, &blue_bgra)).unwrap();
        assert_eq!(a.y, b.y);
        assert_eq!(a.v, b.v);
        assert!(a.v[0] > 200, "red has high Cr");
    }

    #[test]
    fn yuyv_and_nv12_keep_luma_and_chroma() {
        // YUYV: Y ramps, U=90, V=200
        let (w, h) = (8u32, 4u32);
        let mut yuyv = Vec::new();
        for r in 0..h {
            for c in 0..w / 2 {
                yuyv.extend_from_slice(&[
                    (r * 16 + c * 2) as u8 + 16,
                    90,
                    (r * 16 + c * 2 + 1) as u8 + 16,
                    200,
                ]);
            }
        }
        let f = to_i420(&RawImage::packed(PixelFormat::Yuyv, w, h, &yuyv)).unwrap();
        assert_eq!(f.y[0], 16);
        assert_eq!(f.y[(w + 3) as usize], 16 + 16 + 3);
        assert!(f.u.iter().all(|&u| u == 90) && f.v.iter().all(|&v| v == 200));

        // NV12 with a padded stride.
        let stride = 10usize;
        let mut nv12 = vec![0u8; stride * 4 + stride * 2];
        for r in 0..4 {
            for c in 0..8 {
                nv12[r * stride + c] = (r * 8 + c) as u8;
            }
        }
        for r in 0..2 {
            for c in 0..4 {
                nv12[stride * 4 + r * stride + 2 * c] = 100 + c as u8;
                nv12[stride * 4 + r * stride + 2 * c + 1] = 150 + r as u8;
            }
        }
        let img = RawImage { format: PixelFormat::Nv12, width: 8, height: 4, stride, data: &nv12 };
        let f = to_i420(&img).unwrap();
        assert_eq!(f.y[9], 9);
        assert_eq!(f.u, vec![100, 101, 102, 103, 100, 101, 102, 103]);
        assert_eq!(f.v, vec![150, 150, 150, 150, 151, 151, 151, 151]);
    }

    #[test]
    fn short_or_odd_buffers_are_errors_not_panics() {
        assert!(to_i420(&RawImage::packed(PixelFormat::Rgb24, 16, 16, &[0; 100])).is_err());
        assert!(to_i420(&RawImage::packed(PixelFormat::Yuyv, 16, 16, &[0; 511])).is_err());
        assert!(to_i420(&RawImage::packed(PixelFormat::Nv12, 16, 16, &[0; 256])).is_err());
        assert!(to_i420(&RawImage::packed(PixelFormat::I420, 16, 16, &[0; 383])).is_err());
        assert!(to_i420(&RawImage::packed(PixelFormat::Rgba, 0, 16, &[])).is_err());
        let img = RawImage { format: PixelFormat::Rgba, width: 4, height: 4, stride: 8, data: &[0; 64] };
        assert!(to_i420(&img).is_err(), "stride below row size");
        assert!(mjpeg_to_i420(&[0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3]).is_err());
        assert!(mjpeg_to_i420(&[]).is_err());
    }

    #[test]
    fn odd_sizes_convert() {
        let data = vec![200u8; 7 * 5 * 3];
        let f = to_i420(&RawImage::packed(PixelFormat::Rgb24, 7, 5, &data)).unwrap();
        assert_eq!((f.width, f.height, f.u.len()), (7, 5, 4 * 3));
        let back = i420_to_rgba(&f).unwrap();
        assert_eq!(back.len(), 7 * 5 * 4);
        assert!((i32::from(back[4 * 34]) - 200).abs() <= 4);
    }
}
