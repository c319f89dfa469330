//! Guessing access codes is throttled per source address and per code bucket,
//! never globally and never by a lock-out: one address's wrong codes slow that
//! address only (by a bounded delay), failures reach the audit log coalesced
//! (one row per source and window, with a count), and guesses from many
//! addresses do not close other addresses' way in.

use std::time::{Duration, Instant};

use clinicmeet_e2e::*;

/// The audit rows the admin command printed (one object, or an array of them).
fn rows(v: serde_json::Value) -> Vec<serde_json::Value> {
    match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// N of a coalesced row's `count=N last_at=T` detail.
fn count(row: &serde_json::Value) -> u64 {
    row["detail"]
        .as_str()
        .and_then(|d| d.strip_prefix("count="))
        .and_then(|d| d.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a coalesced row: {row}"))
}

#[test]
fn wrong_codes_slow_one_address_only() {
    let clinic = Clinic::new(&[
        "--max-failed-codes-per-ip",
        "10",
        "--failed-code-delay-secs",
        "6",
        "--audit-window-secs",
        "1",
    ]);
    let (_, code) = clinic.doctor.create(&[]);
    let attacker = clinic.guest("Attacker").bind("127.0.0.1");
    let neighbour = clinic.guest("Neighbour").bind("127.0.0.2");

    let started = Instant::now();
    let (mut limited, mut wrong) = (0, 0);
    for i in 0..30 {
        let guess = format!("ZZZZ-{:04}", 2222 + i).replace('0', "2").replace('1', "3");
        let (ok, out) = attacker.run(&["join", &guess]);
        assert!(!ok);
        if out.iter().any(|v| is_error(v, "rate_limited")) {
            limited += 1;
        } else {
            assert!(out.iter().any(|v| is_error(v, "invalid_code")), "{out:?}");
            wrong += 1;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30), "guesses took too long to be a burst");
    assert!(limited >= 15, "only {limited} of 30 guesses were throttled");

    // Another address is not slowed at all.
    let mut n = neighbour.join(&code, &[]);
    n.expect_event("joined", STEP);
    n.leave();

    // The failures are in the audit log, coalesced: rows from the attacker's
    // address only, whose counts add up to the wrong codes it made.
    std::thread::sleep(Duration::from_millis(1500));
    let failed = rows(clinic.relay.admin(&["audit", "--action", "code_failed", "--limit", "100"]));
    assert!(!failed.is_empty() && failed.iter().all(|r| r["source"] == "127.0.0.1"), "audit: {failed:?}");
    assert_eq!(failed.iter().map(count).sum::<u64>(), wrong, "audit: {failed:?}");
    assert!(failed.len() < wrong as usize, "not one row per attempt: {failed:?}");
    let refused = rows(clinic.relay.admin(&["audit", "--action", "code_attempt_refused", "--limit", "100"]));
    assert_eq!(refused.iter().map(count).sum::<u64>(), limited, "audit: {refused:?}");

    // After one delay (6 s) the right code works from the attacker's address.
    std::thread::sleep(Duration::from_secs(7));
    let mut s = attacker.join(&code, &[]);
    s.expect_event("joined", STEP);
}

#[test]
fn guesses_from_many_addresses_do_not_close_the_meeting() {
    let clinic = Clinic::new(&["--max-failed-codes-per-ip", "3"]);
    let (_, code) = clinic.doctor.create(&[]);
    // A botnet behind many addresses guessing at the meeting's bucket (its
    // code's first two characters), each address staying under its own limit.
    let prefix: String = code.chars().take(2).collect();
    for host in 3..9u8 {
        let bot = clinic.guest("Bot").bind(&format!("127.0.0.{host}"));
        for i in 0..2 {
            let guess =
                format!("{prefix}Q{}-{}QQQ", b"DEFGHJ"[usize::from(host - 3)] as char, (b'A' + i) as char);
            let (ok, out) = bot.run(&["join", &guess]);
            assert!(!ok && out.iter().any(|v| v["event"] == "error"), "{out:?}");
        }
    }
    // A patient from a fresh address gets in with the right code at once…
    let mut patient = clinic.guest("Patient").bind("127.0.0.20").join(&code, &[]);
    patient.expect_event("joined", STEP);
    // …and so does the host.
    let mut host = clinic.doctor.join(&code, &[]);
    host.expect_event("joined", STEP);
}
