//! A delay-based congestion controller for media connections.
//!
//! quinn's BBR (a BBRv1 port) enters loss recovery on every loss event and then
//! caps its window at the bytes in flight; on a path with steady random loss
//! (5 % on a radio link) it never leaves recovery and starves media. This
//! controller ignores loss and follows queueing delay instead (in the manner of
//! LEDBAT): while the smoothed RTT stays within [`TARGET_QUEUE_DELAY`] of the
//! minimum RTT the window grows, above it the window shrinks in proportion.
//! A real bottleneck (a 1 Mbit/s access link) fills its queue, the delay rises and
//! the window closes, so datagrams wait in quinn's queue where the forwarder sees
//! them and thins that subscriber. Persistent congestion (everything lost for a
//! while) still collapses the window.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory};
use quinn_proto::RttEstimator;

/// Queueing delay the controller aims to stay under.
pub const TARGET_QUEUE_DELAY: Duration = Duration::from_millis(40);
/// Smallest window: eight full datagrams, enough for audio and feedback through any
/// congestion. Larger would overfill slow links (at 1 Mbit/s, 16 KiB in flight is
/// 130 ms of queue in front of the next audio packet); smaller starved subscribers
/// on 90 ms paths (four datagrams: 430 kbit/s at most).
pub const MIN_WINDOW: u64 = 8 * 1200;
const MAX_WINDOW: u64 = 32 * 1024 * 1024;
const INITIAL_WINDOW: u64 = 256 * 1024;

/// The window arithmetic, free of quinn types (tested on its own).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayWindow {
    pub window: u64,
}

impl DelayWindow {
    /// `bytes` were acknowledged while the smoothed RTT was `srtt`, the minimum
    /// `min_rtt`, and the RTT varied by about `jitter` (see [`Jitter`]).
    ///
    /// Jitter alone puts the smoothed RTT well above the minimum (the minimum is
    /// the luckiest sample: with 10 ms of jitter each way, about 50 ms below the
    /// mean), which is no queue at all; so the queue is what the smoothed RTT
    /// exceeds the minimum by beyond that variation.
    pub fn on_ack(
        &mut self,
        bytes: u64,
        srtt: Duration,
        min_rtt: Duration,
        jitter: Duration,
        app_limited: bool,
    ) {
        let queue = srtt.saturating_sub(min_rtt).saturating_sub(jitter).as_secs_f64();
        let target = TARGET_QUEUE_DELAY.as_secs_f64();
        let off_target = (target - queue) / target; // 1 = empty queue, < 0 = over target
        if off_target >= 0.0 {
            // An application-limited sender has not tested the window: do not grow it.
            if !app_limited {
                self.window = self.window.saturating_add((bytes as f64 * off_target) as u64);
            }
        } else {
            let cut = (bytes as f64 * (-off_target).min(2.0)) as u64;
            self.window = self.window.saturating_sub(cut);
        }
        self.window = self.window.clamp(MIN_WINDOW, MAX_WINDOW);
    }

    pub fn on_persistent_congestion(&mut self) {
        self.window = MIN_WINDOW;
    }
}

/// How much the RTT varies, from what quinn shows: `conservative()` is the
/// larger of the smoothed and the latest sample, so its excess over the smoothed
/// RTT is the latest sample's upward deviation. Its mean is about 0.4 σ for
/// normal jitter; eight times it (≈ 3.2 σ, like the 4 × mean deviation of a
/// retransmission timer) covers how far the minimum sits below the mean.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jitter {
    mean_excess_us: f64,
}

impl Jitter {
    pub fn on_sample(&mut self, smoothed: Duration, conservative: Duration) -> Duration {
        let excess = conservative.saturating_sub(smoothed).as_micros() as f64;
        self.mean_excess_us += (excess - self.mean_excess_us) / 8.0;
        Duration::from_micros((self.mean_excess_us * 8.0) as u64)
    }
}

/// quinn controller over [`DelayWindow`].
#[derive(Debug, Clone)]
pub struct DelayBased {
    w: DelayWindow,
    jitter: Jitter,
}

impl Controller for DelayBased {
    fn on_ack(&mut self, _now: Instant, _sent: Instant, bytes: u64, app_limited: bool, rtt: &RttEstimator) {
        let jitter = self.jitter.on_sample(rtt.get(), rtt.conservative());
        self.w.on_ack(bytes, rtt.get(), rtt.min(), jitter, app_limited);
    }

    fn on_congestion_event(&mut self, _now: Instant, _sent: Instant, persistent: bool, _lost_bytes: u64) {
        // Random loss is not congestion; only a path that lost everything for a while is.
        if persistent {
            self.w.on_persistent_congestion();
        }
    }

    fn on_mtu_update(&mut self, _new_mtu: u16) {}

    fn window(&self) -> u64 {
        self.w.window
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        INITIAL_WINDOW
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Builds [`DelayBased`] controllers for `TransportConfig::congestion_controller_factory`.
#[derive(Debug, Default)]
pub struct DelayBasedFactory;

impl ControllerFactory for DelayBasedFactory {
    fn build(self: Arc<Self>, _now: Instant, _mtu: u16) -> Box<dyn Controller> {
        Box::new(DelayBased { w: DelayWindow { window: INITIAL_WINDOW }, jitter: Jitter::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn grows_with_an_empty_queue_and_ignores_loss() {
        let mut c = DelayBased { w: DelayWindow { window: INITIAL_WINDOW }, jitter: Jitter::default() };
        for _ in 0..100 {
            c.w.on_ack(10_000, MS(85), MS(80), MS(1), false);
        }
        assert!(c.window() > INITIAL_WINDOW + 500_000, "{}", c.window());
        let before = c.window();
        c.on_congestion_event(Instant::now(), Instant::now(), false, 50_000);
        assert_eq!(c.window(), before, "random loss leaves the window alone");
        c.on_congestion_event(Instant::now(), Instant::now(), true, 50_000);
        assert_eq!(c.window(), MIN_WINDOW);
    }

    #[test]
    fn shrinks_when_the_bottleneck_queue_fills() {
        let mut w = DelayWindow { window: 1_000_000 };
        for _ in 0..100 {
            w.on_ack(10_000, MS(200), MS(80), MS(20), false);
        }
        assert_eq!(w.window, MIN_WINDOW);
        // Jitter is not a queue: the mean RTT 50 ms above the luckiest sample, with a
        // matching variation, still grows the window.
        let mut w = DelayWindow { window: 100_000 };
        w.on_ack(10_000, MS(130), MS(80), MS(45), false);
        assert!(w.window > 100_000);
        // The jitter estimate: latest samples 0 or 20 ms above the smoothed RTT.
        let mut j = Jitter::default();
        let mut est = Duration::ZERO;
        for i in 0..100 {
            est = j.on_sample(MS(100), MS(100 + 20 * (i % 2)));
        }
        assert!((75..=85).contains(&est.as_millis()), "{est:?}");
        // Application-limited: an empty queue does not inflate the window.
        let mut w = DelayWindow { window: 100_000 };
        w.on_ack(10_000, MS(80), MS(80), MS(1), true);
        assert_eq!(w.window, 100_000);
    }
}
