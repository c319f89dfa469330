//! What a browser guest's session does on its behalf, sans-IO: the browser
//! speaks the control protocol itself (join, chat, media state, host actions),
//! while media signaling is the relay's job — it publishes the browser's WebRTC
//! tracks and subscribes them to everyone else's, with request ids from a
//! reserved range whose replies never reach the browser.

use std::collections::{HashMap, HashSet};

use clinicmeet_protocol::{
    ClientMessage, Event, FlowId, JoinState, ParticipantId, Request, RequestId, Response, ServerMessage,
    TrackId, TrackInfo, TrackKind, TrackPublished, TrackSpec, TrackUnpublished,
};

/// Request ids at or above this are the relay's own (browsers count from 1).
pub const BRIDGE_ID_BASE: RequestId = 1 << 40;

/// What the session should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this request to the hub as the guest.
    Request(ClientMessage),
    /// The browser's track with this SSRC publishes on `flow`.
    Published { ssrc: u32, flow: FlowId },
    /// A remote track is forwarded to this session on `flow`.
    Subscribed { info: TrackInfo, flow: FlowId },
    /// A remote track is gone (its subscription with it).
    Gone { track_id: TrackId },
}

/// Slot kind: screen tracks go in video slots.
pub fn slot_kind(kind: TrackKind) -> usize {
    usize::from(kind != TrackKind::Audio)
}

#[derive(Debug, Default)]
pub struct Bridge {
    next_id: RequestId,
    me: Option<ParticipantId>,
    in_meeting: bool,
    /// Free receive slots per kind (audio, video) once the peer connection is up.
    free: Option<[usize; 2]>,
    known: HashMap<TrackId, TrackInfo>,
    requested: HashSet<TrackId>,
    subscribed: HashSet<TrackId>,
    pending_pub: HashMap<RequestId, u32>,
    pending_sub: HashMap<RequestId, (TrackId, usize)>,
    /// Browser tracks seen before the guest was in the meeting.
    unpublished: Vec<(TrackKind, u32)>,
    published: HashSet<u32>,
}

impl Bridge {
    pub fn new() -> Bridge {
        Bridge { next_id: BRIDGE_ID_BASE, ..Bridge::default() }
    }

    /// The guest is in the meeting proper (joined or admitted, not waiting, not
    /// gone): only then is a WebRTC offer accepted.
    pub fn in_meeting(&self) -> bool {
        self.in_meeting
    }

    fn request(&mut self, request: Request) -> (RequestId, Action) {
        let id = self.next_id;
        self.next_id += 1;
        (id, Action::Request(ClientMessage { id, request }))
    }

    fn enter(&mut self, js: &JoinState, out: &mut Vec<Action>) {
        self.me = Some(js.you.id);
        self.in_meeting = true;
        for t in &js.tracks {
            if t.participant_id != js.you.id {
                self.known.insert(t.track_id, t.clone());
            }
        }
        self.publish_pending(out);
        self.subscribe_all(out);
    }

    fn publish_pending(&mut self, out: &mut Vec<Action>) {
        if !self.in_meeting {
            return;
        }
        for (kind, ssrc) in std::mem::take(&mut self.unpublished) {
            if !self.published.insert(ssrc) {
                continue;
            }
            let spec = TrackSpec::single(kind, ssrc);
            let (id, a) = self.request(Request::Publish { track: spec });
            self.pending_pub.insert(id, ssrc);
            out.push(a);
        }
    }

    fn subscribe_all(&mut self, out: &mut Vec<Action>) {
        let (Some(free), true) = (self.free.as_mut(), self.in_meeting) else { return };
        let mut ids: Vec<(TrackId, usize)> = self
            .known
            .iter()
            .filter(|(id, _)| !self.requested.contains(*id))
            .map(|(id, t)| (*id, slot_kind(t.spec.kind)))
            .collect();
        ids.sort();
        let mut reqs = Vec::new();
        for (id, k) in ids {
            if free[k] == 0 {
                continue;
            }
            free[k] -= 1;
            reqs.push((id, k));
        }
        for (track_id, k) in reqs {
            self.requested.insert(track_id);
            let (id, a) = self.request(Request::Subscribe { track_id, max_encoding: None });
            self.pending_sub.insert(id, (track_id, k));
            out.push(a);
        }
    }

