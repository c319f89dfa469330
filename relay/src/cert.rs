//! The relay's TLS identity: a self-signed certificate created on first run
//! (kept in the data dir) or PEM files the clinic provides, and the pin clients
//! check ([`clinicmeet_tls::Pin`]: `sha256/` + base64 of SHA-256 over the
//! certificate's SubjectPublicKeyInfo, so a renewed certificate with the same key
//! keeps its pin).

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::error::RelayError;
use crate::keys::write_private;

/// Certificate chain and private key the relay serves.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Where they came from (for the log).
    pub source: PathBuf,
}

impl Identity {
    pub fn leaf(&self) -> Result<&CertificateDer<'static>, RelayError> {
        self.chain.first().ok_or_else(|| RelayError::Cert("no certificate in the chain".into()))
    }

    /// `sha256/<base64 of SHA-256(SPKI DER)>`.
    pub fn pin(&self) -> Result<String, RelayError> {
        spki_pin(self.leaf()?)
    }

    /// SHA-256 of the whole leaf certificate, as colon-separated hex.
    pub fn fingerprint(&self) -> Result<String, RelayError> {
        Ok(cert_fingerprint(self.leaf()?))
    }
}

/// Computes the pin of a DER certificate.
pub fn spki_pin(cert_der: &[u8]) -> Result<String, RelayError> {
    clinicmeet_tls::Pin::of_certificate(cert_der)
        .map(|pin| pin.to_string())
        .map_err(|_| RelayError::Cert("cannot read the certificate's public key".into()))
}

pub fn cert_fingerprint(cert_der: &[u8]) -> String {
    Sha256::digest(cert_der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/etc/hostname").ok().or_else(|| std::env::var("HOSTNAME").ok())?;
    let h = h.trim().to_string();
    (!h.is_empty()).then_some(h)
}

/// Loads the clinic's PEM certificate chain and key.
pub fn load_pem(cert: &Path, key: &Path) -> Result<Identity, RelayError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| RelayError::Cert(format!("{}: {e}", cert.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RelayError::Cert(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(RelayError::Cert(format!("{}: no certificate found", cert.display())));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| RelayError::Cert(format!("{}: {e}", key.display())))?;
    Ok(Identity { chain, key, source: cert.to_path_buf() })
}

/// Reuses `relay-cert.pem`/`relay-key.pem` in the data dir, or creates them
/// (self-signed; SANs localhost, 127.0.0.1, ::1, the host name and `public_names`).
pub fn load_or_create(data_dir: &Path, public_names: &[String]) -> Result<Identity, RelayError> {
    let cert_path = data_dir.join("relay-cert.pem");
    let key_path = data_dir.join("relay-key.pem");
    if cert_path.exists() && key_path.exists() {
        return load_pem(&cert_path, &key_path);
    }
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(hostname());
    for n in public_names {
        let n = n.trim();
        if !n.is_empty() && !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| RelayError::Cert(e.to_string()))?;
    write_private(&key_path, ck.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, ck.cert.pem()).map_err(|e| RelayError::io(&cert_path, e))?;
    load_pem(&cert_path, &key_path)
}

/// The QUIC server configuration: TLS 1.3 only, ALPN `clinicmeet/1`, keep-alive and idle timeout.
/// Media-related QUIC transport settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTransport {
    /// Path-MTU discovery (quinn's default: on).
    pub mtu_discovery: bool,
    /// Bytes of datagrams quinn may queue per connection before dropping the oldest.
    pub datagram_send_buffer: usize,
}

impl Default for MediaTransport {
    fn default() -> Self {
        MediaTransport { mtu_discovery: true, datagram_send_buffer: 256 * 1024 }
    }
}

/// Datagrams received but not yet read, per connection.
pub const DATAGRAM_RECEIVE_BUFFER: usize = 1024 * 1024;

pub fn quic_server_config(
    id: &Identity,
    keep_alive: std::time::Duration,
    idle_timeout: std::time::Duration,
    media: MediaTransport,
) -> Result<quinn::ServerConfig, RelayError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .map_err(|e| RelayError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![clinicmeet_protocol::ALPN.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| RelayError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(std::sync::Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(keep_alive));
    transport.max_idle_timeout(Some(
        idle_timeout.try_into().map_err(|_| RelayError::Config("idle timeout too large".into()))?,
    ));
    // One control stream per connection: a second is not granted while it is open.
    // The control stream and up to MAX_TRANSFERS_PER_CONNECTION attachment transfers.
    transport.max_concurrent_bidi_streams(
        (1 + clinicmeet_protocol::transfer::MAX_TRANSFERS_PER_CONNECTION).into(),
    );
    transport.max_concurrent_uni_streams(0u32.into());
    // Delay-based (crate::cc): ignores random loss, closes on queueing delay.
    // NewReno/Cubic halve the window at 5 % loss, and quinn's BBR stays in loss
    // recovery (window capped at the bytes in flight) on such a path.
    transport.congestion_controller_factory(std::sync::Arc::new(crate::cc::DelayBasedFactory));
    // Jitter reorders packets; quinn's defaults (3 packets, 9/8 RTT) would declare
    // many of them lost (and count spurious persistent congestion).
    transport.packet_threshold(16);
    transport.time_threshold(2.0);
    transport.datagram_send_buffer_size(media.datagram_send_buffer);
    transport.datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER));
    if !media.mtu_discovery {
        transport.mtu_discovery_config(None);
    }
    config.transport_config(std::sync::Arc::new(transport));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_of_generated_cert_matches_key_and_survives_reload() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        assert_eq!(
            clinicmeet_tls::spki_of_certificate(ck.cert.der()).unwrap(),
            rcgen::PublicKeyData::subject_public_key_info(&ck.signing_key).as_slice()
        );
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), &["relay.clinic.example".into()]).unwrap();
        let b = load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(a.pin().unwrap(), b.pin().unwrap());
        assert!(a.pin().unwrap().starts_with("sha256/"));
        assert_eq!(a.fingerprint().unwrap().len(), 32 * 3 - 1);
    }

    #[test]
    fn renewed_cert_with_same_key_keeps_pin() {
        let key = rcgen::KeyPair::generate().unwrap();
        let c1 =
            rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap().self_signed(&key).unwrap();
        let c2 =
            rcgen::CertificateParams::new(vec!["b.example".to_string()]).unwrap().self_signed(&key).unwrap();
        assert_ne!(cert_fingerprint(c1.der()), cert_fingerprint(c2.der()));
        assert_eq!(spki_pin(c1.der()).unwrap(), spki_pin(c2.der()).unwrap());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(spki_pin(b"").is_err());
        assert!(spki_pin(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(spki_pin(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_err());
    }
}
