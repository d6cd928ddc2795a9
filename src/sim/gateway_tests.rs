//! The simulator's Session Manager side against a bare sans-IO peer (no driver, no
//! SDK): the API over hand-written HTTP/1.1, the data channel over a plain
//! tokio-tungstenite websocket, pumped here. Covers the protocol edges the
//! driver-level tests in `session_tests` do not reach.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rand::{RngCore, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;

use super::{start, FaultConfig, FleetFile, SimHandle, SimOptions};
use crate::session::channel::{self, Channel, ChannelConfig, Role};
use crate::session::codec::{control_frame, MessageType, PayloadType};
use crate::session::messages::{
    ActionStatus, HandshakeRequest, HandshakeResponse, ProcessedClientAction,
};
use crate::session::{ClientSession, Event, SessionType};

const ONLINE: &str = "i-0beef000000000001";
const LOST: &str = "i-0beef000000000002";
/// Relays to a port nobody listens on.
const UNREACHABLE: &str = "i-0beef000000000003";
/// Relays to a server that sends a fixed blob and closes.
const SPEAKER: &str = "i-0beef000000000004";

/// Every wait in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn random_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; size];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// A TCP server that echoes every connection.
async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A TCP server that writes `blob` to each connection and closes it.
async fn speaker_server(blob: Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let blob = blob.clone();
            tokio::spawn(async move {
                let _ = s.write_all(&blob).await;
            });
        }
    });
    addr
}

/// A loopback address with nothing listening.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

struct Sim {
    handle: SimHandle,
}

impl Sim {
    async fn start(opts: SimOptions, speaker_blob: Vec<u8>) -> Sim {
        let fleet: FleetFile = toml::from_str(&format!(
            r#"
            [[instance]]
            id = "{ONLINE}"
            ping = "Online"
            target = "{echo}"
            [[instance]]
            id = "{LOST}"
            ping = "ConnectionLost"
            [[instance]]
            id = "{UNREACHABLE}"
            ping = "Online"
            agent_version = "3.2.582.0"
            target = "{closed}"
            [[instance]]
            id = "{SPEAKER}"
            ping = "Online"
            target = "{speaker}"
            "#,
            echo = echo_server().await,
            closed = closed_port().await,
            speaker = speaker_server(speaker_blob).await,
        ))
        .unwrap();
        Sim {
            handle: start(fleet, opts).await.unwrap(),
        }
    }

    async fn with_faults(spec: &str, speaker_blob: Vec<u8>) -> Sim {
        let opts = SimOptions {
            faults: spec.parse().unwrap(),
            ..SimOptions::default()
        };
        Sim::start(opts, speaker_blob).await
    }

    /// One SSM JSON 1.1 call, signed with the simulator's key: (HTTP status, body).
    async fn call(&self, op: &str, body: Value) -> (u16, Value) {
        let addr = self
            .handle
            .endpoint()
            .trim_start_matches("http://")
            .to_string();
        let body = body.to_string();
        let target = format!("AmazonSSM.{op}");
        let signed: String = super::auth::sign_headers(
            &self.handle.access_key(),
            "us-east-1",
            "ssm",
            "POST",
            &format!("http://{addr}/"),
            &[("host", &addr), ("x-amz-target", &target)],
            body.as_bytes(),
            SystemTime::now(),
        )
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: {target}\r\n\
             Content-Type: application/x-amz-json-1.1\r\n{signed}\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        within(op, tcp.read_to_string(&mut response)).await.unwrap();
        let (head, json) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }

    /// A call expected to succeed.
    async fn ok(&self, op: &str, body: Value) -> Value {
        let (status, v) = self.call(op, body).await;
        assert_eq!(status, 200, "{op}: {v}");
        v
    }

    async fn start_session(&self, target: &str, document: &str, port: &str) -> Value {
        self.ok(
            "StartSession",
            json!({
                "Target": target,
                "DocumentName": document,
                "Parameters": { "portNumber": [port] },
                "Reason": "test",
            }),
        )
        .await
    }

