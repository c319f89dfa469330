//! H.264 with openh264: a constrained-baseline encoder with temporal layers and a
//! decoder that reports when it needs a keyframe.
//!
//! The encoder talks to openh264 through `openh264-sys2` directly because the
//! safe wrapper fixes the temporal layer count to 1; everything unsafe is kept
//! in this file.
#![allow(unsafe_code)] // FFI to openh264; each block states its SAFETY argument.

use std::os::raw::{c_int, c_void};

use openh264::formats::YUVSource;
use openh264_sys2 as sys;

use clinicmeet_rtp::h264::{nal_type, AccessUnit};

use crate::capture::VideoFormat;
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// Resolution presets with their default frame rate and bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// 320x180, 15 fps, 150 kbit/s.
    P180,
    /// 640x360, 30 fps, 800 kbit/s.
    P360,
    /// 1280x720, 30 fps, 2.5 Mbit/s.
    P720,
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct H264Config {
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    pub bitrate_bps: u32,
    /// Frames between periodic keyframes; 0 = only the first and on demand.
    pub keyframe_interval: u32,
    /// Temporal layers, 1..=3 (2 = T0 at half rate + T1 non-reference frames).
    pub temporal_layers: u8,
    /// Limit each slice NAL to about this many bytes (`None`: one slice per frame).
    pub max_nal_size: Option<u32>,
    /// Let the rate control skip frames to hold the bitrate. openh264 caps the QP,
    /// so without skipping a detailed 360p picture cannot go much below ~400 kbit/s.
    pub allow_frame_skip: bool,
    /// Tune for screen content instead of camera.
    pub screen_content: bool,
}

impl H264Config {
    pub fn preset(p: Preset) -> Self {
        let (width, height, fps, bitrate_bps) = match p {
            Preset::P180 => (320, 180, 15.0, 150_000),
            Preset::P360 => (640, 360, 30.0, 800_000),
            Preset::P720 => (1280, 720, 30.0, 2_500_000),
        };
        H264Config {
            width,
            height,
            fps,
            bitrate_bps,
            keyframe_interval: 0,
            temporal_layers: 1,
            max_nal_size: None,
            allow_frame_skip: true,
            screen_content: false,
        }
    }

    /// Settings for a source format at a bitrate.
    pub fn for_format(f: VideoFormat, bitrate_bps: u32) -> Self {
        H264Config {
            width: f.width,
            height: f.height,
            fps: f.fps as f32,
            bitrate_bps,
            ..Self::preset(Preset::P360)
        }
    }

    fn validate(&self) -> Result<()> {
        if self.width < 16 || self.height < 16 || self.width > 3840 || self.height > 2160 {
            return Err(MediaError::InvalidArgument(format!("H.264 size {}x{}", self.width, self.height)));
        }
        if !(1..=4).contains(&self.temporal_layers) {
            return Err(MediaError::InvalidArgument("temporal layers must be 1..=4".into()));
        }
        if self.bitrate_bps < 10_000 || !(1.0..=120.0).contains(&self.fps) {
            return Err(MediaError::InvalidArgument("bitrate or frame rate out of range".into()));
        }
        Ok(())
    }
}

/// One NAL unit produced by the encoder (without start code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedNal {
    pub data: Vec<u8>,
    /// Temporal layer id (0 = base layer; parameter sets are 0).
    pub temporal_id: u8,
}

impl EncodedNal {
    pub fn nal_type(&self) -> u8 {
        self.data.first().map_or(0, |b| b & 0x1f)
    }
}

/// One encoded picture (an access unit).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncodedFrame {
    pub nals: Vec<EncodedNal>,
    /// An IDR picture (decodable on its own, with SPS/PPS in front).
    pub keyframe: bool,
    /// Temporal layer of the picture.
    pub temporal_id: u8,
    pub capture_us: u64,
    pub frame_no: u64,
}

