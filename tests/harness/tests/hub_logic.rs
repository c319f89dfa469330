//! Meeting logic through the hub with raw protocol messages, in memory: the
//! rights table, the waiting room, host hand-over for good, taking over a
//! place. Chat, resume and hand-over on a dropped link run through real
//! client cores in `clients.rs`.

use clinicmeet_harness::*;
use clinicmeet_protocol::{
    ErrorCode, Event, LeaveReason, MediaChanged, MediaState, MeetingEnded, MeetingKind, MeetingUpdated,
    MutedBy, ParticipantId, ParticipantJoined, ParticipantLeft, Request, Response, Role, TrackKind,
    TrackSpec, WaitingRoom,
};
use clinicmeet_relay::hub::{ConnId, HubConfig};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Rights table

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Host,
    Moderator,
    Staff,
    Guest,
    Waiting,
}
use Actor::*;
const ACTORS: [Actor; 5] = [Host, Moderator, Staff, Guest, Waiting];

/// A meeting with a waiting room: the host (creator), a guest promoted to
/// moderator, an enrolled staff member, a guest, a target guest, and two
/// guests still waiting (one acts, one is the target of admit/deny).
struct Rights {
    h: Harness,
    conns: [(Actor, ConnId); 5],
    host_id: ParticipantId,
    moderator: ParticipantId,
    target: ParticipantId,
    target_conn: ConnId,
    waiting_target: ParticipantId,
}

fn rights_meeting() -> Rights {
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Nurse Joy"]);
    let (host, _) = h.staff("Dr House");
    let (staff, _) = h.staff("Nurse Joy");
    let mut meeting = spec(MeetingKind::Video, true);
    meeting.settings.allow_recording = true;
    let code = h.create(host, meeting);
    let (host_id, _) = entered(&h.join(host, &code, "Dr House"));
    let mut admitted = Vec::new();
    for name in ["Mod", "Guest", "Target"] {
        let c = h.connect(None);
        let (pid, _) = entered(&h.join(c, &code, name));
        h.call(host, Request::Admit { participant_id: pid }).unwrap();
        admitted.push((c, pid));
    }
    let (_, j) = (staff, h.join(staff, &code, "Nurse Joy"));
    assert!(matches!(j, Ok(Response::Joined(_))), "staff skip the waiting room");
    let waiting = h.connect(None);
    entered(&h.join(waiting, &code, "Waiting"));
    let wt = h.connect(None);
    let (waiting_target, _) = entered(&h.join(wt, &code, "Waiting target"));
    let (moderator, target) = (admitted[0].1, admitted[2].1);
    h.call(host, Request::Promote { participant_id: moderator }).unwrap();
    let conns = [
        (Host, host),
        (Moderator, admitted[0].0),
        (Staff, staff),
        (Guest, admitted[1].0),
        (Waiting, waiting),
    ];
    let target_conn = admitted[2].0;
    Rights { h, conns, host_id, moderator, target, target_conn, waiting_target }
}

fn video_track() -> TrackSpec {
    TrackSpec::single(TrackKind::Video, 1)
}

type Expect = Option<ErrorCode>;
const OK: Expect = None;
const F: Expect = Some(ErrorCode::Forbidden);
const IS: Expect = Some(ErrorCode::InvalidState);

