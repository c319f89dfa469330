//! The relay's availability under attack, against the relay process on loopback
//! with real QUIC and WebSocket (TLS) sockets: bounded queues, slow readers,
//! oversized messages, per-source connection caps, hello deadlines, streams
//! and pings. Figures (RSS, join times) are printed; run with `--nocapture`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clinicmeet_protocol::{
    ErrorCode, Event, MediaState, MeetingKind, MeetingSettings, MeetingSpec, Request, Response, ServerMessage,
};
use common::*;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

fn spec() -> MeetingSpec {
    MeetingSpec {
        title: "Clinic".into(),
        description: None,
        kind: MeetingKind::Video,
        patient_reference: None,
        schedule: None,
        settings: MeetingSettings { waiting_room: false, ..MeetingSettings::default() },
    }
}

fn join(code: &str, name: &str) -> Request {
    Request::Join { access_code: code.into(), display_name: name.into(), media: MediaState::default() }
}

/// An enrolled host in a new meeting: (client, access code).
async fn host_in_meeting(relay: &Relay) -> (Client, String) {
    host_in_meeting_from(relay, [127, 0, 0, 1]).await
}

async fn host_in_meeting_from(relay: &Relay, ip: [u8; 4]) -> (Client, String) {
    let (_, code) = add_staff(&relay.data_dir, "Dr Ada");
    let mut c = Client::connect_from(relay, ip).await;
    c.hello(None).await.unwrap();
    c.call(Request::Enroll { enrollment_code: code, device_name: "pc".into() }).await.unwrap();
    let Response::MeetingCreated { access_code, .. } =
        c.call(Request::CreateMeeting { spec: spec() }).await.unwrap()
    else {
        panic!()
    };
    c.call(join(&access_code, "Ada")).await.unwrap();
    (c, access_code)
}

/// The relay's resident set size, KiB (from /proc/<pid>/status).
fn rss_kib(relay: &Relay) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", relay.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// One counter or gauge from the relay's /metrics.
async fn metric(relay: &Relay, name: &str) -> u64 {
    let http = relay.http.clone().unwrap();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(http).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    })
    .await
    .unwrap()
}

/// The QUIC application close (code, reason) that ended `conn`, waiting up to `within`.
async fn closed_by_relay(conn: &quinn::Connection, within: Duration) -> Option<(u64, String)> {
    match tokio::time::timeout(within, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => {
            Some((c.error_code.into_inner(), String::from_utf8_lossy(&c.reason).into_owned()))
        }
        Ok(other) => panic!("closed otherwise: {other}"),
        Err(_) => None,
    }
}

