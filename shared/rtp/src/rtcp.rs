//! RTCP (RFC 3550, RFC 4585): sender and receiver reports, generic NACK and PLI,
//! compound parsing that never panics, and the timing helpers built on them
//! (RTP ↔ sender wall clock mapping, round-trip time, reception statistics).

use super::ext::ntp_from_unix_us;
use crate::error::{Result, RtpError};

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_RTPFB: u8 = 205;
pub const PT_PSFB: u8 = 206;
const FMT_NACK: u8 = 1;
const FMT_PLI: u8 = 1;

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received (0 if none).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    pub ssrc: u32,
    pub ntp_time: u64,
    pub rtp_time: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub reports: Vec<ReportBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
}

/// Generic NACK (RFC 4585 §6.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nack {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    /// Lost sequence numbers.
    pub lost: Vec<u16>,
}

/// Picture loss indication (RFC 4585 §6.3.1): a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pli {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpPacket {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    Nack(Nack),
    Pli(Pli),
    /// A well-formed packet of a type we do not use.
    Other {
        packet_type: u8,
        format: u8,
    },
}

fn be32(b: &[u8], at: usize) -> Result<u32> {
    let s = b.get(at..at + 4).ok_or(RtpError::Malformed("RTCP packet truncated"))?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn parse_blocks(body: &[u8], count: usize) -> Result<Vec<ReportBlock>> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = i * 24;
        if body.len() < at + 24 {
            return Err(RtpError::Malformed("RTCP report block truncated"));
        }
        let w1 = be32(body, at + 4)?;
        let lost = (w1 & 0x00ff_ffff) as i32;
        out.push(ReportBlock {
            ssrc: be32(body, at)?,
            fraction_lost: (w1 >> 24) as u8,
            cumulative_lost: if lost & 0x0080_0000 != 0 { lost - 0x0100_0000 } else { lost },
            highest_seq: be32(body, at + 8)?,
            jitter: be32(body, at + 12)?,
            last_sr: be32(body, at + 16)?,
            delay_since_last_sr: be32(body, at + 20)?,
        });
    }
    Ok(out)
}

/// Parses a compound RTCP packet (one or more packets back to back).
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>> {
    let mut out = Vec::new();
    let mut rest = buf;
    if rest.is_empty() {
        return Err(RtpError::Malformed("empty RTCP packet"));
    }
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RtpError::Malformed("RTCP header truncated"));
        }
        if rest[0] >> 6 != 2 {
            return Err(RtpError::Malformed("RTCP version is not 2"));
        }
        let padding = rest[0] & 0x20 != 0;
        let count = rest[0] & 0x1f;
        let pt = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        let pkt = rest.get(..len).ok_or(RtpError::Malformed("RTCP length exceeds datagram"))?;
        rest = &rest[len..];
        let mut body = &pkt[4..];
        if padding {
            let pad = usize::from(*pkt.last().unwrap_or(&0));
            if pad == 0 || pad > body.len() {
                return Err(RtpError::Malformed("RTCP padding invalid"));
            }
            body = &body[..body.len() - pad];
        }
        out.push(match pt {
            PT_SR => {
                if body.len() < 24 {
                    return Err(RtpError::Malformed("RTCP SR truncated"));
                }
                SenderReport {
                    ssrc: be32(body, 0)?,
                    ntp_time: (u64::from(be32(body, 4)?) << 32) | u64::from(be32(body, 8)?),
                    rtp_time: be32(body, 12)?,
                    packet_count: be32(body, 16)?,
                    octet_count: be32(body, 20)?,
                    reports: parse_blocks(&body[24..], usize::from(count))?,
                }
                .into()
            }
            PT_RR => ReceiverReport {
                ssrc: be32(body, 0)?,
                reports: parse_blocks(&body[4..], usize::from(count))?,
            }
            .into(),
            PT_RTPFB if count == FMT_NACK => {
                let (sender_ssrc, media_ssrc) = (be32(body, 0)?, be32(body, 4)?);
                let fci = &body[8..];
                if fci.len() % 4 != 0 {
                    return Err(RtpError::Malformed("NACK FCI not a multiple of 4 bytes"));
                }
                let mut lost = Vec::new();
                for item in fci.chunks_exact(4) {
                    let pid = u16::from_be_bytes([item[0], item[1]]);
                    let blp = u16::from_be_bytes([item[2], item[3]]);
                    lost.push(pid);
                    for bit in 0..16 {
                        if blp & (1 << bit) != 0 {
                            lost.push(pid.wrapping_add(bit + 1));
                        }
                    }
                }
                RtcpPacket::Nack(Nack { sender_ssrc, media_ssrc, lost })
            }
            PT_PSFB if count == FMT_PLI => {
                RtcpPacket::Pli(Pli { sender_ssrc: be32(body, 0)?, media_ssrc: be32(body, 4)? })
            }
            _ => RtcpPacket::Other { packet_type: pt, format: count },
        });
    }
    Ok(out)
}

