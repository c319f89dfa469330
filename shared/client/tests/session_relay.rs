//! The client library against a real relay process on loopback.
//!
//! Builds nothing itself: it runs `clinicmeet-relay` from the same target
//! directory (`cargo build --workspace` first).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clinicmeet_client::session::{Connected, JoinOutcome};
use clinicmeet_client::store::Store;
use clinicmeet_client::{ClientEvent, ConnectionState, Session, SessionConfig};
use clinicmeet_protocol::{MediaState, MeetingKind, MeetingSettings, MeetingSpec, ParticipantJoined};
use tokio::sync::mpsc::UnboundedReceiver;

/// Generous: a relay killed without closing is noticed only at the 15 s idle timeout.
const WAIT: Duration = Duration::from_secs(45);

fn relay_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let bin = dir.join(format!("clinicmeet-relay{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "relay binary not found at {}: run `cargo build --workspace` (same CARGO_TARGET_DIR) before these tests",
        bin.display()
    );
    bin
}

struct Relay {
    child: Child,
    addr: SocketAddr,
    pin: String,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_relay(data: &Path, listen: &str) -> Relay {
    let mut child = Command::new(relay_bin())
        .args(["--data-dir", data.to_str().unwrap(), "--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn relay");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
    assert_eq!(v["event"], "listening");
    Relay {
        child,
        addr: v["quic"].as_str().unwrap().parse().unwrap(),
        pin: v["pin"].as_str().unwrap().to_string(),
    }
}

fn add_staff(data: &Path, name: &str) -> String {
    let out = Command::new(relay_bin())
        .args(["--data-dir", data.to_str().unwrap(), "staff", "add", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "staff add: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["enrollment_code"].as_str().unwrap().to_string()
}

struct Client {
    session: Session,
    events: UnboundedReceiver<ClientEvent>,
    seen: Vec<ClientEvent>,
    dir: PathBuf,
}

impl Client {
    async fn connect(relay: &Relay, dir: &Path) -> Client {
        let mut cfg = SessionConfig::new(relay.addr.to_string(), dir);
        cfg.pin = Some(relay.pin.clone());
        cfg.backoff = clinicmeet_client::backoff::Config {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let Connected { session, events, driver } = Session::connect(cfg).await.expect("connect");
        tokio::spawn(driver.run());
        Client { session, events, seen: Vec::new(), dir: dir.to_path_buf() }
    }

    /// Waits for an event matching `f`, keeping everything seen.
    async fn wait_for(&mut self, what: &str, f: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
        if let Some(e) = self.seen.iter().find(|e| f(e)) {
            return e.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    self.seen.push(e.clone());
                    if f(&e) {
                        return e;
                    }
                }
                Ok(None) => panic!("event stream ended while waiting for {what}; seen {:?}", self.seen),
                Err(_) => panic!("timed out waiting for {what}; seen {:#?}", self.seen),
            }
        }
    }

    fn chat_texts(&self) -> Vec<String> {
        let mut v: Vec<(u64, String)> = self
            .seen
            .iter()
            .filter_map(|e| match e {
                // What people wrote: not the relay's system lines (joined, left, …).
                ClientEvent::Chat { message, .. } if !message.staff_only && message.system.is_none() => {
                    Some((message.seq, message.text.clone()))
                }
                _ => None,
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, t)| t).collect()
    }
}

fn stored_texts(dir: &Path, meeting: uuid::Uuid) -> Vec<(u64, String)> {
    let store = Store::open_dir(dir).unwrap();
    store
        .chat(meeting, false)
        .unwrap()
        .into_iter()
        .filter(|m| m.system.is_none())
        .map(|m| (m.seq, m.text))
        .collect()
}

async fn setup(tmp: &Path) -> (Relay, Client, String, uuid::Uuid) {
    let relay_dir = tmp.join("relay");
    let relay = start_relay(&relay_dir, "127.0.0.1:0");
    let code = add_staff(&relay_dir, "Dr Ada");
    let host = Client::connect(&relay, &tmp.join("host")).await;
    let staff = host.session.enroll(&code, "test device").await.expect("enroll");
    assert_eq!(staff.name, "Dr Ada");
    // The credential is stored: a new session presents it in hello.
    host.session.close();
    let host = Client::connect(&relay, &tmp.join("host")).await;
    let (meeting, access_code) = host
        .session
        .create_meeting(MeetingSpec {
            title: "Ward round".into(),
            description: None,
            kind: MeetingKind::Video,
            patient_reference: None,
            schedule: None,
            settings: MeetingSettings::default(),
        })
        .await
        .expect("create");
    (relay, host, access_code, meeting.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_join_and_chat_between_two_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let (relay, mut host, access_code, meeting_id) = setup(tmp.path()).await;

    let joined = host.session.join(&access_code, "Dr Ada", MediaState::default()).await.expect("host joins");
    assert!(matches!(joined, JoinOutcome::Joined(ref s) if s.you.role == clinicmeet_protocol::Role::Host));
    host.wait_for("host synced", |e| matches!(e, ClientEvent::ChatSynced { .. })).await;

    let mut guest = Client::connect(&relay, &tmp.path().join("guest")).await;
    // Lower case without the dash is the same code.
    let lax = access_code.replace('-', "").to_lowercase();
    guest.session.join(&lax, "Pat", MediaState::default()).await.expect("guest joins");
    host.wait_for(
        "guest joined",
        |e| matches!(e, ClientEvent::ParticipantJoined(ParticipantJoined { participant }) if participant.display_name == "Pat"),
    )
    .await;

    // A wrong code is refused with the stable code.
    let stranger = Client::connect(&relay, &tmp.path().join("stranger")).await;
    let err = stranger.session.join("ZZZZ-ZZZZ", "X", MediaState::default()).await.unwrap_err();
    assert_eq!(err.code(), Some(clinicmeet_protocol::ErrorCode::InvalidCode), "{err}");
    stranger.session.close();

    for i in 0..5 {
        host.session.send_chat(&format!("host {i}"), false).await.unwrap();
        guest.session.send_chat(&format!("guest {i}"), false).await.unwrap();
    }
    host.session.send_chat("for staff only", true).await.unwrap();
    host.session.flush().await.unwrap();
    guest.session.flush().await.unwrap();
    for c in [&mut host, &mut guest] {
        for last in ["host 4", "guest 4"] {
            c.wait_for(last, |e| matches!(e, ClientEvent::Chat { message, .. } if message.text == last))
                .await;
        }
    }
    host.wait_for("the note", |e| matches!(e, ClientEvent::Chat { message, .. } if message.staff_only)).await;
    assert_eq!(host.chat_texts(), guest.chat_texts());
    assert_eq!(host.chat_texts().len(), 10);
    // Each message was announced once.
    let chats = guest
        .seen
        .iter()
        .filter(|e| matches!(e, ClientEvent::Chat { message, .. } if message.system.is_none()))
        .count();
    assert_eq!(chats, 10, "guest never sees the staff note, and nothing twice");

    // Both stores hold the same ten messages in the same order.
    let h = stored_texts(&host.dir, meeting_id);
    let g = stored_texts(&guest.dir, meeting_id);
    assert_eq!(h, g);
    // Numbered without gaps after the system lines (joined) that came first.
    let first = h[0].0;
    assert_eq!(h.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (first..first + 10).collect::<Vec<_>>());
    let guest_store = Store::open_dir(&guest.dir).unwrap();
    assert!(guest_store.chat(meeting_id, true).unwrap().is_empty(), "no notes in the guest's store");

    // A late joiner gets the history.
    let mut late = Client::connect(&relay, &tmp.path().join("late")).await;
    late.session.join(&access_code, "Late", MediaState::default()).await.unwrap();
    let last = h.last().unwrap().0;
    late.wait_for("history", |e| matches!(e, ClientEvent::ChatSynced { chat_seq, .. } if *chat_seq >= last))
        .await;
    assert_eq!(late.chat_texts(), host.chat_texts());

    // Host actions: mute the guest; the guest is told.
    let guest_id = match guest.wait_for("joined", |e| matches!(e, ClientEvent::Joined(_))).await {
        ClientEvent::Joined(s) => s.you.id,
        other => panic!("{other:?}"),
    };
    host.session.mute(guest_id).await.unwrap();
    guest.wait_for("muted", |e| matches!(e, ClientEvent::Muted(_))).await;
    // A guest may not lock.
    let err = guest.session.set_locked(true).await.unwrap_err();
    assert_eq!(err.code(), Some(clinicmeet_protocol::ErrorCode::Forbidden));

    host.session.end_meeting().await.unwrap();
    guest.wait_for("ended", |e| matches!(e, ClientEvent::MeetingEnded(_))).await;
    // Chat stays readable offline after the meeting ended.
    assert_eq!(stored_texts(&guest.dir, meeting_id).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_restart_resumes_and_delivers_unsent_chat_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (relay, mut host, access_code, meeting_id) = setup(tmp.path()).await;
    host.session.join(&access_code, "Dr Ada", MediaState::default()).await.unwrap();
    let mut guest = Client::connect(&relay, &tmp.path().join("guest")).await;
    guest.session.join(&access_code, "Pat", MediaState::default()).await.unwrap();
    let guest_id = match guest.wait_for("joined", |e| matches!(e, ClientEvent::Joined(_))).await {
        ClientEvent::Joined(s) => s.you.id,
        other => panic!("{other:?}"),
    };
    for i in 0..3 {
        guest.session.send_chat(&format!("before {i}"), false).await.unwrap();
    }
    guest.session.flush().await.unwrap();
    host.wait_for(
        "3 chats",
        |e| matches!(e, ClientEvent::Chat { message, .. } if message.text == "before 2"),
    )
    .await;

    // Restart the relay on the same port with the same data.
    let addr = relay.addr;
    let relay_dir = tmp.path().join("relay");
    drop(relay);
    // Written while the relay is down: kept in the outbox, sent after resume.
    for i in 0..3 {
        guest.session.send_chat(&format!("during {i}"), false).await.unwrap();
    }
    let relay = start_relay(&relay_dir, &addr.to_string());
    assert_eq!(relay.addr, addr);

    for c in [&mut host, &mut guest] {
        c.wait_for("reconnecting", |e| {
            matches!(e, ClientEvent::Connection { state: ConnectionState::Reconnecting, .. })
        })
        .await;
        c.wait_for("resumed", |e| matches!(e, ClientEvent::Joined(s) if s.resumed)).await;
    }
    // Same place, same participant id.
    let resumed_id = guest
        .seen
        .iter()
        .rev()
        .find_map(|e| match e {
            ClientEvent::Joined(s) if s.resumed => Some(s.you.id),
            _ => None,
        })
        .unwrap();
    assert_eq!(resumed_id, guest_id);
    guest.session.flush().await.unwrap();
    host.session.send_chat("after", false).await.unwrap();
    for c in [&mut host, &mut guest] {
        c.wait_for("7 chats", |e| matches!(e, ClientEvent::Chat { message, .. } if message.text == "after"))
            .await;
    }
    let expected: Vec<String> =
        ["before 0", "before 1", "before 2", "during 0", "during 1", "during 2", "after"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    for c in [&host, &guest] {
        let stored: Vec<String> = stored_texts(&c.dir, meeting_id).into_iter().map(|(_, t)| t).collect();
        assert_eq!(stored, expected, "in {}", c.dir.display());
        assert_eq!(c.chat_texts(), expected);
    }
    let store = Store::open_dir(&guest.dir).unwrap();
    assert!(store.outbox_pending(meeting_id).unwrap().is_empty());
}
