//! Lip sync: one participant's audio and video played in step.
//!
//! Audio and video RTP timestamps run on unrelated clocks (48 kHz from the
//! first sample, 90 kHz from the capture clock). Each stream's RTCP sender
//! report pairs an RTP timestamp with the sender's wall clock, which maps both
//! onto one sender timeline ([`RtpClock`]). Playout stays on local monotonic
//! time and RTP timestamps: audio plays when its jitter buffer says so, and
//! [`LipSync`] learns from it how far local playout trails the sender timeline
//! (`audio offset`). A decoded video frame is then due at its sender time plus
//! that offset: early frames are held until then; when frames keep arriving
//! after their due time (video's path is slower: frame assembly, NACK waits,
//! decoding), the audio is delayed instead, in small steps so the listener
//! hears no gap.
//!
//! [`ClockOffset`] estimates how far the sender's clock is from ours, from the
//! same reports, for glass-to-glass latency across hosts.
//!
//! Sans-IO: every call takes the local time in µs.

use std::collections::VecDeque;

/// Maps one stream's RTP timestamps onto its sender's wall clock (µs) from the
/// latest sender report.
#[derive(Debug, Clone, Copy)]
pub struct RtpClock {
    rate: u32,
    report: Option<(i64, u32)>,
}

impl RtpClock {
    pub fn new(rate: u32) -> Self {
        RtpClock { rate: rate.max(1), report: None }
    }

    /// A sender report: `rtp` was the stream's timestamp at sender time `sender_us`.
    pub fn on_sender_report(&mut self, sender_us: u64, rtp: u32) {
        self.report = Some((sender_us as i64, rtp));
    }

    /// Sender time of an RTP timestamp (within ±2^31 ticks of the report).
    pub fn sender_us(&self, rtp: u32) -> Option<i64> {
        let (at, base) = self.report?;
        let ticks = i64::from(rtp.wrapping_sub(base) as i32);
        Some(at + ticks * 1_000_000 / i64::from(self.rate))
    }
}

/// Longest a decoded frame is held for its audio.
pub const MAX_VIDEO_HOLD_US: i64 = 300_000;
/// Most the audio is delayed for late video.
pub const MAX_AUDIO_DELAY_US: u64 = 300_000;
/// Audio delay changes by at most this much per adjustment (one 20 ms frame
/// inserted or dropped, never an audible gap).
pub const AUDIO_DELAY_STEP_US: u64 = 20_000;
/// Adjustment interval.
pub const ADJUST_EVERY_US: u64 = 500_000;
/// Video later than this after its due time counts as late.
const LATE_TOLERANCE_US: i64 = 10_000;

/// Keeps one participant's video in step with its audio.
#[derive(Debug, Clone)]
pub struct LipSync {
    audio: RtpClock,
    video: RtpClock,
    /// Local playout time minus sender time of the audio last played.
    audio_offset_us: Option<i64>,
    /// Extra audio delay asked of the jitter buffer.
    audio_delay_us: u64,
    /// Lateness of video frames (decoded minus due, µs) since the last adjustment.
    lateness: Vec<i64>,
    last_adjust_us: Option<u64>,
}

impl Default for LipSync {
    fn default() -> Self {
        LipSync {
            audio: RtpClock::new(clinicmeet_rtp::AUDIO_CLOCK_RATE),
            video: RtpClock::new(clinicmeet_rtp::VIDEO_CLOCK_RATE),
            audio_offset_us: None,
            audio_delay_us: 0,
            lateness: Vec::new(),
            last_adjust_us: None,
        }
    }
}

impl LipSync {
    pub fn on_audio_sender_report(&mut self, sender_us: u64, rtp: u32) {
        self.audio.on_sender_report(sender_us, rtp);
    }

    pub fn on_video_sender_report(&mut self, sender_us: u64, rtp: u32) {
        self.video.on_sender_report(sender_us, rtp);
    }

    /// The audio frame with timestamp `rtp` started playing at `now_us`.
    pub fn on_audio_played(&mut self, rtp: u32, now_us: u64) {
        if let Some(s) = self.audio.sender_us(rtp) {
            self.audio_offset_us = Some(now_us as i64 - s);
        }
    }

    /// A video frame with timestamp `rtp` was decoded at `now_us`: the local
    /// time to show it (`now_us` when it is late or nothing is known yet).
    pub fn video_due_us(&mut self, rtp: u32, now_us: u64) -> u64 {
        let (Some(sender), Some(offset)) = (self.video.sender_us(rtp), self.audio_offset_us) else {
            return now_us;
        };
        let due = sender + offset;
        let now = now_us as i64;
        if self.lateness.len() < 256 {
            self.lateness.push(now - due);
        }
        if due - now > MAX_VIDEO_HOLD_US {
            // Implausible (a stale report or a clock jump): do not freeze the picture.
            return now_us;
        }
        due.max(now) as u64
    }

