//! Sans-IO pieces of sharing one UDP port and one TCP port among all browser
//! guests (the I/O is in [`super::mux`]):
//!
//! * [`stun_username`]: the USERNAME of a STUN message (RFC 5389 §15.3). A
//!   browser's connectivity check to the relay carries `relay-ufrag:browser-ufrag`,
//!   and the relay's ufrag, unique per peer connection, says whose it is.
//! * [`Demux`]: which peer connection a datagram belongs to — by the ufrag of a
//!   STUN check whose MESSAGE-INTEGRITY checks out with that peer connection's
//!   ICE password ([`integrity_ok`]), then by the remote address that check came
//!   from (DTLS, SRTP and later checks from that address follow it). A check
//!   that merely names a ufrag (anyone who saw it could) re-binds nothing.
//! * [`advertise`]: rewrites the answer's candidates to the shared ports (the
//!   `webrtc` crate only knows the per-connection addresses it thinks it bound),
//!   with the public address behind 1:1 NAT, and drops active TCP candidates (the
//!   relay only accepts).
//! * [`frame_len`]: RFC 4571 framing of ICE over TCP (RFC 6544): a 16-bit length
//!   before each STUN/DTLS/SRTP packet.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// STUN's magic cookie (RFC 5389 §6).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
/// Most remote addresses one peer connection may be reached from (a browser has
/// a few candidates per interface; more is an attempt to fill the table).
pub const MAX_ADDRS_PER_PEER: usize = 16;
/// Largest RFC 4571 frame accepted as the first packet of an ICE-TCP connection.
pub const MAX_FIRST_FRAME: usize = 1500;

/// A peer connection's key in the demultiplexer.
pub type PeerKey = u64;

/// Is this a STUN message (RFC 7983 demultiplexing: first byte 0..3, magic cookie)?
pub fn is_stun(packet: &[u8]) -> bool {
    packet.len() >= 20 && packet.first().is_some_and(|b| *b < 4) && packet.get(4..8) == Some(&MAGIC_COOKIE)
}

/// One STUN attribute: its type, its offset in the message body, its value.
struct Attribute<'a> {
    typ: u16,
    at: usize,
    value: &'a [u8],
}

