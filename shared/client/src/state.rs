//! The sans-IO session state machine (in the manner of `quinn-proto`): no
//! sockets, no clock, no database. The driver feeds it connection changes,
//! server messages, application calls and the current time; after each input
//! it drains [`Output`]s in order (messages to transmit, events for the
//! application, writes for the local store, call results) and sleeps until
//! [`Core::poll_timeout`].
//!
//! It holds: the requests in flight by id, the connection state and reconnect
//! backoff, the meeting state (participants, waiting room, own role), the chat
//! resync cursors, and the outbox of own messages not yet acknowledged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use clinicmeet_protocol::{
    ChatMessage, ClientMessage, ErrorBody, ErrorCode, Event, JoinState, MediaState, MeetingId, MeetingInfo,
    MeetingKind, MeetingStatus, ParticipantId, ParticipantInfo, Request, RequestId, Response, Role,
    ServerMessage, StaffIdentity, WaitingInfo, PROTOCOL_VERSION,
};
use uuid::Uuid;

use crate::backoff::{self, Backoff};
use crate::event::{ClientEvent, ConnectionState, Entered, PendingChat};
use crate::store::{ConsultationRecord, OutboxEntry, OutboxState, Watermarks};

/// Identifies an application call, to match its [`Output::Completed`].
pub type CallId = u64;

/// Own chat messages sent but not yet acknowledged, at most. One: a message
/// refused for a rate limit and retried must not be overtaken by the next one,
/// so a sender's messages keep the order they were typed in. One round trip per
/// message is far quicker than people type (and than the relay's chat rate).
pub const CHAT_WINDOW: usize = 1;
/// History page size asked for during resync.
pub const HISTORY_PAGE: u32 = 500;
/// Delay used when a relay rate-limits without saying how long to wait.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_millis(1000);

/// Why an application call did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The relay refused it.
    Relay(ErrorBody),
    /// The connection dropped before the reply came (the request may or may not have been carried out).
    ConnectionLost,
    /// Not possible in the current state (e.g. chat outside a meeting).
    InvalidState(String),
    /// The session is closed.
    Closed,
}

/// Something the driver must do, in the order produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a new connection to the relay, then call [`Core::on_connected`] or [`Core::on_connect_failed`].
    Connect,
    /// Close the current connection (terminal event or closing session).
    Disconnect,
    /// Write this message to the signaling stream.
    Transmit(ClientMessage),
    /// Hand this to the application.
    Event(ClientEvent),
    /// Apply this to the local store.
    Persist(Persist),
    /// Load the local state of a meeting from the store and call [`Core::local_loaded`].
    LoadLocal { meeting_id: MeetingId },
    /// The result of an application call.
    Completed { call: CallId, result: Result<Response, CallError> },
}

/// A write to the local store.
#[derive(Debug, Clone, PartialEq)]
pub enum Persist {
    Credential {
        staff: StaffIdentity,
        credential: String,
    },
    Meeting {
        info: Box<MeetingInfo>,
        access_code: Option<String>,
        role: Option<Role>,
    },
    Role {
        meeting_id: MeetingId,
        role: Role,
    },
    /// The meeting's current code (normalized) and invite secret, from a create or a
    /// re-key on this device; they replace the stored ones.
    Codes {
        meeting_id: MeetingId,
        access_code: String,
        invite_secret: Option<String>,
    },
    /// Our place in a meeting (`token: None` clears it: left, denied, removed, ended).
    ResumeToken {
        meeting_id: MeetingId,
        participant_id: Option<ParticipantId>,
        token: Option<String>,
    },
    /// A message from the relay (store idempotently).
    Chat(ChatMessage),
    OutboxInsert(OutboxEntry),
    /// Rate-limited: stays `sending`, retried after the delay.
    OutboxRetry {
        client_msg_id: Uuid,
        attempts: u32,
        retry_after_ms: u64,
        error: String,
    },
    /// Acknowledged: store the accepted copy, entry becomes `sent`.
    OutboxAccepted(ChatMessage),
    OutboxFailed {
        client_msg_id: Uuid,
        attempts: u32,
        error: String,
    },
    /// A failed entry was queued again by hand.
    OutboxRequeued {
        client_msg_id: Uuid,
    },
    ConsultationStarted {
        meeting_id: MeetingId,
        title: String,
        patient_reference: Option<String>,
        started_at: Option<i64>,
    },
    ConsultationEnded(ConsultationRecord),
}

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sent in hello for the relay's audit log.
    pub client_name: String,
    /// Staff device credential, presented in hello.
    pub device_credential: Option<String>,
    pub backoff: backoff::Config,
    /// Reconnect automatically after a lost connection.
    pub auto_reconnect: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            client_name: format!("clinicmeet-client/{}", env!("CARGO_PKG_VERSION")),
            device_credential: None,
            backoff: backoff::Config::default(),
            auto_reconnect: true,
        }
    }
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// No connection and none being made.
    Down,
    /// `Output::Connect` was issued, waiting for the driver.
    Connecting,
    /// Transport up, hello sent.
    Greeting,
    /// Hello done (and resume, if in a meeting, sent).
    Ready,
    /// Lost; reconnect scheduled.
    Backoff,
    /// Closed for good.
    Closed,
}

/// Where this client stands in a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Outside,
    Joining,
    Waiting,
    InMeeting,
}

/// The meeting as this client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingView {
    pub meeting: MeetingInfo,
    pub me: ParticipantId,
    pub role: Role,
    pub participants: Vec<ParticipantInfo>,
    pub waiting: Vec<WaitingInfo>,
    /// Highest chat/notes sequence numbers this client has.
    pub chat_seq: u64,
    pub notes_seq: u64,
    /// History resync finished since the last (re)entry.
    pub synced: bool,
    /// Media tracks others publish.
    pub tracks: Vec<clinicmeet_protocol::TrackInfo>,
    /// Who records the call, if anyone.
    pub recording: Option<clinicmeet_protocol::RecordingInfo>,
}

impl MeetingView {
    pub fn participant(&self, id: ParticipantId) -> Option<&ParticipantInfo> {
        self.participants.iter().find(|p| p.id == id)
    }
}

#[derive(Debug, Clone)]
struct JoinParams {
    access_code: String,
    display_name: String,
    media: MediaState,
    /// Staff joining a clinic meeting by its id instead of a code ([`Request::JoinAsStaff`]).
    meeting_id: Option<MeetingId>,
}

#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Hello,
    /// Resume of our place after a lost connection.
    Resume,
    Join,
    Chat {
        client_msg_id: Uuid,
    },
    History,
    EndConsultation {
        call: CallId,
        notes: Option<String>,
    },
    /// Any other application call.
    Call {
        call: CallId,
    },
    /// Fire and forget (typing).
    Ignore,
}

#[derive(Debug, Clone)]
struct OutItem {
    id: Uuid,
    text: String,
    staff_only: bool,
    attempts: u32,
    in_flight: bool,
    attachments: Vec<Uuid>,
}

/// The session state machine.
#[derive(Debug)]
pub struct Core {
    config: Config,
    link: Link,
    next_request: RequestId,
    next_call: CallId,
    pending: HashMap<RequestId, Pending>,
    /// Calls made before the link was ready, sent once it is.
    queued: VecDeque<(CallId, Request)>,
    staff: Option<StaffIdentity>,
    backoff: Backoff,
    reconnect_at: Option<Instant>,
    presence: Presence,
    join: Option<JoinParams>,
    /// The application's join call, answered by the outcome (joined, waiting or error).
    join_call: Option<CallId>,
    resume_token: Option<String>,
    /// The meeting we hold a place in (waiting or inside).
    place: Option<MeetingId>,
    view: Option<MeetingView>,
    /// (staff_only, seq) of messages already handed to the application.
    seen: HashSet<(bool, u64)>,
    /// Resync in progress.
    sync: Option<SyncCursor>,
    outbox: VecDeque<OutItem>,
    paused_until: Option<Instant>,
    /// Outputs not yet taken by the driver.
    out: VecDeque<Output>,
}

#[derive(Debug, Clone, Copy)]
struct SyncCursor {
    chat: u64,
    notes: u64,
    fetched: u64,
    /// Waiting for the driver's `local_loaded`.
    loading: bool,
}

impl Core {
    pub fn new(config: Config) -> Self {
        let backoff = Backoff::new(config.backoff);
        Self::with_backoff(config, backoff)
    }

    /// A core with a given backoff (seeded in tests).
    pub fn with_backoff(config: Config, backoff: Backoff) -> Self {
        Core {
            config,
            link: Link::Down,
            next_request: 1,
            next_call: 1,
            pending: HashMap::new(),
            queued: VecDeque::new(),
            staff: None,
            backoff,
            reconnect_at: None,
            presence: Presence::Outside,
            join: None,
            join_call: None,
            resume_token: None,
            place: None,
            view: None,
            seen: HashSet::new(),
            sync: None,
            outbox: VecDeque::new(),
            paused_until: None,
            out: VecDeque::new(),
        }
    }

    // ---------------------------------------------------------------- queries

    pub fn link(&self) -> Link {
        self.link
    }

    pub fn presence(&self) -> Presence {
        self.presence
    }

    pub fn meeting(&self) -> Option<&MeetingView> {
        self.view.as_ref()
    }

