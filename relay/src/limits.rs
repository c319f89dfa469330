//! Rate limits, sans-IO (explicit `now` in milliseconds). Nothing here locks
//! anybody out: every refusal carries the time after which the same attempt
//! would be let through, and that time is bounded by the configured rates.
//!
//! * [`TokenBucket`]: chat messages per participant, requests per connection
//!   (a request costs [`frame_cost`] tokens by its length, charged before the
//!   relay parses it).
//! * [`CodeGuard`]: guesses at access codes. A code's first two characters are
//!   its *bucket* (one of 1024; the relay gives each live meeting the least used
//!   one), and wrong guesses are counted per bucket, never globally, so guessing
//!   at one meeting cannot close the others. Three budgets, all token buckets:
//!   - per source (IPv4 address, IPv6 /64): wrong attempts of any kind; after a
//!     free burst each further attempt from that source waits `1/source_rate`;
//!   - per bucket, shared: wrong codes in that bucket; while it has a token,
//!     anyone whose source budget allows may try a code there;
//!   - per bucket, the *clean lane*: when the shared budget is spent, a source
//!     without a failure in the last `clean_after_ms` may still try, taking a
//!     lane token (right or wrong). An attacker can use each address once per
//!     `clean_after_ms` here, so with fewer addresses than `lane_burst` they
//!     cannot keep the lane empty for a patient who never typed a wrong code.
//!
//!   Sustained accepted guesses per bucket ≤ `bucket_rate + lane_rate`; the
//!   maths (expected years to find one code) is in `relay/README.md`.
//! * [`EnrollGuard`]: enrollment attempts, per source and over all sources.

use std::collections::HashMap;
use std::net::IpAddr;

use clinicmeet_protocol::access_code::BUCKETS;
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
        self.refill(now);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(self.wait_for(cost))
        }
    }

    /// Whether a token is available (without taking it), or how many ms until one is.
    pub fn ready(&mut self, now: i64) -> Result<(), u64> {
        self.refill(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.wait_for(1.0))
        }
    }

    /// Milliseconds until `cost` tokens are there.
    fn wait_for(&self, cost: f64) -> u64 {
        if self.rate <= 0.0 {
            u64::MAX
        } else {
            (((cost - self.tokens) / self.rate) * 1000.0).ceil() as u64
        }
    }

    /// Tokens available at `now`.
    pub fn tokens(&mut self, now: i64) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Whether the bucket is full at `now`.
    pub fn full(&mut self, now: i64) -> bool {
        self.tokens(now) >= self.burst
    }

    fn refill(&mut self, now: i64) {
        let elapsed = (now - self.last).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now.max(self.last);
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

/// Settings of the access-code guard (rates per second, bursts in attempts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodeGuardConfig {
    /// Wrong attempts one source may make at once, and their refill rate.
    pub source_burst: f64,
    pub source_rate: f64,
    /// Wrong codes a bucket absorbs at once from anyone, and their refill rate.
    pub bucket_burst: f64,
    pub bucket_rate: f64,
    /// Attempts by clean sources once the bucket's shared budget is spent.
    pub lane_burst: f64,
    pub lane_rate: f64,
    /// A source is clean after this long without a failure.
    pub clean_after_ms: i64,
    /// Sources remembered at most; an unknown source beyond that is not clean.
    pub max_sources: usize,
}

impl Default for CodeGuardConfig {
    fn default() -> Self {
        CodeGuardConfig {
            source_burst: 10.0,
            source_rate: 1.0 / 6.0,
            bucket_burst: 30.0,
            bucket_rate: 0.5,
            lane_burst: 1000.0,
            lane_rate: 0.5,
            clean_after_ms: 3_600_000,
            max_sources: 100_000,
        }
    }
}

/// Which budget let a code attempt through (the one a wrong code is charged to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The bucket's shared budget had a token.
    Shared,
    /// The clean lane (its token is already taken).
    Lane,
    /// Enrolled staff: never refused by a bucket; a wrong code still costs the shared budget.
    Staff,
}

/// Why a code attempt is refused before the code is looked up (never for longer
/// than the refill time of the budget named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source spent its own budget of wrong attempts.
    Source { retry_after_ms: u64 },
    /// The bucket's shared budget is spent and the source may not use the lane
    /// (not clean) or the lane is empty too.
    Bucket { retry_after_ms: u64 },
}

impl Refusal {
    pub fn retry_after_ms(self) -> u64 {
        match self {
            Refusal::Source { retry_after_ms } | Refusal::Bucket { retry_after_ms } => retry_after_ms,
        }
    }
}