    /// The browser's peer connection is up with this many receive slots.
    pub fn media_ready(&mut self, audio_slots: usize, video_slots: usize) -> Vec<Action> {
        self.free = Some([audio_slots, video_slots]);
        let mut out = Vec::new();
        self.subscribe_all(&mut out);
        out
    }

    /// The browser sends a track (kind, SSRC) over WebRTC.
    pub fn browser_track(&mut self, kind: TrackKind, ssrc: u32) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.published.contains(&ssrc) && !self.unpublished.iter().any(|(_, s)| *s == ssrc) {
            self.unpublished.push((kind, ssrc));
        }
        self.publish_pending(&mut out);
        out
    }

    fn gone(&mut self, track_id: TrackId, out: &mut Vec<Action>) {
        let Some(info) = self.known.remove(&track_id) else { return };
        self.requested.remove(&track_id);
        if self.subscribed.remove(&track_id) {
            if let Some(f) = self.free.as_mut() {
                f[slot_kind(info.spec.kind)] += 1;
            }
            out.push(Action::Gone { track_id });
        }
        // A subscription still in flight gives its slot back when answered.
        self.subscribe_all(out);
    }

    fn leave_meeting(&mut self, out: &mut Vec<Action>) {
        self.in_meeting = false;
        let ids: Vec<TrackId> = self.known.keys().copied().collect();
        for id in ids {
            self.gone(id, out);
        }
        self.published.clear();
    }

    /// A message from the hub for this guest: whether the browser sees it, and what to do.
    pub fn server(&mut self, msg: &ServerMessage) -> (bool, Vec<Action>) {
        let mut out = Vec::new();
        match msg {
            ServerMessage::Reply { id, response } if *id >= BRIDGE_ID_BASE => {
                match response {
                    Response::Published { flow_id, .. } => {
                        if let Some(ssrc) = self.pending_pub.remove(id) {
                            out.push(Action::Published { ssrc, flow: *flow_id });
                        }
                    }
                    Response::Subscribed { track_id, flow_id } => {
                        let Some((_, k)) = self.pending_sub.remove(id) else { return (false, out) };
                        match self.known.get(track_id) {
                            Some(info) if self.requested.contains(track_id) => {
                                self.subscribed.insert(*track_id);
                                out.push(Action::Subscribed { info: info.clone(), flow: *flow_id });
                            }
                            _ => {
                                if let Some(f) = self.free.as_mut() {
                                    f[k] += 1;
                                }
                            }
                        }
                    }
                    _ => {}
                }
                return (false, out);
            }
            ServerMessage::Error { id: Some(id), error } if *id >= BRIDGE_ID_BASE => {
                tracing::debug!(code = ?error.code, "guest media request refused");
                self.pending_pub.remove(id);
                if let Some((_, k)) = self.pending_sub.remove(id) {
                    // Not retried (a busy relay stays busy); the slot comes back.
                    if let Some(f) = self.free.as_mut() {
                        f[k] += 1;
                    }
                }
                return (false, out);
            }
            ServerMessage::Reply { response: Response::Joined(js), .. } => self.enter(js, &mut out),
            ServerMessage::Event { event } => match event {
                Event::Admitted(js) => self.enter(js, &mut out),
                Event::TrackPublished(TrackPublished { track }) if Some(track.participant_id) != self.me => {
                    self.known.insert(track.track_id, track.clone());
                    self.subscribe_all(&mut out);
                }
                Event::TrackUnpublished(TrackUnpublished { track_id }) => self.gone(*track_id, &mut out),
                Event::Removed | Event::Denied | Event::MeetingEnded(_) => self.leave_meeting(&mut out),
                _ => {}
            },
            _ => {}
        }
        (true, out)
    }

    /// The browser left the meeting (its own `leave` request).
    pub fn left(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.leave_meeting(&mut out);
        out
    }
}
