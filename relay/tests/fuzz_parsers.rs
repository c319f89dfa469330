//! Every relay parser that reads network bytes survives arbitrary input: the
//! request-id peek of refused frames, `X-Forwarded-For` and trusted-proxy blocks,
//! STUN/ICE (username, MESSAGE-INTEGRITY, ICE-TCP framing, the shared-port
//! demultiplexer), SDP media sections and candidate rewriting, and the media
//! datagram prefix as the SFU reads it. (Frames, requests, codes and the datagram
//! prefix itself: `shared/protocol/tests/fuzz_parsers.rs`; RTP/RTCP/H.264:
//! `shared/rtp/tests/fuzz_parsers.rs`.)
//!
//! CI runs each target with 2,000 cases; `PROPTEST_CASES=1000000 cargo test -p
//! clinicmeet-relay --test fuzz_parsers` runs the long campaign. The regression
//! corpus in `tests/corpus/<target>/` is replayed by `corpus_replays`.

use std::net::{IpAddr, SocketAddr};

use clinicmeet_protocol::datagram;
use clinicmeet_relay::limits::peek_request_id;
use clinicmeet_relay::proxy::{Cidr, TrustedProxies};
use proptest::prelude::*;

/// 2,000 cases unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    ProptestConfig::with_cases(cases)
}

fn check_peek(body: &[u8]) {
    if let Some(id) = peek_request_id(body) {
        let digits: String =
            body[6..].iter().take(20).take_while(|b| b.is_ascii_digit()).map(|b| char::from(*b)).collect();
        assert_eq!(digits.parse::<u64>().ok(), Some(id));
    }
}

fn proxies() -> TrustedProxies {
    TrustedProxies::new(
        ["10.0.0.0/8", "192.168.1.1", "fd00::/8", "::1/128"]
            .iter()
            .map(|c| Cidr::parse(c).unwrap())
            .collect(),
    )
}

/// `X-Forwarded-For` header lines (one per line of `text`) from `peer`.
fn check_forwarded(peer: IpAddr, text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let p = proxies();
    let client = p.client(peer, &lines);
    // The answer is the peer or an address some hop names.
    let named = |hop: &str| -> Option<IpAddr> {
        hop.parse()
            .ok()
            .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
            .or_else(|| hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok()))
    };
    let hops: Vec<IpAddr> = lines.iter().flat_map(|l| l.split(',')).filter_map(|h| named(h.trim())).collect();
    assert!(client == peer || hops.contains(&client), "{client} from {text:?}");
    if !p.trusts(peer) {
        assert_eq!(client, peer);
    }
    if let Ok(c) = Cidr::parse(text) {
        let _ = c.contains(peer);
    }
}

#[cfg(feature = "browser-guests")]
mod web {
    use super::*;
    use clinicmeet_relay::web::ice::{
        advertise, frame_len, integrity_ok, is_stun, local_ufrag, stun_username, Advertised, Demux,
        MAX_ADDRS_PER_PEER,
    };
    use clinicmeet_relay::web::rtp::{media_sections, to_browser};
    use hmac::{Hmac, Mac};
    use sha1::Sha1;

    pub const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

    pub fn check_stun(packet: &[u8]) {
        let stun = is_stun(packet);
        if let Some(u) = stun_username(packet) {
            assert!(stun);
            assert!(u.len() <= packet.len());
            if let Some(l) = local_ufrag(packet) {
                assert!(u.starts_with(l) && !l.is_empty());
            }
        } else {
            assert_eq!(local_ufrag(packet), None);
        }
        for pwd in ["", "VOkJxbRl1RmTxUk/WvJxBt", "pa"] {
            assert!(!integrity_ok(packet, pwd) || stun);
        }
        if let Some(h) = packet.get(..2) {
            let n = frame_len([h[0], h[1]]);
            assert!(n <= usize::from(u16::MAX));
        }
    }