/// The attributes of a STUN message's body, in order; the walk stops at the
/// first attribute that runs past the body.
struct Attributes<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Attributes<'a> {
    /// `None` if this is not a STUN message or its length runs past the packet.
    fn of(packet: &'a [u8]) -> Option<Attributes<'a>> {
        if !is_stun(packet) {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
        Some(Attributes { body: packet.get(20..20 + len)?, at: 0 })
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Attribute<'a>;

    fn next(&mut self) -> Option<Attribute<'a>> {
        let (body, at) = (self.body, self.at);
        let typ = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
        let alen = usize::from(u16::from_be_bytes([*body.get(at + 2)?, *body.get(at + 3)?]));
        let value = body.get(at + 4..at + 4 + alen)?;
        self.at = at + 4 + alen.div_ceil(4) * 4;
        Some(Attribute { typ, at, value })
    }
}

/// The USERNAME attribute of a STUN message, if it has one.
pub fn stun_username(packet: &[u8]) -> Option<&str> {
    let a = Attributes::of(packet)?.find(|a| a.typ == ATTR_USERNAME)?;
    std::str::from_utf8(a.value).ok()
}

/// Whether a STUN message carries a MESSAGE-INTEGRITY (RFC 5389 §15.4) that
/// checks out with the short-term credential `pwd` (the relay's ICE password
/// of that peer connection): HMAC-SHA1 over the message up to the attribute,
/// with the header's length covering it. Attributes after it (FINGERPRINT)
/// are ignored, as the RFC says.
pub fn integrity_ok(packet: &[u8], pwd: &str) -> bool {
    integrity_checks(packet, pwd).unwrap_or(false)
}

fn integrity_checks(packet: &[u8], pwd: &str) -> Option<bool> {
    let mut attrs = Attributes::of(packet)?;
    let body = attrs.body;
    let Attribute { at, value, .. } = attrs.find(|a| a.typ == ATTR_MESSAGE_INTEGRITY)?;
    if value.len() != 20 {
        return Some(false);
    }
    let covered = u16::try_from(at + 4 + 20).ok()?;
    let mut mac = Hmac::<Sha1>::new_from_slice(pwd.as_bytes()).ok()?;
    mac.update(packet.get(..2)?);
    mac.update(&covered.to_be_bytes());
    mac.update(packet.get(4..20)?);
    mac.update(body.get(..at)?);
    Some(mac.verify_slice(value).is_ok())
}

/// The relay's ufrag in a check the browser sends (`relay:browser`).
pub fn local_ufrag(packet: &[u8]) -> Option<&str> {
    stun_username(packet).and_then(|u| u.split(':').next()).filter(|u| !u.is_empty())
}

/// Length of an RFC 4571 frame from its two-byte header.
pub fn frame_len(header: [u8; 2]) -> usize {
    usize::from(u16::from_be_bytes(header))
}

/// Is the first byte of a TCP connection to the HTTPS port the start of an
/// ICE-TCP frame rather than TLS? A TLS connection opens with a handshake record
/// (0x16); an RFC 4571 frame opens with its length's high byte, below 0x06 for any
/// packet up to 1500 bytes.
pub fn is_ice_tcp_first_byte(b: u8) -> bool {
    b < 0x06
}

/// Where one remote address's datagrams go, and the local address they were sent to
/// (replies go out from it, so NAT and connected sockets on the way see one flow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub peer: PeerKey,
    pub local_ip: Option<IpAddr>,
}

/// Datagram → peer connection.
#[derive(Debug, Default)]
pub struct Demux {
    /// Local ufrag → (peer connection, its ICE password).
    by_ufrag: HashMap<String, (PeerKey, String)>,
    by_addr: HashMap<SocketAddr, Route>,
    addrs_of: HashMap<PeerKey, Vec<SocketAddr>>,
}

impl Demux {
    /// Registers a peer connection's local ufrag and ICE password; `false` if
    /// the ufrag is taken.
    pub fn add(&mut self, ufrag: &str, pwd: &str, peer: PeerKey) -> bool {
        if self.by_ufrag.contains_key(ufrag) {
            return false;
        }
        self.by_ufrag.insert(ufrag.to_string(), (peer, pwd.to_string()));
        self.addrs_of.insert(peer, Vec::new());
        true
    }

    /// Forgets a peer connection and every address learnt for it.
    pub fn remove(&mut self, peer: PeerKey) {
        self.by_ufrag.retain(|_, (p, _)| *p != peer);
        for a in self.addrs_of.remove(&peer).unwrap_or_default() {
            self.by_addr.remove(&a);
        }
    }

    /// The peer connection a STUN check is for: it names that peer connection's
    /// ufrag and its MESSAGE-INTEGRITY checks out with its password.
    pub fn verified_peer(&self, packet: &[u8]) -> Option<PeerKey> {
        let (peer, pwd) = self.by_ufrag.get(local_ufrag(packet)?)?;
        integrity_ok(packet, pwd).then_some(*peer)
    }

    /// Where a datagram from `from` (sent to `local_ip`) goes. A verified STUN
    /// check ([`Demux::verified_peer`]) (re)binds `from` to its peer connection;
    /// anything else follows the address's binding, or is dropped (`None`).
    pub fn route(&mut self, from: SocketAddr, local_ip: Option<IpAddr>, packet: &[u8]) -> Option<PeerKey> {
        if let Some(peer) = self.verified_peer(packet) {
            let previous = self.by_addr.insert(from, Route { peer, local_ip });
            match previous {
                Some(r) if r.peer == peer => {}
                other => {
                    if let Some(old) = other {
                        if let Some(v) = self.addrs_of.get_mut(&old.peer) {
                            v.retain(|a| *a != from);
                        }
                    }
                    let addrs = self.addrs_of.entry(peer).or_default();
                    addrs.push(from);
                    if addrs.len() > MAX_ADDRS_PER_PEER {
                        let oldest = addrs.remove(0);
                        self.by_addr.remove(&oldest);
                    }
                }
            }
            return Some(peer);
        }
        self.by_addr.get(&from).map(|r| r.peer)
    }

