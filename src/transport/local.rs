//! Peer RPC between nodes on one host over Unix-domain sockets instead of
//! loopback TCP: the same frames, without the IP stack (no TCP segments, no
//! netfilter, no loopback softirq), which is most of a peer message's kernel cost.
//!
//! A node whose advertised peer address is a loopback address (`127.0.0.1:18080`)
//! also listens on the abstract socket `swimkv-peer-<that address>` (Linux's
//! abstract namespace: no file to create or clean up, gone with the process,
//! scoped like the TCP port to the network namespace). A client calling a
//! loopback peer address connects there first and falls back to TCP when no one
//! listens (a node of an older version, `--peer-unix false`, another OS).
//!
//! Invariants: the socket name is a function of the advertised address alone, so
//! both ends agree without coordination; only loopback addresses get one, so
//! nodes on other hosts (or in other namespaces) always use TCP; frames are sealed
//! and checked exactly as over TCP (the same cluster id and secret rules).

/// The abstract socket name (with its leading NUL) of the node whose peer RPC
/// address is `addr`, when it is a loopback `ip:port` on an OS that has abstract
/// sockets; `None` otherwise.
pub fn socket_name(addr: &str) -> Option<String> {
    let ip = addr.parse::<std::net::SocketAddr>().ok()?.ip();
    (cfg!(any(target_os = "linux", target_os = "android")) && ip.is_loopback())
        .then(|| format!("\0swimkv-peer-{addr}"))
}

/// Listens on the abstract socket of `advertised` (this node's peer RPC address),
/// if it has one. `Ok(None)`: not a loopback address, nothing to listen on.
#[cfg(unix)]
pub fn listen(advertised: &str) -> std::io::Result<Option<tokio::net::UnixListener>> {
    match socket_name(advertised) {
        Some(name) => tokio::net::UnixListener::bind(name).map(Some),
        None => Ok(None),
    }
}

/// Connects to the abstract socket of the peer at `addr`; `None` when it has
/// none or no one listens there (the caller uses TCP).
#[cfg(unix)]
pub async fn connect(addr: &str) -> Option<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(socket_name(addr)?)
        .await
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_have_a_local_socket() {
        let on_linux = cfg!(any(target_os = "linux", target_os = "android"));
        assert_eq!(
            socket_name("127.0.0.1:18080").is_some(),
            on_linux,
            "IPv4 loopback"
        );
        assert_eq!(
            socket_name("[::1]:18080").is_some(),
            on_linux,
            "IPv6 loopback"
        );
        for remote in [
            "10.0.0.2:18080",
            "192.0.2.2:18080",
            "localhost:18080",
            "garbage",
        ] {
            assert_eq!(socket_name(remote), None, "{remote}");
        }
    }

    #[test]
    fn the_name_depends_on_the_whole_address() {
        if let (Some(a), Some(b), Some(c)) = (
            socket_name("127.0.0.1:18080"),
            socket_name("127.0.0.1:18081"),
            socket_name("127.0.0.2:18080"),
        ) {
            assert!(a != b && a != c && b != c);
            assert!(a.starts_with('\0'), "abstract namespace");
        }
    }
}
