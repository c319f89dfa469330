//! The client's local SQLite store: relay credentials and pins, meetings seen,
//! chat messages and staff notes, the chat outbox, consultation records, and
//! the attachments sent or downloaded (metadata here; the bytes are files
//! named by SHA-256 in `attachments/` beside the store, readable offline).
//!
//! One file per user data directory (`clinicmeet.sqlite3`), WAL journal,
//! schema migrations by `PRAGMA user_version`. Inserting a chat message is
//! idempotent (unique `client_msg_id` and unique `(meeting, staff_only, seq)`),
//! so a message received twice (event + history, or before and after a
//! reconnect) is stored once.

use std::path::{Path, PathBuf};

use clinicmeet_protocol::{
    unix_now_ms, AttachmentId, AttachmentInfo, ChatMessage, MeetingId, MeetingInfo, Role,
};
use clinicmeet_sqlite::{query_all, uuid_col, SyncMode};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ClientError, Result};

/// File name of the store inside the data directory.
pub const DB_FILE: &str = "clinicmeet.sqlite3";

const MIGRATIONS: &[&str] = &[
    // 1: initial schema
    "CREATE TABLE relays (
        relay TEXT PRIMARY KEY,
        pin TEXT,
        device_credential TEXT,
        staff_id TEXT,
        staff_name TEXT,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE meetings (
        meeting_id TEXT PRIMARY KEY,
        relay TEXT NOT NULL,
        title TEXT NOT NULL,
        access_code TEXT,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        role TEXT,
        patient_reference TEXT,
        participant_id TEXT,
        resume_token TEXT,
        last_seen_at INTEGER NOT NULL
    );
    CREATE INDEX meetings_code ON meetings(access_code);
    CREATE TABLE chat (
        meeting_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        staff_only INTEGER NOT NULL,
        client_msg_id TEXT NOT NULL UNIQUE,
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL,
        sender_verified INTEGER NOT NULL,
        text TEXT NOT NULL,
        sent_at INTEGER NOT NULL,
        UNIQUE(meeting_id, staff_only, seq)
    );
    CREATE TABLE outbox (
        client_msg_id TEXT PRIMARY KEY,
        meeting_id TEXT NOT NULL,
        text TEXT NOT NULL,
        staff_only INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('sending','sent','failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_retry_at INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        last_error TEXT
    );
    CREATE INDEX outbox_meeting ON outbox(meeting_id, state, created_at);
    CREATE TABLE consultations (
        meeting_id TEXT PRIMARY KEY,
        title TEXT,
        patient_reference TEXT,
        started_at INTEGER,
        ended_at INTEGER,
        duration_secs INTEGER,
        notes TEXT
    );",
    // 2: the invite link's secret of a meeting this device created or re-keyed
    "ALTER TABLE meetings ADD COLUMN invite_secret TEXT;",
    // 3: relay-written chat lines (joined, left, …), by kind
    "ALTER TABLE chat ADD COLUMN system TEXT;",
    // 4: attachments sent or downloaded (metadata; the bytes are `attachments/<sha256>` beside the store)
    "CREATE TABLE attachments (
        id TEXT PRIMARY KEY,
        meeting_id TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        mime TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        staff_only INTEGER NOT NULL,
        uploader TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    ALTER TABLE chat ADD COLUMN attachments TEXT;
    ALTER TABLE outbox ADD COLUMN attachments TEXT;",
];

/// State of a message in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Written locally, not yet acknowledged by the relay (retried automatically).
    Sending,
    /// Acknowledged: the relay stored it with a sequence number.
    Sent,
    /// Refused by the relay for a reason other than a rate limit; retry by hand.
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "sending" => Ok(OutboxState::Sending),
            "sent" => Ok(OutboxState::Sent),
            "failed" => Ok(OutboxState::Failed),
            other => Err(ClientError::StoreData(format!("unknown outbox state {other}"))),
        }
    }
}

/// A message the user wrote that the relay has not (yet) acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    pub client_msg_id: Uuid,
    pub meeting_id: MeetingId,
    pub text: String,
    pub staff_only: bool,
    pub state: OutboxState,
    pub attempts: u32,
    /// Unix milliseconds before which no automatic retry happens.
    pub next_retry_at: i64,
    pub created_at: i64,
    pub last_error: Option<String>,
    /// Attachments the message carries (ids of uploads already stored on the relay).
    pub attachments: Vec<Uuid>,
}

/// What this device knows about a relay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RelayRecord {
    pub relay: String,
    pub pin: Option<String>,
    pub device_credential: Option<String>,
    pub staff_id: Option<String>,
    pub staff_name: Option<String>,
}

