//! Send/receive streams end to end over a lossy, jittery virtual link.

use clinicmeet_media::capture::synthetic::{decode_embedded, SyntheticCamera, SyntheticMicrophone};
use clinicmeet_media::capture::{AudioSource, Pacing, VideoFormat, VideoSource};
use clinicmeet_media::codec::h264::{H264Config, Preset};
use clinicmeet_media::codec::opus::OpusConfig;
use clinicmeet_media::jitter::JitterConfig;
use clinicmeet_media::pipeline::{
    AudioReceiveStream, AudioSender, VideoReceiveStream, VideoSender, VideoSenderConfig,
};
use clinicmeet_media::video_receiver::VideoReceiverConfig;
use clinicmeet_rtp::RtpView;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn simulcast_sender_feeds_two_receivers_with_different_resolutions() {
    let mut cfg = H264Config::preset(Preset::P720);
    cfg.temporal_layers = 2;
    let mut tx = VideoSender::new(VideoSenderConfig {
        main: cfg,
        low_bitrate_bps: Some(200_000),
        ssrc: 100,
        max_packet_size: 1_100,
    })
    .unwrap();
    let (low_ssrc, high_ssrc) = (tx.ssrc_of(0).unwrap(), tx.ssrc_of(1).unwrap());
    assert_ne!(low_ssrc, high_ssrc);
    let mut cam = SyntheticCamera::new(VideoFormat::P720, Pacing::Virtual { start_us: 1_000_000 }).unwrap();
    let mut low = VideoReceiveStream::new(VideoReceiverConfig::default()).unwrap();
    let mut high_thinned = VideoReceiveStream::new(VideoReceiverConfig::default()).unwrap();
    let (mut low_frames, mut high_frames) = (vec![], vec![]);
    let mut high_seq = 0u16;
    for i in 0..30u64 {
        let now = i * 33_333;
        for p in tx.send_frame(&cam.next_frame().unwrap(), now).unwrap() {
            assert!(p.len() <= 1_100);
            let v = RtpView::parse(&p).unwrap();
            let layer = v.extensions().video_layer.unwrap();
            if v.ssrc == low_ssrc {
                assert_eq!(layer.spatial_id, 0);
                low.on_packet(&p, now).unwrap();
            } else {
                // A relay thinning by temporal layer: drop T1, renumber to stay continuous.
                assert_eq!(layer.spatial_id, 1);
                if layer.is_droppable() {
                    continue;
                }
                let mut p = p.clone();
                clinicmeet_rtp::rewrite_sequence(&mut p, high_seq).unwrap();
                high_seq = high_seq.wrapping_add(1);
                high_thinned.on_packet(&p, now).unwrap();
            }
        }
        low_frames.extend(low.poll_frames(now));
        high_frames.extend(high_thinned.poll_frames(now));
    }
    // At 200 kbit/s the rate control may skip a few frames after the keyframe.
    assert!(low_frames.len() >= 20, "{}", low_frames.len());
    assert!(low_frames.iter().all(|d| (d.frame.width, d.frame.height) == (320, 180)));
    assert!(low_frames
        .iter()
        .all(|d| decode_embedded(&d.frame).is_some_and(|(_, cap)| Some(cap) == d.capture_us)));
    assert_eq!(high_frames.len(), 15, "half the frame rate after dropping the top temporal layer");
    assert!(high_frames.iter().all(|d| d.frame.width == 1280));
    assert!(!high_thinned.take_keyframe_request());
}

#[test]
fn audio_over_lossy_jittery_link_uses_fec_and_stays_on_pitch() {
    let mut rng = StdRng::seed_from_u64(8);
    let mut tx = AudioSender::new(OpusConfig { dtx: false, ..OpusConfig::default() }, 5).unwrap();
    let mut rx = AudioReceiveStream::new(JitterConfig::default()).unwrap();
    let mut mic = SyntheticMicrophone::tone(440.0);
    let mut in_flight: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut out = Vec::new();
    for i in 0..500u64 {
        let now = i * 20_000;
        if let Some(p) = tx.send_frame(&mic.read_frame().unwrap()).unwrap() {
            if !rng.random_bool(0.05) {
                in_flight.push((now + 20_000 + rng.random_range(0..=40_000), p));
            }
        }
        in_flight.retain(|(at, p)| {
            if *at <= now + 5_000 {
                rx.on_packet(p, *at).unwrap();
                false
            } else {
                true
            }
        });
        out.extend(rx.pull(now + 5_000));
    }
    let s = rx.jitter_buffer().stats();
    println!("{s:?}");
    assert!(s.fec_recovered > 5);
    assert_eq!(s.late, 0);
    assert!(rx.last_level.is_some_and(|l| l.voice && l.level_dbov < 12));
    // Zero crossings over the last 8 s: 440 Hz gives 880 per second.
    let tail = &out[out.len() - 8 * 48_000..];
    let crossings = tail.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
    let hz = crossings as f64 / 2.0 / 8.0;
    assert!((hz - 440.0).abs() < 4.0, "{hz} Hz");
}
