//! The tokio driver over quinn and the [`Session`] handle.
//!
//! [`Session::connect`] makes the first connection (so a wrong pin or an
//! unreachable relay fails right there) and returns a [`Connected`]: the
//! cloneable [`Session`] handle, the stream of [`ClientEvent`]s, and the
//! [`Driver`] whose [`Driver::run`] future does all the I/O. Nothing is spawned
//! behind the caller: spawn (or await) `driver.run()` yourself.
//!
//! The driver owns the QUIC connection, the local [`Store`] and the sans-IO
//! [`Core`]; it feeds the core with frames, calls and timers, and carries out
//! its outputs (transmit, persist, events, reconnect). It also reads the
//! connection's media datagrams for the [`MediaLink`] ([`Session::media_link`]),
//! through which the media engine sends and receives them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clinicmeet_protocol::frame::{self, FrameDecoder};
use clinicmeet_protocol::{
    ChatMessage, ConsultationRecord, MediaState, MeetingId, MeetingInfo, MeetingSpec, MeetingSummary,
    ParticipantId, PastFilter, PastMeeting, Request, Response, ServerMessage, StaffIdentity, WaitingInfo,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::backoff;
use crate::error::{ClientError, Result};
use crate::event::ClientEvent;
use crate::media_link::{self, IncomingSlot, MediaLink};
use crate::state::{CallError, CallId, Core, MeetingView, Output, Persist};
use crate::store::{OutboxState, Store};
use crate::tls::{self, Pin, Trust};

/// QUIC keep-alive interval (a dropped peer is noticed within the idle timeout).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// QUIC idle timeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// quinn's datagram send queue (oldest dropped when full).
const DATAGRAM_SEND_BUFFER: usize = 512 * 1024;
/// Packets acknowledged after one before quinn declares it lost (reordering tolerance).
const PACKET_REORDER_THRESHOLD: u32 = 16;
/// A packet unacknowledged for this many RTTs while later ones are acknowledged is lost
/// (quinn's default 9/8 reads 10 ms of jitter on an 80 ms path as heavy loss).
const REORDER_TIME_THRESHOLD: f32 = 2.0;
/// quinn's datagram receive queue.
const DATAGRAM_RECEIVE_BUFFER: usize = 2 * 1024 * 1024;

/// How to reach and trust the relay, and where to keep local data.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `host:port` of the relay's QUIC endpoint. Also the key of the relay's record in the store.
    pub relay: String,
    /// `sha256/…` pin; when `None`, the pin stored for this relay is used, else web PKI roots.
    pub pin: Option<String>,
    /// Local IP address to bind (port chosen by the OS).
    pub bind: Option<IpAddr>,
    /// The user's data directory holding the SQLite store.
    pub data_dir: PathBuf,
    /// Sent in hello for the relay's audit log.
    pub client_name: String,
    pub auto_reconnect: bool,
    pub backoff: backoff::Config,
    /// QUIC path-MTU discovery (on by default; media packets are sized from the
    /// connection's current maximum datagram size either way).
    pub mtu_discovery: bool,
}

impl SessionConfig {
    pub fn new(relay: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        SessionConfig {
            relay: relay.into(),
            pin: None,
            bind: None,
            data_dir: data_dir.into(),
            client_name: format!("clinicmeet-client/{}", env!("CARGO_PKG_VERSION")),
            auto_reconnect: true,
            backoff: backoff::Config::default(),
            mtu_discovery: true,
        }
    }
}

/// The platform's default data directory for ClinicMeet (e.g. `~/.local/share/clinicmeet`).
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("clinicmeet")
}

/// The outcome of a join.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinOutcome {
    Joined(Box<clinicmeet_protocol::JoinState>),
    Waiting { participant_id: ParticipantId, meeting: Box<MeetingInfo> },
}

/// Times of an ended consultation, from the relay's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsultationTimes {
    pub started_at: i64,
    pub ended_at: i64,
    pub duration_secs: i64,
}

type Reply<T> = oneshot::Sender<Result<T>>;

