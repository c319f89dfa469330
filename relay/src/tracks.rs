//! The signaling side of media: which tracks are published in which meeting,
//! who subscribes to them, flow id allocation, and the commands that keep the
//! forwarding core ([`crate::sfu`]) in step. A [`Tracks`] is owned by the
//! [`crate::hub::Hub`], which passes in the room and connection facts each
//! call needs (so there is no cycle back to the hub). Sans-IO.

use std::collections::HashMap;
use std::sync::Arc;

use clinicmeet_protocol::{
    Codec, ErrorBody, ErrorCode, Event, FlowId, JoinState, MediaState, MeetingId, MeetingKind,
    MeetingSettings, ParticipantId, Response, TrackId, TrackInfo, TrackKind, TrackPublished, TrackSpec,
    TrackUnpublished,
};
use uuid::Uuid;

use crate::error::refuse;
use crate::hub::ConnId;
use crate::metrics::Metrics;
use crate::room::{Effect, Participant, Presence, Room};
use crate::sfu::MediaCmd;

/// Tracks one participant may publish at once.
pub const MAX_TRACKS_PER_PARTICIPANT: usize = 4;
/// Simulcast encodings per video track.
pub const MAX_ENCODINGS: usize = 4;

/// A published track as the signaling side knows it.
#[derive(Debug, Clone)]
pub struct PublishedTrack {
    pub meeting: MeetingId,
    pub publisher: ParticipantId,
    pub conn: ConnId,
    pub flow: FlowId,
    pub info: TrackInfo,
    pub enabled: bool,
}

/// Media state of one connection.
#[derive(Debug, Clone, Default)]
pub struct ConnMedia {
    next_flow: FlowId,
    /// Subscribed track → flow.
    pub subs: HashMap<TrackId, FlowId>,
}

impl ConnMedia {
    fn alloc_flow(&mut self) -> FlowId {
        self.next_flow += 1;
        self.next_flow
    }
}

/// Whether a participant's announced media lets a track of `kind` through.
pub fn kind_enabled(kind: TrackKind, media: MediaState, settings: &MeetingSettings) -> bool {
    match kind {
        TrackKind::Audio => media.audio,
        TrackKind::Video => media.video,
        TrackKind::Screen => media.screen && settings.allow_screen_share,
    }
}

/// Checks what a publisher announces.
pub fn validate_spec(spec: &TrackSpec) -> Result<(), ErrorBody> {
    let audio = spec.kind == TrackKind::Audio;
    match (audio, spec.codec) {
        (true, Codec::Opus) | (false, Codec::H264) => {}
        _ => return Err(refuse(ErrorCode::Malformed, "codec does not match the track kind")),
    }
    let n = spec.encodings.len();
    if n == 0 || (audio && n != 1) || n > MAX_ENCODINGS {
        return Err(refuse(ErrorCode::Malformed, "audio has one encoding, video one to four"));
    }
    for (i, enc) in spec.encodings.iter().enumerate() {
        if !(1..=8).contains(&enc.temporal_layers) {
            return Err(refuse(ErrorCode::Malformed, "temporal_layers must be 1 to 8"));
        }
        if spec.encodings[..i].iter().any(|o| o.ssrc == enc.ssrc) {
            return Err(refuse(ErrorCode::Malformed, "encodings need distinct SSRCs"));
        }
    }
    Ok(())
}

/// `pid` in `room` and in the meeting proper (not its waiting room).
pub(crate) fn present(room: Option<&Room>, pid: ParticipantId) -> Result<&Participant, ErrorBody> {
    let room = room.ok_or_else(crate::error::not_joined)?;
    let me = room.participant(pid).ok_or_else(crate::error::not_joined)?;
    if me.presence != Presence::InMeeting {
        return Err(crate::error::waiting());
    }
    Ok(me)
}

/// Where a connection is bound (meeting, participant), as the hub knows it.
pub(crate) type Binding = Option<(MeetingId, ParticipantId)>;

/// Published tracks, subscriptions and the forwarding commands they produce.
pub struct Tracks {
    tracks: HashMap<TrackId, PublishedTrack>,
    conns: HashMap<ConnId, ConnMedia>,
    /// Commands for the forwarding core produced by the current input.
    pending: Vec<MediaCmd>,
    metrics: Arc<Metrics>,
    max_forwarded_streams: usize,
}

type Handled = Result<(Response, Vec<Effect>), ErrorBody>;

