//! The meeting domain, sans-IO: who is in a meeting, who waits, who may do
//! what, and the chat sequence. Every method takes the relay's clock as an
//! explicit `now` and returns what must happen as [`Effect`]s (events to
//! participants, storage writes, connections to close). Nothing here touches a
//! socket, a file or the system clock, so tests drive it deterministically.
//!
//! Rules implemented here (see the rights table in `docs/ARCHITECTURE.md`):
//! * host / moderator / staff enter directly; guests wait when the waiting room
//!   is on, and in a consultation always (until the doctor starts it);
//! * only host and moderators admit, deny, mute, remove and lock; only the host
//!   ends the meeting and promotes or demotes;
//! * staff-only notes follow enrolled identity, never the meeting role;
//! * if the host drops, a present moderator takes the host role at once and
//!   hands it back when the host resumes within the grace period; if nobody can
//!   admit once the host is gone for good, the longest-present enrolled staff
//!   member becomes host. Before the host first arrives nobody is promoted.

use std::collections::{BTreeMap, HashMap, HashSet};

use clinicmeet_protocol::{
    ChatMessage, ErrorBody, ErrorCode, Event, JoinState, LeaveReason, MediaChanged, MediaState, MeetingEnded,
    MeetingId, MeetingInfo, MeetingKind, MeetingSettings, MeetingStatus, MeetingUpdated, MutedBy,
    ParticipantConnection, ParticipantId, ParticipantInfo, ParticipantJoined, ParticipantLeft,
    RecordingChanged, RecordingInfo, Role, StaffId, StaffIdentity, SystemLine, Typing, UnixMillis,
    WaitingInfo, WaitingRoom,
};
use uuid::Uuid;

use crate::keys::ResumeKey;

use crate::admission::Source;
use crate::error::refuse as err;

/// Places in a waiting room (at least; a larger meeting's waiting room holds
/// as many as the meeting), apart from the meeting's own capacity: people who
/// wait never make a meeting `meeting_full` for those who may enter.
pub const WAITING_ROOM_CAPACITY: usize = 50;

/// Whom a denial or removal holds back when they come again with the code: an
/// enrolled staff member by identity, anyone else by source (IPv4 address,
/// IPv6 /64). Held joiners wait to be admitted even when the meeting has no
/// waiting room; behind a shared address others wait too, nobody is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldKey {
    Staff(StaffId),
    Source(Source),
}

impl HoldKey {
    /// How the store keeps it: `staff:UUID`, `v4:ADDRESS`, `v6:PREFIX` (16 hex digits).
    pub fn to_db(self) -> String {
        match self {
            HoldKey::Staff(id) => format!("staff:{id}"),
            HoldKey::Source(Source::V4(a)) => format!("v4:{a}"),
            HoldKey::Source(Source::V6Prefix(p)) => format!("v6:{p:016x}"),
        }
    }

    pub fn from_db(s: &str) -> Option<HoldKey> {
        let (kind, v) = s.split_once(':')?;
        Some(match kind {
            "staff" => HoldKey::Staff(Uuid::parse_str(v).ok()?),
            "v4" => HoldKey::Source(Source::V4(v.parse().ok()?)),
            "v6" => HoldKey::Source(Source::V6Prefix(u64::from_str_radix(v, 16).ok()?)),
            _ => return None,
        })
    }
}

/// A meeting as the room needs it: what participants see plus who created it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingRecord {
    pub info: MeetingInfo,
    pub creator: StaffId,
}

/// Where a participant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Waiting,
    InMeeting,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Waiting => "waiting",
            Presence::InMeeting => "in_meeting",
        }
    }
}

/// One participant (in the meeting or in its waiting room).
#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    pub id: ParticipantId,
    pub display_name: String,
    /// Enrolled staff identity, from the device credential of the connection that joined.
    pub staff: Option<StaffId>,
    pub role: Role,
    pub presence: Presence,
    pub media: MediaState,
    /// Arrival (join request) time.
    pub joined_at: UnixMillis,
    /// When the participant entered the meeting proper.
    pub entered_at: Option<UnixMillis>,
    pub connected: bool,
    pub disconnected_at: Option<UnixMillis>,
    /// Arrival order, for "longest present".
    pub arrival: u64,
    /// A moderator (or `mute_on_join`) turned the microphone off and the participant
    /// has not turned it on since; see [`Participant::audio_locked`].
    pub moderator_muted: bool,
    /// What the participant presents to resume (the token itself in memory only).
    pub resume: ResumeKey,
    /// Whom a denial or removal of this participant holds back (None: restored
    /// from a store that did not keep it).
    pub hold: Option<HoldKey>,
}

impl Participant {
    /// The relay refuses this participant's microphone until a moderator allows it:
    /// a moderator muted them in a meeting whose participants may not unmute
    /// themselves. Moderators are never locked.
    pub fn audio_locked(&self, settings: &MeetingSettings) -> bool {
        self.moderator_muted && !settings.allow_self_unmute && !self.role.can_moderate()
    }

    fn info(&self, settings: &MeetingSettings) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id,
            display_name: self.display_name.clone(),
            role: self.role,
            verified_staff: self.staff.is_some(),
            media: self.media,
            audio_locked: self.audio_locked(settings),
            joined_at: self.entered_at.unwrap_or(self.joined_at),
            connected: self.connected,
        }
    }

    fn waiting_info(&self) -> WaitingInfo {
        WaitingInfo {
            participant_id: self.id,
            display_name: self.display_name.clone(),
            since: self.joined_at,
        }
    }

    fn in_meeting(&self) -> bool {
        self.presence == Presence::InMeeting
    }

    /// The role a participant returns to when demoted.
    fn base_role(&self) -> Role {
        if self.staff.is_some() {
            Role::Staff
        } else {
            Role::Guest
        }
    }
}

/// Who is joining.
#[derive(Debug, Clone, PartialEq)]
pub struct Joiner {
    pub id: ParticipantId,
    pub display_name: String,
    pub staff: Option<StaffIdentity>,
    pub media: MediaState,
    pub resume: ResumeKey,
    /// Who this is for denials and removals.
    pub hold: HoldKey,
    /// Waits in the waiting room whatever the role (staff joining by meeting id
    /// without the code), unless they created the meeting.
    pub knock: bool,
}

/// A storage write the driver must perform (in order, before sending events).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Status, lock and times of the meeting changed.
    MeetingState(MeetingInfo),
    /// Insert or update a participant's row.
    Participant { meeting_id: MeetingId, participant: Participant },
    /// The participant left (or was denied, removed, timed out).
    ParticipantLeft { participant_id: ParticipantId, at: UnixMillis, reason: &'static str },
    /// Store an accepted chat message or note (before anyone is told).
    Chat(ChatMessage),
    /// A denial or removal holds `key` back in this meeting.
    Hold { meeting_id: MeetingId, key: HoldKey },
    /// Audit log entry (never chat text).
    Audit {
        meeting_id: MeetingId,
        participant_id: Option<ParticipantId>,
        action: &'static str,
        detail: String,
    },
}

