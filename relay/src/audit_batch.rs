//! Coalesced audit rows for failures (wrong codes, refused attempts, failed
//! enrollments), sans-IO. A flood of failures must not force one SQLite commit
//! (one fsync) per attempt, so failures are counted in memory per
//! (action, source) and written as one row per (action, source, window) whose
//! detail says how many there were. The hub flushes a window when it is over
//! (from its tick) in one transaction.
//!
//! Promise: at most one row per (action, source) per window, plus one
//! `source = "*"` row per action per window for sources beyond `max_keys`;
//! counts are exact. A graceful stop writes the open window (`server::run_hub`);
//! what is lost on a crash: at most the current window.

use std::collections::BTreeMap;

/// One coalesced row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coalesced {
    /// Time of the first failure counted in the row.
    pub first_at: i64,
    pub last_at: i64,
    pub action: &'static str,
    pub source: String,
    pub count: u64,
}

impl Coalesced {
    /// The audit row's detail text: `count=N last_at=T`.
    pub fn detail(&self) -> String {
        format!("count={} last_at={}", self.count, self.last_at)
    }
}

/// Failures counted since the current window opened.
#[derive(Debug)]
pub struct AuditBatch {
    window_ms: i64,
    max_keys: usize,
    opened_at: Option<i64>,
    open: BTreeMap<(&'static str, String), Coalesced>,
}

impl AuditBatch {
    pub fn new(window_ms: i64, max_keys: usize) -> AuditBatch {
        AuditBatch { window_ms: window_ms.max(1), max_keys, opened_at: None, open: BTreeMap::new() }
    }

    /// Counts one failure.
    pub fn record(&mut self, now: i64, action: &'static str, source: &str) {
        self.opened_at.get_or_insert(now);
        let mut key = (action, source.to_string());
        if !self.open.contains_key(&key) && self.open.len() >= self.max_keys {
            key.1 = "*".to_string();
        }
        let row = self.open.entry(key.clone()).or_insert_with(|| Coalesced {
            first_at: now,
            last_at: now,
            action,
            source: key.1,
            count: 0,
        });
        row.count += 1;
        row.last_at = row.last_at.max(now);
    }

    /// The rows of the window if it is over at `now` (the next window opens with
    /// the next failure).
    pub fn due(&mut self, now: i64) -> Vec<Coalesced> {
        match self.opened_at {
            Some(t) if now - t >= self.window_ms => self.drain(),
            _ => Vec::new(),
        }
    }

    /// Every row counted so far, whether or not the window is over.
    pub fn drain(&mut self) -> Vec<Coalesced> {
        self.opened_at = None;
        std::mem::take(&mut self.open).into_values().collect()
    }

    /// Whether nothing is waiting to be written.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_action_and_source_per_window_with_exact_counts() {
        let mut b = AuditBatch::new(60_000, 100);
        for i in 0..10_000i64 {
            b.record(i, "code_failed", if i % 2 == 0 { "10.0.0.1" } else { "10.0.0.2" });
        }
        b.record(5, "code_attempt_refused", "10.0.0.1");
        assert!(b.due(59_999).is_empty(), "window not over yet");
        let rows = b.due(60_000);
        assert_eq!(rows.len(), 3);
        let failed: Vec<_> = rows.iter().filter(|r| r.action == "code_failed").collect();
        assert_eq!(failed.iter().map(|r| r.count).sum::<u64>(), 10_000);
        assert!(failed.iter().all(|r| r.count == 5000));
        assert_eq!(failed[0].first_at, 0);
        assert_eq!(failed[0].detail(), "count=5000 last_at=9998");
        assert!(b.is_empty() && b.due(200_000).is_empty());
    }

    #[test]
    fn sources_beyond_the_cap_share_one_row() {
        let mut b = AuditBatch::new(1000, 2);
        for i in 0..50 {
            b.record(0, "code_failed", &format!("10.0.0.{i}"));
        }
        let rows = b.drain();
        assert_eq!(rows.len(), 3);
        let star = rows.iter().find(|r| r.source == "*").unwrap();
        assert_eq!(star.count, 48);
    }
}
