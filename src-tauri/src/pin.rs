//! Relay key pins as people type them: the relay prints `sha256/<base64>`;
//! administrators may also read out the hash as hex (`5f:3a:…`). Both become
//! the client's `sha256/<base64>` form.

use base64::Engine as _;
use clinicmeet_client::tls::Pin;

use crate::error::{AppError, Result};

/// Normalizes a pin to `sha256/<base64>` (checked: 32 bytes).
pub fn normalize(input: &str) -> Result<String> {
    let s = input.trim();
    let candidate = if s.starts_with("sha256/") {
        s.to_string()
    } else {
        let hex: String = s.chars().filter(|c| !matches!(c, ':' | ' ' | '-')).collect();
        let bytes = decode_hex(&hex).ok_or_else(invalid)?;
        format!("sha256/{}", base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    Pin::parse(&candidate).map_err(|_| invalid())?;
    Ok(candidate)
}

fn invalid() -> AppError {
    AppError::invalid_input("The key fingerprint is not valid: expected sha256/… as the server prints it.")
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const B64: &str = "sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn accepts_base64_and_hex_forms() {
        let b64 = B64.to_string();
        assert_eq!(normalize(&format!("  {b64} ")).unwrap(), b64);
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(b64.trim_start_matches("sha256/")).unwrap();
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(normalize(&hex.join(":")).unwrap(), b64);
        assert_eq!(normalize(&hex.concat().to_lowercase()).unwrap(), b64);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "sha256/", "sha256/AAAA", "5f:3a", "zz".repeat(32).as_str(), "é".repeat(64).as_str()]
        {
            assert_eq!(normalize(bad).unwrap_err().code, "invalid_input", "{bad}");
        }
    }
}
