//! In-memory harness: the relay's real [`Hub`] on a virtual clock, driven
//! either with raw protocol messages (connections made with
//! [`Harness::connect`]) or by real client session [`Core`]s (made with
//! [`Harness::client`]), each with its own real local [`Store`] (SQLite in
//! memory). No sockets, no processes, no files. The relay's storage is SQLite in
//! memory too and survives a [`Harness::restart`] (the hub is rebuilt from it).
//!
//! Messages between a client and the hub wait in queues until delivered, so a
//! test can let a request reach the hub and drop the link before the reply
//! comes back ([`Harness::deliver_up`], then [`Harness::drop_client`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clinicmeet_client::backoff::Backoff;
use clinicmeet_client::state::{CallError, CallId, Config, Core, Output};
use clinicmeet_client::{ClientEvent, Store};
use clinicmeet_protocol::{
    ChatMessage, ClientMessage, ErrorBody, Event, MediaState, MeetingId, MeetingSpec, ParticipantId, Request,
    Response, ServerMessage, UnixMillis,
};
use clinicmeet_relay::hub::{ConnId, Hub, HubConfig, Out};
use clinicmeet_relay::keys::{self, Keys};
use clinicmeet_relay::metrics::Metrics;
use clinicmeet_relay::store::Store as RelayStore;

pub const ON: MediaState = MediaState { audio: true, video: true, screen: false };

/// The relay's name in the clients' stores.
const RELAY: &str = "harness.invalid:4433";

/// A client made with [`Harness::client`].
pub type ClientId = usize;

/// One real client: its session core, its local store, and what it handed out.
pub struct Client {
    pub core: Core,
    pub store: Store,
    /// The connection it holds to the hub, if any.
    pub conn: Option<ConnId>,
    /// Events for the application, in order.
    pub events: Vec<ClientEvent>,
    /// Results of calls not yet taken with [`Harness::result`].
    completed: HashMap<CallId, Result<Response, CallError>>,
    /// Cut off: connection attempts fail until [`Harness::heal`].
    cut: bool,
}

pub struct Harness {
    pub hub: Hub,
    pub cfg: HubConfig,
    /// Virtual clock (Unix milliseconds) of the hub.
    pub now: UnixMillis,
    /// The same clock as the clients see it.
    pub clock: Instant,
    next_conn: ConnId,
    next_req: u64,
    /// Events received per raw connection, in order.
    pub events: HashMap<ConnId, Vec<Event>>,
    /// Connections the hub closed.
    pub closed: HashSet<ConnId>,
    /// Enrollment codes of staff added with [`Harness::new`], by name.
    staff_codes: HashMap<String, String>,
    pub clients: Vec<Client>,
    /// Which client holds a connection (the others are raw).
    owner: HashMap<ConnId, ClientId>,
    /// Framed requests on their way to the hub.
    up: VecDeque<(ConnId, Vec<u8>)>,
    /// Messages on their way to clients; `None` is the hub closing the connection.
    down: VecDeque<(ConnId, Option<ServerMessage>)>,
}

fn keys() -> Keys {
    Keys::new([7; 32], [9; 32])
}

impl Harness {
    /// A hub with enrolled-to-be staff members `staff` (their enrollment codes are kept).
    pub fn new(cfg: HubConfig, staff: &[&str]) -> Harness {
        let store = RelayStore::open_in_memory().unwrap();
        let mut staff_codes = HashMap::new();
        for name in staff {
            let code = keys::new_enrollment_code();
            let hash = keys::hash_secret(&keys::normalize_enrollment_code(&code));
            store.add_staff(name, &hash, 0, i64::MAX / 2).unwrap();
            staff_codes.insert(name.to_string(), code);
        }
        let now = 1_700_000_000_000;
        let hub = Hub::new(cfg.clone(), store, keys(), Arc::new(Metrics::default()), now).unwrap();
        Harness {
            hub,
            cfg,
            now,
            clock: Instant::now(),
            next_conn: 1,
            next_req: 1,
            events: HashMap::new(),
            closed: HashSet::new(),
            staff_codes,
            clients: Vec::new(),
            owner: HashMap::new(),
            up: VecDeque::new(),
            down: VecDeque::new(),
        }
    }

