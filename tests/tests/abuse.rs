//! Guessing access codes is throttled per source address; the lock-out is
//! logged and ends after its window; other addresses are unaffected.

use std::time::{Duration, Instant};

use clinicmeet_e2e::*;

#[test]
fn wrong_codes_lock_out_one_address_only() {
    let clinic = Clinic::new(&["--max-failed-codes-per-ip", "10", "--code-lockout-secs", "6"]);
    let (_, code) = clinic.doctor.create(&[]);
    let attacker = clinic.guest("Attacker").bind("127.0.0.1");
    let neighbour = clinic.guest("Neighbour").bind("127.0.0.2");

    let started = Instant::now();
    let mut limited = 0;
    for i in 0..30 {
        let guess = format!("ZZZZ-{:04}", 2222 + i).replace('0', "2").replace('1', "3");
        let (ok, out) = attacker.run(&["join", &guess]);
        assert!(!ok);
        if out.iter().any(|v| is_error(v, "rate_limited")) {
            limited += 1;
        } else {
            assert!(out.iter().any(|v| is_error(v, "invalid_code")), "{out:?}");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30), "guesses took too long to be a burst");
    assert!(limited >= 15, "only {limited} of 30 guesses were throttled");

    // During the lock-out even the right code is refused from that address…
    let (ok, out) = attacker.run(&["join", &code]);
    assert!(!ok && out.iter().any(|v| is_error(v, "rate_limited")), "{out:?}");
    // …while another address gets in with it.
    let mut n = neighbour.join(&code, &[]);
    n.expect_event("joined", STEP);
    n.leave();

    // The attempts are in the audit log.
    let failed = clinic.relay.admin(&["audit", "--action", "code_failed", "--limit", "100"]);
    let failed = failed.as_array().expect("several audit rows");
    assert!(failed.len() >= 10 && failed.iter().all(|r| r["source"] == "127.0.0.1"), "audit: {failed:?}");
    let lockout = clinic.relay.admin(&["audit", "--action", "code_lockout_address"]);
    assert_eq!(lockout["source"], "127.0.0.1", "audit: {lockout}");

    // After the window the right code works again from the attacker's address.
    std::thread::sleep(Duration::from_secs(7));
    let mut s = attacker.join(&code, &[]);
    s.expect_event("joined", STEP);
}

#[test]
fn guesses_from_many_addresses_trip_the_global_budget() {
    let clinic = Clinic::new(&[
        "--max-failed-codes-per-ip",
        "3",
        "--max-failed-codes-global",
        "12",
        "--code-lockout-secs",
        "30",
    ]);
    let (_, code) = clinic.doctor.create(&[]);
    // A botnet behind many addresses, each staying under its own limit.
    for host in 3..9 {
        let bot = clinic.guest("Bot").bind(&format!("127.0.0.{host}"));
        for i in 0..2 {
            let (ok, out) =
                bot.run(&["join", &format!("QQQQ-{host}{i}QQ").replace('0', "Q").replace('1', "R")]);
            assert!(!ok && out.iter().any(|v| v["event"] == "error"), "{out:?}");
        }
    }
    // Now guessing is closed for everyone without a staff credential: even the
    // right code from a fresh address is refused for the window…
    let (ok, out) = clinic.guest("Patient").bind("127.0.0.20").run(&["join", &code]);
    assert!(!ok && out.iter().any(|v| is_error(v, "rate_limited")), "{out:?}");
    // …while enrolled staff still get in.
    let mut host = clinic.doctor.join(&code, &[]);
    host.expect_event("joined", STEP);
    assert!(clinic
        .relay
        .admin(&["audit", "--action", "code_lockout_global"])
        .to_string()
        .contains("code_lockout_global"));
}