impl EncodedFrame {
    /// The rate control dropped this frame: nothing to send.
    pub fn is_skipped(&self) -> bool {
        self.nals.is_empty()
    }
    /// Total payload bytes.
    pub fn size(&self) -> usize {
        self.nals.iter().map(|n| n.data.len()).sum()
    }
    /// Annex B byte stream of the access unit (start code before each NAL).
    pub fn to_annex_b(&self) -> Vec<u8> {
        annex_b(self.nals.iter().map(|n| n.data.as_slice()))
    }
}

/// What `clinicmeet_rtp::h264::H264RtpSender` packetizes.
impl AccessUnit for EncodedFrame {
    fn nal_units(&self) -> impl Iterator<Item = &[u8]> {
        self.nals.iter().map(|n| n.data.as_slice())
    }
    fn keyframe(&self) -> bool {
        self.keyframe
    }
    fn temporal_id(&self) -> u8 {
        self.temporal_id
    }
    fn capture_us(&self) -> u64 {
        self.capture_us
    }
}

/// Joins NAL units into an Annex B byte stream.
pub fn annex_b<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(n);
    }
    out
}

/// Splits an Annex B byte stream into NAL units (start codes removed).
pub fn split_annex_b(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &(_, body)) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |&(sc, _)| sc);
        while end > body && stream[end - 1] == 0 {
            end -= 1; // trailing zero of a 4-byte start code
        }
        if end > body {
            out.push(&stream[body..end]);
        }
    }
    out
}

type EncodeFn =
    unsafe extern "C" fn(*mut sys::ISVCEncoder, *const sys::SSourcePicture, *mut sys::SFrameBSInfo) -> c_int;
type SetOptionFn = unsafe extern "C" fn(*mut sys::ISVCEncoder, sys::ENCODER_OPTION, *mut c_void) -> c_int;

/// openh264 encoder, single-threaded.
pub struct H264Encoder {
    enc: *mut sys::ISVCEncoder,
    encode_frame: EncodeFn,
    set_option: SetOptionFn,
    force_intra: unsafe extern "C" fn(*mut sys::ISVCEncoder, bool) -> c_int,
    uninitialize: unsafe extern "C" fn(*mut sys::ISVCEncoder) -> c_int,
    info: Box<sys::SFrameBSInfo>,
    cfg: H264Config,
    first_capture_us: Option<u64>,
    frames: u64,
}

// SAFETY: the encoder instance is owned exclusively by this struct and only used through `&mut self`.
unsafe impl Send for H264Encoder {}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

fn enc_err(detail: impl Into<String>) -> MediaError {
    MediaError::Encoder { codec: "H.264", detail: detail.into() }
}

impl H264Encoder {
    pub fn new(cfg: H264Config) -> Result<Self> {
        cfg.validate()?;
        let mut enc: *mut sys::ISVCEncoder = std::ptr::null_mut();
        // SAFETY: WelsCreateSVCEncoder writes a valid encoder pointer or returns non-zero.
        let rc = unsafe { sys::source::APILoader::WelsCreateSVCEncoder(&mut enc) };
        if rc != 0 || enc.is_null() {
            return Err(enc_err(format!("WelsCreateSVCEncoder failed ({rc})")));
        }
        // SAFETY: `enc` points to a pointer to the encoder's vtable.
        let vtbl = unsafe { **enc };
        let (
            Some(encode_frame),
            Some(set_option),
            Some(force_intra),
            Some(uninitialize),
            Some(init_ext),
            Some(defaults),
        ) = (
            vtbl.EncodeFrame,
            vtbl.SetOption,
            vtbl.ForceIntraFrame,
            vtbl.Uninitialize,
            vtbl.InitializeExt,
            vtbl.GetDefaultParams,
        )
        else {
            // SAFETY: created above, not used afterwards.
            unsafe { sys::source::APILoader::WelsDestroySVCEncoder(enc) };
            return Err(enc_err("openh264 vtable incomplete"));
        };
        let mut this = H264Encoder {
            enc,
            encode_frame,
            set_option,
            force_intra,
            uninitialize,
            info: Box::default(),
            cfg,
            first_capture_us: None,
            frames: 0,
        };
        let mut params = sys::SEncParamExt::default();
        let mut trace: c_int = sys::WELS_LOG_QUIET as c_int;
        // SAFETY: valid encoder and a properly sized parameter struct; the trace level is
        // set first so initialisation does not print warnings to stderr.
        unsafe {
            (this.set_option)(enc, sys::ENCODER_OPTION_TRACE_LEVEL, &mut trace as *mut c_int as *mut c_void);
            defaults(enc, &mut params);
        }
        fill_params(&mut params, &cfg);
        // SAFETY: as above.
        let rc = unsafe { init_ext(enc, &params) };
        if rc != 0 {
            // Drop would call Uninitialize on an uninitialised encoder: destroy directly.
            let enc = std::mem::replace(&mut this.enc, std::ptr::null_mut());
            // SAFETY: created above, never initialised.
            unsafe { sys::source::APILoader::WelsDestroySVCEncoder(enc) };
            return Err(enc_err(format!("InitializeExt failed ({rc}) for {cfg:?}")));
        }
        let mut fmt: c_int = sys::videoFormatI420 as c_int;
        this.set_opt(sys::ENCODER_OPTION_TRACE_LEVEL, &mut trace as *mut c_int as *mut c_void)?;
        this.set_opt(sys::ENCODER_OPTION_DATAFORMAT, &mut fmt as *mut c_int as *mut c_void)?;
        Ok(this)
    }

