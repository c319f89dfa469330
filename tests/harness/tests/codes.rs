//! Guessing access codes through the real hub (in memory, virtual clock), with
//! the relay's default limits: per-bucket guess budgets instead of a global
//! lock-out, the clean lane, invite secrets that bypass the guess budget,
//! re-keying, coalesced audit rows and the enrollment limiter. The figures
//! these tests print are the ones quoted in `relay/README.md`.

use std::net::IpAddr;

use clinicmeet_harness::*;
use clinicmeet_protocol::{AccessCode, ErrorCode, InviteSecret, MeetingKind, Request, Response};
use clinicmeet_relay::hub::{ConnId, HubConfig};

/// Source address number `i` (10.0.0.0/8, distinct per `i`).
fn addr(i: u32) -> IpAddr {
    IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
}

/// A patient's address (192.168.0.0/16), never used by the attackers.
fn patient_addr(i: u32) -> IpAddr {
    IpAddr::from(std::net::Ipv4Addr::from(0xc0a8_0000 + i))
}

/// A wrong code in the bucket of `code` (its first two characters kept).
fn wrong_code_in_bucket_of(code: &str, n: u64) -> String {
    let real = AccessCode::parse(code).unwrap();
    let mut s: Vec<u8> = real.normalized().as_bytes().to_vec();
    let alphabet = clinicmeet_protocol::access_code::ALPHABET;
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    for c in s.iter_mut().skip(2) {
        *c = alphabet[(x % 32) as usize];
        x /= 32;
    }
    let guess = String::from_utf8(s).unwrap();
    if guess == real.normalized() {
        wrong_code_in_bucket_of(code, n + 1)
    } else {
        guess
    }
}

/// A random-looking code in bucket `bucket`.
fn code_in_bucket(bucket: u16, n: u64) -> String {
    let alphabet = clinicmeet_protocol::access_code::ALPHABET;
    let b = usize::from(bucket % 1024);
    let base = format!("{}{}AAAAAA", alphabet[b / 32] as char, alphabet[b % 32] as char);
    wrong_code_in_bucket_of(&base, n)
}

fn bucket(code: &str) -> u16 {
    AccessCode::parse(code).unwrap().bucket()
}

/// Joins with `code` from a fresh connection at `ip`, retrying after each
/// `rate_limited` for at most `limit_ms`; returns the virtual ms it took.
fn join_within(h: &mut Harness, ip: IpAddr, code: &str, limit_ms: i64) -> Result<i64, String> {
    join_while(h, ip, code, limit_ms, &mut |h| h.advance(100))
}

/// As [`join_within`], with `meanwhile` run for every 100 ms of waiting (it
/// must advance the clock by 100 ms): the attackers do not pause for the patient.
fn join_while(
    h: &mut Harness,
    ip: IpAddr,
    code: &str,
    limit_ms: i64,
    meanwhile: &mut dyn FnMut(&mut Harness),
) -> Result<i64, String> {
    let conn = h.connect_from(ip, None);
    let mut waited = 0;
    loop {
        match h.join(conn, code, "Patient") {
            Ok(Response::Joined(_) | Response::Waiting { .. }) => return Ok(waited),
            Err(e) if e.code == ErrorCode::RateLimited && waited < limit_ms => {
                let ms = e.retry_after_ms.unwrap_or(1000).max(1) as i64;
                let until = waited + ms;
                while waited < until {
                    meanwhile(h);
                    waited += 100;
                }
            }
            other => return Err(format!("after {waited} ms: {other:?}")),
        }
    }
}

/// `n` attacker connections, one per source address.
fn attackers(h: &mut Harness, n: u32) -> Vec<(IpAddr, ConnId)> {
    (0..n).map(|i| (addr(i), h.connect_from(addr(i), None))).collect()
}