/// A meeting this device has seen (created, listed or joined).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeetingRecord {
    pub meeting_id: MeetingId,
    pub relay: String,
    pub title: String,
    pub access_code: Option<String>,
    pub kind: String,
    pub status: String,
    pub role: Option<String>,
    pub patient_reference: Option<String>,
    pub participant_id: Option<String>,
    pub resume_token: Option<String>,
    /// The invite link's secret, known when this device created or re-keyed the meeting.
    /// Never serialized (a record may be printed or logged).
    #[serde(skip_serializing)]
    pub invite_secret: Option<String>,
    pub last_seen_at: i64,
}

/// A consultation as recorded on this device (times from the relay's clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsultationRecord {
    pub meeting_id: MeetingId,
    pub title: Option<String>,
    pub patient_reference: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub duration_secs: Option<i64>,
    pub notes: Option<String>,
    /// The meeting's last known status (`completed` once the doctor ended it).
    pub status: Option<String>,
}

/// Which sequence numbers of a meeting are stored without a gap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// Highest chat seq `n` such that every chat message `1..=n` is stored.
    pub chat: u64,
    /// The same for staff-only notes.
    pub notes: u64,
}

/// One line of the local history: a stored message, or an outbox entry not yet sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryLine {
    pub meeting_id: MeetingId,
    /// `None` for messages still in the outbox.
    pub seq: Option<u64>,
    pub staff_only: bool,
    pub client_msg_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub sender_name: Option<String>,
    pub sender_verified: bool,
    pub text: String,
    /// Relay time for stored messages; local creation time for outbox entries.
    pub sent_at: i64,
    pub status: OutboxState,
    /// A line the relay wrote (joined, left, …); absent for what people wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<clinicmeet_protocol::SystemLine>,
}

/// The local store. Not `Sync`: one owner (the session driver or the CLI).
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

pub(crate) fn role_str(r: Role) -> &'static str {
    match r {
        Role::Host => "host",
        Role::Moderator => "moderator",
        Role::Staff => "staff",
        Role::Guest => "guest",
    }
}

