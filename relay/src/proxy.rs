//! Behind a reverse proxy: which address a browser guest's connection counts
//! as. `X-Forwarded-For` is believed only when the TCP peer is one of the
//! configured trusted proxies (`--trusted-proxy CIDR…`); then the client is the
//! rightmost address in the header that is not itself a trusted proxy (each
//! proxy appends the address it received from, so addresses left of that one
//! were written by the client and prove nothing). From anyone else the header
//! is ignored and the TCP peer is the client. Sans-IO.

use std::net::IpAddr;

/// An address block, e.g. `10.0.0.0/8` or `2001:db8::/32` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => {
                l.parse::<u8>().ok().filter(|&l| l <= max).ok_or_else(|| format!("bad prefix in {s:?}"))?
            }
            None => max,
        };
        Ok(Cidr { net, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(u32::from(n).into(), u32::from(a).into(), self.len, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), self.len, 128),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, len: u8, bits: u8) -> bool {
    if len == 0 {
        return true;
    }
    let shift = u32::from(bits - len);
    (a >> shift) == (b >> shift)
}

/// The configured trusted proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(blocks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address for a request from `peer` carrying these
    /// `X-Forwarded-For` values (all header lines, in order).
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.iter().flat_map(|h| h.split(',')).map(str::trim).collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Garbage where an address should be: trust nothing left of it.
                return peer;
            };
            if !self.trusts(ip) {
                return ip;
            }
        }
        // Only proxies (or no header): the leftmost proxy is the best we know.
        hops.first().and_then(|h| parse_hop(h)).unwrap_or(peer)
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]`, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|c| Cidr::parse(c).unwrap()).collect())
    }

    #[test]
    fn cidr_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")) && !c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "mapped IPv4");
        assert!(Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.7")));
        assert!(!Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.8")));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains(ip("2001:db8:ffff::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.0/33").is_err() && Cidr::parse("nope").is_err());
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let p = proxies(&["10.0.0.0/8"]);
        // From the proxy: the patient is the rightmost untrusted hop.
        assert_eq!(p.client(ip("10.0.0.5"), &["198.51.100.7"]), ip("198.51.100.7"));
        assert_eq!(p.client(ip("10.0.0.5"), &["1.2.3.4, 198.51.100.7, 10.0.0.9"]), ip("198.51.100.7"));
        assert_eq!(p.client(ip("10.0.0.5"), &["1.2.3.4", "198.51.100.7:5555"]), ip("198.51.100.7"));
        assert_eq!(p.client(ip("10.0.0.5"), &["[2001:db8::1]"]), ip("2001:db8::1"));
        // No header, or garbage: the proxy itself.
        assert_eq!(p.client(ip("10.0.0.5"), &[]), ip("10.0.0.5"));
        assert_eq!(p.client(ip("10.0.0.5"), &["1.2.3.4, junk"]), ip("10.0.0.5"));
        // From anyone else the header is ignored.
        assert_eq!(p.client(ip("203.0.113.9"), &["198.51.100.7"]), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.5"), &["198.51.100.7"]), ip("10.0.0.5"));
    }
}
