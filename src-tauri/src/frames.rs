//! Video frames to the web view: scaled to the tile in Rust, sent as raw I420.
//!
//! [`FrameSlots`] holds the newest unsent frame of each tile (latest frame wins);
//! [`crate::frame_socket`] sends them to the page as credit allows.
//!
//! Frame layout (little endian): `u32 magic "CMF1"`, `u16 width`, `u16 height`,
//! `u8 id_len`, `id_len` bytes of the frame id (UTF-8: a participant id, `local`
//! for the own camera, `screen:<participant id>` for a screen share), then Y (w×h),
//! U and V ((w+1)/2 × (h+1)/2 each). `ui/src/engine/tauri.ts` (`decodeFrame`) reads it.

use std::collections::HashMap;
use std::sync::Mutex;

use clinicmeet_media::frame::VideoFrame;

/// `CMF1`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"CMF1");

/// Largest picture sent for a tile whose size the UI has not told yet.
pub const DEFAULT_BOX: (u16, u16) = (640, 360);

/// Size of the I420 planes of a `w`×`h` picture.
pub fn i420_len(width: u16, height: u16) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
}

fn header(participant: &str, width: u16, height: u16) -> Option<Vec<u8>> {
    let id = participant.as_bytes();
    let id_len = u8::try_from(id.len()).ok()?;
    let mut out = Vec::with_capacity(9 + id.len() + i420_len(width, height));
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.push(id_len);
    out.extend_from_slice(id);
    Some(out)
}

/// One frame message, or `None` when `i420` does not have the size of the picture
/// or the participant id is longer than 255 bytes.
pub fn encode(participant: &str, width: u16, height: u16, i420: &[u8]) -> Option<Vec<u8>> {
    if i420.len() != i420_len(width, height) {
        return None;
    }
    let mut out = header(participant, width, height)?;
    out.extend_from_slice(i420);
    Some(out)
}

/// The size a `sw`×`sh` picture is shown at inside a `bw`×`bh` box: aspect kept,
/// never enlarged, even sides (at least 2×2).
pub fn fit(sw: u32, sh: u32, bw: u16, bh: u16) -> (u16, u16) {
    let (sw, sh) = (sw.max(1) as u64, sh.max(1) as u64);
    let (bw, bh) = (u64::from(bw.max(2)), u64::from(bh.max(2)));
    let (w, h) = if sw * bh > sh * bw {
        // Wider than the box: width decides.
        let w = bw.min(sw);
        (w, (sh * w / sw).max(2))
    } else {
        let h = bh.min(sh);
        ((sw * h / sh).max(2), h)
    };
    let even = |v: u64| ((v.min(u64::from(u16::MAX - 1))) & !1).max(2) as u16;
    (even(w), even(h))
}

/// Bilinear scaling of one plane (16.16 fixed point) into a tightly packed `dw`×`dh` plane.
fn scale_plane(src: &[u8], stride: usize, sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 || src.len() < stride * (sh - 1) + sw {
        dst.fill(128);
        return;
    }
    if sw == dw && sh == dh {
        for (y, row) in dst.chunks_exact_mut(dw).enumerate().take(dh) {
            row.copy_from_slice(&src[y * stride..y * stride + sw]);
        }
        return;
    }
    let step_x = ((sw as u64) << 16) / dw as u64;
    let step_y = ((sh as u64) << 16) / dh as u64;
    // Sample at pixel centres.
    let start = |step: u64| (step / 2).saturating_sub(1 << 15);
    let xs: Vec<(usize, u32)> = (0..dw)
        .map(|x| {
            let fx = start(step_x) + step_x * x as u64;
            (((fx >> 16) as usize).min(sw - 1), (fx & 0xffff) as u32)
        })
        .collect();
    for (y, row) in dst.chunks_exact_mut(dw).enumerate().take(dh) {
        let fy = start(step_y) + step_y * y as u64;
        let y0 = ((fy >> 16) as usize).min(sh - 1);
        let y1 = (y0 + 1).min(sh - 1);
        let wy = (fy & 0xffff) as u32;
        let (r0, r1) = (&src[y0 * stride..y0 * stride + sw], &src[y1 * stride..y1 * stride + sw]);
        for (out, &(x0, wx)) in row.iter_mut().zip(&xs) {
            let x1 = (x0 + 1).min(sw - 1);
            let top = u32::from(r0[x0]) * (65536 - wx) + u32::from(r0[x1]) * wx;
            let bot = u32::from(r1[x0]) * (65536 - wx) + u32::from(r1[x1]) * wx;
            let v = ((u64::from(top >> 8) * u64::from(65536 - wy) + u64::from(bot >> 8) * u64::from(wy))
                >> 24) as u32;
            *out = v.min(255) as u8;
        }
    }
}