pub(crate) fn kind_str(k: clinicmeet_protocol::MeetingKind) -> &'static str {
    match k {
        clinicmeet_protocol::MeetingKind::Video => "video",
        clinicmeet_protocol::MeetingKind::AudioOnly => "audio_only",
        clinicmeet_protocol::MeetingKind::Consultation => "consultation",
    }
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open_dir(data_dir: &Path) -> Result<Store> {
        clinicmeet_sqlite::private_dir(data_dir)?;
        Self::open(&data_dir.join(DB_FILE))
    }

    /// Opens (creating if needed) the store at `path`.
    /// fsync at checkpoints ([`SyncMode::Normal`]): the relay holds the durable
    /// copy of every acknowledged message; this file survives an app crash.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = clinicmeet_sqlite::open(path, SyncMode::Normal, MIGRATIONS)?;
        Ok(Store { conn, path: Some(path.to_path_buf()) })
    }

    /// A store in memory (tests).
    pub fn open_in_memory() -> Result<Store> {
        Ok(Store { conn: clinicmeet_sqlite::open_in_memory(MIGRATIONS)?, path: None })
    }

    /// Schema version after migrations.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(clinicmeet_sqlite::schema_version(&self.conn)?)
    }

    // -- relays -------------------------------------------------------------

    pub fn relay(&self, relay: &str) -> Result<Option<RelayRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT relay, pin, device_credential, staff_id, staff_name FROM relays WHERE relay = ?1",
                [relay],
                |r| {
                    Ok(RelayRecord {
                        relay: r.get(0)?,
                        pin: r.get(1)?,
                        device_credential: r.get(2)?,
                        staff_id: r.get(3)?,
                        staff_name: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Every relay this device knows, the most recently used (pin saved or enrolled) first.
    pub fn recent_relays(&self) -> Result<Vec<RelayRecord>> {
        let sql = "SELECT relay, pin, device_credential, staff_id, staff_name FROM relays
             ORDER BY updated_at DESC, rowid DESC";
        Ok(query_all(&self.conn, sql, [], |r| {
            Ok(RelayRecord {
                relay: r.get(0)?,
                pin: r.get(1)?,
                device_credential: r.get(2)?,
                staff_id: r.get(3)?,
                staff_name: r.get(4)?,
            })
        })?)
    }

    /// Remembers the pin used for a relay (kept when `pin` is `None`).
    /// Keeps an attachment's metadata (its bytes are already in [`Store::attachment_file`]).
    pub fn save_attachment(&self, a: &AttachmentInfo) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO attachments (id, meeting_id, name, size, mime, sha256, staff_only, uploader, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                a.id.to_string(),
                a.meeting_id.to_string(),
                a.name,
                a.size as i64,
                a.mime,
                a.sha256,
                a.staff_only as i64,
                a.uploader.to_string(),
                a.created_at
            ],
        )?;
        Ok(())
    }

    /// A kept attachment's metadata.
    pub fn attachment(&self, id: AttachmentId) -> Result<Option<AttachmentInfo>> {
        let sql = "SELECT id, meeting_id, name, size, mime, sha256, staff_only, uploader, created_at
                   FROM attachments WHERE id = ?1";
        let rows = query_all(&self.conn, sql, params![id.to_string()], |r| {
            Ok(AttachmentInfo {
                id: uuid_col(r, 0)?,
                meeting_id: uuid_col(r, 1)?,
                name: r.get(2)?,
                size: r.get::<_, i64>(3)?.max(0) as u64,
                mime: r.get(4)?,
                sha256: r.get(5)?,
                staff_only: r.get::<_, i64>(6)? != 0,
                uploader: uuid_col(r, 7)?,
                created_at: r.get(8)?,
            })
        })?;
        Ok(rows.into_iter().next())
    }

    /// Where the bytes of the attachment with this SHA-256 are kept, in `data_dir`.
    pub fn attachment_file(data_dir: &Path, sha256: &str) -> PathBuf {
        data_dir.join("attachments").join(sha256)
    }

    pub fn save_relay_pin(&self, relay: &str, pin: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO relays(relay, pin, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(relay) DO UPDATE SET pin = excluded.pin, updated_at = excluded.updated_at",
            params![relay, pin, unix_now_ms()],
        )?;
        Ok(())
    }

    /// Stores the device credential obtained by enrolling at a relay.
    pub fn save_credential(
        &self,
        relay: &str,
        credential: &str,
        staff_id: &str,
        staff_name: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO relays(relay, device_credential, staff_id, staff_name, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(relay) DO UPDATE SET device_credential = excluded.device_credential,
               staff_id = excluded.staff_id, staff_name = excluded.staff_name, updated_at = excluded.updated_at",
            params![relay, credential, staff_id, staff_name, unix_now_ms()],
        )?;
        Ok(())
    }

    // -- meetings -----------------------------------------------------------

    /// Records (or refreshes) a meeting. `access_code` and `role` are kept when `None`.
    pub fn upsert_meeting(
        &self,
        relay: &str,
        info: &MeetingInfo,
        access_code: Option<&str>,
        role: Option<Role>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meetings(meeting_id, relay, title, access_code, kind, status, role, patient_reference, last_seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(meeting_id) DO UPDATE SET
               relay = excluded.relay, title = excluded.title,
               access_code = COALESCE(excluded.access_code, meetings.access_code),
               kind = excluded.kind, status = excluded.status,
               role = COALESCE(excluded.role, meetings.role),
               patient_reference = COALESCE(excluded.patient_reference, meetings.patient_reference),
               last_seen_at = excluded.last_seen_at",
            params![
                info.id.to_string(),
                relay,
                info.title,
                access_code,
                kind_str(info.kind),
                info.status.as_str(),
                role.map(role_str),
                info.patient_reference,
                unix_now_ms()
            ],
        )?;
        Ok(())
    }

    pub fn set_meeting_role(&self, meeting: MeetingId, role: Role) -> Result<()> {
        self.conn.execute(
            "UPDATE meetings SET role = ?2 WHERE meeting_id = ?1",
            params![meeting.to_string(), role_str(role)],
        )?;
        Ok(())
    }

    /// The meeting's current access code (normalized) and invite secret, after a
    /// create or a re-key on this device: both replace what was stored (a re-key
    /// retires the old ones, so an old secret must not survive beside a new code).
    pub fn set_meeting_codes(
        &self,
        meeting: MeetingId,
        access_code: &str,
        invite_secret: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE meetings SET access_code = ?2, invite_secret = ?3 WHERE meeting_id = ?1",
            params![meeting.to_string(), access_code, invite_secret],
        )?;
        Ok(())
    }

    pub fn set_meeting_status(&self, meeting: MeetingId, status: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE meetings SET status = ?2 WHERE meeting_id = ?1",
            params![meeting.to_string(), status],
        )?;
        Ok(())
    }

    /// Stores the resume token of our place in a meeting (`None` clears it).
    pub fn set_resume_token(
        &self,
        meeting: MeetingId,
        participant: Option<Uuid>,
        token: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE meetings SET resume_token = ?2, participant_id = COALESCE(?3, participant_id) WHERE meeting_id = ?1",
            params![meeting.to_string(), token, participant.map(|p| p.to_string())],
        )?;
        Ok(())
    }

    pub fn meeting(&self, meeting: MeetingId) -> Result<Option<MeetingRecord>> {
        self.meeting_where("meeting_id = ?1", &meeting.to_string())
    }

    /// The most recently seen meeting on `relay` joined with this (normalized) access code.
    pub fn meeting_by_code(
        &self,
        relay: Option<&str>,
        normalized_code: &str,
    ) -> Result<Option<MeetingRecord>> {
        match relay {
            Some(relay) => {
                let mut stmt = self.conn.prepare(&format!(
                    "SELECT {MEETING_COLS} FROM meetings WHERE access_code = ?1 AND relay = ?2 ORDER BY last_seen_at DESC LIMIT 1"
                ))?;
                Ok(stmt.query_row(params![normalized_code, relay], meeting_row).optional()?)
            }
            None => self.meeting_where("access_code = ?1", normalized_code),
        }
    }

    fn meeting_where(&self, cond: &str, arg: &str) -> Result<Option<MeetingRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {MEETING_COLS} FROM meetings WHERE {cond} ORDER BY last_seen_at DESC LIMIT 1"
        ))?;
        Ok(stmt.query_row([arg], meeting_row).optional()?)
    }

    pub fn meetings(&self) -> Result<Vec<MeetingRecord>> {
        let sql = format!("SELECT {MEETING_COLS} FROM meetings ORDER BY last_seen_at DESC");
        Ok(query_all(&self.conn, &sql, [], meeting_row)?)
    }

    // -- chat ---------------------------------------------------------------

    /// Stores a message received from the relay. Returns `false` when it was
    /// already stored (same client message id or same sequence number).
    pub fn insert_chat(&self, m: &ChatMessage) -> Result<bool> {
        let n = insert_chat_row(&self.conn, m)?;
        Ok(n == 1)
    }

    /// Stored messages of a meeting (chat or notes), in sequence order.
    pub fn chat(&self, meeting: MeetingId, staff_only: bool) -> Result<Vec<ChatMessage>> {
        let sql = "SELECT meeting_id, seq, client_msg_id, sender_id, sender_name, sender_verified, text, staff_only, sent_at,
             system, attachments FROM chat WHERE meeting_id = ?1 AND staff_only = ?2 ORDER BY seq";
        Ok(query_all(&self.conn, sql, params![meeting.to_string(), staff_only], |r| {
            Ok(ChatMessage {
                meeting_id: uuid_col(r, 0)?,
                seq: r.get::<_, i64>(1)? as u64,
                client_msg_id: uuid_col(r, 2)?,
                sender_id: uuid_col(r, 3)?,
                sender_name: r.get(4)?,
                sender_verified: r.get(5)?,
                text: r.get(6)?,
                staff_only: r.get(7)?,
                sent_at: r.get(8)?,
                system: r
                    .get::<_, Option<String>>(9)?
                    .as_deref()
                    .and_then(clinicmeet_protocol::SystemLine::parse),
                attachments: r
                    .get::<_, Option<String>>(10)?
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default(),
            })
        })?)
    }

    /// Highest sequence numbers stored without a gap from 1, for resync.
    pub fn watermarks(&self, meeting: MeetingId) -> Result<Watermarks> {
        Ok(Watermarks { chat: self.watermark(meeting, false)?, notes: self.watermark(meeting, true)? })
    }

    fn watermark(&self, meeting: MeetingId, staff_only: bool) -> Result<u64> {
        // The end of the run of consecutive numbers that starts at 1.
        let v: Option<i64> = self.conn.query_row(
            "SELECT MIN(c.seq) FROM chat c
             WHERE c.meeting_id = ?1 AND c.staff_only = ?2
               AND EXISTS (SELECT 1 FROM chat o WHERE o.meeting_id = ?1 AND o.staff_only = ?2 AND o.seq = 1)
               AND NOT EXISTS (SELECT 1 FROM chat n WHERE n.meeting_id = ?1 AND n.staff_only = ?2 AND n.seq = c.seq + 1)",
            params![meeting.to_string(), staff_only],
            |r| r.get(0),
        )?;
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    /// The local history of a meeting: chat in seq order, notes interleaved by
    /// time, then messages still in the outbox.
    pub fn history(&self, meeting: MeetingId) -> Result<Vec<HistoryLine>> {
        let chat = self.chat(meeting, false)?;
        let notes = self.chat(meeting, true)?;
        let mut out = Vec::with_capacity(chat.len() + notes.len());
        let (mut i, mut j) = (0, 0);
        while i < chat.len() || j < notes.len() {
            let take_chat = match (chat.get(i), notes.get(j)) {
                (Some(c), Some(n)) => c.sent_at <= n.sent_at,
                (Some(_), None) => true,
                _ => false,
            };
            let m = if take_chat {
                i += 1;
                &chat[i - 1]
            } else {
                j += 1;
                &notes[j - 1]
            };
            out.push(HistoryLine {
                meeting_id: m.meeting_id,
                seq: Some(m.seq),
                staff_only: m.staff_only,
                client_msg_id: m.client_msg_id,
                sender_id: Some(m.sender_id),
                sender_name: Some(m.sender_name.clone()),
                sender_verified: m.sender_verified,
                text: m.text.clone(),
                sent_at: m.sent_at,
                status: OutboxState::Sent,
                system: m.system,
            });
        }
        for e in self.outbox(meeting)? {
            if e.state == OutboxState::Sent {
                continue;
            }
            out.push(HistoryLine {
                meeting_id: e.meeting_id,
                seq: None,
                staff_only: e.staff_only,
                client_msg_id: e.client_msg_id,
                sender_id: None,
                sender_name: None,
                sender_verified: false,
                text: e.text,
                sent_at: e.created_at,
                status: e.state,
                system: None,
            });
        }
        Ok(out)
    }

    // -- outbox -------------------------------------------------------------

    /// Adds a message to the outbox in state `sending` (idempotent by id).
    pub fn outbox_insert(&self, e: &OutboxEntry) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO outbox(client_msg_id, meeting_id, text, staff_only, state, attempts, next_retry_at, created_at, last_error,
             attachments) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                e.client_msg_id.to_string(),
                e.meeting_id.to_string(),
                e.text,
                e.staff_only,
                e.state.as_str(),
                e.attempts,
                e.next_retry_at,
                e.created_at,
                e.last_error,
                (!e.attachments.is_empty()).then(|| serde_json::to_string(&e.attachments).unwrap_or_default())
            ],
        )?;
        Ok(())
    }

    /// Moves an outbox entry to a new state.
    pub fn outbox_set_state(
        &self,
        id: Uuid,
        state: OutboxState,
        attempts: u32,
        next_retry_at: i64,
        last_error: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE outbox SET state = ?2, attempts = ?3, next_retry_at = ?4, last_error = ?5 WHERE client_msg_id = ?1",
            params![id.to_string(), state.as_str(), attempts, next_retry_at, last_error],
        )?;
        Ok(())
    }

    /// The relay acknowledged the message: store the accepted copy and mark the
    /// outbox entry sent, in one transaction.
    pub fn outbox_accepted(&mut self, m: &ChatMessage) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let inserted = insert_chat_row(&tx, m)? == 1;
        tx.execute(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, last_error = NULL WHERE client_msg_id = ?1",
            [m.client_msg_id.to_string()],
        )?;
        tx.commit()?;
        Ok(inserted)
    }

    pub fn outbox_entry(&self, id: Uuid) -> Result<Option<OutboxEntry>> {
        let mut stmt =
            self.conn.prepare(&format!("SELECT {OUTBOX_COLS} FROM outbox WHERE client_msg_id = ?1"))?;
        stmt.query_row([id.to_string()], outbox_row).optional()?.transpose()
    }

    /// All outbox entries of a meeting in creation order.
    pub fn outbox(&self, meeting: MeetingId) -> Result<Vec<OutboxEntry>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE meeting_id = ?1 ORDER BY created_at, rowid"
        ))?;
        let rows = stmt.query_map([meeting.to_string()], outbox_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    /// Entries still to be sent automatically (state `sending`), in creation order.
    pub fn outbox_pending(&self, meeting: MeetingId) -> Result<Vec<OutboxEntry>> {
        Ok(self.outbox(meeting)?.into_iter().filter(|e| e.state == OutboxState::Sending).collect())
    }

    // -- consultations -----------------------------------------------------

    /// Records the start of a consultation (kept when already recorded).
    pub fn consultation_started(
        &self,
        meeting: MeetingId,
        title: Option<&str>,
        patient_reference: Option<&str>,
        started_at: Option<i64>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO consultations(meeting_id, title, patient_reference, started_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(meeting_id) DO UPDATE SET
               title = COALESCE(excluded.title, consultations.title),
               patient_reference = COALESCE(excluded.patient_reference, consultations.patient_reference),
               started_at = COALESCE(consultations.started_at, excluded.started_at)",
            params![meeting.to_string(), title, patient_reference, started_at],
        )?;
        Ok(())
    }

    /// Records the end of a consultation with the relay's times and the doctor's notes.
    pub fn consultation_ended(&self, rec: &ConsultationRecord) -> Result<()> {
        self.conn.execute(
            "INSERT INTO consultations(meeting_id, title, patient_reference, started_at, ended_at, duration_secs, notes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(meeting_id) DO UPDATE SET
               title = COALESCE(excluded.title, consultations.title),
               patient_reference = COALESCE(excluded.patient_reference, consultations.patient_reference),
               started_at = COALESCE(excluded.started_at, consultations.started_at),
               ended_at = excluded.ended_at, duration_secs = excluded.duration_secs,
               notes = COALESCE(excluded.notes, consultations.notes)",
            params![
                rec.meeting_id.to_string(),
                rec.title,
                rec.patient_reference,
                rec.started_at,
                rec.ended_at,
                rec.duration_secs,
                rec.notes
            ],
        )?;
        Ok(())
    }

    /// Applies one write the session core asked for ([`crate::state::Output::Persist`]),
    /// for the relay `relay`; `now_ms` (wall clock) dates a rate-limited retry.
    pub fn apply(&mut self, relay: &str, p: crate::state::Persist, now_ms: i64) -> Result<()> {
        use crate::state::Persist;
        match p {
            Persist::Credential { staff, credential } => {
                self.save_credential(relay, &credential, &staff.staff_id.to_string(), &staff.name)
            }
            Persist::Meeting { info, access_code, role } => {
                self.upsert_meeting(relay, &info, access_code.as_deref(), role)
            }
            Persist::Role { meeting_id, role } => self.set_meeting_role(meeting_id, role),
            Persist::Codes { meeting_id, access_code, invite_secret } => {
                self.set_meeting_codes(meeting_id, &access_code, invite_secret.as_deref())
            }
            Persist::ResumeToken { meeting_id, participant_id, token } => {
                self.set_resume_token(meeting_id, participant_id, token.as_deref())
            }
            Persist::Chat(m) => self.insert_chat(&m).map(|_| ()),
            Persist::OutboxInsert(e) => self.outbox_insert(&e),
            Persist::OutboxRetry { client_msg_id, attempts, retry_after_ms, error } => self.outbox_set_state(
                client_msg_id,
                OutboxState::Sending,
                attempts,
                now_ms + retry_after_ms as i64,
                Some(&error),
            ),
            Persist::OutboxAccepted(m) => self.outbox_accepted(&m).map(|_| ()),
            Persist::OutboxFailed { client_msg_id, attempts, error } => {
                self.outbox_set_state(client_msg_id, OutboxState::Failed, attempts, 0, Some(&error))
            }
            Persist::OutboxRequeued { client_msg_id } => match self.outbox_entry(client_msg_id)? {
                Some(e) => self.outbox_set_state(client_msg_id, OutboxState::Sending, e.attempts, 0, None),
                None => Ok(()),
            },
            Persist::ConsultationStarted { meeting_id, title, patient_reference, started_at } => {
                self.consultation_started(meeting_id, Some(&title), patient_reference.as_deref(), started_at)
            }
            Persist::ConsultationEnded(rec) => self.consultation_ended(&rec),
        }
    }

    pub fn consultations(&self) -> Result<Vec<ConsultationRecord>> {
        let sql =
            "SELECT c.meeting_id, c.title, c.patient_reference, c.started_at, c.ended_at, c.duration_secs,
                    c.notes, CASE WHEN c.ended_at IS NOT NULL THEN 'completed' ELSE m.status END
             FROM consultations c LEFT JOIN meetings m ON m.meeting_id = c.meeting_id
             ORDER BY COALESCE(c.started_at, c.ended_at, 0) DESC";
        Ok(query_all(&self.conn, sql, [], |r| {
            Ok(ConsultationRecord {
                meeting_id: uuid_col(r, 0)?,
                title: r.get(1)?,
                patient_reference: r.get(2)?,
                started_at: r.get(3)?,
                ended_at: r.get(4)?,
                duration_secs: r.get(5)?,
                notes: r.get(6)?,
                status: r.get(7)?,
            })
        })?)
    }
}

