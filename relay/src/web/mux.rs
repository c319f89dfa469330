//! One UDP port and one TCP port for every browser guest's ICE, DTLS and SRTP.
//!
//! The `webrtc` crate (0.21) binds its own sockets per peer connection and has no
//! UDP mux yet (`SettingEngine::with_udp_network` is a to-do in the `rtc` core).
//! It does take the socket layer from a [`Runtime`], so each peer connection gets
//! a [`MuxRuntime`] that hands the crate *virtual* sockets instead of the ones it
//! bound (those are closed at once):
//!
//! * a [`MuxUdp`] per local address the crate wanted: its datagrams come from the
//!   shared UDP socket, routed by [`Demux`] (STUN ufrag, then remote address), and
//!   what it sends leaves from the shared socket, from the local address the
//!   browser last reached (`IP_PKTINFO`, through `quinn-udp`);
//! * a [`MuxTcpListener`] whose connections are the ICE-TCP connections (RFC 6544,
//!   passive) that arrived on the shared TCP port — the HTTPS port, told apart from
//!   TLS by the first byte — and whose first frame's STUN ufrag names this peer
//!   connection.
//!
//! The crate still puts the addresses it bound into its candidates; the answer is
//! rewritten to the shared ports by [`super::ice::advertise`]. Everything else
//! (timers, tasks) is the crate's own [`TokioRuntime`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit, UdpSockRef, UdpSocketState,
};

use super::ice::{self, Demux, PeerKey};

/// Datagrams queued per virtual socket before the mux drops (as a full socket would).
const UDP_QUEUE: usize = 1024;
/// How long an ICE-TCP connection may take to send its first frame.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

type Datagram = (Vec<u8>, SocketAddr, Option<IpAddr>);

#[derive(Default)]
struct Ports {
    udp: Vec<(SocketAddr, mpsc::Sender<Datagram>)>,
    tcp: Vec<(SocketAddr, mpsc::Sender<Arc<MuxTcpStream>>)>,
}

#[derive(Default)]
struct State {
    demux: Demux,
    ports: HashMap<PeerKey, Ports>,
    next: PeerKey,
}

struct Inner {
    udp: UdpSocket,
    udp_state: UdpSocketState,
    udp_addr: SocketAddr,
    tcp_port: Option<u16>,
    state: Mutex<State>,
}

/// The shared sockets (cheap to clone).
#[derive(Clone)]
pub struct IceMux {
    inner: Arc<Inner>,
}

impl fmt::Debug for IceMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceMux")
            .field("udp", &self.inner.udp_addr)
            .field("tcp_port", &self.inner.tcp_port)
            .finish()
    }
}

impl IceMux {
    /// Binds the shared UDP socket (port 0: one ephemeral port, still shared) and
    /// starts receiving. `tcp_port`: the HTTPS port ICE-TCP connections arrive on
    /// ([`IceMux::accept_tcp`]), or `None` for UDP only. Needs a Tokio runtime.
    pub fn bind(udp: SocketAddr, tcp_port: Option<u16>) -> io::Result<IceMux> {
        let std_sock = std::net::UdpSocket::bind(udp)?;
        std_sock.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(std_sock)?;
        let udp_state = UdpSocketState::new(UdpSockRef::from(&sock))?;
        let udp_addr = sock.local_addr()?;
        let inner =
            Arc::new(Inner { udp: sock, udp_state, udp_addr, tcp_port, state: Mutex::new(State::default()) });
        tokio::spawn(recv_loop(inner.clone()));
        Ok(IceMux { inner })
    }

