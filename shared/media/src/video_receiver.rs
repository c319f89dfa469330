//! Video receive path before the decoder: frame assembly from RTP packets with
//! reordering, missing-packet detection (NACK list), giving up on a frame after
//! a deadline (then a keyframe request), and the sender-side packet history that
//! answers NACKs. Sans-IO: every call takes an explicit `now` in microseconds.

use std::collections::BTreeMap;

use clinicmeet_rtp::ext::{unix_us_from_ntp, VideoLayer};
use clinicmeet_rtp::{h264, RtpView, SeqUnwrapper};

/// Receiver tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoReceiverConfig {
    /// How long a gap may stay open before it is NACKed: packets reordered by the
    /// network arrive within this time. Must exceed the path's reordering spread.
    pub reorder_wait_us: u64,
    /// Interval between repeated NACKs of a still-missing packet (about one RTT).
    pub nack_retry_us: u64,
    /// NACKs per missing packet before relying on the give-up deadline.
    pub max_nack_tries: u32,
    /// A frame whose packets have been missing this long is dropped and a keyframe requested.
    pub give_up_us: u64,
    /// Upper bound on buffered packets (a stalled stream never grows memory without bound).
    pub max_packets: usize,
    /// A jump in sequence numbers larger than this restarts the receiver.
    pub max_gap: u64,
}

impl Default for VideoReceiverConfig {
    fn default() -> Self {
        VideoReceiverConfig {
            reorder_wait_us: 20_000,
            nack_retry_us: 60_000,
            max_nack_tries: 5,
            give_up_us: 400_000,
            max_packets: 4_096,
            max_gap: 1_000,
        }
    }
}

/// A complete access unit ready for the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledFrame {
    /// NAL units without start codes.
    pub nals: Vec<Vec<u8>>,
    pub rtp_timestamp: u32,
    /// Capture time from the capture time extension, on the sender's media clock (µs), if present.
    pub capture_us: Option<u64>,
    pub keyframe: bool,
    pub temporal_id: u8,
    /// Local time the last packet of the frame arrived.
    pub completed_us: u64,
    pub first_seq: u16,
    pub last_seq: u16,
}

/// What [`VideoReceiver::poll`] hands out, in decode order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    Frame(AssembledFrame),
    /// Packets `first_seq..=last_seq` were abandoned. If `needs_keyframe`, the
    /// decoder's references are broken: send a PLI (the receiver also sets
    /// [`VideoReceiver::take_keyframe_request`]).
    Skipped {
        first_seq: u16,
        last_seq: u16,
        needs_keyframe: bool,
    },
}

#[derive(Debug, Clone)]
struct Stored {
    payload: Vec<u8>,
    timestamp: u32,
    marker: bool,
    layer: Option<VideoLayer>,
    capture_ntp: Option<u64>,
    arrival_us: u64,
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    since_us: u64,
    last_nack_us: Option<u64>,
    tries: u32,
}

/// Counters for statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub packets: u64,
    pub duplicates: u64,
    /// Packets that arrived after their frame was emitted or abandoned.
    pub too_late: u64,
    pub nacks_sent: u64,
    /// Packets that arrived after being NACKed.
    pub recovered: u64,
    pub frames: u64,
    pub frames_skipped: u64,
    pub keyframe_requests: u64,
    pub malformed: u64,
}

/// Assembles frames from the packets of one video SSRC.
#[derive(Debug, Default)]
pub struct VideoReceiver {
    cfg: VideoReceiverConfig,
    unwrap: SeqUnwrapper,
    packets: BTreeMap<u64, Stored>,
    missing: BTreeMap<u64, Missing>,
    nacked: std::collections::BTreeSet<u64>,
    highest: Option<u64>,
    /// First sequence number of the next frame to emit.
    next: Option<u64>,
    keyframe_request: bool,
    /// Arrival of the first packet while not yet anchored (for the start-up keyframe request).
    waiting_since_us: Option<u64>,
    /// Longest time a gap stayed open before its packet arrived un-NACKed (reordering).
    observed_reorder_us: u64,
    stats: ReceiverStats,
}

impl VideoReceiver {
    pub fn new(cfg: VideoReceiverConfig) -> Self {
        VideoReceiver { cfg, ..Default::default() }
    }

    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// Current wait before a gap is NACKed: the configured value, raised to 1.25× the
    /// longest reordering seen (at most 60 ms: a needless retransmission costs one
    /// packet, a late NACK delays every recovery and can cost a keyframe).
    pub fn reorder_wait_us(&self) -> u64 {
        self.cfg.reorder_wait_us.max((self.observed_reorder_us * 5 / 4).min(60_000))
    }