// ---------------------------------------------------------------------------
// Bounded queues

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_as_slow_consumer_and_resumes_losing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        dir.path(),
        &[
            "--sqlite-sync",
            "normal",
            "--chat-rate",
            "10000",
            "--chat-burst",
            "10000",
            "--request-rate",
            "100000",
            "--request-burst",
            "100000",
            "--output-budget-kib",
            "512",
        ],
    );
    let (mut host, code) = host_in_meeting(&relay).await;
    let mut slow = Client::connect(&relay).await;
    slow.hello(None).await.unwrap();
    let Response::Joined(js) = slow.call(join(&code, "Slow")).await.unwrap() else { panic!() };
    host.event(|e| matches!(e, Event::ParticipantJoined(_))).await;
    let rss_before = rss_kib(&relay);

    // The host sends 8 KiB chat messages; `slow` reads nothing from now on.
    let text = "x".repeat(clinicmeet_protocol::limits::MAX_CHAT_TEXT_BYTES);
    let mut sent = 0u64;
    let started = Instant::now();
    let mut closed = None;
    while closed.is_none() && sent < 2000 {
        let mut ids = Vec::new();
        for _ in 0..20 {
            let req = Request::SendChat {
                client_msg_id: Uuid::now_v7(),
                text: text.clone(),
                staff_only: false,
                attachments: vec![],
            };
            ids.push(host.send(req).await);
        }
        for id in ids {
            assert!(matches!(host.reply_to(id).await, Ok(Response::ChatAccepted { .. })));
            sent += 1;
        }
        closed = closed_by_relay(&slow.conn, Duration::from_millis(1)).await;
    }
    let closed = match closed {
        Some(c) => Some(c),
        None => closed_by_relay(&slow.conn, Duration::from_secs(5)).await,
    };
    let rss_after = rss_kib(&relay);
    println!(
        "slow consumer: closed {:?} after {sent} messages of 8 KiB ({} KiB) in {:?}; relay RSS {rss_before} -> {rss_after} KiB",
        closed,
        sent * 8,
        started.elapsed()
    );
    assert_eq!(closed, Some((1, "slow_consumer".to_string())), "the slow reader is closed as slow_consumer");
    // Budget 512 KiB + what the client's QUIC receive window (~1.2 MB) absorbs: far below the 16 MB sent if unbounded.
    assert!(sent * 8 < 4 * 1024, "closed within a few MiB of backlog, not after {sent} messages");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "relay memory stays bounded: {rss_before} -> {rss_after} KiB"
    );
    assert_eq!(metric(&relay, "clinicmeet_slow_consumers_total").await, 1);

    // More chat after the close costs the relay nothing for the gone reader.
    for _ in 0..50 {
        let req = Request::SendChat {
            client_msg_id: Uuid::now_v7(),
            text: text.clone(),
            staff_only: false,
            attachments: vec![],
        };
        host.call(req).await.unwrap();
        sent += 1;
    }

    // It resumes its place and resyncs: every message is there, none twice.
    let mut again = Client::connect(&relay).await;
    again.hello(None).await.unwrap();
    let Response::Joined(back) =
        again.call(Request::Resume { resume_token: js.resume_token.clone() }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(back.you.id, js.you.id, "same place");
    // The chat sequence also numbers the relay's system lines (joined, …).
    assert!(back.chat_seq >= sent);
    let mut seqs = Vec::new();
    let mut written = 0;
    loop {
        let since = seqs.last().copied().unwrap_or(0);
        let Response::ChatHistory { messages, more } = again
            .call(Request::ChatHistory { meeting_id: None, since_seq: since, notes_since_seq: 0, limit: 500 })
            .await
            .unwrap()
        else {
            panic!()
        };
        seqs.extend(messages.iter().map(|m| m.seq));
        written += messages.iter().filter(|m| m.system.is_none()).count() as u64;
        if !more {
            break;
        }
    }
    assert_eq!(seqs, (1..=back.chat_seq).collect::<Vec<_>>(), "every line once, in order");
    assert_eq!(written, sent, "every message people wrote");
}

/// A masked client frame header (FIN set) for a payload of `len` bytes.
fn ws_header(opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= u16::MAX as u64 {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0, 0, 0, 0]); // mask key 0: the payload goes as is
    h
}

