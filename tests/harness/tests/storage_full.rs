//! The relay's storage fills up (SQLite answers `SQLITE_FULL`, as on a full
//! disk) while people use a meeting: nothing is acknowledged or shown to
//! anyone unless it was stored, every change whose writes fail is undone
//! whole, and once space returns the clients' outboxes drain by themselves
//! with every message stored exactly once. The same with a real tmpfs and a
//! relay process is `tests/tests/storage.rs`.

use std::collections::{HashMap, HashSet};

use clinicmeet_client::store::OutboxState;
use clinicmeet_client::ClientEvent;
use clinicmeet_harness::*;
use clinicmeet_protocol::{ErrorCode, Event, MeetingId, MeetingKind, Request, Response, Role};
use clinicmeet_relay::hub::HubConfig;
use uuid::Uuid;

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

fn stored_ids(h: &Harness, meeting: MeetingId) -> Vec<Uuid> {
    let written = h.hub.store().all_chat(meeting).unwrap().into_iter().filter(|m| m.system.is_none());
    written.map(|m| m.client_msg_id).collect()
}

#[test]
fn a_chat_storm_on_a_full_disk_acknowledges_only_what_was_stored_and_drains_when_space_returns() {
    let mut h = Harness::new(HubConfig { chat_rate: 100.0, ..HubConfig::default() }, &["Alice"]);
    let alice = h.staff_client("Alice");
    let code = h.client_create(alice, spec(MeetingKind::Video, false));
    entered(&h.client_join(alice, &code, "Alice", None));
    let (bob, carol) = (h.client(), h.client());
    entered(&h.client_join(bob, &code, "Bob", None));
    entered(&h.client_join(carol, &code, "Carol", None));
    let clients = [alice, bob, carol];
    let meeting = h.clients[alice].core.meeting().unwrap().meeting.id;
    for c in clients {
        h.take_client_events(c);
    }

    h.hub.store().cap_pages(Some(0)).unwrap();
    let mut acked: HashMap<Uuid, u64> = HashMap::new();
    let mut received: Vec<HashSet<Uuid>> = vec![HashSet::new(); clients.len()];
    let mut refusals = 0;
    let mut check = |h: &mut Harness, acked: &mut HashMap<Uuid, u64>, refusals: &mut usize| {
        let stored: HashSet<Uuid> = stored_ids(h, meeting).into_iter().collect();
        for (i, &c) in clients.iter().enumerate() {
            for ev in h.take_client_events(c) {
                match ev {
                    ClientEvent::Chat { message, own: true } => {
                        assert!(acked.insert(message.client_msg_id, message.seq).is_none(), "acked twice")
                    }
                    ClientEvent::Chat { message, own: false } if message.system.is_none() => {
                        assert!(received[i].insert(message.client_msg_id), "shown twice")
                    }
                    ClientEvent::ChatStatus { status: OutboxState::Failed, error, .. } => {
                        panic!("a message failed for good: {error:?}")
                    }
                    ClientEvent::ChatStatus { error: Some(e), .. } if e == "storage_unavailable" => {
                        *refusals += 1
                    }
                    _ => {}
                }
            }
            assert!(received[i].is_subset(&stored), "a client was shown a message that was never stored");
        }
        assert!(acked.keys().all(|id| stored.contains(id)), "acknowledged but not stored");
        assert_eq!(stored.len(), acked.len(), "stored but never acknowledged to its sender");
    };
    for round in 0..100 {
        for c in clients {
            let (clock, wall) = (h.clock, h.now);
            h.clients[c].core.send_chat(Uuid::now_v7(), format!("{c}:{round}"), false, clock, wall).unwrap();
        }
        h.advance(50);
        check(&mut h, &mut acked, &mut refusals);
    }
    let during = acked.len();
    assert!(during < 300 && refusals > 0, "the disk never filled: {during} stored, {refusals} refusals");
    assert!(clients.iter().all(|&c| h.clients[c].core.outbox_len() > 0), "unsent messages stay in outboxes");

    // Space returns: the relay recovers by itself, the outboxes drain.
    h.hub.store().cap_pages(None).unwrap();
    h.run_until_quiet(120_000);
    check(&mut h, &mut acked, &mut refusals);
    let all = h.hub.store().all_chat(meeting).unwrap();
    let lines = all.iter().filter(|m| m.system.is_some()).count();
    assert!(
        all.iter().map(|m| m.seq).eq(1..=all.len() as u64),
        "gapless sequence: no number used by a failed write"
    );
    let log: Vec<_> = all.into_iter().filter(|m| m.system.is_none()).collect();
    assert_eq!(lines, 3, "the three joined lines, written before the disk filled");
    assert_eq!(log.len(), 300, "every message stored once ({during} during the full disk)");
    assert_eq!(log.iter().map(|m| m.client_msg_id).collect::<HashSet<_>>().len(), 300);
    for (i, &c) in clients.iter().enumerate() {
        assert_eq!(h.clients[c].core.outbox_len(), 0);
        assert_eq!(h.stored_chat(c, meeting).len(), 300, "client {i}'s store has the whole chat");
    }
    println!(
        "storage_full: {during} of 300 messages stored while full, {refusals} storage_unavailable retries"
    );
}

