//! The signaling service: connections, sessions, the meeting directory, rate
//! limits, and the glue between the wire protocol, the [`Room`] domain and
//! storage. Driven by plain calls with an explicit `now` (no sockets, no
//! timers): the server feeds it frames and ticks and carries out the [`Out`]s.
//!
//! Storage is the [`Store`] itself, called synchronously, rather than writes
//! turned into effects like the room's: the hub needs answers from several of
//! its writes (enrolling consumes a code and returns the identity; inserting a
//! meeting reports an access-code collision and retries) and reads the
//! directory (codes, history), so effects would need a request/answer round
//! trip through the driver. The order of storage and replies stays the order
//! of the code, and tests use the same SQLite schema in memory
//! ([`Store::open_in_memory`]) or on a real file.
//!
//! A change becomes visible only after its writes commit. A request changes
//! rooms in memory (each room it touches is checkpointed first) and collects
//! the connection bindings it makes; [`Hub::commit`] then stores the writes in
//! one transaction. If that fails (disk full, I/O error) every touched room is
//! rolled back, the bindings are dropped, and the requester alone hears
//! `storage_unavailable` (retryable): no event went out, no message entered the
//! de-duplication map, so a retry is numbered and stored afresh. Relay-driven
//! changes follow the same rule (grace expiry is retried on the next tick),
//! except a lost connection, which is a fact: it is applied even when its
//! write fails (a restart treats everyone as disconnected anyway).
//!
//! Order of outputs for one request: storage writes are committed first, then
//! the reply goes to the requester, then events to others (and connection
//! closes). Each connection's outputs are delivered in order, so a chat
//! sender sees its `chat_accepted` reply in sequence order among the `chat`
//! events of others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use clinicmeet_protocol::access_code::BUCKETS;
use clinicmeet_protocol::limits::{
    clean_display_name, clean_notes, clean_text, MAX_AMENDMENTS, MAX_DESCRIPTION_CHARS, MAX_HISTORY_PAGE,
    MAX_MAX_PARTICIPANTS, MAX_PAST_PAGE, MAX_PATIENT_REFERENCE_CHARS, MAX_QUERY_CHARS, MAX_TITLE_CHARS,
};
use clinicmeet_protocol::{
    negotiate_version, AccessCode, ClientMessage, ConsultationRecord, ErrorBody, ErrorCode, Event,
    InviteSecret, JoinSecret, MeetingId, MeetingInfo, MeetingKind, MeetingSpec, MeetingStatus,
    MeetingSummary, ParticipantId, PastFilter, Request, RequestId, Response, Role, ServerMessage,
    StaffIdentity, UnixMillis,
};
use rand::Rng as _;
use uuid::Uuid;

use crate::admission::Source;
use crate::audit_batch::AuditBatch;
use crate::error::{db, internal, not_joined, refuse as e, waiting};
use crate::keys::{self, Keys};
use crate::limits::{CodeGuard, CodeGuardConfig, EnrollGuard, EnrollGuardConfig, Refusal, TokenBucket};
use crate::metrics::Metrics;
use crate::room::{Checkpoint, Effect, Entry, HoldKey, Joiner, MeetingRecord, Room, Write};
use crate::sfu::MediaCmd;
use crate::store::{MeetingSecrets, Purged, Store};
use crate::tracks::{PublishedTrack, Tracks};

#[path = "hub_attachments.rs"]
mod attachments;

pub type ConnId = u64;

/// How often the hub looks whether an operator changed staff or devices.
const CREDENTIAL_CHECK_MS: i64 = 1_000;
/// A resume token that was replaced is still taken this long past the resume grace
/// (a client whose reply carrying the new token was lost retries with the old one).
const RESUME_TOKEN_MARGIN_MS: i64 = 30_000;

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Out {
    Send(ConnId, ServerMessage),
    /// Close the connection after sending everything queued before.
    Close(ConnId),
    /// Tell the forwarding core (before the reply that lets the client use it).
    Media(MediaCmd),
}

/// Limits and timings of the service.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub server_name: String,
    pub max_connections: usize,
    pub max_participants: usize,
    pub chat_rate: f64,
    pub chat_burst: f64,
    pub request_rate: f64,
    pub request_burst: f64,
    pub resume_grace_ms: i64,
    pub code_guard: CodeGuardConfig,
    pub enroll_guard: EnrollGuardConfig,
    /// Failures are written to the audit log as one row per source and window this long.
    pub audit_window_ms: i64,
    pub chat_retention_ms: i64,
    pub audit_retention_ms: i64,
    /// Audit rows keep their source address this long, then it is blanked.
    pub address_retention_ms: i64,
    /// A meeting nobody has been in for this long ends by itself.
    pub abandon_after_ms: i64,
    pub enrollment_ttl_ms: i64,
    /// Subscriptions (forwarded streams) across the relay; beyond: `server_busy`.
    pub max_forwarded_streams: usize,
    /// A connection without `hello` this long after it connected is closed.
    pub hello_timeout_ms: i64,
    /// Largest attachment, bytes.
    pub max_attachment_bytes: u64,
    /// All attachments of one meeting together (stored and being uploaded), bytes.
    pub max_meeting_attachment_bytes: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            server_name: format!("clinicmeet-relay/{}", env!("CARGO_PKG_VERSION")),
            max_connections: 2000,
            max_participants: 2000,
            chat_rate: 10.0,
            chat_burst: 30.0,
            request_rate: 50.0,
            request_burst: 200.0,
            resume_grace_ms: 60_000,
            code_guard: CodeGuardConfig::default(),
            enroll_guard: EnrollGuardConfig::default(),
            audit_window_ms: 60_000,
            chat_retention_ms: 30 * 86_400_000,
            audit_retention_ms: 365 * 86_400_000,
            address_retention_ms: 30 * 86_400_000,
            abandon_after_ms: 12 * 3_600_000,
            enrollment_ttl_ms: 7 * 86_400_000,
            max_forwarded_streams: 10_000,
            hello_timeout_ms: 5_000,
            max_attachment_bytes: 25 * 1024 * 1024,
            max_meeting_attachment_bytes: 200 * 1024 * 1024,
        }
    }
}

pub(crate) struct Session {
    addr: SocketAddr,
    version: Option<u16>,
    staff: Option<StaffIdentity>,
    /// Hash of the device credential that made this session staff.
    credential: Option<Vec<u8>>,
    pub(crate) bound: Option<(MeetingId, ParticipantId)>,
    bucket: TokenBucket,
    busy: bool,
    connected_at: UnixMillis,
    /// Closed for no hello in time (told once).
    hello_expired: bool,
}

pub(crate) type Handled = Result<(Response, Vec<Effect>), ErrorBody>;

/// The change in progress: rooms as they were before it, and the connection
/// bindings it makes once its writes commit.
#[derive(Default)]
struct Uncommitted {
    checkpoints: Vec<(MeetingId, Checkpoint)>,
    binds: Vec<(ConnId, MeetingId, ParticipantId)>,
}