    /// Extra delay the audio jitter buffer should add so video is not behind
    /// audio. Call about every 20 ms; moves at most one step per [`ADJUST_EVERY_US`].
    pub fn audio_delay_us(&mut self, now_us: u64) -> u64 {
        let due = self.last_adjust_us.is_none_or(|t| now_us.saturating_sub(t) >= ADJUST_EVERY_US);
        if !due || self.lateness.len() < 5 {
            return self.audio_delay_us;
        }
        self.last_adjust_us = Some(now_us);
        self.lateness.sort_unstable();
        // Nine frames in ten on time: the 90th percentile of lateness.
        let p90 = self.lateness[self.lateness.len() * 9 / 10];
        self.lateness.clear();
        if p90 > LATE_TOLERANCE_US {
            self.audio_delay_us = (self.audio_delay_us + AUDIO_DELAY_STEP_US).min(MAX_AUDIO_DELAY_US);
        } else if p90 < -(AUDIO_DELAY_STEP_US as i64) - LATE_TOLERANCE_US {
            // Video is comfortably early: give back audio delay (frames are held instead).
            self.audio_delay_us = self.audio_delay_us.saturating_sub(AUDIO_DELAY_STEP_US);
        }
        self.audio_delay_us
    }
}

/// Sender reports kept for the offset estimate.
const OFFSET_WINDOW_US: u64 = 30_000_000;
/// Measurement slack beyond the round trip (scheduling, the relay's forwarding).
const OFFSET_MARGIN_US: i64 = 2_000;

/// How far a sender's clock is from the local one (local minus sender, µs),
/// from its RTCP sender reports.
///
/// A report stamped `s` on the sender's clock arrives at local time
/// `a = s + offset + delay`, with `delay >= 0`. The smallest `a - s` of the last
/// 30 s is `offset` plus the quickest delay; that delay (publisher → relay →
/// here) is taken as one local round trip to the relay (two hops of about half a
/// round trip each). Within that uncertainty the clocks are taken to agree and
/// the offset is 0: on one host the capture times are then used as they are
/// (exact), and across hosts only an offset beyond what the path explains is
/// corrected, to within about half a round trip.
#[derive(Debug, Clone, Default)]
pub struct ClockOffset {
    /// (arrival, arrival minus sender time) of recent reports.
    reports: VecDeque<(u64, i64)>,
    rtt_us: u64,
    offset_us: i64,
}

impl ClockOffset {
    /// A sender report stamped `sender_us` arrived at local time `arrival_us`.
    pub fn on_sender_report(&mut self, sender_us: u64, arrival_us: u64) {
        while self.reports.front().is_some_and(|(t, _)| arrival_us.saturating_sub(*t) > OFFSET_WINDOW_US) {
            self.reports.pop_front();
        }
        self.reports.push_back((arrival_us, arrival_us as i64 - sender_us as i64));
        self.update();
    }

    /// The local round trip to the relay.
    pub fn set_rtt(&mut self, rtt_us: u64) {
        self.rtt_us = rtt_us;
        self.update();
    }

    fn update(&mut self) {
        let Some(quickest) = self.reports.iter().map(|(_, d)| *d).min() else { return };
        let path = self.rtt_us.min(i64::MAX as u64) as i64;
        let estimate = quickest - path;
        self.offset_us = if estimate.abs() <= path + OFFSET_MARGIN_US { 0 } else { estimate };
    }

    /// Local minus sender clock, µs (0 while the clocks agree or nothing is known).
    pub fn offset_us(&self) -> i64 {
        self.offset_us
    }

