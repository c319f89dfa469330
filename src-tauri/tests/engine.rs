//! The app's engine (what the Tauri commands call) against a real relay process
//! and a real `clinicmeet-cli` participant: pin refusal saves nothing, enrollment
//! is remembered, meetings, chat both ways, removal — as UI events; media both
//! ways with the synthetic devices (the app's frames for the web view carry the
//! guest's embedded frame numbers; the guest decodes the app's video).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clinicmeet_app::engine::devices::{DeviceInfo, DeviceKind, DeviceList, SYNTHETIC_ID};
use clinicmeet_app::engine::{Engine, EventSink, JoinOptions};
use clinicmeet_app::launch::RelayConfig;
use clinicmeet_e2e::{is_error, Client, Relay};
use clinicmeet_protocol::{MeetingKind, MeetingSettings, MeetingSpec};
use serde_json::Value;

const STEP: Duration = Duration::from_secs(20);

#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Value>>>);

impl Events {
    fn sink(&self) -> EventSink {
        let v = self.0.clone();
        Arc::new(move |e| v.lock().unwrap().push(serde_json::to_value(e).unwrap()))
    }

    fn wait(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(v) = self.0.lock().unwrap().iter().find(|v| pred(v)).cloned() {
                return v;
            }
            assert!(Instant::now() < deadline, "no {what}; events: {:#?}", self.0.lock().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn video_meeting(title: &str) -> MeetingSpec {
    MeetingSpec {
        title: title.into(),
        description: None,
        kind: MeetingKind::Video,
        patient_reference: None,
        schedule: None,
        settings: MeetingSettings::default(),
    }
}

/// The dashboard row of meeting `id`.
fn listed(rt: &tokio::runtime::Runtime, engine: &Engine, id: &Value) -> Value {
    let all = rt.block_on(engine.list_meetings()).unwrap();
    all.into_iter().find(|m| m["meeting"]["id"] == *id).expect("meeting listed")
}

#[test]
fn wrong_pin_is_refused_and_nothing_is_saved() {
    let relay = Relay::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let events = Events::default();
    let engine = Engine::new(dir.path(), events.sink());
    let wrong = "sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let err = rt
        .block_on(engine.connect(RelayConfig { address: relay.addr.clone(), pin: wrong.into() }))
        .unwrap_err();
    assert_eq!(err.code, "pin_mismatch");
    assert_eq!(err.presented_pin.as_deref(), Some(relay.pin.as_str()));
    assert_eq!(engine.saved_relay().unwrap(), None, "a refused relay must not be remembered");
    // Calls need a connection now.
    assert_eq!(rt.block_on(engine.list_meetings()).unwrap_err().code, "not_connected");

    let hello = rt
        .block_on(engine.connect(RelayConfig { address: relay.addr.clone(), pin: relay.pin.clone() }))
        .unwrap();
    assert_eq!(hello.staff, None);
    assert_eq!(
        engine.saved_relay().unwrap(),
        Some(RelayConfig { address: relay.addr.clone(), pin: relay.pin.clone() })
    );
    events.wait("connected event", |v| v["event"] == "connection" && v["state"] == "connected");
}

#[test]
fn staff_meeting_with_a_cli_guest() {
    let relay = Relay::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let (_, enrollment) = relay.staff_add("Dr. Ada");
    let cfg = RelayConfig { address: relay.addr.clone(), pin: relay.pin.clone() };

    // Enroll, then a fresh engine on the same data dir (an app restart) is staff at once.
    {
        let engine = Engine::new(dir.path(), Events::default().sink());
        rt.block_on(engine.connect(cfg.clone())).unwrap();
        let staff = rt.block_on(engine.enroll(&enrollment, "Consulting room 2")).unwrap();
        assert_eq!(staff.name, "Dr. Ada");
    }
    let events = Events::default();
    let engine = Engine::new(dir.path(), events.sink());
    let hello = rt.block_on(engine.connect(engine.saved_relay().unwrap().unwrap())).unwrap();
    assert_eq!(hello.staff.map(|s| s.name).as_deref(), Some("Dr. Ada"));

    let created = rt.block_on(engine.create_meeting(video_meeting("Case review"))).unwrap();
    let code = created["access_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 9, "shown as ABCD-EFGH: {code}");
    let listed = rt.block_on(engine.list_meetings()).unwrap();
    assert!(listed.iter().any(|m| m["access_code"] == code.as_str()), "{listed:?}");

    let joined = rt
        .block_on(engine.join(&code, "Dr. Ada", JoinOptions { camera: true, mic: true, chat_only: false }))
        .unwrap();
    let joined = serde_json::to_value(joined).unwrap();
    assert_eq!(joined["state"], "joined");
    assert!(joined["join"].get("resume_token").is_none(), "the resume token stays in Rust");
    // No devices on this machine: joined without media rather than failing.
    assert_eq!(joined["join"]["you"]["media"]["video"], false);
    let meeting_id: uuid::Uuid = joined["join"]["meeting"]["id"].as_str().unwrap().parse().unwrap();

    let guest = Client::new(&relay, "Pat Guest");
    let mut g = guest.join(&code, &[]);
    g.expect_event("joined", STEP);
    let p = events.wait("guest joined", |v| {
        v["event"] == "participant_joined" && v["participant"]["display_name"] == "Pat Guest"
    });
    let guest_id: uuid::Uuid = p["participant"]["id"].as_str().unwrap().parse().unwrap();

    let id = rt.block_on(engine.send_chat("Hello from the app", false)).unwrap().to_string();
    events.wait("own message announced with its text", |v| {
        v["event"] == "chat_status"
            && v["status"] == "sending"
            && v["client_msg_id"] == id.as_str()
            && v["pending"]["text"] == "Hello from the app"
    });
    events.wait("own message accepted", |v| {
        v["event"] == "chat" && v["own"] == true && v["client_msg_id"] == id.as_str()
    });
    g.expect("app's chat", STEP, |v| v["event"] == "chat" && v["text"] == "Hello from the app");
    g.send("Hello from the CLI");
    events.wait("guest's chat", |v| {
        v["event"] == "chat" && v["own"] == false && v["text"] == "Hello from the CLI"
    });
    let history = engine.chat_history(meeting_id).unwrap();
    // What people wrote (the relay's system lines, e.g. "Pat joined", come with the chat).
    let texts: Vec<_> = history.iter().filter(|m| m.system.is_none()).map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Hello from the app", "Hello from the CLI"]);

    // No camera: asking for video is a clear error, not a crash.
    let err = rt
        .block_on(engine.update_media(clinicmeet_protocol::MediaState {
            audio: false,
            video: true,
            screen: false,
        }))
        .unwrap_err();
    assert_eq!(err.code, "no_device");

    rt.block_on(engine.moderate("remove", guest_id)).unwrap();
    events.wait("guest gone", |v| {
        v["event"] == "participant_left"
            && v["participant_id"] == guest_id.to_string()
            && v["reason"] == "removed"
    });
    g.expect_event("removed", STEP);

    // Ending closes the session; the next call reconnects by itself.
    rt.block_on(engine.end_meeting()).unwrap();
    events.wait("meeting ended", |v| v["event"] == "meeting_ended");
    let again = rt.block_on(engine.list_meetings()).unwrap();
    assert!(again.iter().all(|m| m["meeting"]["id"] != meeting_id.to_string()), "{again:?}");
}

/// The newest frame of `participant` in one `next_frames` batch: (width, height, I420).
/// The newest frame of `participant` among the frames waiting to be sent, if any.
fn frame_of(slots: &clinicmeet_app::frames::FrameSlots, participant: &str) -> Option<(u32, u32, Vec<u8>)> {
    let mut found = None;
    while let Some(m) = slots.take_one() {
        let (w, h, id_len) =
            (u16::from_le_bytes([m[4], m[5]]), u16::from_le_bytes([m[6], m[7]]), m[8] as usize);
        if &m[9..9 + id_len] == participant.as_bytes() {
            found = Some((w.into(), h.into(), m[9 + id_len..].to_vec()));
        }
    }
    found
}

fn embedded_frame_no(w: u32, h: u32, i420: Vec<u8>) -> Option<u64> {
    use clinicmeet_media::frame::VideoFrame;
    let (wu, hu) = (w as usize, h as usize);
    let c = wu.div_ceil(2) * hu.div_ceil(2);
    let f = VideoFrame::from_planes(
        w,
        h,
        i420[..wu * hu].to_vec(),
        wu,
        i420[wu * hu..wu * hu + c].to_vec(),
        i420[wu * hu + c..].to_vec(),
        wu.div_ceil(2),
    )
    .ok()?;
    clinicmeet_media::capture::synthetic::decode_embedded(&f).map(|d| d.0)
}

#[test]
fn media_both_ways_with_the_synthetic_devices() {
    let relay = Relay::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let (_, enrollment) = relay.staff_add("Dr. Ada");
    let cfg = RelayConfig { address: relay.addr.clone(), pin: relay.pin.clone() };
    let events = Events::default();
    let engine = Engine::new(dir.path(), events.sink());
    let synthetic =
        |kind| DeviceInfo { id: SYNTHETIC_ID.into(), label: "test".into(), kind, is_default: true };
    engine.set_devices(DeviceList {
        cameras: vec![synthetic(DeviceKind::Camera)],
        microphones: vec![synthetic(DeviceKind::Microphone)],
        ..DeviceList::default()
    });
    rt.block_on(engine.connect(cfg)).unwrap();
    rt.block_on(engine.enroll(&enrollment, "Room 1")).unwrap();

    // Device check: the test pattern in the self tile, the tone on the meter.
    engine.start_preview().unwrap();
    events.wait("local preview", |v| {
        v["event"] == "video" && v["participant_id"] == "local" && v["available"] == true
    });
    events.wait("mic level", |v| v["event"] == "audio_level" && v["level"].as_f64().unwrap_or(0.0) > 0.2);

    let spec = MeetingSpec {
        title: "Media".into(),
        description: None,
        kind: MeetingKind::Video,
        patient_reference: None,
        schedule: None,
        settings: MeetingSettings::default(),
    };
    let code = rt.block_on(engine.create_meeting(spec)).unwrap()["access_code"].as_str().unwrap().to_string();
    let joined = rt
        .block_on(engine.join(&code, "Dr. Ada", JoinOptions { camera: true, mic: true, chat_only: false }))
        .unwrap();
    let joined = serde_json::to_value(joined).unwrap();
    assert_eq!(
        joined["join"]["you"]["media"],
        serde_json::json!({"audio": true, "video": true, "screen": false})
    );

    let guest = Client::new(&relay, "Pat Guest");
    let mut g = guest.join(&code, &["--publish", "synthetic"]);
    let me = g.expect_event("joined", STEP);
    let guest_id = clinicmeet_e2e::my_id(&me);

    // The guest's video reaches the app's frame slots, scaled, frame numbers readable and advancing.
    events.wait("guest video available", |v| {
        v["event"] == "video" && v["participant_id"] == guest_id.as_str() && v["available"] == true
    });
    engine.frames().set_size(&guest_id, 320, 320);
    let deadline = Instant::now() + STEP;
    let mut numbers = Vec::new();
    while numbers.len() < 2 {
        assert!(Instant::now() < deadline, "no readable frames of the guest; got {numbers:?}");
        std::thread::sleep(Duration::from_millis(100));
        if let Some((w, h, i420)) = frame_of(&engine.frames(), &guest_id) {
            if (w, h) == (320, 180) {
                if let Some(n) = embedded_frame_no(w, h, i420) {
                    numbers.push((Instant::now(), n));
                    std::thread::sleep(Duration::from_millis(1000));
                }
            }
        }
    }
    let (a, b) = (numbers[0], numbers[1]);
    let rate = (b.1 as f64 - a.1 as f64) / (b.0 - a.0).as_secs_f64();
    assert!(rate > 15.0, "the guest's frame numbers advanced {rate:.1}/s in the app");

    // The app's test pattern and tone reach the guest.
    let stats = g.expect("the app's video decoded by the guest", STEP, |v| {
        v["event"] == "stats" && v["kind"] == "video" && v["fps"].as_f64().unwrap_or(0.0) >= 15.0
    });
    assert!(stats["frames_decoded"].as_u64().unwrap_or(0) > 0, "{stats}");
    g.expect("the app's audio decoded by the guest", STEP, |v| {
        v["event"] == "stats" && v["kind"] == "audio" && v["packets_received"].as_u64().unwrap_or(0) > 0
    });

    // Camera off: the guest stops receiving the app's video.
    rt.block_on(engine.update_media(clinicmeet_protocol::MediaState {
        audio: true,
        video: false,
        screen: false,
    }))
    .unwrap();
    g.expect("the app's video stopped", STEP, |v| {
        v["event"] == "stats" && v["kind"] == "video" && v["fps"].as_f64() == Some(0.0)
    });
    g.leave();
}

#[test]
fn host_rekeys_the_meeting_and_the_list_offers_the_new_invite_link() {
    let relay = Relay::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let (_, enrollment) = relay.staff_add("Dr. Ada");
    let engine = Engine::new(dir.path(), Events::default().sink());
    rt.block_on(engine.connect(RelayConfig { address: relay.addr.clone(), pin: relay.pin.clone() })).unwrap();
    rt.block_on(engine.enroll(&enrollment, "Consulting room 1")).unwrap();

    let created = rt.block_on(engine.create_meeting(video_meeting("Guessed code"))).unwrap();
    let id = created["meeting"]["id"].clone();
    let (old_code, old_invite) = (created["access_code"].clone(), created["invite_secret"].clone());
    assert!(old_invite.is_string(), "{created}");
    let row = listed(&rt, &engine, &id);
    assert_eq!(
        (&row["access_code"], &row["invite_secret"]),
        (&old_code, &old_invite),
        "the creator's device knows both"
    );

    // Only in the meeting, as its host.
    assert_eq!(rt.block_on(engine.rekey_meeting()).unwrap_err().code, "invalid_state");
    let joined = rt
        .block_on(engine.join(
            old_code.as_str().unwrap(),
            "Dr. Ada",
            JoinOptions { camera: false, mic: false, chat_only: true },
        ))
        .unwrap();
    assert_eq!(serde_json::to_value(joined).unwrap()["state"], "joined");
    let rekeyed = rt.block_on(engine.rekey_meeting()).unwrap();
    let (new_code, new_invite) = (rekeyed["access_code"].clone(), rekeyed["invite_secret"].clone());
    assert_eq!(new_code.as_str().map(str::len), Some(9), "shown as ABCD-EFGH: {rekeyed}");
    assert_eq!(new_invite.as_str().map(str::len), Some(26), "{rekeyed}");
    assert!(new_code != old_code && new_invite != old_invite);
    let row = listed(&rt, &engine, &id);
    assert_eq!(
        (&row["access_code"], &row["invite_secret"]),
        (&new_code, &new_invite),
        "the list shows the new ones"
    );

    // The old code and link stop working at once; the new code lets people in.
    let guest = Client::new(&relay, "Pat Guest");
    for old in [&old_code, &old_invite] {
        let (ok, out) = guest.run(&["join", old.as_str().unwrap()]);
        assert!(!ok && out.iter().any(|v| is_error(v, "invalid_code")), "{out:?}");
    }
    let mut g = guest.join(new_code.as_str().unwrap(), &[]);
    g.expect_event("joined", STEP);
}
