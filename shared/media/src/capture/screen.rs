//! Screen capture for screen sharing, behind [`VideoSource`].
//!
//! Linux/X11 through `x11rb` (pure Rust X11 protocol, no C libraries): each frame is
//! one `GetImage` of the root window, converted BGRA → I420 by [`crate::convert`].
//! Works on X11 desktops, XWayland-less Wayland sessions are not supported (they need
//! the desktop portal and PipeWire). Other operating systems return
//! [`MediaError::DeviceNotFound`] for now.
//!
//! Why not `xcap`: on Linux it links PipeWire (bindgen + `libpipewire-0.3-dev`), GBM,
//! EGL and Wayland client libraries even for X11 capture, four more system packages
//! and a much longer build, for the same X11 `GetImage` we do here.

use super::{DeviceInfo, DeviceKind, VideoFormat, VideoSource};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

#[cfg(target_os = "linux")]
pub use x11::{list_screens, list_screens_on, ScreenCapture};

#[cfg(not(target_os = "linux"))]
pub fn list_screens() -> Result<Vec<DeviceInfo>> {
    Ok(Vec::new())
}

/// Screen capture is not implemented on this platform yet.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub struct ScreenCapture {
    _private: (),
}

#[cfg(not(target_os = "linux"))]
impl ScreenCapture {
    pub fn open(_id: Option<&str>, _fps: u32) -> Result<Self> {
        Err(MediaError::DeviceNotFound {
            kind: DeviceKind::Screen,
            detail: format!("screen capture is not available on {}", std::env::consts::OS),
        })
    }
}

#[cfg(not(target_os = "linux"))]
impl VideoSource for ScreenCapture {
    fn format(&self) -> VideoFormat {
        VideoFormat { width: 0, height: 0, fps: 0 }
    }
    fn next_frame(&mut self) -> Result<VideoFrame> {
        Err(MediaError::EndOfStream)
    }
}