/// One row: an action and the outcome for host, moderator, staff, guest, waiting guest.
/// Derived from `room.rs` (`moderator()`, `host()`, `actor()` and the staff-only
/// note check) and `tracks`/`hub` (publish and history need the meeting proper).
fn table(r: &Rights) -> Vec<(&'static str, Request, [Expect; 5])> {
    let (t, m, w) = (r.target, r.moderator, r.waiting_target);
    let chat = |staff_only| Request::SendChat {
        client_msg_id: Uuid::now_v7(),
        text: "hi".into(),
        staff_only,
        attachments: vec![],
    };
    vec![
        ("admit", Request::Admit { participant_id: w }, [OK, OK, F, F, IS]),
        ("deny", Request::Deny { participant_id: w }, [OK, OK, F, F, IS]),
        ("mute", Request::Mute { participant_id: t }, [OK, OK, F, F, IS]),
        ("allow_unmute", Request::AllowUnmute { participant_id: t }, [OK, OK, F, F, IS]),
        ("self_unmute", Request::SetSelfUnmute { allowed: false }, [OK, OK, F, F, IS]),
        ("remove", Request::Remove { participant_id: t }, [OK, OK, F, F, IS]),
        ("lock", Request::SetLocked { locked: true }, [OK, OK, F, F, IS]),
        ("promote", Request::Promote { participant_id: t }, [OK, F, F, F, IS]),
        ("demote", Request::Demote { participant_id: m }, [OK, F, F, F, IS]),
        ("end", Request::EndMeeting, [OK, F, F, F, IS]),
        // Issuing a new code: the host alone; a waiting guest is refused as well.
        ("rekey", Request::RekeyMeeting, [OK, F, F, F, F]),
        // Recording (the meeting allows it): host and moderators only.
        ("start_recording", Request::StartRecording, [OK, OK, F, F, IS]),
        ("stop_recording", Request::StopRecording, [OK, OK, F, F, IS]),
        // Not a consultation: the host passes the rights check and meets the state check.
        ("start_consultation", Request::StartConsultation, [IS, F, F, F, IS]),
        ("chat", chat(false), [OK, OK, OK, OK, IS]),
        // Staff-only notes follow enrolled identity, not role (the moderator is a guest).
        ("staff_note", chat(true), [OK, F, OK, F, IS]),
        ("media", Request::UpdateMedia { media: ON }, [OK, OK, OK, OK, IS]),
        ("typing", Request::Typing { typing: true }, [OK, OK, OK, OK, IS]),
        ("publish", Request::Publish { track: video_track() }, [OK, OK, OK, OK, IS]),
        (
            "history",
            Request::ChatHistory { meeting_id: None, since_seq: 0, notes_since_seq: 0, limit: 10 },
            [OK, OK, OK, OK, IS],
        ),
    ]
}

