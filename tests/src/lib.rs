//! Harness for end-to-end tests: starts the already-built `clinicmeet-relay` and
//! `clinicmeet-cli` binaries (from the same target directory as the test) as real
//! processes on loopback, and reads their JSON-line output.
//!
//! Build the binaries first: `cargo build --workspace` (the README's test command does).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use serde_json::json;

pub mod browser;
pub mod impair;
pub mod netns;

/// Path of a binary built in the same target directory as the running test.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the workspace first (`cargo build --workspace`, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// `bin`, or `ip netns exec NS bin` (which execs the binary itself, so killing the
/// child kills the binary).
fn netns_command(netns: Option<&str>, bin: PathBuf) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.arg("netns").arg("exec").arg(ns).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// Where test processes write their stderr, so a failing test can show it.
fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("log file")
}

/// A running relay with its own data directory.
pub struct Relay {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub addr: String,
    pub pin: String,
    pub http: Option<String>,
    extra_args: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
    /// Network namespace the relay runs in (`ip netns exec`), if any.
    netns: Option<String>,
}

impl Relay {
    /// Starts a relay on an ephemeral loopback port with a fresh data directory.
    pub fn start(extra_args: &[&str]) -> Relay {
        Relay::start_with(None, "127.0.0.1:0", extra_args)
    }

    /// Starts a relay inside network namespace `ns`, listening on every address of it.
    pub fn start_in_netns(ns: &str, extra_args: &[&str]) -> Relay {
        Relay::start_with(Some(ns.to_string()), "0.0.0.0:0", extra_args)
    }

    fn start_with(netns: Option<String>, listen: &str, extra_args: &[&str]) -> Relay {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("relay");
        Relay::start_at(data_dir, Some(tmp), netns, listen, extra_args)
    }

    /// Starts a relay whose data directory is `data_dir` (e.g. on a small tmpfs).
    pub fn start_in_dir(data_dir: PathBuf, extra_args: &[&str]) -> Relay {
        Relay::start_at(data_dir, None, None, "127.0.0.1:0", extra_args)
    }

    fn start_at(
        data_dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        netns: Option<String>,
        listen: &str,
        extra_args: &[&str],
    ) -> Relay {
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut relay = Relay {
            child: None,
            data_dir,
            addr: listen.into(),
            pin: String::new(),
            http: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            _tmp: tmp,
            netns,
        };
        relay.spawn();
        relay
    }

    fn spawn(&mut self) {
        let mut cmd = netns_command(self.netns.as_deref(), bin_path("clinicmeet-relay"));
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(&self.addr)
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&self.data_dir, "relay"));
        let mut child = cmd.spawn().expect("spawn clinicmeet-relay");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("relay exited before its ready line; log: {}", self.log()))
                .expect("read relay stdout");
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["event"] == "listening" {
                    break v;
                }
            }
        };
        // Keep draining stdout so the relay never blocks on a full pipe.
        thread::spawn(move || for _ in lines {});
        self.addr = ready["quic"].as_str().expect("quic address in ready line").to_string();
        self.pin = ready["pin"].as_str().expect("pin in ready line").to_string();
        self.http = ready["http"].as_str().map(str::to_string);
        self.child = Some(child);
    }

    /// Kills the relay process (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills and starts the relay again on the same address with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `clinicmeet-relay staff add NAME` and returns (staff_id, enrollment_code).
    pub fn staff_add(&self, name: &str) -> (String, String) {
        let v = self.admin(&["staff", "add", name]);
        (v["staff_id"].as_str().unwrap().to_string(), v["enrollment_code"].as_str().unwrap().to_string())
    }

    /// Runs an admin subcommand against the data directory and parses its JSON output
    /// (one value, or an array of the JSON lines it printed).
    pub fn admin(&self, args: &[&str]) -> Value {
        let out = Command::new(bin_path("clinicmeet-relay"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .output()
            .expect("run clinicmeet-relay admin command");
        assert!(out.status.success(), "relay {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut values: Vec<Value> = text
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("relay {args:?} printed non-JSON {l:?}: {e}"))
            })
            .collect();
        if values.len() == 1 {
            values.pop().unwrap()
        } else {
            Value::Array(values)
        }
    }

    /// The relay's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("relay.log")).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One user's headless client: its own data directory and display name.
#[derive(Clone)]
pub struct Client {
    pub name: String,
    pub data_dir: PathBuf,
    relay_addr: String,
    pin: String,
    bind: Option<String>,
    tmp: Arc<tempfile::TempDir>,
    /// Network namespace the client runs in, if any.
    netns: Option<String>,
    /// Extra environment of its processes.
    env: Vec<(String, String)>,
}

