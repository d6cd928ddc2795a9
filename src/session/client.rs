//! The client's session on top of the stream engine: the OpenDataChannel text frame,
//! answering the agent's handshake, holding user input back until the agent will accept
//! it, turning agent stream messages into output/flag events, and reconnect (resume).
//! Like the engine it is sans-IO; a driver owns the websocket, stdin/stdout and clocks.

use std::collections::VecDeque;
use std::time::Duration;

use uuid::Uuid;

use super::channel::{self, Channel, ChannelConfig, ChannelError, Role, SendError};
use super::codec::{PayloadType, MAX_STREAM_PAYLOAD};
use super::messages::{
    ActionStatus, Flag, HandshakeComplete, HandshakeRequest, HandshakeResponse,
    OpenDataChannelInput, PortProperties, ProcessedClientAction, RequestedClientAction,
    SessionTypeRequest, SizeData, ACTION_SESSION_TYPE, OPEN_DATA_CHANNEL_SCHEMA_VERSION,
};
use crate::text::sanitize;

/// The plugin version we claim in OpenDataChannel, and in the HandshakeResponse of
/// every session but multiplexed port forwarding.
///
/// The agent gates features on the HandshakeResponse's version. It picks the
/// multiplexed (smux) port mode only for `LocalPortForwarding` documents *and*
/// ClientVersion >= 1.1.70; everything else gets the basic mode: one TCP connection
/// whose bytes are the Output payloads, which is what an SSH ProxyCommand needs.
/// 1.1.61.0 is the last session-manager-plugin release before 1.2.7.0 brought mux, and
/// it already had everything the basic mode uses (handshake 1.1.17.0, SSH sessions
/// 1.1.23.0, the DisconnectToPort and TerminateSession flags 1.1.33.0/1.1.35.0), so
/// claiming it is truthful. Port forwarding to an agent that multiplexes claims
/// [`MUX_CLIENT_VERSION`] instead (see `ClientSession::claimed_client_version`).
pub const CLIENT_VERSION: &str = "1.1.61.0";

/// The version claimed when we implement smux for `LocalPortForwarding` (the agent
/// multiplexes for clients >= 1.1.70) and need no smux keepalives (> 1.2.331.0).
pub const MUX_CLIENT_VERSION: &str = "1.2.707.0";

/// Agents newer than this honour the in-band TerminateSession flag; older ones need
/// the TerminateSession API (reference plugin behaviour).
pub const TERMINATE_FLAG_MIN_AGENT_VERSION: &str = "2.3.722.0";

/// Agents newer than this multiplex `LocalPortForwarding` sessions with smux (the
/// plugin's `TCPMultiplexingSupportedAfterThisAgentVersion`).
pub const MUX_MIN_AGENT_VERSION: &str = "3.0.196.0";

/// Whether an agent of this version (from its HandshakeRequest) multiplexes port
/// forwarding: the plugin's rule, strictly greater than [`MUX_MIN_AGENT_VERSION`] with
/// the same number of components. A malformed version means the legacy basic mode.
pub fn agent_multiplexes(agent_version: &str) -> bool {
    version_greater(agent_version, MUX_MIN_AGENT_VERSION)
}

/// What the agent said this session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionType {
    /// A port session; the properties tell standard-stream (no `type`, e.g.
    /// AWS-StartSSHSession) from `LocalPortForwarding`.
    Port(PortProperties),
    /// `Standard_Stream`: the default shell. Also assumed when output arrives with no
    /// handshake, as the reference plugin does.
    StandardStream,
    InteractiveCommands,
    NonInteractiveCommands,
}

impl SessionType {
    fn from_request(req: &SessionTypeRequest) -> Option<Self> {
        match req.session_type.as_str() {
            "Port" => {
                // Lenient: unknown or odd properties still make a port session.
                let props = serde_json::from_value(req.properties.clone()).unwrap_or_default();
                Some(Self::Port(props))
            }
            "Standard_Stream" => Some(Self::StandardStream),
            "InteractiveCommands" => Some(Self::InteractiveCommands),
            "NonInteractiveCommands" => Some(Self::NonInteractiveCommands),
            _ => None,
        }
    }