#[test]
fn rights_table_every_action_by_every_role() {
    let rows = table(&rights_meeting()).len();
    let mut checked = 0;
    for row in 0..rows {
        for (i, actor) in ACTORS.iter().enumerate() {
            // A fresh meeting per cell, so one action's effect cannot mask another's.
            let mut r = rights_meeting();
            let (name, request, expect) = table(&r).swap_remove(row);
            let conn = r.conns[i].1;
            r.h.take_events(r.conns[0].1);
            let got = r.h.call(conn, request).err().map(|e| e.code);
            assert_eq!(got, expect[i], "{name} by {actor:?}");
            if expect[i].is_some() {
                // Refused: nothing happened for anyone.
                let host = r.conns[0].1;
                assert!(
                    !r.h.take_events(host).iter().any(|e| matches!(
                        e,
                        Event::ParticipantLeft(_)
                            | Event::MeetingEnded(_)
                            | Event::MutedBy(_)
                            | Event::RoleChanged { .. }
                            | Event::MeetingUpdated(_)
                            | Event::RecordingChanged(_)
                    )),
                    "{name} by {actor:?} was refused but changed something"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, rows * ACTORS.len());
}

#[test]
fn moderators_cannot_act_on_the_host_and_nobody_on_themselves() {
    let mut r = rights_meeting();
    let (host, mod_conn, host_id) = (r.conns[0].1, r.conns[1].1, r.host_id);
    for req in [Request::Mute { participant_id: host_id }, Request::Remove { participant_id: host_id }] {
        assert_eq!(r.h.call(mod_conn, req).unwrap_err().code, ErrorCode::Forbidden);
    }
    let err = r.h.call(host, Request::Mute { participant_id: host_id }).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidState);
}

#[test]
fn moderator_mute_lock_remove_are_seen_by_all_and_host_end_closes_everyone() {
    let mut r = rights_meeting();
    let [(_, host), (_, m), (_, staff), (_, guest), (_, waiting)] = r.conns;
    let (t, mid) = (r.target, r.moderator);
    let target = r.target_conn;
    let others = [host, staff, guest];
    for c in [host, m, staff, guest, target] {
        r.h.take_events(c);
    }
    r.h.call(m, Request::Mute { participant_id: t }).unwrap();
    assert!(r.h.take_events(target).contains(&Event::MutedBy(MutedBy { by: mid })));
    for c in others {
        assert!(r.h.take_events(c).iter().any(
            |e| matches!(e, Event::MediaChanged(MediaChanged { participant_id, media, .. }) if *participant_id == t && !media.audio)
        ));
    }
    r.h.call(m, Request::SetLocked { locked: true }).unwrap();
    for c in others {
        assert!(r
            .h
            .take_events(c)
            .iter()
            .any(|e| matches!(e, Event::MeetingUpdated(MeetingUpdated { meeting }) if meeting.locked)));
    }
    r.h.call(m, Request::Remove { participant_id: t }).unwrap();
    assert_eq!(r.h.take_events(target).last(), Some(&Event::Removed));
    assert!(r.h.closed.contains(&target));
    for c in others {
        assert!(r.h.take_events(c).contains(&Event::ParticipantLeft(ParticipantLeft {
            participant_id: t,
            reason: LeaveReason::Removed
        })));
    }
    // Demoted, the moderator loses the rights at once.
    r.h.call(host, Request::Demote { participant_id: mid }).unwrap();
    assert!(r.h.take_events(m).contains(&Event::RoleChanged { participant_id: mid, role: Role::Guest }));
    assert_eq!(r.h.call(m, Request::SetLocked { locked: false }).unwrap_err().code, ErrorCode::Forbidden);
    // The host ends the meeting: everyone, waiting or not, is told and disconnected.
    r.h.call(host, Request::EndMeeting).unwrap();
    for c in [m, staff, guest, waiting] {
        assert!(r.h.take_events(c).iter().any(|e| matches!(e, Event::MeetingEnded(_))), "{c} not told");
        assert!(r.h.closed.contains(&c));
    }
}

// ---------------------------------------------------------------------------
// Waiting room

#[test]
fn waiting_room_admit_deny_and_leave_while_waiting() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Nurse Joy"]);
    let (host, _) = h.staff("Dr House");
    let code = h.create(host, spec(MeetingKind::Video, true));

    // A guest arriving before the host waits; nothing lets them in early.
    let early = h.connect(None);
    let (early_id, _) = entered(&h.join(early, &code, "Early"));
    let other = h.connect(None);
    assert!(matches!(h.join(other, &code, "Other").unwrap(), Response::Waiting { .. }));
    assert_eq!(
        h.call(
            early,
            Request::SendChat {
                client_msg_id: Uuid::now_v7(),
                text: "x".into(),
                staff_only: false,
                attachments: vec![]
            }
        )
        .unwrap_err()
        .code,
        ErrorCode::InvalidState
    );
    // The host learns who waits on entering.
    let Ok(Response::Joined(js)) = h.join(host, &code, "Dr House") else { panic!("host waits") };
    assert_eq!(js.waiting.len(), 2);
    // Staff skip the waiting room.
    let (nurse, _) = h.staff("Nurse Joy");
    let Ok(Response::Joined(js)) = h.join(nurse, &code, "Nurse Joy") else { panic!("staff wait") };
    assert_eq!(js.you.role, Role::Staff);

    h.take_events(host);
    h.call(host, Request::Admit { participant_id: early_id }).unwrap();
    assert!(h.take_events(early).iter().any(|e| matches!(e, Event::Admitted(_))));
    for c in [host, nurse] {
        assert!(h.take_events(c).iter().any(
            |e| matches!(e, Event::ParticipantJoined(ParticipantJoined { participant }) if participant.display_name == "Early")
        ));
    }

    let late = h.connect(None);
    let (late_id, _) = entered(&h.join(late, &code, "Late"));
    assert!(h.take_events(host).iter().any(|e| matches!(
        e,
        Event::WaitingRoom(WaitingRoom { waiting }) if waiting.iter().any(|w| w.participant_id == late_id)
    )));
    h.call(host, Request::Deny { participant_id: late_id }).unwrap();
    assert_eq!(h.take_events(late), vec![Event::Denied]);
    assert!(h.closed.contains(&late), "a denied guest is disconnected");
    assert!(!h.take_events(nurse).iter().any(|e| matches!(e, Event::ParticipantJoined(_))));

    // Leaving while waiting: the moderators' list empties, nobody else hears of it.
    let quitter = h.connect(None);
    let (qid, _) = entered(&h.join(quitter, &code, "Quitter"));
    h.take_events(host);
    h.call(quitter, Request::Leave).unwrap();
    let ev = h.take_events(host);
    assert!(ev.iter().any(
        |e| matches!(e, Event::WaitingRoom(WaitingRoom { waiting }) if waiting.iter().all(|w| w.participant_id != qid))
    ));
    assert!(!ev.iter().any(|e| matches!(e, Event::ParticipantLeft(_))));
    assert_eq!(h.call(host, Request::Admit { participant_id: qid }).unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn a_locked_meeting_refuses_joins_and_an_ended_one_admits_nobody() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House"]);
    let (host, code) = h.host_meeting("Dr House", false);
    h.call(host, Request::SetLocked { locked: true }).unwrap();
    let late = h.connect(None);
    assert_eq!(h.join(late, &code, "Late").unwrap_err().code, ErrorCode::MeetingLocked);
    h.call(host, Request::EndMeeting).unwrap();
    assert!(h
        .take_events(host)
        .contains(&Event::MeetingEnded(MeetingEnded { status: clinicmeet_protocol::MeetingStatus::Ended })));
    assert!(h.closed.contains(&host));
    assert_eq!(h.join(late, &code, "Late").unwrap_err().code, ErrorCode::MeetingEnded);
}

// ---------------------------------------------------------------------------
// Host hand-over

#[test]
fn host_gone_for_good_passes_to_moderator_or_longest_present_staff() {
    // Host leaves with a moderator present: the moderator becomes host.
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Dr Burke"]);
    let (host, code) = h.host_meeting("Dr House", false);
    let m = h.connect(None);
    let (mid, _) = entered(&h.join(m, &code, "Mod"));
    h.call(host, Request::Promote { participant_id: mid }).unwrap();
    h.call(host, Request::Leave).unwrap();
    assert!(h.take_events(m).contains(&Event::RoleChanged { participant_id: mid, role: Role::Host }));

    // Host (no moderator) disconnects and the grace runs out: the
    // longest-present enrolled staff member becomes host; guests never do.
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Dr Burke"]);
    let grace = h.cfg.resume_grace_ms;
    let (host, code) = h.host_meeting("Dr House", false);
    let g = h.connect(None);
    let (gid, _) = entered(&h.join(g, &code, "Guest"));
    let (staff, _) = h.staff("Dr Burke");
    let (sid, _) = entered(&h.join(staff, &code, "Dr Burke"));
    h.drop_link(host);
    h.advance(grace / 2);
    assert!(
        !h.take_events(staff).iter().any(|e| matches!(e, Event::RoleChanged { .. })),
        "not during the grace"
    );
    h.advance(grace);
    let ev = h.take_events(g);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::ParticipantLeft(ParticipantLeft { reason: LeaveReason::ConnectionLost, .. })
    )));
    assert!(ev.contains(&Event::RoleChanged { participant_id: sid, role: Role::Host }));
    assert!(!ev
        .iter()
        .any(|e| matches!(e, Event::RoleChanged { participant_id, .. } if *participant_id == gid)));
}