impl Client {
    pub fn new(relay: &Relay, name: &str) -> Client {
        let tmp = tempfile::tempdir().expect("tempdir");
        Client {
            name: name.to_string(),
            data_dir: tmp.path().to_path_buf(),
            relay_addr: relay.addr.clone(),
            pin: relay.pin.clone(),
            bind: None,
            tmp: Arc::new(tmp),
            netns: None,
            env: Vec::new(),
        }
    }

    /// Sets an environment variable for this client's processes.
    pub fn env(mut self, key: &str, value: &str) -> Client {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Makes this client connect from another loopback address (e.g. 127.0.0.2).
    pub fn bind(mut self, ip: &str) -> Client {
        self.bind = Some(ip.to_string());
        self
    }

    /// Runs this client inside network namespace `ns`, reaching the relay at `relay_ip`
    /// (the relay's port stays) or at `ip:port` when a port is given.
    pub fn in_netns(mut self, ns: &str, relay_ip: &str) -> Client {
        let port = self.relay_addr.rsplit(':').next().unwrap_or_default().to_string();
        self.relay_addr =
            if relay_ip.contains(':') { relay_ip.to_string() } else { format!("{relay_ip}:{port}") };
        self.netns = Some(ns.to_string());
        self
    }

    /// Follows a relay that restarted on another address.
    pub fn set_relay(&mut self, relay: &Relay) {
        self.relay_addr = relay.addr.clone();
        self.pin = relay.pin.clone();
    }

    fn command(&self) -> Command {
        let mut cmd = netns_command(self.netns.as_deref(), bin_path("clinicmeet-cli"));
        cmd.arg("--relay")
            .arg(&self.relay_addr)
            .arg("--pin")
            .arg(&self.pin)
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir);
        if let Some(ip) = &self.bind {
            cmd.arg("--bind").arg(ip);
        }
        cmd.env("RUST_LOG", "info");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs a one-shot subcommand; returns (success, stdout JSON lines).
    pub fn run(&self, args: &[&str]) -> (bool, Vec<Value>) {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stderr(log_file(&self.data_dir, "cli"))
            .output()
            .expect("run clinicmeet-cli");
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (out.status.success(), lines)
    }

    /// Runs a one-shot subcommand that must succeed and print one JSON value.
    pub fn run_ok(&self, args: &[&str]) -> Value {
        let (ok, lines) = self.run(args);
        assert!(ok, "clinicmeet-cli {args:?} failed: {lines:?}\n{}", self.log());
        lines.into_iter().last().unwrap_or(Value::Null)
    }

    /// Enrolls this client as staff with a code from `Relay::staff_add`.
    pub fn enroll(&self, code: &str) {
        self.run_ok(&["enroll", code]);
    }

    /// Creates a meeting; returns (meeting_id, access_code).
    pub fn create(&self, extra: &[&str]) -> (String, String) {
        let mut args = vec!["create", "--title", "Weekly case review"];
        args.extend_from_slice(extra);
        let v = self.run_ok(&args);
        (v["meeting_id"].as_str().unwrap().to_string(), v["access_code"].as_str().unwrap().to_string())
    }

    /// Starts `join CODE` as a long-running process.
    pub fn join(&self, code: &str, extra: &[&str]) -> Session {
        let mut cmd = self.command();
        cmd.arg("join").arg(code).args(extra).arg("--stay");
        Session::spawn(cmd, self.name.clone(), self.data_dir.clone(), self.tmp.clone())
    }

    /// The local chat history (JSON lines) of a meeting.
    pub fn history(&self, code_or_id: &str) -> Vec<Value> {
        let (ok, lines) = self.run(&["history", code_or_id]);
        assert!(ok, "history failed: {}", self.log());
        lines
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("cli.log")).unwrap_or_default()
    }
}

/// A running `clinicmeet-cli join` process.
pub struct Session {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    /// Every event received so far, in order.
    pub seen: Vec<Value>,
    data_dir: PathBuf,
    /// Keeps the client's data directory alive as long as its process runs.
    _dir: Arc<tempfile::TempDir>,
}