    /// A binding request with USERNAME `user` and, if `pwd`, a MESSAGE-INTEGRITY for it.
    pub fn check_request(user: &[u8], pwd: Option<&str>, txid: [u8; 12]) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attrs.extend_from_slice(user);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&((attrs.len() + if pwd.is_some() { 24 } else { 0 }) as u16).to_be_bytes());
        m.extend_from_slice(&COOKIE);
        m.extend_from_slice(&txid);
        m.extend_from_slice(&attrs);
        if let Some(pwd) = pwd {
            let mut mac = Hmac::<Sha1>::new_from_slice(pwd.as_bytes()).unwrap();
            mac.update(&m);
            let tag = mac.finalize().into_bytes();
            m.extend_from_slice(&0x0008u16.to_be_bytes());
            m.extend_from_slice(&20u16.to_be_bytes());
            m.extend_from_slice(&tag);
        }
        m
    }

    /// STUN-shaped bytes: a header with the cookie and a length that may lie, then TLVs.
    pub fn stun_like() -> impl Strategy<Value = Vec<u8>> {
        (
            0u8..4,
            any::<u8>(),
            prop::option::of(any::<u16>()),
            prop::collection::vec(
                (
                    prop_oneof![Just(6u16), Just(8), Just(0x8028), Just(0x0024), any::<u16>()],
                    any::<u16>(),
                    prop::collection::vec(any::<u8>(), 0..40),
                ),
                0..5,
            ),
            any::<usize>(),
        )
            .prop_map(|(t0, t1, len, attrs, cut)| {
                let mut body = Vec::new();
                for (typ, alen, value) in attrs {
                    body.extend_from_slice(&typ.to_be_bytes());
                    // Usually the true length, sometimes a lie.
                    let l = if alen % 3 == 0 { alen } else { value.len() as u16 };
                    body.extend_from_slice(&l.to_be_bytes());
                    body.extend_from_slice(&value);
                    while body.len() % 4 != 0 {
                        body.push(0);
                    }
                }
                let mut m = vec![t0, t1];
                m.extend_from_slice(&len.unwrap_or(body.len() as u16).to_be_bytes());
                m.extend_from_slice(&COOKIE);
                m.extend_from_slice(&[9; 12]);
                m.extend_from_slice(&body);
                if cut % 4 == 0 {
                    m.truncate(cut % (m.len() + 1));
                }
                m
            })
    }

    pub fn check_sdp(sdp: &str) {
        let sections = media_sections(sdp);
        assert!(sections.len() <= sdp.matches("m=").count());
        for s in &sections {
            let _ = s.payload_type_of("H264");
        }
        let candidates = |s: &str| s.split('\n').filter(|l| l.starts_with("a=candidate:")).count();
        let before = candidates(sdp);
        for adv in [
            Advertised { udp_port: 3478, tcp_port: Some(8443), public_ip: None },
            Advertised { udp_port: 1, tcp_port: None, public_ip: Some("2001:db8::1".parse().unwrap()) },
        ] {
            let out = advertise(sdp, &adv);
            assert!(candidates(&out) <= before, "{out:?}");
            let _ = media_sections(&out);
        }
    }

    /// One step of a demultiplexer run.
    #[derive(Debug, Clone)]
    pub enum Op {
        Add(u8),
        Remove(u8),
        /// A check for peer n, signed with its password or not, from an address.
        Check(u8, bool, SocketAddr),
        /// Arbitrary bytes from an address.
        Packet(Vec<u8>, SocketAddr),
    }

    pub fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (0u8..4, any::<u16>()).prop_map(|(h, p)| SocketAddr::from(([10, 0, 0, h], p))),
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p))),
            (any::<[u16; 8]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p))),
        ]
    }

    pub fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (0u8..4).prop_map(Op::Add),
            1 => (0u8..4).prop_map(Op::Remove),
            6 => (0u8..4, any::<bool>(), addr()).prop_map(|(n, s, a)| Op::Check(n, s, a)),
            3 => (prop_oneof![prop::collection::vec(any::<u8>(), 0..120), stun_like()], addr()).prop_map(|(b, a)| Op::Packet(b, a)),
        ]
    }

    /// Runs `ops` through a demultiplexer: it never panics and holds at most
    /// `MAX_ADDRS_PER_PEER` addresses per live peer connection.
    pub fn check_demux(ops: &[Op]) {
        let mut d = Demux::default();
        let mut live = [false; 4];
        let mut generation = [0u64; 4];
        let key = |n: u8, g: &[u64; 4]| u64::from(n) * 1_000 + g[usize::from(n)];
        for op in ops {
            match op {
                Op::Add(n) => {
                    if !live[usize::from(*n)] {
                        generation[usize::from(*n)] += 1;
                        assert!(d.add(&format!("uf{n}"), &format!("pw{n}"), key(*n, &generation)));
                        live[usize::from(*n)] = true;
                    } else {
                        assert!(!d.add(&format!("uf{n}"), "other", 999_999));
                    }
                }
                Op::Remove(n) => {
                    d.remove(key(*n, &generation));
                    live[usize::from(*n)] = false;
                }
                Op::Check(n, signed, from) => {
                    let pwd = format!("pw{n}");
                    let m = check_request(
                        format!("uf{n}:browser").as_bytes(),
                        signed.then_some(pwd.as_str()),
                        [1; 12],
                    );
                    let got = d.route(*from, None, &m);
                    if *signed && live[usize::from(*n)] {
                        assert_eq!(got, Some(key(*n, &generation)));
                    }
                }
                Op::Packet(bytes, from) => {
                    if let Some(p) = d.route(*from, None, bytes) {
                        assert!((0..4u8).any(|n| live[usize::from(n)] && key(n, &generation) == p), "{p}");
                    }
                    let _ = d.reply_from(*from);
                }
            }
            let peers = live.iter().filter(|l| **l).count();
            assert!(
                d.addresses() <= peers * MAX_ADDRS_PER_PEER,
                "{} addresses for {peers} peers",
                d.addresses()
            );
        }
    }

    pub fn check_outbound(bytes: &[u8]) {
        if let Some(o) = to_browser(bytes) {
            assert!(o.payload.len() <= bytes.len());
        }
    }

    pub fn sdp_like() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("v=0".to_string()),
            "m=(audio|video|application) [0-9]{1,5} UDP/TLS/RTP/SAVPF( [0-9]{1,4}){0,6}",
            "m=[a-z ]{0,12}",
            "a=mid:.{0,6}",
            "a=msid:[a-z0-9-]{0,8}( [a-z0-9-]{0,8}){0,2}",
            "a=rtpmap:[0-9]{0,4}( [A-Za-z0-9]{0,6}(/[0-9]{0,6}){0,2})?",
            "a=ssrc:[0-9]{0,11}( cname:[a-z]{0,4})?",
            "a=candidate:[0-9]{1,3} [12] (udp|UDP|tcp|TCP|x) [0-9]{1,10} ([0-9]{1,3}\\.){3}[0-9]{1,3} [0-9]{1,5} typ (host|srflx|relay)( tcptype (active|passive|so))?( generation 0)?",
            "a=candidate:[ a-z0-9.:]{0,40}",
            "a=end-of-candidates",
            ".{0,30}",
        ];
        (prop::collection::vec(line, 0..24), prop_oneof![Just("\r\n"), Just("\n"), Just("\r")])
            .prop_map(|(lines, eol)| lines.join(eol))
    }
}