// ---------------------------------------------------------------------------
// Resume: taking over a place, forged tokens

#[test]
fn a_second_resume_takes_the_place_over_and_a_forged_token_fails() {
    let mut h = Harness::new(HubConfig::default(), &["Alice"]);
    let (_, code) = h.host_meeting("Alice", false);
    let bob = h.connect(None);
    let (bob_id, token) = entered(&h.join(bob, &code, "Bob"));
    let bob2 = h.connect(None);
    let Ok(Response::Joined(js)) = h.call(bob2, Request::Resume { resume_token: token }) else {
        panic!("resume")
    };
    assert_eq!(js.you.id, bob_id);
    assert!(h.closed.contains(&bob), "the old connection is closed");
    let x = h.connect(None);
    let err = h.call(x, Request::Resume { resume_token: "not-a-token".into() }).unwrap_err();
    assert_eq!(err.code, ErrorCode::ResumeFailed);
}

#[test]
fn every_resume_replaces_the_token_and_a_replaced_one_expires_after_the_grace_and_a_margin() {
    let cfg = HubConfig::default();
    let window = cfg.resume_grace_ms + 30_000;
    let mut h = Harness::new(cfg, &["Alice"]);
    let (_, code) = h.host_meeting("Alice", false);
    let c1 = h.connect(None);
    let (bob, t1) = entered(&h.join(c1, &code, "Bob"));
    let resume = |h: &mut Harness, token: &str| {
        let c = h.connect(None);
        h.call(c, Request::Resume { resume_token: token.into() }).map(|r| entered(&Ok::<_, ()>(r)))
    };
    // Resumed with t1: a new token; t1 still taken for a while (the reply may have been lost).
    let (id, t2) = resume(&mut h, &t1).unwrap();
    assert_eq!(id, bob);
    assert_ne!(t2, t1, "a resume issues a new token");
    h.advance(window - 1_000);
    let (_, t3) = resume(&mut h, &t1).expect("the replaced token within its window");
    // That resume presented t1, so t2 (never used) is gone at once; t1 ends with its window.
    assert_eq!(resume(&mut h, &t2).unwrap_err().code, ErrorCode::ResumeFailed);
    h.advance(window + 1);
    assert_eq!(resume(&mut h, &t1).unwrap_err().code, ErrorCode::ResumeFailed);
    // The current token survives a relay restart (its hash is stored with the place).
    h.restart();
    let (id, t4) = resume(&mut h, &t3).expect("current token after a restart");
    assert_eq!(id, bob);
    // A token for a place that exists, with the secret part changed, is refused.
    let mut forged = t4.clone().into_bytes();
    forged[70] = if forged[70] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(resume(&mut h, &forged).unwrap_err().code, ErrorCode::ResumeFailed);
    resume(&mut h, &t4).expect("still the current token");
}