/// Every attacker whose own wait is over sends one guess: half at the target
/// bucket, half spread over every other bucket. Returns (sent, looked up).
fn storm_step(
    h: &mut Harness,
    atk: &[(IpAddr, ConnId)],
    next_try: &mut [i64],
    target: &str,
    n: &mut u64,
) -> (u64, u64) {
    let (mut sent, mut looked_up) = (0, 0);
    for (i, &(_, conn)) in atk.iter().enumerate() {
        if next_try[i] > h.now {
            continue;
        }
        *n += 1;
        let guess = if n.is_multiple_of(2) {
            wrong_code_in_bucket_of(target, *n)
        } else {
            code_in_bucket((*n % 1024) as u16, *n)
        };
        sent += 1;
        match h.join(conn, &guess, "x") {
            Err(e) if e.code == ErrorCode::InvalidCode => {
                looked_up += 1;
                next_try[i] = h.now;
            }
            Err(e) if e.code == ErrorCode::RateLimited => {
                next_try[i] = h.now + e.retry_after_ms.unwrap_or(1000) as i64;
            }
            other => panic!("a guess got {other:?}"),
        }
    }
    (sent, looked_up)
}

#[test]
fn a_thousand_guessing_addresses_keep_no_patient_out() {
    let mut h = Harness::new(HubConfig::default(), &["Dr Ada", "Dr Bob"]);
    let (ada, _) = h.staff("Dr Ada");
    let (bob, _) = h.staff("Dr Bob");
    let attacked = h.create(ada, spec(MeetingKind::Video, false));
    let other = h.create(bob, spec(MeetingKind::Video, false));
    assert_ne!(bucket(&attacked), bucket(&other), "two live meetings share no bucket");

    let atk = attackers(&mut h, 1000);
    let mut next_try = vec![0i64; atk.len()];
    let mut n = 0u64;
    let (mut sent, mut looked_up) = (0, 0);
    let mut worst_attacked = 0;
    let mut patients = 0;
    // Two simulated minutes of storm, a step every 100 ms; patients arrive every 10 s.
    for step in 0..1200i64 {
        let (s, l) = storm_step(&mut h, &atk, &mut next_try, &attacked, &mut n);
        sent += s;
        looked_up += l;
        if step % 100 == 50 {
            patients += 1;
            // A patient of another meeting gets in on the first try…
            let waited = join_within(&mut h, patient_addr(patients * 2), &other, 0)
                .expect("a patient of another meeting joins at once");
            assert_eq!(waited, 0);
            // …and one of the attacked meeting within the promised bound (2 s).
            // The clock moves, and the attackers act before the patient's retry.
            let mut storm = |h: &mut Harness| {
                h.advance(100);
                let (s, l) = storm_step(h, &atk, &mut next_try, &attacked, &mut n);
                sent += s;
                looked_up += l;
            };
            let waited = join_while(&mut h, patient_addr(patients * 2 + 1), &attacked, 2000, &mut storm)
                .expect("a patient of the attacked meeting joins within 2 s");
            worst_attacked = worst_attacked.max(waited);
        }
        h.advance(100);
    }
    println!(
        "storm: {sent} guesses sent by 1000 addresses in 120 s, {looked_up} looked up; \
         {patients} patients per meeting; worst wait at the attacked meeting {worst_attacked} ms"
    );
    assert!(sent > 20_000, "the storm was a storm ({sent} guesses)");
}