/// The SFU's reading of a QUIC datagram: flow id, then an RTP or RTCP packet.
fn check_datagram(bytes: &[u8]) {
    if let Some((flow, packet)) = datagram::decode(bytes) {
        assert!(flow <= datagram::MAX_FLOW_ID && !packet.is_empty());
        let _ = clinicmeet_rtp::RtpView::parse(packet);
        let _ = clinicmeet_rtp::rtcp::parse_compound(packet);
        #[cfg(feature = "browser-guests")]
        web::check_outbound(packet);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn peek_request_id_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        digits in "[0-9]{0,25}[^0-9]?.{0,4}",
    ) {
        check_peek(&bytes);
        check_peek(format!("{{\"id\":{digits}").as_bytes());
    }

    #[test]
    fn forwarded_for_never_panics(
        peer in prop_oneof![Just(IpAddr::from([10, 1, 2, 3])), Just(IpAddr::from([203, 0, 113, 9])), any::<IpAddr>()],
        text in prop_oneof![
            any::<String>(),
            "(( ?[0-9]{1,3}(\\.[0-9]{1,3}){3}(:[0-9]{1,5})?|\\[?[0-9a-f:]{0,20}\\]?(:[0-9]{1,5})?|unknown|) ?,?\n?){0,6}",
            "[0-9a-f.:/\\[\\] ]{0,40}",
        ],
    ) {
        check_forwarded(peer, &text);
    }

    #[test]
    fn datagram_prefix_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_datagram(&bytes);
    }
}

