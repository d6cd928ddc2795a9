//! Basic-mode forwarding (agents up to 3.0.196.0): the session carries one local
//! connection at a time. Bytes are pumped both ways; when the local client closes,
//! `DisconnectToPort` tells the agent to drop its connection, and the next accepted
//! connection makes it dial again. Connections that arrive meanwhile wait in the
//! listener's accept queue.
//!
//! The session's output is read at all times, so the driver never blocks on it while
//! this loop waits to hand it input.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::session::driver::Input;
use crate::session::messages::Flag;

const READ_CHUNK: usize = 16 * 1024;

/// Serves `listener` until the session's output or input ends.
pub async fn run<O>(listener: TcpListener, input: mpsc::Sender<Input>, mut output: O)
where
    O: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        // Between connections the agent has nothing to say; whatever comes is stale.
        let socket = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        tracing::debug!(%peer, "forwarded connection");
                        break socket;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                n = output.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) { return },
            }
        };
        let _ = socket.set_nodelay(true);
        let (mut r, mut w) = socket.into_split();
        let mut pending: Option<Input> = None;
        let mut writable = true;
        loop {
            tokio::select! {
                permit = input.reserve(), if pending.is_some() => match (permit, pending.take()) {
                    (Ok(permit), Some(item)) => permit.send(item),
                    _ => return,
                },
                n = r.read(&mut chunk), if pending.is_none() => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => pending = Some(Input::Data(chunk[..n].to_vec())),
                },
                n = output.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if writable && w.write_all(&buf[..n]).await.is_err() {
                            writable = false;
                        }
                    }
                },
            }
        }
        drop((r, w));
        // The connection is over: say so, still draining output meanwhile.
        let mut pending = Some(Input::Flag(Flag::DisconnectToPort));
        while pending.is_some() {
            tokio::select! {
                permit = input.reserve() => match (permit, pending.take()) {
                    (Ok(permit), Some(item)) => permit.send(item),
                    _ => return,
                },
                n = output.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) { return },
            }
        }
    }
}