    fn set_opt(&mut self, opt: sys::ENCODER_OPTION, value: *mut c_void) -> Result<()> {
        // SAFETY: `value` points to the type openh264 expects for `opt` (callers ensure it).
        let rc = unsafe { (self.set_option)(self.enc, opt, value) };
        if rc != 0 {
            return Err(enc_err(format!("SetOption({opt}) failed ({rc})")));
        }
        Ok(())
    }

    pub fn config(&self) -> &H264Config {
        &self.cfg
    }

    /// The next encoded frame will be an IDR keyframe.
    pub fn request_keyframe(&mut self) {
        // SAFETY: initialised encoder.
        unsafe { (self.force_intra)(self.enc, true) };
    }

    /// Changes the target bitrate while running.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        if bps < 10_000 {
            return Err(MediaError::InvalidArgument(format!("bitrate {bps} too low")));
        }
        let mut max = sys::SBitrateInfo { iLayer: sys::SPATIAL_LAYER_ALL, iBitrate: max_bitrate(bps) };
        let mut target = sys::SBitrateInfo { iLayer: sys::SPATIAL_LAYER_ALL, iBitrate: bps as c_int };
        // Raise the ceiling first when going up, lower the target first when going down.
        if bps > self.cfg.bitrate_bps {
            self.set_opt(sys::ENCODER_OPTION_MAX_BITRATE, &mut max as *mut _ as *mut c_void)?;
            self.set_opt(sys::ENCODER_OPTION_BITRATE, &mut target as *mut _ as *mut c_void)?;
        } else {
            self.set_opt(sys::ENCODER_OPTION_BITRATE, &mut target as *mut _ as *mut c_void)?;
            self.set_opt(sys::ENCODER_OPTION_MAX_BITRATE, &mut max as *mut _ as *mut c_void)?;
        }
        self.cfg.bitrate_bps = bps;
        Ok(())
    }

    /// Applies new settings (resolution, frame rate, layers) and starts with a keyframe.
    pub fn reconfigure(&mut self, cfg: H264Config) -> Result<()> {
        cfg.validate()?;
        let mut params = sys::SEncParamExt::default();
        fill_params(&mut params, &cfg);
        self.set_opt(sys::ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, &mut params as *mut _ as *mut c_void)?;
        self.cfg = cfg;
        self.request_keyframe();
        Ok(())
    }

    /// Encodes one frame. The frame's size must match the configuration.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<EncodedFrame> {
        if frame.width != self.cfg.width || frame.height != self.cfg.height {
            return Err(MediaError::InvalidFrame(format!(
                "frame {}x{} does not match encoder {}x{}",
                frame.width, frame.height, self.cfg.width, self.cfg.height
            )));
        }
        frame.validate()?;
        let first = *self.first_capture_us.get_or_insert(frame.capture_us);
        let ts_ms = frame.capture_us.saturating_sub(first) / 1000;
        let src = sys::SSourcePicture {
            iColorFormat: sys::videoFormatI420 as c_int,
            iStride: [frame.y_stride as c_int, frame.uv_stride as c_int, frame.uv_stride as c_int, 0],
            // openh264 only reads the source planes.
            pData: [
                frame.y.as_ptr().cast_mut(),
                frame.u.as_ptr().cast_mut(),
                frame.v.as_ptr().cast_mut(),
                std::ptr::null_mut(),
            ],
            iPicWidth: frame.width as c_int,
            iPicHeight: frame.height as c_int,
            uiTimeStamp: ts_ms as i64,
            bPsnrY: false,
            bPsnrU: false,
            bPsnrV: false,
        };
        // SAFETY: planes were validated against the dimensions and strides above.
        let rc = unsafe { (self.encode_frame)(self.enc, &src, &mut *self.info) };
        if rc != 0 {
            return Err(enc_err(format!("EncodeFrame failed ({rc})")));
        }
        self.frames += 1;
        let info = &*self.info;
        let mut out =
            EncodedFrame { capture_us: frame.capture_us, frame_no: frame.frame_no, ..Default::default() };
        if info.eFrameType == sys::videoFrameTypeSkip as c_int || info.eFrameType == 0 {
            return Ok(out);
        }
        out.keyframe = info.eFrameType == sys::videoFrameTypeIDR as c_int;
        let layers = usize::try_from(info.iLayerNum).unwrap_or(0).min(info.sLayerInfo.len());
        for layer in &info.sLayerInfo[..layers] {
            let count = usize::try_from(layer.iNalCount).unwrap_or(0);
            let mut offset = 0usize;
            for i in 0..count {
                // SAFETY: openh264 guarantees `iNalCount` lengths and a buffer holding them back to back.
                let nal = unsafe {
                    let len = usize::try_from(*layer.pNalLengthInByte.add(i)).unwrap_or(0);
                    let s = std::slice::from_raw_parts(layer.pBsBuf.add(offset), len);
                    offset += len;
                    s
                };
                let body = strip_start_code(nal);
                if body.is_empty() {
                    continue;
                }
                let t = body[0] & 0x1f;
                let is_vcl = t == nal_type::SLICE || t == nal_type::IDR;
                let temporal_id = if is_vcl { layer.uiTemporalId } else { 0 };
                if is_vcl {
                    out.temporal_id = out.temporal_id.max(temporal_id);
                }
                if t == nal_type::PREFIX {
                    continue; // SVC prefix NALs are useless to an AVC decoder
                }
                out.nals.push(EncodedNal { data: body.to_vec(), temporal_id });
            }
        }
        Ok(out)
    }
}