#[cfg(feature = "browser-guests")]
proptest! {
    #![proptest_config(config())]

    #[test]
    fn stun_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), like in web::stun_like()) {
        web::check_stun(&bytes);
        web::check_stun(&like);
    }

    /// Passwords are ice-chars (RFC 8445 §5.3): HMAC pads keys with NULs, so `""` and
    /// `"\0"` are the same key (the case in the proptest-regressions file).
    #[test]
    fn stun_checks_verify_only_with_their_password(user in prop::collection::vec(any::<u8>(), 0..60), pwd in "[A-Za-z0-9+/]{0,32}", other in "[A-Za-z0-9+/]{0,32}") {
        let m = web::check_request(&user, Some(&pwd), [3; 12]);
        prop_assert!(clinicmeet_relay::web::ice::integrity_ok(&m, &pwd));
        prop_assert_eq!(clinicmeet_relay::web::ice::integrity_ok(&m, &other), other == pwd);
        web::check_stun(&m);
    }

    #[test]
    fn demux_never_panics_and_stays_bounded(ops in prop::collection::vec(web::op(), 0..80)) {
        web::check_demux(&ops);
    }

    #[test]
    fn sdp_parsers_never_panic(text in any::<String>(), like in web::sdp_like()) {
        web::check_sdp(&text);
        web::check_sdp(&like);
    }
}

/// A target's check of one input.
type Check = fn(&[u8]);

/// Every file in `tests/corpus/<target>/` through its target (on every CI run).
#[test]
fn corpus_replays() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut targets: Vec<(&str, Check)> = vec![
        ("peek_request_id", check_peek),
        ("forwarded_for", |b| {
            let s = String::from_utf8_lossy(b);
            for peer in [IpAddr::from([10, 1, 2, 3]), IpAddr::from([203, 0, 113, 9])] {
                check_forwarded(peer, &s);
            }
        }),
        ("datagram", check_datagram),
    ];
    #[cfg(feature = "browser-guests")]
    targets.extend([
        ("stun", web::check_stun as Check),
        ("sdp", |b: &[u8]| web::check_sdp(&String::from_utf8_lossy(b))),
        // Each packet of a demux corpus file arrives from its own address, then again from one.
        ("demux", |b: &[u8]| {
            let mut ops = vec![web::Op::Add(0), web::Op::Add(1)];
            for i in 0..40u16 {
                ops.push(web::Op::Check(0, true, SocketAddr::from(([10, 0, 0, 1], i))));
                ops.push(web::Op::Packet(b.to_vec(), SocketAddr::from(([10, 0, 0, 2], i))));
            }
            ops.push(web::Op::Remove(0));
            web::check_demux(&ops);
            web::check_stun(b);
        }),
    ]);
    let mut n = 0;
    for (target, check) in targets {
        let dir = root.join(target);
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = e.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n >= 12, "corpus has {n} inputs");
}