#[test]
fn accepted_guesses_per_bucket_over_an_hour_need_years_to_find_a_code() {
    let mut h = Harness::new(HubConfig::default(), &["Dr Ada"]);
    let (ada, _) = h.staff("Dr Ada");
    let code = h.create(ada, spec(MeetingKind::Video, false));
    let atk = attackers(&mut h, 1000);
    let mut next_try = vec![0i64; atk.len()];
    let mut looked_up = 0u64;
    let mut sent = 0u64;
    let mut n = 0u64;
    // Every attacker sends a guess at the meeting's bucket as soon as it may.
    for _ in 0..3600 {
        for (i, &(_, conn)) in atk.iter().enumerate() {
            if next_try[i] > h.now {
                continue;
            }
            n += 1;
            sent += 1;
            match h.join(conn, &wrong_code_in_bucket_of(&code, n), "x") {
                Err(e) if e.code == ErrorCode::InvalidCode => looked_up += 1,
                Err(e) if e.code == ErrorCode::RateLimited => {
                    next_try[i] = h.now + e.retry_after_ms.unwrap_or(1000) as i64;
                }
                other => panic!("{other:?}"),
            }
        }
        h.advance(1000);
    }
    let rate = looked_up as f64 / 3600.0;
    let expected_guesses = 2f64.powi(29); // half of the 2^30 secret codes in the bucket
    let years = expected_guesses / rate / (365.25 * 86_400.0);
    println!(
        "one hour, 1000 addresses: {sent} guesses sent, {looked_up} looked up = {rate:.3}/s per bucket; \
         expected time to find the code: {years:.1} years"
    );
    assert!(rate <= 1.0 + 1100.0 / 3600.0, "sustained rate {rate}/s exceeds bucket + lane (+ their bursts)");
    assert!(years > 1.0, "{years} years");
}

#[test]
fn ten_typos_from_one_address_do_not_stop_another() {
    let mut h = Harness::new(HubConfig::default(), &["Dr Ada"]);
    let (ada, _) = h.staff("Dr Ada");
    let code = h.create(ada, spec(MeetingKind::Video, false));
    let clinic = h.connect_from(addr(1), None);
    for i in 0..10 {
        let err = h.join(clinic, &wrong_code_in_bucket_of(&code, i), "Typo").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidCode, "typo {i}");
    }
    // The typing address now waits a short, bounded time, even with the right code…
    let err = h.join(clinic, &code, "Pat").unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
    let wait = err.retry_after_ms.unwrap();
    assert!(wait <= 6000, "{wait} ms");
    // …another address is not slowed at all…
    assert_eq!(join_within(&mut h, addr(2), &code, 0), Ok(0));
    // …and the first gets in once its wait is over.
    h.advance(wait as i64);
    assert!(matches!(h.join(clinic, &code, "Pat"), Ok(Response::Joined(_))));
}

#[test]
fn invite_secrets_work_during_a_storm_and_a_wrong_one_is_refused() {
    let mut h = Harness::new(HubConfig::default(), &["Dr Ada"]);
    let (ada, _) = h.staff("Dr Ada");
    let (code, invite) = h.create_with_invite(ada, spec(MeetingKind::Video, false));
    assert_eq!(invite.len(), clinicmeet_protocol::join_secret::INVITE_LEN);
    let atk = attackers(&mut h, 200);
    let mut next_try = vec![0i64; atk.len()];
    let mut n = 0;
    for _ in 0..50 {
        storm_step(&mut h, &atk, &mut next_try, &code, &mut n);
        h.advance(100);
    }
    // The bucket is spent: an attacker's address is refused even the right code…
    let (ip, conn) = atk[0];
    let err = h.join(conn, &code, "Attacker").unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
    // …but the invite link works from that very address, at once.
    assert!(matches!(h.join(conn, &invite, "Pat"), Ok(Response::Joined(_))), "from {ip}");
    // A wrong invite secret is refused, however often, and costs the meeting nothing.
    let wrong = h.connect_from(patient_addr(1), None);
    for _ in 0..20 {
        let err = h.join(wrong, InviteSecret::random().as_str(), "Guess").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidCode);
    }
    let dashed = format!("{}-{}", &invite[..13], invite[13..].to_lowercase());
    assert_eq!(join_within(&mut h, patient_addr(2), &dashed, 0), Ok(0), "a typed link also works");
}

