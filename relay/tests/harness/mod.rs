//! In-memory harness: drives the relay's [`Hub`] with protocol messages on a
//! virtual clock. No sockets, no processes, no files: storage is SQLite in
//! memory, and it survives a "restart" (the hub is rebuilt from it).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use clinicmeet_protocol::{
    ClientMessage, ErrorBody, Event, MediaState, MeetingSpec, ParticipantId, Request, Response,
    ServerMessage, UnixMillis,
};
use clinicmeet_relay::hub::{ConnId, Hub, HubConfig, Out};
use clinicmeet_relay::keys::{self, Keys};
use clinicmeet_relay::metrics::Metrics;
use clinicmeet_relay::store::{HubStore, Store};

pub const ON: MediaState = MediaState { audio: true, video: true, screen: false };

pub struct Harness {
    pub hub: Hub,
    pub cfg: HubConfig,
    /// Virtual clock (Unix milliseconds).
    pub now: UnixMillis,
    next_conn: ConnId,
    next_req: u64,
    /// Events received per connection, in order.
    pub events: HashMap<ConnId, Vec<Event>>,
    /// Connections the hub closed.
    pub closed: HashSet<ConnId>,
    /// Enrollment codes of staff added with [`Harness::new`], by name.
    staff_codes: HashMap<String, String>,
}

fn keys() -> Keys {
    Keys::new([7; 32], [9; 32])
}

impl Harness {
    /// A hub with enrolled-to-be staff members `staff` (their enrollment codes are kept).
    pub fn new(cfg: HubConfig, staff: &[&str]) -> Harness {
        let store = Store::open_in_memory().unwrap();
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
            next_conn: 1,
            next_req: 1,
            events: HashMap::new(),
            closed: HashSet::new(),
            staff_codes,
        }
    }

    /// Moves the virtual clock and runs the hub's periodic work.
    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
        let outs = self.hub.tick(self.now);
        self.route(outs);
    }

    /// The relay process restarts: connections are gone, the hub is rebuilt from its storage.
    pub fn restart(&mut self) {
        let cfg = self.cfg.clone();
        let placeholder = Hub::new(
            cfg.clone(),
            Store::open_in_memory().unwrap(),
            keys(),
            Arc::new(Metrics::default()),
            self.now,
        )
        .unwrap();
        let old = std::mem::replace(&mut self.hub, placeholder);
        let store: Box<dyn HubStore> = old.into_store();
        self.hub = Hub::new(cfg, store, keys(), Arc::new(Metrics::default()), self.now).unwrap();
        let open: Vec<ConnId> = self.events.keys().copied().filter(|c| !self.closed.contains(c)).collect();
        self.closed.extend(open);
    }

    fn route(&mut self, outs: Vec<Out>) -> Vec<(ConnId, ServerMessage)> {
        let mut replies = Vec::new();
        for o in outs {
            match o {
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

    /// A new connection that has done hello (with a device credential if given).
    pub fn connect(&mut self, credential: Option<String>) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.hub.connected(self.now, conn, "192.0.2.1:4433".parse().unwrap());
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

    /// The link drops (as the server's connection task would report).
    pub fn drop_link(&mut self, conn: ConnId) {
        let outs = self.hub.disconnected(self.now, conn);
        self.route(outs);
        self.closed.insert(conn);
    }

    /// Sends one request and returns its reply (events go to the inboxes).
    pub fn call(&mut self, conn: ConnId, request: Request) -> Result<Response, ErrorBody> {
        self.send(conn, request).expect("a reply")
    }

    /// Sends one request; `None` when the hub answered nothing to this connection.
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

    /// A staff device: connects, enrolls with the code of `name`, returns (conn, credential).
    pub fn staff(&mut self, name: &str) -> (ConnId, String) {
        let code = self.staff_codes.get(name).expect("staff added in new()").clone();
        let conn = self.connect(None);
        match self.call(conn, Request::Enroll { enrollment_code: code, device_name: "pc".into() }) {
            Ok(Response::Enrolled { device_credential, .. }) => (conn, device_credential),
            other => panic!("enroll: {other:?}"),
        }
    }

    /// Creates a meeting from a staff connection; returns its access code.
    pub fn create(&mut self, conn: ConnId, spec: MeetingSpec) -> String {
        match self.call(conn, Request::CreateMeeting { spec }) {
            Ok(Response::MeetingCreated { access_code, .. }) => access_code,
            other => panic!("create: {other:?}"),
        }
    }

    pub fn join(&mut self, conn: ConnId, code: &str, name: &str) -> Result<Response, ErrorBody> {
        self.call(conn, Request::Join { access_code: code.into(), display_name: name.into(), media: ON })
    }

    /// Events a connection received since the last call, taken out of its inbox.
    pub fn take_events(&mut self, conn: ConnId) -> Vec<Event> {
        std::mem::take(self.events.entry(conn).or_default())
    }
}

/// (participant id, resume token) of a join or waiting reply.
pub fn entered(r: &Result<Response, ErrorBody>) -> (ParticipantId, String) {
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
