//! Deterministic tests of the meeting domain: every action of the rights table
//! tried by every role, the waiting room, host handover and chat sequencing.

use super::*;
use clinicmeet_protocol::MeetingSettings;

const T0: UnixMillis = 1_000_000;
const GRACE: i64 = 60_000;

fn staff(name: &str) -> StaffIdentity {
    StaffIdentity { staff_id: Uuid::now_v7(), name: name.into() }
}

fn record(creator: &StaffIdentity, kind: MeetingKind, settings: MeetingSettings) -> MeetingRecord {
    MeetingRecord {
        info: MeetingInfo {
            id: Uuid::now_v7(),
            title: "Ward round".into(),
            description: None,
            kind,
            status: MeetingStatus::Scheduled,
            host_name: creator.name.clone(),
            locked: false,
            settings,
            patient_reference: Some("PX-1".into()),
            schedule: None,
            created_at: 0,
            started_at: None,
            ended_at: None,
        },
        creator: creator.staff_id,
    }
}

fn joiner(name: &str, staff: Option<&StaffIdentity>) -> Joiner {
    let id = Uuid::now_v7();
    Joiner {
        id,
        display_name: name.into(),
        staff: staff.cloned(),
        media: MediaState { audio: true, video: true, screen: false },
        resume: ResumeKey { token: format!("token-{id}"), hash: vec![1], ..ResumeKey::default() },
        hold: match staff {
            Some(s) => HoldKey::Staff(s.staff_id),
            None => HoldKey::Source(crate::admission::Source::V6Prefix(id.as_u128() as u64)),
        },
        knock: false,
    }
}

fn join(
    room: &mut Room,
    now: UnixMillis,
    name: &str,
    staff: Option<&StaffIdentity>,
) -> (ParticipantId, Outcome<Entry>) {
    let j = joiner(name, staff);
    let id = j.id;
    (id, room.join(now, j).expect("join"))
}

fn events_to(effects: &[Effect], who: ParticipantId) -> Vec<&Event> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event { to, event } if *to == who => Some(event),
            _ => None,
        })
        .collect()
}

fn snapshot(room: &Room) -> String {
    format!("{room:?}")
}

/// A meeting with the waiting room on and one of each role in it, plus a
/// guest target in the meeting and one guest waiting.
struct Cast {
    room: Room,
    host: ParticipantId,
    moderator: ParticipantId,
    guest_moderator: ParticipantId,
    staff: ParticipantId,
    guest: ParticipantId,
    target: ParticipantId,
    waiting: ParticipantId,
}

