//! Adaptive audio jitter buffer. Sans-IO: packets go in with their arrival time,
//! and every 20 ms the playout side pulls what the decoder should do next.
//!
//! Playout is time-driven: the frame due at `now` is the one sent at
//! `now - min_transit - target`, where `min_transit` is the fastest observed
//! path (sender RTP clock → local clock, so clock offsets cancel) and `target`
//! follows the measured jitter (the largest transit excess in a sliding window,
//! plus a margin), bounded by `min_delay`/`max_delay`. When the target grows,
//! frames are not yet due and the buffer inserts concealment (stretch); when it
//! shrinks, overdue frames are dropped (accelerate).

use std::collections::{BTreeMap, VecDeque};

use crate::AUDIO_FRAME_SAMPLES;
use clinicmeet_rtp::SeqUnwrapper;

/// Jitter buffer tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    pub min_delay_us: u64,
    pub max_delay_us: u64,
    /// Added to the largest observed jitter.
    pub margin_us: u64,
    /// Packets in the jitter measurement window (250 = 5 s).
    pub window: usize,
    /// Delay used until enough packets were seen, and the least target during the
    /// first second.
    pub initial_delay_us: u64,
    /// RTP clock rate of the stream.
    pub clock_rate: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            min_delay_us: 20_000,
            max_delay_us: 300_000,
            margin_us: 10_000,
            window: 250,
            initial_delay_us: 60_000,
            clock_rate: clinicmeet_rtp::AUDIO_CLOCK_RATE,
        }
    }
}

/// What the decoder should do for the next 20 ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JitterOutput {
    /// Decode this packet.
    Packet(Vec<u8>),
    /// The packet for this slot is lost; the next one is here: decode its FEC data
    /// (`OpusDecoder::decode_fec`). The next packet itself is played on the next pull.
    FecRecovery(Vec<u8>),
    /// The packet for this slot is lost or late: packet-loss concealment.
    Conceal,
    /// Nothing is due (the sender is in DTX, or the buffer is stretching): comfort
    /// noise / concealment, not counted as loss.
    Dtx,
    /// No packet received yet.
    Idle,
}

#[derive(Debug, Clone)]
struct Buffered {
    payload: Vec<u8>,
    /// Sender time of the packet in µs since the stream's first timestamp.
    sender_us: i64,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub played: u64,
    pub fec_recovered: u64,
    pub concealed: u64,
    pub dtx: u64,
    /// Packets that arrived after their slot was played (an underrun).
    pub late: u64,
    /// Frames dropped to bring the delay down.
    pub accelerated: u64,
    /// Lost frames whose time passed while the buffer waited for them (not
    /// concealed again afterwards).
    pub skipped: u64,
    pub duplicates: u64,
}

/// Adaptive jitter buffer for one audio stream (20 ms frames).
#[derive(Debug)]
pub struct AudioJitterBuffer {
    cfg: JitterConfig,
    seq: SeqUnwrapper,
    ts_base: Option<u32>,
    ts_last_ext: i64,
    packets: BTreeMap<u64, Buffered>,
    next_seq: Option<u64>,
    /// Sender time of the last played slot.
    last_played_us: Option<i64>,
    transits: VecDeque<i64>,
    min_transit: i64,
    target_us: u64,
    /// Extra delay for lip sync (added to the jitter target).
    sync_delay_us: u64,
    stats: JitterStats,
}

const FRAME_US: i64 = 20_000;
/// Packets (1 s) during which the initial delay stays the least target.
const WARM_UP_PACKETS: usize = 50;

impl AudioJitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        AudioJitterBuffer {
            cfg,
            seq: SeqUnwrapper::default(),
            ts_base: None,
            ts_last_ext: 0,
            packets: BTreeMap::new(),
            next_seq: None,
            last_played_us: None,
            transits: VecDeque::new(),
            min_transit: 0,
            target_us: cfg.initial_delay_us.clamp(cfg.min_delay_us, cfg.max_delay_us),
            sync_delay_us: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Current target buffering delay beyond the fastest path (µs).
    pub fn target_delay_us(&self) -> u64 {
        self.target_us
    }

