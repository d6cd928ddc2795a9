//! The tokio driver: binds a [`ClientSession`] to the data-channel websocket, an input
//! stream and an output writer, and owns the clocks (retransmission, handshake deadline,
//! keepalive) and reconnection with `ResumeSession`.
//!
//! Input arrives as chunks on a channel, so the caller decides where bytes come from (a
//! stdin thread for `ec2ssh proxy`, memory in tests); the channel closing is end of
//! input. Output bytes are written verbatim, in order, exactly once.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use rand::Rng;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::client::{ClientSession, Event, SessionType};
use super::messages::Flag;
use crate::aws::AwsError;
use crate::net::websocket::{self, DialError};
use crate::net::ProxyError;
use crate::text::sanitize;

type Ws = websocket::WebSocket;

/// Timing and retry knobs; `Default` gives the values ec2ssh uses.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// From connecting until the session is established (HandshakeComplete, or a
    /// shell's first output); `None` waits as long as it takes, as the plugin does.
    pub handshake_timeout: Option<Duration>,
    /// While not established, when to tell the user (through `tell`) that the agent
    /// has not answered yet.
    pub waiting_notice: Option<Duration>,
    /// After end of input, how long unacknowledged data may take to be delivered.
    pub drain_timeout: Duration,
    /// After the in-band TerminateSession flag, how long to wait for `channel_closed`.
    pub close_timeout: Duration,
    /// Websocket ping interval.
    pub keepalive: Duration,
    /// Silence (no frame, not even a pong) after which the connection counts as broken.
    pub dead_after: Duration,
    /// Dial attempts per (re)connection: exponential back-off from 100–199 ms, doubling,
    /// capped at 5 s, as the reference plugin does.
    pub connect_attempts: u32,
    /// The ClientVersion we claim (it selects the agent's modes).
    pub client_version: &'static str,
    /// How a line for the user (the waiting notice, the agent's customer message,
    /// already sanitised) reaches them; the default drops it. The caller decides:
    /// e.g. [`crate::terminal::say`].
    pub tell: fn(&str),
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            handshake_timeout: Some(PORT_HANDSHAKE_TIMEOUT),
            waiting_notice: Some(WAITING_NOTICE),
            drain_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(2),
            keepalive: Duration::from_secs(30),
            dead_after: Duration::from_secs(75),
            connect_attempts: 5,
            client_version: super::client::CLIENT_VERSION,
            tell: |_| {},
        }
    }
}

/// How long a port session may take to be established. The plugin waits without a
/// limit; ec2ssh's port sessions often run unattended (ProxyCommand under scp, pushes
/// to many hosts), so a dead agent must end in an error. A live agent answers or
/// fails the session well within this: it gives up on its own data channel after
/// about 15 s of retries and on our HandshakeResponse after another 15 s.
pub const PORT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// When the user hears that the agent is slow to answer.
pub const WAITING_NOTICE: Duration = Duration::from_secs(4);

impl DriverConfig {
    /// For interactive shells: no deadline at all (a slow login profile or a cold
    /// PowerShell may take long before the first output; the user decides, with
    /// Ctrl-C), and the notice after a few seconds.
    pub fn shell() -> Self {
        DriverConfig {
            handshake_timeout: None,
            ..DriverConfig::default()
        }
    }
}

/// How a tunnel that did not fail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The service closed the channel (the target closed its connection, or the session
    /// was terminated or timed out). The session is over; nothing is left to clean up.
    Closed { reason: String },
    /// Input ended and everything was delivered (or the drain time ran out). If
    /// `terminated` is false the session may still be open: call `TerminateSession`.
    InputDone { terminated: bool, drained: bool },
    /// The reader of our output went away (ssh exited). Call `TerminateSession`.
    OutputClosed,
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot open the data channel {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The proxy in the way failed or refused (it says which, and what to do).
    #[error(transparent)]
    Proxy(ProxyError),
    #[error("the agent did not complete the session handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("the session handshake failed: {0}")]
    Handshake(String),
    #[error("the data channel broke and could not be resumed: {0}")]
    Lost(String),
    #[error("the session timed out while its data channel was down; Session Manager no longer resumes it")]
    Expired,
    #[error(transparent)]
    Resume(#[from] AwsError),
    #[error("the agent stopped acknowledging data (message {0} was never acknowledged)")]
    Unacknowledged(i64),
    #[error("cannot write the tunnel output: {0}")]
    Output(#[source] std::io::Error),
}

/// What goes to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes for the session (PayloadType Output).
    Data(Vec<u8>),
    /// A flag, e.g. `DisconnectToPort` when a basic-mode forwarded connection closes.
    Flag(Flag),
    /// The terminal's size (shell sessions).
    Size { cols: u32, rows: u32 },
}

/// What the agent said besides the output bytes, for callers that care (`notices`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The agent takes input now: its handshake finished, or a shell's first output
    /// arrived. `agent_version` is the HandshakeRequest's, `session_type` what the
    /// agent said the session is (`None` only if it never said).
    Established {
        agent_version: Option<String>,
        session_type: Option<SessionType>,
    },
    /// A flag from the agent, e.g. `ConnectToPortError`.
    Flag(Flag),
    /// The `EXIT_CODE: n` text of a NonInteractiveCommands session.
    ExitCode(String),
}