fn cast() -> Cast {
    let ada = staff("Dr Ada");
    let bea = staff("Nurse Bea");
    let cai = staff("Dr Cai");
    let settings = MeetingSettings { waiting_room: true, ..MeetingSettings::default() };
    let mut room = Room::new(record(&ada, MeetingKind::Video, settings));
    let (host, _) = join(&mut room, T0, "Ada", Some(&ada));
    let (moderator, _) = join(&mut room, T0 + 1, "Bea", Some(&bea));
    let (st, _) = join(&mut room, T0 + 2, "Cai", Some(&cai));
    let mut admitted = Vec::new();
    for (i, name) in ["Gil", "Tom", "Max"].iter().enumerate() {
        let (g, o) = join(&mut room, T0 + 3 + i as i64, name, None);
        assert!(matches!(o.reply, Entry::Waiting { .. }), "guests wait");
        room.admit(T0 + 10, host, g).unwrap();
        admitted.push(g);
    }
    let (waiting, _) = join(&mut room, T0 + 20, "Wes", None);
    room.promote(T0 + 21, host, moderator).unwrap();
    room.promote(T0 + 21, host, admitted[2]).unwrap();
    Cast {
        room,
        host,
        moderator,
        guest_moderator: admitted[2],
        staff: st,
        guest: admitted[0],
        target: admitted[1],
        waiting,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Admit,
    Deny,
    Mute,
    Remove,
    Lock,
    End,
    Promote,
    Demote,
    SendNote,
}

const ACTIONS: [Action; 9] = [
    Action::Admit,
    Action::Deny,
    Action::Mute,
    Action::Remove,
    Action::Lock,
    Action::End,
    Action::Promote,
    Action::Demote,
    Action::SendNote,
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Host,
    StaffModerator,
    GuestModerator,
    Staff,
    Guest,
}

/// The rights table of the issue.
fn allowed(who: Who, action: Action) -> bool {
    use Action::*;
    match action {
        Admit | Deny | Mute | Remove | Lock => {
            matches!(who, Who::Host | Who::StaffModerator | Who::GuestModerator)
        }
        End | Promote | Demote => who == Who::Host,
        SendNote => matches!(who, Who::Host | Who::StaffModerator | Who::Staff),
    }
}

fn perform(c: &mut Cast, actor: ParticipantId, action: Action) -> Result<Vec<Effect>, ErrorBody> {
    let now = T0 + 100;
    let (w, t) = (c.waiting, c.target);
    Ok(match action {
        Action::Admit => c.room.admit(now, actor, w)?.effects,
        Action::Deny => c.room.deny(now, actor, w)?.effects,
        Action::Mute => c.room.mute(now, actor, t)?.effects,
        Action::Remove => c.room.remove(now, actor, t)?.effects,
        Action::Lock => c.room.set_locked(now, actor, true)?.effects,
        Action::End => c.room.end(now, actor)?.effects,
        Action::Promote => c.room.promote(now, actor, t)?.effects,
        Action::Demote => {
            // The target of a demotion must be a moderator: the host promotes first.
            let mut fx = c.room.promote(now, c.host, t)?.effects;
            let snap = snapshot(&c.room);
            match c.room.demote(now, actor, t) {
                Ok(o) => fx.extend(o.effects),
                Err(e) => {
                    assert_eq!(snap, snapshot(&c.room), "refused demote changed nothing");
                    return Err(e);
                }
            }
            fx
        }
        Action::SendNote => c.room.send_chat(now, actor, Uuid::now_v7(), "BP 120/80", true)?.effects,
    })
}

#[test]
fn every_action_by_every_role_follows_the_rights_table() {
    for action in ACTIONS {
        for who in [Who::Host, Who::StaffModerator, Who::GuestModerator, Who::Staff, Who::Guest] {
            let mut c = cast();
            let actor = match who {
                Who::Host => c.host,
                Who::StaffModerator => c.moderator,
                Who::GuestModerator => c.guest_moderator,
                Who::Staff => c.staff,
                Who::Guest => c.guest,
            };
            let before = snapshot(&c.room);
            let result = perform(&mut c, actor, action);
            if allowed(who, action) {
                let fx = result.unwrap_or_else(|e| panic!("{who:?} {action:?} refused: {e}"));
                check_success(&c, action, &fx);
            } else {
                let e = result.expect_err(&format!("{who:?} may not {action:?}"));
                assert_eq!(e.code, ErrorCode::Forbidden, "{who:?} {action:?}");
                if action != Action::Demote {
                    assert_eq!(before, snapshot(&c.room), "{who:?} {action:?}: nothing changes");
                }
            }
        }
    }
}

/// After a permitted action: the state changed and the right people were told.
fn check_success(c: &Cast, action: Action, fx: &[Effect]) {
    let everyone_present = [c.host, c.moderator, c.guest_moderator, c.staff, c.guest];
    match action {
        Action::Admit => {
            assert!(matches!(events_to(fx, c.waiting)[..], [Event::Admitted(_)]));
            for p in everyone_present {
                assert!(events_to(fx, p).iter().any(|e| matches!(e, Event::ParticipantJoined(_))));
            }
            assert_eq!(c.room.participant(c.waiting).unwrap().presence, Presence::InMeeting);
        }
        Action::Deny => {
            assert!(matches!(events_to(fx, c.waiting)[..], [Event::Denied]));
            assert!(fx.contains(&Effect::Close { who: c.waiting }));
            assert!(c.room.participant(c.waiting).is_none());
            assert!(events_to(fx, c.host)
                .iter()
                .any(|e| matches!(e, Event::WaitingRoom(WaitingRoom { waiting }) if waiting.is_empty())));
        }
        Action::Mute => {
            assert!(!c.room.participant(c.target).unwrap().media.audio);
            assert!(events_to(fx, c.target).iter().any(|e| matches!(e, Event::MutedBy(_))));
            for p in everyone_present {
                assert!(events_to(fx, p).iter().any(|e| matches!(e, Event::MediaChanged(_))));
            }
        }
        Action::Remove => {
            assert!(matches!(events_to(fx, c.target)[..], [Event::Removed]));
            assert!(fx.contains(&Effect::Close { who: c.target }));
            for p in everyone_present {
                assert!(events_to(fx, p).iter().any(
                    |e| matches!(e, Event::ParticipantLeft(ParticipantLeft { reason: LeaveReason::Removed, participant_id }) if *participant_id == c.target)
                ));
            }
        }
        Action::Lock => {
            assert!(c.room.info().locked);
            for p in everyone_present {
                assert!(events_to(fx, p).iter().any(
                    |e| matches!(e, Event::MeetingUpdated(MeetingUpdated { meeting }) if meeting.locked)
                ));
            }
        }
        Action::End => {
            assert!(c.room.is_over());
            for p in everyone_present.iter().chain([&c.target, &c.waiting]) {
                assert!(matches!(
                    events_to(fx, *p)[..],
                    [Event::MeetingEnded(MeetingEnded { status: MeetingStatus::Ended })]
                ));
                assert!(fx.contains(&Effect::Close { who: *p }));
            }
        }
        Action::Promote | Action::Demote => {
            let want = if action == Action::Promote { Role::Moderator } else { Role::Guest };
            assert_eq!(c.room.participant(c.target).unwrap().role, want);
            for p in everyone_present {
                assert!(events_to(fx, p)
                    .iter()
                    .any(|e| matches!(e, Event::RoleChanged { role, .. } if *role == want)));
            }
        }
        Action::SendNote => {
            assert_eq!(c.room.notes_seq(), 1);
            let public = fx.iter().any(|e| matches!(e, Effect::Write(Write::Chat(m)) if !m.staff_only));
            assert!(!public, "notes keep their own sequence");
            for p in [c.host, c.moderator, c.staff] {
                let got = events_to(fx, p).iter().any(|e| matches!(e, Event::Chat { .. }));
                let is_sender = fx.iter().all(|e| !matches!(e, Effect::Event { to, .. } if *to == p));
                assert!(got || is_sender, "enrolled staff read notes");
            }
            for p in [c.guest, c.guest_moderator, c.target, c.waiting] {
                assert!(events_to(fx, p).is_empty(), "no note reaches a guest, even a guest moderator");
            }
        }
    }
}

#[test]
fn moderators_cannot_act_on_the_host_or_each_other_and_nobody_on_themselves() {
    let mut c = cast();
    assert_eq!(c.room.mute(T0, c.moderator, c.host).unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(c.room.remove(T0, c.moderator, c.guest_moderator).unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(c.room.remove(T0, c.host, c.host).unwrap_err().code, ErrorCode::InvalidState);
    assert_eq!(c.room.mute(T0, c.host, Uuid::now_v7()).unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(c.room.admit(T0, c.host, c.guest).unwrap_err().code, ErrorCode::NotFound, "not waiting");
    // The host can act on moderators.
    c.room.mute(T0, c.host, c.moderator).unwrap();
}

#[test]
fn waiting_people_can_do_nothing_but_wait() {
    let mut c = cast();
    let w = c.waiting;
    assert_eq!(
        c.room.send_chat(T0, w, Uuid::now_v7(), "hi", false).unwrap_err().code,
        ErrorCode::InvalidState
    );
    assert_eq!(c.room.typing(T0, w, true).unwrap_err().code, ErrorCode::InvalidState);
    assert_eq!(c.room.update_media(T0, w, MediaState::default()).unwrap_err().code, ErrorCode::InvalidState);
    assert!(c.room.join_state(c.host).unwrap().waiting.iter().any(|x| x.participant_id == w));
    assert!(c.room.join_state(c.staff).unwrap().waiting.is_empty(), "staff do not see the waiting room");
}

#[test]
fn staff_enter_directly_and_guests_wait_for_the_host_who_arrives_later() {
    let ada = staff("Dr Ada");
    let bea = staff("Nurse Bea");
    let settings = MeetingSettings { waiting_room: true, ..MeetingSettings::default() };
    let mut room = Room::new(record(&ada, MeetingKind::Video, settings));
    let (g, o) = join(&mut room, T0, "Early guest", None);
    assert!(matches!(o.reply, Entry::Waiting { .. }));
    let (s, o) = join(&mut room, T0 + 1, "Bea", Some(&bea));
    let Entry::Joined(js) = o.reply else { panic!("staff enter") };
    assert_eq!(js.you.role, Role::Staff);
    assert!(js.you.verified_staff);
    // Staff present but no host yet: nobody is promoted, the guest keeps waiting.
    assert_eq!(room.admit(T0 + 2, s, g).unwrap_err().code, ErrorCode::Forbidden);
    let (h, o) = join(&mut room, T0 + 3, "Ada", Some(&ada));
    let Entry::Joined(js) = o.reply else { panic!() };
    assert_eq!(js.you.role, Role::Host);
    assert_eq!(js.waiting.len(), 1, "the host sees who waits");
    assert_eq!(js.meeting.patient_reference.as_deref(), Some("PX-1"));
    let fx = room.admit(T0 + 4, h, g).unwrap().effects;
    let Some(Event::Admitted(gjs)) = events_to(&fx, g).first().cloned() else { panic!() };
    assert_eq!(gjs.participants.len(), 3);
    assert!(gjs.meeting.patient_reference.is_none(), "guests do not see the patient reference");
    assert_eq!(gjs.you.role, Role::Guest);
    assert_eq!(room.info().status, MeetingStatus::Active);
}

#[test]
fn without_waiting_room_guests_enter_directly() {
    let ada = staff("Dr Ada");
    let mut room = Room::new(record(&ada, MeetingKind::Video, MeetingSettings::default()));
    let (_, o) = join(&mut room, T0, "Guest", None);
    assert!(matches!(o.reply, Entry::Joined(_)));
    assert_eq!(room.info().status, MeetingStatus::Active);
    assert_eq!(room.info().started_at, Some(T0));
}

#[test]
fn consultation_patient_waits_until_the_doctor_starts_it() {
    let doc = staff("Dr Ada");
    let mut room = Room::new(record(&doc, MeetingKind::Consultation, MeetingSettings::default()));
    let (p, o) = join(&mut room, T0, "Patient", None);
    assert!(matches!(o.reply, Entry::Waiting { .. }), "waits even with the waiting room setting off");
    let (d, _) = join(&mut room, T0 + 1_000, "Ada", Some(&doc));
    assert_eq!(room.info().status, MeetingStatus::Scheduled, "joining does not start a consultation");
    assert_eq!(room.admit(T0 + 1_500, d, p).unwrap_err().code, ErrorCode::InvalidState);
    assert_eq!(room.end_consultation(T0, d).unwrap_err().code, ErrorCode::InvalidState);
    assert_eq!(room.start_consultation(T0, p).unwrap_err().code, ErrorCode::InvalidState, "patient waits");
    let fx = room.start_consultation(T0 + 2_000, d).unwrap().effects;
    assert!(matches!(events_to(&fx, p)[..], [Event::Admitted(_)]));
    assert_eq!(room.info().status, MeetingStatus::Active);
    assert_eq!(room.info().started_at, Some(T0 + 2_000));
    assert_eq!(room.start_consultation(T0 + 2_001, d).unwrap_err().code, ErrorCode::InvalidState);
    let o = room.end_consultation(T0 + 2_000 + 754_321, d).unwrap();
    assert_eq!(o.reply.duration_secs, 754);
    assert_eq!(room.info().status, MeetingStatus::Completed);
    assert!(matches!(
        events_to(&o.effects, p)[..],
        [
            Event::Chat { message: ChatMessage { system: Some(SystemLine::ConsultationEnded), .. } },
            Event::MeetingEnded(MeetingEnded { status: MeetingStatus::Completed })
        ]
    ));
    assert!(o
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Write(Write::MeetingState(m)) if m.status == MeetingStatus::Completed)));
    let e = room.join(T0 + 900_000, joiner("Late", None)).unwrap_err();
    assert_eq!(e.code, ErrorCode::MeetingEnded);
}

#[test]
fn locked_full_and_ended_meetings_refuse_joins() {
    let ada = staff("Dr Ada");
    let bea = staff("Bea");
    let settings = MeetingSettings { max_participants: 3, ..MeetingSettings::default() };
    let mut room = Room::new(record(&ada, MeetingKind::Video, settings));
    let (h, _) = join(&mut room, T0, "Ada", Some(&ada));
    join(&mut room, T0, "G1", None);
    join(&mut room, T0, "G2", None);
    assert_eq!(room.join(T0, joiner("G3", None)).unwrap_err().code, ErrorCode::MeetingFull);
    room.set_locked(T0, h, true).unwrap();
    assert_eq!(room.join(T0, joiner("B", Some(&bea))).unwrap_err().code, ErrorCode::MeetingLocked);
    room.leave(T0, h).unwrap();
    let (h2, o) = join(&mut room, T0, "Ada again", Some(&ada));
    assert!(matches!(o.reply, Entry::Joined(_)), "the creator gets into its own locked, full meeting");
    room.end(T0 + 5, h2).unwrap();
    assert_eq!(room.join(T0, joiner("Ada", Some(&ada))).unwrap_err().code, ErrorCode::MeetingEnded);
    assert!(room.is_empty());
}

#[test]
fn host_drop_hands_rights_to_a_moderator_and_back_on_resume() {
    let mut c = cast();
    let fx = c.room.connection_lost(T0 + 100, c.host);
    assert_eq!(
        c.room.participant(c.moderator).unwrap().role,
        Role::Host,
        "longest-present moderator stands in"
    );
    assert_eq!(c.room.participant(c.host).unwrap().role, Role::Moderator);
    assert!(events_to(&fx, c.guest)
        .iter()
        .any(|e| matches!(e, Event::ConnectionChanged(ParticipantConnection { connected: false, .. }))));
    // The stand-in can admit.
    c.room.admit(T0 + 200, c.moderator, c.waiting).unwrap();
    let o = c.room.resume(T0 + 300, c.host, ResumeKey::default()).unwrap();
    let Entry::Joined(js) = o.reply else { panic!() };
    assert_eq!(js.you.role, Role::Host);
    assert_eq!(c.room.participant(c.moderator).unwrap().role, Role::Moderator);
    assert!(events_to(&o.effects, c.guest)
        .iter()
        .any(|e| matches!(e, Event::ConnectionChanged(ParticipantConnection { connected: true, .. }))));
}

#[test]
fn host_gone_past_grace_promotes_longest_present_staff_else_people_keep_waiting() {
    let ada = staff("Dr Ada");
    let bea = staff("Bea");
    let settings = MeetingSettings { waiting_room: true, ..MeetingSettings::default() };
    let mut room = Room::new(record(&ada, MeetingKind::Video, settings));
    let (h, _) = join(&mut room, T0, "Ada", Some(&ada));
    let (s, _) = join(&mut room, T0 + 1, "Bea", Some(&bea));
    let (w, _) = join(&mut room, T0 + 2, "Wes", None);
    room.connection_lost(T0 + 10, h);
    assert!(room.tick(T0 + 10 + GRACE - 1, GRACE).is_empty(), "still within grace");
    assert_eq!(room.admit(T0 + 20, s, w).unwrap_err().code, ErrorCode::Forbidden);
    let fx = room.tick(T0 + 10 + GRACE, GRACE);
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Event {
            event: Event::ParticipantLeft(ParticipantLeft { reason: LeaveReason::ConnectionLost, .. }),
            ..
        }
    )));
    assert_eq!(room.participant(s).unwrap().role, Role::Host, "staff member promoted");
    assert!(events_to(&fx, s)
        .iter()
        .any(|e| matches!(e, Event::WaitingRoom(WaitingRoom { waiting }) if waiting.len() == 1)));
    room.admit(T0 + GRACE + 20, s, w).unwrap();
    assert_eq!(
        room.resume(T0 + GRACE + 30, h, ResumeKey::default()).unwrap_err().code,
        ErrorCode::ResumeFailed
    );

    // Only guests left: nobody is promoted and the waiting guest keeps waiting.
    let mut room = Room::new(record(&ada, MeetingKind::Video, settings));
    let (h, _) = join(&mut room, T0, "Ada", Some(&ada));
    let (g, _) = join(&mut room, T0 + 1, "Gil", None);
    room.admit(T0 + 2, h, g).unwrap();
    let (w, _) = join(&mut room, T0 + 3, "Wes", None);
    room.connection_lost(T0 + 10, h);
    room.tick(T0 + 10 + GRACE, GRACE);
    assert_eq!(room.participant(g).unwrap().role, Role::Guest);
    assert_eq!(room.participant(w).unwrap().presence, Presence::Waiting);
    // A staff member arriving later becomes host, so someone can admit.
    let (s, o) = join(&mut room, T0 + GRACE + 100, "Bea", Some(&bea));
    assert_eq!(room.participant(s).unwrap().role, Role::Host);
    assert!(events_to(&o.effects, s).iter().any(|e| matches!(e, Event::WaitingRoom(_))));
}

