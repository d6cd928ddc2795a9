//! The data channel in the simulator: Message Gateway and the SSM agent in one. A
//! websocket on `/v1/data-channel/{session}` is authenticated by its OpenDataChannel
//! token and handed to the session's agent task, which runs the agent side of the
//! same sans-IO channel the client uses, the port-session handshake, and a relay to
//! the session's TCP target. The agent task outlives websockets: when one breaks, the
//! session waits, Disconnected, for the client to resume on a new one.
//!
//! Faults ([`super::fault`]) are applied to binary frames at the websocket boundary in
//! both directions.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message as WsMessage, WebSocket};
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::fault::{CutBudget, Fate, FaultConfig, Faults};
use super::sessions::{Session, Status};
use super::SimState;
use crate::session::channel::{Channel, ChannelConfig, Event, Role};
use crate::session::codec::{
    control_frame, MessageType, PayloadType, MAX_STREAM_PAYLOAD, MESSAGE_TYPE_LEN,
};
use crate::session::messages::{
    ActionStatus, ChannelClosed, Flag, HandshakeComplete, HandshakeRequest, HandshakeResponse,
    OpenDataChannelInput, RequestedClientAction, SessionTypeRequest, ACTION_SESSION_TYPE,
};

/// How long the agent waits for the HandshakeResponse (the real agent's limit).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the first websocket frame (OpenDataChannel) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// After the target closed, how long unacknowledged output may take to be delivered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// From this client version on, the agent multiplexes `LocalPortForwarding` sessions.
const MUX_CLIENT_VERSION: &str = "1.1.70";

/// An authenticated websocket on its way to the agent task.
pub struct Attach {
    socket: WebSocket,
    /// From the OpenDataChannel frame: kept across reconnects by the plugin.
    client_id: String,
    client_version: String,
}

/// `GET /v1/data-channel/{session}`: upgrade, then check the OpenDataChannel frame.
pub async fn upgrade(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| open(state, id, socket))
}

async fn open(state: Arc<SimState>, id: String, mut socket: WebSocket) {
    let first = tokio::time::timeout(OPEN_TIMEOUT, socket.recv()).await;
    let input = match first {
        Ok(Some(Ok(WsMessage::Text(text)))) => {
            serde_json::from_str::<OpenDataChannelInput>(text.as_str()).ok()
        }
        _ => None,
    };
    let session = state.sessions.get(&id);
    match (input, session) {
        (Some(input), Some(session)) if session.accepts(&input.token_value) => {
            tracing::debug!(session = %id, client = %input.client_id, "data channel opened");
            session.attach(Attach {
                socket,
                client_id: input.client_id,
                client_version: input.client_version,
            });
        }
        _ => {
            tracing::debug!(session = %id, "data channel refused: bad token or first frame");
            let _ = socket.close().await;
        }
    }
}

/// Where the agent is in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No client has connected yet.
    Waiting,
    /// HandshakeRequest sent; until the deadline.
    Handshaking(tokio::time::Instant),
    /// Relaying.
    Established,
}

/// The websocket currently attached, with its fault state.
struct Conn {
    sink: SplitSink<WebSocket, WsMessage>,
    stream: SplitStream<WebSocket>,
    generation: u64,
    up: Faults,
    down: Faults,
    /// A frame held back by a reorder, per direction.
    held_up: Option<Bytes>,
    held_down: Option<Bytes>,
    /// Bytes both ways towards `cut-after`.
    budget: CutBudget,
    cut: bool,
}

/// Frames released by a delay fault: (connection generation, to the client?, frame).
type Delayed = (u64, bool, Bytes);

struct Agent {
    session: Arc<Session>,
    faults: FaultConfig,
    epoch: Instant,
    unix_ms: u64,
    channel: Channel,
    phase: Phase,
    conn: Option<Conn>,
    generation: u64,
    delayed_tx: mpsc::UnboundedSender<Delayed>,
    tcp_read: Option<OwnedReadHalf>,
    /// To the task that writes to the target, so a slow target never stalls the
    /// channel (an echo target would otherwise deadlock a single task).
    tcp_write: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// The target closed; deliver what is unacked, then close the channel.
    draining: Option<Instant>,
    /// Mux-mode port forwarding ([`super::mux`]): what its smux server sends the
    /// client. The client's bytes go to the server through `tcp_write`.
    mux_out: Option<mpsc::Receiver<super::mux::Out>>,
    /// A shell session's shell ([`super::shell`]); its input goes through `tcp_write`.
    shell: Option<super::shell::Shell>,
}

