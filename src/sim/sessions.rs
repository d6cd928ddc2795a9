//! Session Manager's control plane in the simulator: `StartSession`, `ResumeSession`,
//! `TerminateSession` and `DescribeSessions` (JSON 1.1), and the registry of sessions
//! the data-channel gateway ([`super::gateway`]) serves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::gateway::{self, Attach};
use super::stats::Stats;
use super::{ApiError, SimState};

/// The document for SSH over a standard-stream port session.
const SSH_DOCUMENT: &str = "AWS-StartSSHSession";
/// The port-forwarding document (the agent's `LocalPortForwarding` type).
const PORT_FORWARDING_DOCUMENT: &str = "AWS-StartPortForwardingSession";
/// Port forwarding to another host the instance reaches (`host` parameter).
const REMOTE_HOST_DOCUMENT: &str = "AWS-StartPortForwardingSessionToRemoteHost";
/// Who starts every session (the simulator's one IAM user).
const OWNER: &str = "arn:aws:iam::123456789012:user/demo";
/// DescribeSessions' page size limits.
const MAX_RESULTS: u64 = 200;
/// How long a session whose client went away waits to be resumed, unless the options
/// say otherwise. The service's limit is not documented; this is its default idle
/// session timeout (Session Manager preferences, 20 minutes).
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Where a session is in its life, with the service's own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Connected,
    Disconnected,
    Terminated,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "Connecting",
            Status::Connected => "Connected",
            Status::Disconnected => "Disconnected",
            Status::Terminated => "Terminated",
            Status::Failed => "Failed",
        }
    }

    pub fn is_active(self) -> bool {
        !matches!(self, Status::Terminated | Status::Failed)
    }
}

/// One session: what it was started for, and the handles its agent task listens on.
pub struct Session {
    pub id: String,
    /// The account that started it: only that account sees or acts on it.
    pub account: String,
    pub target: String,
    pub region: String,
    pub document: String,
    pub port: u16,
    /// The `Properties` of the document's port session after parameter substitution,
    /// as the agent puts them into its HandshakeRequest.
    pub properties: Value,
    /// StartSession's `Reason`, if any.
    pub reason: Option<String>,
    /// The TCP endpoint the agent relays to.
    pub relay: SocketAddr,
    pub agent_version: String,
    /// Shell sessions of an instance with a KMS key in its preferences shake hands
    /// for KMS encryption.
    pub kms_key_id: Option<String>,
    pub started: SystemTime,
    /// How long it may stay Disconnected before it expires.
    pub disconnect_timeout: Duration,
    pub stats: Arc<Stats>,
    state: Mutex<State>,
    attach: mpsc::UnboundedSender<Attach>,
    stop: watch::Sender<bool>,
}

struct State {
    status: Status,
    /// The token that may attach next; empty once used. Each token attaches once.
    token: String,
    ended: Option<SystemTime>,
    /// Since when no client has been attached (while Disconnected).
    disconnected: Option<Instant>,
}

impl Session {
    pub fn status(&self) -> Status {
        self.lock().status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves to `status`; once ended, a session stays ended.
    pub fn set_status(&self, status: Status) {
        let mut s = self.lock();
        if !s.status.is_active() {
            return;
        }
        s.status = status;
        match status {
            Status::Disconnected => s.disconnected = Some(Instant::now()),
            _ => s.disconnected = None,
        }
        if !status.is_active() {
            s.ended = Some(SystemTime::now());
            s.token.clear();
        }
    }

    /// Uses up `token` if it is the one that may attach now: issued for this session by
    /// StartSession or the latest ResumeSession, not used before, and the session
    /// neither over nor expired. A replayed token is refused.
    pub fn take_token(&self, token: &str) -> bool {
        self.expire_if_due();
        let mut s = self.lock();
        let ok = s.status.is_active() && !s.token.is_empty() && s.token == token;
        if ok {
            s.token.clear();
        }
        ok
    }

    /// When a Disconnected session expires, if it is waiting for a client.
    pub fn expires_at(&self) -> Option<Instant> {
        let s = self.lock();
        s.disconnected.map(|since| since + self.disconnect_timeout)
    }

    /// Ends the session if it has been Disconnected for too long; true for the one
    /// call that ended it.
    pub fn expire_if_due(&self) -> bool {
        let expired = {
            let mut s = self.lock();
            let due = s.status == Status::Disconnected
                && s.disconnected
                    .is_some_and(|since| since.elapsed() >= self.disconnect_timeout);
            if due {
                s.status = Status::Terminated;
                s.ended = Some(SystemTime::now());
                s.token.clear();
                s.disconnected = None;
            }
            due
        };
        if expired {
            tracing::debug!(session = %self.id, "disconnected too long: the session expired");
            Stats::add(&self.stats.sessions_expired);
            self.stop();
        }
        expired
    }

    /// Hands an authenticated websocket to the agent task.
    pub fn attach(&self, conn: Attach) {
        let _ = self.attach.send(conn);
    }

    /// Asks the agent task to end the session (TerminateSession).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    fn new_token(&self) -> Option<String> {
        self.expire_if_due();
        let mut s = self.lock();
        if !s.status.is_active() {
            return None;
        }
        s.token = token();
        Some(s.token.clone())
    }