#[cfg(feature = "browser-guests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_message_over_the_limit_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--https-listen", "127.0.0.1:0", "--webrtc-udp", "0"]);
    let mut ws = raw_websocket(&relay, [127, 0, 0, 1].into()).await;
    // A 1 MiB text message (over the 256 KiB frame limit, under tungstenite's
    // 16 MiB default): only its header and 1 KiB are sent. A relay that buffers
    // before checking would wait for the rest and never answer.
    ws.write_all(&ws_header(0x1, 1024 * 1024)).await.unwrap();
    ws.write_all(&[b'x'; 1024]).await.unwrap();
    ws.flush().await.unwrap();
    let started = Instant::now();
    let (got, closed) = read_until_closed(&mut ws, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    println!("oversized websocket message: closed={closed} after {:?}; got {text:?}", started.elapsed());
    assert!(text.contains("too_large"), "the guest is told why: {text:?}");
    assert!(closed, "and the relay closes the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_junk_frames_are_charged_by_length_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    // The default budget: 50 requests/s, burst 200; a 256 KiB frame costs 64.
    let relay = start(dir.path(), &[]);
    let mut c = Client::connect(&relay).await;
    c.hello(None).await.unwrap();
    let junk = vec![b'x'; clinicmeet_protocol::limits::MAX_FRAME_LEN];
    let framed = clinicmeet_protocol::frame::frame_bytes(&junk).unwrap();
    for _ in 0..6 {
        c.send_raw(&framed).await;
    }
    let mut codes = Vec::new();
    for _ in 0..6 {
        match c.next().await {
            Some(ServerMessage::Error { error, .. }) => codes.push(error.code),
            other => panic!("{other:?}"),
        }
    }
    println!("6 junk frames of 256 KiB: {codes:?}");
    assert_eq!(&codes[..3], &[ErrorCode::Malformed; 3], "the burst pays for three");
    assert_eq!(&codes[3..], &[ErrorCode::RateLimited; 3], "then refused unparsed");
    // A small request still passes once the bucket refills (≈1.3 s for 64 tokens).
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert!(matches!(c.call(Request::Ping).await, Ok(Response::Pong { .. })));
}

// ---------------------------------------------------------------------------
// Connections

/// A QUIC connection attempt from `ep`: Ok when the handshake completed.
async fn try_connect(
    ep: &quinn::Endpoint,
    relay: &Relay,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    ep.connect(relay.quic, "localhost").unwrap().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_is_capped_while_another_still_joins() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        dir.path(),
        &["--hello-timeout-secs", "60", "--https-listen", "127.0.0.1:0", "--webrtc-udp", "0"],
    );
    let ep = endpoint_at(&relay.pin, "127.0.0.1:0".parse().unwrap());
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(try_connect(&ep, &relay).await.expect("within the cap"));
    }
    // The relay takes a place once its side of the handshake is done, a moment
    // after the client's; let the last ones land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The 21st from the same address: refused (or, if it raced past the check, it
    // or one of the 20 is closed at once: the source never holds more than 20).
    let extra = try_connect(&ep, &relay).await;
    let too_many = Some((3, "too_many_connections_from_source".to_string()));
    let refused = match extra {
        Err(quinn::ConnectionError::ConnectionClosed(c)) => format!("refused: {c}"),
        Err(e) => panic!("refused otherwise: {e}"),
        Ok(conn) => {
            held.push(conn);
            let mut closed = 0;
            for c in &held {
                if closed_by_relay(c, Duration::from_millis(500)).await == too_many {
                    closed += 1;
                }
            }
            assert_eq!(closed, 1, "one of the 21 is closed as too_many_connections_from_source");
            held.retain(|c| c.close_reason().is_none());
            "raced past the check; one closed".to_string()
        }
    };
    println!("21st QUIC connection from 127.0.0.1: {refused}");
    // TCP to the HTTPS port counts with QUIC: dropped at once.
    let https = relay.https.unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut tcp = sock.connect(https).await.unwrap();
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(2)).await;
    assert!(closed, "a TCP connection past the cap is dropped");

    // Another address joins normally meanwhile.
    let (mut host, code) = host_in_meeting_from(&relay, [127, 0, 0, 2]).await;
    let mut guest = Client::connect_from(&relay, [127, 0, 0, 3]).await;
    guest.hello(None).await.unwrap();
    assert!(matches!(guest.call(join(&code, "Pat")).await, Ok(Response::Joined(_))));
    assert!(matches!(host.call(Request::Ping).await, Ok(Response::Pong { .. })));
    assert!(metric(&relay, "clinicmeet_connections_refused_per_source_total").await >= 2);

    // A place given back can be taken again.
    held.pop().unwrap().close(0u32.into(), b"bye");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(try_connect(&ep, &relay).await.is_ok(), "the freed place is available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_leaves_others_joining_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--hello-timeout-secs", "60", "--sqlite-sync", "normal"]);
    let (mut host, code) = host_in_meeting_from(&relay, [127, 0, 0, 2]).await;
    let join_time = |ip: [u8; 4]| {
        let code = code.clone();
        let (quic, pin) = (relay.quic, relay.pin.clone());
        async move {
            let t = Instant::now();
            let mut g = Client::connect_to(quic, &pin, ip).await;
            g.hello(None).await.unwrap();
            let Ok(Response::Joined(_)) = g.call(join(&code, "Pat")).await else { panic!("join failed") };
            (t.elapsed(), g)
        }
    };
    let (calm, g) = join_time([127, 0, 0, 3]).await;
    drop(g);
    let rss_calm = rss_kib(&relay);

    // 127.0.0.1 holds as many unauthenticated connections as the cap allows, then
    // keeps a flood of handshakes coming.
    let ep = endpoint_at(&relay.pin, "127.0.0.1:0".parse().unwrap());
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(try_connect(&ep, &relay).await.unwrap());
    }
    // The relay takes a place once its side of the handshake is done, a moment
    // after the client's; let the last ones land before the flood.
    tokio::time::sleep(Duration::from_millis(500)).await;
    const FLOOD: usize = 4000;
    let flood = {
        let ep = ep.clone();
        let quic = relay.quic;
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            let mut refused = 0;
            for i in 0..FLOOD {
                let ep = ep.clone();
                tasks.spawn(async move {
                    tokio::time::timeout(Duration::from_secs(10), ep.connect(quic, "localhost").unwrap())
                        .await
                });
                if i % 200 == 199 {
                    while let Some(r) = tasks.join_next().await {
                        if !matches!(r, Ok(Ok(Ok(_)))) {
                            refused += 1;
                        }
                    }
                }
            }
            while let Some(r) = tasks.join_next().await {
                if !matches!(r, Ok(Ok(Ok(_)))) {
                    refused += 1;
                }
            }
            refused
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stormy, _g) = join_time([127, 0, 0, 4]).await;
    let rss_storm = rss_kib(&relay);
    let refused = flood.await.unwrap();
    let rss_after = rss_kib(&relay);
    let connections = metric(&relay, "clinicmeet_connections").await;
    let refused_metric = metric(&relay, "clinicmeet_connections_refused_per_source_total").await;
    println!(
        "flood of {FLOOD} handshakes from 127.0.0.1 holding 20: {refused} refused at the client, \
         {refused_metric} counted by the relay; a guest's join took {calm:?} calm, {stormy:?} during the flood; \
         relay RSS {rss_calm} KiB calm, {rss_storm} KiB during, {rss_after} KiB after; {connections} hub sessions"
    );
    // Which of the source's connections hold its 20 places may race; no more than 20 can.
    assert!(refused >= FLOOD - 20, "the flood is refused past the cap ({refused} of {FLOOD})");
    assert!(stormy < Duration::from_secs(2), "another address joins promptly during the flood: {stormy:?}");
    assert!(rss_after < rss_calm + 32 * 1024, "memory bounded: {rss_calm} -> {rss_after} KiB");
    assert!(matches!(host.call(Request::Ping).await, Ok(Response::Pong { .. })));
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_hello_are_closed_after_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--hello-timeout-secs", "1"]);
    let started = Instant::now();
    // Opens its control stream (the relay sees a stream once bytes arrive: one
    // byte of a frame header) but never completes a hello.
    let mut silent = Client::connect(&relay).await;
    silent.send_raw(&[0]).await;
    // Never opens its control stream.
    let ep = endpoint_at(&relay.pin, "127.0.0.1:0".parse().unwrap());
    let streamless = try_connect(&ep, &relay).await.unwrap();
    // Says hello in time: stays.
    let mut good = Client::connect(&relay).await;
    good.hello(None).await.unwrap();

    let c = closed_by_relay(&streamless, Duration::from_secs(4)).await;
    println!("streamless connection closed after {:?}: {c:?}", started.elapsed());
    assert_eq!(c, Some((2, "hello_timeout".into())));
    // The silent one gets an error, then its stream ends.
    match silent.next().await {
        Some(ServerMessage::Error { error, .. }) => assert_eq!(error.code, ErrorCode::InvalidState),
        other => panic!("{other:?}"),
    }
    assert!(silent.next().await.is_none(), "closed");
    println!("silent connection closed after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(good.call(Request::Ping).await, Ok(Response::Pong { .. })), "hello'd connection stays");
    assert_eq!(metric(&relay, "clinicmeet_unauthenticated_closed_total").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_bidirectional_streams_than_the_control_stream_and_its_transfers_are_granted() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &[]);
    let mut c = Client::connect(&relay).await;
    c.hello(None).await.unwrap();
    // Beside the control stream: one stream per file transfer, at most this many at once.
    let max = clinicmeet_protocol::transfer::MAX_TRANSFERS_PER_CONNECTION;
    let mut transfers = Vec::new();
    for _ in 0..max {
        let s = tokio::time::timeout(Duration::from_secs(2), c.conn.open_bi()).await;
        transfers.push(s.expect("a transfer stream is granted").unwrap());
    }
    let one_more = tokio::time::timeout(Duration::from_secs(2), c.conn.open_bi()).await;
    assert!(one_more.is_err(), "the relay grants 1 + {max} bidirectional streams, no more");
    assert!(matches!(c.call(Request::Ping).await, Ok(Response::Pong { .. })), "the first keeps working");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_before_join_are_dropped_at_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &[]);
    let (_host, code) = host_in_meeting(&relay).await;
    let mut c = Client::connect(&relay).await;
    c.hello(None).await.unwrap();
    for i in 0..100u32 {
        c.conn.send_datagram(bytes::Bytes::from(i.to_be_bytes().repeat(50))).unwrap();
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_join = metric(&relay, "clinicmeet_media_ignored_datagrams_total").await;
    assert!(
        before_join >= 90,
        "datagrams of a connection in no meeting are dropped at the edge: {before_join}"
    );
    c.call(join(&code, "Pat")).await.unwrap();
    for i in 0..100u32 {
        c.conn.send_datagram(bytes::Bytes::from(i.to_be_bytes().repeat(50))).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_join = metric(&relay, "clinicmeet_media_ignored_datagrams_total").await;
    assert_eq!(after_join, before_join, "after the join they reach the forwarder");
}

// ---------------------------------------------------------------------------
// Browser guests' liveness

#[cfg(feature = "browser-guests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_guest_that_stops_answering_pings_is_closed() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        dir.path(),
        &[
            "--https-listen",
            "127.0.0.1:0",
            "--webrtc-udp",
            "0",
            "--ws-ping-secs",
            "1",
            "--ws-timeout-secs",
            "3",
            "--hello-timeout-secs",
            "60",
        ],
    );
    // A guest whose browser answers pings (tungstenite answers while it reads).
    let alive = raw_websocket(&relay, [127, 0, 0, 1].into()).await;
    let mut alive = ws_client(alive).await;
    let alive_task = tokio::spawn(async move {
        let mut pings = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        loop {
            match tokio::time::timeout_at(deadline, alive.next()).await {
                Err(_) => return (pings, true),
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_)))) => pings += 1,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return (pings, false),
            }
        }
    });
    // A guest whose network vanished: the bytes arrive nowhere, nothing answers.
    let mut gone = raw_websocket(&relay, [127, 0, 0, 1].into()).await;
    let started = Instant::now();
    let (got, closed) = read_until_closed(&mut gone, Duration::from_secs(8)).await;
    let after = started.elapsed();
    let pings = got.iter().filter(|&&b| b == 0x89).count();
    println!("silent websocket guest closed={closed} after {after:?} ({pings} pings seen)");
    assert!(closed, "the silent guest is closed");
    assert!(
        after >= Duration::from_secs(2) && after < Duration::from_secs(6),
        "after the timeout: {after:?}"
    );
    assert!(pings >= 1, "it was pinged first");
    let (alive_pings, still_open) = alive_task.await.unwrap();
    println!("answering guest: {alive_pings} pings in 6 s, still open: {still_open}");
    assert!(still_open, "a guest that answers pings stays connected");
    assert!(alive_pings >= 4);
}