/// Rough encoded size of a chat message, to keep history pages under the frame limit.
fn approx_size(m: &clinicmeet_protocol::ChatMessage) -> usize {
    m.text.len() * 2 + m.sender_name.len() * 2 + 320 + m.attachments.len() * 1_400
}
const HISTORY_BYTES: usize = clinicmeet_protocol::limits::MAX_FRAME_LEN * 3 / 4;

pub struct Hub {
    pub(crate) cfg: HubConfig,
    store: Store,
    keys: Keys,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) sessions: HashMap<ConnId, Session>,
    pub(crate) rooms: HashMap<MeetingId, Room>,
    /// Published media tracks and subscriptions.
    tracks: Tracks,
    conn_of: HashMap<ParticipantId, ConnId>,
    chat_buckets: HashMap<ParticipantId, TokenBucket>,
    guard: CodeGuard,
    enroll_guard: EnrollGuard,
    /// Failures waiting to be written as coalesced audit rows.
    audit_batch: AuditBatch,
    /// Connections to close after the current request (a resumed place's old connection).
    pending_close: Vec<ConnId>,
    /// What the change in progress did that its commit confirms or undoes.
    uncommitted: Uncommitted,
    /// The database's `data_version` when credentials were last checked.
    seen_data_version: i64,
    next_credential_check: UnixMillis,
    /// Transfer tokens for attachments (shared with the transfer drivers).
    grants: Arc<crate::attachments::Grants>,
}

impl Hub {
    /// Builds the service and restores meetings that had people in them.
    pub fn new(
        cfg: HubConfig,
        store: Store,
        keys: Keys,
        metrics: Arc<Metrics>,
        now: UnixMillis,
    ) -> Result<Hub, crate::error::RelayError> {
        let guard = CodeGuard::new(cfg.code_guard, now);
        let enroll_guard = EnrollGuard::new(cfg.enroll_guard, now);
        let audit_batch = AuditBatch::new(cfg.audit_window_ms, 10_000);
        let mut hub = Hub {
            tracks: Tracks::new(metrics.clone(), cfg.max_forwarded_streams),
            cfg,
            store,
            keys,
            metrics,
            sessions: HashMap::new(),
            rooms: HashMap::new(),
            conn_of: HashMap::new(),
            chat_buckets: HashMap::new(),
            guard,
            enroll_guard,
            audit_batch,
            pending_close: Vec::new(),
            uncommitted: Uncommitted::default(),
            seen_data_version: 0,
            next_credential_check: now,
            grants: Arc::default(),
        };
        hub.seen_data_version = hub.store.data_version()?;
        for record in hub.store.meetings_to_restore()? {
            let id = record.info.id;
            let room = hub.load_room(record, now)?;
            tracing::info!(meeting = %id, participants = room.participants().count(), "restored meeting");
            hub.rooms.insert(id, room);
        }
        hub.update_gauges();
        Ok(hub)
    }

    fn load_room(&self, record: MeetingRecord, now: UnixMillis) -> Result<Room, crate::error::RelayError> {
        let id = record.info.id;
        let participants = self.store.present_participants(id)?;
        let messages = self.store.all_chat(id)?;
        let held = self.store.holds(id)?;
        Ok(Room::restore(record, participants, messages, held, now))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Gives the storage back (to rebuild a hub from it, as after a restart).
    pub fn into_store(self) -> Store {
        self.store
    }

    /// Whether the connection is bound to a place in a meeting (joined or resumed).
    pub fn is_joined(&self, conn: ConnId) -> bool {
        self.sessions.get(&conn).is_some_and(|s| s.bound.is_some())
    }

    pub fn room(&self, id: MeetingId) -> Option<&Room> {
        self.rooms.get(&id)
    }

    /// Earliest wall-clock time a tick has work to do (for drivers that sleep).
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        self.rooms.values().filter_map(|r| r.next_deadline(self.cfg.resume_grace_ms)).min()
    }

    // -----------------------------------------------------------------------
    // Connection lifecycle

    pub fn connected(&mut self, now: UnixMillis, conn: ConnId, addr: SocketAddr) {
        let busy = self.sessions.len() >= self.cfg.max_connections;
        self.sessions.insert(
            conn,
            Session {
                addr,
                version: None,
                staff: None,
                credential: None,
                bound: None,
                bucket: TokenBucket::new(self.cfg.request_rate, self.cfg.request_burst, now),
                busy,
                connected_at: now,
                hello_expired: false,
            },
        );
        self.metrics.set_connections(self.sessions.len());
    }

    pub fn disconnected(&mut self, now: UnixMillis, conn: ConnId) -> Vec<Out> {
        let mut out = Vec::new();
        let Some(sess) = self.sessions.remove(&conn) else { return out };
        self.metrics.set_connections(self.sessions.len());
        self.tracks.conn_closed(conn);
        if let Some((mid, pid)) = sess.bound {
            if self.conn_of.get(&pid) == Some(&conn) {
                self.conn_of.remove(&pid);
                if let Some(room) = self.rooms.get_mut(&mid) {
                    // A fact, not a request: applied even if its write fails.
                    let effects = room.connection_lost(now, pid);
                    let _ = self.commit(now, &effects);
                    self.deliver(None, effects, &mut out);
                }
            }
        }
        self.media_effects(now, &mut out);
        out
    }

    /// A frame longer than the protocol allows: error, then close.
    pub fn oversized(&mut self, conn: ConnId, len: usize) -> Vec<Out> {
        let msg =
            format!("frame of {len} bytes exceeds {} bytes", clinicmeet_protocol::limits::MAX_FRAME_LEN);
        vec![
            Out::Send(conn, ServerMessage::Error { id: None, error: e(ErrorCode::TooLarge, &msg) }),
            Out::Close(conn),
        ]
    }

    /// Periodic work: hello deadlines, resume grace expiry, unloading empty rooms, gauges.
    pub fn tick(&mut self, now: UnixMillis) -> Vec<Out> {
        let mut out = Vec::new();
        self.hello_deadlines(now, &mut out);
        let ids: Vec<MeetingId> = self.rooms.keys().copied().collect();
        let grace = self.cfg.resume_grace_ms;
        for id in ids {
            let due = self.rooms.get(&id).and_then(|r| r.next_deadline(grace)).is_some_and(|d| d <= now);
            if !due {
                continue;
            }
            let Ok(room) = self.room_to_change(id) else { continue };
            let effects = room.tick(now, grace);
            // A failed commit leaves the room as it was: the next tick retries.
            self.apply(now, None, effects, &mut out);
        }
        if now >= self.next_credential_check {
            self.next_credential_check = now + CREDENTIAL_CHECK_MS;
            self.recheck_credentials(now, &mut out);
        }
        self.media_effects(now, &mut out);
        self.rooms.retain(|_, r| !r.is_empty());
        self.guard.sweep(now);
        self.enroll_guard.sweep(now);
        self.flush_failures(now, false);
        self.update_gauges();
        out
    }

