//! The relay's SQLite database: staff and their devices, meetings and their
//! access codes (as HMACs), participants, the chat log, attachments (their
//! metadata; the bytes are files in the blob directory, `crate::attachments`) and the audit log.
//! WAL mode, so the admin subcommands can work while the server runs.

use std::path::Path;

use clinicmeet_protocol::{
    AttachmentId, AttachmentInfo, ChatMessage, ConsultationAmendment, ConsultationNotes, ConsultationRecord,
    MediaState, MeetingId, MeetingInfo, MeetingKind, MeetingSettings, MeetingStatus, ParticipantId,
    PastFilter, PastMeeting, Schedule, StaffId, StaffIdentity, SystemLine, UnixMillis,
};
use clinicmeet_sqlite::{query_all, uuid_col};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use crate::audit_batch::Coalesced;
use crate::error::RelayError;
use crate::keys::ResumeKey;
use crate::room::{role_from_str, role_str, HoldKey, MeetingRecord, Participant, Presence, Write};

/// Versioned migrations; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE staff (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    removed_at INTEGER
);
CREATE TABLE enrollment_codes (
    code_hash BLOB PRIMARY KEY,
    staff_id TEXT NOT NULL REFERENCES staff(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    staff_id TEXT NOT NULL REFERENCES staff(id),
    name TEXT NOT NULL,
    credential_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER,
    revoked_at INTEGER
);
CREATE TABLE meetings (
    id TEXT PRIMARY KEY,
    code_hmac BLOB NOT NULL UNIQUE,
    creator_staff_id TEXT NOT NULL REFERENCES staff(id),
    host_name TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT,
    kind TEXT NOT NULL,
    patient_reference TEXT,
    schedule_start INTEGER,
    schedule_tz TEXT,
    settings TEXT NOT NULL,
    status TEXT NOT NULL,
    locked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    ended_at INTEGER
);
CREATE INDEX meetings_status ON meetings(status);
CREATE TABLE participants (
    id TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL REFERENCES meetings(id),
    display_name TEXT NOT NULL,
    staff_id TEXT,
    role TEXT NOT NULL,
    presence TEXT NOT NULL,
    media TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    entered_at INTEGER,
    arrival INTEGER NOT NULL,
    left_at INTEGER,
    leave_reason TEXT
);
CREATE INDEX participants_meeting ON participants(meeting_id, left_at);
CREATE TABLE chat (
    meeting_id TEXT NOT NULL REFERENCES meetings(id),
    staff_only INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    client_msg_id TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    sender_verified INTEGER NOT NULL,
    text TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    UNIQUE (meeting_id, client_msg_id),
    UNIQUE (meeting_id, staff_only, seq)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    meeting_id TEXT,
    participant_id TEXT,
    staff_id TEXT,
    action TEXT NOT NULL,
    source TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit(at);
"#,
    r#"
ALTER TABLE meetings ADD COLUMN code_bucket INTEGER;
ALTER TABLE meetings ADD COLUMN invite_hmac BLOB;
CREATE UNIQUE INDEX meetings_invite ON meetings(invite_hmac);
CREATE INDEX meetings_bucket ON meetings(code_bucket, status);
"#,
    r#"
ALTER TABLE participants ADD COLUMN moderator_muted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE participants ADD COLUMN resume_hash BLOB;
ALTER TABLE participants ADD COLUMN resume_prev_hash BLOB;
ALTER TABLE participants ADD COLUMN resume_prev_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE participants ADD COLUMN hold TEXT;
CREATE TABLE meeting_holds (
    meeting_id TEXT NOT NULL REFERENCES meetings(id),
    hold TEXT NOT NULL,
    PRIMARY KEY (meeting_id, hold)
);
"#,
    r#"
CREATE TABLE consultation_notes (
    meeting_id TEXT PRIMARY KEY REFERENCES meetings(id),
    staff_id TEXT NOT NULL REFERENCES staff(id),
    author_name TEXT NOT NULL,
    notes TEXT NOT NULL,
    written_at INTEGER NOT NULL
);
CREATE TABLE consultation_amendments (
    meeting_id TEXT NOT NULL REFERENCES consultation_notes(meeting_id),
    seq INTEGER NOT NULL,
    staff_id TEXT NOT NULL REFERENCES staff(id),
    author_name TEXT NOT NULL,
    text TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (meeting_id, seq)
);
CREATE TRIGGER consultation_notes_kept BEFORE UPDATE ON consultation_notes
BEGIN SELECT RAISE(ABORT, 'consultation notes are never changed; amend them'); END;
CREATE TRIGGER consultation_notes_not_deleted BEFORE DELETE ON consultation_notes
BEGIN SELECT RAISE(ABORT, 'consultation notes are never deleted'); END;
CREATE TRIGGER consultation_amendments_kept BEFORE UPDATE ON consultation_amendments
BEGIN SELECT RAISE(ABORT, 'amendments are never changed'); END;
CREATE TRIGGER consultation_amendments_not_deleted BEFORE DELETE ON consultation_amendments
BEGIN SELECT RAISE(ABORT, 'amendments are never deleted'); END;
ALTER TABLE chat ADD COLUMN system TEXT;
CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL REFERENCES meetings(id),
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mime TEXT NOT NULL,
    staff_only INTEGER NOT NULL,
    uploader TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX attachments_meeting ON attachments(meeting_id);
ALTER TABLE attachments ADD COLUMN message_id TEXT;
ALTER TABLE chat ADD COLUMN attachments TEXT;
CREATE INDEX attachments_sha256 ON attachments(sha256);
"#,
];

/// Most rows of the clinic view.
pub const CLINIC_VIEW_ROWS: usize = 300;

/// How hard SQLite works to keep a commit across power loss (`--sqlite-sync`;
/// `Full` by default: an acknowledged chat message survives a power cut).
pub use clinicmeet_sqlite::SyncMode;

pub struct Store {
    conn: Connection,
}

/// What the store keeps of a meeting's secrets: HMACs, and the code's bucket
/// (its first two characters, not secret).
#[derive(Debug, Clone, Copy)]
pub struct MeetingSecrets<'a> {
    pub code_hmac: &'a [u8],
    pub bucket: u16,
    pub invite_hmac: &'a [u8],
}

/// A staff member as `staff list` shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaffRow {
    pub staff_id: StaffId,
    pub name: String,
    pub created_at: UnixMillis,
    pub removed: bool,
    pub active_devices: u32,
}

/// An audit row (for tests and operators).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRow {
    pub at: UnixMillis,
    pub meeting_id: Option<String>,
    pub participant_id: Option<String>,
    pub action: String,
    pub source: Option<String>,
    pub detail: String,
}

fn kind_str(k: MeetingKind) -> &'static str {
    match k {
        MeetingKind::Video => "video",
        MeetingKind::AudioOnly => "audio_only",
        MeetingKind::Consultation => "consultation",
    }
}

