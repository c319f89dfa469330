//! Real cameras through `nokhwa` (Video4Linux on Linux, AVFoundation on macOS,
//! Media Foundation on Windows), delivering I420 frames.
//!
//! Opening picks the camera mode (resolution, frame rate, pixel format) nearest to the
//! [`VideoFormat`] asked for ([`choose_mode`]), and converts whatever the camera sends
//! (YUYV, NV12, MJPEG, RGB, BGR, grey) to I420 with [`crate::convert`].
//!
//! No camera present: [`list_cameras`] returns an empty list and [`Camera::open`]
//! returns [`MediaError::DeviceNotFound`] with `kind: Camera`; never a panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use nokhwa::utils::{CameraFormat, FrameFormat, RequestedFormat, RequestedFormatType};

use super::{DeviceInfo, DeviceKind, VideoFormat, VideoSource};
use crate::convert::{self, PixelFormat, RawImage};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// Every frame format we can convert.
const ACCEPTED: &[FrameFormat] = &[
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::MJPEG,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
    FrameFormat::GRAY,
];

/// One mode a camera offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraMode {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub pixel: CameraPixel,
}

/// Pixel formats cameras deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CameraPixel {
    Yuyv,
    Nv12,
    Mjpeg,
    Rgb,
    Bgr,
    Gray,
}

impl CameraPixel {
    fn from_nokhwa(f: FrameFormat) -> Self {
        match f {
            FrameFormat::YUYV => CameraPixel::Yuyv,
            FrameFormat::NV12 => CameraPixel::Nv12,
            FrameFormat::MJPEG => CameraPixel::Mjpeg,
            FrameFormat::RAWRGB => CameraPixel::Rgb,
            FrameFormat::RAWBGR => CameraPixel::Bgr,
            FrameFormat::GRAY => CameraPixel::Gray,
        }
    }

    /// Small preference among formats at equal size and rate: raw YUV needs the least
    /// work, MJPEG needs a JPEG decode.
    fn cost(self) -> f64 {
        match self {
            CameraPixel::Nv12 | CameraPixel::Yuyv => 0.0,
            CameraPixel::Rgb | CameraPixel::Bgr => 0.02,
            CameraPixel::Mjpeg => 0.05,
            CameraPixel::Gray => 0.5,
        }
    }
}

/// Picks the mode nearest to `want`: size first (area and aspect ratio, on a log
/// scale, so 640x480 is as far from 1280x720 as 2560x1440 is), then frame rate, then
/// the cheapest pixel format. Slightly prefers modes at or above the wanted size, since
/// scaling down looks better than up. `None` if `modes` is empty.
pub fn choose_mode(modes: &[CameraMode], want: VideoFormat) -> Option<CameraMode> {
    let ln = |x: f64| x.max(1e-9).ln();
    let want_area = f64::from(want.width.max(1)) * f64::from(want.height.max(1));
    let want_aspect = f64::from(want.width.max(1)) / f64::from(want.height.max(1));
    let score = |m: &CameraMode| {
        let area = f64::from(m.width.max(1)) * f64::from(m.height.max(1));
        let aspect = f64::from(m.width.max(1)) / f64::from(m.height.max(1));
        let size = ln(area / want_area);
        let size = if size < 0.0 { -size * 1.2 } else { size };
        let fps = ln(f64::from(m.fps.max(1)) / f64::from(want.fps.max(1)));
        let fps = if fps < 0.0 { -fps * 1.5 } else { fps * 0.5 };
        size * 4.0 + (ln(aspect / want_aspect)).abs() * 2.0 + fps + m.pixel.cost()
    };
    modes.iter().min_by(|a, b| score(a).partial_cmp(&score(b)).unwrap_or(std::cmp::Ordering::Equal)).copied()
}

/// Cameras present on this machine. Empty when there are none.
pub fn list_cameras() -> Result<Vec<DeviceInfo>> {
    Ok(query_cameras()?
        .into_iter()
        .map(|c| DeviceInfo { id: c.index().as_string(), name: c.human_name(), kind: DeviceKind::Camera })
        .collect())
}

fn query_cameras() -> Result<Vec<nokhwa::utils::CameraInfo>> {
    let backend = nokhwa::native_api_backend().ok_or_else(|| MediaError::DeviceNotFound {
        kind: DeviceKind::Camera,
        detail: format!("no camera backend for {}", std::env::consts::OS),
    })?;
    match nokhwa::query(backend) {
        Ok(list) => Ok(list),
        // Video4Linux reports a missing /dev/video* as an error on some systems.
        Err(e) => Err(MediaError::DeviceNotFound {
            kind: DeviceKind::Camera,
            detail: format!("camera enumeration failed: {e}"),
        }),
    }
}

