//! Browser guests over WebRTC: Debian's headless Chromium (fake camera and a tone file as
//! microphone), driven by `tests/browser/guest.mjs` (playwright-core, no browser download),
//! joins a meeting through the relay's HTTPS guest page next to two `clinicmeet-cli`
//! clients publishing synthetic media over QUIC. Once let in, its live region says so,
//! and a message while its chat is closed counts in its title.

use std::time::Duration;

use clinicmeet_e2e::browser::*;
use clinicmeet_e2e::*;
use serde_json::Value;

#[test]
fn browser_guest_joins_a_call_with_desktop_clients() {
    let (clinic, port) = guest_relay();
    let dir = tempfile::tempdir().unwrap();
    let (_, code) = clinic.doctor.create(&["--waiting-room"]);
    let publish = |tone: &str| -> Vec<String> {
        ["--publish", "synthetic", "--tone-hz", tone, "--video-size", "640x360", "--fps", "30"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let refs = |v: &[String]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let a = refs(&publish("440"));
    let mut host = clinic.doctor.join(&code, &a.iter().map(String::as_str).collect::<Vec<_>>());
    host.expect_event("joined", STEP);
    let nurse = clinic.staff("Nurse Joy");
    let b = refs(&publish("660"));
    let mut colleague = nurse.join(&code, &b.iter().map(String::as_str).collect::<Vec<_>>());
    colleague.expect_event("joined", STEP);

    let wav = dir.path().join("tone.wav");
    write_tone(&wav, 523.0, 10);
    let log = artifacts().join("browser-guest.log");
    let url = format!("https://127.0.0.1:{port}/#{code}");
    let shots = artifacts();
    let mut browser = Browser::start(
        &url,
        "Pat Browser",
        &[("FAKE_AUDIO", wav.to_str().unwrap()), ("SHOT_DIR", shots.to_str().unwrap())],
        &log,
    );

    // The invite link opens a landing page whose "Open in ClinicMeet" is the app's deep
    // link with this relay's QUIC address and key pin (from /invite-info).
    let invite = browser.expect("invite", Duration::from_secs(60), &log);
    eprintln!("invite page: {invite}");
    assert_eq!(invite["code"], code.as_str(), "{invite}");
    assert_eq!(invite["relay"], clinic.relay.addr.as_str(), "{invite}");
    assert_eq!(invite["pin"], clinic.relay.pin.as_str(), "{invite}");
    // The page runs under the relay's strict CSP (guest.mjs fails on any violation).
    let csp = invite["csp"].as_str().unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{invite}");

    // Waiting room, then the host admits.
    browser.expect("waiting", Duration::from_secs(60), &log);
    let pid = waiting_id(&mut host, "Pat Browser");
    host.send(&format!("/admit {pid}"));
    browser.expect("meeting", STEP, &log);
    // The page's live region says so; its title names the meeting.
    browser.cmd(json!({"cmd": "wait_live", "text": "You were let in to the meeting"}));
    let live = browser.expect("live", STEP, &log);
    assert!(live["title"].as_str().unwrap_or_default().ends_with("— ClinicMeet"), "{live}");

    // Media flows both ways; measure after things settle.
    std::thread::sleep(Duration::from_secs(8));
    browser.cmd(json!({"cmd": "stats", "secs": 5}));
    let stats = browser.expect("stats", Duration::from_secs(30), &log);
    eprintln!("browser stats: {stats}");
    let videos: Vec<&Value> =
        stats["tracks"].as_array().unwrap().iter().filter(|t| t["kind"] == "video").collect();
    let decoding: Vec<f64> = videos.iter().filter_map(|t| t["fps"].as_f64()).filter(|f| *f > 0.0).collect();
    assert_eq!(decoding.len(), 2, "browser decodes both desktop videos: {stats}");
    for fps in &decoding {
        assert!(*fps >= 25.0, "browser decodes {fps} fps: {stats}");
    }
    let shown = stats["shown"].as_array().unwrap();
    assert!(
        shown.iter().filter(|v| v["w"].as_u64().unwrap_or(0) > 0).count() >= 2,
        "tiles show video: {stats}"
    );

    for s in [&mut host, &mut colleague] {
        s.drain(Duration::from_millis(300));
        let video = steady_stats(s, &pid, "video");
        let fps = median(video.iter().filter_map(|v| v["fps"].as_f64()).collect());
        eprintln!("{} ← browser: video fps median {fps:.1} over {} lines", s.name, video.len());
        assert!(video.len() >= 4, "{}: too few video stats from the browser", s.name);
        assert!(fps >= 25.0, "{}: browser video at {fps} fps", s.name);
        let audio = steady_stats(s, &pid, "audio");
        let hz = median(audio.iter().filter_map(|v| v["tone_hz"].as_f64()).collect());
        eprintln!("{} ← browser: tone {hz:.1} Hz", s.name);
        assert!((hz - 523.0).abs() < 8.0, "{}: heard {hz} Hz from the browser", s.name);
    }

    // A message while the chat is closed counts in the page's title, without its text.
    host.send("Unread check");
    browser.cmd(json!({"cmd": "wait_title", "text": "(1 unread)"}));
    let title = browser.expect("title", STEP, &log);
    assert!(!title["title"].as_str().unwrap_or_default().contains("Unread check"), "{title}");

    // Chat both ways.
    browser.cmd(json!({"cmd": "chat", "text": "Hello from the browser"}));
    browser.expect("chat_sent", STEP, &log);
    host.expect("browser chat", STEP, |v| {
        v["event"] == "chat" && find_str(v, "text") == Some("Hello from the browser")
    });
    host.send("Hello browser, can you hear me?");
    browser.cmd(json!({"cmd": "wait_chat", "text": "Hello browser, can you hear me?"}));
    browser.expect("chat_seen", Duration::from_secs(30), &log);

    let shot = artifacts().join("browser-guest.png");
    browser.cmd(json!({"cmd": "screenshot", "path": shot.to_str().unwrap()}));
    browser.expect("screenshot", STEP, &log);
    eprintln!("screenshot: {}", shot.display());

    // Participants may not unmute themselves: muted by the host, the guest's microphone
    // button says why and sends nothing until the host allows it.
    host.send("/self-unmute off");
    host.send(&format!("/mute {pid}"));
    browser.cmd(json!({"cmd": "wait_notice", "text": "unmute when the host allows"}));
    browser.expect("notice", STEP, &log);
    browser.cmd(json!({"cmd": "mic"}));
    let mic = browser.expect("mic", STEP, &log);
    assert_eq!((mic["pressed"].as_str(), mic["locked"].as_bool()), (Some("false"), Some(true)), "{mic}");
    host.send(&format!("/allow-unmute {pid}"));
    browser.cmd(json!({"cmd": "wait_notice", "text": "allowed you to unmute"}));
    browser.expect("notice", STEP, &log);
    browser.cmd(json!({"cmd": "mic"}));
    let mic = browser.expect("mic", STEP, &log);
    assert_eq!((mic["pressed"].as_str(), mic["locked"].as_bool()), (Some("true"), Some(false)), "{mic}");
    let p = pid.clone();
    host.expect("browser unmuted", STEP, move |v| {
        v["event"] == "media_changed" && v["participant_id"] == p.as_str() && v["media"]["audio"] == true
    });

    // The host removes the guest.
    host.send(&format!("/remove {pid}"));
    browser.cmd(json!({"cmd": "wait_ended"}));
    let ended = browser.expect("ended", Duration::from_secs(30), &log);
    assert!(ended["text"].as_str().unwrap_or_default().contains("removed"), "{ended}");
}

#[test]
fn browser_without_h264_gets_a_clear_message() {
    let (clinic, port) = guest_relay();
    let (_, code) = clinic.doctor.create(&[]);
    let log = artifacts().join("browser-no-h264.log");
    let url = format!("https://127.0.0.1:{port}/#{code}");
    let mut browser = Browser::start(&url, "No Codec", &[("NO_H264", "1")], &log);
    let v = browser.expect("media_error", Duration::from_secs(60), &log);
    assert!(v["text"].as_str().unwrap_or_default().contains("H.264"), "{v}");
}

#[test]
fn browser_with_the_camera_denied_is_told_so_and_joins_with_sound() {
    let (clinic, port) = guest_relay();
    let (_, code) = clinic.doctor.create(&[]);
    let mut host = clinic.doctor.join(&code, &[]);
    host.expect_event("joined", STEP);
    let log = artifacts().join("browser-camera-denied.log");
    // The `/join#CODE` form of the invite link.
    let url = format!("https://127.0.0.1:{port}/join#{code}");
    let mut browser = Browser::start(&url, "Denied Camera", &[("DENY_CAMERA", "1")], &log);
    let v = browser.expect("device_error", Duration::from_secs(60), &log);
    assert!(v["text"].as_str().unwrap_or_default().contains("camera was denied"), "{v}");
    browser.expect("meeting", STEP, &log);
    let joined = host.expect("the browser joins", STEP, |v| {
        v["event"] == "participant_joined" && find_str(v, "display_name") == Some("Denied Camera")
    });
    let media = find(&joined, "media").cloned().unwrap_or_default();
    assert_eq!(media["audio"], true, "microphone still works: {joined}");
    assert_eq!(media["video"], false, "no camera: {joined}");
}
