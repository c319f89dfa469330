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
    let audit = clinic.relay.admin(&["audit", "--limit", "100"]);
    let text = audit.to_string();
    assert!(text.contains("failed_code") || text.contains("code_lockout"), "audit: {text}");

    // After the window the right code works again from the attacker's address.
    std::thread::sleep(Duration::from_secs(7));
    let mut s = attacker.join(&code, &[]);
    s.expect_event("joined", STEP);
}
