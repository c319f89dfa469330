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

    pub fn chat_message(&self) {
        self.chat_messages.fetch_add(1, Relaxed);
    }

    pub fn failed_join(&self) {
        self.failed_joins.fetch_add(1, Relaxed);
    }

    pub fn chat_messages(&self) -> u64 {
        self.chat_messages.load(Relaxed)
    }

    pub fn failed_joins(&self) -> u64 {
        self.failed_joins.load(Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, u64); 6] = [
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
        ];
        let mut s = String::new();
        for (name, kind, help, value) in rows {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        s
    }
}
