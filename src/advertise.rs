//! The address a node advertises when it binds a wildcard address (`0.0.0.0`,
//! `::`) and is not told one with `--advertise`.
//!
//! Candidates, in order: the local address the kernel would use to reach the
//! first introducer, then the one it would use for the default route. Invariant:
//! a wildcard bind never advertises a loopback or unspecified address (other
//! hosts could not reach it); with no usable candidate the node refuses to start
//! and asks for `--advertise`. Probing only asks the routing table: a connected
//! UDP socket sends nothing.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};

/// True for the wildcard addresses that mean "every interface".
pub fn is_wildcard(bind: &str) -> bool {
    bind.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// The first candidate other hosts can reach (not loopback, not unspecified). [pure]
pub fn choose(candidates: &[Option<IpAddr>]) -> Option<IpAddr> {
    candidates
        .iter()
        .flatten()
        .copied()
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// The local address of a route to `to`, if the routing table has one.
fn route_to(to: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any).ok()?;
    socket.connect(to).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

/// What a node bound to `bind` advertises: `bind` itself unless it is a
/// wildcard; then the route to the first resolvable `introducers` entry, or
/// the default route's source address.
pub fn advertise_for(bind: &str, introducers: &[String]) -> Result<String, String> {
    if !is_wildcard(bind) {
        return Ok(bind.to_string());
    }
    let v6 = bind.contains(':');
    let introducer = introducers
        .iter()
        .find_map(|i| i.to_socket_addrs().ok().and_then(|mut a| a.next()));
    // Documentation addresses (RFC 5737, RFC 3849): only the route is looked up.
    let default: SocketAddr = if v6 {
        "[2001:db8::1]:9"
            .parse()
            .map_err(|_| "bad address".to_string())?
    } else {
        ([192, 0, 2, 1], 9).into()
    };
    let v4_default: SocketAddr = ([192, 0, 2, 1], 9).into();
    choose(&[
        introducer.and_then(route_to),
        route_to(default),
        route_to(v4_default),
    ])
    .map(|ip| ip.to_string())
    .ok_or_else(|| {
        format!("bound to {bind}, but no address other hosts can reach was found (no route to the introducer, no default route): give one with --advertise")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn loopback_and_unspecified_candidates_are_never_chosen() {
        assert_eq!(
            choose(&[ip("127.0.0.1"), None, ip("10.0.0.5")]),
            ip("10.0.0.5")
        );
        assert_eq!(choose(&[ip("0.0.0.0"), ip("::1")]), None);
        assert_eq!(
            choose(&[ip("172.18.0.3"), ip("10.0.0.5")]),
            ip("172.18.0.3")
        );
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn a_specific_bind_address_is_advertised_as_it_is() {
        assert_eq!(advertise_for("127.0.0.1", &[]), Ok("127.0.0.1".into()));
        assert_eq!(advertise_for("10.1.2.3", &[]), Ok("10.1.2.3".into()));
        assert!(is_wildcard("0.0.0.0") && is_wildcard("::") && !is_wildcard("node1"));
    }

    #[test]
    fn a_wildcard_bind_advertises_no_loopback_address() {
        // Whatever this machine's routes are, the answer is reachable or an error.
        if let Ok(a) = advertise_for("0.0.0.0", &["127.0.0.1:8080".into()]) {
            let ip: IpAddr = a.parse().expect("an address");
            assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
        }
    }
}
