//! The seam for video frames to the web view (used once `shared/media` and the
//! SFU land). A frame travels as ONE raw binary message on a `tauri::ipc::Channel`
//! (no JSON, no base64): a small header, then the I420 planes.
//!
//! Layout (little endian): `u32 magic "CMF1"`, `u16 width`, `u16 height`,
//! `u8 id_len`, `id_len` bytes of the participant id (UTF-8; `local` for the
//! own camera), then Y (w×h), U and V ((w+1)/2 × (h+1)/2 each).
//! `ui/src/engine/tauri.ts` (`decodeFrame`) reads it back.

/// `CMF1`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"CMF1");

/// Size of the I420 planes of a `w`×`h` picture.
pub fn i420_len(width: u16, height: u16) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
}

/// One frame message, or `None` when `i420` does not have the size of the picture
/// or the participant id is longer than 255 bytes.
pub fn encode(participant: &str, width: u16, height: u16, i420: &[u8]) -> Option<Vec<u8>> {
    let id = participant.as_bytes();
    let id_len = u8::try_from(id.len()).ok()?;
    if i420.len() != i420_len(width, height) {
        return None;
    }
    let mut out = Vec::with_capacity(9 + id.len() + i420.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.push(id_len);
    out.extend_from_slice(id);
    out.extend_from_slice(i420);
    Some(out)
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
}
