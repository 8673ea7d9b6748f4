//! The bench's minimal keep-alive HTTP/1.1 client: one [`Client`] per connection task,
//! bound to one target, reusing one request buffer and one connection ([`Conn`]) for as
//! long as the server keeps it open; plus [`ErrorKind`], the classification of failed
//! operations used in every report.
//!
//! Invariants: one request is in flight per client at a time and the receive buffer is
//! empty when a request is sent (no pipelining); `--timeout` is a single deadline covering
//! connect, send and the whole response. After any error, timeout or a response without
//! keep-alive the connection is dropped, and the next request reconnects. A request that
//! finds a *reused* connection closed or reset before any response byte is retried once on
//! a fresh connection (the server closed an idle keep-alive connection); no other failure
//! is retried. Only the first protocol error's detail is kept, for the report.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::response::{parse_response, ProtocolError, ResponseMeta};
use crate::tls::{Secure, Stream};
use crate::workload::Op;

/// Minimum free space offered to each socket read.
const READ_CHUNK: usize = 16 * 1024;
/// How much of a 5xx answer's body `server_error` keeps.
const SERVER_ERROR_BODY: usize = 200;

/// Why an operation failed without an HTTP response (or got a non-2xx one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ErrorKind {
    /// Non-2xx HTTP status.
    Status(u16),
    /// The target refused the TCP connection.
    ConnectRefused,
    /// Connecting took longer than `--timeout`.
    ConnectTimeout,
    /// Any other connect failure.
    ConnectError,
    /// The request did not complete within `--timeout`.
    Timeout,
    /// Connection reset / aborted / broken pipe.
    Reset,
    /// The peer closed the connection before the response was complete.
    Closed,
    /// Malformed or unsupported response.
    Protocol,
    /// Any other I/O error.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Status(code) => write!(f, "{code}"),
            ErrorKind::ConnectRefused => f.write_str("connect_refused"),
            ErrorKind::ConnectTimeout => f.write_str("connect_timeout"),
            ErrorKind::ConnectError => f.write_str("connect_error"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Reset => f.write_str("reset"),
            ErrorKind::Closed => f.write_str("closed"),
            ErrorKind::Protocol => f.write_str("protocol"),
            ErrorKind::Io => f.write_str("io"),
        }
    }
}

/// Classifies an I/O error on an established connection.
fn classify_io(err: &io::Error) -> ErrorKind {
    match err.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
        _ => ErrorKind::Io,
    }
}

/// Classifies a connect error.
fn classify_connect(err: &io::Error) -> ErrorKind {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
        _ => ErrorKind::ConnectError,
    }
}

/// A failed round trip.
#[derive(Debug)]
struct RoundTripError {
    kind: ErrorKind,
    /// No byte of the response had arrived (a stale keep-alive connection looks like this).
    before_response: bool,
    /// Detail for protocol errors.
    detail: Option<String>,
}

/// One open keep-alive connection.
struct Conn {
    stream: Stream,
    rbuf: Vec<u8>,
    /// Responses completed on this connection.
    served: u64,
}

impl Conn {
    /// Opens a connection with Nagle disabled (and a TLS handshake under `--tls`).
    async fn open(addr: SocketAddr, host: &str, secure: &Secure) -> io::Result<Conn> {
        let stream = secure.connect(addr, host).await?;
        Ok(Conn {
            stream,
            rbuf: Vec::with_capacity(READ_CHUNK),
            served: 0,
        })
    }

