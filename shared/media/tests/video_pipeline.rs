//! Synthetic camera → H.264 → RTP → simulated network (reordering, loss,
//! NACK/PLI feedback) → frame assembly → decoder, on a virtual clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use clinicmeet_media::capture::synthetic::{decode_embedded, SyntheticCamera};
use clinicmeet_media::capture::{Pacing, VideoFormat, VideoSource};
use clinicmeet_media::codec::h264::{DecodeOutcome, H264Config, H264Decoder, H264Encoder, Preset};
use clinicmeet_media::video_receiver::{PacketHistory, ReceiverEvent, VideoReceiver, VideoReceiverConfig};
use clinicmeet_media::VideoFrame;
use clinicmeet_rtp::h264::H264RtpSender;
use clinicmeet_rtp::RtpView;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const T0: u64 = 1_763_900_000_000_000;

/// One direction of a network path: fixed delay, uniform jitter (which reorders), random loss.
struct Link {
    rng: StdRng,
    delay_us: u64,
    jitter_us: u64,
    loss: f64,
    queue: BinaryHeap<Reverse<(u64, u64, Vec<u8>)>>,
    order: u64,
    dropped: usize,
}

impl Link {
    fn new(seed: u64, delay_us: u64, jitter_us: u64, loss: f64) -> Self {
        Link {
            rng: StdRng::seed_from_u64(seed),
            delay_us,
            jitter_us,
            loss,
            queue: BinaryHeap::new(),
            order: 0,
            dropped: 0,
        }
    }
    fn send(&mut self, now: u64, bytes: Vec<u8>) {
        if self.rng.random_bool(self.loss) {
            self.dropped += 1;
            return;
        }
        let at = now + self.delay_us + self.rng.random_range(0..=self.jitter_us);
        self.order += 1;
        self.queue.push(Reverse((at, self.order, bytes)));
    }
    fn deliver(&mut self, now: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self.queue.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
            if let Some(Reverse((_, _, b))) = self.queue.pop() {
                out.push(b);
            }
        }
        out
    }
}

enum Feedback {
    Nack(Vec<u16>),
    Pli,
}

struct Outcome {
    sources: HashMap<u64, VideoFrame>,
    /// (frame number, PSNR) of every decoded frame, in decode order.
    decoded: Vec<(u64, f64)>,
    keyframes_sent: usize,
    keyframe_requests: usize,
    first_request_frame: Option<u64>,
    recovered: u64,
    fwd_dropped: usize,
    bytes_sent: usize,
    /// Glass-to-glass latency per decoded frame (decode time minus the capture time read from the picture).
    latencies_us: Vec<u64>,
}

fn run(frames: u64, loss: f64, jitter_us: u64, nack: bool, seed: u64) -> Outcome {
    let fmt = VideoFormat::P360;
    let mut cam = SyntheticCamera::new(fmt, Pacing::Virtual { start_us: T0 }).unwrap();
    let mut enc = H264Encoder::new(H264Config::preset(Preset::P360)).unwrap();
    let mut sender = H264RtpSender::new(0x1234, 60_000);
    let mut history = PacketHistory::new(1024, 2_000_000);
    let mut fwd = Link::new(seed, 20_000, jitter_us, loss);
    let mut back: Vec<(u64, Feedback)> = Vec::new();
    let mut rx =
        VideoReceiver::new(VideoReceiverConfig { reorder_wait_us: jitter_us + 5_000, ..Default::default() });
    let mut dec = H264Decoder::new().unwrap();
    let mut out = Outcome {
        sources: HashMap::new(),
        decoded: Vec::new(),
        keyframes_sent: 0,
        keyframe_requests: 0,
        first_request_frame: None,
        recovered: 0,
        fwd_dropped: 0,
        bytes_sent: 0,
        latencies_us: Vec::new(),
    };
    let mut pli_pending = false;
    let mut last_pli = None::<u64>;
    let interval = fmt.frame_interval_us();
    let end = frames * interval + 1_000_000;
    let mut next_frame = 0u64;
    let mut now = 0u64;
    while now <= end {
        // Sender: feedback that has arrived.
        back.retain(|(at, fb)| {
            if *at > now {
                return true;
            }
            match fb {
                Feedback::Nack(lost) => {
                    for p in history.retransmissions(lost, now) {
                        fwd.send(now, p.to_vec());
                    }
                }
                Feedback::Pli => pli_pending = true,
            }
            false
        });
        // Sender: capture and send a frame when due.
        if next_frame < frames && now >= next_frame * interval {
            let src = cam.next_frame().unwrap();
            if std::mem::take(&mut pli_pending) {
                enc.request_keyframe();
            }
            let e = enc.encode(&src).unwrap();
            out.keyframes_sent += usize::from(e.keyframe);
            out.bytes_sent += e.size();
            for p in sender.packetize(&e).unwrap() {
                let bytes = p.to_bytes();
                history.push(p.sequence, bytes.clone(), now);
                fwd.send(now, bytes);
            }
            out.sources.insert(src.frame_no, src);
            next_frame += 1;
        }
        // Receiver.
        for b in fwd.deliver(now) {
            rx.insert(&RtpView::parse(&b).unwrap(), now);
        }
        while let Some(ev) = rx.poll(now) {
            if let ReceiverEvent::Frame(f) = ev {
                match dec.decode_nals(f.nals.iter().map(|n| n.as_slice())) {
                    DecodeOutcome::Frame(pic) => {
                        let (no, cap) = decode_embedded(&pic).expect("embedded code readable");
                        assert_eq!(
                            Some(cap),
                            f.capture_us,
                            "capture time in picture matches the RTP extension"
                        );
                        let psnr = out.sources[&no].psnr_luma(&pic).unwrap();
                        out.latencies_us.push(T0 + now - cap);
                        out.decoded.push((no, psnr));
                    }
                    DecodeOutcome::NeedsKeyframe => rx.request_keyframe(),
                    DecodeOutcome::NoFrame => {}
                }
            }
        }
        if nack && now.is_multiple_of(5_000) {
            let lost = rx.nack_list(now);
            if !lost.is_empty() {
                back.push((now + 20_000, Feedback::Nack(lost)));
            }
        }
        if rx.take_keyframe_request() && last_pli.is_none_or(|t| now - t >= 100_000) {
            last_pli = Some(now);
            out.keyframe_requests += 1;
            out.first_request_frame.get_or_insert(next_frame);
            back.push((now + 20_000, Feedback::Pli));
        }
        now += 1_000;
    }
    out.recovered = rx.stats().recovered;
    out.fwd_dropped = fwd.dropped;
    out
}

