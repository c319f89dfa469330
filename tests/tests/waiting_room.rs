//! The waiting room cannot be bypassed, and someone is always able to admit.

use clinicmeet_e2e::*;

#[test]
fn guest_waits_until_admitted_and_denied_guest_is_disconnected() {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&["--waiting-room"]);

    // A guest arriving before the host waits; nothing lets them in early.
    let mut early = clinic.guest("Early").join(&code, &[]);
    early.expect_event("waiting", STEP);
    early.drain(std::time::Duration::from_millis(500));
    assert!(!early.saw(|v| v["event"] == "joined" || v["event"] == "admitted"));

    let mut host = clinic.doctor.join(&code, &[]);
    host.expect_event("joined", STEP);
    // Staff skip the waiting room.
    let mut nurse = clinic.staff("Nurse Joy").join(&code, &[]);
    assert_eq!(nurse.expect_event("joined", STEP)["you"]["role"], "staff");

    let early_id = waiting_id(&mut host, "Early");
    host.send(&format!("/admit {early_id}"));
    early.expect_event("admitted", STEP);
    host.expect("early joined", STEP, |v| {
        v["event"] == "participant_joined" && find_str(v, "display_name") == Some("Early")
    });
    nurse.expect("early joined", STEP, |v| {
        v["event"] == "participant_joined" && find_str(v, "display_name") == Some("Early")
    });

    let mut late = clinic.guest("Late").join(&code, &[]);
    late.expect_event("waiting", STEP);
    let late_id = waiting_id(&mut host, "Late");
    host.send(&format!("/deny {late_id}"));
    late.expect_event("denied", STEP);
    late.wait_exit(STEP);
    assert!(!host.saw(|v| v["event"] == "participant_joined" && find_str(v, "display_name") == Some("Late")));
}

#[test]
fn host_drop_passes_admit_rights_to_a_moderator() {
    let clinic = Clinic::new(&["--resume-grace-secs", "3"]);
    let (_, code) = clinic.doctor.create(&["--waiting-room"]);
    let mut host = clinic.doctor.join(&code, &[]);
    host.expect_event("joined", STEP);
    let mut colleague = clinic.staff("Dr. Burke").join(&code, &[]);
    let me = colleague.expect_event("joined", STEP);
    let colleague_id = my_id(&me);
    host.send(&format!("/promote {colleague_id}"));
    colleague.expect("promoted", STEP, |v| {
        v["event"] == "role_changed" && find_str(v, "role") == Some("moderator")
    });

    // The host's process dies; a guest arrives; the moderator can still admit.
    host.kill();
    let mut guest = clinic.guest("Walk-in").join(&code, &[]);
    guest.expect_event("waiting", STEP);
    let gid = waiting_id(&mut colleague, "Walk-in");
    colleague.send(&format!("/admit {gid}"));
    guest.expect_event("admitted", STEP);
}
