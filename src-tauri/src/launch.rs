//! What the app was opened with: a `clinicmeet://join/ABCD-EFGH?relay=host:port&pin=sha256/…`
//! invite link (deep link), or `CLINICMEET_RELAY` / `CLINICMEET_PIN` in the environment
//! (pre-fill the first-run screen, as `scripts/run.sh` does).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{AppError, Result};
use crate::pin;

/// The URL scheme the app registers.
pub const SCHEME: &str = "clinicmeet";

/// A relay as the UI knows it (`RelayConfig` in `ui/src/engine/engine.ts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RelayConfig {
    /// `host:port`.
    pub address: String,
    /// `sha256/<base64>` (hex accepted on input).
    pub pin: String,
}

/// An invite: the meeting code and, when the link names it, the relay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, TS)]
pub struct Invite {
    /// `ABCD-EFGH`.
    pub code: Option<String>,
    pub relay: Option<RelayConfig>,
}

/// Checks a relay address: `host:port` with a numeric port, no spaces or paths.
pub fn check_address(address: &str) -> Result<String> {
    let a = address.trim();
    let bad = || AppError::invalid_input("The server address must look like relay.clinic.example:4433.");
    let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() || a.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    Ok(a.to_string())
}

/// Parses `clinicmeet://join/ABCD-EFGH[?relay=HOST:PORT&pin=PIN]` (or an invite secret in place of the code).
pub fn parse_deep_link(link: &str) -> Result<Invite> {
    let bad = |why: &str| AppError::invalid_input(format!("Not a ClinicMeet invite link: {why}."));
    let url = url::Url::parse(link.trim()).map_err(|_| bad("unreadable"))?;
    if url.scheme() != SCHEME || url.host_str() != Some("join") {
        return Err(bad("expected clinicmeet://join/CODE"));
    }
    let raw_code = url.path().trim_matches('/');
    let code =
        crate::engine::join_secret_text(raw_code).ok_or_else(|| bad("the meeting code is not valid"))?;
    let (mut relay, mut pin_raw) = (None, None);
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "relay" => relay = Some(v.into_owned()),
            // A `+` of base64 left unescaped in a query string reads as a space.
            "pin" => pin_raw = Some(v.replace(' ', "+")),
            _ => {}
        }
    }
    let relay = match (relay, pin_raw) {
        (Some(a), Some(p)) => Some(RelayConfig { address: check_address(&a)?, pin: pin::normalize(&p)? }),
        (None, None) => None,
        _ => return Err(bad("relay and pin go together")),
    };
    Ok(Invite { code: Some(code), relay })
}

/// The relay named by `CLINICMEET_RELAY` / `CLINICMEET_PIN`, when both are set and valid.
pub fn relay_from_env(address: Option<String>, pin_value: Option<String>) -> Option<RelayConfig> {
    let address = check_address(&address?).ok()?;
    let pin = pin::normalize(&pin_value?).ok()?;
    Some(RelayConfig { address, pin })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn full_invite_link() {
        let link = format!("clinicmeet://join/abcd-efgh?relay=relay.clinic.example:4433&pin={PIN}");
        let inv = parse_deep_link(&link).unwrap();
        assert_eq!(inv.code.as_deref(), Some("ABCD-EFGH"));
        let relay = inv.relay.unwrap();
        assert_eq!((relay.address.as_str(), relay.pin.as_str()), ("relay.clinic.example:4433", PIN));
        // Percent-encoded pin, trailing slash, no relay.
        let enc = PIN.replace('/', "%2F").replace('=', "%3D");
        assert_eq!(
            parse_deep_link(&format!("clinicmeet://join/ABCD-EFGH/?relay=h:1&pin={enc}"))
                .unwrap()
                .relay
                .unwrap()
                .pin,
            PIN
        );
        assert_eq!(
            parse_deep_link("clinicmeet://join/ABCDEFGH").unwrap(),
            Invite { code: Some("ABCD-EFGH".into()), relay: None }
        );
        // An invite link's 26-character secret in place of the code.
        assert_eq!(
            parse_deep_link("clinicmeet://join/abcdefghjkmnpqrstuvwxyz234").unwrap(),
            Invite { code: Some("ABCDEFGHJKMNPQRSTUVWXYZ234".into()), relay: None }
        );
    }

    #[test]
    fn bad_links_are_refused() {
        for bad in [
            "https://join/ABCD-EFGH",
            "clinicmeet://meet/ABCD-EFGH",
            "clinicmeet://join/ABC",
            "clinicmeet://join/ABCD-EFGH?relay=h:1",
            "clinicmeet://join/ABCD-EFGH?relay=nope&pin=sha256/AAAA",
            "clinicmeet://join/ABCD-EFGH?relay=h:1&pin=sha256/AAAA",
            "not a url",
        ] {
            assert_eq!(parse_deep_link(bad).unwrap_err().code, "invalid_input", "{bad}");
        }
    }

    #[test]
    fn env_prefill_needs_both_values() {
        assert_eq!(
            relay_from_env(Some("127.0.0.1:4433".into()), Some(PIN.into())),
            Some(RelayConfig { address: "127.0.0.1:4433".into(), pin: PIN.into() })
        );
        assert_eq!(relay_from_env(Some("127.0.0.1:4433".into()), None), None);
        assert_eq!(relay_from_env(Some("nohost".into()), Some(PIN.into())), None);
        assert!(check_address("[::1]:4433").is_ok());
    }
}