/// A camera streaming I420 frames.
///
/// `nokhwa::Camera` is not `Send`, so a capture thread owns it: it opens the device,
/// reports the chosen mode back, then converts frames and hands them over a one-slot
/// channel (a slow consumer gets the newest frames, not a growing backlog).
pub struct Camera {
    frames: mpsc::Receiver<Result<VideoFrame>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    info: DeviceInfo,
    mode: CameraMode,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera").field("info", &self.info).field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Camera {
    /// Opens the camera with id `id` (from [`list_cameras`]) or the first camera when
    /// `None`, in the mode nearest to `want`, and starts streaming.
    pub fn open(id: Option<&str>, want: VideoFormat) -> Result<Self> {
        let cameras = query_cameras()?;
        let info = match id {
            None => cameras.first().cloned().ok_or_else(|| MediaError::DeviceNotFound {
                kind: DeviceKind::Camera,
                detail: "no camera is connected".into(),
            })?,
            Some(id) => cameras.iter().find(|c| c.index().as_string() == id).cloned().ok_or_else(|| {
                let known: Vec<String> = cameras.iter().map(|c| c.index().as_string()).collect();
                MediaError::DeviceNotFound {
                    kind: DeviceKind::Camera,
                    detail: if known.is_empty() {
                        format!("no camera with id {id:?}: no camera is connected")
                    } else {
                        format!("no camera with id {id:?} (present: {})", known.join(", "))
                    },
                }
            })?,
        };
        let device =
            DeviceInfo { id: info.index().as_string(), name: info.human_name(), kind: DeviceKind::Camera };
        let (opened_tx, opened_rx) = mpsc::channel::<Result<CameraMode>>();
        let (frame_tx, frames) = mpsc::sync_channel::<Result<VideoFrame>>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("camera".into())
            .spawn(move || capture_thread(info, want, opened_tx, frame_tx, thread_stop))
            .map_err(|e| MediaError::Device {
                kind: DeviceKind::Camera,
                detail: format!("cannot start capture thread: {e}"),
            })?;
        let mode = match opened_rx.recv() {
            Ok(Ok(mode)) => mode,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(MediaError::Device {
                    kind: DeviceKind::Camera,
                    detail: "capture thread ended".into(),
                });
            }
        };
        Ok(Camera { frames, stop, thread: Some(thread), info: device, mode })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The mode the camera runs in (may differ from what was asked).
    pub fn mode(&self) -> CameraMode {
        self.mode
    }
}

fn open_nokhwa(info: &nokhwa::utils::CameraInfo, want: VideoFormat) -> Result<(nokhwa::Camera, CameraMode)> {
    let dev_err = |what: &str, e: nokhwa::NokhwaError| MediaError::Device {
        kind: DeviceKind::Camera,
        detail: format!("{what} {}: {e}", info.human_name()),
    };
    let any = RequestedFormat::with_formats(RequestedFormatType::None, ACCEPTED);
    let mut cam = nokhwa::Camera::new(info.index().clone(), any).map_err(|e| dev_err("cannot open", e))?;
    let modes: Vec<CameraMode> = cam
        .compatible_camera_formats()
        .map_err(|e| dev_err("cannot list modes of", e))?
        .into_iter()
        .filter(|f| ACCEPTED.contains(&f.format()))
        .map(|f| CameraMode {
            width: f.width(),
            height: f.height(),
            fps: f.frame_rate(),
            pixel: CameraPixel::from_nokhwa(f.format()),
        })
        .collect();
    let mode = choose_mode(&modes, want).ok_or_else(|| {
        MediaError::UnsupportedFormat(format!("camera {} offers no usable mode", info.human_name()))
    })?;
    let fourcc = ACCEPTED
        .iter()
        .copied()
        .find(|f| CameraPixel::from_nokhwa(*f) == mode.pixel)
        .unwrap_or(FrameFormat::YUYV);
    let exact = CameraFormat::new_from(mode.width, mode.height, fourcc, mode.fps);
    let formats = [fourcc];
    cam.set_camera_requset(RequestedFormat::with_formats(RequestedFormatType::Exact(exact), &formats))
        .map_err(|e| dev_err("cannot set mode on", e))?;
    cam.open_stream().map_err(|e| dev_err("cannot start stream of", e))?;
    Ok((cam, mode))
}

fn capture_thread(
    info: nokhwa::utils::CameraInfo,
    want: VideoFormat,
    opened: mpsc::Sender<Result<CameraMode>>,
    frames: mpsc::SyncSender<Result<VideoFrame>>,
    stop: Arc<AtomicBool>,
) {
    let (mut cam, mode) = match open_nokhwa(&info, want) {
        Ok(x) => x,
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    if opened.send(Ok(mode)).is_err() {
        return;
    }
    let name = info.human_name();
    let mut frame_no = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let result = cam
            .frame()
            .map_err(|e| MediaError::Device {
                kind: DeviceKind::Camera,
                detail: format!("capture from {name}: {e}"),
            })
            .and_then(|buf| {
                let capture_us = crate::clock::now_us();
                let res = buf.resolution();
                let pixel = CameraPixel::from_nokhwa(buf.source_frame_format());
                let mut frame = camera_buffer_to_i420(pixel, res.width(), res.height(), buf.buffer())?;
                frame.capture_us = capture_us;
                frame.frame_no = frame_no;
                frame_no += 1;
                Ok(frame)
            });
        let fatal = matches!(result, Err(MediaError::Device { .. }));
        match frames.try_send(result) {
            Ok(()) | Err(mpsc::TrySendError::Full(_)) => {}
            Err(mpsc::TrySendError::Disconnected(_)) => break,
        }
        if fatal {
            break;
        }
    }
    let _ = cam.stop_stream();
}