/// The source a limit applies to: an IPv4 address, or an IPv6 /64 (one
/// subscriber's prefix). IPv4-mapped IPv6 addresses count as IPv4.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug)]
struct Source {
    budget: TokenBucket,
    last_failure: i64,
}

#[derive(Debug)]
struct Bucket {
    shared: TokenBucket,
    lane: TokenBucket,
}

/// Counts wrong access codes per source and per code bucket.
#[derive(Debug)]
pub struct CodeGuard {
    cfg: CodeGuardConfig,
    sources: HashMap<IpAddr, Source>,
    buckets: Vec<Bucket>,
}

impl CodeGuard {
    pub fn new(cfg: CodeGuardConfig, now: i64) -> CodeGuard {
        let buckets = (0..BUCKETS)
            .map(|_| Bucket {
                shared: TokenBucket::new(cfg.bucket_rate, cfg.bucket_burst, now),
                lane: TokenBucket::new(cfg.lane_rate, cfg.lane_burst, now),
            })
            .collect();
        CodeGuard { cfg, sources: HashMap::new(), buckets }
    }

    pub fn config(&self) -> &CodeGuardConfig {
        &self.cfg
    }

    /// Whether `ip`'s source had no failure for `clean_after_ms` (an unknown
    /// source is clean unless the table of sources is full).
    pub fn is_clean(&self, now: i64, ip: IpAddr) -> bool {
        match self.sources.get(&source_key(ip)) {
            Some(s) => now - s.last_failure >= self.cfg.clean_after_ms,
            None => self.sources.len() < self.cfg.max_sources,
        }
    }

    /// Whether a code in `bucket` from `ip` may be looked up now. A lane pass
    /// takes its lane token here (the attempt is spent, right or wrong).
    pub fn check_code(&mut self, now: i64, ip: IpAddr, bucket: u16, staff: bool) -> Result<Pass, Refusal> {
        if let Some(s) = self.sources.get_mut(&source_key(ip)) {
            s.budget.ready(now).map_err(|ms| Refusal::Source { retry_after_ms: ms })?;
        }
        if staff {
            return Ok(Pass::Staff);
        }
        let clean = self.is_clean(now, ip);
        let b = &mut self.buckets[usize::from(bucket % BUCKETS)];
        let shared_wait = match b.shared.ready(now) {
            Ok(()) => return Ok(Pass::Shared),
            Err(ms) => ms,
        };
        if clean {
            match b.lane.take(now) {
                Ok(()) => return Ok(Pass::Lane),
                Err(lane_wait) => {
                    return Err(Refusal::Bucket { retry_after_ms: shared_wait.min(lane_wait) });
                }
            }
        }
        Err(Refusal::Bucket { retry_after_ms: shared_wait })
    }

    /// Records a wrong code that `check_code` let through with `pass`.
    pub fn code_failed(&mut self, now: i64, ip: IpAddr, bucket: u16, pass: Pass) {
        self.source_failed(now, ip);
        if matches!(pass, Pass::Shared | Pass::Staff) {
            let _ = self.buckets[usize::from(bucket % BUCKETS)].shared.take(now);
        }
    }

    /// Records a failure charged to the source only (a malformed code, a wrong
    /// invite secret): it spends the source's budget and makes it not clean.
    pub fn source_failed(&mut self, now: i64, ip: IpAddr) {
        let key = source_key(ip);
        if !self.sources.contains_key(&key) && self.sources.len() >= self.cfg.max_sources {
            return; // not remembered: such a source is never clean (see `is_clean`)
        }
        let cfg = self.cfg;
        let s = self.sources.entry(key).or_insert_with(|| Source {
            budget: TokenBucket::new(cfg.source_rate, cfg.source_burst, now),
            last_failure: now,
        });
        let _ = s.budget.take(now);
        s.last_failure = now;
    }

    /// Shared tokens left in `bucket` (the relay prefers fuller buckets for new codes).
    pub fn bucket_tokens(&mut self, now: i64, bucket: u16) -> f64 {
        self.buckets[usize::from(bucket % BUCKETS)].shared.tokens(now)
    }

    /// Forgets sources that are clean again with a full budget (bounded memory).
    pub fn sweep(&mut self, now: i64) {
        let clean_after = self.cfg.clean_after_ms;
        self.sources.retain(|_, s| now - s.last_failure < clean_after || !s.budget.full(now));
    }

