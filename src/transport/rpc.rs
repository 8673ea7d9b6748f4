//! Peer RPC over TCP: persistent connections, request ids, many calls in flight.
//! Between nodes on one host the same frames travel over a Unix socket instead
//! ([`local`](super::local)).
//!
//! Every frame is length-delimited and carries a [`wire`](super::wire) envelope.
//! A client keeps one connection per peer, opened on first use and re-opened after
//! a failure; what is queued for a peer is written together and flushed once. A
//! server answers each request as soon as its handler finishes, in any order.
//! A connection that cannot be opened or breaks calls the client's
//! `on_unreachable` hook with the peer's address, once until a connection to that
//! peer opens again (a failure-detection hint for SWIM).
//!
//! Invariants: every call resolves exactly once (answer, error or the caller's
//! timeout); a frame over the size limit, of another cluster or malformed closes
//! the connection and is counted; the transport never looks inside payloads.

use super::wire::{self, Kind, Seal};
use bytes::{Bytes, BytesMut};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LengthDelimitedCodecError};

/// Calls in flight to one peer before new calls are refused at once.
pub const MAX_PENDING_PER_PEER: usize = 65_536;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcError {
    /// The connection could not be opened or broke.
    Unreachable(String),
    /// Too many calls in flight to this peer.
    Overloaded,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Unreachable(why) => write!(f, "peer unreachable: {why}"),
            RpcError::Overloaded => f.write_str("too many calls in flight to the peer"),
        }
    }
}

/// Counters of frames refused by this node's RPC endpoints.
#[derive(Debug, Default)]
pub struct RpcCounters {
    /// Frames dropped because their envelope was refused (any reason) or their
    /// length prefix was over the frame limit.
    pub refused_frames: AtomicU64,
    /// Frames from another cluster.
    pub foreign_cluster: AtomicU64,
    /// Requests served.
    pub served: AtomicU64,
    /// Connections to peers this node opened over a local (Unix) socket.
    pub local_connections: AtomicU64,
}

/// Told the address of a peer whose connection was refused, timed out or broke:
/// a hint for failure detection, never a verdict.
pub type UnreachableHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Answers one request payload with one response payload.
pub type Handler = Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>> + Send + Sync>;

/// Runs `task` on this thread's actix arbiter, as one of its local tasks, or on
/// the tokio runtime outside actix (tests).
///
/// A connection's task is local to the arbiter whose actors it serves: a wake-up
/// between a runtime task and a local one (a replica request handed to the
/// storage actor, an answer handed back to the coordinator) makes tokio's
/// current-thread scheduler poll its I/O driver once more without waiting (one
/// more `epoll_wait` per hand-over), which a wake-up among local tasks does not.
fn spawn_task(task: impl Future<Output = ()> + Send + 'static) {
    match actix_rt::Arbiter::try_current() {
        Some(arbiter) => {
            arbiter.spawn(task);
        }
        None => {
            tokio::spawn(task);
        }
    }
}

fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Counts a read error that is the codec refusing a frame over the limit (not an
/// I/O error or a stream cut mid-frame).
fn count_codec_error(counters: &RpcCounters, err: &std::io::Error) {
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
    {
        counters.refused_frames.fetch_add(1, Ordering::Relaxed);
    }
}

fn count_refusal(counters: &RpcCounters, err: wire::WireError) {
    counters.refused_frames.fetch_add(1, Ordering::Relaxed);
    if err == wire::WireError::ForeignCluster {
        counters.foreign_cluster.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where peer requests arrive: the TCP listener or, from nodes on this host, a
/// Unix socket.
pub enum Listener {
    /// The peer RPC port.
    Tcp(TcpListener),
    /// The local socket ([`local`](super::local)).
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Listener {
        Listener::Tcp(listener)
    }
}

/// The two halves of a connection, whichever its transport.
type Halves = (
    Box<dyn AsyncRead + Send + Unpin>,
    Box<dyn AsyncWrite + Send + Unpin>,
);

fn tcp_halves(stream: TcpStream) -> Halves {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    (Box::new(r), Box::new(w))
}

#[cfg(unix)]
fn unix_halves(stream: tokio::net::UnixStream) -> Halves {
    let (r, w) = stream.into_split();
    (Box::new(r), Box::new(w))
}

impl Listener {
    async fn accept(&self) -> std::io::Result<(Halves, String)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                Ok((tcp_halves(stream), peer.to_string()))
            }
            #[cfg(unix)]
            Listener::Unix(l) => {
                let (stream, _) = l.accept().await?;
                Ok((unix_halves(stream), "the local socket".to_string()))
            }
        }
    }
}