    /// Closes connections that did not say `hello` within the deadline (each once;
    /// the session goes when the connection task reports the close).
    fn hello_deadlines(&mut self, now: UnixMillis, out: &mut Vec<Out>) {
        let deadline = self.cfg.hello_timeout_ms;
        for (&conn, sess) in self.sessions.iter_mut() {
            if sess.version.is_none() && !sess.hello_expired && now - sess.connected_at >= deadline {
                sess.hello_expired = true;
                self.metrics.unauthenticated_closed();
                let msg = format!("no hello within {} ms", deadline);
                out.push(Out::Send(
                    conn,
                    ServerMessage::Error { id: None, error: e(ErrorCode::InvalidState, &msg) },
                ));
                out.push(Out::Close(conn));
            }
        }
    }

    /// Staff members an operator removed (or whose device was revoked) by
    /// another process since the last look lose their rights on open sessions at
    /// once: each such session is closed, and a participant it held leaves the
    /// meeting as removed (audited `staff_revoked`), so the place cannot be
    /// resumed. Looked at only when the database changed under the relay.
    fn recheck_credentials(&mut self, now: UnixMillis, out: &mut Vec<Out>) {
        let version = match self.store.data_version() {
            Ok(v) => v,
            Err(err) => return tracing::error!(%err, "cannot read the database's data_version"),
        };
        if version == self.seen_data_version {
            return;
        }
        self.seen_data_version = version;
        let revoked: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.credential.as_deref().is_some_and(|h| self.store.credential_active(h).is_ok_and(|ok| !ok))
            })
            .map(|(&c, _)| c)
            .collect();
        for conn in revoked {
            let Some(sess) = self.sessions.get_mut(&conn) else { continue };
            let staff = sess.staff.take().map(|s| s.staff_id);
            sess.credential = None;
            let bound = sess.bound;
            tracing::info!(?staff, "staff access revoked: closing the session");
            if let Some((mid, pid)) = bound {
                if let Ok(room) = self.room_to_change(mid) {
                    let effects = room.revoke_staff(now, pid);
                    self.apply(now, None, effects, out);
                }
            } else {
                let _ = self.store.audit(now, None, staff, "staff_revoked", None, "disconnected");
            }
            out.push(Out::Close(conn));
        }
    }

    /// Deletes what is past its retention: chat, notes, display names and patient
    /// references of meetings that ended long enough ago, old audit rows, and
    /// the source addresses of younger ones.
    pub fn purge(&mut self, now: UnixMillis) -> Result<Purged, crate::error::RelayError> {
        self.store.purge(
            now - self.cfg.chat_retention_ms,
            now - self.cfg.audit_retention_ms,
            now - self.cfg.address_retention_ms,
        )
    }

    /// Ends the meetings nobody has been in for `abandon_after_ms` (scheduled
    /// ones that never started: counted from their scheduled start): their codes
    /// stop working and their retention clock starts. Meetings with a room in
    /// memory (someone present or within the resume grace) are left alone.
    pub fn end_abandoned(&mut self, now: UnixMillis) -> Result<usize, crate::error::RelayError> {
        let mut ended = 0;
        for id in self.store.abandoned_meetings(now - self.cfg.abandon_after_ms)? {
            if !self.rooms.contains_key(&id) && self.store.end_abandoned(id, now)? {
                tracing::info!(meeting = %id, "meeting ended: nobody in it for the abandon period");
                ended += 1;
            }
        }
        Ok(ended)
    }

    fn update_gauges(&self) {
        let active = self.rooms.values().filter(|r| r.info().status == MeetingStatus::Active).count();
        let participants: usize = self.rooms.values().map(Room::in_meeting_count).sum();
        let waiting: usize = self.rooms.values().map(Room::waiting_count).sum();
        self.metrics.set_rooms(active, participants, waiting);
    }

    // -----------------------------------------------------------------------
    // Requests

    /// One frame from a connection.
    pub fn frame(&mut self, now: UnixMillis, conn: ConnId, body: &[u8]) -> Vec<Out> {
        let mut out = Vec::new();
        let Some(sess) = self.sessions.get_mut(&conn) else { return out };
        if sess.busy {
            let id = crate::limits::peek_request_id(body);
            out.push(Out::Send(
                conn,
                ServerMessage::Error { id, error: e(ErrorCode::ServerBusy, "the relay is full") },
            ));
            out.push(Out::Close(conn));
            return out;
        }
        let hello_done = sess.version.is_some();
        // Charged by length before any parsing: a flood of large junk costs its sender.
        if let Err(ms) = sess.bucket.take_n(now, crate::limits::frame_cost(body.len())) {
            let id = crate::limits::peek_request_id(body);
            let error = e(ErrorCode::RateLimited, "too many requests").retry_after(ms);
            out.push(Out::Send(conn, ServerMessage::Error { id, error }));
            return out;
        }
        let decoded = ClientMessage::decode(body);
        let msg = match decoded {
            Ok(m) => m,
            Err(d) => {
                out.push(Out::Send(conn, ServerMessage::Error { id: d.id, error: d.error }));
                if !hello_done {
                    out.push(Out::Close(conn));
                }
                return out;
            }
        };
        if !hello_done {
            self.hello(now, conn, msg, &mut out);
            return out;
        }
        let id = msg.id;
        let result = self.dispatch(now, conn, msg.request);
        match result.and_then(|(response, effects)| self.commit(now, &effects).map(|()| (response, effects)))
        {
            Ok((response, mut effects)) => {
                effects.extend(self.sync_media());
                out.extend(self.tracks.take_commands().map(Out::Media));
                self.deliver(Some((conn, id, response)), effects, &mut out)
            }
            Err(error) => {
                self.rollback();
                out.push(Out::Send(conn, ServerMessage::Error { id: Some(id), error }))
            }
        }
        self.media_effects(now, &mut out);
        out.extend(self.pending_close.drain(..).map(Out::Close));
        out
    }

    /// Media follow-ups of an input: forwarding commands, then track events.
    fn media_effects(&mut self, now: UnixMillis, out: &mut Vec<Out>) {
        let effects = self.sync_media();
        out.extend(self.tracks.take_commands().map(Out::Media));
        if !effects.is_empty() {
            self.apply(now, None, effects, out);
        }
    }

    fn hello(&mut self, now: UnixMillis, conn: ConnId, msg: ClientMessage, out: &mut Vec<Out>) {
        let id = msg.id;
        let Request::Hello { min_version, max_version, device_credential, .. } = msg.request else {
            let error = e(ErrorCode::InvalidState, "the first message must be hello");
            out.push(Out::Send(conn, ServerMessage::Error { id: Some(id), error }));
            out.push(Out::Close(conn));
            return;
        };
        let Some(version) = negotiate_version(min_version, max_version) else {
            let error = e(
                ErrorCode::UpgradeRequired,
                &format!(
                    "this relay speaks protocol versions {}..={}",
                    clinicmeet_protocol::MIN_PROTOCOL_VERSION,
                    clinicmeet_protocol::PROTOCOL_VERSION
                ),
            );
            out.push(Out::Send(conn, ServerMessage::Error { id: Some(id), error }));
            out.push(Out::Close(conn));
            return;
        };
        let mut staff = None;
        let credential_hash = device_credential.as_deref().map(keys::hash_secret);
        if let Some(hash) = &credential_hash {
            match self.store.staff_for_credential(hash, now) {
                Ok(Some(s)) => staff = Some(s),
                Ok(None) => {
                    let error =
                        e(ErrorCode::InvalidCredential, "this device credential is not valid or was revoked");
                    out.push(Out::Send(conn, ServerMessage::Error { id: Some(id), error }));
                    return;
                }
                Err(err) => {
                    tracing::error!(%err, "credential lookup failed");
                    out.push(Out::Send(conn, ServerMessage::Error { id: Some(id), error: internal() }));
                    return;
                }
            }
        }
        if let Some(sess) = self.sessions.get_mut(&conn) {
            sess.version = Some(version);
            sess.staff = staff.clone();
            sess.credential = staff.as_ref().and(credential_hash);
        }
        let response = Response::Hello { version, server: self.cfg.server_name.clone(), staff };
        out.push(Out::Send(conn, ServerMessage::Reply { id, response }));
    }

    /// Commits the writes, then sends the reply and the events; if the commit
    /// fails, the change is undone and only the requester hears of it.
    fn apply(
        &mut self,
        now: UnixMillis,
        reply: Option<(ConnId, RequestId, Response)>,
        effects: Vec<Effect>,
        out: &mut Vec<Out>,
    ) {
        match self.commit(now, &effects) {
            Ok(()) => self.deliver(reply, effects, out),
            Err(error) => {
                self.rollback();
                if let Some((conn, id, _)) = reply {
                    out.push(Out::Send(conn, ServerMessage::Error { id: Some(id), error }));
                }
            }
        }
    }

    /// Stores the change's writes in one transaction. On success the change is
    /// confirmed: its bindings are made and its chat messages enter their rooms'
    /// de-duplication maps. On failure nothing is confirmed; the caller rolls back.
    fn commit(&mut self, now: UnixMillis, effects: &[Effect]) -> Result<(), ErrorBody> {
        let writes: Vec<&Write> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Write(w) => Some(w),
                _ => None,
            })
            .collect();
        if let Err(err) = self.store.apply(&writes, now) {
            self.metrics.storage_failure();
            return Err(db(err));
        }
        let Uncommitted { checkpoints, binds } = std::mem::take(&mut self.uncommitted);
        drop(checkpoints);
        for (conn, mid, pid) in binds {
            self.bind(conn, mid, pid);
        }
        for w in writes {
            if let Write::Chat(m) = w {
                if let Some(room) = self.rooms.get_mut(&m.meeting_id) {
                    room.stored(m);
                }
                self.metrics.chat_message();
            }
        }
        Ok(())
    }

    /// Puts every room the change touched back as it was and forgets its bindings.
    fn rollback(&mut self) {
        let Uncommitted { checkpoints, binds: _ } = std::mem::take(&mut self.uncommitted);
        for (mid, cp) in checkpoints.into_iter().rev() {
            if let Some(room) = self.rooms.get_mut(&mid) {
                room.rollback(cp);
            }
        }
    }

    /// Sends the reply, then the events, closes and unbindings of a committed change.
    fn deliver(
        &mut self,
        reply: Option<(ConnId, RequestId, Response)>,
        effects: Vec<Effect>,
        out: &mut Vec<Out>,
    ) {
        if let Some((conn, id, response)) = reply {
            out.push(Out::Send(conn, ServerMessage::Reply { id, response }));
        }
        for effect in effects {
            match effect {
                Effect::Write(_) => {}
                Effect::Event { to, mut event } => {
                    if let Event::Admitted(js) = &mut event {
                        self.tracks.fill(js);
                    }
                    if let Some(&c) = self.conn_of.get(&to) {
                        out.push(Out::Send(c, ServerMessage::Event { event }));
                    }
                }
                Effect::Close { who } => {
                    if let Some(&c) = self.conn_of.get(&who) {
                        out.push(Out::Close(c));
                    }
                }
                Effect::Unbind { who } => {
                    self.chat_buckets.remove(&who);
                    if let Some(c) = self.conn_of.remove(&who) {
                        if let Some(s) = self.sessions.get_mut(&c) {
                            s.bound = None;
                        }
                    }
                }
            }
        }
    }

    fn session(&self, conn: ConnId) -> Result<&Session, ErrorBody> {
        self.sessions.get(&conn).ok_or_else(internal)
    }

    pub(crate) fn bound(&self, conn: ConnId) -> Result<(MeetingId, ParticipantId), ErrorBody> {
        self.session(conn)?.bound.ok_or_else(not_joined)
    }

    /// The room of the connection's participant, checkpointed for the change in progress.
    fn room_of(&mut self, conn: ConnId) -> Result<(&mut Room, ParticipantId), ErrorBody> {
        let (mid, pid) = self.bound(conn)?;
        Ok((self.room_to_change(mid)?, pid))
    }

    /// A room about to change: checkpointed once per change, so a failed commit
    /// can put it back.
    fn room_to_change(&mut self, mid: MeetingId) -> Result<&mut Room, ErrorBody> {
        let room = self.rooms.get_mut(&mid).ok_or_else(not_joined)?;
        if !self.uncommitted.checkpoints.iter().any(|(m, _)| *m == mid) {
            self.uncommitted.checkpoints.push((mid, room.checkpoint()));
        }
        Ok(room)
    }

    fn staff(&self, conn: ConnId) -> Result<StaffIdentity, ErrorBody> {
        self.session(conn)?
            .staff
            .clone()
            .ok_or_else(|| e(ErrorCode::Unauthenticated, "this needs an enrolled staff device"))
    }

    fn dispatch(&mut self, now: UnixMillis, conn: ConnId, req: Request) -> Handled {
        macro_rules! room_op {
            ($method:ident $(, $arg:expr)*) => {{
                let (room, pid) = self.room_of(conn)?;
                let o = room.$method(now, pid $(, $arg)*)?;
                Ok((Response::Ok, o.effects))
            }};
        }
        match req {
            Request::Hello { .. } => Err(e(ErrorCode::InvalidState, "hello was already done")),
            Request::Enroll { enrollment_code, device_name } => {
                self.enroll(now, conn, &enrollment_code, &device_name)
            }
            Request::CreateMeeting { spec } => self.create(now, conn, spec),
            Request::ListMeetings => self.list(conn),
            Request::Join { access_code, display_name, media } => {
                self.join(now, conn, &access_code, &display_name, media)
            }
            Request::Resume { resume_token } => self.resume(now, conn, &resume_token),
            Request::Leave => room_op!(leave),
            Request::Admit { participant_id } => room_op!(admit, participant_id),
            Request::Deny { participant_id } => room_op!(deny, participant_id),
            Request::Mute { participant_id } => room_op!(mute, participant_id),
            Request::AllowUnmute { participant_id } => room_op!(allow_unmute, participant_id),
            Request::SetSelfUnmute { allowed } => room_op!(set_self_unmute, allowed),
            Request::Remove { participant_id } => room_op!(remove, participant_id),
            Request::SetLocked { locked } => room_op!(set_locked, locked),
            Request::Promote { participant_id } => room_op!(promote, participant_id),
            Request::Demote { participant_id } => room_op!(demote, participant_id),
            Request::UpdateMedia { media } => room_op!(update_media, media),
            Request::Typing { typing } => room_op!(typing, typing),
            Request::StartConsultation => room_op!(start_consultation),
            Request::EndMeeting => {
                let (room, pid) = self.room_of(conn)?;
                let o = room.end(now, pid)?;
                Ok((Response::Ok, o.effects))
            }
            Request::EndConsultation => {
                let (room, pid) = self.room_of(conn)?;
                let o = room.end_consultation(now, pid)?;
                let t = o.reply;
                let response = Response::ConsultationEnded {
                    started_at: t.started_at,
                    ended_at: t.ended_at,
                    duration_secs: t.duration_secs,
                };
                Ok((response, o.effects))
            }
            Request::SendChat { client_msg_id, text, staff_only, attachments } => {
                self.send_chat(now, conn, client_msg_id, &text, staff_only, &attachments)
            }
            Request::ChatHistory { meeting_id, since_seq, notes_since_seq, limit } => {
                self.history(conn, meeting_id, since_seq, notes_since_seq, limit)
            }
            Request::Ping => Ok((Response::Pong { server_time: now }, Vec::new())),
            Request::Publish { track } => {
                let bound = self.bound(conn)?;
                self.tracks.publish(conn, bound, self.rooms.get(&bound.0), track)
            }
            Request::Unpublish { track_id } => {
                let (_, pid) = self.bound(conn)?;
                self.tracks.unpublish(pid, &self.rooms, track_id)
            }
            Request::Subscribe { track_id, max_encoding } => {
                let bound = self.bound(conn)?;
                self.tracks.subscribe(conn, bound, self.rooms.get(&bound.0), track_id, max_encoding)
            }
            Request::Unsubscribe { track_id } => {
                self.bound(conn)?;
                self.tracks.unsubscribe(conn, track_id)
            }
            Request::RekeyMeeting => self.rekey(now, conn),
            Request::SaveConsultationNotes { meeting_id, notes } => {
                self.save_notes(now, conn, meeting_id, &notes)
            }
            Request::AmendConsultation { meeting_id, text } => self.amend(now, conn, meeting_id, &text),
            Request::GetConsultation { meeting_id } => {
                let (_, record) = self.held_consultation(conn, meeting_id)?;
                Ok((Response::Consultation { record }, Vec::new()))
            }
            Request::ListPastMeetings { filter } => self.past(conn, filter),
            Request::CancelMeeting { meeting_id } => self.cancel(now, conn, meeting_id),
            Request::ListClinicMeetings => self.list_clinic(conn),
            Request::JoinAsStaff { meeting_id, display_name, media } => {
                self.join_as_staff(now, conn, meeting_id, &display_name, media)
            }
            Request::StartUpload { name, size, sha256, staff_only } => {
                self.start_upload(now, conn, &name, size, &sha256, staff_only)
            }
            Request::DownloadTicket { attachment_id } => self.download_ticket(now, conn, attachment_id),
            Request::StartRecording => room_op!(start_recording),
            Request::StopRecording => room_op!(stop_recording),
        }
    }

    fn enroll(&mut self, now: UnixMillis, conn: ConnId, code: &str, device_name: &str) -> Handled {
        let device_name = clean_text("device name", device_name, 100, false, false)?;
        let ip = self.session(conn)?.addr.ip();
        if let Err(ms) = self.enroll_guard.attempt(now, ip) {
            self.failure(now, "enroll_refused", ip);
            return Err(
                e(ErrorCode::RateLimited, "too many enrollment attempts; try again later").retry_after(ms)
            );
        }
        let code_hash = keys::hash_secret(&keys::normalize_enrollment_code(code));
        let credential = keys::new_device_credential();
        let addr = ip.to_string();
        let who =
            self.store.enroll(&code_hash, &device_name, &keys::hash_secret(&credential), now).map_err(db)?;
        let Some(staff) = who else {
            self.failure(now, "enroll_failed", ip);
            return Err(e(
                ErrorCode::InvalidCredential,
                "this enrollment code is not valid, used or expired",
            ));
        };
        let _ = self.store.audit(now, None, Some(staff.staff_id), "enroll", Some(&addr), "");
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.staff = Some(staff.clone());
            s.credential = Some(keys::hash_secret(&credential));
        }
        Ok((Response::Enrolled { staff, device_credential: credential }, Vec::new()))
    }

    fn create(&mut self, now: UnixMillis, conn: ConnId, spec: MeetingSpec) -> Handled {
        let staff = self.staff(conn)?;
        let title = clean_text("title", &spec.title, MAX_TITLE_CHARS, true, false)?;
        let description = match spec.description {
            Some(d) => Some(clean_text("description", &d, MAX_DESCRIPTION_CHARS, false, true)?),
            None => None,
        }
        .filter(|d| !d.is_empty());
        let patient_reference = match spec.patient_reference {
            Some(p) => Some(clean_text("patient reference", &p, MAX_PATIENT_REFERENCE_CHARS, false, false)?),
            None => None,
        }
        .filter(|p| !p.is_empty());
        let schedule = match spec.schedule {
            Some(mut s) => {
                s.time_zone = clean_text("time zone", &s.time_zone, 64, true, false)?;
                Some(s)
            }
            None => None,
        };
        let mut settings = spec.settings;
        if settings.max_participants == 0 || settings.max_participants > MAX_MAX_PARTICIPANTS {
            return Err(e(
                ErrorCode::Malformed,
                &format!("max_participants must be between 1 and {MAX_MAX_PARTICIPANTS}"),
            ));
        }
        if spec.kind == MeetingKind::Consultation {
            settings.waiting_room = true;
        }
        let mut record = MeetingRecord {
            info: MeetingInfo {
                id: Uuid::now_v7(),
                title,
                description,
                kind: spec.kind,
                status: MeetingStatus::Scheduled,
                host_name: staff.name.clone(),
                locked: false,
                settings,
                patient_reference,
                schedule,
                created_at: now,
                started_at: None,
                ended_at: None,
            },
            creator: staff.staff_id,
        };
        for _ in 0..8 {
            let (code, invite) = self.new_secrets(now)?;
            let (code_hmac, invite_hmac) = (self.keys.code_hmac(&code), self.keys.invite_hmac(&invite));
            let secrets =
                MeetingSecrets { code_hmac: &code_hmac, bucket: code.bucket(), invite_hmac: &invite_hmac };
            if self.store.insert_meeting(&record, &secrets).map_err(db)? {
                let _ = self.store.audit(
                    now,
                    Some(record.info.id),
                    Some(staff.staff_id),
                    "meeting_created",
                    None,
                    "",
                );
                let response = Response::MeetingCreated {
                    meeting: record.info,
                    access_code: code.to_string(),
                    invite_secret: Some(invite.to_string()),
                };
                return Ok((response, Vec::new()));
            }
            record.info.id = Uuid::now_v7();
        }
        Err(internal())
    }

    fn list(&mut self, conn: ConnId) -> Handled {
        let staff = self.staff(conn)?;
        let records = self.store.open_meetings_of(staff.staff_id).map_err(db)?;
        Ok((Response::Meetings { meetings: self.summaries(records, staff.staff_id) }, Vec::new()))
    }

    /// The clinic view: every active and scheduled meeting, for staff.
    fn list_clinic(&mut self, conn: ConnId) -> Handled {
        let staff = self.staff(conn)?;
        let records = self.store.open_meetings().map_err(db)?;
        Ok((Response::Meetings { meetings: self.summaries(records, staff.staff_id) }, Vec::new()))
    }

    /// Dashboard rows, as the rooms in memory see them; meetings created by
    /// others than `caller` without their patient reference and description.
    fn summaries(
        &self,
        records: Vec<MeetingRecord>,
        caller: clinicmeet_protocol::StaffId,
    ) -> Vec<MeetingSummary> {
        records
            .into_iter()
            .map(|r| {
                let room = self.rooms.get(&r.info.id);
                let mut meeting = room.map(|room| room.info().clone()).unwrap_or(r.info);
                if r.creator != caller {
                    meeting.patient_reference = None;
                    meeting.description = None;
                }
                MeetingSummary {
                    meeting,
                    participant_count: room.map_or(0, |r| r.in_meeting_count() as u32),
                    waiting_count: room.map_or(0, |r| r.waiting_count() as u32),
                }
            })
            .collect()
    }

    /// The caller's record of a consultation they held. Anyone else, other
    /// staff included, hears `not_found` (whether the meeting exists is not told).
    fn held_consultation(
        &self,
        conn: ConnId,
        meeting: MeetingId,
    ) -> Result<(StaffIdentity, ConsultationRecord), ErrorBody> {
        let staff = self.staff(conn)?;
        match self.store.consultation(meeting, staff.staff_id).map_err(db)? {
            Some(record) => Ok((staff, record)),
            None => Err(e(ErrorCode::NotFound, "no such consultation among yours")),
        }
    }

    /// Writes a consultation's notes, once, after it is over.
    fn save_notes(&mut self, now: UnixMillis, conn: ConnId, meeting: MeetingId, notes: &str) -> Handled {
        let (staff, record) = self.held_consultation(conn, meeting)?;
        let notes = clean_notes("notes", notes)?;
        if let Some(saved) = &record.notes {
            if saved.text == notes {
                // A retry whose reply was lost: the same record again.
                return Ok((Response::Consultation { record }, Vec::new()));
            }
            return Err(e(ErrorCode::InvalidState, "the notes were already saved; add an amendment instead"));
        }
        match record.meeting.status {
            MeetingStatus::Cancelled => {
                return Err(e(ErrorCode::InvalidState, "this consultation was cancelled"));
            }
            s if !s.is_over() => {
                return Err(e(ErrorCode::InvalidState, "notes are written once the consultation has ended"));
            }
            _ => {}
        }
        self.store.save_consultation_notes(meeting, &staff, &notes, now).map_err(|err| {
            self.metrics.storage_failure();
            db(err)
        })?;
        let (_, record) = self.held_consultation(conn, meeting)?;
        Ok((Response::Consultation { record }, Vec::new()))
    }

    /// Appends an amendment to a consultation's saved notes.
    fn amend(&mut self, now: UnixMillis, conn: ConnId, meeting: MeetingId, text: &str) -> Handled {
        let (staff, record) = self.held_consultation(conn, meeting)?;
        let text = clean_notes("amendments", text)?;
        if record.notes.is_none() {
            return Err(e(ErrorCode::InvalidState, "save the consultation's notes before amending them"));
        }
        if record.amendments.len() >= MAX_AMENDMENTS as usize {
            return Err(e(
                ErrorCode::TooLarge,
                &format!("a consultation record takes at most {MAX_AMENDMENTS} amendments"),
            ));
        }
        self.store.amend_consultation(meeting, &staff, &text, now).map_err(|err| {
            self.metrics.storage_failure();
            db(err)
        })?;
        let (_, record) = self.held_consultation(conn, meeting)?;
        Ok((Response::Consultation { record }, Vec::new()))
    }

    /// Its creator cancels a meeting that has not started; people already in it
    /// are told and leave (through the room when it is loaded).
    fn cancel(&mut self, now: UnixMillis, conn: ConnId, meeting: MeetingId) -> Handled {
        let staff = self.staff(conn)?;
        let Some(record) = self.store.meeting(meeting).map_err(db)?.filter(|r| r.creator == staff.staff_id)
        else {
            return Err(e(ErrorCode::NotFound, "no such meeting among yours"));
        };
        if self.rooms.contains_key(&meeting) {
            let o = self.room_to_change(meeting)?.cancel(now)?;
            return Ok((Response::Ok, o.effects));
        }
        if record.info.status != MeetingStatus::Scheduled {
            return Err(e(
                ErrorCode::InvalidState,
                "only a meeting that has not started can be cancelled; end it instead",
            ));
        }
        let mut info = record.info;
        info.status = MeetingStatus::Cancelled;
        info.ended_at = Some(now);
        let audit = Write::Audit {
            meeting_id: meeting,
            participant_id: None,
            action: "end",
            detail: MeetingStatus::Cancelled.as_str().into(),
        };
        Ok((Response::Ok, vec![Effect::Write(Write::MeetingState(info)), Effect::Write(audit)]))
    }

    /// Past meetings of the caller (staff), newest first.
    fn past(&mut self, conn: ConnId, mut filter: PastFilter) -> Handled {
        let staff = self.staff(conn)?;
        filter.query = match filter.query {
            Some(q) => Some(clean_text("search text", &q, MAX_QUERY_CHARS, false, false)?),
            None => None,
        };
        let limit = if filter.limit == 0 { MAX_PAST_PAGE } else { filter.limit.min(MAX_PAST_PAGE) };
        let (meetings, more) = self.store.past_meetings(staff.staff_id, &filter, limit).map_err(db)?;
        Ok((Response::PastMeetings { meetings, more }, Vec::new()))
    }

    /// A new access code, in a bucket with the fewest live meetings (among
    /// those, one whose guess budget is fullest; random among equals), and a
    /// new invite secret.
    fn new_secrets(&mut self, now: UnixMillis) -> Result<(AccessCode, InviteSecret), ErrorBody> {
        let mut load = vec![0u32; usize::from(BUCKETS)];
        for (b, n) in self.store.bucket_loads().map_err(db)? {
            if let Some(l) = load.get_mut(usize::from(b)) {
                *l = n;
            }
        }
        let least = load.iter().copied().min().unwrap_or(0);
        let mut best = Vec::new();
        let mut best_tokens = f64::MIN;
        for b in (0..BUCKETS).filter(|&b| load[usize::from(b)] == least) {
            let tokens = self.guard.bucket_tokens(now, b);
            if tokens > best_tokens {
                best_tokens = tokens;
                best.clear();
            }
            if tokens >= best_tokens {
                best.push(b);
            }
        }
        let mut rng = rand::rng();
        let bucket = best.get(rng.random_range(0..best.len().max(1))).copied().unwrap_or(0);
        Ok((AccessCode::generate_in_bucket(&mut rng, bucket), InviteSecret::random()))
    }

    /// Counts a failure for the coalesced audit log (nothing is written now);
    /// failed and refused joins also count in the `failed_joins` metric.
    fn failure(&mut self, now: UnixMillis, action: &'static str, ip: std::net::IpAddr) {
        if !action.starts_with("enroll") {
            self.metrics.failed_join();
        }
        self.audit_batch.record(now, action, &ip.to_string());
    }

    /// Writes the coalesced failure rows whose window is over (all when `all`), in one commit.
    pub fn flush_failures(&mut self, now: UnixMillis, all: bool) {
        let rows = if all { self.audit_batch.drain() } else { self.audit_batch.due(now) };
        if let Err(err) = self.store.audit_coalesced(&rows) {
            tracing::warn!(%err, rows = rows.len(), "could not write coalesced audit rows");
        }
    }

    fn invalid_code() -> ErrorBody {
        e(ErrorCode::InvalidCode, "this access code or invite link is not valid")
    }

    /// Finds the meeting a join's secret names, within the guess budgets.
    fn meeting_for_secret(
        &mut self,
        now: UnixMillis,
        ip: std::net::IpAddr,
        secret: &str,
        staff: bool,
    ) -> Result<MeetingRecord, ErrorBody> {
        let Ok(secret) = JoinSecret::parse(secret) else {
            // Nothing looked up, nothing learnt: the source pays, no bucket does.
            self.guard.source_failed(now, ip);
            self.failure(now, "code_failed", ip);
            return Err(Self::invalid_code());
        };
        match secret {
            JoinSecret::Invite(invite) => {
                // 130 bits: no guess budget; a wrong one is charged to its source only.
                match self.store.meeting_by_invite(&self.keys.invite_hmac(&invite)).map_err(db)? {
                    Some(record) => Ok(record),
                    None => {
                        self.guard.source_failed(now, ip);
                        self.failure(now, "invite_failed", ip);
                        Err(Self::invalid_code())
                    }
                }
            }
            JoinSecret::Code(code) => {
                let bucket = code.bucket();
                let pass = match self.guard.check_code(now, ip, bucket, staff) {
                    Ok(pass) => pass,
                    Err(refusal) => {
                        self.failure(now, "code_attempt_refused", ip);
                        let msg = match refusal {
                            Refusal::Source { .. } => "too many wrong access codes from your network; try again shortly",
                            Refusal::Bucket { .. } => {
                                "too many wrong access codes for this meeting; try again shortly or use the invite link"
                            }
                        };
                        return Err(e(ErrorCode::RateLimited, msg).retry_after(refusal.retry_after_ms()));
                    }
                };
                match self.store.meeting_by_code(&self.keys.code_hmac(&code)).map_err(db)? {
                    Some(record) => Ok(record),
                    None => {
                        self.guard.code_failed(now, ip, bucket, pass);
                        self.failure(now, "code_failed", ip);
                        Err(Self::invalid_code())
                    }
                }
            }
        }
    }

    /// Host only: a new code and invite secret; the old ones stop working at once.
    fn rekey(&mut self, now: UnixMillis, conn: ConnId) -> Handled {
        let (mid, pid) = self.bound(conn)?;
        let room = self.rooms.get(&mid).ok_or_else(not_joined)?;
        let p = room.participant(pid).ok_or_else(not_joined)?;
        if p.role != Role::Host || p.presence != crate::room::Presence::InMeeting {
            return Err(e(ErrorCode::Forbidden, "only the host can issue a new code"));
        }
        if room.is_over() {
            return Err(e(ErrorCode::MeetingEnded, "this meeting has ended"));
        }
        let staff = p.staff;
        for _ in 0..8 {
            let (code, invite) = self.new_secrets(now)?;
            let (code_hmac, invite_hmac) = (self.keys.code_hmac(&code), self.keys.invite_hmac(&invite));
            let secrets =
                MeetingSecrets { code_hmac: &code_hmac, bucket: code.bucket(), invite_hmac: &invite_hmac };
            if self.store.rekey_meeting(mid, &secrets).map_err(db)? {
                let _ = self.store.audit(now, Some(mid), staff, "meeting_rekeyed", None, "");
                let response =
                    Response::Rekeyed { access_code: code.to_string(), invite_secret: invite.to_string() };
                return Ok((response, Vec::new()));
            }
        }
        Err(internal())
    }

    fn join(
        &mut self,
        now: UnixMillis,
        conn: ConnId,
        code: &str,
        display_name: &str,
        media: clinicmeet_protocol::MediaState,
    ) -> Handled {
        let sess = self.session(conn)?;
        if sess.bound.is_some() {
            return Err(e(ErrorCode::InvalidState, "already in a meeting; leave it first"));
        }
        let ip = sess.addr.ip();
        let staff = sess.staff.clone();
        let display_name = clean_display_name(display_name)?;
        let record = self.meeting_for_secret(now, ip, code, staff.is_some())?;
        self.enter(now, conn, record, display_name, media, false)
    }

    /// Staff: joins a clinic meeting by id, without its code; knocks unless they created it.
    fn join_as_staff(
        &mut self,
        now: UnixMillis,
        conn: ConnId,
        meeting: MeetingId,
        display_name: &str,
        media: clinicmeet_protocol::MediaState,
    ) -> Handled {
        self.staff(conn)?;
        if self.session(conn)?.bound.is_some() {
            return Err(e(ErrorCode::InvalidState, "already in a meeting; leave it first"));
        }
        let display_name = clean_display_name(display_name)?;
        let Some(record) = self.store.meeting(meeting).map_err(db)? else {
            return Err(e(ErrorCode::NotFound, "no such meeting"));
        };
        self.enter(now, conn, record, display_name, media, true)
    }

    /// Takes a place in a meeting found by code, invite or (staff) id.
    fn enter(
        &mut self,
        now: UnixMillis,
        conn: ConnId,
        record: MeetingRecord,
        display_name: String,
        media: clinicmeet_protocol::MediaState,
        knock: bool,
    ) -> Handled {
        let sess = self.session(conn)?;
        let ip = sess.addr.ip();
        let staff = sess.staff.clone();
        let mid = record.info.id;
        let status = self.rooms.get(&mid).map_or(record.info.status, |room| room.info().status);
        if status == MeetingStatus::Cancelled {
            return Err(e(ErrorCode::MeetingCancelled, "this meeting was cancelled"));
        }
        if status.is_over() {
            return Err(e(ErrorCode::MeetingEnded, "this meeting has ended"));
        }
        let total: usize = self.rooms.values().map(|r| r.participants().count()).sum();
        if total >= self.cfg.max_participants || self.forwarded_streams() >= self.cfg.max_forwarded_streams {
            return Err(e(ErrorCode::ServerBusy, "the relay is at capacity; try again later"));
        }
        if !self.rooms.contains_key(&mid) {
            let room = self.load_room(record, now).map_err(db)?;
            self.rooms.insert(mid, room);
        }
        let pid = Uuid::now_v7();
        let hold = match &staff {
            Some(s) => HoldKey::Staff(s.staff_id),
            None => HoldKey::Source(Source::of(ip)),
        };
        let resume = self.keys.new_resume(mid, pid);
        let joiner = Joiner { id: pid, display_name, staff, media, resume, hold, knock };
        let o = self.room_to_change(mid)?.join(now, joiner)?;
        self.uncommitted.binds.push((conn, mid, pid));
        Ok((self.entry_response(o.reply), o.effects))
    }

    /// Binds a connection to its place; an older connection still holding the
    /// place (the participant resumed elsewhere) is unbound and closed.
    fn bind(&mut self, conn: ConnId, mid: MeetingId, pid: ParticipantId) {
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.bound = Some((mid, pid));
        }
        if let Some(old) = self.conn_of.insert(pid, conn).filter(|&old| old != conn) {
            if let Some(s) = self.sessions.get_mut(&old) {
                s.bound = None;
            }
            self.pending_close.push(old);
        }
    }

    fn resume(&mut self, now: UnixMillis, conn: ConnId, token: &str) -> Handled {
        if self.session(conn)?.bound.is_some() {
            return Err(e(ErrorCode::InvalidState, "already in a meeting; leave it first"));
        }
        let token = token.trim();
        let invalid = || e(ErrorCode::ResumeFailed, "this resume token is not valid");
        let Some((mid, pid)) = Keys::resume_token_place(token) else {
            return Err(invalid());
        };
        if !self.rooms.contains_key(&mid) {
            return match self.store.meeting(mid).map_err(db)? {
                Some(r) if r.info.status.is_over() => {
                    Err(e(ErrorCode::MeetingEnded, "this meeting has ended"))
                }
                _ => Err(e(ErrorCode::ResumeFailed, "that place in the meeting is gone; join again")),
            };
        };
        let Some(place) = self.rooms.get(&mid).and_then(|r| r.participant(pid)) else {
            return Err(e(ErrorCode::ResumeFailed, "that place in the meeting is gone; join again"));
        };
        // The place's current token (each join and resume issues a new one), or the
        // one it replaced for a while after, in case the reply was lost with the link.
        let keep = self.cfg.resume_grace_ms + RESUME_TOKEN_MARGIN_MS;
        let Some(next) = self.keys.rotate_resume((mid, pid), &place.resume, token, now, keep) else {
            return Err(invalid());
        };
        // A place that carries a staff identity is resumed only from that staff
        // member's device (hello with its credential), never with the token alone.
        let holder = place.staff;
        let caller = self.session(conn)?.staff.as_ref().map(|s| s.staff_id);
        if holder.is_some() && holder != caller {
            return Err(e(
                ErrorCode::Unauthenticated,
                "this place belongs to a staff member; resume from their device",
            ));
        }
        let o = self.room_to_change(mid)?.resume(now, pid, next)?;
        // Bound on commit; an older connection still holding this place is closed then.
        self.uncommitted.binds.push((conn, mid, pid));
        Ok((self.entry_response(o.reply), o.effects))
    }

    fn send_chat(
        &mut self,
        now: UnixMillis,
        conn: ConnId,
        client_msg_id: Uuid,
        text: &str,
        staff_only: bool,
        attachments: &[clinicmeet_protocol::AttachmentId],
    ) -> Handled {
        let (rate, burst) = (self.cfg.chat_rate, self.cfg.chat_burst);
        let (_, pid) = self.bound(conn)?;
        let bucket = self.chat_buckets.entry(pid).or_insert_with(|| TokenBucket::new(rate, burst, now));
        if let Err(ms) = bucket.take(now) {
            return Err(e(ErrorCode::RateLimited, "too many chat messages; slow down").retry_after(ms));
        }
        let attachments = self.attachments_for(conn, client_msg_id, staff_only, attachments)?;
        let (room, pid) = self.room_of(conn)?;
        let o = room.send_chat_with(now, pid, client_msg_id, text, staff_only, attachments)?;
        Ok((Response::ChatAccepted { message: o.reply }, o.effects))
    }

    fn history(
        &mut self,
        conn: ConnId,
        meeting_id: Option<MeetingId>,
        since: u64,
        notes_since: u64,
        limit: u32,
    ) -> Handled {
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        let sess = self.session(conn)?;
        let bound = sess.bound;
        let (mid, notes, until) = match (bound, meeting_id) {
            (Some((mid, pid)), m) if m.is_none_or(|m| m == mid) => {
                let room = self.rooms.get(&mid).ok_or_else(not_joined)?;
                if room.participant(pid).is_none_or(|p| p.presence != crate::room::Presence::InMeeting) {
                    return Err(waiting());
                }
                (mid, room.reads_notes(pid), UnixMillis::MAX)
            }
            (_, Some(m)) => {
                // A staff member removed from the meeting reads only what was said before.
                let staff = self.staff(conn)?;
                let Some(until) = self.store.staff_reads_until(m, staff.staff_id).map_err(db)? else {
                    return Err(e(ErrorCode::NotFound, "no such meeting among yours"));
                };
                (m, true, until)
            }
            (_, None) => return Err(not_joined()),
        };
        let (mut messages, mut more) =
            self.store.chat_history(mid, since, notes, notes_since, limit, until).map_err(db)?;
        let mut size = 0;
        if let Some(cut) = messages.iter().position(|m| {
            size += approx_size(m);
            size > HISTORY_BYTES
        }) {
            messages.truncate(cut.max(1));
            more = true;
        }
        Ok((Response::ChatHistory { messages, more }, Vec::new()))
    }
}

impl Hub {
    fn entry_response(&self, entry: Entry) -> Response {
        match entry {
            Entry::Joined(mut js) => {
                self.tracks.fill(&mut js);
                Response::Joined(js)
            }
            Entry::Waiting { participant_id, resume_token, meeting } => {
                Response::Waiting { participant_id, resume_token, meeting }
            }
        }
    }
}

impl Hub {
    /// Media follow-ups: brings tracks in line with rooms and connections.
    fn sync_media(&mut self) -> Vec<Effect> {
        let sessions = &self.sessions;
        self.tracks.sync(&self.rooms, |c| sessions.get(&c).and_then(|s| s.bound))
    }

    /// Subscriptions in place across the relay.
    pub fn forwarded_streams(&self) -> usize {
        self.tracks.forwarded_streams()
    }

    /// The published tracks (for tests and operators).
    pub fn tracks(&self) -> impl Iterator<Item = &PublishedTrack> {
        self.tracks.iter()
    }
}
