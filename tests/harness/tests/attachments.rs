//! Attachment rights through the hub, in memory: who may upload (and attach to
//! staff-only notes), who gets a download ticket for what — by role, across
//! meetings, after leaving — and the quota counting uploads in progress. The
//! bytes themselves move outside the hub (`relay/tests/attachments.rs`); here an
//! upload is completed the way the transfer driver completes it
//! (`Hub::upload_stored`, after the blob is durable).

use clinicmeet_harness::*;
use clinicmeet_protocol::{AttachmentInfo, ErrorCode, Event, MeetingKind, Request, Response};
use clinicmeet_relay::hub::{ConnId, HubConfig};
use uuid::Uuid;

fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn start(size: u64, sha256: String, staff_only: bool) -> Request {
    Request::StartUpload { name: "scan.pdf".into(), size, sha256, staff_only }
}

/// Uploads on `conn` (participant `pid`) and completes it as the transfer driver would.
fn upload(h: &mut Harness, conn: ConnId, pid: Uuid, n: u8, staff_only: bool) -> AttachmentInfo {
    let Response::UploadReady { offset, .. } = h.call(conn, start(1000, sha(n), staff_only)).unwrap() else {
        panic!()
    };
    assert_eq!(offset, 0);
    let grants = h.hub.grants();
    let up = grants.upload_of(pid, &sha(n)).expect("upload in progress");
    h.hub.upload_stored(h.now, &up, "application/pdf").unwrap()
}

fn ticket(h: &mut Harness, conn: ConnId, id: Uuid) -> Result<(), ErrorCode> {
    match h.call(conn, Request::DownloadTicket { attachment_id: id }) {
        Ok(Response::DownloadReady { attachment, token }) => {
            assert_eq!(attachment.id, id);
            assert!(token.len() >= 32);
            Ok(())
        }
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.code),
    }
}

const NF: Result<(), ErrorCode> = Err(ErrorCode::AttachmentNotFound);