/// Serves peer requests on `listener` until the process ends.
pub async fn serve(
    listener: impl Into<Listener>,
    seal: Seal,
    max_frame: usize,
    handler: Handler,
    counters: Arc<RpcCounters>,
) {
    let listener = listener.into();
    loop {
        match listener.accept().await {
            Ok((halves, peer)) => {
                let handler = handler.clone();
                let counters = counters.clone();
                let seal = seal.clone();
                spawn_task(async move {
                    if let Err(why) =
                        serve_connection(halves, seal, max_frame, handler, counters).await
                    {
                        log::debug!("peer connection from {peer} closed: {why}");
                    }
                });
            }
            Err(e) => {
                log::warn!("peer listener accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    (r, w): Halves,
    seal: Seal,
    max_frame: usize,
    handler: Handler,
    counters: Arc<RpcCounters>,
) -> Result<(), String> {
    let mut reader = FramedRead::new(r, codec(max_frame));
    let mut writer = FramedWrite::new(w, codec(max_frame));
    // Requests being served, answered by this task as each finishes (no task of
    // their own). Past MAX_PENDING_PER_PEER the connection stops reading, so a
    // peer that never reads answers cannot make this node queue without bound
    // (TCP flow control pushes back on it).
    let mut serving = FuturesUnordered::new();
    let mut buf = BytesMut::new();
    let result = loop {
        tokio::select! {
            biased;
            Some((id, payload)) = serving.next(), if !serving.is_empty() => {
                let mut answered: Option<(u64, Bytes)> = Some((id, payload));
                while let Some((id, payload)) = answered.take() {
                    seal.encode_into(&mut buf, Kind::Response, id, &payload);
                    if let Err(e) = writer.feed(buf.split().freeze()).await {
                        return Err(e.to_string());
                    }
                    answered = serving.next().now_or_never().flatten();
                }
                if let Err(e) = SinkExt::<Bytes>::flush(&mut writer).await {
                    return Err(e.to_string());
                }
            }
            frame = reader.next(), if serving.len() < MAX_PENDING_PER_PEER => {
                let frame = match frame {
                    None => break Ok(()),
                    Some(Err(e)) => {
                        count_codec_error(&counters, &e);
                        break Err(e.to_string());
                    }
                    Some(Ok(frame)) => frame,
                };
                match seal.decode(frame.freeze()) {
                    Ok(env) if env.kind == Kind::Request => {
                        counters.served.fetch_add(1, Ordering::Relaxed);
                        let id = env.id;
                        serving.push(handler(env.payload).map(move |answer| (id, answer)));
                    }
                    Ok(_) => {
                        count_refusal(&counters, wire::WireError::UnknownKind);
                        break Err("unexpected frame kind".into());
                    }
                    Err(e) => {
                        count_refusal(&counters, e);
                        break Err(format!("refused frame: {e}"));
                    }
                }
            }
        }
    };
    // The requests read before the end are still answered.
    while let Some((id, payload)) = serving.next().await {
        seal.encode_into(&mut buf, Kind::Response, id, &payload);
        if writer.feed(buf.split().freeze()).await.is_err() {
            return result;
        }
    }
    let _ = SinkExt::<Bytes>::flush(&mut writer).await;
    result
}

type Call = (Bytes, oneshot::Sender<Result<Bytes, RpcError>>);

/// A client of every peer: one connection each, shared by all callers.
#[derive(Clone)]
pub struct RpcClient {
    seal: Seal,
    max_frame: usize,
    peers: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Call>>>>,
    counters: Arc<RpcCounters>,
    unreachable: Arc<Unreachable>,
    local: bool,
}

/// The unreachable hook and the peers it was told about since their last
/// successful connection (each failure streak is reported once).
#[derive(Default)]
struct Unreachable {
    hook: OnceLock<UnreachableHook>,
    told: Mutex<HashSet<String>>,
}

impl Unreachable {
    fn failed(&self, addr: &str) {
        let first = self
            .told
            .lock()
            .map(|mut told| told.insert(addr.to_string()))
            .unwrap_or(false);
        if let (true, Some(hook)) = (first, self.hook.get()) {
            hook(addr);
        }
    }

    fn connected(&self, addr: &str) {
        if let Ok(mut told) = self.told.lock() {
            told.remove(addr);
        }
    }
}

impl RpcClient {
    /// A client for peers sealing envelopes with `seal`, refusing frames over `max_frame` bytes.
    pub fn new(seal: impl Into<Seal>, max_frame: usize, counters: Arc<RpcCounters>) -> RpcClient {
        RpcClient {
            seal: seal.into(),
            max_frame,
            peers: Arc::new(Mutex::new(HashMap::new())),
            counters,
            unreachable: Arc::new(Unreachable::default()),
            local: false,
        }
    }

    /// With `on`, calls to a peer on this host (a loopback address) go over its
    /// local socket when it has one, and over TCP otherwise.
    pub fn with_local_sockets(mut self, on: bool) -> RpcClient {
        self.local = on;
        self
    }

    /// Calls `hook` with the address of a peer whose connection fails to open or
    /// breaks, once per failure streak: not again until a connection to that peer
    /// has opened (set once, for this client and all its clones).
    pub fn on_unreachable(&self, hook: UnreachableHook) {
        let _ = self.unreachable.hook.set(hook);
    }

    /// Sends `payload` to the peer at `addr` (`host:port`) and resolves with its answer.
    /// The caller bounds the wait with its own timeout.
    pub fn call(
        &self,
        addr: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<Bytes, RpcError>> + 'static {
        let (tx, rx) = oneshot::channel();
        let mut call = Some((payload, tx));
        if let Ok(mut peers) = self.peers.lock() {
            for _ in 0..2 {
                if !peers.contains_key(addr) {
                    let (ptx, prx) = mpsc::unbounded_channel();
                    spawn_task(run_peer(
                        addr.to_string(),
                        self.seal.clone(),
                        self.max_frame,
                        prx,
                        self.counters.clone(),
                        self.unreachable.clone(),
                        self.local,
                    ));
                    peers.insert(addr.to_string(), ptx);
                }
                match call
                    .take()
                    .zip(peers.get(addr))
                    .map(|(c, sender)| sender.send(c))
                {
                    Some(Err(mpsc::error::SendError(back))) => {
                        // The peer's connection ended: open a new one.
                        peers.remove(addr);
                        call = Some(back);
                    }
                    _ => break,
                }
            }
        }
        async move {
            match rx.await {
                Ok(result) => result,
                Err(_) => Err(RpcError::Unreachable("connection closed".into())),
            }
        }
    }
}

async fn run_peer(
    addr: String,
    seal: Seal,
    max_frame: usize,
    mut rx: mpsc::UnboundedReceiver<Call>,
    counters: Arc<RpcCounters>,
    unreachable: Arc<Unreachable>,
    local: bool,
) {
    let hint = |addr: &str| unreachable.failed(addr);
    let (r, w) = match connect(&addr, local, &counters).await {
        Ok(halves) => {
            unreachable.connected(&addr);
            halves
        }
        Err(why) => {
            hint(&addr);
            return fail_all(&mut rx, HashMap::new(), &why);
        }
    };
    let mut reader = FramedRead::new(r, codec(max_frame));
    let mut writer = FramedWrite::new(w, codec(max_frame));
    let mut pending: HashMap<u64, oneshot::Sender<Result<Bytes, RpcError>>> = HashMap::new();
    let mut next_id: u64 = 0;
    let mut buf = BytesMut::new();
    let why = loop {
        tokio::select! {
            call = rx.recv() => {
                let Some(first) = call else { return fail_all(&mut rx, pending, "client dropped") };
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let mut failed = None;
                for (payload, reply) in batch {
                    if pending.len() >= MAX_PENDING_PER_PEER {
                        let _ = reply.send(Err(RpcError::Overloaded));
                        continue;
                    }
                    next_id += 1;
                    seal.encode_into(&mut buf, Kind::Request, next_id, &payload);
                    if let Err(e) = writer.feed(buf.split().freeze()).await {
                        let _ = reply.send(Err(RpcError::Unreachable(e.to_string())));
                        failed = Some(e.to_string());
                        break;
                    }
                    pending.insert(next_id, reply);
                }
                if let Some(e) = failed {
                    break e;
                }
                if let Err(e) = SinkExt::<Bytes>::flush(&mut writer).await {
                    break e.to_string();
                }
            }
            frame = reader.next() => {
                match frame {
                    None => break "closed by peer".to_string(),
                    Some(Err(e)) => {
                        count_codec_error(&counters, &e);
                        break e.to_string();
                    }
                    Some(Ok(frame)) => match seal.decode(frame.freeze()) {
                        Ok(env) if env.kind == Kind::Response => {
                            if let Some(reply) = pending.remove(&env.id) {
                                let _ = reply.send(Ok(env.payload));
                            }
                        }
                        Ok(_) => {
                            count_refusal(&counters, wire::WireError::UnknownKind);
                            break "unexpected frame kind".to_string();
                        }
                        Err(e) => {
                            count_refusal(&counters, e);
                            break format!("refused frame: {e}");
                        }
                    },
                }
            }
        }
    };
    log::debug!("connection to peer {addr} ended: {why}");
    hint(&addr);
    fail_all(&mut rx, pending, &why);
}

/// Opens a connection to the peer at `addr`: its local socket first when `local`
/// and it has one, else TCP.
async fn connect(addr: &str, local: bool, counters: &RpcCounters) -> Result<Halves, String> {
    #[cfg(unix)]
    if local {
        if let Ok(Some(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, super::local::connect(addr)).await
        {
            counters.local_connections.fetch_add(1, Ordering::Relaxed);
            return Ok(unix_halves(stream));
        }
    }
    let _ = (local, counters);
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(tcp_halves(stream)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timeout".to_string()),
    }
}

fn fail_all(
    rx: &mut mpsc::UnboundedReceiver<Call>,
    pending: HashMap<u64, oneshot::Sender<Result<Bytes, RpcError>>>,
    why: &str,
) {
    rx.close();
    for (_, reply) in pending {
        let _ = reply.send(Err(RpcError::Unreachable(why.to_string())));
    }
    while let Ok((_, reply)) = rx.try_recv() {
        let _ = reply.send(Err(RpcError::Unreachable(why.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_handler() -> Handler {
        Arc::new(|payload: Bytes| {
            Box::pin(async move {
                let mut v = b"echo:".to_vec();
                v.extend_from_slice(&payload);
                Bytes::from(v)
            })
        })
    }

    async fn server(cluster: u64) -> (String, Arc<RpcCounters>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let counters = Arc::new(RpcCounters::default());
        tokio::spawn(serve(
            listener,
            Seal::from(cluster),
            1 << 20,
            echo_handler(),
            counters.clone(),
        ));
        (addr, counters)
    }

    #[tokio::test]
    async fn many_calls_in_flight_on_one_connection_all_get_their_own_answer() {
        let (addr, counters) = server(7).await;
        let client = RpcClient::new(7, 1 << 20, Arc::new(RpcCounters::default()));
        let calls: Vec<_> = (0..500)
            .map(|i| client.call(&addr, Bytes::from(format!("{i}"))))
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await, Ok(Bytes::from(format!("echo:{i}"))));
        }
        assert_eq!(counters.served.load(Ordering::Relaxed), 500);
        assert_eq!(
            client.peers.lock().expect("lock").len(),
            1,
            "one connection per peer"
        );
    }

    #[tokio::test]
    async fn a_value_near_the_frame_limit_travels_intact() {
        let (addr, _) = server(7).await;
        let client = RpcClient::new(7, 1 << 20, Arc::new(RpcCounters::default()));
        let big: Vec<u8> = (0..(1 << 20) - 100).map(|i| (i % 251) as u8).collect();
        let answer = client
            .call(&addr, Bytes::from(big.clone()))
            .await
            .expect("answer");
        assert_eq!(&answer[5..], &big[..]);
    }

    #[tokio::test]
    async fn an_unreachable_peer_fails_the_call() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let client = RpcClient::new(7, 1 << 20, Arc::new(RpcCounters::default()));
        assert!(matches!(
            client.call(&addr, Bytes::from_static(b"x")).await,
            Err(RpcError::Unreachable(_))
        ));
    }

    fn recording_client() -> (RpcClient, Arc<Mutex<Vec<String>>>) {
        let client = RpcClient::new(7, 1 << 20, Arc::new(RpcCounters::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        client.on_unreachable(Arc::new(move |addr: &str| {
            record.lock().expect("lock").push(addr.to_string());
        }));
        (client, seen)
    }

    #[tokio::test]
    async fn a_refused_connection_is_reported_as_a_hint_with_the_peer_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let (client, seen) = recording_client();
        for _ in 0..3 {
            assert!(client.call(&addr, Bytes::from_static(b"x")).await.is_err());
        }
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![addr],
            "one hint per failure streak, not one per call"
        );
    }

    #[tokio::test]
    async fn a_connection_the_peer_closes_is_reported_but_a_healthy_one_is_not() {
        let (healthy, _) = server(7).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closing = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            // Accept, then drop each connection: what the kernel does for a killed
            // peer (twice: a connection that opened ends the first failure streak).
            for _ in 0..2 {
                let _ = listener.accept().await;
            }
        });
        let (client, seen) = recording_client();
        let call = |addr: &str, body: &'static [u8]| client.call(addr, Bytes::from_static(body));
        assert!(call(&healthy, b"a").await.is_ok());
        assert!(call(&closing, b"b").await.is_err());
        assert!(call(&healthy, b"c").await.is_ok());
        assert!(call(&closing, b"d").await.is_err());
        assert_eq!(*seen.lock().expect("lock"), vec![closing.clone(), closing]);
    }

    #[tokio::test]
    async fn a_peer_of_another_cluster_is_refused_and_counted() {
        let (addr, counters) = server(7).await;
        let client = RpcClient::new(8, 1 << 20, Arc::new(RpcCounters::default()));
        assert!(client.call(&addr, Bytes::from_static(b"x")).await.is_err());
        assert_eq!(counters.foreign_cluster.load(Ordering::Relaxed), 1);
        assert_eq!(counters.served.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_length_prefix_over_the_limit_closes_the_connection_and_is_counted() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Found by the e2e garbage test: only envelope refusals were counted.
        let (addr, counters) = server(7).await;
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
        s.write_all(b"garbage").await.expect("write");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "no answer to a refused frame");
        assert_eq!(counters.refused_frames.load(Ordering::Relaxed), 1);
        // A stream cut inside a frame is not a refused frame.
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(&[0, 0, 0, 9, b'S']).await.expect("write");
        s.shutdown().await.expect("shutdown");
        let _ = s.read_to_end(&mut rest).await;
        assert_eq!(counters.refused_frames.load(Ordering::Relaxed), 1);
    }

    /// The TCP server of [`server`] plus its local socket.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    async fn server_with_local_socket(cluster: u64) -> (String, Arc<RpcCounters>) {
        let (addr, counters) = server(cluster).await;
        let local = crate::transport::local::listen(&addr)
            .expect("bind the local socket")
            .expect("a loopback address has one");
        tokio::spawn(serve(
            Listener::Unix(local),
            Seal::from(cluster),
            1 << 20,
            echo_handler(),
            counters.clone(),
        ));
        (addr, counters)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn a_peer_on_this_host_is_called_over_its_local_socket_and_over_tcp_without_one() {
        let (addr, served) = server_with_local_socket(7).await;
        let opened = Arc::new(RpcCounters::default());
        let client = RpcClient::new(7, 1 << 20, opened.clone()).with_local_sockets(true);
        let big: Vec<u8> = (0..(1 << 20) - 100).map(|i| (i % 251) as u8).collect();
        let answer = client.call(&addr, Bytes::from(big.clone())).await;
        assert_eq!(&answer.expect("answer")[5..], &big[..]);
        assert_eq!(opened.local_connections.load(Ordering::Relaxed), 1);
        assert_eq!(served.served.load(Ordering::Relaxed), 1);
        // A peer without a local socket (an older version, --peer-unix false): TCP.
        let (plain, _) = server(7).await;
        let answer = client.call(&plain, Bytes::from_static(b"b")).await;
        assert_eq!(answer, Ok(Bytes::from_static(b"echo:b")));
        assert_eq!(opened.local_connections.load(Ordering::Relaxed), 1);
        // Local sockets off: TCP to a peer that has one.
        let tcp_only = Arc::new(RpcCounters::default());
        let client = RpcClient::new(7, 1 << 20, tcp_only.clone());
        let answer = client.call(&addr, Bytes::from_static(b"c")).await;
        assert_eq!(answer, Ok(Bytes::from_static(b"echo:c")));
        assert_eq!(tcp_only.local_connections.load(Ordering::Relaxed), 0);
        assert_eq!(served.served.load(Ordering::Relaxed), 2);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn the_local_socket_refuses_a_peer_of_another_cluster_as_tcp_does() {
        let (addr, counters) = server_with_local_socket(7).await;
        let opened = Arc::new(RpcCounters::default());
        let client = RpcClient::new(8, 1 << 20, opened.clone()).with_local_sockets(true);
        assert!(client.call(&addr, Bytes::from_static(b"x")).await.is_err());
        assert_eq!(opened.local_connections.load(Ordering::Relaxed), 1);
        assert_eq!(counters.foreign_cluster.load(Ordering::Relaxed), 1);
        assert_eq!(counters.served.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_client_reconnects_after_the_peer_restarts() {
        let (addr, _) = server(7).await;
        let client = RpcClient::new(7, 1 << 20, Arc::new(RpcCounters::default()));
        assert!(client.call(&addr, Bytes::from_static(b"a")).await.is_ok());
        // Break the connection by dropping the client's sender side: simulate with a new peer map entry.
        client.peers.lock().expect("lock").clear();
        assert!(client.call(&addr, Bytes::from_static(b"b")).await.is_ok());
    }
}
