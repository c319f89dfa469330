//! Every relay parser that reads network bytes survives arbitrary input: the
//! request-id peek of refused frames, `X-Forwarded-For` and trusted-proxy blocks,
//! STUN/ICE (username, MESSAGE-INTEGRITY, ICE-TCP framing, the shared-port
//! demultiplexer, the ICE-TCP accept path over loopback TCP), SDP media sections
//! and candidate rewriting, browser RTP as `web::rtp::from_browser` rewrites it,
//! the media datagram prefix as the SFU reads it, and the SFU state machine itself
//! (commands, datagrams, pressure and timers against a model: bounded output, a
//! muted track never heard). (Frames, requests, codes and the datagram
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
    use clinicmeet_relay::web::mux::{IceMux, Lease};
    use clinicmeet_relay::web::rtp::{from_browser, media_sections, to_browser, InboundVideo, Kind};
    use clinicmeet_rtp::payload_type;
    use hmac::{Hmac, Mac};
    use rtc::shared::marshal::Unmarshal;
    use sha1::Sha1;
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use webrtc::runtime::AsyncTcpListener;

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

    /// A browser RTP packet (SRTP removed) as the webrtc crate parses it, through
    /// `from_browser` for `kind`: the relay's payload type, the same header fields
    /// and payload, a bounded size; `to_browser` reads the payload back. Returns the
    /// payload read, `None` when the crate refuses the packet.
    pub fn check_inbound(kind: Kind, state: &mut InboundVideo, bytes: &[u8]) -> Option<Vec<u8>> {
        let p = rtc::rtp::packet::Packet::unmarshal(&mut &bytes[..]).ok()?;
        let h = &p.header;
        let out = from_browser(kind, state, h.marker, h.sequence_number, h.timestamp, h.ssrc, &p.payload);
        // Fixed header plus at most the one-byte extension block with the video layer.
        assert!(out.len() <= 12 + 8 + p.payload.len(), "{} bytes for {}", out.len(), p.payload.len());
        let v = clinicmeet_rtp::RtpView::parse(&out).expect("the relay's packet parses");
        assert_eq!(
            (v.marker, v.sequence, v.timestamp, v.ssrc),
            (h.marker, h.sequence_number, h.timestamp, h.ssrc)
        );
        assert_eq!(v.payload(), &p.payload[..]);
        let layer = v.extensions().video_layer;
        match kind {
            Kind::Audio => assert_eq!((v.payload_type, layer), (payload_type::OPUS, None)),
            Kind::Video => {
                assert_eq!(v.payload_type, payload_type::H264);
                assert_eq!(layer.map(|l| l.end_of_frame), Some(h.marker));
            }
        }
        assert_eq!(to_browser(&out).map(|o| o.payload), Some(&p.payload[..]));
        Some(p.payload.to_vec())
    }

    /// Each packet of `packets` through one video state and one audio state.
    pub fn check_inbound_stream(packets: &[Vec<u8>]) {
        let (mut video, mut audio) = (InboundVideo::default(), InboundVideo::default());
        for p in packets {
            check_inbound(Kind::Video, &mut video, p);
            check_inbound(Kind::Audio, &mut audio, p);
        }
    }

    /// A browser RTP packet built field by field: CSRCs, a header extension (one-byte,
    /// two-byte or other profile) and padding, each honest or lying about its length.
    /// Also returns the payload when every length is honest.
    pub fn browser_rtp() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
        (
            (any::<u8>(), any::<u16>(), any::<u32>(), any::<u32>(), 0u8..16, 0u8..3),
            prop::option::of((
                prop_oneof![Just(0xBEDEu16), Just(0x1000), any::<u16>()],
                prop::collection::vec((1u8..15, prop::collection::vec(any::<u8>(), 1..17)), 0..4),
                prop::option::of(any::<u16>()),
            )),
            prop::collection::vec(any::<u8>(), 0..200),
            prop::option::of((1u8..=255, prop::option::of(any::<u8>()))),
        )
            .prop_map(|((b1, seq, ts, ssrc, cc, csrc_lie), ext, payload, padding)| {
                let mut honest = csrc_lie == 0;
                let present = if honest { cc } else { cc / 2 };
                let mut m =
                    vec![0x80 | u8::from(padding.is_some()) << 5 | u8::from(ext.is_some()) << 4 | cc, b1];
                m.extend_from_slice(&seq.to_be_bytes());
                m.extend_from_slice(&ts.to_be_bytes());
                m.extend_from_slice(&ssrc.to_be_bytes());
                for i in 0..present {
                    m.extend_from_slice(&(u32::from(i) * 0x0101_0101).to_be_bytes());
                }
                if let Some((profile, elements, lie)) = ext {
                    // Well-formed elements for the profile (RFC 8285), zero-padded to words.
                    let mut area = Vec::new();
                    for (id, data) in elements {
                        match profile {
                            0xBEDE => {
                                let data = &data[..data.len().min(16)];
                                area.push(id << 4 | (data.len() as u8 - 1));
                                area.extend_from_slice(data);
                            }
                            0x1000 => {
                                area.extend_from_slice(&[id, data.len() as u8]);
                                area.extend_from_slice(&data);
                            }
                            _ => area.extend_from_slice(&data),
                        }
                    }
                    while area.len() % 4 != 0 {
                        area.push(0);
                    }
                    let words = (area.len() / 4) as u16;
                    honest &= lie.is_none_or(|l| l == words);
                    m.extend_from_slice(&profile.to_be_bytes());
                    m.extend_from_slice(&lie.unwrap_or(words).to_be_bytes());
                    m.extend_from_slice(&area);
                }
                m.extend_from_slice(&payload);
                if let Some((n, lie)) = padding {
                    m.resize(m.len() + usize::from(n) - 1, 0);
                    honest &= lie.is_none_or(|l| l == n);
                    m.push(lie.unwrap_or(n));
                }
                (m, honest.then_some(payload))
            })
    }

    /// A listening ICE mux with one peer connection that has an ICE-TCP listener,
    /// and the TCP port browsers connect to (a runtime for the whole test binary).
    pub struct TcpFixture {
        pub rt: tokio::runtime::Runtime,
        pub mux: IceMux,
        pub lease: Lease,
        pub listener: Arc<dyn AsyncTcpListener>,
        pub front: tokio::net::TcpListener,
    }

    pub fn tcp_fixture() -> &'static TcpFixture {
        static F: OnceLock<TcpFixture> = OnceLock::new();
        F.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (mux, front) = rt.block_on(async {
                let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = front.local_addr().unwrap().port();
                (IceMux::bind("127.0.0.1:0".parse().unwrap(), Some(port)).unwrap(), front)
            });
            let lease = mux.lease();
            let listener = {
                let _g = rt.enter();
                lease
                    .runtime()
                    .wrap_tcp_listener(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
                    .unwrap()
            };
            TcpFixture { rt, mux, lease, listener, front }
        })
    }

    /// First bytes of an ICE-TCP connection.
    #[derive(Debug, Clone)]
    pub enum FirstFrame {
        /// Exactly these bytes (length header included).
        Raw(Vec<u8>),
        /// A binding request for the fixture's peer connection, signed with its
        /// password or another, framed with its length or a lie, maybe cut short.
        Check { right_pwd: bool, len: Option<u16>, cut: Option<usize> },
    }

    pub fn first_frame() -> impl Strategy<Value = FirstFrame> {
        let framed = |body: Vec<u8>, len: Option<u16>| {
            let mut f = len.unwrap_or(body.len() as u16).to_be_bytes().to_vec();
            f.extend_from_slice(&body);
            f
        };
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64).prop_map(FirstFrame::Raw),
            (stun_like(), prop::option::of(any::<u16>()))
                .prop_map(move |(b, l)| FirstFrame::Raw(framed(b, l))),
            (prop::collection::vec(any::<u8>(), 0..40), any::<[u8; 12]>(), any::<bool>()).prop_map(
                move |(u, txid, signed)| {
                    FirstFrame::Raw(framed(check_request(&u, signed.then_some("pw"), txid), None))
                }
            ),
            (any::<bool>(), prop::option::of(any::<u16>()), prop::option::of(0usize..200))
                .prop_map(|(right_pwd, len, cut)| FirstFrame::Check { right_pwd, len, cut }),
        ]
    }

    /// One ICE-TCP connection to the mux that sends `frame` and closes its sending
    /// side: `accept_tcp` answers within seconds (never waits for its 10 s first-frame
    /// timeout, never panics), and routes exactly the honest, signed checks for the
    /// peer connection, whose stream then reads the frame first.
    pub fn check_first_frame(frame: &FirstFrame) {
        let f = tcp_fixture();
        let (ufrag, pwd) = f.lease.credentials();
        let (bytes, routable) = match frame {
            FirstFrame::Raw(b) => (b.clone(), false),
            FirstFrame::Check { right_pwd, len, cut } => {
                let user = format!("{ufrag}:browser");
                let key = if *right_pwd { pwd.as_str() } else { "not-the-password" };
                let body = check_request(user.as_bytes(), Some(key), [7; 12]);
                let honest = len.is_none_or(|l| usize::from(l) == body.len());
                let mut b = len.unwrap_or(body.len() as u16).to_be_bytes().to_vec();
                b.extend_from_slice(&body);
                let whole = cut.is_none_or(|c| c >= b.len());
                if let Some(c) = cut {
                    b.truncate(*c);
                }
                (b, *right_pwd && honest && whole)
            }
        };
        f.rt.block_on(async {
            let mut client = tokio::net::TcpStream::connect(f.front.local_addr().unwrap()).await.unwrap();
            let (server, peer) = f.front.accept().await.unwrap();
            // Resets instead of TIME_WAIT: a long campaign would run out of ports.
            client.set_zero_linger().unwrap();
            server.set_zero_linger().unwrap();
            client.write_all(&bytes).await.unwrap();
            client.shutdown().await.unwrap();
            let res = tokio::time::timeout(Duration::from_secs(5), f.mux.accept_tcp(server, peer))
                .await
                .expect("accept_tcp answers once the connection is closed");
            assert_eq!(res.is_ok(), routable, "{res:?} for {bytes:?}");
            if res.is_ok() {
                let (s, from) = f.listener.accept().await.unwrap();
                assert_eq!(from, peer);
                let mut got = vec![0u8; bytes.len()];
                let mut n = 0;
                while n < got.len() {
                    let r = s.read(&mut got[n..]).await.unwrap();
                    assert!(r > 0);
                    n += r;
                }
                assert_eq!(got, bytes, "the stream reads the first frame first");
            }
        });
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

/// Operations on the forwarding core (`Sfu`) from signaling, connections and timers,
/// checked against a model of its tracks and subscriptions.
mod sfu_run {
    use super::*;
    use bytes::Bytes;
    use clinicmeet_protocol::{FlowId, TrackKind};
    use clinicmeet_relay::sfu::{ConnId, MediaCmd, Sfu, Transmit};
    use clinicmeet_rtp::ext::VideoLayer;
    use clinicmeet_rtp::rtcp::{Nack, Pli, ReceiverReport, ReportBlock, RtcpPacket, SenderReport};
    use clinicmeet_rtp::{is_rtcp, HeaderExtensions, RtpPacket, RtpView};
    use std::collections::{HashMap, HashSet};
    use uuid::Uuid;

    /// Track slots; slot `SLOTS` is a track id that never exists.
    const SLOTS: u8 = 4;
    const CONNS: u64 = 4;
    /// Payloads of generated RTP start with this and the number of the step that sent them.
    const MAGIC: &[u8; 4] = b"CMfz";
    /// Subscriber NACK items answered per RTCP packet at most (the core's cap).
    const MAX_NACK_ITEMS: usize = 128;

    fn track_id(slot: u8) -> Uuid {
        Uuid::from_u128(u128::from(slot) + 1)
    }

    /// Each slot's encodings have their own SSRCs, so a forwarded packet's SSRC names its track.
    fn ssrc(slot: u8, enc: u8) -> u32 {
        0x5100_0000 | u32::from(slot) << 8 | u32::from(enc)
    }

    #[derive(Debug, Clone)]
    pub enum Rtcp {
        Pli(u8),
        /// Sequence numbers this far behind the last one the connection received.
        Nack(u8, Vec<u16>),
        Rr(Vec<u32>),
        Sr(u8, u8),
    }

    #[derive(Debug, Clone)]
    pub enum Step {
        Add {
            slot: u8,
            conn: ConnId,
            flow: FlowId,
            kind: TrackKind,
            encodings: u8,
            enabled: bool,
        },
        Remove(u8),
        Enable(u8, bool),
        Subscribe {
            conn: ConnId,
            flow: FlowId,
            slot: u8,
            max_encoding: Option<u8>,
        },
        Unsubscribe(ConnId, u8),
        Closed(ConnId),
        /// RTP of a slot's encoding, from its publisher's flow if `aimed` (and it exists);
        /// `jump` moves that SSRC's sequence number (0: a duplicate).
        Rtp {
            conn: ConnId,
            flow: FlowId,
            aimed: bool,
            slot: u8,
            enc: u8,
            jump: u16,
            marker: bool,
            layer: Option<(bool, bool, u8)>,
            fill: u8,
        },
        /// From `conn`/`flow`, or from `aim`: (slot, 0) its publisher, (slot, n) one of its subscribers.
        Rtcp {
            conn: ConnId,
            flow: FlowId,
            aim: Option<(u8, u8)>,
            packets: Vec<Rtcp>,
        },
        Bytes(ConnId, Vec<u8>),
        Level(ConnId, u8),
        Backlogged(ConnId, bool),
        Rtt(ConnId, u64),
        Tick(u64),
    }

    fn flow() -> impl Strategy<Value = FlowId> {
        prop_oneof![4 => 0u64..4, 1 => Just(70), 1 => Just(datagram::MAX_FLOW_ID)]
    }

    pub fn step() -> impl Strategy<Value = Step> {
        let conn = 0..CONNS;
        let slot = 0..=SLOTS;
        let kind = prop_oneof![Just(TrackKind::Audio), Just(TrackKind::Video), Just(TrackKind::Screen)];
        let rtcp = prop_oneof![
            (0..=SLOTS).prop_map(Rtcp::Pli),
            (0..=SLOTS, prop::collection::vec(prop_oneof![0u16..40, any::<u16>()], 0..40))
                .prop_map(|(s, l)| Rtcp::Nack(s, l)),
            prop::collection::vec(any::<u32>(), 0..3).prop_map(Rtcp::Rr),
            (0..=SLOTS, 0u8..4).prop_map(|(s, e)| Rtcp::Sr(s, e)),
        ];
        let jump =
            prop_oneof![8 => Just(1u16), 1 => Just(0), 1 => 2u16..80, 1 => Just(65_535), 1 => any::<u16>()];
        prop_oneof![
            3 => (0..SLOTS, conn.clone(), flow(), kind, prop_oneof![1 => Just(0u8), 6 => 1u8..4], prop::bool::weighted(0.8))
                .prop_map(|(slot, conn, flow, kind, encodings, enabled)| Step::Add { slot, conn, flow, kind, encodings, enabled }),
            1 => (0..=SLOTS).prop_map(Step::Remove),
            3 => ((0..=SLOTS), any::<bool>()).prop_map(|(s, e)| Step::Enable(s, e)),
            5 => (conn.clone(), flow(), slot.clone(), prop::option::of(0u8..4))
                .prop_map(|(conn, flow, slot, max_encoding)| Step::Subscribe { conn, flow, slot, max_encoding }),
            1 => (conn.clone(), slot.clone()).prop_map(|(c, s)| Step::Unsubscribe(c, s)),
            1 => conn.clone().prop_map(Step::Closed),
            20 => ((conn.clone(), flow(), prop::bool::weighted(0.9)), slot.clone(), 0u8..4, jump, any::<bool>(), prop::option::weighted(0.9, (prop::bool::weighted(0.7), prop::bool::weighted(0.3), 0u8..2)), 0u8..40)
                .prop_map(|((conn, flow, aimed), slot, enc, jump, marker, layer, fill)| Step::Rtp { conn, flow, aimed, slot, enc, jump, marker, layer, fill }),
            5 => (conn.clone(), flow(), prop::option::weighted(0.9, (0..SLOTS, 0u8..4)), prop::collection::vec(rtcp, 1..4))
                .prop_map(|(conn, flow, aim, packets)| Step::Rtcp { conn, flow, aim, packets }),
            2 => (conn.clone(), prop_oneof![prop::collection::vec(any::<u8>(), 0..80), clinicmeet_rtp::strategies::rtp_like()])
                .prop_map(|(c, b)| Step::Bytes(c, b)),
            1 => (conn.clone(), 0u8..4).prop_map(|(c, l)| Step::Level(c, l)),
            1 => (conn.clone(), any::<bool>()).prop_map(|(c, b)| Step::Backlogged(c, b)),
            1 => (conn.clone(), prop_oneof![0u64..500_000, any::<u64>()]).prop_map(|(c, r)| Step::Rtt(c, r)),
            4 => prop_oneof![0u64..50_000, 0u64..2_000_000].prop_map(Step::Tick),
        ]
    }

    /// Conn 0 publishes audio (slot 0, SSRC 0x51000000) and conn 1 video (slot 1, two
    /// encodings from 0x51000100), both on flow 1; conn 2 subscribes to both (flows 2 and
    /// 3), conn 3 to the video (flow 70).
    pub fn corpus_setup() -> Vec<Step> {
        vec![
            Step::Add { slot: 0, conn: 0, flow: 1, kind: TrackKind::Audio, encodings: 1, enabled: true },
            Step::Add { slot: 1, conn: 1, flow: 1, kind: TrackKind::Video, encodings: 2, enabled: true },
            Step::Subscribe { conn: 2, flow: 2, slot: 0, max_encoding: None },
            Step::Subscribe { conn: 2, flow: 3, slot: 1, max_encoding: None },
            Step::Subscribe { conn: 3, flow: 70, slot: 1, max_encoding: Some(0) },
        ]
    }

    /// A subscription in the model: its flow and the numbers forwarded on it.
    struct Sub {
        conn: ConnId,
        flow: FlowId,
        highest: Option<u16>,
        sent: HashSet<u16>,
    }

    struct Track {
        conn: ConnId,
        flow: FlowId,
        enabled: bool,
        subs: Vec<Sub>,
    }

    /// Runs `steps` through a fresh `Sfu`. After every step: the output is bounded by
    /// the subscriptions and the input, the core holds exactly the model's tracks and
    /// subscriptions, nothing that arrived while its track was disabled (muted) reaches
    /// anyone, every forwarded packet is for a live subscription of an enabled track on
    /// its flow, and each subscription's rewritten numbers follow the rewrite rules
    /// (never a number twice; behind the highest only to fill a gap less than a ring back).
    pub fn check_sfu(steps: &[Step]) {
        let mut sfu = Sfu::new();
        let mut model: [Option<Track>; SLOTS as usize] = Default::default();
        let mut next_seq: HashMap<u32, u16> = HashMap::new();
        let mut last_rx: HashMap<ConnId, u16> = HashMap::new();
        let mut muted: HashSet<u32> = HashSet::new();
        let mut longest = 0usize;
        let mut forwarded = 0u64;
        let mut now = 0u64;
        let mut out: Vec<Transmit> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let tag = i as u32;
            out.clear();
            let subs_before = sfu.subscription_count();
            let mut bound = 0usize;
            let mut datagram_in = |sfu: &mut Sfu, out: &mut Vec<Transmit>, conn: ConnId, data: Vec<u8>| {
                longest = longest.max(data.len());
                bound = (subs_before + MAX_NACK_ITEMS + 2) * (1 + data.len() / 12);
                sfu.datagram(now, conn, Bytes::from(data), out);
            };
            match step.clone() {
                Step::Add { slot, conn, flow, kind, encodings, enabled } => {
                    let encodings = (0..encodings).map(|e| (ssrc(slot, e), 2)).collect();
                    sfu.command(
                        now,
                        MediaCmd::AddTrack { track_id: track_id(slot), conn, flow, kind, encodings, enabled },
                        &mut out,
                    );
                    model[usize::from(slot)] = Some(Track { conn, flow, enabled, subs: Vec::new() });
                }
                Step::Remove(slot) => {
                    sfu.command(now, MediaCmd::RemoveTrack { track_id: track_id(slot) }, &mut out);
                    if let Some(t) = model.get_mut(usize::from(slot)) {
                        *t = None;
                    }
                }
                Step::Enable(slot, enabled) => {
                    sfu.command(now, MediaCmd::SetEnabled { track_id: track_id(slot), enabled }, &mut out);
                    bound = subs_before;
                    if let Some(Some(t)) = model.get_mut(usize::from(slot)) {
                        t.enabled = enabled;
                    }
                }
                Step::Subscribe { conn, flow, slot, max_encoding } => {
                    sfu.command(
                        now,
                        MediaCmd::Subscribe { conn, flow, track_id: track_id(slot), max_encoding },
                        &mut out,
                    );
                    bound = 1;
                    if let Some(Some(t)) = model.get_mut(usize::from(slot)) {
                        if !t.subs.iter().any(|s| s.conn == conn) {
                            t.subs.push(Sub { conn, flow, highest: None, sent: HashSet::new() });
                        }
                    }
                }
                Step::Unsubscribe(conn, slot) => {
                    sfu.command(now, MediaCmd::Unsubscribe { conn, track_id: track_id(slot) }, &mut out);
                    if let Some(Some(t)) = model.get_mut(usize::from(slot)) {
                        t.subs.retain(|s| s.conn != conn);
                    }
                }
                Step::Closed(conn) => {
                    sfu.command(now, MediaCmd::ConnClosed { conn }, &mut out);
                    for t in &mut model {
                        if t.as_ref().is_some_and(|t| t.conn == conn) {
                            *t = None;
                        } else if let Some(t) = t {
                            t.subs.retain(|s| s.conn != conn);
                        }
                    }
                }
                Step::Rtp { conn, flow, aimed, slot, enc, jump, marker, layer, fill } => {
                    // Aimed: at a live track (the slot-th, cycling), from its publisher.
                    let live: Vec<u8> = (0..SLOTS).filter(|s| model[usize::from(*s)].is_some()).collect();
                    let slot =
                        if aimed && !live.is_empty() { live[usize::from(slot) % live.len()] } else { slot };
                    let publisher = model.get(usize::from(slot)).and_then(|t| t.as_ref()).filter(|_| aimed);
                    let (conn, flow) = publisher.map_or((conn, flow), |t| (t.conn, t.flow));
                    let s = ssrc(slot, enc);
                    let seq = next_seq.entry(s).or_insert(1_000);
                    *seq = seq.wrapping_add(jump);
                    if !model.get(usize::from(slot)).and_then(|t| t.as_ref()).is_some_and(|t| t.enabled) {
                        muted.insert(tag);
                    }
                    let mut payload = MAGIC.to_vec();
                    payload.extend_from_slice(&tag.to_be_bytes());
                    payload.resize(payload.len() + usize::from(fill), 0xab);
                    let video_layer = layer.map(|(start_of_frame, keyframe, temporal_id)| VideoLayer {
                        start_of_frame,
                        end_of_frame: marker,
                        keyframe,
                        temporal_id,
                        spatial_id: 0,
                        temporal_layers: 2,
                    });
                    let p = RtpPacket {
                        marker,
                        payload_type: 102,
                        sequence: *seq,
                        timestamp: u32::from(*seq) * 3000,
                        ssrc: s,
                        extensions: HeaderExtensions { video_layer, ..Default::default() },
                        payload,
                    };
                    datagram_in(&mut sfu, &mut out, conn, datagram::encode(flow, &p.to_bytes()));
                }
                Step::Rtcp { conn, flow, aim, packets } => {
                    let aimed = aim.and_then(|(slot, n)| {
                        let t = model[usize::from(slot)].as_ref()?;
                        if n == 0 || t.subs.is_empty() {
                            return Some((t.conn, t.flow));
                        }
                        let s = &t.subs[usize::from(n) % t.subs.len()];
                        Some((s.conn, s.flow))
                    });
                    let (conn, flow) = aimed.unwrap_or((conn, flow));
                    let mut compound = Vec::new();
                    for r in packets {
                        let p = match r {
                            Rtcp::Pli(slot) => {
                                RtcpPacket::Pli(Pli { sender_ssrc: 9, media_ssrc: ssrc(slot, 0) })
                            }
                            Rtcp::Nack(slot, back) => {
                                let last = last_rx.get(&conn).copied().unwrap_or(0);
                                let lost = back.iter().map(|b| last.wrapping_sub(*b)).collect();
                                RtcpPacket::Nack(Nack { sender_ssrc: 9, media_ssrc: ssrc(slot, 0), lost })
                            }
                            Rtcp::Rr(lost) => RtcpPacket::ReceiverReport(ReceiverReport {
                                ssrc: 9,
                                reports: lost
                                    .iter()
                                    .map(|l| ReportBlock {
                                        ssrc: ssrc(0, 0),
                                        fraction_lost: *l as u8,
                                        cumulative_lost: (*l >> 8) as i32 & 0xff_ffff,
                                        highest_seq: *l,
                                        jitter: *l >> 4,
                                        last_sr: *l,
                                        delay_since_last_sr: *l >> 2,
                                    })
                                    .collect(),
                            }),
                            Rtcp::Sr(slot, enc) => RtcpPacket::SenderReport(SenderReport {
                                ssrc: ssrc(slot, enc),
                                ntp_time: now << 12,
                                rtp_time: now as u32,
                                packet_count: tag,
                                octet_count: tag * 100,
                                reports: Vec::new(),
                            }),
                        };
                        compound.extend_from_slice(&p.to_bytes());
                    }
                    datagram_in(&mut sfu, &mut out, conn, datagram::encode(flow, &compound));
                }
                Step::Bytes(conn, bytes) => datagram_in(&mut sfu, &mut out, conn, bytes),
                Step::Level(conn, level) => sfu.set_level(conn, level),
                Step::Backlogged(conn, on) => sfu.set_backlogged(conn, on),
                Step::Rtt(conn, rtt) => sfu.set_rtt(conn, rtt),
                Step::Tick(dt) => {
                    now += dt;
                    sfu.tick(now, &mut out);
                    // Per track: a receiver report; per encoding: a NACK, its copy, a PLI.
                    bound = sfu.track_count() * (1 + 3 * 3);
                }
            }
            assert!(out.len() <= bound, "step {i} {step:?}: {} datagrams out, bound {bound}", out.len());
            let tracks: Vec<&Track> = model.iter().flatten().collect();
            assert_eq!(sfu.track_count(), tracks.len(), "step {i}");
            assert_eq!(
                sfu.subscription_count(),
                tracks.iter().map(|t| t.subs.len()).sum::<usize>(),
                "step {i}"
            );
            for t in &out {
                assert!(t.data.len() <= (longest + 8).max(2_048), "step {i}: {} bytes", t.data.len());
                let (flow, packet) = datagram::decode(&t.data).expect("the core sends well-formed datagrams");
                if is_rtcp(packet) {
                    continue;
                }
                let v = RtpView::parse(packet).expect("the core forwards only RTP it parsed");
                if let Some(sent_at) = v.payload().strip_prefix(MAGIC).and_then(|p| p.get(..4)) {
                    let sent_at = u32::from_be_bytes(sent_at.try_into().unwrap());
                    assert!(
                        !muted.contains(&sent_at),
                        "step {i}: RTP of step {sent_at}, sent while muted, to conn {}",
                        t.conn
                    );
                }
                last_rx.insert(t.conn, v.sequence);
                if !t.forwarded {
                    continue; // a retransmission from the cache
                }
                forwarded += 1;
                let slot =
                    (0..SLOTS).find(|s| ssrc(*s, 0) == v.ssrc).expect("out SSRC is a track's first encoding");
                let track = model[usize::from(slot)].as_mut().expect("forwarded for a live track");
                assert!(track.enabled, "step {i}: slot {slot} is muted but forwarded to conn {}", t.conn);
                let sub =
                    track.subs.iter_mut().find(|s| s.conn == t.conn).expect("forwarded to a subscriber");
                assert_eq!(sub.flow, flow, "step {i}");
                let n = v.sequence;
                if let Some(h) = sub.highest {
                    let ahead = n.wrapping_sub(h);
                    if ahead == 0 || ahead >= 0x8000 {
                        assert!(h.wrapping_sub(n) < 512, "step {i}: {n} after {h}");
                    } else {
                        sub.highest = Some(n);
                    }
                } else {
                    sub.highest = Some(n);
                }
                assert!(sub.sent.insert(n), "step {i}: number {n} forwarded twice");
            }
            assert_eq!(sfu.counters().forwarded, forwarded, "step {i}");
        }
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

    /// Commands, datagrams, pressure and timers in any order (see [`sfu_run::check_sfu`]).
    #[test]
    fn sfu_never_panics_stays_bounded_and_keeps_muted_tracks_silent(setup in any::<bool>(), steps in prop::collection::vec(sfu_run::step(), 0..80)) {
        // Half the runs start with publishers and subscribers in place.
        let mut all = if setup { sfu_run::corpus_setup() } else { Vec::new() };
        all.extend(steps);
        sfu_run::check_sfu(&all);
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
    fn from_browser_never_panics_and_keeps_the_payload(
        bytes in prop::collection::vec(prop_oneof![prop::collection::vec(any::<u8>(), 0..120), clinicmeet_rtp::strategies::rtp_like()], 0..4),
        built in prop::collection::vec(web::browser_rtp(), 1..4),
    ) {
        web::check_inbound_stream(&bytes);
        let mut video = clinicmeet_relay::web::rtp::InboundVideo::default();
        for (packet, payload) in &built {
            let got = web::check_inbound(clinicmeet_relay::web::rtp::Kind::Video, &mut video, packet);
            if payload.is_some() {
                prop_assert_eq!(&got, payload);
            }
        }
    }

    #[test]
    fn ice_tcp_accept_answers_and_routes_only_checks_it_can_verify(frame in web::first_frame()) {
        web::check_first_frame(&frame);
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
        // Each file: one datagram from each connection to a publisher and a subscriber
        // of every kind, then a timer.
        ("sfu", |b| {
            let mut steps = sfu_run::corpus_setup();
            steps.extend((0..4).map(|c| sfu_run::Step::Bytes(c, b.to_vec())));
            steps.push(sfu_run::Step::Tick(1_000_000));
            sfu_run::check_sfu(&steps);
        }),
    ];
    #[cfg(feature = "browser-guests")]
    targets.extend([
        ("stun", web::check_stun as Check),
        ("sdp", |b: &[u8]| web::check_sdp(&String::from_utf8_lossy(b))),
        ("from_browser", |b: &[u8]| web::check_inbound_stream(&[b.to_vec(), b.to_vec()])),
        ("ice_tcp_accept", |b: &[u8]| web::check_first_frame(&web::FirstFrame::Raw(b.to_vec()))),
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
