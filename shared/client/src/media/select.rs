//! Which remote cameras to receive (sans-IO): all of them, a chosen set (the tiles
//! the application shows), or the last N active speakers from the audio-level RTP
//! extension. A large meeting then costs each client N video streams, not 49.

use std::collections::{HashMap, HashSet};

use clinicmeet_protocol::ParticipantId;
use clinicmeet_rtp::ext::AudioLevel;

/// A level at or above this (−dBov below 50) or the sender's voice flag counts as speaking.
const ACTIVE_BELOW_DBOV: u8 = 50;

/// What video the engine subscribes to (audio and screen shares are always received).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VideoPolicy {
    /// Every remote camera.
    #[default]
    All,
    /// Only these participants' cameras (the tiles on screen).
    Only(HashSet<ParticipantId>),
    /// The cameras of the N most recently active speakers.
    LastN(usize),
}

/// Remembers when each participant last spoke.
#[derive(Debug, Clone, Default)]
pub struct SpeakerTracker {
    last_active: HashMap<ParticipantId, u64>,
    /// Order participants were first seen, to break ties stably.
    first_seen: HashMap<ParticipantId, u64>,
    seen: u64,
}

impl SpeakerTracker {
    /// A participant's latest audio level.
    pub fn on_level(&mut self, who: ParticipantId, level: AudioLevel, now_us: u64) {
        self.note(who);
        if level.voice || level.level_dbov < ACTIVE_BELOW_DBOV {
            self.last_active.insert(who, now_us);
        }
    }

    fn note(&mut self, who: ParticipantId) {
        if !self.first_seen.contains_key(&who) {
            self.seen += 1;
            self.first_seen.insert(who, self.seen);
        }
    }

    /// Which of `candidates` (participants with a camera track) to receive.
    pub fn wanted(&mut self, policy: &VideoPolicy, candidates: &[ParticipantId]) -> HashSet<ParticipantId> {
        match policy {
            VideoPolicy::All => candidates.iter().copied().collect(),
            VideoPolicy::Only(set) => candidates.iter().filter(|p| set.contains(p)).copied().collect(),
            VideoPolicy::LastN(n) => {
                for p in candidates {
                    self.note(*p);
                }
                let mut v: Vec<(u64, u64, ParticipantId)> = candidates
                    .iter()
                    .map(|p| {
                        (
                            self.last_active.get(p).copied().unwrap_or(0),
                            u64::MAX - self.first_seen.get(p).copied().unwrap_or(u64::MAX),
                            *p,
                        )
                    })
                    .collect();
                // Most recent speaker first; never-heard participants by arrival order.
                v.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
                v.into_iter().take(*n).map(|e| e.2).collect()
            }
        }
    }

    pub fn forget(&mut self, who: ParticipantId) {
        self.last_active.remove(&who);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(n: u128) -> ParticipantId {
        ParticipantId::from_u128(n)
    }

    #[test]
    fn last_n_follows_the_speakers() {
        let mut t = SpeakerTracker::default();
        let all = [pid(1), pid(2), pid(3)];
        let quiet = AudioLevel { voice: false, level_dbov: 127 };
        let loud = AudioLevel { voice: true, level_dbov: 20 };
        for p in all {
            t.on_level(p, quiet, 1);
        }
        // Nobody spoke yet: the first to arrive.
        assert_eq!(t.wanted(&VideoPolicy::LastN(1), &all), HashSet::from([pid(1)]));
        t.on_level(pid(3), loud, 10);
        assert_eq!(t.wanted(&VideoPolicy::LastN(1), &all), HashSet::from([pid(3)]));
        t.on_level(pid(2), loud, 20);
        assert_eq!(t.wanted(&VideoPolicy::LastN(2), &all), HashSet::from([pid(2), pid(3)]));
        assert_eq!(t.wanted(&VideoPolicy::All, &all).len(), 3);
        let only = VideoPolicy::Only(HashSet::from([pid(1), pid(9)]));
        assert_eq!(t.wanted(&only, &all), HashSet::from([pid(1)]));
    }
}