impl Tracks {
    pub fn new(metrics: Arc<Metrics>, max_forwarded_streams: usize) -> Tracks {
        Tracks {
            tracks: HashMap::new(),
            conns: HashMap::new(),
            pending: Vec::new(),
            metrics,
            max_forwarded_streams,
        }
    }

    /// The forwarding commands produced since the last call, in order.
    pub fn take_commands(&mut self) -> std::vec::Drain<'_, MediaCmd> {
        self.pending.drain(..)
    }

    /// A connection closed: its media state goes, the forwarding core is told.
    pub fn conn_closed(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.pending.push(MediaCmd::ConnClosed { conn });
    }

    pub(crate) fn publish(
        &mut self,
        conn: ConnId,
        (mid, pid): (MeetingId, ParticipantId),
        room: Option<&Room>,
        spec: TrackSpec,
    ) -> Handled {
        validate_spec(&spec)?;
        let me = present(room, pid)?;
        let room = room.ok_or_else(crate::error::not_joined)?;
        let settings = room.info().settings;
        if spec.kind == TrackKind::Screen && !settings.allow_screen_share {
            return Err(refuse(ErrorCode::Forbidden, "screen sharing is not allowed in this meeting"));
        }
        if spec.kind == TrackKind::Video && room.info().kind == MeetingKind::AudioOnly {
            return Err(refuse(ErrorCode::Forbidden, "this is an audio-only meeting"));
        }
        if self.tracks.values().filter(|t| t.publisher == pid).count() >= MAX_TRACKS_PER_PARTICIPANT {
            return Err(refuse(ErrorCode::RateLimited, "too many published tracks"));
        }
        let enabled = kind_enabled(spec.kind, me.media, &settings);
        let present: Vec<ParticipantId> = room
            .participants()
            .filter(|p| p.presence == Presence::InMeeting && p.id != pid)
            .map(|p| p.id)
            .collect();
        let flow = self.conns.entry(conn).or_default().alloc_flow();
        let track_id = Uuid::now_v7();
        let info = TrackInfo { track_id, participant_id: pid, spec };
        self.pending.push(MediaCmd::AddTrack {
            track_id,
            conn,
            flow,
            kind: info.spec.kind,
            encodings: info.spec.encodings.iter().map(|x| (x.ssrc, x.temporal_layers)).collect(),
            enabled,
        });
        let effects = present
            .into_iter()
            .map(|to| Effect::Event {
                to,
                event: Event::TrackPublished(TrackPublished { track: info.clone() }),
            })
            .collect();
        self.tracks
            .insert(track_id, PublishedTrack { meeting: mid, publisher: pid, conn, flow, info, enabled });
        self.metrics.set_tracks(self.tracks.len());
        Ok((Response::Published { track_id, flow_id: flow }, effects))
    }

    pub(crate) fn unpublish(
        &mut self,
        pid: ParticipantId,
        rooms: &HashMap<MeetingId, Room>,
        track_id: TrackId,
    ) -> Handled {
        match self.tracks.get(&track_id) {
            Some(t) if t.publisher == pid => {}
            _ => return Err(refuse(ErrorCode::NotFound, "no such track of yours")),
        }
        let mut effects = Vec::new();
        self.drop_track(track_id, rooms, &mut effects);
        Ok((Response::Ok, effects))
    }

    pub(crate) fn subscribe(
        &mut self,
        conn: ConnId,
        (mid, pid): (MeetingId, ParticipantId),
        room: Option<&Room>,
        track_id: TrackId,
        max_encoding: Option<u8>,
    ) -> Handled {
        let room = room.ok_or_else(crate::error::not_joined)?;
        if room.participant(pid).is_none_or(|p| p.presence != Presence::InMeeting) {
            return Err(crate::error::waiting());
        }
        match self.tracks.get(&track_id) {
            Some(t) if t.meeting == mid && t.publisher != pid => {}
            Some(t) if t.meeting == mid => {
                return Err(refuse(ErrorCode::InvalidState, "this is your own track"))
            }
            _ => return Err(refuse(ErrorCode::NotFound, "no such track in this meeting")),
        }
        let existing = self.conns.get(&conn).and_then(|m| m.subs.get(&track_id)).copied();
        if existing.is_none() && self.forwarded_streams() >= self.max_forwarded_streams {
            return Err(refuse(
                ErrorCode::ServerBusy,
                "the relay forwards all the streams it can; try again later",
            ));
        }
        let cm = self.conns.entry(conn).or_default();
        let flow = match existing {
            Some(f) => f,
            None => {
                let f = cm.alloc_flow();
                cm.subs.insert(track_id, f);
                f
            }
        };
        self.pending.push(MediaCmd::Subscribe { conn, flow, track_id, max_encoding });
        self.metrics.set_forwarded_streams(self.forwarded_streams());
        Ok((Response::Subscribed { track_id, flow_id: flow }, Vec::new()))
    }

    pub(crate) fn unsubscribe(&mut self, conn: ConnId, track_id: TrackId) -> Handled {
        let had = self.conns.get_mut(&conn).and_then(|m| m.subs.remove(&track_id)).is_some();
        if !had {
            return Err(refuse(ErrorCode::NotFound, "not subscribed to that track"));
        }
        self.pending.push(MediaCmd::Unsubscribe { conn, track_id });
        self.metrics.set_forwarded_streams(self.forwarded_streams());
        Ok((Response::Ok, Vec::new()))
    }

    /// Subscriptions in place across the relay.
    pub fn forwarded_streams(&self) -> usize {
        self.conns.values().map(|m| m.subs.len()).sum()
    }

    fn drop_track(&mut self, track_id: TrackId, rooms: &HashMap<MeetingId, Room>, effects: &mut Vec<Effect>) {
        let Some(t) = self.tracks.remove(&track_id) else { return };
        self.pending.push(MediaCmd::RemoveTrack { track_id });
        for m in self.conns.values_mut() {
            m.subs.remove(&track_id);
        }
        if let Some(room) = rooms.get(&t.meeting) {
            for p in room.participants().filter(|p| p.presence == Presence::InMeeting && p.id != t.publisher)
            {
                effects.push(Effect::Event {
                    to: p.id,
                    event: Event::TrackUnpublished(TrackUnpublished { track_id }),
                });
            }
        }
        self.metrics.set_tracks(self.tracks.len());
        self.metrics.set_forwarded_streams(self.forwarded_streams());
    }

    /// Brings tracks and subscriptions in line with rooms and connections: tracks of
    /// people who left or lost their connection go, media state gates forwarding,
    /// subscriptions outside one's meeting end. Cheap enough to run after every request.
    /// `bound` says where a connection is bound.
    pub(crate) fn sync(
        &mut self,
        rooms: &HashMap<MeetingId, Room>,
        bound: impl Fn(ConnId) -> Binding,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let ids: Vec<TrackId> = self.tracks.keys().copied().collect();
        for id in ids {
            let Some(t) = self.tracks.get(&id) else { continue };
            let bound_here = bound(t.conn) == Some((t.meeting, t.publisher));
            let state = rooms.get(&t.meeting).and_then(|r| {
                let p = r.participant(t.publisher)?;
                (p.presence == Presence::InMeeting && !r.is_over())
                    .then(|| kind_enabled(t.info.spec.kind, p.media, &r.info().settings))
            });
            match state {
                Some(enabled) if bound_here => {
                    if enabled != t.enabled {
                        self.pending.push(MediaCmd::SetEnabled { track_id: id, enabled });
                        if let Some(t) = self.tracks.get_mut(&id) {
                            t.enabled = enabled;
                        }
                    }
                }
                _ => self.drop_track(id, rooms, &mut effects),
            }
        }
        // Subscriptions of connections no longer in the track's meeting.
        let mut gone = Vec::new();
        for (conn, m) in &self.conns {
            let here = bound(*conn);
            for track_id in m.subs.keys() {
                let ok = match (self.tracks.get(track_id), here) {
                    (Some(t), Some((mid, pid))) => t.meeting == mid && present(rooms.get(&mid), pid).is_ok(),
                    _ => false,
                };
                if !ok {
                    gone.push((*conn, *track_id));
                }
            }
        }
        for (conn, track_id) in gone {
            if let Some(m) = self.conns.get_mut(&conn) {
                m.subs.remove(&track_id);
            }
            self.pending.push(MediaCmd::Unsubscribe { conn, track_id });
        }
        self.metrics.set_forwarded_streams(self.forwarded_streams());
        effects
    }

    /// Fills `tracks` of a join state with what others publish in its meeting.
    pub(crate) fn fill(&self, js: &mut JoinState) {
        js.tracks = self
            .tracks
            .values()
            .filter(|t| t.meeting == js.meeting.id && t.publisher != js.you.id)
            .map(|t| t.info.clone())
            .collect();
        js.tracks.sort_by_key(|t| t.track_id);
    }

    /// The published tracks (for tests and operators).
    pub fn iter(&self) -> impl Iterator<Item = &PublishedTrack> {
        self.tracks.values()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clinicmeet_protocol::{ClientMessage, MeetingSpec, ParticipantId, Request, ServerMessage};

    use super::*;
    use crate::hub::{ConnId, Hub, HubConfig, Out};
    use crate::keys::{self, Keys};
    use crate::metrics::Metrics;
    use crate::store::{Store, SyncMode};

    const ON: MediaState = MediaState { audio: true, video: true, screen: false };

    fn call(hub: &mut Hub, conn: ConnId, request: Request) -> Vec<Out> {
        let body = serde_json::to_vec(&ClientMessage { id: 1, request }).unwrap();
        hub.frame(1_000, conn, &body)
    }

    fn reply(outs: &[Out]) -> (usize, Response) {
        outs.iter()
            .enumerate()
            .find_map(|(i, o)| match o {
                Out::Send(_, ServerMessage::Reply { response, .. }) => Some((i, response.clone())),
                Out::Send(_, ServerMessage::Error { error, .. }) => panic!("error {error:?}"),
                _ => None,
            })
            .expect("a reply")
    }

    fn media(outs: &[Out]) -> Vec<(usize, MediaCmd)> {
        outs.iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Out::Media(c) => Some((i, c.clone())),
                _ => None,
            })
            .collect()
    }

    fn events_to(outs: &[Out], conn: ConnId) -> Vec<Event> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Send(c, ServerMessage::Event { event }) if *c == conn => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    fn spec(kind: TrackKind, ssrc: u32) -> TrackSpec {
        TrackSpec::single(kind, ssrc)
    }

    /// A hub with a host (conn 1) and a guest (conn 2) in one meeting.
    fn meeting(dir: &std::path::Path) -> (Hub, String, ParticipantId) {
        meeting_with(dir, MeetingSettings::default())
    }

    fn meeting_with(dir: &std::path::Path, settings: MeetingSettings) -> (Hub, String, ParticipantId) {
        let store = Store::open(&dir.join("relay.db"), SyncMode::Normal).unwrap();
        let code = keys::new_enrollment_code();
        store
            .add_staff("Dr A", &keys::hash_secret(&keys::normalize_enrollment_code(&code)), 0, i64::MAX / 2)
            .unwrap();
        let keys = Keys::load(dir).unwrap();
        let mut hub = Hub::new(HubConfig::default(), store, keys, Arc::new(Metrics::default()), 0).unwrap();
        let hello =
            || Request::Hello { min_version: 1, max_version: 1, client: "t".into(), device_credential: None };
        for conn in [1, 2, 3] {
            hub.connected(0, conn, "127.0.0.1:1".parse().unwrap());
            call(&mut hub, conn, hello());
        }
        call(&mut hub, 1, Request::Enroll { enrollment_code: code, device_name: "pc".into() });
        let spec = MeetingSpec {
            title: "t".into(),
            description: None,
            kind: MeetingKind::Video,
            patient_reference: None,
            schedule: None,
            settings,
        };
        let (_, Response::MeetingCreated { access_code, .. }) =
            reply(&call(&mut hub, 1, Request::CreateMeeting { spec }))
        else {
            panic!()
        };
        let join = |name: &str| Request::Join {
            access_code: access_code.clone(),
            display_name: name.into(),
            media: ON,
        };
        call(&mut hub, 1, join("A"));
        let (_, Response::Joined(js)) = reply(&call(&mut hub, 2, join("B"))) else { panic!() };
        (hub, access_code, js.you.id)
    }

    #[test]
    fn a_locked_microphone_is_not_forwarded_until_a_moderator_allows_and_the_participant_unmutes() {
        let dir = tempfile::tempdir().unwrap();
        let settings = MeetingSettings { allow_self_unmute: false, ..MeetingSettings::default() };
        let (mut hub, _, guest) = meeting_with(dir.path(), settings);
        let outs = call(&mut hub, 2, Request::Publish { track: spec(TrackKind::Audio, 20) });
        let (_, Response::Published { track_id: audio, .. }) = reply(&outs) else { panic!() };
        let set = |outs: &[Out]| media(outs).into_iter().map(|x| x.1).collect::<Vec<_>>();
        let off = vec![MediaCmd::SetEnabled { track_id: audio, enabled: false }];
        assert_eq!(set(&call(&mut hub, 1, Request::Mute { participant_id: guest })), off);
        // The guest's own unmute is refused: the forwarding core hears nothing.
        let outs = call(&mut hub, 2, Request::UpdateMedia { media: ON });
        assert!(outs.iter().any(|o| matches!(o,
            Out::Send(2, ServerMessage::Error { error, .. }) if error.code == ErrorCode::Forbidden)));
        assert_eq!(set(&outs), vec![]);
        // Allowed: still off until the guest turns it on.
        assert_eq!(set(&call(&mut hub, 1, Request::AllowUnmute { participant_id: guest })), vec![]);
        let on = vec![MediaCmd::SetEnabled { track_id: audio, enabled: true }];
        assert_eq!(set(&call(&mut hub, 2, Request::UpdateMedia { media: ON })), on);
    }

    #[test]
    fn commands_precede_replies_and_follow_media_state_and_departures() {
        let dir = tempfile::tempdir().unwrap();
        let (mut hub, code, guest) = meeting(dir.path());
        // Publish: the forwarding core hears of it before the client gets its flow.
        let outs = call(&mut hub, 1, Request::Publish { track: spec(TrackKind::Video, 10) });
        let (ri, Response::Published { track_id: video, flow_id }) = reply(&outs) else { panic!() };
        let cmds = media(&outs);
        assert!(
            matches!(&cmds[..], [(i, MediaCmd::AddTrack { enabled: true, flow, .. })] if *i < ri && *flow == flow_id)
        );
        assert!(events_to(&outs, 2).iter().any(
            |e| matches!(e, Event::TrackPublished(TrackPublished { track }) if track.track_id == video)
        ));
        // Subscribe likewise.
        let outs = call(&mut hub, 2, Request::Subscribe { track_id: video, max_encoding: None });
        let (ri, Response::Subscribed { .. }) = reply(&outs) else { panic!() };
        assert!(matches!(&media(&outs)[..], [(i, MediaCmd::Subscribe { conn: 2, .. })] if *i < ri));

        // The guest's audio is gated by a host mute.
        let outs = call(&mut hub, 2, Request::Publish { track: spec(TrackKind::Audio, 20) });
        let (_, Response::Published { track_id: audio, .. }) = reply(&outs) else { panic!() };
        call(&mut hub, 1, Request::Subscribe { track_id: audio, max_encoding: None });
        let outs = call(&mut hub, 1, Request::Mute { participant_id: guest });
        assert_eq!(
            media(&outs).into_iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![MediaCmd::SetEnabled { track_id: audio, enabled: false }]
        );

        // A late joiner sees both tracks in its join state.
        let join = Request::Join { access_code: code, display_name: "C".into(), media: ON };
        let (_, Response::Joined(js)) = reply(&call(&mut hub, 3, join)) else { panic!() };
        let mut seen: Vec<TrackId> = js.tracks.iter().map(|t| t.track_id).collect();
        seen.sort();
        let mut want = vec![video, audio];
        want.sort();
        assert_eq!(seen, want);

        // The guest leaves: its track goes, the host's subscription to it ends, others are told.
        let outs = call(&mut hub, 2, Request::Leave);
        let cmds: Vec<MediaCmd> = media(&outs).into_iter().map(|x| x.1).collect();
        assert!(cmds.contains(&MediaCmd::RemoveTrack { track_id: audio }));
        assert!(cmds.contains(&MediaCmd::Unsubscribe { conn: 2, track_id: video }));
        assert!(events_to(&outs, 1).iter().any(
            |e| matches!(e, Event::TrackUnpublished(TrackUnpublished { track_id }) if *track_id == audio)
        ));
        assert_eq!(hub.forwarded_streams(), 0);

        // The host's connection closes: its video goes too.
        let outs = hub.disconnected(2_000, 1);
        let cmds: Vec<MediaCmd> = media(&outs).into_iter().map(|x| x.1).collect();
        assert!(cmds.contains(&MediaCmd::ConnClosed { conn: 1 }));
        assert!(cmds.contains(&MediaCmd::RemoveTrack { track_id: video }));
        assert_eq!(hub.tracks().count(), 0);
    }
}
