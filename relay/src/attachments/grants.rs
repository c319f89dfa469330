//! Transfer tokens: capabilities the hub issues for one upload or one
//! download by one participant, which the transfer drivers (QUIC streams,
//! HTTPS routes) redeem. Shared between the hub thread and the drivers behind
//! one mutex held only for map look-ups, never across I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clinicmeet_protocol::{AttachmentInfo, MeetingId, ParticipantId, UnixMillis};
use rand::Rng as _;
use uuid::Uuid;

/// An upload in progress.
#[derive(Debug)]
pub struct Upload {
    pub upload_id: Uuid,
    pub meeting_id: MeetingId,
    pub participant: ParticipantId,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub staff_only: bool,
    /// Bytes written and synced to the partial file.
    pub durable: AtomicU64,
    /// A transfer is running (one at a time per upload).
    pub busy: AtomicBool,
    expires: AtomicU64,
}

impl Upload {
    /// Claims the upload for one transfer; `None` while another runs.
    pub fn claim(self: &Arc<Self>) -> Option<Claim> {
        (!self.busy.swap(true, Ordering::AcqRel)).then(|| Claim(self.clone()))
    }
}

/// One running transfer of an upload; released on drop.
pub struct Claim(pub Arc<Upload>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// What a token lets its holder do.
#[derive(Debug, Clone)]
pub enum Grant {
    Upload(Arc<Upload>),
    Download { attachment: AttachmentInfo, participant: ParticipantId, expires: UnixMillis },
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, Grant>,
    /// Uploads in progress by (participant, sha256), for resuming.
    uploads: HashMap<(ParticipantId, String), Arc<Upload>>,
}

/// The token table.
#[derive(Default)]
pub struct Grants {
    inner: Mutex<Inner>,
}

fn token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`Grants::start_upload`] needs to know about a new upload.
pub struct NewUpload {
    pub meeting_id: MeetingId,
    pub participant: ParticipantId,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub staff_only: bool,
}

impl Grants {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The upload this participant has in progress for this content, if any.
    pub fn upload_of(&self, participant: ParticipantId, sha256: &str) -> Option<Arc<Upload>> {
        self.lock().uploads.get(&(participant, sha256.to_string())).cloned()
    }

    /// Bytes declared by uploads in progress into `meeting`, but `except` (a resumed one).
    pub fn pending_bytes(&self, meeting: MeetingId, except: Option<Uuid>) -> u64 {
        self.lock()
            .uploads
            .values()
            .filter(|u| u.meeting_id == meeting && Some(u.upload_id) != except)
            .map(|u| u.size)
            .sum()
    }

    /// A token for a new upload, or for resuming `existing` (same upload id, the
    /// bytes held so far, a fresh token; older tokens of it stay valid until they expire).
    pub fn start_upload(&self, new: NewUpload, now: UnixMillis, ttl: i64) -> (Arc<Upload>, String) {
        let mut inner = self.lock();
        let key = (new.participant, new.sha256.clone());
        let expires = (now + ttl).max(0) as u64;
        let upload = match inner.uploads.get(&key) {
            Some(u) if u.size == new.size && u.meeting_id == new.meeting_id => {
                u.expires.fetch_max(expires, Ordering::AcqRel);
                u.clone()
            }
            _ => {
                let u = Arc::new(Upload {
                    upload_id: Uuid::now_v7(),
                    meeting_id: new.meeting_id,
                    participant: new.participant,
                    name: new.name,
                    size: new.size,
                    sha256: new.sha256,
                    staff_only: new.staff_only,
                    durable: AtomicU64::new(0),
                    busy: AtomicBool::new(false),
                    expires: AtomicU64::new(expires),
                });
                inner.uploads.insert(key, u.clone());
                u
            }
        };
        let t = token();
        inner.tokens.insert(t.clone(), Grant::Upload(upload.clone()));
        (upload, t)
    }

    /// A token to read `attachment`.
    pub fn download(
        &self,
        attachment: AttachmentInfo,
        participant: ParticipantId,
        now: UnixMillis,
        ttl: i64,
    ) -> String {
        let t = token();
        self.lock().tokens.insert(t.clone(), Grant::Download { attachment, participant, expires: now + ttl });
        t
    }

