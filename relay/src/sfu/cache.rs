//! A per-encoding ring of recent video packets, indexed by original extended
//! sequence number. Holds the received `Bytes` (shared, not copied).

use bytes::Bytes;

/// Packets kept per encoding (about 6 s of 1.5 Mbit/s video).
pub const CACHE_PACKETS: usize = 1024;

#[derive(Debug, Clone)]
pub struct PacketCache {
    slots: Box<[Option<(u64, Bytes)>]>,
}

impl Default for PacketCache {
    fn default() -> Self {
        PacketCache { slots: vec![None; CACHE_PACKETS].into_boxed_slice() }
    }
}

impl PacketCache {
    pub fn insert(&mut self, ext: u64, packet: Bytes) {
        self.slots[(ext % CACHE_PACKETS as u64) as usize] = Some((ext, packet));
    }

    pub fn get(&self, ext: u64) -> Option<&Bytes> {
        match &self.slots[(ext % CACHE_PACKETS as u64) as usize] {
            Some((e, p)) if *e == ext => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_forgets_overwritten_packets() {
        let mut c = PacketCache::default();
        c.insert(5, Bytes::from_static(b"a"));
        assert_eq!(c.get(5).map(|b| &b[..]), Some(&b"a"[..]));
        c.insert(5 + CACHE_PACKETS as u64, Bytes::from_static(b"b"));
        assert_eq!(c.get(5), None);
        assert_eq!(c.get(6), None);
    }
}
