//! Exponential backoff with jitter for reconnect attempts. Deterministic when
//! built from a seed, so tests can check exact delays.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Upper bound of the delay (before jitter).
    pub max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { initial: Duration::from_millis(200), max: Duration::from_secs(10) }
    }
}

/// Produces delays `initial·2^n`, capped at `max`, each scaled by a random
/// factor in `[0.5, 1.0]` ("equal jitter") so many clients that lost the relay at
/// the same moment do not come back in lock-step.
#[derive(Debug)]
pub struct Backoff {
    config: Config,
    attempt: u32,
    rng: StdRng,
}

impl Backoff {
    pub fn new(config: Config) -> Self {
        Self::with_rng(config, StdRng::from_os_rng())
    }

    /// A backoff whose jitter comes from a seeded generator (tests).
    pub fn seeded(config: Config, seed: u64) -> Self {
        Self::with_rng(config, StdRng::seed_from_u64(seed))
    }

    fn with_rng(config: Config, rng: StdRng) -> Self {
        Backoff { config, attempt: 0, rng }
    }

    /// How many delays were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The ceiling (no jitter) of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.config.initial.saturating_mul(factor).min(self.config.max)
    }

    /// The next delay; grows until `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let scale: f64 = self.rng.random_range(0.5..=1.0);
        ceiling.mul_f64(scale)
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_jittered() {
        let cfg = Config { initial: Duration::from_millis(100), max: Duration::from_secs(2) };
        let mut b = Backoff::seeded(cfg, 7);
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        let ceilings = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for (d, c) in delays.iter().zip(ceilings) {
            let c = Duration::from_millis(c);
            assert!(*d <= c && *d >= c / 2, "{d:?} not in [{:?}, {c:?}]", c / 2);
        }
        // Jitter: not all capped delays are equal.
        assert!(delays[5..].windows(2).any(|w| w[0] != w[1]), "{delays:?}");
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn same_seed_same_delays() {
        let mut a = Backoff::seeded(Config::default(), 42);
        let mut b = Backoff::seeded(Config::default(), 42);
        for _ in 0..5 {
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::seeded(Config::default(), 1);
        for _ in 0..100 {
            assert!(b.next_delay() <= Config::default().max);
        }
    }
}