    /// The session as DescribeSessions reports it (Active first, then History).
    async fn describe(&self, id: &str) -> Value {
        for state in ["Active", "History"] {
            let v = self.ok("DescribeSessions", json!({ "State": state })).await;
            if let Some(s) = v["Sessions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["SessionId"] == id)
            {
                return s.clone();
            }
        }
        panic!("{id} not described");
    }

    /// Waits until DescribeSessions reports `status` for the session.
    async fn wait_status(&self, id: &str, status: &str) {
        within(&format!("{id} {status}"), async {
            loop {
                if self.describe(id).await["Status"] == status {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

/// What the pump needs from either end we test with.
trait Peer {
    fn handle_frame(&mut self, now: Duration, frame: &[u8]);
    fn poll_transmit(&mut self) -> Option<Bytes>;
    fn poll_timeout(&self) -> Option<Duration>;
    fn handle_timeout(&mut self, now: Duration);
}

impl Peer for ClientSession {
    fn handle_frame(&mut self, now: Duration, frame: &[u8]) {
        let _ = ClientSession::handle_frame(self, now, frame);
    }
    fn poll_transmit(&mut self) -> Option<Bytes> {
        ClientSession::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Duration> {
        ClientSession::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Duration) {
        ClientSession::handle_timeout(self, now)
    }
}

impl Peer for Channel {
    fn handle_frame(&mut self, now: Duration, frame: &[u8]) {
        let _ = Channel::handle_frame(self, now, frame);
    }
    fn poll_transmit(&mut self) -> Option<Bytes> {
        Channel::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Duration> {
        Channel::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Duration) {
        Channel::handle_timeout(self, now)
    }
}

/// A peer and the websocket it is attached to, if any.
struct Link<P> {
    peer: P,
    epoch: Instant,
    ws: Option<WsStream>,
    /// Websocket connections opened so far.
    connections: usize,
}

impl<P: Peer> Link<P> {
    fn new(peer: P, epoch: Instant) -> Self {
        Link {
            peer,
            epoch,
            ws: None,
            connections: 0,
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    async fn connect(&mut self, url: &str, token: &str) {
        let (mut ws, _) = within("connect", tokio_tungstenite::connect_async(url))
            .await
            .unwrap();
        let open = ClientSession::new(1).open_data_channel(token);
        ws.send(Ws::Text(open.into())).await.unwrap();
        self.ws = Some(ws);
        self.connections += 1;
    }

    async fn flush(&mut self) {
        while let Some(frame) = self.peer.poll_transmit() {
            let Some(ws) = self.ws.as_mut() else {
                continue;
            };
            if ws.send(Ws::Binary(frame)).await.is_err() {
                self.ws = None;
            }
        }
    }

    /// Sends what is queued, then handles one incoming frame or timer; a websocket
    /// that ends is dropped.
    async fn step(&mut self) {
        self.flush().await;
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        let timer = self
            .peer
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(self.epoch + t));
        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Ws::Binary(b))) => {
                    let now = self.now();
                    self.peer.handle_frame(now, &b);
                }
                Some(Ok(Ws::Close(_))) | Some(Err(_)) | None => self.ws = None,
                Some(Ok(_)) => {}
            },
            _ = sleep => {
                let now = self.now();
                self.peer.handle_timeout(now);
            }
        }
        self.flush().await;
    }
}

/// Client events gathered while pumping.
#[derive(Default)]
struct Seen {
    data: Vec<u8>,
    closed: Option<String>,
    established: bool,
}

impl Link<ClientSession> {
    fn collect(&mut self, seen: &mut Seen) {
        while let Some(event) = self.peer.poll_event() {
            match event {
                Event::Data(d) => seen.data.extend_from_slice(&d),
                Event::Closed { reason } => seen.closed = Some(reason),
                Event::HandshakeComplete { .. } => seen.established = true,
                _ => {}
            }
        }
    }

    /// Pumps until `done` holds.
    async fn until(&mut self, seen: &mut Seen, what: &str, mut done: impl FnMut(&Seen) -> bool) {
        within(what, async {
            while !done(seen) {
                assert!(
                    self.ws.is_some(),
                    "websocket ended while waiting for {what}"
                );
                self.step().await;
                self.collect(seen);
            }
        })
        .await
    }
}

fn client_link() -> Link<ClientSession> {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Link::new(ClientSession::new(unix_ms), Instant::now())
}

fn field(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap().to_string()
}

/// Echoes `data` through the session, resuming through the API whenever the
/// websocket breaks; returns how many websocket connections it took.
async fn echo_resuming(sim: &Sim, started: &Value, data: &[u8]) -> usize {
    let id = field(started, "SessionId");
    let url = field(started, "StreamUrl");
    let mut link = client_link();
    link.connect(&url, &field(started, "TokenValue")).await;
    let mut seen = Seen::default();
    let mut sent = 0;
    within("echo", async {
        while seen.data.len() < data.len() {
            while sent < data.len() && link.peer.can_send() {
                let end = (sent + 4096).min(data.len());
                let now = link.now();
                link.peer.send_data(now, &data[sent..end]).unwrap();
                sent = end;
            }
            if link.ws.is_none() {
                assert!(seen.closed.is_none(), "closed: {:?}", seen.closed);
                // The gateway marks the session Disconnected, then it can be resumed.
                sim.wait_status(&id, "Disconnected").await;
                let resumed = sim.ok("ResumeSession", json!({ "SessionId": id })).await;
                link.connect(&url, &field(&resumed, "TokenValue")).await;
                let now = link.now();
                link.peer.resume(now);
            }
            link.step().await;
            link.collect(&mut seen);
        }
    })
    .await;
    assert!(seen.data == data, "the echo differs from what was sent");
    assert!(seen.established);
    link.connections
}

#[tokio::test]
async fn a_bare_client_echoes_exactly() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let url = field(&started, "StreamUrl");
    let id = field(&started, "SessionId");
    assert!(id.starts_with("demo-") && id.len() == 22, "{id}");
    assert_eq!(
        url,
        format!(
            "ws://{}/v1/data-channel/{id}?role=publish_subscribe&cell-number=AAEAAQ",
            sim.handle.endpoint().trim_start_matches("http://")
        )
    );
    let data = random_bytes(1 << 20, 11);
    assert_eq!(echo_resuming(&sim, &started, &data).await, 1);
    // The client went away without ending the session: it waits to be resumed.
    sim.wait_status(&id, "Disconnected").await;
    let s = sim.describe(&id).await;
    assert_eq!(s["Reason"], "test");
    assert_eq!(s["Owner"], "arn:aws:iam::123456789012:user/demo");
    assert!(s["StartDate"].is_f64());
}

#[tokio::test]
async fn a_bare_client_echoes_exactly_under_faults_and_cuts() {
    let opts = SimOptions {
        faults:
            "drop=0.03,duplicate=0.03,reorder=0.03,delay=0.03,delay-ms=5,cut-after=1500000,seed=5"
                .parse::<FaultConfig>()
                .unwrap(),
        ..SimOptions::default()
    };
    let sim = Sim::start(opts, Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let data = random_bytes(1 << 20, 12);
    let connections = echo_resuming(&sim, &started, &data).await;
    assert!(connections >= 2, "cut-after never cut ({connections})");
    let stats = sim.handle.stats();
    assert_eq!(stats.cuts + 1, connections as u64, "{stats:?}");
    for (what, n) in [
        (
            "dropped",
            stats.dropped_to_client + stats.dropped_from_client,
        ),
        (
            "duplicated",
            stats.duplicated_to_client + stats.duplicated_from_client,
        ),
        (
            "reordered",
            stats.reordered_to_client + stats.reordered_from_client,
        ),
        (
            "delayed",
            stats.delayed_to_client + stats.delayed_from_client,
        ),
    ] {
        assert!(n > 0, "nothing was {what}: {stats:?}");
    }
    let id = field(&started, "SessionId");
    sim.ok("TerminateSession", json!({ "SessionId": id })).await;
    let active = sim
        .ok("DescribeSessions", json!({ "State": "Active" }))
        .await;
    assert_eq!(active["Sessions"], json!([]));
}

#[tokio::test]
async fn the_handshake_carries_the_agent_version_and_document_properties() {
    let opts = SimOptions {
        agent_version: Some("3.0.196.0".into()),
        ..SimOptions::default()
    };
    let sim = Sim::start(opts, Vec::new()).await;
    // Port forwarding reaches the requested port on the target's host: another echo.
    let forwarded = echo_server().await.port().to_string();
    for (document, kind, port) in [
        ("AWS-StartSSHSession", None, "2222"),
        (
            "AWS-StartPortForwardingSession",
            Some("LocalPortForwarding"),
            forwarded.as_str(),
        ),
    ] {
        let started = sim.start_session(ONLINE, document, port).await;
        let (mut link, mut seen) = attached_client(&started).await;
        assert_eq!(link.peer.agent_version(), Some("3.0.196.0"));
        let Some(SessionType::Port(props)) = link.peer.session_type() else {
            panic!("{:?}", link.peer.session_type());
        };
        assert_eq!(props.port_number.as_deref(), Some(port));
        assert_eq!(props.kind.as_deref(), kind, "{document}");
        // Our client version asks for no multiplexing: plain bytes both ways.
        let now = link.now();
        link.peer.send_data(now, b"ping").unwrap();
        link.until(&mut seen, "echo", |s| s.data == b"ping").await;
    }
}

#[tokio::test]
async fn target_eof_delivers_everything_then_closes_the_channel() {
    let blob = random_bytes(300_000, 13);
    let sim = Sim::with_faults("drop=0.05,seed=1", blob.clone()).await;
    let started = sim
        .start_session(SPEAKER, "AWS-StartSSHSession", "22")
        .await;
    let mut link = client_link();
    link.connect(
        &field(&started, "StreamUrl"),
        &field(&started, "TokenValue"),
    )
    .await;
    let mut seen = Seen::default();
    link.until(&mut seen, "channel_closed", |s| s.closed.is_some())
        .await;
    assert!(
        seen.data == blob,
        "{} of {} bytes",
        seen.data.len(),
        blob.len()
    );
    within("websocket close", async {
        while link.ws.is_some() {
            link.step().await;
        }
    })
    .await;
    sim.wait_status(&field(&started, "SessionId"), "Terminated")
        .await;
}

#[tokio::test]
async fn an_unreachable_target_fails_the_session_with_the_agents_words() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim
        .start_session(UNREACHABLE, "AWS-StartSSHSession", "22")
        .await;
    let mut link = client_link();
    link.connect(
        &field(&started, "StreamUrl"),
        &field(&started, "TokenValue"),
    )
    .await;
    let mut seen = Seen::default();
    link.until(&mut seen, "channel_closed", |s| s.closed.is_some())
        .await;
    let reason = seen.closed.unwrap();
    assert!(
        reason.starts_with("Unable to start port forwarding: dial tcp 127.0.0.1:")
            && reason.contains("connect:"),
        "{reason}"
    );
    let id = field(&started, "SessionId");
    sim.wait_status(&id, "Failed").await;
    assert!(sim.describe(&id).await["EndDate"].is_f64());
}

#[tokio::test]
async fn terminate_session_closes_the_attached_websocket() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let id = field(&started, "SessionId");
    let (mut link, mut seen) = attached_client(&started).await;
    sim.wait_status(&id, "Connected").await;
    assert_eq!(
        sim.ok("TerminateSession", json!({ "SessionId": id })).await,
        json!({ "SessionId": id })
    );
    link.until(&mut seen, "channel_closed", |s| s.closed.is_some())
        .await;
    within("websocket close", async {
        while link.ws.is_some() {
            link.step().await;
        }
    })
    .await;
    let active = sim
        .ok("DescribeSessions", json!({ "State": "Active" }))
        .await;
    assert_eq!(active["Sessions"], json!([]));
    // Idempotent; a resume gets no token (the plugin's "session timed out").
    sim.ok("TerminateSession", json!({ "SessionId": id })).await;
    let resumed = sim.ok("ResumeSession", json!({ "SessionId": id })).await;
    assert_eq!(resumed, json!({ "SessionId": id }));
}

#[tokio::test]
async fn a_new_websocket_replaces_the_old_and_old_tokens_stop_working() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let id = field(&started, "SessionId");
    let url = field(&started, "StreamUrl");
    let mut link = client_link();
    link.connect(&url, &field(&started, "TokenValue")).await;
    let mut seen = Seen::default();
    link.until(&mut seen, "handshake", |s| s.established).await;
    let now = link.now();
    link.peer.send_data(now, b"one ").unwrap();
    link.until(&mut seen, "first echo", |s| s.data == b"one ")
        .await;

    let resumed = sim.ok("ResumeSession", json!({ "SessionId": id })).await;
    assert_eq!(field(&resumed, "StreamUrl"), url);
    let old = link.ws.take().unwrap();
    link.connect(&url, &field(&resumed, "TokenValue")).await;
    let now = link.now();
    link.peer.resume(now);
    link.peer.send_data(now, b"two").unwrap();
    link.until(&mut seen, "second echo", |s| s.data == b"one two")
        .await;
    // The replaced websocket was let go.
    let mut old = old;
    within("old websocket dropped", async {
        while let Some(Ok(_)) = old.next().await {}
    })
    .await;

    // The first token no longer opens the channel: the socket closes unanswered.
    let mut stale = Link::new(ClientSession::new(1), Instant::now());
    stale.connect(&url, &field(&started, "TokenValue")).await;
    let ws = stale.ws.as_mut().unwrap();
    let next = within("refusal", ws.next()).await;
    assert!(!matches!(next, Some(Ok(Ws::Binary(_)))), "{next:?}");
}

#[tokio::test]
async fn a_clients_publication_control_is_ignored() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let (mut link, mut seen) = attached_client(&started).await;
    // Only the service pauses the agent; a client's pause must not stall the echo.
    let pause = control_frame(MessageType::PausePublication, 1, Vec::new()).unwrap();
    let junk = Bytes::from_static(b"not a frame");
    let ws = link.ws.as_mut().unwrap();
    for frame in [Bytes::from(pause), junk] {
        ws.send(Ws::Binary(frame)).await.unwrap();
    }
    // The plugin's keepalive ping is answered.
    ws.send(Ws::Ping(Bytes::from_static(b"keepalive")))
        .await
        .unwrap();
    within("pong", async {
        while !matches!(ws.next().await, Some(Ok(Ws::Pong(p))) if p == "keepalive") {}
    })
    .await;
    let now = link.now();
    link.peer.send_data(now, b"still here").unwrap();
    link.until(&mut seen, "echo", |s| s.data == b"still here")
        .await;
}

/// A raw client channel for the handshake cases the real client never produces.
fn raw_link() -> Link<Channel> {
    Link::new(
        Channel::new(ChannelConfig::new(Role::Client, 1_700_000_000_000)),
        Instant::now(),
    )
}

/// Pumps a raw link until the agent sends a stream message of `payload_type`.
async fn raw_expect(link: &mut Link<Channel>, payload_type: PayloadType) -> Vec<u8> {
    within(&format!("{payload_type:?}"), async {
        loop {
            while let Some(event) = link.peer.poll_event() {
                match event {
                    channel::Event::Received {
                        payload_type: t,
                        payload,
                        ..
                    } if t == payload_type => return payload,
                    channel::Event::Closed(c) if payload_type == PayloadType::Control => {
                        return c.output.into_bytes()
                    }
                    _ => {}
                }
            }
            assert!(link.ws.is_some(), "websocket ended");
            link.step().await;
        }
    })
    .await
}

fn handshake_response(status: ActionStatus, client_version: &str) -> Vec<u8> {
    serde_json::to_vec(&HandshakeResponse {
        client_version: client_version.into(),
        processed_client_actions: vec![ProcessedClientAction {
            action_type: "SessionType".into(),
            action_status: status,
            action_result: Value::Null,
            error: "nope".into(),
        }],
        errors: None,
    })
    .unwrap()
}

/// A client attached to the session `started`, past its handshake.
async fn attached_client(started: &Value) -> (Link<ClientSession>, Seen) {
    let mut link = client_link();
    link.connect(&field(started, "StreamUrl"), &field(started, "TokenValue"))
        .await;
    let mut seen = Seen::default();
    link.until(&mut seen, "handshake", |s| s.established).await;
    (link, seen)
}

/// A raw client channel attached to `started` that answered the handshake claiming
/// `client_version`, once HandshakeComplete has arrived.
async fn raw_past_handshake(started: &Value, client_version: &str) -> Link<Channel> {
    let mut link = raw_link();
    link.connect(&field(started, "StreamUrl"), &field(started, "TokenValue"))
        .await;
    raw_expect(&mut link, PayloadType::HandshakeRequest).await;
    let now = link.now();
    link.peer
        .send(
            now,
            PayloadType::HandshakeResponse,
            handshake_response(ActionStatus::Success, client_version),
        )
        .unwrap();
    raw_expect(&mut link, PayloadType::HandshakeComplete).await;
    link
}

#[tokio::test]
async fn data_sent_before_the_handshake_completed_is_discarded() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let mut link = raw_link();
    link.connect(
        &field(&started, "StreamUrl"),
        &field(&started, "TokenValue"),
    )
    .await;
    let now = link.now();
    link.peer
        .send(now, PayloadType::Output, b"early".to_vec())
        .unwrap();
    let request = raw_expect(&mut link, PayloadType::HandshakeRequest).await;
    let request: HandshakeRequest = serde_json::from_slice(&request).unwrap();
    assert_eq!(
        request.agent_version, "3.3.1142.0",
        "the default agent version"
    );
    let now = link.now();
    link.peer
        .send(
            now,
            PayloadType::HandshakeResponse,
            handshake_response(ActionStatus::Success, "1.1.61.0"),
        )
        .unwrap();
    raw_expect(&mut link, PayloadType::HandshakeComplete).await;
    let now = link.now();
    link.peer
        .send(now, PayloadType::Output, b"late".to_vec())
        .unwrap();
    assert_eq!(raw_expect(&mut link, PayloadType::Output).await, b"late");
}

#[tokio::test]
async fn a_refused_handshake_fails_the_session() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let mut link = raw_link();
    link.connect(
        &field(&started, "StreamUrl"),
        &field(&started, "TokenValue"),
    )
    .await;
    raw_expect(&mut link, PayloadType::HandshakeRequest).await;
    let now = link.now();
    link.peer
        .send(
            now,
            PayloadType::HandshakeResponse,
            handshake_response(ActionStatus::Failed, "1.1.61.0"),
        )
        .unwrap();
    let reason = raw_expect(&mut link, PayloadType::Control).await;
    assert!(String::from_utf8_lossy(&reason).contains("nope"));
    sim.wait_status(&field(&started, "SessionId"), "Failed")
        .await;
}

