//! Property-test input generators (feature `proptest`), for this crate's tests
//! and for the media crate's receivers.

use proptest::prelude::*;

/// Bytes that look like RTP often enough to get past the version check.
pub fn rtp_like() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(b0, mut rest)| {
        rest.insert(0, (b0 & 0x3f) | 0x80);
        rest
    })
}