fn kind_from(s: &str) -> MeetingKind {
    match s {
        "audio_only" => MeetingKind::AudioOnly,
        "consultation" => MeetingKind::Consultation,
        _ => MeetingKind::Video,
    }
}

fn status_from(s: &str) -> MeetingStatus {
    match s {
        "active" => MeetingStatus::Active,
        "ended" => MeetingStatus::Ended,
        "cancelled" => MeetingStatus::Cancelled,
        "completed" => MeetingStatus::Completed,
        _ => MeetingStatus::Scheduled,
    }
}

const MEETING_COLS: &str = "id, creator_staff_id, host_name, title, description, kind, patient_reference, \
     schedule_start, schedule_tz, settings, status, locked, created_at, started_at, ended_at";

fn meeting_row(row: &Row<'_>) -> rusqlite::Result<MeetingRecord> {
    let settings: String = row.get(9)?;
    let settings: MeetingSettings = serde_json::from_str(&settings).unwrap_or_default();
    let schedule_start: Option<i64> = row.get(7)?;
    let schedule_tz: Option<String> = row.get(8)?;
    let kind: String = row.get(5)?;
    let status: String = row.get(10)?;
    Ok(MeetingRecord {
        info: MeetingInfo {
            id: uuid_col(row, 0)?,
            host_name: row.get(2)?,
            title: row.get(3)?,
            description: row.get(4)?,
            kind: kind_from(&kind),
            patient_reference: row.get(6)?,
            schedule: schedule_start
                .map(|start| Schedule { start, time_zone: schedule_tz.unwrap_or_default() }),
            settings,
            status: status_from(&status),
            locked: row.get::<_, i64>(11)? != 0,
            created_at: row.get(12)?,
            started_at: row.get(13)?,
            ended_at: row.get(14)?,
        },
        creator: uuid_col(row, 1)?,
    })
}

fn chat_row(row: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        meeting_id: uuid_col(row, 0)?,
        staff_only: row.get::<_, i64>(1)? != 0,
        seq: row.get::<_, i64>(2)? as u64,
        client_msg_id: uuid_col(row, 3)?,
        sender_id: uuid_col(row, 4)?,
        sender_name: row.get(5)?,
        sender_verified: row.get::<_, i64>(6)? != 0,
        text: row.get(7)?,
        sent_at: row.get(8)?,
        system: row.get::<_, Option<String>>(9)?.as_deref().and_then(SystemLine::parse),
        attachments: row
            .get::<_, Option<String>>(10)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
    })
}

const CHAT_COLS: &str =
    "meeting_id, staff_only, seq, client_msg_id, sender_id, sender_name, sender_verified, \
     text, sent_at, system, attachments";

/// What a purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Chat messages and staff-only notes.
    pub chat: usize,
    /// Participants' display names blanked.
    pub names: usize,
    /// Meetings whose patient reference and description were cleared.
    pub references: usize,
    /// Audit rows deleted.
    pub audit: usize,
    /// Audit rows whose source address was blanked.
    pub addresses: usize,
    /// Attachment rows deleted (their blob files go once nothing references them).
    pub attachments: usize,
}

impl Store {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub fn open(path: &Path, sync: SyncMode) -> Result<Store, RelayError> {
        Ok(Store { conn: clinicmeet_sqlite::open(path, sync, MIGRATIONS)? })
    }

    /// A database in memory (same schema and queries, nothing on disk): for
    /// tests that drive the [`crate::hub::Hub`] without processes or files.
    pub fn open_in_memory() -> Result<Store, RelayError> {
        Ok(Store { conn: clinicmeet_sqlite::open_in_memory(MIGRATIONS)? })
    }

    pub fn schema_version(&self) -> Result<i64, RelayError> {
        Ok(clinicmeet_sqlite::schema_version(&self.conn)?)
    }

    // -----------------------------------------------------------------------
    // Staff

    pub fn add_staff(
        &self,
        name: &str,
        enrollment_hash: &[u8],
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<StaffId, RelayError> {
        let id = Uuid::now_v7();
        self.conn.execute(
            "INSERT INTO staff (id, name, created_at) VALUES (?1, ?2, ?3)",
            params![id.to_string(), name, now],
        )?;
        self.conn.execute(
            "INSERT INTO enrollment_codes (code_hash, staff_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![enrollment_hash, id.to_string(), now, expires_at],
        )?;
        Ok(id)
    }

    pub fn list_staff(&self) -> Result<Vec<StaffRow>, RelayError> {
        let sql = "SELECT s.id, s.name, s.created_at, s.removed_at IS NOT NULL, \
             (SELECT COUNT(*) FROM devices d WHERE d.staff_id = s.id AND d.revoked_at IS NULL) \
             FROM staff s ORDER BY s.created_at";
        Ok(query_all(&self.conn, sql, [], |r| {
            Ok(StaffRow {
                staff_id: uuid_col(r, 0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                removed: r.get(3)?,
                active_devices: r.get(4)?,
            })
        })?)
    }

    /// A further one-time enrollment code for an existing, not removed staff
    /// member (another device). False if there is no such staff member.
    pub fn add_enrollment_code(
        &self,
        staff: StaffId,
        enrollment_hash: &[u8],
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<bool, RelayError> {
        let n = self.conn.execute(
            "INSERT INTO enrollment_codes (code_hash, staff_id, created_at, expires_at) \
             SELECT ?1, id, ?3, ?4 FROM staff WHERE id = ?2 AND removed_at IS NULL",
            params![enrollment_hash, staff.to_string(), now, expires_at],
        )?;
        Ok(n > 0)
    }

    /// Removes a staff member and revokes all their devices. False if unknown.
    pub fn remove_staff(&self, id: StaffId, now: UnixMillis) -> Result<bool, RelayError> {
        let n = self.conn.execute(
            "UPDATE staff SET removed_at = ?2 WHERE id = ?1 AND removed_at IS NULL",
            params![id.to_string(), now],
        )?;
        self.conn.execute(
            "UPDATE devices SET revoked_at = ?2 WHERE staff_id = ?1 AND revoked_at IS NULL",
            params![id.to_string(), now],
        )?;
        self.conn.execute(
            "UPDATE enrollment_codes SET used_at = ?2 WHERE staff_id = ?1 AND used_at IS NULL",
            params![id.to_string(), now],
        )?;
        Ok(n > 0)
    }

    /// Spends a one-time enrollment code and registers a device. `None` when the
    /// code is unknown, used, expired or its staff member was removed.
    pub fn enroll(
        &mut self,
        code_hash: &[u8],
        device_name: &str,
        credential_hash: &[u8],
        now: UnixMillis,
    ) -> Result<Option<StaffIdentity>, RelayError> {
        let tx = self.conn.transaction()?;
        let found: Option<(String, String)> = tx
            .query_row(
                "SELECT s.id, s.name FROM enrollment_codes e JOIN staff s ON s.id = e.staff_id \
                 WHERE e.code_hash = ?1 AND e.used_at IS NULL AND e.expires_at > ?2 AND s.removed_at IS NULL",
                params![code_hash, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((staff_id, name)) = found else { return Ok(None) };
        tx.execute("UPDATE enrollment_codes SET used_at = ?2 WHERE code_hash = ?1", params![code_hash, now])?;
        tx.execute(
            "INSERT INTO devices (id, staff_id, name, credential_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![Uuid::now_v7().to_string(), staff_id, device_name, credential_hash, now],
        )?;
        tx.commit()?;
        let staff_id = Uuid::parse_str(&staff_id).map_err(|_| RelayError::Corrupt("staff id"))?;
        Ok(Some(StaffIdentity { staff_id, name }))
    }

    /// The staff identity behind a device credential, if it is valid and not revoked.
    pub fn staff_for_credential(
        &self,
        credential_hash: &[u8],
        now: UnixMillis,
    ) -> Result<Option<StaffIdentity>, RelayError> {
        let found: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT s.id, s.name FROM devices d JOIN staff s ON s.id = d.staff_id \
                 WHERE d.credential_hash = ?1 AND d.revoked_at IS NULL AND s.removed_at IS NULL",
                params![credential_hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, name)) = found else { return Ok(None) };
        self.conn.execute(
            "UPDATE devices SET last_seen_at = ?2 WHERE credential_hash = ?1",
            params![credential_hash, now],
        )?;
        let staff_id = Uuid::parse_str(&id).map_err(|_| RelayError::Corrupt("staff id"))?;
        Ok(Some(StaffIdentity { staff_id, name }))
    }

    /// Whether a device credential still belongs to a staff member in office
    /// (device not revoked, staff member not removed). Reads only.
    pub fn credential_active(&self, credential_hash: &[u8]) -> Result<bool, RelayError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM devices d JOIN staff s ON s.id = d.staff_id \
             WHERE d.credential_hash = ?1 AND d.revoked_at IS NULL AND s.removed_at IS NULL)",
            params![credential_hash],
            |r| r.get(0),
        )?)
    }