    fn describe(&self) -> Value {
        let s = self.lock();
        let mut v = json!({
            "SessionId": self.id,
            "Target": self.target,
            "Status": s.status.as_str(),
            "StartDate": epoch_secs(self.started),
            "DocumentName": self.document,
            "Owner": OWNER,
        });
        if let Some(reason) = &self.reason {
            v["Reason"] = json!(reason);
        }
        if let Some(end) = s.ended {
            v["EndDate"] = json!(epoch_secs(end));
        }
        v
    }
}

/// All sessions of one simulator run.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    next: AtomicU64,
}

impl Registry {
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions not yet ended.
    pub fn active(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| s.status().is_active())
            .count()
    }
}

fn token() -> String {
    use base64::Engine;
    let bytes: [u8; 48] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

fn stream_url(state: &SimState, id: &str) -> String {
    format!(
        "ws://{}/v1/data-channel/{id}?role=publish_subscribe&cell-number=AAEAAQ",
        state.addr()
    )
}

fn str_field<'a>(req: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    req[key].as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::new(
            400,
            "ValidationException",
            format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", key.to_ascii_lowercase()),
        )
    })
}

/// The value of a one-element string-list parameter, e.g. `"portNumber": ["22"]`.
fn parameter<'a>(req: &'a Value, name: &str) -> Option<&'a Value> {
    match &req["Parameters"][name] {
        Value::Null => None,
        v => Some(v),
    }
}

/// A port-number parameter: absent gives `default`, anything but one port is refused.
fn port_parameter(req: &Value, name: &str, default: u16) -> Result<u16, ApiError> {
    let Some(v) = parameter(req, name) else {
        return Ok(default);
    };
    v[0].as_str()
        .filter(|_| v.as_array().is_some_and(|a| a.len() == 1))
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidParameters",
                format!("Parameter \"{name}\" has a value that is not a valid port number."),
            )
        })
}