/// Where to dial and the token for the first connection.
#[derive(Clone)]
pub struct Dial {
    pub stream_url: String,
    pub token: String,
}

// Hand-written so the token can never reach a log through `{:?}`.
impl std::fmt::Debug for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dial")
            .field("stream_url", &self.stream_url)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Something that can fetch a fresh token after the websocket broke (`ResumeSession`).
/// `Ok(None)`: the session is gone.
pub trait Resume {
    fn resume(&self) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
}

/// Runs the tunnel until the service closes it, input ends (the channel closes), or
/// it fails. Input carries bytes, flags and window sizes; the agent's flags, exit code
/// and handshake are reported on `notices`. Standard-error output goes to `output`
/// too, as the reference plugin does for shells.
pub async fn run<O, R>(
    dial: Dial,
    mut input: mpsc::Receiver<Input>,
    output: O,
    notices: Option<mpsc::UnboundedSender<Notice>>,
    resumer: &R,
    config: &DriverConfig,
) -> Result<Finish, TunnelError>
where
    O: AsyncWrite + Unpin,
    R: Resume,
{
    let epoch = Instant::now();
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1);
    let mut session = ClientSession::new(unix_ms);
    session.set_client_version(config.client_version);
    let url = dial.stream_url.clone();
    let ws = connect(&url, &session, &dial.token, config, None::<&R>).await?;
    tracing::debug!(%url, "data channel open");

    let started = tokio::time::Instant::now();
    let mut tunnel = Tunnel {
        session,
        ws,
        url,
        epoch,
        config,
        output,
        notices,
        established: false,
        last_heard: Instant::now(),
        input_open: true,
        input_ended: None,
        flag_sent: None,
        out: Vec::new(),
    };
    let handshake_deadline = config.handshake_timeout.map(|t| started + t);
    let mut waiting_notice = config.waiting_notice.map(|t| started + t);
    let mut keepalive = tokio::time::interval(config.keepalive);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let now = epoch.elapsed();
        let timer = tunnel
            .session
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(epoch + t));
        let reading = tunnel.input_open && tunnel.session.can_send();
        let waiting = !tunnel.established;
        let wake = tokio::select! {
            frame = tunnel.ws.next() => Wake::Frame(frame),
            item = input.recv(), if reading => Wake::Input(item),
            _ = sleep_until(timer), if timer.is_some() => Wake::Timer,
            _ = sleep_until(handshake_deadline), if handshake_deadline.is_some() && waiting => {
                Wake::HandshakeDeadline
            }
            _ = sleep_until(waiting_notice), if waiting_notice.is_some() && waiting => {
                Wake::WaitingNotice
            }
            _ = keepalive.tick() => Wake::Keepalive,
        };
        let mut broken = false;
        match wake {
            Wake::Frame(frame) => broken = tunnel.read(now, frame),
            Wake::Input(item) => tunnel.take_input(now, item),
            Wake::Timer => tunnel.session.handle_timeout(now),
            Wake::HandshakeDeadline => {
                return Err(TunnelError::HandshakeTimeout(
                    config.handshake_timeout.unwrap_or_default(),
                ));
            }
            Wake::WaitingNotice => {
                waiting_notice = None;
                (config.tell)(
                    "the SSM agent has not answered yet; still waiting (Ctrl-C gives up)",
                );
            }
            Wake::Keepalive => broken = !tunnel.keep_alive().await,
        }
        if let Some(finish) = tunnel.act().await? {
            return Ok(finish);
        }
        if let Some(finish) = tunnel.after_input().await {
            return Ok(finish);
        }
        if !broken {
            broken = !flush_ws(&mut tunnel.ws, &mut tunnel.session).await;
        }
        if broken {
            tunnel.ws = reconnect(&tunnel.url, &mut tunnel.session, resumer, config, epoch).await?;
            tunnel.last_heard = Instant::now();
        }
    }
}

/// What woke the driver up.
enum Wake {
    Frame(Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>),
    Input(Option<Input>),
    Timer,
    HandshakeDeadline,
    WaitingNotice,
    Keepalive,
}

