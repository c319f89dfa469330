//! The record after the call with real processes: a doctor holds a
//! consultation from one CLI device, writes its notes there, amends them from
//! a second enrolled device of the same staff member, and reads the whole
//! record from both; a colleague cannot; `past` lists it; `ics` exports a
//! scheduled meeting.

use clinicmeet_e2e::*;

#[test]
fn notes_written_on_one_device_are_read_and_amended_on_another_of_the_same_staff_member() {
    let clinic = Clinic::new(&[]);
    let v = clinic.doctor.run_ok(&[
        "create",
        "--title",
        "Knee review",
        "--kind",
        "consultation",
        "--patient-ref",
        "MRN-0042",
    ]);
    let meeting_id = v["meeting_id"].as_str().unwrap().to_string();
    let code = v["access_code"].as_str().unwrap().to_string();
    let mut doctor = clinic.doctor.join(&code, &[]);
    doctor.expect_event("joined", STEP);
    doctor.send("/start-consultation");
    doctor.expect("consultation active", STEP, |v| find_str(v, "status") == Some("active"));
    doctor.send("/end-consultation");
    assert!(doctor.wait_exit(STEP));

    let rec = clinic.doctor.run_ok(&["consultation", "notes", &meeting_id, "Seen; knee stable."]);
    assert_eq!(rec["notes"]["text"], "Seen; knee stable.");
    assert_eq!(rec["notes"]["author_name"], "Dr. Grey");

    // The same doctor's second device: a new enrollment code from the operator.
    let staff_id = clinic.relay.admin(&["staff", "list"]);
    let staff_id = match &staff_id {
        serde_json::Value::Array(rows) => rows[0]["staff_id"].clone(),
        one => one["staff_id"].clone(),
    };
    let added = clinic.relay.admin(&["staff", "add-device", staff_id.as_str().unwrap()]);
    let tablet = Client::new(&clinic.relay, "Dr. Grey");
    tablet.enroll(added["enrollment_code"].as_str().unwrap());
    let rec = tablet.run_ok(&["consultation", "show", &meeting_id]);
    assert_eq!(rec["notes"]["text"], "Seen; knee stable.");
    assert_eq!(rec["meeting"]["patient_reference"], "MRN-0042");
    assert!(rec["duration_secs"].is_i64(), "{rec}");

    // Notes are written once; the tablet amends, the first device sees it.
    let (ok, out) = tablet.run(&["consultation", "notes", &meeting_id, "Something else"]);
    assert!(!ok && out.iter().any(|v| is_error(v, "invalid_state")), "{out:?}");
    tablet.run_ok(&["consultation", "amend", &meeting_id, "MRI booked."]);
    let rec = clinic.doctor.run_ok(&["consultation", "show", &meeting_id]);
    assert_eq!(rec["notes"]["text"], "Seen; knee stable.");
    assert_eq!(rec["amendments"][0]["seq"], 1);
    assert_eq!(rec["amendments"][0]["text"], "MRI booked.");
    assert_eq!(rec["amendments"][0]["author_name"], "Dr. Grey");

    // A colleague, and a guest, read nothing.
    let colleague = clinic.staff("Dr. Other");
    let (ok, out) = colleague.run(&["consultation", "show", &meeting_id]);
    assert!(!ok && out.iter().any(|v| is_error(v, "not_found")), "{out:?}");
    let (ok, out) = clinic.guest("Mallory").run(&["consultation", "show", &meeting_id]);
    assert!(!ok && out.iter().any(|v| is_error(v, "unauthenticated")), "{out:?}");

    // `past` on the tablet lists it from the relay, found by title.
    let (ok, rows) = tablet.run(&["past", "--query", "knee"]);
    assert!(ok, "{rows:?}");
    let row = rows.iter().find(|v| v["source"] == "relay").expect("a relay row");
    assert_eq!(row["meeting_id"], meeting_id.as_str());
    assert_eq!(row["held"], true);
    assert!(row["notes_written_at"].is_i64());
    let (ok, rows) = tablet.run(&["past", "--query", "nothing like it"]);
    assert!(ok && rows.iter().all(|v| v["source"] != "relay"), "{rows:?}");
}

#[test]
fn a_scheduled_meeting_exports_as_an_ics_invitation_with_its_link() {
    let clinic = Clinic::new(&[]);
    let v = clinic.doctor.run_ok(&[
        "create",
        "--title",
        "Follow-up, knee",
        "--schedule",
        "2030-03-04T09:30:00+01:00",
        "--tz",
        "Europe/Berlin",
        "--patient-ref",
        "MRN-0042",
    ]);
    let meeting_id = v["meeting_id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("visit.ics");
    let v =
        clinic.doctor.run_ok(&["ics", &meeting_id, "--out", path.to_str().unwrap(), "--duration-mins", "20"]);
    assert_eq!(v["duration_mins"], 20);
    let ics = std::fs::read_to_string(&path).unwrap();
    let unfolded = ics.replace("\r\n ", "");
    assert!(unfolded.contains("DTSTART:20300304T083000Z\r\n"), "{ics}");
    assert!(unfolded.contains("DURATION:PT20M\r\n"), "{ics}");
    assert!(unfolded.contains("SUMMARY:Follow-up\\, knee\r\n"), "{ics}");
    assert!(unfolded.contains("URL:clinicmeet://join/"), "{ics}");
    assert!(unfolded.contains("?relay="), "{ics}");
    assert!(!ics.contains("MRN-0042"), "no patient reference in an invitation");
}
