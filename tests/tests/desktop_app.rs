//! The desktop app end to end: a REAL `clinicmeet-app` window (WebKitGTK) on a
//! virtual X display, driven through `tauri-driver` + `WebKitWebDriver` over the
//! W3C WebDriver protocol (a tiny HTTP client below), against a real relay and a
//! real `clinicmeet-cli` participant.
//!
//! * `desktop_app_meeting_with_cli_participant`: first run (relay pre-filled from
//!   `CLINICMEET_RELAY`/`CLINICMEET_PIN`) → enrollment → create a meeting → the
//!   device check says no camera / microphone / speaker (these machines have none)
//!   and the app lists none → join → a CLI participant publishing the synthetic
//!   camera joins with the code read from the app's screen → its video shows in
//!   its tile: the frame number embedded in the picture, read back from the tile
//!   canvas's pixels, advances by at least 20 per second → the CLI shares its
//!   (synthetic) screen: a stage tile with its name shows that picture (its frame
//!   number read back too), the cameras move to a strip, and it goes when the share
//!   stops → chat both ways → the host removes the CLI participant from the
//!   participants panel → the host gives the meeting a new code there (two steps):
//!   the header shows it, a CLI joining with the old code gets `invalid_code`, with
//!   the new one reaches the meeting (waits, as the removed guest's address is held,
//!   and is admitted).
//!   Screenshot: `$CARGO_TARGET_DIR/e2e-artifacts/meeting.png`.
//! * `desktop_app_signals`: the signals a busy doctor notices (`ui/src/signals/`), with
//!   the window not focused: a CLI guest knocks → the window title (the page's and the
//!   real X window's) shows "1 waiting", the live region names the guest, and the OS
//!   notification (recorded on the app's private D-Bus session bus) says only "Someone
//!   is waiting to join <title>"; admitted, the guest sends "Mr Smith HIV result" → the
//!   title counts 1 unread, the live region says who wrote, and the notification is
//!   "New message in <title>" with neither the text nor the sender; the chat opened in
//!   the focused window clears the count. Turning "Sounds and notifications" off stops
//!   the notifications; the title still counts.
//! * `desktop_app_four_remote_streams` (ignored; a measurement, run by hand): four
//!   CLI publishers at 360p30; prints frames drawn per second per tile and the CPU
//!   of the app and its web process (from /proc).
//!
//! The app runs on a private D-Bus session bus (no notification reaches a developer's
//! desktop); a `dbus-monitor` records the `org.freedesktop.Notifications.Notify` calls.
//!
//! Needs `Xvfb`, `WebKitWebDriver` (Debian `webkit2gtk-driver`), `tauri-driver`,
//! `dbus-daemon`, `dbus-monitor` and `xwininfo` (`scripts/install-deps.sh` installs them). Set `CLINICMEET_SKIP_DESKTOP_E2E=1`
//! to skip on a machine without them; otherwise their absence fails the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clinicmeet_e2e::{bin_path, is_error, json, Client, Relay, Session};
use serde_json::Value;

const STEP: Duration = Duration::from_secs(30);
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(extra.iter().cloned()).map(|d| d.join(name)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The target directory this test was built in (`target/<profile>/deps/<test>` → `target`).
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("target"))
}

/// A child process killed (with its process group) when dropped.
struct Proc {
    child: Child,
    group: bool,
}

