//! Sans-IO bandwidth controller: from QUIC path statistics (RTT, lost and sent
//! packets, congestion window) and RTCP receiver reports, picks the video
//! encoder bitrate and, below a threshold, a lower resolution. Fed every ~500 ms.

/// Loss above this (per sample) backs off even without queueing.
pub const HEAVY_LOSS: f64 = 0.4;
/// Loss above this holds the rate instead of probing upward.
pub const HOLD_LOSS: f64 = 0.2;

/// One observation of the path, cumulative counters as the QUIC connection reports them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PathSample {
    pub now_us: u64,
    pub rtt_us: u64,
    /// Cumulative packets lost / sent on the connection.
    pub lost_packets: u64,
    pub sent_packets: u64,
    /// Congestion window (bytes).
    pub cwnd: u64,
    /// Largest fraction lost (0..=255) in receiver reports since the last sample.
    pub rr_fraction_lost: Option<u8>,
}

/// What the encoder should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub bitrate_bps: u32,
    /// Encode at reduced resolution (the path cannot carry the full one).
    pub low_resolution: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BweConfig {
    pub min_bps: u32,
    pub max_bps: u32,
    /// Below this target, switch to the lower resolution.
    pub low_resolution_below_bps: u32,
}

#[derive(Debug, Clone)]
pub struct BandwidthController {
    cfg: BweConfig,
    target: f64,
    last: Option<PathSample>,
    min_rtt_us: u64,
    low: bool,
}

impl BandwidthController {
    pub fn new(cfg: BweConfig) -> Self {
        BandwidthController {
            cfg,
            target: f64::from(cfg.max_bps),
            last: None,
            min_rtt_us: u64::MAX,
            low: false,
        }
    }

    pub fn decision(&self) -> Decision {
        Decision { bitrate_bps: self.target as u32, low_resolution: self.low }
    }

    /// Feeds one sample; returns the (possibly unchanged) decision.
    pub fn on_sample(&mut self, s: PathSample) -> Decision {
        let Some(prev) = self.last.replace(s) else { return self.decision() };
        if s.rtt_us > 0 {
            self.min_rtt_us = self.min_rtt_us.min(s.rtt_us);
        }
        let sent = s.sent_packets.saturating_sub(prev.sent_packets);
        let lost = s.lost_packets.saturating_sub(prev.lost_packets);
        let mut loss = if sent > 0 { lost as f64 / sent as f64 } else { 0.0 };
        if let Some(f) = s.rr_fraction_lost {
            loss = loss.max(f64::from(f) / 256.0);
        }
        // Random loss is not congestion (the congestion controller is BBR, and
        // video is protected by NACK): only queueing delay or very heavy loss backs
        // off; moderate loss holds the rate.
        let queueing = s.rtt_us > self.min_rtt_us.saturating_mul(2).saturating_add(100_000);
        if loss > HEAVY_LOSS || queueing {
            self.target *= 0.7;
        } else if loss < HOLD_LOSS {
            self.target *= 1.08;
        }
        // Never ask for more than the congestion window carries per RTT.
        if s.cwnd > 0 && s.rtt_us > 0 {
            let window_bps = s.cwnd as f64 * 8.0 * 1e6 / s.rtt_us as f64;
            self.target = self.target.min(window_bps * 0.8);
        }
        self.target = self.target.clamp(f64::from(self.cfg.min_bps), f64::from(self.cfg.max_bps));
        // Hysteresis: go low below the threshold, back up 30 % above it.
        let t = f64::from(self.cfg.low_resolution_below_bps);
        if self.target < t {
            self.low = true;
        } else if self.target > t * 1.3 {
            self.low = false;
        }
        self.decision()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BweConfig {
        BweConfig { min_bps: 100_000, max_bps: 800_000, low_resolution_below_bps: 300_000 }
    }

    fn run(c: &mut BandwidthController, steps: u64, t0: u64, lost_per: u64, rtt: u64, cum: &mut (u64, u64)) {
        for i in 0..steps {
            cum.0 += 100;
            cum.1 += lost_per;
            c.on_sample(PathSample {
                now_us: t0 + i * 500_000,
                rtt_us: rtt,
                lost_packets: cum.1,
                sent_packets: cum.0,
                cwnd: 1_000_000,
                rr_fraction_lost: None,
            });
        }
    }

    #[test]
    fn clean_path_stays_at_max() {
        let mut c = BandwidthController::new(cfg());
        let mut cum = (0, 0);
        run(&mut c, 10, 0, 0, 20_000, &mut cum);
        assert_eq!(c.decision(), Decision { bitrate_bps: 800_000, low_resolution: false });
    }

    #[test]
    fn heavy_loss_lowers_bitrate_then_resolution_and_recovers() {
        let mut c = BandwidthController::new(cfg());
        let mut cum = (0, 0);
        run(&mut c, 2, 0, 0, 20_000, &mut cum);
        run(&mut c, 3, 1_000_000, 60, 20_000, &mut cum);
        let d = c.decision();
        assert!(d.bitrate_bps < 300_000 && d.low_resolution, "{d:?}");
        run(&mut c, 30, 3_000_000, 0, 20_000, &mut cum);
        assert_eq!(c.decision(), Decision { bitrate_bps: 800_000, low_resolution: false });
    }

    #[test]
    fn random_loss_is_not_congestion() {
        // 5 % loss each way, plus reordering that QUIC counts as loss: keep the rate.
        let mut c = BandwidthController::new(cfg());
        let mut cum = (0, 0);
        run(&mut c, 20, 0, 10, 100_000, &mut cum);
        assert_eq!(c.decision(), Decision { bitrate_bps: 800_000, low_resolution: false });
    }

    #[test]
    fn rising_rtt_backs_off_and_small_window_caps() {
        let mut c = BandwidthController::new(cfg());
        let mut cum = (0, 0);
        run(&mut c, 3, 0, 0, 20_000, &mut cum);
        run(&mut c, 2, 2_000_000, 0, 400_000, &mut cum);
        assert!(c.decision().bitrate_bps < 500_000, "{:?}", c.decision());
        let mut c = BandwidthController::new(cfg());
        c.on_sample(PathSample { rtt_us: 100_000, cwnd: 5_000, ..Default::default() });
        let d =
            c.on_sample(PathSample { rtt_us: 100_000, cwnd: 5_000, now_us: 500_000, ..Default::default() });
        assert_eq!(d.bitrate_bps, 320_000, "5 kB per 100 ms × 0.8");
    }
}