#[tokio::test]
async fn port_forwarding_for_a_multiplexing_client_speaks_smux() {
    use crate::session::smux::{self, Cmd, Event as MuxEvent, Mux, Role as MuxRole};
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let echo = echo_server().await.port().to_string();
    let refused = closed_port().await.port().to_string();
    for (port, works) in [(echo.as_str(), true), (refused.as_str(), false)] {
        let started = sim
            .start_session(ONLINE, "AWS-StartPortForwardingSession", port)
            .await;
        let mut link = raw_past_handshake(&started, "1.2.707.0").await;
        let mut mux = Mux::new(MuxRole::Client);
        let (a, mut wire) = mux.open();
        let (b, syn) = mux.open();
        wire.extend_from_slice(&syn);
        smux::encode_data(a, b"ping-a", &mut wire);
        smux::encode_data(b, b"ping-b", &mut wire);
        smux::encode(Cmd::Fin, a, &[], &mut wire);
        let now = link.now();
        link.peer.send(now, PayloadType::Output, wire).unwrap();
        if !works {
            let flag = raw_expect(&mut link, PayloadType::Flag).await;
            assert_eq!(flag, 3u32.to_be_bytes(), "ConnectToPortError");
            continue;
        }
        let mut events = Vec::new();
        let done = |events: &[MuxEvent]| {
            events.contains(&MuxEvent::Data(b, b"ping-b".to_vec()))
                && events.contains(&MuxEvent::Finished(a))
        };
        while !done(&events) {
            let bytes = raw_expect(&mut link, PayloadType::Output).await;
            mux.receive(&bytes).unwrap();
            events.extend(std::iter::from_fn(|| mux.poll_event()));
        }
        // Our FIN on stream a made the agent close its target connection fully and
        // finish the stream (what the echo server sent back may be lost, as with the
        // agent); b stays open.
        assert!(!events.contains(&MuxEvent::Finished(b)), "{events:?}");
    }
}