impl Drop for Proc {
    #[allow(unsafe_code)] // killpg(2)
    fn drop(&mut self) {
        if self.group {
            // killpg(2) directly: procps `kill -TERM -<pgid>` on this machine signalled
            // pid -1 (every process) for some group ids, killing the caller's shell too.
            let pgid = self.child.id() as libc::pid_t;
            if pgid > 1 {
                // SAFETY: plain syscalls on a process group this test created.
                unsafe { libc::killpg(pgid, libc::SIGTERM) };
                std::thread::sleep(Duration::from_millis(300));
                // SAFETY: as above.
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a private Xvfb and returns it with its display name (`:N`).
fn start_xvfb() -> (Proc, String) {
    let mut child = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Xvfb");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("Xvfb display number");
    let n: u32 = line.trim().parse().unwrap_or_else(|_| panic!("Xvfb printed {line:?}"));
    (Proc { child, group: false }, format!(":{n}"))
}

/// A private D-Bus session bus for the app, and a monitor recording every
/// `org.freedesktop.Notifications.Notify` call on it to `log`.
struct SessionBus {
    address: String,
    log: PathBuf,
    _monitor: Proc,
    _daemon: Proc,
}

impl SessionBus {
    fn start(dir: &Path) -> SessionBus {
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon (apt-get install dbus-daemon; scripts/install-deps.sh)");
        let mut address = String::new();
        BufReader::new(daemon.stdout.take().unwrap()).read_line(&mut address).expect("dbus-daemon address");
        let address = address.trim().to_string();
        assert!(address.starts_with("unix:"), "dbus-daemon printed {address:?}");
        let log = dir.join("notifications.log");
        let monitor = Command::new("dbus-monitor")
            .args(["--address", &address, "type='method_call',interface='org.freedesktop.Notifications'"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-monitor (apt-get install dbus-bin; scripts/install-deps.sh)");
        let bus = SessionBus {
            address,
            log,
            _monitor: Proc { child: monitor, group: false },
            _daemon: Proc { child: daemon, group: false },
        };
        // The monitor says hello (its NameAcquired) once it listens.
        let deadline = Instant::now() + STEP;
        while std::fs::metadata(&bus.log).map(|m| m.len()).unwrap_or(0) == 0 {
            assert!(Instant::now() < deadline, "dbus-monitor did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        bus
    }

    /// The string arguments (app name, icon, summary, body) of each `Notify` call so far.
    fn notifications(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut calls: Vec<Vec<String>> = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            if !line.starts_with(' ') {
                inside = line.starts_with("method call") && line.contains("member=Notify");
                if inside {
                    calls.push(Vec::new());
                }
            } else if let (true, Some(rest)) = (inside, line.trim_start().strip_prefix("string \"")) {
                if let Some(call) = calls.last_mut() {
                    call.push(rest.strip_suffix('"').unwrap_or(rest).to_string());
                }
            }
        }
        calls
    }

    /// Everything the monitor recorded (every argument of every call).
    fn raw(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

// ---------------------------------------------------------------- WebDriver over HTTP

/// One WebDriver request. tauri-driver's proxy connection to WebKitWebDriver sometimes
/// fails (`client error (SendRequest)`: the request never reached the native driver) and
/// drops ours; such transport failures are retried a few times.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut last = String::new();
    for _ in 0..5 {
        match http_once(port, method, path, body) {
            Err(e) if e.starts_with("transport:") => {
                last = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other,
        }
    }
    Err(last)
}

fn http_once(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("transport: connection closed without a reply")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut payload = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let v: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
    if status >= 400 {
        return Err(format!("{method} {path}: HTTP {status}: {}", v["value"]));
    }
    Ok(v["value"].clone())
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..p]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = p + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

struct Driver {
    port: u16,
    session: String,
}

impl Driver {
    fn path(&self, rest: &str) -> String {
        format!("/session/{}{}", self.session, rest)
    }

    fn js(&self, script: &str, args: Value) -> Value {
        http(self.port, "POST", &self.path("/execute/sync"), Some(&json!({"script": script, "args": args})))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` (a function body returning a value) until it is truthy.
    fn wait(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + STEP;
        loop {
            let v = http(
                self.port,
                "POST",
                &self.path("/execute/sync"),
                Some(&json!({"script": script, "args": args})),
            )
            .unwrap_or(Value::Null);
            let truthy = !matches!(&v, Value::Null | Value::Bool(false))
                && v.as_str() != Some("")
                && v.as_array().is_none_or(|a| !a.is_empty());
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let body = self.js("return document.body ? document.body.innerText : ''", json!([]));
                self.screenshot("failure.png");
                panic!("timed out waiting for {what}; page text:\n{}", body.as_str().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Waits for an element (CSS selector, optionally containing `text`) and returns its id.
    fn element(&self, css: &str, text: &str) -> String {
        let el = self.wait(
            &format!("{css} {text:?}"),
            "const [css, text] = arguments;
             return [...document.querySelectorAll(css)].find(e => (e.textContent || '').includes(text) && !e.disabled) || null;",
            json!([css, text]),
        );
        el[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("not an element: {el}")).to_string()
    }

    fn click(&self, css: &str, text: &str) {
        let id = self.element(css, text);
        http(self.port, "POST", &self.path(&format!("/element/{id}/click")), Some(&json!({})))
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Waits for the element `[data-testid=<test_id>]` and returns its text, trimmed.
    fn text_of(&self, what: &str, test_id: &str) -> String {
        let script = "const e = document.querySelector(`[data-testid=${arguments[0]}]`); return e ? e.textContent.trim() : null;";
        self.wait(what, script, json!([test_id])).as_str().unwrap_or_default().to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css, "");
        http(self.port, "POST", &self.path(&format!("/element/{id}/clear")), Some(&json!({}))).ok();
        http(self.port, "POST", &self.path(&format!("/element/{id}/value")), Some(&json!({"text": text})))
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    fn value_of(&self, css: &str) -> String {
        self.js("const e = document.querySelector(arguments[0]); return e ? e.value : null;", json!([css]))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let dir = target_dir().join("e2e-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        if let Ok(Value::String(b64)) = http(self.port, "GET", &self.path("/screenshot"), None) {
            std::fs::write(&path, decode_base64(&b64)).unwrap();
        }
        path
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(self.port, "DELETE", &format!("/session/{}", self.session), None);
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let Some(v) = A.iter().position(|&a| a == c) else { continue };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Reads the frame number the synthetic camera embeds (`shared/media`
/// `capture::synthetic::embed`: 32×3 blocks at the top, block side = width/32 of
/// a 640-wide source, 32-bit frame number, 56-bit capture time, CRC-8/ATM) back
/// from the pixels of the first canvas matching the selector. Returns
/// `[performance.now(), frame_no, width, height, renderer]` or null when unreadable.
const READ_FRAME_NO: &str = r#"
const c = document.querySelector(arguments[0]);
if (!c || !c.width || !c.height) return null;
const w = c.width, h = c.height;
const tmp = document.createElement('canvas');
tmp.width = w; tmp.height = h;
const ctx = tmp.getContext('2d');
ctx.drawImage(c, 0, 0);
const px = ctx.getImageData(0, 0, w, h).data;
const cell = w / 32;
const bytes = new Array(12).fill(0);
for (let i = 0; i < 96; i++) {
  const cx = Math.floor(((i % 32) + 0.5) * cell), cy = Math.floor((Math.floor(i / 32) + 0.5) * cell);
  let sum = 0, n = 0;
  for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
    const o = ((cy + dy) * w + (cx + dx)) * 4;
    sum += (px[o] + px[o + 1] + px[o + 2]) / 3; n++;
  }
  if (sum / n > 128) bytes[i >> 3] |= 0x80 >> (i & 7);
}
let crc = 0;
for (let k = 0; k < 11; k++) {
  crc ^= bytes[k];
  for (let b = 0; b < 8; b++) crc = (crc & 0x80) ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
}
if (crc !== bytes[11]) return null;
const no = bytes[0] * 16777216 + (bytes[1] << 16) + (bytes[2] << 8) + bytes[3];
return [performance.now(), no, w, h, c.dataset.renderer || ''];
"#;

/// Samples the embedded frame number of a tile for `dur`; returns (frames per second
/// of picture time advanced, readable samples, last sample).
fn frame_number_rate(d: &Driver, css: &str, dur: Duration) -> (f64, usize, Value) {
    let end = Instant::now() + dur;
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut last = Value::Null;
    while Instant::now() < end {
        let v = http(
            d.port,
            "POST",
            &d.path("/execute/sync"),
            Some(&json!({"script": READ_FRAME_NO, "args": [css]})),
        )
        .unwrap_or(Value::Null);
        if let (Some(t), Some(n)) = (v[0].as_f64(), v[1].as_f64()) {
            samples.push((t, n));
            last = v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let rate = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / ((b.0 - a.0) / 1000.0),
        _ => 0.0,
    };
    (rate, samples.len(), last)
}

/// CPU seconds (user + system) of the threads of the processes in a process group
/// named `process`, by thread name (tokio workers and decoder threads summed by name).
fn cpu_by_thread(pgid: u32, process: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some((name, f)) = parse_stat(&stat) else { continue };
        if name != process || f.get(2).and_then(|g| g.parse::<u32>().ok()) != Some(pgid) {
            continue;
        }
        for t in std::fs::read_dir(e.path().join("task")).into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
            let Some((thread, f)) = parse_stat(&stat) else { continue };
            let v = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            *out.entry(thread).or_insert(0.0) += (v(11) + v(12)) / 100.0;
        }
    }
    out
}

/// `(comm, fields after it)` of a /proc stat line.
fn parse_stat(stat: &str) -> Option<(String, Vec<&str>)> {
    let close = stat.rfind(')')?;
    let name = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
    Some((name, stat.get(close + 2..)?.split_whitespace().collect()))
}

/// CPU seconds (user + system) of every process in a process group, by command name.
fn cpu_by_name(pgid: u32) -> std::collections::BTreeMap<String, f64> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let name = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
        if f.get(2).and_then(|g| g.parse::<u32>().ok()) != Some(pgid) {
            continue;
        }
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *out.entry(name).or_insert(0.0) += (t(11) + t(12)) / tick;
    }
    out
}

/// The app under tauri-driver on a private Xvfb.
struct DesktopApp {
    d: Driver,
    driver_pid: u32,
    /// The app's X display (`:N`).
    display: String,
    bus: SessionBus,
    _driver_proc: Proc,
    _xvfb: Proc,
    _home: tempfile::TempDir,
}

impl DesktopApp {
    /// `None` when `CLINICMEET_SKIP_DESKTOP_E2E` is set.
    fn start(relay: &Relay) -> Option<DesktopApp> {
        if std::env::var_os("CLINICMEET_SKIP_DESKTOP_E2E").is_some() {
            eprintln!("CLINICMEET_SKIP_DESKTOP_E2E set: desktop app end-to-end test skipped");
            return None;
        }
        let cargo_bin = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cargo/bin"))
            .into_iter()
            .collect::<Vec<_>>();
        let tauri_driver = which("tauri-driver", &cargo_bin).expect(
            "tauri-driver not found: run scripts/install-deps.sh (cargo install tauri-driver --locked)",
        );
        let native = which("WebKitWebDriver", &[])
            .expect("WebKitWebDriver not found: apt-get install webkit2gtk-driver (scripts/install-deps.sh)");
        which("Xvfb", &[]).expect("Xvfb not found: apt-get install xvfb (scripts/install-deps.sh)");
        let app = bin_path("clinicmeet-app");
        let home = tempfile::tempdir().unwrap();
        let (xvfb, display) = start_xvfb();
        let bus = SessionBus::start(home.path());

        let (port, native_port) = (free_port(), free_port());
        let artifacts = target_dir().join("e2e-artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        // tauri-driver, WebKitWebDriver and the app log here (a CI artifact next to the screenshots).
        let log_path = artifacts.join("desktop-app.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(&tauri_driver);
        cmd.args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
            .arg("--native-driver")
            .arg(&native)
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env_remove("WAYLAND_DISPLAY")
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .env("CLINICMEET_DATA_DIR", home.path().join("clinicmeet"))
            .env("CLINICMEET_MULTI_INSTANCE", "1")
            .env("CLINICMEET_RELAY", &relay.addr)
            .env("CLINICMEET_PIN", &relay.pin)
            .env_remove("CLINICMEET_SYNTHETIC_DEVICES")
            .env("RUST_LOG", "info,clinicmeet_app=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        let driver_proc = Proc { child: cmd.spawn().expect("start tauri-driver"), group: true };
        let driver_pid = driver_proc.child.id();
        let deadline = Instant::now() + STEP;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tauri-driver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": app}}}});
        let created = http(port, "POST", "/session", Some(&caps)).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("no WebDriver session (the app did not start): {e}\n{log}")
        });
        let d = Driver { port, session: created["sessionId"].as_str().expect("sessionId").to_string() };
        Some(DesktopApp { d, driver_pid, display, bus, _driver_proc: driver_proc, _xvfb: xvfb, _home: home })
    }

    /// First run → enrollment → create a meeting (ticking the setting checkboxes
    /// `settings`, CSS selectors) → device check → join; returns the code.
    fn host_meeting(&self, relay: &Relay, enrollment: &str, settings: &[&str]) -> String {
        let d = &self.d;
        // First run: the relay comes pre-filled from the environment.
        d.element("#relay-address", "");
        let probe = d.js(
            "return window.__TAURI_INTERNALS__.invoke('launch_info').then(r => JSON.stringify(r), e => 'ERR ' + JSON.stringify(e));",
            json!([]),
        );
        assert_eq!(d.value_of("#relay-address"), relay.addr, "launch_info: {probe}");
        assert_eq!(d.value_of("#relay-pin"), relay.pin);
        d.click("button[type=submit]", "Connect");

        // Enrollment with the one-time code.
        d.type_into("#enroll-code", enrollment);
        d.click("button[type=submit]", "Enroll this device");

        // Home: create a meeting and read its code from the screen.
        d.type_into("#m-title", "Case review");
        for setting in settings {
            d.click(setting, "");
        }
        d.click("button[type=submit]", "Create meeting");
        let code = d.text_of("the new meeting's code", "created-code");
        assert_eq!(code.len(), 9, "code {code:?}");
        d.click("button", "Join now");

        // Device check on a machine without camera or sound card: messages, not a failure.
        d.wait(
            "the no-camera message",
            "return document.body.innerText.includes('No camera found')",
            json!([]),
        );
        let text = d.js("return document.body.innerText", json!([])).as_str().unwrap_or_default().to_string();
        assert!(text.contains("No microphone found"), "no microphone message:\n{text}");
        assert!(text.contains("No speaker found"), "no speaker message:\n{text}");
        // ... because the real enumeration (shared/media: nokhwa, cpal) found nothing.
        let devices = d.wait(
            "the device list",
            "return window.__TAURI_INTERNALS__.invoke('list_devices').then(r => JSON.stringify(r));",
            json!([]),
        );
        let devices: Value = serde_json::from_str(devices.as_str().unwrap_or("null")).unwrap();
        for kind in ["cameras", "microphones", "speakers"] {
            assert_eq!(devices[kind], json!([]), "this machine has no {kind}: {devices}");
        }
        d.screenshot("device-check.png");
        d.click("button", "Join meeting");
        d.wait(
            "the meeting page with its code",
            "const e = document.querySelector('.mh-code .mono'); return e && e.textContent.trim() === arguments[0];",
            json!([code]),
        );
        code
    }
}

#[test]
fn desktop_app_meeting_with_cli_participant() {
    let relay = Relay::start(&[]);
    let (_, enrollment) = relay.staff_add("Dr. Ada Lovelace");
    let Some(app) = DesktopApp::start(&relay) else { return };
    let d = &app.d;
    let code = app.host_meeting(&relay, &enrollment, &[]);

    // A CLI participant publishing the synthetic camera joins with the code from the app's screen.
    let guest = Client::new(&relay, "Pat Guest");
    let mut g = guest.join(&code, &["--publish", "synthetic"]);
    g.expect_event("joined", STEP);
    d.wait("the guest's tile", "return document.body.innerText.includes('Pat Guest')", json!([]));

    // Its video: drawn in its tile, the embedded frame number advancing at >= 20 per second.
    let remote = "figure.tile:not(.tile-self) canvas";
    d.wait(
        "the guest's video drawn in its tile",
        "const c = document.querySelector(arguments[0]); return c && Number(c.dataset.framesDrawn || 0) > 10;",
        json!([remote]),
    );
    let (rate, n, last) = frame_number_rate(d, remote, Duration::from_secs(4));
    eprintln!(
        "remote tile: embedded frame number advances {rate:.1}/s over {n} readable samples; last {last}"
    );
    assert!(n >= 10, "the frame number was readable in only {n} samples (last {last})");
    assert!(rate >= 20.0, "the frame number advanced {rate:.1}/s, want >= 20 (last {last})");
    // Its tone makes it the active speaker: its tile is highlighted (the host's mic is off).
    d.wait(
        "the guest's tile highlighted as the active speaker",
        "return !!document.querySelector('figure.tile.tile-speaking:not(.tile-self)');",
        json!([]),
    );

    // A screen share from the CLI (its synthetic 1280x720 screen at 5 fps) fills the
    // stage, captioned with the sharer's name; the cameras move to a strip.
    g.send("/screen on");
    let screen = "figure.tile-screen canvas";
    d.wait(
        "the guest's screen share on the stage",
        "const f = document.querySelector('figure.tile-screen'); const c = f && f.querySelector('canvas');
         return !!c && f.innerText.includes('Pat Guest') && Number(c.dataset.framesDrawn || 0) >= 3;",
        json!([]),
    );
    // It is the shared screen's picture: its own embedded frame number reads back and advances.
    let (rate, n, last) = frame_number_rate(d, screen, Duration::from_secs(3));
    eprintln!(
        "screen share: embedded frame number advances {rate:.1}/s over {n} readable samples; last {last}"
    );
    assert!(n >= 5 && rate >= 2.0, "screen share frame number: {rate:.1}/s over {n} samples (last {last})");
    let strip = d.js("return document.querySelectorAll('.stage-strip figure.tile').length", json!([]));
    assert_eq!(strip, json!(2), "both cameras in the strip beside the shared screen");
    d.screenshot("screen-share.png");
    g.send("/screen off");
    d.wait(
        "the screen share gone from the stage",
        "return !document.querySelector('figure.tile-screen') && !!document.querySelector('.stage-one figure.tile-main');",
        json!([]),
    );

    // The app shares its own screen (the Xvfb display it runs on, captured in Rust):
    // the CLI decodes a screen track from the host, and it stops when the host stops.
    d.click("button.ctl[title='Share screen']", "");
    let shared = g.expect("the app's screen share decoded by the CLI", STEP, |v| {
        v["event"] == "stats" && v["kind"] == "screen" && v["frames_decoded"].as_u64() >= Some(3)
    });
    eprintln!("app screen share at the CLI: {shared}");
    d.click("button.ctl[title='Stop sharing']", "");
    let host_id = shared["participant_id"].clone();
    g.expect_next("the app's screen share stopped", STEP, |v| {
        v["event"] == "media_changed" && v["media"]["screen"] == false && v["participant_id"] == host_id
    });

    // Chat both ways.
    d.click("button.ctl[title=Chat]", "");
    d.type_into("#chat-input", "Hello from the app");
    d.click(".chat-panel button[type=submit]", "Send");
    g.expect("the app's message", STEP, |v| v["event"] == "chat" && v["text"] == "Hello from the app");
    g.send("Hello from the CLI");
    d.wait(
        "the CLI's message in the chat panel",
        "const p = document.querySelector('.chat-panel'); return p && p.innerText.includes('Hello from the CLI') && p.innerText.includes('Hello from the app');",
        json!([]),
    );
    let shot = d.screenshot("meeting.png");
    assert!(
        std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false),
        "screenshot {shot:?} missing or empty"
    );

    // The host removes the CLI participant from the participants panel.
    d.click("button.ctl[title=Participants]", "");
    d.click("button[aria-label='Remove Pat Guest from the meeting']", "");
    // The CLI's tone updates its audio level five times a second; the pending
    // confirmation must outlive those updates (its row once was rebuilt on each).
    std::thread::sleep(Duration::from_secs(1));
    d.click("button[aria-label='Confirm: remove Pat Guest']", "");
    g.expect_event("removed", STEP);
    d.wait(
        "the guest gone from the participants panel",
        "const p = document.querySelector('aside[aria-label=Participants]'); return p && !p.innerText.includes('Pat Guest');",
        json!([]),
    );
    d.screenshot("meeting-after-remove.png");

    // The host gives the meeting a new code (two steps, from the open participants
    // panel): the header shows it, the old code is refused at once, the new one works.
    d.click("[data-testid=new-code]", "New code");
    d.click("[data-testid=confirm-new-code]", "Confirm new code");
    let new_code = d.text_of("the new code", "new-code-value");
    assert!(new_code.len() == 9 && new_code != code, "new code {new_code:?} (old {code:?})");
    d.wait(
        "the header showing the new code",
        "const e = document.querySelector('[data-testid=meeting-code]'); return e && e.textContent.trim() === arguments[0];",
        json!([new_code]),
    );
    let late = Client::new(&relay, "Lee Late");
    let (ok, out) = late.run(&["join", &code]);
    assert!(!ok && out.iter().any(|v| is_error(v, "invalid_code")), "old code: {out:?}");
    let mut l = late.join(&new_code, &[]);
    // The same address as the guest removed above: the relay holds it, so they wait.
    l.expect_event("waiting", STEP);
    d.click("button[aria-label='Admit Lee Late']", "Admit");
    l.expect_event("admitted", STEP);
    d.wait(
        "the participant who joined with the new code",
        "const p = document.querySelector('aside[aria-label=Participants]'); return p && p.innerText.includes('Lee Late');",
        json!([]),
    );
    d.screenshot("meeting-new-code.png");
}

/// The names of the X windows on the app's display (`xwininfo -root -tree`): the real
/// window title, set through Tauri, not only the page's `document.title`.
fn x_window_names(display: &str) -> String {
    let out = Command::new("xwininfo")
        .args(["-root", "-tree", "-display", display])
        .output()
        .expect("xwininfo (apt-get install x11-utils; scripts/install-deps.sh)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn desktop_app_signals() {
    let relay = Relay::start(&[]);
    let (_, enrollment) = relay.staff_add("Dr. Ada Lovelace");
    let Some(app) = DesktopApp::start(&relay) else { return };
    let d = &app.d;
    let code = app.host_meeting(&relay, &enrollment, &["#set-waiting_room"]);
    d.wait("the meeting's window title", "return document.title === 'Case review — ClinicMeet';", json!([]));
    // The doctor looks at another window (Xvfb has no window manager to move the focus:
    // the page gets the `blur` a window manager would cause).
    d.js("window.dispatchEvent(new Event('blur')); return true;", json!([]));

    // A guest knocks: the count in the title (the page's and the X window's), the
    // guest's name for the screen reader, and a notification without it.
    let guest = Client::new(&relay, "Pat Guest");
    let mut g = guest.join(&code, &[]);
    g.expect_event("waiting", STEP);
    d.wait(
        "1 waiting in the title",
        "return document.title === '(1 waiting) Case review — ClinicMeet';",
        json!([]),
    );
    d.wait(
        "the knock in the live region",
        "const e = document.querySelector('[data-testid=live-region]'); return e && e.textContent.includes('Pat Guest is waiting to be let in');",
        json!([]),
    );
    let deadline = Instant::now() + STEP;
    while !x_window_names(&app.display).contains("1 waiting") {
        assert!(Instant::now() < deadline, "X window title: {}", x_window_names(&app.display));
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(x_window_names(&app.display).contains("Case review"), "{}", x_window_names(&app.display));
    let knock = wait_notification(&app.bus, "Someone is waiting to join Case review");
    eprintln!("knock notification: {knock:?}");

    // Let in, the guest writes: 1 unread in the title, the sender for the screen
    // reader, "New message in Case review" on the screen, and nothing of the message.
    d.click("button.waiting-badge", "waiting");
    d.click("button[aria-label='Admit Pat Guest']", "Admit");
    g.expect_event("admitted", STEP);
    d.wait(
        "the title without the waiting count",
        "return document.title === 'Case review — ClinicMeet';",
        json!([]),
    );
    // (Clicks may focus the window: away again.)
    d.js("window.dispatchEvent(new Event('blur')); return true;", json!([]));
    g.send("Mr Smith HIV result");
    d.wait(
        "1 unread in the title",
        "return document.title === '(1 unread) Case review — ClinicMeet';",
        json!([]),
    );
    d.wait(
        "the message in the live region",
        "const e = document.querySelector('[data-testid=live-region]'); return e && e.textContent.includes('New message from Pat Guest');",
        json!([]),
    );
    let message = wait_notification(&app.bus, "New message in Case review");
    eprintln!("message notification: {message:?}");
    assert_eq!(message.get(2).map(String::as_str), Some("ClinicMeet"), "summary: {message:?}");
    let raw = app.bus.raw();
    for secret in ["HIV", "Smith", "Pat Guest"] {
        assert!(!raw.contains(secret), "{secret:?} reached the notification bus:\n{raw}");
    }
    let live = d.js("return document.querySelector('[data-testid=live-region]').textContent", json!([]));
    assert!(!live.as_str().unwrap_or_default().contains("HIV"), "the live region read the text: {live}");
    d.screenshot("signals-unread.png");

    // Back at the app with the chat open: read, the count goes.
    d.click("button.ctl[title=Chat]", "");
    d.js("window.dispatchEvent(new Event('focus')); return true;", json!([]));
    d.wait("the title without unread", "return document.title === 'Case review — ClinicMeet';", json!([]));

    // Sounds and notifications off: a message while away still counts, but notifies nothing.
    d.click("[data-testid=signals-toggle]", "");
    d.wait(
        "the setting off",
        "return document.querySelector('[data-testid=signals-toggle]').getAttribute('aria-checked') === 'false';",
        json!([]),
    );
    d.js("window.dispatchEvent(new Event('blur')); return true;", json!([]));
    let before = app.bus.notifications().len();
    // Past the burst quiet time (4 s), so only the setting can keep it quiet.
    std::thread::sleep(Duration::from_millis(4500));
    g.send("second message");
    d.wait("1 unread again", "return document.title === '(1 unread) Case review — ClinicMeet';", json!([]));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        app.bus.notifications().len(),
        before,
        "a notification with the setting off: {:?}",
        app.bus.notifications()
    );
}

/// Waits for a `Notify` call whose body is `body`; returns its string arguments.
fn wait_notification(bus: &SessionBus, body: &str) -> Vec<String> {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(n) = bus.notifications().into_iter().find(|n| n.get(3).map(String::as_str) == Some(body))
        {
            return n;
        }
        assert!(Instant::now() < deadline, "no notification {body:?}; the bus saw:\n{}", bus.raw());
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// A measurement, not a pass/fail test: four CLI publishers at 360p30; frames the
/// app's tiles receive and draw per second, time spent drawing, the CPU of the app and
/// its web process, and their busiest threads.
/// Run: `cargo test -p clinicmeet-e2e --test desktop_app -- --ignored --nocapture four`.
#[test]
#[ignore = "measurement; run by hand"]
fn desktop_app_four_remote_streams() {
    let relay = Relay::start(&[]);
    let (_, enrollment) = relay.staff_add("Dr. Ada Lovelace");
    let Some(app) = DesktopApp::start(&relay) else { return };
    let d = &app.d;
    let code = app.host_meeting(&relay, &enrollment, &[]);
    let mut guests: Vec<(Client, Session)> = Vec::new();
    for i in 0..4 {
        let c = Client::new(&relay, &format!("Guest {i}"));
        let s = c.join(&code, &["--publish", "synthetic", "--video-size", "640x360", "--fps", "30"]);
        guests.push((c, s));
    }
    for (_, s) in guests.iter_mut() {
        s.expect_event("joined", STEP);
    }
    d.wait(
        "four remote tiles drawing",
        "return [...document.querySelectorAll('figure.tile:not(.tile-self) canvas')].filter(c => Number(c.dataset.framesDrawn || 0) > 10).length >= 4;",
        json!([]),
    );
    std::thread::sleep(Duration::from_secs(3));
    let drawn = "return [...document.querySelectorAll('figure.tile:not(.tile-self) canvas')].map(c => [Number(c.dataset.framesDrawn || 0), c.width, c.height, Number(c.dataset.framesReceived || 0), Number(c.dataset.drawMs || 0), c.dataset.renderer || '', c.closest('figure').dataset.participant]);";
    let threads = |pid| (cpu_by_thread(pid, "clinicmeet-app"), cpu_by_thread(pid, "WebKitWebProces"));
    let (a, cpu_a, thr_a, t_a) =
        (d.js(drawn, json!([])), cpu_by_name(app.driver_pid), threads(app.driver_pid), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let (b, cpu_b, thr_b, secs) = (
        d.js(drawn, json!([])),
        cpu_by_name(app.driver_pid),
        threads(app.driver_pid),
        t_a.elapsed().as_secs_f64(),
    );
    let empty = vec![];
    let (a, b) = (a.as_array().unwrap_or(&empty), b.as_array().unwrap_or(&empty));
    for (i, y) in b.iter().enumerate() {
        // Match tiles by participant: a tile whose video stalled for 2 s was rebuilt
        // (its counters restarted) and is reported as such, not as a negative rate.
        let Some(x) = a.iter().find(|x| x[6] == y[6]) else { continue };
        if y[0].as_f64() < x[0].as_f64() {
            eprintln!("tile {i}: its video stalled and the tile was rebuilt during the window");
            continue;
        }
        let delta = |k: usize| y[k].as_f64().unwrap_or(0.0) - x[k].as_f64().unwrap_or(0.0);
        let fps = delta(0) / secs;
        eprintln!(
            "tile {i}: {fps:.1} frames drawn/s at {}x{} ({}); {:.1} received/s; {:.2} ms per draw",
            y[1],
            y[2],
            y[5].as_str().unwrap_or(""),
            delta(3) / secs,
            delta(4) / delta(0).max(1.0),
        );
    }
    for (name, t) in &cpu_b {
        let used = t - cpu_a.get(name).copied().unwrap_or(0.0);
        eprintln!("cpu {name}: {:.0}% of one core", used / secs * 100.0);
    }
    for (process, (before, after)) in [("app", (&thr_a.0, &thr_b.0)), ("web", (&thr_a.1, &thr_b.1))] {
        let mut busy: Vec<(String, f64)> = after
            .iter()
            .map(|(n, t)| (n.clone(), (t - before.get(n).copied().unwrap_or(0.0)) / secs))
            .collect();
        busy.sort_by(|x, y| y.1.total_cmp(&x.1));
        let top: Vec<String> = busy.iter().take(6).map(|(n, c)| format!("{n} {:.0}%", c * 100.0)).collect();
        eprintln!("threads {process}: {}", top.join(", "));
    }
    d.screenshot("meeting-four-streams.png");
    let rate = frame_number_rate(d, "figure.tile:not(.tile-self) canvas", Duration::from_secs(3));
    eprintln!("first tile: embedded frame number advances {:.1}/s", rate.0);
}
