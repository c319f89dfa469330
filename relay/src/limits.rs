//! Rate limits, sans-IO (explicit `now` in milliseconds).
//!
//! * [`TokenBucket`]: chat messages per participant, requests per connection
//!   (a request costs [`frame_cost`] tokens by its length, charged before the
//!   relay parses it).
//! * [`CodeGuard`]: failed access-code attempts. Codes are looked up by their
//!   HMAC, so a wrong code maps to no meeting and cannot be charged to one.
//!   Guessing is therefore limited twice: per source address (a lock-out after
//!   `per_ip` failures within the window; during it even the right code is
//!   refused) and globally across all addresses (after `global` failures within
//!   the window, code joins by anyone but enrolled staff are refused for the
//!   lock-out period). The global budget is what protects a meeting from many
//!   guessers behind many addresses, and a clinic's guests behind one NAT
//!   address are not locked out by a single guesser elsewhere.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// A token bucket: `rate` tokens per second, at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: i64,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64, now: i64) -> TokenBucket {
        TokenBucket { rate, burst, tokens: burst, last: now }
    }

    /// Takes one token, or says how many ms until one is available.
    pub fn take(&mut self, now: i64) -> Result<(), u64> {
        self.take_n(now, 1.0)
    }

    /// Takes `cost` tokens (at most the burst, so any cost can eventually pass),
    /// or says how many ms until they are available.
    pub fn take_n(&mut self, now: i64, cost: f64) -> Result<(), u64> {
        let cost = cost.clamp(0.0, self.burst);
        let elapsed = (now - self.last).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now.max(self.last);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else if self.rate <= 0.0 {
            Err(u64::MAX)
        } else {
            Err((((cost - self.tokens) / self.rate) * 1000.0).ceil() as u64)
        }
    }
}

/// Bytes of request a token pays for.
pub const BYTES_PER_TOKEN: usize = 4096;

/// What a request frame of `len` bytes costs: one token per started 4 KiB, so
/// ordinary requests cost 1 and a maximum-size (256 KiB) frame costs 64.
pub fn frame_cost(len: usize) -> f64 {
    len.div_ceil(BYTES_PER_TOKEN).max(1) as f64
}

/// The request id of a frame that will not be parsed (refused before parsing),
/// when the frame starts the way clients write it: `{"id":N`. Looks at no more
/// than the first 32 bytes.
pub fn peek_request_id(body: &[u8]) -> Option<u64> {
    let rest = body.strip_prefix(b"{\"id\":")?;
    let digits: Vec<u8> = rest.iter().take(20).copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Settings of the access-code guard.
#[derive(Debug, Clone, Copy)]
pub struct CodeGuardConfig {
    pub per_ip: u32,
    pub global: u32,
    pub window_ms: i64,
    pub lockout_ms: i64,
}

/// Why a code attempt is refused before the code is even looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    Address { retry_after_ms: u64 },
    Global { retry_after_ms: u64 },
}

impl Lockout {
    pub fn retry_after_ms(self) -> u64 {
        match self {
            Lockout::Address { retry_after_ms } | Lockout::Global { retry_after_ms } => retry_after_ms,
        }
    }
}

#[derive(Debug, Default)]
struct Window {
    failures: VecDeque<i64>,
    locked_until: Option<i64>,
}

impl Window {
    fn prune(&mut self, now: i64, window: i64) {
        while self.failures.front().is_some_and(|&t| now - t >= window) {
            self.failures.pop_front();
        }
        if self.locked_until.is_some_and(|t| now >= t) {
            self.locked_until = None;
        }
    }

    fn locked(&self, now: i64) -> Option<u64> {
        self.locked_until.filter(|&t| now < t).map(|t| (t - now) as u64)
    }

    fn fail(&mut self, now: i64, cfg: &CodeGuardConfig, limit: u32) -> bool {
        self.prune(now, cfg.window_ms);
        self.failures.push_back(now);
        if self.failures.len() >= limit as usize && self.locked_until.is_none() {
            self.locked_until = Some(now + cfg.lockout_ms);
            self.failures.clear();
            return true;
        }
        false
    }
}

/// Counts failed access-code attempts per address and globally.
#[derive(Debug)]
pub struct CodeGuard {
    cfg: CodeGuardConfig,
    per_ip: HashMap<IpAddr, Window>,
    global: Window,
}

impl CodeGuard {
    pub fn new(cfg: CodeGuardConfig) -> CodeGuard {
        CodeGuard { cfg, per_ip: HashMap::new(), global: Window::default() }
    }

