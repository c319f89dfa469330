//! The record after the call, through the hub in memory: consultation notes
//! written once by the staff member who held the consultation and amended
//! (never overwritten), read from another device of theirs and after a relay
//! restart; nobody else reads or writes them (every role tried); a full disk
//! acknowledges nothing; past meetings listed for those who took part.

use clinicmeet_harness::*;
use clinicmeet_protocol::limits::{MAX_AMENDMENTS, MAX_NOTES_BYTES};
use clinicmeet_protocol::{
    ConsultationRecord, ErrorCode, MeetingId, MeetingKind, PastFilter, PastMeeting, Request, Response,
};
use clinicmeet_relay::hub::{ConnId, HubConfig};
use clinicmeet_relay::keys;
use uuid::Uuid;

fn record(r: Result<Response, clinicmeet_protocol::ErrorBody>) -> ConsultationRecord {
    match r {
        Ok(Response::Consultation { record }) => record,
        other => panic!("not a consultation record: {other:?}"),
    }
}

fn code_of(r: Result<Response, clinicmeet_protocol::ErrorBody>) -> ErrorCode {
    r.expect_err("refused").code
}

fn save(meeting_id: MeetingId, notes: &str) -> Request {
    Request::SaveConsultationNotes { meeting_id, notes: notes.into() }
}

fn amend(meeting_id: MeetingId, text: &str) -> Request {
    Request::AmendConsultation { meeting_id, text: text.into() }
}

fn get(meeting_id: MeetingId) -> Request {
    Request::GetConsultation { meeting_id }
}

fn past(h: &mut Harness, conn: ConnId, filter: PastFilter) -> Vec<PastMeeting> {
    match h.call(conn, Request::ListPastMeetings { filter }) {
        Ok(Response::PastMeetings { meetings, .. }) => meetings,
        other => panic!("past: {other:?}"),
    }
}

/// A consultation with a patient reference, created by `host` (already
/// enrolled), which the host joins and starts; returns (meeting id, code).
fn consultation(h: &mut Harness, host: ConnId, title: &str) -> (MeetingId, String) {
    let mut s = spec(MeetingKind::Consultation, true);
    s.title = title.into();
    s.patient_reference = Some("P-4711".into());
    let (mid, code) = match h.call(host, Request::CreateMeeting { spec: s }) {
        Ok(Response::MeetingCreated { meeting, access_code, .. }) => (meeting.id, access_code),
        other => panic!("create: {other:?}"),
    };
    entered(&h.join(host, &code, "Dr House"));
    h.call(host, Request::StartConsultation).unwrap();
    (mid, code)
}

/// A further device of an enrolled staff member: a new enrollment code from the
/// operator (`staff add-device`), spent on a new connection.
fn second_device(h: &mut Harness, name: &str) -> ConnId {
    let staff = h.hub.store().list_staff().unwrap().into_iter().find(|s| s.name == name).unwrap();
    let code = keys::new_enrollment_code();
    let hash = keys::hash_secret(&keys::normalize_enrollment_code(&code));
    assert!(h.hub.store().add_enrollment_code(staff.staff_id, &hash, h.now, h.now + 60_000).unwrap());
    let conn = h.connect(None);
    let enroll = Request::Enroll { enrollment_code: code, device_name: "tablet".into() };
    assert!(matches!(h.call(conn, enroll), Ok(Response::Enrolled { .. })));
    conn
}