/// The frame message of `frame` scaled to fit `bx` (see [`fit`]); `None` for an
/// unusable picture or participant id.
pub fn encode_scaled(participant: &str, frame: &VideoFrame, bx: (u16, u16)) -> Option<Vec<u8>> {
    if frame.validate().is_err() {
        return None;
    }
    let (dw, dh) = fit(frame.width, frame.height, bx.0, bx.1);
    let mut out = header(participant, dw, dh)?;
    let at = out.len();
    out.resize(at + i420_len(dw, dh), 0);
    let (dw, dh) = (dw as usize, dh as usize);
    let (cw, ch) = (dw.div_ceil(2), dh.div_ceil(2));
    let (sw, sh) = (frame.width as usize, frame.height as usize);
    let (scw, sch) = (sw.div_ceil(2), sh.div_ceil(2));
    let (y, uv) = out[at..].split_at_mut(dw * dh);
    let (u, v) = uv.split_at_mut(cw * ch);
    scale_plane(&frame.y, frame.y_stride, sw, sh, y, dw, dh);
    scale_plane(&frame.u, frame.uv_stride, scw, sch, u, cw, ch);
    scale_plane(&frame.v, frame.uv_stride, scw, sch, v, cw, ch);
    Some(out)
}

/// Counters of one participant's frames on the way to the web view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SlotStats {
    /// Frames scaled and stored.
    pub produced: u64,
    /// Frames sent to the web view.
    pub delivered: u64,
    /// Frames replaced by a newer one before they were sent.
    pub replaced: u64,
}

#[derive(Default)]
struct Slots {
    /// Newest unsent frame per id, with the order in which ids got one (oldest first out).
    fresh: HashMap<String, (u64, Vec<u8>)>,
    seq: u64,
    /// Tile sizes; `None`: the tile is out of view.
    sizes: HashMap<String, Option<(u16, u16)>>,
    stats: HashMap<String, SlotStats>,
}

/// The newest frame of each participant not yet fetched by the web view, and the
/// tile sizes the web view asked for.
#[derive(Default)]
pub struct FrameSlots {
    inner: Mutex<Slots>,
    notify: tokio::sync::Notify,
}

impl FrameSlots {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The box frames of `participant` are scaled into; `None` while its tile is out of
    /// view (its frames are skipped).
    pub fn target(&self, participant: &str) -> Option<(u16, u16)> {
        self.lock().sizes.get(participant).copied().unwrap_or(Some(DEFAULT_BOX))
    }

    /// The web view's tile of `participant` is `width`×`height` device pixels (0×0: out of view).
    pub fn set_size(&self, participant: &str, width: u16, height: u16) {
        let bx = (width > 0 && height > 0).then(|| (width.clamp(16, 3840), height.clamp(16, 2160)));
        let mut s = self.lock();
        s.sizes.insert(participant.to_string(), bx);
        if bx.is_none() {
            s.fresh.remove(participant);
        }
    }

    /// Stores the newest frame of `participant` (replacing an unsent older one, which
    /// keeps its place in the sending order).
    pub fn put(&self, participant: &str, message: Vec<u8>) {
        {
            let mut s = self.lock();
            let seq = s.seq;
            let replaced = match s.fresh.get_mut(participant) {
                Some(slot) => {
                    slot.1 = message;
                    true
                }
                None => {
                    s.fresh.insert(participant.to_string(), (seq, message));
                    s.seq += 1;
                    false
                }
            };
            let st = s.stats.entry(participant.to_string()).or_default();
            st.produced += 1;
            if replaced {
                st.replaced += 1;
            }
        }
        self.notify.notify_one();
    }

    /// Drops the unfetched frame of `participant` (video stopped).
    pub fn forget(&self, participant: &str) {
        self.lock().fresh.remove(participant);
    }

    /// The unsent frame that has waited longest (every tile gets its turn), marking it sent.
    pub fn take_one(&self) -> Option<Vec<u8>> {
        let mut s = self.lock();
        let id = s.fresh.iter().min_by_key(|(_, (seq, _))| *seq).map(|(id, _)| id.clone())?;
        let (_, frame) = s.fresh.remove(&id)?;
        s.stats.entry(id).or_default().delivered += 1;
        Some(frame)
    }

    /// Resolves once a frame was stored after the last call (or at once if one was
    /// stored while nobody waited).
    pub async fn fresh_frame(&self) {
        self.notify.notified().await
    }