// ---------------------------------------------------------------------------
// Out of file descriptors

/// Starts the relay with at most `nofile` open files (`ulimit -n`).
fn start_with_nofile(data_dir: &std::path::Path, nofile: u32, extra: &[&str]) -> Relay {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\"")).arg(bin());
    start_via(sh, data_dir, extra)
}

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of /proc/pid/stat (utime, stime), counted from the state field (3).
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[cfg(feature = "browser-guests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_loop_backs_off_when_out_of_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_with_nofile(
        dir.path(),
        128,
        &["--https-listen", "127.0.0.1:0", "--webrtc-udp", "0", "--max-connections-per-source", "1000"],
    );
    let https = relay.https.unwrap();
    // Hold more TCP connections than the relay has descriptors left: the rest wait
    // in the listen backlog and every accept fails with EMFILE.
    let mut held = Vec::new();
    for _ in 0..200 {
        match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(https)).await {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = relay.child.id();
    let before = cpu_secs(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_secs(pid) - before;
    println!(
        "out of descriptors with {} TCP connections held: relay used {used:.2} s CPU in 2 s",
        held.len()
    );
    assert!(used < 0.5, "the accept loop must not spin: {used:.2} s CPU in 2 s");
    // When descriptors come back, the relay serves again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ws = tokio::time::timeout(Duration::from_secs(15), raw_websocket(&relay, [127, 0, 0, 9].into()))
        .await
        .expect("served again once descriptors are free");
    ws.shutdown().await.ok();
}

// ---------------------------------------------------------------------------
// Behind a reverse proxy

#[cfg(feature = "browser-guests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        dir.path(),
        &[
            "--https-listen",
            "127.0.0.1:0",
            "--webrtc-udp",
            "0",
            "--hello-timeout-secs",
            "60",
            "--trusted-proxy",
            "127.0.0.1/32",
            "--audit-window-secs",
            "1",
        ],
    );
    let proxy: std::net::IpAddr = [127, 0, 0, 1].into();
    let stranger: std::net::IpAddr = [127, 0, 0, 2].into();
    let xff = |who: &str| format!("X-Forwarded-For: {who}\r\n");

    // Through the proxy, 25 patients at 25 addresses: none is capped (each holds one).
    let mut held = Vec::new();
    for i in 0..25 {
        held.push(websocket_upgrade(&relay, proxy, &xff(&format!("198.51.100.{i}"))).await.expect("patient"));
    }
    // One patient's address holds 20 at most, even through the proxy.
    for _ in 0..20 {
        held.push(websocket_upgrade(&relay, proxy, &xff("203.0.113.5")).await.expect("within the cap"));
    }
    let refused = websocket_upgrade(&relay, proxy, &xff("203.0.113.5")).await.expect_err("21st refused");
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    // From an untrusted address the header is ignored: 20 at most whatever it claims.
    for i in 0..20 {
        held.push(
            websocket_upgrade(&relay, stranger, &xff(&format!("192.0.2.{i}"))).await.expect("within the cap"),
        );
    }
    let refused = websocket_upgrade(&relay, stranger, &xff("192.0.2.99")).await.expect_err("refused");
    println!("untrusted 21st: {refused:?}");

    // The hub sees the patient's address too: a wrong code is audited with it.
    let ws = websocket_upgrade(&relay, proxy, &xff("198.51.100.77")).await.unwrap();
    let mut ws = ws_client(ws).await;
    for (id, req) in [
        (1, serde_json::json!({"id": 1, "type": "hello", "min_version": 1, "max_version": 1, "client": "t"})),
        (
            2,
            serde_json::json!({"id": 2, "type": "join", "access_code": "ZZZZ-ZZZZ", "display_name": "Pat", "media": {"audio": false, "video": false, "screen": false}}),
        ),
    ] {
        ws.send(Message::text(req.to_string())).await.unwrap();
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("closed") };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == id {
                break;
            }
        }
    }
    // Failures are written as one row per source and window (1 s here).
    let store = open_store(dir.path());
    let deadline = Instant::now() + Duration::from_secs(5);
    let rows = loop {
        let rows = store.audit_rows(Some("code_failed")).unwrap();
        if !rows.is_empty() || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(rows.last().and_then(|r| r.source.as_deref()), Some("198.51.100.77"), "{rows:?}");
    drop(held);
}