    /// Changes when another connection (an operator's `clinicmeet-relay staff …`)
    /// committed to the database since the last call (`PRAGMA data_version`).
    pub fn data_version(&self) -> Result<i64, RelayError> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    // -----------------------------------------------------------------------
    // Meetings

    /// Inserts a meeting; false when its code or invite HMAC collides with another meeting's.
    pub fn insert_meeting(
        &self,
        m: &MeetingRecord,
        secrets: &MeetingSecrets<'_>,
    ) -> Result<bool, RelayError> {
        let i = &m.info;
        let settings = serde_json::to_string(&i.settings).map_err(|e| RelayError::Internal(e.to_string()))?;
        let res = self.conn.execute(
            "INSERT INTO meetings (id, code_hmac, creator_staff_id, host_name, title, description, kind, \
             patient_reference, schedule_start, schedule_tz, settings, status, locked, created_at, started_at, ended_at, \
             code_bucket, invite_hmac) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            params![
                i.id.to_string(),
                secrets.code_hmac,
                m.creator.to_string(),
                i.host_name,
                i.title,
                i.description,
                kind_str(i.kind),
                i.patient_reference,
                i.schedule.as_ref().map(|s| s.start),
                i.schedule.as_ref().map(|s| s.time_zone.clone()),
                settings,
                i.status.as_str(),
                i.locked as i64,
                i.created_at,
                i.started_at,
                i.ended_at,
                secrets.bucket,
                secrets.invite_hmac
            ],
        );
        match res {
            Ok(_) => Ok(true),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn meeting_by_code(&self, code_hmac: &[u8]) -> Result<Option<MeetingRecord>, RelayError> {
        let sql = format!("SELECT {MEETING_COLS} FROM meetings WHERE code_hmac = ?1");
        Ok(self.conn.query_row(&sql, params![code_hmac], meeting_row).optional()?)
    }

    /// The meeting whose invite secret has this HMAC.
    pub fn meeting_by_invite(&self, invite_hmac: &[u8]) -> Result<Option<MeetingRecord>, RelayError> {
        let sql = format!("SELECT {MEETING_COLS} FROM meetings WHERE invite_hmac = ?1");
        Ok(self.conn.query_row(&sql, params![invite_hmac], meeting_row).optional()?)
    }

    /// Replaces a meeting's code and invite secret (the old ones stop matching
    /// at once). `Ok(false)` when the new HMACs collide with another meeting's,
    /// or the meeting does not exist.
    pub fn rekey_meeting(&self, id: MeetingId, secrets: &MeetingSecrets<'_>) -> Result<bool, RelayError> {
        let res = self.conn.execute(
            "UPDATE meetings SET code_hmac = ?2, code_bucket = ?3, invite_hmac = ?4 WHERE id = ?1",
            params![id.to_string(), secrets.code_hmac, secrets.bucket, secrets.invite_hmac],
        );
        match res {
            Ok(n) => Ok(n == 1),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Live (scheduled or active) meetings per code bucket, for buckets that
    /// hold any. Meetings from before buckets were recorded are not counted.
    pub fn bucket_loads(&self) -> Result<Vec<(u16, u32)>, RelayError> {
        let sql = "SELECT code_bucket, COUNT(*) FROM meetings WHERE code_bucket IS NOT NULL \
             AND status IN ('scheduled', 'active') GROUP BY code_bucket";
        Ok(query_all(&self.conn, sql, [], |r| Ok((r.get::<_, i64>(0)? as u16, r.get::<_, i64>(1)? as u32)))?)
    }

    pub fn meeting(&self, id: MeetingId) -> Result<Option<MeetingRecord>, RelayError> {
        let sql = format!("SELECT {MEETING_COLS} FROM meetings WHERE id = ?1");
        Ok(self.conn.query_row(&sql, params![id.to_string()], meeting_row).optional()?)
    }

    /// Meetings created by a staff member that are not over.
    pub fn open_meetings_of(&self, staff: StaffId) -> Result<Vec<MeetingRecord>, RelayError> {
        let sql = format!(
            "SELECT {MEETING_COLS} FROM meetings WHERE creator_staff_id = ?1 \
             AND status IN ('scheduled', 'active') ORDER BY created_at"
        );
        Ok(query_all(&self.conn, &sql, params![staff.to_string()], meeting_row)?)
    }

    /// Meetings that are not over (the clinic view), oldest first, at most
    /// [`CLINIC_VIEW_ROWS`] (to stay within a frame).
    pub fn open_meetings(&self) -> Result<Vec<MeetingRecord>, RelayError> {
        let sql = format!(
            "SELECT {MEETING_COLS} FROM meetings WHERE status IN ('scheduled', 'active') \
             ORDER BY created_at LIMIT {CLINIC_VIEW_ROWS}"
        );
        Ok(query_all(&self.conn, &sql, [], meeting_row)?)
    }

    /// Meetings that are not over and still have participants (to restore after a restart).
    pub fn meetings_to_restore(&self) -> Result<Vec<MeetingRecord>, RelayError> {
        let sql = format!(
            "SELECT {MEETING_COLS} FROM meetings m WHERE status IN ('scheduled', 'active') AND EXISTS \
             (SELECT 1 FROM participants p WHERE p.meeting_id = m.id AND p.left_at IS NULL)"
        );
        Ok(query_all(&self.conn, &sql, [], meeting_row)?)
    }

    /// Whom denials and removals hold back in a meeting.
    pub fn holds(&self, meeting: MeetingId) -> Result<Vec<HoldKey>, RelayError> {
        let sql = "SELECT hold FROM meeting_holds WHERE meeting_id = ?1";
        let rows: Vec<String> = query_all(&self.conn, sql, params![meeting.to_string()], |r| r.get(0))?;
        Ok(rows.iter().filter_map(|h| HoldKey::from_db(h)).collect())
    }

    pub fn present_participants(&self, meeting: MeetingId) -> Result<Vec<Participant>, RelayError> {
        let sql =
            "SELECT id, display_name, staff_id, role, presence, media, joined_at, entered_at, arrival, \
             moderator_muted, resume_hash, resume_prev_hash, resume_prev_until, hold FROM participants WHERE meeting_id = ?1 AND left_at IS NULL ORDER BY arrival";
        Ok(query_all(&self.conn, sql, params![meeting.to_string()], |r| {
            let staff: Option<String> = r.get(2)?;
            let role: String = r.get(3)?;
            let presence: String = r.get(4)?;
            let media: String = r.get(5)?;
            Ok(Participant {
                id: uuid_col(r, 0)?,
                display_name: r.get(1)?,
                staff: staff.and_then(|s| Uuid::parse_str(&s).ok()),
                role: role_from_str(&role).unwrap_or(clinicmeet_protocol::Role::Guest),
                presence: if presence == "in_meeting" { Presence::InMeeting } else { Presence::Waiting },
                media: serde_json::from_str::<MediaState>(&media).unwrap_or_default(),
                joined_at: r.get(6)?,
                entered_at: r.get(7)?,
                connected: false,
                disconnected_at: None,
                arrival: r.get::<_, i64>(8)? as u64,
                moderator_muted: r.get(9)?,
                resume: ResumeKey {
                    token: String::new(),
                    hash: r.get::<_, Option<Vec<u8>>>(10)?.unwrap_or_default(),
                    prev_hash: r.get::<_, Option<Vec<u8>>>(11)?.unwrap_or_default(),
                    prev_until: r.get(12)?,
                },
                hold: r.get::<_, Option<String>>(13)?.as_deref().and_then(HoldKey::from_db),
            })
        })?)
    }

    /// Whether a staff member created or joined the meeting.
    /// Up to when a staff member may read a meeting's chat and notes from the
    /// relay's copy: `None` if they never took part; its creator, and anyone
    /// whose latest place in it did not end in removal, without limit
    /// (`UnixMillis::MAX`); someone removed, up to the moment of removal.
    pub fn staff_reads_until(
        &self,
        meeting: MeetingId,
        staff: StaffId,
    ) -> Result<Option<UnixMillis>, RelayError> {
        /// (leave reason, left at) of someone's latest place in a meeting.
        type Place = (Option<String>, Option<UnixMillis>);
        let creator: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM meetings WHERE id = ?1 AND creator_staff_id = ?2)",
            params![meeting.to_string(), staff.to_string()],
            |r| r.get(0),
        )?;
        let latest: Option<Place> = self
            .conn
            .query_row(
                "SELECT leave_reason, left_at FROM participants WHERE meeting_id = ?1 AND staff_id = ?2 \
                 ORDER BY joined_at DESC, arrival DESC LIMIT 1",
                params![meeting.to_string(), staff.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match latest {
            _ if creator => Some(UnixMillis::MAX),
            None => None,
            Some((Some(reason), Some(at))) if reason == "removed" => Some(at),
            Some(_) => Some(UnixMillis::MAX),
        })
    }

    /// Participant ids that have ever been in a meeting (to validate resume after restart).
    pub fn participant_meeting(&self, pid: ParticipantId) -> Result<Option<MeetingId>, RelayError> {
        let s: Option<String> = self
            .conn
            .query_row("SELECT meeting_id FROM participants WHERE id = ?1", params![pid.to_string()], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(s.and_then(|s| Uuid::parse_str(&s).ok()))
    }

    // -----------------------------------------------------------------------
    // Consultation records and past meetings

    /// A consultation `staff` held (created), with its notes and amendments;
    /// `None` for any other meeting or staff member.
    pub fn consultation(
        &self,
        meeting: MeetingId,
        staff: StaffId,
    ) -> Result<Option<ConsultationRecord>, RelayError> {
        let Some(record) = self.meeting(meeting)? else { return Ok(None) };
        if record.creator != staff || record.info.kind != MeetingKind::Consultation {
            return Ok(None);
        }
        let id = meeting.to_string();
        let notes = self
            .conn
            .query_row(
                "SELECT notes, author_name, written_at FROM consultation_notes WHERE meeting_id = ?1",
                params![id],
                |r| Ok(ConsultationNotes { text: r.get(0)?, author_name: r.get(1)?, written_at: r.get(2)? }),
            )
            .optional()?;
        let amendments = query_all(
            &self.conn,
            "SELECT seq, text, author_name, at FROM consultation_amendments WHERE meeting_id = ?1 ORDER BY seq",
            params![id],
            |r| Ok(ConsultationAmendment { seq: r.get(0)?, text: r.get(1)?, author_name: r.get(2)?, at: r.get(3)? }),
        )?;
        let info = record.info;
        let duration_secs = match (info.started_at, info.ended_at) {
            (Some(s), Some(e)) => Some((e - s).max(0) / 1000),
            _ => None,
        };
        Ok(Some(ConsultationRecord { meeting: info, duration_secs, notes, amendments }))
    }

    /// Writes a consultation's notes and audits it (without the text), in one
    /// transaction. The caller checked the right to; the table refuses a second write.
    pub fn save_consultation_notes(
        &mut self,
        meeting: MeetingId,
        staff: &StaffIdentity,
        notes: &str,
        now: UnixMillis,
    ) -> Result<(), RelayError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO consultation_notes (meeting_id, staff_id, author_name, notes, written_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![meeting.to_string(), staff.staff_id.to_string(), staff.name, notes, now],
        )?;
        tx.execute(
            "INSERT INTO audit (at, meeting_id, staff_id, action, detail) VALUES (?1, ?2, ?3, 'consultation_notes_saved', '')",
            params![now, meeting.to_string(), staff.staff_id.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Appends an amendment (numbered after the last) and audits it (without
    /// the text), in one transaction. Returns its number.
    pub fn amend_consultation(
        &mut self,
        meeting: MeetingId,
        staff: &StaffIdentity,
        text: &str,
        now: UnixMillis,
    ) -> Result<u32, RelayError> {
        let tx = self.conn.transaction()?;
        let seq: u32 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM consultation_amendments WHERE meeting_id = ?1",
            params![meeting.to_string()],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO consultation_amendments (meeting_id, seq, staff_id, author_name, text, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![meeting.to_string(), seq, staff.staff_id.to_string(), staff.name, text, now],
        )?;
        tx.execute(
            "INSERT INTO audit (at, meeting_id, staff_id, action, detail) VALUES (?1, ?2, ?3, 'consultation_amended', '')",
            params![now, meeting.to_string(), staff.staff_id.to_string()],
        )?;
        tx.commit()?;
        Ok(seq)
    }

    /// Meetings that are over which `staff` created or had a place in, newest
    /// (by end) first, matching the filter; returns (rows, more). `limit` is
    /// taken as given (the hub bounds it).
    pub fn past_meetings(
        &self,
        staff: StaffId,
        filter: &PastFilter,
        limit: u32,
    ) -> Result<(Vec<PastMeeting>, bool), RelayError> {
        let cols = MEETING_COLS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {cols}, n.written_at FROM meetings m \
             LEFT JOIN consultation_notes n ON n.meeting_id = m.id AND m.creator_staff_id = ?1 \
             WHERE m.status IN ('ended', 'cancelled', 'completed') \
             AND (m.creator_staff_id = ?1 OR EXISTS \
                  (SELECT 1 FROM participants p WHERE p.meeting_id = m.id AND p.staff_id = ?1)) \
             AND (?2 IS NULL OR m.title LIKE '%' || ?2 || '%' ESCAPE '\\') \
             AND COALESCE(m.started_at, m.created_at) >= ?3 AND COALESCE(m.started_at, m.created_at) < ?4 \
             AND (NOT ?5 OR (m.kind = 'consultation' AND m.creator_staff_id = ?1)) \
             ORDER BY COALESCE(m.ended_at, m.created_at) DESC, m.id DESC LIMIT ?6"
        );
        let query = filter
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|q| q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let mut rows = query_all(
            &self.conn,
            &sql,
            params![
                staff.to_string(),
                query,
                filter.from.unwrap_or(i64::MIN),
                filter.to.unwrap_or(i64::MAX),
                filter.consultations_only,
                i64::from(limit) + 1
            ],
            |r| {
                let record = meeting_row(r)?;
                Ok(PastMeeting {
                    held: record.creator == staff,
                    meeting: record.info,
                    notes_written_at: r.get(15)?,
                })
            },
        )?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok((rows, more))
    }

    // -----------------------------------------------------------------------
    // Chat

    /// All messages of a meeting (to rebuild the dedup table).
    pub fn all_chat(&self, meeting: MeetingId) -> Result<Vec<ChatMessage>, RelayError> {
        let sql = format!("SELECT {CHAT_COLS} FROM chat WHERE meeting_id = ?1 ORDER BY rowid");
        Ok(query_all(&self.conn, &sql, params![meeting.to_string()], chat_row)?)
    }

    /// History: chat with seq > since, and (when `notes`) notes with seq > notes_since,
    /// in the order the relay accepted them. Returns (messages, more).
    pub fn chat_history(
        &self,
        meeting: MeetingId,
        since: u64,
        notes: bool,
        notes_since: u64,
        limit: u32,
        until: UnixMillis,
    ) -> Result<(Vec<ChatMessage>, bool), RelayError> {
        let sql = format!(
            "SELECT {CHAT_COLS} FROM chat WHERE meeting_id = ?1 AND sent_at <= ?6 AND \
             ((staff_only = 0 AND seq > ?2) OR (staff_only = 1 AND ?3 AND seq > ?4)) ORDER BY rowid LIMIT ?5"
        );
        let mut v = query_all(
            &self.conn,
            &sql,
            params![
                meeting.to_string(),
                since as i64,
                notes,
                notes_since as i64,
                i64::from(limit) + 1,
                until
            ],
            chat_row,
        )?;
        let more = v.len() > limit as usize;
        v.truncate(limit as usize);
        Ok((v, more))
    }

    // -----------------------------------------------------------------------
    // Writes from the room

    /// Performs the room's writes in one transaction.
    pub fn apply(&mut self, writes: &[&Write], now: UnixMillis) -> Result<(), RelayError> {
        if writes.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for w in writes {
            match w {
                Write::MeetingState(i) => {
                    let settings = serde_json::to_string(&i.settings)
                        .map_err(|e| RelayError::Internal(e.to_string()))?;
                    tx.prepare_cached(
                        "UPDATE meetings SET status = ?2, locked = ?3, started_at = ?4, ended_at = ?5, settings = ?6 \
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        i.id.to_string(),
                        i.status.as_str(),
                        i.locked as i64,
                        i.started_at,
                        i.ended_at,
                        settings
                    ])?;
                    if i.status.is_over() {
                        // Holds matter only while the meeting admits anyone; they name addresses.
                        tx.prepare_cached("DELETE FROM meeting_holds WHERE meeting_id = ?1")?
                            .execute(params![i.id.to_string()])?;
                    }
                }
                Write::Participant { meeting_id, participant: p } => {
                    let media =
                        serde_json::to_string(&p.media).map_err(|e| RelayError::Internal(e.to_string()))?;
                    tx.prepare_cached(
                        "INSERT INTO participants (id, meeting_id, display_name, staff_id, role, presence, media, \
                         joined_at, entered_at, arrival, moderator_muted, resume_hash, resume_prev_hash, \
                         resume_prev_until, hold) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
                         ON CONFLICT(id) DO UPDATE SET role = excluded.role, presence = excluded.presence, \
                         media = excluded.media, entered_at = excluded.entered_at, \
                         moderator_muted = excluded.moderator_muted, resume_hash = excluded.resume_hash, \
                         resume_prev_hash = excluded.resume_prev_hash, resume_prev_until = excluded.resume_prev_until",
                    )?
                    .execute(params![
                        p.id.to_string(),
                        meeting_id.to_string(),
                        p.display_name,
                        p.staff.map(|s| s.to_string()),
                        role_str(p.role),
                        p.presence.as_str(),
                        media,
                        p.joined_at,
                        p.entered_at,
                        p.arrival as i64,
                        p.moderator_muted,
                        p.resume.hash,
                        p.resume.prev_hash,
                        p.resume.prev_until,
                        p.hold.map(HoldKey::to_db)
                    ])?;
                }
                Write::ParticipantLeft { participant_id, at, reason } => {
                    tx.prepare_cached(
                        "UPDATE participants SET left_at = ?2, leave_reason = ?3 WHERE id = ?1",
                    )?
                    .execute(params![participant_id.to_string(), at, reason])?;
                }
                Write::Chat(m) => {
                    let attachments = if m.attachments.is_empty() {
                        None
                    } else {
                        Some(
                            serde_json::to_string(&m.attachments)
                                .map_err(|e| RelayError::Internal(e.to_string()))?,
                        )
                    };
                    tx.prepare_cached(
                        "INSERT INTO chat (meeting_id, staff_only, seq, client_msg_id, sender_id, sender_name, \
                         sender_verified, text, sent_at, system, attachments) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )?
                    .execute(params![
                        m.meeting_id.to_string(),
                        m.staff_only,
                        m.seq as i64,
                        m.client_msg_id.to_string(),
                        m.sender_id.to_string(),
                        m.sender_name,
                        m.sender_verified,
                        m.text,
                        m.sent_at,
                        m.system.map(SystemLine::as_str),
                        attachments
                    ])?;
                    for a in &m.attachments {
                        tx.prepare_cached("UPDATE attachments SET message_id = ?2 WHERE id = ?1")?
                            .execute(params![a.id.to_string(), m.client_msg_id.to_string()])?;
                    }
                }
                Write::Hold { meeting_id, key } => {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO meeting_holds (meeting_id, hold) VALUES (?1, ?2)",
                    )?
                    .execute(params![meeting_id.to_string(), key.to_db()])?;
                }
                Write::Audit { meeting_id, participant_id, action, detail } => {
                    tx.prepare_cached(
                        "INSERT INTO audit (at, meeting_id, participant_id, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        now,
                        meeting_id.to_string(),
                        participant_id.map(|p| p.to_string()),
                        action,
                        detail
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// An audit entry from outside a room (failed codes, enrollment, creation).
    pub fn audit(
        &self,
        now: UnixMillis,
        meeting: Option<MeetingId>,
        staff: Option<StaffId>,
        action: &str,
        source: Option<&str>,
        detail: &str,
    ) -> Result<(), RelayError> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit (at, meeting_id, staff_id, action, source, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                now,
                meeting.map(|m| m.to_string()),
                staff.map(|s| s.to_string()),
                action,
                source,
                detail
            ])?;
        Ok(())
    }

    /// Coalesced failure rows ([`crate::audit_batch`]), all in one transaction
    /// (one commit however many rows).
    pub fn audit_coalesced(&mut self, rows: &[Coalesced]) -> Result<(), RelayError> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO audit (at, action, source, detail) VALUES (?1, ?2, ?3, ?4)")?;
            for r in rows {
                stmt.execute(params![r.first_at, r.action, r.source, r.detail()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn audit_rows(&self, action: Option<&str>) -> Result<Vec<AuditRow>, RelayError> {
        let sql = "SELECT at, meeting_id, participant_id, action, source, detail FROM audit \
             WHERE ?1 IS NULL OR action = ?1 ORDER BY id";
        Ok(query_all(&self.conn, sql, params![action], |r| {
            Ok(AuditRow {
                at: r.get(0)?,
                meeting_id: r.get(1)?,
                participant_id: r.get(2)?,
                action: r.get(3)?,
                source: r.get(4)?,
                detail: r.get(5)?,
            })
        })?)
    }

    /// Caps the database at `pages` pages (SQLite `max_page_count`; `None`
    /// lifts the cap): a write that needs more fails with `SQLITE_FULL`, exactly
    /// as on a full disk. Returns the pages in use. Tests fill the "disk" with it
    /// deterministically; a real full disk is tried with a tmpfs in
    /// `tests/tests/storage.rs`.
    pub fn cap_pages(&self, pages: Option<u32>) -> Result<u32, RelayError> {
        let used: u32 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let cap = pages.map_or(u32::MAX as i64 - 1, |p| p.max(used) as i64);
        let _: i64 = self.conn.query_row(&format!("PRAGMA max_page_count = {cap}"), [], |r| r.get(0))?;
        Ok(used)
    }

    /// Deletes chat of meetings ended before `chat_before` (and their display
    /// names, patient references and descriptions, except those of consultations
    /// whose record was written: the clinical record keeps its patient reference)
    /// and audit rows older
    /// than `audit_before`. Returns (chat rows, audit rows) deleted.
    pub fn purge(
        &self,
        chat_before: UnixMillis,
        audit_before: UnixMillis,
        addresses_before: UnixMillis,
    ) -> Result<Purged, RelayError> {
        const ENDED: &str = "(SELECT id FROM meetings WHERE ended_at IS NOT NULL AND ended_at < ?1)";
        let tx = self.conn.unchecked_transaction()?;
        let chat =
            tx.execute(&format!("DELETE FROM chat WHERE meeting_id IN {ENDED}"), params![chat_before])?;
        let names = tx.execute(
            &format!("UPDATE participants SET display_name = '' WHERE display_name != '' AND meeting_id IN {ENDED}"),
            params![chat_before],
        )?;
        let references = tx.execute(
            &format!(
                "UPDATE meetings SET patient_reference = NULL, description = NULL \
                 WHERE (patient_reference IS NOT NULL OR description IS NOT NULL) AND id IN {ENDED} \
                 AND id NOT IN (SELECT meeting_id FROM consultation_notes)"
            ),
            params![chat_before],
        )?;
        let audit = tx.execute("DELETE FROM audit WHERE at < ?1", params![audit_before])?;
        let addresses = tx.execute(
            "UPDATE audit SET source = NULL WHERE source IS NOT NULL AND at < ?1",
            params![addresses_before],
        )? + tx.execute(
            &format!("UPDATE participants SET hold = NULL WHERE hold IS NOT NULL AND meeting_id IN {ENDED}"),
            params![addresses_before],
        )?;
        let attachments = tx
            .execute(&format!("DELETE FROM attachments WHERE meeting_id IN {ENDED}"), params![chat_before])?;
        tx.commit()?;
        Ok(Purged { chat, names, references, audit, addresses, attachments })
    }

    /// Records a stored attachment (its blob is already durable in the blob directory).
    pub fn insert_attachment(&self, a: &AttachmentInfo) -> Result<(), RelayError> {
        self.conn
            .prepare_cached(
                "INSERT INTO attachments (id, meeting_id, sha256, name, size, mime, staff_only, uploader, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                a.id.to_string(),
                a.meeting_id.to_string(),
                a.sha256,
                a.name,
                a.size as i64,
                a.mime,
                a.staff_only as i64,
                a.uploader.to_string(),
                a.created_at
            ])?;
        Ok(())
    }

    pub fn attachment(&self, id: AttachmentId) -> Result<Option<AttachmentInfo>, RelayError> {
        let sql = "SELECT id, meeting_id, sha256, name, size, mime, staff_only, uploader, created_at \
                   FROM attachments WHERE id = ?1";
        let rows = query_all(&self.conn, sql, params![id.to_string()], |r| {
            Ok(AttachmentInfo {
                id: uuid_col(r, 0)?,
                meeting_id: uuid_col(r, 1)?,
                sha256: r.get(2)?,
                name: r.get(3)?,
                size: r.get::<_, i64>(4)?.max(0) as u64,
                mime: r.get(5)?,
                staff_only: r.get::<_, i64>(6)? != 0,
                uploader: uuid_col(r, 7)?,
                created_at: r.get(8)?,
            })
        })?;
        Ok(rows.into_iter().next())
    }

    /// An attachment and the chat message it is in, if any.
    pub fn attachment_link(
        &self,
        id: AttachmentId,
    ) -> Result<Option<(AttachmentInfo, Option<Uuid>)>, RelayError> {
        let Some(a) = self.attachment(id)? else { return Ok(None) };
        let m: Option<String> = self.conn.query_row(
            "SELECT message_id FROM attachments WHERE id = ?1",
            params![id.to_string()],
            |r| r.get(0),
        )?;
        Ok(Some((a, m.and_then(|m| Uuid::parse_str(&m).ok()))))
    }

    /// Bytes of the meeting's stored attachments (for its quota).
    pub fn attachment_bytes(&self, meeting: MeetingId) -> Result<u64, RelayError> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(size), 0) FROM attachments WHERE meeting_id = ?1",
            params![meeting.to_string()],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Whether any attachment row still names this blob.
    pub fn blob_referenced(&self, sha256: &str) -> Result<bool, RelayError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM attachments WHERE sha256 = ?1)",
            params![sha256],
            |r| r.get(0),
        )?)
    }

    /// Meetings not over in which nobody is present and nothing has happened
    /// since `idle_before`: the latest of creation, start, scheduled start and
    /// the last departure lies before it.
    pub fn abandoned_meetings(&self, idle_before: UnixMillis) -> Result<Vec<MeetingId>, RelayError> {
        let sql = "SELECT id FROM meetings m WHERE status IN ('scheduled', 'active') \
             AND NOT EXISTS (SELECT 1 FROM participants p WHERE p.meeting_id = m.id AND p.left_at IS NULL) \
             AND MAX(m.created_at, COALESCE(m.started_at, 0), COALESCE(m.schedule_start, 0), \
                 COALESCE((SELECT MAX(p.left_at) FROM participants p WHERE p.meeting_id = m.id), 0)) < ?1";
        Ok(query_all(&self.conn, sql, params![idle_before], |r| uuid_col(r, 0))?)
    }

    /// Ends an abandoned meeting (status `ended`, `ended_at` = now) and audits it,
    /// unless it is over already. True if it was ended.
    pub fn end_abandoned(&self, id: MeetingId, now: UnixMillis) -> Result<bool, RelayError> {
        let tx = self.conn.unchecked_transaction()?;
        let n = tx.execute(
            "UPDATE meetings SET status = 'ended', ended_at = ?2 WHERE id = ?1 AND status IN ('scheduled', 'active')",
            params![id.to_string(), now],
        )?;
        if n > 0 {
            tx.execute(
                "INSERT INTO audit (at, meeting_id, action, detail) VALUES (?1, ?2, 'meeting_abandoned', '')",
                params![now, id.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// Counts for metrics: (meetings active, chat messages stored).
    pub fn counts(&self) -> Result<(i64, i64), RelayError> {
        let active: i64 =
            self.conn.query_row("SELECT COUNT(*) FROM meetings WHERE status = 'active'", [], |r| r.get(0))?;
        let chat: i64 = self.conn.query_row("SELECT COUNT(*) FROM chat", [], |r| r.get(0))?;
        Ok((active, chat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(creator: StaffId) -> MeetingRecord {
        MeetingRecord {
            info: MeetingInfo {
                id: Uuid::now_v7(),
                title: "Ward round".into(),
                description: None,
                kind: MeetingKind::Video,
                status: MeetingStatus::Scheduled,
                host_name: "Dr A".into(),
                locked: false,
                settings: MeetingSettings::default(),
                patient_reference: None,
                schedule: Some(Schedule { start: 5, time_zone: "Europe/Berlin".into() }),
                created_at: 1,
                started_at: None,
                ended_at: None,
            },
            creator,
        }
    }

    fn sec<'a>(code_hmac: &'a [u8], invite_hmac: &'a [u8]) -> MeetingSecrets<'a> {
        MeetingSecrets { code_hmac, bucket: 1, invite_hmac }
    }

    #[test]
    fn a_version_1_database_gains_buckets_and_invites_and_keeps_its_codes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let staff = Uuid::now_v7();
        let old = record(staff);
        {
            let conn = clinicmeet_sqlite::open(&path, SyncMode::Normal, &MIGRATIONS[..1]).unwrap();
            conn.execute(
                "INSERT INTO staff (id, name, created_at) VALUES (?1, 'Dr A', 0)",
                params![staff.to_string()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO meetings (id, code_hmac, creator_staff_id, host_name, title, kind, settings, status, \
                 created_at) VALUES (?1, X'0102', ?2, 'Dr A', 'Old', 'video', '{}', 'scheduled', 1)",
                params![old.info.id.to_string(), staff.to_string()],
            )
            .unwrap();
        }
        let s = Store::open(&path, SyncMode::Normal).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(s.meeting_by_code(&[1, 2]).unwrap().unwrap().info.id, old.info.id, "old code still works");
        assert!(s.bucket_loads().unwrap().is_empty(), "an old meeting has no recorded bucket");
        let new = record(staff);
        assert!(s
            .insert_meeting(&new, &MeetingSecrets { code_hmac: b"c", bucket: 9, invite_hmac: b"i" })
            .unwrap());
        assert_eq!(s.bucket_loads().unwrap(), vec![(9, 1)]);
        assert_eq!(s.meeting_by_invite(b"i").unwrap().unwrap().info.id, new.info.id);
        // Re-keying the old meeting: the old code goes, the new code and invite work.
        assert!(s
            .rekey_meeting(old.info.id, &MeetingSecrets { code_hmac: b"c2", bucket: 9, invite_hmac: b"i2" })
            .unwrap());
        assert!(s.meeting_by_code(&[1, 2]).unwrap().is_none());
        assert_eq!(s.meeting_by_code(b"c2").unwrap().unwrap().info.id, old.info.id);
        assert_eq!(s.meeting_by_invite(b"i2").unwrap().unwrap().info.id, old.info.id);
        assert_eq!(s.bucket_loads().unwrap(), vec![(9, 2)]);
        // A re-key that would collide with another meeting's secrets changes nothing.
        assert!(!s
            .rekey_meeting(old.info.id, &MeetingSecrets { code_hmac: b"c", bucket: 9, invite_hmac: b"i3" })
            .unwrap());
        assert!(s.meeting_by_code(b"c2").unwrap().is_some());
    }

    #[test]
    fn migrations_staff_meetings_and_chat_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let meeting;
        {
            let mut s = Store::open(&path, SyncMode::Normal).unwrap();
            assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
            let staff = s.add_staff("Dr A", b"enroll-hash", 0, 1000).unwrap();
            assert!(s.enroll(b"wrong", "laptop", b"cred", 10).unwrap().is_none());
            let who = s.enroll(b"enroll-hash", "laptop", b"cred", 10).unwrap().unwrap();
            assert_eq!(who.staff_id, staff);
            assert!(s.enroll(b"enroll-hash", "laptop2", b"cred2", 11).unwrap().is_none(), "one-time code");
            assert_eq!(s.staff_for_credential(b"cred", 12).unwrap().unwrap().name, "Dr A");
            let m = record(staff);
            assert!(s.insert_meeting(&m, &sec(b"hmac1", b"inv1")).unwrap());
            assert!(
                !s.insert_meeting(&record(staff), &sec(b"hmac1", b"inv2")).unwrap(),
                "code collision detected"
            );
            assert!(!s.insert_meeting(&record(staff), &sec(b"hmac2", b"inv1")).unwrap(), "invite collision");
            meeting = m.info.id;
            let msg = ChatMessage {
                meeting_id: meeting,
                seq: 1,
                client_msg_id: Uuid::now_v7(),
                sender_id: Uuid::now_v7(),
                sender_name: "A".into(),
                sender_verified: true,
                text: "hello".into(),
                staff_only: false,
                sent_at: 3,
                system: None,
                attachments: Vec::new(),
            };
            s.apply(&[&Write::Chat(msg.clone())], 3).unwrap();
            assert!(s.apply(&[&Write::Chat(msg)], 3).is_err(), "client_msg_id unique per meeting");
            assert!(s.remove_staff(staff, 20).unwrap());
            assert!(s.staff_for_credential(b"cred", 21).unwrap().is_none(), "revoked");
        }
        let s = Store::open(&path, SyncMode::Normal).unwrap();
        let m = s.meeting_by_code(b"hmac1").unwrap().unwrap();
        assert_eq!(m.info.id, meeting);
        assert_eq!(m.info.schedule.unwrap().time_zone, "Europe/Berlin");
        let (h, more) = s.chat_history(meeting, 0, false, 0, 10, UnixMillis::MAX).unwrap();
        assert_eq!((h.len(), more), (1, false));
        assert!(s.meeting_by_code(b"nope").unwrap().is_none());
    }

    #[test]
    fn purge_removes_old_chat_and_audit_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("r.db"), SyncMode::Normal).unwrap();
        let staff = s.add_staff("Dr A", b"e", 0, 10).unwrap();
        let mut old = record(staff);
        old.info.ended_at = Some(100);
        let young = record(staff);
        s.insert_meeting(&old, &sec(b"a", b"ia")).unwrap();
        s.insert_meeting(&young, &sec(b"b", b"ib")).unwrap();
        for (m, seq) in [(old.info.id, 1), (young.info.id, 1)] {
            let msg = ChatMessage {
                meeting_id: m,
                seq,
                client_msg_id: Uuid::now_v7(),
                sender_id: Uuid::now_v7(),
                sender_name: "A".into(),
                sender_verified: false,
                text: "x".into(),
                staff_only: false,
                sent_at: 1,
                system: None,
                attachments: Vec::new(),
            };
            s.apply(&[&Write::Chat(msg)], 1).unwrap();
        }
        s.audit(50, None, None, "code_failed", Some("1.2.3.4"), "").unwrap();
        s.audit(500, None, None, "code_failed", Some("1.2.3.4"), "").unwrap();
        // A participant of each meeting, with the address their denial would hold.
        let hold = HoldKey::Source(crate::admission::Source::of("1.2.3.4".parse().unwrap()));
        for m in [old.info.id, young.info.id] {
            let participant = Participant {
                id: Uuid::now_v7(),
                display_name: "P".into(),
                staff: None,
                role: clinicmeet_protocol::Role::Guest,
                presence: Presence::InMeeting,
                media: MediaState::default(),
                joined_at: 1,
                entered_at: Some(1),
                connected: true,
                disconnected_at: None,
                arrival: 0,
                moderator_muted: false,
                resume: ResumeKey::default(),
                hold: Some(hold),
            };
            s.apply(&[&Write::Participant { meeting_id: m, participant }], 1).unwrap();
        }
        let p = s.purge(200, 100, 0).unwrap();
        assert_eq!((p.chat, p.audit), (1, 1));
        assert_eq!(s.chat_history(young.info.id, 0, false, 0, 10, UnixMillis::MAX).unwrap().0.len(), 1);
        assert_eq!(s.audit_rows(None).unwrap().len(), 1);
        // Addresses: kept (retention 0 ms ago means nothing is old enough) ...
        assert_eq!(s.present_participants(old.info.id).unwrap()[0].hold, Some(hold));
        // ... and blanked in ended meetings once they are.
        assert_eq!(s.purge(200, 100, 200).unwrap().addresses, 1, "the hold (the audit row is younger)");
        assert_eq!(s.present_participants(old.info.id).unwrap()[0].hold, None);
        assert_eq!(s.present_participants(young.info.id).unwrap()[0].hold, Some(hold), "not ended");
    }
    #[test]
    fn consultation_records_are_append_only_and_keep_their_reference_past_chat_retention() {
        let mut s = Store::open_in_memory().unwrap();
        let staff_id = s.add_staff("Dr A", b"h", 0, i64::MAX).unwrap();
        let staff = StaffIdentity { staff_id, name: "Dr A".into() };
        let mut rec = record(staff_id);
        rec.info.kind = MeetingKind::Consultation;
        rec.info.patient_reference = Some("P-1".into());
        rec.info.status = MeetingStatus::Completed;
        rec.info.ended_at = Some(10);
        assert!(s.insert_meeting(&rec, &sec(b"c1", b"i1")).unwrap());
        let mid = rec.info.id;
        s.save_consultation_notes(mid, &staff, "first", 20).unwrap();
        assert!(s.save_consultation_notes(mid, &staff, "second", 21).is_err(), "written once");
        assert_eq!(s.amend_consultation(mid, &staff, "a1", 30).unwrap(), 1);
        assert_eq!(s.amend_consultation(mid, &staff, "a2", 31).unwrap(), 2);
        for sql in [
            "UPDATE consultation_notes SET notes = 'x'",
            "DELETE FROM consultation_notes",
            "UPDATE consultation_amendments SET text = 'x'",
            "DELETE FROM consultation_amendments",
        ] {
            let err = s.conn.execute(sql, []).unwrap_err().to_string();
            assert!(err.contains("never"), "{sql}: {err}");
        }
        // Chat retention passes: the record keeps its patient reference.
        s.purge(1_000, 0, 0).unwrap();
        let r = s.consultation(mid, staff_id).unwrap().unwrap();
        assert_eq!(r.meeting.patient_reference.as_deref(), Some("P-1"));
        assert_eq!(r.notes.unwrap().text, "first");
        assert_eq!(r.amendments.iter().map(|a| a.text.as_str()).collect::<Vec<_>>(), ["a1", "a2"]);
        assert!(s.consultation(mid, Uuid::now_v7()).unwrap().is_none(), "only for who held it");
    }
}
