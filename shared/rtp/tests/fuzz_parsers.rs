//! Every RTP/RTCP parser and H.264 depacketizer survives arbitrary bytes. (The
//! media engine's receivers, jitter buffer and decoders have theirs in
//! `shared/media/tests/fuzz_parsers.rs`.)

use clinicmeet_rtp::ext::HeaderExtensions;
use clinicmeet_rtp::strategies::rtp_like;
use clinicmeet_rtp::{h264, rtcp, RtpPacket, RtpView};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn rtp_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), like in rtp_like()) {
        for b in [&bytes, &like] {
            if let Ok(v) = RtpView::parse(b) {
                let _ = v.extensions();
                let _ = v.extension(3);
                prop_assert!(v.payload().len() <= b.len());
                // What parses re-serializes to something that parses to the same header.
                let owned = v.to_owned_packet();
                let again = RtpPacket::parse(&owned.to_bytes()).unwrap();
                prop_assert_eq!(again.sequence, owned.sequence);
                prop_assert_eq!(again.payload, owned.payload);
            }
        }
    }

    #[test]
    fn extension_area_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = HeaderExtensions::parse_one_byte(&bytes);
    }

    #[test]
    fn h264_depacketize_never_panics(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8)) {
        let _ = h264::depacketize(payloads.iter().map(|p| p.as_slice()));
        for p in &payloads {
            let _ = h264::payload_is_keyframe(p);
        }
    }

    #[test]
    fn h264_packetize_round_trips(
        nals in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..3_000), 1..6),
        max in 3usize..1_400,
    ) {
        // Valid NAL headers: forbidden bit clear, a VCL-ish type.
        let nals: Vec<Vec<u8>> = nals.into_iter().map(|mut n| { n[0] = (n[0] & 0x60) | 1; n }).collect();
        let payloads = h264::packetize(nals.iter().map(|n| n.as_slice()), max).unwrap();
        prop_assert!(payloads.iter().all(|p| p.len() <= max));
        let back = h264::depacketize(payloads.iter().map(|p| p.as_slice())).unwrap();
        prop_assert_eq!(back, nals);
    }

    #[test]
    fn rtcp_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), like in rtp_like()) {
        let _ = rtcp::parse_compound(&bytes);
        let _ = rtcp::parse_compound(&like);
    }
}