/// What the driver must do after an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Write(Write),
    /// Push an event to a participant's connection (dropped if not connected).
    Event {
        to: ParticipantId,
        event: Event,
    },
    /// Close the participant's connection after the events queued before this.
    Close {
        who: ParticipantId,
    },
    /// The participant no longer belongs to this room (unbind its connection).
    Unbind {
        who: ParticipantId,
    },
}

/// The reply to the requester plus the effects.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    pub reply: T,
    pub effects: Vec<Effect>,
}

/// Result of entering: in the meeting, or in its waiting room.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Entry {
    Joined(Box<JoinState>),
    Waiting { participant_id: ParticipantId, resume_token: String, meeting: MeetingInfo },
}

/// Result of ending a consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsultationTimes {
    pub started_at: UnixMillis,
    pub ended_at: UnixMillis,
    pub duration_secs: i64,
}

pub type RoomResult<T> = Result<Outcome<T>, ErrorBody>;

/// One meeting's live state.
#[derive(Debug, Clone)]
pub struct Room {
    record: MeetingRecord,
    participants: BTreeMap<ParticipantId, Participant>,
    next_arrival: u64,
    chat_seq: u64,
    notes_seq: u64,
    /// client_msg_id → stored message, so a retried send is stored once. Holds
    /// only messages whose write committed ([`Room::stored`]), so a retry after a
    /// failed write is numbered and stored afresh, never answered from memory.
    messages: HashMap<Uuid, ChatMessage>,
    /// The host has been present at least once (successors are only chosen after that).
    had_host: bool,
    /// A host who dropped while a moderator took over; gets the role back on resume.
    reclaim: Option<ParticipantId>,
    /// Denied or removed: they wait to be admitted when they come again.
    held: HashSet<HoldKey>,
    /// Joined/left chat lines written in the current minute (start, count): a
    /// join/leave storm must not flood the chat ([`PRESENCE_LINES_PER_MINUTE`]).
    presence_lines: (UnixMillis, u32),
    /// A host or moderator records the call on their device. Ends when they stop, lose
    /// the moderator role or leave (also when their resume grace runs out).
    recording: Option<RecordingInfo>,
}

/// Most `joined`/`left` chat lines a meeting gets per minute; past it they are
/// left out (the participant events still go out).
pub const PRESENCE_LINES_PER_MINUTE: u32 = 20;

/// A room's state before a request, put back when the request's writes fail to
/// commit. Everything but the de-duplication map, which only ever holds
/// committed messages.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    record: MeetingRecord,
    participants: BTreeMap<ParticipantId, Participant>,
    next_arrival: u64,
    chat_seq: u64,
    notes_seq: u64,
    had_host: bool,
    reclaim: Option<ParticipantId>,
    held: HashSet<HoldKey>,
    recording: Option<RecordingInfo>,
}