#[test]
fn only_the_staff_member_who_held_the_consultation_reads_or_writes_its_record_every_role_tried() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Nurse Joy", "Dr Other"]);
    let (host, _) = h.staff("Dr House");
    let (nurse, _) = h.staff("Nurse Joy");
    let (other, _) = h.staff("Dr Other");
    let (mid, code) = consultation(&mut h, host, "Follow-up");
    // Everyone of the rights table is in it: a guest promoted to moderator, a
    // staff member, a guest, and a guest still waiting.
    let moderator = h.connect(None);
    let (mod_id, _) = entered(&h.join(moderator, &code, "Mod"));
    h.call(host, Request::Admit { participant_id: mod_id }).unwrap();
    h.call(host, Request::Promote { participant_id: mod_id }).unwrap();
    let guest = h.connect(None);
    let (guest_id, _) = entered(&h.join(guest, &code, "Patient"));
    h.call(host, Request::Admit { participant_id: guest_id }).unwrap();
    assert!(matches!(h.join(nurse, &code, "Nurse Joy"), Ok(Response::Joined(_))));
    let waiting = h.connect(None);
    entered(&h.join(waiting, &code, "Waiting"));

    // Before the end: nobody writes notes, the host is told why.
    assert_eq!(code_of(h.call(host, save(mid, "early"))), ErrorCode::InvalidState);
    // The host, in the meeting, reads the record (no notes yet).
    assert!(record(h.call(host, get(mid))).notes.is_none());

    // The others, in the meeting: not the host's record.
    let outsiders: [(&str, ConnId, ErrorCode); 5] = [
        ("moderator (a guest)", moderator, ErrorCode::Unauthenticated),
        ("staff in the meeting", nurse, ErrorCode::NotFound),
        ("guest", guest, ErrorCode::Unauthenticated),
        ("waiting guest", waiting, ErrorCode::Unauthenticated),
        ("staff never in it", other, ErrorCode::NotFound),
    ];
    let try_all = |h: &mut Harness| {
        for (who, conn, want) in outsiders {
            for req in [get(mid), save(mid, "mine"), amend(mid, "mine")] {
                let r = h.call(conn, req.clone());
                assert_eq!(r.as_ref().map_err(|e| e.code).err(), Some(want), "{who}: {req:?} → {r:?}");
            }
        }
    };
    try_all(&mut h);

    let ended = h.call(host, Request::EndConsultation).unwrap();
    assert!(matches!(ended, Response::ConsultationEnded { .. }));
    // After the end (everyone left; the connections stay): still only the host.
    try_all(&mut h);
    let r = record(h.call(host, save(mid, "Seen; BP 120/80.\nReview in 2 weeks.")));
    assert_eq!(r.notes.as_ref().unwrap().text, "Seen; BP 120/80.\nReview in 2 weeks.");
    assert_eq!(r.notes.as_ref().unwrap().author_name, "Dr House");
    assert_eq!(r.meeting.patient_reference.as_deref(), Some("P-4711"));
    assert!(r.duration_secs.is_some());
    try_all(&mut h);
    // Unknown meetings and the host's own meetings that are not consultations: not found.
    assert_eq!(code_of(h.call(host, get(Uuid::now_v7()))), ErrorCode::NotFound);
    let video = h.create(host, spec(MeetingKind::Video, false));
    let vid = match h.join(host, &video, "Dr House") {
        Ok(Response::Joined(js)) => js.meeting.id,
        other => panic!("{other:?}"),
    };
    assert_eq!(code_of(h.call(host, get(vid))), ErrorCode::NotFound);
    // Nothing the outsiders tried was stored.
    let r = record(h.call(host, get(mid)));
    assert!(r.amendments.is_empty());
}

