//! The ClinicMeet wire protocol, shared by the relay, the client engine and
//! (later) browser guests. Pure data and pure functions: no sockets, no clocks.
//!
//! * [`frame`]: length-delimited framing of control messages on a QUIC stream.
//! * [`datagram`]: the flow-id prefix of media datagrams (RTP/RTCP over QUIC).
//! * [`messages`]: the requests a client sends, the replies and events it gets.
//! * [`access_code`]: the 8-character meeting code, its alphabet, bucket and parsing.
//! * [`join_secret`]: what a join may carry: a code or an invite link's long secret.
//! * [`error`]: stable error codes carried on the wire.
//! * [`limits`]: sizes and lengths both ends enforce.
//! * [`transfer`]: attachment uploads and downloads outside the control stream.

pub mod access_code;
pub mod datagram;
pub mod error;
pub mod frame;
pub mod join_secret;
pub mod limits;
pub mod messages;
pub mod transfer;

pub use access_code::AccessCode;
pub use error::{ErrorBody, ErrorCode};
pub use join_secret::{InviteSecret, JoinSecret};
pub use messages::*;

/// ALPN protocol id for the QUIC connection between a client and the relay.
pub const ALPN: &[u8] = b"clinicmeet/1";

/// The control protocol version this build speaks best.
pub const PROTOCOL_VERSION: u16 = 1;
/// The oldest control protocol version this build still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// Picks the highest version both sides support, or `None` when the ranges do not meet.
pub fn negotiate_version(client_min: u16, client_max: u16) -> Option<u16> {
    let hi = client_max.min(PROTOCOL_VERSION);
    let lo = client_min.max(MIN_PROTOCOL_VERSION);
    (lo <= hi).then_some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate_version(1, 1), Some(1));
        assert_eq!(negotiate_version(1, 9), Some(PROTOCOL_VERSION));
        assert_eq!(negotiate_version(2, 3), None);
        assert_eq!(negotiate_version(0, 0), None);
    }
}
