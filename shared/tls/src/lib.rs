//! The relay key pin, one contract for the relay that prints it and the clients
//! that check it.
//!
//! A pin is `sha256/` followed by the standard base64 of the SHA-256 over the
//! certificate's SubjectPublicKeyInfo (the whole DER element). It names the key,
//! not the certificate: a renewed certificate with the same key keeps its pin.
//!
//! [`PinVerifier`] accepts exactly the server whose certificate has the pinned
//! key, and still verifies the TLS handshake signatures with that key, so only
//! the holder of the pinned private key passes.

use std::sync::{Arc, Mutex};

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

const PIN_PREFIX: &str = "sha256/";

/// A relay key pin: SHA-256 over the certificate's SubjectPublicKeyInfo DER.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pin([u8; 32]);

impl Pin {
    /// Parses `sha256/<standard base64 of 32 bytes>` (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Result<Pin, InvalidPin> {
        let invalid = || InvalidPin(s.to_string());
        let b64 = s.trim().strip_prefix(PIN_PREFIX).ok_or_else(invalid)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| invalid())?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
        Ok(Pin(arr))
    }

    /// The pin of a certificate (DER).
    pub fn of_certificate(cert_der: &[u8]) -> Result<Pin, rustls::Error> {
        let spki = spki_of_certificate(cert_der)
            .ok_or_else(|| rustls::Error::General("relay certificate is not readable X.509".into()))?;
        Ok(Pin::of_spki(spki))
    }

    /// The pin of a SubjectPublicKeyInfo (DER).
    pub fn of_spki(spki_der: &[u8]) -> Pin {
        Pin(Sha256::digest(spki_der).into())
    }
}

/// A string that is not `sha256/<base64 of 32 bytes>` (the string as given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPin(pub String);

impl std::fmt::Display for InvalidPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid pin `{}`: expected {PIN_PREFIX}<base64 of 32 bytes>", self.0)
    }
}

impl std::error::Error for InvalidPin {}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PIN_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// One DER TLV at the start of the input: (tag, whole element, content, rest of input).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn der_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    let content = whole.get(header..)?;
    Some((tag, whole, content, input.get(end..)?))
}

/// The SubjectPublicKeyInfo (whole DER element) of an X.509 certificate.
pub fn spki_of_certificate(cert: &[u8]) -> Option<&[u8]> {
    const SEQ: u8 = 0x30;
    let (tag, _, cert_body, _) = der_tlv(cert)?;
    if tag != SEQ {
        return None;
    }
    let (tag, _, mut tbs, _) = der_tlv(cert_body)?;
    if tag != SEQ {
        return None;
    }
    // [0] version (optional), serial, signature algorithm, issuer, validity, subject, SPKI
    if tbs.first() == Some(&0xA0) {
        tbs = der_tlv(tbs)?.3;
    }
    for expected in [0x02, SEQ, SEQ, SEQ, SEQ] {
        let (tag, _, _, rest) = der_tlv(tbs)?;
        if tag != expected {
            return None;
        }
        tbs = rest;
    }
    let (tag, spki, _, _) = der_tlv(tbs)?;
    (tag == SEQ).then_some(spki)
}

/// Where the pin a relay presented is recorded when it does not match.
pub type MismatchSlot = Arc<Mutex<Option<String>>>;

/// Accepts exactly the server whose certificate key matches the pin, and
/// checks its handshake signatures. Remembers a mismatch for a clear error.
#[derive(Debug)]
pub struct PinVerifier {
    pin: Pin,
    provider: Arc<CryptoProvider>,
    mismatch: MismatchSlot,
}

impl PinVerifier {
    pub fn new(pin: Pin, provider: Arc<CryptoProvider>) -> Self {
        PinVerifier { pin, provider, mismatch: Arc::new(Mutex::new(None)) }
    }

    /// Where the pin the relay actually presented is recorded on mismatch.
    pub fn mismatch_slot(&self) -> MismatchSlot {
        self.mismatch.clone()
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = Pin::of_certificate(end_entity.as_ref())?;
        if actual == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            let actual = actual.to_string();
            if let Ok(mut slot) = self.mismatch.lock() {
                *slot = Some(actual.clone());
            }
            Err(rustls::Error::General(format!(
                "relay certificate pin mismatch: expected {}, relay presented {actual}",
                self.pin
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    #[test]
    fn pin_roundtrip_and_errors() {
        let p = Pin::of_spki(b"key");
        assert_eq!(Pin::parse(&p.to_string()).unwrap(), p);
        assert!(p.to_string().starts_with("sha256/"));
        for bad in ["", "sha256/", "sha1/abcd", "sha256/!!!", "sha256/AAAA"] {
            assert_eq!(Pin::parse(bad), Err(InvalidPin(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn spki_matches_rcgen_key() {
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let params =
                rcgen::CertificateParams::new(vec!["relay.local".into(), "127.0.0.1".into()]).unwrap();
            let cert = params.self_signed(&key).unwrap();
            let spki = spki_of_certificate(cert.der()).unwrap();
            assert_eq!(spki, key.subject_public_key_info().as_slice());
            assert_eq!(
                Pin::of_certificate(cert.der()).unwrap(),
                Pin::of_spki(&key.subject_public_key_info())
            );
        }
    }

    #[test]
    fn garbage_certificates_are_errors_not_panics() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        for cut in 0..der.len() {
            let _ = spki_of_certificate(&der[..cut]);
        }
        for (i, b) in [0x00u8, 0xff, 0x84, 0x30].iter().enumerate() {
            let mut d = der.clone();
            d[1 + i] = *b;
            let _ = spki_of_certificate(&d);
        }
        assert!(spki_of_certificate(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(Pin::of_certificate(b"not a cert").is_err());
    }
}