const MEETING_COLS: &str = "meeting_id, relay, title, access_code, kind, status, role, patient_reference, participant_id, resume_token, last_seen_at, invite_secret";

/// Inserts one accepted chat message unless it is already stored (same client
/// message id or sequence number); returns the number of rows inserted (0 or 1).
fn insert_chat_row(conn: &Connection, m: &ChatMessage) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT OR IGNORE INTO chat(meeting_id, seq, staff_only, client_msg_id, sender_id, sender_name, sender_verified, text, sent_at,
         system, attachments) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            m.meeting_id.to_string(),
            m.seq as i64,
            m.staff_only,
            m.client_msg_id.to_string(),
            m.sender_id.to_string(),
            m.sender_name,
            m.sender_verified,
            m.text,
            m.sent_at,
            m.system.map(clinicmeet_protocol::SystemLine::as_str),
            (!m.attachments.is_empty()).then(|| serde_json::to_string(&m.attachments).unwrap_or_default())
        ],
    )
}

fn meeting_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MeetingRecord> {
    Ok(MeetingRecord {
        meeting_id: uuid_col(r, 0)?,
        relay: r.get(1)?,
        title: r.get(2)?,
        access_code: r.get(3)?,
        kind: r.get(4)?,
        status: r.get(5)?,
        role: r.get(6)?,
        patient_reference: r.get(7)?,
        participant_id: r.get(8)?,
        resume_token: r.get(9)?,
        last_seen_at: r.get(10)?,
        invite_secret: r.get(11)?,
    })
}