#[test]
fn host_leaving_passes_host_to_a_moderator() {
    let mut c = cast();
    let fx = c.room.leave(T0 + 50, c.host).unwrap().effects;
    assert_eq!(c.room.participant(c.moderator).unwrap().role, Role::Host);
    assert!(fx.contains(&Effect::Unbind { who: c.host }));
}

#[test]
fn chat_is_sequenced_deduplicated_and_staff_notes_follow_identity() {
    let mut c = cast();
    // The cast's joined and admitted lines came first.
    let base = c.room.chat_seq;
    let id = Uuid::now_v7();
    let o = c.room.send_chat(T0 + 1, c.guest, id, "  hello ", false).unwrap();
    assert_eq!((o.reply.seq, o.reply.text.as_str(), o.reply.sent_at), (base + 1, "hello", T0 + 1));
    assert!(matches!(o.effects.first(), Some(Effect::Write(Write::Chat(_)))), "stored before fan-out");
    assert!(events_to(&o.effects, c.guest).is_empty(), "the sender gets the reply, not an event");
    assert_eq!(events_to(&o.effects, c.host).len(), 1);
    c.room.stored(&o.reply);
    let again = c.room.send_chat(T0 + 2, c.guest, id, "hello", false).unwrap();
    assert_eq!(again.reply, o.reply);
    assert!(again.effects.is_empty(), "a retry is stored once and not fanned out again");
    let n = c.room.send_chat(T0 + 3, c.staff, Uuid::now_v7(), "note", true).unwrap();
    assert_eq!((n.reply.seq, n.reply.staff_only), (1, true));
    c.room.stored(&n.reply);
    let m = c.room.send_chat(T0 + 4, c.host, Uuid::now_v7(), "second", false).unwrap();
    assert_eq!(m.reply.seq, base + 2, "notes do not leave gaps in the chat sequence");
    assert_eq!(
        c.room.send_chat(T0, c.guest_moderator, Uuid::now_v7(), "x", true).unwrap_err().code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        c.room.send_chat(T0, c.guest, n.reply.client_msg_id, "x", false).unwrap_err().code,
        ErrorCode::Malformed
    );
    assert_eq!(c.room.join_state(c.guest_moderator).unwrap().notes_seq, 0);
    assert_eq!(c.room.join_state(c.staff).unwrap().notes_seq, 1);
    assert_eq!(
        c.room.send_chat(T0, c.guest, Uuid::now_v7(), "   ", false).unwrap_err().code,
        ErrorCode::Malformed
    );
    assert!(c.room.reads_notes(c.staff) && !c.room.reads_notes(c.guest_moderator));
}