#[test]
fn notes_are_written_once_amendments_append_with_time_and_author_and_survive_a_restart() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House"]);
    let (host, _) = h.staff("Dr House");
    let (mid, _) = consultation(&mut h, host, "Follow-up");
    h.advance(90_000);
    h.call(host, Request::EndConsultation).unwrap();
    assert_eq!(code_of(h.call(host, amend(mid, "too soon"))), ErrorCode::InvalidState, "amend before notes");
    // Empty, control characters and oversized notes are refused with their codes.
    assert_eq!(code_of(h.call(host, save(mid, "  \n "))), ErrorCode::Malformed);
    assert_eq!(code_of(h.call(host, save(mid, "a\u{7}b"))), ErrorCode::Malformed);
    assert_eq!(code_of(h.call(host, save(mid, &"é".repeat(MAX_NOTES_BYTES / 2 + 1)))), ErrorCode::TooLarge);
    let at_limit = "x".repeat(MAX_NOTES_BYTES);
    let first = record(h.call(host, save(mid, &at_limit)));
    let written_at = first.notes.as_ref().unwrap().written_at;
    assert_eq!(written_at, h.now);
    assert_eq!(first.duration_secs, Some(90));
    // A retry of the same notes (reply lost) answers the same record; other text is refused.
    assert_eq!(record(h.call(host, save(mid, &at_limit))), first);
    let again = h.call(host, save(mid, "rewritten"));
    let err = again.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidState);
    assert!(err.message.contains("amendment"), "{}", err.message);

    h.advance(60_000);
    let a1 = record(h.call(host, amend(mid, "Lab results normal.")));
    h.advance(60_000);
    let a2 = record(h.call(host, amend(mid, "Patient called: symptoms gone.")));
    assert_eq!(a1.amendments.len(), 1);
    let seqs: Vec<(u32, &str, &str, i64)> =
        a2.amendments.iter().map(|a| (a.seq, a.text.as_str(), a.author_name.as_str(), a.at)).collect();
    assert_eq!(
        seqs,
        vec![
            (1, "Lab results normal.", "Dr House", written_at + 60_000),
            (2, "Patient called: symptoms gone.", "Dr House", written_at + 120_000),
        ]
    );
    assert_eq!(a2.notes, first.notes, "the original notes are kept as written");

    // The audit log says what happened, never the text.
    let audit = h.hub.store().audit_rows(None).unwrap();
    let saved: Vec<_> = audit.iter().filter(|r| r.action == "consultation_notes_saved").collect();
    let amended: Vec<_> = audit.iter().filter(|r| r.action == "consultation_amended").collect();
    assert_eq!((saved.len(), amended.len()), (1, 2));
    assert!(audit.iter().all(|r| !r.detail.contains("Lab") && !r.detail.contains("xxx")));

    // Another device of the same staff member, and after a relay restart.
    let tablet = second_device(&mut h, "Dr House");
    assert_eq!(record(h.call(tablet, get(mid))), a2);
    h.restart();
    let laptop = h.connect(None);
    assert_eq!(code_of(h.call(laptop, get(mid))), ErrorCode::Unauthenticated);
    let tablet = second_device(&mut h, "Dr House");
    assert_eq!(record(h.call(tablet, get(mid))), a2);

    // The amendments per record are bounded.
    for i in 3..=MAX_AMENDMENTS {
        record(h.call(tablet, amend(mid, &format!("amendment {i}"))));
    }
    assert_eq!(code_of(h.call(tablet, amend(mid, "one more"))), ErrorCode::TooLarge);
    assert_eq!(record(h.call(tablet, get(mid))).amendments.len(), MAX_AMENDMENTS as usize);
    assert_eq!(code_of(h.call(tablet, amend(mid, &"y".repeat(MAX_NOTES_BYTES + 1)))), ErrorCode::TooLarge);
}

/// Fills the database up to its page cap, so the next write that needs a page fails.
fn fill_storage(h: &Harness) {
    h.hub.store().cap_pages(Some(0)).unwrap();
    let mut n = 0;
    for size in [1000, 100, 10, 0] {
        while h.hub.store().audit(h.now, None, None, "filler", None, &"x".repeat(size)).is_ok() {
            n += 1;
            assert!(n < 100_000, "the page cap did not take");
        }
    }
}

