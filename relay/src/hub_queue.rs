//! The hub thread's input queue: bounded in messages and in frame bytes.
//!
//! Choice: a bounded tokio channel that connection tasks feed with
//! `send().await`, plus a byte budget (a semaphore) that every queued frame
//! holds until the hub thread has processed it. A connection task that finds
//! the queue full *waits* (asynchronously: no tokio worker is blocked), and
//! while it waits it does not read its socket, so QUIC and TCP flow control push
//! back on exactly the clients that send faster than the hub serves. Nothing
//! is dropped, so `Connected` and `Closed` always arrive (a dropped `Closed`
//! would leave a ghost session); a `try_send` that drops frames on overload
//! would need a second, unbounded path for those. The tokio semaphore and
//! channel are first-come first-served, so a flooding connection waits its turn
//! behind others instead of starving them, and the hub's own per-connection
//! rate limit (charged by frame length) then slows it further.
//!
//! Promises: at most [`QUEUE_DEPTH`] messages and [`QUEUE_BYTES`] bytes of
//! frame bodies wait for the hub; no send blocks a thread; the hub thread (not
//! a tokio worker) blocks in [`HubRx::recv_timeout`] on a small runtime of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::hub::ConnId;
use crate::outbox::OutboxTx;

/// Messages waiting for the hub thread, at most.
pub const QUEUE_DEPTH: usize = 4096;
/// Frame bytes waiting for the hub thread, at most (32 maximum-size frames).
pub const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// What connection tasks tell the hub thread.
pub enum HubIn {
    Connected {
        conn: ConnId,
        addr: SocketAddr,
        tx: OutboxTx,
    },
    Frame {
        conn: ConnId,
        body: Vec<u8>,
        _bytes: OwnedSemaphorePermit,
    },
    Oversized {
        conn: ConnId,
        len: usize,
    },
    Closed {
        conn: ConnId,
    },
    /// The relay is shutting down: write what is pending and stop.
    Stop,
    /// A transfer driver holds an upload's blob durably: record it, then answer.
    UploadStored {
        upload: Arc<crate::attachments::Upload>,
        mime: &'static str,
        reply: tokio::sync::oneshot::Sender<
            Result<clinicmeet_protocol::AttachmentInfo, clinicmeet_protocol::ErrorBody>,
        >,
    },
}

/// The hub is gone (the relay is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the hub has stopped")]
pub struct HubGone;

/// The connection tasks' end.
#[derive(Clone)]
pub struct HubTx {
    tx: mpsc::Sender<HubIn>,
    bytes: Arc<Semaphore>,
}

/// The hub thread's end.
pub struct HubRx {
    rx: mpsc::Receiver<HubIn>,
    rt: tokio::runtime::Runtime,
}

/// A new queue. The receiving end carries a single-thread runtime for its timed wait.
pub fn hub_queue() -> std::io::Result<(HubTx, HubRx)> {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    Ok((HubTx { tx, bytes: Arc::new(Semaphore::new(QUEUE_BYTES)) }, HubRx { rx, rt }))
}

impl HubTx {
    pub async fn connected(&self, conn: ConnId, addr: SocketAddr, tx: OutboxTx) -> Result<(), HubGone> {
        self.tx.send(HubIn::Connected { conn, addr, tx }).await.map_err(|_| HubGone)
    }

    /// Queues one frame body, waiting (asynchronously) for room.
    pub async fn frame(&self, conn: ConnId, body: Vec<u8>) -> Result<(), HubGone> {
        let n = body.len().clamp(1, QUEUE_BYTES) as u32;
        let permit = self.bytes.clone().acquire_many_owned(n).await.map_err(|_| HubGone)?;
        self.tx.send(HubIn::Frame { conn, body, _bytes: permit }).await.map_err(|_| HubGone)
    }

    pub async fn oversized(&self, conn: ConnId, len: usize) -> Result<(), HubGone> {
        self.tx.send(HubIn::Oversized { conn, len }).await.map_err(|_| HubGone)
    }

    pub async fn closed(&self, conn: ConnId) -> Result<(), HubGone> {
        self.tx.send(HubIn::Closed { conn }).await.map_err(|_| HubGone)
    }

    /// Asks the hub to record a stored upload; the answer comes once it is committed.
    pub async fn upload_stored(
        &self,
        upload: Arc<crate::attachments::Upload>,
        mime: &'static str,
    ) -> Result<Result<clinicmeet_protocol::AttachmentInfo, clinicmeet_protocol::ErrorBody>, HubGone> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(HubIn::UploadStored { upload, mime, reply }).await.map_err(|_| HubGone)?;
        rx.await.map_err(|_| HubGone)
    }

    pub async fn stop(&self) -> Result<(), HubGone> {
        self.tx.send(HubIn::Stop).await.map_err(|_| HubGone)
    }
}

/// What [`HubRx::recv_timeout`] saw.
pub enum Received {
    Input(HubIn),
    Timeout,
    /// Every sender is gone.
    Disconnected,
}

impl HubRx {
    /// Waits up to `timeout` for the next input. Blocks the calling thread: call
    /// on the hub thread only, never from async code.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Received {
        let rx = &mut self.rx;
        match self.rt.block_on(async { tokio::time::timeout(timeout, rx.recv()).await }) {
            Ok(Some(m)) => Received::Input(m),
            Ok(None) => Received::Disconnected,
            Err(_) => Received::Timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_hold_their_bytes_until_processed() {
        let (tx, mut rx) = hub_queue().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(tx.frame(1, vec![0; QUEUE_BYTES - 10])).unwrap();
        // A second large frame must wait for the first to be processed.
        let blocked = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(50), tx.frame(1, vec![0; 20])).await
        });
        assert!(blocked.is_err(), "byte budget enforced");
        let Received::Input(HubIn::Frame { _bytes: permit, .. }) = rx.recv_timeout(Duration::from_secs(1))
        else {
            panic!("frame expected")
        };
        drop(permit);
        // The permit went with the message: now there is room.
        rt.block_on(tx.frame(1, vec![0; 20])).unwrap();
        assert!(matches!(rx.recv_timeout(Duration::from_secs(1)), Received::Input(HubIn::Frame { .. })));
        assert!(matches!(rx.recv_timeout(Duration::from_millis(10)), Received::Timeout));
        drop(tx);
        assert!(matches!(rx.recv_timeout(Duration::from_secs(1)), Received::Disconnected));
    }
}