#[tokio::test]
async fn api_errors_have_the_services_codes_and_shape() {
    let opts = SimOptions {
        denied_actions: ["ssm:TerminateSession".to_string()].into(),
        ..SimOptions::default()
    };
    let sim = Sim::start(opts, Vec::new()).await;
    let cases = [
        (
            "StartSession",
            json!({ "Target": LOST, "DocumentName": "AWS-StartSSHSession" }),
            "TargetNotConnected",
            format!("{LOST} is not connected."),
        ),
        (
            "StartSession",
            json!({ "Target": ONLINE, "DocumentName": "AWS-RunShellScript" }),
            "InvalidDocument",
            "Document with name AWS-RunShellScript does not exist.".into(),
        ),
        (
            "StartSession",
            json!({ "Target": ONLINE, "DocumentName": "AWS-StartSSHSession", "Parameters": { "portNumber": ["ssh"] } }),
            "InvalidParameters",
            "Parameter \"portNumber\" has a value that is not a valid port number.".into(),
        ),
        (
            "ResumeSession",
            json!({ "SessionId": "demo-00000000000000000" }),
            "DoesNotExistException",
            "Session with id demo-00000000000000000 does not exist.".into(),
        ),
        (
            "DescribeSessions",
            json!({ "State": "Active", "MaxResults": 500 }),
            "ValidationException",
            String::new(),
        ),
        (
            "DescribeSessions",
            json!({ "State": "Active", "Filters": [{ "key": "Color", "value": "red" }] }),
            "InvalidFilterKey",
            String::new(),
        ),
        (
            "TerminateSession",
            json!({ "SessionId": "demo-00000000000000000" }),
            "AccessDeniedException",
            "is not authorized to perform: ssm:TerminateSession on resource: arn:aws:ssm:us-east-1:123456789012:session/demo-00000000000000000".into(),
        ),
    ];
    for (op, body, code, message) in cases {
        let (status, v) = sim.call(op, body).await;
        assert_eq!(status, 400, "{op}: {v}");
        assert_eq!(v["__type"], code, "{op}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(&message),
            "{op}: {v}"
        );
    }
}

