//! Network namespaces for impaired-network tests: the relay in one namespace,
//! each client in its own, joined to the relay's by a veth pair (point to point,
//! `10.231.<i>.1` on the relay side, `10.231.<i>.2` on the client side). `tc`
//! impairments go on either end of a client's link (egress: the relay end
//! shapes what the client receives, the client end what it sends).
//!
//! Namespaces are named after the test process id (`cm<pid>n<k>r`, `cm<pid>n<k>c<i>`),
//! deleted on drop, and stale ones of dead test processes are deleted first. Needs
//! root (`ip netns add`); [`Net::available`] tells, [`Net::setup_or_skip`] fails or
//! skips depending on `CLINICMEET_REQUIRE_NETNS`.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A set of namespaces: one relay namespace and `n` client namespaces.
pub struct Net {
    pub relay_ns: String,
    pub clients: Vec<Link>,
}

/// One client's namespace and its link to the relay.
#[derive(Debug, Clone)]
pub struct Link {
    pub ns: String,
    /// veth end inside the relay namespace (egress = towards the client).
    pub relay_if: String,
    /// veth end inside the client namespace (egress = towards the relay).
    pub client_if: String,
    pub relay_ip: String,
    pub client_ip: String,
}

/// Which direction of a client link to shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Relay → client (the client's downlink).
    ToClient,
    /// Client → relay (the client's uplink).
    ToRelay,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn ns_run(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// Turns IPv6 off in a namespace before its links come up. The links are IPv4; a
/// link-local IPv6 address appearing a second after `up` (duplicate address
/// detection) is a network change to Chromium, which aborts a page load in flight
/// with `net::ERR_NETWORK_CHANGED`. Best effort: a kernel without IPv6 has nothing to quiet.
fn quiet_ipv6(ns: &str) {
    for key in ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"] {
        let _ = ns_run(ns, &["sysctl", "-qw", key]);
    }
}