    /// Delays playout by `us` beyond the jitter target, so late video can keep up
    /// (lip sync). A larger value stretches (concealment frames), a smaller one
    /// accelerates, like a change of the jitter target.
    pub fn set_sync_delay_us(&mut self, us: u64) {
        self.sync_delay_us = us;
    }

    /// RTP timestamp of the slot played last (lost slots included), if any.
    pub fn played_rtp_timestamp(&self) -> Option<u32> {
        let base = self.ts_base?;
        let played = self.last_played_us?;
        let ticks = played * i64::from(self.cfg.clock_rate.max(1)) / 1_000_000;
        Some(base.wrapping_add(ticks as u32))
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    fn sender_us(&mut self, ts: u32) -> i64 {
        let base = *self.ts_base.get_or_insert(ts);
        // Unwrap relative to the last timestamp seen.
        let last = self.ts_last_ext;
        let last32 = (i64::from(base) + last) as u32;
        let ext = last + i64::from(ts.wrapping_sub(last32) as i32);
        if ext > self.ts_last_ext {
            self.ts_last_ext = ext;
        }
        ext * 1_000_000 / i64::from(self.cfg.clock_rate.max(1))
    }

    /// Adds a received packet (`rtp_ts` in the stream's clock, `now_us` the local arrival time).
    pub fn insert(&mut self, seq: u16, rtp_ts: u32, payload: &[u8], now_us: u64) {
        self.stats.received += 1;
        let ext = self.seq.unwrap(seq);
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        let sender_us = self.sender_us(rtp_ts);
        // A late packet counts for the jitter estimate too: it is the very evidence
        // that the target is too small (left out, the buffer would never grow).
        self.measure(now_us as i64 - sender_us);
        if self.next_seq.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return;
        }
        self.packets.insert(ext, Buffered { payload: payload.to_vec(), sender_us });
        if self.packets.len() > 500 {
            // Something is badly off (stalled playout): keep the newest.
            if let Some((&first, _)) = self.packets.iter().next() {
                self.packets.remove(&first);
            }
        }
    }

    /// One packet's transit (local arrival minus sender time): updates the fastest
    /// path and the target (largest excess over it in the window, plus the margin).
    fn measure(&mut self, transit: i64) {
        self.transits.push_back(transit);
        while self.transits.len() > self.cfg.window.max(1) {
            self.transits.pop_front();
        }
        self.min_transit = self.transits.iter().copied().min().unwrap_or(transit);
        if self.transits.len() >= 10 {
            let max_excess =
                self.transits.iter().map(|t| t - self.min_transit).max().unwrap_or(0).max(0) as u64;
            let mut target = max_excess + self.cfg.margin_us;
            if self.transits.len() < WARM_UP_PACKETS {
                // A few packets say little about the path's tail: keep the initial delay
                // as a floor for the first second.
                target = target.max(self.cfg.initial_delay_us);
            }
            self.target_us = target.clamp(self.cfg.min_delay_us, self.cfg.max_delay_us);
        }
    }