#[test]
fn restore_after_restart_keeps_roles_and_sequences() {
    let mut c = cast();
    let base = c.room.chat_seq();
    for (who, text, notes) in [(c.guest, "a", false), (c.staff, "n", true)] {
        let o = c.room.send_chat(T0, who, Uuid::now_v7(), text, notes).unwrap();
        c.room.stored(&o.reply);
    }
    let msgs: Vec<ChatMessage> = c.room.messages.values().cloned().collect();
    let people: Vec<Participant> = c.room.participants().cloned().collect();
    let mut r = Room::restore(c.room.record().clone(), people, msgs, Vec::new(), T0 + 500);
    assert_eq!((r.chat_seq(), r.notes_seq()), (base + 1, 1));
    assert!(r.participants().all(|p| !p.connected));
    assert_eq!(r.participant(c.moderator).unwrap().role, Role::Moderator);
    let Entry::Joined(js) = r.resume(T0 + 600, c.host, ResumeKey::default()).unwrap().reply else { panic!() };
    assert_eq!(js.you.role, Role::Host);
    assert!(matches!(
        r.resume(T0 + 600, c.waiting, ResumeKey::default()).unwrap().reply,
        Entry::Waiting { .. }
    ));
    // Whoever does not come back leaves after the grace, counted from the restart.
    let fx = r.tick(T0 + 500 + GRACE, GRACE);
    assert!(r.participant(c.guest).is_none());
    assert!(r.participant(c.host).is_some());
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Write(Write::ParticipantLeft { reason: "connection_lost", .. }))));
}

