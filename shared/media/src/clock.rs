//! The media clock: monotonic time that reads as Unix microseconds.
//!
//! Everything in the media path that measures or schedules (capture instants,
//! RTP timestamps, sender-report times, jitter buffers, playout, NACK and PLI
//! timers, statistics windows) reads [`now_us`]. It is `Instant`-based, so it never
//! steps when the wall clock is set (NTP steps, a user changing the time), and it
//! is anchored once per process to the wall clock, so capture times written into
//! packets are comparable across processes of one host (they agree to within the
//! wall clock's adjustments between their starts) and, after the sender-report
//! clock offset, across hosts.
//!
//! Chat and audit timestamps are wall-clock times and do not use this.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Anchor {
    at: Instant,
    unix_us: u64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// Test aid: shifts this process's media clock by that many milliseconds (may be
/// negative), as on a host whose clock is wrong. Read once, at the first use.
pub const SKEW_ENV: &str = "CLINICMEET_CLOCK_SKEW_MS";

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| {
        let skew_ms: i64 = std::env::var(SKEW_ENV).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_micros() as i64;
        Anchor {
            at: Instant::now(),
            unix_us: wall.saturating_add(skew_ms.saturating_mul(1000)).max(0) as u64,
        }
    })
}

/// Monotonic microseconds, Unix-aligned when the process first asked.
pub fn now_us() -> u64 {
    let a = anchor();
    a.unix_us + a.at.elapsed().as_micros() as u64
}

/// Sleeps until media-clock time `due_us` (returns at once if it has passed).
pub fn sleep_until_us(due_us: u64) {
    let now = now_us();
    if due_us > now {
        std::thread::sleep(Duration::from_micros(due_us - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_unix_time_and_never_goes_back() {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
        let a = now_us();
        // Anchored to the wall clock (no skew set in unit tests): within a minute of it.
        assert!(a.abs_diff(wall) < 60_000_000, "media clock {a} vs wall {wall}");
        let mut last = a;
        for _ in 0..1000 {
            let t = now_us();
            assert!(t >= last);
            last = t;
        }
    }
}
