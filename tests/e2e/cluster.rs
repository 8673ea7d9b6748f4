//! Real swimkv processes on loopback for end-to-end tests: start, kill -9,
//! SIGSTOP/SIGCONT, SIGTERM, restart, and a minimal blocking HTTP client.
//!
//! Every process started here is killed by PID when the `Cluster` is dropped; every
//! wait is bounded in time. Unless its flags say `--in-memory`, each node keeps
//! its data in a directory of its own under a temporary directory the cluster
//! creates and removes when dropped, so no run reads another run's data. One cluster runs at a time: a `Cluster` holds a
//! process-wide lock from its start until it is dropped, because several clusters
//! on two cores starve each other's SWIM threads into false suspicions.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Held by the one cluster running.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code (0 when the request failed at the transport).
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The status line and headers.
    pub head: String,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Sends one request with `Connection: close` and reads the whole answer.
pub fn http(port: u16, method: &str, path: &str, body: &[u8], timeout: Duration) -> Answer {
    http_with(port, method, path, &[], body, timeout)
}

/// [`http`] with extra request headers.
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Answer {
    let failed = Answer {
        status: 0,
        body: Vec::new(),
        head: String::new(),
    };
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout) else {
        return failed;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body))
        .is_err()
    {
        return failed;
    }
    let mut raw = Vec::new();
    if s.read_to_end(&mut raw).is_err() && raw.is_empty() {
        return failed;
    }
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return failed;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        body: raw[split + 4..].to_vec(),
        head,
    }
}

/// A set of swimkv processes on consecutive ports.
pub struct Cluster {
    pub base: u16,
    pub procs: Vec<Option<Child>>,
    pub args: Vec<String>,
    /// The introducer each node was last started with (`None`: the first node).
    pub introducers: Vec<Option<usize>>,
    /// Extra environment of each node's process.
    pub env: Vec<Vec<(String, String)>>,
    /// Where the nodes' data directories live (removed on drop).
    pub data: std::path::PathBuf,
    /// Bearer token the helpers send (`view`, `count`, ...) when the nodes need one.
    pub token: Option<String>,
    _turn: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts `n` nodes on `base..base+n`, the first alone and the others through it.
    pub fn start(base: u16, n: usize, args: &[&str]) -> Cluster {
        Cluster::start_env(base, n, args, |_| Vec::new())
    }

    /// [`Cluster::start`] with extra environment for each node's process.
    pub fn start_env(
        base: u16,
        n: usize,
        args: &[&str],
        env_of: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Cluster {
        let turn = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        let data = std::env::temp_dir().join(format!("swimkv-e2e-{}-{base}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut c = Cluster {
            base,
            procs: Vec::new(),
            args: args.iter().map(|s| s.to_string()).collect(),
            introducers: Vec::new(),
            env: Vec::new(),
            data,
            token: None,
            _turn: turn,
        };
        // An HTTPS node cannot be asked over plain HTTP: wait for its port instead.
        let tls = args.contains(&"--tls-cert");
        let up = |port: u16| {
            if tls {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                http(port, "GET", "/health", b"", Duration::from_secs(1)).status == 200
            }
        };
        for i in 0..n {
            c.introducers.push((i > 0).then_some(0));
            c.env.push(env_of(i));
            let child = c.spawn(i);
            c.procs.push(Some(child));
            if i == 0 {
                assert!(
                    c.wait_for(Duration::from_secs(10), || up(base)),
                    "first node did not come up"
                );
            }
        }
        // As an operator would: a fresh cluster serves once its nodes are ready
        // (the first node waits `first_node_wait_ms` before it forms a cluster).
        // Tests that start nodes which never get ready assert on their own.
        if !tls {
            let all: Vec<usize> = (0..n).collect();
            c.wait_for(Duration::from_secs(30), || all.iter().all(|&i| c.ready(i)));
        }
        c
    }

    /// HTTP port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.base + i as u16
    }

    /// Peer RPC port of node `i` (HTTP port + 5000).
    pub fn peer_port(&self, i: usize) -> u16 {
        self.port(i) + 5_000
    }

    /// Member name of node `i`.
    pub fn name(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.port(i))
    }

