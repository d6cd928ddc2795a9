//! `ec2ssh forward` end to end: a small HTTP server on loopback plays the service on
//! the instance; the simulator relays the port-forwarding session to it in mux mode
//! (modern agent) and basic mode (old agent). Twenty concurrent clients fetch distinct
//! bodies through the forwarded port and check every byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::{Guarded, Sim};
use crate::rig::{active_sessions, assert_no_active_sessions};

const CLIENTS: usize = 20;

fn fleet(home: &Path) -> PathBuf {
    let path = home.join("fleet.toml");
    std::fs::write(
        &path,
        r#"default_region = "us-east-1"

[[instance]]
id = "i-0f0f0000000000001"
name = "web-mux"
state = "running"
ping = "Online"
agent_version = "3.3.1611.0"

[[instance]]
id = "i-0f0f0000000000002"
name = "web-basic"
state = "running"
ping = "Online"
agent_version = "3.0.161.0"

[[instance]]
id = "i-0f0f0000000000003"
name = "web-down"
state = "running"
ping = "ConnectionLost"
agent_version = "3.3.1611.0"
"#,
    )
    .unwrap();
    path
}

/// The body served for `/n`: deterministic, distinct per path, 100-290 KB.
fn body(n: usize) -> Vec<u8> {
    let len = 100_000 + n * 10_000;
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (n as u64 + 1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The test's HTTP server: its port, and how many connections it served at most at
/// the same time.
struct Http {
    port: u16,
    busiest: Arc<AtomicUsize>,
}

impl Http {
    fn busiest(&self) -> usize {
        self.busiest.load(Ordering::SeqCst)
    }
}

/// An HTTP/1.1 server on 127.0.0.1 answering `GET /n` with `body(n)`, one request per
/// connection. Runs until the test process exits.
fn http_server() -> Http {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = Arc::new(AtomicUsize::new(0));
    let busiest = Arc::new(AtomicUsize::new(0));
    let max = busiest.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (open, max) = (open.clone(), max.clone());
            std::thread::spawn(move || {
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                serve(conn);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Http { port, busiest }
}

fn serve(mut conn: TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/");
    let n: usize = path.trim_start_matches('/').parse().unwrap_or(0);
    let body = body(n);
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(&body);
}

/// Fetches `/n` from `addr`, reading exactly Content-Length bytes (in basic mode the
/// server's close does not travel back, so the length is what ends a response).
fn get(addr: &str, n: usize) -> Vec<u8> {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "GET /{n} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(conn);
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "connection closed in the response head");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            length = Some(v.trim().parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0u8; length.expect("a Content-Length")];
    reader.read_exact(&mut body).unwrap();
    body
}

/// `ec2ssh forward ARGS…` with the local address it printed on stdout.
fn forward(sim: &Sim, home: &Path, args: &[&str]) -> (Guarded, String) {
    let mut child: Child = sim
        .ec2ssh(home)
        .arg("forward")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let child = Guarded(child);
    let addr = line.trim().to_string();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "stdout's first line is the address: {line:?}"
    );
    (child, addr)
}

/// Twenty clients at once, each checking its body's SHA-256.
fn fetch_all(addr: &str) {
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let addr = addr.to_string();
            std::thread::spawn(move || (n, get(&addr, n)))
        })
        .collect();
    for c in clients {
        let (n, got) = c.join().expect("a client failed");
        let want = body(n);
        assert_eq!(got.len(), want.len(), "/{n}: length");
        assert_eq!(Sha256::digest(&got), Sha256::digest(&want), "/{n}: content");
    }
}

/// Ends the forwarder with SIGINT: exit 130, no session left.
fn interrupt(mut child: Guarded, sim: &Sim) -> String {
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
    assert_eq!(status.code(), Some(130), "stderr:\n{err}");
    assert_no_active_sessions(sim);
    err
}

fn start() -> (tempfile::TempDir, Sim, Http) {
    let home = tempfile::tempdir().unwrap();
    let fleet = fleet(home.path());
    let sim = Sim::start(home.path(), &["--fleet", fleet.to_str().unwrap()]);
    (home, sim, http_server())
}

