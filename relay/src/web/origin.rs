//! Whose pages may open the guest WebSocket: the relay's own origins only,
//! against cross-site WebSocket hijacking (browsers send cookies and client
//! certificates with a WebSocket from any page, and CORS does not apply to it;
//! the `Origin` header is the browser's word on which page asks). Sans-IO.
//!
//! An `Origin` is the relay's own when it is `https://` followed by the `Host`
//! the request was sent to (what the browser's address bar shows for the guest
//! page; `:443` is the same as no port), or by one of the relay's public names
//! (`--public-name`, e.g. behind a reverse proxy that rewrites `Host`) with no
//! port or the HTTPS port. A request without `Origin` is not from a browser page
//! (browsers always send it on WebSocket handshakes) and is allowed: command-line
//! clients and the tests need no pretence.

/// The relay's configured own origins: `https://NAME` and `https://NAME:PORT` for each public name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(Vec<String>);

impl Origins {
    pub fn new(public_names: &[String], https_port: u16) -> Origins {
        let mut all = Vec::new();
        for name in public_names {
            let host = if name.contains(':') && !name.starts_with('[') {
                format!("[{name}]") // an IPv6 address as it appears in a URL
            } else {
                name.clone()
            };
            all.push(normalize(&format!("https://{host}")));
            all.push(normalize(&format!("https://{host}:{https_port}")));
        }
        Origins(all)
    }

    /// Whether a request to `host` (its `Host` header) carrying `origin` may upgrade.
    pub fn allow(&self, origin: Option<&[u8]>, host: Option<&[u8]>) -> bool {
        let Some(origin) = origin else { return true };
        let Ok(origin) = std::str::from_utf8(origin) else { return false };
        let origin = normalize(origin);
        let own = host.and_then(|h| std::str::from_utf8(h).ok()).map(|h| normalize(&format!("https://{h}")));
        own.as_deref() == Some(origin.as_str()) || self.0.contains(&origin)
    }
}

/// Lower case, without the default port.
fn normalize(origin: &str) -> String {
    let o = origin.trim().to_ascii_lowercase();
    match o.strip_suffix(":443") {
        Some(bare) => bare.to_string(),
        None => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(o: &Origins, origin: Option<&str>, host: &str) -> bool {
        o.allow(origin.map(str::as_bytes), Some(host.as_bytes()))
    }

    #[test]
    fn only_the_relays_own_origins_may_open_the_websocket() {
        let none = Origins::default();
        assert!(allow(&none, Some("https://127.0.0.1:8443"), "127.0.0.1:8443"));
        assert!(allow(&none, Some("https://Meet.Clinic.example"), "meet.clinic.example:443"));
        assert!(allow(&none, Some("https://[::1]:8443"), "[::1]:8443"));
        assert!(allow(&none, None, "127.0.0.1:8443"), "no Origin: not a browser page");
        assert!(!allow(&none, Some("https://evil.example"), "127.0.0.1:8443"));
        assert!(!allow(&none, Some("http://127.0.0.1:8443"), "127.0.0.1:8443"), "not https");
        assert!(!allow(&none, Some("https://127.0.0.1:9999"), "127.0.0.1:8443"), "another port");
        assert!(!allow(&none, Some("null"), "127.0.0.1:8443"));
        assert!(!none.allow(Some(b"https://x"), None), "no Host, no public name");
        assert!(!none.allow(Some(b"\xff"), Some(b"x")));

        let named = Origins::new(&["meet.clinic.example".into(), "2001:db8::1".into()], 8443);
        assert!(allow(&named, Some("https://meet.clinic.example"), "10.0.0.2:8443"), "behind a proxy");
        assert!(allow(&named, Some("https://meet.clinic.example:8443"), "10.0.0.2:8443"));
        assert!(allow(&named, Some("https://[2001:db8::1]:8443"), "10.0.0.2:8443"));
        assert!(!allow(&named, Some("https://meet.clinic.example:8080"), "10.0.0.2:8443"));
        assert!(!allow(&named, Some("https://evil.example"), "10.0.0.2:8443"));
    }
}
