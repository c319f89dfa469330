//! Meetings end and their data goes: a meeting nobody has been in for the
//! abandon period ends by itself (its code stops working, its retention clock
//! starts), a scheduled meeting that never started expires after its start, a
//! meeting someone is in never does; retention then purges chat, notes,
//! display names, patient references and audit source addresses.

use clinicmeet_harness::*;
use clinicmeet_protocol::{
    ErrorCode, MeetingId, MeetingKind, MeetingSpec, MeetingStatus, Request, Response, Schedule,
};
use clinicmeet_relay::hub::{ConnId, HubConfig};
use uuid::Uuid;

const HOUR: i64 = 3_600_000;

fn create(h: &mut Harness, conn: ConnId, spec: MeetingSpec) -> (MeetingId, String) {
    match h.call(conn, Request::CreateMeeting { spec }) {
        Ok(Response::MeetingCreated { meeting, access_code, .. }) => (meeting.id, access_code),
        other => panic!("create: {other:?}"),
    }
}

fn status(h: &Harness, id: MeetingId) -> MeetingStatus {
    h.hub.store().meeting(id).unwrap().unwrap().info.status
}

#[test]
fn meetings_nobody_is_in_end_by_themselves_and_retention_purges_what_identifies_patients() {
    let cfg = HubConfig {
        abandon_after_ms: 12 * HOUR,
        chat_retention_ms: 24 * HOUR,
        address_retention_ms: 24 * HOUR,
        ..HubConfig::default()
    };
    let mut h = Harness::new(cfg, &["Dr House"]);
    let (doctor, _) = h.staff("Dr House");

    // A: a consultation that happened; everyone left.
    let mut a_spec = spec(MeetingKind::Consultation, true);
    a_spec.patient_reference = Some("MRN 4711".into());
    let (a, a_code) = create(&mut h, doctor, a_spec);
    h.join(doctor, &a_code, "Dr House").unwrap();
    h.call(doctor, Request::StartConsultation).unwrap();
    h.call(
        doctor,
        Request::SendChat {
            client_msg_id: Uuid::now_v7(),
            text: "BP 120/80".into(),
            staff_only: true,
            attachments: vec![],
        },
    )
    .unwrap();
    h.call(doctor, Request::Leave).unwrap();
    // B: scheduled for tomorrow, never started.
    let mut b_spec = spec(MeetingKind::Video, false);
    b_spec.schedule = Some(Schedule { start: h.now + 24 * HOUR, time_zone: "Europe/Berlin".into() });
    let (b, _) = create(&mut h, doctor, b_spec);
    // C: someone stays in it all along.
    let (c, c_code) = create(&mut h, doctor, spec(MeetingKind::Video, false));
    let stayer = h.connect(None);
    entered(&h.join(stayer, &c_code, "Night shift"));
    // A wrong code leaves a source address in the audit log.
    let guesser = h.connect(None);
    assert_eq!(h.join(guesser, "ZZZZ-ZZZZ", "x").unwrap_err().code, ErrorCode::InvalidCode);

    h.advance(11 * HOUR);
    assert_eq!(h.hub.end_abandoned(h.now).unwrap(), 0, "not yet");
    h.advance(2 * HOUR);
    assert_eq!(h.hub.end_abandoned(h.now).unwrap(), 1);
    assert_eq!(status(&h, a), MeetingStatus::Ended, "nobody in it for 12 h");
    let late = h.connect(None);
    assert_eq!(
        h.join(late, &a_code, "Late").unwrap_err().code,
        ErrorCode::MeetingEnded,
        "its code stops working"
    );
    assert_eq!(status(&h, b), MeetingStatus::Scheduled, "its start is still ahead");
    assert_eq!(status(&h, c), MeetingStatus::Active, "someone is in it");

    h.advance(24 * HOUR);
    assert_eq!(h.hub.end_abandoned(h.now).unwrap(), 1);
    assert_eq!(status(&h, b), MeetingStatus::Ended, "12 h past its scheduled start, never started");
    assert_eq!(status(&h, c), MeetingStatus::Active);
    assert_eq!(h.hub.store().audit_rows(Some("meeting_abandoned")).unwrap().len(), 2);

    h.advance(HOUR);
    // A ended 25 h ago: past the 24 h retention. Its chat and notes, names and
    // patient reference go; audit rows keep their action but lose the address.
    let purged = h.hub.purge(h.now).unwrap();
    // The note and the relay's lines: joined, consultation started, left.
    assert_eq!((purged.chat, purged.names, purged.references), (4, 1, 1), "{purged:?}");
    assert!(purged.addresses >= 1, "{purged:?}");
    assert_eq!(h.hub.store().meeting(a).unwrap().unwrap().info.patient_reference, None);
    assert!(h.hub.store().all_chat(a).unwrap().is_empty());
    let failed = h.hub.store().audit_rows(Some("code_failed")).unwrap();
    assert!(!failed.is_empty() && failed.iter().all(|r| r.source.is_none()), "{failed:?}");
    // B ended 1 h ago: kept until its retention ends.
    assert_eq!(h.hub.purge(h.now).unwrap().chat, 0);
}

#[test]
fn a_staff_member_removed_from_a_meeting_reads_only_what_was_said_before() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Nurse Joy"]);
    let (host, code) = h.host_meeting("Dr House", false);
    let (nurse, credential) = h.staff("Nurse Joy");
    let (nurse_id, _) = entered(&h.join(nurse, &code, "Nurse Joy"));
    let mid = match h.call(host, Request::ListMeetings) {
        Ok(Response::Meetings { meetings }) => meetings[0].meeting.id,
        other => panic!("{other:?}"),
    };
    let say = |h: &mut Harness, text: &str, notes: bool| {
        h.call(
            host,
            Request::SendChat {
                client_msg_id: Uuid::now_v7(),
                text: text.into(),
                staff_only: notes,
                attachments: vec![],
            },
        )
        .unwrap();
    };
    say(&mut h, "before", false);
    say(&mut h, "note before", true);
    h.advance(1_000);
    let removed_at = h.now;
    h.call(host, Request::Remove { participant_id: nurse_id }).unwrap();
    h.advance(1_000);
    say(&mut h, "after", false);
    say(&mut h, "note after", true);
    // From another connection of her enrolled device, outside the meeting.
    let later = h.connect(Some(credential));
    let history =
        Request::ChatHistory { meeting_id: Some(mid), since_seq: 0, notes_since_seq: 0, limit: 100 };
    let Ok(Response::ChatHistory { messages, .. }) = h.call(later, history.clone()) else { panic!() };
    // What people wrote (the relay's joined/left lines up to then come along).
    let texts: Vec<&str> = messages.iter().filter(|m| m.system.is_none()).map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before", "note before"]);
    assert!(messages.iter().all(|m| m.sent_at <= removed_at), "nothing after her removal");
    // The host, who was never removed, reads everything.
    h.call(host, Request::Leave).unwrap();
    let Ok(Response::ChatHistory { messages, .. }) = h.call(host, history) else { panic!() };
    assert_eq!(messages.iter().filter(|m| m.system.is_none()).count(), 4);
}