#[tokio::test]
async fn start_session_denials_name_the_instance() {
    let opts = SimOptions {
        denied_actions: ["ssm:StartSession".to_string()].into(),
        ..SimOptions::default()
    };
    let sim = Sim::start(opts, Vec::new()).await;
    let (status, v) = sim
        .call(
            "StartSession",
            json!({ "Target": ONLINE, "DocumentName": "AWS-StartSSHSession" }),
        )
        .await;
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );
    let resource = format!("on resource: arn:aws:ec2:us-east-1:123456789012:instance/{ONLINE}");
    assert!(v["message"].as_str().unwrap().contains(&resource), "{v}");
}

#[tokio::test]
async fn describe_sessions_pages_and_filters() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let s = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
        ids.push(field(&s, "SessionId"));
    }
    let mut pages = Vec::new();
    let mut token = Value::Null;
    loop {
        let mut req = json!({ "State": "Active", "MaxResults": 2 });
        if !token.is_null() {
            req["NextToken"] = token.clone();
        }
        let v = sim.ok("DescribeSessions", req).await;
        pages.push(v["Sessions"].as_array().unwrap().len());
        token = v["NextToken"].clone();
        if token.is_null() {
            break;
        }
    }
    assert_eq!(pages, [2, 1]);
    let v = sim
        .ok(
            "DescribeSessions",
            json!({ "State": "Active", "Filters": [
                { "key": "SessionId", "value": ids[1] },
                { "key": "Owner", "value": "arn:aws:iam::123456789012:user/demo" },
                { "key": "InvokedAfter", "value": "2020-01-01T00:00:00Z" },
            ] }),
        )
        .await;
    let found: Vec<&str> = v["Sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["SessionId"].as_str().unwrap())
        .collect();
    assert_eq!(found, [ids[1].as_str()]);
    let v = sim
        .ok(
            "DescribeSessions",
            json!({ "State": "Active", "Filters": [{ "key": "InvokedBefore", "value": "2020-01-01T00:00:00Z" }] }),
        )
        .await;
    assert_eq!(v["Sessions"], json!([]));
}