#[test]
fn rekey_retires_the_old_code_and_link_at_once() {
    let mut h = Harness::new(HubConfig::default(), &["Dr Ada"]);
    let (ada, _) = h.staff("Dr Ada");
    let (code, invite) = h.create_with_invite(ada, spec(MeetingKind::Video, false));
    h.join(ada, &code, "Dr Ada").unwrap();
    let guest = h.connect_from(patient_addr(1), None);
    h.join(guest, &code, "Pat").unwrap();
    assert_eq!(h.call(guest, Request::RekeyMeeting).unwrap_err().code, ErrorCode::Forbidden);
    let outsider = h.connect_from(patient_addr(2), None);
    assert_eq!(h.call(outsider, Request::RekeyMeeting).unwrap_err().code, ErrorCode::InvalidState);

    let Ok(Response::Rekeyed { access_code, invite_secret }) = h.call(ada, Request::RekeyMeeting) else {
        panic!("the host re-keys")
    };
    assert_ne!(access_code, code);
    assert_ne!(invite_secret, invite);
    for old in [&code, &invite] {
        let c = h.connect_from(patient_addr(3), None);
        assert_eq!(h.join(c, old, "Late").unwrap_err().code, ErrorCode::InvalidCode);
    }
    for new in [&access_code, &invite_secret] {
        let c = h.connect_from(patient_addr(4), None);
        assert!(matches!(h.join(c, new, "Late"), Ok(Response::Joined(_))));
    }
    // The guest already inside stays.
    assert!(h.call(guest, Request::Ping).is_ok());
    let rows = h.hub.store().audit_rows(Some("meeting_rekeyed")).unwrap();
    assert_eq!(rows.len(), 1);
}

#[test]
fn ten_thousand_failures_make_a_handful_of_audit_rows() {
    let mut h = Harness::new(HubConfig::default(), &["Dr Ada"]);
    let (ada, _) = h.staff("Dr Ada");
    let code = h.create(ada, spec(MeetingKind::Video, false));
    // 4 addresses, 25 connections each (each connection's request budget is 200 at once).
    let conns: Vec<ConnId> = (0..100).map(|i| h.connect_from(addr(i % 4), None)).collect();
    for i in 0..10_000u64 {
        let conn = conns[(i % 100) as usize];
        let err = h.join(conn, &wrong_code_in_bucket_of(&code, i), "x").unwrap_err();
        assert!(matches!(err.code, ErrorCode::InvalidCode | ErrorCode::RateLimited));
        if i % 400 == 399 {
            h.advance(100); // 25 s in all: one window
        }
    }
    let failures = |h: &Harness| {
        ["code_failed", "code_attempt_refused"]
            .iter()
            .flat_map(|a| h.hub.store().audit_rows(Some(a)).unwrap())
            .collect::<Vec<_>>()
    };
    assert!(failures(&h).is_empty(), "nothing written per attempt");
    h.advance(60_000);
    let rows = failures(&h);
    let total: u64 = rows
        .iter()
        .map(|r| r.detail.strip_prefix("count=").unwrap().split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    println!("10000 failures from 4 addresses: {} audit rows, counts summing to {total}", rows.len());
    assert!(rows.len() <= 8, "{rows:?}");
    assert_eq!(total, 10_000);
}

#[test]
fn an_enrollment_flood_is_rate_limited() {
    let mut h = Harness::new(HubConfig::default(), &["Dr Ada"]);
    let mut refused = 0;
    let mut tried = 0;
    for i in 0..1000u32 {
        let conn = h.connect_from(addr(i % 100), None);
        let req = Request::Enroll { enrollment_code: format!("WRONG-{i}"), device_name: "pc".into() };
        match h.call(conn, req) {
            Err(e) if e.code == ErrorCode::RateLimited => refused += 1,
            Err(e) if e.code == ErrorCode::InvalidCredential => tried += 1,
            other => panic!("{other:?}"),
        }
    }
    println!("enrollment flood: 1000 attempts from 100 addresses, {tried} checked, {refused} refused");
    assert!(tried <= 20, "{tried} enrollment attempts reached the database");
    // The flood's failures are coalesced too.
    h.advance(60_000);
    let rows: Vec<_> = ["enroll_failed", "enroll_refused"]
        .iter()
        .flat_map(|a| h.hub.store().audit_rows(Some(a)).unwrap())
        .collect();
    assert!(rows.len() <= 200, "{} rows", rows.len());
    // Staff still enroll after the flood (the global budget refills in seconds).
    let (conn, _) = h.staff("Dr Ada");
    assert!(h.call(conn, Request::ListMeetings).is_ok());
}