fn max_bitrate(bps: u32) -> c_int {
    (u64::from(bps) * 3 / 2).min(i32::MAX as u64) as c_int
}

fn fill_params(p: &mut sys::SEncParamExt, cfg: &H264Config) {
    p.iUsageType =
        if cfg.screen_content { sys::SCREEN_CONTENT_REAL_TIME } else { sys::CAMERA_VIDEO_REAL_TIME };
    p.iPicWidth = cfg.width as c_int;
    p.iPicHeight = cfg.height as c_int;
    p.iTargetBitrate = cfg.bitrate_bps as c_int;
    p.iMaxBitrate = max_bitrate(cfg.bitrate_bps);
    p.iRCMode = sys::RC_BITRATE_MODE;
    p.fMaxFrameRate = cfg.fps;
    p.iTemporalLayerNum = c_int::from(cfg.temporal_layers);
    p.iSpatialLayerNum = 1;
    p.uiIntraPeriod = cfg.keyframe_interval;
    p.eSpsPpsIdStrategy = sys::CONSTANT_ID;
    p.bPrefixNalAddingCtrl = false;
    p.bEnableFrameSkip = cfg.allow_frame_skip;
    p.iMultipleThreadIdc = 1;
    p.iEntropyCodingModeFlag = 0;
    p.bEnableLongTermReference = false;
    p.iLoopFilterDisableIdc = 0;
    p.bEnableDenoise = false;
    p.bEnableSceneChangeDetect = true;
    p.bEnableAdaptiveQuant = true;
    p.bEnableBackgroundDetection = true;
    p.uiMaxNalSize = cfg.max_nal_size.unwrap_or(0);
    let l = &mut p.sSpatialLayers[0];
    l.iVideoWidth = cfg.width as c_int;
    l.iVideoHeight = cfg.height as c_int;
    l.fFrameRate = cfg.fps;
    l.iSpatialBitrate = cfg.bitrate_bps as c_int;
    l.iMaxSpatialBitrate = max_bitrate(cfg.bitrate_bps);
    l.uiProfileIdc = sys::PRO_BASELINE;
    match cfg.max_nal_size {
        Some(n) => {
            l.sSliceArgument.uiSliceMode = sys::SM_SIZELIMITED_SLICE;
            l.sSliceArgument.uiSliceSizeConstraint = n;
        }
        None => {
            l.sSliceArgument.uiSliceMode = sys::SM_SINGLE_SLICE;
            l.sSliceArgument.uiSliceNum = 1;
        }
    }
}