    /// A `LocalPortForwarding` port session (the forwarding documents), as opposed to
    /// the standard-stream port session of AWS-StartSSHSession.
    pub fn is_port_forwarding(&self) -> bool {
        matches!(self, Self::Port(p) if p.kind.as_deref() == Some(LOCAL_PORT_FORWARDING))
    }

    /// The agent's name for it, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Port(p) if p.kind.as_deref() == Some(LOCAL_PORT_FORWARDING) => {
                "Port (LocalPortForwarding)"
            }
            Self::Port(_) => "Port",
            Self::StandardStream => "Standard_Stream",
            Self::InteractiveCommands => "InteractiveCommands",
            Self::NonInteractiveCommands => "NonInteractiveCommands",
        }
    }
}

/// The `type` of port forwarding documents' properties.
pub const LOCAL_PORT_FORWARDING: &str = "LocalPortForwarding";

/// What the driver should act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The agent finished the handshake; queued input is now being sent.
    HandshakeComplete {
        /// Shown to the user when non-empty.
        customer_message: String,
        time_to_complete: Duration,
    },
    /// We could not accept what the agent asked for in its handshake (or could not read
    /// it). The agent will cancel the session; a `Closed` usually follows.
    HandshakeFailed(String),
    /// Output bytes (PayloadType Output): write to stdout verbatim.
    Data(Vec<u8>),
    /// Standard-error bytes (NonInteractiveCommands).
    Stderr(Vec<u8>),
    /// The `EXIT_CODE: n` text of a NonInteractiveCommands session.
    ExitCode(String),
    /// A flag from the agent, e.g. `ConnectToPortError`.
    Flag(Flag),
    /// The session is over. `reason` is the service's text and may be empty.
    Closed { reason: String },
    /// `can_send` turned true again.
    Writable,
    /// A message was never acknowledged; the driver should terminate the session.
    RetransmitLimitReached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing from the agent yet: a handshake or shell output may come first.
    AwaitingAgent,
    /// HandshakeRequest answered, HandshakeComplete not yet seen.
    Handshaking,
    /// The agent accepts input.
    Established,
}

/// The client end of one session, across reconnects.
#[derive(Debug)]
pub struct ClientSession {
    channel: Channel,
    client_id: Uuid,
    phase: Phase,
    session_type: Option<SessionType>,
    agent_version: Option<String>,
    /// Input queued before the agent accepts it: while its handshake is in progress it
    /// acks and discards any other stream message.
    held: VecDeque<(PayloadType, Vec<u8>)>,
    send_buffer_limit: usize,
    /// `can_send` returned false since the last `Writable`.
    blocked: bool,
    events: VecDeque<Event>,
    /// What we tell the agent we are; it decides modes from it.
    client_version: &'static str,
    /// What the HandshakeResponse claimed (see `claimed_client_version`).
    claimed_version: &'static str,
}

impl ClientSession {
    /// A session with default tunables and a fresh ClientId.
    /// `unix_epoch_ms` is the Unix time in ms at the driver's time zero.
    pub fn new(unix_epoch_ms: u64) -> Self {
        Self::with_config(
            ChannelConfig::new(Role::Client, unix_epoch_ms),
            Uuid::new_v4(),
        )
    }

    /// `config.role` is forced to `Client`.
    pub fn with_config(mut config: ChannelConfig, client_id: Uuid) -> Self {
        config.role = Role::Client;
        let send_buffer_limit = config.send_buffer_limit;
        Self {
            channel: Channel::new(config),
            client_id,
            phase: Phase::AwaitingAgent,
            session_type: None,
            agent_version: None,
            held: VecDeque::new(),
            send_buffer_limit,
            blocked: false,
            events: VecDeque::new(),
            client_version: CLIENT_VERSION,
            claimed_version: CLIENT_VERSION,
        }
    }