enum Command {
    Call(Request, Reply<Response>),
    Join { code: String, name: String, media: MediaState, reply: Reply<Response> },
    EndConsultation { notes: Option<String>, reply: Reply<Response> },
    SendChat { text: String, staff_only: bool, attachments: Vec<Uuid>, reply: Reply<Uuid> },
    RetryChat { id: Uuid, reply: Reply<()> },
    Typing(bool),
    Snapshot(oneshot::Sender<Option<MeetingView>>),
    Flush(oneshot::Sender<()>),
    Close,
}

/// A handle on the session; cheap to clone. Calls wait for the relay's reply.
#[derive(Clone, Debug)]
pub struct Session {
    tx: mpsc::UnboundedSender<Command>,
    pub(crate) media: MediaLink,
    /// The user's data directory (the local store; kept attachments beside it).
    pub(crate) data_dir: PathBuf,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// What [`Session::connect`] returns.
pub struct Connected {
    pub session: Session,
    /// Every [`ClientEvent`], in order.
    pub events: mpsc::UnboundedReceiver<ClientEvent>,
    /// Run this future (spawn it) for the session to work.
    pub driver: Driver,
}

/// The I/O half of a session; see [`Driver::run`].
pub struct Driver {
    core: Core,
    store: Store,
    relay: String,
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    pin_slot: Option<Arc<Mutex<Option<String>>>>,
    expected_pin: Option<String>,
    link: Option<LinkIo>,
    cmds: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<ClientEvent>,
    calls: HashMap<CallId, Reply<Response>>,
    flush_waiters: Vec<oneshot::Sender<()>>,
    conn_tx: tokio::sync::watch::Sender<Option<quinn::Connection>>,
    /// Where the media datagrams read by [`media_link::pump`] go.
    incoming: Arc<IncomingSlot>,
}

struct LinkIo {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl Session {
    /// Connects to the relay (first attempt fails fast with a clear error) and
    /// returns the handle, the event stream and the driver. Spawns nothing.
    pub async fn connect(config: SessionConfig) -> Result<Connected> {
        let store = Store::open_dir(&config.data_dir)?;
        let record = store.relay(&config.relay)?;
        let pin_str = config.pin.clone().or_else(|| record.as_ref().and_then(|r| r.pin.clone()));
        let trust = match &pin_str {
            Some(p) => Trust::Pin(Pin::parse(p)?),
            None => Trust::WebPki { extra_roots: Vec::new() },
        };
        let (tls_cfg, pin_slot) = tls::client_config(&trust)?;
        let quic_tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls_cfg)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(quic_tls));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        // Media rides in datagrams: BBR paces to the bottleneck and, unlike the
        // default Cubic, does not collapse its window on random loss (5 % loss would
        // otherwise throttle the sender and quinn would drop queued datagrams).
        transport.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
        transport.datagram_send_buffer_size(DATAGRAM_SEND_BUFFER);
        transport.datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER));
        // Networks with jitter reorder packets: with the default threshold of 3 quinn
        // declares many reordered packets lost, which would read as heavy loss.
        transport.packet_threshold(PACKET_REORDER_THRESHOLD);
        transport.time_threshold(REORDER_TIME_THRESHOLD);
        if !config.mtu_discovery {
            transport.mtu_discovery_config(None);
        }
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(IDLE_TIMEOUT).map_err(|e| ClientError::Connect(e.to_string()))?,
        ));
        client_config.transport_config(Arc::new(transport));

        let remote = resolve(&config.relay, config.bind).await?;
        let bind_ip = config.bind.unwrap_or(match remote {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        let endpoint = quinn::Endpoint::client(SocketAddr::new(bind_ip, 0))?;

        let mut core = Core::new(crate::state::Config {
            client_name: config.client_name.clone(),
            device_credential: record.as_ref().and_then(|r| r.device_credential.clone()),
            backoff: config.backoff,
            auto_reconnect: config.auto_reconnect,
        });
        let (tx, cmds) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (conn_tx, conn_rx) = tokio::sync::watch::channel(None);
        let incoming = Arc::new(IncomingSlot::default());
        let mut driver = Driver {
            core: Core::new(crate::state::Config::default()),
            store,
            relay: config.relay.clone(),
            endpoint,
            client_config,
            pin_slot,
            expected_pin: pin_str.clone(),
            link: None,
            cmds,
            events: events_tx,
            calls: HashMap::new(),
            flush_waiters: Vec::new(),
            conn_tx,
            incoming: incoming.clone(),
        };
        let link = driver.open_link().await?;
        if let Some(p) = &config.pin {
            driver.store.save_relay_pin(&config.relay, p)?;
        }
        core.start();
        let _ = core.poll_output(); // the Connect we just carried out
        core.on_connected(Instant::now());
        driver.core = core;
        driver.conn_tx.send_replace(Some(link.conn.clone()));
        driver.link = Some(link);
        let media = MediaLink::new(conn_rx, incoming);
        Ok(Connected { session: Session { tx, media, data_dir: config.data_dir.clone() }, events, driver })
    }

    fn send(&self, cmd: Command) -> Result<()> {
        self.tx.send(cmd).map_err(|_| ClientError::Closed)
    }

    pub(crate) async fn call(&self, request: Request) -> Result<Response> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Call(request, reply))?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    async fn call_ok(&self, request: Request) -> Result<()> {
        self.call(request).await.map(|_| ())
    }

    /// Exchanges a one-time enrollment code for a device credential (stored locally).
    pub async fn enroll(&self, enrollment_code: &str, device_name: &str) -> Result<StaffIdentity> {
        match self
            .call(Request::Enroll {
                enrollment_code: enrollment_code.into(),
                device_name: device_name.into(),
            })
            .await?
        {
            Response::Enrolled { staff, .. } => Ok(staff),
            other => Err(unexpected(&other)),
        }
    }

    /// Staff: creates a meeting; returns it with its access code.
    pub async fn create_meeting(&self, spec: MeetingSpec) -> Result<(MeetingInfo, String)> {
        self.create_meeting_with_invite(spec).await.map(|(m, code, _)| (m, code))
    }

    /// Staff: create a meeting; (meeting, access code, invite secret if the relay issues one).
    pub async fn create_meeting_with_invite(
        &self,
        spec: MeetingSpec,
    ) -> Result<(MeetingInfo, String, Option<String>)> {
        match self.call(Request::CreateMeeting { spec }).await? {
            Response::MeetingCreated { meeting, access_code, invite_secret } => {
                Ok((meeting, access_code, invite_secret))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Host: a new access code and invite secret; the old ones stop working.
    pub async fn rekey_meeting(&self) -> Result<(String, String)> {
        match self.call(Request::RekeyMeeting).await? {
            Response::Rekeyed { access_code, invite_secret } => Ok((access_code, invite_secret)),
            other => Err(unexpected(&other)),
        }
    }

    /// Staff: active and scheduled meetings (the dashboard).
    pub async fn list_meetings(&self) -> Result<Vec<MeetingSummary>> {
        match self.call(Request::ListMeetings).await? {
            Response::Meetings { meetings } => Ok(meetings),
            other => Err(unexpected(&other)),
        }
    }

    /// Joins by access code (resuming a place kept from an earlier run when the
    /// store has one). Chat history since the last stored message is fetched and
    /// the stored outbox flushed afterwards.
    pub async fn join(
        &self,
        access_code: &str,
        display_name: &str,
        media: MediaState,
    ) -> Result<JoinOutcome> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Join { code: access_code.into(), name: display_name.into(), media, reply })?;
        match rx.await.map_err(|_| ClientError::Closed)?? {
            Response::Joined(state) => Ok(JoinOutcome::Joined(state)),
            Response::Waiting { participant_id, meeting, .. } => {
                Ok(JoinOutcome::Waiting { participant_id, meeting: Box::new(meeting) })
            }
            other => Err(unexpected(&other)),
        }
    }

    pub async fn leave(&self) -> Result<()> {
        self.call_ok(Request::Leave).await
    }

    pub async fn admit(&self, participant_id: ParticipantId) -> Result<()> {
        self.call_ok(Request::Admit { participant_id }).await
    }

    pub async fn deny(&self, participant_id: ParticipantId) -> Result<()> {
        self.call_ok(Request::Deny { participant_id }).await
    }

    pub async fn mute(&self, participant_id: ParticipantId) -> Result<()> {
        self.call_ok(Request::Mute { participant_id }).await
    }

    pub async fn allow_unmute(&self, participant_id: ParticipantId) -> Result<()> {
        self.call_ok(Request::AllowUnmute { participant_id }).await
    }

    /// Whether participants may unmute themselves after a moderator muted them.
    pub async fn set_self_unmute(&self, allowed: bool) -> Result<()> {
        self.call_ok(Request::SetSelfUnmute { allowed }).await
    }

    pub async fn remove(&self, participant_id: ParticipantId) -> Result<()> {
        self.call_ok(Request::Remove { participant_id }).await
    }

    pub async fn set_locked(&self, locked: bool) -> Result<()> {
        self.call_ok(Request::SetLocked { locked }).await
    }

    /// Host or moderator, where the meeting allows recording: announce a recording on
    /// this device (everyone is told). `MediaEngine::start_recording` calls it.
    pub async fn start_recording(&self) -> Result<()> {
        self.call_ok(Request::StartRecording).await
    }

    /// Host or moderator: the recording (this device's or another's) ended.
    pub async fn stop_recording(&self) -> Result<()> {
        self.call_ok(Request::StopRecording).await
    }

    pub async fn end_meeting(&self) -> Result<()> {
        self.call_ok(Request::EndMeeting).await
    }

    pub async fn promote(&self, participant_id: ParticipantId) -> Result<()> {
        self.call_ok(Request::Promote { participant_id }).await
    }

    pub async fn demote(&self, participant_id: ParticipantId) -> Result<()> {
        self.call_ok(Request::Demote { participant_id }).await
    }

    pub async fn start_consultation(&self) -> Result<()> {
        self.call_ok(Request::StartConsultation).await
    }

    /// Ends the consultation; `notes` are kept locally with the consultation record.
    pub async fn end_consultation(&self, notes: Option<String>) -> Result<ConsultationTimes> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::EndConsultation { notes, reply })?;
        match rx.await.map_err(|_| ClientError::Closed)?? {
            Response::ConsultationEnded { started_at, ended_at, duration_secs } => {
                Ok(ConsultationTimes { started_at, ended_at, duration_secs })
            }
            other => Err(unexpected(&other)),
        }
    }

    pub async fn update_media(&self, media: MediaState) -> Result<()> {
        self.call_ok(Request::UpdateMedia { media }).await
    }

    /// Sends a chat message (or a staff-only note) optimistically. Returns its
    /// client id once it is in the outbox; its progress comes as `chat_status` events.
    pub async fn send_chat(&self, text: &str, staff_only: bool) -> Result<Uuid> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SendChat { text: text.into(), staff_only, attachments: Vec::new(), reply })?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// [`Session::send_chat`] carrying attachments stored with [`Session::attach`]
    /// (their ids; the text may be empty). Goes through the outbox like any message.
    pub async fn send_chat_with_attachments(
        &self,
        text: &str,
        staff_only: bool,
        attachments: Vec<Uuid>,
    ) -> Result<Uuid> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SendChat { text: text.into(), staff_only, attachments, reply })?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Queues a failed message again.
    pub async fn retry_chat(&self, client_msg_id: Uuid) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::RetryChat { id: client_msg_id, reply })?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Typing indicator (fire and forget).
    pub fn typing(&self, typing: bool) -> Result<()> {
        self.send(Command::Typing(typing))
    }

    /// Staff: the relay's copy of a meeting's chat (also after it ended); stored locally too.
    pub async fn fetch_history(
        &self,
        meeting_id: MeetingId,
        since_seq: u64,
        notes_since_seq: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, bool)> {
        match self
            .call(Request::ChatHistory { meeting_id: Some(meeting_id), since_seq, notes_since_seq, limit })
            .await?
        {
            Response::ChatHistory { messages, more } => Ok((messages, more)),
            other => Err(unexpected(&other)),
        }
    }

    /// Staff who held a consultation, once it ended: write its notes on the
    /// relay (once; later changes are amendments). Returns the record.
    pub async fn save_consultation_notes(
        &self,
        meeting_id: MeetingId,
        notes: &str,
    ) -> Result<ConsultationRecord> {
        self.consultation_call(Request::SaveConsultationNotes { meeting_id, notes: notes.into() }).await
    }

    /// Staff who held a consultation: append an amendment to its notes. Returns the record.
    pub async fn amend_consultation(&self, meeting_id: MeetingId, text: &str) -> Result<ConsultationRecord> {
        self.consultation_call(Request::AmendConsultation { meeting_id, text: text.into() }).await
    }

    /// Staff who held a consultation: its record as the relay keeps it.
    pub async fn consultation(&self, meeting_id: MeetingId) -> Result<ConsultationRecord> {
        self.consultation_call(Request::GetConsultation { meeting_id }).await
    }

    async fn consultation_call(&self, request: Request) -> Result<ConsultationRecord> {
        match self.call(request).await? {
            Response::Consultation { record } => Ok(record),
            other => Err(unexpected(&other)),
        }
    }

    /// Staff: every active and scheduled meeting of the clinic (others' without
    /// patient reference and description).
    pub async fn list_clinic_meetings(&self) -> Result<Vec<MeetingSummary>> {
        match self.call(Request::ListClinicMeetings).await? {
            Response::Meetings { meetings } => Ok(meetings),
            other => Err(unexpected(&other)),
        }
    }

    /// Staff: join a clinic meeting by its id, without the code; anyone but its
    /// creator waits until a moderator admits them. Resumes and resyncs like `join`.
    pub async fn join_as_staff(
        &self,
        meeting_id: MeetingId,
        display_name: &str,
        media: MediaState,
    ) -> Result<JoinOutcome> {
        let request = Request::JoinAsStaff { meeting_id, display_name: display_name.into(), media };
        match self.call(request).await? {
            Response::Joined(state) => Ok(JoinOutcome::Joined(state)),
            Response::Waiting { participant_id, meeting, .. } => {
                Ok(JoinOutcome::Waiting { participant_id, meeting: Box::new(meeting) })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Its creator: cancel a meeting that has not started (people in it are told).
    pub async fn cancel_meeting(&self, meeting_id: MeetingId) -> Result<()> {
        self.call_ok(Request::CancelMeeting { meeting_id }).await
    }

    /// Staff: the relay's list of meetings that are over which they created or
    /// took part in; (rows newest first, more matched).
    pub async fn past_meetings(&self, filter: PastFilter) -> Result<(Vec<PastMeeting>, bool)> {
        match self.call(Request::ListPastMeetings { filter }).await? {
            Response::PastMeetings { meetings, more } => Ok((meetings, more)),
            other => Err(unexpected(&other)),
        }
    }

    /// The meeting as this client currently sees it.
    pub async fn snapshot(&self) -> Result<Option<MeetingView>> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Snapshot(reply))?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Waits until the outbox is empty (every own message acknowledged or failed).
    pub async fn flush(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Flush(reply))?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Publishes a media track; returns its id and the flow id to send its RTP on.
    pub async fn publish(&self, track: clinicmeet_protocol::TrackSpec) -> Result<(Uuid, u64)> {
        match self.call(Request::Publish { track }).await? {
            Response::Published { track_id, flow_id } => Ok((track_id, flow_id)),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn unpublish(&self, track_id: Uuid) -> Result<()> {
        self.call_ok(Request::Unpublish { track_id }).await
    }

    /// Subscribes to a remote track; returns the flow id its RTP arrives on.
    pub async fn subscribe(&self, track_id: Uuid, max_encoding: Option<u8>) -> Result<u64> {
        match self.call(Request::Subscribe { track_id, max_encoding }).await? {
            Response::Subscribed { flow_id, .. } => Ok(flow_id),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn unsubscribe(&self, track_id: Uuid) -> Result<()> {
        self.call_ok(Request::Unsubscribe { track_id }).await
    }

    /// The media datagram link over the session's connection (follows reconnects).
    pub fn media_link(&self) -> MediaLink {
        self.media.clone()
    }

    /// Closes the connection; the driver ends.
    pub fn close(&self) {
        let _ = self.tx.send(Command::Close);
    }
}

fn unexpected(r: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {r:?}"))
}

async fn resolve(relay: &str, bind: Option<IpAddr>) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host(relay).await.map_err(|_| ClientError::Resolve(relay.to_string()))?.collect();
    let pick =
        addrs.iter().find(|a| bind.is_none_or(|b| a.is_ipv4() == b.is_ipv4())).or(addrs.first()).copied();
    pick.ok_or_else(|| ClientError::Resolve(relay.to_string()))
}

fn call_error(e: CallError) -> ClientError {
    match e {
        CallError::Relay(b) => ClientError::Relay(b),
        CallError::ConnectionLost => ClientError::ConnectionLost("before the reply arrived".into()),
        CallError::InvalidState(s) => ClientError::InvalidState(s),
        CallError::Closed => ClientError::Closed,
    }
}

enum Wake {
    Cmd(Option<Command>),
    Read(std::result::Result<Option<usize>, quinn::ReadError>),
    Connected(Result<LinkIo>),
    Timer,
}

impl Driver {
    /// Runs the session until it is closed (by [`Session::close`], by dropping
    /// every `Session` handle, or by a terminal event: left for good, denied,
    /// removed, meeting ended).
    pub async fn run(self) -> Result<()> {
        let pump = media_link::pump(self.conn_tx.subscribe(), self.incoming.clone());
        tokio::pin!(pump);
        let drive = self.drive();
        tokio::pin!(drive);
        let mut pumping = true;
        loop {
            tokio::select! {
                r = &mut drive => return r,
                () = &mut pump, if pumping => pumping = false,
            }
        }
    }

    /// The session's control loop: commands, the control stream, reconnects, timers.
    async fn drive(mut self) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut connecting: Option<
            std::pin::Pin<Box<dyn std::future::Future<Output = Result<LinkIo>> + Send>>,
        > = None;
        let mut cmds_open = true;
        loop {
            // Carry out everything the core asked for.
            while let Some(out) = self.core.poll_output() {
                match out {
                    Output::Connect => {
                        if connecting.is_none() {
                            let endpoint = self.endpoint.clone();
                            let cfg = self.client_config.clone();
                            let relay = self.relay.clone();
                            connecting =
                                Some(Box::pin(async move { connect_link(endpoint, cfg, relay).await }));
                        }
                    }
                    Output::Disconnect => {
                        if let Some(link) = self.link.take() {
                            let _ = link.send_finish();
                            link.conn.close(0u32.into(), b"bye");
                        }
                        connecting = None;
                    }
                    Output::Transmit(msg) => self.transmit(&msg).await,
                    Output::Event(ev) => {
                        let _ = self.events.send(ev);
                    }
                    Output::Persist(p) => self.persist(p),
                    Output::LoadLocal { meeting_id } => {
                        let marks = self.store.watermarks(meeting_id);
                        let pending = self.store.outbox_pending(meeting_id);
                        match (marks, pending) {
                            (Ok(m), Ok(p)) => self.core.local_loaded(meeting_id, m, p, Instant::now()),
                            (Err(e), _) | (_, Err(e)) => {
                                self.store_error(e);
                                self.core.local_loaded(
                                    meeting_id,
                                    Default::default(),
                                    Vec::new(),
                                    Instant::now(),
                                )
                            }
                        }
                    }
                    Output::Completed { call, result } => {
                        if let Some(reply) = self.calls.remove(&call) {
                            let _ = reply.send(result.map_err(call_error));
                        }
                    }
                }
            }
            if self.core.outbox_len() == 0 {
                for w in self.flush_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            if self.core.link() == crate::state::Link::Closed && self.link.is_none() {
                break;
            }
            if !cmds_open && self.core.link() != crate::state::Link::Closed {
                // Every handle dropped: nobody can use the session any more.
                self.core.close();
                continue;
            }

            let timer = self.core.poll_timeout().map(tokio::time::Instant::from_std);
            let wake = tokio::select! {
                cmd = self.cmds.recv(), if cmds_open => Wake::Cmd(cmd),
                r = async {
                    match self.link.as_mut() {
                        Some(l) => l.recv.read(&mut buf).await,
                        None => std::future::pending().await,
                    }
                } => Wake::Read(r),
                r = async {
                    match connecting.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                } => Wake::Connected(r),
                _ = async {
                    match timer {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => Wake::Timer,
            };
            let now = Instant::now();
            match wake {
                Wake::Cmd(None) => cmds_open = false,
                Wake::Cmd(Some(cmd)) => self.command(cmd, now),
                Wake::Read(Ok(Some(n))) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    self.on_bytes(&bytes, now);
                }
                Wake::Read(Ok(None)) => self.lost("relay closed the stream", now),
                Wake::Read(Err(e)) => self.lost(&e.to_string(), now),
                Wake::Connected(r) => {
                    connecting = None;
                    match r {
                        Ok(link) => {
                            tracing::info!(relay = %self.relay, "reconnected to relay");
                            self.conn_tx.send_replace(Some(link.conn.clone()));
                            self.link = Some(link);
                            self.core.on_connected(now);
                        }
                        Err(e) => {
                            let e = self.pin_error(e);
                            tracing::info!(error = %e, "reconnect attempt failed");
                            self.core.on_connect_failed(now, &e.to_string());
                        }
                    }
                }
                Wake::Timer => self.core.handle_timeout(now),
            }
        }
        self.endpoint.wait_idle().await;
        Ok(())
    }

    async fn open_link(&mut self) -> Result<LinkIo> {
        let r = connect_link(self.endpoint.clone(), self.client_config.clone(), self.relay.clone()).await;
        r.map_err(|e| self.pin_error(e))
    }

    fn pin_error(&self, e: ClientError) -> ClientError {
        let actual = self.pin_slot.as_ref().and_then(|s| s.lock().ok().and_then(|mut g| g.take()));
        match (actual, &self.expected_pin) {
            (Some(actual), Some(expected)) => ClientError::PinMismatch { expected: expected.clone(), actual },
            _ => e,
        }
    }

    fn lost(&mut self, reason: &str, now: Instant) {
        if let Some(link) = self.link.take() {
            link.conn.close(0u32.into(), b"lost");
        }
        self.conn_tx.send_replace(None);
        tracing::info!(reason, "connection to relay lost");
        self.core.on_disconnected(now, reason);
    }

    fn on_bytes(&mut self, bytes: &[u8], now: Instant) {
        let Some(link) = self.link.as_mut() else { return };
        link.decoder.push(bytes);
        loop {
            let Some(link) = self.link.as_mut() else { return };
            match link.decoder.next_frame() {
                Ok(Some(body)) => match ServerMessage::decode(&body) {
                    Ok(msg) => self.core.handle_message(msg, now),
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable message from relay ignored");
                        let _ = self.events.send(ClientEvent::Error {
                            code: "protocol".into(),
                            message: format!("unreadable message from relay: {e}"),
                        });
                    }
                },
                Ok(None) => return,
                Err(e) => {
                    self.lost(&format!("bad frame from relay: {e}"), now);
                    return;
                }
            }
        }
    }

    async fn transmit(&mut self, msg: &clinicmeet_protocol::ClientMessage) {
        let bytes = match frame::encode(msg) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "could not encode request");
                return;
            }
        };
        let Some(link) = self.link.as_mut() else { return };
        if let Err(e) = link.send.write_all(&bytes).await {
            let reason = format!("write failed: {e}");
            self.lost(&reason, Instant::now());
        }
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Call(req, reply) => {
                let call = self.core.call(req, now);
                self.calls.insert(call, reply);
            }
            Command::Join { code, name, media, reply } => {
                let token = clinicmeet_protocol::AccessCode::parse(&code)
                    .ok()
                    .and_then(|c| {
                        self.store.meeting_by_code(Some(&self.relay), c.normalized()).ok().flatten()
                    })
                    .filter(|m| m.status != "ended" && m.status != "completed" && m.status != "cancelled")
                    .and_then(|m| m.resume_token);
                let call = self.core.join(code, name, media, token, now);
                self.calls.insert(call, reply);
            }
            Command::EndConsultation { notes, reply } => {
                let call = self.core.end_consultation(notes, now);
                self.calls.insert(call, reply);
            }
            Command::SendChat { text, staff_only, attachments, reply } => {
                let id = Uuid::now_v7();
                let r = self
                    .core
                    .send_chat_with(
                        id,
                        text,
                        staff_only,
                        attachments,
                        now,
                        clinicmeet_protocol::unix_now_ms(),
                    )
                    .map(|_| id)
                    .map_err(call_error);
                let r = match r {
                    Err(ClientError::Relay(b)) => Err(ClientError::Invalid(b)),
                    other => other,
                };
                let _ = reply.send(r);
            }
            Command::RetryChat { id, reply } => {
                let r = match self.store.outbox_entry(id) {
                    Ok(Some(e)) if e.state == OutboxState::Failed => {
                        self.core.retry_chat(e, now).map_err(call_error)
                    }
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(ClientError::InvalidState("no such message in the outbox".into())),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Command::Typing(t) => self.core.typing(t),
            Command::Snapshot(reply) => {
                let _ = reply.send(self.core.meeting().cloned());
            }
            Command::Flush(reply) => self.flush_waiters.push(reply),
            Command::Close => self.core.close(),
        }
    }

    fn persist(&mut self, p: Persist) {
        if let Err(e) = self.store.apply(&self.relay, p, clinicmeet_protocol::unix_now_ms()) {
            self.store_error(e);
        }
    }

    fn store_error(&mut self, e: ClientError) {
        tracing::error!(error = %e, "local store write failed");
        let _ = self.events.send(ClientEvent::Error { code: "store".into(), message: e.to_string() });
    }
}

impl LinkIo {
    fn send_finish(&self) -> Result<()> {
        Ok(())
    }
}

async fn connect_link(endpoint: quinn::Endpoint, cfg: quinn::ClientConfig, relay: String) -> Result<LinkIo> {
    let remote =
        resolve(&relay, endpoint.local_addr().ok().map(|a| a.ip()).filter(|ip| !ip.is_unspecified())).await?;
    let server_name = relay.rsplit_once(':').map_or(relay.as_str(), |(h, _)| h);
    let server_name = server_name.trim_start_matches('[').trim_end_matches(']').to_string();
    let fut = async {
        let connecting = endpoint
            .connect_with(cfg, remote, &server_name)
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let conn = connecting.await.map_err(|e| ClientError::Connect(e.to_string()))?;
        let (send, recv) = conn.open_bi().await.map_err(|e| ClientError::Connect(e.to_string()))?;
        Ok::<_, ClientError>(LinkIo { conn, send, recv, decoder: FrameDecoder::default() })
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Connect(format!("no answer from {relay} within {CONNECT_TIMEOUT:?}"))),
    }
}

/// Convenience for tests and tools: the waiting-room entries of a snapshot.
pub fn waiting_ids(view: &MeetingView) -> Vec<ParticipantId> {
    view.waiting.iter().map(|w: &WaitingInfo| w.participant_id).collect()
}
