//! Secrets kept in the data directory and what is derived from them:
//! access-code HMACs, signed resume tokens, hashed device credentials and
//! enrollment codes.

use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clinicmeet_protocol::{AccessCode, InviteSecret, MeetingId, ParticipantId};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::RelayError;

type HmacSha256 = Hmac<Sha256>;

/// The relay's two secrets: one keys the access-code HMAC, one signs resume tokens.
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

    /// A resume token: base64url(meeting id ‖ participant id ‖ HMAC of both).
    pub fn resume_token(&self, meeting: MeetingId, participant: ParticipantId) -> String {
        let mut payload = Vec::with_capacity(64);
        payload.extend_from_slice(meeting.as_bytes());
        payload.extend_from_slice(participant.as_bytes());
        let mut mac = HmacSha256::new_from_slice(&self.resume_key).expect("HMAC takes any key length");
        mac.update(&payload);
        payload.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(payload)
    }

    /// Checks a resume token's signature; returns (meeting, participant).
    pub fn verify_resume_token(&self, token: &str) -> Option<(MeetingId, ParticipantId)> {
        if token.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        if bytes.len() != 64 {
            return None;
        }
        let (payload, tag) = bytes.split_at(32);
        let mut mac = HmacSha256::new_from_slice(&self.resume_key).ok()?;
        mac.update(payload);
        mac.verify_slice(tag).ok()?;
        let meeting = Uuid::from_slice(payload.get(..16)?).ok()?;
        let participant = Uuid::from_slice(payload.get(16..)?).ok()?;
        Some((meeting, participant))
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
    fn resume_tokens_verify_and_resist_tampering() {
        let k = Keys::new([1; 32], [2; 32]);
        let (m, p) = (Uuid::now_v7(), Uuid::now_v7());
        let t = k.resume_token(m, p);
        assert_eq!(k.verify_resume_token(&t), Some((m, p)));
        let other = Keys::new([1; 32], [3; 32]);
        assert_eq!(other.verify_resume_token(&t), None, "other key");
        let mut bad = t.clone().into_bytes();
        bad[5] = if bad[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(k.verify_resume_token(std::str::from_utf8(&bad).unwrap()), None);
        assert_eq!(k.verify_resume_token("garbage"), None);
        assert_eq!(k.verify_resume_token(""), None);
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
        assert_eq!(b.verify_resume_token(&a.resume_token(m, p)), Some((m, p)));
    }

    #[test]
    fn enrollment_codes_normalize() {
        let c = new_enrollment_code();
        assert_eq!(c.len(), 19);
        assert_eq!(normalize_enrollment_code(&c.to_lowercase()), normalize_enrollment_code(&c));
    }
}