#[tokio::test]
async fn input_before_the_agent_is_ready_is_refused_until_retransmitted() {
    // The agent sends HandshakeComplete, then dials; this target takes 300 ms.
    let sim = Sim::with_faults("dial-delay-ms=300", Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let mut link = raw_past_handshake(&started, "1.1.61.0").await;
    let now = link.now();
    link.peer
        .send(now, PayloadType::Output, b"at once".to_vec())
        .unwrap();
    assert_eq!(raw_expect(&mut link, PayloadType::Output).await, b"at once");
    let stats = sim.handle.stats();
    assert!(stats.refused_not_ready >= 1, "{stats:?}");
    assert!(
        link.peer.retransmissions() >= 1,
        "the client had to resend what the agent refused"
    );
    assert_eq!(stats.sessions_ssh, 1);
    assert_eq!(stats.target_dials, 1);
}

#[tokio::test]
async fn a_token_attaches_once() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let (id, url) = (field(&started, "SessionId"), field(&started, "StreamUrl"));
    let mut link = client_link();
    link.connect(&url, &field(&started, "TokenValue")).await;
    let mut seen = Seen::default();
    link.until(&mut seen, "handshake", |s| s.established).await;

    let refused = |token: String| {
        let url = url.clone();
        async move {
            let mut replay = Link::new(ClientSession::new(1), Instant::now());
            replay.connect(&url, &token).await;
            let ws = replay.ws.as_mut().unwrap();
            let next = within("refusal", ws.next()).await;
            assert!(!matches!(next, Some(Ok(Ws::Binary(_)))), "{next:?}");
        }
    };
    // Replaying StartSession's token is refused, while its websocket is attached…
    refused(field(&started, "TokenValue")).await;
    // …and so is a ResumeSession token once it has been used.
    let resumed = sim.ok("ResumeSession", json!({ "SessionId": id })).await;
    let token = field(&resumed, "TokenValue");
    assert_ne!(token, field(&started, "TokenValue"), "a new token");
    link.connect(&url, &token).await;
    let now = link.now();
    link.peer.resume(now);
    link.peer.send_data(now, b"still").unwrap();
    link.until(&mut seen, "echo", |s| s.data == b"still").await;
    refused(token).await;
    let stats = sim.handle.stats();
    assert_eq!(stats.websockets_opened, 2, "{stats:?}");
    assert_eq!(stats.websockets_refused, 2, "{stats:?}");
    assert_eq!(stats.resumes_with_token, 1);
}