#[test]
fn media_rules() {
    let ada = staff("Dr Ada");
    let settings =
        MeetingSettings { allow_screen_share: false, mute_on_join: true, ..MeetingSettings::default() };
    let mut room = Room::new(record(&ada, MeetingKind::AudioOnly, settings));
    let (h, o) = join(&mut room, T0, "Ada", Some(&ada));
    let Entry::Joined(js) = o.reply else { panic!() };
    assert!(!js.you.media.audio, "mute on join");
    let (g, _) = join(&mut room, T0, "Gil", None);
    let screen = MediaState { audio: true, video: false, screen: true };
    assert_eq!(room.update_media(T0, h, screen).unwrap_err().code, ErrorCode::Forbidden);
    let video = MediaState { audio: true, video: true, screen: false };
    assert_eq!(room.update_media(T0, h, video).unwrap_err().code, ErrorCode::Forbidden);
    let fx =
        room.update_media(T0, h, MediaState { audio: true, video: false, screen: false }).unwrap().effects;
    assert!(matches!(events_to(&fx, g)[..], [Event::MediaChanged(_)]));
    assert!(matches!(events_to(&fx, h)[..], [Event::MediaChanged(_)]), "the sender learns it too");
    let fx = room.typing(T0, g, true).unwrap().effects;
    assert!(matches!(events_to(&fx, h)[..], [Event::Typing(Typing { typing: true, .. })]));
}