    /// The enrolled staff identity the relay recognised in hello.
    pub fn staff(&self) -> Option<&StaffIdentity> {
        self.staff.as_ref()
    }

    pub fn resume_token(&self) -> Option<&str> {
        self.resume_token.as_deref()
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Own messages not yet acknowledged (state sending).
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    pub fn set_device_credential(&mut self, credential: Option<String>) {
        self.config.device_credential = credential;
    }

    /// The next output to act on.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Core::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let outbox_wake = if self.can_send_chat() && self.outbox.iter().any(|i| !i.in_flight) {
            self.paused_until
        } else {
            None
        };
        match (self.reconnect_at, outbox_wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---------------------------------------------------------------- connection

    /// Asks for a connection (first one, or again after `Disconnected`).
    pub fn start(&mut self) {
        if matches!(self.link, Link::Down | Link::Backoff) {
            self.link = Link::Connecting;
            self.reconnect_at = None;
            self.out.push_back(Output::Connect);
        }
    }

    /// The transport is up: greet the relay.
    pub fn on_connected(&mut self, _now: Instant) {
        if self.link == Link::Closed {
            self.out.push_back(Output::Disconnect);
            return;
        }
        self.link = Link::Greeting;
        let req = Request::Hello {
            min_version: clinicmeet_protocol::MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            client: self.config.client_name.clone(),
            device_credential: self.config.device_credential.clone(),
        };
        self.transmit(req, Pending::Hello);
    }

    /// A connection attempt failed: try again after a backoff delay.
    pub fn on_connect_failed(&mut self, now: Instant, reason: &str) {
        if self.link == Link::Closed {
            return;
        }
        if !self.config.auto_reconnect {
            self.go_down(reason);
            return;
        }
        self.schedule_reconnect(now, reason);
    }

    /// The connection was lost (stream ended, transport error, idle timeout).
    pub fn on_disconnected(&mut self, now: Instant, reason: &str) {
        let was = self.link;
        let mut pending: Vec<_> = std::mem::take(&mut self.pending).into_iter().collect();
        pending.sort_by_key(|(id, _)| *id);
        for (_, p) in pending {
            // The outcome of these is unknown; the application decides whether to retry.
            if let Pending::Call { call } | Pending::EndConsultation { call, .. } = p {
                self.complete(call, Err(CallError::ConnectionLost));
            }
            // A join in flight stays pending: answered after the reconnect.
        }
        for item in &mut self.outbox {
            item.in_flight = false;
        }
        self.sync = None;
        if let Some(v) = &mut self.view {
            v.synced = false;
        }
        match was {
            Link::Closed | Link::Down | Link::Backoff => {}
            _ if !self.config.auto_reconnect => self.go_down(reason),
            _ => self.schedule_reconnect(now, reason),
        }
    }

    fn go_down(&mut self, reason: &str) {
        self.link = Link::Down;
        self.reconnect_at = None;
        self.fail_queued(CallError::ConnectionLost);
        if let Some(call) = self.join_call.take() {
            self.complete(call, Err(CallError::ConnectionLost));
        }
        self.emit(ClientEvent::Connection {
            state: ConnectionState::Disconnected,
            attempt: None,
            retry_in_ms: None,
            reason: Some(reason.to_string()),
        });
    }

    fn schedule_reconnect(&mut self, now: Instant, reason: &str) {
        let delay = self.backoff.next_delay();
        self.link = Link::Backoff;
        self.reconnect_at = Some(now + delay);
        self.emit(ClientEvent::Connection {
            state: ConnectionState::Reconnecting,
            attempt: Some(self.backoff.attempt()),
            retry_in_ms: Some(delay.as_millis() as u64),
            reason: Some(reason.to_string()),
        });
    }

    /// Timers: reconnect and outbox retry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.reconnect_at {
            if now >= at {
                self.reconnect_at = None;
                if self.link == Link::Backoff {
                    self.link = Link::Connecting;
                    self.out.push_back(Output::Connect);
                }
            }
        }
        if let Some(p) = self.paused_until {
            if now >= p {
                self.paused_until = None;
            }
        }
        self.pump_outbox(now);
    }

    /// Closes the session for good (no reconnect). Outstanding calls fail.
    pub fn close(&mut self) {
        if self.link == Link::Closed {
            return;
        }
        self.link = Link::Closed;
        self.reconnect_at = None;
        let mut pending: Vec<_> = std::mem::take(&mut self.pending).into_iter().collect();
        pending.sort_by_key(|(id, _)| *id);
        for (_, p) in pending {
            if let Pending::Call { call } | Pending::EndConsultation { call, .. } = p {
                self.complete(call, Err(CallError::Closed));
            }
        }
        if let Some(call) = self.join_call.take() {
            self.complete(call, Err(CallError::Closed));
        }
        self.fail_queued(CallError::Closed);
        self.out.push_back(Output::Disconnect);
        self.emit(ClientEvent::Connection {
            state: ConnectionState::Disconnected,
            attempt: None,
            retry_in_ms: None,
            reason: Some("closed".into()),
        });
    }

    // ---------------------------------------------------------------- calls

    /// Makes a request on behalf of the application; its result comes as
    /// [`Output::Completed`] with the returned id. Sent at once when the link
    /// is ready, else when it becomes ready.
    pub fn call(&mut self, request: Request, now: Instant) -> CallId {
        let request = match request {
            Request::Join { access_code, display_name, media } => {
                return self.join(access_code, display_name, media, None, now)
            }
            Request::JoinAsStaff { meeting_id, display_name, media } => {
                let call = self.new_call();
                let params = JoinParams {
                    access_code: String::new(),
                    display_name,
                    media,
                    meeting_id: Some(meeting_id),
                };
                self.begin_join(call, params, None);
                return call;
            }
            Request::EndConsultation => return self.end_consultation(None, now),
            Request::Leave => return self.leave(now),
            other => other,
        };
        let call = self.new_call();
        match request {
            Request::Hello { .. }
            | Request::Resume { .. }
            | Request::SendChat { .. }
            | Request::ChatHistory { meeting_id: None, .. } => {
                self.complete(
                    call,
                    Err(CallError::InvalidState("this request is made by the session itself".into())),
                );
            }
            _ if self.link == Link::Closed => self.complete(call, Err(CallError::Closed)),
            _ if self.link == Link::Ready => self.send_call(call, request),
            _ => self.queued.push_back((call, request)),
        }
        call
    }

    /// Joins a meeting by code. With `resume_token` (kept from an earlier run),
    /// tries to take back that place first and joins afresh if it is gone.
    pub fn join(
        &mut self,
        access_code: String,
        display_name: String,
        media: MediaState,
        resume_token: Option<String>,
        _now: Instant,
    ) -> CallId {
        let call = self.new_call();
        self.begin_join(
            call,
            JoinParams { access_code, display_name, media, meeting_id: None },
            resume_token,
        );
        call
    }

    fn begin_join(&mut self, call: CallId, params: JoinParams, resume_token: Option<String>) {
        if self.link == Link::Closed {
            self.complete(call, Err(CallError::Closed));
            return;
        }
        if self.presence != Presence::Outside || self.join_call.is_some() {
            self.complete(call, Err(CallError::InvalidState("already in a meeting".into())));
            return;
        }
        self.presence = Presence::Joining;
        self.join = Some(params);
        self.join_call = Some(call);
        self.resume_token = resume_token;
        if self.link == Link::Ready {
            self.send_join_or_resume();
        }
    }

    fn send_join_or_resume(&mut self) {
        if let Some(token) = self.resume_token.clone() {
            self.transmit(Request::Resume { resume_token: token }, Pending::Resume);
        } else if let Some(j) = self.join.clone() {
            let request = match j.meeting_id {
                Some(meeting_id) => {
                    Request::JoinAsStaff { meeting_id, display_name: j.display_name, media: j.media }
                }
                None => {
                    Request::Join { access_code: j.access_code, display_name: j.display_name, media: j.media }
                }
            };
            self.transmit(request, Pending::Join);
        }
    }

    /// Ends the consultation; `notes` are the doctor's, kept locally with the record.
    pub fn end_consultation(&mut self, notes: Option<String>, _now: Instant) -> CallId {
        let call = self.new_call();
        if self.link == Link::Ready && self.presence == Presence::InMeeting {
            self.transmit(Request::EndConsultation, Pending::EndConsultation { call, notes });
        } else {
            self.complete(call, Err(CallError::InvalidState("not in a meeting or not connected".into())));
        }
        call
    }

    /// Leaves the meeting (also when offline: the place is given up locally).
    pub fn leave(&mut self, now: Instant) -> CallId {
        let call = self.new_call();
        if self.presence == Presence::Outside {
            self.complete(call, Err(CallError::InvalidState("not in a meeting".into())));
            return call;
        }
        if self.link == Link::Ready {
            self.transmit(Request::Leave, Pending::Call { call });
        } else {
            self.complete(call, Ok(Response::Ok));
        }
        self.exit_meeting(ClientEvent::Left, now);
        call
    }

    /// Sends a chat message (or staff-only note) optimistically: it is written to
    /// the outbox and announced as `sending` first, then sent when possible.
    pub fn send_chat(
        &mut self,
        client_msg_id: Uuid,
        text: String,
        staff_only: bool,
        now: Instant,
        wall_ms: i64,
    ) -> Result<(), CallError> {
        self.send_chat_with(client_msg_id, text, staff_only, Vec::new(), now, wall_ms)
    }

    /// [`Core::send_chat`] carrying attachments already uploaded (their ids);
    /// the text may then be empty.
    pub fn send_chat_with(
        &mut self,
        client_msg_id: Uuid,
        text: String,
        staff_only: bool,
        attachments: Vec<Uuid>,
        now: Instant,
        wall_ms: i64,
    ) -> Result<(), CallError> {
        let text = if attachments.is_empty() || !text.trim().is_empty() {
            clinicmeet_protocol::limits::clean_chat_text(&text).map_err(CallError::Relay)?
        } else {
            String::new()
        };
        let Some(view) = &self.view else {
            return Err(CallError::InvalidState("chat needs a joined meeting".into()));
        };
        if self.presence != Presence::InMeeting {
            return Err(CallError::InvalidState("chat needs a joined meeting".into()));
        }
        let entry = OutboxEntry {
            client_msg_id,
            meeting_id: view.meeting.id,
            text: text.clone(),
            staff_only,
            state: OutboxState::Sending,
            attempts: 0,
            next_retry_at: 0,
            created_at: wall_ms,
            last_error: None,
            attachments: attachments.clone(),
        };
        self.out.push_back(Output::Persist(Persist::OutboxInsert(entry)));
        self.emit(ClientEvent::ChatStatus {
            client_msg_id,
            status: OutboxState::Sending,
            pending: Some(PendingChat { text: text.clone(), staff_only, created_at: wall_ms }),
            seq: None,
            error: None,
            retry_in_ms: None,
        });
        self.outbox.push_back(OutItem {
            id: client_msg_id,
            text,
            staff_only,
            attempts: 0,
            in_flight: false,
            attachments,
        });
        self.pump_outbox(now);
        Ok(())
    }

    /// Queues a failed message again (manual retry).
    pub fn retry_chat(&mut self, entry: OutboxEntry, now: Instant) -> Result<(), CallError> {
        let in_meeting = self.view.as_ref().is_some_and(|v| v.meeting.id == entry.meeting_id);
        if !in_meeting {
            return Err(CallError::InvalidState("retry needs the message's meeting to be joined".into()));
        }
        if self.outbox.iter().any(|i| i.id == entry.client_msg_id) {
            return Ok(());
        }
        self.out.push_back(Output::Persist(Persist::OutboxRequeued { client_msg_id: entry.client_msg_id }));
        self.emit(ClientEvent::ChatStatus {
            client_msg_id: entry.client_msg_id,
            status: OutboxState::Sending,
            pending: Some(PendingChat {
                text: entry.text.clone(),
                staff_only: entry.staff_only,
                created_at: entry.created_at,
            }),
            seq: None,
            error: None,
            retry_in_ms: None,
        });
        self.outbox.push_back(OutItem {
            id: entry.client_msg_id,
            text: entry.text,
            staff_only: entry.staff_only,
            attempts: entry.attempts,
            in_flight: false,
            attachments: entry.attachments,
        });
        self.pump_outbox(now);
        Ok(())
    }

    /// Typing indicator (fire and forget; dropped when offline).
    pub fn typing(&mut self, typing: bool) {
        if self.link == Link::Ready && self.presence == Presence::InMeeting {
            self.transmit(Request::Typing { typing }, Pending::Ignore);
        }
    }

    /// The driver loaded the local state of the meeting just entered: start
    /// the history resync from the stored watermarks, and adopt the outbox
    /// entries a previous run left behind.
    pub fn local_loaded(
        &mut self,
        meeting_id: MeetingId,
        marks: Watermarks,
        pending: Vec<OutboxEntry>,
        now: Instant,
    ) {
        let Some(view) = &mut self.view else { return };
        if view.meeting.id != meeting_id {
            return;
        }
        for e in pending {
            if e.state == OutboxState::Sending && !self.outbox.iter().any(|i| i.id == e.client_msg_id) {
                self.outbox.push_back(OutItem {
                    id: e.client_msg_id,
                    text: e.text,
                    staff_only: e.staff_only,
                    attempts: e.attempts,
                    in_flight: false,
                    attachments: e.attachments,
                });
            }
        }
        let Some(sync) = &mut self.sync else { return };
        if !sync.loading {
            return;
        }
        sync.loading = false;
        sync.chat = marks.chat;
        sync.notes = marks.notes;
        self.request_history_page();
        self.pump_outbox(now);
    }

    // ---------------------------------------------------------------- input

    /// Feeds one message from the relay.
    pub fn handle_message(&mut self, msg: ServerMessage, now: Instant) {
        match msg {
            ServerMessage::Reply { id, response } => match self.pending.remove(&id) {
                Some(p) => self.on_reply(p, Ok(response), now),
                None => tracing::debug!(id, "reply to an unknown request id ignored"),
            },
            ServerMessage::Error { id: Some(id), error } => match self.pending.remove(&id) {
                Some(p) => self.on_reply(p, Err(error), now),
                None => tracing::debug!(id, code = %error.code, "error for an unknown request id ignored"),
            },
            ServerMessage::Error { id: None, error } => {
                self.emit(ClientEvent::Error { code: error.code.as_str().into(), message: error.message });
            }
            ServerMessage::Event { event } => self.on_event(event, now),
        }
    }

    fn on_reply(&mut self, pending: Pending, result: Result<Response, ErrorBody>, now: Instant) {
        match pending {
            Pending::Hello => match result {
                Ok(Response::Hello { staff, .. }) => self.on_ready(staff, now),
                Ok(other) => {
                    self.protocol_error(&format!("unexpected reply to hello: {}", response_name(&other)))
                }
                Err(e) => {
                    // Wrong version or revoked credential: nothing will work; give up.
                    self.emit(ClientEvent::Error {
                        code: e.code.as_str().into(),
                        message: e.message.clone(),
                    });
                    self.fail_queued(CallError::Relay(e.clone()));
                    if let Some(call) = self.join_call.take() {
                        self.presence = Presence::Outside;
                        self.complete(call, Err(CallError::Relay(e)));
                    }
                    self.close();
                }
            },
            Pending::Join | Pending::Resume => {
                let resumed = pending == Pending::Resume;
                match result {
                    Ok(Response::Joined(state)) => {
                        self.enter(*state.clone(), resumed, false, now);
                        if let Some(call) = self.join_call.take() {
                            self.complete(call, Ok(Response::Joined(state)));
                        }
                    }
                    Ok(Response::Waiting { participant_id, resume_token, meeting }) => {
                        self.presence = Presence::Waiting;
                        self.resume_token = Some(resume_token.clone());
                        self.place = Some(meeting.id);
                        self.out.push_back(Output::Persist(Persist::Meeting {
                            info: Box::new(meeting.clone()),
                            access_code: self.normalized_code(),
                            role: None,
                        }));
                        self.out.push_back(Output::Persist(Persist::ResumeToken {
                            meeting_id: meeting.id,
                            participant_id: Some(participant_id),
                            token: Some(resume_token.clone()),
                        }));
                        self.emit(ClientEvent::Waiting {
                            participant_id,
                            meeting: Box::new(meeting.clone()),
                            resumed,
                        });
                        if let Some(call) = self.join_call.take() {
                            self.complete(
                                call,
                                Ok(Response::Waiting { participant_id, resume_token, meeting }),
                            );
                        }
                    }
                    Err(e) if resumed && e.code != ErrorCode::RateLimited && self.join.is_some() => {
                        // Our place is gone (grace over, relay forgot it): join afresh.
                        tracing::info!(code = %e.code, "resume refused; joining again");
                        self.resume_token = None;
                        if let Some(v) = &self.view {
                            let id = v.meeting.id;
                            self.out.push_back(Output::Persist(Persist::ResumeToken {
                                meeting_id: id,
                                participant_id: None,
                                token: None,
                            }));
                        }
                        self.send_join_or_resume();
                    }
                    Err(e) => {
                        let was_inside = matches!(self.presence, Presence::InMeeting | Presence::Waiting);
                        self.presence = Presence::Outside;
                        self.join = None;
                        self.resume_token = None;
                        if let Some(call) = self.join_call.take() {
                            self.complete(call, Err(CallError::Relay(e.clone())));
                        }
                        if was_inside {
                            self.emit(ClientEvent::Error {
                                code: e.code.as_str().into(),
                                message: e.message,
                            });
                            self.exit_meeting(ClientEvent::Left, now);
                        }
                    }
                    Ok(other) => {
                        self.protocol_error(&format!("unexpected reply to join: {}", response_name(&other)))
                    }
                }
            }
            Pending::Chat { client_msg_id } => self.on_chat_reply(client_msg_id, result, now),
            Pending::History => self.on_history(result, now),
            Pending::EndConsultation { call, notes } => {
                if let Ok(Response::ConsultationEnded { started_at, ended_at, duration_secs }) = &result {
                    if let Some(v) = &self.view {
                        self.out.push_back(Output::Persist(Persist::ConsultationEnded(ConsultationRecord {
                            meeting_id: v.meeting.id,
                            title: Some(v.meeting.title.clone()),
                            patient_reference: v.meeting.patient_reference.clone(),
                            started_at: Some(*started_at),
                            ended_at: Some(*ended_at),
                            duration_secs: Some(*duration_secs),
                            notes,
                            status: None,
                        })));
                    }
                }
                self.complete(call, result.map_err(CallError::Relay));
            }
            Pending::Call { call } => {
                match &result {
                    Ok(Response::Enrolled { staff, device_credential }) => {
                        self.config.device_credential = Some(device_credential.clone());
                        self.staff = Some(staff.clone());
                        self.out.push_back(Output::Persist(Persist::Credential {
                            staff: staff.clone(),
                            credential: device_credential.clone(),
                        }));
                    }
                    Ok(Response::MeetingCreated { meeting, access_code, invite_secret }) => {
                        let code = normalize_code(access_code);
                        self.out.push_back(Output::Persist(Persist::Meeting {
                            info: Box::new(meeting.clone()),
                            access_code: code.clone(),
                            role: Some(Role::Host),
                        }));
                        if let Some(code) = code {
                            self.out.push_back(Output::Persist(Persist::Codes {
                                meeting_id: meeting.id,
                                access_code: code,
                                invite_secret: invite_secret.clone(),
                            }));
                        }
                    }
                    Ok(Response::Rekeyed { access_code, invite_secret }) => {
                        // The old code is gone: a fresh join after a failed resume uses the new one.
                        if let Some(j) = self.join.as_mut() {
                            j.access_code = access_code.clone();
                        }
                        if let (Some(meeting_id), Some(code)) = (self.place, normalize_code(access_code)) {
                            self.out.push_back(Output::Persist(Persist::Codes {
                                meeting_id,
                                access_code: code,
                                invite_secret: Some(invite_secret.clone()),
                            }));
                        }
                    }
                    Ok(Response::ChatHistory { messages, .. }) => {
                        for m in messages {
                            self.out.push_back(Output::Persist(Persist::Chat(m.clone())));
                        }
                    }
                    Ok(Response::Meetings { meetings }) => {
                        for m in meetings {
                            self.out.push_back(Output::Persist(Persist::Meeting {
                                info: Box::new(m.meeting.clone()),
                                access_code: None,
                                role: None,
                            }));
                        }
                    }
                    _ => {}
                }
                self.complete(call, result.map_err(CallError::Relay));
            }
            Pending::Ignore => {
                if let Err(e) = result {
                    tracing::debug!(code = %e.code, "fire-and-forget request refused");
                }
            }
        }
    }

    fn on_ready(&mut self, staff: Option<StaffIdentity>, now: Instant) {
        self.link = Link::Ready;
        self.backoff.reset();
        self.staff = staff;
        self.emit(ClientEvent::Connection {
            state: ConnectionState::Connected,
            attempt: None,
            retry_in_ms: None,
            reason: None,
        });
        if self.presence != Presence::Outside {
            self.send_join_or_resume();
        }
        while let Some((call, req)) = self.queued.pop_front() {
            self.send_call(call, req);
        }
        self.pump_outbox(now);
    }

    fn enter(&mut self, state: JoinState, resumed: bool, admitted: bool, _now: Instant) {
        let same_meeting = self.view.as_ref().is_some_and(|v| v.meeting.id == state.meeting.id);
        if !same_meeting {
            self.seen.clear();
        }
        let (prev_chat, prev_notes) =
            self.view.as_ref().filter(|_| same_meeting).map_or((0, 0), |v| (v.chat_seq, v.notes_seq));
        self.presence = Presence::InMeeting;
        self.resume_token = Some(state.resume_token.clone());
        self.place = Some(state.meeting.id);
        let meeting_id = state.meeting.id;
        self.view = Some(MeetingView {
            meeting: state.meeting.clone(),
            me: state.you.id,
            role: state.you.role,
            participants: state.participants.clone(),
            waiting: state.waiting.clone(),
            chat_seq: prev_chat,
            notes_seq: prev_notes,
            synced: false,
            tracks: state.tracks.clone(),
            recording: state.recording,
        });
        self.out.push_back(Output::Persist(Persist::Meeting {
            info: Box::new(state.meeting.clone()),
            access_code: self.normalized_code(),
            role: Some(state.you.role),
        }));
        self.out.push_back(Output::Persist(Persist::ResumeToken {
            meeting_id,
            participant_id: Some(state.you.id),
            token: Some(state.resume_token.clone()),
        }));
        let entered = Box::new(Entered::from_join(state, resumed));
        self.emit(if admitted { ClientEvent::Admitted(entered) } else { ClientEvent::Joined(entered) });
        // Resync: the driver loads watermarks and the stored outbox, then we page history.
        self.sync = Some(SyncCursor { chat: 0, notes: 0, fetched: 0, loading: true });
        self.out.push_back(Output::LoadLocal { meeting_id });
    }

    fn request_history_page(&mut self) {
        let Some(sync) = self.sync else { return };
        if self.link != Link::Ready {
            return;
        }
        self.transmit(
            Request::ChatHistory {
                meeting_id: None,
                since_seq: sync.chat,
                notes_since_seq: sync.notes,
                limit: HISTORY_PAGE,
            },
            Pending::History,
        );
    }

    fn on_history(&mut self, result: Result<Response, ErrorBody>, now: Instant) {
        match result {
            Ok(Response::ChatHistory { messages, more }) => {
                let meeting_id = self.view.as_ref().map(|v| v.meeting.id);
                let mut got_any = false;
                for m in messages {
                    if Some(m.meeting_id) != meeting_id {
                        tracing::debug!("history message of another meeting ignored");
                        continue;
                    }
                    got_any = true;
                    if let Some(s) = &mut self.sync {
                        s.fetched += 1;
                        if m.staff_only {
                            s.notes = s.notes.max(m.seq);
                        } else {
                            s.chat = s.chat.max(m.seq);
                        }
                    }
                    self.on_chat_message(m, false);
                }
                if more && got_any {
                    self.request_history_page();
                } else {
                    self.finish_sync(now);
                }
            }
            Ok(other) => {
                self.protocol_error(&format!("unexpected reply to chat_history: {}", response_name(&other)))
            }
            Err(e) if e.code == ErrorCode::RateLimited => {
                // Ask again shortly; history is never skipped.
                tracing::debug!("history page rate-limited; retrying");
                self.paused_until =
                    Some(now + e.retry_after_ms.map_or(DEFAULT_RETRY_AFTER, Duration::from_millis));
                self.request_history_page();
            }
            Err(e) => {
                self.emit(ClientEvent::Error { code: e.code.as_str().into(), message: e.message });
                self.finish_sync(now);
            }
        }
    }

    fn finish_sync(&mut self, now: Instant) {
        let Some(sync) = self.sync.take() else { return };
        if let Some(v) = &mut self.view {
            v.synced = true;
            let (chat_seq, notes_seq) = (v.chat_seq, v.notes_seq);
            self.emit(ClientEvent::ChatSynced { chat_seq, notes_seq, fetched: sync.fetched });
        }
        self.pump_outbox(now);
    }

    fn on_chat_message(&mut self, m: ChatMessage, accepted_own: bool) {
        let Some(view) = &mut self.view else { return };
        if m.meeting_id != view.meeting.id {
            return;
        }
        if m.staff_only {
            view.notes_seq = view.notes_seq.max(m.seq);
        } else {
            view.chat_seq = view.chat_seq.max(m.seq);
        }
        // An event carrying one of our in-flight messages acknowledges it too.
        let own_pos = self.outbox.iter().position(|i| i.id == m.client_msg_id);
        let own = accepted_own || own_pos.is_some() || m.sender_id == view.me;
        if let Some(pos) = own_pos {
            self.outbox.remove(pos);
            self.out.push_back(Output::Persist(Persist::OutboxAccepted(m.clone())));
            self.emit(ClientEvent::ChatStatus {
                client_msg_id: m.client_msg_id,
                status: OutboxState::Sent,
                pending: None,
                seq: Some(m.seq),
                error: None,
                retry_in_ms: None,
            });
        } else if accepted_own {
            self.out.push_back(Output::Persist(Persist::OutboxAccepted(m.clone())));
        } else {
            self.out.push_back(Output::Persist(Persist::Chat(m.clone())));
        }
        if self.seen.insert((m.staff_only, m.seq)) {
            self.emit(ClientEvent::Chat { message: m, own });
        }
    }

    fn on_chat_reply(&mut self, id: Uuid, result: Result<Response, ErrorBody>, now: Instant) {
        match result {
            Ok(Response::ChatAccepted { message }) => {
                if message.client_msg_id != id {
                    self.protocol_error("chat_accepted for another message id");
                    return;
                }
                self.on_chat_message(message, true);
            }
            Ok(other) => {
                self.protocol_error(&format!("unexpected reply to send_chat: {}", response_name(&other)))
            }
            Err(e) => {
                let Some(pos) = self.outbox.iter().position(|i| i.id == id) else { return };
                let retry = match e.code {
                    ErrorCode::RateLimited => {
                        Some(e.retry_after_ms.map_or(DEFAULT_RETRY_AFTER, Duration::from_millis))
                    }
                    // Transient relay states: keep the message and try again later.
                    ErrorCode::Internal | ErrorCode::ServerBusy | ErrorCode::StorageUnavailable => {
                        Some(e.retry_after_ms.map_or(DEFAULT_RETRY_AFTER, Duration::from_millis))
                    }
                    _ => None,
                };
                match (retry, self.outbox.get_mut(pos)) {
                    (Some(delay), Some(item)) => {
                        item.in_flight = false;
                        item.attempts += 1;
                        let attempts = item.attempts;
                        let until = now + delay;
                        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                        self.out.push_back(Output::Persist(Persist::OutboxRetry {
                            client_msg_id: id,
                            attempts,
                            retry_after_ms: delay.as_millis() as u64,
                            error: e.code.as_str().into(),
                        }));
                        self.emit(ClientEvent::ChatStatus {
                            client_msg_id: id,
                            status: OutboxState::Sending,
                            pending: None,
                            seq: None,
                            error: Some(e.code.as_str().into()),
                            retry_in_ms: Some(delay.as_millis() as u64),
                        });
                    }
                    _ => {
                        let attempts = self.outbox.remove(pos).map_or(1, |i| i.attempts + 1);
                        self.out.push_back(Output::Persist(Persist::OutboxFailed {
                            client_msg_id: id,
                            attempts,
                            error: e.code.as_str().into(),
                        }));
                        self.emit(ClientEvent::ChatStatus {
                            client_msg_id: id,
                            status: OutboxState::Failed,
                            pending: None,
                            seq: None,
                            error: Some(e.code.as_str().into()),
                            retry_in_ms: None,
                        });
                    }
                }
            }
        }
        self.pump_outbox(now);
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Chat { message } => self.on_chat_message(message, false),
            Event::Typing(e) => self.emit(ClientEvent::Typing(e)),
            Event::ParticipantJoined(e) => {
                if let Some(v) = &mut self.view {
                    v.participants.retain(|p| p.id != e.participant.id);
                    v.participants.push(e.participant.clone());
                }
                self.emit(ClientEvent::ParticipantJoined(e));
            }
            Event::ParticipantLeft(e) => {
                if let Some(v) = &mut self.view {
                    v.participants.retain(|p| p.id != e.participant_id);
                }
                self.emit(ClientEvent::ParticipantLeft(e));
            }
            Event::MediaChanged(e) => {
                if let Some(p) = self.participant_mut(e.participant_id) {
                    p.media = e.media;
                    p.audio_locked = e.audio_locked;
                }
                self.emit(ClientEvent::MediaChanged(e));
            }
            Event::RoleChanged { participant_id, role } => {
                let mut you = false;
                if let Some(v) = &mut self.view {
                    if v.me == participant_id {
                        v.role = role;
                        you = true;
                        let meeting_id = v.meeting.id;
                        self.out.push_back(Output::Persist(Persist::Role { meeting_id, role }));
                    }
                }
                if let Some(p) = self.participant_mut(participant_id) {
                    p.role = role;
                }
                self.emit(ClientEvent::RoleChanged { participant_id, role, you });
            }
            Event::ConnectionChanged(e) => {
                if let Some(p) = self.participant_mut(e.participant_id) {
                    p.connected = e.connected;
                }
                self.emit(ClientEvent::ParticipantConnection(e));
            }
            Event::WaitingRoom(e) => {
                if let Some(v) = &mut self.view {
                    v.waiting = e.waiting.clone();
                }
                self.emit(ClientEvent::WaitingRoom(e));
            }
            Event::Admitted(state) => {
                if self.presence == Presence::InMeeting {
                    tracing::debug!("admitted while already in the meeting; ignored");
                    return;
                }
                self.enter(*state, false, true, now);
            }
            Event::Denied => self.terminal(ClientEvent::Denied, now),
            Event::Removed => self.terminal(ClientEvent::Removed, now),
            Event::MutedBy(e) => {
                if let Some(v) = &mut self.view {
                    let me = v.me;
                    if let Some(p) = v.participants.iter_mut().find(|p| p.id == me) {
                        p.media.audio = false;
                    }
                }
                self.emit(ClientEvent::Muted(e));
            }
            Event::MeetingUpdated(e) => {
                let meeting = &e.meeting;
                if let Some(v) = &mut self.view {
                    if v.meeting.id == meeting.id {
                        let became_active = meeting.kind == MeetingKind::Consultation
                            && meeting.status == MeetingStatus::Active
                            && v.meeting.status != MeetingStatus::Active;
                        v.meeting = meeting.clone();
                        if became_active && v.role == Role::Host {
                            self.out.push_back(Output::Persist(Persist::ConsultationStarted {
                                meeting_id: meeting.id,
                                title: meeting.title.clone(),
                                patient_reference: meeting.patient_reference.clone(),
                                started_at: meeting.started_at,
                            }));
                        }
                    }
                }
                self.out.push_back(Output::Persist(Persist::Meeting {
                    info: Box::new(meeting.clone()),
                    access_code: None,
                    role: None,
                }));
                self.emit(ClientEvent::MeetingUpdated(Box::new(e)));
            }
            Event::MeetingEnded(e) => {
                if let Some(v) = &mut self.view {
                    v.meeting.status = e.status;
                    let info = v.meeting.clone();
                    self.out.push_back(Output::Persist(Persist::Meeting {
                        info: Box::new(info),
                        access_code: None,
                        role: None,
                    }));
                }
                self.terminal(ClientEvent::MeetingEnded(e), now);
            }
            Event::TrackPublished(e) => {
                if let Some(v) = &mut self.view {
                    v.tracks.retain(|t| t.track_id != e.track.track_id);
                    v.tracks.push(e.track.clone());
                }
                self.emit(ClientEvent::TrackPublished(e));
            }
            Event::TrackUnpublished(e) => {
                if let Some(v) = &mut self.view {
                    v.tracks.retain(|t| t.track_id != e.track_id);
                }
                self.emit(ClientEvent::TrackUnpublished(e));
            }
            Event::KeyframeRequest(e) => self.emit(ClientEvent::KeyframeRequest(e)),
            Event::RecordingChanged(e) => {
                if let Some(v) = &mut self.view {
                    v.recording = e.recording;
                }
                self.emit(ClientEvent::RecordingChanged(e));
            }
        }
    }

    /// Denied, removed, ended: the relay closes the connection; do not come back.
    fn terminal(&mut self, event: ClientEvent, now: Instant) {
        if let Some(call) = self.join_call.take() {
            let body = match &event {
                ClientEvent::Denied => ErrorBody::new(ErrorCode::Denied, "the host denied entry"),
                ClientEvent::MeetingEnded(_) => ErrorBody::new(ErrorCode::MeetingEnded, "the meeting ended"),
                _ => ErrorBody::new(ErrorCode::Forbidden, "removed from the meeting"),
            };
            self.complete(call, Err(CallError::Relay(body)));
        }
        self.exit_meeting(event, now);
        self.close();
    }

    /// Forgets the meeting (left, denied, removed, ended). Unsent messages stay
    /// in the store's outbox (state sending) for a later join.
    fn exit_meeting(&mut self, event: ClientEvent, _now: Instant) {
        let meeting_id = self.place.take().or(self.view.as_ref().map(|v| v.meeting.id));
        if let Some(meeting_id) = meeting_id {
            self.out.push_back(Output::Persist(Persist::ResumeToken {
                meeting_id,
                participant_id: None,
                token: None,
            }));
        }
        self.presence = Presence::Outside;
        self.join = None;
        self.resume_token = None;
        self.sync = None;
        self.outbox.clear();
        self.paused_until = None;
        if let Some(v) = &mut self.view {
            v.synced = false;
        }
        self.emit(event);
    }

    // ---------------------------------------------------------------- helpers

    fn can_send_chat(&self) -> bool {
        self.link == Link::Ready
            && self.presence == Presence::InMeeting
            && self.sync.is_none()
            && self.view.as_ref().is_some_and(|v| v.synced)
    }

    fn pump_outbox(&mut self, now: Instant) {
        if !self.can_send_chat() {
            return;
        }
        if self.paused_until.is_some_and(|p| now < p) {
            return;
        }
        self.paused_until = None;
        let mut in_flight = self.outbox.iter().filter(|i| i.in_flight).count();
        let mut to_send = Vec::new();
        for item in self.outbox.iter_mut() {
            if in_flight >= CHAT_WINDOW {
                break;
            }
            if !item.in_flight {
                item.in_flight = true;
                in_flight += 1;
                to_send.push((item.id, item.text.clone(), item.staff_only, item.attachments.clone()));
            }
        }
        for (client_msg_id, text, staff_only, attachments) in to_send {
            self.transmit(
                Request::SendChat { client_msg_id, text, staff_only, attachments },
                Pending::Chat { client_msg_id },
            );
        }
    }

    fn participant_mut(&mut self, id: ParticipantId) -> Option<&mut ParticipantInfo> {
        self.view.as_mut().and_then(|v| v.participants.iter_mut().find(|p| p.id == id))
    }

    fn normalized_code(&self) -> Option<String> {
        self.join.as_ref().and_then(|j| normalize_code(&j.access_code))
    }

    fn send_call(&mut self, call: CallId, request: Request) {
        self.transmit(request, Pending::Call { call });
    }

    fn transmit(&mut self, request: Request, pending: Pending) {
        let id = self.next_request;
        self.next_request += 1;
        self.pending.insert(id, pending);
        self.out.push_back(Output::Transmit(ClientMessage { id, request }));
    }

    fn new_call(&mut self) -> CallId {
        let c = self.next_call;
        self.next_call += 1;
        c
    }

    fn complete(&mut self, call: CallId, result: Result<Response, CallError>) {
        self.out.push_back(Output::Completed { call, result });
    }

    fn fail_queued(&mut self, err: CallError) {
        while let Some((call, _)) = self.queued.pop_front() {
            self.complete(call, Err(err.clone()));
        }
    }

    fn emit(&mut self, event: ClientEvent) {
        self.out.push_back(Output::Event(event));
    }

    fn protocol_error(&mut self, what: &str) {
        tracing::warn!("relay protocol violation: {what}");
        self.emit(ClientEvent::Error { code: "protocol".into(), message: what.to_string() });
    }
}

