//! Create, join by code and the join errors, against a real relay process.

use clinicmeet_e2e::*;

#[test]
fn create_and_join_with_any_code_spelling() {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    assert_eq!(code.len(), 9, "code is shown as ABCD-EFGH: {code}");
    assert!(code.chars().all(|c| c == '-' || "ABCDEFGHJKLMNPQRSTUVWXYZ23456789".contains(c)), "{code}");

    let mut host = clinic.doctor.join(&code, &[]);
    let joined = host.expect_event("joined", STEP);
    assert_eq!(joined["you"]["role"], "host");

    let variants =
        [code.to_lowercase(), code.replace('-', ""), format!("  {}  ", code.to_lowercase().replace('-', ""))];
    for (i, variant) in variants.iter().enumerate() {
        let guest = clinic.guest(&format!("Guest {i}"));
        let mut s = guest.join(variant, &[]);
        let ev = s.expect_event("joined", STEP);
        assert_eq!(ev["you"]["role"], "guest");
        let name = format!("Guest {i}");
        host.expect("participant_joined", STEP, |v| {
            v["event"] == "participant_joined" && find_str(v, "display_name") == Some(name.as_str())
        });
        s.leave();
        assert!(s.wait_exit(STEP));
        host.expect("participant_left", STEP, |v| {
            v["event"] == "participant_left" && find_str(v, "reason") == Some("left")
        });
    }
}

#[test]
fn join_errors_are_distinct_and_clear() {
    let clinic = Clinic::new(&[]);
    let guest = clinic.guest("Pat");

    // Unknown and malformed codes give the same error.
    for bad in ["ABCD-EFGH", "nonsense", "ABCD-EFG0"] {
        let (ok, out) = guest.run(&["join", bad]);
        assert!(!ok);
        assert!(out.iter().any(|v| is_error(v, "invalid_code")), "{bad}: {out:?}");
    }

    // Full: max 2 participants.
    let (_, code) = clinic.doctor.create(&["--max-participants", "2"]);
    let mut host = clinic.doctor.join(&code, &[]);
    host.expect_event("joined", STEP);
    let mut first = clinic.guest("First").join(&code, &[]);
    first.expect_event("joined", STEP);
    let (ok, out) = clinic.guest("Second").run(&["join", &code]);
    assert!(!ok && out.iter().any(|v| is_error(v, "meeting_full")), "{out:?}");

    // Locked.
    let (_, code2) = clinic.doctor.create(&[]);
    let mut host2 = clinic.doctor.join(&code2, &[]);
    host2.expect_event("joined", STEP);
    host2.send("/lock");
    host2.expect("meeting locked", STEP, |v| find(v, "locked") == Some(&json!(true)));
    let (ok, out) = clinic.guest("Late").run(&["join", &code2]);
    assert!(!ok && out.iter().any(|v| is_error(v, "meeting_locked")), "{out:?}");
    host2.send("/unlock");
    host2.expect_next("meeting unlocked", STEP, |v| {
        v["event"] != "joined" && find(v, "locked") == Some(&json!(false))
    });
    let mut late = clinic.guest("Late").join(&code2, &[]);
    late.expect_event("joined", STEP);

    // Ended: everyone is told, and the code admits nobody afterwards.
    host2.send("/end");
    late.expect_event("meeting_ended", STEP);
    assert!(late.wait_exit(STEP));
    assert!(host2.wait_exit(STEP));
    let (ok, out) = clinic.guest("After").run(&["join", &code2]);
    assert!(!ok && out.iter().any(|v| is_error(v, "meeting_ended")), "{out:?}");
    drop(first);
}

#[test]
fn only_staff_create_meetings() {
    let clinic = Clinic::new(&[]);
    let (ok, out) = clinic.guest("Mallory").run(&["create", "--title", "Fake"]);
    assert!(!ok);
    assert!(out.iter().any(|v| is_error(v, "unauthenticated")), "{out:?}");
}

#[test]
fn consultation_start_end_and_duration() {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&["--kind", "consultation", "--patient-ref", "MRN-0042"]);
    // The patient arrives first and waits, even before the doctor is there.
    let mut patient = clinic.guest("Patient").join(&code, &[]);
    patient.expect_event("waiting", STEP);

    let mut doctor = clinic.doctor.join(&code, &[]);
    doctor.expect_event("joined", STEP);
    let pid = waiting_id(&mut doctor, "Patient");
    doctor.send("/start-consultation");
    doctor.expect("consultation active", STEP, |v| find_str(v, "status") == Some("active"));
    doctor.send(&format!("/admit {pid}"));
    patient.expect_event("admitted", STEP);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    doctor.send("/end-consultation Follow-up in two weeks.");
    let ended = patient.expect_event("meeting_ended", STEP);
    assert_eq!(find_str(&ended, "status"), Some("completed"));
    assert!(doctor.wait_exit(STEP));

    let (ok, lines) = clinic.doctor.run(&["consultations"]);
    assert!(ok);
    let rec = lines.iter().find(|v| find_str(v, "patient_reference") == Some("MRN-0042")).expect("record");
    let secs = find(rec, "duration_secs").and_then(|d| d.as_i64()).expect("duration");
    assert!((1..60).contains(&secs), "duration {secs}");
    assert_eq!(find_str(rec, "notes"), Some("Follow-up in two weeks."));
    assert_eq!(find_str(rec, "status"), Some("completed"));
}
