//! What a join request's `access_code` field may hold: the 8-character
//! [`AccessCode`] people type, or the long [`InviteSecret`] an invite link
//! carries (26 characters of the same alphabet, 130 bits). The two are told
//! apart by length alone, after dashes and spaces are dropped, so one string
//! field on the wire carries both and [`JoinSecret::parse`] is the one typed
//! reading of it. Parsing never panics on any input.
//!
//! An invite secret is too long to guess (2^130), so the relay checks it
//! without the per-bucket guess budget that protects the short codes.

use std::fmt;

use rand::Rng;

use crate::access_code::{AccessCode, InvalidAccessCode, ALPHABET};

/// Number of characters of an invite secret: 26 × 5 bits = 130 bits.
pub const INVITE_LEN: usize = 26;

/// The long secret of an invite link (upper-case characters from [`ALPHABET`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct InviteSecret([u8; INVITE_LEN]);

impl InviteSecret {
    /// A fresh secret from `rng` (the relay passes the operating system's CSPRNG).
    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut s = [0u8; INVITE_LEN];
        for c in &mut s {
            *c = ALPHABET[rng.random_range(0..ALPHABET.len())];
        }
        InviteSecret(s)
    }

    /// A fresh secret from the operating system's random source.
    pub fn random() -> Self {
        Self::generate(&mut rand::rng())
    }

    /// The 26 characters (the form that is hashed, stored and put in links).
    pub fn as_str(&self) -> &str {
        // Only ALPHABET bytes are ever stored, all ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for InviteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for InviteSecret {
    // A secret: keep it out of debug output and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteSecret(****)")
    }
}

/// A join request's secret, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinSecret {
    Code(AccessCode),
    Invite(InviteSecret),
}

impl JoinSecret {
    /// Reads user input or a link fragment: any case, dashes and spaces ignored;
    /// 8 characters are a code, 26 an invite secret, anything else is invalid.
    pub fn parse(input: &str) -> Result<Self, InvalidAccessCode> {
        let mut buf = [0u8; INVITE_LEN];
        let mut n = 0;
        for ch in input.trim().chars() {
            if ch == '-' || ch == ' ' {
                continue;
            }
            let up = ch.to_ascii_uppercase();
            if !up.is_ascii() || !ALPHABET.contains(&(up as u8)) || n == INVITE_LEN {
                return Err(InvalidAccessCode);
            }
            buf[n] = up as u8;
            n += 1;
        }
        match n {
            INVITE_LEN => Ok(JoinSecret::Invite(InviteSecret(buf))),
            crate::access_code::CODE_LEN => {
                let s = std::str::from_utf8(&buf[..n]).map_err(|_| InvalidAccessCode)?;
                AccessCode::parse(s).map(JoinSecret::Code)
            }
            _ => Err(InvalidAccessCode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn eight_characters_are_a_code_twenty_six_an_invite() {
        assert_eq!(
            JoinSecret::parse("abcd-efgh").unwrap(),
            JoinSecret::Code(AccessCode::parse("ABCDEFGH").unwrap())
        );
        let invite = InviteSecret::random();
        assert_eq!(invite.as_str().len(), INVITE_LEN);
        assert_eq!(JoinSecret::parse(invite.as_str()).unwrap(), JoinSecret::Invite(invite.clone()));
        let lower = invite.as_str().to_lowercase();
        assert_eq!(JoinSecret::parse(&lower).unwrap(), JoinSecret::Invite(invite.clone()));
        for bad in ["", "ABCDEFG", "ABCDEFGHJ", &invite.as_str()[..25], &format!("{invite}A"), "ABCD-EFG0"] {
            assert_eq!(JoinSecret::parse(bad), Err(InvalidAccessCode), "{bad}");
        }
    }

    #[test]
    fn invite_secrets_differ_and_hide_in_debug() {
        let a = InviteSecret::random();
        assert_ne!(a, InviteSecret::random());
        assert!(!format!("{a:?}").contains(a.as_str()));
        assert!(a.as_str().bytes().all(|b| ALPHABET.contains(&b)));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = JoinSecret::parse(&s);
        }
    }
}