    /// What `token` grants now (nothing once expired or redeemed for good).
    pub fn redeem(&self, token: &str, now: UnixMillis) -> Option<Grant> {
        let inner = self.lock();
        let g = inner.tokens.get(token)?;
        let live = match g {
            Grant::Upload(u) => {
                now.max(0) as u64 <= u.expires.load(Ordering::Acquire)
                    && inner
                        .uploads
                        .get(&(u.participant, u.sha256.clone()))
                        .is_some_and(|x| Arc::ptr_eq(x, u))
            }
            Grant::Download { expires, .. } => now <= *expires,
        };
        live.then(|| g.clone())
    }

    /// The upload is stored (or abandoned): its tokens stop working.
    pub fn finish_upload(&self, upload: &Upload) {
        let mut inner = self.lock();
        inner.uploads.remove(&(upload.participant, upload.sha256.clone()));
        inner.tokens.retain(|_, g| !matches!(g, Grant::Upload(u) if u.upload_id == upload.upload_id));
    }

    /// Forgets expired tokens and uploads; returns the ids of the uploads dropped
    /// (their partial files can go).
    pub fn sweep(&self, now: UnixMillis) -> Vec<Uuid> {
        let mut inner = self.lock();
        let now_u = now.max(0) as u64;
        let mut gone = Vec::new();
        inner.uploads.retain(|_, u| {
            let keep = now_u <= u.expires.load(Ordering::Acquire) || u.busy.load(Ordering::Acquire);
            if !keep {
                gone.push(u.upload_id);
            }
            keep
        });
        inner.tokens.retain(|_, g| match g {
            Grant::Upload(u) => !gone.contains(&u.upload_id),
            Grant::Download { expires, .. } => now <= *expires,
        });
        gone
    }

    /// Content being uploaded now (its blob may appear before its row).
    pub fn uploading(&self, sha256: &str) -> bool {
        self.lock().uploads.values().any(|u| u.sha256 == sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(pid: ParticipantId, sha: &str) -> NewUpload {
        NewUpload {
            meeting_id: Uuid::nil(),
            participant: pid,
            name: "a.pdf".into(),
            size: 100,
            sha256: sha.into(),
            staff_only: false,
        }
    }

    #[test]
    fn tokens_resume_expire_and_die_with_their_upload() {
        let g = Grants::default();
        let (pat, other) = (Uuid::now_v7(), Uuid::now_v7());
        let (u, t1) = g.start_upload(new(pat, "aa"), 0, 1_000);
        u.durable.store(40, Ordering::Release);
        // The same participant and content resume the same upload with a fresh token.
        let (u2, t2) = g.start_upload(new(pat, "aa"), 500, 1_000);
        assert_eq!((u2.upload_id, u2.durable.load(Ordering::Acquire)), (u.upload_id, 40));
        assert_ne!(t1, t2);
        // Someone else's upload of the same content is their own.
        let (u3, _) = g.start_upload(new(other, "aa"), 0, 1_000);
        assert_ne!(u3.upload_id, u.upload_id);
        assert_eq!(g.pending_bytes(Uuid::nil(), Some(u.upload_id)), 100);
        // One transfer at a time.
        let claim = u.claim().unwrap();
        assert!(u2.claim().is_none());
        drop(claim);
        assert!(u2.claim().is_some());
        // Expiry counts from the last start (1,500 here); unknown tokens grant nothing.
        assert!(matches!(g.redeem(&t1, 1_400), Some(Grant::Upload(_))));
        assert!(g.redeem(&t1, 1_501).is_none());
        assert!(g.redeem("nope", 0).is_none());
        assert_eq!(g.sweep(1_600).len(), 2);
        assert!(g.redeem(&t2, 0).is_none() && !g.uploading("aa"));
        // A stored upload's tokens stop working at once.
        let (u, t) = g.start_upload(new(pat, "bb"), 0, 1_000);
        g.finish_upload(&u);
        assert!(g.redeem(&t, 1).is_none());
        // Download tokens expire too.
        let a = AttachmentInfo {
            id: Uuid::now_v7(),
            meeting_id: Uuid::nil(),
            name: "a".into(),
            size: 1,
            mime: "text/plain".into(),
            sha256: "cc".into(),
            staff_only: false,
            uploader: pat,
            created_at: 0,
        };
        let t = g.download(a, pat, 0, 1_000);
        assert!(matches!(g.redeem(&t, 1_000), Some(Grant::Download { .. })));
        assert!(g.redeem(&t, 1_001).is_none());
    }
}