#[cfg(feature = "browser-guests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_websocket_guest_is_closed_as_slow_consumer() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        dir.path(),
        &[
            "--https-listen",
            "127.0.0.1:0",
            "--webrtc-udp",
            "0",
            "--sqlite-sync",
            "normal",
            "--chat-rate",
            "100000",
            "--chat-burst",
            "100000",
            "--request-rate",
            "100000",
            "--request-burst",
            "100000",
            "--output-budget-kib",
            "256",
        ],
    );
    let (mut host, code) = host_in_meeting(&relay).await;
    let ws = raw_websocket(&relay, [127, 0, 0, 2].into()).await;
    let mut ws = ws_client(ws).await;
    let media = serde_json::json!({"audio": false, "video": false, "screen": false});
    for (id, req) in [
        (1, serde_json::json!({"id": 1, "type": "hello", "min_version": 1, "max_version": 1, "client": "t"})),
        (
            2,
            serde_json::json!({"id": 2, "type": "join", "access_code": code, "display_name": "Pat", "media": media}),
        ),
    ] {
        ws.send(Message::text(req.to_string())).await.unwrap();
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("closed") };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == id {
                assert_eq!(v["kind"], "reply", "{v}");
                break;
            }
        }
    }
    host.event(|e| matches!(e, Event::ParticipantJoined(_))).await;
    let mut raw = ws.into_inner();

    // The guest reads nothing while 8 KiB chat messages pour in (TCP buffers on
    // loopback take several MiB before the relay's writes block).
    let text = "x".repeat(clinicmeet_protocol::limits::MAX_CHAT_TEXT_BYTES);
    let mut sent = 0u64;
    let mut slow = 0;
    while sent < 4000 {
        let mut ids = Vec::new();
        // 20 replies of 8 KiB in flight stay well under the host's own 256 KiB
        // budget, so only the guest that reads nothing can be the slow one.
        for _ in 0..20 {
            let req = Request::SendChat {
                client_msg_id: Uuid::now_v7(),
                text: text.clone(),
                staff_only: false,
                attachments: vec![],
            };
            ids.push(host.send(req).await);
        }
        for id in ids {
            assert!(matches!(host.reply_to(id).await, Ok(Response::ChatAccepted { .. })));
            sent += 1;
        }
        slow = metric(&relay, "clinicmeet_slow_consumers_total").await;
        if slow > 0 {
            break;
        }
    }
    let (got, closed) = read_until_closed(&mut raw, Duration::from_secs(10)).await;
    println!(
        "slow websocket guest: slow_consumer after {sent} messages of 8 KiB; it then read {} KiB before the close",
        got.len() / 1024
    );
    assert_eq!(slow, 1, "counted as a slow consumer");
    assert!(closed, "and its connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_unauthenticated_connections_from_many_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--hello-timeout-secs", "8", "--sqlite-sync", "normal"]);
    let (mut host, code) = host_in_meeting_from(&relay, [127, 0, 1, 1]).await;
    let rss_calm = rss_kib(&relay);
    // 100 addresses × 20 connections (each address's whole share), none says hello.
    const ADDRS: u8 = 100;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..ADDRS {
        let ep = endpoint_at(&relay.pin, SocketAddr::from(([127, 0, 2, a + 1], 0)));
        let quic = relay.quic;
        tasks.spawn(async move {
            let mut held = Vec::new();
            for _ in 0..20 {
                if let Ok(Ok(c)) =
                    tokio::time::timeout(Duration::from_secs(5), ep.connect(quic, "localhost").unwrap()).await
                {
                    held.push(c);
                }
            }
            held
        });
    }
    let mut held = Vec::new();
    while let Some(h) = tasks.join_next().await {
        held.extend(h.unwrap());
    }
    let opened = started.elapsed();
    let rss_held = rss_kib(&relay);
    let t = Instant::now();
    let mut g = Client::connect_from(&relay, [127, 0, 3, 1]).await;
    g.hello(None).await.unwrap();
    let Ok(Response::Joined(_)) = g.call(join(&code, "Pat")).await else { panic!("join failed") };
    let join_time = t.elapsed();
    println!(
        "{} unauthenticated connections held from {ADDRS} addresses (opened in {opened:?}): relay RSS {rss_calm} -> \
         {rss_held} KiB ({} KiB each); a guest joined in {join_time:?}",
        held.len(),
        rss_held.saturating_sub(rss_calm) / held.len().max(1) as u64
    );
    assert!(held.len() >= 1900, "opened {}", held.len());
    assert!(join_time < Duration::from_secs(2), "a guest still joins promptly: {join_time:?}");
    // Past the hello deadline they are all closed by the relay.
    let mut closed = 0;
    let deadline = Instant::now() + Duration::from_secs(12);
    for c in &held {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        if closed_by_relay(c, left).await == Some((2, "hello_timeout".into())) {
            closed += 1;
        }
    }
    let rss_after = rss_kib(&relay);
    println!("after the hello deadline: {closed} closed as hello_timeout; relay RSS {rss_after} KiB");
    assert_eq!(closed, held.len(), "every unauthenticated connection is closed at the deadline");
    assert!(matches!(host.call(Request::Ping).await, Ok(Response::Pong { .. })));
}