    /// Moves both clocks, runs the hub's periodic work and the clients' timers, then settles.
    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
        self.clock += Duration::from_millis(ms as u64);
        let outs = self.hub.tick(self.now);
        self.route(outs);
        for c in &mut self.clients {
            if c.core.poll_timeout().is_some_and(|t| t <= self.clock) {
                c.core.handle_timeout(self.clock);
            }
        }
        self.settle();
    }

    /// The relay process restarts: connections are gone (clients see the link
    /// drop, messages in flight are lost), the hub is rebuilt from its storage.
    pub fn restart(&mut self) {
        let cfg = self.cfg.clone();
        let placeholder = Hub::new(
            cfg.clone(),
            RelayStore::open_in_memory().unwrap(),
            keys(),
            Arc::new(Metrics::default()),
            self.now,
        )
        .unwrap();
        let old = std::mem::replace(&mut self.hub, placeholder);
        let store: RelayStore = old.into_store();
        self.hub = Hub::new(cfg, store, keys(), Arc::new(Metrics::default()), self.now).unwrap();
        let open: Vec<ConnId> = self.events.keys().copied().filter(|c| !self.closed.contains(c)).collect();
        self.closed.extend(open);
        self.up.clear();
        self.down.clear();
        for (conn, id) in std::mem::take(&mut self.owner) {
            self.closed.insert(conn);
            let c = &mut self.clients[id];
            c.conn = None;
            c.core.on_disconnected(self.clock, "relay restarted");
        }
    }

    fn route(&mut self, outs: Vec<Out>) -> Vec<(ConnId, ServerMessage)> {
        let mut replies = Vec::new();
        for o in outs {
            match o {
                Out::Send(c, m) if self.owner.contains_key(&c) => self.down.push_back((c, Some(m))),
                Out::Close(c) if self.owner.contains_key(&c) => self.down.push_back((c, None)),
                Out::Send(c, ServerMessage::Event { event }) => self.events.entry(c).or_default().push(event),
                Out::Send(c, m) => replies.push((c, m)),
                Out::Close(c) => {
                    self.closed.insert(c);
                }
                Out::Media(_) => {}
            }
        }
        replies
    }

    fn open_conn(&mut self) -> ConnId {
        self.open_conn_from("192.0.2.1:4433".parse().unwrap())
    }

    fn open_conn_from(&mut self, addr: std::net::SocketAddr) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.hub.connected(self.now, conn, addr);
        conn
    }

    /// A new raw connection that has done hello (with a device credential if given).
    pub fn connect(&mut self, credential: Option<String>) -> ConnId {
        self.connect_from("192.0.2.1".parse().unwrap(), credential)
    }

    /// A new raw connection from source address `ip` that has done hello.
    pub fn connect_from(&mut self, ip: std::net::IpAddr, credential: Option<String>) -> ConnId {
        let conn = self.open_conn_from(std::net::SocketAddr::new(ip, 4433));
        self.events.insert(conn, Vec::new());
        let hello = Request::Hello {
            min_version: 1,
            max_version: clinicmeet_protocol::PROTOCOL_VERSION,
            client: "harness".into(),
            device_credential: credential,
        };
        self.call(conn, hello).expect("hello");
        conn
    }

    /// The link of a raw connection drops (as the server's connection task would report).
    pub fn drop_link(&mut self, conn: ConnId) {
        let outs = self.hub.disconnected(self.now, conn);
        self.route(outs);
        self.closed.insert(conn);
    }

    /// Sends one request on a raw connection and returns its reply (events go to the inboxes).
    pub fn call(&mut self, conn: ConnId, request: Request) -> Result<Response, ErrorBody> {
        self.send(conn, request).expect("a reply")
    }

    /// Sends one request on a raw connection; `None` when the hub answered nothing to it.
    pub fn send(&mut self, conn: ConnId, request: Request) -> Option<Result<Response, ErrorBody>> {
        let id = self.next_req;
        self.next_req += 1;
        let body = serde_json::to_vec(&ClientMessage { id, request }).unwrap();
        let outs = self.hub.frame(self.now, conn, &body);
        let mut result = None;
        for (c, m) in self.route(outs) {
            match m {
                ServerMessage::Reply { id: rid, response } if c == conn && rid == id => {
                    result = Some(Ok(response))
                }
                ServerMessage::Error { id: Some(rid), error } if c == conn && rid == id => {
                    result = Some(Err(error))
                }
                other => panic!("unexpected message to {c}: {other:?}"),
            }
        }
        result
    }

    /// A staff device on a raw connection: connects, enrolls with the code of
    /// `name`, returns (conn, credential).
    pub fn staff(&mut self, name: &str) -> (ConnId, String) {
        let conn = self.connect(None);
        match self.call(conn, self.enroll_request(name)) {
            Ok(Response::Enrolled { device_credential, .. }) => (conn, device_credential),
            other => panic!("enroll: {other:?}"),
        }
    }

    fn enroll_request(&self, name: &str) -> Request {
        let code = self.staff_codes.get(name).expect("staff added in new()").clone();
        Request::Enroll { enrollment_code: code, device_name: "pc".into() }
    }

    /// Creates a meeting from a staff connection; returns its access code.
    pub fn create(&mut self, conn: ConnId, spec: MeetingSpec) -> String {
        access_code(self.call(conn, Request::CreateMeeting { spec }))
    }

    /// Creates a meeting from a staff connection; returns its access code and invite secret.
    pub fn create_with_invite(&mut self, conn: ConnId, spec: MeetingSpec) -> (String, String) {
        match self.call(conn, Request::CreateMeeting { spec }) {
            Ok(Response::MeetingCreated { access_code, invite_secret: Some(invite), .. }) => {
                (access_code, invite)
            }
            other => panic!("create: {other:?}"),
        }
    }

    /// Staff member `name` creates a meeting on a raw connection and joins it;
    /// returns (conn, access code).
    pub fn host_meeting(&mut self, name: &str, waiting_room: bool) -> (ConnId, String) {
        let (host, _) = self.staff(name);
        let code = self.create(host, spec(clinicmeet_protocol::MeetingKind::Video, waiting_room));
        self.join(host, &code, name).unwrap();
        (host, code)
    }

    pub fn join(&mut self, conn: ConnId, code: &str, name: &str) -> Result<Response, ErrorBody> {
        self.call(conn, Request::Join { access_code: code.into(), display_name: name.into(), media: ON })
    }

    /// Events a raw connection received since the last call, taken out of its inbox.
    pub fn take_events(&mut self, conn: ConnId) -> Vec<Event> {
        std::mem::take(self.events.entry(conn).or_default())
    }

    // ------------------------------------------------------------ real clients

    /// A real client core (auto-reconnecting, seeded backoff) with its own
    /// local store, connected and greeted.
    pub fn client(&mut self) -> ClientId {
        let id = self.clients.len();
        let config = Config { client_name: format!("harness-{id}"), ..Config::default() };
        let backoff = Backoff::seeded(config.backoff, id as u64);
        let mut core = Core::with_backoff(config, backoff);
        core.start();
        let store = Store::open_in_memory().unwrap();
        let c = Client { core, store, conn: None, events: Vec::new(), completed: HashMap::new(), cut: false };
        self.clients.push(c);
        self.settle();
        id
    }

    /// A real client enrolled as staff member `name` (the core keeps the credential).
    pub fn staff_client(&mut self, name: &str) -> ClientId {
        let c = self.client();
        match self.client_call(c, self.enroll_request(name)) {
            Ok(Response::Enrolled { .. }) => c,
            other => panic!("enroll: {other:?}"),
        }
    }

    /// Makes a call through a client's core and runs until it completes.
    pub fn client_call(&mut self, c: ClientId, request: Request) -> Result<Response, CallError> {
        let call = self.clients[c].core.call(request, self.clock);
        self.result(c, call)
    }

    /// Creates a meeting through a staff client's core; returns its access code.
    pub fn client_create(&mut self, c: ClientId, spec: MeetingSpec) -> String {
        access_code(self.client_call(c, Request::CreateMeeting { spec }).map_err(|e| format!("{e:?}")))
    }

    /// Joins through a client's core (with a resume token kept from before, if
    /// given) and runs until the outcome; the core then resyncs chat by itself.
    pub fn client_join(
        &mut self,
        c: ClientId,
        code: &str,
        name: &str,
        resume_token: Option<String>,
    ) -> Result<Response, CallError> {
        let call = self.clients[c].core.join(code.into(), name.into(), ON, resume_token, self.clock);
        self.result(c, call)
    }

    /// Runs (advancing the clock when idle) until call `call` of client `c` completes.
    pub fn result(&mut self, c: ClientId, call: CallId) -> Result<Response, CallError> {
        self.run_until(60_000, |h| h.clients[c].completed.contains_key(&call));
        self.clients[c].completed.remove(&call).unwrap()
    }

    /// Delivers and acts on everything pending without moving the clock.
    pub fn settle(&mut self) {
        loop {
            let mut busy = self.drain_clients();
            busy |= self.deliver_up();
            busy |= self.deliver_down();
            if !busy {
                return;
            }
        }
    }

    /// Runs until `done` holds, advancing the clock to the next timer (or by
    /// 100 ms) whenever nothing is left to deliver; panics after `limit_ms`.
    pub fn run_until(&mut self, limit_ms: i64, mut done: impl FnMut(&Harness) -> bool) {
        let deadline = self.now + limit_ms;
        loop {
            self.settle();
            if done(self) {
                return;
            }
            assert!(self.now < deadline, "not done within {limit_ms} ms of virtual time");
            let next = self.clients.iter().filter_map(|c| c.core.poll_timeout()).min();
            let step = next.map_or(100, |t| t.saturating_duration_since(self.clock).as_millis() as i64);
            self.advance(step.clamp(1, 100));
        }
    }

    /// Carries out every output of every client's core; true if there was any.
    fn drain_clients(&mut self) -> bool {
        let mut any = false;
        for id in 0..self.clients.len() {
            while let Some(out) = self.clients[id].core.poll_output() {
                any = true;
                self.output(id, out);
            }
        }
        any
    }

    /// What the session driver does with one output, in memory.
    fn output(&mut self, id: ClientId, out: Output) {
        let (now, wall) = (self.clock, self.now);
        match out {
            Output::Connect if self.clients[id].cut => {
                self.clients[id].core.on_connect_failed(now, "cut off");
            }
            Output::Connect => {
                let conn = self.open_conn();
                self.owner.insert(conn, id);
                self.clients[id].conn = Some(conn);
                self.clients[id].core.on_connected(now);
            }
            Output::Disconnect => {
                if let Some(conn) = self.clients[id].conn.take() {
                    self.unlink(conn);
                }
            }
            Output::Transmit(msg) => {
                if let Some(conn) = self.clients[id].conn {
                    self.up.push_back((conn, serde_json::to_vec(&msg).unwrap()));
                }
            }
            Output::Event(ev) => self.clients[id].events.push(ev),
            Output::Persist(p) => self.clients[id].store.apply(RELAY, p, wall).unwrap(),
            Output::LoadLocal { meeting_id } => {
                let c = &mut self.clients[id];
                let marks = c.store.watermarks(meeting_id).unwrap();
                let pending = c.store.outbox_pending(meeting_id).unwrap();
                c.core.local_loaded(meeting_id, marks, pending, now);
            }
            Output::Completed { call, result } => {
                self.clients[id].completed.insert(call, result);
            }
        }
    }

    /// Carries out the clients' outputs and delivers every request waiting for
    /// the hub, but no reply yet; true if there was anything.
    pub fn deliver_up(&mut self) -> bool {
        let any = self.drain_clients() | !self.up.is_empty();
        while let Some((conn, body)) = self.up.pop_front() {
            let outs = self.hub.frame(self.now, conn, &body);
            self.route(outs);
        }
        any
    }

    /// Delivers every message waiting for the clients; true if there was any.
    fn deliver_down(&mut self) -> bool {
        let any = !self.down.is_empty();
        while let Some((conn, msg)) = self.down.pop_front() {
            let Some(&id) = self.owner.get(&conn) else { continue };
            match msg {
                Some(m) => self.clients[id].core.handle_message(m, self.clock),
                None => self.drop_client(id),
            }
        }
        any
    }

    /// Forgets a client connection: what is in flight on it is lost, the hub hears it dropped.
    fn unlink(&mut self, conn: ConnId) {
        self.owner.remove(&conn);
        self.up.retain(|(c, _)| *c != conn);
        self.down.retain(|(c, _)| *c != conn);
        self.closed.insert(conn);
        let outs = self.hub.disconnected(self.now, conn);
        self.route(outs);
    }

    /// A client's link drops: both sides see it, messages in flight either way
    /// are lost. The core reconnects by itself after its backoff.
    pub fn drop_client(&mut self, c: ClientId) {
        if let Some(conn) = self.clients[c].conn.take() {
            self.unlink(conn);
            self.clients[c].core.on_disconnected(self.clock, "link dropped");
        }
    }

    /// Drops a client's link and keeps it off until [`Harness::heal`].
    pub fn cut(&mut self, c: ClientId) {
        self.clients[c].cut = true;
        self.drop_client(c);
    }

    pub fn heal(&mut self, c: ClientId) {
        self.clients[c].cut = false;
    }

    /// Runs until every client holding a place is connected, in its meeting,
    /// synced and has an empty outbox.
    pub fn run_until_quiet(&mut self, limit_ms: i64) {
        self.run_until(limit_ms, |h| {
            h.clients.iter().all(|c| {
                c.core.outbox_len() == 0 && c.core.meeting().is_none_or(|v| v.synced && c.conn.is_some())
            })
        });
    }

    /// The public chat people wrote, as a client holds it in its local store, in
    /// order (the relay's own lines, joined/left/…, left out: [`Harness::stored_lines`]).
    pub fn stored_chat(&self, c: ClientId, meeting: MeetingId) -> Vec<ChatMessage> {
        self.stored_lines(c, meeting).into_iter().filter(|m| m.system.is_none()).collect()
    }

    /// The whole public chat a client holds, the relay's own lines included.
    pub fn stored_lines(&self, c: ClientId, meeting: MeetingId) -> Vec<ChatMessage> {
        self.clients[c].store.chat(meeting, false).unwrap()
    }

    /// Events a client handed to its application since the last call.
    pub fn take_client_events(&mut self, c: ClientId) -> Vec<ClientEvent> {
        std::mem::take(&mut self.clients[c].events)
    }
}

fn access_code<E: std::fmt::Debug>(r: Result<Response, E>) -> String {
    match r {
        Ok(Response::MeetingCreated { access_code, .. }) => access_code,
        other => panic!("create: {other:?}"),
    }
}

/// (participant id, resume token) of a join or waiting reply.
pub fn entered<E: std::fmt::Debug>(r: &Result<Response, E>) -> (ParticipantId, String) {
    match r {
        Ok(Response::Joined(js)) => (js.you.id, js.resume_token.clone()),
        Ok(Response::Waiting { participant_id, resume_token, .. }) => (*participant_id, resume_token.clone()),
        other => panic!("not entered: {other:?}"),
    }
}

pub fn spec(kind: clinicmeet_protocol::MeetingKind, waiting_room: bool) -> MeetingSpec {
    let settings = clinicmeet_protocol::MeetingSettings { waiting_room, ..Default::default() };
    MeetingSpec {
        title: "Harness".into(),
        description: None,
        kind,
        patient_reference: None,
        schedule: None,
        settings,
    }
}
