//! Driving a browser guest: Debian's headless Chromium (fake camera, a tone file as
//! microphone) run by `tests/browser/guest.mjs` (playwright-core, no browser
//! download), optionally inside a network namespace, and the relay set-up the
//! browser tests share (used by `tests/tests/browser.rs` and `browser_net.rs`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Clinic, Session};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// target/e2e-artifacts: where screenshots and browser logs go.
pub fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.ancestors().nth(3).expect("target dir").join("e2e-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// The built guest page (`ui/dist`); panics with the command to build it.
pub fn guest_dist() -> PathBuf {
    let dist = workspace().join("ui/dist");
    assert!(dist.join("guest.html").is_file(), "build the guest page first: cd ui && npm run build");
    dist
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// 16-bit mono 48 kHz WAV of a sine tone (the browser's fake microphone).
pub fn write_tone(path: &Path, hz: f64, secs: u32) {
    let rate = 48_000u32;
    let n = rate * secs;
    let mut data = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let s = (2.0 * std::f64::consts::PI * hz * f64::from(i) / f64::from(rate)).sin() * 0.3;
        data.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
    }
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    std::fs::write(path, w).unwrap();
}

/// The Chromium guest process.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Value>,
    /// When the process was started.
    pub started: Instant,
}

impl Browser {
    /// Starts the guest page at `url` as `name`; `env` goes to guest.mjs (e.g.
    /// `FAKE_AUDIO`, `NO_H264`); its stderr goes to `log`.
    pub fn start(url: &str, name: &str, env: &[(&str, &str)], log: &Path) -> Browser {
        Browser::start_in(None, url, name, env, log)
    }

    /// Like [`Browser::start`], inside network namespace `netns` (`ip netns exec`).
    pub fn start_in(netns: Option<&str>, url: &str, name: &str, env: &[(&str, &str)], log: &Path) -> Browser {
        let ui = workspace().join("ui");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "node"]);
                c
            }
            None => Command::new("node"),
        };
        cmd.arg(workspace().join("tests/browser/guest.mjs"))
            .env("GUEST_URL", url)
            .env("GUEST_NAME", name)
            .env("PLAYWRIGHT_FROM", ui.join("package.json"))
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn node (tests/browser/guest.mjs)");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Browser { child, stdin, events: rx, started }
    }

    /// Sends a command to guest.mjs.
    pub fn cmd(&mut self, v: Value) {
        writeln!(self.stdin, "{v}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits for `event`; panics (with the browser log) on an `error` event or timeout.
    pub fn expect(&mut self, event: &str, timeout: Duration, log: &Path) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) if v["event"] == event => return v,
                Ok(v) if v["event"] == "error" => {
                    panic!("browser: {v}\n{}", std::fs::read_to_string(log).unwrap_or_default())
                }
                Ok(_) => {}
                Err(_) => panic!(
                    "browser: no {event} within {timeout:?}\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                ),
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{{\"cmd\":\"quit\"}}");
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A CLI session's stats lines about `pid`'s `kind` track, after the first three.
pub fn steady_stats(s: &Session, pid: &str, kind: &str) -> Vec<Value> {
    s.seen
        .iter()
        .filter(|v| v["event"] == "stats" && v["participant_id"] == pid && v["kind"] == kind)
        .skip(3)
        .cloned()
        .collect()
}

/// A relay on loopback serving the guest page; returns it and its HTTPS port.
pub fn guest_relay() -> (Clinic, u16) {
    let port = free_tcp_port();
    let https = format!("127.0.0.1:{port}");
    let dist = guest_dist();
    let clinic = Clinic::new(&[
        "--https-listen",
        &https,
        "--guest-dir",
        dist.to_str().unwrap(),
        "--webrtc-bind",
        "127.0.0.1",
        // Tests run side by side: each relay its own shared WebRTC port.
        "--webrtc-udp",
        "0",
    ]);
    (clinic, port)
}

/// The video tracks the browser decodes at more than 0 fps, from a `stats` event.
pub fn decoding_fps(stats: &Value) -> Vec<f64> {
    stats["tracks"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|t| t["kind"] == "video")
                .filter_map(|t| t["fps"].as_f64())
                .filter(|f| *f > 0.0)
                .collect()
        })
        .unwrap_or_default()
}
