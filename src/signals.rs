//! The termination signals a command-line tool must clean up after: SIGINT, SIGTERM
//! and SIGHUP (what ssh sends its ProxyCommand when it exits).

use futures::FutureExt;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::error::AppError;

/// Handlers for SIGINT, SIGTERM and SIGHUP. From `install` on, these signals no longer
/// kill the process; they are delivered to `recv`.
pub struct Signals(Vec<(Signal, i32)>);

impl Signals {
    pub fn install() -> Signals {
        let kinds = [
            (SignalKind::interrupt(), 2),
            (SignalKind::terminate(), 15),
            (SignalKind::hangup(), 1),
        ];
        let mut streams = Vec::new();
        for (kind, n) in kinds {
            match signal(kind) {
                Ok(s) => streams.push((s, n)),
                Err(e) => tracing::warn!(error = %e, signal = n, "cannot watch signal"),
            }
        }
        Signals(streams)
    }

    /// Waits for the next signal and returns its number.
    pub async fn recv(&mut self) -> i32 {
        if self.0.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.0.iter_mut().map(|(s, n)| {
            let n = *n;
            Box::pin(async move {
                s.recv().await;
                n
            })
        });
        futures::future::select_all(waits).await.0
    }

    /// A signal that has already arrived, if any.
    pub fn pending(&mut self) -> Option<i32> {
        self.recv().now_or_never()
    }
}

/// The error (and so the exit code) for being ended by signal `n`.
pub fn as_error(n: i32) -> AppError {
    if n == 2 {
        AppError::Interrupted
    } else {
        AppError::Signal(n)
    }
}