    /// Whether a code attempt from `ip` may proceed. `staff` joins skip the global lock.
    pub fn check(&mut self, now: i64, ip: IpAddr, staff: bool) -> Result<(), Lockout> {
        if let Some(w) = self.per_ip.get_mut(&ip) {
            w.prune(now, self.cfg.window_ms);
            if let Some(ms) = w.locked(now) {
                return Err(Lockout::Address { retry_after_ms: ms });
            }
        }
        self.global.prune(now, self.cfg.window_ms);
        if !staff {
            if let Some(ms) = self.global.locked(now) {
                return Err(Lockout::Global { retry_after_ms: ms });
            }
        }
        Ok(())
    }

    /// Records a wrong code. Returns which lock-outs this failure started.
    pub fn failed(&mut self, now: i64, ip: IpAddr) -> (bool, bool) {
        let cfg = self.cfg;
        let ip_locked = self.per_ip.entry(ip).or_default().fail(now, &cfg, cfg.per_ip);
        let global_locked = self.global.fail(now, &cfg, cfg.global);
        (ip_locked, global_locked)
    }

    /// Forgets addresses with nothing recorded (bounded memory).
    pub fn sweep(&mut self, now: i64) {
        let window = self.cfg.window_ms;
        self.per_ip.retain(|_, w| {
            w.prune(now, window);
            !w.failures.is_empty() || w.locked_until.is_some()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let mut b = TokenBucket::new(2.0, 3.0, 0);
        assert!(b.take(0).is_ok() && b.take(0).is_ok() && b.take(0).is_ok());
        let wait = b.take(0).unwrap_err();
        assert_eq!(wait, 500);
        assert!(b.take(499).is_err());
        assert!(b.take(500).is_ok());
        assert!(b.take(10_000).is_ok());
    }

    #[test]
    fn cost_grows_with_length_and_is_capped_by_the_burst() {
        assert_eq!(frame_cost(0), 1.0);
        assert_eq!(frame_cost(4096), 1.0);
        assert_eq!(frame_cost(4097), 2.0);
        assert_eq!(frame_cost(256 * 1024), 64.0);
        let mut b = TokenBucket::new(50.0, 200.0, 0);
        assert!(b.take_n(0, frame_cost(256 * 1024)).is_ok());
        assert!(b.take_n(0, frame_cost(256 * 1024)).is_ok());
        assert!(b.take_n(0, frame_cost(256 * 1024)).is_ok());
        assert_eq!(b.take_n(0, frame_cost(256 * 1024)), Err(1120), "8 tokens left, 56 more at 50/s");
        let mut small = TokenBucket::new(1.0, 2.0, 0);
        assert!(small.take_n(0, 1000.0).is_ok(), "cost capped at the burst");
    }

    #[test]
    fn request_ids_are_peeked_without_parsing() {
        assert_eq!(peek_request_id(br#"{"id":42,"type":"ping"}"#), Some(42));
        assert_eq!(peek_request_id(br#"{"type":"ping","id":42}"#), None);
        assert_eq!(peek_request_id(b"junk"), None);
        assert_eq!(peek_request_id(br#"{"id":99999999999999999999999"#), None);
    }

    fn guard() -> CodeGuard {
        CodeGuard::new(CodeGuardConfig { per_ip: 3, global: 5, window_ms: 1000, lockout_ms: 5000 })
    }

    #[test]
    fn address_lockout_blocks_even_right_codes_then_expires() {
        let mut g = guard();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(g.failed(0, a), (false, false));
        assert_eq!(g.failed(1, a), (false, false));
        assert_eq!(g.failed(2, a), (true, false));
        assert_eq!(g.check(3, a, false), Err(Lockout::Address { retry_after_ms: 4999 }));
        assert!(g.check(3, a, true).is_err(), "address lock applies to staff too");
        assert_eq!(g.check(3, b, false), Ok(()), "other addresses unaffected");
        assert_eq!(g.check(5002, a, false), Ok(()), "lock-out over");
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let mut g = guard();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        g.failed(0, a);
        g.failed(1, a);
        assert_eq!(g.failed(1500, a), (false, false));
        assert_eq!(g.check(1501, a, false), Ok(()));
    }

    #[test]
    fn many_addresses_trip_the_global_budget_but_not_staff() {
        let mut g = guard();
        for i in 0..4u8 {
            let ip = IpAddr::from([10, 0, 1, i]);
            assert_eq!(g.failed(10, ip), (false, false));
        }
        assert_eq!(g.failed(10, IpAddr::from([10, 0, 1, 9])), (false, true));
        let fresh = IpAddr::from([10, 9, 9, 9]);
        assert!(matches!(g.check(11, fresh, false), Err(Lockout::Global { .. })));
        assert_eq!(g.check(11, fresh, true), Ok(()));
        assert_eq!(g.check(5010, fresh, false), Ok(()));
        g.sweep(100_000);
        assert!(g.per_ip.is_empty());
    }
}
