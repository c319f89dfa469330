//! Local recording with consent: the host records a call of three real clients
//! (each publishing its own tone and a synthetic camera) into an MP4 file on its
//! own device. Everyone is told; a guest and a staff member are refused; a late
//! joiner sees the recording on entering; the relay restarts mid-recording (every
//! connection drops, the recorder's too) and the file goes on. ffprobe must find
//! H.264 video and audio lasting as long as the recording ran, and the decoded
//! audio must carry every participant's tone.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clinicmeet_e2e::*;
use serde_json::Value;

/// How long the host records.
const RECORD_FOR: Duration = Duration::from_secs(30);
const TONES: [f64; 3] = [440.0, 660.0, 990.0];

fn publish(tone: f64) -> Vec<String> {
    [
        "--publish",
        "synthetic",
        "--tone-hz",
        &tone.to_string(),
        "--video-size",
        "320x180",
        "--fps",
        "15",
        "--simulcast-low-bps",
        "0",
        "--stats-interval-ms",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn recording_by(v: &Value) -> Option<&str> {
    v.get("recording").and_then(|r| r.get("by")).and_then(Value::as_str)
}

fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        .arg(path)
        .output()
        .expect("ffprobe (install ffmpeg: scripts/install-deps.sh)");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The file's audio, decoded by ffmpeg to 48 kHz mono.
fn decoded_audio(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect()
}

/// Power of `hz` in `s` (Goertzel), normalised by the length.
fn goertzel(s: &[f32], hz: f64) -> f64 {
    let k = 2.0 * (std::f64::consts::TAU * hz / 48_000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in s {
        let s0 = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - k * s1 * s2) / (s.len() as f64 * s.len() as f64)
}

#[test]
fn the_host_records_a_three_party_call_that_ffmpeg_plays_with_every_voice() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("call.mp4");
    let mut clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&["--allow-recording"]);
    let mut host = clinic.doctor.join(&code, &refs(&publish(TONES[0])));
    let host_id = my_id(&host.expect_event("joined", STEP));
    let mut guest = clinic.guest("Patient").join(&code, &refs(&publish(TONES[1])));
    guest.expect_event("joined", STEP);

    // Let the media settle, then record.
    std::thread::sleep(Duration::from_secs(2));
    host.send(&format!("/record start {}", file.display()));
    host.expect_event("recording_started", STEP);
    let started = Instant::now();
    let told = guest.expect("recording announced", STEP, |v| v["event"] == "recording_changed");
    assert_eq!(recording_by(&told), Some(host_id.as_str()));

    // A guest may not record.
    guest.send("/record start /tmp/not-allowed.mp4");
    let refused = guest.expect("guest refused", STEP, |v| v["event"] == "error");
    assert!(is_error(&refused, "forbidden"), "{refused}");
    assert!(!Path::new("/tmp/not-allowed.mp4").exists());

    // A staff member joining late sees the recording on entering, and may not record either.
    let mut nurse = clinic.staff("Nurse").join(&code, &refs(&publish(TONES[2])));
    let joined = nurse.expect_event("joined", STEP);
    assert_eq!(recording_by(&joined), Some(host_id.as_str()), "late joiner sees it: {joined}");
    nurse.send("/record start /tmp/not-allowed.mp4");
    let refused = nurse.expect("staff refused", STEP, |v| v["event"] == "error");
    assert!(is_error(&refused, "forbidden"), "{refused}");

    // Mid-recording every link drops (the relay restarts, forgetting the announcement):
    // the recorder resumes, announces it again, and its file goes on.
    std::thread::sleep(Duration::from_secs(10));
    clinic.relay.restart();
    // A reconnect attempt made while the relay was down waits out the client's connect timeout (10 s).
    let back = Duration::from_secs(60);
    host.expect_next("host resumed", back, |v| v["event"] == "joined" && v["resumed"] == true);
    // The guest learns it again from its resumed join state or, resuming first, from the event.
    let again = guest.expect_next("recording announced again", back, |v| {
        (v["event"] == "recording_changed" || (v["event"] == "joined" && v["resumed"] == true))
            && recording_by(v).is_some()
    });
    assert_eq!(recording_by(&again), Some(host_id.as_str()));

    std::thread::sleep(RECORD_FOR.saturating_sub(started.elapsed()));
    host.send("/record stop");
    let finished = host.expect_event("recording_finished", STEP);
    let recorded = started.elapsed().as_secs_f64();
    guest.expect_next("recording ended", STEP, |v| {
        v["event"] == "recording_changed" && v["recording"].is_null()
    });
    eprintln!("recording: {finished}");
    for s in [&mut host, &mut guest, &mut nurse] {
        s.leave();
        s.wait_exit(STEP);
    }

    // The relay kept audit rows of start and stop (no names in them).
    let audit = clinic.relay.admin(&["audit", "--limit", "200"]).to_string();
    assert!(audit.contains("recording_start") && audit.contains("recording_stop"), "{audit}");
    assert!(!audit.contains("Patient"), "{audit}");

    let probe = ffprobe(&file);
    let streams = probe["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["codec_type"] == "video").expect("a video stream");
    assert_eq!(video["codec_name"], "h264", "{probe}");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(640), Some(360)));
    assert!(streams.iter().any(|s| s["codec_type"] == "audio" && s["codec_name"] == "opus"), "{probe}");
    let duration: f64 = probe["format"]["duration"].as_str().and_then(|d| d.parse().ok()).expect("duration");
    eprintln!("file: {duration:.2} s for {recorded:.2} s recorded, {} bytes", probe["format"]["size"]);
    assert!((duration - recorded).abs() / recorded < 0.05, "duration {duration} s, recorded {recorded} s");

    // Every participant's tone is in the recorded audio (the host's own microphone too).
    let pcm = decoded_audio(&file);
    let heard_for = pcm.len() as f64 / 48_000.0;
    assert!((heard_for - recorded).abs() / recorded < 0.05, "audio lasts {heard_for} s of {recorded} s");
    // The last 8 s: after the relay restart, everyone back.
    let tail = &pcm[pcm.len().saturating_sub(8 * 48_000)..];
    let noise = [300.0, 550.0, 800.0, 1_200.0].map(|hz| goertzel(tail, hz)).into_iter().fold(0.0, f64::max);
    for hz in TONES {
        let p = goertzel(tail, hz);
        eprintln!(
            "tone {hz} Hz: {:.1} dB over the loudest off-tone bin",
            10.0 * (p / noise.max(1e-15)).log10()
        );
        assert!(p > 100.0 * noise, "tone {hz} Hz missing: power {p:e}, off-tone {noise:e}");
    }
}

#[test]
fn a_meeting_that_does_not_allow_recording_refuses_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("never.mp4");
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    let mut host =
        clinic.doctor.join(&code, &["--record", file.to_str().unwrap(), "--stats-interval-ms", "0"]);
    host.expect_event("joined", STEP);
    let refused = host.expect("refused", STEP, |v| v["event"] == "error");
    assert!(is_error(&refused, "forbidden"), "{refused}");
    assert!(!file.exists(), "no file is made when the relay refuses");
    host.leave();
    host.wait_exit(STEP);
}