#[cfg(target_os = "linux")]
mod x11 {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ConnectionExt, ImageFormat, ImageOrder, Window};
    use x11rb::rust_connection::RustConnection;

    use super::*;
    use crate::convert::{self, PixelFormat, RawImage};

    fn not_found(detail: String) -> MediaError {
        MediaError::DeviceNotFound { kind: DeviceKind::Screen, detail }
    }

    fn connect(display: Option<&str>) -> Result<(RustConnection, usize, String)> {
        let name = match display {
            Some(d) => d.to_string(),
            None => std::env::var("DISPLAY").map_err(|_| {
                not_found("no X11 display (DISPLAY is not set); screen sharing needs an X11 session".into())
            })?,
        };
        let (conn, default_screen) = x11rb::connect(Some(&name))
            .map_err(|e| not_found(format!("cannot connect to X11 display {name:?}: {e}")))?;
        Ok((conn, default_screen, name))
    }

    /// Screens of the X11 display in `DISPLAY` (empty when there is no display).
    pub fn list_screens() -> Result<Vec<DeviceInfo>> {
        match list_screens_on(None) {
            Err(MediaError::DeviceNotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Screens of a given X11 display (`":0"`), or of `DISPLAY` when `None`.
    pub fn list_screens_on(display: Option<&str>) -> Result<Vec<DeviceInfo>> {
        let (conn, _, name) = connect(display)?;
        Ok(conn
            .setup()
            .roots
            .iter()
            .enumerate()
            .map(|(i, s)| DeviceInfo {
                id: format!("{name}.{i}"),
                name: format!("Screen {} ({}x{})", i + 1, s.width_in_pixels, s.height_in_pixels),
                kind: DeviceKind::Screen,
            })
            .collect())
    }

    /// Captures one X11 screen at a fixed frame rate.
    pub struct ScreenCapture {
        conn: RustConnection,
        root: Window,
        width: u16,
        height: u16,
        fps: u32,
        pixel: PixelFormat,
        stride: usize,
        frame_no: u64,
        next_due_us: u64,
        info: DeviceInfo,
    }

    impl std::fmt::Debug for ScreenCapture {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ScreenCapture")
                .field("info", &self.info)
                .field("fps", &self.fps)
                .finish_non_exhaustive()
        }
    }

    impl ScreenCapture {
        /// Opens screen `id` (from [`list_screens`], e.g. `":0.0"`) or the default screen
        /// of `DISPLAY`, to deliver `fps` frames per second.
        pub fn open(id: Option<&str>, fps: u32) -> Result<Self> {
            // An id is "<display>.<screen>"; the display part may itself contain dots
            // ("host:0.0"), so split at the last one.
            let (display, screen) = match id {
                None => (None, None),
                Some(id) => match id.rsplit_once('.') {
                    Some((d, s)) if s.parse::<usize>().is_ok() => (Some(d), s.parse::<usize>().ok()),
                    _ => (Some(id), None),
                },
            };
            Self::open_on(display, screen, fps)
        }

        /// Opens `screen` (default screen when `None`) of X11 `display` (`DISPLAY` when `None`).
        pub fn open_on(display: Option<&str>, screen: Option<usize>, fps: u32) -> Result<Self> {
            if fps == 0 || fps > 60 {
                return Err(MediaError::InvalidArgument(format!("screen capture rate {fps} fps (1..=60)")));
            }
            let (conn, default_screen, name) = connect(display)?;
            let index = screen.unwrap_or(default_screen);
            let setup = conn.setup();
            let s = setup
                .roots
                .get(index)
                .ok_or_else(|| not_found(format!("display {name:?} has no screen {index}")))?;
            let format = setup.pixmap_formats.iter().find(|f| f.depth == s.root_depth);
            let bpp = format.map_or(0, |f| f.bits_per_pixel);
            let pad = format.map_or(32, |f| f.scanline_pad.max(8));
            if bpp != 32 || !(s.root_depth == 24 || s.root_depth == 32) {
                return Err(MediaError::UnsupportedFormat(format!(
                    "X11 screen depth {} at {bpp} bits per pixel (only 24/32-bit true colour)",
                    s.root_depth
                )));
            }
            let visual =
                s.allowed_depths.iter().flat_map(|d| d.visuals.iter()).find(|v| v.visual_id == s.root_visual);
            let red_high = visual.is_none_or(|v| v.red_mask == 0x00ff_0000);
            let lsb = setup.image_byte_order == ImageOrder::LSB_FIRST;
            // 0x00RRGGBB little-endian is B,G,R,X in memory.
            let pixel = if red_high == lsb { PixelFormat::Bgra } else { PixelFormat::Rgba };
            let row_bits = usize::from(s.width_in_pixels) * 32;
            let pad = usize::from(pad);
            let stride = row_bits.div_ceil(pad) * pad / 8;
            let info = DeviceInfo {
                id: format!("{name}.{index}"),
                name: format!("Screen {} ({}x{})", index + 1, s.width_in_pixels, s.height_in_pixels),
                kind: DeviceKind::Screen,
            };
            let (root, width, height) = (s.root, s.width_in_pixels, s.height_in_pixels);
            Ok(ScreenCapture {
                conn,
                root,
                width,
                height,
                fps,
                pixel,
                stride,
                frame_no: 0,
                next_due_us: 0,
                info,
            })
        }

        pub fn info(&self) -> &DeviceInfo {
            &self.info
        }

        /// Grabs the screen now, without pacing.
        pub fn grab(&mut self) -> Result<VideoFrame> {
            let dev = |detail: String| MediaError::Device { kind: DeviceKind::Screen, detail };
            let reply = self
                .conn
                .get_image(ImageFormat::Z_PIXMAP, self.root, 0, 0, self.width, self.height, !0)
                .map_err(|e| dev(format!("GetImage request: {e}")))?
                .reply()
                .map_err(|e| dev(format!("GetImage: {e}")))?;
            let capture_us = crate::clock::now_us();
            let img = RawImage {
                format: self.pixel,
                width: u32::from(self.width),
                height: u32::from(self.height),
                stride: self.stride,
                data: &reply.data,
            };
            let mut frame = convert::to_i420(&img)?;
            frame.capture_us = capture_us;
            frame.frame_no = self.frame_no;
            self.frame_no += 1;
            Ok(frame)
        }
    }

    impl VideoSource for ScreenCapture {
        fn format(&self) -> VideoFormat {
            VideoFormat { width: u32::from(self.width), height: u32::from(self.height), fps: self.fps }
        }

        fn next_frame(&mut self) -> Result<VideoFrame> {
            let now = crate::clock::now_us();
            if self.next_due_us == 0 {
                self.next_due_us = now;
            }
            if self.next_due_us > now {
                crate::clock::sleep_until_us(self.next_due_us);
            }
            // After a stall, restart the schedule from now instead of bursting to catch up.
            self.next_due_us = self.next_due_us.max(now) + self.format().frame_interval_us();
            self.grab()
        }
    }
}
