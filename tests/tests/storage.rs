//! The relay's storage fails under a chat storm: its process is killed with
//! SIGKILL, or its disk (a real tmpfs) fills up. Whatever a client was told
//! was sent is in the relay's database at that moment and, once the relay is
//! back or has space again, in every client's store exactly once; what was
//! refused stays in the clients' outboxes and is sent by itself later.
//! The same logic in memory, step by step, is `tests/harness/tests/storage_full.rs`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clinicmeet_e2e::*;
use serde_json::Value;

/// Texts of messages the relay acknowledged to this session's client (own chat events).
fn acked(s: &mut Session) -> HashSet<String> {
    s.drain(Duration::from_millis(200));
    s.seen
        .iter()
        .filter(|v| v["event"] == "chat" && v["own"] == json!(true) && v.get("system").is_none())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect()
}

/// Chat texts in the relay's database, with how often each is there.
fn relay_chat(data_dir: &Path) -> HashMap<String, usize> {
    let db = rusqlite::Connection::open_with_flags(
        data_dir.join("relay.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the relay's database");
    let mut stmt = db.prepare("SELECT text FROM chat WHERE staff_only = 0 AND system IS NULL").unwrap();
    let mut counts = HashMap::new();
    for text in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        *counts.entry(text.unwrap()).or_insert(0) += 1;
    }
    counts
}

/// Texts in a client's local store, with how often each is there.
fn client_chat(c: &Client, code: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for v in c.history(code) {
        // What people typed: not the relay's system lines (joined, left, …).
        if v["staff_only"] != json!(true) && v["seq"].as_u64().is_some() && v.get("system").is_none() {
            if let Some(t) = v["text"].as_str() {
                *counts.entry(t.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Waits until every client's store holds each of `texts`, then checks that
/// each holds it exactly once and that the relay's database does too.
fn all_stored_once(clients: &[&Client], code: &str, data_dir: &Path, texts: &HashSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(180);
    for c in clients {
        loop {
            let got = client_chat(c, code);
            let missing = texts.iter().filter(|t| !got.contains_key(*t)).count();
            if missing == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {missing} messages never arrived\n{}", c.name, c.log());
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    for c in clients {
        let got = client_chat(c, code);
        assert!(got.values().all(|&n| n == 1), "{}: a message stored twice", c.name);
        assert_eq!(got.len(), texts.len(), "{}: messages nobody typed", c.name);
    }
    let relay = relay_chat(data_dir);
    assert!(relay.values().all(|&n| n == 1), "the relay stored a message twice");
    assert_eq!(relay.keys().cloned().collect::<HashSet<_>>(), *texts);
}

/// The clinic's doctor creates a meeting; the doctor, Bob and Carol join it.
/// Returns the code, Bob, Carol and the three sessions with their text prefixes.
fn three_in_a_meeting(clinic: &Clinic) -> (String, Client, Client, Vec<(Session, &'static str)>) {
    let (_, code) = clinic.doctor.create(&[]);
    let (bob, carol) = (clinic.guest("Bob"), clinic.guest("Carol"));
    let mut sessions = Vec::new();
    for (c, prefix) in [(&clinic.doctor, "a"), (&bob, "b"), (&carol, "c")] {
        let mut s = c.join(&code, &[]);
        s.expect_event("joined", STEP);
        sessions.push((s, prefix));
    }
    (code, bob, carol, sessions)
}

#[test]
fn kill_9_during_a_three_client_chat_storm_loses_no_acknowledged_message() {
    let mut clinic = Clinic::new(&["--resume-grace-secs", "60"]);
    let (code, bob, carol, mut sessions) = three_in_a_meeting(&clinic);
    let mut typed = HashSet::new();
    for i in 0..100 {
        for (s, prefix) in &mut sessions {
            let t = format!("{prefix}{i}");
            s.send(&t);
            typed.insert(t);
        }
    }
    // Mid-storm (the chat rate limit spreads 100 messages each over seconds).
    std::thread::sleep(Duration::from_millis(2500));
    clinic.relay.kill();
    let before: HashSet<String> = sessions.iter_mut().flat_map(|(s, _)| acked(s)).collect();
    let stored = relay_chat(&clinic.relay.data_dir);
    let lost: Vec<&String> = before.iter().filter(|t| !stored.contains_key(*t)).collect();
    assert!(lost.is_empty(), "acknowledged but not in the relay's database after SIGKILL: {lost:?}");
    assert!(!before.is_empty() && before.len() < typed.len(), "not mid-storm: {} acknowledged", before.len());
    println!(
        "kill -9: {} of {} messages acknowledged before the kill, all in the database",
        before.len(),
        300
    );

    clinic.relay.restart();
    for i in 100..150 {
        for (s, prefix) in &mut sessions {
            let t = format!("{prefix}{i}");
            s.send(&t);
            typed.insert(t);
        }
    }
    all_stored_once(&[&clinic.doctor, &bob, &carol], &code, &clinic.relay.data_dir, &typed);
}

/// A tmpfs of a given size mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why not: a failure when `CLINICMEET_REQUIRE_NETNS=1`
    /// (CI runs these privileged tests as root), else a skip.
    fn mount(size: &str, test: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            other => {
                let why = format!("cannot mount a tmpfs: {other:?}");
                if std::env::var("CLINICMEET_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
                    panic!("{test}: {why}");
                }
                eprintln!("SKIPPED {test}: {why}");
                None
            }
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Writes a file until the tmpfs is full; returns its path and size.
    fn fill(&self) -> (PathBuf, u64) {
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let mut written = 0u64;
        for chunk in [65536, 4096, 512, 1] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {
                written += chunk as u64;
            }
        }
        (path, written)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_refuses_chat_until_space_returns_then_every_message_is_stored_once() {
    let test = "a_full_disk_refuses_chat_until_space_returns";
    let Some(disk) = Tmpfs::mount("16m", test) else { return };
    let clinic = Clinic::on(Relay::start_in_dir(disk.path().join("relay"), &[]));
    let (code, bob, carol, mut sessions) = three_in_a_meeting(&clinic);
    let (filler, size) = disk.fill();
    let mut typed = HashSet::new();
    for i in 0..40 {
        for (s, prefix) in &mut sessions {
            let t = format!("{prefix}{i}{}", "x".repeat(200));
            s.send(&t);
            typed.insert(t);
        }
    }
    std::thread::sleep(Duration::from_secs(8));
    let during: HashSet<String> = sessions.iter_mut().flat_map(|(s, _)| acked(s)).collect();
    let refused: usize = sessions
        .iter()
        .map(|(s, _)| {
            s.seen
                .iter()
                .filter(|v: &&Value| v["event"] == "chat_status" && v["error"] == "storage_unavailable")
                .count()
        })
        .sum();
    let stored = relay_chat(&clinic.relay.data_dir);
    assert!(during.iter().all(|t| stored.contains_key(t)), "acknowledged while full but not stored");
    assert_eq!(stored.len(), during.len(), "stored while full but never acknowledged");
    assert!(refused > 0 && during.len() < typed.len(), "the disk never filled ({} stored)", during.len());
    assert!(
        sessions
            .iter()
            .all(|(s, _)| !s.seen.iter().any(|v| v["event"] == "chat_status" && v["status"] == "failed")),
        "a message was given up although the relay only lacked space"
    );
    println!(
        "full disk: {size} filler bytes, {} of {} messages stored while full, {refused} storage_unavailable refusals",
        during.len(),
        typed.len()
    );

    std::fs::remove_file(filler).unwrap();
    all_stored_once(&[&clinic.doctor, &bob, &carol], &code, &clinic.relay.data_dir, &typed);
}
