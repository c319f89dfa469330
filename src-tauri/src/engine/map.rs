//! `ClientEvent` (the engine's events) → `EngineEvent` JSON (what the UI's
//! `Engine.subscribe` listeners get; see `ui/src/engine/engine.ts`). Pure.

use std::collections::HashMap;

use clinicmeet_client::store::OutboxState;
use clinicmeet_client::{ClientEvent, ConnectionState, Entered};
use serde_json::{json, Value};
use uuid::Uuid;

/// What the UI was told about an own message when it was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChat {
    pub text: String,
    pub staff_only: bool,
    pub created_at: i64,
}

/// Turns engine events into UI events; remembers own messages in flight.
#[derive(Debug, Default)]
pub struct Mapper {
    pending: HashMap<Uuid, PendingChat>,
    /// Denied, removed or ended: the session closes itself; its "disconnected" is not news.
    terminal: bool,
}

/// JoinState for the UI. The resume token stays in Rust (it is a bearer secret).
pub fn join_state(e: &Entered, chat_seq: u64, notes_seq: u64) -> Value {
    json!({
        "meeting": e.meeting,
        "you": e.you,
        "participants": e.participants,
        "waiting": e.waiting,
        "resume_token": "",
        "chat_seq": chat_seq,
        "notes_seq": notes_seq,
    })
}

impl Mapper {
    /// An own message was queued (the UI shows it as `sending` itself).
    pub fn queued(&mut self, id: Uuid, chat: PendingChat) {
        self.pending.insert(id, chat);
    }

    /// A new connection began (after a terminal event the shell reconnects).
    pub fn new_connection(&mut self) {
        self.terminal = false;
    }

    pub fn map(&mut self, ev: ClientEvent) -> Option<Value> {
        Some(match ev {
            ClientEvent::Connection { state, reason, .. } => {
                let state = match state {
                    ConnectionState::Connected => "connected",
                    ConnectionState::Reconnecting => "reconnecting",
                    ConnectionState::Disconnected if self.terminal => return None,
                    ConnectionState::Disconnected => "disconnected",
                };
                match reason {
                    Some(detail) => json!({"type": "connection", "state": state, "detail": detail}),
                    None => json!({"type": "connection", "state": state}),
                }
            }
            ClientEvent::Joined(e) => json!({"type": "joined", "join": join_state(&e, 0, 0)}),
            ClientEvent::Admitted(e) => json!({"type": "admitted", "join": join_state(&e, 0, 0)}),
            ClientEvent::Waiting { participant_id, meeting, .. } => {
                json!({"type": "waiting", "participant_id": participant_id, "meeting": meeting})
            }
            ClientEvent::Denied => self.end(json!({"type": "denied"})),
            ClientEvent::Removed => self.end(json!({"type": "removed"})),
            ClientEvent::MeetingEnded { status } => {
                self.end(json!({"type": "meeting_ended", "status": status}))
            }
            ClientEvent::ParticipantJoined { participant } => {
                json!({"type": "participant_joined", "participant": participant})
            }
            ClientEvent::ParticipantLeft { participant_id, reason } => {
                json!({"type": "participant_left", "participant_id": participant_id, "reason": reason})
            }
            ClientEvent::MediaChanged { participant_id, media } => {
                json!({"type": "media_changed", "participant_id": participant_id, "media": media})
            }
            ClientEvent::RoleChanged { participant_id, role, .. } => {
                json!({"type": "role_changed", "participant_id": participant_id, "role": role})
            }
            ClientEvent::ParticipantConnection { participant_id, connected } => {
                json!({"type": "connection_changed", "participant_id": participant_id, "connected": connected})
            }
            ClientEvent::WaitingRoom { waiting } => json!({"type": "waiting_room", "waiting": waiting}),
            ClientEvent::Muted { by } => json!({"type": "muted_by", "by": by}),
            ClientEvent::MeetingUpdated { meeting } => json!({"type": "meeting_updated", "meeting": meeting}),
            ClientEvent::Chat { message, own: true } => {
                self.pending.remove(&message.client_msg_id);
                json!({"type": "chat_status", "client_msg_id": message.client_msg_id, "status": "sent", "message": message})
            }
            ClientEvent::Chat { message, own: false } => json!({"type": "chat", "message": message}),
            ClientEvent::ChatStatus { client_msg_id, status, error, .. } => match status {
                // Queued or retried: only messages the UI knows the text of (the UI emits
                // the first `sending` itself, before `sendChat` resolves).
                OutboxState::Sending => {
                    let p = self.pending.get(&client_msg_id)?;
                    json!({"type": "chat_status", "client_msg_id": client_msg_id, "status": "sending",
                           "pending": {"text": p.text, "staff_only": p.staff_only, "created_at": p.created_at}})
                }
                // The accepted copy follows as an own `Chat`, which carries the message.
                OutboxState::Sent => return None,
                OutboxState::Failed => {
                    json!({"type": "chat_status", "client_msg_id": client_msg_id, "status": "failed",
                                              "error": error.unwrap_or_else(|| "Not delivered".into())})
                }
            },
            ClientEvent::Typing { participant_id, typing } => {
                json!({"type": "typing", "participant_id": participant_id, "typing": typing})
            }
            _ => return None,
        })
    }

