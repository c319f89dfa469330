//! The media engine's receivers, jitter buffer and decoders survive arbitrary
//! network input. (The RTP/RTCP parsers have theirs in
//! `shared/rtp/tests/fuzz_parsers.rs`.)

use clinicmeet_media::codec::h264::H264Decoder;
use clinicmeet_media::codec::opus::OpusDecoder;
use clinicmeet_media::jitter::{AudioJitterBuffer, JitterConfig};
use clinicmeet_media::video_receiver::{VideoReceiver, VideoReceiverConfig};
use clinicmeet_rtp::strategies::rtp_like;
use clinicmeet_rtp::RtpView;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn video_receiver_survives_arbitrary_packets(packets in proptest::collection::vec(rtp_like(), 0..60)) {
        let mut rx = VideoReceiver::new(VideoReceiverConfig::default());
        for (i, p) in packets.iter().enumerate() {
            let now = i as u64 * 7_000;
            if let Ok(v) = RtpView::parse(p) {
                rx.insert(&v, now);
            }
            let _ = rx.nack_list(now);
            while rx.poll(now).is_some() {}
        }
        while rx.poll(10_000_000).is_some() {}
    }

    #[test]
    fn jitter_buffer_survives_arbitrary_timing(items in proptest::collection::vec((any::<u16>(), any::<u32>(), any::<u64>()), 0..100)) {
        let mut jb = AudioJitterBuffer::new(JitterConfig::default());
        for (i, (seq, ts, at)) in items.into_iter().enumerate() {
            jb.insert(seq, ts, &[1, 2], at % 1_000_000_000_000);
            let _ = jb.pull(i as u64 * 20_000);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn decoders_survive_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 1..600)) {
        let mut opus = OpusDecoder::new().unwrap();
        prop_assert_eq!(opus.decode_or_conceal(&bytes).len(), 960);
        prop_assert_eq!(opus.decode_fec(&bytes).len(), 960);
        let mut h = H264Decoder::new().unwrap();
        let mut au = vec![0, 0, 0, 1];
        au.extend_from_slice(&bytes);
        let _ = h.decode_annex_b(&au);
        let _ = h.decode_nals([bytes.as_slice()]);
    }
}
