//! Subscriptions follow what is shown: a viewer with `--max-video 1` receives every
//! participant's audio but only one camera (the most recent active speaker's).

use std::collections::HashSet;
use std::time::Duration;

use clinicmeet_e2e::*;

#[test]
fn max_video_limits_the_cameras_received() {
    let clinic = Clinic::new(&[]);
    let (_, code) = clinic.doctor.create(&[]);
    let small = ["--publish", "synthetic", "--video-size", "320x180", "--fps", "15"];
    let mut sessions = Vec::new();
    let guests: Vec<Client> = (1..3).map(|i| clinic.guest(&format!("Speaker {i}"))).collect();
    for c in std::iter::once(&clinic.doctor).chain(guests.iter()) {
        let mut s = c.join(&code, &small);
        s.expect_event("joined", STEP);
        sessions.push(s);
    }
    let viewer = clinic.guest("Viewer");
    let mut v = viewer.join(&code, &["--max-video", "1", "--stats-interval-ms", "500"]);
    v.expect_event("joined", STEP);
    std::thread::sleep(Duration::from_secs(6));
    v.drain(Duration::from_millis(200));
    // Tracks in the last two seconds of stats lines.
    let recent: Vec<_> = v.seen.iter().rev().filter(|e| e["event"] == "stats").take(12).cloned().collect();
    let kinds = |k: &str| -> HashSet<String> {
        recent
            .iter()
            .filter(|e| e["kind"] == k)
            .filter_map(|e| e["participant_id"].as_str().map(str::to_string))
            .collect()
    };
    let (audio, video) = (kinds("audio"), kinds("video"));
    eprintln!("viewer receives audio of {} participants, video of {}", audio.len(), video.len());
    assert_eq!(audio.len(), 3, "all audio is received: {recent:?}");
    assert_eq!(video.len(), 1, "one camera only: {recent:?}");
    let vid = video.iter().next().unwrap();
    let frames = recent
        .iter()
        .find(|e| e["kind"] == "video" && e["participant_id"] == vid.as_str())
        .and_then(|e| e["fps"].as_f64())
        .unwrap_or(0.0);
    assert!(frames > 5.0, "the chosen camera is decoded: {frames} fps");
}