    /// Sources remembered (for tests and metrics).
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

/// Settings of the enrollment limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnrollGuardConfig {
    pub source_burst: f64,
    pub source_rate: f64,
    pub global_burst: f64,
    pub global_rate: f64,
    pub max_sources: usize,
}

impl Default for EnrollGuardConfig {
    fn default() -> Self {
        EnrollGuardConfig {
            source_burst: 5.0,
            source_rate: 1.0 / 60.0,
            global_burst: 20.0,
            global_rate: 0.2,
            max_sources: 10_000,
        }
    }
}

/// Limits enrollment attempts (right or wrong) per source and over all sources:
/// enrollment codes are handed to staff, few and rarely, so a global budget
/// only ever delays staff, and a flood cannot force a write per attempt.
#[derive(Debug)]
pub struct EnrollGuard {
    cfg: EnrollGuardConfig,
    sources: HashMap<IpAddr, TokenBucket>,
    global: TokenBucket,
}

impl EnrollGuard {
    pub fn new(cfg: EnrollGuardConfig, now: i64) -> EnrollGuard {
        EnrollGuard {
            cfg,
            sources: HashMap::new(),
            global: TokenBucket::new(cfg.global_rate, cfg.global_burst, now),
        }
    }

    /// Takes one attempt from both budgets, or says how many ms until both allow one.
    pub fn attempt(&mut self, now: i64, ip: IpAddr) -> Result<(), u64> {
        let key = source_key(ip);
        let cfg = self.cfg;
        if !self.sources.contains_key(&key) && self.sources.len() >= cfg.max_sources {
            self.sweep(now);
        }
        let known = self.sources.contains_key(&key) || self.sources.len() < cfg.max_sources;
        let source_wait = match self.sources.get_mut(&key) {
            Some(b) => b.ready(now).err(),
            None => None,
        };
        let global_wait = self.global.ready(now).err();
        if let Some(ms) = source_wait.max(global_wait) {
            return Err(ms);
        }
        self.global.take(now).map_err(|ms| ms.max(1))?;
        if known {
            let b = self
                .sources
                .entry(key)
                .or_insert_with(|| TokenBucket::new(cfg.source_rate, cfg.source_burst, now));
            let _ = b.take(now);
        }
        Ok(())
    }

    /// Forgets sources whose budget is full again.
    pub fn sweep(&mut self, now: i64) {
        self.sources.retain(|_, b| !b.full(now));
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

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    fn small() -> CodeGuardConfig {
        CodeGuardConfig {
            source_burst: 3.0,
            source_rate: 1.0,
            bucket_burst: 5.0,
            bucket_rate: 1.0,
            lane_burst: 4.0,
            lane_rate: 0.5,
            clean_after_ms: 10_000,
            max_sources: 1000,
        }
    }

    #[test]
    fn ipv6_sources_are_their_64_prefix_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        assert_eq!(source_key("::ffff:10.0.0.1".parse().unwrap()), ip(1));
    }

    #[test]
    fn a_source_that_spent_its_budget_waits_one_refill_never_longer() {
        let mut g = CodeGuard::new(small(), 0);
        for _ in 0..3 {
            let pass = g.check_code(0, ip(1), 7, false).unwrap();
            g.code_failed(0, ip(1), 7, pass);
        }
        // The fourth attempt, right or wrong, waits one refill (1 s), in any bucket…
        assert_eq!(g.check_code(0, ip(1), 7, false), Err(Refusal::Source { retry_after_ms: 1000 }));
        assert_eq!(g.check_code(0, ip(1), 900, false), Err(Refusal::Source { retry_after_ms: 1000 }));
        // …another address is not slowed at all…
        assert_eq!(g.check_code(0, ip(2), 7, false), Ok(Pass::Shared));
        // …and after the wait the source may try again.
        assert_eq!(g.check_code(1000, ip(1), 7, false), Ok(Pass::Shared));
    }

    #[test]
    fn wrong_codes_spend_only_their_own_bucket() {
        let mut g = CodeGuard::new(small(), 0);
        for i in 0..5 {
            let pass = g.check_code(0, ip(100 + i), 7, false).unwrap();
            assert_eq!(pass, Pass::Shared);
            g.code_failed(0, ip(100 + i), 7, pass);
        }
        // Bucket 7's shared budget is spent: a dirty source waits for its refill…
        assert_eq!(g.check_code(0, ip(100), 7, false), Err(Refusal::Bucket { retry_after_ms: 1000 }));
        // …every other bucket is untouched, for anyone.
        for b in [0u16, 6, 8, 1023] {
            assert_eq!(g.check_code(0, ip(100), b, false), Ok(Pass::Shared), "bucket {b}");
        }
        assert_eq!(g.bucket_tokens(0, 7), 0.0);
        assert_eq!(g.bucket_tokens(0, 8), 5.0);
    }