#[test]
fn a_change_whose_writes_fail_is_rolled_back_whole() {
    let mut c = cast();
    // A chat message whose write did not commit: the sequence number is reused,
    // and a retry with the same id is a new message, not the uncommitted copy.
    let id = Uuid::now_v7();
    let base = c.room.chat_seq();
    let cp = c.room.checkpoint();
    let lost = c.room.send_chat(T0 + 1, c.guest, id, "lost", false).unwrap();
    c.room.rollback(cp);
    assert_eq!(c.room.chat_seq(), base);
    let retry = c.room.send_chat(T0 + 2, c.guest, id, "lost", false).unwrap();
    assert_eq!((retry.reply.seq, retry.reply.sent_at), (base + 1, T0 + 2));
    assert!(!retry.effects.is_empty(), "the retry is written and fanned out: {lost:?}");
    // Ending the meeting, admitting and locking come back as they were.
    let before = (c.room.info().clone(), c.room.participants().cloned().collect::<Vec<_>>());
    let cp = c.room.checkpoint();
    c.room.admit(T0 + 3, c.host, c.waiting).unwrap();
    c.room.set_locked(T0 + 3, c.host, true).unwrap();
    c.room.end(T0 + 4, c.host).unwrap();
    assert!(c.room.is_over());
    c.room.rollback(cp);
    assert_eq!((c.room.info().clone(), c.room.participants().cloned().collect::<Vec<_>>()), before);
}