#[cfg(feature = "browser-guests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_offers_are_taken_only_in_the_meeting_and_only_in_a_guest_pages_shape() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--https-listen", "127.0.0.1:0", "--webrtc-udp", "0"]);
    let (_host, code) = host_in_meeting(&relay).await;
    let ws = raw_websocket(&relay, [127, 0, 0, 2].into()).await;
    let mut ws = ws_client(ws).await;
    // Sends a text frame and returns the first message matching `pred`.
    async fn exchange<S>(
        ws: &mut S,
        text: String,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value
    where
        S: SinkExt<Message>
            + StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
        <S as futures_util::Sink<Message>>::Error: std::fmt::Debug,
    {
        ws.send(Message::text(text)).await.unwrap();
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("closed") };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
    let video = "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
    let offer = |sections: usize| {
        let sdp = format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{}", video.repeat(sections));
        serde_json::json!({"webrtc": {"offer": sdp}}).to_string()
    };
    let rtc_error = |v: &serde_json::Value| v["webrtc"]["error"].as_str().map(str::to_string);
    let hello =
        serde_json::json!({"id": 1, "type": "hello", "min_version": 1, "max_version": 1, "client": "t"});
    exchange(&mut ws, hello.to_string(), |v| v["id"] == 1).await;
    let before = exchange(&mut ws, offer(2), |v| v.get("webrtc").is_some()).await;
    assert_eq!(rtc_error(&before).as_deref(), Some("join the meeting first"), "{before}");
    let media = serde_json::json!({"audio": false, "video": false, "screen": false});
    let join = serde_json::json!({"id": 2, "type": "join", "access_code": code, "display_name": "Pat", "media": media});
    let joined = exchange(&mut ws, join.to_string(), |v| v["id"] == 2).await;
    assert_eq!(joined["kind"], "reply", "{joined}");
    let huge = exchange(&mut ws, offer(500), |v| v.get("webrtc").is_some()).await;
    assert!(rtc_error(&huge).is_some_and(|e| e.contains("media sections")), "{huge}");
}
