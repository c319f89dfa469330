//! Waiting room, host actions and guessing limits through the relay process.

mod common;

use std::time::{Duration, Instant};

use clinicmeet_protocol::{
    ErrorCode, Event, MediaState, MeetingKind, MeetingSettings, MeetingSpec, ParticipantConnection,
    ParticipantLeft, Request, Response, ServerMessage,
};
use common::*;
use uuid::Uuid;

fn spec(kind: MeetingKind, waiting_room: bool) -> MeetingSpec {
    MeetingSpec {
        title: "Clinic".into(),
        description: Some("weekly".into()),
        kind,
        patient_reference: None,
        schedule: None,
        settings: MeetingSettings { waiting_room, ..MeetingSettings::default() },
    }
}

fn join(code: &str, name: &str) -> Request {
    Request::Join { access_code: code.into(), display_name: name.into(), media: MediaState::default() }
}

async fn staff_client(relay: &Relay, name: &str) -> Client {
    let (_, code) = add_staff(&relay.data_dir, name);
    let mut c = Client::connect(relay).await;
    c.hello(None).await.unwrap();
    c.call(Request::Enroll { enrollment_code: code, device_name: "pc".into() }).await.unwrap();
    c
}

async fn create(c: &mut Client, kind: MeetingKind, waiting_room: bool) -> String {
    match c.call(Request::CreateMeeting { spec: spec(kind, waiting_room) }).await.unwrap() {
        Response::MeetingCreated { access_code, .. } => access_code,
        other => panic!("{other:?}"),
    }
}

