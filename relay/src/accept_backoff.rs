//! What a TCP accept loop does when `accept` fails: it sleeps instead of
//! spinning. Out of file descriptors (`EMFILE`, `ENFILE`) the pending
//! connection stays in the backlog and every retry fails at once, so an
//! unthrottled loop burns a core and starves the rest of the relay. The loop
//! sleeps [`PAUSE`] after each failure and logs at most one line per
//! [`LOG_EVERY`] (with how many failures it swallowed).
//!
//! The QUIC endpoint needs none of this: all its connections share one UDP
//! socket, so accepting one opens no descriptor.

use std::time::{Duration, Instant};

/// Sleep after a failed accept.
pub const PAUSE: Duration = Duration::from_millis(100);
/// At most one log line per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// One accept loop's failure state.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptBackoff {
    /// Logs (rate-limited) and sleeps after a failed accept.
    pub async fn failed(&mut self, what: &str, err: &std::io::Error) {
        let fds = matches!(err.raw_os_error(), Some(23 | 24)); // ENFILE, EMFILE
        self.unlogged += 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            self.last_log = Some(Instant::now());
            let failures = std::mem::take(&mut self.unlogged);
            if fds {
                tracing::warn!(what, %err, failures, "accept failed: out of file descriptors; pausing");
            } else {
                tracing::warn!(what, %err, failures, "accept failed; pausing");
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
}