    /// What to play for the next 20 ms; call once per frame period.
    pub fn pull(&mut self, now_us: u64) -> JitterOutput {
        if self.transits.is_empty() {
            return JitterOutput::Idle;
        }
        // Sender time that should be playing now.
        let due = now_us as i64 - self.min_transit - (self.target_us + self.sync_delay_us) as i64;
        let next = match self.next_seq {
            Some(n) => n,
            None => match self.packets.keys().next() {
                Some(&first) => first,
                None => return JitterOutput::Idle,
            },
        };
        loop {
            let next = self.next_seq.unwrap_or(next);
            if let Some(p) = self.packets.get(&next) {
                let lag = due - p.sender_us;
                if lag < -FRAME_US / 2 {
                    // Not due yet: DTX gap, start-up, or the buffer is growing.
                    self.stats.dtx += 1;
                    return JitterOutput::Dtx;
                }
                let following_due =
                    self.packets.get(&(next + 1)).is_some_and(|q| due - q.sender_us >= -FRAME_US / 2);
                if lag > 3 * FRAME_US / 2 && following_due {
                    // Too much delay: drop this frame.
                    self.packets.remove(&next);
                    self.next_seq = Some(next + 1);
                    self.stats.accelerated += 1;
                    continue;
                }
                let p = self.packets.remove(&next).map(|p| (p.payload, p.sender_us));
                self.next_seq = Some(next + 1);
                if let Some((payload, sender_us)) = p {
                    self.last_played_us = Some(sender_us);
                    self.stats.played += 1;
                    return JitterOutput::Packet(payload);
                }
            }
            // The packet for `next` is missing.
            let expected = self.last_played_us.map_or(i64::MIN, |t| t + FRAME_US);
            let later = self.packets.range(next + 1..).next().map(|(&s, p)| (s, p.sender_us));
            let Some((later_seq, later_us)) = later else {
                // Nothing after it either: DTX or a stall. Keep the slot open.
                self.stats.dtx += 1;
                return JitterOutput::Dtx;
            };
            // Sequence numbers run on through DTX, so the missing ones sit 20 ms apart
            // before the later packet.
            let slot_us = |seq: u64| later_us - FRAME_US * (later_seq - seq) as i64;
            if due - expected < -FRAME_US / 2 && due - slot_us(next) < -FRAME_US / 2 {
                // The missing packet is not due yet; it may still arrive.
                self.stats.dtx += 1;
                return JitterOutput::Dtx;
            }
            // Declared lost. Missing slots whose time passed while the buffer waited
            // (several packets lost or late in a row) were already filled by that wait:
            // skip them rather than conceal them again after the fact, which would
            // lengthen the gap and push playout back.
            let mut lost = next;
            while lost + 1 < later_seq && due - slot_us(lost) > FRAME_US / 2 {
                lost += 1;
                self.stats.skipped += 1;
            }
            self.next_seq = Some(lost + 1);
            self.last_played_us = Some(expected.max(slot_us(lost)));
            if later_seq == lost + 1 {
                self.stats.fec_recovered += 1;
                return JitterOutput::FecRecovery(self.packets[&later_seq].payload.clone());
            }
            self.stats.concealed += 1;
            return JitterOutput::Conceal;
        }
    }