fn strip_start_code(nal: &[u8]) -> &[u8] {
    let zeros = nal.iter().take(4).take_while(|&&b| b == 0).count();
    if zeros >= 2 && nal.get(zeros) == Some(&1) {
        &nal[zeros + 1..]
    } else {
        nal
    }
}

impl Drop for H264Encoder {
    fn drop(&mut self) {
        if self.enc.is_null() {
            return;
        }
        // SAFETY: initialised encoder owned by us, not used after this.
        unsafe {
            (self.uninitialize)(self.enc);
            sys::source::APILoader::WelsDestroySVCEncoder(self.enc);
        }
    }
}

/// What the decoder made of an access unit.
#[derive(Debug)]
pub enum DecodeOutcome {
    /// A picture (capture time and frame number are left to the caller).
    Frame(VideoFrame),
    /// Accepted, no picture yet (parameter sets only, or a frame the decoder holds back).
    NoFrame,
    /// Undecodable or references missing: send a keyframe request (PLI). Pictures are
    /// withheld until a keyframe arrives.
    NeedsKeyframe,
}

/// openh264 decoder fed whole access units.
pub struct H264Decoder {
    dec: openh264::decoder::Decoder,
    needs_keyframe: bool,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder").field("needs_keyframe", &self.needs_keyframe).finish_non_exhaustive()
    }
}

/// Whether an access unit (given as NAL units) starts an IDR picture.
pub fn contains_idr<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> bool {
    nals.into_iter().any(|n| n.first().is_some_and(|b| b & 0x1f == nal_type::IDR))
}

impl H264Decoder {
    pub fn new() -> Result<Self> {
        let dec = openh264::decoder::Decoder::new()
            .map_err(|e| MediaError::Decoder { codec: "H.264", detail: e.to_string() })?;
        Ok(H264Decoder { dec, needs_keyframe: true })
    }

    /// Whether the decoder waits for a keyframe.
    pub fn needs_keyframe(&self) -> bool {
        self.needs_keyframe
    }

    /// Tells the decoder that a frame was lost before reaching it: it will wait for a keyframe.
    pub fn frame_lost(&mut self) {
        self.needs_keyframe = true;
    }