/// One tunnel's state between wake-ups.
struct Tunnel<'c, O> {
    session: ClientSession,
    ws: Ws,
    url: String,
    epoch: Instant,
    config: &'c DriverConfig,
    output: O,
    notices: Option<mpsc::UnboundedSender<Notice>>,
    established: bool,
    last_heard: Instant,
    input_open: bool,
    input_ended: Option<Instant>,
    /// When the in-band TerminateSession flag went out.
    flag_sent: Option<Instant>,
    /// Output gathered from one wake-up's events, written at once.
    out: Vec<u8>,
}

impl<O: AsyncWrite + Unpin> Tunnel<'_, O> {
    fn notify(&self, n: Notice) {
        if let Some(tx) = &self.notices {
            let _ = tx.send(n);
        }
    }

    /// Feeds a websocket message, and whatever else already arrived (so acks and
    /// output leave in batches). True when the websocket is broken.
    fn read(
        &mut self,
        now: Duration,
        frame: Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>,
    ) -> bool {
        match frame {
            Some(Ok(WsMessage::Binary(b))) => {
                self.last_heard = Instant::now();
                feed(&mut self.session, now, &b);
                while let Some(Some(Ok(more))) = futures::FutureExt::now_or_never(self.ws.next()) {
                    match &more {
                        WsMessage::Binary(b) => feed(&mut self.session, self.epoch.elapsed(), b),
                        WsMessage::Text(t) => {
                            feed(&mut self.session, self.epoch.elapsed(), t.as_bytes())
                        }
                        WsMessage::Close(_) => return true,
                        _ => {}
                    }
                }
                false
            }
            Some(Ok(WsMessage::Text(t))) => {
                self.last_heard = Instant::now();
                feed(&mut self.session, now, t.as_bytes());
                false
            }
            Some(Ok(WsMessage::Close(reason))) => {
                tracing::debug!(?reason, "the service closed the websocket");
                true
            }
            Some(Ok(_)) => {
                self.last_heard = Instant::now();
                false
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "websocket read failed");
                true
            }
            None => true,
        }
    }

    fn take_input(&mut self, now: Duration, item: Option<Input>) {
        let Some(item) = item else {
            self.input_open = false;
            self.input_ended = Some(Instant::now());
            tracing::debug!("end of input; draining");
            return;
        };
        let sent = match item {
            Input::Data(bytes) => self.session.send_data(now, &bytes),
            Input::Flag(flag) => self.session.send_flag(now, flag),
            Input::Size { cols, rows } => self.session.send_size(now, cols, rows),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "input refused");
        }
    }

    /// A websocket ping, unless the service has been silent too long. False when the
    /// connection counts as broken.
    async fn keep_alive(&mut self) -> bool {
        if self.last_heard.elapsed() > self.config.dead_after {
            tracing::debug!("no traffic from the service; reconnecting");
            return false;
        }
        if let Err(e) = self.ws.send(WsMessage::Ping("keepalive".into())).await {
            tracing::debug!(error = %e, "keepalive failed");
            return false;
        }
        true
    }

    /// Acts on what the session produced: output written once, notices sent, the
    /// user told; the finish when the service closed the channel.
    async fn act(&mut self) -> Result<Option<Finish>, TunnelError> {
        self.out.clear();
        let mut closed = None;
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Data(bytes) | Event::Stderr(bytes) => self.out.extend_from_slice(&bytes),
                Event::Closed { reason } => {
                    closed = Some(reason);
                    break;
                }
                Event::HandshakeFailed(why) => return Err(TunnelError::Handshake(why)),
                Event::RetransmitLimitReached => {
                    return Err(TunnelError::Unacknowledged(
                        self.session.channel().expected_sequence(),
                    ))
                }
                Event::HandshakeComplete {
                    customer_message,
                    time_to_complete,
                } => {
                    tracing::debug!(agent = ?self.session.agent_version(), ?time_to_complete, "handshake complete");
                    // The agent's text is untrusted: it goes to the user's terminal.
                    let message = customer_message.trim();
                    if !message.is_empty() {
                        (self.config.tell)(&sanitize(message));
                    }
                }
                Event::Flag(flag) => self.notify(Notice::Flag(flag)),
                Event::ExitCode(text) => self.notify(Notice::ExitCode(text)),
                other => tracing::trace!(?other, "session event"),
            }
        }
        if !self.established && self.session.is_established() {
            self.established = true;
            self.notify(Notice::Established {
                agent_version: self.session.agent_version().map(String::from),
                session_type: self.session.session_type().cloned(),
            });
        }
        if !self.out.is_empty() {
            if let Err(e) = write_out(&mut self.output, &self.out).await {
                return output_failed(e).map(Some);
            }
        }
        if let Some(reason) = closed {
            let _ = self.ws.close(None).await;
            return Ok(Some(Finish::Closed { reason }));
        }
        Ok(None)
    }

    /// After end of input: drain, then say goodbye in-band when the agent understands
    /// it; the finish once that is done or timed out.
    async fn after_input(&mut self) -> Option<Finish> {
        let ended = self.input_ended?;
        let drained = self.session.is_flushed();
        if self.flag_sent.is_none() && (drained || ended.elapsed() > self.config.drain_timeout) {
            if !drained {
                tracing::warn!(
                    unacked = self.session.channel().unacked_len(),
                    "input ended but not all of it was acknowledged in time"
                );
            }
            if !self.session.supports_terminate_flag() {
                flush_ws(&mut self.ws, &mut self.session).await;
                return Some(Finish::InputDone {
                    terminated: false,
                    drained,
                });
            }
            let _ = self
                .session
                .send_flag(self.epoch.elapsed(), Flag::TerminateSession);
            self.flag_sent = Some(Instant::now());
        }
        match self.flag_sent {
            Some(sent) if sent.elapsed() > self.config.close_timeout => Some(Finish::InputDone {
                terminated: false,
                drained: self.session.is_flushed(),
            }),
            _ => None,
        }
    }
}