/// Deletes namespaces left behind by test processes that no longer run.
pub fn clean_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix("cm") else { continue };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let tail = &rest[digits.len()..];
        if digits.is_empty() || !tail.starts_with('n') {
            continue;
        }
        if !std::path::Path::new(&format!("/proc/{digits}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

impl Net {
    /// Can this process create namespaces and shape traffic (`tc ... tbf`)? `Err` says why not.
    pub fn available() -> Result<(), String> {
        let probe = format!("cm{}n{}p", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        run(&["ip", "netns", "add", &probe])
            .map_err(|e| format!("cannot create network namespaces (root and iproute2 needed): {e}"))?;
        let r = ns_run(
            &probe,
            &[
                "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "10kb",
                "latency", "100ms",
            ],
        )
        .map_err(|e| format!("cannot use tc tbf: {e}"));
        let _ = run(&["ip", "netns", "del", &probe]);
        r
    }

    /// Does the kernel have `sch_netem`? (Without it, use [`crate::impair::LinkEmulator`].)
    pub fn has_netem(&self) -> bool {
        ns_run(&self.relay_ns, &["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"])
            .and_then(|()| ns_run(&self.relay_ns, &["tc", "qdisc", "del", "dev", "lo", "root"]))
            .is_ok()
    }

    /// Sets up `clients` client namespaces, or: panics with the reason when
    /// `CLINICMEET_REQUIRE_NETNS=1`, else prints why the test is skipped and returns `None`.
    pub fn setup_or_skip(test: &str, clients: usize) -> Option<Net> {
        clean_stale();
        let required = std::env::var("CLINICMEET_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        match Net::available().and_then(|()| Net::new(clients)) {
            Ok(net) => Some(net),
            Err(e) if required => panic!("{test}: CLINICMEET_REQUIRE_NETNS=1 but {e}"),
            Err(e) => {
                eprintln!("SKIPPED {test}: {e} (set CLINICMEET_REQUIRE_NETNS=1 to make this a failure)");
                None
            }
        }
    }

    /// Creates the namespaces and links.
    pub fn new(clients: usize) -> Result<Net, String> {
        assert!(clients <= 200);
        let pid = std::process::id();
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let relay_ns = format!("cm{pid}n{k}r");
        let mut net = Net { relay_ns: relay_ns.clone(), clients: Vec::new() };
        run(&["ip", "netns", "add", &relay_ns])?;
        ns_run(&relay_ns, &["ip", "link", "set", "lo", "up"])?;
        quiet_ipv6(&relay_ns);
        for i in 0..clients {
            let ns = format!("cm{pid}n{k}c{i}");
            let link = Link {
                ns: ns.clone(),
                relay_if: format!("r{i}"),
                client_if: "eth0".into(),
                relay_ip: format!("10.231.{}.1", i + 1),
                client_ip: format!("10.231.{}.2", i + 1),
            };
            run(&["ip", "netns", "add", &ns])?;
            net.clients.push(link.clone());
            ns_run(&ns, &["ip", "link", "set", "lo", "up"])?;
            quiet_ipv6(&ns);
            // Create the pair inside the relay namespace, then move one end.
            ns_run(
                &relay_ns,
                &["ip", "link", "add", &link.relay_if, "type", "veth", "peer", "name", "tmp0"],
            )?;
            ns_run(&relay_ns, &["ip", "link", "set", "tmp0", "netns", &ns])?;
            ns_run(&ns, &["ip", "link", "set", "tmp0", "name", &link.client_if])?;
            ns_run(
                &relay_ns,
                &["ip", "addr", "add", &format!("{}/24", link.relay_ip), "dev", &link.relay_if],
            )?;
            ns_run(&ns, &["ip", "addr", "add", &format!("{}/24", link.client_ip), "dev", &link.client_if])?;
            ns_run(&relay_ns, &["ip", "link", "set", &link.relay_if, "up"])?;
            ns_run(&ns, &["ip", "link", "set", &link.client_if, "up"])?;
        }
        Ok(net)
    }

    fn end(&self, client: usize, dir: Dir) -> (&str, &str) {
        let l = &self.clients[client];
        match dir {
            Dir::ToClient => (&self.relay_ns, &l.relay_if),
            Dir::ToRelay => (&l.ns, &l.client_if),
        }
    }

    /// Replaces the root qdisc of one direction of a client link, e.g.
    /// `["netem", "loss", "5%", "delay", "40ms", "10ms"]`.
    pub fn shape(&self, client: usize, dir: Dir, qdisc: &[&str]) {
        let (ns, dev) = self.end(client, dir);
        let mut args = vec!["tc", "qdisc", "replace", "dev", dev, "root"];
        args.extend_from_slice(qdisc);
        ns_run(ns, &args).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Removes the shaping of one direction.
    pub fn clear(&self, client: usize, dir: Dir) {
        let (ns, dev) = self.end(client, dir);
        let _ = ns_run(ns, &["tc", "qdisc", "del", "dev", dev, "root"]);
    }

    /// Drops every UDP datagram in and out of a client's namespace except DNS-free
    /// loopback traffic (a guest Wi-Fi that blocks UDP), with `nft`, else `iptables`.
    /// `Err` says why neither works.
    pub fn block_udp(&self, client: usize) -> Result<String, String> {
        let ns = &self.clients[client].ns;
        let nft = ns_run(ns, &["nft", "add", "table", "inet", "cmblock"]).and_then(|()| {
            [("out", "output", "oifname"), ("in", "input", "iifname")].iter().try_for_each(
                |(chain, hook, iface)| {
                    let spec = format!("{{ type filter hook {hook} priority 0 ; }}");
                    ns_run(ns, &["nft", "add", "chain", "inet", "cmblock", chain, &spec])?;
                    ns_run(
                        ns,
                        &[
                            "nft", "add", "rule", "inet", "cmblock", chain, iface, "!=", "lo", "meta",
                            "l4proto", "udp", "drop",
                        ],
                    )
                },
            )
        });
        match nft {
            Ok(()) => Ok("nft".into()),
            Err(nft_err) => {
                ns_run(ns, &["iptables", "-A", "OUTPUT", "!", "-o", "lo", "-p", "udp", "-j", "DROP"])
                    .and_then(|()| {
                        ns_run(ns, &["iptables", "-A", "INPUT", "!", "-i", "lo", "-p", "udp", "-j", "DROP"])
                    })
                    .map(|()| "iptables".into())
                    .map_err(|ipt_err| format!("cannot block UDP: {nft_err}; {ipt_err}"))
            }
        }
    }

    /// The firewall counters of a client's namespace (for reports).
    pub fn firewall_stats(&self, client: usize) -> String {
        let ns = &self.clients[client].ns;
        Command::new("ip")
            .args(["netns", "exec", ns, "nft", "list", "table", "inet", "cmblock"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `tc -s qdisc` of one direction (for reports).
    pub fn qdisc_stats(&self, client: usize, dir: Dir) -> String {
        let (ns, dev) = self.end(client, dir);
        Command::new("ip")
            .args(["netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", dev])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for l in &self.clients {
            let _ = run(&["ip", "netns", "del", &l.ns]);
        }
        let _ = run(&["ip", "netns", "del", &self.relay_ns]);
    }
}
