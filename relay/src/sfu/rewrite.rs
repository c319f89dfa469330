//! Per-subscription sequence rewriting.
//!
//! A subscriber sees one continuous sequence per track, whatever the relay
//! does upstream of it: packets the relay drops on purpose (thinning, a muted
//! publisher, waiting for a keyframe) take no number, packets lost before the
//! relay keep their gap (so the subscriber NACKs them), and a switch between
//! simulcast encodings continues from the last number sent. Two rings keep
//! the mapping both ways: original → rewritten (for late packets that fill a
//! gap) and rewritten → original (to answer NACKs from the track's cache).

/// Slots in each ring (about 3 s of 1.5 Mbit/s video).
pub const RING: usize = 512;
/// A jump of the original sequence larger than this is a restart, not a loss.
const MAX_GAP: u64 = (RING / 2) as u64;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum SlotState {
    #[default]
    Empty,
    /// Numbered but not yet seen (lost or late upstream).
    Missing,
    Sent,
    Dropped,
}

#[derive(Debug, Clone, Copy, Default)]
struct InSlot {
    in_ext: u64,
    out: u16,
    state: SlotState,
}

#[derive(Debug, Clone, Copy, Default)]
struct OutSlot {
    out: u16,
    valid: bool,
    encoding: u8,
    in_ext: u64,
}

/// Rewrites one subscription's sequence numbers.
#[derive(Debug, Clone)]
pub struct SeqRewriter {
    started: bool,
    encoding: u8,
    highest_in: u64,
    last_out: u16,
    ins: Box<[InSlot]>,
    outs: Box<[OutSlot]>,
}

impl SeqRewriter {
    /// `last_out`: the number before the first one sent (random per subscription).
    pub fn new(last_out: u16) -> Self {
        SeqRewriter {
            started: false,
            encoding: 0,
            highest_in: 0,
            last_out,
            ins: vec![InSlot::default(); RING].into_boxed_slice(),
            outs: vec![OutSlot::default(); RING].into_boxed_slice(),
        }
    }

    /// Whether packets of [`encoding`](Self::encoding) are flowing.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// The encoding currently forwarded (meaningful once started).
    pub fn encoding(&self) -> u8 {
        self.encoding
    }

    /// The last rewritten number handed out.
    pub fn last_out(&self) -> u16 {
        self.last_out
    }

    /// Stops forwarding until [`start`](Self::start) (after a pause or before a switch).
    pub fn stop(&mut self) {
        self.started = false;
    }

    /// Starts (or restarts) at original packet `in_ext` of `encoding`: it gets the
    /// next number after the last one sent.
    pub fn start(&mut self, encoding: u8, in_ext: u64) -> u16 {
        self.ins.fill(InSlot::default());
        self.started = true;
        self.encoding = encoding;
        self.highest_in = in_ext;
        self.assign(in_ext, SlotState::Sent)
    }

    fn assign(&mut self, in_ext: u64, state: SlotState) -> u16 {
        self.last_out = self.last_out.wrapping_add(1);
        let out = self.last_out;
        self.ins[slot(in_ext)] = InSlot { in_ext, out, state };
        self.outs[usize::from(out) % RING] = OutSlot { out, valid: true, encoding: self.encoding, in_ext };
        out
    }

    /// An original packet of the current encoding. `drop`: the relay chooses not to
    /// send it (it takes no number). Returns the rewritten number when it is to be sent.
    pub fn packet(&mut self, in_ext: u64, drop: bool) -> Option<u16> {
        if !self.started {
            return None;
        }
        if in_ext > self.highest_in {
            let gap = in_ext - self.highest_in - 1;
            if gap > MAX_GAP {
                self.ins.fill(InSlot::default());
            } else {
                for missing in self.highest_in + 1..in_ext {
                    self.assign(missing, SlotState::Missing);
                }
            }
            self.highest_in = in_ext;
            if drop {
                self.ins[slot(in_ext)] = InSlot { in_ext, out: 0, state: SlotState::Dropped };
                return None;
            }
            return Some(self.assign(in_ext, SlotState::Sent));
        }
        if self.highest_in - in_ext >= RING as u64 {
            return None;
        }
        let s = &mut self.ins[slot(in_ext)];
        if s.in_ext != in_ext || s.state != SlotState::Missing {
            return None; // duplicate, dropped on purpose, or unknown
        }
        // A late packet filling a gap the subscriber already saw: always send it.
        s.state = SlotState::Sent;
        Some(s.out)
    }

    /// Maps a rewritten number (from a subscriber's NACK) back to (encoding, original).
    pub fn original(&self, out: u16) -> Option<(u8, u64)> {
        let s = self.outs[usize::from(out) % RING];
        (s.valid && s.out == out).then_some((s.encoding, s.in_ext))
    }
}

fn slot(ext: u64) -> usize {
    (ext % RING as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_take_no_number_and_losses_keep_their_gap() {
        let mut r = SeqRewriter::new(65_533);
        assert_eq!(r.packet(100, false), None, "not started");
        assert_eq!(r.start(0, 100), 65_534);
        assert_eq!(r.packet(101, true), None);
        assert_eq!(r.packet(102, false), Some(65_535));
        // 103 lost upstream: 104 leaves a hole at 0 (wrapping).
        assert_eq!(r.packet(104, false), Some(1));
        assert_eq!(r.original(0), Some((0, 103)));
        assert_eq!(r.original(1), Some((0, 104)));
        // 103 arrives late: it fills the hole.
        assert_eq!(r.packet(103, false), Some(0));
        assert_eq!(r.packet(103, false), None, "duplicate");
        assert_eq!(r.packet(101, false), None, "dropped on purpose stays dropped");
    }

    #[test]
    fn restart_continues_numbering() {
        let mut r = SeqRewriter::new(9);
        assert_eq!(r.start(0, 1_000), 10);
        assert_eq!(r.packet(1_001, false), Some(11));
        r.stop();
        assert_eq!(r.packet(1_002, false), None);
        assert_eq!(r.start(1, 50_000), 12, "switch to another encoding continues");
        assert_eq!(r.original(12), Some((1, 50_000)));
        assert_eq!(r.original(11), Some((0, 1_001)), "older numbers still map to the old encoding");
        // A huge jump is a restart, not thousands of losses.
        assert_eq!(r.packet(60_000, false), Some(13));
    }
}
