//! One Session Manager session as both the control plane ([`super::sessions`]) and the
//! data channel ([`super::gateway`]) see it: its status, its single-use tokens, its
//! expiry while Disconnected, and the handle its agent task listens on; and the
//! registry of a run's sessions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::WebSocket;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::stats::Stats;

/// Who starts every session (the simulator's one IAM user).
pub(super) const OWNER: &str = "arn:aws:iam::123456789012:user/demo";

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
    pub(super) state: Mutex<State>,
    pub(super) attach: mpsc::UnboundedSender<Attach>,
    pub(super) stop: watch::Sender<bool>,
}

pub(super) struct State {
    pub(super) status: Status,
    /// The token that may attach next; empty once used. Each token attaches once.
    pub(super) token: String,
    pub(super) ended: Option<SystemTime>,
    /// Since when no client has been attached (while Disconnected).
    pub(super) disconnected: Option<Instant>,
}

impl Session {
    pub fn status(&self) -> Status {
        self.lock().status
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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

    pub(super) fn new_token(&self) -> Option<String> {
        self.expire_if_due();
        let mut s = self.lock();
        if !s.status.is_active() {
            return None;
        }
        s.token = token();
        Some(s.token.clone())
    }

    pub(super) fn describe(&self) -> Value {
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
    pub(super) next: AtomicU64,
}

impl Registry {
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
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

pub(super) fn token() -> String {
    use base64::Engine;
    let bytes: [u8; 48] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

/// An authenticated websocket on its way to the agent task.
pub struct Attach {
    pub(super) socket: WebSocket,
    /// From the OpenDataChannel frame: kept across reconnects by the plugin.
    pub(super) client_id: String,
    pub(super) client_version: String,
}
