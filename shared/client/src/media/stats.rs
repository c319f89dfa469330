//! Per-remote-track receive statistics (frames, fps, freezes, loss, bitrate,
//! glass-to-glass latency, PSNR of synthetic sources, dominant audio frequency).

use std::collections::VecDeque;

use clinicmeet_media::video_receiver::ReceiverStats;
use clinicmeet_protocol::{ParticipantId, TrackId, TrackKind};
use serde::Serialize;

/// A gap between decoded frames longer than this counts as a freeze.
pub const FREEZE_US: u64 = 500_000;
const WINDOW_US: u64 = 1_000_000;
/// Audio concealment longer than this counts as a gap.
pub const AUDIO_GAP_MS: u64 = 100;

/// Statistics of one remote track; [`TrackStats::snapshot`] gives the values of the last second.
#[derive(Debug, Clone, Serialize)]
pub struct TrackStats {
    pub track_id: TrackId,
    pub participant_id: ParticipantId,
    pub kind: TrackKind,
    pub frames_decoded: u64,
    /// Frames decoded in the last second.
    pub fps: f64,
    pub freezes: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub packets_recovered: u64,
    /// Video: frames abandoned after their packets stayed missing (each needs a keyframe
    /// unless it was of the top temporal layer).
    pub frames_skipped: u64,
    /// Video: keyframe requests (PLI) the receiver raised.
    pub keyframe_requests: u64,
    /// Received bits per second over the last second.
    pub bitrate_bps: u64,
    /// Video: glass-to-glass latency of the frames shown in the last second (capture
    /// time from the RTP extension, on the local clock after `clock_offset_ms`).
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    /// Video: local minus sender clock (ms) applied to the sender's capture times, from
    /// its RTCP sender reports; 0 while the clocks agree within the path's round trip
    /// (one host).
    pub clock_offset_ms: f64,
    /// Mean PSNR (dB) of the synthetic frames checked in the last second.
    pub psnr_db: Option<f64>,
    /// Audio: dominant frequency of the last second (zero crossings).
    pub tone_hz: Option<f64>,
    /// Time from subscribing to the first decoded frame (ms).
    pub first_frame_ms: Option<u64>,
    /// Video: longest time between two decoded frames ending in the last second (ms).
    /// Audio: longest run of concealed (lost or late) 20 ms frames in the last second (ms).
    pub max_gap_ms: u64,
    /// Audio: concealed 20 ms frames so far (lost or late packets not recovered by FEC).
    pub concealed_frames: u64,
    /// Audio: runs of concealment longer than 100 ms so far.
    pub audio_gaps: u64,
    /// Camera video: median lip-sync skew of the frames shown in the last second
    /// (capture-to-display minus the participant's audio capture-to-playout, ms;
    /// positive = video behind audio).
    pub av_skew_ms: Option<f64>,
    /// The skew farthest from zero in the last second (ms, signed).
    pub av_skew_ms_worst: Option<f64>,
    #[serde(skip)]
    created_us: u64,
    #[serde(skip)]
    frame_times: VecDeque<u64>,
    #[serde(skip)]
    packet_bytes: VecDeque<(u64, usize)>,
    #[serde(skip)]
    latencies: VecDeque<(u64, u64)>,
    #[serde(skip)]
    psnrs: VecDeque<(u64, f64)>,
    #[serde(skip)]
    last_frame_us: Option<u64>,
    #[serde(skip)]
    audio: VecDeque<f32>,
    #[serde(skip)]
    gaps: VecDeque<(u64, u64)>,
    #[serde(skip)]
    concealed_run: u64,
    #[serde(skip)]
    skews: VecDeque<(u64, i64)>,
}

impl TrackStats {
    pub fn new(track_id: TrackId, participant_id: ParticipantId, kind: TrackKind) -> Self {
        TrackStats {
            track_id,
            participant_id,
            kind,
            frames_decoded: 0,
            fps: 0.0,
            freezes: 0,
            packets_received: 0,
            packets_lost: 0,
            packets_recovered: 0,
            frames_skipped: 0,
            keyframe_requests: 0,
            bitrate_bps: 0,
            latency_ms_p50: None,
            latency_ms_p95: None,
            clock_offset_ms: 0.0,
            psnr_db: None,
            tone_hz: None,
            first_frame_ms: None,
            max_gap_ms: 0,
            concealed_frames: 0,
            audio_gaps: 0,
            created_us: clinicmeet_media::clock::now_us(),
            frame_times: VecDeque::new(),
            packet_bytes: VecDeque::new(),
            latencies: VecDeque::new(),
            psnrs: VecDeque::new(),
            last_frame_us: None,
            audio: VecDeque::new(),
            gaps: VecDeque::new(),
            concealed_run: 0,
            av_skew_ms: None,
            av_skew_ms_worst: None,
            skews: VecDeque::new(),
        }
    }

