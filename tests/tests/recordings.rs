//! Recordings in and out: one client publishes a generated Y4M video and WAV tone
//! (`--video-file`, `--audio-file`), another records what it receives
//! (`--record-video` Annex B, `--record-audio` WAV); the recorded H.264 must decode
//! to pictures like the source and the recorded audio must carry the tone.

use std::time::Duration;

use clinicmeet_e2e::*;
use clinicmeet_media::capture::file::{wav_bytes, WavAudio, Y4mVideo};
use clinicmeet_media::capture::VideoFormat;
use clinicmeet_media::codec::h264::{split_annex_b, DecodeOutcome, H264Decoder};
use clinicmeet_media::frame::VideoFrame;

const W: u32 = 320;
const H: u32 = 180;

/// A moving diagonal gradient with a bright square whose position encodes the frame.
fn source_frame(i: u32) -> VideoFrame {
    let mut f = VideoFrame::new(W, H);
    for y in 0..H {
        for x in 0..W {
            let v = ((x + y + i * 4) % 200) as u8 + 20;
            f.y[(y * W + x) as usize] = v;
        }
    }
    let sx = (i * 9) % (W - 40);
    for y in 60..100 {
        for x in sx..sx + 40 {
            f.y[(y * W + x) as usize] = 235;
        }
    }
    f
}

fn zero_crossing_hz(s: &[f32]) -> f64 {
    let crossings = s.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    crossings as f64 * 48_000.0 / s.len() as f64
}

#[test]
fn published_recordings_arrive_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<VideoFrame> = (0..30).map(source_frame).collect();
    let video = Y4mVideo { format: VideoFormat { width: W, height: H, fps: 15 }, frames: frames.clone() };
    let y4m = dir.path().join("source.y4m");
    std::fs::write(&y4m, video.to_bytes()).unwrap();
    let tone: Vec<f32> =
        (0..48_000).map(|i| (i as f32 * 1_000.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.4).collect();
    let wav = dir.path().join("source.wav");
    std::fs::write(&wav, wav_bytes(&tone)).unwrap();
    let h264 = dir.path().join("received.h264");
    let heard = dir.path().join("received.wav");

    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    let mut a = clinic.doctor.join(
        &code,
        &[
            "--video-file",
            y4m.to_str().unwrap(),
            "--audio-file",
            wav.to_str().unwrap(),
            "--keyframe-interval-secs",
            "2",
        ],
    );
    let a_id = my_id(&a.expect_event("joined", STEP));
    let guest = clinic.guest("Recorder");
    let mut b = guest
        .join(&code, &["--record-video", h264.to_str().unwrap(), "--record-audio", heard.to_str().unwrap()]);
    b.expect_event("joined", STEP);
    b.expect("video from A", STEP, |v| {
        v["event"] == "stats"
            && v["participant_id"] == a_id.as_str()
            && v["kind"] == "video"
            && v["frames_decoded"].as_u64() > Some(30)
    });
    std::thread::sleep(Duration::from_secs(3));
    b.leave();
    b.wait_exit(STEP);
    a.leave();

    // The recorded Annex B decodes to pictures of the source.
    let bytes = std::fs::read(&h264).expect("video recording written");
    assert!(bytes.len() > 10_000, "recording is only {} bytes", bytes.len());
    let nals = split_annex_b(&bytes);
    let mut dec = H264Decoder::new().unwrap();
    let mut decoded = Vec::new();
    // Access units: parameter sets, SEI and prefix NALs go with the next slice
    // (the sender encodes one slice per picture).
    let mut unit: Vec<&[u8]> = Vec::new();
    for nal in &nals {
        unit.push(nal);
        let kind = nal.first().map(|b| b & 0x1f);
        if matches!(kind, Some(1) | Some(5)) {
            if let DecodeOutcome::Frame(pic) = dec.decode_nals(unit.iter().copied()) {
                decoded.push(pic);
            }
            unit.clear();
        }
    }
    assert!(decoded.len() >= 30, "only {} pictures decoded from {} NAL units", decoded.len(), nals.len());
    let best: Vec<f64> = decoded
        .iter()
        .skip(decoded.len() / 2)
        .take(10)
        .map(|p| {
            assert_eq!((p.width, p.height), (W, H));
            frames.iter().filter_map(|s| p.psnr_luma(s)).fold(0.0, f64::max)
        })
        .collect();
    let mean = best.iter().sum::<f64>() / best.len() as f64;
    eprintln!(
        "recorded video: {} bytes, {} pictures, PSNR vs best source frame {mean:.1} dB",
        bytes.len(),
        decoded.len()
    );
    assert!(mean > 28.0, "recorded pictures do not match the source: {best:?}");

    // The recorded audio carries the 1 kHz tone.
    let rec = WavAudio::parse(&std::fs::read(&heard).expect("audio recording written")).unwrap();
    let tail = &rec.samples[rec.samples.len().saturating_sub(48_000)..];
    let hz = zero_crossing_hz(tail);
    eprintln!("recorded audio: {} samples, tone {hz:.1} Hz", rec.samples.len());
    assert!((hz - 1_000.0).abs() < 10.0, "recorded tone {hz} Hz");
}
