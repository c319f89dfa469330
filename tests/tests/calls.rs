//! Calls through the SFU: a real relay process and real `clinicmeet-cli` processes
//! publishing synthetic video (test pattern with embedded frame number and capture
//! time) and tones, on loopback.

use std::collections::HashMap;
use std::time::Duration;

use clinicmeet_e2e::*;
use serde_json::Value;

fn publish_args(tone: &str) -> Vec<String> {
    ["--publish", "synthetic", "--tone-hz", tone, "--video-size", "640x360", "--fps", "30"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Stats lines of a session grouped by track id, in order.
fn stats_by_track(s: &Session) -> HashMap<String, Vec<Value>> {
    let mut m: HashMap<String, Vec<Value>> = HashMap::new();
    for v in s.seen.iter().filter(|v| v["event"] == "stats") {
        m.entry(v["track_id"].as_str().unwrap_or_default().to_string()).or_default().push(v.clone());
    }
    m
}

/// The stats lines of `participant`'s track of `kind`, in order.
fn track_lines<'a>(tracks: &'a HashMap<String, Vec<Value>>, participant: &str, kind: &str) -> &'a [Value] {
    tracks
        .values()
        .find(|l| l[0]["kind"] == kind && l[0]["participant_id"] == participant)
        .unwrap_or_else(|| panic!("no {kind} track of {participant}: {tracks:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn nums(lines: &[Value], key: &str) -> Vec<f64> {
    lines.iter().filter_map(|v| v[key].as_f64()).collect()
}

#[test]
fn three_clients_see_and_hear_each_other() {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    let tones = ["440", "660", "880"];
    let mut sessions = Vec::new();
    let mut ids = Vec::new();
    let guests: Vec<Client> = (1..3).map(|i| clinic.guest(&format!("Guest {i}"))).collect();
    for (i, tone) in tones.iter().enumerate() {
        let client = if i == 0 { &clinic.doctor } else { &guests[i - 1] };
        let mut s = client.join(&code, &as_refs(&publish_args(tone)));
        let joined = s.expect_event("joined", STEP);
        ids.push(my_id(&joined));
        sessions.push(s);
    }
    std::thread::sleep(Duration::from_secs(15));
    for s in &mut sessions {
        s.drain(Duration::from_millis(200));
    }
    for (i, s) in sessions.iter().enumerate() {
        let tracks = stats_by_track(s);
        let mut videos = 0;
        let mut heard = Vec::new();
        for (track, lines) in &tracks {
            let pid = lines[0]["participant_id"].as_str().unwrap_or_default();
            assert_ne!(pid, ids[i], "own track received");
            // Skip the first 3 s (join, first keyframe).
            let steady: Vec<Value> = lines.iter().skip(3).cloned().collect();
            assert!(steady.len() >= 8, "{}: too few stats lines for {track}: {}", s.name, lines.len());
            match lines[0]["kind"].as_str() {
                Some("video") => {
                    videos += 1;
                    let fps = median(nums(&steady, "fps"));
                    let psnr = nums(&steady, "psnr_db");
                    let psnr = psnr.iter().sum::<f64>() / psnr.len().max(1) as f64;
                    let p95 = nums(&steady, "latency_ms_p95");
                    let p95_med = median(p95.clone());
                    let p95_max = p95.iter().copied().fold(0.0, f64::max);
                    eprintln!(
                        "{} ← {pid}: fps median {fps:.1} (min {:.0}), mean PSNR {psnr:.1} dB, latency p95 median {p95_med:.1} ms max {p95_max:.1} ms, freezes {}",
                        s.name,
                        nums(&steady, "fps").iter().copied().fold(f64::MAX, f64::min),
                        steady.last().unwrap()["freezes"]
                    );
                    assert!(fps >= 28.0, "{}: fps {fps}", s.name);
                    assert!(psnr >= 30.0, "{}: psnr {psnr}", s.name);
                    assert!(p95_med < 150.0, "{}: latency p95 {p95_med}", s.name);
                    // One host, one clock: no offset is applied to the capture times.
                    let offsets = nums(&steady, "clock_offset_ms");
                    assert!(offsets.iter().all(|o| *o == 0.0), "{}: clock offsets {offsets:?}", s.name);
                    let skew = median(nums(&steady, "av_skew_ms"));
                    eprintln!("{} ← {pid}: lip sync skew median {skew:.1} ms", s.name);
                    assert!(skew.abs() <= 45.0, "{}: audio/video skew {skew} ms", s.name);
                }
                Some("audio") => {
                    let hz = median(nums(&steady, "tone_hz"));
                    eprintln!("{} ← {pid}: tone {hz:.1} Hz", s.name);
                    heard.push(hz);
                }
                other => panic!("unexpected kind {other:?}"),
            }
        }
        assert_eq!(videos, 2, "{}: {tracks:?}", s.name);
        let mut expect: Vec<f64> =
            tones.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, t)| t.parse().unwrap()).collect();
        heard.sort_by(|a, b| a.total_cmp(b));
        expect.sort_by(|a, b| a.total_cmp(b));
        assert_eq!(heard.len(), 2, "{}: heard {heard:?}", s.name);
        for (h, e) in heard.iter().zip(&expect) {
            assert!((h - e).abs() < 5.0, "{}: heard {heard:?}, expected {expect:?}", s.name);
        }
    }
}