    /// The shared UDP socket's address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.inner.udp_addr
    }

    /// The ICE-TCP port, if on.
    pub fn tcp_port(&self) -> Option<u16> {
        self.inner.tcp_port
    }

    /// Registers a new peer connection with fresh ICE credentials.
    pub fn lease(&self) -> Lease {
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // 64 random bits of ufrag (hex is valid ice-char) and 128 of password.
            let ufrag = format!("{:016x}", rand::random::<u64>());
            let pwd = format!("{:032x}", rand::random::<u128>());
            st.next += 1;
            let key = st.next;
            if st.demux.add(&ufrag, &pwd, key) {
                st.ports.insert(key, Ports::default());
                return Lease { key, ufrag, pwd, inner: self.inner.clone() };
            }
        }
    }

    /// Takes over an ICE-TCP connection that arrived on the HTTPS port: reads its
    /// first RFC 4571 frame (a STUN check), and hands the connection to the peer
    /// connection whose ufrag it names. Connections that name none are closed.
    pub async fn accept_tcp(&self, mut tcp: TcpStream, peer: SocketAddr) -> io::Result<()> {
        let first = tokio::time::timeout(FIRST_FRAME_TIMEOUT, async {
            let mut head = [0u8; 2];
            tcp.read_exact(&mut head).await?;
            let len = ice::frame_len(head);
            if len > ice::MAX_FIRST_FRAME {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "first ICE-TCP frame too long"));
            }
            let mut frame = vec![0u8; 2 + len];
            frame.get_mut(..2).unwrap_or_default().copy_from_slice(&head);
            tcp.read_exact(frame.get_mut(2..).unwrap_or_default()).await?;
            Ok(frame)
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no ICE-TCP frame"))??;
        let target = {
            let st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
            st.demux
                .verified_peer(first.get(2..).unwrap_or_default())
                .and_then(|k| st.ports.get(&k))
                .and_then(|p| p.tcp.first().cloned())
        };
        let Some((local, tx)) = target else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "ICE-TCP check for no known peer connection",
            ));
        };
        let _ = tcp.set_nodelay(true);
        let (read_half, write_half) = tcp.into_split();
        let stream = Arc::new(MuxTcpStream { prefix: Mutex::new(first), read_half, write_half, local, peer });
        tx.send(stream).await.map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "peer connection gone"))
    }
}

/// Routes what arrives on the shared UDP socket, for the life of the process.
async fn recv_loop(inner: Arc<Inner>) {
    let gro = inner.udp_state.gro_segments().max(1);
    let mut buf = vec![0u8; gro * 1500];
    loop {
        if inner.udp.readable().await.is_err() {
            return;
        }
        let mut meta = [RecvMeta::default()];
        let res = inner.udp.try_io(tokio::io::Interest::READABLE, || {
            let mut bufs = [IoSliceMut::new(&mut buf)];
            inner.udp_state.recv(UdpSockRef::from(&inner.udp), &mut bufs, &mut meta)
        });
        let n = match res {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // ICMP errors and the like: per remote, not fatal for the socket.
                tracing::trace!(%e, "shared WebRTC UDP socket");
                continue;
            }
        };
        if n == 0 {
            continue;
        }
        let Some(m) = meta.first() else { continue };
        let data = buf.get(..m.len).unwrap_or_default();
        let stride = if m.stride == 0 { m.len.max(1) } else { m.stride };
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        for seg in data.chunks(stride) {
            let Some(key) = st.demux.route(m.addr, m.dst_ip, seg) else { continue };
            let Some(ports) = st.ports.get(&key) else { continue };
            let target =
                ports.udp.iter().find(|(a, _)| Some(a.ip()) == m.dst_ip).or_else(|| ports.udp.first());
            if let Some((_, tx)) = target {
                let _ = tx.try_send((seg.to_vec(), m.addr, m.dst_ip));
            }
        }
    }
}

/// A peer connection's registration; unregisters when dropped.
pub struct Lease {
    key: PeerKey,
    ufrag: String,
    pwd: String,
    inner: Arc<Inner>,
}

impl Lease {
    /// The ICE credentials the peer connection must use.
    pub fn credentials(&self) -> (String, String) {
        (self.ufrag.clone(), self.pwd.clone())
    }

    /// The runtime that gives this peer connection its virtual sockets.
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(MuxRuntime { key: self.key, inner: self.inner.clone() })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        st.demux.remove(self.key);
        st.ports.remove(&self.key);
    }
}

/// [`TokioRuntime`] with the shared sockets (see the module documentation).
struct MuxRuntime {
    key: PeerKey,
    inner: Arc<Inner>,
}

impl fmt::Debug for MuxRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxRuntime").field("key", &self.key).finish()
    }
}

impl Runtime for MuxRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let local = socket.local_addr()?;
        drop(socket);
        let (tx, rx) = mpsc::channel(UDP_QUEUE);
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let ports = st.ports.get_mut(&self.key).ok_or_else(|| io::Error::other("peer connection closed"))?;
        ports.udp.retain(|(a, _)| *a != local);
        ports.udp.push((local, tx));
        Ok(Arc::new(MuxUdp { local, rx: Mutex::new(rx), inner: self.inner.clone() }))
    }

    fn wrap_tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        let local = listener.local_addr()?;
        drop(listener);
        let (tx, rx) = mpsc::channel(8);
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let ports = st.ports.get_mut(&self.key).ok_or_else(|| io::Error::other("peer connection closed"))?;
        ports.tcp.retain(|(a, _)| *a != local);
        ports.tcp.push((local, tx));
        Ok(Arc::new(MuxTcpListener { local, rx: tokio::sync::Mutex::new(rx) }))
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        // The relay only accepts (passive candidates); it never dials browsers.
        Box::pin(async move {
            Err(io::Error::new(io::ErrorKind::Unsupported, format!("no active ICE-TCP to {remote_addr}")))
        })
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        TokioRuntime.resolve_host(host)
    }

    fn now(&self) -> Instant {
        TokioRuntime.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.yield_now()
    }

    fn name(&self) -> &'static str {
        "clinicmeet-mux"
    }
}

