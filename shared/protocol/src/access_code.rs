//! Meeting access codes: 8 characters from a 32-letter alphabet without the
//! look-alikes 0/O and 1/I, shown as `ABCD-EFGH`. 32^8 ≈ 1.1·10^12 codes (40 bits).
//!
//! The first [`BUCKET_CHARS`] characters (10 bits) are the code's *bucket*: the
//! relay picks it when it creates a code (the least used one) and counts wrong
//! guesses per bucket, so guessing at one meeting cannot use up the budget of
//! the others. The remaining 6 characters (30 bits) are the secret, drawn from
//! the operating system's CSPRNG.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Letters and digits used in codes: no 0, O, 1 or I.
pub const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Number of significant characters in a code.
pub const CODE_LEN: usize = 8;
/// Leading characters of a code that name its bucket (not secret).
pub const BUCKET_CHARS: usize = 2;
/// Number of buckets: 32^2 = 1024.
pub const BUCKETS: u16 = 1024;

/// A normalized access code (8 upper-case characters from [`ALPHABET`], no dash).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccessCode([u8; CODE_LEN]);

/// Why a string is not an access code. Deliberately coarse: the relay answers
/// every bad code with one `invalid_code` error anyway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an access code has 8 letters or digits, like ABCD-EFGH")]
pub struct InvalidAccessCode;

impl AccessCode {
    /// A fresh random code.
    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut code = [0u8; CODE_LEN];
        for c in &mut code {
            *c = ALPHABET[rng.random_range(0..ALPHABET.len())];
        }
        AccessCode(code)
    }

    /// A fresh code from the operating system's random source.
    pub fn random() -> Self {
        Self::generate(&mut rand::rng())
    }

    /// A fresh code in `bucket` (taken modulo [`BUCKETS`]); the other 30 bits random.
    pub fn generate_in_bucket<R: Rng + ?Sized>(rng: &mut R, bucket: u16) -> Self {
        let mut code = Self::generate(rng).0;
        let b = usize::from(bucket % BUCKETS);
        code[0] = ALPHABET[b / 32];
        code[1] = ALPHABET[b % 32];
        AccessCode(code)
    }

    /// The bucket (0..1024) named by the first two characters.
    pub fn bucket(&self) -> u16 {
        let idx = |c: u8| ALPHABET.iter().position(|&a| a == c).unwrap_or(0) as u16;
        idx(self.0[0]) * 32 + idx(self.0[1])
    }

    /// Parses user input: any case, with or without the dash, surrounding
    /// spaces ignored. Look-alikes are *not* silently mapped (O→0 is not in the alphabet).
    pub fn parse(input: &str) -> Result<Self, InvalidAccessCode> {
        let mut code = [0u8; CODE_LEN];
        let mut n = 0;
        for ch in input.trim().chars() {
            if ch == '-' || ch == ' ' {
                continue;
            }
            let up = ch.to_ascii_uppercase();
            if !up.is_ascii() || !ALPHABET.contains(&(up as u8)) || n == CODE_LEN {
                return Err(InvalidAccessCode);
            }
            code[n] = up as u8;
            n += 1;
        }
        if n != CODE_LEN {
            return Err(InvalidAccessCode);
        }
        Ok(AccessCode(code))
    }

    /// The 8 characters without the dash (the form that is hashed and stored).
    pub fn normalized(&self) -> &str {
        // Only ALPHABET bytes are ever stored, all ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for AccessCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.normalized();
        write!(f, "{}-{}", &s[..4], &s[4..])
    }
}

impl fmt::Debug for AccessCode {
    // Codes are secrets: keep them out of debug output and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessCode(****-****)")
    }
}

impl FromStr for AccessCode {
    type Err = InvalidAccessCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for AccessCode {
    type Error = InvalidAccessCode;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AccessCode> for String {
    fn from(c: AccessCode) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_variants() {
        let c = AccessCode::parse("ABCD-EFGH").unwrap();
        assert_eq!(c.to_string(), "ABCD-EFGH");
        assert_eq!(AccessCode::parse("abcdefgh").unwrap(), c);
        assert_eq!(AccessCode::parse("  abcd efgh ").unwrap(), c);
        assert_eq!(AccessCode::parse("aBcD-eFgH").unwrap(), c);
        assert_eq!(c.normalized(), "ABCDEFGH");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in
            ["", "ABCD-EFG", "ABCD-EFGHJ", "ABCD-EFG0", "OBCD-EFGH", "ABCD-EFG1", "IBCDEFGH", "ÄBCDEFGH"]
        {
            assert_eq!(AccessCode::parse(bad), Err(InvalidAccessCode), "{bad}");
        }
    }

    #[test]
    fn debug_hides_code() {
        let c = AccessCode::parse("ABCD-EFGH").unwrap();
        assert!(!format!("{c:?}").contains("ABCD"));
    }

    #[test]
    fn random_codes_use_the_alphabet_and_differ() {
        let a = AccessCode::random();
        let b = AccessCode::random();
        assert_ne!(a, b);
        assert!(a.normalized().bytes().all(|b| ALPHABET.contains(&b)));
    }

    #[test]
    fn bucket_is_the_first_two_characters_and_generation_keeps_it() {
        assert_eq!(AccessCode::parse("AAAA-AAAA").unwrap().bucket(), 0);
        assert_eq!(AccessCode::parse("BAAA-AAAA").unwrap().bucket(), 32);
        assert_eq!(AccessCode::parse("99ZZ-ZZZZ").unwrap().bucket(), 1023);
        let mut rng = rand::rng();
        for b in [0u16, 1, 31, 32, 500, 1023] {
            let c = AccessCode::generate_in_bucket(&mut rng, b);
            assert_eq!(c.bucket(), b);
            assert!(c.normalized().bytes().all(|b| ALPHABET.contains(&b)));
        }
        assert_eq!(AccessCode::generate_in_bucket(&mut rng, 1024 + 7).bucket(), 7);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = AccessCode::parse(&s);
        }

        #[test]
        fn roundtrip(idx in proptest::collection::vec(0usize..32, 8)) {
            let s: String = idx.iter().map(|&i| ALPHABET[i] as char).collect();
            let c = AccessCode::parse(&s).unwrap();
            prop_assert_eq!(AccessCode::parse(&c.to_string()).unwrap(), c);
        }
    }
}
