//! The hub's part in chat attachments: who may upload and read what, the
//! per-file limit and the meeting's quota, and recording a stored attachment.
//! The bytes go through the transfer drivers, never the hub thread; the hub
//! only hands out tokens ([`crate::attachments::Grants`]) and writes the row
//! once the driver has the blob durably on disk.

use clinicmeet_protocol::transfer::{is_sha256_hex, TOKEN_TTL_MS};
use clinicmeet_protocol::{AttachmentId, AttachmentInfo, ErrorBody, ErrorCode, Response, UnixMillis};

use super::{ConnId, Handled, Hub};
use crate::attachments::{NewUpload, Upload};
use crate::error::{db, refuse as e, waiting};

/// Longest attachment name, characters.
pub const MAX_ATTACHMENT_NAME_CHARS: usize = 255;

/// The one answer for "no such attachment" and "not yours to read".
fn not_found() -> ErrorBody {
    e(ErrorCode::AttachmentNotFound, "no such attachment")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Hub {
    pub(super) fn start_upload(
        &mut self,
        now: UnixMillis,
        conn: ConnId,
        name: &str,
        size: u64,
        sha256: &str,
        staff_only: bool,
    ) -> Handled {
        let (mid, pid) = self.bound(conn)?;
        let room = self.rooms.get(&mid).ok_or_else(crate::error::not_joined)?;
        if room.participant(pid).is_none_or(|p| p.presence != crate::room::Presence::InMeeting) {
            return Err(waiting());
        }
        if !room.info().settings.chat_enabled {
            return Err(e(ErrorCode::Forbidden, "chat is turned off in this meeting"));
        }
        if staff_only && !room.reads_notes(pid) {
            return Err(e(ErrorCode::Forbidden, "only enrolled staff may attach to staff-only notes"));
        }
        let name =
            clinicmeet_protocol::limits::clean_text("name", name, MAX_ATTACHMENT_NAME_CHARS, true, false)?;
        if !is_sha256_hex(sha256) {
            return Err(e(ErrorCode::Malformed, "sha256 must be 64 lower-case hex digits"));
        }
        if size == 0 {
            return Err(e(ErrorCode::Malformed, "the file is empty"));
        }
        let max = self.cfg.max_attachment_bytes;
        if size > max {
            return Err(e(ErrorCode::AttachmentTooLarge, &format!("files may be at most {}", mib(max))));
        }
        let resumed = self.grants.upload_of(pid, sha256).filter(|u| u.size == size && u.meeting_id == mid);
        let stored = self.store.attachment_bytes(mid).map_err(db)?;
        let pending = self.grants.pending_bytes(mid, resumed.as_ref().map(|u| u.upload_id));
        let quota = self.cfg.max_meeting_attachment_bytes;
        if stored.saturating_add(pending).saturating_add(size) > quota {
            return Err(e(
                ErrorCode::AttachmentQuotaExceeded,
                &format!("this meeting's attachments may be at most {} together", mib(quota)),
            ));
        }
        let new = NewUpload {
            meeting_id: mid,
            participant: pid,
            name,
            size,
            sha256: sha256.to_string(),
            staff_only,
        };
        let (upload, token) = self.grants.start_upload(new, now, TOKEN_TTL_MS);
        let offset = upload.durable.load(std::sync::atomic::Ordering::Acquire);
        Ok((Response::UploadReady { upload_id: upload.upload_id, offset, token }, Vec::new()))
    }

    pub(super) fn download_ticket(&mut self, now: UnixMillis, conn: ConnId, id: AttachmentId) -> Handled {
        let Some(a) = self.store.attachment(id).map_err(db)? else { return Err(not_found()) };
        let sess = self.session(conn)?;
        let in_meeting = sess.bound.and_then(|(mid, pid)| {
            let room = self.rooms.get(&mid).filter(|_| mid == a.meeting_id)?;
            let present = room.participant(pid)?.presence == crate::room::Presence::InMeeting;
            (present && (!a.staff_only || room.reads_notes(pid))).then_some(pid)
        });
        let reader = match in_meeting {
            Some(pid) => pid,
            None => {
                // Staff who took part read it until retention (a removed one: what came before).
                let Some(staff) = sess.staff.clone() else { return Err(not_found()) };
                match self.store.staff_reads_until(a.meeting_id, staff.staff_id).map_err(db)? {
                    Some(until) if a.created_at <= until => staff.staff_id,
                    _ => return Err(not_found()),
                }
            }
        };
        let token = self.grants.download(a.clone(), reader, now, TOKEN_TTL_MS);
        Ok((Response::DownloadReady { attachment: a, token }, Vec::new()))
    }

    /// An upload is complete and its blob durable: records it, and only then is
    /// it acknowledged (by the caller). A failed write answers `storage_unavailable`;
    /// the upload stays open, so the client may ask again.
    pub fn upload_stored(
        &mut self,
        now: UnixMillis,
        upload: &Upload,
        mime: &str,
    ) -> Result<AttachmentInfo, ErrorBody> {
        let info = AttachmentInfo {
            id: uuid::Uuid::now_v7(),
            meeting_id: upload.meeting_id,
            name: upload.name.clone(),
            size: upload.size,
            mime: mime.to_string(),
            sha256: upload.sha256.clone(),
            staff_only: upload.staff_only,
            uploader: upload.participant,
            created_at: now,
        };
        if let Err(err) = self.store.insert_attachment(&info) {
            self.metrics.storage_failure();
            return Err(db(err));
        }
        self.grants.finish_upload(upload);
        Ok(info)
    }

    /// The attachments a chat message names, checked: at most
    /// `MAX_ATTACHMENTS_PER_MESSAGE`, each uploaded by the sender into this
    /// meeting, not in another message already, staff-only exactly when the message is.
    pub(super) fn attachments_for(
        &self,
        conn: ConnId,
        client_msg_id: uuid::Uuid,
        staff_only: bool,
        ids: &[AttachmentId],
    ) -> Result<Vec<AttachmentInfo>, ErrorBody> {
        use clinicmeet_protocol::limits::MAX_ATTACHMENTS_PER_MESSAGE;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > MAX_ATTACHMENTS_PER_MESSAGE {
            let msg = format!("a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments");
            return Err(e(ErrorCode::TooLarge, &msg));
        }
        let (mid, pid) = self.bound(conn)?;
        let mut out: Vec<AttachmentInfo> = Vec::with_capacity(ids.len());
        for &id in ids {
            if out.iter().any(|a| a.id == id) {
                continue;
            }
            let Some((a, message)) = self.store.attachment_link(id).map_err(db)? else {
                return Err(not_found());
            };
            if a.meeting_id != mid || a.uploader != pid {
                return Err(not_found());
            }
            if a.staff_only != staff_only {
                return Err(e(
                    ErrorCode::Forbidden,
                    "staff-only attachments go in staff-only notes, and notes carry only staff-only attachments",
                ));
            }
            if message.is_some_and(|m| m != client_msg_id) {
                return Err(e(ErrorCode::InvalidState, "this attachment is already in another message"));
            }
            out.push(a);
        }
        Ok(out)
    }

    /// Whether a blob is still needed: an attachment row names it or an upload of it runs.
    pub fn blob_in_use(&self, sha256: &str) -> bool {
        // A failed look-up keeps the blob (the next purge looks again).
        self.store.blob_referenced(sha256).unwrap_or(true) || self.grants.uploading(sha256)
    }

    /// The transfer tokens (shared with the transfer drivers).
    pub fn grants(&self) -> std::sync::Arc<crate::attachments::Grants> {
        self.grants.clone()
    }
}