    /// The local address `to` last reached us on (the source for replies).
    pub fn reply_from(&self, to: SocketAddr) -> Option<IpAddr> {
        self.by_addr.get(&to).and_then(|r| r.local_ip)
    }

    /// How many remote addresses are bound (for tests and metrics).
    pub fn addresses(&self) -> usize {
        self.by_addr.len()
    }
}

/// What the answer advertises.
#[derive(Debug, Clone, Copy)]
pub struct Advertised {
    pub udp_port: u16,
    /// The ICE-TCP port (the HTTPS port), if ICE over TCP is on.
    pub tcp_port: Option<u16>,
    /// Address to advertise instead of the local ones (1:1 NAT).
    pub public_ip: Option<IpAddr>,
}

/// Rewrites the `a=candidate` lines of an SDP to the shared ports (see the module
/// documentation), once per transport and address in each media section. Lines
/// other than candidates are kept as they are.
pub fn advertise(sdp: &str, adv: &Advertised) -> String {
    let mut out = String::with_capacity(sdp.len());
    let mut seen: Vec<(String, String)> = Vec::new();
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let eol = line.get(body.len()..).unwrap_or_default();
        if body.starts_with("m=") {
            seen.clear();
        }
        let Some(cand) = body.strip_prefix("a=candidate:") else {
            out.push_str(line);
            continue;
        };
        let Some(fields) = rewrite_candidate(cand, adv) else { continue };
        let key = (
            fields.get(2).cloned().unwrap_or_default().to_ascii_lowercase(),
            format!("{} {}", fields.get(4).map_or("", |s| s), fields.get(5).map_or("", |s| s)),
        );
        if !seen.contains(&key) {
            seen.push(key);
            out.push_str("a=candidate:");
            out.push_str(&fields.join(" "));
            out.push_str(eol);
        }
    }
    out
}

