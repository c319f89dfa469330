//! Relay fan-out benchmark (not a test): the real relay process pinned to core 0
//! (`taskset -c 0`), this load generator on core 1. One publisher sends synthetic
//! RTP, 1.5 Mbit/s video (1,100-byte packets, 170 packets/s, 2 temporal layers)
//! plus 32 kbit/s audio (50 packets/s), to N raw QUIC subscribers that read
//! datagrams without decoding. Per N: forwarded Mbit/s, relay CPU (utime+stime
//! from /proc), Mbit/s per relay core, forwarding delay p50/p99 measured inside
//! the relay (receive → handed to QUIC, from its /metrics histogram) and relay
//! RSS per subscriber.
//!
//! `cargo bench -p clinicmeet-relay --bench fanout` (add `--profile dev` to skip the
//! release build). `FANOUT_N=1,10` and `FANOUT_SECS=5` override the defaults;
//! `FANOUT_RELAY=PATH` measures another relay binary.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clinicmeet_protocol::{
    datagram, Codec, EncodingSpec, MediaState, MeetingKind, MeetingSettings, MeetingSpec, Request, Response,
    TrackKind, TrackSpec,
};
use clinicmeet_relay::metrics::{delay_bound_us, quantile};
use clinicmeet_rtp::ext::VideoLayer;
use clinicmeet_rtp::rtcp::{self, RtcpPacket};
use clinicmeet_rtp::{is_rtcp, HeaderExtensions, RtpPacket, MAX_RTP_SIZE};
use common::{add_staff, Client, Relay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VIDEO_SSRC: u32 = 0x1000;
const AUDIO_SSRC: u32 = 0x2000;
const ON: MediaState = MediaState { audio: true, video: true, screen: false };

fn start_relay(dir: &std::path::Path) -> Relay {
    // FANOUT_RELAY: another relay binary (an A/B comparison of two builds).
    let bin = std::env::var("FANOUT_RELAY").unwrap_or_else(|_| common::bin().to_string());
    let mut child = Command::new("taskset")
        .args(["-c", "0", &bin])
        .args(["--data-dir", dir.to_str().unwrap_or("."), "--listen", "127.0.0.1:0"])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--sqlite-sync",
            "normal",
            "--max-connections",
            "5000",
            "--max-connections-per-source",
            "5000",
        ])
        .env("CLINICMEET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn relay under taskset");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
    Relay {
        child,
        quic: v["quic"].as_str().unwrap_or_default().parse().expect("quic addr"),
        pin: v["pin"].as_str().unwrap_or_default().to_string(),
        http: v["http"].as_str().map(str::to_string),
        https: None,
        data_dir: dir.to_path_buf(),
    }
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Scrape {
    forwarded_bytes: u64,
    forwarded_packets: u64,
    delay: Vec<u64>,
}

async fn scrape(http: &str) -> Scrape {
    let mut s = tokio::net::TcpStream::connect(http).await.expect("metrics connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("metrics write");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("metrics read");
    let value = |name: &str| -> u64 {
        body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
    };
    // Cumulative buckets → per-bucket counts.
    let mut cum = Vec::new();
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("clinicmeet_media_forward_delay_us_bucket{le=\"") {
            if rest.starts_with('+') {
                continue;
            }
            if let Some(v) = rest.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()) {
                cum.push(v);
            }
        }
    }
    let delay = cum.iter().enumerate().map(|(i, c)| c - if i == 0 { 0 } else { cum[i - 1] }).collect();
    Scrape {
        forwarded_bytes: value("clinicmeet_media_forwarded_bytes_total"),
        forwarded_packets: value("clinicmeet_media_forwarded_packets_total"),
        delay,
    }
}

fn video_packet(seq: u16, ts: u32, layer: VideoLayer) -> Vec<u8> {
    let mut p = RtpPacket {
        marker: layer.end_of_frame,
        payload_type: 102,
        sequence: seq,
        timestamp: ts,
        ssrc: VIDEO_SSRC,
        extensions: HeaderExtensions { video_layer: Some(layer), ..Default::default() },
        payload: Vec::new(),
    };
    let header = p.to_bytes().len();
    p.payload = vec![0x5a; MAX_RTP_SIZE - header];
    p.to_bytes()
}

