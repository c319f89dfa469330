//! Every action of the rights table tried by every role: refused where the
//! table says no (nothing changes), carried out where it says yes, seen by all.

use clinicmeet_e2e::*;

struct Room {
    host: Session,
    moderator: Session,
    staff: Session,
    guest: Session,
    target: Session,
    target_id: String,
    _clinic: Clinic,
}

fn room() -> Room {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    let mut host = clinic.doctor.join(&code, &[]);
    host.expect_event("joined", STEP);
    let mut moderator = clinic.guest("Mod").join(&code, &[]);
    let mod_id = my_id(&moderator.expect_event("joined", STEP));
    let mut staff = clinic.staff("Nurse").join(&code, &[]);
    staff.expect_event("joined", STEP);
    let mut guest = clinic.guest("Guest").join(&code, &[]);
    guest.expect_event("joined", STEP);
    let mut target = clinic.guest("Target").join(&code, &[]);
    let target_id = my_id(&target.expect_event("joined", STEP));
    target.send("/media audio");
    host.send(&format!("/promote {mod_id}"));
    for s in [&mut host, &mut moderator, &mut staff, &mut guest, &mut target] {
        s.expect("promotion seen", STEP, |v| {
            v["event"] == "role_changed" && find_str(v, "role") == Some("moderator")
        });
    }
    Room { host, moderator, staff, guest, target, target_id, _clinic: clinic }
}

fn refused(s: &mut Session, cmd: &str) {
    s.send(cmd);
    s.expect(&format!("forbidden for {cmd}"), STEP, |v| is_error(v, "forbidden"));
    // Consume the error so the next refusal waits for its own.
    s.seen.retain(|v| !is_error(v, "forbidden"));
}

#[test]
fn staff_and_guests_cannot_moderate_and_moderators_cannot_end_or_promote() {
    let mut r = room();
    let t = r.target_id.clone();
    for s in [&mut r.staff, &mut r.guest] {
        for cmd in [
            format!("/mute {t}"),
            format!("/remove {t}"),
            "/lock".into(),
            "/end".into(),
            format!("/promote {t}"),
        ] {
            refused(s, &cmd);
        }
    }
    for cmd in ["/end".to_string(), format!("/promote {t}"), format!("/demote {t}")] {
        refused(&mut r.moderator, &cmd);
    }
    // Nothing changed: the target is still present and unmuted, the meeting open.
    r.host.drain(std::time::Duration::from_millis(300));
    assert!(!r.host.saw(|v| v["event"] == "participant_left"));
    assert!(!r.host.saw(|v| v["event"] == "meeting_ended"));
    assert!(!r.target.saw(|v| v["event"] == "muted" || v["event"] == "removed"));
}

#[test]
fn moderators_mute_lock_remove_and_host_ends_for_all() {
    let mut r = room();
    let t = r.target_id.clone();
    r.moderator.send(&format!("/mute {t}"));
    r.target.expect_event("muted", STEP);
    for s in [&mut r.host, &mut r.staff, &mut r.guest] {
        s.expect("target muted", STEP, |v| {
            v["event"] == "media_changed"
                && find_str(v, "participant_id") == Some(t.as_str())
                && find(v, "audio") == Some(&json!(false))
        });
    }
    r.moderator.send("/lock");
    for s in [&mut r.host, &mut r.staff, &mut r.guest] {
        s.expect("locked", STEP, |v| {
            v["event"] == "meeting_updated" && find(v, "locked") == Some(&json!(true))
        });
    }
    r.moderator.send(&format!("/remove {t}"));
    r.target.expect_event("removed", STEP);
    r.target.wait_exit(STEP);
    for s in [&mut r.host, &mut r.staff, &mut r.guest] {
        s.expect("target removed", STEP, |v| {
            v["event"] == "participant_left" && find_str(v, "reason") == Some("removed")
        });
    }
    let mod_id = my_id(r.moderator.seen.iter().find(|v| v["event"] == "joined").unwrap());
    r.host.send(&format!("/demote {mod_id}"));
    r.moderator
        .expect("demoted", STEP, |v| v["event"] == "role_changed" && find_str(v, "role") == Some("guest"));
    refused(&mut r.moderator, "/unlock");
    r.host.send("/end");
    for s in [&mut r.moderator, &mut r.staff, &mut r.guest] {
        s.expect_event("meeting_ended", STEP);
        assert!(s.wait_exit(STEP));
    }
}