/// `foundation component transport priority address port typ type [extensions]`.
fn rewrite_candidate(cand: &str, adv: &Advertised) -> Option<Vec<String>> {
    let mut f: Vec<String> = cand.split_whitespace().map(str::to_string).collect();
    if f.len() < 8 || f.get(6).map(String::as_str) != Some("typ") {
        return Some(f);
    }
    let transport = f.get(2)?.to_ascii_lowercase();
    let tcptype = f.iter().position(|x| x == "tcptype").and_then(|i| f.get(i + 1)).cloned();
    let port = match (transport.as_str(), tcptype.as_deref()) {
        ("udp", _) => adv.udp_port,
        ("tcp", Some("passive")) => adv.tcp_port?,
        ("tcp", _) => return None,
        _ => return Some(f),
    };
    if let Some(ip) = adv.public_ip {
        *f.get_mut(4)? = ip.to_string();
    }
    *f.get_mut(5)? = port.to_string();
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request with USERNAME `user` (and a PRIORITY attribute before it).
    fn binding_request(user: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&0x0024u16.to_be_bytes());
        attrs.extend_from_slice(&4u16.to_be_bytes());
        attrs.extend_from_slice(&[0, 0, 0, 1]);
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attrs.extend_from_slice(user.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7u8; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_the_username_of_a_check() {
        let m = binding_request("relay1:brow");
        assert!(is_stun(&m));
        assert_eq!(stun_username(&m), Some("relay1:brow"));
        assert_eq!(local_ufrag(&m), Some("relay1"));
    }

    #[test]
    fn bad_stun_is_no_username_and_no_panic() {
        let m = binding_request("relay1:brow");
        for n in 0..m.len() {
            let _ = stun_username(&m[..n]);
        }
        let mut long = m.clone();
        long[3] = 0xff; // length beyond the packet
        assert_eq!(stun_username(&long), None);
        let mut attr = m.clone();
        attr[20 + 8 + 2] = 0xff; // attribute length beyond the body
        assert_eq!(stun_username(&attr), None);
        assert_eq!(stun_username(&[0x80; 40]), None); // RTP
        assert_eq!(stun_username(&[22, 3, 1, 0, 5]), None); // TLS
    }

    /// `binding_request(user)` with a MESSAGE-INTEGRITY for `pwd` and a FINGERPRINT after it.
    fn signed(user: &str, pwd: &str) -> Vec<u8> {
        let mut m = binding_request(user);
        let covered = (m.len() - 20 + 24) as u16;
        m[2..4].copy_from_slice(&covered.to_be_bytes());
        let mut mac = Hmac::<Sha1>::new_from_slice(pwd.as_bytes()).unwrap();
        mac.update(&m);
        let tag = mac.finalize().into_bytes();
        m.extend_from_slice(&ATTR_MESSAGE_INTEGRITY.to_be_bytes());
        m.extend_from_slice(&20u16.to_be_bytes());
        m.extend_from_slice(&tag);
        m.extend_from_slice(&[0x80, 0x28, 0, 4, 1, 2, 3, 4]);
        let len = (m.len() - 20) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m
    }

    #[test]
    fn message_integrity_checks_out_only_with_the_right_password() {
        // RFC 5769 §2.1, sample request (USERNAME "evtj:h6vY", with FINGERPRINT).
        let sample: Vec<u8> = [
            "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e20746573742063",
            "6c69656e74002400046e0001ff80290008932ff9b151263b36000600096576746a3a68",
            "367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e5",
            "7a3bcf",
        ]
        .concat()
        .as_bytes()
        .chunks(2)
        .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
        .collect();
        assert!(integrity_ok(&sample, "VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!integrity_ok(&sample, "VOkJxbRl1RmTxUk/WvJxBT"), "wrong password");
        let mut tampered = sample.clone();
        tampered[30] ^= 1;
        assert!(!integrity_ok(&tampered, "VOkJxbRl1RmTxUk/WvJxBt"), "changed byte");
        assert!(!integrity_ok(&binding_request("evtj:h6vY"), "VOkJxbRl1RmTxUk/WvJxBt"), "no integrity");
        for n in 0..sample.len() {
            let _ = integrity_ok(&sample[..n], "x");
        }
        assert!(integrity_ok(&signed("aaaa:zz", "pw"), "pw"));
    }

    #[test]
    fn routes_by_verified_ufrag_then_by_address() {
        let mut d = Demux::default();
        assert!(d.add("aaaa", "pa", 1));
        assert!(d.add("bbbb", "pb", 2));
        assert!(!d.add("aaaa", "pc", 3));
        let x: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let y: SocketAddr = "10.0.0.3:5000".parse().unwrap();
        let local: IpAddr = "10.0.0.1".parse().unwrap();
        let rtp = [0x80u8; 40];
        assert_eq!(d.route(x, Some(local), &rtp), None, "media before any check is dropped");
        assert_eq!(d.route(x, Some(local), &signed("aaaa:zz", "pa")), Some(1));
        assert_eq!(d.route(x, None, &rtp), Some(1));
        assert_eq!(d.reply_from(x), Some(local));
        assert_eq!(d.route(y, None, &signed("bbbb:zz", "pb")), Some(2));
        assert_eq!(d.route(y, None, &binding_request("nope:zz")), Some(2), "unknown ufrag: by address");
        assert_eq!(d.route("10.0.0.9:1".parse().unwrap(), None, &binding_request("nope:zz")), None);
        // Naming a ufrag without its password re-binds nothing: x stays with 1.
        assert_eq!(d.route(x, None, &binding_request("bbbb:zz")), Some(1));
        assert_eq!(d.route(x, None, &signed("bbbb:zz", "guess")), Some(1));
        assert_eq!(d.route("10.0.0.8:1".parse().unwrap(), None, &binding_request("aaaa:zz")), None);
        // A verified check moves the address to another peer connection.
        assert_eq!(d.route(x, None, &signed("bbbb:zz", "pb")), Some(2));
        d.remove(2);
        assert_eq!(d.route(x, None, &rtp), None);
        assert_eq!(d.route(y, None, &rtp), None);
        assert_eq!(d.addresses(), 0);
        assert_eq!(d.verified_peer(&signed("bbbb:zz", "pb")), None);
        assert_eq!(d.verified_peer(&signed("aaaa:zz", "pa")), Some(1));
    }

    #[test]
    fn addresses_per_peer_are_bounded() {
        let mut d = Demux::default();
        d.add("aaaa", "pa", 1);
        for p in 0..100u16 {
            let a = SocketAddr::from(([10, 0, 0, 2], 1000 + p));
            d.route(a, None, &signed("aaaa:zz", "pa"));
        }
        assert_eq!(d.addresses(), MAX_ADDRS_PER_PEER);
    }

    #[test]
    fn tells_ice_tcp_from_tls() {
        assert!(!is_ice_tcp_first_byte(0x16));
        assert!(is_ice_tcp_first_byte(0x00));
        assert_eq!(frame_len([0x01, 0x02]), 258);
    }

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.1 51234 typ host\r\n\
a=candidate:2 1 udp 2130706431 192.168.1.5 40000 typ host\r\n\
a=candidate:3 1 tcp 1671430143 10.0.0.1 46001 typ host tcptype passive\r\n\
a=candidate:4 1 tcp 1671430143 10.0.0.1 9 typ host tcptype active\r\n\
a=end-of-candidates\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:1\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.1 51234 typ host\r\n";

    #[test]
    fn advertises_the_shared_ports() {
        let adv = Advertised { udp_port: 3478, tcp_port: Some(8443), public_ip: None };
        let s = advertise(ANSWER, &adv);
        assert!(s.contains("a=candidate:1 1 udp 2130706431 10.0.0.1 3478 typ host\r\n"), "{s}");
        assert!(s.contains("a=candidate:2 1 udp 2130706431 192.168.1.5 3478 typ host\r\n"), "{s}");
        assert!(
            s.contains("a=candidate:3 1 tcp 1671430143 10.0.0.1 8443 typ host tcptype passive\r\n"),
            "{s}"
        );
        assert!(!s.contains("tcptype active"), "{s}");
        assert!(!s.contains("51234") && !s.contains("46001"), "{s}");
        assert_eq!(s.matches("a=candidate:").count(), 4, "both sections keep theirs: {s}");
        assert!(s.contains("a=end-of-candidates\r\nm=video"), "{s}");
    }

    #[test]
    fn advertises_the_public_address_once() {
        let adv =
            Advertised { udp_port: 3478, tcp_port: None, public_ip: Some("203.0.113.7".parse().unwrap()) };
        let s = advertise(ANSWER, &adv);
        let audio = s.split("m=video").next().unwrap();
        assert_eq!(audio.matches("203.0.113.7 3478 typ host").count(), 1, "{s}");
        assert_eq!(s.matches("203.0.113.7 3478 typ host").count(), 2, "once per section: {s}");
        assert!(!s.contains("10.0.0.1 ") && !s.contains("192.168.1.5"), "{s}");
        assert!(!s.contains(" tcp "), "no TCP candidates without ICE-TCP: {s}");
    }
}
