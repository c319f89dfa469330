//! Counters and gauges for `/metrics` (Prometheus text format).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    meetings_active: AtomicU64,
    participants: AtomicU64,
    waiting: AtomicU64,
    connections: AtomicU64,
    chat_messages: AtomicU64,
    failed_joins: AtomicU64,
    storage_failures: AtomicU64,
    tracks: AtomicU64,
    forwarded_streams: AtomicU64,
    slow_consumers: AtomicU64,
    unauthenticated_closed: AtomicU64,
    refused_per_source: AtomicU64,
    /// Media forwarding counters and the receive→send delay histogram.
    pub media: MediaMetrics,
}

/// Buckets of the forwarding delay histogram: bucket `i` holds delays up to
/// `delay_bound_us(i)` (a quarter octave each, 1 µs to about 65 ms).
pub const DELAY_BUCKETS: usize = 65;

/// Upper bound of delay bucket `i` in µs.
pub fn delay_bound_us(i: usize) -> u64 {
    (2f64.powf(i as f64 / 4.0)).round() as u64
}

fn delay_bucket(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    // Smallest i with 2^(i/4) >= us.
    let i = ((us as f64).log2() * 4.0).ceil() as usize;
    let i = if delay_bound_us(i.saturating_sub(1)) >= us { i - 1 } else { i };
    i.min(DELAY_BUCKETS - 1)
}

/// Written by the forwarding thread only (relaxed atomics, no locks).
#[derive(Debug)]
pub struct MediaMetrics {
    pub received_packets: AtomicU64,
    pub forwarded_packets: AtomicU64,
    pub forwarded_bytes: AtomicU64,
    pub retransmitted_packets: AtomicU64,
    pub refused_datagrams: AtomicU64,
    /// Datagrams from connections not (yet) in a meeting, dropped at the edge.
    pub ignored_datagrams: AtomicU64,
    pub plis_sent: AtomicU64,
    pub nack_misses: AtomicU64,
    pub upstream_nacks: AtomicU64,
    pub dropped_thinning: AtomicU64,
    pub reports_sent: AtomicU64,
    pub reports_received: AtomicU64,
    delay: [AtomicU64; DELAY_BUCKETS],
    delay_sum_us: AtomicU64,
}

impl Default for MediaMetrics {
    fn default() -> Self {
        MediaMetrics {
            received_packets: AtomicU64::new(0),
            forwarded_packets: AtomicU64::new(0),
            forwarded_bytes: AtomicU64::new(0),
            retransmitted_packets: AtomicU64::new(0),
            refused_datagrams: AtomicU64::new(0),
            ignored_datagrams: AtomicU64::new(0),
            plis_sent: AtomicU64::new(0),
            nack_misses: AtomicU64::new(0),
            upstream_nacks: AtomicU64::new(0),
            dropped_thinning: AtomicU64::new(0),
            reports_sent: AtomicU64::new(0),
            reports_received: AtomicU64::new(0),
            delay: std::array::from_fn(|_| AtomicU64::new(0)),
            delay_sum_us: AtomicU64::new(0),
        }
    }
}

impl MediaMetrics {
    /// One forwarded packet: receive → handed to QUIC, in µs.
    pub fn delay(&self, us: u64) {
        self.delay[delay_bucket(us)].fetch_add(1, Relaxed);
        self.delay_sum_us.fetch_add(us, Relaxed);
    }

    /// Counts per delay bucket.
    pub fn delay_counts(&self) -> Vec<u64> {
        self.delay.iter().map(|a| a.load(Relaxed)).collect()
    }

    /// Delay quantile (upper bucket bound, µs) or `None` without samples.
    pub fn delay_quantile_us(&self, q: f64) -> Option<u64> {
        quantile(&self.delay_counts(), q)
    }
}

/// Quantile `q` (0..1) of a delay histogram, as the bucket's upper bound in µs.
pub fn quantile(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (i, c) in counts.iter().enumerate() {
        acc += c;
        if acc >= rank {
            return Some(delay_bound_us(i));
        }
    }
    Some(delay_bound_us(counts.len().saturating_sub(1)))
}

impl Metrics {
    pub fn set_rooms(&self, active: usize, participants: usize, waiting: usize) {
        self.meetings_active.store(active as u64, Relaxed);
        self.participants.store(participants as u64, Relaxed);
        self.waiting.store(waiting as u64, Relaxed);
    }

    pub fn set_connections(&self, n: usize) {
        self.connections.store(n as u64, Relaxed);
    }

    pub fn set_tracks(&self, n: usize) {
        self.tracks.store(n as u64, Relaxed);
    }

    pub fn set_forwarded_streams(&self, n: usize) {
        self.forwarded_streams.store(n as u64, Relaxed);
    }

    pub fn chat_message(&self) {
        self.chat_messages.fetch_add(1, Relaxed);
    }

    pub fn failed_join(&self) {
        self.failed_joins.fetch_add(1, Relaxed);
    }

    pub fn storage_failure(&self) {
        self.storage_failures.fetch_add(1, Relaxed);
    }

    pub fn storage_failures(&self) -> u64 {
        self.storage_failures.load(Relaxed)
    }