impl From<SenderReport> for RtcpPacket {
    fn from(v: SenderReport) -> Self {
        RtcpPacket::SenderReport(v)
    }
}
impl From<ReceiverReport> for RtcpPacket {
    fn from(v: ReceiverReport) -> Self {
        RtcpPacket::ReceiverReport(v)
    }
}

fn header(out: &mut Vec<u8>, count: u8, pt: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0x80 | (count & 0x1f), pt, 0, 0]);
    at
}

fn finish(out: &mut [u8], at: usize) {
    let words = ((out.len() - at) / 4 - 1) as u16;
    out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
}

fn write_blocks(out: &mut Vec<u8>, blocks: &[ReportBlock]) {
    for b in blocks {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        for w in [b.highest_seq, b.jitter, b.last_sr, b.delay_since_last_sr] {
            out.extend_from_slice(&w.to_be_bytes());
        }
    }
}

impl RtcpPacket {
    /// Appends the serialized packet (at most 31 report blocks are written).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            RtcpPacket::SenderReport(sr) => {
                let blocks = &sr.reports[..sr.reports.len().min(31)];
                let at = header(out, blocks.len() as u8, PT_SR);
                out.extend_from_slice(&sr.ssrc.to_be_bytes());
                out.extend_from_slice(&sr.ntp_time.to_be_bytes());
                for w in [sr.rtp_time, sr.packet_count, sr.octet_count] {
                    out.extend_from_slice(&w.to_be_bytes());
                }
                write_blocks(out, blocks);
                finish(out, at);
            }
            RtcpPacket::ReceiverReport(rr) => {
                let blocks = &rr.reports[..rr.reports.len().min(31)];
                let at = header(out, blocks.len() as u8, PT_RR);
                out.extend_from_slice(&rr.ssrc.to_be_bytes());
                write_blocks(out, blocks);
                finish(out, at);
            }
            RtcpPacket::Nack(n) => {
                let at = header(out, FMT_NACK, PT_RTPFB);
                out.extend_from_slice(&n.sender_ssrc.to_be_bytes());
                out.extend_from_slice(&n.media_ssrc.to_be_bytes());
                for (pid, blp) in nack_items(&n.lost) {
                    out.extend_from_slice(&pid.to_be_bytes());
                    out.extend_from_slice(&blp.to_be_bytes());
                }
                finish(out, at);
            }
            RtcpPacket::Pli(p) => {
                let at = header(out, FMT_PLI, PT_PSFB);
                out.extend_from_slice(&p.sender_ssrc.to_be_bytes());
                out.extend_from_slice(&p.media_ssrc.to_be_bytes());
                finish(out, at);
            }
            RtcpPacket::Other { .. } => {}
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

/// Serializes several packets as one compound packet.
pub fn write_compound(packets: &[RtcpPacket]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in packets {
        p.write_to(&mut v);
    }
    v
}

/// Groups lost sequence numbers into (PID, BLP) pairs.
fn nack_items(lost: &[u16]) -> Vec<(u16, u16)> {
    let mut items: Vec<(u16, u16)> = Vec::new();
    for &seq in lost {
        if let Some((pid, blp)) = items.last_mut() {
            let d = seq.wrapping_sub(*pid);
            if d == 0 {
                continue;
            }
            if (1..=16).contains(&d) {
                *blp |= 1 << (d - 1);
                continue;
            }
        }
        items.push((seq, 0));
    }
    items
}

