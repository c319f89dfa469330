//! Recording announcements through the hub: who may start one, that a meeting
//! without `allow_recording` refuses it, that everyone (late joiners too) learns
//! of it, that it survives the recorder's reconnect within the grace and ends
//! when the recorder is gone for good, with audit rows free of patient data.

use clinicmeet_harness::*;
use clinicmeet_protocol::{
    ErrorCode, Event, MeetingKind, RecordingChanged, RecordingInfo, Request, Response,
};
use clinicmeet_relay::hub::{ConnId, HubConfig};

fn recorded_meeting(allow: bool) -> (Harness, ConnId, String) {
    let mut h = Harness::new(HubConfig::default(), &["Dr Who"]);
    let (host, _) = h.staff("Dr Who");
    let mut meeting = spec(MeetingKind::Video, false);
    meeting.settings.allow_recording = allow;
    let code = h.create(host, meeting);
    h.join(host, &code, "Dr Who").unwrap();
    (h, host, code)
}

fn recording_events(h: &mut Harness, conn: ConnId) -> Vec<Option<RecordingInfo>> {
    h.take_events(conn)
        .into_iter()
        .filter_map(|e| match e {
            Event::RecordingChanged(RecordingChanged { recording }) => Some(recording),
            _ => None,
        })
        .collect()
}

fn join_state(r: Result<Response, clinicmeet_protocol::ErrorBody>) -> Box<clinicmeet_protocol::JoinState> {
    match r {
        Ok(Response::Joined(js)) => js,
        other => panic!("join: {other:?}"),
    }
}

#[test]
fn a_meeting_that_does_not_allow_recording_refuses_even_the_host() {
    let (mut h, host, _) = recorded_meeting(false);
    let err = h.call(host, Request::StartRecording).unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
    assert!(err.message.contains("does not allow recording"), "{}", err.message);
    assert!(h.hub.store().audit_rows(Some("recording_start")).unwrap().is_empty());
}

#[test]
fn everyone_is_told_late_joiners_see_it_in_their_join_state_and_start_stop_are_audited() {
    let (mut h, host, code) = recorded_meeting(true);
    let early = h.connect(None);
    let js = join_state(h.join(early, &code, "Patient Pat"));
    assert_eq!(js.recording, None);
    h.take_events(host);
    h.call(host, Request::StartRecording).unwrap();
    let late = h.connect(None);
    let host_id =
        join_state(h.join(late, &code, "Nurse")).recording.expect("a late joiner sees the recording").by;
    let rec = Some(RecordingInfo { by: host_id, since: h.now });
    assert_eq!(recording_events(&mut h, early), vec![rec]);
    assert_eq!(recording_events(&mut h, host), vec![rec], "the recorder hears it too");
    // Starting again is idempotent: no second event or audit row.
    h.call(host, Request::StartRecording).unwrap();
    assert!(recording_events(&mut h, early).is_empty());
    h.call(host, Request::StopRecording).unwrap();
    assert_eq!(recording_events(&mut h, early), vec![None]);
    let later = h.connect(None);
    assert_eq!(join_state(h.join(later, &code, "Later")).recording, None);
    // Stopping when nobody records is a no-op.
    h.call(host, Request::StopRecording).unwrap();
    assert!(recording_events(&mut h, early).is_empty());

    let rows: Vec<_> = ["recording_start", "recording_stop"]
        .iter()
        .flat_map(|a| h.hub.store().audit_rows(Some(a)).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in rows {
        assert_eq!(row.participant_id.as_deref(), Some(host_id.to_string().as_str()));
        assert!(!row.detail.contains("Pat") && !row.detail.contains("Dr Who"), "{row:?}");
    }
}

#[test]
fn a_second_recorder_is_refused_and_a_moderator_may_stop_the_hosts_recording() {
    let (mut h, host, code) = recorded_meeting(true);
    let m = h.connect(None);
    let (mid, _) = entered(&h.join(m, &code, "Mod"));
    h.call(host, Request::Promote { participant_id: mid }).unwrap();
    h.call(host, Request::StartRecording).unwrap();
    assert_eq!(h.call(m, Request::StartRecording).unwrap_err().code, ErrorCode::InvalidState);
    h.take_events(host);
    h.call(m, Request::StopRecording).unwrap();
    assert_eq!(recording_events(&mut h, host), vec![None], "the recorder learns it must stop");
    let stop = h.hub.store().audit_rows(Some("recording_stop")).unwrap();
    assert_eq!(stop[0].detail, format!("by={mid}"));
    // Now the moderator may record; demoting them ends it.
    h.call(m, Request::StartRecording).unwrap();
    h.take_events(host);
    h.call(host, Request::Demote { participant_id: mid }).unwrap();
    assert_eq!(recording_events(&mut h, host), vec![None]);
    let stop = h.hub.store().audit_rows(Some("recording_stop")).unwrap();
    assert_eq!(stop[1].detail, "recorder lost the moderator role");
}

#[test]
fn the_recording_survives_a_reconnect_within_the_grace_and_ends_after_it() {
    let grace = HubConfig::default().resume_grace_ms;
    let (mut h, host, code) = recorded_meeting(true);
    let m = h.connect(None);
    let (mid, token) = entered(&h.join(m, &code, "Recorder"));
    h.call(host, Request::Promote { participant_id: mid }).unwrap();
    h.call(m, Request::StartRecording).unwrap();
    h.take_events(host);

    // Lost link, back within the grace: still recording, and the resume says so.
    h.drop_link(m);
    h.advance(grace / 2);
    let m2 = h.connect(None);
    let js = join_state(h.call(m2, Request::Resume { resume_token: token }));
    assert_eq!(js.recording.map(|r| r.by), Some(mid));
    assert!(recording_events(&mut h, host).is_empty(), "no stop during the grace");

    // Lost for good: the relay ends the recording and audits why.
    h.drop_link(m2);
    h.advance(grace + 1_000);
    assert_eq!(recording_events(&mut h, host), vec![None]);
    let stop = h.hub.store().audit_rows(Some("recording_stop")).unwrap();
    assert_eq!(stop.len(), 1);
    assert_eq!(stop[0].detail, "recorder left");
}