/// The newest stats line of `participant`'s track of `kind`.
fn last_stats(s: &mut Session, participant: &str, kind: &str) -> Option<Value> {
    s.drain(Duration::from_millis(100));
    s.seen
        .iter()
        .rev()
        .find(|v| v["event"] == "stats" && v["participant_id"] == participant && v["kind"] == kind)
        .cloned()
}

/// Waits until a stats line of `participant`'s `kind` track satisfies `pred`.
fn wait_stats(
    s: &mut Session,
    participant: &str,
    kind: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = s.seen.len();
    let p = participant.to_string();
    let k = kind.to_string();
    let v = s.expect(what, Duration::from_secs(10), |v| {
        v["event"] == "stats" && v["participant_id"] == p.as_str() && v["kind"] == k.as_str() && pred(v)
    });
    let _ = start;
    v
}

#[test]
fn mid_call_joiner_gets_a_picture_within_a_second() {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    let mut args = publish_args("440");
    args.extend(["--keyframe-interval-secs".into(), "30".into()]);
    let mut a = clinic.doctor.join(&code, &as_refs(&args));
    let a_id = my_id(&a.expect_event("joined", STEP));
    let b = clinic.guest("Early");
    let mut bs = b.join(&code, &as_refs(&args));
    bs.expect_event("joined", STEP);
    // Let the first keyframes pass: the next periodic one is 30 s away.
    std::thread::sleep(Duration::from_secs(4));
    let c = clinic.guest("Late");
    let mut cs = c.join(&code, &["--stats-interval-ms", "250"]);
    cs.expect_event("joined", STEP);
    let v = wait_stats(&mut cs, &a_id, "video", "first frame", |v| v["frames_decoded"].as_u64() > Some(0));
    let ms = v["first_frame_ms"].as_u64().unwrap();
    eprintln!("mid-call joiner: first picture {ms} ms after subscribing");
    assert!(ms < 1_000, "first picture after {ms} ms");
}

/// The doctor hosting; "Rebel" publishing (and, through a test flag, ignoring host
/// mutes); "Viewer" receiving, with stats lines every 500 ms.
struct RebelCall {
    clinic: Clinic,
    host: Session,
    r: Session,
    r_id: String,
    v: Session,
}

impl RebelCall {
    fn start() -> RebelCall {
        RebelCall::start_with(&[])
    }

    /// With `create` options for the meeting.
    fn start_with(create: &[&str]) -> RebelCall {
        let clinic = Clinic::new(&[]);
        let (_, code) = clinic.doctor.create(create);
        let mut host = clinic.doctor.join(&code, &["--stats-interval-ms", "500"]);
        host.expect_event("joined", STEP);
        let mut args = publish_args("660");
        args.push("--ignore-host-mute".into());
        let mut r = clinic.guest("Rebel").join(&code, &as_refs(&args));
        let r_id = my_id(&r.expect_event("joined", STEP));
        let mut v = clinic.guest("Viewer").join(&code, &["--stats-interval-ms", "500"]);
        v.expect_event("joined", STEP);
        RebelCall { clinic, host, r, r_id, v }
    }
}

