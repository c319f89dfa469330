//! The relay binary on loopback, driven by a raw QUIC client.

mod common;

use clinicmeet_protocol::{
    ErrorCode, Event, MediaState, MeetingKind, MeetingSettings, MeetingSpec, Request, Response, ServerMessage,
};
use common::*;
use uuid::Uuid;

fn spec(settings: MeetingSettings) -> MeetingSpec {
    MeetingSpec {
        title: "Ward round".into(),
        description: None,
        kind: MeetingKind::Video,
        patient_reference: None,
        schedule: None,
        settings,
    }
}

async fn enrolled(relay: &Relay, name: &str) -> (Client, String) {
    let (_, code) = add_staff(&relay.data_dir, name);
    let mut c = Client::connect(relay).await;
    c.hello(None).await.unwrap();
    let Response::Enrolled { device_credential, .. } = c
        .call(Request::Enroll { enrollment_code: code.to_lowercase(), device_name: "laptop".into() })
        .await
        .unwrap()
    else {
        panic!()
    };
    (c, device_credential)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_create_join_chat_and_resume_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--resume-grace-secs", "30"]);
    let (mut host, cred) = enrolled(&relay, "Dr Ada").await;

    // A guest cannot create meetings.
    let mut guest = Client::connect(&relay).await;
    guest.hello(None).await.unwrap();
    let err =
        guest.call(Request::CreateMeeting { spec: spec(MeetingSettings::default()) }).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthenticated);

    let Response::MeetingCreated { access_code, meeting, .. } =
        host.call(Request::CreateMeeting { spec: spec(MeetingSettings::default()) }).await.unwrap()
    else {
        panic!()
    };
    let Response::Joined(js) = host
        .call(Request::Join {
            access_code: access_code.clone(),
            display_name: "Ada".into(),
            media: MediaState::default(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(js.you.role, clinicmeet_protocol::Role::Host);

    // Wrong code, then the code without dash in lower case.
    let err = guest
        .call(Request::Join {
            access_code: "ZZZZ-ZZZZ".into(),
            display_name: "Bob".into(),
            media: MediaState::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCode);
    let Response::Joined(gjs) = guest
        .call(Request::Join {
            access_code: access_code.replace('-', "").to_lowercase(),
            display_name: "Bob".into(),
            media: MediaState::default(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(gjs.you.role, clinicmeet_protocol::Role::Guest);
    assert!(gjs.meeting.patient_reference.is_none());
    host.event(|e| matches!(e, Event::ParticipantJoined(_))).await;

    // Chat: stored once even when retried; the other side gets one event.
    let cid = Uuid::now_v7();
    let send = Request::SendChat {
        client_msg_id: cid,
        text: "hello".into(),
        staff_only: false,
        attachments: vec![],
    };
    let Response::ChatAccepted { message: m1 } = guest.call(send.clone()).await.unwrap() else { panic!() };
    let Response::ChatAccepted { message: m2 } = guest.call(send).await.unwrap() else { panic!() };
    assert_eq!(m1, m2);
    assert_eq!(m1.seq, gjs.chat_seq + 1, "after the system lines the guest saw on joining");
    let Event::Chat { message } =
        host.event(|e| matches!(e, Event::Chat { message } if message.system.is_none())).await
    else {
        panic!()
    };
    assert_eq!(message.text, "hello");
    // A staff note never reaches the guest.
    let Response::ChatAccepted { message: note } = host
        .call(Request::SendChat {
            client_msg_id: Uuid::now_v7(),
            text: "note".into(),
            staff_only: true,
            attachments: vec![],
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((note.seq, note.staff_only), (1, true));
    let Response::ChatHistory { messages, .. } = guest
        .call(Request::ChatHistory { meeting_id: None, since_seq: 0, notes_since_seq: 0, limit: 100 })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(messages.iter().filter(|m| m.system.is_none()).count(), 1);
    assert!(guest.events.iter().all(|e| !matches!(e, Event::Chat { message } if message.staff_only)));

    // Restart the relay: the guest resumes with its token and the chat is still there.
    let token = gjs.resume_token.clone();
    drop(relay);
    let relay = start(dir.path(), &["--resume-grace-secs", "30"]);
    let mut guest = Client::connect(&relay).await;
    guest.hello(None).await.unwrap();
    let Response::Joined(again) = guest.call(Request::Resume { resume_token: token }).await.unwrap() else {
        panic!()
    };
    assert_eq!(again.you.id, gjs.you.id);
    assert!(again.chat_seq >= m1.seq, "the chat is still there");
    assert_eq!(again.notes_seq, 0);
    // The staff credential still works after the restart.
    let mut host = Client::connect(&relay).await;
    let Response::Hello { staff, .. } = host.hello(Some(&cred)).await.unwrap() else { panic!() };
    assert_eq!(staff.unwrap().name, "Dr Ada");
    let mut bad = Client::connect(&relay).await;
    assert_eq!(bad.hello(Some("nope")).await.unwrap_err().code, ErrorCode::InvalidCredential);
    let _ = meeting;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_get_errors_and_other_clients_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &[]);

    // Not hello first: error, then the relay closes.
    let mut c = Client::connect(&relay).await;
    c.send(Request::Ping).await;
    match c.next().await {
        Some(ServerMessage::Error { error, .. }) => assert_eq!(error.code, ErrorCode::InvalidState),
        other => panic!("{other:?}"),
    }
    assert!(c.next().await.is_none(), "closed after a hello violation");

    // Version mismatch.
    let mut c = Client::connect(&relay).await;
    let err = c
        .call(Request::Hello { min_version: 7, max_version: 9, client: "x".into(), device_credential: None })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UpgradeRequired);

    let mut good = Client::connect(&relay).await;
    good.hello(None).await.unwrap();

    // Malformed and unknown messages: errors, connection keeps serving.
    let mut c = Client::connect(&relay).await;
    c.hello(None).await.unwrap();
    c.send_raw(&clinicmeet_protocol::frame::frame_bytes(b"{not json").unwrap()).await;
    c.send_raw(&clinicmeet_protocol::frame::frame_bytes(br#"{"id":42,"type":"fly"}"#).unwrap()).await;
    c.send_raw(
        &clinicmeet_protocol::frame::frame_bytes(br#"{"id":43,"type":"admit","participant_id":5}"#).unwrap(),
    )
    .await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        match c.next().await {
            Some(ServerMessage::Error { id, error }) => codes.push((id, error.code)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        codes,
        vec![
            (None, ErrorCode::Malformed),
            (Some(42), ErrorCode::UnknownMessage),
            (Some(43), ErrorCode::Malformed)
        ]
    );
    // Out of order: chat before join.
    let err = c
        .call(Request::SendChat {
            client_msg_id: Uuid::now_v7(),
            text: "x".into(),
            staff_only: false,
            attachments: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidState);
    assert!(matches!(c.call(Request::Ping).await, Ok(Response::Pong { .. })));

    // Oversized frame: error, then closed.
    let mut big = Client::connect(&relay).await;
    big.hello(None).await.unwrap();
    big.send_raw(&((clinicmeet_protocol::limits::MAX_FRAME_LEN as u32) + 1).to_be_bytes()).await;
    match big.next().await {
        Some(ServerMessage::Error { error, .. }) => assert_eq!(error.code, ErrorCode::TooLarge),
        other => panic!("{other:?}"),
    }
    assert!(big.next().await.is_none());

    assert!(matches!(good.call(Request::Ping).await, Ok(Response::Pong { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_slow_the_address_and_are_audited_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        dir.path(),
        &["--max-failed-codes-per-ip", "5", "--failed-code-delay-secs", "2", "--audit-window-secs", "1"],
    );
    let (mut host, _) = enrolled(&relay, "Dr Ada").await;
    let Response::MeetingCreated { access_code, .. } =
        host.call(Request::CreateMeeting { spec: spec(MeetingSettings::default()) }).await.unwrap()
    else {
        panic!()
    };
    let mut g = Client::connect(&relay).await;
    g.hello(None).await.unwrap();
    let join = |code: &str| Request::Join {
        access_code: code.into(),
        display_name: "Guest".into(),
        media: MediaState::default(),
    };
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(g.call(join("AAAA-AAAA")).await.unwrap_err().code);
    }
    assert_eq!(&codes[..5], &[ErrorCode::InvalidCode; 5]);
    assert_eq!(&codes[5..], &[ErrorCode::RateLimited; 3]);
    let err = g.call(join(&access_code)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited, "even the right code waits out the delay");
    assert!(err.retry_after_ms.unwrap() <= 2000);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(matches!(g.call(join(&access_code)).await, Ok(Response::Joined(_))));

    let store = open_store(dir.path());
    // One row per (action, source, window), with the count.
    let failed = store.audit_rows(Some("code_failed")).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].source.as_deref(), Some("127.0.0.1"));
    assert!(failed[0].detail.starts_with("count=5 "), "{failed:?}");
    let refused = store.audit_rows(Some("code_attempt_refused")).unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].detail.starts_with("count=4 "), "{refused:?}");

    let http = relay.http.clone().unwrap();
    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(http).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(body.contains("clinicmeet_failed_joins_total 9"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_relay_refuses_and_staff_read_chat_after_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--max-connections", "1"]);
    let (mut host, cred) = enrolled(&relay, "Dr Ada").await;
    let mut extra = Client::connect(&relay).await;
    assert_eq!(extra.hello(None).await.unwrap_err().code, ErrorCode::ServerBusy);
    assert!(extra.next().await.is_none(), "closed after server_busy");

    let Response::MeetingCreated { access_code, meeting, .. } =
        host.call(Request::CreateMeeting { spec: spec(MeetingSettings::default()) }).await.unwrap()
    else {
        panic!()
    };
    host.call(Request::Join { access_code, display_name: "Ada".into(), media: MediaState::default() })
        .await
        .unwrap();
    let mut seqs = Vec::new();
    for text in ["one", "two"] {
        let Response::ChatAccepted { message } = host
            .call(Request::SendChat {
                client_msg_id: Uuid::now_v7(),
                text: text.into(),
                staff_only: false,
                attachments: vec![],
            })
            .await
            .unwrap()
        else {
            panic!()
        };
        seqs.push(message.seq);
    }
    host.call(Request::SendChat {
        client_msg_id: Uuid::now_v7(),
        text: "note".into(),
        staff_only: true,
        attachments: vec![],
    })
    .await
    .unwrap();
    host.call(Request::EndMeeting).await.unwrap();
    drop(host);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let mut again = Client::connect(&relay).await;
    again.hello(Some(&cred)).await.unwrap();
    let Response::ChatHistory { messages, more } = again
        .call(Request::ChatHistory {
            meeting_id: Some(meeting.id),
            since_seq: seqs[0],
            notes_since_seq: 0,
            limit: 10,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    let texts: Vec<&str> = messages.iter().filter(|m| m.system.is_none()).map(|m| m.text.as_str()).collect();
    assert_eq!((texts, more), (vec!["two", "note"], false));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_writes_the_coalesced_failures_of_the_open_window() {
    let dir = tempfile::tempdir().unwrap();
    // The default audit window (60 s) is still open when the relay is stopped.
    let mut relay = start(dir.path(), &[]);
    let mut g = Client::connect(&relay).await;
    g.hello(None).await.unwrap();
    for _ in 0..3 {
        let join = Request::Join {
            access_code: "AAAA-AAAA".into(),
            display_name: "G".into(),
            media: MediaState::default(),
        };
        assert_eq!(g.call(join).await.unwrap_err().code, ErrorCode::InvalidCode);
    }
    let pid = relay.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || {
        let s = relay.child.wait();
        (relay, s)
    })
    .await
    .unwrap()
    .1
    .unwrap();
    assert!(status.success(), "the relay exits cleanly on SIGTERM: {status}");
    let store = open_store(dir.path());
    let failed = store.audit_rows(Some("code_failed")).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].detail.starts_with("count=3 "), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_every_file_with_secrets_or_chat_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let relay = start(&data, &[]);
    let (mut host, credential) = enrolled(&relay, "Dr Ada").await;
    let Response::MeetingCreated { access_code, invite_secret, .. } =
        host.call(Request::CreateMeeting { spec: spec(MeetingSettings::default()) }).await.unwrap()
    else {
        panic!()
    };
    let join = Request::Join {
        access_code: access_code.clone(),
        display_name: "Ada".into(),
        media: MediaState::default(),
    };
    let Response::Joined(js) = host.call(join).await.unwrap() else { panic!() };
    let mode = |name: &str| std::fs::metadata(data.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(""), 0o700, "data directory");
    for file in ["relay.db", "relay.db-wal", "relay.db-shm", "code-secret", "resume-key", "relay-key.pem"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    // Secrets that let someone in are stored only as keyed hashes: no file holds the
    // access code, the invite secret, the device credential or the resume token.
    let stored: Vec<u8> =
        ["relay.db", "relay.db-wal"].iter().flat_map(|f| std::fs::read(data.join(f)).unwrap()).collect();
    let invite = invite_secret.expect("an invite secret");
    for (what, secret) in [
        ("access code", access_code.clone()),
        ("access code", access_code.replace('-', "")),
        ("invite secret", invite),
        ("device credential", credential),
        ("resume token", js.resume_token),
    ] {
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()), "{what} stored in the clear");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_removed_by_the_operator_lose_their_open_sessions_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--resume-grace-secs", "30"]);
    let (mut host, _) = enrolled(&relay, "Dr Ada").await;
    let (staff_id, code) = add_staff(&relay.data_dir, "Nurse Bo");
    let mut nurse = Client::connect(&relay).await;
    nurse.hello(None).await.unwrap();
    let Response::Enrolled { device_credential, .. } =
        nurse.call(Request::Enroll { enrollment_code: code, device_name: "ward pc".into() }).await.unwrap()
    else {
        panic!()
    };
    let Response::MeetingCreated { access_code, .. } =
        host.call(Request::CreateMeeting { spec: spec(MeetingSettings::default()) }).await.unwrap()
    else {
        panic!()
    };
    let join = |name: &str| Request::Join {
        access_code: access_code.clone(),
        display_name: name.into(),
        media: MediaState::default(),
    };
    host.call(join("Ada")).await.unwrap();
    let Response::Joined(njs) = nurse.call(join("Bo")).await.unwrap() else { panic!() };
    // The nurse's place cannot be resumed with the token alone, from a device without her credential.
    let mut thief = Client::connect(&relay).await;
    thief.hello(None).await.unwrap();
    let err = thief.call(Request::Resume { resume_token: njs.resume_token.clone() }).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthenticated);

    // The operator removes her while she is in the meeting.
    let started = std::time::Instant::now();
    let out = std::process::Command::new(bin())
        .args(["--data-dir", relay.data_dir.to_str().unwrap(), "staff", "remove", &staff_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(matches!(nurse.event(|e| matches!(e, Event::Removed)).await, Event::Removed));
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    host.event(|e| matches!(e, Event::ParticipantLeft(l) if l.participant_id == njs.you.id)).await;
    assert!(nurse.next().await.is_none(), "her connection is closed");
    // Her credential and her place are both gone.
    let mut again = Client::connect(&relay).await;
    assert_eq!(again.hello(Some(&device_credential)).await.unwrap_err().code, ErrorCode::InvalidCredential);
    again.hello(None).await.unwrap();
    let err = again.call(Request::Resume { resume_token: njs.resume_token }).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ResumeFailed);
    let audit = relay_audit(&relay.data_dir, "staff_revoked");
    assert!(audit.contains("disconnected"), "{audit}");
    println!("staff remove reached the open session in {took:?}");
}

fn relay_audit(data_dir: &std::path::Path, action: &str) -> String {
    let out = std::process::Command::new(bin())
        .args(["--data-dir", data_dir.to_str().unwrap(), "audit", "--action", action])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