impl Room {
    /// The state to return to if the writes of the next change fail.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            record: self.record.clone(),
            participants: self.participants.clone(),
            next_arrival: self.next_arrival,
            chat_seq: self.chat_seq,
            notes_seq: self.notes_seq,
            had_host: self.had_host,
            reclaim: self.reclaim,
            held: self.held.clone(),
            recording: self.recording,
        }
    }

    /// Undoes everything since `cp` was taken (its writes did not commit).
    pub fn rollback(&mut self, cp: Checkpoint) {
        let Checkpoint {
            record,
            participants,
            next_arrival,
            chat_seq,
            notes_seq,
            had_host,
            reclaim,
            held,
            recording,
        } = cp;
        self.record = record;
        self.participants = participants;
        self.next_arrival = next_arrival;
        self.chat_seq = chat_seq;
        self.notes_seq = notes_seq;
        self.had_host = had_host;
        self.reclaim = reclaim;
        self.held = held;
        self.recording = recording;
    }

    /// A chat message's write committed: a retry of its id now gets this copy.
    pub fn stored(&mut self, msg: &ChatMessage) {
        self.messages.insert(msg.client_msg_id, msg.clone());
    }

    pub fn new(record: MeetingRecord) -> Room {
        Room {
            record,
            participants: BTreeMap::new(),
            next_arrival: 0,
            chat_seq: 0,
            notes_seq: 0,
            messages: HashMap::new(),
            had_host: false,
            reclaim: None,
            held: HashSet::new(),
            presence_lines: (0, 0),
            recording: None,
        }
    }

    /// Rebuilds a room after a relay restart: everyone present becomes
    /// disconnected as of `now`, so they have the full grace period to resume.
    pub fn restore(
        record: MeetingRecord,
        participants: Vec<Participant>,
        messages: Vec<ChatMessage>,
        held: Vec<HoldKey>,
        now: UnixMillis,
    ) -> Room {
        let mut room = Room::new(record);
        room.held = held.into_iter().collect();
        for mut p in participants {
            p.connected = false;
            p.disconnected_at = Some(now);
            room.next_arrival = room.next_arrival.max(p.arrival + 1);
            if p.role == Role::Host {
                room.had_host = true;
            }
            room.participants.insert(p.id, p);
        }
        for m in messages {
            if m.staff_only {
                room.notes_seq = room.notes_seq.max(m.seq);
            } else {
                room.chat_seq = room.chat_seq.max(m.seq);
            }
            room.messages.insert(m.client_msg_id, m);
        }
        room
    }

    pub fn id(&self) -> MeetingId {
        self.record.info.id
    }

    pub fn info(&self) -> &MeetingInfo {
        &self.record.info
    }

    pub fn record(&self) -> &MeetingRecord {
        &self.record
    }

    pub fn participant(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.get(&id)
    }

    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    pub fn in_meeting_count(&self) -> usize {
        self.participants.values().filter(|p| p.in_meeting()).count()
    }

    pub fn waiting_count(&self) -> usize {
        self.participants.values().filter(|p| !p.in_meeting()).count()
    }

    pub fn chat_seq(&self) -> u64 {
        self.chat_seq
    }

    pub fn notes_seq(&self) -> u64 {
        self.notes_seq
    }

    /// Who records the call now, if anyone.
    pub fn recording(&self) -> Option<RecordingInfo> {
        self.recording
    }

    pub fn is_over(&self) -> bool {
        self.record.info.status.is_over()
    }

    /// Nobody present any more.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    // -----------------------------------------------------------------------
    // Views

    /// The meeting as a given participant may see it (patient reference for staff only).
    fn meeting_for(&self, staff: bool) -> MeetingInfo {
        let mut m = self.record.info.clone();
        if !staff {
            m.patient_reference = None;
        }
        m
    }

    fn waiting_list(&self) -> Vec<WaitingInfo> {
        let mut w: Vec<&Participant> = self.participants.values().filter(|p| !p.in_meeting()).collect();
        w.sort_by_key(|p| p.arrival);
        w.into_iter().map(Participant::waiting_info).collect()
    }

    /// What `pid` learns on entering.
    pub fn join_state(&self, pid: ParticipantId) -> Option<JoinState> {
        let me = self.participants.get(&pid)?;
        let mut present: Vec<&Participant> = self.participants.values().filter(|p| p.in_meeting()).collect();
        present.sort_by_key(|p| p.arrival);
        let settings = &self.record.info.settings;
        Some(JoinState {
            meeting: self.meeting_for(me.staff.is_some()),
            you: me.info(settings),
            participants: present.into_iter().map(|p| p.info(settings)).collect(),
            waiting: if me.role.can_moderate() { self.waiting_list() } else { Vec::new() },
            resume_token: me.resume.token.clone(),
            chat_seq: self.chat_seq,
            notes_seq: if me.staff.is_some() { self.notes_seq } else { 0 },
            tracks: Vec::new(),
            recording: self.recording,
        })
    }

    fn entry_for(&self, pid: ParticipantId) -> Option<Entry> {
        let me = self.participants.get(&pid)?;
        Some(match me.presence {
            Presence::InMeeting => Entry::Joined(Box::new(self.join_state(pid)?)),
            Presence::Waiting => Entry::Waiting {
                participant_id: pid,
                resume_token: me.resume.token.clone(),
                meeting: self.meeting_for(me.staff.is_some()),
            },
        })
    }

    // -----------------------------------------------------------------------
    // Effect helpers

    fn to_present(&self, except: Option<ParticipantId>, event: &Event, out: &mut Vec<Effect>) {
        for p in self.participants.values() {
            if p.in_meeting() && Some(p.id) != except {
                out.push(Effect::Event { to: p.id, event: event.clone() });
            }
        }
    }

    fn to_moderators(&self, event: &Event, out: &mut Vec<Effect>) {
        for p in self.participants.values() {
            if p.in_meeting() && p.role.can_moderate() {
                out.push(Effect::Event { to: p.id, event: event.clone() });
            }
        }
    }

    fn waiting_changed(&self, out: &mut Vec<Effect>) {
        let ev = Event::WaitingRoom(WaitingRoom { waiting: self.waiting_list() });
        self.to_moderators(&ev, out);
    }

    /// MeetingUpdated to everyone present, each with the view their identity allows.
    fn meeting_changed(&self, out: &mut Vec<Effect>) {
        out.push(Effect::Write(Write::MeetingState(self.record.info.clone())));
        for p in self.participants.values() {
            if p.in_meeting() {
                let ev =
                    Event::MeetingUpdated(MeetingUpdated { meeting: self.meeting_for(p.staff.is_some()) });
                out.push(Effect::Event { to: p.id, event: ev });
            }
        }
    }

    fn write_participant(&self, pid: ParticipantId, out: &mut Vec<Effect>) {
        if let Some(p) = self.participants.get(&pid) {
            out.push(Effect::Write(Write::Participant { meeting_id: self.id(), participant: p.clone() }));
        }
    }

    fn audit(&self, pid: Option<ParticipantId>, action: &'static str, detail: String, out: &mut Vec<Effect>) {
        out.push(Effect::Write(Write::Audit { meeting_id: self.id(), participant_id: pid, action, detail }));
    }

    /// Writes a relay line about `who` into the chat, numbered with it (stored
    /// before anyone hears of it, like any message), and sends it to everyone
    /// present but `except`. `joined`/`left` lines beyond
    /// [`PRESENCE_LINES_PER_MINUTE`] are left out.
    pub fn system_line(
        &mut self,
        now: UnixMillis,
        line: SystemLine,
        who: (ParticipantId, String, bool),
        except: Option<ParticipantId>,
        out: &mut Vec<Effect>,
    ) {
        if matches!(line, SystemLine::Joined | SystemLine::Left) {
            if now - self.presence_lines.0 >= 60_000 {
                self.presence_lines = (now, 0);
            }
            if self.presence_lines.1 >= PRESENCE_LINES_PER_MINUTE {
                return;
            }
            self.presence_lines.1 += 1;
        }
        self.chat_seq += 1;
        let (sender_id, sender_name, sender_verified) = who;
        let msg = ChatMessage {
            meeting_id: self.id(),
            seq: self.chat_seq,
            client_msg_id: Uuid::now_v7(),
            sender_id,
            sender_name,
            sender_verified,
            text: String::new(),
            staff_only: false,
            sent_at: now,
            system: Some(line),
            attachments: Vec::new(),
        };
        out.push(Effect::Write(Write::Chat(msg.clone())));
        self.to_present(except, &Event::Chat { message: msg }, out);
    }

    /// (id, display name, verified staff) of a participant, for a system line.
    fn who(&self, pid: ParticipantId) -> Option<(ParticipantId, String, bool)> {
        self.participants.get(&pid).map(|p| (p.id, p.display_name.clone(), p.staff.is_some()))
    }

    fn set_role(&mut self, pid: ParticipantId, role: Role, out: &mut Vec<Effect>) {
        let Some(p) = self.participants.get_mut(&pid) else { return };
        if p.role == role {
            return;
        }
        let was_mod = p.role.can_moderate();
        p.role = role;
        let now_mod = role.can_moderate();
        if !now_mod && self.recording.is_some_and(|r| r.by == pid) {
            self.recording_ended("recorder lost the moderator role", out);
        }
        let Some(p) = self.participants.get_mut(&pid) else { return };
        let lock_changes = p.moderator_muted && was_mod != now_mod;
        self.write_participant(pid, out);
        self.to_present(None, &Event::RoleChanged { participant_id: pid, role }, out);
        if lock_changes {
            self.media_changed(pid, out);
        }
        if now_mod && !was_mod {
            // A new moderator learns who is waiting.
            out.push(Effect::Event {
                to: pid,
                event: Event::WaitingRoom(WaitingRoom { waiting: self.waiting_list() }),
            });
        }
    }

    // -----------------------------------------------------------------------
    // Host succession

    fn current_host(&self) -> Option<ParticipantId> {
        self.participants.values().find(|p| p.in_meeting() && p.role == Role::Host).map(|p| p.id)
    }

    fn longest_present(&self, pred: impl Fn(&Participant) -> bool) -> Option<ParticipantId> {
        self.participants
            .values()
            .filter(|p| p.in_meeting() && p.connected && pred(p))
            .min_by_key(|p| p.arrival)
            .map(|p| p.id)
    }

    /// Makes sure somebody present can admit, once the host has been there.
    fn ensure_admitter(&mut self, out: &mut Vec<Effect>) {
        if !self.had_host || self.is_over() {
            return;
        }
        let connected_mod =
            self.participants.values().any(|p| p.in_meeting() && p.connected && p.role.can_moderate());
        if connected_mod {
            // A connected moderator but no host at all: the longest-present moderator becomes host.
            if self.current_host().is_none() {
                if let Some(m) = self.longest_present(|p| p.role == Role::Moderator) {
                    self.set_role(m, Role::Host, out);
                    self.audit(Some(m), "host_handover", "moderator became host".into(), out);
                }
            }
            return;
        }
        let host_in_grace =
            self.participants.values().any(|p| p.in_meeting() && p.role == Role::Host && !p.connected);
        if host_in_grace {
            return;
        }
        if let Some(s) = self.longest_present(|p| p.staff.is_some()) {
            // Demote any stale host (cannot be present-and-connected here).
            self.set_role(s, Role::Host, out);
            self.audit(Some(s), "host_handover", "staff member became host".into(), out);
        }
    }

    // -----------------------------------------------------------------------
    // Entering and leaving

    /// A join by access code (the code was already checked by the caller).
    pub fn join(&mut self, now: UnixMillis, j: Joiner) -> RoomResult<Entry> {
        let info = &self.record.info;
        if info.status.is_over() {
            return Err(err(ErrorCode::MeetingEnded, "this meeting has ended"));
        }
        let is_creator = j.staff.as_ref().is_some_and(|s| s.staff_id == self.record.creator);
        if info.locked && !is_creator {
            return Err(err(ErrorCode::MeetingLocked, "the host has locked this meeting"));
        }
        let held = !is_creator && self.held.contains(&j.hold);
        let consultation = info.kind == MeetingKind::Consultation;
        let role = if is_creator {
            Role::Host
        } else if j.staff.is_some() {
            Role::Staff
        } else {
            Role::Guest
        };
        let waits = held
            || (j.knock && !is_creator)
            || (role == Role::Guest && (consultation || info.settings.waiting_room));
        let waiting_capacity = WAITING_ROOM_CAPACITY.max(info.settings.max_participants as usize);
        if waits && self.waiting_count() >= waiting_capacity {
            return Err(err(ErrorCode::MeetingFull, "the waiting room is full; try again later"));
        }
        if !waits && !is_creator && self.in_meeting_count() >= info.settings.max_participants as usize {
            return Err(err(ErrorCode::MeetingFull, "this meeting is full"));
        }
        if self.participants.contains_key(&j.id) {
            return Err(err(ErrorCode::InvalidState, "participant id already in use"));
        }
        let mut out = Vec::new();
        let staff_id = j.staff.as_ref().map(|s| s.staff_id);
        let mut media = j.media;
        let muted_on_join = info.settings.mute_on_join;
        if muted_on_join {
            media.audio = false;
        }
        if !info.settings.allow_screen_share {
            media.screen = false;
        }
        let p = Participant {
            id: j.id,
            display_name: j.display_name,
            staff: staff_id,
            role,
            presence: Presence::Waiting,
            media,
            joined_at: now,
            entered_at: None,
            connected: true,
            disconnected_at: None,
            arrival: self.next_arrival,
            moderator_muted: muted_on_join,
            resume: j.resume,
            hold: Some(j.hold),
        };
        self.next_arrival += 1;
        self.participants.insert(p.id, p);
        self.audit(
            Some(j.id),
            "join",
            format!("role={} verified={}", role_str(role), staff_id.is_some()),
            &mut out,
        );
        if waits {
            self.write_participant(j.id, &mut out);
            self.waiting_changed(&mut out);
            self.audit(Some(j.id), "waiting", String::new(), &mut out);
        } else {
            if is_creator {
                // The creator always holds the host role; a stand-in goes back to moderator.
                if let Some(h) = self.current_host() {
                    self.set_role(h, Role::Moderator, &mut out);
                }
                self.reclaim = None;
            }
            self.enter(now, j.id, &mut out);
            if let Some(who) = self.who(j.id) {
                self.system_line(now, SystemLine::Joined, who, Some(j.id), &mut out);
            }
        }
        let reply = self.entry_for(j.id).ok_or_else(|| err(ErrorCode::Internal, "participant vanished"))?;
        Ok(Outcome { reply, effects: out })
    }

    /// Moves a participant from waiting into the meeting and tells everyone.
    fn enter(&mut self, now: UnixMillis, pid: ParticipantId, out: &mut Vec<Effect>) {
        let Some(p) = self.participants.get_mut(&pid) else { return };
        p.presence = Presence::InMeeting;
        p.entered_at = Some(now);
        let role = p.role;
        let info = p.info(&self.record.info.settings);
        if role == Role::Host {
            self.had_host = true;
        }
        self.write_participant(pid, out);
        self.to_present(Some(pid), &Event::ParticipantJoined(ParticipantJoined { participant: info }), out);
        if self.record.info.status == MeetingStatus::Scheduled
            && self.record.info.kind != MeetingKind::Consultation
        {
            self.record.info.status = MeetingStatus::Active;
            self.record.info.started_at = Some(now);
            self.meeting_changed(out);
        }
        self.ensure_admitter(out);
    }

    /// Takes a participant out of the room with a reason, telling the others.
    fn depart(&mut self, now: UnixMillis, pid: ParticipantId, reason: LeaveReason, out: &mut Vec<Effect>) {
        let Some(p) = self.participants.remove(&pid) else { return };
        out.push(Effect::Write(Write::ParticipantLeft {
            participant_id: pid,
            at: now,
            reason: reason_str(reason),
        }));
        out.push(Effect::Unbind { who: pid });
        if self.reclaim == Some(pid) {
            self.reclaim = None;
        }
        if self.recording.is_some_and(|r| r.by == pid) {
            self.recording_ended("recorder left", out);
            if let Some(who) = self.who(pid) {
                self.system_line(now, SystemLine::RecordingStopped, who, None, out);
            }
        }
        if p.in_meeting() {
            self.to_present(
                None,
                &Event::ParticipantLeft(ParticipantLeft { participant_id: pid, reason }),
                out,
            );
            let who = (p.id, p.display_name.clone(), p.staff.is_some());
            self.system_line(now, SystemLine::Left, who, None, out);
            if p.role == Role::Host {
                if let Some(m) = self.longest_present(|q| q.role == Role::Moderator) {
                    self.set_role(m, Role::Host, out);
                    self.audit(Some(m), "host_handover", "moderator became host".into(), out);
                }
            }
            self.ensure_admitter(out);
        } else {
            self.waiting_changed(out);
        }
        self.audit(Some(pid), "leave", reason_str(reason).into(), out);
    }

    /// The participant leaves for good.
    pub fn leave(&mut self, now: UnixMillis, pid: ParticipantId) -> RoomResult<()> {
        if !self.participants.contains_key(&pid) {
            return Err(err(ErrorCode::InvalidState, "not in this meeting"));
        }
        let mut out = Vec::new();
        self.depart(now, pid, LeaveReason::Left, &mut out);
        Ok(Outcome { reply: (), effects: out })
    }

    /// The participant's connection dropped: it stays for the grace period.
    pub fn connection_lost(&mut self, now: UnixMillis, pid: ParticipantId) -> Vec<Effect> {
        let mut out = Vec::new();
        let Some(p) = self.participants.get_mut(&pid) else { return out };
        if !p.connected {
            return out;
        }
        p.connected = false;
        p.disconnected_at = Some(now);
        let (in_meeting, role) = (p.in_meeting(), p.role);
        if in_meeting {
            self.to_present(
                Some(pid),
                &Event::ConnectionChanged(ParticipantConnection { participant_id: pid, connected: false }),
                &mut out,
            );
            if role == Role::Host {
                if let Some(m) = self.longest_present(|q| q.role == Role::Moderator) {
                    self.set_role(m, Role::Host, &mut out);
                    self.set_role(pid, Role::Moderator, &mut out);
                    self.reclaim = Some(pid);
                    self.audit(
                        Some(m),
                        "host_handover",
                        "host dropped; moderator stands in".into(),
                        &mut out,
                    );
                }
            }
        }
        out
    }

    /// The participant came back with its resume token.
    /// Takes a place back (the driver checked the token presented:
    /// [`crate::keys::Keys::rotate_resume`]); `next` is the place's new resume key.
    pub fn resume(&mut self, _now: UnixMillis, pid: ParticipantId, next: ResumeKey) -> RoomResult<Entry> {
        if self.is_over() {
            return Err(err(ErrorCode::MeetingEnded, "this meeting has ended"));
        }
        let Some(p) = self.participants.get_mut(&pid) else {
            return Err(err(ErrorCode::ResumeFailed, "that place in the meeting is gone; join again"));
        };
        let was_connected = p.connected;
        p.connected = true;
        p.disconnected_at = None;
        p.resume = next;
        let in_meeting = p.in_meeting();
        let mut out = Vec::new();
        self.write_participant(pid, &mut out);
        if in_meeting {
            if self.reclaim == Some(pid) {
                self.reclaim = None;
                if let Some(h) = self.current_host() {
                    self.set_role(h, Role::Moderator, &mut out);
                }
                self.set_role(pid, Role::Host, &mut out);
                self.audit(Some(pid), "host_handover", "host resumed".into(), &mut out);
            }
            if !was_connected {
                self.to_present(
                    Some(pid),
                    &Event::ConnectionChanged(ParticipantConnection { participant_id: pid, connected: true }),
                    &mut out,
                );
            }
            self.ensure_admitter(&mut out);
        }
        self.audit(Some(pid), "resume", String::new(), &mut out);
        let reply = self.entry_for(pid).ok_or_else(|| err(ErrorCode::Internal, "participant vanished"))?;
        Ok(Outcome { reply, effects: out })
    }

    /// Expires participants whose grace ran out.
    pub fn tick(&mut self, now: UnixMillis, grace_ms: i64) -> Vec<Effect> {
        let mut out = Vec::new();
        let expired: Vec<ParticipantId> = self
            .participants
            .values()
            .filter(|p| !p.connected && p.disconnected_at.is_some_and(|t| now - t >= grace_ms))
            .map(|p| p.id)
            .collect();
        for pid in expired {
            self.depart(now, pid, LeaveReason::ConnectionLost, &mut out);
        }
        out
    }

    /// The earliest time a disconnected participant's grace ends.
    pub fn next_deadline(&self, grace_ms: i64) -> Option<UnixMillis> {
        self.participants.values().filter_map(|p| p.disconnected_at.map(|t| t + grace_ms)).min()
    }

    // -----------------------------------------------------------------------
    // Moderation

    fn actor(&self, pid: ParticipantId) -> Result<&Participant, ErrorBody> {
        let p =
            self.participants.get(&pid).ok_or_else(|| err(ErrorCode::InvalidState, "not in this meeting"))?;
        if !p.in_meeting() {
            return Err(crate::error::waiting());
        }
        if self.is_over() {
            return Err(err(ErrorCode::MeetingEnded, "this meeting has ended"));
        }
        Ok(p)
    }

    fn moderator(&self, pid: ParticipantId) -> Result<&Participant, ErrorBody> {
        let p = self.actor(pid)?;
        if !p.role.can_moderate() {
            return Err(err(ErrorCode::Forbidden, "only the host or a moderator may do this"));
        }
        Ok(p)
    }

    fn host(&self, pid: ParticipantId) -> Result<&Participant, ErrorBody> {
        let p = self.actor(pid)?;
        if !p.role.is_host() {
            return Err(err(ErrorCode::Forbidden, "only the host may do this"));
        }
        Ok(p)
    }

    /// A moderator may act on staff and guests; the host on everyone but itself.
    fn target_in_meeting(
        &self,
        actor: ParticipantId,
        target: ParticipantId,
    ) -> Result<&Participant, ErrorBody> {
        let a = self.moderator(actor)?;
        if actor == target {
            return Err(err(ErrorCode::InvalidState, "you cannot do this to yourself"));
        }
        let t = self
            .participants
            .get(&target)
            .filter(|t| t.in_meeting())
            .ok_or_else(|| err(ErrorCode::NotFound, "no such participant in the meeting"))?;
        let outranks = a.role == Role::Host || matches!(t.role, Role::Staff | Role::Guest);
        if !outranks {
            return Err(err(ErrorCode::Forbidden, "a moderator cannot act on the host or another moderator"));
        }
        Ok(t)
    }

    fn waiting_target(&self, actor: ParticipantId, target: ParticipantId) -> Result<(), ErrorBody> {
        self.moderator(actor)?;
        match self.participants.get(&target) {
            Some(t) if t.presence == Presence::Waiting => Ok(()),
            _ => Err(err(ErrorCode::NotFound, "nobody with that id is waiting")),
        }
    }

    /// An operator removed this participant's staff identity (or their device):
    /// they are told they were removed and leave at once, so their place
    /// cannot be resumed; the usual hand-over follows if they held the host role.
    pub fn revoke_staff(&mut self, now: UnixMillis, pid: ParticipantId) -> Vec<Effect> {
        if !self.participants.contains_key(&pid) {
            return Vec::new();
        }
        let mut out = vec![Effect::Event { to: pid, event: Event::Removed }, Effect::Close { who: pid }];
        self.hold(pid, &mut out);
        self.audit(Some(pid), "staff_revoked", "disconnected".into(), &mut out);
        self.depart(now, pid, LeaveReason::Removed, &mut out);
        out
    }

    /// Denied or removed: the same person coming again with the code waits (also
    /// after a relay restart: the hold is stored until the meeting ends).
    fn hold(&mut self, target: ParticipantId, out: &mut Vec<Effect>) {
        let Some(key) = self.participants.get(&target).and_then(|p| p.hold) else { return };
        if self.held.insert(key) {
            out.push(Effect::Write(Write::Hold { meeting_id: self.id(), key }));
        }
    }

    /// The host who dropped while a moderator stands in keeps their place: the
    /// stand-in can neither demote nor remove them.
    fn not_the_absent_host(&self, target: ParticipantId) -> Result<(), ErrorBody> {
        if self.reclaim == Some(target) {
            return Err(err(
                ErrorCode::Forbidden,
                "the host is away; they get the role back when they return",
            ));
        }
        Ok(())
    }

    pub fn admit(&mut self, now: UnixMillis, actor: ParticipantId, target: ParticipantId) -> RoomResult<()> {
        self.waiting_target(actor, target)?;
        if self.record.info.kind == MeetingKind::Consultation
            && self.record.info.status != MeetingStatus::Active
        {
            return Err(err(ErrorCode::InvalidState, "start the consultation first"));
        }
        if self.in_meeting_count() >= self.record.info.settings.max_participants as usize {
            return Err(err(ErrorCode::MeetingFull, "the meeting is full; someone must leave first"));
        }
        let mut out = Vec::new();
        self.admit_one(now, actor, target, &mut out);
        self.waiting_changed(&mut out);
        Ok(Outcome { reply: (), effects: out })
    }

    fn admit_one(
        &mut self,
        now: UnixMillis,
        actor: ParticipantId,
        target: ParticipantId,
        out: &mut Vec<Effect>,
    ) {
        self.enter(now, target, out);
        if let Some(who) = self.who(target) {
            self.system_line(now, SystemLine::Admitted, who, Some(target), out);
        }
        if let Some(js) = self.join_state(target) {
            out.push(Effect::Event { to: target, event: Event::Admitted(Box::new(js)) });
        }
        self.audit(Some(target), "admit", format!("by={actor}"), out);
    }

    pub fn deny(&mut self, now: UnixMillis, actor: ParticipantId, target: ParticipantId) -> RoomResult<()> {
        self.waiting_target(actor, target)?;
        let mut out = vec![Effect::Event { to: target, event: Event::Denied }, Effect::Close { who: target }];
        self.hold(target, &mut out);
        self.audit(Some(target), "deny", format!("by={actor}"), &mut out);
        self.participants.remove(&target);
        out.push(Effect::Write(Write::ParticipantLeft { participant_id: target, at: now, reason: "denied" }));
        out.push(Effect::Unbind { who: target });
        self.waiting_changed(&mut out);
        Ok(Outcome { reply: (), effects: out })
    }

    pub fn mute(&mut self, _now: UnixMillis, actor: ParticipantId, target: ParticipantId) -> RoomResult<()> {
        self.target_in_meeting(actor, target)?;
        let mut out = Vec::new();
        if let Some(t) = self.participants.get_mut(&target) {
            t.media.audio = false;
            t.moderator_muted = true;
            out.push(Effect::Event { to: target, event: Event::MutedBy(MutedBy { by: actor }) });
            self.write_participant(target, &mut out);
            self.media_changed(target, &mut out);
        }
        self.audit(Some(target), "mute", format!("by={actor}"), &mut out);
        Ok(Outcome { reply: (), effects: out })
    }

    /// Lets a participant a moderator muted turn their microphone on again (it stays
    /// off: nobody's microphone is turned on for them).
    pub fn allow_unmute(
        &mut self,
        _now: UnixMillis,
        actor: ParticipantId,
        target: ParticipantId,
    ) -> RoomResult<()> {
        self.target_in_meeting(actor, target)?;
        let mut out = Vec::new();
        if let Some(t) = self.participants.get_mut(&target) {
            if t.moderator_muted {
                t.moderator_muted = false;
                self.write_participant(target, &mut out);
                self.media_changed(target, &mut out);
                self.audit(Some(target), "allow_unmute", format!("by={actor}"), &mut out);
            }
        }
        Ok(Outcome { reply: (), effects: out })
    }

    /// Whether participants may unmute themselves after a moderator muted them.
    pub fn set_self_unmute(
        &mut self,
        _now: UnixMillis,
        actor: ParticipantId,
        allowed: bool,
    ) -> RoomResult<()> {
        self.moderator(actor)?;
        let mut out = Vec::new();
        if self.record.info.settings.allow_self_unmute != allowed {
            self.record.info.settings.allow_self_unmute = allowed;
            self.meeting_changed(&mut out);
            // Everyone learns whose microphone is now locked or free.
            let muted: Vec<ParticipantId> = self
                .participants
                .values()
                .filter(|p| p.in_meeting() && p.moderator_muted && !p.role.can_moderate())
                .map(|p| p.id)
                .collect();
            for pid in muted {
                self.media_changed(pid, &mut out);
            }
            self.audit(Some(actor), "self_unmute", format!("allowed={allowed}"), &mut out);
        }
        Ok(Outcome { reply: (), effects: out })
    }

    /// Tells everyone present (the participant too) a participant's media and lock.
    fn media_changed(&self, pid: ParticipantId, out: &mut Vec<Effect>) {
        let Some(p) = self.participants.get(&pid) else { return };
        let ev = MediaChanged {
            participant_id: pid,
            media: p.media,
            audio_locked: p.audio_locked(&self.record.info.settings),
        };
        self.to_present(None, &Event::MediaChanged(ev), out);
    }

    pub fn remove(&mut self, now: UnixMillis, actor: ParticipantId, target: ParticipantId) -> RoomResult<()> {
        self.target_in_meeting(actor, target)?;
        self.not_the_absent_host(target)?;
        let mut out =
            vec![Effect::Event { to: target, event: Event::Removed }, Effect::Close { who: target }];
        self.hold(target, &mut out);
        self.audit(Some(target), "remove", format!("by={actor}"), &mut out);
        self.depart(now, target, LeaveReason::Removed, &mut out);
        Ok(Outcome { reply: (), effects: out })
    }

    pub fn set_locked(&mut self, _now: UnixMillis, actor: ParticipantId, locked: bool) -> RoomResult<()> {
        self.moderator(actor)?;
        let mut out = Vec::new();
        if self.record.info.locked != locked {
            self.record.info.locked = locked;
            self.meeting_changed(&mut out);
            self.audit(Some(actor), if locked { "lock" } else { "unlock" }, String::new(), &mut out);
        }
        Ok(Outcome { reply: (), effects: out })
    }

    /// A host or moderator records the call on their device (the meeting must allow it).
    pub fn start_recording(&mut self, now: UnixMillis, actor: ParticipantId) -> RoomResult<()> {
        self.moderator(actor)?;
        if !self.record.info.settings.allow_recording {
            return Err(err(ErrorCode::Forbidden, "this meeting does not allow recording"));
        }
        let mut out = Vec::new();
        match self.recording {
            Some(r) if r.by == actor => {}
            Some(_) => return Err(err(ErrorCode::InvalidState, "someone else records this meeting already")),
            None => {
                self.recording = Some(RecordingInfo { by: actor, since: now });
                self.audit(Some(actor), "recording_start", String::new(), &mut out);
                self.recording_announced(&mut out);
                if let Some(who) = self.who(actor) {
                    self.system_line(now, SystemLine::RecordingStarted, who, None, &mut out);
                }
            }
        }
        Ok(Outcome { reply: (), effects: out })
    }

    /// A host or moderator ends the recording (their own or another's).
    pub fn stop_recording(&mut self, now: UnixMillis, actor: ParticipantId) -> RoomResult<()> {
        self.moderator(actor)?;
        let mut out = Vec::new();
        if let Some(r) = self.recording {
            let detail = if r.by == actor { String::new() } else { format!("by={actor}") };
            self.recording = None;
            self.audit(Some(r.by), "recording_stop", detail, &mut out);
            self.recording_announced(&mut out);
            if let Some(who) = self.who(actor) {
                self.system_line(now, SystemLine::RecordingStopped, who, None, &mut out);
            }
        }
        Ok(Outcome { reply: (), effects: out })
    }

    /// The recorder can no longer record (left, lost the role): it ends, with an audit row.
    fn recording_ended(&mut self, why: &str, out: &mut Vec<Effect>) {
        if let Some(r) = self.recording.take() {
            self.audit(Some(r.by), "recording_stop", why.into(), out);
            self.recording_announced(out);
        }
    }

    fn recording_announced(&self, out: &mut Vec<Effect>) {
        let ev = Event::RecordingChanged(RecordingChanged { recording: self.recording });
        self.to_present(None, &ev, out);
    }

    pub fn promote(
        &mut self,
        _now: UnixMillis,
        actor: ParticipantId,
        target: ParticipantId,
    ) -> RoomResult<()> {
        self.change_moderator(actor, target, true)
    }

    pub fn demote(
        &mut self,
        _now: UnixMillis,
        actor: ParticipantId,
        target: ParticipantId,
    ) -> RoomResult<()> {
        self.change_moderator(actor, target, false)
    }

    /// Host only: makes `target` a moderator (`promote`) or returns them to their base role.
    fn change_moderator(
        &mut self,
        actor: ParticipantId,
        target: ParticipantId,
        promote: bool,
    ) -> RoomResult<()> {
        self.host(actor)?;
        self.not_the_absent_host(target)?;
        let t = self.target_in_meeting(actor, target)?;
        let is_moderator = t.role == Role::Moderator;
        if promote && is_moderator {
            return Err(err(ErrorCode::InvalidState, "already a moderator"));
        }
        if !promote && !is_moderator {
            return Err(err(ErrorCode::InvalidState, "not a moderator"));
        }
        let role = if promote { Role::Moderator } else { t.base_role() };
        let mut out = Vec::new();
        self.set_role(target, role, &mut out);
        let action = if promote { "promote" } else { "demote" };
        self.audit(Some(target), action, format!("by={actor}"), &mut out);
        Ok(Outcome { reply: (), effects: out })
    }

    /// Ends the meeting for everyone: they are told, then disconnected.
    pub fn end(&mut self, now: UnixMillis, actor: ParticipantId) -> RoomResult<MeetingStatus> {
        self.host(actor)?;
        let info = &self.record.info;
        let status = match (info.kind, info.status) {
            (MeetingKind::Consultation, MeetingStatus::Active) => MeetingStatus::Completed,
            (MeetingKind::Consultation, _) => MeetingStatus::Cancelled,
            _ => MeetingStatus::Ended,
        };
        let mut out = Vec::new();
        self.finish(now, Some(actor), status, &mut out);
        Ok(Outcome { reply: status, effects: out })
    }

    /// Its creator cancels a meeting that has not started (the hub checked who
    /// asks): everyone in it — waiting guests, staff who came early — hears
    /// `meeting_ended {cancelled}` and leaves; its code admits nobody.
    pub fn cancel(&mut self, now: UnixMillis) -> RoomResult<()> {
        if self.record.info.status != MeetingStatus::Scheduled {
            return Err(err(
                ErrorCode::InvalidState,
                "only a meeting that has not started can be cancelled; end it instead",
            ));
        }
        let mut out = Vec::new();
        self.finish(now, None, MeetingStatus::Cancelled, &mut out);
        Ok(Outcome { reply: (), effects: out })
    }

    fn finish(
        &mut self,
        now: UnixMillis,
        actor: Option<ParticipantId>,
        status: MeetingStatus,
        out: &mut Vec<Effect>,
    ) {
        self.record.info.status = status;
        self.record.info.ended_at = Some(now);
        out.push(Effect::Write(Write::MeetingState(self.record.info.clone())));
        self.audit(actor, "end", status.as_str().into(), out);
        if let Some(r) = self.recording.take() {
            self.audit(Some(r.by), "recording_stop", "meeting ended".into(), out);
        }
        let everyone: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for pid in &everyone {
            out.push(Effect::Event { to: *pid, event: Event::MeetingEnded(MeetingEnded { status }) });
        }
        for pid in everyone {
            out.push(Effect::Write(Write::ParticipantLeft {
                participant_id: pid,
                at: now,
                reason: "meeting_ended",
            }));
            out.push(Effect::Close { who: pid });
            out.push(Effect::Unbind { who: pid });
        }
        self.participants.clear();
        self.reclaim = None;
    }

    pub fn start_consultation(&mut self, now: UnixMillis, actor: ParticipantId) -> RoomResult<()> {
        self.host(actor)?;
        if self.record.info.kind != MeetingKind::Consultation {
            return Err(err(ErrorCode::InvalidState, "this meeting is not a consultation"));
        }
        if self.record.info.status != MeetingStatus::Scheduled {
            return Err(err(ErrorCode::InvalidState, "the consultation has already started"));
        }
        let mut out = Vec::new();
        self.record.info.status = MeetingStatus::Active;
        self.record.info.started_at = Some(now);
        self.meeting_changed(&mut out);
        self.audit(Some(actor), "consultation_start", String::new(), &mut out);
        if let Some(who) = self.who(actor) {
            self.system_line(now, SystemLine::ConsultationStarted, who, None, &mut out);
        }
        let mut waiting: Vec<&Participant> = self.participants.values().filter(|p| !p.in_meeting()).collect();
        waiting.sort_by_key(|p| p.arrival);
        // As many as the meeting holds; the rest are admitted one by one later.
        let room_for =
            (self.record.info.settings.max_participants as usize).saturating_sub(self.in_meeting_count());
        let waiting: Vec<ParticipantId> = waiting.into_iter().take(room_for).map(|p| p.id).collect();
        let any = !waiting.is_empty();
        for pid in waiting {
            self.admit_one(now, actor, pid, &mut out);
        }
        if any {
            self.waiting_changed(&mut out);
        }
        Ok(Outcome { reply: (), effects: out })
    }

    pub fn end_consultation(
        &mut self,
        now: UnixMillis,
        actor: ParticipantId,
    ) -> RoomResult<ConsultationTimes> {
        self.host(actor)?;
        if self.record.info.kind != MeetingKind::Consultation {
            return Err(err(ErrorCode::InvalidState, "this meeting is not a consultation"));
        }
        let Some(started_at) =
            self.record.info.started_at.filter(|_| self.record.info.status == MeetingStatus::Active)
        else {
            return Err(err(ErrorCode::InvalidState, "the consultation has not started"));
        };
        let mut out = Vec::new();
        if let Some(who) = self.who(actor) {
            self.system_line(now, SystemLine::ConsultationEnded, who, None, &mut out);
        }
        self.finish(now, Some(actor), MeetingStatus::Completed, &mut out);
        let times =
            ConsultationTimes { started_at, ended_at: now, duration_secs: (now - started_at).max(0) / 1000 };
        Ok(Outcome { reply: times, effects: out })
    }

    // -----------------------------------------------------------------------
    // Media, chat, typing

    pub fn update_media(
        &mut self,
        _now: UnixMillis,
        pid: ParticipantId,
        media: MediaState,
    ) -> RoomResult<()> {
        self.actor(pid)?;
        if media.screen && !self.record.info.settings.allow_screen_share {
            return Err(err(ErrorCode::Forbidden, "screen sharing is not allowed in this meeting"));
        }
        if media.video && self.record.info.kind == MeetingKind::AudioOnly {
            return Err(err(ErrorCode::Forbidden, "this is an audio-only meeting"));
        }
        let settings = &self.record.info.settings;
        let mut out = Vec::new();
        if let Some(p) = self.participants.get_mut(&pid) {
            if media.audio && !p.media.audio && p.audio_locked(settings) {
                return Err(err(
                    ErrorCode::Forbidden,
                    "a moderator muted you; you can unmute when a moderator allows it",
                ));
            }
            if p.media != media {
                p.media = media;
                if media.audio {
                    p.moderator_muted = false;
                }
                self.write_participant(pid, &mut out);
                // To the sender too: every client's view of itself follows what the relay
                // accepted (its own mic/camera/share buttons, and its media engine).
                self.media_changed(pid, &mut out);
            }
        }
        Ok(Outcome { reply: (), effects: out })
    }

    /// Accepts a chat message or staff-only note: numbers it, asks for it to be
    /// stored, fans it out (not back to the sender, who gets the accepted copy as
    /// the reply). The driver calls [`Room::stored`] once the write committed; a
    /// retry of a stored `client_msg_id` returns the stored copy and nothing else.
    pub fn send_chat(
        &mut self,
        now: UnixMillis,
        pid: ParticipantId,
        client_msg_id: Uuid,
        text: &str,
        staff_only: bool,
    ) -> RoomResult<ChatMessage> {
        self.send_chat_with(now, pid, client_msg_id, text, staff_only, Vec::new())
    }

    /// [`Room::send_chat`] with attachments (checked by the hub: uploaded by
    /// `pid` into this meeting, staff-only exactly when the message is); the text
    /// may then be empty.
    pub fn send_chat_with(
        &mut self,
        now: UnixMillis,
        pid: ParticipantId,
        client_msg_id: Uuid,
        text: &str,
        staff_only: bool,
        attachments: Vec<clinicmeet_protocol::AttachmentInfo>,
    ) -> RoomResult<ChatMessage> {
        let p = self.actor(pid)?;
        let sender_staff = p.staff.is_some();
        let sender_name = p.display_name.clone();
        if let Some(stored) = self.messages.get(&client_msg_id) {
            if stored.staff_only && !sender_staff {
                return Err(err(ErrorCode::Malformed, "client_msg_id is already in use"));
            }
            return Ok(Outcome { reply: stored.clone(), effects: Vec::new() });
        }
        if !self.record.info.settings.chat_enabled {
            return Err(err(ErrorCode::Forbidden, "chat is turned off in this meeting"));
        }
        if staff_only && !sender_staff {
            return Err(err(ErrorCode::Forbidden, "only enrolled staff may send staff-only notes"));
        }
        let text = if attachments.is_empty() || !text.trim().is_empty() {
            clinicmeet_protocol::limits::clean_chat_text(text)?
        } else {
            String::new()
        };
        let seq = if staff_only {
            self.notes_seq += 1;
            self.notes_seq
        } else {
            self.chat_seq += 1;
            self.chat_seq
        };
        let msg = ChatMessage {
            meeting_id: self.id(),
            seq,
            client_msg_id,
            sender_id: pid,
            sender_name,
            sender_verified: sender_staff,
            text,
            staff_only,
            sent_at: now,
            system: None,
            attachments,
        };
        let mut out = vec![Effect::Write(Write::Chat(msg.clone()))];
        let ev = Event::Chat { message: msg.clone() };
        for q in self.participants.values() {
            if q.in_meeting() && q.id != pid && (!staff_only || q.staff.is_some()) {
                out.push(Effect::Event { to: q.id, event: ev.clone() });
            }
        }
        Ok(Outcome { reply: msg, effects: out })
    }

    /// Whether `pid` may read staff-only notes (enrolled identity, any role).
    pub fn reads_notes(&self, pid: ParticipantId) -> bool {
        self.participants.get(&pid).is_some_and(|p| p.staff.is_some())
    }

    pub fn typing(&mut self, _now: UnixMillis, pid: ParticipantId, typing: bool) -> RoomResult<()> {
        self.actor(pid)?;
        let mut out = Vec::new();
        self.to_present(Some(pid), &Event::Typing(Typing { participant_id: pid, typing }), &mut out);
        Ok(Outcome { reply: (), effects: out })
    }
}

pub fn role_str(r: Role) -> &'static str {
    match r {
        Role::Host => "host",
        Role::Moderator => "moderator",
        Role::Staff => "staff",
        Role::Guest => "guest",
    }
}

pub fn role_from_str(s: &str) -> Option<Role> {
    Some(match s {
        "host" => Role::Host,
        "moderator" => Role::Moderator,
        "staff" => Role::Staff,
        "guest" => Role::Guest,
        _ => return None,
    })
}

pub fn reason_str(r: LeaveReason) -> &'static str {
    match r {
        LeaveReason::Left => "left",
        LeaveReason::Removed => "removed",
        LeaveReason::ConnectionLost => "connection_lost",
        LeaveReason::MeetingEnded => "meeting_ended",
    }
}

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