    /// Decodes one access unit given as NAL units (no start codes).
    pub fn decode_nals<'a>(&mut self, nals: impl IntoIterator<Item = &'a [u8]> + Clone) -> DecodeOutcome {
        if self.needs_keyframe && !contains_idr(nals.clone()) {
            return DecodeOutcome::NeedsKeyframe;
        }
        self.decode_annex_b_checked(&annex_b(nals))
    }

    /// Decodes one access unit given as an Annex B byte stream.
    pub fn decode_annex_b(&mut self, au: &[u8]) -> DecodeOutcome {
        if self.needs_keyframe && !contains_idr(split_annex_b(au)) {
            return DecodeOutcome::NeedsKeyframe;
        }
        self.decode_annex_b_checked(au)
    }

    fn decode_annex_b_checked(&mut self, au: &[u8]) -> DecodeOutcome {
        match self.dec.decode(au) {
            Ok(Some(yuv)) => {
                self.needs_keyframe = false;
                let (w, h) = yuv.dimensions();
                let (ys, us, _) = yuv.strides();
                let mut f = VideoFrame::new(w as u32, h as u32);
                let (cw, ch) = f.chroma_size();
                copy_plane(&mut f.y, yuv.y(), ys, w, h);
                copy_plane(&mut f.u, yuv.u(), us, cw, ch);
                copy_plane(&mut f.v, yuv.v(), us, cw, ch);
                DecodeOutcome::Frame(f)
            }
            Ok(None) => {
                if contains_idr(split_annex_b(au)) {
                    self.needs_keyframe = false;
                }
                DecodeOutcome::NoFrame
            }
            Err(_) => {
                self.needs_keyframe = true;
                DecodeOutcome::NeedsKeyframe
            }
        }
    }
}