#[test]
fn camera_off_and_screen_share_follow_forwarding() {
    let RebelCall { clinic: _clinic, mut host, mut r, r_id, mut v } = RebelCall::start();
    wait_stats(&mut v, &r_id, "video", "video flowing", |s| s["fps"].as_f64() > Some(20.0));
    wait_stats(&mut v, &r_id, "audio", "audio flowing", |s| s["bitrate_bps"].as_u64() > Some(10_000));

    // Camera off: everyone sees it, no video is forwarded; back on: video again.
    r.send("/media audio");
    for s in [&mut host, &mut v] {
        let rid = r_id.clone();
        s.expect("camera off", STEP, move |e| {
            e["event"] == "media_changed"
                && e["participant_id"] == rid.as_str()
                && e["media"]["video"] == false
        });
    }
    std::thread::sleep(Duration::from_millis(1500));
    wait_stats(&mut v, &r_id, "video", "video stopped", |s| s["bitrate_bps"] == 0);
    r.send("/media audio video");
    wait_stats(&mut v, &r_id, "video", "video back", |s| s["fps"].as_f64() > Some(20.0));

    // Screen share: published, seen, forwarded; stopped: unpublished.
    r.send("/screen on");
    let tp =
        v.expect("screen track", STEP, |e| e["event"] == "track_published" && e["track"]["kind"] == "screen");
    let screen_id = tp["track"]["track_id"].as_str().unwrap().to_string();
    wait_stats(&mut v, &r_id, "screen", "screen frames", |s| s["frames_decoded"].as_u64() > Some(0));
    let rid = r_id.clone();
    host.expect("screen flag", STEP, move |e| {
        e["event"] == "media_changed" && e["participant_id"] == rid.as_str() && e["media"]["screen"] == true
    });
    r.send("/screen off");
    v.expect("screen gone", STEP, move |e| {
        e["event"] == "track_unpublished" && e["track_id"] == screen_id.as_str()
    });
}

#[test]
fn host_mute_stops_forwarding_even_if_the_client_keeps_sending() {
    let RebelCall { clinic: _clinic, mut host, mut r, r_id, mut v } = RebelCall::start();
    wait_stats(&mut v, &r_id, "audio", "audio flowing", |s| s["bitrate_bps"].as_u64() > Some(10_000));

    // Host mute: the rebel keeps sending (hidden test flag), the relay must not forward it.
    host.send("/mute Rebel");
    r.expect_event("muted", STEP);
    let rid = r_id.clone();
    v.expect("muted seen", STEP, move |e| {
        e["event"] == "media_changed" && e["participant_id"] == rid.as_str() && e["media"]["audio"] == false
    });
    std::thread::sleep(Duration::from_millis(2500));
    let last = last_stats(&mut v, &r_id, "audio").unwrap();
    assert_eq!(last["bitrate_bps"], 0, "host-muted audio still forwarded: {last}");
}

#[test]
fn with_self_unmute_off_a_muted_participant_is_not_heard_until_a_moderator_allows_it() {
    let RebelCall { clinic: _clinic, mut host, mut r, r_id, mut v } =
        RebelCall::start_with(&["--no-self-unmute"]);
    wait_stats(&mut v, &r_id, "audio", "audio flowing", |s| s["bitrate_bps"].as_u64() > Some(10_000));
    host.send("/mute Rebel");
    r.expect_event("muted", STEP);
    let rid = r_id.clone();
    v.expect("lock seen", STEP, move |e| {
        e["event"] == "media_changed" && e["participant_id"] == rid.as_str() && e["audio_locked"] == true
    });
    // The rebel's client keeps sending and asks to unmute: refused, still not forwarded.
    r.send("/media audio video");
    let refused = r.expect("unmute refused", STEP, |e| e["event"] == "error" && e["command"] == "media");
    assert_eq!(refused["code"], "forbidden", "{refused}");
    std::thread::sleep(Duration::from_millis(2500));
    let last = last_stats(&mut v, &r_id, "audio").unwrap();
    assert_eq!(last["bitrate_bps"], 0, "locked audio forwarded: {last}");
    // Allowed, then unmuted by the rebel: heard again.
    host.send("/allow-unmute Rebel");
    let rid = r_id.clone();
    r.expect("allowed", STEP, move |e| {
        e["event"] == "media_changed" && e["participant_id"] == rid.as_str() && e["audio_locked"] == false
    });
    r.send("/media audio video");
    wait_stats(&mut v, &r_id, "audio", "audio back", |s| s["bitrate_bps"].as_u64() > Some(10_000));
}

