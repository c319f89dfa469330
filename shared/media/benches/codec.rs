//! Codec and RTP benchmarks (run with `cargo bench -p clinicmeet-media --bench codec`).
//! Prints a table; figures, not pass/fail.

use std::time::Instant;

use clinicmeet_media::capture::synthetic::{SyntheticCamera, SyntheticMicrophone};
use clinicmeet_media::capture::{AudioSource, Pacing, VideoFormat, VideoSource};
use clinicmeet_media::codec::h264::{DecodeOutcome, H264Config, H264Decoder, H264Encoder, Preset};
use clinicmeet_media::codec::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use clinicmeet_media::video_receiver::{ReceiverEvent, VideoReceiver, VideoReceiverConfig};
use clinicmeet_rtp::h264::H264RtpSender;
use clinicmeet_rtp::RtpView;

fn video(name: &str, preset: Preset, frames: usize) {
    let cfg = H264Config::preset(preset);
    let fmt = VideoFormat { width: cfg.width, height: cfg.height, fps: cfg.fps as u32 };
    let mut cam = SyntheticCamera::new(fmt, Pacing::Virtual { start_us: 0 }).unwrap();
    let src: Vec<_> = (0..frames).map(|_| cam.next_frame().unwrap()).collect();
    let mut enc = H264Encoder::new(cfg).unwrap();
    let t = Instant::now();
    let encoded: Vec<_> = src.iter().map(|f| enc.encode(f).unwrap()).collect();
    let enc_ms = t.elapsed().as_secs_f64() * 1000.0 / frames as f64;

    let mut sender = H264RtpSender::new(1, 0);
    let t = Instant::now();
    let packets: Vec<Vec<u8>> =
        encoded.iter().flat_map(|e| sender.packetize(e).unwrap()).map(|p| p.to_bytes()).collect();
    let mut rx = VideoReceiver::new(VideoReceiverConfig::default());
    let mut aus = Vec::with_capacity(frames);
    for p in &packets {
        rx.insert(&RtpView::parse(p).unwrap(), 0);
        while let Some(ReceiverEvent::Frame(f)) = rx.poll(0) {
            aus.push(f);
        }
    }
    let rtp_ms = t.elapsed().as_secs_f64() * 1000.0 / frames as f64;

    let mut dec = H264Decoder::new().unwrap();
    let t = Instant::now();
    let mut psnr = 0.0;
    let mut n = 0;
    let mut decoded = Vec::with_capacity(frames);
    for au in &aus {
        if let DecodeOutcome::Frame(f) = dec.decode_nals(au.nals.iter().map(|n| n.as_slice())) {
            decoded.push(f);
        }
    }
    let dec_ms = t.elapsed().as_secs_f64() * 1000.0 / frames as f64;
    for (s, d) in src.iter().zip(&decoded) {
        psnr += s.psnr_luma(d).unwrap();
        n += 1;
    }
    let kbps = encoded.iter().map(|e| e.size()).sum::<usize>() as f64 * 8.0
        / (frames as f64 / cfg.fps as f64)
        / 1000.0;
    println!(
        "| {name} | {:.0} kbit/s | {enc_ms:.2} | {dec_ms:.2} | {rtp_ms:.3} | {:.0} % | {:.1} dB | {} pkts |",
        kbps,
        (enc_ms + dec_ms) * cfg.fps as f64 / 10.0,
        psnr / n as f64,
        packets.len()
    );
}

fn opus_rtf() {
    let seconds = 20;
    let frames = seconds * 50;
    let mut mic = SyntheticMicrophone::tone(440.0);
    let input: Vec<_> = (0..frames).map(|_| mic.read_frame().unwrap()).collect();
    let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
    let mut dec = OpusDecoder::new().unwrap();
    let t = Instant::now();
    let packets: Vec<_> = input.iter().map(|f| enc.encode(f).unwrap().unwrap_or_default()).collect();
    let enc_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for p in &packets {
        std::hint::black_box(dec.decode_or_conceal(p));
    }
    let dec_s = t.elapsed().as_secs_f64();
    println!(
        "\nOpus 48 kHz mono 20 ms, 32 kbit/s, FEC on: encode {:.3} ms/frame, decode {:.3} ms/frame, \
         encode+decode real-time factor {:.4} ({:.0}x faster than real time)",
        enc_s * 1000.0 / frames as f64,
        dec_s * 1000.0 / frames as f64,
        (enc_s + dec_s) / seconds as f64,
        seconds as f64 / (enc_s + dec_s)
    );
}

fn main() {
    // `cargo test --benches` passes --bench; a quick smoke run then.
    let quick = std::env::args().any(|a| a == "--quick");
    let frames = if quick { 10 } else { 300 };
    println!("H.264 (openh264, one thread, constrained baseline, synthetic pattern), {frames} frames\n");
    println!("| preset | bitrate | encode ms/frame | decode ms/frame | RTP pack+assemble ms/frame | one core at 30 fps (enc+dec) | PSNR | packets |");
    println!("|---|---|---|---|---|---|---|---|");
    video("360p30 @800k", Preset::P360, frames);
    video("720p30 @2.5M", Preset::P720, frames);
    opus_rtf();
}
