//! Secrets kept in the data directory and what is derived from them:
//! access-code HMACs, resume tokens and their keyed hashes, hashed device
//! credentials and enrollment codes.

use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clinicmeet_protocol::{AccessCode, InviteSecret, MeetingId, ParticipantId, UnixMillis};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::RelayError;

type HmacSha256 = Hmac<Sha256>;

/// The relay's two secrets: one keys the access-code HMAC, one the resume-token hashes.
#[derive(Clone)]
pub struct Keys {
    code_secret: [u8; 32],
    resume_key: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Reads a 32-byte secret, creating it (mode 0600) when missing.
pub fn load_or_create_secret(path: &Path) -> Result<[u8; 32], RelayError> {
    if let Ok(bytes) = std::fs::read(path) {
        return bytes
            .as_slice()
            .try_into()
            .map_err(|_| RelayError::Config(format!("{} must hold exactly 32 bytes", path.display())));
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    write_private(path, &secret)?;
    Ok(secret)
}

/// Writes a file readable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), RelayError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| RelayError::io(path, e))?;
    f.write_all(bytes).map_err(|e| RelayError::io(path, e))?;
    f.sync_all().map_err(|e| RelayError::io(path, e))
}

impl Keys {
    pub fn new(code_secret: [u8; 32], resume_key: [u8; 32]) -> Keys {
        Keys { code_secret, resume_key }
    }

    /// Loads (or creates) `code-secret` and `resume-key` in the data dir.
    pub fn load(data_dir: &Path) -> Result<Keys, RelayError> {
        Ok(Keys {
            code_secret: load_or_create_secret(&data_dir.join("code-secret"))?,
            resume_key: load_or_create_secret(&data_dir.join("resume-key"))?,
        })
    }

    /// HMAC-SHA256(server secret, normalized code): how codes are stored and looked up.
    pub fn code_hmac(&self, code: &AccessCode) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.code_secret).expect("HMAC takes any key length");
        mac.update(code.normalized().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// HMAC-SHA256(server secret, "invite:" ‖ secret): how invite secrets are
    /// stored and looked up (domain-separated from codes).
    pub fn invite_hmac(&self, invite: &InviteSecret) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.code_secret).expect("HMAC takes any key length");
        mac.update(b"invite:");
        mac.update(invite.as_str().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A new resume key for a place. The token is base64url(meeting id ‖
    /// participant id ‖ 32 random bytes): it names its place, and only its holder
    /// knows the rest. The relay stores only HMAC-SHA256(resume key, token), so
    /// neither a copy of the database nor the key file alone yields a token.
    pub fn new_resume(&self, meeting: MeetingId, participant: ParticipantId) -> ResumeKey {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(meeting.as_bytes());
        bytes.extend_from_slice(participant.as_bytes());
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        bytes.extend_from_slice(&secret);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let hash = self.resume_mac(&token).finalize().into_bytes().to_vec();
        ResumeKey { token, hash, prev_hash: Vec::new(), prev_until: 0 }
    }

    /// The place a resume token names, if it is shaped like one (says nothing
    /// about whether it is the place's token: see [`Keys::rotate_resume`]).
    pub fn resume_token_place(token: &str) -> Option<(MeetingId, ParticipantId)> {
        if token.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != 64 {
            return None;
        }
        let meeting = Uuid::from_slice(bytes.get(..16)?).ok()?;
        let participant = Uuid::from_slice(bytes.get(16..32)?).ok()?;
        Some((meeting, participant))
    }

    /// A resume with `token` at `now`: if it is the place's current token, or the
    /// one it replaced and `now` is within that one's window, the place's next key
    /// (a new token; the one presented stays good for `keep_ms` more, in case the
    /// reply carrying the new one is lost with the link). Every other token: `None`.
    /// Constant-time comparisons.
    pub fn rotate_resume(
        &self,
        place: (MeetingId, ParticipantId),
        current: &ResumeKey,
        token: &str,
        now: UnixMillis,
        keep_ms: i64,
    ) -> Option<ResumeKey> {
        let matches = |hash: &[u8]| !hash.is_empty() && self.resume_mac(token).verify_slice(hash).is_ok();
        let presented = if matches(&current.hash) {
            &current.hash
        } else if now <= current.prev_until && matches(&current.prev_hash) {
            &current.prev_hash
        } else {
            return None;
        };
        let next = self.new_resume(place.0, place.1);
        Some(ResumeKey { prev_hash: presented.clone(), prev_until: now.saturating_add(keep_ms), ..next })
    }

    fn resume_mac(&self, token: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.resume_key).expect("HMAC takes any key length");
        mac.update(b"resume:");
        mac.update(token.as_bytes());
        mac
    }
}

/// A place's resume token as the relay holds it: the token itself in memory only
/// (to hand to its owner in join states; empty after a restart), its keyed hash
/// ([`Keys::new_resume`]) also in the store, with the hash of the token it
/// replaced and until when that one is still taken.
#[derive(Clone, Default, PartialEq)]
pub struct ResumeKey {
    pub token: String,
    pub hash: Vec<u8>,
    pub prev_hash: Vec<u8>,
    pub prev_until: UnixMillis,
}

impl std::fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeKey(..)")
    }
}

