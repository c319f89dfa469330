//! Calls over impaired networks: the real relay and `clinicmeet-cli` processes, each
//! in its own network namespace (`ip netns exec`), joined by veth pairs with `tc`
//! qdiscs on the client links. Needs root: without it the tests skip with a printed
//! reason, or fail when `CLINICMEET_REQUIRE_NETNS=1` (as `scripts/test.sh` sets).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clinicmeet_e2e::impair::{Impairment, LinkEmulator};
use clinicmeet_e2e::netns::{Dir, Net};
use clinicmeet_e2e::*;
use serde_json::Value;

fn publish_args(tone: &str, size: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> =
        ["--publish", "synthetic", "--tone-hz", tone, "--video-size", size, "--fps", "30"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Picture size of the lossy-link test: `CLINICMEET_IMPAIRED_VIDEO_SIZE` (default 640x360).
fn lossy_video_size() -> String {
    std::env::var("CLINICMEET_IMPAIRED_VIDEO_SIZE").unwrap_or_else(|_| "640x360".into())
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A relay in the net's relay namespace with one enrolled staff member (client 0)
/// who created a meeting; returns (relay, doctor, access code).
fn clinic_in(net: &Net, relay_args: &[&str]) -> (Relay, Client, String) {
    let relay = Relay::start_in_netns(&net.relay_ns, relay_args);
    let (_, code) = relay.staff_add("Dr. Grey");
    let doctor = client_in(net, &relay, 0, "Dr. Grey");
    doctor.enroll(&code);
    let (_, access) = doctor.create(&[]);
    (relay, doctor, access)
}

/// The relay's `clinicmeet_media_*` counters (fetched inside its namespace).
fn relay_metrics(net: &Net, relay: &Relay) -> String {
    let Some(http) = &relay.http else { return String::new() };
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &net.relay_ns, "curl", "-s", &format!("http://{http}/metrics")])
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("clinicmeet_media_") && !l.contains("bucket"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

fn client_in(net: &Net, relay: &Relay, i: usize, name: &str) -> Client {
    let l = &net.clients[i];
    Client::new(relay, name).in_netns(&l.ns, &l.relay_ip)
}

/// Stats lines of `s` per remote participant and kind, received after `from` (index in `seen`).
fn stats_from(s: &Session, from: usize) -> HashMap<(String, String), Vec<Value>> {
    let mut m: HashMap<(String, String), Vec<Value>> = HashMap::new();
    for v in s.seen.iter().skip(from).filter(|v| v["event"] == "stats") {
        let key = (
            v["participant_id"].as_str().unwrap_or_default().to_string(),
            v["kind"].as_str().unwrap_or_default().to_string(),
        );
        m.entry(key).or_default().push(v.clone());
    }
    m
}

fn nums(lines: &[Value], key: &str) -> Vec<f64> {
    lines.iter().filter_map(|v| v[key].as_f64()).collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// Lines after the track's first second of pictures (or sound).
fn after_first_second(lines: &[Value]) -> Vec<Value> {
    let first = lines.iter().position(|v| v["frames_decoded"].as_u64() > Some(0)).unwrap_or(lines.len());
    lines.iter().skip(first + 1).cloned().collect()
}

/// Figures of one received video track over some stats lines.
#[derive(Debug, Clone, Copy)]
struct VideoFig {
    fps_mean: f64,
    fps_min: f64,
    max_gap_ms: f64,
    kbps: f64,
}

fn video_fig(lines: &[Value]) -> VideoFig {
    VideoFig {
        fps_mean: mean(&nums(lines, "fps")),
        fps_min: min(&nums(lines, "fps")),
        max_gap_ms: max(&nums(lines, "max_gap_ms")),
        kbps: mean(&nums(lines, "bitrate_bps")) / 1000.0,
    }
}

/// Figures of one received audio track: (longest concealment ms, gaps > 100 ms, kbit/s).
fn audio_fig(lines: &[Value]) -> (f64, f64, f64) {
    let gaps = nums(lines, "audio_gaps");
    let gaps = max(&gaps) - min(&gaps).min(max(&gaps));
    (max(&nums(lines, "max_gap_ms")), gaps, mean(&nums(lines, "bitrate_bps")) / 1000.0)
}

fn joined_id(s: &mut Session) -> String {
    my_id(&s.expect_event("joined", STEP))
}

/// With `CLINICMEET_IMPAIRED_LOG_DIR` set, keeps the relay's and clients' logs (and the
/// clients' output lines, `.jsonl`) there
/// (set `CLINICMEET_LOG`, e.g. `info,clinicmeet_client=debug,clinicmeet_relay::sfu=debug`,
/// for the timeline of every NACK, PLI and freeze).
fn save_logs(test: &str, relay: &Relay, sessions: &[Session]) {
    let Ok(dir) = std::env::var("CLINICMEET_IMPAIRED_LOG_DIR") else { return };
    let dir = std::path::Path::new(&dir);
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(format!("{test}-relay.log")), relay.log());
    for (i, s) in sessions.iter().enumerate() {
        let _ = std::fs::write(dir.join(format!("{test}-client{i}.log")), s.log());
        let lines: Vec<String> = s.seen.iter().map(|v| v.to_string()).collect();
        let _ = std::fs::write(dir.join(format!("{test}-client{i}.jsonl")), lines.join("\n"));
    }
}

#[test]
fn lossy_jittery_links_keep_video_and_audio_flowing() {
    let Some(net) = Net::setup_or_skip("lossy_jittery_links_keep_video_and_audio_flowing", 3) else {
        return;
    };
    // 5 % loss, 40 ms ± 10 ms delay on every client link, both directions: with
    // tc netem where the kernel has it, else the user-space link emulator.
    let (relay, doctor, code) = clinic_in(&net, &["--http-listen", "127.0.0.1:0"]);
    let imp = Impairment { loss: 0.05, delay: Duration::from_millis(40), jitter: Duration::from_millis(10) };
    let mut emulators = Vec::new();
    let kernel_netem = net.has_netem() && std::env::var("CLINICMEET_USERSPACE_NETEM").is_err();
    let mut clients = Vec::new();
    let mut doctor = Some(doctor);
    for i in 0..3 {
        // Client 0 is the doctor (enrolled, host); the others are guests.
        let c = doctor.take().unwrap_or_else(|| Client::new(&relay, &format!("Guest {i}")));
        let l = &net.clients[i];
        if kernel_netem {
            let netem =
                ["netem", "loss", "5%", "delay", "40ms", "10ms", "distribution", "normal", "limit", "10000"];
            net.shape(i, Dir::ToClient, &netem);
            net.shape(i, Dir::ToRelay, &netem);
            clients.push(c.in_netns(&l.ns, &l.relay_ip));
        } else {
            let emu = LinkEmulator::start(&net.relay_ns, relay.port(), imp, imp, 0x5eed + i as u64)
                .expect("link emulator");
            clients.push(c.in_netns(&l.ns, &format!("{}:{}", l.relay_ip, emu.port)));
            emulators.push(emu);
        }
    }
    eprintln!(
        "impairment: {} (5 % loss, 40 ms ± 10 ms, each direction of each client link)",
        if kernel_netem { "tc netem" } else { "user-space link emulator (no sch_netem in this kernel)" }
    );
    let tones = ["440", "660", "880"];
    let mut sessions = Vec::new();
    let mut ids = Vec::new();
    for (c, tone) in clients.iter().zip(tones) {
        let mut s = c.join(&code, &as_refs(&publish_args(tone, &lossy_video_size(), &[])));
        ids.push(joined_id(&mut s));
        sessions.push(s);
    }
    std::thread::sleep(Duration::from_secs(20));
    let mut failures = Vec::new();
    for s in &mut sessions {
        s.drain(Duration::from_millis(300));
    }
    for s in &sessions {
        let by = stats_from(s, 0);
        let mut videos = 0;
        let mut audios = 0;
        for ((pid, kind), lines) in &by {
            let steady = after_first_second(lines);
            if steady.len() < 10 {
                failures.push(format!(
                    "{} ← {pid} {kind}: only {} steady stats lines; last: {}",
                    s.name,
                    steady.len(),
                    lines.last().map(|v| v.to_string()).unwrap_or_default()
                ));
                continue;
            }
            match kind.as_str() {
                "video" => {
                    videos += 1;
                    let f = video_fig(&steady);
                    let last = steady.last().unwrap();
                    eprintln!(
                        "FIGURE lossy {} ← {pid}: video fps mean {:.1} min {:.0}, longest gap {:.0} ms, {:.0} kbit/s, lost {} recovered {}, frames skipped {}, keyframe requests {}",
                        s.name, f.fps_mean, f.fps_min, f.max_gap_ms, f.kbps, last["packets_lost"], last["packets_recovered"],
                        last["frames_skipped"], last["keyframe_requests"]
                    );
                    if f.fps_mean < 25.0 || f.max_gap_ms > 500.0 {
                        failures.push(format!("{} ← {pid}: video {f:?}", s.name));
                    }
                }
                "audio" => {
                    audios += 1;
                    let (gap, gaps, kbps) = audio_fig(&steady);
                    eprintln!(
                        "FIGURE lossy {} ← {pid}: audio longest concealment {gap:.0} ms, gaps > 100 ms: {gaps}, {kbps:.0} kbit/s, concealed frames {}",
                        s.name,
                        steady.last().unwrap()["concealed_frames"]
                    );
                    if gap > 100.0 || gaps > 0.0 {
                        failures.push(format!("{} ← {pid}: audio gap {gap} ms ({gaps} gaps)", s.name));
                    }
                }
                _ => {}
            }
        }
        if videos != 2 || audios != 2 {
            failures.push(format!("{}: {videos} video and {audios} audio tracks received", s.name));
        }
    }
    if kernel_netem {
        eprintln!("relay→client 0 link: {}", net.qdisc_stats(0, Dir::ToClient));
    }
    for (i, e) in emulators.iter().enumerate() {
        eprintln!("FIGURE link {i}: {e}");
    }
    let counters = relay_metrics(&net, &relay);
    eprintln!("relay media counters:\n{counters}");
    // Receiver reports flow both ways: the relay reports each of the 6 published
    // tracks once a second, and the 12 subscriptions report to it.
    let counter = |name: &str| -> u64 {
        counters.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0)
    };
    for (name, least) in [
        ("clinicmeet_media_receiver_reports_sent_total", 60),
        ("clinicmeet_media_receiver_reports_received_total", 120),
    ] {
        if counter(name) < least {
            failures.push(format!("{name} = {} (expected at least {least})", counter(name)));
        }
    }
    save_logs("lossy", &relay, &sessions);
    if !failures.is_empty() {
        let log = sessions[0].log();
        let tail: Vec<&str> = log.lines().filter(|l| l.contains("bandwidth estimate")).collect();
        eprintln!(
            "{}: bandwidth estimates:\n{}",
            sessions[0].name,
            tail[tail.len().saturating_sub(20)..].join("\n")
        );
    }
    assert!(failures.is_empty(), "impaired call failed:\n{}", failures.join("\n"));
}

#[test]
fn one_capped_subscriber_is_thinned_without_slowing_the_others() {
    let Some(net) = Net::setup_or_skip("one_capped_subscriber_is_thinned_without_slowing_the_others", 3)
    else {
        return;
    };
    let (relay, doctor, code) = clinic_in(&net, &[]);
    // Keyframes only on request, so a bitrate comparison is not skewed by where the
    // periodic keyframes fall.
    let extra = ["--keyframe-interval-secs", "0", "--stats-interval-ms", "1000"];
    let mut a = doctor.join(&code, &as_refs(&publish_args("440", "640x360", &extra)));
    let a_id = joined_id(&mut a);
    let bc = client_in(&net, &relay, 1, "Guest B");
    let mut b = bc.join(&code, &as_refs(&publish_args("660", "640x360", &extra)));
    let b_id = joined_id(&mut b);
    // The capped one only receives.
    let cc = client_in(&net, &relay, 2, "Guest C");
    let mut c = cc.join(&code, &["--stats-interval-ms", "1000"]);
    c.expect_event("joined", STEP);

    let phase = |sessions: &mut [&mut Session], secs: u64| -> Vec<usize> {
        let marks: Vec<usize> = sessions
            .iter_mut()
            .map(|s| {
                s.drain(Duration::from_millis(50));
                s.seen.len()
            })
            .collect();
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            for s in sessions.iter_mut() {
                s.drain(Duration::from_millis(100));
            }
        }
        marks
    };
    // Warm-up, then the unimpaired baseline.
    phase(&mut [&mut a, &mut b, &mut c], 5);
    let base_marks = phase(&mut [&mut a, &mut b, &mut c], 10);
    let window = |s: &Session, from: usize, to: usize| -> HashMap<(String, String), Vec<Value>> {
        let mut m = stats_from(s, from);
        for lines in m.values_mut() {
            lines.truncate(to);
        }
        m
    };
    let base_a = window(&a, base_marks[0], 10);
    let base_b = window(&b, base_marks[1], 10);
    let base_c = window(&c, base_marks[2], 10);

    // 1 Mbit/s on C's downlink (token bucket, ~150 ms of queue).
    net.shape(2, Dir::ToClient, &["tbf", "rate", "1mbit", "burst", "10kb", "latency", "150ms"]);
    phase(&mut [&mut a, &mut b, &mut c], 5);
    let cap_marks = phase(&mut [&mut a, &mut b, &mut c], 12);
    let cap_a = window(&a, cap_marks[0], 12);
    let cap_b = window(&b, cap_marks[1], 12);
    let cap_c = window(&c, cap_marks[2], 12);
    eprintln!("relay→C link: {}", net.qdisc_stats(2, Dir::ToClient));
    save_logs("capped", &relay, &[a, b, c]);

    let mut failures = Vec::new();
    let key = |pid: &str, kind: &str| (pid.to_string(), kind.to_string());
    // The others: within 5 % of their own baseline.
    for (name, base, cap, from) in [("A", &base_a, &cap_a, &b_id), ("B", &base_b, &cap_b, &a_id)] {
        let (Some(bl), Some(cl)) = (base.get(&key(from, "video")), cap.get(&key(from, "video"))) else {
            failures.push(format!("{name}: no video stats"));
            continue;
        };
        let (f0, f1) = (video_fig(bl), video_fig(cl));
        eprintln!(
            "FIGURE capped-other {name}: baseline fps {:.1} {:.0} kbit/s; while C capped fps {:.1} {:.0} kbit/s, longest gap {:.0} ms",
            f0.fps_mean, f0.kbps, f1.fps_mean, f1.kbps, f1.max_gap_ms
        );
        if f1.fps_mean < f0.fps_mean * 0.95 || (f1.kbps - f0.kbps).abs() > f0.kbps * 0.05 {
            failures.push(format!("{name}: baseline {f0:?}, while C capped {f1:?}"));
        }
        if let (Some(ba), Some(ca)) = (base.get(&key(from, "audio")), cap.get(&key(from, "audio"))) {
            let (g0, n0, k0) = audio_fig(ba);
            let (g1, n1, k1) = audio_fig(ca);
            eprintln!("FIGURE capped-other {name} audio: baseline gap {g0} ms/{n0} gaps {k0:.0} kbit/s; capped gap {g1} ms/{n1} gaps {k1:.0} kbit/s");
        }
    }
    // The capped subscriber: ≥ 10 fps from each publisher, gap-free audio.
    for (pname, pid) in [("A", &a_id), ("B", &b_id)] {
        let Some(v) = cap_c.get(&key(pid, "video")) else {
            failures.push(format!("C: no video stats from {pname}"));
            continue;
        };
        let f = video_fig(v);
        let f0 = base_c.get(&key(pid, "video")).map(|l| video_fig(l));
        eprintln!(
            "FIGURE capped C ← {pname}: video fps mean {:.1} min {:.0}, longest gap {:.0} ms, {:.0} kbit/s (unimpaired: {:?})",
            f.fps_mean, f.fps_min, f.max_gap_ms, f.kbps, f0
        );
        if f.fps_mean < 10.0 || f.fps_min < 5.0 {
            failures.push(format!("C ← {pname}: video {f:?}"));
        }
        match cap_c.get(&key(pid, "audio")) {
            Some(l) => {
                let (gap, gaps, kbps) = audio_fig(l);
                eprintln!("FIGURE capped C ← {pname}: audio longest concealment {gap:.0} ms, gaps {gaps}, {kbps:.0} kbit/s");
                if gap > 100.0 || gaps > 0.0 {
                    failures.push(format!("C ← {pname}: audio gap {gap} ms ({gaps} gaps)"));
                }
            }
            None => failures.push(format!("C: no audio stats from {pname}")),
        }
    }
    assert!(failures.is_empty(), "capped subscriber test failed:\n{}", failures.join("\n"));
}