    /// A connection closed because its output passed the budget.
    pub fn slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Relaxed);
    }

    /// A connection closed for no hello (or no control stream) within the deadline.
    pub fn unauthenticated_closed(&self) {
        self.unauthenticated_closed.fetch_add(1, Relaxed);
    }

    /// A connection refused because its source already holds its share.
    pub fn refused_per_source(&self) {
        self.refused_per_source.fetch_add(1, Relaxed);
    }

    pub fn chat_messages(&self) -> u64 {
        self.chat_messages.load(Relaxed)
    }

    pub fn failed_joins(&self) -> u64 {
        self.failed_joins.load(Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let m = &self.media;
        let rows: [(&str, &str, &str, u64); 24] = [
            (
                "clinicmeet_meetings_active",
                "gauge",
                "Meetings in progress",
                self.meetings_active.load(Relaxed),
            ),
            ("clinicmeet_participants", "gauge", "Participants in meetings", self.participants.load(Relaxed)),
            ("clinicmeet_waiting", "gauge", "People in waiting rooms", self.waiting.load(Relaxed)),
            ("clinicmeet_connections", "gauge", "Open client connections", self.connections.load(Relaxed)),
            ("clinicmeet_chat_messages_total", "counter", "Chat messages accepted", self.chat_messages()),
            (
                "clinicmeet_failed_joins_total",
                "counter",
                "Joins refused for a wrong or throttled code",
                self.failed_joins(),
            ),
            (
                "clinicmeet_storage_failures_total",
                "counter",
                "Changes refused because their writes did not commit",
                self.storage_failures(),
            ),
            ("clinicmeet_tracks", "gauge", "Published media tracks", self.tracks.load(Relaxed)),
            (
                "clinicmeet_forwarded_streams",
                "gauge",
                "Subscriptions (forwarded streams)",
                self.forwarded_streams.load(Relaxed),
            ),
            (
                "clinicmeet_slow_consumers_total",
                "counter",
                "Connections closed as slow_consumer (output budget exceeded)",
                self.slow_consumers.load(Relaxed),
            ),
            (
                "clinicmeet_unauthenticated_closed_total",
                "counter",
                "Connections closed for no hello or control stream within the deadline",
                self.unauthenticated_closed.load(Relaxed),
            ),
            (
                "clinicmeet_connections_refused_per_source_total",
                "counter",
                "Connections refused past the per-source cap",
                self.refused_per_source.load(Relaxed),
            ),
            (
                "clinicmeet_media_received_packets_total",
                "counter",
                "RTP packets from publishers",
                m.received_packets.load(Relaxed),
            ),
            (
                "clinicmeet_media_forwarded_packets_total",
                "counter",
                "RTP packets sent to subscribers",
                m.forwarded_packets.load(Relaxed),
            ),
            (
                "clinicmeet_media_forwarded_bytes_total",
                "counter",
                "Datagram bytes sent to subscribers",
                m.forwarded_bytes.load(Relaxed),
            ),
            (
                "clinicmeet_media_retransmitted_packets_total",
                "counter",
                "Packets resent from the cache for NACKs",
                m.retransmitted_packets.load(Relaxed),
            ),
            (
                "clinicmeet_media_refused_datagrams_total",
                "counter",
                "Datagrams not queued (send buffer full)",
                m.refused_datagrams.load(Relaxed),
            ),
            (
                "clinicmeet_media_ignored_datagrams_total",
                "counter",
                "Datagrams from connections not in a meeting, dropped before the forwarder",
                m.ignored_datagrams.load(Relaxed),
            ),
            (
                "clinicmeet_media_plis_sent_total",
                "counter",
                "Keyframe requests sent to publishers",
                m.plis_sent.load(Relaxed),
            ),
            (
                "clinicmeet_media_nack_misses_total",
                "counter",
                "NACKed packets not in the cache (lost before the relay)",
                m.nack_misses.load(Relaxed),
            ),
            (
                "clinicmeet_media_upstream_nacks_total",
                "counter",
                "Packets the relay NACKed to publishers",
                m.upstream_nacks.load(Relaxed),
            ),
            (
                "clinicmeet_media_dropped_thinning_total",
                "counter",
                "Video packets dropped to thin slow subscribers",
                m.dropped_thinning.load(Relaxed),
            ),
            (
                "clinicmeet_media_receiver_reports_sent_total",
                "counter",
                "RTCP receiver reports the relay sent to publishers",
                m.reports_sent.load(Relaxed),
            ),
            (
                "clinicmeet_media_receiver_reports_received_total",
                "counter",
                "RTCP receiver reports from subscribers (terminated at the relay)",
                m.reports_received.load(Relaxed),
            ),
        ];
        let mut s = String::new();
        for (name, kind, help, value) in rows {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        let name = "clinicmeet_media_forward_delay_us";
        s.push_str(&format!(
            "# HELP {name} Receive to send delay inside the relay, microseconds\n# TYPE {name} histogram\n"
        ));
        let mut acc = 0;
        for (i, c) in m.delay_counts().iter().enumerate() {
            acc += c;
            s.push_str(&format!("{name}_bucket{{le=\"{}\"}} {acc}\n", delay_bound_us(i)));
        }
        s.push_str(&format!(
            "{name}_bucket{{le=\"+Inf\"}} {acc}\n{name}_sum {}\n{name}_count {acc}\n",
            m.delay_sum_us.load(Relaxed)
        ));
        s
    }
}
