//! A user-space stand-in for `tc netem` on kernels without `sch_netem` (this
//! machine's has only pfifo/htb/tbf): a UDP forwarder living in the relay's
//! network namespace, one per client link, that drops, delays and jitters
//! datagrams in each direction the way netem does (independent random loss, delay
//! plus normally distributed jitter, so packets may be reordered).
//!
//! Client → `relay_ip:<link port>` (in the relay namespace) → `127.0.0.1:<relay port>`,
//! and back. The relay sees the forwarder's loopback address as the client's.

use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What one direction of a link does to datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Independent loss probability (0..1).
    pub loss: f64,
    pub delay: Duration,
    /// Standard deviation of the added delay (normal distribution, clipped at 0).
    pub jitter: Duration,
}

impl Impairment {
    pub const NONE: Impairment = Impairment { loss: 0.0, delay: Duration::ZERO, jitter: Duration::ZERO };
}

/// Counters of one direction.
#[derive(Debug, Default)]
pub struct DirStats {
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
}

/// A running forwarder for one client link.
pub struct LinkEmulator {
    /// Port clients connect to (on every address of the relay namespace).
    pub port: u16,
    pub to_relay: Arc<DirStats>,
    pub to_client: Arc<DirStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

/// Small deterministic PRNG (xorshift64*), so a run can be repeated with a seed.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(1e-12);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

struct Pending {
    due: Instant,
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Min-heap on (due, seq).
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

type Queue = Arc<(Mutex<BinaryHeap<Pending>>, Condvar)>;

/// Enters network namespace `ns` on the calling thread only.
#[allow(unsafe_code)] // setns(2)
fn enter_netns(ns: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
    // SAFETY: setns with a valid namespace fd; affects only this thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl LinkEmulator {
    /// Starts a forwarder in namespace `ns` to the relay at `127.0.0.1:relay_port`.
    pub fn start(
        ns: &str,
        relay_port: u16,
        to_relay: Impairment,
        to_client: Impairment,
        seed: u64,
    ) -> std::io::Result<LinkEmulator> {
        let listen = SocketAddr::from(([0, 0, 0, 0], 0));
        let relay = SocketAddr::from(([127, 0, 0, 1], relay_port));
        LinkEmulator::start_between(ns, listen, relay, to_relay, to_client, seed)
    }

    /// Starts a forwarder in namespace `ns` that clients reach at `listen` (e.g. the
    /// address a relay advertises) and that forwards to the relay at `relay`.
    pub fn start_between(
        ns: &str,
        listen: SocketAddr,
        relay: SocketAddr,
        to_relay: Impairment,
        to_client: Impairment,
        seed: u64,
    ) -> std::io::Result<LinkEmulator> {
        // Sockets are created on a thread that entered the namespace; they stay in it.
        let ns_owned = ns.to_string();
        let (outer, inner) = thread::spawn(move || -> std::io::Result<(UdpSocket, UdpSocket)> {
            enter_netns(&ns_owned)?;
            let outer = UdpSocket::bind(listen)?;
            let local = if relay.ip().is_loopback() { "127.0.0.1:0" } else { "0.0.0.0:0" };
            let inner = UdpSocket::bind(local)?;
            inner.connect(relay)?;
            Ok((outer, inner))
        })
        .join()
        .map_err(|_| std::io::Error::other("namespace thread panicked"))??;
        for s in [&outer, &inner] {
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            // Large buffers: the emulated link, not the socket, decides what is lost.
            let _ = set_buffers(s);
        }
        let port = outer.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let st_up = Arc::new(DirStats::default());
        let st_down = Arc::new(DirStats::default());
        let outer = Arc::new(outer);
        let inner = Arc::new(inner);
        let mut threads = Vec::new();
        // Client → relay.
        let q_up: Queue = Arc::new((Mutex::new(BinaryHeap::new()), Condvar::new()));
        {
            let (sock, q, halt, client, st) =
                (outer.clone(), q_up.clone(), stop.clone(), client.clone(), st_up.clone());
            threads.push(thread::spawn(move || {
                let mut rng = Rng(seed | 1);
                let mut seq = 0u64;
                let mut buf = vec![0u8; 65_536];
                while !halt.load(Ordering::Relaxed) {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                    *client.lock().unwrap() = Some(from);
                    seq += 1;
                    enqueue(&q, &mut rng, to_relay, seq, &buf[..n], &st);
                }
                q.1.notify_all();
            }));
            let (sock, q, halt, st) = (inner.clone(), q_up.clone(), stop.clone(), st_up.clone());
            threads.push(thread::spawn(move || {
                drain(&q, &halt, &st, |d| sock.send(d).is_ok());
            }));
        }
        // Relay → client.
        let q_down: Queue = Arc::new((Mutex::new(BinaryHeap::new()), Condvar::new()));
        {
            let (sock, q, halt, st) = (inner.clone(), q_down.clone(), stop.clone(), st_down.clone());
            threads.push(thread::spawn(move || {
                let mut rng = Rng((seed ^ 0x9e37_79b9_7f4a_7c15) | 1);
                let mut seq = 0u64;
                let mut buf = vec![0u8; 65_536];
                while !halt.load(Ordering::Relaxed) {
                    let Ok(n) = sock.recv(&mut buf) else { continue };
                    seq += 1;
                    enqueue(&q, &mut rng, to_client, seq, &buf[..n], &st);
                }
                q.1.notify_all();
            }));
            let (sock, q, halt, st) = (outer.clone(), q_down.clone(), stop.clone(), st_down.clone());
            threads.push(thread::spawn(move || {
                drain(&q, &halt, &st, |d| match *client.lock().unwrap() {
                    Some(a) => sock.send_to(d, a).is_ok(),
                    None => false,
                });
            }));
        }
        Ok(LinkEmulator { port, to_relay: st_up, to_client: st_down, stop, threads })
    }
}

#[allow(unsafe_code)] // setsockopt(2)
fn set_buffers(s: &UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4 * 1024 * 1024;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: setsockopt with a valid fd and a c_int option value.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    Ok(())
}

fn enqueue(q: &Queue, rng: &mut Rng, imp: Impairment, seq: u64, data: &[u8], st: &DirStats) {
    st.received.fetch_add(1, Ordering::Relaxed);
    if imp.loss > 0.0 && rng.next_f64() < imp.loss {
        st.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let extra = imp.delay.as_secs_f64() + imp.jitter.as_secs_f64() * rng.normal();
    let due = Instant::now() + Duration::from_secs_f64(extra.max(0.0));
    let (m, cv) = &**q;
    m.lock().unwrap().push(Pending { due, seq, data: data.to_vec() });
    cv.notify_one();
}

fn drain(q: &Queue, stop: &AtomicBool, st: &DirStats, mut send: impl FnMut(&[u8]) -> bool) {
    let (m, cv) = &**q;
    let mut heap = m.lock().unwrap();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        match heap.peek().map(|p| p.due) {
            Some(due) if due <= now => {
                let p = heap.pop().unwrap();
                drop(heap);
                if send(&p.data) {
                    st.sent.fetch_add(1, Ordering::Relaxed);
                }
                heap = m.lock().unwrap();
            }
            Some(due) => heap = cv.wait_timeout(heap, due - now).unwrap().0,
            None => heap = cv.wait_timeout(heap, Duration::from_millis(100)).unwrap().0,
        }
    }
}

impl Drop for LinkEmulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl std::fmt::Display for LinkEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |d: &DirStats| {
            (
                d.received.load(Ordering::Relaxed),
                d.dropped.load(Ordering::Relaxed),
                d.sent.load(Ordering::Relaxed),
            )
        };
        let (a, b) = (s(&self.to_relay), s(&self.to_client));
        write!(
            f,
            "to relay: {} received, {} dropped, {} sent; to client: {} received, {} dropped, {} sent",
            a.0, a.1, a.2, b.0, b.1, b.2
        )
    }
}
