//! Media datagrams: in the manner of the RTP-over-QUIC draft, each QUIC datagram
//! is a flow id (a QUIC variable-length integer, RFC 9000 §16) followed by one
//! RTP or RTCP packet (told apart by the RTCP packet type, RFC 5761). Flow ids are
//! handed out by the relay in `published`/`subscribed` replies.

/// Largest flow id a varint can carry.
pub const MAX_FLOW_ID: u64 = (1 << 62) - 1;

/// Bytes the flow id takes on the wire.
pub fn flow_id_len(flow_id: u64) -> usize {
    match flow_id {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Writes the flow id prefix into `out` (which must hold [`flow_id_len`] bytes);
/// returns the number of bytes written. Flow ids above [`MAX_FLOW_ID`] are truncated.
pub fn write_flow_id(flow_id: u64, out: &mut [u8]) -> usize {
    let v = flow_id & MAX_FLOW_ID;
    match flow_id_len(v) {
        1 => {
            out[0] = v as u8;
            1
        }
        2 => {
            out[..2].copy_from_slice(&((v as u16) | 0x4000).to_be_bytes());
            2
        }
        4 => {
            out[..4].copy_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
            4
        }
        _ => {
            out[..8].copy_from_slice(&(v | 0xC000_0000_0000_0000).to_be_bytes());
            8
        }
    }
}

/// Builds a datagram: flow id prefix + packet.
pub fn encode(flow_id: u64, packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; flow_id_len(flow_id & MAX_FLOW_ID) + packet.len()];
    let n = write_flow_id(flow_id, &mut out);
    out[n..].copy_from_slice(packet);
    out
}

/// Splits a datagram into (flow id, packet). `None` for a truncated prefix or an empty packet.
pub fn decode(datagram: &[u8]) -> Option<(u64, &[u8])> {
    let first = *datagram.first()?;
    let len = 1usize << (first >> 6);
    let prefix = datagram.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for b in &prefix[1..] {
        v = (v << 8) | u64::from(*b);
    }
    let packet = &datagram[len..];
    (!packet.is_empty()).then_some((v, packet))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        assert_eq!(encode(5, b"x"), vec![5, b'x']);
        assert_eq!(encode(300, b"x"), vec![0x41, 0x2c, b'x']);
        assert_eq!(decode(&[0x41, 0x2c, 1, 2]), Some((300, &[1u8, 2][..])));
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x41]), None);
        assert_eq!(decode(&[7]), None, "no packet after the prefix");
    }

    proptest! {
        #[test]
        fn roundtrip(flow in 0u64..=MAX_FLOW_ID, packet in proptest::collection::vec(any::<u8>(), 1..100)) {
            let d = encode(flow, &packet);
            prop_assert_eq!(d.len(), flow_id_len(flow) + packet.len());
            prop_assert_eq!(decode(&d), Some((flow, &packet[..])));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = decode(&bytes);
        }
    }
}