/// Why the agent task ends.
enum End {
    Terminated(String),
    Failed(String),
}

/// The agent task of one session, from StartSession to its end.
pub async fn agent(
    session: Arc<Session>,
    faults: FaultConfig,
    mut attach_rx: mpsc::UnboundedReceiver<Attach>,
    mut stop_rx: watch::Receiver<bool>,
) {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1);
    let (delayed_tx, mut delayed_rx) = mpsc::unbounded_channel();
    let mut agent = Agent {
        channel: Channel::new(ChannelConfig::new(Role::Agent, unix_ms)),
        session,
        faults,
        epoch: Instant::now(),
        unix_ms,
        phase: Phase::Waiting,
        conn: None,
        generation: 0,
        delayed_tx,
        tcp_read: None,
        tcp_write: None,
        draining: None,
        mux_out: None,
        shell: None,
    };
    let mut buf = vec![0u8; MAX_STREAM_PAYLOAD * 16];
    let mut shell_buf = vec![0u8; MAX_STREAM_PAYLOAD * 4];
    let end = loop {
        let timer = agent
            .channel
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(agent.epoch + t));
        let handshake_deadline = match agent.phase {
            Phase::Handshaking(at) => Some(at),
            _ => None,
        };
        let relaying = agent.phase == Phase::Established
            && agent.draining.is_none()
            && agent.channel.can_send()
            && agent.tcp_read.is_some();
        let shell_relaying = agent.phase == Phase::Established
            && agent.draining.is_none()
            && agent.channel.can_send()
            && agent.shell.is_some();
        let step: Result<(), End> = tokio::select! {
            Some(attach) = attach_rx.recv() => agent.attach(attach).await,
            frame = next_frame(&mut agent.conn) => {
                // Take whatever else already arrived, so acks leave in one write.
                let mut step = agent.on_frame(frame).await;
                for _ in 0..256 {
                    if step.is_err() || agent.conn.is_none() {
                        break;
                    }
                    match next_frame(&mut agent.conn).now_or_never() {
                        Some(frame) => step = agent.on_frame(frame).await,
                        None => break,
                    }
                }
                step
            }
            Some((generation, down, frame)) = delayed_rx.recv() => {
                agent.on_delayed(generation, down, frame).await
            }
            n = read_some(&mut agent.tcp_read, &mut buf), if relaying => agent.on_target(n, &buf),
            out = mux_next(&mut agent.mux_out), if agent.mux_relaying() => agent.on_mux(out),
            n = super::shell::read(&mut agent.shell, &mut shell_buf), if shell_relaying => agent.on_target(n, &shell_buf),
            _ = sleep_until(timer), if timer.is_some() => {
                agent.channel.handle_timeout(agent.now());
                Ok(())
            }
            _ = sleep_until(handshake_deadline), if handshake_deadline.is_some() => {
                Err(End::Failed("the client did not answer the handshake in time".into()))
            }
            _ = stop_rx.changed() => Err(End::Terminated(String::new())),
        };
        let step = match step {
            Ok(()) => agent.process_events().await,
            err => err,
        };
        if let Err(end) = step {
            break end;
        }
        agent.transmit().await;
        if let Some(since) = agent.draining {
            if agent.channel.is_flushed() || since.elapsed() > DRAIN_TIMEOUT {
                break End::Terminated(String::new());
            }
        }
    };
    let (status, output) = match end {
        End::Terminated(output) => (Status::Terminated, output),
        End::Failed(output) => (Status::Failed, output),
    };
    tracing::debug!(session = %agent.session.id, ?status, %output, "session ended");
    agent.close(&output).await;
    agent.session.set_status(status);
}

