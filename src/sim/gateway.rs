//! The data channel in the simulator: Message Gateway and the SSM agent in one. A
//! websocket on `/v1/data-channel/{session}` is authenticated by its OpenDataChannel
//! token (each token attaches once) and handed to the session's agent task, which runs
//! the agent side of the sequenced channel, the handshake, and the session's plugin:
//! a relay to the TCP target (port sessions), an smux server ([`super::mux`]) or a
//! shell ([`super::shell`]). The agent task outlives websockets: when one breaks, the
//! session waits, Disconnected, for the client to resume on a new one, until it
//! expires.
//!
//! It behaves like the agent, not like our client (agent `datachannel.go`, `port.go`,
//! `port_basic.go`, `port_mux.go`, `shell.go`): HandshakeComplete goes out before the
//! target is dialled, and input arriving before the plugin is ready is dropped without
//! an acknowledgement; what it reads from the target is paced ([`super::pacing`]).
//! The service's own frames have the service's shape ([`super::wire`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message as WsMessage, WebSocket};
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures::{FutureExt, SinkExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::fault::FaultConfig;
use super::mux::Out;
use super::pacing::{Outbox, Pacer};
use super::session::{Attach, Session, Status};
use super::stats::{Stats, TargetGuard};
use super::wire::{self, check_inbound, service_frame, Delayed, ProtocolError, Wire};
use super::SimState;
use crate::session::channel::{Channel, ChannelConfig, Event, Role};
use crate::session::codec::{control_frame, MessageType, PayloadType, MAX_STREAM_PAYLOAD};
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
/// From this client version on, the agent multiplexes `LocalPortForwarding` sessions
/// (`port.go` muxSupportedClientVersion).
const MUX_CLIENT_VERSION: &str = "1.1.70";
/// Agents after this one have the smux mode at all (the plugin's
/// TCPMultiplexingSupportedAfterThisAgentVersion).
const MUX_AGENT_VERSION: &str = "3.0.196.0";
/// Above this client version the agent turns smux keepalive off (`port.go`
/// muxKeepAliveDisabledAfterThisClientVersion)…
const KEEPALIVE_OFF_CLIENT_VERSION: &str = "1.2.331.0";
/// …if it is newer than this (the plugin's
/// TCPMultiplexingWithSmuxKeepAliveDisabledAfterThisAgentVersion).
const KEEPALIVE_OFF_AGENT_VERSION: &str = "3.1.1511.0";
/// Largest read from the target when pacing is off.
const UNPACED_READ: usize = MAX_STREAM_PAYLOAD * 16;

/// How each session's agent behaves, from the simulator's options.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub faults: FaultConfig,
    /// The agent's 1 ms after every message it reads from its target.
    pub paced: bool,
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
    // The first frame's one-way latency.
    tokio::time::sleep(state.opts.faults.latency()).await;
    let session = state.sessions.get(&id);
    match (input, session) {
        (Some(input), Some(session)) if session.take_token(&input.token_value) => {
            tracing::debug!(session = %id, client = %input.client_id, "data channel opened");
            Stats::add(&state.stats.websockets_opened);
            session.attach(Attach {
                socket,
                client_id: input.client_id,
                client_version: input.client_version,
            });
        }
        _ => {
            tracing::debug!(session = %id, "data channel refused: bad, used or expired token, or bad first frame");
            Stats::add(&state.stats.websockets_refused);
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
    /// HandshakeComplete sent (or no handshake): the session's plugin runs.
    Established,
}

/// The port session's plugin, being set up after HandshakeComplete.
enum Started {
    Target(Result<TcpStream, String>),
    Mux,
}

struct Agent {
    session: Arc<Session>,
    stats: Arc<Stats>,
    faults: FaultConfig,
    epoch: Instant,
    unix_ms: u64,
    channel: Channel,
    phase: Phase,
    wire: Option<Wire>,
    generation: u64,
    delayed_tx: mpsc::UnboundedSender<Delayed>,
    /// The ClientVersion of the HandshakeResponse (the agent decides modes from it).
    client_version: String,
    /// Set up after HandshakeComplete; until it is done, input is refused.
    starting: Option<JoinHandle<Started>>,
    tcp_read: Option<OwnedReadHalf>,
    /// To the task that writes to the target, so a slow target never stalls the
    /// channel (an echo target would otherwise deadlock a single task).
    tcp_write: Option<mpsc::UnboundedSender<Vec<u8>>>,
    target_open: Option<TargetGuard>,
    /// The target closed; deliver what is unacked, then close the channel.
    draining: Option<Instant>,
    /// Mux-mode port forwarding: what its smux server sends the client. The client's
    /// bytes go to the server through `tcp_write`.
    mux_out: Option<mpsc::Receiver<Out>>,
    /// A shell session's shell; its input goes through `tcp_write`.
    shell: Option<super::shell::Shell>,
    /// smux or shell bytes waiting to go out, at most 1024 per message.
    outbox: Outbox,
    pacer: Pacer<tokio::time::Instant>,
}

/// Why the agent task ends.
enum End {
    Terminated(String),
    Failed(String),
}

/// The agent task of one session, from StartSession to its end.
pub async fn agent(
    session: Arc<Session>,
    opts: AgentOptions,
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
        stats: session.stats.clone(),
        session,
        faults: opts.faults,
        epoch: Instant::now(),
        unix_ms,
        phase: Phase::Waiting,
        wire: None,
        generation: 0,
        delayed_tx,
        client_version: String::new(),
        starting: None,
        tcp_read: None,
        tcp_write: None,
        target_open: None,
        draining: None,
        mux_out: None,
        shell: None,
        outbox: Outbox::default(),
        pacer: Pacer::new(opts.paced),
    };
    let read_size = if agent.pacer.is_paced() {
        MAX_STREAM_PAYLOAD
    } else {
        UNPACED_READ
    };
    let mut buf = vec![0u8; read_size];
    let end = loop {
        let timer = agent
            .channel
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(agent.epoch + t));
        let handshake_deadline = match agent.phase {
            Phase::Handshaking(at) => Some(at),
            _ => None,
        };
        let expiry = match agent.wire {
            None => agent
                .session
                .expires_at()
                .map(tokio::time::Instant::from_std),
            Some(_) => None,
        };
        let up_due = agent.wire.as_ref().and_then(Wire::up_due);
        let down_due = agent.wire.as_ref().and_then(Wire::down_due);
        // The agent's `IsActive`: it reads its source only while publishing.
        let flowing = agent.phase == Phase::Established
            && agent.channel.can_send()
            && !agent.channel.is_paused();
        let reading_target = flowing && agent.draining.is_none() && agent.tcp_read.is_some();
        let taking_mux = flowing && agent.outbox.is_empty() && agent.mux_out.is_some();
        let taking_shell =
            flowing && agent.draining.is_none() && agent.outbox.is_empty() && agent.shell.is_some();
        let emitting = flowing && !agent.outbox.is_empty();
        let pace = agent.pacer.ready_at();

        let step: Result<(), End> = tokio::select! {
            Some(attach) = attach_rx.recv() => agent.attach(attach).await,
            frame = Wire::next(&mut agent.wire) => {
                // Take whatever else already arrived, so acks leave in one write.
                let mut step = agent.on_frame(frame).await;
                for _ in 0..256 {
                    if step.is_err() || agent.wire.is_none() {
                        break;
                    }
                    match Wire::next(&mut agent.wire).now_or_never() {
                        Some(frame) => step = agent.on_frame(frame).await,
                        None => break,
                    }
                }
                step
            }
            _ = sleep_until(up_due), if up_due.is_some() => agent.release_up().await,
            _ = sleep_until(down_due), if down_due.is_some() => {
                if let Some(wire) = agent.wire.as_mut() {
                    wire.release_down().await;
                }
                Ok(())
            }
            Some((generation, down, frame)) = delayed_rx.recv() => {
                agent.on_delayed(generation, down, frame).await
            }
            started = join(&mut agent.starting) => agent.on_started(started),
            n = paced(pace, read_some(&mut agent.tcp_read, &mut buf)), if reading_target => {
                agent.on_target(n, &buf)
            }
            out = mux_next(&mut agent.mux_out), if taking_mux => agent.on_mux(out),
            out = super::shell::next_output(&mut agent.shell), if taking_shell => {
                agent.on_shell(out)
            }
            () = paced(pace, std::future::ready(())), if emitting => {
                agent.emit_outbox();
                Ok(())
            }
            _ = sleep_until(timer), if timer.is_some() => {
                agent.channel.handle_timeout(agent.now());
                Ok(())
            }
            _ = sleep_until(handshake_deadline), if handshake_deadline.is_some() => {
                Err(End::Failed("the client did not answer the handshake in time".into()))
            }
            _ = sleep_until(expiry), if expiry.is_some() => {
                if agent.session.expire_if_due() {
                    Err(End::Terminated("the session timed out".into()))
                } else {
                    Ok(())
                }
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
            let drained = agent.outbox.is_empty() && agent.channel.is_flushed();
            if drained || since.elapsed() > DRAIN_TIMEOUT {
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

    fn created(&self) -> u64 {
        self.unix_ms + self.now().as_millis() as u64
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
        // A new websocket replaces the old one.
        self.wire = Some(Wire::new(
            attach.socket,
            self.generation,
            &self.faults,
            self.stats.clone(),
            self.delayed_tx.clone(),
        ));
        self.session.set_status(Status::Connected);
        let now = self.now();
        match self.phase {
            Phase::Waiting if super::shell::is_shell_document(&self.session.document) => {
                self.open_shell(now)
            }
            Phase::Waiting => {
                tracing::debug!(session = %self.session.id, "handshake");
                let port = RequestedClientAction {
                    action_type: ACTION_SESSION_TYPE.into(),
                    action_parameters: serde_json::to_value(SessionTypeRequest {
                        session_type: "Port".into(),
                        properties: self.session.properties.clone(),
                    })
                    .unwrap_or_default(),
                };
                self.request_handshake(now, vec![port]);
                Ok(())
            }
            _ => {
                // A resumed client. The service tells it about its peer around the
                // reconnect (the plugin ignores both), and tells the agent to start
                // publishing again.
                self.publication(MessageType::PausePublication).await;
                self.channel.resume(now);
                self.publication(MessageType::StartPublication).await;
                Ok(())
            }
        }
    }

    async fn publication(&mut self, message_type: MessageType) {
        if let Some(wire) = self.wire.as_mut() {
            let frame = service_frame(&message_type, 0, &[]);
            wire.put(WsMessage::Binary(frame.into())).await;
            Stats::add(&self.stats.publication_sent);
        }
    }

    async fn on_frame(&mut self, frame: Option<WsMessage>) -> Result<(), End> {
        let Some(wire) = self.wire.as_mut() else {
            return Ok(());
        };
        let bytes = match frame {
            Some(WsMessage::Binary(b)) => b,
            Some(WsMessage::Text(_)) => return Err(self.protocol_error(ProtocolError::Text)),
            Some(_) => return Ok(()),
            None => {
                self.detach("the websocket closed");
                return Ok(());
            }
        };
        if let Err(e) = check_inbound(&bytes) {
            return Err(self.protocol_error(e));
        }
        let now = wire.arrived(bytes);
        for frame in now {
            self.receive(&frame).await?;
        }
        self.maybe_cut();
        Ok(())
    }

    fn protocol_error(&self, e: ProtocolError) -> End {
        tracing::debug!(session = %self.session.id, error = %e, "the client broke the protocol");
        Stats::add(&self.stats.protocol_errors);
        End::Failed(e.to_string())
    }

    async fn release_up(&mut self) -> Result<(), End> {
        let Some(wire) = self.wire.as_mut() else {
            return Ok(());
        };
        for frame in wire.release_up() {
            self.receive(&frame).await?;
        }
        Ok(())
    }

    async fn on_delayed(&mut self, generation: u64, down: bool, frame: Bytes) -> Result<(), End> {
        let Some(wire) = self.wire.as_mut().filter(|w| w.generation == generation) else {
            return Ok(());
        };
        if down {
            wire.put(WsMessage::Binary(frame)).await;
            Ok(())
        } else {
            self.receive(&frame).await
        }
    }

    /// Hands a frame from the client to the agent's channel and acts on it at once,
    /// before the next frame, as the agent's datachannel does. Only stream data and
    /// acknowledgements are relayed to the agent: publication control and
    /// `channel_closed` are the service's to send, so a client's are ignored.
    async fn receive(&mut self, frame: &[u8]) -> Result<(), End> {
        match wire::message_type(frame) {
            Some(MessageType::InputStreamData | MessageType::Acknowledge) => {}
            other => {
                tracing::debug!(message_type = ?other, "agent ignored a frame it does not take from a client");
                return Ok(());
            }
        }
        let refused = self.channel.refused();
        if let Err(e) = self.channel.handle_frame(self.now(), frame) {
            tracing::debug!(error = %e, "agent ignored a frame");
        }
        if self.channel.refused() > refused {
            tracing::debug!("agent: handler not ready, input refused unacknowledged");
            Stats::add(&self.stats.refused_not_ready);
        }
        self.process_events().await
    }

    fn on_target(&mut self, n: std::io::Result<usize>, buf: &[u8]) -> Result<(), End> {
        match n {
            Ok(0) | Err(_) => {
                tracing::debug!(session = %self.session.id, "target closed the connection");
                self.tcp_read = None;
                self.target_open = None;
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
                self.pacer.sent(tokio::time::Instant::now());
            }
        }
        Ok(())
    }

    fn on_shell(&mut self, out: Option<Vec<u8>>) -> Result<(), End> {
        match out {
            Some(bytes) => self.outbox.push(&bytes),
            // The shell and everything it started have exited.
            None => {
                self.shell = None;
                self.tcp_write = None;
                self.draining = Some(Instant::now());
            }
        }
        Ok(())
    }

    fn on_mux(&mut self, out: Option<Out>) -> Result<(), End> {
        match out {
            Some(Out::Data(bytes)) => self.outbox.push(&bytes),
            // From another goroutine in the agent: not behind the paced data.
            Some(Out::Flag(flag)) => {
                let payload = flag.to_payload().to_vec();
                let _ = self
                    .channel
                    .send_unlimited(self.now(), PayloadType::Flag, payload);
            }
            Some(Out::Closed(why)) => return Err(End::Failed(why)),
            None => return Err(End::Failed("the smux server stopped".into())),
        }
        Ok(())
    }

    /// Sends smux or shell bytes: one message of at most 1024 bytes per pacing period,
    /// or all of them when pacing is off.
    fn emit_outbox(&mut self) {
        let now = self.now();
        loop {
            let chunk = self.outbox.take();
            if chunk.is_empty() {
                break;
            }
            let _ = self.channel.send_unlimited(now, PayloadType::Output, chunk);
            if self.pacer.is_paced() {
                self.pacer.sent(tokio::time::Instant::now());
                break;
            }
        }
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
                self.client_version = response.client_version;
                // HandshakeComplete first; only then does the plugin start (the agent's
                // sessionplugin.go runs Execute after PerformHandshake returned).
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
                if super::shell::is_shell_document(&self.session.document) {
                    self.start_shell()
                } else {
                    self.start_port();
                    Ok(())
                }
            }
            (PayloadType::Size, Phase::Established) => {
                if let Some(shell) = &self.shell {
                    shell.resize_json(&payload);
                }
                Ok(())
            }
            (PayloadType::Output, Phase::Established) => {
                if self.tcp_write.is_none() && self.forwarding() && self.mux_out.is_none() {
                    // Basic mode after DisconnectToPort: a new local connection. The
                    // agent re-dials inside its handler, before it takes the data.
                    let stream = dial(&self.dial_addr()).await.map_err(End::Failed)?;
                    self.install_target(stream);
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
                // The mux plugin ignores it.
                Some(Flag::DisconnectToPort) if self.mux_out.is_some() => Ok(()),
                Some(Flag::DisconnectToPort) if self.forwarding() => {
                    self.tcp_read = None;
                    self.tcp_write = None;
                    self.target_open = None;
                    Ok(())
                }
                // A standard-stream session ends with its one connection (the agent
                // fails it: its read from the closed port errors).
                Some(Flag::DisconnectToPort) => Err(End::Failed(
                    "Failed to read from port: the client disconnected".into(),
                )),
                _ => Ok(()),
            },
            // Data before the handshake completed is acknowledged and dropped, as the
            // agent does; anything else is ignored.
            _ => Ok(()),
        }
    }

    /// Starts the port session's plugin after HandshakeComplete: the target dial (or
    /// the smux server) takes `dial-delay-ms`, and until it is done the agent refuses
    /// input unacknowledged (`ErrHandlerNotReady`).
    fn start_port(&mut self) {
        let mux = self.check_port_mode();
        let counter = match (mux, self.forwarding()) {
            (true, _) => &self.stats.sessions_mux,
            (false, true) => &self.stats.sessions_basic,
            (false, false) => &self.stats.sessions_ssh,
        };
        Stats::add(counter);
        self.channel.set_accepting(false);
        let delay = Duration::from_millis(self.faults.dial_delay_ms);
        let addr = self.dial_addr();
        self.starting = Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if mux {
                Started::Mux
            } else {
                Started::Target(dial(&addr).await)
            }
        }));
    }

    fn on_started(&mut self, started: Started) -> Result<(), End> {
        self.starting = None;
        match started {
            Started::Target(Ok(stream)) => self.install_target(stream),
            Started::Target(Err(why)) => return Err(End::Failed(why)),
            Started::Mux => self.start_mux(),
        }
        self.channel.set_accepting(true);
        Ok(())
    }

    fn install_target(&mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        self.tcp_read = Some(r);
        self.tcp_write = Some(spawn_writer(w));
        self.target_open = Some(self.stats.target_opened());
    }

    fn check_port_mode(&self) -> bool {
        self.forwarding() && multiplexes(&self.session.agent_version, &self.client_version)
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
        let keepalive = smux_keepalive(&self.session.agent_version, &self.client_version);
        tracing::debug!(session = %self.session.id, keepalive, "smux server");
        let keepalive = keepalive.then_some(super::mux::Keepalive::SMUX);
        let server = super::mux::spawn(self.dial_addr(), keepalive, self.stats.clone());
        self.tcp_write = Some(server.input);
        self.mux_out = Some(server.output);
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
        self.request_handshake(now, super::shell::kms_actions(&key));
        Ok(())
    }

    /// Sends the HandshakeRequest; the client has the agent's 15 s to answer it.
    fn request_handshake(&mut self, now: Duration, actions: Vec<RequestedClientAction>) {
        let request = HandshakeRequest {
            agent_version: self.session.agent_version.clone(),
            requested_client_actions: actions,
        };
        let payload = serde_json::to_vec(&request).unwrap_or_default();
        let _ = self
            .channel
            .send_unlimited(now, PayloadType::HandshakeRequest, payload);
        self.phase = Phase::Handshaking(tokio::time::Instant::now() + HANDSHAKE_TIMEOUT);
    }

    fn start_shell(&mut self) -> Result<(), End> {
        let shell = super::shell::Shell::spawn()
            .map_err(|e| End::Failed(format!("cannot start the shell: {e}")))?;
        Stats::add(&self.stats.sessions_shell);
        self.tcp_write = Some(shell.input());
        self.shell = Some(shell);
        Ok(())
    }

    /// Writes what the channel has to send through the wire. Without a websocket it
    /// is discarded: `resume` resends everything unacknowledged.
    async fn transmit(&mut self) {
        while let Some(frame) = self.channel.poll_transmit() {
            if let Some(wire) = self.wire.as_mut() {
                wire.send(frame).await;
            }
            self.maybe_cut();
        }
        if let Some(wire) = self.wire.as_mut() {
            wire.flush().await;
            if wire.is_broken() {
                self.detach("websocket write failed");
            }
        }
    }

    /// Applies a pending `cut-after`: the connection is dropped without a close frame.
    fn maybe_cut(&mut self) {
        if self.wire.as_ref().is_some_and(Wire::is_cut) {
            tracing::debug!(session = %self.session.id, "fault: cutting the websocket");
            Stats::add(&self.stats.cuts);
            self.detach("fault injection cut the websocket");
        }
    }

    /// The client's websocket is gone: the session is Disconnected, not over. As the
    /// service tells the agent with `pause_publication`, the channel stops sending and
    /// retransmitting (so no retransmission limit runs out while nobody listens) until
    /// a resumed websocket attaches, or the session expires.
    fn detach(&mut self, why: &str) {
        if self.wire.take().is_some() {
            tracing::debug!(session = %self.session.id, why, "client away; waiting for a resume");
            self.session.set_status(Status::Disconnected);
            if let Ok(pause) =
                control_frame(MessageType::PausePublication, self.created(), Vec::new())
            {
                let _ = self.channel.handle_frame(self.now(), &pause);
            }
        }
    }

    /// Ends the session on the wire: the service's `channel_closed`, then the close.
    async fn close(&mut self, output: &str) {
        let Some(wire) = self.wire.take() else {
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
        let frame = service_frame(&MessageType::ChannelClosed, self.created(), &payload);
        Stats::add(&self.stats.channel_closed_sent);
        wire.close_with(WsMessage::Binary(frame.into())).await;
    }
}

/// Dials a port session's target, failing in the agent's words.
async fn dial(addr: &str) -> Result<TcpStream, String> {
    match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!(
            "Unable to start port forwarding: dial tcp {addr}: connect: {e}"
        )),
        Err(_) => Err(format!(
            "Unable to start port forwarding: dial tcp {addr}: i/o timeout"
        )),
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

/// The plugin's set-up, once it is done; pending while there is none.
async fn join(starting: &mut Option<JoinHandle<Started>>) -> Started {
    match starting {
        Some(task) => task
            .await
            .unwrap_or_else(|e| Started::Target(Err(format!("the agent's set-up failed: {e}")))),
        None => std::future::pending().await,
    }
}

/// Waits for the pacer, then does `f`.
async fn paced<F: std::future::Future>(at: Option<tokio::time::Instant>, f: F) -> F::Output {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
    f.await
}

/// The next thing a mux-mode server sends; pending without one. `None`: it ended.
async fn mux_next(rx: &mut Option<mpsc::Receiver<Out>>) -> Option<Out> {
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

/// Whether a `LocalPortForwarding` session runs in mux mode: agents after 3.0.196.0
/// serve clients from 1.1.70 on with smux; everything else is basic mode (one TCP
/// connection at a time).
fn multiplexes(agent_version: &str, client_version: &str) -> bool {
    version_cmp(client_version, MUX_CLIENT_VERSION).is_some_and(|o| o.is_ge())
        && version_cmp(agent_version, MUX_AGENT_VERSION).is_some_and(|o| o.is_gt())
}

/// Whether the smux server sends and expects keepalives: old agents always do, newer
/// ones unless the client is newer than 1.2.331.0.
fn smux_keepalive(agent_version: &str, client_version: &str) -> bool {
    let newer = |v: &str, than: &str| version_cmp(v, than).is_some_and(|o| o.is_gt());
    !(newer(agent_version, KEEPALIVE_OFF_AGENT_VERSION)
        && newer(client_version, KEEPALIVE_OFF_CLIENT_VERSION))
}

/// Compares dotted numeric versions, missing components counting as 0 (the agent's
/// `versionutil.Compare`); `None` if either is unreadable.
fn version_cmp(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let parse = |v: &str| {
        v.split('.')
            .map(|p| p.parse::<u64>().ok())
            .collect::<Option<Vec<_>>>()
    };
    let (mut a, mut b) = (parse(a)?, parse(b)?);
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    Some(a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn versions_compare_numerically_with_missing_parts_as_zero() {
        assert_eq!(version_cmp("1.1.70", "1.1.70"), Some(Ordering::Equal));
        assert_eq!(version_cmp("1.1.70.0", "1.1.70"), Some(Ordering::Equal));
        assert_eq!(version_cmp("1.2.650.0", "1.1.70"), Some(Ordering::Greater));
        assert_eq!(version_cmp("1.1.61.0", "1.1.70"), Some(Ordering::Less));
        assert_eq!(version_cmp("1.1.x", "1.1.70"), None);
        assert_eq!(version_cmp("", "1.1.70"), None);
    }

    #[test]
    fn the_agents_modes_follow_both_versions() {
        assert!(multiplexes("3.3.1611.0", "1.2.707.0"));
        assert!(multiplexes("3.0.222.0", "1.1.70"));
        assert!(
            !multiplexes("3.0.196.0", "1.2.707.0"),
            "no smux in old agents"
        );
        assert!(
            !multiplexes("3.3.1611.0", "1.1.61.0"),
            "nor for old clients"
        );
        assert!(!multiplexes("3.3.1611.0", "junk"));

        assert!(!smux_keepalive("3.3.1611.0", "1.2.707.0"));
        assert!(
            smux_keepalive("3.1.1511.0", "1.2.707.0"),
            "agents up to 3.1.1511.0"
        );
        assert!(
            smux_keepalive("3.3.1611.0", "1.2.331.0"),
            "clients up to 1.2.331.0"
        );
        assert!(smux_keepalive("3.0.222.0", "1.2.0.0"));
    }
}