#[test]
fn tickets_by_role_staff_only_never_to_a_guest_nor_across_meetings() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Nurse Joy"]);
    let (host, _) = h.staff("Dr House");
    let (staff, _) = h.staff("Nurse Joy");
    let code = h.create(host, spec(MeetingKind::Video, true));
    let (host_id, _) = entered(&h.join(host, &code, "Dr House"));
    h.join(staff, &code, "Nurse Joy").unwrap();
    let mut guests = Vec::new();
    for name in ["Mod", "Guest"] {
        let c = h.connect(None);
        let (pid, _) = entered(&h.join(c, &code, name));
        h.call(host, Request::Admit { participant_id: pid }).unwrap();
        guests.push((c, pid));
    }
    let [(moderator, mod_id), (guest, guest_id)] = [guests[0], guests[1]];
    h.call(host, Request::Promote { participant_id: mod_id }).unwrap();
    let waiting = h.connect(None);
    entered(&h.join(waiting, &code, "Waiting"));

    // Uploads: anyone in the meeting; staff-only notes by enrolled staff only (not the guest moderator).
    assert_eq!(h.call(waiting, start(10, sha(1), false)).unwrap_err().code, ErrorCode::InvalidState);
    assert_eq!(h.call(moderator, start(10, sha(1), true)).unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(h.call(guest, start(10, sha(1), true)).unwrap_err().code, ErrorCode::Forbidden);
    let open = upload(&mut h, guest, guest_id, 2, false);
    let note = upload(&mut h, host, host_id, 3, true);
    assert!(note.staff_only && !open.staff_only);

    // host, moderator (a guest), staff, guest, waiting guest.
    for (conn, open_ok, note_ok) in [
        (host, Ok(()), Ok(())),
        (moderator, Ok(()), NF),
        (staff, Ok(()), Ok(())),
        (guest, Ok(()), NF),
        (waiting, NF, NF),
    ] {
        assert_eq!(ticket(&mut h, conn, open.id), open_ok);
        assert_eq!(ticket(&mut h, conn, note.id), note_ok);
    }
    // In chat: the uploader attaches its own upload once; the others see it in the message.
    let chat = |text: &str, staff_only, ids: Vec<Uuid>| Request::SendChat {
        client_msg_id: Uuid::now_v7(),
        text: text.into(),
        staff_only,
        attachments: ids,
    };
    h.take_events(host);
    let Response::ChatAccepted { message } = h.call(guest, chat("", false, vec![open.id])).unwrap() else {
        panic!()
    };
    assert_eq!((message.text.as_str(), message.attachments.clone()), ("", vec![open.clone()]));
    assert!(h
        .take_events(host)
        .iter()
        .any(|e| matches!(e, Event::Chat { message: m } if m.attachments == vec![open.clone()])));
    assert_eq!(h.call(guest, chat("again", false, vec![open.id])).unwrap_err().code, ErrorCode::InvalidState);
    // Someone else's attachment, a staff-only one in an ordinary message, too many.
    assert_eq!(
        h.call(guest, chat("x", false, vec![note.id])).unwrap_err().code,
        ErrorCode::AttachmentNotFound
    );
    assert_eq!(h.call(host, chat("x", false, vec![note.id])).unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(
        h.call(host, chat("x", false, vec![Uuid::now_v7(); 11])).unwrap_err().code,
        ErrorCode::TooLarge
    );
    // The note carries it to staff only.
    h.take_events(guest);
    h.call(host, chat("labs", true, vec![note.id])).unwrap();
    assert!(!h.take_events(guest).iter().any(|e| matches!(e, Event::Chat { .. })));
    assert!(h
        .take_events(staff)
        .iter()
        .any(|e| matches!(e, Event::Chat { message: m } if m.attachments == vec![note.clone()])));
    // History keeps them (stored with the message).
    let Response::ChatHistory { messages, .. } = h
        .call(staff, Request::ChatHistory { meeting_id: None, since_seq: 0, notes_since_seq: 0, limit: 10 })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(messages.iter().map(|m| m.attachments.len()).sum::<usize>(), 2);

    // An id that does not exist gets the same answer as a forbidden one.
    assert_eq!(ticket(&mut h, guest, Uuid::now_v7()), NF);

    // A guest of another meeting gets nothing of this one's, whatever the id.
    let other_code = h.create(host, spec(MeetingKind::Video, false));
    let stranger = h.connect(None);
    h.join(stranger, &other_code, "Stranger").unwrap();
    assert_eq!(ticket(&mut h, stranger, open.id), NF);
    assert_eq!(ticket(&mut h, stranger, note.id), NF);

    // After leaving: the guest reads nothing more; staff who took part still read, notes included.
    h.call(guest, Request::Leave).unwrap();
    assert_eq!(ticket(&mut h, guest, open.id), NF);
    h.call(staff, Request::Leave).unwrap();
    assert_eq!(ticket(&mut h, staff, note.id), Ok(()));
}

#[test]
fn quota_counts_uploads_in_progress_and_a_resume_is_not_counted_twice() {
    let cfg =
        HubConfig { max_attachment_bytes: 600, max_meeting_attachment_bytes: 1000, ..HubConfig::default() };
    let mut h = Harness::new(cfg, &["Dr House"]);
    let (host, code) = h.host_meeting("Dr House", false);
    let guest = h.connect(None);
    h.join(guest, &code, "Pat").unwrap();
    assert_eq!(h.call(guest, start(601, sha(1), false)).unwrap_err().code, ErrorCode::AttachmentTooLarge);
    let Response::UploadReady { upload_id, .. } = h.call(guest, start(600, sha(1), false)).unwrap() else {
        panic!()
    };
    // Asking again for the same content resumes the same upload (not counted twice).
    let Response::UploadReady { upload_id: again, .. } = h.call(guest, start(600, sha(1), false)).unwrap()
    else {
        panic!()
    };
    assert_eq!(upload_id, again);
    // 600 in progress + 500 would pass 1000.
    assert_eq!(h.call(host, start(500, sha(2), false)).unwrap_err().code, ErrorCode::AttachmentQuotaExceeded);
    h.call(host, start(400, sha(3), false)).unwrap();
}