impl Agent {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    async fn attach(&mut self, attach: Attach) -> Result<(), End> {
        self.generation += 1;
        tracing::debug!(
            session = %self.session.id,
            client_id = %attach.client_id,
            client_version = %attach.client_version,
            connection = self.generation,
            "client attached"
        );
        let (sink, stream) = attach.socket.split();
        let stream_id = self.generation * 2;
        self.conn = Some(Conn {
            sink,
            stream,
            generation: self.generation,
            up: Faults::new(&self.faults, stream_id),
            down: Faults::new(&self.faults, stream_id + 1),
            held_up: None,
            held_down: None,
            budget: CutBudget::new(&self.faults),
            cut: false,
        });
        self.session.set_status(Status::Connected);
        let now = self.now();
        if self.phase == Phase::Waiting && super::shell::is_shell_document(&self.session.document) {
            return self.open_shell(now);
        }
        if self.phase == Phase::Waiting {
            tracing::debug!(session = %self.session.id, "handshake");
            let request = HandshakeRequest {
                agent_version: self.session.agent_version.clone(),
                requested_client_actions: vec![RequestedClientAction {
                    action_type: ACTION_SESSION_TYPE.into(),
                    action_parameters: serde_json::to_value(SessionTypeRequest {
                        session_type: "Port".into(),
                        properties: self.session.properties.clone(),
                    })
                    .unwrap_or_default(),
                }],
            };
            let payload = serde_json::to_vec(&request).unwrap_or_default();
            let _ = self
                .channel
                .send_unlimited(now, PayloadType::HandshakeRequest, payload);
            self.phase = Phase::Handshaking(tokio::time::Instant::now() + HANDSHAKE_TIMEOUT);
        } else {
            self.channel.resume(now);
        }
        Ok(())
    }