/// Starts a session on one of `account`'s instances; another account's id is, for
/// this caller, an instance Session Manager has no agent for: TargetNotConnected.
pub fn start_session(
    state: &SimState,
    account: &str,
    region: &str,
    req: &Value,
) -> Result<Value, ApiError> {
    let target = str_field(req, "Target")?;
    let document = req["DocumentName"]
        .as_str()
        .unwrap_or("SSM-SessionManagerRunShell");
    // The documents' `properties`, as the agent receives them: AWS-StartSSHSession has
    // no `type` (standard-stream mode), port forwarding is `LocalPortForwarding`.
    let (port, properties) = match document {
        SSH_DOCUMENT => {
            let port = port_parameter(req, "portNumber", 22)?;
            (port, json!({ "portNumber": port.to_string() }))
        }
        doc if super::shell::is_shell_document(doc) => (0, json!({})),
        PORT_FORWARDING_DOCUMENT => {
            let port = port_parameter(req, "portNumber", 80)?;
            let local = port_parameter(req, "localPortNumber", 0)?;
            (
                port,
                json!({
                    "portNumber": port.to_string(),
                    "type": "LocalPortForwarding",
                    "localPortNumber": local.to_string(),
                }),
            )
        }
        REMOTE_HOST_DOCUMENT => {
            let port = port_parameter(req, "portNumber", 80)?;
            let local = port_parameter(req, "localPortNumber", 0)?;
            let host = parameter(req, "host")
                .and_then(|v| v[0].as_str())
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    ApiError::new(400, "InvalidParameters", "Parameter \"host\" is required.")
                })?;
            (
                port,
                json!({
                    "portNumber": port.to_string(),
                    "type": "LocalPortForwarding",
                    "host": host,
                    "localPortNumber": local.to_string(),
                }),
            )
        }
        _ => {
            return Err(ApiError::new(
                400,
                "InvalidDocument",
                format!("Document with name {document} does not exist."),
            ))
        }
    };
    let instance = state.instance(account, region, target);
    let online = instance.is_some_and(|i| {
        state.ping_of(i) == Some("Online") && matches!(i.state.as_deref(), None | Some("running"))
    });
    let Some(instance) = instance.filter(|_| online) else {
        return Err(ApiError::new(
            400,
            "TargetNotConnected",
            format!("{target} is not connected."),
        ));
    };
    let relay = instance
        .target
        .or(state.opts.default_target)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
    // Port forwarding reaches the requested port on the instance's host (the target's
    // address stands in for the instance).
    let relay = match document {
        PORT_FORWARDING_DOCUMENT | REMOTE_HOST_DOCUMENT => SocketAddr::new(relay.ip(), port),
        _ => relay,
    };
    let agent_version = state
        .opts
        .agent_version
        .clone()
        .or_else(|| instance.agent_version.clone())
        .unwrap_or_else(|| "3.3.1142.0".into());

    let n = state.sessions.next.fetch_add(1, Ordering::Relaxed);
    let id = format!("demo-{:017x}", rand::random::<u64>() ^ n);
    let (attach_tx, attach_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let session = Arc::new(Session {
        id: id.clone(),
        account: account.to_string(),
        target: target.to_string(),
        region: region.to_string(),
        document: document.to_string(),
        port,
        properties,
        reason: req["Reason"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        relay,
        agent_version,
        kms_key_id: instance.kms_key_id.clone(),
        started: SystemTime::now(),
        disconnect_timeout: state.opts.disconnect_timeout.unwrap_or(DISCONNECT_TIMEOUT),
        stats: state.stats.clone(),
        state: Mutex::new(State {
            status: Status::Connecting,
            token: token(),
            ended: None,
            disconnected: None,
        }),
        attach: attach_tx,
        stop: stop_tx,
    });
    let token = session.lock().token.clone();
    state.sessions.lock().insert(id.clone(), session.clone());
    tokio::spawn(gateway::agent(
        session,
        gateway::AgentOptions {
            faults: state.opts.faults.clone(),
            paced: !state.opts.unpaced,
        },
        attach_rx,
        stop_rx,
    ));
    Ok(json!({ "SessionId": id, "TokenValue": token, "StreamUrl": stream_url(state, &id) }))
}

fn known(state: &SimState, account: &str, req: &Value) -> Result<Arc<Session>, ApiError> {
    let id = str_field(req, "SessionId")?;
    let mine = state.sessions.get(id).filter(|s| s.account == account);
    mine.ok_or_else(|| {
        ApiError::new(
            400,
            "DoesNotExistException",
            format!("Session with id {id} does not exist."),
        )
    })
}

pub fn resume_session(state: &SimState, account: &str, req: &Value) -> Result<Value, ApiError> {
    let session = known(state, account, req)?;
    Ok(match session.new_token() {
        Some(token) => {
            Stats::add(&state.stats.resumes_with_token);
            json!({
                "SessionId": session.id,
                "TokenValue": token,
                "StreamUrl": stream_url(state, &session.id),
            })
        }
        // What the service answers for a session that has ended or timed out: no token.
        None => {
            Stats::add(&state.stats.resumes_without_token);
            json!({ "SessionId": session.id })
        }
    })
}

pub fn terminate_session(state: &SimState, account: &str, req: &Value) -> Result<Value, ApiError> {
    let id = str_field(req, "SessionId")?;
    // Idempotent, and quiet about unknown ids (another account's too), like the service.
    if let Some(session) = state.sessions.get(id).filter(|s| s.account == account) {
        session.stop();
        session.set_status(Status::Terminated);
    }
    Ok(json!({ "SessionId": id }))
}

/// DescribeSessions: `State` Active or History, `Filters` (Target, Owner, Status,
/// SessionId, InvokedAfter, InvokedBefore), pages of `MaxResults` (default and at most
/// 200) chained by `NextToken`, oldest session first.
pub fn describe_sessions(state: &SimState, account: &str, req: &Value) -> Result<Value, ApiError> {
    let active = match req["State"].as_str() {
        Some("Active") => true,
        Some("History") => false,
        other => {
            return Err(ApiError::new(
                400,
                "ValidationException",
                format!("1 validation error detected: Value {other:?} at 'state' failed to satisfy constraint: Member must satisfy enum value set: [Active, History]"),
            ))
        }
    };
    let max = match &req["MaxResults"] {
        Value::Null => MAX_RESULTS,
        v => v.as_u64().filter(|n| (1..=MAX_RESULTS).contains(n)).ok_or_else(|| {
            ApiError::new(
                400,
                "ValidationException",
                format!("1 validation error detected: Value {v} at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to {MAX_RESULTS}"),
            )
        })?,
    } as usize;
    let skip = match req["NextToken"].as_str() {
        None => 0,
        Some(token) => token.parse::<usize>().map_err(|_| {
            ApiError::new(400, "InvalidNextToken", "The specified token is not valid.")
        })?,
    };
    let filters = session_filters(req)?;
    let mut sessions: Vec<Arc<Session>> = state
        .sessions
        .lock()
        .values()
        .filter(|s| s.account == account && s.status().is_active() == active)
        .filter(|s| filters.iter().all(|f| f.matches(s)))
        .cloned()
        .collect();
    sessions.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.id.cmp(&b.id)));
    let page: Vec<Value> = sessions
        .iter()
        .skip(skip)
        .take(max)
        .map(|s| s.describe())
        .collect();
    if skip > sessions.len() {
        return Err(ApiError::new(
            400,
            "InvalidNextToken",
            "The specified token is not valid.",
        ));
    }
    let mut out = json!({ "Sessions": page });
    let next = skip.saturating_add(max);
    if next < sessions.len() {
        out["NextToken"] = json!(next.to_string());
    }
    Ok(out)
}

