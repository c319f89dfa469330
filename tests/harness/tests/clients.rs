//! Real client session cores against the real hub, in memory: chat order and
//! deduplication across dropped links and a relay restart, resume with chat
//! resync and its fallbacks, host hand-over on a dropped link.

use std::collections::HashSet;

use clinicmeet_client::state::Presence;
use clinicmeet_client::ClientEvent;
use clinicmeet_harness::*;
use clinicmeet_protocol::{
    MeetingId, MeetingKind, ParticipantConnection, ParticipantId, Request, Response, Role,
};
use clinicmeet_relay::hub::HubConfig;
use uuid::Uuid;

/// Types a chat message into client `c` (the core writes it to its outbox and sends it when it can).
fn say(h: &mut Harness, c: ClientId, text: String) {
    let (clock, wall) = (h.clock, h.now);
    h.clients[c].core.send_chat(Uuid::now_v7(), text, false, clock, wall).unwrap();
}

fn meeting_of(h: &Harness, c: ClientId) -> MeetingId {
    h.clients[c].core.meeting().expect("in a meeting").meeting.id
}

fn me_and_role(h: &Harness, c: ClientId) -> (ParticipantId, Role) {
    let v = h.clients[c].core.meeting().expect("in a meeting");
    (v.me, v.role)
}

/// A meeting created by staff member "Alice" (a real client) whom everyone joins.
fn meeting(h: &mut Harness, waiting_room: bool) -> (ClientId, String) {
    let alice = h.staff_client("Alice");
    let code = h.client_create(alice, spec(MeetingKind::Video, waiting_room));
    entered(&h.client_join(alice, &code, "Alice", None));
    (alice, code)
}

#[test]
fn thousand_messages_through_cores_keep_order_and_are_stored_once_across_drops_and_a_restart() {
    let mut h = Harness::new(HubConfig::default(), &["Alice"]);
    let (alice, code) = meeting(&mut h, false);
    let (bob, carol) = (h.client(), h.client());
    entered(&h.client_join(bob, &code, "Bob", None));
    entered(&h.client_join(carol, &code, "Carol", None));
    let senders = [(alice, 'A', 334), (bob, 'B', 334), (carol, 'C', 332)];
    let mut lost_acks = 0;
    for round in 0..334 {
        for (i, &(c, prefix, count)) in senders.iter().enumerate() {
            if round >= count {
                continue;
            }
            say(&mut h, c, format!("{prefix}{round}"));
            // Every 37th round one sender's link drops right after its message
            // reached the relay: the ack is lost, the core resends from its outbox.
            if round % 37 == i && h.clients[c].conn.is_some() {
                h.deliver_up();
                h.drop_client(c);
                lost_acks += usize::from(h.clients[c].core.outbox_len() > 0);
            }
        }
        if round == 200 {
            // Each sender's message reaches the relay but the ack is lost as the
            // relay restarts: storage survives, the cores resume and resend.
            h.deliver_up();
            assert!(senders.iter().all(|&(c, ..)| h.clients[c].core.outbox_len() > 0), "unacknowledged");
            h.restart();
        }
        h.advance(120); // under the chat rate limit
    }
    h.run_until_quiet(60_000);
    assert!(lost_acks > 5, "only {lost_acks} acks lost");

    let meeting = meeting_of(&h, alice);
    let log = h.stored_chat(alice, meeting);
    assert_eq!(log.len(), 1000, "each message stored exactly once");
    let texts: HashSet<&str> = log.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 1000);
    let all = h.stored_lines(alice, meeting);
    assert!(
        all.iter().enumerate().all(|(i, m)| m.seq == i as u64 + 1),
        "gapless sequence from 1, the relay's lines included"
    );
    for (_, prefix, _) in senders {
        let mine: Vec<u32> =
            log.iter().filter_map(|m| m.text.strip_prefix(prefix)).map(|n| n.parse().unwrap()).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{prefix}'s messages out of order");
    }
    for c in [bob, carol] {
        assert_eq!(h.stored_chat(c, meeting), log, "client {c} holds another chat");
    }
}