    async fn on_frame(&mut self, frame: Option<WsMessage>) -> Result<(), End> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let bytes = match frame {
            Some(WsMessage::Binary(b)) => b,
            Some(WsMessage::Text(t)) => Bytes::copy_from_slice(t.as_str().as_bytes()),
            Some(_) => return Ok(()),
            None => {
                self.detach("the websocket closed");
                return Ok(());
            }
        };
        if conn.budget.count(bytes.len()) {
            conn.cut = true;
        }
        let fate = conn.up.decide();
        let generation = conn.generation;
        match fate {
            Fate::Deliver => {
                self.receive(&bytes);
                if let Some(held) = self.conn.as_mut().and_then(|c| c.held_up.take()) {
                    self.receive(&held);
                }
            }
            Fate::Drop => tracing::debug!("fault: dropped a frame from the client"),
            Fate::Duplicate => {
                tracing::debug!("fault: duplicated a frame from the client");
                self.receive(&bytes);
                self.receive(&bytes);
            }
            Fate::Reorder => {
                tracing::debug!("fault: holding back a frame from the client");
                if let Some(previous) = conn.held_up.replace(bytes) {
                    self.receive(&previous);
                }
            }
            Fate::Delay(d) => {
                tracing::debug!(?d, "fault: delaying a frame from the client");
                self.delay(generation, false, bytes, d);
            }
        }
        self.maybe_cut();
        Ok(())
    }

    async fn on_delayed(&mut self, generation: u64, down: bool, frame: Bytes) -> Result<(), End> {
        let current = self.conn.as_ref().map(|c| c.generation) == Some(generation);
        if !current {
            return Ok(());
        }
        if down {
            self.send_frame(frame).await;
        } else {
            self.receive(&frame);
        }
        Ok(())
    }

    fn delay(&self, generation: u64, down: bool, frame: Bytes, d: Duration) {
        let tx = self.delayed_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let _ = tx.send((generation, down, frame));
        });
    }

    /// Hands a frame from the client to the agent's channel. Only stream data and
    /// acknowledgements are relayed to the agent: publication control and
    /// `channel_closed` are the service's to send, so a client's are ignored.
    fn receive(&mut self, frame: &[u8]) {
        match message_type(frame) {
            Some(MessageType::InputStreamData | MessageType::Acknowledge) => {}
            other => {
                tracing::debug!(message_type = ?other, "agent ignored a frame it does not take from a client");
                return;
            }
        }
        if let Err(e) = self.channel.handle_frame(self.now(), frame) {
            tracing::debug!(error = %e, "agent ignored a frame");
        }
    }

    fn on_target(&mut self, n: std::io::Result<usize>, buf: &[u8]) -> Result<(), End> {
        match n {
            Ok(0) | Err(_) => {
                tracing::debug!(session = %self.session.id, "target closed the connection");
                self.tcp_read = None;
                // LocalPortForwarding (basic mode) lives on: the next local connection
                // re-dials the target.
                if !self.forwarding() {
                    self.draining = Some(Instant::now());
                }
            }
            Ok(n) => {
                let now = self.now();
                for chunk in buf[..n].chunks(MAX_STREAM_PAYLOAD) {
                    let _ = self
                        .channel
                        .send_unlimited(now, PayloadType::Output, chunk.to_vec());
                }
            }
        }
        Ok(())
    }

    async fn process_events(&mut self) -> Result<(), End> {
        while let Some(event) = self.channel.poll_event() {
            match event {
                Event::Received {
                    payload_type,
                    payload,
                    ..
                } => self.on_message(payload_type, payload).await?,
                Event::RetransmitLimitReached { .. } => {
                    return Err(End::Failed("the client stopped acknowledging".into()))
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn on_message(&mut self, payload_type: PayloadType, payload: Vec<u8>) -> Result<(), End> {
        match (payload_type, self.phase) {
            (PayloadType::HandshakeResponse, Phase::Handshaking(_)) => {
                let response: HandshakeResponse = serde_json::from_slice(&payload)
                    .map_err(|e| End::Failed(format!("unreadable HandshakeResponse: {e}")))?;
                if let Some(bad) = response
                    .processed_client_actions
                    .iter()
                    .find(|a| a.action_status != ActionStatus::Success)
                {
                    return Err(End::Failed(format!(
                        "the client could not process {}: {}",
                        bad.action_type, bad.error
                    )));
                }
                if super::shell::is_shell_document(&self.session.document) {
                    self.start_shell()?;
                } else if self.check_port_mode(&response.client_version) {
                    self.start_mux();
                } else {
                    self.connect_target().await?;
                }
                let complete = HandshakeComplete {
                    handshake_time_to_complete: self.now().as_nanos() as i64,
                    customer_message: String::new(),
                };
                let payload = serde_json::to_vec(&complete).unwrap_or_default();
                let _ = self.channel.send_unlimited(
                    self.now(),
                    PayloadType::HandshakeComplete,
                    payload,
                );
                self.phase = Phase::Established;
                Ok(())
            }
            (PayloadType::Size, Phase::Established) => {
                if let Some(shell) = &self.shell {
                    shell.resize_json(&payload);
                }
                Ok(())
            }
            (PayloadType::Output, Phase::Established) => {
                if self.tcp_write.is_none() && self.forwarding() && self.mux_out.is_none() {
                    // Basic mode after DisconnectToPort: a new local connection.
                    self.connect_target().await?;
                }
                if let Some(w) = self.tcp_write.as_ref() {
                    if w.send(payload).is_err() {
                        self.tcp_write = None;
                    }
                }
                Ok(())
            }
            (PayloadType::Flag, _) => match Flag::from_payload(&payload) {
                Some(Flag::TerminateSession) => Err(End::Terminated(String::new())),
                Some(Flag::DisconnectToPort) if self.forwarding() && self.mux_out.is_none() => {
                    self.tcp_read = None;
                    self.tcp_write = None;
                    Ok(())
                }
                Some(Flag::DisconnectToPort) => Err(End::Terminated(String::new())),
                _ => Ok(()),
            },
            // Data before the handshake completed is acknowledged and dropped, as the
            // agent does; anything else is ignored.
            _ => Ok(()),
        }
    }

    /// Whether this port session runs in mux mode: agents after 3.0.196.0 serve
    /// `LocalPortForwarding` to clients from 1.1.70 on with smux; everything else is
    /// basic mode (one TCP connection at a time).
    fn check_port_mode(&self, client_version: &str) -> bool {
        self.forwarding()
            && version_at_least(client_version, MUX_CLIENT_VERSION)
            && version_at_least(&self.session.agent_version, "3.0.196.1")
    }

    fn forwarding(&self) -> bool {
        self.session.properties["type"] == "LocalPortForwarding"
    }

    /// Where port sessions connect: the document's `host` (…ToRemoteHost) and
    /// `portNumber`, else the session's relay address.
    fn dial_addr(&self) -> String {
        match self.session.properties["host"].as_str() {
            Some(host) if !host.is_empty() => {
                let port = self.session.port;
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
            _ => self.session.relay.to_string(),
        }
    }

    fn start_mux(&mut self) {
        let server = super::mux::spawn(self.dial_addr());
        self.tcp_write = Some(server.input);
        self.mux_out = Some(server.output);
    }

    fn mux_relaying(&self) -> bool {
        self.phase == Phase::Established && self.channel.can_send() && self.mux_out.is_some()
    }

    fn on_mux(&mut self, out: Option<super::mux::Out>) -> Result<(), End> {
        let now = self.now();
        match out {
            None => return Err(End::Failed("smux protocol error from the client".into())),
            Some(super::mux::Out::Data(bytes)) => {
                for chunk in bytes.chunks(MAX_STREAM_PAYLOAD) {
                    let _ = self
                        .channel
                        .send_unlimited(now, PayloadType::Output, chunk.to_vec());
                }
            }
            Some(super::mux::Out::Flag(flag)) => {
                let payload = flag.to_payload().to_vec();
                let _ = self.channel.send_unlimited(now, PayloadType::Flag, payload);
            }
        }
        Ok(())
    }

    /// A shell session starts its shell at once and sends its output with no
    /// handshake, unless the preferences ask for KMS encryption: then the agent first
    /// shakes hands for `Standard_Stream` with a `KMSEncryption` action.
    fn open_shell(&mut self, now: Duration) -> Result<(), End> {
        let Some(key) = self.session.kms_key_id.clone() else {
            self.start_shell()?;
            self.phase = Phase::Established;
            return Ok(());
        };
        let request = HandshakeRequest {
            agent_version: self.session.agent_version.clone(),
            requested_client_actions: super::shell::kms_actions(&key),
        };
        let payload = serde_json::to_vec(&request).unwrap_or_default();
        let _ = self
            .channel
            .send_unlimited(now, PayloadType::HandshakeRequest, payload);
        self.phase = Phase::Handshaking(tokio::time::Instant::now() + HANDSHAKE_TIMEOUT);
        Ok(())
    }

    fn start_shell(&mut self) -> Result<(), End> {
        let shell = super::shell::Shell::spawn()
            .map_err(|e| End::Failed(format!("cannot start the shell: {e}")))?;
        self.tcp_write = Some(shell.input());
        self.shell = Some(shell);
        Ok(())
    }

    async fn connect_target(&mut self) -> Result<(), End> {
        let addr = self.dial_addr();
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let (r, w) = stream.into_split();
                self.tcp_read = Some(r);
                self.tcp_write = Some(spawn_writer(w));
                Ok(())
            }
            Ok(Err(e)) => Err(End::Failed(format!(
                "Unable to start port forwarding: dial tcp {addr}: connect: {e}"
            ))),
            Err(_) => Err(End::Failed(format!(
                "Unable to start port forwarding: dial tcp {addr}: i/o timeout"
            ))),
        }
    }

    /// Writes what the channel has to send through the outgoing faults. Without a
    /// websocket it is discarded: `resume` resends everything unacknowledged.
    async fn transmit(&mut self) {
        while let Some(frame) = self.channel.poll_transmit() {
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            if conn.budget.count(frame.len()) {
                conn.cut = true;
            }
            match conn.down.decide() {
                Fate::Deliver => {
                    self.send_frame(frame).await;
                    if let Some(held) = self.conn.as_mut().and_then(|c| c.held_down.take()) {
                        self.send_frame(held).await;
                    }
                }
                Fate::Drop => tracing::debug!("fault: dropped a frame to the client"),
                Fate::Duplicate => {
                    tracing::debug!("fault: duplicated a frame to the client");
                    self.send_frame(frame.clone()).await;
                    self.send_frame(frame).await;
                }
                Fate::Reorder => {
                    tracing::debug!("fault: holding back a frame to the client");
                    if let Some(previous) = conn.held_down.replace(frame) {
                        self.send_frame(previous).await;
                    }
                }
                Fate::Delay(d) => {
                    tracing::debug!(?d, "fault: delaying a frame to the client");
                    let generation = conn.generation;
                    self.delay(generation, true, frame, d);
                }
            }
            self.maybe_cut();
        }
        if let Some(conn) = self.conn.as_mut() {
            if conn.sink.flush().await.is_err() {
                self.detach("websocket write failed");
            }
        }
    }

    async fn send_frame(&mut self, frame: Bytes) {
        if let Some(conn) = self.conn.as_mut() {
            if conn.sink.feed(WsMessage::Binary(frame)).await.is_err() {
                self.detach("websocket write failed");
            }
        }
    }

    /// Applies a pending `cut-after`: the connection is dropped without a close frame.
    fn maybe_cut(&mut self) {
        if self.conn.as_ref().is_some_and(|c| c.cut) {
            tracing::debug!(session = %self.session.id, "fault: cutting the websocket");
            self.detach("fault injection cut the websocket");
        }
    }

    /// The client's websocket is gone: the session is Disconnected, not over. As the
    /// service tells the agent with `pause_publication`, the channel stops sending and
    /// retransmitting (so no retransmission limit runs out while nobody listens) until
    /// a resumed websocket attaches.
    fn detach(&mut self, why: &str) {
        if self.conn.take().is_some() {
            tracing::debug!(session = %self.session.id, why, "client away; waiting for a resume");
            self.session.set_status(Status::Disconnected);
            let created = self.unix_ms + self.now().as_millis() as u64;
            if let Ok(pause) = control_frame(MessageType::PausePublication, created, Vec::new()) {
                let _ = self.channel.handle_frame(self.now(), &pause);
            }
        }
    }

    /// Ends the session on the wire: `channel_closed`, then the websocket closes.
    async fn close(&mut self, output: &str) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let closed = ChannelClosed {
            message_id: uuid::Uuid::new_v4().to_string(),
            created_date: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            destination_id: self.session.target.clone(),
            session_id: self.session.id.clone(),
            message_type: MessageType::ChannelClosed.as_str().to_string(),
            schema_version: 1,
            output: output.to_string(),
        };
        let payload = serde_json::to_vec(&closed).unwrap_or_default();
        let created = self.unix_ms + self.now().as_millis() as u64;
        if let Ok(frame) = control_frame(MessageType::ChannelClosed, created, payload) {
            let _ = conn.sink.send(WsMessage::Binary(frame.into())).await;
        }
        let _ = conn.sink.close().await;
    }
}

/// Writes what the client sends to the target, in order; ends (closing the write
/// side) when the sender is dropped or the target stops accepting.
fn spawn_writer(mut w: OwnedWriteHalf) -> mpsc::UnboundedSender<Vec<u8>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while let Some(bytes) = rx.recv().await {
            // Everything already queued goes out in one write.
            batch.clear();
            batch.extend_from_slice(&bytes);
            while batch.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if w.write_all(&batch).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    tx
}

/// The next message of the attached websocket; pending while there is none. `None`
/// means it closed or failed.
async fn next_frame(conn: &mut Option<Conn>) -> Option<WsMessage> {
    match conn {
        Some(c) => match c.stream.next().await {
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => None,
            Some(Ok(m)) => Some(m),
        },
        None => std::future::pending().await,
    }
}

/// The next thing a mux-mode server sends; pending without one. `None`: it ended.
async fn mux_next(rx: &mut Option<mpsc::Receiver<super::mux::Out>>) -> Option<super::mux::Out> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn read_some(r: &mut Option<OwnedReadHalf>, buf: &mut [u8]) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The MessageType of a frame, read from its header without decoding the rest.
fn message_type(frame: &[u8]) -> Option<MessageType> {
    let field = frame.get(4..4 + MESSAGE_TYPE_LEN)?;
    let text = std::str::from_utf8(field).ok()?;
    Some(MessageType::parse(
        text.trim_matches(|c: char| c == '\0' || c.is_whitespace()),
    ))
}

/// `a >= b` for dotted numeric versions, missing components counting as 0 (the agent's
/// comparison); anything unparsable is "no".
fn version_at_least(a: &str, b: &str) -> bool {
    let parse = |v: &str| {
        v.split('.')
            .map(|p| p.parse::<u64>().ok())
            .collect::<Option<Vec<_>>>()
    };
    let (Some(mut a), Some(mut b)) = (parse(a), parse(b)) else {
        return false;
    };
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    a >= b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_with_missing_parts_as_zero() {
        assert!(version_at_least("1.1.70", "1.1.70"));
        assert!(version_at_least("1.1.70.0", "1.1.70"));
        assert!(version_at_least("1.2.650.0", "1.1.70"));
        assert!(!version_at_least("1.1.61.0", "1.1.70"));
        assert!(!version_at_least("1.1.x", "1.1.70"));
        assert!(!version_at_least("", "1.1.70"));
    }

    #[test]
    fn message_type_is_read_from_the_header() {
        let frame = control_frame(MessageType::PausePublication, 1, Vec::new()).unwrap();
        assert_eq!(message_type(&frame), Some(MessageType::PausePublication));
        assert_eq!(message_type(b"short"), None);
    }
}