    /// Counters per participant id.
    pub fn stats(&self) -> HashMap<String, SlotStats> {
        self.lock().stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_planes() {
        let planes = vec![7u8; i420_len(3, 3)];
        assert_eq!(planes.len(), 9 + 2 * 4);
        let m = encode("local", 3, 3, &planes).unwrap();
        assert_eq!(&m[..4], b"CMF1");
        assert_eq!((u16::from_le_bytes([m[4], m[5]]), m[8]), (3, 5));
        assert_eq!(&m[9..14], b"local");
        assert_eq!(&m[14..], &planes[..]);
        assert!(encode("local", 4, 4, &planes).is_none());
        assert!(encode(&"x".repeat(256), 3, 3, &planes).is_none());
    }

    #[test]
    fn fit_keeps_aspect_and_never_enlarges() {
        assert_eq!(fit(640, 360, 320, 320), (320, 180));
        assert_eq!(fit(640, 360, 1000, 180), (320, 180));
        assert_eq!(fit(640, 360, 1920, 1080), (640, 360));
        assert_eq!(fit(360, 640, 300, 300), (168, 300));
        assert_eq!(fit(0, 0, 0, 0), (2, 2));
    }

    #[test]
    fn scaling_keeps_the_embedded_frame_number() {
        use clinicmeet_media::capture::synthetic::{decode_embedded, SyntheticCamera};
        use clinicmeet_media::capture::{Pacing, VideoFormat};
        let cam = SyntheticCamera::new(VideoFormat::P360, Pacing::Virtual { start_us: 0 }).unwrap();
        let src = cam.render(1234, 99);
        let m = encode_scaled("p", &src, (320, 320)).unwrap();
        let (w, h) = (u16::from_le_bytes([m[4], m[5]]), u16::from_le_bytes([m[6], m[7]]));
        assert_eq!((w, h), (320, 180));
        let planes = &m[10..];
        let (w, h) = (w as usize, h as usize);
        let c = w.div_ceil(2) * h.div_ceil(2);
        let f = VideoFrame::from_planes(
            w as u32,
            h as u32,
            planes[..w * h].to_vec(),
            w,
            planes[w * h..w * h + c].to_vec(),
            planes[w * h + c..].to_vec(),
            w.div_ceil(2),
        )
        .unwrap();
        assert_eq!(decode_embedded(&f).map(|d| d.0), Some(1234));
    }

    /// What scaling costs: `cargo test -p clinicmeet-app --lib scale_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement"]
    fn scale_cost() {
        use clinicmeet_media::capture::synthetic::SyntheticCamera;
        use clinicmeet_media::capture::{Pacing, VideoFormat};
        let cam = SyntheticCamera::new(VideoFormat::P360, Pacing::Virtual { start_us: 0 }).unwrap();
        let src = cam.render(1, 0);
        let t = std::time::Instant::now();
        for _ in 0..200 {
            std::hint::black_box(encode_scaled("p", &src, (386, 216)));
        }
        eprintln!("640x360 -> 386x216: {:.0} µs per frame", t.elapsed().as_secs_f64() / 200.0 * 1e6);
    }

    #[test]
    fn latest_frame_wins_and_every_tile_gets_its_turn() {
        let slots = FrameSlots::default();
        slots.put("a", encode("a", 2, 2, &[1; 6]).unwrap());
        slots.put("b", encode("b", 2, 2, &[3; 6]).unwrap());
        slots.put("a", encode("a", 2, 2, &[2; 6]).unwrap());
        // `a` waited longest (its place kept), with its newest picture.
        assert_eq!(slots.take_one().unwrap(), encode("a", 2, 2, &[2; 6]).unwrap());
        slots.put("a", encode("a", 2, 2, &[4; 6]).unwrap());
        assert_eq!(slots.take_one().unwrap(), encode("b", 2, 2, &[3; 6]).unwrap());
        assert_eq!(slots.take_one().unwrap(), encode("a", 2, 2, &[4; 6]).unwrap());
        assert_eq!(slots.take_one(), None);
        assert_eq!(slots.stats()["a"], SlotStats { produced: 3, delivered: 2, replaced: 1 });
    }

    #[test]
    fn a_tile_out_of_view_gets_nothing() {
        let slots = FrameSlots::default();
        assert_eq!(slots.target("a"), Some(DEFAULT_BOX));
        slots.put("a", encode("a", 2, 2, &[1; 6]).unwrap());
        slots.set_size("a", 0, 0);
        assert_eq!((slots.target("a"), slots.take_one()), (None, None));
        slots.set_size("a", 8000, 2);
        assert_eq!(slots.target("a"), Some((3840, 16)));
    }
}