/// Middle 32 bits of an NTP timestamp (the LSR / DLSR time base, 1/65536 s).
pub fn ntp_mid32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Round-trip time (µs) seen by a sender from a report block, given the NTP time
/// the report arrived. `None` if the block carries no SR reference.
pub fn rtt_us(block: &ReportBlock, arrival_ntp: u64) -> Option<u64> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = ntp_mid32(arrival_ntp).wrapping_sub(block.last_sr).wrapping_sub(block.delay_since_last_sr);
    if rtt > 0x8000_0000 {
        return Some(0); // clocks disagree slightly: call it zero
    }
    Some(u64::from(rtt) * 1_000_000 / 65_536)
}

/// What a receiver remembers of a sender's last SR: what it needs to fill the
/// LSR / DLSR fields that let the sender measure its round trip. (Mapping RTP
/// timestamps onto the sender's clock is `clinicmeet_media::sync::RtpClock`; the clock
/// offset is `clinicmeet_media::sync::ClockOffset`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSr {
    /// Middle 32 bits of the SR's NTP time.
    pub lsr: u32,
    /// Local time the SR arrived (µs, any local clock).
    pub arrival_us: u64,
}

impl LastSr {
    pub fn new(sr: &SenderReport, arrival_us: u64) -> Self {
        LastSr { lsr: ntp_mid32(sr.ntp_time), arrival_us }
    }

    /// LSR and DLSR for a report block sent at local time `now_us`.
    pub fn lsr_dlsr(&self, now_us: u64) -> (u32, u32) {
        let d = now_us.saturating_sub(self.arrival_us);
        (self.lsr, (d * 65_536 / 1_000_000) as u32)
    }
}

/// Builds a sender report for "now".
pub fn sender_report(ssrc: u32, now_unix_us: u64, rtp_now: u32, packets: u32, octets: u32) -> SenderReport {
    SenderReport {
        ssrc,
        ntp_time: ntp_from_unix_us(now_unix_us),
        rtp_time: rtp_now,
        packet_count: packets,
        octet_count: octets,
        reports: Vec::new(),
    }
}

/// Per-source reception statistics for receiver reports (RFC 3550 §6.4.1, A.3, A.8).
#[derive(Debug, Clone, Default)]
pub struct ReceptionStats {
    pub ssrc: u32,
    clock_rate: u32,
    base_seq: Option<u64>,
    unwrap: super::SeqUnwrapper,
    highest: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    last_transit: Option<i64>,
    /// Jitter estimate in RTP units ×16 (as in RFC 3550 A.8).
    jitter16: i64,
}