    #[test]
    fn clean_sources_use_the_lane_once_each_until_clean_again() {
        let mut g = CodeGuard::new(small(), 0);
        for i in 0..5 {
            let pass = g.check_code(0, ip(100 + i), 7, false).unwrap();
            g.code_failed(0, ip(100 + i), 7, pass);
        }
        // A clean source passes through the lane; a wrong guess there makes it dirty.
        assert_eq!(g.check_code(0, ip(1), 7, false), Ok(Pass::Lane));
        g.code_failed(0, ip(1), 7, Pass::Lane);
        assert!(!g.is_clean(0, ip(1)));
        assert!(matches!(g.check_code(0, ip(1), 7, false), Err(Refusal::Bucket { .. })));
        // The lane holds 4: three more clean sources, then it is empty (2 s per token).
        for i in 2..5 {
            assert_eq!(g.check_code(0, ip(i), 7, false), Ok(Pass::Lane));
        }
        assert_eq!(g.check_code(0, ip(5), 7, false), Err(Refusal::Bucket { retry_after_ms: 1000 }));
        // Staff are never refused by a bucket.
        assert_eq!(g.check_code(0, ip(6), 7, true), Ok(Pass::Staff));
        // After `clean_after_ms` the dirty source is clean again.
        assert!(g.is_clean(10_000, ip(1)));
    }

    #[test]
    fn an_attacker_with_fewer_addresses_than_the_lane_cannot_keep_a_clean_patient_out() {
        // 1000 attacker addresses against one bucket for an hour, trying every
        // 100 ms with whichever address may; a clean patient tries every 10 s.
        let cfg = CodeGuardConfig::default();
        let mut g = CodeGuard::new(cfg, 0);
        let bucket = 77;
        let mut refused_patient = 0;
        let mut worst_gap = 0i64;
        let mut last_ok = 0i64;
        let mut next = 0usize;
        for step in 0..36_000i64 {
            let now = step * 100;
            // Every address that may try does (each source's budget decides).
            for _ in 0..1000 {
                let a = ip(10_000 + (next % 1000) as u32);
                next += 1;
                match g.check_code(now, a, bucket, false) {
                    Ok(pass) => g.code_failed(now, a, bucket, pass),
                    Err(_) => break,
                }
            }
            if step % 100 == 0 {
                let patient = ip(1_000_000 + step as u32);
                match g.check_code(now, patient, bucket, false) {
                    Ok(_) => {
                        worst_gap = worst_gap.max(now - last_ok);
                        last_ok = now;
                    }
                    Err(_) => refused_patient += 1,
                }
            }
        }
        assert_eq!(refused_patient, 0, "a fresh patient was refused (worst gap {worst_gap} ms)");
    }

    #[test]
    fn unknown_sources_beyond_the_table_are_not_clean() {
        let mut g = CodeGuard::new(CodeGuardConfig { max_sources: 2, ..small() }, 0);
        g.source_failed(0, ip(1));
        g.source_failed(0, ip(2));
        g.source_failed(0, ip(3));
        assert_eq!(g.sources(), 2);
        assert!(!g.is_clean(0, ip(4)));
        g.sweep(20_000);
        assert_eq!(g.sources(), 0);
        assert!(g.is_clean(20_000, ip(4)));
    }

    #[test]
    fn enrollment_is_limited_per_source_and_overall() {
        let cfg = EnrollGuardConfig {
            source_burst: 2.0,
            source_rate: 0.1,
            global_burst: 5.0,
            global_rate: 1.0,
            max_sources: 100,
        };
        let mut g = EnrollGuard::new(cfg, 0);
        assert!(g.attempt(0, ip(1)).is_ok() && g.attempt(0, ip(1)).is_ok());
        assert_eq!(g.attempt(0, ip(1)), Err(10_000));
        for i in 2..5 {
            assert!(g.attempt(0, ip(i)).is_ok());
        }
        assert_eq!(g.attempt(0, ip(9)), Err(1000), "the global budget is spent");
        assert!(g.attempt(1000, ip(9)).is_ok());
        g.sweep(1_000_000);
        assert!(g.sources.is_empty());
    }
}