async fn guest(relay: &Relay) -> Client {
    let mut g = Client::connect(relay).await;
    g.hello(None).await.unwrap();
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_from_many_addresses_spend_only_their_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &[]);
    let mut host = staff_client(&relay, "Dr Ada").await;
    let code = create(&mut host, MeetingKind::Video, false).await;
    let other = create(&mut host, MeetingKind::Video, false).await;
    // 40 wrong codes in the meeting's bucket (same first two characters) from
    // 8 addresses: the bucket's shared budget (30) is spent.
    let prefix: String = code.chars().take(2).collect();
    let mut guessers = Vec::new();
    for i in 2..10u8 {
        let mut g = Client::connect_from(&relay, [127, 0, 0, i]).await;
        g.hello(None).await.unwrap();
        for k in 0..5 {
            let c = clinicmeet_protocol::access_code::ALPHABET[usize::from(i)] as char;
            let guess = format!("{prefix}{}{c}-ZZZZ", ['A', 'B', 'C', 'D', 'E'][k]);
            let err = g.call(join(&guess, "x")).await.unwrap_err();
            assert!(matches!(err.code, ErrorCode::InvalidCode | ErrorCode::RateLimited), "{err:?}");
        }
        guessers.push(g);
    }
    // A guesser's address waits, even with the right code, but briefly (1/0.5 s).
    let err = guessers[0].call(join(&code, "Pat")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
    assert!(err.retry_after_ms.unwrap() <= 2000, "{err:?}");
    // An address that never failed gets in at once (the clean lane)…
    let mut fresh = Client::connect_from(&relay, [127, 0, 0, 20]).await;
    fresh.hello(None).await.unwrap();
    assert!(matches!(fresh.call(join(&code, "Pat")).await, Ok(Response::Joined(_))));
    // …so does the patient of another meeting, even from a guessing address.
    assert!(matches!(
        guessers[1].call(join(&other, "Pat")).await,
        Ok(Response::Joined(_) | Response::Waiting { .. })
    ));
    // And the waiting guesser after its wait.
    tokio::time::sleep(Duration::from_millis(err.retry_after_ms.unwrap() + 100)).await;
    assert!(matches!(guessers[0].call(join(&code, "Pat")).await, Ok(Response::Joined(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_rate_limit_says_when_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--chat-rate", "5", "--chat-burst", "3"]);
    let mut host = staff_client(&relay, "Dr Ada").await;
    let code = create(&mut host, MeetingKind::Video, false).await;
    host.call(join(&code, "Ada")).await.unwrap();
    let mut results = Vec::new();
    for _ in 0..4 {
        let r = host
            .call(Request::SendChat {
                client_msg_id: Uuid::now_v7(),
                text: "hi".into(),
                staff_only: false,
                attachments: vec![],
            })
            .await;
        results.push(r.map_err(|e| (e.code, e.retry_after_ms.is_some())));
    }
    assert!(results[..3].iter().all(Result::is_ok));
    assert_eq!(results[3].clone().unwrap_err(), (ErrorCode::RateLimited, true));
}

/// Figures (printed, not asserted): chat round trip and fan-out latency on
/// loopback, and relay memory per idle participant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_chat_latency_and_memory_per_participant() {
    let dir = tempfile::tempdir().unwrap();
    // 200 messages as fast as the relay answers: above the default request budget
    // (50/s, burst 200) as well as the chat one.
    let relay = start(
        dir.path(),
        &[
            "--chat-rate",
            "1000",
            "--chat-burst",
            "1000",
            "--request-rate",
            "1000",
            "--request-burst",
            "1000",
            // 100 idle guests below, all from 127.0.0.1.
            "--max-connections-per-source",
            "200",
        ],
    );
    let mut host = staff_client(&relay, "Dr Ada").await;
    let mut big = spec(MeetingKind::Video, false);
    big.settings.max_participants = 500;
    let Response::MeetingCreated { access_code: code, .. } =
        host.call(Request::CreateMeeting { spec: big }).await.unwrap()
    else {
        panic!()
    };
    host.call(join(&code, "Ada")).await.unwrap();
    let mut other = guest(&relay).await;
    other.call(join(&code, "Gil")).await.unwrap();

    let n = 200;
    let mut rtt = Vec::with_capacity(n);
    let mut fanout = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let r = host
            .call(Request::SendChat {
                client_msg_id: Uuid::now_v7(),
                text: format!("m{i}"),
                staff_only: false,
                attachments: vec![],
            })
            .await;
        rtt.push(t.elapsed());
        if let Err(e) = r {
            panic!("message {i} refused: {e:?}");
        }
        loop {
            match other.next().await {
                Some(ServerMessage::Event { event: Event::Chat { .. } }) => break,
                Some(_) => continue,
                None => panic!("closed"),
            }
        }
        fanout.push(t.elapsed());
    }
    rtt.sort();
    fanout.sort();
    eprintln!(
        "FIGURE chat round trip (send -> chat_accepted, stored with fsync): median {:?}, p95 {:?}; \
         to the other participant: median {:?}, p95 {:?}",
        rtt[n / 2],
        rtt[n * 95 / 100],
        fanout[n / 2],
        fanout[n * 95 / 100]
    );

    let rss = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let pid = relay.child.id();
    let before = rss(pid);
    let count = 100;
    let mut idle = Vec::new();
    for i in 0..count {
        let mut g = guest(&relay).await;
        g.call(join(&code, &format!("idle {i}"))).await.unwrap();
        idle.push(g);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss(pid);
    eprintln!(
        "FIGURE relay memory per idle participant (QUIC connection + session + room entry): {} KiB ({} -> {} KiB for {count})",
        after.saturating_sub(before) / count,
        before,
        after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_keeps_the_place_for_the_grace_then_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--resume-grace-secs", "1"]);
    let mut host = staff_client(&relay, "Dr Ada").await;
    let code = create(&mut host, MeetingKind::Video, false).await;
    host.call(join(&code, "Ada")).await.unwrap();

    // Drops and resumes within the grace: same place, others see it come back.
    let mut g = guest(&relay).await;
    let Response::Joined(js) = g.call(join(&code, "Gil")).await.unwrap() else { panic!() };
    g.conn.close(0u32.into(), b"network gone");
    host.event(|e| matches!(e, Event::ConnectionChanged(ParticipantConnection { connected: false, .. })))
        .await;
    let mut g = guest(&relay).await;
    let Response::Joined(again) =
        g.call(Request::Resume { resume_token: js.resume_token.clone() }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(again.you.id, js.you.id);
    host.event(|e| matches!(e, Event::ConnectionChanged(ParticipantConnection { connected: true, .. })))
        .await;

    // Drops for longer than the grace: leaves with reason connection_lost; the token is spent.
    g.conn.close(0u32.into(), b"network gone");
    host.event(|e| {
        matches!(
            e,
            Event::ParticipantLeft(ParticipantLeft {
                reason: clinicmeet_protocol::LeaveReason::ConnectionLost,
                ..
            })
        )
    })
    .await;
    let mut g = guest(&relay).await;
    let err = g.call(Request::Resume { resume_token: js.resume_token }).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ResumeFailed);
    assert_eq!(
        g.call(Request::Resume { resume_token: "forged".into() }).await.unwrap_err().code,
        ErrorCode::ResumeFailed
    );
}