#[test]
fn denied_and_removed_people_wait_when_they_come_again_even_without_a_waiting_room() {
    let ada = staff("Dr Ada");
    let bea = staff("Nurse Bea");
    let mut room = Room::new(record(&ada, MeetingKind::Video, MeetingSettings::default()));
    let (host, _) = join(&mut room, T0, "Ada", Some(&ada));
    let pest = joiner("Pest", None);
    let (pest_id, pest_hold) = (pest.id, pest.hold);
    assert!(matches!(room.join(T0, pest).unwrap().reply, Entry::Joined(_)), "no waiting room");
    let (nurse, _) = join(&mut room, T0, "Bea", Some(&bea));
    room.remove(T0 + 1, host, pest_id).unwrap();
    room.remove(T0 + 1, host, nurse).unwrap();
    // The same source and the same staff identity come back: they wait.
    let again = Joiner { hold: pest_hold, ..joiner("Pest again", None) };
    assert!(matches!(room.join(T0 + 2, again).unwrap().reply, Entry::Waiting { .. }));
    let (_, o) = join(&mut room, T0 + 2, "Bea", Some(&bea));
    assert!(matches!(o.reply, Entry::Waiting { .. }), "a removed staff member waits too");
    // Someone else still enters directly; a denied waiting guest is held as well.
    let (_, o) = join(&mut room, T0 + 3, "Pat", None);
    assert!(matches!(o.reply, Entry::Joined(_)));
    let c = cast();
    let mut room = c.room;
    let hold = Joiner { hold: room.participants[&c.waiting].hold.unwrap(), ..joiner("Wes", None) };
    room.deny(T0 + 30, c.host, c.waiting).unwrap();
    room.record.info.settings.waiting_room = false;
    assert!(matches!(room.join(T0 + 31, hold).unwrap().reply, Entry::Waiting { .. }));
}

#[test]
fn the_waiting_room_has_its_own_capacity_and_admitting_respects_the_meetings() {
    let ada = staff("Dr Ada");
    let settings = MeetingSettings { max_participants: 2, ..MeetingSettings::default() };
    let mut room = Room::new(record(&ada, MeetingKind::Consultation, settings));
    // Fake names fill the waiting room before the doctor arrives.
    for i in 0..WAITING_ROOM_CAPACITY {
        let (_, o) = join(&mut room, T0, &format!("Fake {i}"), None);
        assert!(matches!(o.reply, Entry::Waiting { .. }));
    }
    let refused = room.join(T0, joiner("One too many", None)).unwrap_err();
    assert_eq!(refused.code, ErrorCode::MeetingFull);
    let (host, o) = join(&mut room, T0 + 1, "Ada", Some(&ada));
    assert!(matches!(o.reply, Entry::Joined(_)), "the doctor enters: waiting people take no seats");
    // Starting admits only as many as the meeting holds; the rest keep waiting.
    room.start_consultation(T0 + 2, host).unwrap();
    assert_eq!((room.in_meeting_count(), room.waiting_count()), (2, WAITING_ROOM_CAPACITY - 1));
    let next = room.participants().find(|p| p.presence == Presence::Waiting).unwrap().id;
    assert_eq!(room.admit(T0 + 3, host, next).unwrap_err().code, ErrorCode::MeetingFull);
    // A larger meeting's waiting room holds as many as the meeting.
    let big = MeetingSettings { max_participants: 80, waiting_room: true, ..MeetingSettings::default() };
    let mut room = Room::new(record(&ada, MeetingKind::Video, big));
    for i in 0..80 {
        join(&mut room, T0, &format!("Trainee {i}"), None);
    }
    assert_eq!(room.join(T0, joiner("81st", None)).unwrap_err().code, ErrorCode::MeetingFull);
}