/// Publishes until `stop`: 30 frames/s of 5-6 packets (170 packets/s), audio every 20 ms.
async fn publish(host: Arc<quinn::Connection>, vflow: u64, aflow: u64, stop: Arc<AtomicBool>) {
    let keyframe_wanted = Arc::new(AtomicBool::new(true));
    let kw = keyframe_wanted.clone();
    let conn = host.clone();
    let stop2 = stop.clone();
    tokio::spawn(async move {
        while !stop2.load(Relaxed) {
            let Ok(d) = conn.read_datagram().await else { break };
            if let Some((_, p)) = datagram::decode(&d) {
                if is_rtcp(p)
                    && rtcp::parse_compound(p)
                        .is_ok_and(|v| v.iter().any(|x| matches!(x, RtcpPacket::Pli(_))))
                {
                    kw.store(true, Relaxed);
                }
            }
        }
    });
    let start = Instant::now();
    let (mut vseq, mut aseq, mut frame) = (0u16, 0u16, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut next_audio = Duration::ZERO;
    let mut next_frame = Duration::ZERO;
    while !stop.load(Relaxed) {
        tick.tick().await;
        let t = start.elapsed();
        while next_frame <= t {
            let n = if frame % 3 == 2 { 5 } else { 6 };
            let key = keyframe_wanted.swap(false, Relaxed) || frame % 300 == 0;
            let tid = if key { 0 } else { (frame % 2) as u8 };
            let ts = (frame * 3000) as u32;
            for i in 0..n {
                let layer = VideoLayer {
                    start_of_frame: i == 0,
                    end_of_frame: i == n - 1,
                    keyframe: key,
                    temporal_id: tid,
                    spatial_id: 0,
                    temporal_layers: 2,
                };
                let pkt = video_packet(vseq, ts, layer);
                vseq = vseq.wrapping_add(1);
                let _ = host.send_datagram(Bytes::from(datagram::encode(vflow, &pkt)));
            }
            frame += 1;
            next_frame += Duration::from_micros(33_333);
        }
        while next_audio <= t {
            let pkt = RtpPacket {
                marker: false,
                payload_type: 111,
                sequence: aseq,
                timestamp: u32::from(aseq) * 960,
                ssrc: AUDIO_SSRC,
                extensions: HeaderExtensions::default(),
                payload: vec![0x11; 80],
            }
            .to_bytes();
            aseq = aseq.wrapping_add(1);
            let _ = host.send_datagram(Bytes::from(datagram::encode(aflow, &pkt)));
            next_audio += Duration::from_millis(20);
        }
    }
}

struct Row {
    n: usize,
    mbps: f64,
    cpu: f64,
    per_core: f64,
    p50: u64,
    p99: u64,
    rss_per_sub: f64,
    delivered: f64,
}

async fn run(n: usize, secs: u64) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = start_relay(dir.path());
    let pid = relay.child.id();
    let http = relay.http.clone().expect("http");
    let (_, code) = add_staff(dir.path(), "Bench");
    let mut host = Client::connect(&relay).await;
    host.hello(None).await.expect("hello");
    host.call(Request::Enroll { enrollment_code: code, device_name: "bench".into() }).await.expect("enroll");
    let spec = MeetingSpec {
        title: "Bench".into(),
        description: None,
        kind: MeetingKind::Video,
        patient_reference: None,
        schedule: None,
        settings: MeetingSettings { max_participants: 500, ..MeetingSettings::default() },
    };
    let Ok(Response::MeetingCreated { access_code, .. }) = host.call(Request::CreateMeeting { spec }).await
    else {
        panic!("create meeting")
    };
    let join =
        |name: String| Request::Join { access_code: access_code.clone(), display_name: name, media: ON };
    host.call(join("Host".into())).await.expect("host join");
    let enc = |ssrc, layers| EncodingSpec {
        ssrc,
        width: 1280,
        height: 720,
        max_bitrate_bps: 1_500_000,
        temporal_layers: layers,
    };
    let Ok(Response::Published { track_id: vid, flow_id: vflow }) = host
        .call(Request::Publish {
            track: TrackSpec {
                kind: TrackKind::Video,
                codec: Codec::H264,
                encodings: vec![enc(VIDEO_SSRC, 2)],
            },
        })
        .await
    else {
        panic!("publish video")
    };
    let Ok(Response::Published { track_id: aid, flow_id: aflow }) = host
        .call(Request::Publish {
            track: TrackSpec {
                kind: TrackKind::Audio,
                codec: Codec::Opus,
                encodings: vec![enc(AUDIO_SSRC, 1)],
            },
        })
        .await
    else {
        panic!("publish audio")
    };
    let stop = Arc::new(AtomicBool::new(false));
    let hconn = Arc::new(host.conn.clone());
    let publisher = tokio::spawn(publish(hconn, vflow, aflow, stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(pid);

    let received = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for i in 0..n {
        let mut c = Client::connect(&relay).await;
        c.hello(None).await.expect("hello");
        c.call(join(format!("Sub {i}"))).await.expect("join");
        c.call(Request::Subscribe { track_id: vid, max_encoding: None }).await.expect("subscribe video");
        c.call(Request::Subscribe { track_id: aid, max_encoding: None }).await.expect("subscribe audio");
        let conn = c.conn.clone();
        let received = received.clone();
        tokio::spawn(async move {
            while let Ok(d) = conn.read_datagram().await {
                received.fetch_add(d.len() as u64, Relaxed);
            }
        });
        subs.push(c);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_kib(pid);

    let (cpu0, m0, r0, t0) = (cpu_secs(pid), scrape(&http).await, received.load(Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu1, m1, r1, wall) = (cpu_secs(pid), scrape(&http).await, received.load(Relaxed), t0.elapsed());
    stop.store(true, Relaxed);
    let _ = publisher.await;

    let wall = wall.as_secs_f64();
    let bytes = m1.forwarded_bytes - m0.forwarded_bytes;
    let mbps = bytes as f64 * 8.0 / wall / 1e6;
    let cpu = (cpu1 - cpu0) / wall;
    let delay: Vec<u64> =
        m1.delay.iter().zip(m0.delay.iter().chain(std::iter::repeat(&0))).map(|(a, b)| a - b).collect();
    let _ = m1.forwarded_packets - m0.forwarded_packets;
    drop(subs);
    Row {
        n,
        mbps,
        cpu,
        per_core: if cpu > 0.0 { mbps / cpu } else { f64::INFINITY },
        p50: quantile(&delay, 0.50).unwrap_or(0),
        p99: quantile(&delay, 0.99).unwrap_or(0),
        rss_per_sub: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        delivered: if bytes > 0 { (r1 - r0) as f64 / bytes as f64 * 100.0 } else { 0.0 },
    }
}

fn main() {
    // Leave core 0 to the relay.
    let _ = Command::new("taskset").args(["-cp", "1", &std::process::id().to_string()]).output();
    let ns: Vec<usize> = std::env::var("FANOUT_N")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 50, 100]);
    let secs: u64 = std::env::var("FANOUT_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    println!("relay fan-out, {secs} s per N; relay on core 0, load generator on core 1; delay = upper bound of a quarter-octave bucket (up to {} µs)", delay_bound_us(64));
    println!("| N | forwarded Mbit/s | relay CPU (cores) | Mbit/s per core | delay p50 µs | delay p99 µs | RSS per subscriber KiB | delivered to subscribers |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in ns {
        let r = rt.block_on(run(n, secs));
        println!(
            "| {} | {:.1} | {:.3} | {:.0} | {} | {} | {:.0} | {:.1} % |",
            r.n, r.mbps, r.cpu, r.per_core, r.p50, r.p99, r.rss_per_sub, r.delivered
        );
    }
}
