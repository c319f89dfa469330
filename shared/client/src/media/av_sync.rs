//! Lip sync glue: one [`AvSync`] per remote participant, shared by the audio
//! playout loop (which tells it what is playing and applies the audio delay it
//! asks for) and the camera track's receive thread (which holds decoded frames
//! until they are due). The timing logic is [`clinicmeet_media::sync::LipSync`];
//! this adds the sender reports' parsing and the measurement of the result.
//!
//! Measurement is independent of the mechanism: every packet carries the
//! sender's capture time (abs-capture-time extension), so at the moment a frame
//! is shown its capture-to-display latency can be compared with the audio's
//! capture-to-playout latency. Their difference is the skew reported in the
//! stats (`av_skew_ms`); the two clocks' offset cancels out of it.
//!
//! The same sender reports give the sender's clock offset ([`ClockOffset`]),
//! which puts its capture times on the local clock for glass-to-glass latency.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use clinicmeet_media::pipeline::DecodedVideo;
use clinicmeet_media::sync::{ClockOffset, LipSync};
use clinicmeet_rtp::ext::unix_us_from_ntp;
use clinicmeet_rtp::rtcp::SenderReport;
use clinicmeet_rtp::RtpView;

/// Which of a participant's streams an RTCP packet came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStream {
    Audio,
    Camera,
    /// A screen share: not lip-synced, but its reports still tell the clock offset.
    Screen,
}

/// Lip-sync and clock state of one remote participant.
#[derive(Debug, Default)]
pub struct AvSync {
    lip: LipSync,
    clock: ClockOffset,
    /// An audio packet's (RTP timestamp, capture time in Unix µs).
    audio_anchor: Option<(u32, u64)>,
    /// Capture-to-playout time of the audio playing now (µs).
    audio_latency_us: Option<i64>,
}

pub type SharedSync = Arc<Mutex<AvSync>>;

impl AvSync {
    /// A sender report from one of the participant's streams, arrived at local time
    /// `arrival_us`; `rtt_us` is the local round trip to the relay.
    pub fn on_sender_report(&mut self, stream: SyncStream, sr: &SenderReport, arrival_us: u64, rtt_us: u64) {
        let at = unix_us_from_ntp(sr.ntp_time);
        self.clock.set_rtt(rtt_us);
        self.clock.on_sender_report(at, arrival_us);
        match stream {
            SyncStream::Audio => self.lip.on_audio_sender_report(at, sr.rtp_time),
            SyncStream::Camera => self.lip.on_video_sender_report(at, sr.rtp_time),
            SyncStream::Screen => {}
        }
    }

    /// A capture time on the sender's clock, on the local clock.
    pub fn local_capture_us(&self, sender_capture_us: u64) -> u64 {
        self.clock.to_local_us(sender_capture_us)
    }

    /// Local minus sender clock (µs) as applied to capture times.
    pub fn clock_offset_us(&self) -> i64 {
        self.clock.offset_us()
    }

    /// A received audio RTP packet (for measuring: its capture time).
    pub fn on_audio_packet(&mut self, v: &RtpView<'_>) {
        if let Some(ntp) = v.extensions().capture_time_ntp {
            self.audio_anchor = Some((v.timestamp, unix_us_from_ntp(ntp)));
        }
    }

    /// Audio with RTP timestamp `rtp` is playing from `now_us`; returns the
    /// extra delay the jitter buffer should apply.
    pub fn on_audio_played(&mut self, rtp: u32, now_us: u64) -> u64 {
        self.lip.on_audio_played(rtp, now_us);
        if let Some((anchor_rtp, anchor_us)) = self.audio_anchor {
            let ticks = i64::from(rtp.wrapping_sub(anchor_rtp) as i32);
            let capture = anchor_us as i64 + ticks * 1_000 / 48;
            self.audio_latency_us = Some(now_us as i64 - capture);
        }
        self.lip.audio_delay_us(now_us)
    }

    /// When to show a frame decoded at `now_us`.
    pub fn video_due_us(&mut self, rtp: u32, now_us: u64) -> u64 {
        self.lip.video_due_us(rtp, now_us)
    }

    /// Video shown at `now_us` that was captured at `capture_us`: how much later
    /// than the audio of the same instant (µs; negative when earlier).
    pub fn skew_us(&self, capture_us: u64, now_us: u64) -> Option<i64> {
        let audio = self.audio_latency_us?;
        Some(now_us as i64 - capture_us as i64 - audio)
    }
}

/// Longest a frame waits here before it is shown anyway.
const MAX_HOLD: usize = 16;

/// Decoded frames waiting for their due time, in order.
#[derive(Debug, Default)]
pub struct HeldFrames {
    frames: VecDeque<(u64, DecodedVideo)>,
}

impl HeldFrames {
    pub fn push(&mut self, due_us: u64, frame: DecodedVideo) {
        if self.frames.len() >= MAX_HOLD {
            // The hold is not draining (a stalled clock): never grow without bound.
            self.frames.pop_front();
        }
        self.frames.push_back((due_us, frame));
    }

    /// The next frame due by `now_us`.
    pub fn pop_due(&mut self, now_us: u64) -> Option<DecodedVideo> {
        if self.frames.front().is_some_and(|(due, _)| *due <= now_us) {
            return self.frames.pop_front().map(|(_, f)| f);
        }
        None
    }

    /// When the next held frame is due.
    pub fn next_due_us(&self) -> Option<u64> {
        self.frames.front().map(|(due, _)| *due)
    }
}
