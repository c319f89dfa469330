//! Chat loses nothing and duplicates nothing: interleaved senders, a client
//! process killed and restarted, the relay restarted mid-stream.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clinicmeet_e2e::*;
use serde_json::Value;

/// (seq, text) of the non-note messages in a client's local store, in order.
fn chat_log(c: &Client, code: &str) -> Vec<(u64, String)> {
    // Unsent outbox entries (no seq yet) are not part of the shared log, nor are
    // the relay's own lines (joined, left, …).
    c.history(code)
        .iter()
        .filter(|v| v["staff_only"] != json!(true) && v.get("system").is_none())
        .filter_map(|v| Some((v["seq"].as_u64()?, v["text"].as_str()?.to_string())))
        .collect()
}

/// Waits until a client's local store holds chat messages with all `texts`
/// (live or resynced after a reconnect: the store is what the user reads).
fn wait_for_texts(c: &Client, code: &str, texts: &HashSet<String>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got: HashSet<String> = chat_log(c, code).into_iter().map(|(_, t)| t).collect();
        let missing: Vec<_> = texts.iter().filter(|t| !got.contains(*t)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {} messages never arrived, e.g. {:?}",
            c.name,
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn thousand_messages_survive_client_kill_and_relay_restart() {
    let mut clinic = Clinic::new(&["--resume-grace-secs", "30"]);
    let (_, code) = clinic.doctor.create(&[]);
    let alice = &clinic.doctor;
    let bob = clinic.guest("Bob");
    let carol = clinic.guest("Carol");
    let mut a = alice.join(&code, &[]);
    a.expect_event("joined", STEP);
    let mut b = bob.join(&code, &[]);
    b.expect_event("joined", STEP);
    let mut c = carol.join(&code, &[]);
    c.expect_event("joined", STEP);

    let mut sent: Vec<String> = Vec::new();
    fn say(s: &mut Session, sent: &mut Vec<String>, text: String) {
        s.send(&text);
        sent.push(text);
    }

    // Phase 1: 150 each, interleaved.
    for i in 0..150 {
        say(&mut a, &mut sent, format!("a{i}"));
        say(&mut b, &mut sent, format!("b{i}"));
        say(&mut c, &mut sent, format!("c{i}"));
    }
    let phase1: HashSet<String> = sent.iter().cloned().collect();
    wait_for_texts(&carol, &code, &phase1, Duration::from_secs(120));

    // Phase 2: Carol types 50 more and her process is killed at once; Alice
    // and Bob go on while she is away, then she comes back.
    let mut carol_unsure = Vec::new();
    for i in 150..200 {
        let t = format!("c{i}");
        c.send(&t);
        carol_unsure.push(t);
    }
    c.kill();
    for i in 150..250 {
        say(&mut a, &mut sent, format!("a{i}"));
        say(&mut b, &mut sent, format!("b{i}"));
    }
    let mut c = carol.join(&code, &[]);
    c.expect("back in", STEP, |v| v["event"] == "joined" || v["event"] == "resumed");

    // Phase 3: the relay restarts while everyone keeps sending.
    for i in 250..325 {
        say(&mut a, &mut sent, format!("a{i}"));
        say(&mut b, &mut sent, format!("b{i}"));
    }
    clinic.relay.restart();
    for i in 325..400 {
        say(&mut a, &mut sent, format!("a{i}"));
        say(&mut b, &mut sent, format!("b{i}"));
    }
    assert_eq!(sent.len() + carol_unsure.len(), 1000);

    let must: HashSet<String> = sent.iter().cloned().collect();
    for cl in [alice, &bob, &carol] {
        wait_for_texts(cl, &code, &must, Duration::from_secs(180));
    }
    // Let Carol's recovered outbox drain too.
    std::thread::sleep(Duration::from_secs(2));

    let logs: Vec<Vec<(u64, String)>> = [alice, &bob, &carol].iter().map(|cl| chat_log(cl, &code)).collect();
    let texts: Vec<&String> = logs[0].iter().map(|(_, t)| t).collect();
    let unique: HashSet<&String> = texts.iter().copied().collect();
    assert_eq!(unique.len(), texts.len(), "a message was stored twice");
    for t in &must {
        assert!(unique.contains(t), "message {t} missing");
    }
    // Carol's messages typed just before the kill: whatever reached her store
    // is delivered exactly once (unique above); nothing outside the sent set appears.
    let allowed: HashSet<&String> = must.iter().chain(carol_unsure.iter()).collect();
    assert!(unique.iter().all(|t| allowed.contains(t)));
    let seqs: Vec<u64> = logs[0].iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence not increasing");
    assert_eq!(logs[0], logs[1], "Alice and Bob disagree");
    assert_eq!(logs[0], logs[2], "Alice and Carol disagree");
    // Each sender's own messages keep their order.
    for prefix in ["a", "b"] {
        let mine: Vec<usize> =
            texts.iter().filter(|t| t.starts_with(prefix)).map(|t| t[1..].parse().unwrap()).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{prefix}'s messages out of order");
    }
}

#[test]
fn staff_notes_never_reach_guests() {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    let nurse = clinic.staff("Nurse");
    let patient = clinic.guest("Patient");
    let mut d = clinic.doctor.join(&code, &[]);
    d.expect_event("joined", STEP);
    let mut n = nurse.join(&code, &[]);
    n.expect_event("joined", STEP);
    let mut p = patient.join(&code, &[]);
    let pid = my_id(&p.expect_event("joined", STEP));

    // A guest promoted to moderator still never sees notes.
    d.send(&format!("/promote {pid}"));
    p.expect("promoted", STEP, |v| v["event"] == "role_changed" && find_str(v, "role") == Some("moderator"));

    n.send("/note BP trending up, check meds");
    d.expect("note", STEP, |v| {
        v["event"] == "chat" && find_str(v, "text") == Some("BP trending up, check meds")
    });
    d.send("Hello, how are you feeling today?");
    p.expect("public message", STEP, |v| {
        v["event"] == "chat" && find_str(v, "text") == Some("Hello, how are you feeling today?")
    });
    // A guest trying to send a note is refused.
    p.send("/note sneaky");
    let refused = p.expect("note refused", STEP, |v| v["event"] == "chat_status" && v["status"] == "failed");
    assert!(refused["error"].as_str().unwrap_or("").contains("forbidden"), "{refused}");
    p.drain(Duration::from_millis(500));

    let wire = serde_json::to_string(&p.seen).unwrap();
    assert!(!wire.contains("BP trending up"), "guest saw a note on the wire");
    let hist = serde_json::to_string(&patient.history(&code)).unwrap();
    assert!(!hist.contains("BP trending up"), "guest stored a note");
    assert!(hist.contains("how are you feeling"));
    // The public chat sequence has no gap where the note went.
    let seqs: Vec<u64> =
        patient.history(&code).iter().filter_map(|v| find(v, "seq").and_then(Value::as_u64)).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let staff_hist = serde_json::to_string(&nurse.history(&code)).unwrap();
    assert!(staff_hist.contains("BP trending up"));
}
