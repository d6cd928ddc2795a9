//! What the simulator's data channels did, counted for tests that must show their
//! faults happened (frames dropped, websockets cut, input refused, the agent's mode):
//! `GET /sim/stats` answers a JSON snapshot, and [`super::SimHandle::stats`] gives it
//! in process. Counters only grow, except the open target connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The live counters; see [`Snapshot`] for their meaning.
        #[derive(Debug, Default)]
        pub struct Stats {
            $(pub $name: AtomicU64,)*
            target_open: AtomicU64,
        }

        /// The counters at one moment.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Snapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Stats {
            pub fn snapshot(&self) -> Snapshot {
                Snapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Websockets that presented a valid token and were handed to their session.
    websockets_opened,
    /// Websockets closed at once: bad first frame, unknown session, or a token that
    /// is wrong, already used or expired.
    websockets_refused,
    /// Websockets the `cut-after` fault dropped.
    cuts,
    /// ResumeSession answers with a new token, and without one (session over).
    resumes_with_token,
    resumes_without_token,
    /// Disconnected sessions that expired before the client came back.
    sessions_expired,
    /// Binary frames that reached the wire, each way.
    frames_to_client,
    frames_from_client,
    /// Faults applied, each way.
    dropped_to_client,
    dropped_from_client,
    duplicated_to_client,
    duplicated_from_client,
    reordered_to_client,
    reordered_from_client,
    delayed_to_client,
    delayed_from_client,
    /// In-order client messages the agent refused unacknowledged (not ready yet).
    refused_not_ready,
    /// Protocol errors that ended a session (payload over 1024 bytes, text frames).
    protocol_errors,
    /// `channel_closed` frames sent to clients.
    channel_closed_sent,
    /// `pause_publication` / `start_publication` frames sent to clients.
    publication_sent,
    /// Sessions by the mode the agent chose.
    sessions_ssh,
    sessions_basic,
    sessions_mux,
    sessions_shell,
    /// Connections the agent made to targets, and the most open at once.
    target_dials,
    target_open_max,
    /// Multiplexed sessions closed because the client sent nothing for 30 s while
    /// the agent expected smux keepalives.
    smux_keepalive_timeouts,
}

impl Stats {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a new target connection; it is open until the guard drops.
    pub fn target_opened(self: &Arc<Self>) -> TargetGuard {
        Self::add(&self.target_dials);
        let open = self.target_open.fetch_add(1, Ordering::Relaxed) + 1;
        self.target_open_max.fetch_max(open, Ordering::Relaxed);
        TargetGuard(self.clone())
    }
}

/// One open target connection.
#[derive(Debug)]
pub struct TargetGuard(Arc<Stats>);

impl Drop for TargetGuard {
    fn drop(&mut self) {
        self.0.target_open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_targets_are_counted_with_their_peak() {
        let stats = Arc::new(Stats::default());
        let a = stats.target_opened();
        let b = stats.target_opened();
        drop(a);
        let _c = stats.target_opened();
        drop(b);
        let snap = stats.snapshot();
        assert_eq!(snap.target_dials, 3);
        assert_eq!(snap.target_open_max, 2);
        Stats::add(&stats.cuts);
        let json = serde_json::to_value(stats.snapshot()).unwrap();
        assert_eq!(json["cuts"], 1);
        assert_eq!(json["target_open_max"], 2);
    }
}