#[test]
fn joins_ends_roles_and_locks_whose_writes_fail_change_nothing() {
    let cfg = HubConfig { chat_burst: 10_000.0, request_burst: 10_000.0, ..HubConfig::default() };
    let mut h = Harness::new(cfg, &["Dr House"]);
    let (host, code) = h.host_meeting("Dr House", false);
    let guest = h.connect(None);
    let (gid, _) = entered(&h.join(guest, &code, "Pat"));
    let meeting = match h.call(host, Request::ListMeetings) {
        Ok(Response::Meetings { meetings }) => meetings[0].meeting.id,
        other => panic!("{other:?}"),
    };
    h.take_events(host);
    h.take_events(guest);
    let before = h.hub.room(meeting).unwrap().participants().cloned().collect::<Vec<_>>();
    // The joined lines of host and guest came first.
    let base = h.hub.room(meeting).unwrap().chat_seq();
    fill_storage(&h);

    let refused = |r: Result<Response, clinicmeet_protocol::ErrorBody>| {
        let e = r.expect_err("a change whose write failed is refused");
        assert_eq!(e.code, ErrorCode::StorageUnavailable);
        assert!(e.retry_after_ms.is_some(), "the client is told when to retry");
    };
    // The chat table's last page may still hold a few rows: messages are
    // accepted until one is not.
    let mut accepted = 0;
    let id = loop {
        let id = Uuid::now_v7();
        match h.call(
            guest,
            Request::SendChat {
                client_msg_id: id,
                text: "hello".into(),
                staff_only: false,
                attachments: vec![],
            },
        ) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e.code, ErrorCode::StorageUnavailable);
                assert!(e.retry_after_ms.is_some(), "the client is told when to retry");
                break id;
            }
        }
        assert!(accepted < 1000, "the chat never filled");
    };
    assert_eq!(h.take_events(host).len(), accepted, "only stored messages were fanned out");
    let late = h.connect(None);
    refused(h.join(late, &code, "Late"));
    refused(h.call(host, Request::SetLocked { locked: true }));
    refused(h.call(host, Request::Promote { participant_id: gid }));
    refused(h.call(host, Request::EndMeeting));
    refused(h.call(
        guest,
        Request::SendChat { client_msg_id: id, text: "hello".into(), staff_only: false, attachments: vec![] },
    ));
    let room = h.hub.room(meeting).unwrap();
    assert_eq!(room.participants().cloned().collect::<Vec<_>>(), before, "nobody joined, no role changed");
    assert!(!room.info().locked && !room.is_over());
    assert_eq!(room.chat_seq(), base + accepted as u64, "no number taken by the refused message");
    assert!(h.take_events(host).is_empty() && h.take_events(guest).is_empty(), "nobody was told anything");
    assert!(!h.closed.contains(&guest));
    assert!(
        matches!(h.call(late, Request::SendChat { client_msg_id: id, text: "x".into(), staff_only: false, attachments: vec![] }),
        Err(e) if e.code == ErrorCode::InvalidState),
        "the refused joiner holds no place"
    );

    // Space returns: the same requests now work, the retried message is new.
    h.hub.store().cap_pages(None).unwrap();
    let retried = h.call(
        guest,
        Request::SendChat { client_msg_id: id, text: "hello".into(), staff_only: false, attachments: vec![] },
    );
    assert!(
        matches!(retried, Ok(Response::ChatAccepted { message }) if message.seq == base + accepted as u64 + 1)
    );
    assert!(matches!(&h.take_events(host)[..], [Event::Chat { .. }]), "fanned out once");
    entered(&h.join(late, &code, "Late"));
    h.call(host, Request::Promote { participant_id: gid }).unwrap();
    assert_eq!(h.hub.room(meeting).unwrap().participant(gid).unwrap().role, Role::Moderator);
    h.call(host, Request::EndMeeting).unwrap();
    assert!(h.hub.room(meeting).is_none_or(|r| r.is_over()));
    assert!(h.hub.store().meeting(meeting).unwrap().unwrap().info.status.is_over(), "the end is stored");
}