    fn end(&mut self, v: Value) -> Value {
        self.terminal = true;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_protocol::{ChatMessage, MediaState, MeetingStatus, ParticipantInfo, Role};

    fn msg(id: Uuid, text: &str) -> ChatMessage {
        ChatMessage {
            meeting_id: Uuid::nil(),
            seq: 3,
            client_msg_id: id,
            sender_id: Uuid::nil(),
            sender_name: "Dr A".into(),
            sender_verified: true,
            text: text.into(),
            staff_only: false,
            sent_at: 5,
        }
    }

    fn status(id: Uuid, status: OutboxState, error: Option<&str>) -> ClientEvent {
        ClientEvent::ChatStatus {
            client_msg_id: id,
            status,
            seq: None,
            error: error.map(Into::into),
            retry_in_ms: None,
        }
    }

    #[test]
    fn own_chat_lifecycle() {
        let mut m = Mapper::default();
        let id = Uuid::now_v7();
        // The engine's own `sending` may come before the shell noted the text: dropped.
        assert_eq!(m.map(status(id, OutboxState::Sending, None)), None);
        m.queued(id, PendingChat { text: "hi".into(), staff_only: false, created_at: 7 });
        let v = m.map(status(id, OutboxState::Sending, None)).unwrap();
        assert_eq!((v["status"].as_str(), v["pending"]["text"].as_str()), (Some("sending"), Some("hi")));
        let v = m.map(status(id, OutboxState::Failed, Some("forbidden"))).unwrap();
        assert_eq!((v["status"].as_str(), v["error"].as_str()), (Some("failed"), Some("forbidden")));
        assert_eq!(m.map(status(id, OutboxState::Sent, None)), None);
        let v = m.map(ClientEvent::Chat { message: msg(id, "hi"), own: true }).unwrap();
        assert_eq!((v["type"].as_str(), v["status"].as_str()), (Some("chat_status"), Some("sent")));
        assert_eq!(v["message"]["seq"], 3);
        assert!(m.pending.is_empty());
        let v = m.map(ClientEvent::Chat { message: msg(Uuid::now_v7(), "<b>x</b>"), own: false }).unwrap();
        assert_eq!((v["type"].as_str(), v["message"]["text"].as_str()), (Some("chat"), Some("<b>x</b>")));
    }

    #[test]
    fn meeting_events_keep_wire_names_and_hide_the_resume_token() {
        let mut m = Mapper::default();
        let you = ParticipantInfo {
            id: Uuid::now_v7(),
            display_name: "Ann".into(),
            role: Role::Host,
            verified_staff: true,
            media: MediaState::default(),
            joined_at: 1,
            connected: true,
        };
        let v = m
            .map(ClientEvent::RoleChanged { participant_id: you.id, role: Role::Moderator, you: true })
            .unwrap();
        assert_eq!((v["type"].as_str(), v["role"].as_str()), (Some("role_changed"), Some("moderator")));
        let v =
            m.map(ClientEvent::ParticipantConnection { participant_id: you.id, connected: false }).unwrap();
        assert_eq!(v["type"], "connection_changed");
        let v = m.map(ClientEvent::Muted { by: you.id }).unwrap();
        assert_eq!(v["type"], "muted_by");
        let left = ClientEvent::ParticipantLeft {
            participant_id: you.id,
            reason: clinicmeet_protocol::LeaveReason::Removed,
        };
        assert_eq!(m.map(left).unwrap()["reason"], "removed");
        let s = serde_json::to_string(&join_state(
            &Entered {
                meeting: serde_json::from_value(
                    json!({"id": Uuid::nil(), "title": "T", "kind": "video", "status": "active",
                    "host_name": "Ann", "locked": false, "settings": {}, "created_at": 1}),
                )
                .unwrap(),
                you: you.clone(),
                participants: vec![you],
                waiting: vec![],
                tracks: vec![],
                resumed: false,
            },
            0,
            0,
        ))
        .unwrap();
        assert!(s.contains("\"resume_token\":\"\""));
    }

    #[test]
    fn disconnect_after_a_terminal_event_is_not_reported() {
        let mut m = Mapper::default();
        let down = || ClientEvent::Connection {
            state: ConnectionState::Disconnected,
            attempt: None,
            retry_in_ms: None,
            reason: Some("closed".into()),
        };
        assert_eq!(m.map(down()).unwrap()["state"], "disconnected");
        assert_eq!(
            m.map(ClientEvent::MeetingEnded { status: MeetingStatus::Ended }).unwrap()["status"],
            "ended"
        );
        assert_eq!(m.map(down()), None);
        m.new_connection();
        assert!(m.map(down()).is_some());
        assert_eq!(m.map(ClientEvent::Left), None);
    }
}