#[test]
fn denials_and_removals_still_hold_after_a_relay_restart_and_go_with_the_meeting() {
    let mut h = Harness::new(HubConfig::default(), &["Alice", "Bob"]);
    let (alice, alice_cred) = h.staff("Alice");
    let code = h.create(alice, spec(MeetingKind::Video, false));
    let (_, alice_token) = entered(&h.join(alice, &code, "Alice"));
    let pest_ip: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let pest = h.connect_from(pest_ip, None);
    let (pest_id, _) = entered(&h.join(pest, &code, "Pest"));
    let (bob, bob_cred) = h.staff("Bob");
    let (bob_id, _) = entered(&h.join(bob, &code, "Bob"));
    h.call(alice, Request::Remove { participant_id: pest_id }).unwrap();
    h.call(alice, Request::Remove { participant_id: bob_id }).unwrap();

    h.restart();
    let alice = h.connect(Some(alice_cred));
    let Ok(Response::Joined(js)) = h.call(alice, Request::Resume { resume_token: alice_token }) else {
        panic!("the host resumes")
    };
    let mid = js.meeting.id;
    // Held by source (the guest) and by identity (the staff member): both wait, in a
    // meeting without a waiting room; someone else from another address walks in.
    let again = h.connect_from(pest_ip, None);
    assert!(matches!(h.join(again, &code, "Pest again"), Ok(Response::Waiting { .. })));
    let bob = h.connect(Some(bob_cred));
    assert!(matches!(h.join(bob, &code, "Bob"), Ok(Response::Waiting { .. })));
    let other = h.connect_from("203.0.113.9".parse().unwrap(), None);
    assert!(matches!(h.join(other, &code, "Patient"), Ok(Response::Joined(_))));
    assert_eq!(h.hub.store().holds(mid).unwrap().len(), 2);
    // The meeting ends: its holds (which name an address) are deleted with it.
    h.call(alice, Request::EndMeeting).unwrap();
    assert_eq!(h.hub.store().holds(mid).unwrap(), vec![]);
}