#[test]
fn on_a_full_disk_notes_and_amendments_are_refused_whole_and_stored_once_space_returns() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House"]);
    let (host, _) = h.staff("Dr House");
    let (mid, _) = consultation(&mut h, host, "Follow-up");
    h.call(host, Request::EndConsultation).unwrap();
    let notes = "n".repeat(8_000);
    fill_storage(&h);
    let err = h.call(host, save(mid, &notes)).unwrap_err();
    assert_eq!(err.code, ErrorCode::StorageUnavailable);
    assert!(err.retry_after_ms.is_some());
    h.hub.store().cap_pages(None).unwrap();
    let r = record(h.call(host, get(mid)));
    assert!(r.notes.is_none(), "nothing of the refused notes was kept");
    let audit = h.hub.store().audit_rows(Some("consultation_notes_saved")).unwrap();
    assert!(audit.is_empty(), "nor its audit row");

    let stored = record(h.call(host, save(mid, &notes)));
    fill_storage(&h);
    assert_eq!(code_of(h.call(host, amend(mid, &"a".repeat(8_000)))), ErrorCode::StorageUnavailable);
    h.hub.store().cap_pages(None).unwrap();
    assert_eq!(record(h.call(host, get(mid))), stored, "the refused amendment left nothing");
    let r = record(h.call(host, amend(mid, &"a".repeat(8_000))));
    assert_eq!(r.amendments.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn past_meetings_list_what_each_staff_member_took_part_in_by_title_and_date() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Nurse Joy", "Dr Other"]);
    let (host, _) = h.staff("Dr House");
    let (nurse, _) = h.staff("Nurse Joy");
    let (other, _) = h.staff("Dr Other");
    let t0 = h.now;
    let (c1, _) = consultation(&mut h, host, "Knee follow-up");
    h.call(host, Request::EndConsultation).unwrap();
    h.call(host, save(c1, "fine")).unwrap();
    h.advance(3_600_000);
    let t1 = h.now;
    let mut s = spec(MeetingKind::Video, false);
    s.title = "Team 100% huddle".into();
    let code = h.create(host, s);
    let m2 = match h.join(host, &code, "Dr House") {
        Ok(Response::Joined(js)) => js.meeting.id,
        other => panic!("{other:?}"),
    };
    h.join(nurse, &code, "Nurse Joy").unwrap();
    h.call(host, Request::EndMeeting).unwrap();
    // Still going: not past.
    let (c3, _) = consultation(&mut h, host, "Knee, second visit");

    let ids = |rows: &[PastMeeting]| rows.iter().map(|r| r.meeting.id).collect::<Vec<_>>();
    let all = past(&mut h, host, PastFilter::default());
    assert_eq!(ids(&all), vec![m2, c1], "newest first, ongoing ones left out");
    assert!(all.iter().all(|r| r.held));
    assert!(all[1].notes_written_at.is_some() && all[0].notes_written_at.is_none());
    assert_eq!(all[1].meeting.patient_reference.as_deref(), Some("P-4711"));
    let q = |q: &str| PastFilter { query: Some(q.into()), ..PastFilter::default() };
    assert_eq!(ids(&past(&mut h, host, q("KNEE"))), vec![c1], "title, case-insensitive");
    assert_eq!(ids(&past(&mut h, host, q("100%"))), vec![m2], "% is a character, not a wildcard");
    assert_eq!(ids(&past(&mut h, host, q("1_0"))), Vec::<MeetingId>::new(), "_ too");
    let range = |from, to| PastFilter { from: Some(from), to: Some(to), ..PastFilter::default() };
    assert_eq!(ids(&past(&mut h, host, range(t0, t1))), vec![c1]);
    assert_eq!(ids(&past(&mut h, host, range(t1, t1 + 1)))[..], [m2]);
    let cons = PastFilter { consultations_only: true, ..PastFilter::default() };
    assert_eq!(ids(&past(&mut h, host, cons.clone())), vec![c1]);
    let one = PastFilter { limit: 1, ..PastFilter::default() };
    match h.call(host, Request::ListPastMeetings { filter: one }) {
        Ok(Response::PastMeetings { meetings, more }) => assert_eq!((ids(&meetings), more), (vec![m2], true)),
        other => panic!("{other:?}"),
    }

    // The nurse took part in the huddle only; she did not hold it.
    let nurse_rows = past(&mut h, nurse, PastFilter::default());
    assert_eq!(ids(&nurse_rows), vec![m2]);
    assert!(!nurse_rows[0].held);
    assert!(past(&mut h, nurse, cons).is_empty());
    // Staff who were never in any: nothing. Guests: not without a staff device.
    assert!(past(&mut h, other, PastFilter::default()).is_empty());
    let guest = h.connect(None);
    let r = h.call(guest, Request::ListPastMeetings { filter: PastFilter::default() });
    assert_eq!(code_of(r), ErrorCode::Unauthenticated);
    let long = PastFilter { query: Some("q".repeat(201)), ..PastFilter::default() };
    assert_eq!(code_of(h.call(host, Request::ListPastMeetings { filter: long })), ErrorCode::TooLarge);
    let _ = c3;
}

