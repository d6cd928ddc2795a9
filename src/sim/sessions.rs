//! Session Manager's control plane in the simulator: `StartSession`, `ResumeSession`,
//! `TerminateSession` and `DescribeSessions` (JSON 1.1) over the sessions of
//! [`super::session`], whose agents the data-channel gateway ([`super::gateway`]) runs.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::fleet::SimInstance;
use super::gateway;
use super::session::{token, Session, State, Status, DISCONNECT_TIMEOUT, OWNER};
use super::stats::Stats;
use super::{ApiError, SimState};

/// The document for SSH over a standard-stream port session.
const SSH_DOCUMENT: &str = "AWS-StartSSHSession";
/// The port-forwarding document (the agent's `LocalPortForwarding` type).
const PORT_FORWARDING_DOCUMENT: &str = "AWS-StartPortForwardingSession";
/// Port forwarding to another host the instance reaches (`host` parameter).
const REMOTE_HOST_DOCUMENT: &str = "AWS-StartPortForwardingSessionToRemoteHost";
/// DescribeSessions' page size limits.
const MAX_RESULTS: u64 = 200;
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
    let (port, properties) = document_properties(document, req)?;
    let instance = connected(state, account, region, target)?;
    let relay = relay_for(state, instance, document, port);
    let agent_version = state
        .opts
        .agent_version
        .clone()
        .or_else(|| instance.agent_version.clone())
        .unwrap_or_else(|| "3.3.1142.0".into());
    let (attach_tx, attach_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let session = Session {
        id: new_id(state),
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
    };
    let (id, token) = register(state, session, attach_rx, stop_rx);
    Ok(json!({ "SessionId": id, "TokenValue": token, "StreamUrl": stream_url(state, &id) }))
}

/// The document's port and `properties`, as the agent receives them: AWS-StartSSHSession
/// has no `type` (standard-stream mode), port forwarding is `LocalPortForwarding`.
fn document_properties(document: &str, req: &Value) -> Result<(u16, Value), ApiError> {
    Ok(match document {
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
    })
}

/// `target` of `account` in `region`, if Session Manager can reach it now.
fn connected<'a>(
    state: &'a SimState,
    account: &str,
    region: &str,
    target: &str,
) -> Result<&'a SimInstance, ApiError> {
    let instance = state.instance(account, region, target);
    let online = instance.is_some_and(|i| {
        state.ping_of(i) == Some("Online") && matches!(i.state.as_deref(), None | Some("running"))
    });
    instance.filter(|_| online).ok_or_else(|| {
        ApiError::new(
            400,
            "TargetNotConnected",
            format!("{target} is not connected."),
        )
    })
}

/// Where the agent relays: the instance's target (or the simulator's default, or
/// loopback on the port); port forwarding reaches the requested port on that host (the
/// target's address stands in for the instance).
fn relay_for(state: &SimState, instance: &SimInstance, document: &str, port: u16) -> SocketAddr {
    let relay = instance
        .target
        .or(state.opts.default_target)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
    match document {
        PORT_FORWARDING_DOCUMENT | REMOTE_HOST_DOCUMENT => SocketAddr::new(relay.ip(), port),
        _ => relay,
    }
}

fn new_id(state: &SimState) -> String {
    let n = state.sessions.next.fetch_add(1, Ordering::Relaxed);
    format!("demo-{:017x}", rand::random::<u64>() ^ n)
}

/// Adds the session to the registry and starts its agent: (id, first token).
fn register(
    state: &SimState,
    session: Session,
    attach_rx: mpsc::UnboundedReceiver<super::session::Attach>,
    stop_rx: watch::Receiver<bool>,
) -> (String, String) {
    let session = Arc::new(session);
    let (id, token) = (session.id.clone(), session.lock().token.clone());
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
    (id, token)
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
