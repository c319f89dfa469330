//! Who may hold a connection: at most `per_source` connections at once per
//! source, where a source is an IPv4 address or an IPv6 /64 (one subscriber's
//! usual allocation; an IPv4-mapped IPv6 address counts as its IPv4 address).
//! QUIC connections and TCP connections to the HTTPS port (guest page,
//! WebSocket, ICE-TCP) are counted together. Besides this the hub keeps its
//! global cap (`--max-connections`, `server_busy`).
//!
//! Sans-IO: [`Admission`] is plain counting; [`Admissions`] shares it between
//! the accept loops and hands out [`Ticket`]s that give the place back when
//! dropped, so a connection's place is released however its task ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

/// Default for `--max-connections-per-source`.
pub const DEFAULT_PER_SOURCE: usize = 20;

/// The unit the per-source cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Connections held per source.
#[derive(Debug)]
pub struct Admission {
    per_source: usize,
    held: HashMap<Source, usize>,
}

impl Admission {
    pub fn new(per_source: usize) -> Admission {
        Admission { per_source: per_source.max(1), held: HashMap::new() }
    }

    /// Takes a place for a connection from `ip`; false when its source holds its share.
    pub fn admit(&mut self, ip: IpAddr) -> bool {
        let n = self.held.entry(Source::of(ip)).or_insert(0);
        if *n >= self.per_source {
            return false;
        }
        *n += 1;
        true
    }

    /// Whether `ip`'s source holds its whole share now.
    pub fn full(&self, ip: IpAddr) -> bool {
        self.held(ip) >= self.per_source
    }

    /// Gives back a place taken by [`Admission::admit`].
    pub fn release(&mut self, ip: IpAddr) {
        let source = Source::of(ip);
        if let Some(n) = self.held.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.held.remove(&source);
            }
        }
    }

    /// Connections held by `ip`'s source.
    pub fn held(&self, ip: IpAddr) -> usize {
        self.held.get(&Source::of(ip)).copied().unwrap_or(0)
    }

    /// Sources holding at least one connection (memory is bounded by the connections).
    pub fn sources(&self) -> usize {
        self.held.len()
    }
}

/// An [`Admission`] shared by the accept loops.
#[derive(Debug, Clone)]
pub struct Admissions(Arc<Mutex<Admission>>);

/// A place held by one connection; dropping it gives the place back.
#[derive(Debug)]
pub struct Ticket {
    owner: Admissions,
    ip: IpAddr,
}

impl Admissions {
    pub fn new(per_source: usize) -> Admissions {
        Admissions(Arc::new(Mutex::new(Admission::new(per_source))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Admission) -> T) -> T {
        // A panic elsewhere while holding the lock leaves counts that are still valid.
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// A ticket for a connection from `ip`, or `None` past the per-source cap.
    pub fn try_admit(&self, ip: IpAddr) -> Option<Ticket> {
        self.with(|a| a.admit(ip)).then(|| Ticket { owner: self.clone(), ip })
    }

    /// Whether `ip`'s source holds its whole share (a new connection would be refused).
    pub fn full(&self, ip: IpAddr) -> bool {
        self.with(|a| a.full(ip))
    }

    pub fn held(&self, ip: IpAddr) -> usize {
        self.with(|a| a.held(ip))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let ip = self.ip;
        self.owner.with(|a| a.release(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cap_per_ipv4_address() {
        let mut a = Admission::new(2);
        assert!(a.admit(ip("10.0.0.1")) && a.admit(ip("10.0.0.1")));
        assert!(!a.admit(ip("10.0.0.1")), "third from the same address refused");
        assert!(a.admit(ip("10.0.0.2")), "another address is unaffected");
        a.release(ip("10.0.0.1"));
        assert!(a.admit(ip("10.0.0.1")), "a released place can be taken again");
        assert_eq!(a.held(ip("10.0.0.1")), 2);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut a = Admission::new(2);
        assert!(a.admit(ip("2001:db8:1:2::1")));
        assert!(a.admit(ip("2001:db8:1:2:ffff::9")));
        assert!(!a.admit(ip("2001:db8:1:2:abcd::1")), "same /64");
        assert!(a.admit(ip("2001:db8:1:3::1")), "next /64");
        assert!(a.admit(ip("::ffff:10.0.0.1")));
        assert!(a.admit(ip("10.0.0.1")));
        assert!(!a.admit(ip("10.0.0.1")), "mapped and plain IPv4 share a count");
    }

    #[test]
    fn tickets_release_on_drop_and_sources_are_forgotten() {
        let adm = Admissions::new(1);
        let t = adm.try_admit(ip("192.0.2.7")).unwrap();
        assert!(adm.full(ip("192.0.2.7")));
        assert!(adm.try_admit(ip("192.0.2.7")).is_none());
        drop(t);
        assert_eq!(adm.held(ip("192.0.2.7")), 0);
        assert_eq!(adm.with(|a| a.sources()), 0, "no entry left behind");
        assert!(adm.try_admit(ip("192.0.2.7")).is_some());
    }
}
