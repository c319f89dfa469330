//! The response headers of the guest page's HTTPS side, in one place: the
//! security headers every response carries ([`secure`]) and the caching policy
//! ([`cache`]).
//!
//! The Content-Security-Policy is as strict as the built page allows (checked
//! in Chromium by the browser e2e tests, which fail on any CSP violation): the
//! page is one module script and one stylesheet from `assets/`, no inline
//! script or `<style>` (Solid sets styles through the CSSOM, which CSP does not
//! govern); `data:` images only for the page's empty `data:,` favicon; its only
//! connections are `/invite-info` and the WebSocket to its own origin (CSP 3
//! `'self'` matches `wss:` to the same host); media elements take WebRTC
//! streams through `srcObject`, which CSP does not govern.

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'";

/// Camera and microphone for the page itself; nothing for frames, nothing else it does not use.
pub const PERMISSIONS: &str =
    "camera=(self), microphone=(self), display-capture=(), geolocation=(), payment=(), usb=()";

/// Every response's security headers.
pub const SECURITY: [(HeaderName, &str); 6] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (HeaderName::from_static("permissions-policy"), PERMISSIONS),
];

/// Files named with a content hash never change under that name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else (the page itself, `/invite-info`, errors) is revalidated on each use.
pub const NO_CACHE: &str = "no-cache";

/// Length of the content hash Vite (Rollup) puts in output file names.
const HASH_LEN: usize = 8;

/// `router` with [`SECURITY`] set on every response (replacing any a handler set).
pub fn secure(mut router: Router) -> Router {
    for (name, value) in SECURITY {
        router = router.layer(SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value)));
    }
    router
}

/// Middleware: `Cache-Control` [`IMMUTABLE`] on a hashed asset served (200, 206, 304), else [`NO_CACHE`].
pub async fn cache(req: Request, next: Next) -> Response {
    let hashed = is_hashed_asset(req.uri().path());
    let mut res = next.run(req).await;
    let served = res.status().is_success() || res.status() == StatusCode::NOT_MODIFIED;
    let value = if hashed && served { IMMUTABLE } else { NO_CACHE };
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    res
}

/// `/assets/NAME-HASH.EXT…` as Vite writes it (`assets/guest-CDIXSRF_.js`, `….js.map`):
/// HASH is [`HASH_LEN`] URL-safe base64 characters.
pub fn is_hashed_asset(path: &str) -> bool {
    let Some(file) = path.strip_prefix("/assets/") else { return false };
    let Some((stem, _ext)) = file.split_once('.') else { return false };
    // Bytes, not chars: no slicing inside a multi-byte character.
    let stem = stem.as_bytes();
    let Some(cut) = stem.len().checked_sub(HASH_LEN + 1).filter(|&c| c > 0) else { return false };
    !file.contains('/')
        && stem.get(cut) == Some(&b'-')
        && stem
            .get(cut + 1..)
            .unwrap_or_default()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vites_hashed_output_is_immutable() {
        assert!(is_hashed_asset("/assets/guest-CDIXSRF_.js"));
        assert!(is_hashed_asset("/assets/styles-DGomc_Hg.css"));
        assert!(is_hashed_asset("/assets/styles-DBXOUdnK.js.map"));
        assert!(is_hashed_asset("/assets/my-page-a-b_C1d2.js"), "dashes in name and hash");
        assert!(!is_hashed_asset("/guest.html"));
        assert!(!is_hashed_asset("/assets/logo.svg"));
        assert!(!is_hashed_asset("/assets/-CDIXSRF_.js"), "no name");
        assert!(!is_hashed_asset("/assets/guest-CDIXSRF.js"), "7 characters");
        assert!(!is_hashed_asset("/assets/guest-CDIX%RF_.js"));
        assert!(!is_hashed_asset("/assets/sub/guest-CDIXSRF_.js"));
        assert!(!is_hashed_asset("/other/guest-CDIXSRF_.js"));
        assert!(!is_hashed_asset("/assets/guest-CDIXSRF_"), "no extension");
        assert!(is_hashed_asset("/assets/é-CDIXSRF_.js") && !is_hashed_asset("/assets/-CDIXSRé.js"));
    }
}