/// One DescribeSessions filter.
enum Filter {
    Target(String),
    Owner(String),
    Status(String),
    SessionId(String),
    InvokedAfter(SystemTime),
    InvokedBefore(SystemTime),
}

impl Filter {
    fn matches(&self, s: &Session) -> bool {
        match self {
            Filter::Target(v) => &s.target == v,
            Filter::Owner(v) => v == OWNER,
            Filter::Status(v) => s.status().as_str() == v,
            Filter::SessionId(v) => &s.id == v,
            Filter::InvokedAfter(t) => s.started >= *t,
            Filter::InvokedBefore(t) => s.started <= *t,
        }
    }
}

/// `Filters: [{"key": "Target", "value": "i-…"}]`; times are ISO 8601
/// (`2018-08-29T00:00:00Z`) as the API documents them.
fn session_filters(req: &Value) -> Result<Vec<Filter>, ApiError> {
    let invalid = |why: String| ApiError::new(400, "InvalidFilterKey", why);
    let mut out = Vec::new();
    for f in req["Filters"].as_array().into_iter().flatten() {
        let key = f["key"].as_str().unwrap_or_default();
        let value = f["value"].as_str().unwrap_or_default().to_string();
        let time = |v: &str| {
            humantime::parse_rfc3339_weak(v)
                .map_err(|_| invalid(format!("The filter value {v} is not a valid date.")))
        };
        out.push(match key {
            "Target" => Filter::Target(value),
            "Owner" => Filter::Owner(value),
            "Status" => Filter::Status(value),
            "SessionId" => Filter::SessionId(value),
            "InvokedAfter" => Filter::InvokedAfter(time(&value)?),
            "InvokedBefore" => Filter::InvokedBefore(time(&value)?),
            other => return Err(invalid(format!("The filter key {other} is not valid."))),
        });
    }
    Ok(out)
}