#[test]
fn the_stand_in_host_cannot_demote_or_remove_the_absent_host() {
    let c = cast();
    let mut room = c.room;
    room.connection_lost(T0 + 40, c.host);
    let stand_in = c.moderator;
    assert_eq!(room.participant(stand_in).unwrap().role, Role::Host, "the moderator stands in");
    assert_eq!(room.demote(T0 + 41, stand_in, c.host).unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(room.remove(T0 + 41, stand_in, c.host).unwrap_err().code, ErrorCode::Forbidden);
    let Entry::Joined(js) = room.resume(T0 + 42, c.host, ResumeKey::default()).unwrap().reply else {
        panic!()
    };
    assert_eq!(js.you.role, Role::Host, "the host gets the role back");
}

/// The relay's own lines in the chat: typed, numbered with the chat, stored
/// before anyone hears of them, sent to everyone present but the one who just
/// entered (they fetch it with the history), and a join/leave storm bounded.
#[test]
fn system_lines_are_numbered_with_the_chat_and_a_join_leave_storm_is_bounded() {
    let ada = staff("Dr Ada");
    let mut room = Room::new(record(&ada, MeetingKind::Consultation, MeetingSettings::default()));
    let (host, o) = join(&mut room, T0, "Ada", Some(&ada));
    let lines = |fx: &[Effect]| -> Vec<(u64, SystemLine, String)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Write(Write::Chat(m)) => {
                    assert!(m.text.is_empty() && !m.staff_only);
                    Some((m.seq, m.system.unwrap(), m.sender_name.clone()))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(lines(&o.effects), vec![(1, SystemLine::Joined, "Ada".into())]);
    assert!(events_to(&o.effects, host).is_empty(), "the joiner reads it from the history");
    let (pat, o) = join(&mut room, T0 + 1, "Pat", None);
    assert!(lines(&o.effects).is_empty(), "waiting is not in the chat");
    let fx = room.start_consultation(T0 + 2, host).unwrap().effects;
    assert_eq!(
        lines(&fx),
        vec![(2, SystemLine::ConsultationStarted, "Ada".into()), (3, SystemLine::Admitted, "Pat".into())]
    );
    let to_pat: Vec<_> = events_to(&fx, pat);
    assert!(
        !to_pat
            .iter()
            .any(|e| matches!(e, Event::Chat { message } if message.system == Some(SystemLine::Admitted))),
        "the admitted one reads their own line from the history"
    );
    assert!(matches!(
        to_pat.iter().find_map(|e| match e {
            Event::Admitted(js) => Some(js.chat_seq),
            _ => None,
        }),
        Some(3)
    ));
    let first_write = fx.iter().position(|e| matches!(e, Effect::Write(Write::Chat(_)))).unwrap();
    let first_event =
        fx.iter().position(|e| matches!(e, Effect::Event { event: Event::Chat { .. }, .. })).unwrap();
    assert!(first_write < first_event, "stored before fan-out");
    let m = room.send_chat(T0 + 3, pat, Uuid::now_v7(), "hello", false).unwrap();
    assert_eq!(m.reply.seq, 4);

    // A storm of guests coming and going: at most PRESENCE_LINES_PER_MINUTE lines a minute.
    let mut room = Room::new(record(&ada, MeetingKind::Video, MeetingSettings::default()));
    join(&mut room, T0, "Ada", Some(&ada));
    let mut written = 0;
    for i in 0..100 {
        let (g, o) = join(&mut room, T0 + i, "Guest", None);
        written += lines(&o.effects).len();
        written += lines(&room.leave(T0 + i, g).unwrap().effects).len();
    }
    assert_eq!(written as u32, PRESENCE_LINES_PER_MINUTE - 1, "the host's own joined line counts too");
    let (g, o) = join(&mut room, T0 + 60_000, "Later", None);
    assert_eq!(lines(&o.effects).len(), 1, "a new minute, a new budget");
    let fx = room.leave(T0 + 60_001, g).unwrap().effects;
    assert_eq!(lines(&fx)[0].1, SystemLine::Left);
}