impl VideoSource for Camera {
    fn format(&self) -> VideoFormat {
        VideoFormat { width: self.mode.width, height: self.mode.height, fps: self.mode.fps }
    }

    fn next_frame(&mut self) -> Result<VideoFrame> {
        self.frames.recv().map_err(|_| MediaError::Device {
            kind: DeviceKind::Camera,
            detail: format!("{} stopped delivering frames", self.info.name),
        })?
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock a thread waiting to hand over a frame, then wait for it to close the device.
        while self.frames.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Converts one camera buffer to I420, inferring the row stride from the buffer size
/// (drivers may pad rows).
pub fn camera_buffer_to_i420(pixel: CameraPixel, width: u32, height: u32, data: &[u8]) -> Result<VideoFrame> {
    let h = height.max(1) as usize;
    let stride_for = |fmt: PixelFormat, rows: usize| {
        let min = fmt.min_stride(width);
        let s = data.len() / rows.max(1);
        if s >= min {
            s
        } else {
            min
        }
    };
    match pixel {
        CameraPixel::Mjpeg => convert::mjpeg_to_i420(data),
        CameraPixel::Yuyv => {
            let stride = stride_for(PixelFormat::Yuyv, h);
            convert::to_i420(&RawImage { format: PixelFormat::Yuyv, width, height, stride, data })
        }
        CameraPixel::Nv12 => {
            let stride = stride_for(PixelFormat::Nv12, h + height.div_ceil(2) as usize);
            convert::to_i420(&RawImage { format: PixelFormat::Nv12, width, height, stride, data })
        }
        CameraPixel::Rgb => {
            let stride = stride_for(PixelFormat::Rgb24, h);
            convert::to_i420(&RawImage { format: PixelFormat::Rgb24, width, height, stride, data })
        }
        CameraPixel::Bgr => {
            let stride = stride_for(PixelFormat::Bgr24, h);
            convert::to_i420(&RawImage { format: PixelFormat::Bgr24, width, height, stride, data })
        }
        CameraPixel::Gray => {
            let stride = stride_for(PixelFormat::Gray8, h);
            convert::to_i420(&RawImage { format: PixelFormat::Gray8, width, height, stride, data })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(width: u32, height: u32, fps: u32, pixel: CameraPixel) -> CameraMode {
        CameraMode { width, height, fps, pixel }
    }

    #[test]
    fn nearest_mode_prefers_size_then_rate_then_cheap_format() {
        let modes = [
            m(640, 480, 30, CameraPixel::Yuyv),
            m(1280, 720, 10, CameraPixel::Yuyv),
            m(1280, 720, 30, CameraPixel::Mjpeg),
            m(1920, 1080, 30, CameraPixel::Mjpeg),
            m(320, 240, 30, CameraPixel::Yuyv),
        ];
        assert_eq!(choose_mode(&modes, VideoFormat::P720), Some(modes[2]));
        // 360p wanted: 640x480 is closest in size (a little larger).
        assert_eq!(choose_mode(&modes, VideoFormat::P360), Some(modes[0]));
        assert_eq!(choose_mode(&modes, VideoFormat { width: 1920, height: 1080, fps: 30 }), Some(modes[3]));
        // Same size and rate: raw YUV beats MJPEG.
        let tie = [m(1280, 720, 30, CameraPixel::Mjpeg), m(1280, 720, 30, CameraPixel::Nv12)];
        assert_eq!(choose_mode(&tie, VideoFormat::P720).map(|x| x.pixel), Some(CameraPixel::Nv12));
        // Same size: 30 fps beats 60 and 15 when 30 is asked.
        let rates = [
            m(640, 360, 15, CameraPixel::Yuyv),
            m(640, 360, 60, CameraPixel::Yuyv),
            m(640, 360, 30, CameraPixel::Yuyv),
        ];
        assert_eq!(choose_mode(&rates, VideoFormat::P360).map(|x| x.fps), Some(30));
        assert_eq!(choose_mode(&[], VideoFormat::P360), None);
    }

    #[test]
    fn padded_yuyv_buffer_converts() {
        // 6x2 YUYV with rows padded to 16 bytes (12 used).
        let mut data = vec![0u8; 32];
        for r in 0..2 {
            for c in 0..3 {
                data[r * 16 + c * 4..r * 16 + c * 4 + 4].copy_from_slice(&[100, 128, 100, 128]);
            }
        }
        let f = camera_buffer_to_i420(CameraPixel::Yuyv, 6, 2, &data).unwrap();
        assert!(f.y.iter().all(|&y| y == 100));
        assert!(camera_buffer_to_i420(CameraPixel::Yuyv, 6, 2, &data[..20]).is_err());
    }
}