    pub fn on_packet(&mut self, bytes: usize, now_us: u64) {
        self.packets_received += 1;
        self.packet_bytes.push_back((now_us, bytes));
        trim(&mut self.packet_bytes, now_us, |e| e.0);
    }

    pub fn on_frame(&mut self, now_us: u64, capture_us: Option<u64>, psnr: Option<f64>, rx: &ReceiverStats) {
        self.frames_decoded += 1;
        if self.first_frame_ms.is_none() {
            self.first_frame_ms = Some(now_us.saturating_sub(self.created_us) / 1000);
        }
        if let Some(l) = self.last_frame_us {
            let gap = now_us.saturating_sub(l);
            if gap > FREEZE_US {
                self.freezes += 1;
            }
            self.gaps.push_back((now_us, gap));
            trim(&mut self.gaps, now_us, |e| e.0);
        }
        self.last_frame_us = Some(now_us);
        self.frame_times.push_back(now_us);
        trim(&mut self.frame_times, now_us, |t| *t);
        if let Some(c) = capture_us.filter(|c| *c > 0 && *c <= now_us) {
            self.latencies.push_back((now_us, now_us - c));
            trim(&mut self.latencies, now_us, |e| e.0);
        }
        if let Some(p) = psnr {
            self.psnrs.push_back((now_us, p));
            trim(&mut self.psnrs, now_us, |e| e.0);
        }
        self.packets_recovered = rx.recovered;
        self.frames_skipped = rx.frames_skipped;
        self.keyframe_requests = rx.keyframe_requests;
        self.packets_lost = rx.nacks_sent.saturating_sub(rx.recovered);
    }

    /// The sender's clock offset in use (µs, see [`TrackStats::clock_offset_ms`]).
    pub fn set_clock_offset_us(&mut self, offset_us: i64) {
        self.clock_offset_ms = offset_us as f64 / 1000.0;
    }

    /// Lip-sync skew of a frame shown at `now_us` (µs, see [`TrackStats::av_skew_ms`]).
    pub fn on_av_skew(&mut self, now_us: u64, skew_us: i64) {
        self.skews.push_back((now_us, skew_us));
        trim(&mut self.skews, now_us, |e| e.0);
    }

    /// 20 ms of decoded audio of this track; `concealed` when it is loss concealment
    /// (the packet was lost or late and FEC could not recover it).
    pub fn on_audio(&mut self, now_us: u64, samples: &[f32], concealed: bool) {
        if concealed {
            self.concealed_frames += 1;
            self.concealed_run += 1;
            if self.concealed_run * 20 == AUDIO_GAP_MS + 20 {
                self.audio_gaps += 1;
            }
        } else if self.concealed_run > 0 {
            self.gaps.push_back((now_us, self.concealed_run * 20_000));
            trim(&mut self.gaps, now_us, |e| e.0);
            self.concealed_run = 0;
        }
        self.frames_decoded += 1;
        self.frame_times.push_back(now_us);
        trim(&mut self.frame_times, now_us, |t| *t);
        self.audio.extend(samples.iter().copied());
        while self.audio.len() > 48_000 {
            self.audio.pop_front();
        }
    }