    /// Sends `req` and reads one full response, decoding its body into `body`.
    async fn round_trip(
        &mut self,
        req: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<ResponseMeta, RoundTripError> {
        let io_err = |e: io::Error, before_response: bool| RoundTripError {
            kind: classify_io(&e),
            before_response,
            detail: None,
        };
        let proto_err = |e: ProtocolError| RoundTripError {
            kind: ErrorKind::Protocol,
            before_response: false,
            detail: Some(e.0),
        };
        self.rbuf.clear();
        self.stream
            .write_all(req)
            .await
            .map_err(|e| io_err(e, true))?;
        loop {
            if !self.rbuf.is_empty() {
                if let Some(meta) = parse_response(&self.rbuf, false, body).map_err(proto_err)? {
                    self.rbuf.drain(..meta.consumed);
                    self.served += 1;
                    return Ok(meta);
                }
            }
            self.rbuf.reserve(READ_CHUNK);
            let before_response = self.rbuf.is_empty();
            let n = self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| io_err(e, before_response))?;
            if n == 0 {
                if before_response {
                    return Err(RoundTripError {
                        kind: ErrorKind::Closed,
                        before_response: true,
                        detail: None,
                    });
                }
                return match parse_response(&self.rbuf, true, body).map_err(proto_err)? {
                    Some(meta) => {
                        self.served += 1;
                        Ok(ResponseMeta {
                            keep_alive: false,
                            ..meta
                        })
                    }
                    None => Err(RoundTripError {
                        kind: ErrorKind::Closed,
                        before_response: false,
                        detail: None,
                    }),
                };
            }
        }
    }
}

/// A reconnecting client bound to one target.
pub(crate) struct Client {
    addr: SocketAddr,
    host: String,
    path_prefix: String,
    timeout: Duration,
    secure: Secure,
    conn: Option<Conn>,
    /// Connections successfully opened.
    pub(crate) connects: u64,
    /// Request buffer, rebuilt for every operation.
    req: Vec<u8>,
    /// Decoded body of the last response.
    body: Vec<u8>,
    /// First protocol error seen, for the report.
    pub(crate) protocol_error: Option<String>,
    /// The first 5xx answer: its status and the start of its body (the server's reason).
    pub(crate) server_error: Option<String>,
}

impl Client {
    pub(crate) fn new(
        addr: SocketAddr,
        host: String,
        path_prefix: String,
        timeout: Duration,
    ) -> Self {
        Client {
            addr,
            host,
            path_prefix,
            timeout,
            secure: Secure::default(),
            conn: None,
            connects: 0,
            req: Vec::with_capacity(256),
            body: Vec::new(),
            protocol_error: None,
            server_error: None,
        }
    }

    /// Reaches the target with `secure` (TLS, token) instead of plain HTTP.
    pub(crate) fn with_secure(mut self, secure: Secure) -> Self {
        self.secure = secure;
        self
    }

    /// Opens the connection if there is none; errors are classified.
    pub(crate) async fn ensure_connected(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<(), ErrorKind> {
        if self.conn.is_some() {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, Conn::open(self.addr, &self.host, &self.secure))
            .await
        {
            Err(_) => Err(ErrorKind::ConnectTimeout),
            Ok(Err(e)) => {
                log::debug!("connect to {} failed: {e}", self.addr);
                Err(classify_connect(&e))
            }
            Ok(Ok(conn)) => {
                self.conn = Some(conn);
                self.connects += 1;
                Ok(())
            }
        }
    }

    /// Writes the request for `op` on key index `key` into the request buffer.
    pub(crate) fn build_request(&mut self, op: Op, key: u64, value: &[u8]) {
        use std::io::Write as _;
        let method: &[u8] = match op {
            Op::Get => b"GET",
            Op::Put => b"POST",
            Op::Delete => b"DELETE",
        };
        let req = &mut self.req;
        req.clear();
        req.extend_from_slice(method);
        req.extend_from_slice(b" /d/");
        req.extend_from_slice(self.path_prefix.as_bytes());
        // Writing into a Vec cannot fail.
        let _ = write!(req, "{key} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(auth) = &self.secure.authorization {
            req.extend_from_slice(auth.as_bytes());
        }
        match op {
            Op::Get => req.extend_from_slice(b"\r\n"),
            Op::Delete => req.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
            Op::Put => {
                let _ = write!(
                    req,
                    "Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                    value.len()
                );
                req.extend_from_slice(value);
            }
        }
    }

    /// Sends the built request; returns the HTTP status or the transport error kind.
    /// The first 5xx answer is kept in `server_error`, with the start of its body.
    /// A request that finds a reused keep-alive connection already closed by the server
    /// (closed/reset before any response byte) is retried once on a fresh connection.
    pub(crate) async fn execute(&mut self) -> Result<u16, ErrorKind> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        for attempt in 0..2 {
            self.ensure_connected(deadline).await?;
            let Some(conn) = self.conn.as_mut() else {
                return Err(ErrorKind::ConnectError);
            };
            let reused = conn.served > 0;
            let result =
                tokio::time::timeout_at(deadline, conn.round_trip(&self.req, &mut self.body)).await;
            match result {
                Err(_) => {
                    self.conn = None;
                    return Err(ErrorKind::Timeout);
                }
                Ok(Ok(meta)) => {
                    if !meta.keep_alive {
                        self.conn = None;
                    }
                    if meta.status >= 500 && self.server_error.is_none() {
                        let body = &self.body[..self.body.len().min(SERVER_ERROR_BODY)];
                        self.server_error = Some(format!(
                            "{} {}",
                            meta.status,
                            String::from_utf8_lossy(body).trim()
                        ));
                    }
                    return Ok(meta.status);
                }
                Ok(Err(err)) => {
                    self.conn = None;
                    let stale = reused
                        && err.before_response
                        && matches!(err.kind, ErrorKind::Closed | ErrorKind::Reset);
                    if attempt == 0 && stale {
                        continue;
                    }
                    if let Some(detail) = err.detail {
                        log::debug!("protocol error from {}: {detail}", self.addr);
                        self.protocol_error.get_or_insert(detail);
                    }
                    return Err(err.kind);
                }
            }
        }
        Err(ErrorKind::Closed)
    }