/// One peer connection's view of the shared UDP socket at one local address.
struct MuxUdp {
    local: SocketAddr,
    rx: Mutex<mpsc::Receiver<Datagram>>,
    inner: Arc<Inner>,
}

impl fmt::Debug for MuxUdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxUdp").field("local", &self.local).finish()
    }
}

impl AsyncUdpSocket for MuxUdp {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let src_ip = {
            let st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
            st.demux.reply_from(transmit.destination)
        };
        let t = Transmit {
            destination: transmit.destination,
            ecn: transmit.ecn,
            contents: transmit.contents,
            segment_size: None,
            src_ip,
        };
        let sock = &self.inner.udp;
        loop {
            match sock.poll_send_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            match sock.try_io(tokio::io::Interest::WRITABLE, || {
                self.inner.udp_state.try_send(UdpSockRef::from(sock), &t).map(|()| t.contents.len())
            }) {
                Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        match rx.poll_recv(cx) {
            // Unregistered: the connection is closing; stay quiet until it stops.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
            Poll::Ready(Some((data, from, dst_ip))) => {
                let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
                    return Poll::Ready(Ok(0));
                };
                let n = data.len().min(buf.len());
                buf.get_mut(..n).unwrap_or_default().copy_from_slice(data.get(..n).unwrap_or_default());
                m.addr = from;
                m.len = n;
                m.stride = n.max(1);
                m.ecn = None;
                m.dst_ip = dst_ip;
                Poll::Ready(Ok(1))
            }
        }
    }
}

/// One peer connection's ICE-TCP connections.
struct MuxTcpListener {
    local: SocketAddr,
    rx: tokio::sync::Mutex<mpsc::Receiver<Arc<MuxTcpStream>>>,
}

impl fmt::Debug for MuxTcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxTcpListener").field("local", &self.local).finish()
    }
}

impl AsyncTcpListener for MuxTcpListener {
    fn accept<'a>(
        &'a self,
    ) -> Pin<Box<dyn Future<Output = io::Result<(Arc<dyn AsyncTcpStream>, SocketAddr)>> + Send + 'a>> {
        Box::pin(async move {
            let mut rx = self.rx.lock().await;
            match rx.recv().await {
                Some(s) => {
                    let peer = s.peer;
                    Ok((s as Arc<dyn AsyncTcpStream>, peer))
                }
                None => std::future::pending().await,
            }
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// An ICE-TCP connection handed to a peer connection, with the frame the mux read
/// to route it still to be read.
struct MuxTcpStream {
    prefix: Mutex<Vec<u8>>,
    read_half: tokio::net::tcp::OwnedReadHalf,
    write_half: tokio::net::tcp::OwnedWriteHalf,
    /// The peer connection's listener address (what its candidate names).
    local: SocketAddr,
    peer: SocketAddr,
}

impl fmt::Debug for MuxTcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxTcpStream").field("local", &self.local).field("peer", &self.peer).finish()
    }
}

impl AsyncTcpStream for MuxTcpStream {
    fn read<'a, 'b>(
        &'a self,
        buf: &'b mut [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<usize>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            {
                let mut prefix = self.prefix.lock().unwrap_or_else(|e| e.into_inner());
                if !prefix.is_empty() {
                    let n = prefix.len().min(buf.len());
                    buf.get_mut(..n).unwrap_or_default().copy_from_slice(prefix.get(..n).unwrap_or_default());
                    prefix.drain(..n);
                    return Ok(n);
                }
            }
            loop {
                self.read_half.readable().await?;
                match self.read_half.try_read(buf) {
                    Ok(n) => return Ok(n),
                    Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn write_all<'a, 'b>(&'a self, buf: &'b [u8]) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            let mut rest = buf;
            while !rest.is_empty() {
                self.write_half.writable().await?;
                match self.write_half.try_write(rest) {
                    Ok(0) => {
                        return Err(io::Error::new(io::ErrorKind::WriteZero, "ICE-TCP connection closed"))
                    }
                    Ok(n) => rest = rest.get(n..).unwrap_or_default(),
                    Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}