    /// Samples per pull (20 ms at 48 kHz).
    pub const fn frame_samples() -> usize {
        AUDIO_FRAME_SAMPLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(i: u16) -> (u16, u32, Vec<u8>) {
        (i, u32::from(i) * 960, vec![i as u8])
    }

    #[test]
    fn steady_stream_plays_in_order_after_initial_delay() {
        let mut jb = AudioJitterBuffer::new(JitterConfig::default());
        assert_eq!(jb.pull(0), JitterOutput::Idle);
        let mut played = vec![];
        for t in 0..100u64 {
            let now = t * 20_000;
            let (s, ts, p) = pkt(t as u16);
            jb.insert(s, ts, &p, now + 5_000);
            match jb.pull(now + 10_000) {
                JitterOutput::Packet(p) => played.push(p[0]),
                JitterOutput::Dtx | JitterOutput::Idle => {}
                other => panic!("{other:?}"),
            }
        }
        // In order; once the jitter is measured as small the delay shrinks from the
        // initial 60 ms towards the 20 ms minimum by dropping frames.
        assert!(played.windows(2).all(|w| w[1] > w[0]));
        assert_eq!(jb.stats().accelerated, 1, "{played:?}");
        assert_eq!(jb.stats().concealed + jb.stats().fec_recovered + jb.stats().late, 0);
        assert!(played.len() > 90);
        assert_eq!(jb.target_delay_us(), 20_000);
    }

    #[test]
    fn sync_delay_shifts_playout_and_the_played_timestamp_says_where() {
        let mut jb = AudioJitterBuffer::new(JitterConfig::default());
        let mut behind = Vec::new();
        let mut stretch = 0;
        for t in 0..200u64 {
            let now = t * 20_000;
            let (s, ts, p) = pkt(t as u16);
            jb.insert(s, ts, &p, now + 5_000);
            if t == 100 {
                jb.set_sync_delay_us(40_000);
            }
            match jb.pull(now + 10_000) {
                JitterOutput::Packet(p) => {
                    behind.push((t, t - u64::from(p[0])));
                    assert_eq!(jb.played_rtp_timestamp(), Some(u32::from(p[0]) * 960));
                }
                JitterOutput::Dtx if t >= 100 => stretch += 1,
                other => assert!(t < 100, "{other:?} at {t}"),
            }
        }
        let before = behind.iter().rev().find(|(t, _)| *t < 100).unwrap().1;
        let after = behind.last().unwrap().1;
        // 40 ms more delay: playout moves back by one or two 20 ms frames (the slot
        // tolerance is half a frame either way), each a stretch frame, never a loss.
        assert!((1..=2).contains(&stretch), "{stretch}");
        assert_eq!(after - before, stretch, "{behind:?}");
        assert_eq!(jb.stats().concealed, 0);
    }

    #[test]
    fn lost_packet_gives_fec_then_conceal_for_double_loss() {
        let mut jb = AudioJitterBuffer::new(JitterConfig { initial_delay_us: 40_000, ..Default::default() });
        let mut out = vec![];
        for t in 0..40u64 {
            let now = t * 20_000;
            if ![10u64, 20, 21].contains(&t) {
                let (s, ts, p) = pkt(t as u16);
                jb.insert(s, ts, &p, now);
            }
            out.push(jb.pull(now));
        }
        let fec = out
            .iter()
            .filter(|o| matches!(o, JitterOutput::FecRecovery(p) if p[0] == 11 || p[0] == 22))
            .count();
        assert_eq!(fec, 2, "{out:?}");
        assert_eq!(jb.stats().concealed, 1);
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn late_packets_teach_the_buffer_the_jitter_it_missed() {
        // A calm first second (the target settles at its minimum), then every third
        // packet takes 100 ms longer and arrives after the next ones were due. Each
        // late packet shows the target is too small: after the first few the buffer
        // must have grown, not go on concealing every third frame.
        let mut jb = AudioJitterBuffer::new(JitterConfig::default());
        let mut in_flight: Vec<(u64, u16)> = (0..400u16)
            .map(|i| {
                let extra = if i >= 50 && i % 3 == 1 { 100_000 } else { 0 };
                (u64::from(i) * 20_000 + 5_000 + extra, i)
            })
            .collect();
        in_flight.sort();
        let mut arrivals = in_flight.into_iter().peekable();
        let mut lost_after_start = 0;
        for tick in 0..420u64 {
            let now = tick * 20_000 + 10_000;
            while let Some(&(at, i)) = arrivals.peek() {
                if at > now {
                    break;
                }
                let (s, ts, p) = pkt(i);
                jb.insert(s, ts, &p, at);
                arrivals.next();
            }
            if matches!(jb.pull(now), JitterOutput::Conceal | JitterOutput::FecRecovery(_)) && tick >= 150 {
                lost_after_start += 1;
            }
        }
        let st = jb.stats();
        assert!(st.late <= 4, "late packets kept coming: {st:?}");
        assert_eq!(lost_after_start, 0, "still concealing after 3 s: {st:?}");
        assert!(jb.target_delay_us() >= 100_000, "target {} µs", jb.target_delay_us());
    }
}