    /// The request last built by [`Client::build_request`].
    #[cfg(test)]
    pub(crate) fn request(&self) -> &[u8] {
        &self.req
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{Client, ErrorKind};
    use crate::workload::Op;

    #[tokio::test]
    async fn client_reads_split_response_and_reconnects_after_close() {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            // Two connections; each answers one request in pieces, then closes.
            for _ in 0..2 {
                let (mut sock, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = sock.read(&mut buf).await.expect("read");
                    assert!(n > 0);
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(got.starts_with(b"GET /d/bench-7 HTTP/1.1\r\nHost: "));
                for piece in [
                    &b"HTTP/1.1 200 OK\r\nTransfer-"[..],
                    b"Encoding: chunked\r\n\r\n4\r\nab",
                    b"cd\r\n0\r\n\r\n",
                ] {
                    sock.write_all(piece).await.expect("write");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        let mut client = Client::new(
            addr,
            addr.to_string(),
            "bench-".into(),
            Duration::from_secs(5),
        );
        for _ in 0..2 {
            client.build_request(Op::Get, 7, b"");
            assert_eq!(client.execute().await, Ok(200));
            assert_eq!(client.body, b"abcd");
        }
        // The server closed the first connection, so the second request reconnected.
        assert_eq!(client.connects, 2);
        server.await.expect("server task");
        // Now nothing listens: a refused connect is classified.
        drop(client.conn.take());
        client.build_request(Op::Get, 7, b"");
        let result = client.execute().await;
        assert!(
            matches!(
                result,
                Err(ErrorKind::ConnectRefused | ErrorKind::Closed | ErrorKind::Reset)
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn the_first_server_error_is_kept_with_the_start_of_its_body() {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            for answer in [
                &b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"[..],
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\n{\"e\":\"a\"}",
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1\r\n\r\nb",
            ] {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = sock.read(&mut buf).await.expect("read");
                    assert!(n > 0);
                    got.extend_from_slice(&buf[..n]);
                }
                sock.write_all(answer).await.expect("write");
            }
        });
        let mut client = Client::new(
            addr,
            addr.to_string(),
            "bench-".into(),
            Duration::from_secs(5),
        );
        for status in [404, 503, 500] {
            client.build_request(Op::Get, 1, b"");
            assert_eq!(client.execute().await, Ok(status));
        }
        // A 404 is not a server error; the first 5xx is kept, not the last.
        assert_eq!(client.server_error.as_deref(), Some("503 {\"e\":\"a\"}"));
        server.await.expect("server task");
    }
}