impl ReceptionStats {
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        ReceptionStats { ssrc, clock_rate: clock_rate.max(1), ..Default::default() }
    }

    /// Records a packet arrival (local µs).
    pub fn on_packet(&mut self, seq: u16, rtp_ts: u32, arrival_us: u64) {
        let ext = self.unwrap.unwrap(seq);
        if self.base_seq.is_none() {
            self.base_seq = Some(ext);
            self.highest = ext;
        }
        self.highest = self.highest.max(ext);
        self.received += 1;
        let arrival_rtp = (arrival_us as i64).wrapping_mul(i64::from(self.clock_rate)) / 1_000_000;
        let transit = arrival_rtp.wrapping_sub(i64::from(rtp_ts));
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            // Ignore timestamp jumps (DTX gaps, resets) larger than a second.
            if d < i64::from(self.clock_rate) {
                self.jitter16 += d - ((self.jitter16 + 8) >> 4);
            }
        }
        self.last_transit = Some(transit);
    }

    /// Interarrival jitter in RTP units.
    pub fn jitter(&self) -> u32 {
        (self.jitter16 >> 4).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Packets expected minus received so far.
    pub fn cumulative_lost(&self) -> i64 {
        let expected = self.base_seq.map_or(0, |b| self.highest + 1 - b);
        expected as i64 - self.received as i64
    }

    /// A report block; resets the "fraction lost" interval.
    pub fn report_block(&mut self, sender: Option<&LastSr>, now_local_us: u64) -> ReportBlock {
        let expected = self.base_seq.map_or(0, |b| self.highest + 1 - b);
        let exp_int = expected - self.expected_prior;
        let rec_int = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_int = exp_int as i64 - rec_int as i64;
        let fraction =
            if exp_int == 0 || lost_int <= 0 { 0 } else { ((lost_int << 8) / exp_int as i64).min(255) as u8 };
        let (last_sr, delay_since_last_sr) = sender.map_or((0, 0), |s| s.lsr_dlsr(now_local_us));
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost: fraction,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            // The unwrapper starts one cycle in; RTCP counts cycles from zero.
            highest_seq: self.highest.saturating_sub(1 << 16) as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// How often receivers report.
pub const REPORT_INTERVAL_US: u64 = 1_000_000;
/// Sources one reporter follows at most (a track's simulcast encodings).
const MAX_SOURCES: usize = 4;

/// One receiver's reports for the streams it receives on one flow (a track's
/// encodings): feed it every RTP packet and sender report, and poll it for a
/// receiver report once per [`REPORT_INTERVAL_US`]. Sans-IO.
#[derive(Debug, Clone)]
pub struct ReceiverReporter {
    /// The reporter's own SSRC (the report's sender).
    ssrc: u32,
    clock_rate: u32,
    sources: Vec<(ReceptionStats, Option<LastSr>)>,
    last_report_us: Option<u64>,
}

impl ReceiverReporter {
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        ReceiverReporter { ssrc, clock_rate, sources: Vec::new(), last_report_us: None }
    }

    fn source(&mut self, ssrc: u32) -> Option<&mut (ReceptionStats, Option<LastSr>)> {
        match self.sources.iter().position(|(s, _)| s.ssrc == ssrc) {
            Some(i) => self.sources.get_mut(i),
            None if self.sources.len() < MAX_SOURCES => {
                self.sources.push((ReceptionStats::new(ssrc, self.clock_rate), None));
                self.sources.last_mut()
            }
            None => None,
        }
    }

    /// An RTP packet of source `ssrc` arrived at local time `now_us`.
    pub fn on_rtp(&mut self, ssrc: u32, seq: u16, rtp_ts: u32, now_us: u64) {
        if let Some((stats, _)) = self.source(ssrc) {
            stats.on_packet(seq, rtp_ts, now_us);
        }
    }

    /// A sender report arrived at local time `now_us`.
    pub fn on_sender_report(&mut self, sr: &SenderReport, now_us: u64) {
        if let Some((_, last)) = self.source(sr.ssrc) {
            *last = Some(LastSr::new(sr, now_us));
        }
    }

    /// When [`poll`](Self::poll) next has a report (`None` before anything was received).
    pub fn next_report_us(&self) -> Option<u64> {
        if self.sources.is_empty() {
            return None;
        }
        Some(self.last_report_us.map_or(0, |t| t + REPORT_INTERVAL_US))
    }

    /// A receiver report when one is due (and something was received).
    pub fn poll(&mut self, now_us: u64) -> Option<ReceiverReport> {
        if self.sources.is_empty() || self.last_report_us.is_some_and(|t| now_us < t + REPORT_INTERVAL_US) {
            return None;
        }
        self.last_report_us = Some(now_us);
        let reports =
            self.sources.iter_mut().map(|(stats, last)| stats.report_block(last.as_ref(), now_us)).collect();
        Some(ReceiverReport { ssrc: self.ssrc, reports })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_round_trip() {
        let block = ReportBlock {
            ssrc: 5,
            fraction_lost: 12,
            cumulative_lost: -3,
            highest_seq: 70_000,
            jitter: 9,
            last_sr: 1,
            delay_since_last_sr: 2,
        };
        let pkts = vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 1,
                ntp_time: 0x1122_3344_5566_7788,
                rtp_time: 3,
                packet_count: 4,
                octet_count: 5,
                reports: vec![block],
            }),
            RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 2, reports: vec![block, block] }),
            RtcpPacket::Nack(Nack { sender_ssrc: 1, media_ssrc: 2, lost: vec![65535, 0, 3, 16, 40] }),
            RtcpPacket::Pli(Pli { sender_ssrc: 7, media_ssrc: 8 }),
        ];
        let bytes = write_compound(&pkts);
        assert!(super::super::is_rtcp(&bytes));
        assert_eq!(parse_compound(&bytes).unwrap(), pkts);
    }

    #[test]
    fn truncated_and_bad_lengths_are_errors() {
        let bytes = RtcpPacket::Pli(Pli { sender_ssrc: 7, media_ssrc: 8 }).to_bytes();
        for n in 0..bytes.len() {
            assert!(parse_compound(&bytes[..n]).is_err(), "{n}");
        }
        let mut b = bytes.clone();
        b[3] = 9;
        assert!(parse_compound(&b).is_err());
    }

    #[test]
    fn lsr_and_dlsr_give_the_sender_its_round_trip() {
        let sr = sender_report(1, 1_763_900_000_000_000, 90_000, 0, 0);
        let last = LastSr::new(&sr, 5_000_000);
        // The receiver reports 30 ms after the SR arrived; the report takes 20 ms back.
        let (lsr, dlsr) = last.lsr_dlsr(5_030_000);
        let block = ReportBlock { last_sr: lsr, delay_since_last_sr: dlsr, ..Default::default() };
        // SR took 20 ms to arrive, report 20 ms back: sender sees it 70 ms after the SR.
        let rtt = rtt_us(&block, ntp_from_unix_us(1_763_900_000_070_000)).unwrap();
        assert!((39_900..=40_100).contains(&rtt), "{rtt}");
    }

    #[test]
    fn reporter_reports_each_source_once_a_second() {
        let mut r = ReceiverReporter::new(77, 90_000);
        assert!(r.poll(0).is_none(), "nothing received, nothing to report");
        let sr = sender_report(5, 1_763_900_000_000_000, 0, 0, 0);
        r.on_sender_report(&sr, 100_000);
        // Source 5 loses one packet in ten; source 6 loses none.
        for seq in 0..100u16 {
            if seq % 10 != 3 {
                r.on_rtp(5, seq, u32::from(seq) * 3000, 100_000 + u64::from(seq) * 1000);
            }
            r.on_rtp(6, seq, u32::from(seq) * 3000, 100_000 + u64::from(seq) * 1000);
        }
        let rr = r.poll(300_000).expect("first report at once");
        assert_eq!(rr.ssrc, 77);
        let b5 = rr.reports.iter().find(|b| b.ssrc == 5).unwrap();
        let b6 = rr.reports.iter().find(|b| b.ssrc == 6).unwrap();
        assert_eq!(b5.cumulative_lost, 10);
        assert!((24..=27).contains(&b5.fraction_lost), "{}", b5.fraction_lost);
        assert_eq!(b6.fraction_lost, 0);
        assert_eq!(b5.last_sr, ntp_mid32(sr.ntp_time));
        assert_eq!(b5.delay_since_last_sr, (200_000u64 * 65_536 / 1_000_000) as u32);
        assert_eq!(b6.last_sr, 0, "no SR of source 6 yet");
        assert!(r.poll(1_200_000).is_none(), "not before a second has passed");
        let again = r.poll(1_300_000).expect("a second later");
        assert!(again.reports.iter().all(|b| b.fraction_lost == 0), "no new loss in the interval");
        // A packet of a fifth source is not followed (a track has at most four).
        for ssrc in 7..10 {
            r.on_rtp(ssrc, 0, 0, 1_400_000);
        }
        assert_eq!(r.poll(2_400_000).unwrap().reports.len(), 4);
    }

    #[test]
    fn reception_stats_count_loss() {
        let mut s = ReceptionStats::new(9, 90_000);
        for seq in [65530u16, 65531, 65533, 65534, 0, 2] {
            s.on_packet(seq, 0, 0);
        }
        let b = s.report_block(None, 0);
        assert_eq!(b.cumulative_lost, 3);
        assert_eq!(b.fraction_lost, (3 * 256 / 9) as u8);
        assert_eq!(b.highest_seq, (1 << 16) | 2);
        assert_eq!(s.report_block(None, 0).fraction_lost, 0);
    }
}