#[test]
fn resume_restores_the_place_and_resyncs_missed_chat_and_a_lost_place_joins_afresh() {
    let mut h = Harness::new(HubConfig::default(), &["Alice"]);
    let grace = h.cfg.resume_grace_ms;
    let (alice, code) = meeting(&mut h, false);
    let bob = h.client();
    let (bob_id, _) = entered(&h.client_join(bob, &code, "Bob", None));
    let meeting = meeting_of(&h, alice);

    // Bob's link drops and stays down while Alice writes.
    h.cut(bob);
    h.take_client_events(alice);
    for i in 0..5 {
        say(&mut h, alice, format!("m{i}"));
    }
    h.run_until(10_000, |h| h.clients[alice].core.outbox_len() == 0);
    assert!(h.take_client_events(alice).contains(&ClientEvent::ParticipantConnection(
        ParticipantConnection { participant_id: bob_id, connected: false }
    )));

    // Back within the grace: the core resumes with its token, same place, and
    // resyncs what it missed into its store.
    h.take_client_events(bob);
    h.heal(bob);
    h.run_until_quiet(30_000);
    assert_eq!(me_and_role(&h, bob), (bob_id, Role::Guest));
    assert!(h
        .take_client_events(bob)
        .iter()
        .any(|e| matches!(e, ClientEvent::Joined(en) if en.resumed && en.you.id == bob_id)));
    assert_eq!(h.stored_chat(bob, meeting), h.stored_chat(alice, meeting));
    assert_eq!(h.stored_chat(bob, meeting).len(), 5);

    // Away past the grace: the place is gone, the resume is refused and the
    // core joins afresh (a new place), then resyncs what came meanwhile.
    h.cut(bob);
    h.advance(grace + 1_000);
    say(&mut h, alice, "after the grace".into());
    h.heal(bob);
    h.run_until_quiet(60_000);
    let (again, role) = me_and_role(&h, bob);
    assert_ne!(again, bob_id, "a new place");
    assert_eq!(role, Role::Guest);
    assert_eq!(h.stored_chat(bob, meeting).len(), 6);
    assert_eq!(h.stored_chat(bob, meeting), h.stored_chat(alice, meeting));

    // A forged token kept from before: the core joins afresh as well.
    let eve = h.client();
    let r = h.client_join(eve, &code, "Eve", Some("not-a-token".into()));
    assert!(matches!(r, Ok(Response::Joined(_))), "{r:?}");
    h.run_until_quiet(10_000);
    assert_eq!(h.stored_chat(eve, meeting), h.stored_chat(alice, meeting));
}

#[test]
fn host_link_drop_hands_over_to_a_moderator_and_back_on_resume() {
    let mut h = Harness::new(HubConfig::default(), &["Dr House", "Dr Burke"]);
    let host = h.staff_client("Dr House");
    let colleague = h.staff_client("Dr Burke");
    let code = h.client_create(host, spec(MeetingKind::Video, true));
    let (host_id, _) = entered(&h.client_join(host, &code, "Dr House", None));
    let (cid, _) = entered(&h.client_join(colleague, &code, "Dr Burke", None));
    h.client_call(host, Request::Promote { participant_id: cid }).unwrap();
    h.settle();
    assert_eq!(me_and_role(&h, colleague), (cid, Role::Moderator));

    // The host's link drops: the moderator stands in at once and can admit.
    h.cut(host);
    h.settle();
    assert_eq!(me_and_role(&h, colleague), (cid, Role::Host));
    let view = h.clients[colleague].core.meeting().unwrap();
    assert_eq!(view.participant(host_id).map(|p| p.role), Some(Role::Moderator));
    let guest = h.client();
    let (gid, _) = entered(&h.client_join(guest, &code, "Walk-in", None));
    assert_eq!(h.clients[guest].core.presence(), Presence::Waiting);
    h.client_call(colleague, Request::Admit { participant_id: gid }).unwrap();
    h.settle();
    assert_eq!(h.clients[guest].core.presence(), Presence::InMeeting);

    // The host's core resumes within the grace: the role goes back.
    h.advance(10_000);
    h.heal(host);
    h.run_until_quiet(30_000);
    assert_eq!(me_and_role(&h, host), (host_id, Role::Host));
    assert_eq!(me_and_role(&h, colleague), (cid, Role::Moderator));
    assert_eq!(me_and_role(&h, guest), (gid, Role::Guest));
}
