//! `swimkv healthcheck <port>`: exits 0 when the node on this host's `<port>`
//! answers `GET /health` with 200, 1 otherwise (a container's HEALTHCHECK;
//! slim images have no curl).
//!
//! Invariant: bounded by one timeout for connect, send and answer. A node that
//! serves HTTPS (`--tls-cert`) is checked with `--tls`: then only that it
//! accepts connections, since its certificate names the host, not 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long the whole check may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// True when the HTTP status line `head` says 200.
pub fn is_ok(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.1 200 ") || head.starts_with(b"HTTP/1.0 200 ")
}

/// Checks the node on `127.0.0.1:<port>`; `tls` checks only that it accepts connections.
pub fn check(port: u16, tls: bool) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    if tls {
        return Ok(());
    }
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 13 {
        match s.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("{addr}: {e}")),
        }
    }
    if is_ok(&head[..got]) {
        Ok(())
    } else {
        Err(format!(
            "{addr}: /health answered {:?}",
            String::from_utf8_lossy(&head[..got])
        ))
    }
}

/// Runs `swimkv healthcheck [<port>] [--tls]` with the arguments after `healthcheck`.
pub fn main(args: &[String]) -> i32 {
    let tls = args.iter().any(|a| a == "--tls");
    let port = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or(Ok(8080), |p| p.parse::<u16>());
    let Ok(port) = port else {
        eprintln!("usage: swimkv healthcheck [<port>] [--tls]");
        return 2;
    };
    match check(port, tls) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("swimkv healthcheck: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_status_line_is_healthy() {
        assert!(is_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(!is_ok(b"HTTP/1.1 503 Service Unavailable"));
        assert!(!is_ok(b""));
    }

    #[test]
    fn a_port_nobody_listens_on_is_unhealthy() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        assert!(check(port, false).is_err());
        assert_eq!(main(&["x".into()]), 2);
    }
}