async fn write_out<O: AsyncWrite + Unpin>(output: &mut O, bytes: &[u8]) -> std::io::Result<()> {
    output.write_all(bytes).await?;
    output.flush().await
}

fn output_failed(e: std::io::Error) -> Result<Finish, TunnelError> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(Finish::OutputClosed)
    } else {
        Err(TunnelError::Output(e))
    }
}

fn feed(session: &mut ClientSession, now: Duration, frame: &[u8]) {
    if let Err(e) = session.handle_frame(now, frame) {
        tracing::debug!(error = %e, "frame ignored");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes every pending frame; false when the websocket is broken.
async fn flush_ws(ws: &mut Ws, session: &mut ClientSession) -> bool {
    let mut any = false;
    while let Some(frame) = session.poll_transmit() {
        any = true;
        if let Err(e) = ws.feed(WsMessage::Binary(frame)).await {
            tracing::debug!(error = %e, "websocket write failed");
            return false;
        }
    }
    if any {
        if let Err(e) = ws.flush().await {
            tracing::debug!(error = %e, "websocket flush failed");
            return false;
        }
    }
    true
}

/// Re-dials after the websocket broke, with a fresh token from `ResumeSession`, and
/// resumes the channel with its sequence state intact.
async fn reconnect<R: Resume>(
    url: &str,
    session: &mut ClientSession,
    resumer: &R,
    config: &DriverConfig,
    epoch: Instant,
) -> Result<Ws, TunnelError> {
    tracing::info!("data channel broke; resuming the session");
    let token = resumer.resume().await?.ok_or(TunnelError::Expired)?;
    let ws = connect(url, session, &token, config, Some(resumer))
        .await
        .map_err(|e| TunnelError::Lost(e.to_string()))?;
    session.resume(epoch.elapsed());
    Ok(ws)
}

/// Dials `url` and sends OpenDataChannel, retrying with back-off. On a retry after a
/// resume, each attempt asks for a new token (they are short-lived).
async fn connect<R: Resume>(
    url: &str,
    session: &ClientSession,
    token: &str,
    config: &DriverConfig,
    resumer: Option<&R>,
) -> Result<Ws, TunnelError> {
    let mut token = token.to_string();
    let mut delay = Duration::from_millis(rand::rng().random_range(100..200));
    let mut last = DialError::Other(String::new());
    for attempt in 0..config.connect_attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            if let Some(r) = resumer {
                token = r.resume().await?.ok_or(TunnelError::Expired)?;
            }
        }
        match dial_once(url, session, &token).await {
            Ok(ws) => return Ok(ws),
            Err(e) => {
                tracing::debug!(attempt, error = %e, "data channel dial failed");
                let permanent = matches!(&e, DialError::Proxy(p) if p.is_permanent());
                last = e;
                if permanent {
                    break;
                }
            }
        }
    }
    Err(match last {
        DialError::Proxy(e) => TunnelError::Proxy(e),
        e @ DialError::Refused { .. } => TunnelError::Connect {
            url: redact(url),
            reason: e.to_string(),
        },
        DialError::Other(reason) => TunnelError::Connect {
            url: redact(url),
            reason,
        },
    })
}

async fn dial_once(url: &str, session: &ClientSession, token: &str) -> Result<Ws, DialError> {
    let mut ws = websocket::dial(url, WebSocketConfig::default()).await?;
    ws.send(WsMessage::Text(session.open_data_channel(token).into()))
        .await?;
    Ok(ws)
}

/// The query string of a stream URL can carry opaque routing data; keep it out of
/// messages.
fn redact(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}