fn copy_plane(dst: &mut [u8], src: &[u8], stride: usize, cols: usize, rows: usize) {
    for r in 0..rows {
        let (Some(d), Some(s)) =
            (dst.get_mut(r * cols..(r + 1) * cols), src.get(r * stride..r * stride + cols))
        else {
            return;
        };
        d.copy_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::synthetic::{decode_embedded, SyntheticCamera};
    use crate::capture::{Pacing, VideoSource};

    fn camera(fmt: VideoFormat) -> SyntheticCamera {
        SyntheticCamera::new(fmt, Pacing::Virtual { start_us: 1_700_000_000_000_000 }).unwrap()
    }

    #[test]
    fn encode_decode_round_trip_with_embedded_code() {
        let mut cam = camera(VideoFormat::P360);
        let mut enc = H264Encoder::new(H264Config::preset(Preset::P360)).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut psnr = 0.0;
        for i in 0..30 {
            let src = cam.next_frame().unwrap();
            let e = enc.encode(&src).unwrap();
            assert_eq!(e.keyframe, i == 0);
            match dec.decode_nals(e.nals.iter().map(|n| n.data.as_slice())) {
                DecodeOutcome::Frame(f) => {
                    psnr += src.psnr_luma(&f).unwrap();
                    assert_eq!(decode_embedded(&f), Some((src.frame_no, src.capture_us)));
                }
                other => panic!("frame {i}: {other:?}"),
            }
        }
        assert!(psnr / 30.0 > 32.0, "psnr {}", psnr / 30.0);
    }

    #[test]
    fn embedded_code_survives_300_kbps() {
        for fmt in [VideoFormat::P360, VideoFormat { fps: 30, ..VideoFormat::P180 }] {
            let mut cam = camera(fmt);
            // No frame skipping: every frame is coded at the low rate (QP near its cap).
            let cfg = H264Config { allow_frame_skip: false, ..H264Config::for_format(fmt, 300_000) };
            let mut enc = H264Encoder::new(cfg).unwrap();
            let mut dec = H264Decoder::new().unwrap();
            let mut read = 0;
            for _ in 0..60 {
                let src = cam.next_frame().unwrap();
                let e = enc.encode(&src).unwrap();
                if let DecodeOutcome::Frame(f) = dec.decode_nals(e.nals.iter().map(|n| n.data.as_slice())) {
                    assert_eq!(decode_embedded(&f), Some((src.frame_no, src.capture_us)), "{fmt:?}");
                    read += 1;
                }
            }
            assert_eq!(read, 60);
        }
    }

    #[test]
    fn keyframe_on_demand_and_periodic() {
        let mut cam = camera(VideoFormat::P180);
        let mut cfg = H264Config::preset(Preset::P180);
        cfg.keyframe_interval = 10;
        let mut enc = H264Encoder::new(cfg).unwrap();
        let mut keys = vec![];
        for i in 0..25 {
            if i == 4 {
                enc.request_keyframe();
            }
            if enc.encode(&cam.next_frame().unwrap()).unwrap().keyframe {
                keys.push(i);
            }
        }
        assert!(keys.contains(&0) && keys.contains(&4), "{keys:?}");
        // Periodic keyframes: never more than the interval apart after the forced one.
        assert!(keys.windows(2).all(|w| w[1] - w[0] <= 10) && *keys.last().unwrap() >= 15, "{keys:?}");
    }

    #[test]
    fn temporal_layers_are_reported_and_top_layer_is_droppable() {
        let mut cam = camera(VideoFormat::P360);
        let mut cfg = H264Config::preset(Preset::P360);
        cfg.temporal_layers = 2;
        let mut enc = H264Encoder::new(cfg).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut tids = vec![];
        let mut decoded = 0;
        for _ in 0..30 {
            let src = cam.next_frame().unwrap();
            let e = enc.encode(&src).unwrap();
            tids.push(e.temporal_id);
            if e.temporal_id > 0 {
                continue; // thinned by the relay
            }
            match dec.decode_nals(e.nals.iter().map(|n| n.data.as_slice())) {
                DecodeOutcome::Frame(f) => {
                    decoded += 1;
                    assert!(src.psnr_luma(&f).unwrap() > 30.0);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(tids.iter().filter(|&&t| t == 1).count(), 15, "{tids:?}");
        assert_eq!(decoded, 15);
    }

    #[test]
    fn bitrate_change_while_running_changes_output_size() {
        let mut cam = camera(VideoFormat::P360);
        let mut enc = H264Encoder::new(H264Config::preset(Preset::P360)).unwrap();
        // Bytes in the second of two seconds (the rate control settles in the first).
        let mut size = |enc: &mut H264Encoder| {
            (0..60).map(|_| enc.encode(&cam.next_frame().unwrap()).unwrap().size()).skip(30).sum::<usize>()
        };
        let high = size(&mut enc);
        enc.set_bitrate(200_000).unwrap();
        let low = size(&mut enc);
        let low2 = size(&mut enc);
        eprintln!(
            "800k: {} kbit/s, 200k: {} then {} kbit/s",
            high * 8 / 1000,
            low * 8 / 1000,
            low2 * 8 / 1000
        );
        assert!((700_000..=900_000).contains(&(high * 8)), "high {high}");
        assert!(low2 * 8 < 300_000, "low {low} then {low2}");
    }

    #[test]
    fn decoder_asks_for_keyframe_after_loss_and_recovers() {
        let mut cam = camera(VideoFormat::P180);
        let mut enc = H264Encoder::new(H264Config::preset(Preset::P180)).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let frames: Vec<_> = (0..10).map(|_| enc.encode(&cam.next_frame().unwrap()).unwrap()).collect();
        assert!(matches!(
            dec.decode_nals(frames[0].nals.iter().map(|n| n.data.as_slice())),
            DecodeOutcome::Frame(_)
        ));
        // Frame 1 lost; the receiver tells the decoder.
        dec.frame_lost();
        assert!(matches!(
            dec.decode_nals(frames[2].nals.iter().map(|n| n.data.as_slice())),
            DecodeOutcome::NeedsKeyframe
        ));
        enc.request_keyframe();
        let key = enc.encode(&cam.next_frame().unwrap()).unwrap();
        assert!(key.keyframe);
        assert!(matches!(
            dec.decode_nals(key.nals.iter().map(|n| n.data.as_slice())),
            DecodeOutcome::Frame(_)
        ));
        // Garbage is reported, not a panic.
        assert!(matches!(
            dec.decode_annex_b(&[0, 0, 0, 1, 0x65, 0xff, 0x00, 0x13]),
            DecodeOutcome::NeedsKeyframe | DecodeOutcome::NoFrame
        ));
    }

    #[test]
    fn annex_b_split_round_trip() {
        let nals: Vec<&[u8]> = vec![&[0x67, 1, 2], &[0x68, 3], &[0x65, 0, 0, 5]];
        let s = annex_b(nals.iter().copied());
        assert_eq!(split_annex_b(&s), nals);
    }
}