    /// The client version for OpenDataChannel and for sessions other than port
    /// forwarding. Only claim what is implemented: the agent picks modes from it.
    pub fn set_client_version(&mut self, version: &'static str) {
        self.client_version = version;
        self.claimed_version = version;
    }

    /// The ClientVersion of our HandshakeResponse, which is what the agent decides
    /// modes from (`datachannel.go` keeps the response's, not OpenDataChannel's). For
    /// port forwarding it follows the HandshakeRequest's AgentVersion: the smux version
    /// when [`agent_multiplexes`], else the basic one, so both ends pick the same mode.
    pub fn claimed_client_version(&self) -> &'static str {
        self.claimed_version
    }

    /// The ClientId sent on every (re)connection of this session.
    pub fn client_id(&self) -> Uuid {
        self.client_id
    }

    /// The JSON for the text frame that must be the first message on each new websocket,
    /// with a fresh RequestId. The result contains the token: never log it.
    pub fn open_data_channel(&self, token: &str) -> String {
        let input = OpenDataChannelInput {
            message_schema_version: OPEN_DATA_CHANNEL_SCHEMA_VERSION.to_owned(),
            request_id: Uuid::new_v4().hyphenated().to_string(),
            token_value: token.to_owned(),
            client_id: self.client_id.hyphenated().to_string(),
            client_version: self.client_version.to_owned(),
        };
        // Serialising plain strings cannot fail.
        serde_json::to_string(&input).unwrap_or_default()
    }

    /// Processes one received websocket message (binary or text).
    pub fn handle_frame(&mut self, now: Duration, frame: &[u8]) -> Result<(), ChannelError> {
        let result = self.channel.handle_frame(now, frame);
        self.process_channel_events(now);
        result
    }

    /// Sends input bytes (stdin / TCP), chunked to the 1024-byte payloads MGS is known to
    /// accept. Refused with `Full` while `can_send` is false; the limit is checked once
    /// per call, so a large call may overshoot it by its own size.
    pub fn send_data(&mut self, now: Duration, data: &[u8]) -> Result<(), SendError> {
        if self.channel.is_closed() {
            return Err(SendError::Closed);
        }
        if !self.can_send() {
            self.blocked = true;
            return Err(SendError::Full);
        }
        for chunk in data.chunks(MAX_STREAM_PAYLOAD) {
            self.enqueue(now, PayloadType::Output, chunk.to_vec())?;
        }
        if !self.can_send() {
            self.blocked = true;
        }
        Ok(())
    }

    /// Sends a flag (e.g. `TerminateSession`, `DisconnectToPort`). It is ordered after
    /// any input already sent and is not subject to the buffer limit.
    pub fn send_flag(&mut self, now: Duration, flag: Flag) -> Result<(), SendError> {
        self.enqueue(now, PayloadType::Flag, flag.to_payload().to_vec())
    }

    /// Sends the terminal size (shell sessions).
    pub fn send_size(&mut self, now: Duration, cols: u32, rows: u32) -> Result<(), SendError> {
        let json = serde_json::to_vec(&SizeData { cols, rows }).unwrap_or_default();
        self.enqueue(now, PayloadType::Size, json)
    }

    /// Whether the agent understands the in-band TerminateSession flag; if not, call the
    /// TerminateSession API instead.
    pub fn supports_terminate_flag(&self) -> bool {
        self.agent_version
            .as_deref()
            .is_some_and(|v| version_greater(v, TERMINATE_FLAG_MIN_AGENT_VERSION))
    }

    /// Whether `send_data` will accept more input. Stop reading stdin while false and
    /// resume on `Event::Writable`.
    pub fn can_send(&self) -> bool {
        !self.channel.is_closed()
            && self.held.len() + self.channel.unacked_len() < self.send_buffer_limit
    }

    /// Next binary frame to write to the websocket.
    pub fn poll_transmit(&mut self) -> Option<bytes::Bytes> {
        self.channel.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called, if at all.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.channel.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Duration) {
        self.channel.handle_timeout(now);
        self.process_channel_events(now);
    }

    /// After re-dialling the websocket and writing `open_data_channel(new_token)` as its
    /// first frame: keeps all sequence state and resends everything unacknowledged.
    pub fn resume(&mut self, now: Duration) {
        self.channel.resume(now);
    }

    /// True when everything sent has been acknowledged and nothing is held back; wait
    /// for this (bounded) before sending TerminateSession at the end of input.
    pub fn is_flushed(&self) -> bool {
        self.held.is_empty() && self.channel.is_flushed()
    }

    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    pub fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }

    pub fn session_type(&self) -> Option<&SessionType> {
        self.session_type.as_ref()
    }

    /// The agent's version from its HandshakeRequest, if there was one.
    pub fn agent_version(&self) -> Option<&str> {
        self.agent_version.as_deref()
    }

    /// The underlying engine, for diagnostics (RTT, retransmissions).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    fn enqueue(
        &mut self,
        now: Duration,
        payload_type: PayloadType,
        payload: Vec<u8>,
    ) -> Result<(), SendError> {
        if self.channel.is_closed() {
            return Err(SendError::Closed);
        }
        if payload.is_empty() {
            return Ok(());
        }
        if self.phase == Phase::Established {
            self.channel.send_unlimited(now, payload_type, payload)?;
        } else {
            self.held.push_back((payload_type, payload));
        }
        Ok(())
    }

    fn process_channel_events(&mut self, now: Duration) {
        while let Some(event) = self.channel.poll_event() {
            match event {
                channel::Event::Received {
                    payload_type,
                    payload,
                    ..
                } => self.on_stream_message(now, payload_type, payload),
                channel::Event::Closed(closed) => {
                    self.held.clear();
                    self.events.push_back(Event::Closed {
                        reason: closed.output,
                    });
                }
                // Only an agent-role channel pauses; ours ignores publication control.
                channel::Event::Paused | channel::Event::Resumed => {}
                // Writability also depends on `held`; it is tracked below instead.
                channel::Event::Writable => {}
                channel::Event::RetransmitLimitReached { .. } => {
                    self.events.push_back(Event::RetransmitLimitReached)
                }
            }
        }
        if self.blocked && self.can_send() {
            self.blocked = false;
            self.events.push_back(Event::Writable);
        }
    }

    fn on_stream_message(&mut self, now: Duration, payload_type: PayloadType, payload: Vec<u8>) {
        match payload_type {
            PayloadType::HandshakeRequest => self.on_handshake_request(now, &payload),
            PayloadType::HandshakeComplete => self.on_handshake_complete(now, &payload),
            PayloadType::EncChallengeRequest => self.events.push_back(Event::HandshakeFailed(
                "the agent sent a KMS encryption challenge, which ec2ssh does not support".into(),
            )),
            PayloadType::Output => {
                self.output_arrived(now);
                self.events.push_back(Event::Data(payload));
            }
            PayloadType::StdErr => {
                self.output_arrived(now);
                self.events.push_back(Event::Stderr(payload));
            }
            PayloadType::ExitCode => {
                self.output_arrived(now);
                let text = String::from_utf8_lossy(&payload).into_owned();
                self.events.push_back(Event::ExitCode(text));
            }
            PayloadType::Flag => {
                if let Some(flag) = Flag::from_payload(&payload) {
                    self.events.push_back(Event::Flag(flag));
                }
            }
            // Other types are not sent to clients; the engine has acked them already.
            _ => {}
        }
    }

    /// Output before any handshake means a shell session without one: the agent
    /// accepts input from now on.
    fn output_arrived(&mut self, now: Duration) {
        if self.phase == Phase::AwaitingAgent {
            self.session_type = Some(SessionType::StandardStream);
            self.establish(now);
        }
    }

    fn on_handshake_request(&mut self, now: Duration, payload: &[u8]) {
        let request: HandshakeRequest = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                // Without the action list there is nothing sensible to answer; the agent
                // will time the handshake out.
                self.events.push_back(Event::HandshakeFailed(format!(
                    "unreadable HandshakeRequest: {e}"
                )));
                return;
            }
        };
        self.agent_version = Some(request.agent_version.clone());
        let actions: Vec<ProcessedClientAction> = request
            .requested_client_actions
            .iter()
            .map(|a| self.process_action(a))
            .collect();
        let errors: Vec<String> = actions
            .iter()
            .filter(|a| a.action_status != ActionStatus::Success)
            .map(|a| a.error.clone())
            .collect();
        self.claimed_version = match &self.session_type {
            Some(t) if t.is_port_forwarding() => {
                if agent_multiplexes(&request.agent_version) {
                    MUX_CLIENT_VERSION
                } else {
                    CLIENT_VERSION
                }
            }
            _ => self.client_version,
        };
        let response = HandshakeResponse {
            client_version: self.claimed_version.to_owned(),
            processed_client_actions: actions,
            errors: (!errors.is_empty()).then(|| errors.clone()),
        };
        let json = serde_json::to_vec(&response).unwrap_or_default();
        // The handshake must not queue behind user input, hence no limit.
        if self
            .channel
            .send_unlimited(now, PayloadType::HandshakeResponse, json)
            .is_ok()
        {
            self.phase = Phase::Handshaking;
        }
        if !errors.is_empty() {
            self.events
                .push_back(Event::HandshakeFailed(errors.join("; ")));
        }
    }

    fn process_action(&mut self, action: &RequestedClientAction) -> ProcessedClientAction {
        let (status, error) = if action.action_type == ACTION_SESSION_TYPE {
            let request: SessionTypeRequest =
                serde_json::from_value(action.action_parameters.clone()).unwrap_or_default();
            match SessionType::from_request(&request) {
                Some(t) => {
                    self.session_type = Some(t);
                    (ActionStatus::Success, String::new())
                }
                None => (
                    ActionStatus::Failed,
                    format!(
                        "session type \"{}\" is not supported by ec2ssh",
                        sanitize(&request.session_type)
                    ),
                ),
            }
        } else {
            // KMSEncryption and anything newer. The reference plugin misplaces the 3 in
            // ActionResult; we put it where the agent reads it.
            // The agent's text is untrusted: it ends up on the user's terminal.
            (
                ActionStatus::Unsupported,
                format!(
                    "{} is not supported by ec2ssh",
                    sanitize(&action.action_type)
                ),
            )
        };
        ProcessedClientAction {
            action_type: action.action_type.clone(),
            action_status: status,
            action_result: serde_json::Value::Null,
            error,
        }
    }

    fn on_handshake_complete(&mut self, now: Duration, payload: &[u8]) {
        // Only the message text is of interest; a malformed body still completes.
        let complete: HandshakeComplete = serde_json::from_slice(payload).unwrap_or_default();
        self.establish(now);
        let nanos = u64::try_from(complete.handshake_time_to_complete).unwrap_or(0);
        self.events.push_back(Event::HandshakeComplete {
            customer_message: complete.customer_message,
            time_to_complete: Duration::from_nanos(nanos),
        });
    }

    fn establish(&mut self, now: Duration) {
        self.phase = Phase::Established;
        while let Some((payload_type, payload)) = self.held.pop_front() {
            // Held input was already counted against the limit when accepted.
            if self
                .channel
                .send_unlimited(now, payload_type, payload)
                .is_err()
            {
                self.held.clear();
                break;
            }
        }
    }
}

/// `a > b` for dotted numeric versions, as the reference plugin compares them: both must
/// have the same number of numeric components, otherwise the answer is "no" (which
/// selects the legacy behaviour).
pub fn version_greater(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Option<Vec<u64>> { v.split('.').map(|p| p.parse().ok()).collect() };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) if x.len() == y.len() => x > y,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