impl Session {
    fn spawn(mut cmd: Command, name: String, data_dir: PathBuf, dir: Arc<tempfile::TempDir>) -> Session {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file(&data_dir, "cli"))
            .spawn()
            .expect("spawn clinicmeet-cli join");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Session { name, child, stdin, events: rx, seen: Vec::new(), data_dir, _dir: dir }
    }

    /// Sends one line to the client's stdin (chat text, or a `/command`).
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to clinicmeet-cli stdin");
        stdin.flush().unwrap();
    }

    /// Waits for the next event matching `pred` (events before it are kept in `seen`).
    pub fn expect(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        // An event seen earlier counts: tests may check after the fact.
        if let Some(v) = self.seen.iter().find(|v| pred(v)).cloned() {
            return v;
        }
        self.expect_next(what, timeout, pred)
    }

    /// Like [`Session::expect`], but only an event not seen yet counts (for a state
    /// that changes back, e.g. locked → unlocked, where an earlier event would match).
    pub fn expect_next(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let start = self.seen.len();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: no `{what}` within {timeout:?}; events: {}\nlog:\n{}",
                    self.name,
                    serde_json::to_string_pretty(&self.seen[start.saturating_sub(20)..]).unwrap(),
                    self.log()
                ),
            }
        }
    }

    /// Waits for an event by name (`{"event": name, ...}`).
    pub fn expect_event(&mut self, name: &str, timeout: Duration) -> Value {
        self.expect(name, timeout, |v| v["event"] == name)
    }

    /// Collects events for `dur` without waiting for anything in particular.
    pub fn drain(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        while let Ok(v) = self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(v);
        }
    }

    /// True if an event by that name was seen (after draining pending ones).
    pub fn saw(&mut self, pred: impl Fn(&Value) -> bool) -> bool {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        self.seen.iter().any(pred)
    }

    /// Waits for the process to exit; returns its exit success.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain(Duration::from_millis(100));
                return status.success();
            }
            assert!(Instant::now() < deadline, "{}: process did not exit within {timeout:?}", self.name);
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin and asks the client to leave.
    pub fn leave(&mut self) {
        if self.stdin.is_some() {
            self.send("/leave");
        }
        self.stdin = None;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("cli.log")).unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Generous timeout for one step of a test on a loaded 2-core machine.
pub const STEP: Duration = Duration::from_secs(15);

/// Finds the first value under `key` anywhere in a JSON tree (depth first), so
/// tests do not depend on how an event nests its fields.
pub fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) => {
            if let Some(x) = map.get(key) {
                return Some(x);
            }
            map.values().find_map(|x| find(x, key))
        }
        Value::Array(items) => items.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

/// `find` for a string value.
pub fn find_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    find(v, key).and_then(Value::as_str)
}

/// Is this an `error` event with the given code?
pub fn is_error(v: &Value, code: &str) -> bool {
    v["event"] == "error" && find_str(v, "code") == Some(code)
}

/// Sets up a relay with one enrolled staff member who creates meetings.
pub struct Clinic {
    pub relay: Relay,
    pub doctor: Client,
}

impl Clinic {
    pub fn new(relay_args: &[&str]) -> Clinic {
        Clinic::on(Relay::start(relay_args))
    }

    /// A clinic on an already started relay.
    pub fn on(relay: Relay) -> Clinic {
        let doctor = Client::new(&relay, "Dr. Grey");
        let (_, code) = relay.staff_add("Dr. Grey");
        doctor.enroll(&code);
        Clinic { relay, doctor }
    }

    /// Another enrolled staff member.
    pub fn staff(&self, name: &str) -> Client {
        let c = Client::new(&self.relay, name);
        let (_, code) = self.relay.staff_add(name);
        c.enroll(&code);
        c
    }

    /// A guest (no enrollment).
    pub fn guest(&self, name: &str) -> Client {
        Client::new(&self.relay, name)
    }
}

/// The participant id announced in a `joined`/`admitted`/`waiting` event.
pub fn my_id(ev: &Value) -> String {
    ev.get("you")
        .and_then(|y| y.get("id"))
        .or_else(|| ev.get("participant_id"))
        .or_else(|| find(ev, "you").and_then(|y| y.get("id")))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no participant id in {ev}"))
        .to_string()
}

/// The participant id of `name` in the waiting list a moderator sees (from the
/// list in `joined`, or a later `waiting_room` update).
pub fn waiting_id(s: &mut Session, name: &str) -> String {
    let has = |v: &Value| {
        (v["event"] == "waiting_room" || v["event"] == "joined")
            && v["waiting"].as_array().is_some_and(|w| w.iter().any(|e| e["display_name"] == name))
    };
    // The newest list wins: someone may have been admitted since an older one.
    let v = match s.seen.iter().rev().find(|v| v["event"] == "waiting_room" || v["event"] == "joined") {
        Some(v) if has(v) => v.clone(),
        _ => s.expect(&format!("{name} waiting"), STEP, has),
    };
    let entry = v["waiting"].as_array().unwrap().iter().find(|e| e["display_name"] == name).unwrap();
    entry["participant_id"].as_str().unwrap().to_string()
}
