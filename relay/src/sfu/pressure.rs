//! How hard to thin one subscriber connection, from what its QUIC connection
//! shows: bytes waiting in the datagram send queue and video the forwarder
//! could not queue. Loss alone is not congestion (BBR keeps sending through
//! random loss), so it does not raise the level.
//!
//! Levels: 0 everything; 1 drop the top temporal layer; 2 also switch to the
//! lowest simulcast encoding. Up at most every 500 ms while congested, down one
//! step after 3 s clear.

/// Highest level.
pub const MAX_LEVEL: u8 = 2;
/// Queued datagram bytes above which a connection counts as congested.
pub const QUEUE_HIGH: usize = 24 * 1024;
/// Queued bytes below which it counts as clear.
pub const QUEUE_LOW: usize = 4 * 1024;
const UP_EVERY_US: u64 = 500_000;
const DOWN_AFTER_US: u64 = 3_000_000;
/// Leaving the low encoding costs a keyframe burst of the high one through the
/// bottleneck (a dip in frame rate, up to ~100 ms of audio concealment): wait
/// longer, since a bottleneck that forced the low encoding is usually the access
/// link and lasts; each probe that fails (back on the low encoding within
/// [`FAILED_PROBE_US`]) doubles the wait, up to [`DOWN_FROM_LOW_ENCODING_MAX_US`].
const DOWN_FROM_LOW_ENCODING_US: u64 = 20_000_000;
const DOWN_FROM_LOW_ENCODING_MAX_US: u64 = 160_000_000;
const FAILED_PROBE_US: u64 = 5_000_000;

/// One look at a connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Bytes waiting in quinn's datagram send queue.
    pub queued_bytes: usize,
    /// Video datagrams the forwarder did not queue since the last sample.
    pub video_refused: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Pressure {
    level: u8,
    last_up: Option<u64>,
    clear_since: Option<u64>,
    /// When the connection last left the low encoding (a probe upward).
    left_low_at: Option<u64>,
    /// Current wait before leaving the low encoding (0 = the initial one).
    low_wait_us: u64,
}

impl Pressure {
    pub fn level(&self) -> u8 {
        self.level
    }

    /// How long the connection must be clear before it leaves the low encoding.
    pub fn low_wait(&self) -> u64 {
        if self.low_wait_us == 0 {
            DOWN_FROM_LOW_ENCODING_US
        } else {
            self.low_wait_us
        }
    }

    /// Feeds one sample; returns the new level.
    pub fn sample(&mut self, now_us: u64, s: Sample) -> u8 {
        let congested = s.video_refused > 0 || s.queued_bytes > QUEUE_HIGH;
        if congested {
            self.clear_since = None;
            if self.level < MAX_LEVEL && self.last_up.is_none_or(|t| now_us.saturating_sub(t) >= UP_EVERY_US)
            {
                self.level += 1;
                self.last_up = Some(now_us);
                if self.level == MAX_LEVEL
                    && self.left_low_at.is_some_and(|t| now_us.saturating_sub(t) < FAILED_PROBE_US)
                {
                    self.low_wait_us = (self.low_wait()).saturating_mul(2).min(DOWN_FROM_LOW_ENCODING_MAX_US);
                }
            }
        } else if s.queued_bytes <= QUEUE_LOW {
            let since = *self.clear_since.get_or_insert(now_us);
            let wait = if self.level >= MAX_LEVEL { self.low_wait() } else { DOWN_AFTER_US };
            if self.level > 0 && now_us.saturating_sub(since) >= wait {
                if self.level == MAX_LEVEL {
                    self.left_low_at = Some(now_us);
                }
                self.level -= 1;
                self.clear_since = Some(now_us);
            }
        } else {
            self.clear_since = None;
        }
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rises_under_pressure_and_recovers_slowly() {
        let mut p = Pressure::default();
        let busy = Sample { queued_bytes: 40_000, video_refused: 0 };
        let clear = Sample::default();
        assert_eq!(p.sample(0, busy), 1);
        assert_eq!(p.sample(100_000, busy), 1, "at most one step per 500 ms");
        assert_eq!(p.sample(600_000, Sample { queued_bytes: 0, video_refused: 3 }), 2);
        assert_eq!(p.sample(1_200_000, busy), 2, "capped");
        assert_eq!(p.sample(1_300_000, clear), 2);
        assert_eq!(p.sample(11_300_000, clear), 2, "the low encoding is left only after 20 s clear");
        assert_eq!(p.sample(21_300_000, clear), 1);
        assert_eq!(p.sample(22_000_000, Sample { queued_bytes: 10_000, video_refused: 0 }), 1, "in between");
        assert_eq!(p.sample(24_000_000, clear), 1);
        assert_eq!(p.sample(27_000_000, clear), 0, "lower levels clear after 3 s");
    }

    #[test]
    fn a_failed_probe_doubles_the_wait_on_the_low_encoding() {
        let mut p = Pressure::default();
        let busy = Sample { queued_bytes: 40_000, video_refused: 0 };
        let clear = Sample::default();
        p.sample(0, busy);
        p.sample(500_000, busy);
        assert_eq!(p.sample(1_000_000, clear), 2);
        assert_eq!(p.sample(21_000_000, clear), 1, "probe upward");
        // Congested again at once: back to the low encoding, and the next probe waits 40 s.
        p.sample(21_500_000, busy);
        assert_eq!(p.sample(22_000_000, busy), 2);
        assert_eq!(p.low_wait(), 2 * DOWN_FROM_LOW_ENCODING_US);
        assert_eq!(p.sample(22_100_000, clear), 2);
        assert_eq!(p.sample(52_100_000, clear), 2);
        assert_eq!(p.sample(62_100_000, clear), 1);
    }
}