    fn spawn(&self, i: usize) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_swimkv"));
        cmd.arg(self.port(i).to_string());
        if let Some(intro) = self.introducers.get(i).copied().flatten() {
            cmd.arg(self.port(intro).to_string());
        }
        if let Some(env) = self.env.get(i) {
            cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        // Peer RPC below the ephemeral port range (32768 and up on Linux), where
        // an outgoing connection of any process could hold the port.
        cmd.arg("--peer-port").arg(self.peer_port(i).to_string());
        if !self.args.iter().any(|a| a == "--in-memory") {
            cmd.arg("--data-dir").arg(self.data_dir(i));
        }
        cmd.args(&self.args).stdout(Stdio::null());
        // SWIMKV_E2E_LOGS=dir keeps every node's log in dir/<port>.log (debugging).
        let log = std::env::var_os("SWIMKV_E2E_LOGS").and_then(|dir| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(std::path::Path::new(&dir).join(format!("{}.log", self.port(i))))
                .ok()
        });
        match log {
            Some(file) => cmd.env("RUST_LOG", "info").stderr(file),
            None => cmd.env("RUST_LOG", "warn").stderr(Stdio::null()),
        };
        cmd.spawn().expect("start swimkv")
    }

    /// The data directory of node `i`.
    pub fn data_dir(&self, i: usize) -> std::path::PathBuf {
        self.data.join(self.port(i).to_string())
    }

    /// Removes node `i`'s data directory (the node must not be running).
    pub fn wipe(&self, i: usize) {
        let _ = std::fs::remove_dir_all(self.data_dir(i));
    }

    /// kill -9 node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.procs[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. "-STOP", "-CONT", "-TERM") to node `i`.
    pub fn signal(&self, i: usize, signal: &str) {
        if let Some(child) = &self.procs[i] {
            let _ = Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status();
        }
    }

    /// Starts node `i` again on its port (a new generation), with the command
    /// it was last started with.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let child = self.spawn(i);
        self.procs[i] = Some(child);
    }

    /// Starts node `i` again, joining through node `introducer` (`None`: as a
    /// first node, without introducer).
    pub fn restart_with(&mut self, i: usize, introducer: Option<usize>) {
        self.introducers[i] = introducer;
        self.restart(i);
    }

    /// SIGTERM to node `i`, then waits for it to exit; its exit code.
    pub fn terminate(&mut self, i: usize, within: Duration) -> Option<i32> {
        self.signal(i, "-TERM");
        self.wait_exit(i, within)
    }

    /// True when node `i` answers `/ready` with 200.
    pub fn ready(&self, i: usize) -> bool {
        http(self.port(i), "GET", "/ready", b"", Duration::from_secs(1)).status == 200
    }

    /// Waits for node `i` to exit by itself; its exit code.
    pub fn wait_exit(&mut self, i: usize, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = self.procs[i].as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.procs[i] = None;
                    return status.code();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Polls `cond` every 50 ms until it holds or `within` passes.
    pub fn wait_for(&self, within: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The states node `i` reports for every member, as (id, state).
    pub fn view(&self, i: usize) -> Vec<(String, String)> {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("Authorization", b.as_str()))
            .collect();
        let a = http_with(
            self.port(i),
            "GET",
            "/cluster/members",
            &headers,
            b"",
            Duration::from_secs(2),
        );
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&a.body) else {
            return Vec::new();
        };
        v["members"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        (
                            m["id"].as_str().unwrap_or("").to_string(),
                            m["state"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of members node `i` sees in `state`.
    pub fn count(&self, i: usize, state: &str) -> usize {
        self.view(i).iter().filter(|(_, s)| s == state).count()
    }

    /// State of member `of` in node `i`'s view.
    pub fn state_of(&self, i: usize, of: usize) -> Option<String> {
        let name = self.name(of);
        self.view(i)
            .into_iter()
            .find(|(id, _)| *id == name)
            .map(|(_, s)| s)
    }

    /// Starts one more node, joining through node 0.
    pub fn add_node(&mut self) -> usize {
        let i = self.procs.len();
        self.introducers.push(Some(0));
        self.env.push(Vec::new());
        let child = self.spawn(i);
        self.procs.push(Some(child));
        i
    }

    /// Indices of running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|i| self.procs[*i].is_some())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.signal(i, "-CONT");
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