/// Lip sync: the doctor's camera pictures reach the encoder 150 ms after capture
/// (a slow capture pipeline), so its video arrives 150 ms behind its audio. The
/// receiver maps both streams onto the sender's clock with the RTCP sender
/// reports and delays the audio to match; skew is measured independently, from
/// the capture times carried in every packet.
#[test]
fn lip_sync_holds_with_a_slow_camera() {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    let mut args = publish_args("440");
    args.extend(["--video-delay-ms", "150"].map(String::from));
    let mut doctor = clinic.doctor.join(&code, &as_refs(&args));
    let doctor_id = my_id(&doctor.expect_event("joined", STEP));
    let guest = clinic.guest("Guest");
    let mut s = guest.join(&code, &[]);
    s.expect_event("joined", STEP);
    std::thread::sleep(Duration::from_secs(16));
    s.drain(Duration::from_millis(200));
    let tracks = stats_by_track(&s);
    let video = track_lines(&tracks, &doctor_id, "video");
    let audio = track_lines(&tracks, &doctor_id, "audio");
    // Sync converges in 20 ms steps every 500 ms: judge the last 6 s.
    let steady: Vec<Value> = video.iter().skip(video.len().saturating_sub(6)).cloned().collect();
    let skews = nums(&steady, "av_skew_ms");
    let worst = nums(&steady, "av_skew_ms_worst");
    let early: Vec<f64> = nums(&video[..video.len().min(3)], "av_skew_ms");
    eprintln!(
        "lip sync: skew medians first seconds {early:?}, last 6 s {skews:?}, worst per second {worst:?}"
    );
    assert!(skews.len() >= 5, "too few stats lines with a skew: {steady:?}");
    for s in &skews {
        assert!(s.abs() <= 45.0, "audio and video out of step by {s} ms (limit 45): {skews:?}");
    }
    assert!(median(nums(&steady, "fps")) >= 28.0, "video kept its frame rate: {steady:?}");
    let gaps = audio.last().unwrap()["audio_gaps"].as_u64().unwrap_or(u64::MAX);
    assert_eq!(gaps, 0, "delaying the audio must not cause gaps over 100 ms");
    doctor.leave();
}

/// Glass-to-glass latency across hosts: the doctor's media clock runs 7 s ahead
/// (as on a machine whose clock is wrong). Its capture times, moved by the clock
/// offset from its RTCP sender reports, still give the true latency.
#[test]
fn latency_across_clocks_uses_the_sender_report_offset() {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    let skewed = clinic.doctor.clone().env("CLINICMEET_CLOCK_SKEW_MS", "7000");
    let mut doctor = skewed.join(&code, &as_refs(&publish_args("440")));
    let doctor_id = my_id(&doctor.expect_event("joined", STEP));
    let guest = clinic.guest("Guest");
    let mut s = guest.join(&code, &[]);
    s.expect_event("joined", STEP);
    let v = wait_stats(&mut s, &doctor_id, "video", "the doctor's video at 25 fps", |v| {
        v["fps"].as_f64().unwrap_or(0.0) >= 25.0
    });
    eprintln!("first steady line: {v}");
    std::thread::sleep(Duration::from_secs(6));
    s.drain(Duration::from_millis(200));
    let tracks = stats_by_track(&s);
    let video = track_lines(&tracks, &doctor_id, "video");
    let steady: Vec<Value> = video.iter().skip(video.len().saturating_sub(5)).cloned().collect();
    let offsets = nums(&steady, "clock_offset_ms");
    let p95 = nums(&steady, "latency_ms_p95");
    eprintln!("skewed sender: clock offsets {offsets:?} ms, latency p95 {p95:?} ms");
    assert_eq!(offsets.len(), steady.len());
    for o in &offsets {
        // Loopback: the estimate is off by at most about a round trip.
        assert!((o + 7000.0).abs() <= 20.0, "clock offset {o} ms, the sender is 7000 ms ahead");
    }
    assert!(p95.len() >= 4, "latency measured: {steady:?}");
    for l in &p95 {
        assert!(*l > 0.0 && *l < 150.0, "latency p95 {l} ms");
    }
    doctor.leave();
}