    /// The values of the last second.
    pub fn snapshot(&mut self, now_us: u64) -> TrackStats {
        trim(&mut self.frame_times, now_us, |t| *t);
        trim(&mut self.packet_bytes, now_us, |e| e.0);
        trim(&mut self.latencies, now_us, |e| e.0);
        trim(&mut self.psnrs, now_us, |e| e.0);
        trim(&mut self.gaps, now_us, |e| e.0);
        trim(&mut self.skews, now_us, |e| e.0);
        let mut skews: Vec<i64> = self.skews.iter().map(|e| e.1).collect();
        skews.sort_unstable();
        self.av_skew_ms = skews.get(skews.len() / 2).map(|v| *v as f64 / 1000.0);
        self.av_skew_ms_worst = skews.iter().copied().max_by_key(|v| v.abs()).map(|v| v as f64 / 1000.0);
        let ongoing = if self.kind == TrackKind::Audio {
            self.concealed_run * 20_000
        } else {
            self.last_frame_us.map_or(0, |l| now_us.saturating_sub(l))
        };
        self.max_gap_ms = self.gaps.iter().map(|e| e.1).max().unwrap_or(0).max(ongoing) / 1000;
        if self.kind != TrackKind::Audio
            && self.last_frame_us.is_some_and(|l| now_us.saturating_sub(l) > FREEZE_US)
        {
            // An ongoing freeze shows as zero fps; counted when the next frame comes.
        }
        self.fps = self.frame_times.len() as f64;
        if self.kind == TrackKind::Audio {
            self.fps = 0.0;
        }
        self.bitrate_bps = self.packet_bytes.iter().map(|e| e.1 as u64 * 8).sum();
        let mut lat: Vec<u64> = self.latencies.iter().map(|e| e.1).collect();
        lat.sort_unstable();
        let pct = |p: f64| -> Option<f64> {
            let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
            lat.get(i).map(|v| *v as f64 / 1000.0)
        };
        self.latency_ms_p50 = pct(0.5);
        self.latency_ms_p95 = pct(0.95);
        self.psnr_db = (!self.psnrs.is_empty())
            .then(|| self.psnrs.iter().map(|e| e.1).sum::<f64>() / self.psnrs.len() as f64);
        self.tone_hz = (self.kind == TrackKind::Audio).then(|| zero_crossing_hz(&self.audio)).flatten();
        self.clone()
    }
}

fn trim<T>(q: &mut VecDeque<T>, now_us: u64, at: impl Fn(&T) -> u64) {
    while q.front().is_some_and(|e| now_us.saturating_sub(at(e)) > WINDOW_US) {
        q.pop_front();
    }
}

/// Dominant frequency of a (near) pure tone from its zero crossings, 48 kHz.
pub fn zero_crossing_hz(samples: &VecDeque<f32>) -> Option<f64> {
    if samples.len() < 4_800 {
        return None;
    }
    let loud = samples.iter().map(|s| s.abs()).fold(0.0f32, f32::max);
    if loud < 0.01 {
        return None;
    }
    let mut crossings = 0u64;
    let mut prev = 0.0f32;
    for &s in samples {
        if prev < 0.0 && s >= 0.0 {
            crossings += 1;
        }
        prev = s;
    }
    Some(crossings as f64 * 48_000.0 / samples.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_frequency_from_zero_crossings() {
        let s: VecDeque<f32> =
            (0..48_000).map(|i| (i as f32 * 660.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.5).collect();
        let f = zero_crossing_hz(&s).unwrap();
        assert!((f - 660.0).abs() < 2.0, "{f}");
        assert_eq!(zero_crossing_hz(&VecDeque::from(vec![0.0; 48_000])), None);
    }

    #[test]
    fn fps_freezes_latency() {
        let mut st = TrackStats::new(TrackId::nil(), TrackId::nil(), TrackKind::Video);
        let rx = ReceiverStats::default();
        for i in 0..30u64 {
            let now = 1_000_000 + i * 33_333;
            st.on_frame(now, Some(now - 40_000), None, &rx);
        }
        assert_eq!(st.snapshot(1_990_000).max_gap_ms, 33);
        let s = st.snapshot(1_990_000);
        assert!((s.latency_ms_p95.unwrap() - 40.0).abs() < 0.01, "{:?}", s.latency_ms_p95);
        assert_eq!((s.fps, s.freezes), (30.0, 0));
        st.on_frame(3_000_000, Some(2_950_000), None, &rx);
        let s = st.snapshot(3_000_000);
        assert_eq!((s.fps, s.freezes), (1.0, 1));
        assert_eq!(s.max_gap_ms, 1033);
    }

    #[test]
    fn audio_gaps_are_runs_of_concealment() {
        let mut st = TrackStats::new(TrackId::nil(), TrackId::nil(), TrackKind::Audio);
        let pcm = [0.0f32; 960];
        let mut now = 0;
        let mut feed = |st: &mut TrackStats, n: usize, concealed: bool| {
            for _ in 0..n {
                now += 20_000;
                st.on_audio(now, &pcm, concealed);
            }
            now
        };
        feed(&mut st, 10, false);
        feed(&mut st, 3, true);
        let t = feed(&mut st, 10, false);
        let s = st.snapshot(t);
        assert_eq!((s.max_gap_ms, s.audio_gaps, s.concealed_frames), (60, 0, 3));
        feed(&mut st, 6, true);
        let t = feed(&mut st, 1, false);
        let s = st.snapshot(t);
        assert_eq!((s.max_gap_ms, s.audio_gaps, s.concealed_frames), (120, 1, 9));
    }
}
