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
/// Leaving the low encoding costs a keyframe burst of the high one: wait longer
/// (a bottleneck that just cleared often has not, and flapping hurts audio).
const DOWN_FROM_LOW_ENCODING_US: u64 = 10_000_000;

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
}

impl Pressure {
    pub fn level(&self) -> u8 {
        self.level
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
            }
        } else if s.queued_bytes <= QUEUE_LOW {
            let since = *self.clear_since.get_or_insert(now_us);
            let wait = if self.level >= MAX_LEVEL { DOWN_FROM_LOW_ENCODING_US } else { DOWN_AFTER_US };
            if self.level > 0 && now_us.saturating_sub(since) >= wait {
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
        assert_eq!(p.sample(4_300_000, clear), 2, "the low encoding is left only after 10 s clear");
        assert_eq!(p.sample(11_300_000, clear), 1);
        assert_eq!(p.sample(12_000_000, Sample { queued_bytes: 10_000, video_refused: 0 }), 1, "in between");
        assert_eq!(p.sample(14_000_000, clear), 1);
        assert_eq!(p.sample(17_000_000, clear), 0, "lower levels clear after 3 s");
    }
}