const OUTBOX_COLS: &str =
    "client_msg_id, meeting_id, text, staff_only, state, attempts, next_retry_at, created_at, last_error, attachments";

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<OutboxEntry>> {
    let state: String = r.get(4)?;
    let state = match OutboxState::parse(&state) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(OutboxEntry {
        client_msg_id: uuid_col(r, 0)?,
        meeting_id: uuid_col(r, 1)?,
        text: r.get(2)?,
        staff_only: r.get(3)?,
        state,
        attempts: r.get(5)?,
        next_retry_at: r.get(6)?,
        created_at: r.get(7)?,
        last_error: r.get(8)?,
        attachments: r
            .get::<_, Option<String>>(9)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(meeting: Uuid, seq: u64, staff_only: bool, text: &str) -> ChatMessage {
        ChatMessage {
            meeting_id: meeting,
            seq,
            client_msg_id: Uuid::now_v7(),
            sender_id: Uuid::now_v7(),
            sender_name: "Ann".into(),
            sender_verified: false,
            text: text.into(),
            staff_only,
            sent_at: 1_000 + seq as i64 * 10 + staff_only as i64 * 5,
            system: None,
            attachments: Vec::new(),
        }
    }

    fn entry(meeting: Uuid, text: &str) -> OutboxEntry {
        OutboxEntry {
            client_msg_id: Uuid::now_v7(),
            meeting_id: meeting,
            text: text.into(),
            staff_only: false,
            state: OutboxState::Sending,
            attempts: 0,
            next_retry_at: 0,
            created_at: unix_now_ms(),
            last_error: None,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn chat_insert_is_idempotent() {
        let s = Store::open_in_memory().unwrap();
        let m = Uuid::now_v7();
        let a = msg(m, 1, false, "hello");
        assert!(s.insert_chat(&a).unwrap());
        assert!(!s.insert_chat(&a).unwrap(), "second insert of the same message must be ignored");
        // Same seq, other id (a relay bug or replay) is not stored twice either.
        let mut b = msg(m, 1, false, "dup seq");
        assert!(!s.insert_chat(&b).unwrap());
        // Notes have their own sequence.
        b = msg(m, 1, true, "note");
        assert!(s.insert_chat(&b).unwrap());
        assert_eq!(s.chat(m, false).unwrap().len(), 1);
        assert_eq!(s.chat(m, true).unwrap().len(), 1);
    }

    #[test]
    fn watermark_stops_at_first_gap() {
        let s = Store::open_in_memory().unwrap();
        let m = Uuid::now_v7();
        assert_eq!(s.watermarks(m).unwrap(), Watermarks::default());
        for seq in [2, 3] {
            s.insert_chat(&msg(m, seq, false, "x")).unwrap();
        }
        assert_eq!(s.watermarks(m).unwrap().chat, 0, "seq 1 missing");
        s.insert_chat(&msg(m, 1, false, "x")).unwrap();
        assert_eq!(s.watermarks(m).unwrap().chat, 3);
        s.insert_chat(&msg(m, 5, false, "x")).unwrap();
        assert_eq!(s.watermarks(m).unwrap().chat, 3, "gap at 4");
        s.insert_chat(&msg(m, 4, false, "x")).unwrap();
        s.insert_chat(&msg(m, 1, true, "n")).unwrap();
        assert_eq!(s.watermarks(m).unwrap(), Watermarks { chat: 5, notes: 1 });
    }

    #[test]
    fn outbox_transitions() {
        let mut s = Store::open_in_memory().unwrap();
        let m = Uuid::now_v7();
        let e1 = entry(m, "one");
        let e2 = entry(m, "two");
        s.outbox_insert(&e1).unwrap();
        s.outbox_insert(&e2).unwrap();
        s.outbox_insert(&e1).unwrap(); // idempotent
        assert_eq!(s.outbox_pending(m).unwrap().len(), 2);

        // rate limited: stays sending with a retry time
        s.outbox_set_state(e1.client_msg_id, OutboxState::Sending, 1, 12345, Some("rate_limited")).unwrap();
        let got = s.outbox_entry(e1.client_msg_id).unwrap().unwrap();
        assert_eq!((got.state, got.attempts, got.next_retry_at), (OutboxState::Sending, 1, 12345));

        // accepted: moves to chat, state sent
        let mut accepted = msg(m, 1, false, "one");
        accepted.client_msg_id = e1.client_msg_id;
        assert!(s.outbox_accepted(&accepted).unwrap());
        assert!(!s.outbox_accepted(&accepted).unwrap());
        assert_eq!(s.outbox_entry(e1.client_msg_id).unwrap().unwrap().state, OutboxState::Sent);

        // refused: failed, no longer pending
        s.outbox_set_state(e2.client_msg_id, OutboxState::Failed, 1, 0, Some("too_large")).unwrap();
        assert!(s.outbox_pending(m).unwrap().is_empty());

        let h = s.history(m).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].seq, h[0].status), (Some(1), OutboxState::Sent));
        assert_eq!((h[1].seq, h[1].status), (None, OutboxState::Failed));
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let m = Uuid::now_v7();
        let e = entry(m, "unsent");
        {
            let s = Store::open_dir(dir.path()).unwrap();
            s.insert_chat(&msg(m, 1, false, "kept")).unwrap();
            s.outbox_insert(&e).unwrap();
            s.save_credential("relay:1", "cred", "sid", "Dr A").unwrap();
            s.save_relay_pin("relay:1", "sha256/x").unwrap();
        }
        let s = Store::open_dir(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(s.chat(m, false).unwrap()[0].text, "kept");
        assert_eq!(s.outbox_pending(m).unwrap(), vec![e]);
        let r = s.relay("relay:1").unwrap().unwrap();
        assert_eq!(r.device_credential.as_deref(), Some("cred"));
        assert_eq!(r.pin.as_deref(), Some("sha256/x"));
        let mode: String = s.conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn meeting_codes_replace_the_old_ones_and_the_secret_is_never_serialized() {
        let s = Store::open_in_memory().unwrap();
        let info = MeetingInfo {
            id: Uuid::now_v7(),
            title: "Clinic".into(),
            description: None,
            kind: clinicmeet_protocol::MeetingKind::Video,
            status: clinicmeet_protocol::MeetingStatus::Active,
            host_name: "Dr A".into(),
            locked: false,
            settings: clinicmeet_protocol::MeetingSettings::default(),
            patient_reference: None,
            schedule: None,
            created_at: 1,
            started_at: None,
            ended_at: None,
        };
        s.upsert_meeting("r:1", &info, Some("ABCDEFGH"), Some(Role::Host)).unwrap();
        assert_eq!(s.meeting(info.id).unwrap().unwrap().invite_secret, None);
        s.set_meeting_codes(info.id, "ABCDEFGH", Some("SECRETONE")).unwrap();
        s.set_meeting_codes(info.id, "WXYZ2345", Some("SECRETTWO")).unwrap();
        let rec = s.meeting(info.id).unwrap().unwrap();
        assert_eq!(
            (rec.access_code.as_deref(), rec.invite_secret.as_deref()),
            (Some("WXYZ2345"), Some("SECRETTWO"))
        );
        // A later refresh (list, join) without a code keeps them.
        s.upsert_meeting("r:1", &info, None, None).unwrap();
        assert_eq!(s.meeting(info.id).unwrap().unwrap().invite_secret.as_deref(), Some("SECRETTWO"));
        assert!(s.meeting_by_code(Some("r:1"), "ABCDEFGH").unwrap().is_none(), "the old code is gone");
        let json = serde_json::to_string(&rec).unwrap();
        assert!(!json.contains("SECRETTWO") && !json.contains("invite_secret"), "{json}");
    }

    #[test]
    fn recent_relays_lists_last_used_first() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.recent_relays().unwrap().is_empty());
        s.save_relay_pin("a:1", "sha256/a").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3)); // updated_at has ms resolution
        s.save_relay_pin("b:1", "sha256/b").unwrap();
        let order: Vec<_> = s.recent_relays().unwrap().into_iter().map(|r| r.relay).collect();
        assert_eq!(order, ["b:1", "a:1"]);
        std::thread::sleep(std::time::Duration::from_millis(3));
        s.save_relay_pin("a:1", "sha256/a").unwrap();
        let first = s.recent_relays().unwrap().remove(0);
        assert_eq!((first.relay.as_str(), first.pin.as_deref()), ("a:1", Some("sha256/a")));
    }

    #[test]
    fn history_interleaves_notes_by_time() {
        let s = Store::open_in_memory().unwrap();
        let m = Uuid::now_v7();
        s.insert_chat(&msg(m, 2, false, "c2")).unwrap();
        s.insert_chat(&msg(m, 1, false, "c1")).unwrap();
        s.insert_chat(&msg(m, 1, true, "n1")).unwrap(); // sent_at between c1 and c2
        let texts: Vec<_> = s.history(m).unwrap().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["c1", "n1", "c2"]);
    }

    #[test]
    fn consultation_records() {
        let s = Store::open_in_memory().unwrap();
        let m = Uuid::now_v7();
        s.consultation_started(m, Some("Follow-up"), Some("P-1"), Some(1000)).unwrap();
        s.consultation_ended(&ConsultationRecord {
            meeting_id: m,
            title: None,
            patient_reference: None,
            started_at: Some(1000),
            ended_at: Some(61_000),
            duration_secs: Some(60),
            notes: Some("BP fine".into()),
            status: None,
        })
        .unwrap();
        let c = &s.consultations().unwrap()[0];
        assert_eq!(c.title.as_deref(), Some("Follow-up"));
        assert_eq!(c.patient_reference.as_deref(), Some("P-1"));
        assert_eq!(c.duration_secs, Some(60));
        assert_eq!(c.notes.as_deref(), Some("BP fine"));
    }
}