#[test]
fn mux_mode_carries_concurrent_connections_and_sigint_ends_it() {
    let (home, sim, http) = start();
    let port = http.port;
    let (child, addr) = forward(&sim, home.path(), &["web-mux", &format!("0:{port}")]);
    fetch_all(&addr);
    // Everything went through one session, multiplexed.
    assert_eq!(active_sessions(&sim).len(), 1);
    let stats = sim.stats();
    assert_eq!(
        (
            stats["sessions_mux"].as_u64(),
            stats["sessions_basic"].as_u64()
        ),
        (Some(1), Some(0)),
        "{stats}"
    );
    assert_eq!(stats["target_dials"], CLIENTS as u64, "{stats}");
    assert!(http.busiest() > 1, "the connections overlapped");
    let err = interrupt(child, &sim);
    assert!(
        err.contains(&format!("forwarding {addr} → web-mux:{port}")),
        "{err}"
    );
    assert!(!err.contains("one connection at a time"), "{err}");
}

#[test]
fn basic_mode_serves_concurrent_clients_one_at_a_time() {
    let (home, sim, http) = start();
    let (child, addr) = forward(&sim, home.path(), &["web-basic", &http.port.to_string()]);
    fetch_all(&addr);
    // The agent (3.0.161.0) chose basic mode from our handshake, and every one of the
    // twenty clients got its own target connection, never two at once.
    let stats = sim.stats();
    assert_eq!(
        (
            stats["sessions_basic"].as_u64(),
            stats["sessions_mux"].as_u64()
        ),
        (Some(1), Some(0)),
        "{stats}"
    );
    assert_eq!(stats["target_dials"], CLIENTS as u64, "{stats}");
    assert_eq!(stats["target_open_max"], 1, "{stats}");
    assert_eq!(
        http.busiest(),
        1,
        "the service saw one connection at a time"
    );
    let err = interrupt(child, &sim);
    assert!(
        err.contains("the SSM agent on web-basic (3.0.161.0) forwards one connection at a time"),
        "{err}"
    );
}

#[test]
fn a_session_terminated_by_the_service_ends_forward_cleanly() {
    let (home, sim, http) = start();
    let (mut child, addr) = forward(&sim, home.path(), &["web-mux", &http.port.to_string()]);
    assert_eq!(Sha256::digest(get(&addr, 3)), Sha256::digest(body(3)));
    let (id, _) = active_sessions(&sim).remove(0);
    crate::rig::ssm_call(
        &sim,
        "TerminateSession",
        &serde_json::json!({ "SessionId": id }),
    );
    // The service's channel_closed (HeaderLength 112) ends it at once: no resume, no
    // waiting for the websocket to time out.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "forward still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("the port forwarding session ended"), "{err}");
    let stats = sim.stats();
    assert_eq!(stats["channel_closed_sent"], 1, "{stats}");
    assert_eq!(stats["resumes_with_token"], 0, "{stats}");
    assert_eq!(stats["resumes_without_token"], 0, "{stats}");
    assert_no_active_sessions(&sim);
}

#[test]
fn to_remote_host_and_a_refused_destination() {
    let (home, sim, http) = start();
    let port = http.port;
    let spec = format!("0:{port}");
    let (child, addr) = forward(
        &sim,
        home.path(),
        &["web-mux", &spec, "--host", "127.0.0.1"],
    );
    let want = body(7);
    assert_eq!(Sha256::digest(get(&addr, 7)), Sha256::digest(&want));
    interrupt(child, &sim);

    // Nothing listens there: the connection is closed and stderr says why.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let (child, addr) = forward(&sim, home.path(), &["web-mux", &dead.to_string()]);
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = conn.read_to_end(&mut got);
    assert!(got.is_empty(), "nothing comes back from a refused port");
    let err = interrupt(child, &sim);
    assert!(err.contains("could not connect to web-mux:"), "{err}");
}

#[test]
fn an_offline_instance_is_refused_without_a_session() {
    let (home, sim, _http) = start();
    let out = sim
        .ec2ssh(home.path())
        .args(["forward", "web-down", "80"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no address printed");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("ConnectionLost"),
        "{err}"
    );
    assert!(lines[1].starts_with("  fix: "), "{err}");
    assert!(active_sessions(&sim).is_empty());

    let out = sim
        .ec2ssh(home.path())
        .args(["forward", "web-mux", "80:0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad port spec is a usage error"
    );
}