fn response_name(r: &Response) -> &'static str {
    match r {
        Response::Hello { .. } => "hello",
        Response::Enrolled { .. } => "enrolled",
        Response::MeetingCreated { .. } => "meeting_created",
        Response::Meetings { .. } => "meetings",
        Response::Joined(_) => "joined",
        Response::Waiting { .. } => "waiting",
        Response::ChatAccepted { .. } => "chat_accepted",
        Response::ChatHistory { .. } => "chat_history",
        Response::ConsultationEnded { .. } => "consultation_ended",
        Response::Pong { .. } => "pong",
        Response::Ok => "ok",
        Response::Published { .. } => "published",
        Response::Subscribed { .. } => "subscribed",
        Response::Rekeyed { .. } => "rekeyed",
        Response::Consultation { .. } => "consultation",
        Response::PastMeetings { .. } => "past_meetings",
        Response::UploadReady { .. } => "upload_ready",
        Response::DownloadReady { .. } => "download_ready",
    }
}

/// The stored form of an access code (`ABCDEFGH`); `None` for anything else (an invite secret).
fn normalize_code(code: &str) -> Option<String> {
    clinicmeet_protocol::AccessCode::parse(code).ok().map(|c| c.normalized().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_protocol::{
        MediaChanged, MeetingEnded, MeetingSettings, MutedBy, ParticipantConnection, ParticipantJoined,
        ParticipantLeft, ServerMessage as S, WaitingRoom,
    };

    struct H {
        core: Core,
        now: Instant,
        sent: Vec<ClientMessage>,
        events: Vec<ClientEvent>,
        persisted: Vec<Persist>,
        completed: Vec<(CallId, Result<Response, CallError>)>,
        connects: usize,
        disconnects: usize,
        loads: Vec<MeetingId>,
        order: Vec<&'static str>,
    }

    fn meeting(id: MeetingId) -> MeetingInfo {
        MeetingInfo {
            id,
            title: "Ward round".into(),
            description: None,
            kind: MeetingKind::Video,
            status: MeetingStatus::Active,
            host_name: "Dr A".into(),
            locked: false,
            settings: MeetingSettings::default(),
            patient_reference: None,
            schedule: None,
            created_at: 1,
            started_at: None,
            ended_at: None,
        }
    }

    fn person(id: ParticipantId, role: Role) -> ParticipantInfo {
        ParticipantInfo {
            id,
            display_name: "P".into(),
            role,
            verified_staff: role != Role::Guest,
            media: MediaState::default(),
            audio_locked: false,
            joined_at: 1,
            connected: true,
        }
    }

    fn join_state(m: MeetingId, me: ParticipantId, chat_seq: u64) -> JoinState {
        JoinState {
            meeting: meeting(m),
            you: person(me, Role::Host),
            participants: vec![person(me, Role::Host)],
            waiting: vec![],
            resume_token: format!("token-{me}"),
            chat_seq,
            notes_seq: 0,
            tracks: Vec::new(),
            recording: None,
        }
    }

    fn chat(m: MeetingId, seq: u64, staff_only: bool) -> ChatMessage {
        ChatMessage {
            meeting_id: m,
            seq,
            client_msg_id: Uuid::from_u128(seq as u128 + if staff_only { 1 << 64 } else { 0 }),
            sender_id: Uuid::from_u128(999),
            sender_name: "Other".into(),
            sender_verified: false,
            text: format!("m{seq}"),
            staff_only,
            sent_at: seq as i64,
            system: None,
            attachments: Vec::new(),
        }
    }

    impl H {
        fn new() -> H {
            let cfg = Config { auto_reconnect: true, ..Config::default() };
            let core = Core::with_backoff(cfg, Backoff::seeded(backoff::Config::default(), 3));
            H {
                core,
                now: Instant::now(),
                sent: vec![],
                events: vec![],
                persisted: vec![],
                completed: vec![],
                connects: 0,
                disconnects: 0,
                loads: vec![],
                order: vec![],
            }
        }

        fn drain(&mut self) {
            while let Some(o) = self.core.poll_output() {
                match o {
                    Output::Connect => {
                        self.connects += 1;
                        self.order.push("connect")
                    }
                    Output::Disconnect => {
                        self.disconnects += 1;
                        self.order.push("disconnect")
                    }
                    Output::Transmit(m) => {
                        self.sent.push(m);
                        self.order.push("transmit")
                    }
                    Output::Event(e) => {
                        self.events.push(e);
                        self.order.push("event")
                    }
                    Output::Persist(p) => {
                        self.persisted.push(p);
                        self.order.push("persist")
                    }
                    Output::LoadLocal { meeting_id } => {
                        self.loads.push(meeting_id);
                        self.order.push("load")
                    }
                    Output::Completed { call, result } => {
                        self.completed.push((call, result));
                        self.order.push("completed")
                    }
                }
            }
        }

        fn clear(&mut self) {
            self.sent.clear();
            self.events.clear();
            self.persisted.clear();
            self.completed.clear();
            self.loads.clear();
            self.order.clear();
        }

        fn last(&self) -> &ClientMessage {
            self.sent.last().expect("something sent")
        }

        fn reply(&mut self, id: RequestId, response: Response) {
            self.core.handle_message(S::Reply { id, response }, self.now);
            self.drain();
        }

        fn error(&mut self, id: RequestId, e: ErrorBody) {
            self.core.handle_message(S::Error { id: Some(id), error: e }, self.now);
            self.drain();
        }

        fn event(&mut self, event: Event) {
            self.core.handle_message(S::Event { event }, self.now);
            self.drain();
        }

        /// Connected and greeted.
        fn ready(&mut self) {
            self.core.start();
            self.core.on_connected(self.now);
            self.drain();
            let hello = self.last().id;
            assert!(matches!(self.last().request, Request::Hello { .. }));
            self.reply(hello, Response::Hello { version: 1, server: "t".into(), staff: None });
        }

        /// The link drops and comes back after the backoff delay; the relay greets again.
        fn reconnect(&mut self) {
            self.core.on_disconnected(self.now, "lost");
            let at = self.core.poll_timeout().unwrap();
            self.core.handle_timeout(at);
            self.core.on_connected(at);
            self.drain();
            let hello = self.last().id;
            self.reply(hello, Response::Hello { version: 1, server: "t".into(), staff: None });
        }

        /// Joined meeting `m` as `me`, history synced (nothing local).
        fn joined(&mut self, m: MeetingId, me: ParticipantId) {
            self.ready();
            self.core.join("ABCD-EFGH".into(), "Ann".into(), MediaState::default(), None, self.now);
            self.drain();
            let id = self.last().id;
            self.reply(id, Response::Joined(Box::new(join_state(m, me, 0))));
            self.core.local_loaded(m, Watermarks::default(), vec![], self.now);
            self.drain();
            let id = self.last().id;
            self.reply(id, Response::ChatHistory { messages: vec![], more: false });
            assert!(self.core.meeting().unwrap().synced);
            self.clear();
        }

        fn chat_events(&self) -> Vec<u64> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    ClientEvent::Chat { message, .. } => Some(message.seq),
                    _ => None,
                })
                .collect()
        }

        fn sent_chat_ids(&self) -> Vec<Uuid> {
            self.sent
                .iter()
                .filter_map(|m| match &m.request {
                    Request::SendChat { client_msg_id, .. } => Some(*client_msg_id),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn join_resyncs_history_in_pages_then_flushes_stored_outbox() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.ready();
        assert!(h
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Connection { state: ConnectionState::Connected, .. })));
        let call = h.core.join("abcd efgh".into(), "Ann".into(), MediaState::default(), None, h.now);
        h.drain();
        assert!(matches!(&h.last().request, Request::Join { access_code, .. } if access_code == "abcd efgh"));
        let id = h.last().id;
        h.reply(id, Response::Joined(Box::new(join_state(m, me, 5))));
        assert!(h.completed.iter().any(|(c, r)| *c == call && matches!(r, Ok(Response::Joined(_)))));
        assert!(matches!(h.events.last(), Some(ClientEvent::Joined(e)) if !e.resumed));
        assert_eq!(h.loads, vec![m]);
        assert!(h.persisted.iter().any(
            |p| matches!(p, Persist::Meeting { access_code: Some(c), role: Some(Role::Host), .. } if c == "ABCDEFGH")
        ));

        // A previous run left seq 1..2 and one unsent message behind.
        let leftover = OutboxEntry {
            client_msg_id: Uuid::from_u128(77),
            meeting_id: m,
            text: "from last run".into(),
            staff_only: false,
            state: OutboxState::Sending,
            attempts: 1,
            next_retry_at: 0,
            created_at: 0,
            last_error: None,
            attachments: Vec::new(),
        };
        h.clear();
        h.core.local_loaded(m, Watermarks { chat: 2, notes: 0 }, vec![leftover], h.now);
        h.drain();
        assert_eq!(h.sent.len(), 1, "only the history request before sync");
        let Request::ChatHistory { since_seq: 2, notes_since_seq: 0, limit, .. } = h.last().request else {
            panic!("{:?}", h.last())
        };
        assert_eq!(limit, HISTORY_PAGE);
        let id = h.last().id;
        h.reply(
            id,
            Response::ChatHistory { messages: vec![chat(m, 3, false), chat(m, 4, false)], more: true },
        );
        let Request::ChatHistory { since_seq: 4, .. } = h.last().request else { panic!("{:?}", h.last()) };
        let id = h.last().id;
        h.reply(id, Response::ChatHistory { messages: vec![chat(m, 5, false)], more: false });
        assert_eq!(h.chat_events(), vec![3, 4, 5]);
        assert!(h
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::ChatSynced { chat_seq: 5, fetched: 3, .. })));
        assert_eq!(h.sent_chat_ids(), vec![Uuid::from_u128(77)], "outbox flushed after sync");
    }

    #[test]
    fn optimistic_send_persists_and_announces_before_transmitting() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.joined(m, me);
        let id = Uuid::from_u128(10);
        h.core.send_chat(id, " hello ".into(), false, h.now, 1000).unwrap();
        h.drain();
        assert_eq!(h.order, ["persist", "event", "transmit"]);
        assert!(
            matches!(&h.persisted[0], Persist::OutboxInsert(e) if e.text == "hello" && e.state == OutboxState::Sending)
        );
        // The announcement carries what was queued (trimmed), so the application shows it at once.
        assert!(matches!(
            &h.events[0],
            ClientEvent::ChatStatus { status: OutboxState::Sending, pending: Some(p), .. }
                if p.text == "hello" && !p.staff_only && p.created_at == 1000
        ));
        let req = h.last().id;
        let mut accepted = chat(m, 1, false);
        accepted.client_msg_id = id;
        accepted.sender_id = me;
        h.clear();
        h.reply(req, Response::ChatAccepted { message: accepted.clone() });
        assert!(matches!(&h.persisted[0], Persist::OutboxAccepted(c) if c.client_msg_id == id));
        assert!(matches!(
            h.events[0],
            ClientEvent::ChatStatus { status: OutboxState::Sent, seq: Some(1), .. }
        ));
        assert!(matches!(&h.events[1], ClientEvent::Chat { own: true, .. }));
        // The relay's broadcast of the same message is not shown again.
        h.clear();
        h.event(Event::Chat { message: accepted });
        assert!(h.chat_events().is_empty());
        assert_eq!(h.core.outbox_len(), 0);
        // Invalid text is refused locally.
        assert!(matches!(
            h.core.send_chat(Uuid::from_u128(11), "  ".into(), false, h.now, 0),
            Err(CallError::Relay(_))
        ));
    }

    #[test]
    fn rate_limited_message_stays_and_is_retried_after_the_delay() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.joined(m, me);
        let id = Uuid::from_u128(10);
        h.core.send_chat(id, "hi".into(), false, h.now, 0).unwrap();
        h.drain();
        let req = h.last().id;
        h.clear();
        h.error(req, ErrorBody::new(ErrorCode::RateLimited, "slow down").retry_after(500));
        assert!(h.sent.is_empty());
        assert!(matches!(
            h.events[0],
            ClientEvent::ChatStatus { status: OutboxState::Sending, retry_in_ms: Some(500), .. }
        ));
        assert!(matches!(h.persisted[0], Persist::OutboxRetry { attempts: 1, retry_after_ms: 500, .. }));
        assert_eq!(h.core.poll_timeout(), Some(h.now + Duration::from_millis(500)));
        // New messages wait behind the pause too (order kept).
        h.core.send_chat(Uuid::from_u128(11), "second".into(), false, h.now, 0).unwrap();
        h.drain();
        assert!(h.sent_chat_ids().is_empty());
        h.core.handle_timeout(h.now + Duration::from_millis(499));
        h.drain();
        assert!(h.sent_chat_ids().is_empty());
        h.core.handle_timeout(h.now + Duration::from_millis(500));
        h.drain();
        assert_eq!(h.sent_chat_ids(), vec![id], "after a rate limit, the refused message goes first");
        assert_eq!(h.core.outbox_len(), 2);
        let req = h.last().id;
        let mut acc = chat(m, 1, false);
        acc.client_msg_id = id;
        h.reply(req, Response::ChatAccepted { message: acc });
        assert_eq!(h.sent_chat_ids(), vec![id, Uuid::from_u128(11)], "the next follows once it is accepted");
    }

    #[test]
    fn refused_message_fails_and_can_be_retried_by_hand() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.joined(m, me);
        let id = Uuid::from_u128(10);
        h.core.send_chat(id, "note".into(), true, h.now, 0).unwrap();
        h.drain();
        let req = h.last().id;
        h.clear();
        h.error(req, ErrorBody::new(ErrorCode::Forbidden, "guests cannot write notes"));
        assert!(
            matches!(&h.events[0], ClientEvent::ChatStatus { status: OutboxState::Failed, error: Some(e), .. } if e == "forbidden")
        );
        assert!(matches!(h.persisted[0], Persist::OutboxFailed { attempts: 1, .. }));
        assert_eq!(h.core.outbox_len(), 0);
        h.clear();
        let entry = OutboxEntry {
            client_msg_id: id,
            meeting_id: m,
            text: "note".into(),
            staff_only: true,
            state: OutboxState::Failed,
            attempts: 1,
            next_retry_at: 0,
            created_at: 0,
            last_error: None,
            attachments: Vec::new(),
        };
        h.core.retry_chat(entry, h.now).unwrap();
        h.drain();
        assert!(matches!(h.persisted[0], Persist::OutboxRequeued { .. }));
        assert_eq!(h.sent_chat_ids(), vec![id]);
    }

    #[test]
    fn messages_received_twice_are_announced_once() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.joined(m, me);
        h.event(Event::Chat { message: chat(m, 1, false) });
        h.event(Event::Chat { message: chat(m, 1, false) });
        h.event(Event::Chat { message: chat(m, 1, true) }); // a note: own sequence
        h.event(Event::Chat { message: chat(Uuid::from_u128(5), 2, false) }); // other meeting: ignored
        assert_eq!(h.chat_events(), vec![1, 1]);
        let v = h.core.meeting().unwrap();
        assert_eq!((v.chat_seq, v.notes_seq), (1, 1));
    }

    #[test]
    fn lost_connection_reconnects_with_backoff_resumes_resyncs_and_resends() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.joined(m, me);
        let id = Uuid::from_u128(10);
        h.core.send_chat(id, "in flight".into(), false, h.now, 0).unwrap();
        let host_call = h.core.call(Request::SetLocked { locked: true }, h.now);
        h.drain();
        h.event(Event::Chat { message: chat(m, 1, false) });
        h.clear();

        h.core.on_disconnected(h.now, "idle timeout");
        h.drain();
        let Some(ClientEvent::Connection {
            state: ConnectionState::Reconnecting,
            retry_in_ms: Some(ms),
            attempt: Some(1),
            ..
        }) = h.events.last().cloned()
        else {
            panic!("{:?}", h.events)
        };
        assert!(h.completed.iter().any(|(c, r)| *c == host_call && *r == Err(CallError::ConnectionLost)));
        assert_eq!(h.core.outbox_len(), 1, "unacknowledged message kept");
        let at = h.core.poll_timeout().unwrap();
        assert_eq!((at - h.now).as_millis() as u64, ms);
        h.core.handle_timeout(at - Duration::from_millis(1));
        h.drain();
        assert_eq!(h.connects, 1, "not before the delay");
        // First attempt fails: the next delay is longer (ceiling doubles).
        h.core.handle_timeout(at);
        h.drain();
        assert_eq!(h.connects, 2);
        h.core.on_connect_failed(at, "refused");
        h.drain();
        assert!(matches!(h.events.last(), Some(ClientEvent::Connection { attempt: Some(2), .. })));
        let at2 = h.core.poll_timeout().unwrap();
        h.core.handle_timeout(at2);
        h.core.on_connected(at2);
        h.drain();
        let hello = h.last().id;
        h.clear();
        h.reply(hello, Response::Hello { version: 1, server: "t".into(), staff: None });
        let Request::Resume { resume_token } = &h.last().request else { panic!("{:?}", h.last()) };
        assert_eq!(resume_token, &format!("token-{me}"));
        assert!(h.sent_chat_ids().is_empty(), "nothing sent before resume and resync");
        let rid = h.last().id;
        h.reply(rid, Response::Joined(Box::new(join_state(m, me, 3))));
        assert!(matches!(h.events.last(), Some(ClientEvent::Joined(e)) if e.resumed));
        h.core.local_loaded(m, Watermarks { chat: 1, notes: 0 }, vec![], h.now);
        h.drain();
        let Request::ChatHistory { since_seq: 1, .. } = h.last().request else { panic!() };
        let hid = h.last().id;
        h.reply(
            hid,
            Response::ChatHistory { messages: vec![chat(m, 1, false), chat(m, 2, false)], more: false },
        );
        assert_eq!(h.chat_events(), vec![2], "seq 1 was already shown");
        assert_eq!(h.sent_chat_ids(), vec![id], "same client id, so the relay stores it once");
    }

    #[test]
    fn rekey_stores_the_new_code_and_secret_and_a_fresh_join_uses_the_new_code() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.joined(m, me);
        let call = h.core.call(Request::RekeyMeeting, h.now);
        h.drain();
        assert!(matches!(h.last().request, Request::RekeyMeeting));
        let id = h.last().id;
        let secret = "ABCDEFGHJKLMNPQRSTUVWXYZ23".to_string();
        h.reply(id, Response::Rekeyed { access_code: "WXYZ-2345".into(), invite_secret: secret.clone() });
        assert!(h.completed.iter().any(|(c, r)| *c == call && r.is_ok()));
        assert_eq!(
            h.persisted,
            vec![Persist::Codes {
                meeting_id: m,
                access_code: "WXYZ2345".into(),
                invite_secret: Some(secret)
            }]
        );
        // The connection drops and the place is gone: the fresh join carries the new code.
        h.reconnect();
        assert!(matches!(h.last().request, Request::Resume { .. }));
        let id = h.last().id;
        h.error(id, ErrorBody::new(ErrorCode::ResumeFailed, "expired"));
        assert!(
            matches!(&h.last().request, Request::Join { access_code, .. } if access_code == "WXYZ-2345"),
            "{:?}",
            h.last()
        );
    }

    #[test]
    fn failed_resume_falls_back_to_a_fresh_join() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.ready();
        let call =
            h.core.join("ABCDEFGH".into(), "Ann".into(), MediaState::default(), Some("old".into()), h.now);
        h.drain();
        assert!(matches!(&h.last().request, Request::Resume { resume_token } if resume_token == "old"));
        let id = h.last().id;
        h.error(id, ErrorBody::new(ErrorCode::ResumeFailed, "expired"));
        assert!(matches!(h.last().request, Request::Join { .. }));
        let id = h.last().id;
        h.reply(id, Response::Joined(Box::new(join_state(m, me, 0))));
        assert!(h.completed.iter().any(|(c, r)| *c == call && r.is_ok()));
    }

    #[test]
    fn waiting_then_admitted_then_denied_is_terminal() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.ready();
        h.core.join("ABCDEFGH".into(), "Pat".into(), MediaState::default(), None, h.now);
        h.drain();
        let id = h.last().id;
        h.reply(id, Response::Waiting { participant_id: me, resume_token: "w".into(), meeting: meeting(m) });
        assert_eq!(h.core.presence(), Presence::Waiting);
        assert!(matches!(h.events.last(), Some(ClientEvent::Waiting { .. })));
        // A lost connection while waiting resumes the waiting place.
        h.reconnect();
        assert!(matches!(&h.last().request, Request::Resume { resume_token } if resume_token == "w"));
        let id = h.last().id;
        h.reply(id, Response::Waiting { participant_id: me, resume_token: "w".into(), meeting: meeting(m) });
        h.event(Event::Admitted(Box::new(join_state(m, me, 0))));
        assert!(matches!(h.events.last(), Some(ClientEvent::Admitted(_))));
        assert_eq!(h.core.presence(), Presence::InMeeting);
        assert_eq!(h.loads, vec![m]);

        let mut h = H::new();
        h.ready();
        let call = h.core.join("ABCDEFGH".into(), "Pat".into(), MediaState::default(), None, h.now);
        h.drain();
        let id = h.last().id;
        h.reply(id, Response::Waiting { participant_id: me, resume_token: "w".into(), meeting: meeting(m) });
        h.clear();
        h.event(Event::Denied);
        assert!(h.events.contains(&ClientEvent::Denied));
        assert_eq!(h.disconnects, 1);
        assert!(h.persisted.iter().any(|p| matches!(p, Persist::ResumeToken { token: None, .. })));
        assert_eq!(h.core.link(), Link::Closed);
        // The relay closing the connection afterwards does not trigger a reconnect.
        h.core.on_disconnected(h.now, "closed by relay");
        h.drain();
        assert_eq!(h.core.poll_timeout(), None);
        assert_eq!(h.connects, 1);
        let _ = call;
    }

    #[test]
    fn participant_list_follows_events() {
        let mut h = H::new();
        let (m, me, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        h.joined(m, me);
        h.event(Event::ParticipantJoined(ParticipantJoined { participant: person(other, Role::Guest) }));
        h.event(Event::MediaChanged(MediaChanged {
            participant_id: other,
            media: MediaState { audio: false, video: true, screen: false },
            audio_locked: true,
        }));
        assert!(h.core.meeting().unwrap().participant(other).unwrap().audio_locked);
        h.event(Event::RoleChanged { participant_id: other, role: Role::Moderator });
        h.event(Event::ConnectionChanged(ParticipantConnection { participant_id: other, connected: false }));
        let v = h.core.meeting().unwrap();
        let p = v.participant(other).unwrap();
        assert!(p.media.video && p.role == Role::Moderator && !p.connected);
        h.event(Event::RoleChanged { participant_id: me, role: Role::Moderator });
        assert_eq!(h.core.meeting().unwrap().role, Role::Moderator);
        assert!(matches!(h.events.last(), Some(ClientEvent::RoleChanged { you: true, .. })));
        h.event(Event::MutedBy(MutedBy { by: other }));
        assert!(!h.core.meeting().unwrap().participant(me).unwrap().media.audio);
        h.event(Event::WaitingRoom(WaitingRoom {
            waiting: vec![WaitingInfo {
                participant_id: Uuid::from_u128(4),
                display_name: "W".into(),
                since: 1,
            }],
        }));
        assert_eq!(h.core.meeting().unwrap().waiting.len(), 1);
        h.event(Event::ParticipantLeft(ParticipantLeft {
            participant_id: other,
            reason: clinicmeet_protocol::LeaveReason::Removed,
        }));
        assert!(h.core.meeting().unwrap().participant(other).is_none());
        h.clear();
        h.event(Event::MeetingEnded(MeetingEnded { status: MeetingStatus::Ended }));
        assert!(
            matches!(h.events.last(), Some(ClientEvent::MeetingEnded(_)))
                || h.events.iter().any(|e| matches!(e, ClientEvent::MeetingEnded(_)))
        );
        assert_eq!(h.core.link(), Link::Closed);
    }

    #[test]
    fn calls_wait_for_the_link_and_chat_window_is_bounded() {
        let mut h = H::new();
        let call = h.core.call(Request::ListMeetings, h.now);
        h.drain();
        assert!(h.sent.is_empty());
        h.ready();
        let Some(list) = h.sent.iter().find(|m| m.request == Request::ListMeetings) else { panic!() };
        let id = list.id;
        h.reply(id, Response::Meetings { meetings: vec![] });
        assert!(h.completed.iter().any(|(c, r)| *c == call && r.is_ok()));

        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.joined(m, me);
        for i in 0..(CHAT_WINDOW as u128 + 4) {
            h.core.send_chat(Uuid::from_u128(100 + i), format!("m{i}"), false, h.now, 0).unwrap();
        }
        h.drain();
        assert_eq!(h.sent_chat_ids().len(), CHAT_WINDOW);
        let first = h.sent[0].id;
        let mut acc = chat(m, 1, false);
        acc.client_msg_id = Uuid::from_u128(100);
        h.reply(first, Response::ChatAccepted { message: acc });
        assert_eq!(h.sent_chat_ids().len(), CHAT_WINDOW + 1);
    }

    #[test]
    fn unexpected_or_stray_replies_do_not_break_the_session() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.joined(m, me);
        h.reply(9999, Response::Ok);
        h.error(9998, ErrorBody::new(ErrorCode::Internal, "x"));
        h.core.handle_message(
            S::Error { id: None, error: ErrorBody::new(ErrorCode::Malformed, "bad frame") },
            h.now,
        );
        h.drain();
        assert!(matches!(h.events.last(), Some(ClientEvent::Error { code, .. }) if code == "malformed"));
        // A chat reply of the wrong type is reported, the message stays unsent-acknowledged.
        h.core.send_chat(Uuid::from_u128(10), "x".into(), false, h.now, 0).unwrap();
        h.drain();
        let id = h.last().id;
        h.reply(id, Response::Ok);
        assert!(matches!(h.events.last(), Some(ClientEvent::Error { code, .. }) if code == "protocol"));
        assert_eq!(h.core.link(), Link::Ready);
    }

    #[test]
    fn leave_clears_the_place_and_end_consultation_records_notes() {
        let mut h = H::new();
        let (m, me) = (Uuid::from_u128(1), Uuid::from_u128(2));
        h.joined(m, me);
        let call = h.core.end_consultation(Some("stable".into()), h.now);
        h.drain();
        let id = h.last().id;
        h.reply(id, Response::ConsultationEnded { started_at: 1000, ended_at: 61_000, duration_secs: 60 });
        assert!(h.persisted.iter().any(|p| matches!(p, Persist::ConsultationEnded(r)
            if r.duration_secs == Some(60) && r.notes.as_deref() == Some("stable"))));
        assert!(h.completed.iter().any(|(c, r)| *c == call && r.is_ok()));
        h.clear();
        h.core.leave(h.now);
        h.drain();
        assert_eq!(h.last().request, Request::Leave);
        assert!(h.events.contains(&ClientEvent::Left));
        assert!(h.persisted.iter().any(|p| matches!(p, Persist::ResumeToken { token: None, .. })));
        assert_eq!(h.core.presence(), Presence::Outside);
    }
}