// ---------------------------------------------------------------------------
// "Participants may unmute themselves"

/// The lock every connection in `conns` was last told for `pid` (None: not told).
fn told_lock(h: &mut Harness, conns: &[ConnId], pid: ParticipantId) -> Vec<Option<bool>> {
    conns
        .iter()
        .map(|c| {
            h.take_events(*c).iter().rev().find_map(|e| match e {
                Event::MediaChanged(m) if m.participant_id == pid => Some(m.audio_locked),
                _ => None,
            })
        })
        .collect()
}

const AUDIO_ON: MediaState = MediaState { audio: true, video: true, screen: false };
const AUDIO_OFF: MediaState = MediaState { audio: false, video: true, screen: false };

#[test]
fn with_self_unmute_off_a_muted_participant_stays_muted_until_a_moderator_allows_it() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House"]);
    let (host, _) = h.staff("Dr House");
    let mut meeting = spec(MeetingKind::Video, false);
    meeting.settings.allow_self_unmute = false;
    let code = h.create(host, meeting);
    h.join(host, &code, "Dr House").unwrap();
    let p = h.connect(None);
    let (pid, token) = entered(&h.join(p, &code, "Patient"));
    let rel = h.connect(None);
    h.join(rel, &code, "Relative").unwrap();
    let all = [host, p, rel];

    // Muted by the host: everyone (the patient too) is told the microphone is locked.
    h.call(host, Request::Mute { participant_id: pid }).unwrap();
    assert_eq!(told_lock(&mut h, &all, pid), [Some(true); 3]);
    // The patient's own unmute is refused and tells nobody; the camera still works.
    let err = h.call(p, Request::UpdateMedia { media: AUDIO_ON }).unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
    assert_eq!(told_lock(&mut h, &all, pid), [None; 3], "a refused unmute tells nobody");
    h.call(p, Request::UpdateMedia { media: MediaState { video: false, ..AUDIO_OFF } }).unwrap();
    assert_eq!(told_lock(&mut h, &all, pid), [Some(true); 3]);

    // Allowed: told to all; the microphone stays off until the patient turns it on.
    h.call(host, Request::AllowUnmute { participant_id: pid }).unwrap();
    for e in all.map(|c| h.take_events(c)) {
        assert!(e.iter().any(|e| matches!(e, Event::MediaChanged(m)
            if m.participant_id == pid && !m.audio_locked && !m.media.audio)));
    }
    h.call(p, Request::UpdateMedia { media: AUDIO_ON }).unwrap();
    // Allowing is for once: muted again, locked again.
    h.call(host, Request::Mute { participant_id: pid }).unwrap();
    assert!(h.call(p, Request::UpdateMedia { media: AUDIO_ON }).is_err());

    // A moderator is never locked: promoted, the patient may unmute; muted and
    // demoted, locked again.
    h.take_events(host);
    h.call(host, Request::Promote { participant_id: pid }).unwrap();
    assert_eq!(told_lock(&mut h, &[host], pid), [Some(false)]);
    h.call(p, Request::UpdateMedia { media: AUDIO_ON }).unwrap();
    h.call(host, Request::Mute { participant_id: pid }).unwrap();
    h.call(host, Request::Demote { participant_id: pid }).unwrap();
    assert_eq!(told_lock(&mut h, &[host], pid), [Some(true)]);
    assert!(h.call(p, Request::UpdateMedia { media: AUDIO_ON }).is_err());

    // The lock is stored with the participant: it survives a relay restart.
    h.restart();
    let p = h.connect(None);
    match h.call(p, Request::Resume { resume_token: token }) {
        Ok(Response::Joined(js)) => assert!(js.you.audio_locked && !js.you.media.audio, "{:?}", js.you),
        other => panic!("resume: {other:?}"),
    }
    assert_eq!(h.call(p, Request::UpdateMedia { media: AUDIO_ON }).unwrap_err().code, ErrorCode::Forbidden);
}