#[test]
fn cancelling_tells_those_waiting_refuses_later_joiners_and_only_the_creator_may() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Nurse Joy"]);
    let (host, _) = h.staff("Dr House");
    let (nurse, _) = h.staff("Nurse Joy");
    let mut s = spec(MeetingKind::Consultation, true);
    s.title = "Knee follow-up".into();
    let (mid, code) = match h.call(host, Request::CreateMeeting { spec: s }) {
        Ok(Response::MeetingCreated { meeting, access_code, .. }) => (meeting.id, access_code),
        other => panic!("create: {other:?}"),
    };
    // The patient arrives early and waits; a colleague is in already.
    let patient = h.connect(None);
    entered(&h.join(patient, &code, "Patient"));
    assert!(matches!(h.join(nurse, &code, "Nurse Joy"), Ok(Response::Joined(_))));
    h.take_events(patient);
    h.take_events(nurse);

    let cancel = Request::CancelMeeting { meeting_id: mid };
    assert_eq!(code_of(h.call(nurse, cancel.clone())), ErrorCode::NotFound, "staff, not the creator");
    assert_eq!(code_of(h.call(patient, cancel.clone())), ErrorCode::Unauthenticated, "waiting guest");
    let unknown = Request::CancelMeeting { meeting_id: Uuid::now_v7() };
    assert_eq!(code_of(h.call(host, unknown)), ErrorCode::NotFound);
    assert!(matches!(h.call(host, cancel.clone()), Ok(Response::Ok)));
    for conn in [patient, nurse] {
        let events = h.take_events(conn);
        assert!(
            events.iter().any(|ev| matches!(ev,
                clinicmeet_protocol::Event::MeetingEnded(e) if e.status == clinicmeet_protocol::MeetingStatus::Cancelled)),
            "{events:?}"
        );
        assert!(h.closed.contains(&conn), "the relay closes their connection");
    }
    let late = h.connect(None);
    assert_eq!(code_of(h.join(late, &code, "Late")), ErrorCode::MeetingCancelled);
    assert_eq!(code_of(h.call(host, cancel.clone())), ErrorCode::InvalidState, "cancelled already");
    // After a restart too, and the cancelled meeting is among the past ones.
    h.restart();
    let late = h.connect(None);
    assert_eq!(code_of(h.join(late, &code, "Late")), ErrorCode::MeetingCancelled);
    let host = second_device(&mut h, "Dr House");
    let rows = past(&mut h, host, PastFilter::default());
    assert_eq!(
        rows.iter().map(|r| (r.meeting.id, r.meeting.status)).collect::<Vec<_>>(),
        vec![(mid, clinicmeet_protocol::MeetingStatus::Cancelled)]
    );
    // No notes for a consultation that never took place.
    assert_eq!(code_of(h.call(host, save(mid, "n/a"))), ErrorCode::InvalidState);

    // A meeting nobody is in is cancelled from storage; one that started cannot be.
    let code2 = h.create(host, spec(MeetingKind::Video, false));
    let m2 = match h.call(host, Request::ListMeetings) {
        Ok(Response::Meetings { meetings }) => meetings[0].meeting.id,
        other => panic!("{other:?}"),
    };
    assert!(matches!(h.call(host, Request::CancelMeeting { meeting_id: m2 }), Ok(Response::Ok)));
    assert_eq!(code_of(h.join(late, &code2, "Late")), ErrorCode::MeetingCancelled);
    let code3 = h.create(host, spec(MeetingKind::Video, false));
    let m3 = match h.join(host, &code3, "Dr House") {
        Ok(Response::Joined(js)) => js.meeting.id,
        other => panic!("{other:?}"),
    };
    assert_eq!(code_of(h.call(host, Request::CancelMeeting { meeting_id: m3 })), ErrorCode::InvalidState);
}