/// SHA-256 of a high-entropy secret (device credential, enrollment code) for storage.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.trim().as_bytes()).to_vec()
}

/// A new device credential: 32 random bytes, base64url.
pub fn new_device_credential() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// A new one-time enrollment code: 16 characters of the access-code alphabet
/// (80 bits) in groups of four, e.g. `ABCD-EFGH-JKLM-NPQR`.
pub fn new_enrollment_code() -> String {
    let a = AccessCode::random();
    let b = AccessCode::random();
    format!("{a}-{b}")
}

/// Normalizes an enrollment code as typed (case, dashes, spaces) before hashing.
pub fn normalize_enrollment_code(input: &str) -> String {
    input.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_token_works_for_its_place_until_replaced_and_briefly_after() {
        let k = Keys::new([1; 32], [2; 32]);
        let place = (Uuid::now_v7(), Uuid::now_v7());
        let t1 = k.new_resume(place.0, place.1);
        assert_eq!(Keys::resume_token_place(&t1.token), Some(place));
        // Resumed with t1: a new token t2; t1 stays good for the window (a lost reply).
        let t2 = k.rotate_resume(place, &t1, &t1.token, 1_000, 90_000).expect("current token");
        assert_ne!(t2.token, t1.token);
        assert!(k.rotate_resume(place, &t2, &t1.token, 91_000, 90_000).is_some(), "replaced, in its window");
        assert!(k.rotate_resume(place, &t2, &t1.token, 91_001, 90_000).is_none(), "replaced, window over");
        // Resumed with t2: t1 is gone at once.
        let t3 = k.rotate_resume(place, &t2, &t2.token, 2_000, 90_000).unwrap();
        assert!(k.rotate_resume(place, &t3, &t1.token, 2_001, 90_000).is_none());
        assert!(k.rotate_resume(place, &t3, &t2.token, 2_001, 90_000).is_some());
        // Another key, a tampered token, no stored hash, junk.
        assert!(Keys::new([1; 32], [3; 32]).rotate_resume(place, &t3, &t3.token, 0, 0).is_none());
        let mut bad = t3.token.clone().into_bytes();
        bad[60] = if bad[60] == b'A' { b'B' } else { b'A' };
        assert!(k.rotate_resume(place, &t3, std::str::from_utf8(&bad).unwrap(), 0, 0).is_none());
        assert!(k.rotate_resume(place, &ResumeKey::default(), &t3.token, 0, 0).is_none());
        for junk in ["garbage", "", &"A".repeat(200)] {
            assert_eq!(Keys::resume_token_place(junk), None);
        }
    }

    #[test]
    fn code_hmac_depends_on_normalized_code_and_secret() {
        let k = Keys::new([1; 32], [2; 32]);
        let a = AccessCode::parse("abcd-efgh").unwrap();
        let b = AccessCode::parse("ABCDEFGH").unwrap();
        assert_eq!(k.code_hmac(&a), k.code_hmac(&b));
        assert_ne!(k.code_hmac(&a), Keys::new([9; 32], [2; 32]).code_hmac(&a));
    }

    #[test]
    fn secrets_persist() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keys::load(dir.path()).unwrap();
        let b = Keys::load(dir.path()).unwrap();
        let (m, p) = (Uuid::now_v7(), Uuid::now_v7());
        let key = a.new_resume(m, p);
        assert!(b.rotate_resume((m, p), &key, &key.token, 0, 0).is_some());
    }

    #[test]
    fn enrollment_codes_normalize() {
        let c = new_enrollment_code();
        assert_eq!(c.len(), 19);
        assert_eq!(normalize_enrollment_code(&c.to_lowercase()), normalize_enrollment_code(&c));
    }
}