#[test]
fn turning_self_unmute_off_locks_only_those_a_moderator_muted_and_mute_on_join_counts() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House"]);
    let (host, _) = h.staff("Dr House");
    let mut meeting = spec(MeetingKind::Video, false);
    meeting.settings.mute_on_join = true;
    let code = h.create(host, meeting);
    h.join(host, &code, "Dr House").unwrap();
    let mut guests = Vec::new();
    for name in ["Quiet", "Talker", "Muted"] {
        let c = h.connect(None);
        let Ok(Response::Joined(js)) = h.join(c, &code, name) else { panic!("{name} not joined") };
        assert!(!js.you.media.audio && !js.you.audio_locked, "muted on join, free to unmute");
        guests.push((c, js.you.id));
    }
    let [(_, quiet), (talker_c, talker), (muted_c, muted)] = guests[..] else { unreachable!() };
    // Talker unmutes (allowed: the setting is on); the host mutes Muted after it spoke.
    h.call(talker_c, Request::UpdateMedia { media: AUDIO_ON }).unwrap();
    h.call(muted_c, Request::UpdateMedia { media: AUDIO_ON }).unwrap();
    h.call(host, Request::Mute { participant_id: muted }).unwrap();
    h.take_events(host);

    // Off: the meeting says so, and those still muted by the meeting or a moderator are
    // locked (muted on join counts: the meeting muted them); the one talking is not.
    h.call(host, Request::SetSelfUnmute { allowed: false }).unwrap();
    let events = h.take_events(host);
    assert!(events.iter().any(|e| matches!(e, Event::MeetingUpdated(MeetingUpdated { meeting })
        if !meeting.settings.allow_self_unmute)));
    let locked = |pid| {
        events.iter().rev().find_map(|e| match e {
            Event::MediaChanged(m) if m.participant_id == pid => Some(m.audio_locked),
            _ => None,
        })
    };
    assert_eq!([locked(quiet), locked(talker), locked(muted)], [Some(true), None, Some(true)]);
    assert!(h.call(muted_c, Request::UpdateMedia { media: AUDIO_ON }).is_err());
    // Talker mutes itself: not locked (only a moderator's mute locks).
    h.call(talker_c, Request::UpdateMedia { media: AUDIO_OFF }).unwrap();
    h.call(talker_c, Request::UpdateMedia { media: AUDIO_ON }).unwrap();

    // On again: everyone locked is told they are free, and may unmute.
    h.call(host, Request::SetSelfUnmute { allowed: true }).unwrap();
    assert_eq!(told_lock(&mut h, &[host], muted), [Some(false)]);
    h.call(muted_c, Request::UpdateMedia { media: AUDIO_ON }).unwrap();
}