#[tokio::test]
async fn a_disconnected_session_expires_and_is_not_resumed() {
    let opts = SimOptions {
        disconnect_timeout: Some(Duration::from_millis(300)),
        ..SimOptions::default()
    };
    let sim = Sim::start(opts, Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let id = field(&started, "SessionId");
    let (mut link, _) = attached_client(&started).await;
    drop(link.ws.take());
    sim.wait_status(&id, "Disconnected").await;
    // Nobody comes back: the session ends by itself…
    sim.wait_status(&id, "Terminated").await;
    // …and ResumeSession has no token for it: the plugin's "session timed out".
    let resumed = sim.ok("ResumeSession", json!({ "SessionId": id })).await;
    assert_eq!(resumed, json!({ "SessionId": id }));
    let stats = sim.handle.stats();
    assert_eq!(stats.sessions_expired, 1);
    assert_eq!(stats.resumes_without_token, 1);
}

/// Reads raw frames off a link's websocket until one of `message_type` comes.
async fn raw_frame(link: &mut Link<ClientSession>, message_type: MessageType) -> Bytes {
    within(&format!("{message_type}"), async {
        loop {
            let ws = link.ws.as_mut().expect("websocket open");
            match ws.next().await {
                Some(Ok(Ws::Binary(b))) => {
                    let now = link.now();
                    link.peer.handle_frame(now, &b).unwrap_or_default();
                    if super::wire::message_type(&b) == Some(message_type.clone()) {
                        return b;
                    }
                    link.flush().await;
                }
                Some(Ok(_)) => {}
                other => panic!("websocket ended: {other:?}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn the_service_closes_with_a_112_byte_nul_padded_channel_closed() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let id = field(&started, "SessionId");
    let (mut link, mut seen) = attached_client(&started).await;
    sim.ok("TerminateSession", json!({ "SessionId": id })).await;
    let frame = raw_frame(&mut link, MessageType::ChannelClosed).await;
    assert_eq!(&frame[..4], &112u32.to_be_bytes());
    assert_eq!(&frame[4..18], b"channel_closed");
    assert!(frame[18..36].iter().all(|&b| b == 0), "NUL padding");
    link.collect(&mut seen);
    assert_eq!(seen.closed.as_deref(), Some(""), "our client understood it");
    assert!(link.peer.is_closed());
    assert_eq!(sim.handle.stats().channel_closed_sent, 1);
}

#[tokio::test]
async fn publication_control_comes_around_a_reconnect_and_changes_nothing() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let (id, url) = (field(&started, "SessionId"), field(&started, "StreamUrl"));
    let mut link = client_link();
    link.connect(&url, &field(&started, "TokenValue")).await;
    let mut seen = Seen::default();
    link.until(&mut seen, "handshake", |s| s.established).await;
    let resumed = sim.ok("ResumeSession", json!({ "SessionId": id })).await;
    link.connect(&url, &field(&resumed, "TokenValue")).await;
    let now = link.now();
    link.peer.resume(now);
    let pause = raw_frame(&mut link, MessageType::PausePublication).await;
    let start = raw_frame(&mut link, MessageType::StartPublication).await;
    for frame in [&pause, &start] {
        assert_eq!(&frame[..4], &112u32.to_be_bytes());
        assert_eq!(&frame[40..48], &[0; 8], "loosely filled: no CreatedDate");
    }
    // Had the pause stopped our client, this would never come back.
    let now = link.now();
    link.peer.send_data(now, b"after").unwrap();
    link.until(&mut seen, "echo", |s| s.data == b"after").await;
    assert_eq!(sim.handle.stats().publication_sent, 2);
}

#[tokio::test]
async fn text_frames_and_oversized_payloads_are_protocol_errors() {
    let sim = Sim::start(SimOptions::default(), Vec::new()).await;
    for case in ["text", "oversized"] {
        let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
        let (mut link, mut seen) = attached_client(&started).await;
        let ws = link.ws.as_mut().unwrap();
        if case == "text" {
            ws.send(Ws::Text("{}".into())).await.unwrap();
        } else {
            let mut raw = Channel::new(ChannelConfig::new(Role::Client, 1));
            raw.send(Duration::ZERO, PayloadType::Output, vec![b'x'; 1025])
                .unwrap();
            ws.send(Ws::Binary(raw.poll_transmit().unwrap()))
                .await
                .unwrap();
        }
        link.until(&mut seen, "channel_closed", |s| s.closed.is_some())
            .await;
        let reason = seen.closed.unwrap();
        assert!(reason.starts_with("protocol error: "), "{case}: {reason}");
        sim.wait_status(&field(&started, "SessionId"), "Failed")
            .await;
    }
    assert_eq!(sim.handle.stats().protocol_errors, 2);
}

#[tokio::test]
async fn latency_delays_every_frame_both_ways() {
    let sim = Sim::with_faults("latency-ms=150", Vec::new()).await;
    let started = sim.start_session(ONLINE, "AWS-StartSSHSession", "22").await;
    let mut link = client_link();
    let t0 = Instant::now();
    link.connect(
        &field(&started, "StreamUrl"),
        &field(&started, "TokenValue"),
    )
    .await;
    let mut seen = Seen::default();
    link.until(&mut seen, "handshake", |s| s.established).await;
    // OpenDataChannel up, HandshakeRequest down, response up, HandshakeComplete down.
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    let t1 = Instant::now();
    let now = link.now();
    link.peer.send_data(now, b"rtt").unwrap();
    link.until(&mut seen, "echo", |s| s.data == b"rtt").await;
    assert!(
        t1.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t1.elapsed()
    );
}

#[tokio::test]
async fn the_agent_sends_what_it_reads_paced_in_1024_byte_messages() {
    let blob = random_bytes(200 * 1024, 14);
    let sim = Sim::start(SimOptions::default(), blob.clone()).await;
    let started = sim
        .start_session(SPEAKER, "AWS-StartSSHSession", "22")
        .await;
    let mut link = raw_past_handshake(&started, "1.1.61.0").await;
    let first = raw_expect(&mut link, PayloadType::Output).await;
    let t0 = Instant::now();
    let (mut got, mut messages) = (first, 1usize);
    while got.len() < blob.len() {
        let more = raw_expect(&mut link, PayloadType::Output).await;
        assert!(more.len() <= 1024, "{} bytes in one message", more.len());
        got.extend_from_slice(&more);
        messages += 1;
    }
    assert!(got == blob);
    assert!(messages >= 200, "{messages}");
    // One message per millisecond at most, as the agent's 1 ms sleep makes it.
    let least = Duration::from_millis(messages as u64 - 2);
    assert!(t0.elapsed() >= least, "{messages} in {:?}", t0.elapsed());
}