    /// A sender-clock time on the local clock.
    pub fn to_local_us(&self, sender_us: u64) -> u64 {
        (sender_us as i64).saturating_add(self.offset_us).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_clock_maps_through_wraparound() {
        let mut c = RtpClock::new(90_000);
        assert_eq!(c.sender_us(0), None);
        c.on_sender_report(10_000_000, u32::MAX - 89_999);
        assert_eq!(c.sender_us(u32::MAX - 89_999), Some(10_000_000));
        // One and two seconds later, across the wrap.
        assert_eq!(c.sender_us(0), Some(11_000_000));
        assert_eq!(c.sender_us(90_000), Some(12_000_000));
        assert_eq!(c.sender_us(u32::MAX - 179_999), Some(9_000_000));
    }

    /// A participant whose camera frames are captured at the same instants as its
    /// audio; audio plays `audio_latency` after capture; video is decoded
    /// `video_latency` after capture. Returns the skew (video shown minus audio of
    /// the same instant played, µs) after `secs` seconds.
    fn simulate(audio_latency: u64, video_latency: u64, secs: u64) -> (i64, u64) {
        let mut s = LipSync::default();
        // Sender clocks: audio RTP starts at 1234 when the sender clock reads 5 s;
        // video RTP follows the capture clock at 90 kHz.
        let t0 = 5_000_000u64;
        let audio_rtp = |t: u64| 1234u32.wrapping_add(((t - t0) * 48 / 1000) as u32);
        let video_rtp = |t: u64| (t * 9 / 100) as u32;
        s.on_audio_sender_report(t0, audio_rtp(t0));
        s.on_video_sender_report(t0, video_rtp(t0));
        // The local clock is 1 h ahead of the sender's (it must not matter).
        let local = |t: u64| t + 3_600_000_000;
        let mut delay = 0;
        let mut skew = 0;
        let mut t = t0;
        while t < t0 + secs * 1_000_000 {
            // Audio captured at t plays at t + latency + the sync delay.
            s.on_audio_played(audio_rtp(t), local(t + audio_latency + delay));
            delay = s.audio_delay_us(local(t + audio_latency + delay));
            if (t - t0).is_multiple_of(40_000) {
                let decoded = local(t + video_latency);
                let shown = s.video_due_us(video_rtp(t), decoded);
                let audio_played = local(t + audio_latency + delay);
                skew = shown as i64 - audio_played as i64;
            }
            t += 20_000;
        }
        (skew, delay)
    }

    #[test]
    fn early_video_is_held_for_its_audio() {
        let (skew, delay) = simulate(80_000, 30_000, 5);
        assert!(skew.abs() <= 1_000, "skew {skew} µs");
        assert_eq!(delay, 0, "video early: audio is not delayed");
    }

    #[test]
    fn late_video_delays_the_audio_in_small_steps() {
        let (skew, delay) = simulate(40_000, 190_000, 10);
        assert!(skew.abs() <= 20_000, "skew {skew} µs");
        assert!((140_000..=180_000).contains(&delay), "audio delayed {delay} µs");
        // Without sync the skew would have been 150 ms.
    }

    #[test]
    fn nothing_is_held_without_sender_reports() {
        let mut s = LipSync::default();
        s.on_audio_played(1000, 50_000);
        assert_eq!(s.video_due_us(90_000, 60_000), 60_000);
        assert_eq!(s.audio_delay_us(60_000), 0);
    }

    #[test]
    fn clocks_of_one_host_are_left_alone() {
        let mut c = ClockOffset::default();
        c.set_rtt(400);
        // Same clock, 0.3-3 ms from sender to here.
        for (i, delay) in [3_000u64, 300, 1_200, 800].into_iter().enumerate() {
            let sent = 10_000_000 + i as u64 * 1_000_000;
            c.on_sender_report(sent, sent + delay);
        }
        assert_eq!(c.offset_us(), 0);
        assert_eq!(c.to_local_us(12_345_678), 12_345_678);
    }

    #[test]
    fn a_sender_clock_ten_seconds_ahead_is_corrected_to_within_half_a_round_trip() {
        let mut c = ClockOffset::default();
        c.set_rtt(40_000);
        let skew: i64 = 10_000_000; // the sender's clock reads 10 s more
                                    // True path 15-40 ms (queueing varies); the quickest is 15 ms.
        for (i, delay) in [40_000i64, 15_000, 22_000, 31_000].into_iter().enumerate() {
            let local = 100_000_000 + i as i64 * 1_000_000;
            c.on_sender_report((local - delay + skew) as u64, local as u64);
        }
        let err = c.offset_us() + skew;
        assert!(err.abs() <= 25_000, "offset {} (error {err} µs)", c.offset_us());
        // A capture 10 s "in the future" on the sender's clock is about now here.
        let local_capture = c.to_local_us(200_000_000 + skew as u64) as i64;
        assert!((local_capture - 200_000_000).abs() <= 25_000);
    }

    #[test]
    fn a_sender_clock_set_back_is_followed_once_older_reports_age_out() {
        let mut c = ClockOffset::default();
        c.set_rtt(1_000);
        for i in 0..5u64 {
            let local = 1_000_000 + i * 1_000_000;
            c.on_sender_report(local - 1_000, local);
        }
        assert_eq!(c.offset_us(), 0);
        // The sender's clock is set 5 s back: its reports now look 5 s slow.
        let mut offsets = Vec::new();
        for i in 5..45u64 {
            let local = 1_000_000 + i * 1_000_000;
            c.on_sender_report(local - 1_000 - 5_000_000, local);
            offsets.push(c.offset_us());
        }
        // The quickest report of the window still speaks for the old clock...
        assert_eq!(offsets[10], 0);
        // ...until it is 30 s old.
        assert!((offsets.last().unwrap() - 5_000_000).abs() < 2_000, "{offsets:?}");
    }
}