fn mean_psnr(o: &Outcome) -> f64 {
    o.decoded.iter().map(|d| d.1).sum::<f64>() / o.decoded.len() as f64
}

#[test]
fn clean_path_with_reordering_decodes_every_frame() {
    let o = run(90, 0.0, 15_000, true, 1);
    // Per second of capture time, at least 29 of 30 frames decoded.
    for sec in 0..3 {
        let n = o.decoded.iter().filter(|(no, _)| no / 30 == sec).count();
        assert!(n >= 29, "second {sec}: {n} frames");
    }
    // Decoded in order, each exactly once.
    assert!(o.decoded.windows(2).all(|w| w[1].0 == w[0].0 + 1));
    let psnr = mean_psnr(&o);
    // 20 ms path + up to 15 ms jitter + waiting for the last packet of the frame.
    let mut lat = o.latencies_us.clone();
    lat.sort_unstable();
    let p95 = lat[lat.len() * 95 / 100];
    println!(
        "glass-to-glass (virtual clock, codec time excluded): min {} ms, p95 {} ms",
        lat[0] / 1000,
        p95 / 1000
    );
    assert!(lat[0] >= 20_000 && p95 <= 40_000, "{lat:?}");
    let kbps = o.bytes_sent as f64 * 8.0 / 3.0 / 1000.0;
    println!("clean: {} frames, mean PSNR {psnr:.2} dB, {kbps:.0} kbit/s", o.decoded.len());
    assert!(kbps < 800.0 * 1.3, "rate control holds the target: {kbps} kbit/s");
    assert!(psnr >= 32.0, "mean PSNR {psnr}");
    assert_eq!(o.keyframes_sent, 1);
}

#[test]
fn five_percent_loss_with_nack_recovers_every_frame() {
    let o = run(150, 0.05, 10_000, true, 7);
    println!(
        "5% loss + NACK: dropped {} packets, recovered {}, decoded {}/150, keyframe requests {}, PSNR {:.2}",
        o.fwd_dropped,
        o.recovered,
        o.decoded.len(),
        o.keyframe_requests,
        mean_psnr(&o)
    );
    assert!(o.fwd_dropped > 20);
    assert!(o.recovered > 0);
    assert_eq!(o.decoded.len(), 150, "every frame decodes once its packets are recovered");
    assert_eq!(o.keyframe_requests, 0);
    assert_eq!(o.keyframes_sent, 1);
    assert!(mean_psnr(&o) >= 32.0);
}

#[test]
fn loss_without_retransmission_requests_keyframe_and_recovers() {
    let o = run(150, 0.05, 10_000, false, 3);
    println!(
        "5% loss, no NACK: decoded {}/150, keyframe requests {}, keyframes sent {}",
        o.decoded.len(),
        o.keyframe_requests,
        o.keyframes_sent
    );
    assert!(o.keyframe_requests > 0, "the receiver asks for a keyframe");
    assert!(o.keyframes_sent > 1, "the sender answers with keyframes");
    let first = o.first_request_frame.unwrap();
    let after = o.decoded.iter().filter(|(no, _)| *no > first + 3).count();
    assert!(after > 0, "pictures resume after the keyframe");
    // Nothing broken is shown: every decoded picture matches its source.
    assert!(
        o.decoded.iter().all(|(_, p)| *p > 30.0),
        "{:?}",
        o.decoded.iter().map(|d| d.1 as i32).collect::<Vec<_>>()
    );
}