#[test]
fn the_clinic_view_lists_every_open_meeting_and_staff_joining_by_id_knock_unless_they_created_it() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Nurse Joy"]);
    let (host, _) = h.staff("Dr House");
    let (nurse, _) = h.staff("Nurse Joy");
    let (cid, _) = consultation(&mut h, host, "Knee follow-up");
    let mut s = spec(MeetingKind::Video, false);
    s.title = "Nurse huddle".into();
    s.description = Some("ward 3".into());
    let ncode = h.create(nurse, s);

    let list = |h: &mut Harness, conn| match h.call(conn, Request::ListClinicMeetings) {
        Ok(Response::Meetings { meetings }) => meetings,
        other => panic!("clinic view: {other:?}"),
    };
    let rows = list(&mut h, nurse);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let theirs = rows.iter().find(|r| r.meeting.id == cid).unwrap();
    assert_eq!((theirs.participant_count, theirs.meeting.patient_reference.as_deref()), (1, None));
    let own = rows.iter().find(|r| r.meeting.title == "Nurse huddle").unwrap();
    assert_eq!(own.meeting.description.as_deref(), Some("ward 3"), "one's own meeting in full");
    let rows = list(&mut h, host);
    let mine = rows.iter().find(|r| r.meeting.id == cid).unwrap();
    assert_eq!(mine.meeting.patient_reference.as_deref(), Some("P-4711"));
    assert!(rows.iter().find(|r| r.meeting.title == "Nurse huddle").unwrap().meeting.description.is_none());
    let guest = h.connect(None);
    assert_eq!(code_of(h.call(guest, Request::ListClinicMeetings)), ErrorCode::Unauthenticated);

    // The nurse joins the doctor's consultation by id: she knocks and is admitted.
    let by_id = |meeting_id| Request::JoinAsStaff {
        meeting_id,
        display_name: "Nurse Joy".into(),
        media: clinicmeet_protocol::MediaState::default(),
    };
    let waiting = h.call(nurse, by_id(cid));
    let (nurse_pid, _) = entered(&waiting);
    assert!(matches!(waiting, Ok(Response::Waiting { .. })), "{waiting:?}");
    h.call(host, Request::Admit { participant_id: nurse_pid }).unwrap();
    let admitted = h.take_events(nurse);
    assert!(
        admitted.iter().any(|ev| matches!(ev, clinicmeet_protocol::Event::Admitted(js)
            if js.you.role == clinicmeet_protocol::Role::Staff && js.meeting.patient_reference.is_some())),
        "{admitted:?}"
    );
    // A guest cannot join by id; nor anyone a meeting that does not exist.
    assert_eq!(code_of(h.call(guest, by_id(cid))), ErrorCode::Unauthenticated);
    h.call(nurse, Request::Leave).unwrap();
    assert_eq!(code_of(h.call(nurse, by_id(Uuid::now_v7()))), ErrorCode::NotFound);
    // Its creator joins her own meeting by id directly, as host.
    h.call(host, Request::Leave).unwrap();
    let nid = rows.iter().find(|r| r.meeting.title == "Nurse huddle").unwrap().meeting.id;
    match h.call(nurse, by_id(nid)) {
        Ok(Response::Joined(js)) => assert_eq!(js.you.role, clinicmeet_protocol::Role::Host),
        other => panic!("{other:?}"),
    }
    // Ended meetings are refused as with a code.
    h.call(nurse, Request::EndMeeting).unwrap();
    let host2 = second_device(&mut h, "Dr House");
    assert_eq!(
        code_of(h.call(
            host2,
            Request::JoinAsStaff {
                meeting_id: nid,
                display_name: "Dr House".into(),
                media: clinicmeet_protocol::MediaState::default()
            }
        )),
        ErrorCode::MeetingEnded
    );
    let _ = ncode;
}
