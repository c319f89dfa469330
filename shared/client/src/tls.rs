//! TLS for the relay connection: either pin the relay's key (see
//! [`clinicmeet_tls`]: `sha256/` + base64 of the SHA-256 of the certificate's
//! SubjectPublicKeyInfo, as the relay prints it) or verify the certificate chain
//! against the web PKI roots.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use clinicmeet_tls::PinVerifier;
pub use clinicmeet_tls::{MismatchSlot, Pin};

use crate::error::{ClientError, Result};

/// How the client decides to trust the relay.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The relay's key pin (self-signed relays).
    Pin(Pin),
    /// Web PKI roots (a relay with a certificate from a public CA), plus extra roots (DER).
    WebPki { extra_roots: Vec<CertificateDer<'static>> },
}

/// A rustls client configuration for the relay (TLS 1.3 only, our ALPN), and
/// where a pin mismatch gets recorded.
pub fn client_config(trust: &Trust) -> Result<(rustls::ClientConfig, Option<MismatchSlot>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let (mut cfg, slot) = match trust {
        Trust::Pin(pin) => {
            let v = PinVerifier::new(*pin, provider);
            let slot = v.mismatch_slot();
            let cfg = builder.dangerous().with_custom_certificate_verifier(Arc::new(v)).with_no_client_auth();
            (cfg, Some(slot))
        }
        Trust::WebPki { extra_roots } => {
            let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            for r in extra_roots {
                roots.add(r.clone()).map_err(|e| ClientError::Tls(format!("bad extra root: {e}")))?;
            }
            (builder.with_root_certificates(roots).with_no_client_auth(), None)
        }
    };
    cfg.alpn_protocols = vec![clinicmeet_protocol::ALPN.to_vec()];
    Ok((cfg, slot))
}
