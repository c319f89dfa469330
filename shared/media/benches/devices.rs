//! Device-side costs: pixel format conversions at 720p (ms per frame) and audio
//! processing real-time factor. Run: `cargo bench -p clinicmeet-media --bench devices`.
//! Plain `main` (harness = false); prints a table, asserts nothing.

use std::hint::black_box;
use std::time::Instant;

use clinicmeet_media::convert::{self, PixelFormat, RawImage};
use clinicmeet_media::processing::{AudioProcessor, ProcessingConfig};

const W: u32 = 1280;
const H: u32 = 720;

fn time_per_iter(iters: u32, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() * 1000.0 / f64::from(iters)
}

fn pattern(bytes_per_pixel: usize) -> Vec<u8> {
    (0..W as usize * H as usize * bytes_per_pixel).map(|i| (i * 7 % 251) as u8).collect()
}

fn main() {
    println!("pixel conversions, {W}x{H}, one thread:");
    let cases: [(&str, PixelFormat, Vec<u8>); 5] = [
        ("RGB24 -> I420", PixelFormat::Rgb24, pattern(3)),
        ("RGBA  -> I420", PixelFormat::Rgba, pattern(4)),
        ("BGRA  -> I420", PixelFormat::Bgra, pattern(4)),
        ("YUYV  -> I420", PixelFormat::Yuyv, pattern(2)),
        ("NV12  -> I420", PixelFormat::Nv12, (0..W as usize * H as usize * 3 / 2).map(|i| i as u8).collect()),
    ];
    let mut out = clinicmeet_media::VideoFrame::new(W, H);
    for (name, format, data) in &cases {
        let img = RawImage::packed(*format, W, H, data);
        let ms = time_per_iter(200, || {
            convert::to_i420_into(black_box(&img), &mut out).expect("convert");
        });
        println!("  {name}: {ms:.3} ms/frame");
    }
    let mut rgba = vec![0u8; W as usize * H as usize * 4];
    let ms = time_per_iter(200, || convert::i420_to_rgba_into(black_box(&out), &mut rgba).expect("convert"));
    println!("  I420  -> RGBA: {ms:.3} ms/frame");

    println!("audio processing, 48 kHz mono, 20 ms frames, 30 s of audio:");
    let frames = 1500usize;
    let far: Vec<f32> = (0..frames * 960).map(|n| 0.3 * (n as f32 * 0.0576).sin()).collect();
    let mic: Vec<f32> = far
        .iter()
        .enumerate()
        .map(|(n, v)| {
            0.1 * far.get(n.saturating_sub(2000)).copied().unwrap_or(0.0)
                + 0.05 * (n as f32 * 0.02).sin() * (v * 0.0 + 1.0)
        })
        .collect();
    let configs = [
        ("AEC only", ProcessingConfig { echo_cancellation: true, ..ProcessingConfig::passthrough() }),
        ("AEC+NS+AGC (default, 32 kHz internal)", ProcessingConfig::default()),
        (
            "AEC+NS+AGC full band (48 kHz internal)",
            ProcessingConfig { full_band: true, ..ProcessingConfig::default() },
        ),
    ];
    for (name, cfg) in configs {
        let mut p = AudioProcessor::new(cfg).expect("processor");
        let mut buf = vec![0.0f32; 960];
        let t = Instant::now();
        for i in 0..frames {
            let r = i * 960..(i + 1) * 960;
            p.process_render(&far[r.clone()]).expect("render");
            buf.copy_from_slice(&mic[r]);
            p.process_capture(&mut buf).expect("capture");
        }
        let cpu = t.elapsed().as_secs_f64();
        let audio = frames as f64 * 0.020;
        println!(
            "  {name}: {:.3} ms per 20 ms frame, real-time factor {:.4} ({:.1}% of one core)",
            cpu * 1000.0 / frames as f64,
            cpu / audio,
            100.0 * cpu / audio
        );
    }
}