    /// Sets the NACK retry interval from the measured round-trip time.
    pub fn set_rtt_us(&mut self, rtt_us: u64) {
        self.cfg.nack_retry_us = (rtt_us + 10_000).clamp(20_000, 500_000);
    }

    /// Whether a keyframe should be requested (PLI); clears the flag.
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_request)
    }

    /// Asks for a keyframe from outside (e.g. the decoder reported broken references).
    pub fn request_keyframe(&mut self) {
        if !self.keyframe_request {
            self.stats.keyframe_requests += 1;
        }
        self.keyframe_request = true;
    }

    fn is_frame_start(&self, seq: u64) -> bool {
        let Some(p) = self.packets.get(&seq) else { return false };
        match p.layer {
            Some(l) => l.start_of_frame,
            None => self
                .packets
                .get(&(seq.wrapping_sub(1)))
                .is_some_and(|prev| prev.marker || prev.timestamp != p.timestamp),
        }
    }

    fn is_frame_end(p: &Stored) -> bool {
        p.marker || p.layer.is_some_and(|l| l.end_of_frame)
    }

    fn reset(&mut self) {
        self.packets.clear();
        self.missing.clear();
        self.nacked.clear();
        self.highest = None;
        self.next = None;
        self.waiting_since_us = None;
        self.request_keyframe();
    }

    /// Feeds one received RTP packet (first transmission or retransmission).
    pub fn insert(&mut self, pkt: &RtpView<'_>, now_us: u64) {
        self.stats.packets += 1;
        let ext = self.unwrap.unwrap(pkt.sequence);
        if self.next.is_some_and(|n| ext < n) {
            self.stats.too_late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        if let Some(h) = self.highest {
            if ext > h + self.cfg.max_gap {
                self.reset();
                self.unwrap = SeqUnwrapper::default();
                return self.insert(pkt, now_us);
            }
            if ext > h + 1 {
                if self.missing.len() as u64 + (ext - h - 1) > self.cfg.max_packets as u64 {
                    // More holes than we would ever NACK: the stream is hopeless, start over.
                    self.reset();
                    self.unwrap = SeqUnwrapper::default();
                    return self.insert(pkt, now_us);
                }
                for s in h + 1..ext {
                    self.missing.insert(s, Missing { since_us: now_us, last_nack_us: None, tries: 0 });
                }
            }
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        if let Some(m) = self.missing.remove(&ext) {
            if self.nacked.remove(&ext) {
                self.stats.recovered += 1;
            } else {
                // Reordered, not lost: learn how long reordering can take.
                self.observed_reorder_us = self.observed_reorder_us.max(now_us.saturating_sub(m.since_us));
            }
        }
        let ext_data = pkt.extensions();
        self.packets.insert(
            ext,
            Stored {
                payload: pkt.payload().to_vec(),
                timestamp: pkt.timestamp,
                marker: pkt.marker,
                layer: ext_data.video_layer,
                capture_ntp: ext_data.capture_time_ntp,
                arrival_us: now_us,
            },
        );
        if self.next.is_none() {
            self.anchor(ext, now_us);
        }
        // Bound memory: drop the oldest packets when the buffer is full.
        while self.packets.len() > self.cfg.max_packets {
            if let Some((&first, _)) = self.packets.iter().next() {
                self.packets.remove(&first);
                self.next = self.next.map(|n| n.max(first + 1));
            }
        }
    }

    /// Before the first frame: decoding can only begin at a keyframe, so wait for
    /// the start of one. Packets of a keyframe whose start is missing make the
    /// receiver NACK backwards until the start arrives.
    fn anchor(&mut self, ext: u64, now_us: u64) {
        self.waiting_since_us.get_or_insert(now_us);
        let Some(p) = self.packets.get(&ext) else { return };
        match p.layer {
            Some(l) if l.keyframe && l.start_of_frame => self.set_anchor(ext, now_us),
            Some(l) if l.keyframe => {
                // Walk back towards the keyframe's first packet.
                let mut s = ext;
                while s > 0
                    && self
                        .packets
                        .get(&s)
                        .is_some_and(|p| p.layer.is_some_and(|l| l.keyframe && !l.start_of_frame))
                {
                    s -= 1;
                }
                if s > 0 && !self.packets.contains_key(&s) {
                    self.missing.entry(s).or_insert(Missing {
                        since_us: now_us,
                        last_nack_us: None,
                        tries: 0,
                    });
                }
            }
            Some(_) => {}
            // Without the layer extension, start at the first recognisable frame start.
            None if self.is_frame_start(ext) => self.set_anchor(ext, now_us),
            None => {}
        }
    }

    fn set_anchor(&mut self, ext: u64, now_us: u64) {
        self.next = Some(ext);
        self.waiting_since_us = None;
        self.missing.retain(|&s, _| s > ext);
        self.packets.retain(|&s, _| s >= ext);
        // A start that arrived late (reordered or retransmitted) leaves holes between
        // it and the newest packet that were never counted missing: count them now,
        // or a lost one would stall the stream with nothing ever NACKed.
        let highest = self.highest.unwrap_or(ext);
        for s in ext + 1..highest {
            if !self.packets.contains_key(&s) {
                self.missing.entry(s).or_insert(Missing { since_us: now_us, last_nack_us: None, tries: 0 });
            }
        }
    }

    /// Sequence numbers to NACK now: gaps older than the reorder wait, and
    /// repeats for those NACKed more than a retry interval ago.
    pub fn nack_list(&mut self, now_us: u64) -> Vec<u16> {
        let floor = self.next.unwrap_or(0);
        let wait = self.reorder_wait_us();
        let mut out = Vec::new();
        for (&seq, m) in self.missing.range_mut(floor..) {
            let due = match m.last_nack_us {
                None => now_us.saturating_sub(m.since_us) >= wait,
                Some(t) => {
                    m.tries < self.cfg.max_nack_tries && now_us.saturating_sub(t) >= self.cfg.nack_retry_us
                }
            };
            if due {
                m.last_nack_us = Some(now_us);
                m.tries += 1;
                self.nacked.insert(seq);
                out.push(seq as u16);
            }
        }
        self.stats.nacks_sent += out.len() as u64;
        out
    }

    /// Earliest time something becomes due (a NACK, a give-up, or the keyframe
    /// request while no keyframe start has arrived), for the I/O driver's timer.
    pub fn poll_timeout(&self) -> Option<u64> {
        let floor = self.next.unwrap_or(0);
        let wait = self.reorder_wait_us();
        let waiting = self.waiting_since_us.map(|t| t + self.cfg.give_up_us);
        self.missing
            .range(floor..)
            .map(|(_, m)| match m.last_nack_us {
                None => m.since_us + wait,
                Some(t) if m.tries < self.cfg.max_nack_tries => {
                    (t + self.cfg.nack_retry_us).min(m.since_us + self.cfg.give_up_us)
                }
                Some(_) => m.since_us + self.cfg.give_up_us,
            })
            .chain(waiting)
            .min()
    }

    /// The next frame or skip event, if any; call until `None` after each insert or timeout.
    pub fn poll(&mut self, now_us: u64) -> Option<ReceiverEvent> {
        if let Some(since) = self.waiting_since_us {
            // No keyframe start in sight: ask for one (again after each give-up interval).
            if now_us.saturating_sub(since) >= self.cfg.give_up_us {
                self.waiting_since_us = Some(now_us);
                self.request_keyframe();
            }
        }
        loop {
            let start = self.next?;
            // Walk the frame from its first packet.
            let mut seq = start;
            let mut complete_end = None;
            while let Some(p) = self.packets.get(&seq) {
                if Self::is_frame_end(p) {
                    complete_end = Some(seq);
                    break;
                }
                seq += 1;
            }
            if let Some(end) = complete_end {
                if let Some(ev) = self.emit(start, end) {
                    return Some(ev);
                }
                continue; // malformed frame: skipped, try the next one
            }
            // Incomplete: give up once its oldest missing packet is past the deadline.
            let oldest = self.missing.range(start..).next().map(|(&s, m)| (s, m.since_us));
            let stalled = match oldest {
                Some((_, since)) => now_us.saturating_sub(since) >= self.cfg.give_up_us,
                None => false,
            };
            if !stalled {
                return None;
            }
            let gap = oldest.map_or(start, |(s, _)| s);
            // Resume at the first known frame start after the gap.
            let resume = self.packets.range(gap + 1..).map(|(&s, _)| s).find(|&s| self.is_frame_start(s));
            let Some(resume) = resume else {
                // No later frame start yet: abandon what we have and wait for one.
                self.request_keyframe();
                return None;
            };
            return Some(self.skip(start, resume));
        }
    }

    fn emit(&mut self, start: u64, end: u64) -> Option<ReceiverEvent> {
        let parts: Vec<Stored> = (start..=end).filter_map(|s| self.packets.remove(&s)).collect();
        self.next = Some(end + 1);
        self.missing.retain(|&s, _| s > end);
        let nals = match h264::depacketize(parts.iter().map(|p| p.payload.as_slice())) {
            Ok(n) if !n.is_empty() => n,
            _ => {
                self.stats.malformed += 1;
                self.stats.frames_skipped += 1;
                self.request_keyframe();
                return Some(ReceiverEvent::Skipped {
                    first_seq: start as u16,
                    last_seq: end as u16,
                    needs_keyframe: true,
                });
            }
        };
        let first = parts.first()?;
        self.stats.frames += 1;
        let layer = first.layer;
        let keyframe = layer.map_or_else(
            || crate::codec::h264::contains_idr(nals.iter().map(|n| n.as_slice())),
            |l| l.keyframe,
        );
        Some(ReceiverEvent::Frame(AssembledFrame {
            rtp_timestamp: first.timestamp,
            capture_us: parts.iter().find_map(|p| p.capture_ntp).map(unix_us_from_ntp),
            keyframe,
            temporal_id: layer.map_or(0, |l| l.temporal_id),
            completed_us: parts.iter().map(|p| p.arrival_us).max().unwrap_or(0),
            first_seq: start as u16,
            last_seq: end as u16,
            nals,
        }))
    }

    fn skip(&mut self, start: u64, resume: u64) -> ReceiverEvent {
        let dropped: Vec<Stored> = (start..resume).filter_map(|s| self.packets.remove(&s)).collect();
        // Only frames of the top temporal layer are unreferenced; anything else
        // (or frames we know nothing about) breaks the reference chain.
        let known_all = dropped.len() as u64 == resume - start;
        let droppable = known_all
            && !dropped.is_empty()
            && dropped.iter().all(|p| p.layer.is_some_and(|l| l.is_droppable()));
        self.missing.retain(|&s, _| s >= resume);
        self.nacked.retain(|&s| s >= resume);
        self.next = Some(resume);
        self.stats.frames_skipped += 1;
        if !droppable {
            self.request_keyframe();
        }
        ReceiverEvent::Skipped {
            first_seq: start as u16,
            last_seq: (resume - 1) as u16,
            needs_keyframe: !droppable,
        }
    }
}

/// At most one event per interval (keyframe requests towards a publisher, for example).
#[derive(Debug, Clone, Copy)]
pub struct RateLimiter {
    interval_us: u64,
    last_us: Option<u64>,
}

impl RateLimiter {
    pub fn new(interval_us: u64) -> Self {
        RateLimiter { interval_us, last_us: None }
    }

    /// Whether an event may happen now; records it if so.
    pub fn allow(&mut self, now_us: u64) -> bool {
        if self.last_us.is_some_and(|t| now_us.saturating_sub(t) < self.interval_us) {
            return false;
        }
        self.last_us = Some(now_us);
        true
    }
}

/// Sender-side history of recently sent packets, to answer NACKs.
#[derive(Debug)]
pub struct PacketHistory {
    slots: Vec<Option<(u16, u64, Vec<u8>)>>,
    max_age_us: u64,
}

impl PacketHistory {
    /// Keeps up to `capacity` packets (rounded up to a power of two) no older than `max_age_us`.
    pub fn new(capacity: usize, max_age_us: u64) -> Self {
        PacketHistory { slots: vec![None; capacity.clamp(16, 32_768).next_power_of_two()], max_age_us }
    }

    fn slot(&self, seq: u16) -> usize {
        usize::from(seq) & (self.slots.len() - 1)
    }

    /// Remembers a sent packet (serialized RTP).
    pub fn push(&mut self, seq: u16, packet: Vec<u8>, now_us: u64) {
        let i = self.slot(seq);
        self.slots[i] = Some((seq, now_us, packet));
    }

    /// The packet with this sequence number, if still held and fresh enough.
    pub fn get(&self, seq: u16, now_us: u64) -> Option<&[u8]> {
        match &self.slots[self.slot(seq)] {
            Some((s, t, p)) if *s == seq && now_us.saturating_sub(*t) <= self.max_age_us => Some(p),
            _ => None,
        }
    }

    /// Packets to resend for a NACK (those still held, in the order asked).
    pub fn retransmissions<'a>(
        &'a self,
        lost: &'a [u16],
        now_us: u64,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        lost.iter().filter_map(move |&s| self.get(s, now_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_rtp::{HeaderExtensions, RtpPacket};

    fn pkt(seq: u16, ts: u32, start: bool, end: bool, payload: Vec<u8>) -> Vec<u8> {
        RtpPacket {
            marker: end,
            payload_type: 102,
            sequence: seq,
            timestamp: ts,
            ssrc: 1,
            extensions: HeaderExtensions {
                video_layer: Some(VideoLayer {
                    start_of_frame: start,
                    end_of_frame: end,
                    keyframe: ts == 0,
                    temporal_layers: 1,
                    ..Default::default()
                }),
                ..Default::default()
            },
            payload,
        }
        .to_bytes()
    }

    fn feed(r: &mut VideoReceiver, bytes: &[u8], now: u64) {
        r.insert(&RtpView::parse(bytes).unwrap(), now);
    }

    #[test]
    fn reorders_and_assembles_fu_a_frames() {
        let nal: Vec<u8> = std::iter::once(0x65).chain(0..250).collect();
        let payloads = h264::packetize([nal.as_slice()], 60).unwrap();
        assert_eq!(payloads.len(), 5);
        let n = payloads.len();
        let pkts: Vec<_> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| pkt(65534u16.wrapping_add(i as u16), 0, i == 0, i + 1 == n, p))
            .collect();
        let mut r = VideoReceiver::new(VideoReceiverConfig::default());
        for i in [0, 2, 1] {
            feed(&mut r, &pkts[i], 0);
            assert_eq!(r.poll(0), None);
        }
        for p in &pkts[3..] {
            feed(&mut r, p, 0);
        }
        match r.poll(0) {
            Some(ReceiverEvent::Frame(f)) => assert_eq!(f.nals, vec![nal]),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.nack_list(1_000_000), Vec::<u16>::new());
    }

    #[test]
    fn nacks_after_reorder_wait_then_gives_up_with_keyframe_request() {
        let mut r = VideoReceiver::new(VideoReceiverConfig::default());
        feed(&mut r, &pkt(10, 0, true, true, vec![0x65, 1]), 0);
        feed(&mut r, &pkt(12, 1, false, true, vec![0x41, 1]), 1_000);
        feed(&mut r, &pkt(13, 2, true, true, vec![0x41, 2]), 2_000);
        assert!(matches!(r.poll(2_000), Some(ReceiverEvent::Frame(_))));
        assert_eq!(r.poll(2_000), None);
        assert_eq!(r.nack_list(10_000), Vec::<u16>::new());
        assert_eq!(r.nack_list(21_000), vec![11]);
        assert_eq!(r.nack_list(22_000), Vec::<u16>::new());
        assert_eq!(r.nack_list(81_000), vec![11]);
        assert_eq!(r.poll(300_000), None);
        assert_eq!(
            r.poll(401_000),
            Some(ReceiverEvent::Skipped { first_seq: 11, last_seq: 12, needs_keyframe: true })
        );
        assert!(r.take_keyframe_request());
        assert!(matches!(r.poll(401_000), Some(ReceiverEvent::Frame(f)) if f.first_seq == 13));
        // The retransmission arriving now is too late and ignored.
        feed(&mut r, &pkt(11, 1, true, false, vec![0x41]), 402_000);
        assert_eq!(r.stats().too_late, 1);
    }

    #[test]
    fn waits_for_a_keyframe_start_and_nacks_backwards_to_it() {
        let nal: Vec<u8> = std::iter::once(0x65).chain(0..250).collect();
        let payloads = h264::packetize([nal.as_slice()], 60).unwrap();
        let pkts: Vec<_> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| pkt(100 + i as u16, 0, i == 0, i == 4, p))
            .collect();
        let mut r = VideoReceiver::new(VideoReceiverConfig::default());
        for p in &pkts[2..] {
            feed(&mut r, p, 0);
        }
        assert_eq!(r.poll(0), None);
        assert_eq!(r.nack_list(30_000), vec![101]);
        feed(&mut r, &pkts[1], 31_000);
        assert_eq!(r.nack_list(61_000), vec![100]);
        feed(&mut r, &pkts[0], 62_000);
        assert!(
            matches!(r.poll(62_000), Some(ReceiverEvent::Frame(f)) if f.keyframe && f.nals == vec![nal.clone()])
        );
        assert!(!r.take_keyframe_request());
    }

    /// Reordering at the start: a keyframe's later packet first, then its start;
    /// the packet in between was lost and must be NACKed, not waited for forever.
    #[test]
    fn a_late_keyframe_start_still_nacks_the_holes_before_the_newest_packet() {
        let nal: Vec<u8> = std::iter::once(0x65).chain(0..250).collect();
        let payloads = h264::packetize([nal.as_slice()], 60).unwrap();
        let pkts: Vec<_> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| pkt(200 + i as u16, 0, i == 0, i == 4, p))
            .collect();
        let mut r = VideoReceiver::new(VideoReceiverConfig::default());
        feed(&mut r, &pkts[3], 0); // 203 first (walks back: 202 missing)
        feed(&mut r, &pkts[0], 1_000); // the start, late
        feed(&mut r, &pkts[2], 2_000); // 202 arrives; 201 is lost
        feed(&mut r, &pkts[4], 3_000);
        assert_eq!(r.poll(3_000), None);
        assert_eq!(r.nack_list(50_000), vec![201]);
        feed(&mut r, &pkts[1], 60_000);
        assert!(
            matches!(r.poll(60_000), Some(ReceiverEvent::Frame(f)) if f.keyframe && f.nals == vec![nal.clone()])
        );
    }

    #[test]
    fn asks_for_a_keyframe_when_none_arrives() {
        let mut r = VideoReceiver::new(VideoReceiverConfig::default());
        // A P-frame start before any keyframe is not an anchor.
        feed(&mut r, &pkt(90, 5, true, true, vec![0x41, 0]), 0);
        assert_eq!(r.poll(100_000), None);
        assert!(!r.take_keyframe_request());
        assert_eq!(r.poll(400_000), None);
        assert!(r.take_keyframe_request());
    }

    #[test]
    fn reorder_wait_adapts_to_observed_reordering() {
        let mut r = VideoReceiver::new(VideoReceiverConfig::default());
        feed(&mut r, &pkt(1, 0, true, true, vec![0x65, 1]), 0);
        feed(&mut r, &pkt(3, 1, true, true, vec![0x41, 1]), 1_000);
        // 2 arrives 18 ms after the gap opened, just before the 20 ms wait would NACK it.
        assert_eq!(r.nack_list(15_000), Vec::<u16>::new());
        feed(&mut r, &pkt(2, 1, true, true, vec![0x41, 1]), 19_000);
        assert_eq!(r.reorder_wait_us(), 22_500);
        r.set_rtt_us(100_000);
        feed(&mut r, &pkt(5, 2, true, true, vec![0x41, 1]), 30_000);
        assert_eq!(r.nack_list(51_000), Vec::<u16>::new());
        assert_eq!(r.nack_list(52_500), vec![4]);
        assert_eq!(r.nack_list(150_000), Vec::<u16>::new());
        assert_eq!(r.nack_list(162_500), vec![4]);
    }

    #[test]
    fn holes_are_bounded() {
        let mut r = VideoReceiver::new(VideoReceiverConfig { max_packets: 100, ..Default::default() });
        let mut seq = 0u16;
        for _ in 0..1_000 {
            feed(&mut r, &pkt(seq, 1, false, false, vec![0x41]), 0);
            seq = seq.wrapping_add(90);
        }
        assert!(r.missing.len() <= 100 && r.packets.len() <= 100);
    }

    #[test]
    fn rate_limiter() {
        let mut l = RateLimiter::new(100);
        assert!(l.allow(0) && !l.allow(99) && l.allow(100) && !l.allow(150));
    }

    #[test]
    fn history_answers_nacks() {
        let mut h = PacketHistory::new(64, 1_000_000);
        for s in 0..100u16 {
            h.push(s, vec![s as u8], 0);
        }
        let lost = [10u16, 50, 99];
        let got: Vec<_> = h.retransmissions(&lost, 10).collect();
        assert_eq!(got, vec![&[50u8][..], &[99u8][..]]);
        assert!(h.get(99, 2_000_000).is_none());
    }
}
